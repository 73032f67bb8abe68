/* SPDX-License-Identifier: MIT */

/* Redis glob matching (util.c stringmatchlen()): * ? [abc] [^abc] [a-z] \x, byte-wise.
 *
 * Redis matches recursively, one level per star, which takes exponential time on patterns
 * like "*a*a*a*ab" (CVE-2022-36021).  Here every token but the star matches exactly one
 * byte, so the classic greedy matcher with one restart point is exact: when the text after
 * the last star fails, only that star needs to take one byte more; earlier stars never
 * need to, because the last one can absorb whatever they would.  Time O(pattern * string).
 *
 * Two corner cases of Redis are kept on purpose: an empty string is matched only by the
 * empty pattern (Redis's loop never runs, so even "*" fails), and a pattern whose 1001st
 * group of stars is followed by more pattern never matches (Redis gives up at a recursion
 * depth of 1000). */

#include "store-internal.h"

#define GLOB_MAX_STARS 1000

/* Does byte C match the class at P ('[' included)?  *ret_len: the class's length in the
 * pattern.  An unterminated class ends with the pattern, as in Redis. */
static bool class_match(const char *p, size_t plen, unsigned char c, size_t *ret_len) {
        bool not, found = false;
        size_t i = 1;

        not = i < plen && p[i] == '^';
        if (not)
                i++;
        for (;;) {
                if (i == plen)
                        break;
                if (p[i] == '\\' && plen - i >= 2) {
                        if ((unsigned char) p[i + 1] == c)
                                found = true;
                        i += 2;
                } else if (p[i] == ']') {
                        i++;
                        break;
                } else if (plen - i >= 3 && p[i + 1] == '-') {
                        unsigned char a = (unsigned char) p[i], b = (unsigned char) p[i + 2];

                        if (a > b) {
                                unsigned char t = a;
                                a = b;
                                b = t;
                        }
                        if (c >= a && c <= b)
                                found = true;
                        i += 3;
                } else {
                        if ((unsigned char) p[i] == c)
                                found = true;
                        i++;
                }
        }
        *ret_len = i;
        return found != not;
}

/* Does byte C match the one-byte token at P (anything but a star)?  *ret_len: its length. */
static bool token_match(const char *p, size_t plen, unsigned char c, size_t *ret_len) {
        switch (p[0]) {
        case '?':
                *ret_len = 1;
                return true;
        case '[':
                return class_match(p, plen, c, ret_len);
        case '\\':
                if (plen >= 2) {
                        *ret_len = 2;
                        return (unsigned char) p[1] == c;
                }
                __attribute__((fallthrough));
        default:
                *ret_len = 1;
                return (unsigned char) p[0] == c;
        }
}

bool glob_match_steps(const char *p, size_t plen, const char *s, size_t slen, size_t *steps) {
        size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0, stars = 0, work = 0;
        bool matched = false;

        if (slen == 0)
                return plen == 0;
        while (si < slen) {
                size_t len;

                if (pi < plen && p[pi] == '*') {
                        while (pi < plen && p[pi] == '*')
                                pi++;
                        if (pi == plen) {
                                matched = true;  /* a trailing star takes the rest */
                                goto finish;
                        }
                        if (++stars > GLOB_MAX_STARS)
                                goto finish;
                        star_p = pi;
                        star_s = si;
                        continue;
                }
                if (pi < plen) {
                        bool ok = token_match(p + pi, plen - pi, (unsigned char) s[si], &len);

                        work += len;
                        if (ok) {
                                pi += len;
                                si++;
                                continue;
                        }
                }
                if (star_p == SIZE_MAX)
                        goto finish;
                /* the last star takes one byte more; the text after it starts again */
                pi = star_p;
                si = ++star_s;
                work++;
        }
        while (pi < plen && p[pi] == '*')
                pi++;
        matched = pi == plen;
finish:
        if (steps)
                *steps += work;
        return matched;
}

bool glob_match(const char *p, size_t plen, const char *s, size_t slen) {
        return glob_match_steps(p, plen, s, slen, NULL);
}
