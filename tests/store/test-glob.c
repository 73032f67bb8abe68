/* SPDX-License-Identifier: MIT */
/*
 * Glob matching (service/store/glob.c):
 *  - the same answers as Redis's recursive stringmatchlen(), checked against a copy of it
 *    (below, as the store used it before) on every pattern and string over a small alphabet;
 *  - patterns that take the recursive matcher exponential time ("*a*a*a*a*a*a*a*ab" over a
 *    500-byte key took minutes) complete: this test fails by its meson timeout otherwise;
 *  - Redis's corner cases: "*" does not match an empty string, and a pattern with more
 *    than 1000 groups of stars before its end never matches.
 */
#include <stdlib.h>
#include <string.h>

/* before glib.h, which redefines MIN and MAX without complaint */
#include "store-internal.h"

#include <glib.h>

#include "store-test.h"

/* The recursive matcher, a faithful port of Redis's stringmatchlen(): the oracle. */
static bool oracle(const char *p, size_t plen, const char *s, size_t slen, int depth) {
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
                                if (oracle(p + 1, plen - 1, s, slen, depth + 1))
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


static const char alphabet[] = "ab*?[]^-\\";

/* Every string of length LEN over ALPHA into OUT, by index. */
static void nth_string(const char *alpha, size_t nalpha, size_t len, size_t index, char *out) {
        for (size_t i = 0; i < len; i++) {
                out[i] = alpha[index % nalpha];
                index /= nalpha;
        }
        out[len] = 0;
}

static void test_glob_oracle(void) {
        const char *text_alpha = "ab]-^\\*";
        size_t np = strlen(alphabet), nt = strlen(text_alpha), checked = 0;
        char p[8], s[8];

        /* every pattern of up to 4 bytes over the special characters against every text of
         * up to 4 bytes: ranges, escapes, unterminated classes, stars in every position */
        for (size_t pl = 0; pl <= 4; pl++) {
                size_t pcount = 1;
                for (size_t i = 0; i < pl; i++)
                        pcount *= np;
                for (size_t pi = 0; pi < pcount; pi++) {
                        nth_string(alphabet, np, pl, pi, p);
                        for (size_t sl = 0; sl <= 4; sl++) {
                                size_t scount = 1;
                                for (size_t i = 0; i < sl; i++)
                                        scount *= nt;
                                for (size_t si = 0; si < scount; si++) {
                                        nth_string(text_alpha, nt, sl, si, s);
                                        bool want = oracle(p, pl, s, sl, 0), got = glob_match(p, pl, s, sl);
                                        if (want != got)
                                                g_error("glob '%s' on '%s': recursive %d, linear %d", p, s, want, got);
                                        checked++;
                                }
                        }
                }
        }
        g_test_message("%zu pattern/string pairs agree", checked);
}

static void test_glob_random(void) {
        GRand *rnd = g_rand_new_with_seed(20221);
        const char *pieces[] = { "*", "?", "a", "b", "[ab]", "[^a]", "[a-c]", "\\*", "[", "]", "\\", "-", "^" };
        char p[64], s[32];

        for (int n = 0; n < 200000; n++) {
                size_t pl = 0, sl = g_rand_int_range(rnd, 0, 24);
                int pieces_n = g_rand_int_range(rnd, 0, 10);

                for (int i = 0; i < pieces_n; i++) {
                        const char *x = pieces[g_rand_int_range(rnd, 0, G_N_ELEMENTS(pieces))];
                        if (pl + strlen(x) >= sizeof(p))
                                break;
                        memcpy(p + pl, x, strlen(x));
                        pl += strlen(x);
                }
                p[pl] = 0;
                for (size_t i = 0; i < sl; i++)
                        s[i] = "abc*-]"[g_rand_int_range(rnd, 0, 6)];
                s[sl] = 0;
                if (oracle(p, pl, s, sl, 0) != glob_match(p, pl, s, sl))
                        g_error("glob '%s' on '%s': recursive %d", p, s, oracle(p, pl, s, sl, 0));
        }
        g_rand_free(rnd);
}

static void test_glob_corners(void) {
        g_assert_false(glob_match("*", 1, "", 0));
        g_assert_true(glob_match("", 0, "", 0));
        g_assert_true(glob_match("a*", 2, "a", 1));
        g_assert_true(glob_match("a***", 4, "a", 1));
        g_assert_false(glob_match("[", 1, "[", 1));
        g_assert_true(glob_match("[^", 2, "x", 1));
        g_assert_true(glob_match("\\", 1, "\\", 1));
        /* "[a-]b]": the range a..] (swapped: ] ^ _ ` a), then b, then the closing ] */
        g_assert_true(glob_match("[a-]b]", 6, "^", 1));
        g_assert_true(glob_match("[a-]b]", 6, "b", 1));
        g_assert_false(glob_match("[a-]b]", 6, "c", 1));

        /* 1000 groups of stars are fine, a 1001st before more pattern never matches */
        GString *p = g_string_new(NULL), *s = g_string_new(NULL);
        for (int i = 0; i < 1000; i++) {
                g_string_append(p, "*a");
                g_string_append(s, "a");
        }
        g_assert_true(glob_match(p->str, p->len, s->str, s->len));
        g_string_append(p, "*");
        g_assert_true(glob_match(p->str, p->len, s->str, s->len));   /* trailing: still matches */
        g_string_append(p, "a");
        g_string_append(s, "a");
        g_assert_false(glob_match(p->str, p->len, s->str, s->len));
        g_string_free(p, true);
        g_string_free(s, true);
}

/* The patterns of the issue: each took the recursive matcher minutes or more. */
static void test_glob_pathological(void) {
        const char *pattern = "*a*a*a*a*a*a*a*ab";
        size_t steps = 0;
        char *key = g_malloc(100001);

        memset(key, 'a', 100000);
        key[100000] = 0;
        g_assert_false(glob_match_steps(pattern, strlen(pattern), key, 500, &steps));
        g_test_message("'%s' over 500 bytes: %zu steps", pattern, steps);
        g_assert_cmpuint(steps, <=, (size_t) 500 * strlen(pattern) * 2);
        g_assert_false(glob_match(pattern, strlen(pattern), key, 100000));
        key[99999] = 'b';
        g_assert_true(glob_match(pattern, strlen(pattern), key, 100000));

        /* and through Keys over a 500-byte key */
        Store *s;
        StoreValue v = SV_S("v");
        const char **keys;
        size_t n;
        key[500] = 0;
        g_assert_cmpint(store_new(&s, NULL, NULL, NULL, NULL, NULL), ==, 0);
        g_assert_cmpint(store_set(s, key, &v, 0, 0, 1), ==, 1);
        g_assert_cmpint(store_keys(s, "*a*a*a*a*a*a*a*a*a*a*a*ab", 1, &keys, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        free(keys);
        store_free(s);
        g_free(key);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/store/glob/oracle", test_glob_oracle);
        g_test_add_func("/store/glob/random", test_glob_random);
        g_test_add_func("/store/glob/corners", test_glob_corners);
        g_test_add_func("/store/glob/pathological", test_glob_pathological);
        return g_test_run();
}
