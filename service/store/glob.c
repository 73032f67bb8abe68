/* SPDX-License-Identifier: MIT */

/* Redis glob matching (util.c stringmatchlen()): * ? [abc] [^abc] [a-z] \x, byte-wise. */

#include "store-internal.h"

static bool match(const char *p, size_t plen, const char *s, size_t slen, int depth) {
        if (depth > 1000)
                return false; /* pathological patterns: give up rather than recurse deeply */

        while (plen > 0 && slen > 0) {
                switch (p[0]) {
                case '*':
                        while (plen > 1 && p[1] == '*') {
                                p++;
                                plen--;
                        }
                        if (plen == 1)
                                return true;
                        while (slen > 0) {
                                if (match(p + 1, plen - 1, s, slen, depth + 1))
                                        return true;
                                s++;
                                slen--;
                        }
                        return false;
                case '?':
                        s++;
                        slen--;
                        break;
                case '[': {
                        bool not, found = false;

                        p++;
                        plen--;
                        not = plen > 0 && p[0] == '^';
                        if (not) {
                                p++;
                                plen--;
                        }
                        for (;;) {
                                if (plen == 0) {
                                        /* unterminated class: like Redis, the class ends
                                         * with the pattern */
                                        p--;
                                        plen++;
                                        break;
                                }
                                if (p[0] == '\\' && plen >= 2) {
                                        p++;
                                        plen--;
                                        if (p[0] == s[0])
                                                found = true;
                                } else if (p[0] == ']')
                                        break;
                                else if (plen >= 3 && p[1] == '-') {
                                        unsigned char a = (unsigned char) p[0], b = (unsigned char) p[2],
                                                      c = (unsigned char) s[0];

                                        if (a > b) {
                                                unsigned char t = a;
                                                a = b;
                                                b = t;
                                        }
                                        p += 2;
                                        plen -= 2;
                                        if (c >= a && c <= b)
                                                found = true;
                                } else if (p[0] == s[0])
                                        found = true;
                                p++;
                                plen--;
                        }
                        if (not)
                                found = !found;
                        if (!found)
                                return false;
                        s++;
                        slen--;
                        break;
                }
                case '\\':
                        if (plen >= 2) {
                                p++;
                                plen--;
                        }
                        __attribute__((fallthrough));
                default:
                        if (p[0] != s[0])
                                return false;
                        s++;
                        slen--;
                        break;
                }
                p++;
                plen--;
                if (slen == 0) {
                        while (plen > 0 && p[0] == '*') {
                                p++;
                                plen--;
                        }
                        break;
                }
        }
        return plen == 0 && slen == 0;
}

bool glob_match(const char *p, size_t plen, const char *str, size_t slen) {
        return match(p, plen, str, slen, 0);
}
