/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the store's glob matcher (service/store/glob.c, glob_match()).
 *
 * Input: one byte giving the pattern length, then the pattern, then the string (both may
 * contain any byte, NUL included: glob_match() takes lengths).  Every input runs through
 * glob_match() (sanitizers, and -timeout catches super-linear patterns).  Short inputs are
 * also compared with a reference matcher written independently from the Redis rules as a
 * memoized recursion over (pattern position, string position): polynomial, and simple
 * enough to read against util.c stringmatchlen(). */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

#define REF_MAX 64

typedef struct Ref {
        const unsigned char *p, *s;
        size_t plen, slen;
        signed char memo[REF_MAX + 1][REF_MAX + 1]; /* -1 unknown, 0, 1 */
} Ref;

/* One class "[...]" starting at p[pi] == '['.  Returns the index of its last pattern byte
 * (the ']' or, unterminated, the pattern's last byte) and whether C is in it. */
static size_t ref_class(const Ref *r, size_t pi, unsigned char c, bool *ret_match) {
        bool not, found = false;
        size_t i = pi + 1;

        not = i < r->plen && r->p[i] == '^';
        if (not)
                i++;
        for (;; i++) {
                if (i >= r->plen) {
                        i = r->plen - 1; /* unterminated: the class ends with the pattern */
                        break;
                }
                if (r->p[i] == '\\' && i + 1 < r->plen) {
                        i++;
                        if (r->p[i] == c)
                                found = true;
                } else if (r->p[i] == ']')
                        break;
                else if (i + 2 < r->plen && r->p[i + 1] == '-') {
                        unsigned char a = r->p[i], b = r->p[i + 2];
                        if (a > b) {
                                unsigned char t = a;
                                a = b;
                                b = t;
                        }
                        if (c >= a && c <= b)
                                found = true;
                        i += 2;
                } else if (r->p[i] == c)
                        found = true;
        }
        *ret_match = not ? !found : found;
        return i;
}

static bool ref_match(Ref *r, size_t pi, size_t si);

/* Matches s[si] with the single-byte token at p[pi] and goes on after both. */
static bool ref_step(Ref *r, size_t pi, size_t si) {
        unsigned char c = r->s[si];
        bool ok;
        size_t end = pi; /* last pattern byte of the token */

        switch (r->p[pi]) {
        case '?':
                ok = true;
                break;
        case '[':
                end = ref_class(r, pi, c, &ok);
                break;
        case '\\':
                if (pi + 1 < r->plen)
                        end = pi + 1;
                ok = r->p[end] == c;
                break;
        default:
                ok = r->p[pi] == c;
        }
        if (!ok)
                return false;
        pi = end + 1;
        si++;
        if (si == r->slen) {
                /* the string is used up: only stars may remain */
                while (pi < r->plen && r->p[pi] == '*')
                        pi++;
                return pi == r->plen;
        }
        return ref_match(r, pi, si);
}

static bool ref_match(Ref *r, size_t pi, size_t si) {
        bool m = false;

        if (pi == r->plen || si == r->slen)
                return pi == r->plen && si == r->slen;
        if (r->memo[pi][si] >= 0)
                return r->memo[pi][si];
        if (r->p[pi] == '*') {
                while (pi + 1 < r->plen && r->p[pi + 1] == '*')
                        pi++;
                if (pi + 1 == r->plen)
                        m = true;
                for (size_t k = si; !m && k < r->slen; k++)
                        m = ref_match(r, pi + 1, k);
        } else
                m = ref_step(r, pi, si);
        r->memo[pi][si] = m;
        return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        size_t plen = MIN((size_t) data[0], size - 1);
        const char *p = (const char *) data + 1, *s = p + plen;
        size_t slen = size - 1 - plen;
        bool got = glob_match(p, plen, s, slen);

        if (plen <= REF_MAX && slen <= REF_MAX) {
                static Ref r;
                r = (Ref) { (const unsigned char *) p, (const unsigned char *) s, plen, slen };
                memset(r.memo, -1, sizeof(r.memo));
                bool want = ref_match(&r, 0, 0);
                if (got != want) {
                        fprintf(stderr, "glob_match(\"%.*s\", \"%.*s\") = %d, the reference says %d\n",
                                (int) plen, p, (int) slen, s, got, want);
                        abort();
                }
        }
        return 0;
}
