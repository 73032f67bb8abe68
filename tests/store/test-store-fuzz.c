/* SPDX-License-Identifier: MIT */

/* Fuzz-style: seeded random command sequences with random arguments over a small key
 * space, checking invariants after every command (accounting, notifications only on
 * success, TTL never visible past the deadline, no leaks under ASan/valgrind). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store-test.h"

static const char *const keys[] = { "a", "b", "c", "d", "list", "hash", "set", "x:1", "x:2", "\xc3\xa9" };
static const char *const names[] = { "f", "g", "h", "", "member", "0", "1" };

static size_t n_notify;
static void fz_notify(void *userdata, const char *key, const char *event) {
        g_assert_nonnull(key);
        g_assert_nonnull(event);
        n_notify++;
}

static GHashTable *pending; /* token -> StoreWaiter*, waiters not served yet */

static void fz_served(void *userdata, void *token, const char *key, StoreValue *value) {
        g_assert_nonnull(key);
        g_assert_true(g_hash_table_remove(pending, token));
        store_value_clear(value);
        (*(int *) userdata)++;
}

static StoreValue rand_value(GRand *r, char *buf, size_t size) {
        static const char *strs[] = { "", "0", "1", "-5", "10.5", "abc", "a longer string value", "9223372036854775807" };

        switch (g_rand_int_range(r, 0, 8)) {
        case 0: return (StoreValue) SV_S(strs[g_rand_int_range(r, 0, G_N_ELEMENTS(strs))]);
        case 1: return (StoreValue) SV_I('y', g_rand_int_range(r, 0, 256));
        case 2: return (StoreValue) SV_I('n', g_rand_int_range(r, -32768, 32768));
        case 3: return (StoreValue) SV_I('x', (int64_t) g_rand_int(r) - (int64_t) G_MAXINT32);
        case 4: return (StoreValue) SV_U('t', g_rand_int(r));
        case 5: return (StoreValue) SV_D(g_rand_double_range(r, -1e6, 1e6));
        case 6: return (StoreValue) SV_B(g_rand_boolean(r));
        default:
                snprintf(buf, size, "%u", g_rand_int(r));
                return (StoreValue) SV_BLOB("ay", buf, strlen(buf));
        }
}

static void fuzz(guint32 seed, int iterations) {
        GRand *r = g_rand_new_with_seed(seed);
        StoreAccount acc = { .limit = 1 << 20 };
        StoreLimits lim;
        guint next_token = 1, moved = 0;
        int served = 0;
        Store *s, *s2;   /* s2: another namespace, for Move */
        uint64_t now = 1000;

        store_limits_default(&lim);
        lim.max_elements = 50;
        lim.max_memory = 256 * 1024;
        pending = g_hash_table_new(NULL, NULL);
        g_assert_cmpint(store_new(&s, &lim, &acc, fz_notify, fz_served, &served), ==, 0);
        store_set_seed(s, seed);
        lim.max_memory = 2048;   /* small, so that Move meets its limit */
        g_assert_cmpint(store_new(&s2, &lim, &acc, fz_notify, fz_served, &served), ==, 0);

        for (int it = 0; it < iterations; it++) {
                const char *k = keys[g_rand_int_range(r, 0, G_N_ELEMENTS(keys))];
                const char *k2 = keys[g_rand_int_range(r, 0, G_N_ELEMENTS(keys))];
                const char *nm = names[g_rand_int_range(r, 0, G_N_ELEMENTS(names))];
                char b1[32], b2[32];
                StoreValue v = rand_value(r, b1, sizeof b1), v2 = rand_value(r, b2, sizeof b2), out, *vs;
                StoreValue vv[3] = { v, v2, v };
                const char *ms[3] = { nm, names[g_rand_int_range(r, 0, G_N_ELEMENTS(names))], k };
                int64_t a = g_rand_int_range(r, -8, 8), bb = g_rand_int_range(r, -8, 8), i64;
                size_t n, before_notify = n_notify;
                uint64_t before_mem = store_memory(s);
                const char **ks;
                char **strv, *str;
                double dd;
                int ret = 0;
                int op = g_rand_int_range(r, 0, 50);

                if (g_rand_int_range(r, 0, 10) == 0)
                        now += (uint64_t) g_rand_int_range(r, 0, 300);

                switch (op) {
                case 0: ret = store_set(s, k, &v, g_rand_boolean(r) ? (uint64_t) g_rand_int_range(r, 1, 500) : 0, g_rand_int_range(r, 0, 8), now); break;
                case 1: ret = store_get(s, k, now, &out); break;
                case 2: ret = store_del(s, ms + 2, 1, now, &n); break;
                case 3: ret = store_exists(s, keys, G_N_ELEMENTS(keys), now, &n); break;
                case 4: ret = store_keys(s, "*", now, &ks, &n); if (ret >= 0) { for (size_t i = 0; i < n; i++) g_assert_nonnull(ks[i]); free(ks); } break;
                case 5: ret = store_scan(s, g_rand_int(r), "x*", 3, now, (uint64_t *) &i64, &ks, &n); if (ret >= 0) free(ks); break;
                case 6: ret = store_rename(s, k, k2, now); break;
                case 7: ret = store_renamenx(s, k, k2, now); break;
                case 8: ret = store_expire(s, k, (uint64_t) g_rand_int_range(r, 0, 500), now); break;
                case 9: ret = store_persist(s, k, now); break;
                case 10: ret = store_ttl(s, k, now, &i64); if (ret >= 0) g_assert_cmpint(i64, >=, -2); break;
                case 11: ret = store_getdel(s, k, now, &out); if (ret >= 0) store_value_clear(&out); break;
                case 12: ret = store_mset(s, ms + 1, vv, 2, now); break;
                case 13: ret = store_incr(s, k, a * 1000, now, &i64); break;
                case 14: ret = store_incrfloat(s, k, (double) a / 4, now, &dd); break;
                case 15: ret = store_append(s, k, "xy", 2, now, &n); break;
                case 16: ret = store_getrange(s, k, a, bb, now, &str, &n); if (ret >= 0) free(str); break;
                case 17: ret = store_setrange(s, k, (uint64_t) g_rand_int_range(r, 0, 30), "zz", 2, now, &n); break;
                case 18: ret = store_hset(s, k, ms, vv, 2, now, &n); break;
                case 19: ret = store_hget(s, k, nm, now, &out); break;
                case 20: ret = store_hdel(s, k, ms, 2, now, &n); break;
                case 21: ret = store_hgetall(s, k, now, (StoreField **) &vs, &n); if (ret >= 0) free(vs); break;
                case 22: ret = store_hincr(s, k, nm, a, now, &i64); break;
                case 23: ret = store_hincrfloat(s, k, nm, 0.5, now, &dd); break;
                case 24: ret = store_push(s, k, g_rand_boolean(r), vv, (size_t) g_rand_int_range(r, 1, 4), now, &n); break;
                case 25: ret = store_pop(s, k, g_rand_boolean(r), (size_t) g_rand_int_range(r, 0, 4), now, &vs, &n); if (ret >= 0) store_values_free(vs, n); break;
                case 26: ret = store_lrange(s, k, a, bb, now, &vs, &n); if (ret >= 0) free(vs); break;
                case 27: ret = store_lindex(s, k, a, now, &out); break;
                case 28: ret = store_lset(s, k, a, &v, now); break;
                case 29: ret = store_ltrim(s, k, a, bb, now); break;
                case 30: ret = store_lrem(s, k, a, &v, now, &n); break;
                case 31: ret = store_linsert(s, k, g_rand_boolean(r), &v2, &v, now, &i64); break;
                case 32: ret = store_lmove(s, k, k2, g_rand_boolean(r), g_rand_boolean(r), now, &out); if (ret >= 0) store_value_clear(&out); break;
                case 33: ret = store_sadd(s, k, ms, 3, now, &n); break;
                case 34: ret = store_srem(s, k, ms, 2, now, &n); break;
                case 35: ret = store_spop(s, k, (size_t) g_rand_int_range(r, 0, 3), now, &strv, &n); if (ret >= 0) store_strv_free(strv, n); break;
                case 36: ret = store_srandmember(s, k, (size_t) g_rand_int_range(r, 0, 5), now, &ks, &n); if (ret >= 0) free(ks); break;
                case 37: ret = store_smembers(s, k, now, &ks, &n); if (ret >= 0) free(ks); break;
                case 38: {
                        StoreWaiter *w = NULL;
                        char *key = NULL;

                        void *token = GUINT_TO_POINTER(next_token++);

                        ret = store_block(s, ms + 1, 2, g_rand_boolean(r), token, now, &w, &key, &out);
                        if (ret == 1) {
                                free(key);
                                store_value_clear(&out);
                        } else if (ret == 0)
                                g_hash_table_insert(pending, token, w);
                        break;
                }
                case 39: {
                        /* cancel one pending waiter (timeout or disconnect) */
                        GHashTableIter hi;
                        gpointer tk, w;

                        g_hash_table_iter_init(&hi, pending);
                        if (g_hash_table_iter_next(&hi, &tk, &w)) {
                                store_waiter_cancel(w);
                                g_hash_table_iter_remove(&hi);
                        }
                        break;
                }
                case 40: store_expire_due(s, now, (size_t) g_rand_int_range(r, 0, 3)); break;
                case 41: if (g_rand_int_range(r, 0, 20) == 0) ret = store_flush(s); break;
                case 42: ret = store_randomkey(s, now, (const char **) &str); break;
                case 43: ret = store_msetnx(s, ms + 1, vv, 2, now); break;
                case 44: ret = store_hmget(s, k, ms, 3, now, &vs); if (ret >= 0) free(vs); break;
                case 46: ret = store_setget(s, k, &v, g_rand_boolean(r) ? (uint64_t) g_rand_int_range(r, 1, 500) : 0, g_rand_int_range(r, 0, 8), now, &out); if (ret >= 0) store_value_clear(&out); break;
                case 47: ret = store_move(s, k, s2, now); moved += ret > 0; break;
                case 48: ret = store_move(s2, k, s, now); moved += ret > 0; break;
                default: ret = store_type(s, k, now, (const char **) &str); break;
                }

                /* invariants */
                g_assert_cmpint(ret, >=, -ERANGE - 1000);
                g_assert_true(ret >= 0 || ret == -ENOKEY || ret == -EMEDIUMTYPE || ret == -EDOM ||
                              ret == -ERANGE || ret == -ENOBUFS || ret == -EINVAL);
                g_assert_cmpuint(acc.used, ==, store_memory(s) + store_memory(s2));
                if (ret < 0 && ret != -ENOKEY && op != 6 && op != 7 && op < 47 && n_notify != before_notify) {
                        /* a failed command only notifies lazy expiry, which frees memory */
                        g_assert_cmpuint(store_memory(s), <, before_mem);
                }
                g_assert_true(store_next_deadline(s) == UINT64_MAX || store_dbsize(s) > 0);
                g_assert_true(store_next_deadline(s2) == UINT64_MAX || store_dbsize(s2) > 0);
                g_assert_cmpuint(store_waiters(s), ==, g_hash_table_size(pending));
        }
        /* after every deadline nothing is left with a TTL */
        store_expire_due(s, UINT64_MAX - 1, 0);
        store_expire_due(s2, UINT64_MAX - 1, 0);
        g_assert_cmpuint(store_next_deadline(s), ==, UINT64_MAX);
        g_assert_cmpuint(store_next_deadline(s2), ==, UINT64_MAX);
        g_test_message("seed %u: %d commands, %zu notifications, %d waiters served, %" G_GUINT64_FORMAT
                       " keys left, %" G_GUINT64_FORMAT " bytes; moved %u, %" G_GUINT64_FORMAT " keys in the other namespace",
                       seed, iterations, n_notify, served, store_dbsize(s), store_memory(s), moved, store_dbsize(s2));
        store_flush(s);
        store_flush(s2);
        /* the charge of every key that moved went with it, exactly */
        g_assert_cmpuint(store_memory(s), ==, 0);
        g_assert_cmpuint(store_memory(s2), ==, 0);
        store_free(s);
        store_free(s2);
        g_assert_cmpuint(acc.used, ==, 0);
        g_hash_table_unref(pending);
        g_rand_free(r);
}

static void test_fuzz(void) {
        int iterations = g_getenv("STORE_FUZZ_ITERATIONS") ? atoi(g_getenv("STORE_FUZZ_ITERATIONS")) : 200000;

        for (guint32 seed = 1; seed <= 5; seed++)
                fuzz(seed, iterations);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/store/fuzz/random-commands", test_fuzz);
        return g_test_run();
}
