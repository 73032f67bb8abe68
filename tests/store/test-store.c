/* SPDX-License-Identifier: MIT */

/* Unit tests of the store logic: every command, TTLs, notifications, limits, blocking. */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "store-test.h"

#define T0 UINT64_C(1000000)

static const char *get_str(Store *s, const char *key, uint64_t now) {
        StoreValue v;

        if (store_get(s, key, now, &v) < 0)
                return NULL;
        g_assert_cmpint(v.type, ==, 's');
        return v.str.ptr;
}

/* ---- keys ---- */

static void test_keys_basic(Fixture *f, gconstpointer d) {
        StoreValue v = SV_S("v");
        const char *ks[] = { "a", "b", "a", "zz" };
        const char *type;
        size_t n;

        g_assert_cmpint(store_set(f->s, "a", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_set(f->s, "b", &v, 0, 0, T0), ==, 1);
        assert_events(f, "a set, b set");
        g_assert_cmpint(store_exists(f->s, ks, 4, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3); /* duplicates count */
        g_assert_cmpuint(store_dbsize(f->s), ==, 2);
        assert_events(f, "");
        g_assert_cmpint(store_type(f->s, "a", T0, &type), ==, 0);
        g_assert_cmpstr(type, ==, "string");
        g_assert_cmpint(store_type(f->s, "nope", T0, &type), ==, 0);
        g_assert_cmpstr(type, ==, "none");
        g_assert_cmpint(store_del(f->s, ks, 4, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        assert_events(f, "a del, b del");
        g_assert_cmpuint(store_dbsize(f->s), ==, 0);

        /* invalid keys */
        g_assert_cmpint(store_get(f->s, "", T0, &v), ==, -EINVAL);
        g_assert_cmpint(store_get(f->s, "\xff", T0, &v), ==, -EINVAL);
        g_assert_cmpint(store_set(f->s, "", &v, 0, 0, T0), ==, -EINVAL);
        {
                const char *bad[] = { "ok", "" };

                g_assert_cmpint(store_set(f->s, "ok", &v, 0, 0, T0), ==, 1);
                g_assert_cmpint(store_del(f->s, bad, 2, T0, &n), ==, -EINVAL);
                g_assert_cmpuint(store_dbsize(f->s), ==, 1); /* unchanged */
        }
}

static void test_types(Fixture *f, gconstpointer d) {
        struct {
                StoreValue v;
                const char *name;
        } t[] = {
                { SV_S("x"), "string" }, { SV_T('o', "/a/b"), "string" }, { SV_T('g', "a{sv}"), "string" },
                { SV_I('y', 200), "int" }, { SV_I('n', -5), "int" }, { SV_U('q', 5), "int" },
                { SV_I('i', -7), "int" }, { SV_U('u', 7), "int" }, { SV_I('x', -9), "int" },
                { SV_U('t', 9), "int" }, { SV_D(1.5), "double" }, { SV_B(1), "bool" },
                { SV_BLOB("a{sv}", "\1\2\3", 3), "value" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
                const char *type;
                StoreValue out;

                g_assert_cmpint(store_set(f->s, "k", &t[i].v, 0, 0, T0), ==, 1);
                g_assert_cmpint(store_type(f->s, "k", T0, &type), ==, 0);
                g_assert_cmpstr(type, ==, t[i].name);
                g_assert_cmpint(store_get(f->s, "k", T0, &out), ==, 0);
                g_assert_true(store_value_equal(&out, &t[i].v));
                g_assert_cmpint(out.type, ==, t[i].v.type);
        }
        /* values out of their D-Bus type's range, bad bools, unknown types */
        StoreValue bad[] = { SV_I('y', 256), SV_I('y', -1), SV_I('n', 40000), SV_U('q', 70000), SV_B(2),
                             SV_I('i', INT64_C(1) << 40), { .type = 'h' }, { .type = 0 }, SV_S("a\xc3") };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                g_assert_cmpint(store_set(f->s, "k", &bad[i], 0, 0, T0), ==, -EINVAL);
        {
                const char *type;
                const char *m[] = { "x" };
                StoreValue lv = SV_I('x', 1);

                g_assert_cmpint(store_hset(f->s, "h", m, &lv, 1, T0, NULL), ==, 0);
                g_assert_cmpint(store_push(f->s, "l", true, &lv, 1, T0, NULL), ==, 0);
                g_assert_cmpint(store_sadd(f->s, "s", m, 1, T0, NULL), ==, 0);
                g_assert_cmpint(store_type(f->s, "h", T0, &type), ==, 0);
                g_assert_cmpstr(type, ==, "hash");
                g_assert_cmpint(store_type(f->s, "l", T0, &type), ==, 0);
                g_assert_cmpstr(type, ==, "list");
                g_assert_cmpint(store_type(f->s, "s", T0, &type), ==, 0);
                g_assert_cmpstr(type, ==, "set");
        }
}

static void test_glob(void) {
        struct {
                const char *p, *s;
                bool m;
        } t[] = {
                { "*", "abc", true }, { "a*", "abc", true }, { "a*", "bc", false }, { "*c", "abc", true },
                { "a?c", "abc", true }, { "a?c", "ac", false }, { "[abc]x", "bx", true },
                { "[abc]x", "dx", false }, { "[^abc]x", "dx", true }, { "[^abc]x", "ax", false },
                { "[a-c]", "b", true }, { "[a-c]", "d", false }, { "[c-a]", "b", true },
                { "\\*", "*", true }, { "\\*", "a", false }, { "a\\?", "a?", true },
                { "h*llo", "heeeello", true }, { "h[ae]llo", "hallo", true }, { "*:*", "key:1", true },
                { "key:??", "key:1", false }, { "[\\]]", "]", true }, { "**a", "ba", true },
                { "[abc", "a", true }, { "a*b*c", "aXbYc", true }, { "a*b*c", "aXbY", false },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
                Store *s;
                StoreValue v = SV_S("v");
                const char **keys;
                size_t n;

                g_assert_cmpint(store_new(&s, NULL, NULL, NULL, NULL, NULL), ==, 0);
                g_assert_cmpint(store_set(s, t[i].s, &v, 0, 0, T0), ==, 1);
                g_assert_cmpint(store_keys(s, t[i].p, T0, &keys, &n), ==, 0);
                if (n != (t[i].m ? 1u : 0u))
                        g_error("glob '%s' on '%s': expected %d", t[i].p, t[i].s, t[i].m);
                free(keys);
                store_free(s);
        }
}

static void test_keys_scan(Fixture *f, gconstpointer d) {
        GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        StoreValue v = SV_S("v");
        uint64_t cursor = 0;
        const char **keys;
        size_t n;
        int rounds = 0;

        for (int i = 0; i < 1000; i++) {
                char k[32];

                snprintf(k, sizeof k, "key:%d", i);
                g_assert_cmpint(store_set(f->s, k, &v, 0, 0, T0), ==, 1);
        }
        g_assert_cmpint(store_keys(f->s, "key:1??", T0, &keys, &n), ==, 0);
        g_assert_cmpuint(n, ==, 100);
        free(keys);
        g_assert_cmpint(store_keys(f->s, "*", T0, &keys, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1000);
        free(keys);

        /* Scan while the table grows (and later shrinks): keys 0..499 stay the whole time */
        do {
                g_assert_cmpint(store_scan(f->s, cursor, "key:*", 7, T0, &cursor, &keys, &n), ==, 0);
                for (size_t i = 0; i < n; i++)
                        g_hash_table_add(seen, g_strdup(keys[i]));
                free(keys);
                rounds++;
                if (rounds == 20)
                        for (int i = 1000; i < 5000; i++) { /* grow: several rehashes */
                                char k[32];

                                snprintf(k, sizeof k, "other:%d", i);
                                g_assert_cmpint(store_set(f->s, k, &v, 0, 0, T0), ==, 1);
                        }
                if (rounds == 60)
                        for (int i = 500; i < 1000; i++) { /* delete some: more change */
                                char k[32];
                                const char *kp = k;

                                snprintf(k, sizeof k, "key:%d", i);
                                g_assert_cmpint(store_del(f->s, &kp, 1, T0, NULL), ==, 0);
                        }
                if (rounds == 80) {
                        /* shrink: drop the "other" keys */
                        const char **all;
                        size_t m;

                        g_assert_cmpint(store_keys(f->s, "other:*", T0, &all, &m), ==, 0);
                        char **copy = g_new0(char *, m + 1);
                        for (size_t i = 0; i < m; i++)
                                copy[i] = g_strdup(all[i]);
                        free(all);
                        g_assert_cmpint(store_del(f->s, (const char *const *) copy, m, T0, NULL), ==, 0);
                        g_strfreev(copy);
                }
        } while (cursor != 0);
        for (int i = 0; i < 500; i++) {
                g_autofree char *k = g_strdup_printf("key:%d", i);

                g_assert_true(g_hash_table_contains(seen, k));
        }
        g_test_message("scan: %d calls, %u distinct keys seen", rounds, g_hash_table_size(seen));
        g_hash_table_unref(seen);

        g_assert_cmpint(store_scan(f->s, 0, NULL, 0, T0, &cursor, &keys, &n), ==, 0);
        free(keys);
        /* empty store */
        g_assert_cmpint(store_flush(f->s), ==, 0);
        g_assert_cmpint(store_scan(f->s, 0, "*", 10, T0, &cursor, &keys, &n), ==, 0);
        g_assert_cmpuint(cursor, ==, 0);
        g_assert_cmpuint(n, ==, 0);
        free(keys);
}

static void test_rename(Fixture *f, gconstpointer d) {
        StoreValue a = SV_S("A"), b = SV_S("B");
        int64_t ttl;

        g_assert_cmpint(store_rename(f->s, "x", "y", T0), ==, -ENOKEY);
        g_assert_cmpint(store_set(f->s, "x", &a, 5000, 0, T0), ==, 1);
        g_assert_cmpint(store_set(f->s, "y", &b, 0, 0, T0), ==, 1);
        fx_clear(f);
        g_assert_cmpint(store_rename(f->s, "x", "y", T0 + 1000), ==, 0);
        assert_events(f, "x rename_from, y rename_to");
        g_assert_null(get_str(f->s, "x", T0 + 1000));
        g_assert_cmpstr(get_str(f->s, "y", T0 + 1000), ==, "A");
        g_assert_cmpint(store_ttl(f->s, "y", T0 + 1000, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, 4000); /* the TTL moved */
        g_assert_cmpuint(store_dbsize(f->s), ==, 1);

        /* renamenx: old key removed (EventVat kept it) */
        g_assert_cmpint(store_set(f->s, "z", &b, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_renamenx(f->s, "y", "z", T0), ==, 0);
        g_assert_cmpint(store_renamenx(f->s, "y", "w", T0), ==, 1);
        g_assert_null(get_str(f->s, "y", T0));
        g_assert_cmpstr(get_str(f->s, "w", T0), ==, "A");
        g_assert_cmpint(store_renamenx(f->s, "nope", "q", T0), ==, -ENOKEY);
        /* same key */
        fx_clear(f);
        g_assert_cmpint(store_rename(f->s, "w", "w", T0), ==, 0);
        assert_events(f, "");
        g_assert_cmpint(store_renamenx(f->s, "w", "w", T0), ==, 0);
        /* after expiry the source is gone */
        g_assert_cmpint(store_rename(f->s, "w", "v", T0 + 5000), ==, -ENOKEY);
        assert_events(f, "w expired");
}

static void test_expire(Fixture *f, gconstpointer d) {
        StoreValue v = SV_S("v");
        int64_t ttl;

        g_assert_cmpuint(store_next_deadline(f->s), ==, UINT64_MAX);
        g_assert_cmpint(store_expire(f->s, "k", 100, T0), ==, 0);
        g_assert_cmpint(store_ttl(f->s, "k", T0, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, -2);
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_ttl(f->s, "k", T0, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, -1);
        fx_clear(f);
        g_assert_cmpint(store_expire(f->s, "k", 100, T0), ==, 1);
        assert_events(f, "k expire");
        g_assert_cmpuint(store_next_deadline(f->s), ==, T0 + 100);
        g_assert_cmpint(store_ttl(f->s, "k", T0 + 40, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, 60);
        g_assert_cmpint(store_persist(f->s, "k", T0), ==, 1);
        assert_events(f, "k persist");
        g_assert_cmpint(store_persist(f->s, "k", T0), ==, 0);
        assert_events(f, "");
        g_assert_cmpuint(store_next_deadline(f->s), ==, UINT64_MAX);

        /* never readable at or after the deadline, even before the timer fires */
        g_assert_cmpint(store_expire(f->s, "k", 100, T0), ==, 1);
        g_assert_nonnull(get_str(f->s, "k", T0 + 99));
        fx_clear(f);
        g_assert_null(get_str(f->s, "k", T0 + 100));
        assert_events(f, "k expired");
        g_assert_cmpuint(store_dbsize(f->s), ==, 0);

        /* expire_due in deadline order, bounded */
        for (int i = 0; i < 10; i++) {
                char k[8];

                snprintf(k, sizeof k, "k%d", i);
                g_assert_cmpint(store_set(f->s, k, &v, 1000 - (uint64_t) i * 10, 0, T0), ==, 1);
        }
        fx_clear(f);
        g_assert_cmpuint(store_next_deadline(f->s), ==, T0 + 910);
        g_assert_cmpuint(store_expire_due(f->s, T0 + 909, 0), ==, 0);
        g_assert_cmpuint(store_expire_due(f->s, T0 + 935, 0), ==, 3);
        assert_events(f, "k9 expired, k8 expired, k7 expired");
        g_assert_cmpuint(store_expire_due(f->s, T0 + 2000, 2), ==, 2);
        g_assert_cmpuint(store_next_deadline(f->s), ==, T0 + 960);
        g_assert_cmpuint(store_expire_due(f->s, T0 + 2000, 0), ==, 5);
        g_assert_cmpuint(store_dbsize(f->s), ==, 0);

        /* Expire 0 deletes */
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        fx_clear(f);
        g_assert_cmpint(store_expire(f->s, "k", 0, T0), ==, 1);
        assert_events(f, "k del");
        /* overflow */
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_expire(f->s, "k", UINT64_MAX - 5, T0), ==, -EINVAL);
        g_assert_cmpint(store_set(f->s, "k", &v, UINT64_MAX - 5, 0, T0), ==, -EINVAL);
}

static void test_ttl_by_command(Fixture *f, gconstpointer d) {
        StoreValue v = SV_S("1");
        int64_t ttl;
        const char *fl[] = { "f" };

#define HAS_TTL(k) (store_ttl(f->s, (k), T0, &ttl) == 0 && ttl > 0)
        /* Set clears, Set keep_ttl keeps */
        g_assert_cmpint(store_set(f->s, "k", &v, 1000, 0, T0), ==, 1);
        g_assert_true(HAS_TTL("k"));
        g_assert_cmpint(store_set(f->s, "k", &v, 0, STORE_SET_KEEP_TTL, T0), ==, 1);
        g_assert_true(HAS_TTL("k"));
        g_assert_cmpint(store_set(f->s, "k", &v, 1000, STORE_SET_KEEP_TTL, T0), ==, -EINVAL);
        /* Incr, Append, SetRange, IncrFloat keep it */
        g_assert_cmpint(store_incr(f->s, "k", 1, T0, NULL), ==, 0);
        g_assert_true(HAS_TTL("k"));
        g_assert_cmpint(store_incrfloat(f->s, "k", 1.5, T0, NULL), ==, 0);
        g_assert_true(HAS_TTL("k"));
        g_assert_cmpint(store_append(f->s, "k", "x", 1, T0, NULL), ==, 0);
        g_assert_true(HAS_TTL("k"));
        g_assert_cmpint(store_setrange(f->s, "k", 0, "y", 1, T0, NULL), ==, 0);
        g_assert_true(HAS_TTL("k"));
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_false(HAS_TTL("k"));
        /* MSet clears */
        g_assert_cmpint(store_expire(f->s, "k", 1000, T0), ==, 1);
        {
                const char *ks[] = { "k" };

                g_assert_cmpint(store_mset(f->s, ks, &v, 1, T0), ==, 0);
                g_assert_false(HAS_TTL("k"));
        }
        /* collections keep it through writes */
        g_assert_cmpint(store_hset(f->s, "h", fl, &v, 1, T0, NULL), ==, 0);
        g_assert_cmpint(store_expire(f->s, "h", 1000, T0), ==, 1);
        g_assert_cmpint(store_hset(f->s, "h", fl, &v, 1, T0, NULL), ==, 0);
        g_assert_cmpint(store_hincr(f->s, "h", "f", 1, T0, NULL), ==, 0);
        g_assert_true(HAS_TTL("h"));
        g_assert_cmpint(store_push(f->s, "l", false, &v, 1, T0, NULL), ==, 0);
        g_assert_cmpint(store_expire(f->s, "l", 1000, T0), ==, 1);
        g_assert_cmpint(store_push(f->s, "l", false, &v, 1, T0, NULL), ==, 0);
        g_assert_true(HAS_TTL("l"));
        /* an expired collection is gone before a write recreates it */
        g_assert_cmpint(store_push(f->s, "l", false, &v, 1, T0 + 1000, NULL), ==, 0);
        {
                size_t n;

                g_assert_cmpint(store_llen(f->s, "l", T0 + 1000, &n), ==, 0);
                g_assert_cmpuint(n, ==, 1);
        }
        g_assert_false(HAS_TTL("l"));
#undef HAS_TTL
}

/* ---- strings ---- */

static void test_set_get(Fixture *f, gconstpointer d) {
        StoreValue a = SV_S("a"), b = SV_S("b"), out;
        const char *long_text = "a string longer than the inline buffer";
        StoreValue l = SV_S(long_text);

        g_assert_cmpint(store_get(f->s, "k", T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_set(f->s, "k", &a, 0, STORE_SET_XX, T0), ==, 0);
        g_assert_cmpint(store_set(f->s, "k", &a, 0, STORE_SET_NX, T0), ==, 1);
        g_assert_cmpint(store_set(f->s, "k", &b, 0, STORE_SET_NX, T0), ==, 0);
        g_assert_cmpint(store_set(f->s, "k", &b, 0, STORE_SET_NX | STORE_SET_XX, T0), ==, -EINVAL);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "a");
        g_assert_cmpint(store_set(f->s, "k", &b, 0, STORE_SET_XX, T0), ==, 1);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "b");
        assert_events(f, "k set, k set");
        g_assert_cmpint(store_set(f->s, "k", &l, 100, 0, T0), ==, 1);
        assert_events(f, "k set, k expire");
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, long_text);
        /* empty string and embedded values */
        StoreValue e = SV_S("");
        g_assert_cmpint(store_set(f->s, "e", &e, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_get(f->s, "e", T0, &out), ==, 0);
        g_assert_cmpuint(out.str.len, ==, 0);
        g_assert_cmpstr(out.str.ptr, ==, "");
        /* Set replaces any type */
        const char *fl[] = { "f" };
        g_assert_cmpint(store_hset(f->s, "h", fl, &a, 1, T0, NULL), ==, 0);
        g_assert_cmpint(store_get(f->s, "h", T0, &out), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_set(f->s, "h", &a, 0, 0, T0), ==, 1);
        g_assert_cmpstr(get_str(f->s, "h", T0), ==, "a");
        /* blobs compare and come back by bytes */
        StoreValue bl = SV_BLOB("ay", "\0\1\2", 3);
        g_assert_cmpint(store_set(f->s, "b", &bl, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_get(f->s, "b", T0, &out), ==, 0);
        g_assert_cmpint(out.type, ==, 'v');
        g_assert_cmpstr(out.blob.sig, ==, "ay");
        g_assert_cmpuint(out.blob.len, ==, 3);
        g_assert_cmpmem(out.blob.data, 3, "\0\1\2", 3);
}

/* SetGet: Set that hands back the previous value; nx/xx combine as in Redis 7. */
static void test_setget(Fixture *f, gconstpointer d) {
        const char *long_text = "a string longer than the inline buffer";
        StoreValue a = SV_S("a"), b = SV_S("b"), l = SV_S(long_text), x = SV_I('x', 5), old, out;
        const char *fl[] = { "f" };
        int64_t ttl;

        /* absent: set, no old value */
        g_assert_cmpint(store_setget(f->s, "k", &a, 0, 0, T0, &old), ==, 1);
        g_assert_cmpint(old.type, ==, '\0');
        assert_events(f, "k set");
        /* present: the old value is an owned copy that outlives the overwrite */
        g_assert_cmpint(store_set(f->s, "k", &l, 0, 0, T0), ==, 1);
        fx_clear(f);
        g_assert_cmpint(store_setget(f->s, "k", &b, 0, 0, T0, &old), ==, 1);
        g_assert_cmpint(old.type, ==, 's');
        g_assert_cmpstr(old.str.ptr, ==, long_text);
        store_value_clear(&old);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "b");
        assert_events(f, "k set");

        /* nx: refused on a present key, which is still handed back (SET k v NX GET) */
        g_assert_cmpint(store_setget(f->s, "k", &a, 0, STORE_SET_NX, T0, &old), ==, 0);
        g_assert_cmpstr(old.str.ptr, ==, "b");
        store_value_clear(&old);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "b");
        g_assert_cmpint(store_setget(f->s, "n", &a, 0, STORE_SET_NX, T0, &old), ==, 1);
        g_assert_cmpint(old.type, ==, '\0');
        assert_events(f, "n set");
        /* xx: refused on an absent key */
        g_assert_cmpint(store_setget(f->s, "absent", &a, 0, STORE_SET_XX, T0, &old), ==, 0);
        g_assert_cmpint(old.type, ==, '\0');
        g_assert_cmpint(store_get(f->s, "absent", T0, &out), ==, -ENOKEY);
        assert_events(f, "");
        g_assert_cmpint(store_setget(f->s, "k", &a, 0, STORE_SET_NX | STORE_SET_XX, T0, &old), ==, -EINVAL);

        /* ttl_ms and keep_ttl as Set */
        g_assert_cmpint(store_setget(f->s, "k", &a, 5000, STORE_SET_XX, T0, &old), ==, 1);
        store_value_clear(&old);
        assert_events(f, "k set, k expire");
        g_assert_cmpint(store_setget(f->s, "k", &b, 0, STORE_SET_KEEP_TTL, T0 + 1000, &old), ==, 1);
        g_assert_cmpstr(old.str.ptr, ==, "a");
        store_value_clear(&old);
        g_assert_cmpint(store_ttl(f->s, "k", T0 + 1000, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, 4000);
        g_assert_cmpint(store_setget(f->s, "k", &a, 0, 0, T0 + 1000, NULL), ==, 1);
        g_assert_cmpint(store_ttl(f->s, "k", T0 + 1000, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, -1);
        /* an expired key is absent */
        g_assert_cmpint(store_set(f->s, "t", &a, 10, 0, T0), ==, 1);
        fx_clear(f);
        g_assert_cmpint(store_setget(f->s, "t", &b, 0, 0, T0 + 10, &old), ==, 1);
        g_assert_cmpint(old.type, ==, '\0');
        assert_events(f, "t expired, t set");

        /* typed values come back with their type */
        g_assert_cmpint(store_set(f->s, "i", &x, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_setget(f->s, "i", &a, 0, 0, T0, &old), ==, 1);
        g_assert_cmpint(old.type, ==, 'x');
        g_assert_cmpint(old.i, ==, 5);

        /* a hash, list or set: WrongType and nothing written (Redis) */
        g_assert_cmpint(store_hset(f->s, "h", fl, &a, 1, T0, NULL), ==, 0);
        fx_clear(f);
        g_assert_cmpint(store_setget(f->s, "h", &b, 0, 0, T0, &old), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_setget(f->s, "h", &b, 0, STORE_SET_NX, T0, &old), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_hget(f->s, "h", "f", T0, &out), ==, 0);
        g_assert_cmpstr(out.str.ptr, ==, "a");
        assert_events(f, "");
}

static void test_getdel_mget_mset(Fixture *f, gconstpointer d) {
        StoreValue a = SV_S("a"), x = SV_I('x', 0), out, *vals;
        const char *ks[] = { "a", "nope", "x", "h" };
        const char *fl[] = { "f" };
        StoreValue mv[] = { SV_S("1"), SV_S("2"), SV_S("3") };
        const char *mk[] = { "m1", "m2", "m1" };

        g_assert_cmpint(store_getdel(f->s, "a", T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_set(f->s, "a", &a, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_set(f->s, "x", &x, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_hset(f->s, "h", fl, &a, 1, T0, NULL), ==, 0);
        g_assert_cmpint(store_mget(f->s, ks, 4, T0, &vals), ==, 0);
        g_assert_cmpint(vals[0].type, ==, 's');
        g_assert_cmpint(vals[1].type, ==, 0);
        g_assert_cmpint(vals[2].type, ==, 'x');
        g_assert_cmpint(vals[2].i, ==, 0); /* falsy values are values */
        g_assert_cmpint(vals[3].type, ==, 0);
        free(vals);
        fx_clear(f);
        g_assert_cmpint(store_getdel(f->s, "x", T0, &out), ==, 0);
        g_assert_cmpint(out.type, ==, 'x');
        store_value_clear(&out);
        assert_events(f, "x del");
        g_assert_cmpint(store_getdel(f->s, "h", T0, &out), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_getdel(f->s, "a", T0, &out), ==, 0);
        g_assert_cmpstr(out.str.ptr, ==, "a");
        store_value_clear(&out);

        g_assert_cmpint(store_mset(f->s, mk, mv, 3, T0), ==, 0);
        assert_events(f, "a del, m1 set, m2 set, m1 set");
        g_assert_cmpstr(get_str(f->s, "m1", T0), ==, "3");
        g_assert_cmpint(store_msetnx(f->s, mk, mv, 2, T0), ==, 0);
        {
                const char *nk[] = { "n1", "n2" };

                g_assert_cmpint(store_msetnx(f->s, nk, mv, 2, T0), ==, 1);
                g_assert_cmpstr(get_str(f->s, "n2", T0), ==, "2");
        }
        /* all or nothing: one bad value, nothing set */
        {
                const char *bk[] = { "b1", "b2" };
                StoreValue bv[] = { SV_S("ok"), SV_I('y', 999) };

                g_assert_cmpint(store_mset(f->s, bk, bv, 2, T0), ==, -EINVAL);
                g_assert_null(get_str(f->s, "b1", T0));
        }
}

static void test_incr(Fixture *f, gconstpointer d) {
        struct {
                StoreValue v;
                int64_t by;
                int result; /* 0 ok, else errno */
                int64_t expect;
        } t[] = {
                { SV_I('y', 250), 5, 0, 255 },     { SV_I('y', 250), 6, -ERANGE, 0 },
                { SV_I('y', 5), -6, -ERANGE, 0 },  { SV_I('n', 32767), 1, -ERANGE, 0 },
                { SV_I('n', -32768), -1, -ERANGE, 0 }, { SV_I('n', 5), -10, 0, -5 },
                { SV_U('q', 65535), 1, -ERANGE, 0 }, { SV_I('i', INT32_MAX), 1, -ERANGE, 0 },
                { SV_I('i', INT32_MIN), -1, -ERANGE, 0 }, { SV_U('u', UINT32_MAX - 1), 1, 0, UINT32_MAX },
                { SV_U('u', 0), -1, -ERANGE, 0 },  { SV_I('x', INT64_MAX), 1, -ERANGE, 0 },
                { SV_I('x', INT64_MIN), -1, -ERANGE, 0 }, { SV_I('x', -3), 3, 0, 0 },
                { SV_U('t', 5), INT64_MIN, -ERANGE, 0 }, { SV_U('t', UINT64_MAX - 1), 0, -ERANGE, 0 },
                { SV_U('t', 10), 7, 0, 17 },
                { SV_S("10"), 5, 0, 15 },          { SV_S("-10"), 5, 0, -5 },
                { SV_S("9223372036854775807"), 1, -ERANGE, 0 }, { SV_S(" 1"), 1, -EDOM, 0 },
                { SV_S("+1"), 1, -EDOM, 0 },       { SV_S("01"), 1, -EDOM, 0 }, { SV_S("1.5"), 1, -EDOM, 0 },
                { SV_S("abc"), 1, -EDOM, 0 },      { SV_S(""), 1, -EDOM, 0 }, { SV_S("-0"), 1, -EDOM, 0 },
                { SV_D(1.0), 1, -EDOM, 0 },        { SV_B(1), 1, -EDOM, 0 },
                { SV_BLOB("ai", "\0\0\0\0", 4), 1, -EMEDIUMTYPE, 0 },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
                StoreValue out;
                int64_t r = 12345;

                g_assert_cmpint(store_set(f->s, "k", &t[i].v, 0, 0, T0), ==, 1);
                fx_clear(f);
                if (store_incr(f->s, "k", t[i].by, T0, &r) != t[i].result)
                        g_error("incr case %zu: type %c", i, t[i].v.type);
                g_assert_cmpint(store_get(f->s, "k", T0, &out), ==, 0);
                g_assert_cmpint(out.type, ==, t[i].v.type); /* type kept */
                if (t[i].result == 0) {
                        g_assert_cmpint(r, ==, t[i].expect);
                        assert_events(f, "k incrby");
                        if (out.type == 's') {
                                g_autofree char *e = g_strdup_printf("%" G_GINT64_FORMAT, t[i].expect);
                                g_assert_cmpstr(out.str.ptr, ==, e);
                        }
                } else {
                        g_assert_cmpint(r, ==, 12345); /* untouched */
                        g_assert_true(store_value_equal(&out, &t[i].v)); /* unchanged */
                        assert_events(f, "");
                }
        }
        /* absent key starts at 0 as 'x' */
        {
                StoreValue out;
                int64_t r;
                const char *fl[] = { "f" };

                g_assert_cmpint(store_incr(f->s, "new", -7, T0, &r), ==, 0);
                g_assert_cmpint(r, ==, -7);
                g_assert_cmpint(store_get(f->s, "new", T0, &out), ==, 0);
                g_assert_cmpint(out.type, ==, 'x');
                g_assert_cmpint(store_hset(f->s, "h", fl, &out, 1, T0, NULL), ==, 0);
                g_assert_cmpint(store_incr(f->s, "h", 1, T0, &r), ==, -EMEDIUMTYPE);
        }
}

/* valgrind emulates x87 long double with 64-bit precision; Redis-exact formatting needs 80 */
static bool long_double_exact(void) {
        volatile long double a = 10.5L, b = 0.1L;
        char buf[64];

        snprintf(buf, sizeof buf, "%.17Lf", a + b);
        return g_str_equal(buf, "10.60000000000000000");
}

static void test_incrfloat(Fixture *f, gconstpointer d) {
        bool exact = long_double_exact();
        StoreValue out, v;
        double r;

        if (!exact)
                g_test_message("long double is not 80-bit here (valgrind?): skipping exact formatting checks");

        v = SV_S("10.50");
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 0.1, T0, &r), ==, 0);
        g_assert_cmpfloat_with_epsilon(r, 10.6, 1e-12);
        if (exact)
                g_assert_cmpstr(get_str(f->s, "k", T0), ==, "10.6"); /* like Redis */
        v = SV_S("5.0e3");
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 2.0e2, T0, &r), ==, 0);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "5200");
        v = SV_S("3");
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", -3, T0, &r), ==, 0);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "0");
        v = SV_S("abc");
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 1, T0, &r), ==, -EDOM);
        v = SV_S(" 1");
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 1, T0, &r), ==, -EDOM);
        v = SV_D(1.5);
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 1.25, T0, &r), ==, 0);
        g_assert_cmpfloat(r, ==, 2.75);
        g_assert_cmpint(store_get(f->s, "k", T0, &out), ==, 0);
        g_assert_cmpint(out.type, ==, 'd');
        g_assert_cmpint(store_incrfloat(f->s, "k", INFINITY, T0, &r), ==, -ERANGE);
        v = SV_D(1.7e308);
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 1.7e308, T0, &r), ==, -ERANGE);
        g_assert_cmpint(store_incrfloat(f->s, "k", NAN, T0, &r), ==, -ERANGE);
        /* integers: keep their type when integral and in range */
        v = SV_I('y', 250);
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 5.0, T0, &r), ==, 0);
        g_assert_cmpfloat(r, ==, 255.0);
        g_assert_cmpint(store_get(f->s, "k", T0, &out), ==, 0);
        g_assert_cmpint(out.type, ==, 'y');
        g_assert_cmpint(out.i, ==, 255);
        g_assert_cmpint(store_incrfloat(f->s, "k", 1.0, T0, &r), ==, -ERANGE);
        g_assert_cmpint(store_incrfloat(f->s, "k", -0.5, T0, &r), ==, -EDOM);
        v = SV_B(0);
        g_assert_cmpint(store_set(f->s, "k", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_incrfloat(f->s, "k", 1, T0, &r), ==, -EDOM);
        fx_clear(f);
        g_assert_cmpint(store_incrfloat(f->s, "new", 2.5, T0, &r), ==, 0);
        assert_events(f, "new incrbyfloat");
        g_assert_cmpint(store_get(f->s, "new", T0, &out), ==, 0);
        g_assert_cmpint(out.type, ==, 'd');
        g_assert_cmpfloat(out.d, ==, 2.5);
}

static void test_append_ranges(Fixture *f, gconstpointer d) {
        size_t n;
        char *r;
        StoreValue x = SV_I('x', 5), o = SV_T('o', "/a");

        g_assert_cmpint(store_strlen(f->s, "k", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpint(store_append(f->s, "k", "Hello", 5, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 5);
        g_assert_cmpint(store_append(f->s, "k", " World", 6, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 11);
        assert_events(f, "k append, k append");
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "Hello World");
        g_assert_cmpint(store_strlen(f->s, "k", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 11);

        struct {
                int64_t s, e;
                const char *r;
        } gr[] = { { 0, 4, "Hello" }, { -5, -1, "World" }, { 0, -1, "Hello World" }, { 6, 100, "World" },
                   { 5, 3, "" },      { -100, 1, "He" },   { 20, 30, "" },            { -1, -1, "d" } };
        for (size_t i = 0; i < G_N_ELEMENTS(gr); i++) {
                g_assert_cmpint(store_getrange(f->s, "k", gr[i].s, gr[i].e, T0, &r, &n), ==, 0);
                g_assert_cmpstr(r, ==, gr[i].r);
                free(r);
        }
        g_assert_cmpint(store_getrange(f->s, "nope", 0, -1, T0, &r, &n), ==, 0);
        g_assert_cmpstr(r, ==, "");
        free(r);

        /* SetRange stores (EventVat did not) */
        g_assert_cmpint(store_setrange(f->s, "k", 6, "Redis", 5, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 11);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "Hello Redis");
        assert_events(f, "k setrange");
        g_assert_cmpint(store_setrange(f->s, "k", 13, "!", 1, T0, &n), ==, 0);
        g_assert_cmpstr(get_str(f->s, "k", T0), ==, "Hello Redis  !"); /* space padding */
        g_assert_cmpint(store_setrange(f->s, "new", 0, "", 0, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        g_assert_null(get_str(f->s, "new", T0));
        g_assert_cmpint(store_setrange(f->s, "new", 2, "ab", 2, T0, &n), ==, 0);
        g_assert_cmpstr(get_str(f->s, "new", T0), ==, "  ab");

        /* UTF-8 */
        g_assert_cmpint(store_append(f->s, "u", "\xc3\xa9t\xc3\xa9", 5, T0, &n), ==, 0);
        g_assert_cmpint(store_getrange(f->s, "u", 0, 0, T0, &r, &n), ==, -EINVAL);
        g_assert_cmpint(store_getrange(f->s, "u", 0, 1, T0, &r, &n), ==, 0);
        g_assert_cmpstr(r, ==, "\xc3\xa9");
        free(r);
        g_assert_cmpint(store_setrange(f->s, "u", 1, "x", 1, T0, &n), ==, -EINVAL);
        g_assert_cmpint(store_append(f->s, "u", "\xc3", 1, T0, &n), ==, -EINVAL);

        /* wrong types */
        g_assert_cmpint(store_set(f->s, "x", &x, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_append(f->s, "x", "1", 1, T0, &n), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_strlen(f->s, "x", T0, &n), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_set(f->s, "o", &o, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_strlen(f->s, "o", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmpint(store_append(f->s, "o", "b", 1, T0, &n), ==, -EMEDIUMTYPE);
}

/* ---- hashes ---- */

static void test_hash(Fixture *f, gconstpointer d) {
        const char *fl[] = { "a", "b", "a" };
        StoreValue vals[] = { SV_S("1"), SV_I('x', 0), SV_S("3") }, out, *vs;
        StoreField *all;
        const char **names;
        size_t n;
        int64_t r;
        double dr;

        g_assert_cmpint(store_hget(f->s, "h", "a", T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_hlen(f->s, "h", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpint(store_hset(f->s, "h", fl, vals, 3, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        assert_events(f, "h hset");
        g_assert_cmpint(store_hset(f->s, "h", fl, vals, 2, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0); /* only updates */
        g_assert_cmpint(store_hget(f->s, "h", "a", T0, &out), ==, 0);
        g_assert_cmpstr(out.str.ptr, ==, "1");
        g_assert_cmpint(store_hget(f->s, "h", "zz", T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_hsetnx(f->s, "h", "a", &vals[2], T0), ==, 0);
        g_assert_cmpint(store_hsetnx(f->s, "h", "c", &vals[2], T0), ==, 1);
        g_assert_cmpint(store_hexists(f->s, "h", "c", T0), ==, 1);
        g_assert_cmpint(store_hexists(f->s, "h", "d", T0), ==, 0);
        g_assert_cmpint(store_hexists(f->s, "nope", "d", T0), ==, 0);
        g_assert_cmpint(store_hlen(f->s, "h", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        {
                const char *q[] = { "a", "zz", "b" };

                g_assert_cmpint(store_hmget(f->s, "h", q, 3, T0, &vs), ==, 0);
                g_assert_cmpint(vs[0].type, ==, 's');
                g_assert_cmpint(vs[1].type, ==, 0);
                g_assert_cmpint(vs[2].type, ==, 'x');
                free(vs);
        }
        g_assert_cmpint(store_hgetall(f->s, "h", T0, &all, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        free(all);
        g_assert_cmpint(store_hkeys(f->s, "h", T0, &names, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        free(names);
        g_assert_cmpint(store_hvals(f->s, "h", T0, &vs, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        free(vs);
        g_assert_cmpint(store_hgetall(f->s, "nope", T0, &all, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        free(all);

        fx_clear(f);
        g_assert_cmpint(store_hincr(f->s, "h", "b", 5, T0, &r), ==, 0);
        g_assert_cmpint(r, ==, 5);
        g_assert_cmpint(store_hincr(f->s, "h", "new", -2, T0, &r), ==, 0);
        g_assert_cmpint(r, ==, -2);
        g_assert_cmpint(store_hincr(f->s, "h", "c", 1, T0, &r), ==, 0); /* "3" */
        g_assert_cmpint(r, ==, 4);
        g_assert_cmpint(store_hincrfloat(f->s, "h", "c", 0.5, T0, &dr), ==, 0);
        g_assert_cmpfloat(dr, ==, 4.5);
        g_assert_cmpint(store_hincr(f->s, "h", "c", 1, T0, &r), ==, -EDOM);
        assert_events(f, "h hincrby, h hincrby, h hincrby, h hincrbyfloat");

        {
                const char *del[] = { "a", "b", "zz", "c", "new" };

                g_assert_cmpint(store_hdel(f->s, "h", del, 2, T0, &n), ==, 0);
                g_assert_cmpuint(n, ==, 2);
                assert_events(f, "h hdel");
                g_assert_cmpint(store_hdel(f->s, "h", del + 2, 3, T0, &n), ==, 0);
                g_assert_cmpuint(n, ==, 2);
                assert_events(f, "h hdel, h del"); /* emptied hash deletes the key */
                g_assert_cmpuint(store_dbsize(f->s), ==, 0);
                g_assert_cmpint(store_hdel(f->s, "h", del, 1, T0, &n), ==, 0);
                g_assert_cmpuint(n, ==, 0);
                assert_events(f, "");
        }
        /* wrong type */
        g_assert_cmpint(store_set(f->s, "s", &vals[0], 0, 0, T0), ==, 1);
        g_assert_cmpint(store_hset(f->s, "s", fl, vals, 1, T0, &n), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_hget(f->s, "s", "a", T0, &out), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_hlen(f->s, "s", T0, &n), ==, -EMEDIUMTYPE);
}

/* ---- lists ---- */

static char *list_dump(Store *s, const char *key) {
        GString *g = g_string_new(NULL);
        StoreValue *v;
        size_t n;

        g_assert_cmpint(store_lrange(s, key, 0, -1, T0, &v, &n), ==, 0);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        g_string_append_c(g, ' ');
                if (v[i].type == 's')
                        g_string_append(g, v[i].str.ptr);
                else
                        g_string_append_printf(g, "%c%" G_GINT64_FORMAT, v[i].type, v[i].i);
        }
        free(v);
        return g_string_free(g, FALSE);
}

#define assert_list(f, key, expected)                           \
        do {                                                    \
                g_autofree char *_l = list_dump((f)->s, (key)); \
                g_assert_cmpstr(_l, ==, (expected));            \
        } while (0)

/* HKeys, HVals and HGetAll of a hash of up to 128 fields: insertion order, as Redis's
 * listpack encoding has it; an update keeps a field's place, a deleted field re-added goes to
 * the end.  Past 128 fields the hash converts to a table: every field is still there. */
static char *hkeys_joined(Store *s, const char *key) {
        const char **ks = NULL;
        size_t n = 0;
        g_autoptr(GString) out = g_string_new(NULL);

        g_assert_cmpint(store_hkeys(s, key, T0, &ks, &n), ==, 0);
        for (size_t i = 0; i < n; i++)
                g_string_append_printf(out, "%s%s", i ? " " : "", ks[i]);
        free(ks);
        return g_strdup(out->str);
}

static void test_hash_order(Fixture *f, gconstpointer d) {
        const char *fs[] = { "c", "a", "b" }, *fa[] = { "a" }, *fz[] = { "z" };
        StoreValue vs[] = { SV_S("1"), SV_S("2"), SV_S("3") }, nv = SV_S("new"), *vals;
        StoreField *all;
        int64_t i64;
        size_t n;
        char *j;

        g_assert_cmpint(store_hset(f->s, "h", fs, vs, 3, T0, &n), ==, 0);
        j = hkeys_joined(f->s, "h");
        g_assert_cmpstr(j, ==, "c a b");
        g_free(j);
        g_assert_cmpint(store_hvals(f->s, "h", T0, &vals, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpstr(vals[0].str.ptr, ==, "1");
        g_assert_cmpstr(vals[1].str.ptr, ==, "2");
        g_assert_cmpstr(vals[2].str.ptr, ==, "3");
        free(vals);
        g_assert_cmpint(store_hgetall(f->s, "h", T0, &all, &n), ==, 0);
        g_assert_cmpstr(all[0].name, ==, "c");
        g_assert_cmpstr(all[1].name, ==, "a");
        g_assert_cmpstr(all[2].value.str.ptr, ==, "3");
        free(all);
        /* an update keeps the place; a deleted field comes back at the end */
        g_assert_cmpint(store_hset(f->s, "h", fa, &nv, 1, T0, &n), ==, 0);
        j = hkeys_joined(f->s, "h");
        g_assert_cmpstr(j, ==, "c a b");
        g_free(j);
        g_assert_cmpint(store_hdel(f->s, "h", fa, 1, T0, &n), ==, 0);
        j = hkeys_joined(f->s, "h");
        g_assert_cmpstr(j, ==, "c b");
        g_free(j);
        g_assert_cmpint(store_hset(f->s, "h", fa, &nv, 1, T0, &n), ==, 0);
        g_assert_cmpint(store_hincr(f->s, "h", "n", 1, T0, &i64), ==, 0);
        g_assert_cmpint(store_hsetnx(f->s, "h", "z", &nv, T0), ==, 1);
        g_assert_cmpint(store_hdel(f->s, "h", fz, 1, T0, &n), ==, 0);
        g_assert_cmpint(store_hsetnx(f->s, "h", "z", &nv, T0), ==, 1);
        j = hkeys_joined(f->s, "h");
        g_assert_cmpstr(j, ==, "c b a n z");
        g_free(j);

        /* 128 fields, added in a scrambled order and thinned out: still in insertion order */
        {
                g_autoptr(GString) want = g_string_new(NULL);
                uint64_t before = store_memory(f->s);

                for (unsigned i = 0; i < 128; i++) {
                        g_autofree char *name = g_strdup_printf("f%u", (i * 37) % 128);
                        const char *nm = name;

                        g_assert_cmpint(store_hset(f->s, "big", &nm, &nv, 1, T0, &n), ==, 0);
                }
                for (unsigned i = 0; i < 128; i += 2) {
                        g_autofree char *name = g_strdup_printf("f%u", (i * 37) % 128);
                        const char *nm = name;

                        g_assert_cmpint(store_hdel(f->s, "big", &nm, 1, T0, &n), ==, 0);
                        g_assert_cmpuint(n, ==, 1);
                }
                for (unsigned i = 1; i < 128; i += 2)
                        g_string_append_printf(want, "%sf%u", want->len ? " " : "", (i * 37) % 128);
                j = hkeys_joined(f->s, "big");
                g_assert_cmpstr(j, ==, want->str);
                g_free(j);
                /* grow to 128 again, then one more: a table from then on, every field there */
                for (unsigned i = 0; i < 64; i++) {
                        g_autofree char *name = g_strdup_printf("g%u", i);
                        const char *nm = name;

                        g_assert_cmpint(store_hset(f->s, "big", &nm, &nv, 1, T0, &n), ==, 0);
                }
                g_assert_cmpint(store_hlen(f->s, "big", T0, &n), ==, 0);
                g_assert_cmpuint(n, ==, 128);
                g_assert_cmpint(store_hincr(f->s, "big", "x", 5, T0, &i64), ==, 0);
                g_assert_cmpint(store_hlen(f->s, "big", T0, &n), ==, 0);
                g_assert_cmpuint(n, ==, 129);
                for (unsigned i = 1; i < 128; i += 2) {
                        g_autofree char *name = g_strdup_printf("f%u", (i * 37) % 128);

                        g_assert_cmpint(store_hexists(f->s, "big", name, T0), ==, 1);
                }
                for (unsigned i = 0; i < 64; i++) {
                        g_autofree char *name = g_strdup_printf("g%u", i);
                        const char *nm = name;

                        g_assert_cmpint(store_hexists(f->s, "big", name, T0), ==, 1);
                        g_assert_cmpint(store_hdel(f->s, "big", &nm, 1, T0, &n), ==, 0);
                }
                g_assert_cmpint(store_hkeys(f->s, "big", T0, (const char ***) &vals, &n), ==, 0);
                g_assert_cmpuint(n, ==, 65);
                free(vals);
                g_assert_cmpint(store_hget(f->s, "big", "x", T0, &nv), ==, 0);
                g_assert_cmpint(nv.i, ==, 5);
                {
                        const char *k[] = { "big" };

                        g_assert_cmpint(store_del(f->s, k, 1, T0, &n), ==, 0);
                }
                g_assert_cmpuint(store_memory(f->s), ==, before);
        }
}

static void test_list(Fixture *f, gconstpointer d) {
        StoreValue v[] = { SV_S("a"), SV_S("b"), SV_S("c"), SV_S("d"), SV_S("e") }, out, *vs;
        size_t n;
        int64_t r;

        g_assert_cmpint(store_llen(f->s, "l", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpint(store_pushx(f->s, "l", true, v, 1, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpuint(store_dbsize(f->s), ==, 0);
        g_assert_cmpint(store_push(f->s, "l", true, v, 2, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        assert_list(f, "l", "b a"); /* LPush [a,b] gives [b,a] */
        g_assert_cmpint(store_push(f->s, "l", false, v + 2, 3, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 5);
        g_assert_cmpint(store_pushx(f->s, "l", false, v, 1, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 6);
        assert_events(f, "l lpush, l rpush, l rpush");
        assert_list(f, "l", "b a c d e a");

        /* LRange: inclusive, negative indices (EventVat used slice) */
        struct {
                int64_t s, e;
                const char *r;
        } lr[] = { { 0, 0, "b" }, { 0, -1, "b a c d e a" }, { -2, -1, "e a" }, { 1, 2, "a c" },
                   { 4, 100, "e a" }, { 3, 1, "" }, { -100, 0, "b" }, { 6, 10, "" }, { -1, -2, "" } };
        for (size_t i = 0; i < G_N_ELEMENTS(lr); i++) {
                GString *g = g_string_new(NULL);

                g_assert_cmpint(store_lrange(f->s, "l", lr[i].s, lr[i].e, T0, &vs, &n), ==, 0);
                for (size_t j = 0; j < n; j++)
                        g_string_append_printf(g, "%s%s", j ? " " : "", vs[j].str.ptr);
                g_assert_cmpstr(g->str, ==, lr[i].r);
                g_string_free(g, TRUE);
                free(vs);
        }
        g_assert_cmpint(store_lindex(f->s, "l", -1, T0, &out), ==, 0);
        g_assert_cmpstr(out.str.ptr, ==, "a");
        g_assert_cmpint(store_lindex(f->s, "l", 6, T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_lindex(f->s, "l", -7, T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_lindex(f->s, "nope", 0, T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_lset(f->s, "l", 1, &v[4], T0), ==, 0);
        g_assert_cmpint(store_lset(f->s, "l", 10, &v[4], T0), ==, -EINVAL);
        g_assert_cmpint(store_lset(f->s, "nope", 0, &v[4], T0), ==, -ENOKEY);
        assert_events(f, "l lset");
        assert_list(f, "l", "b e c d e a");

        /* LRem */
        g_assert_cmpint(store_lrem(f->s, "l", -1, &v[4], T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
        assert_list(f, "l", "b e c d a");
        g_assert_cmpint(store_push(f->s, "l", false, &v[4], 1, T0, &n), ==, 0);
        g_assert_cmpint(store_lrem(f->s, "l", 0, &v[4], T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        assert_list(f, "l", "b c d a");
        {
                StoreValue typed = SV_I('x', 0), zero_s = SV_S("0");

                g_assert_cmpint(store_push(f->s, "l", false, &typed, 1, T0, &n), ==, 0);
                g_assert_cmpint(store_lrem(f->s, "l", 0, &zero_s, T0, &n), ==, 0);
                g_assert_cmpuint(n, ==, 0); /* same type and content only */
                g_assert_cmpint(store_lrem(f->s, "l", 1, &typed, T0, &n), ==, 0);
                g_assert_cmpuint(n, ==, 1);
        }
        fx_clear(f);

        /* LInsert */
        g_assert_cmpint(store_linsert(f->s, "l", true, &v[2], &v[4], T0, &r), ==, 0);
        g_assert_cmpint(r, ==, 5);
        assert_list(f, "l", "b e c d a");
        g_assert_cmpint(store_linsert(f->s, "l", false, &v[0], &v[4], T0, &r), ==, 0);
        assert_list(f, "l", "b e c d a e");
        g_assert_cmpint(store_linsert(f->s, "l", false, &v[1], &v[4], T0, &r), ==, 0);
        assert_list(f, "l", "b e e c d a e");
        {
                StoreValue zz = SV_S("zz");

                g_assert_cmpint(store_linsert(f->s, "l", false, &zz, &v[4], T0, &r), ==, 0);
                g_assert_cmpint(r, ==, -1);
        }
        g_assert_cmpint(store_linsert(f->s, "nope", false, &v[0], &v[4], T0, &r), ==, 0);
        g_assert_cmpint(r, ==, 0);
        assert_events(f, "l linsert, l linsert, l linsert");

        /* LTrim */
        g_assert_cmpint(store_ltrim(f->s, "l", 1, -2, T0), ==, 0);
        assert_list(f, "l", "e e c d a");
        g_assert_cmpint(store_ltrim(f->s, "l", 0, -1, T0), ==, 0);
        assert_events(f, "l ltrim");
        g_assert_cmpint(store_ltrim(f->s, "l", 5, 10, T0), ==, 0);
        assert_events(f, "l ltrim, l del");
        g_assert_cmpuint(store_dbsize(f->s), ==, 0);

        /* pops: falsy values come back as themselves */
        {
                StoreValue fv[] = { SV_I('x', 0), SV_S(""), SV_B(0), SV_S("z") };

                g_assert_cmpint(store_push(f->s, "l", false, fv, 4, T0, &n), ==, 0);
                fx_clear(f);
                g_assert_cmpint(store_pop(f->s, "l", true, 0, T0, &vs, &n), ==, 0);
                g_assert_cmpuint(n, ==, 1);
                g_assert_cmpint(vs[0].type, ==, 'x');
                g_assert_cmpint(vs[0].i, ==, 0);
                store_values_free(vs, n);
                g_assert_cmpint(store_pop(f->s, "l", false, 2, T0, &vs, &n), ==, 0);
                g_assert_cmpuint(n, ==, 2);
                g_assert_cmpstr(vs[0].str.ptr, ==, "z");
                g_assert_cmpint(vs[1].type, ==, 'b');
                store_values_free(vs, n);
                g_assert_cmpint(store_pop(f->s, "l", true, 10, T0, &vs, &n), ==, 0);
                g_assert_cmpuint(n, ==, 1);
                g_assert_cmpstr(vs[0].str.ptr, ==, "");
                store_values_free(vs, n);
                assert_events(f, "l lpop, l rpop, l lpop, l del");
                g_assert_cmpint(store_pop(f->s, "l", true, 10, T0, &vs, &n), ==, 0);
                g_assert_cmpuint(n, ==, 0);
                store_values_free(vs, n);
        }

        /* LMove */
        g_assert_cmpint(store_lmove(f->s, "src", "dst", true, true, T0, &out), ==, -ENOKEY);
        g_assert_cmpint(store_push(f->s, "src", false, v, 3, T0, &n), ==, 0);
        fx_clear(f);
        g_assert_cmpint(store_lmove(f->s, "src", "dst", false, true, T0, &out), ==, 0);
        g_assert_cmpstr(out.str.ptr, ==, "c");
        store_value_clear(&out);
        assert_events(f, "src rpop, dst lpush");
        g_assert_cmpint(store_lmove(f->s, "src", "src", true, false, T0, &out), ==, 0); /* rotate */
        store_value_clear(&out);
        assert_list(f, "src", "b a");
        g_assert_cmpint(store_lmove(f->s, "src", "dst", true, false, T0, NULL), ==, 0);
        g_assert_cmpint(store_lmove(f->s, "src", "dst", true, false, T0, NULL), ==, 0);
        assert_list(f, "dst", "c b a");
        g_assert_cmpuint(store_dbsize(f->s), ==, 1);
        fx_clear(f);

        /* wrong types */
        g_assert_cmpint(store_set(f->s, "s", &v[0], 0, 0, T0), ==, 1);
        g_assert_cmpint(store_push(f->s, "s", true, v, 1, T0, &n), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_llen(f->s, "s", T0, &n), ==, -EMEDIUMTYPE);
        g_assert_cmpint(store_lmove(f->s, "dst", "s", true, true, T0, &out), ==, -EMEDIUMTYPE);
        assert_list(f, "dst", "c b a");
}

static void test_list_ring(Fixture *f, gconstpointer d) {
        /* push/pop at both ends through many resizes against a GQueue model */
        GQueue *q = g_queue_new();
        GRand *rnd = g_rand_new_with_seed(7);

        for (int i = 0; i < 20000; i++) {
                int op = g_rand_int_range(rnd, 0, 4);
                StoreValue *vs;
                size_t n;

                if (op < 2 || g_queue_is_empty(q)) {
                        StoreValue v = SV_I('x', i);

                        g_assert_cmpint(store_push(f->s, "l", op == 0, &v, 1, T0, &n), ==, 0);
                        if (op == 0)
                                g_queue_push_head(q, GINT_TO_POINTER(i));
                        else
                                g_queue_push_tail(q, GINT_TO_POINTER(i));
                } else {
                        bool left = op == 2;

                        g_assert_cmpint(store_pop(f->s, "l", left, 1, T0, &vs, &n), ==, 0);
                        g_assert_cmpuint(n, ==, 1);
                        g_assert_cmpint(vs[0].i, ==,
                                        GPOINTER_TO_INT(left ? g_queue_pop_head(q) : g_queue_pop_tail(q)));
                        store_values_free(vs, n);
                }
                if (i % 1000 == 0) {
                        StoreValue out;

                        if (!g_queue_is_empty(q)) {
                                guint k = g_rand_int_range(rnd, 0, (gint32) g_queue_get_length(q));

                                g_assert_cmpint(store_lindex(f->s, "l", k, T0, &out), ==, 0);
                                g_assert_cmpint(out.i, ==, GPOINTER_TO_INT(g_queue_peek_nth(q, k)));
                        }
                }
        }
        g_queue_free(q);
        g_rand_free(rnd);
}

/* ---- sets ---- */

static void test_set(Fixture *f, gconstpointer d) {
        const char *m[] = { "a", "b", "c", "a" };
        const char **ms;
        char **popped;
        size_t n;

        g_assert_cmpint(store_sadd(f->s, "s", m, 4, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpint(store_sadd(f->s, "s", m, 2, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        assert_events(f, "s sadd");
        g_assert_cmpint(store_scard(f->s, "s", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpint(store_sismember(f->s, "s", "b", T0), ==, 1);
        g_assert_cmpint(store_sismember(f->s, "s", "z", T0), ==, 0);
        g_assert_cmpint(store_sismember(f->s, "nope", "z", T0), ==, 0);
        g_assert_cmpint(store_smembers(f->s, "s", T0, &ms, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        free(ms);
        g_assert_cmpint(store_srandmember(f->s, "s", 0, T0, &ms, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
        free(ms);
        g_assert_cmpint(store_srandmember(f->s, "s", 10, T0, &ms, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpstr(ms[0], !=, ms[1]);
        g_assert_cmpstr(ms[1], !=, ms[2]);
        g_assert_cmpstr(ms[0], !=, ms[2]);
        free(ms);
        assert_events(f, "");
        g_assert_cmpint(store_srem(f->s, "s", m + 1, 1, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
        assert_events(f, "s srem");
        g_assert_cmpint(store_spop(f->s, "s", 0, T0, &popped, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
        g_assert_true(g_str_equal(popped[0], "a") || g_str_equal(popped[0], "c"));
        store_strv_free(popped, n);
        g_assert_cmpint(store_spop(f->s, "s", 5, T0, &popped, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
        store_strv_free(popped, n);
        assert_events(f, "s spop, s spop, s del");
        g_assert_cmpuint(store_dbsize(f->s), ==, 0);
        g_assert_cmpint(store_spop(f->s, "s", 5, T0, &popped, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        store_strv_free(popped, n);
        g_assert_cmpint(store_sadd(f->s, "s", m, 1, T0, &n), ==, 0);
        g_assert_cmpint(store_srem(f->s, "s", m, 4, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
        assert_events(f, "s sadd, s srem, s del");
        {
                StoreValue v = SV_S("x");

                g_assert_cmpint(store_set(f->s, "str", &v, 0, 0, T0), ==, 1);
                g_assert_cmpint(store_sadd(f->s, "str", m, 1, T0, &n), ==, -EMEDIUMTYPE);
                g_assert_cmpint(store_scard(f->s, "str", T0, &n), ==, -EMEDIUMTYPE);
        }
}

/* ---- blocking ---- */

static void test_blocking(Fixture *f, gconstpointer d) {
        const char *keys[] = { "q" };
        const char *keys2[] = { "other", "q" };
        StoreWaiter *w1, *w2, *w3;
        StoreValue v[] = { SV_S("one"), SV_S("two"), SV_S("three") }, out;
        char *key;
        size_t n;

        /* two waiters, one push of two values: both served, first waiter first */
        g_assert_cmpint(store_block(f->s, keys, 1, true, GINT_TO_POINTER(1), T0, &w1, &key, &out), ==, 0);
        g_assert_cmpint(store_block(f->s, keys2, 2, true, GINT_TO_POINTER(2), T0, &w2, &key, &out), ==, 0);
        g_assert_cmpint(store_block(f->s, keys, 1, false, GINT_TO_POINTER(3), T0, &w3, &key, &out), ==, 0);
        g_assert_cmpuint(store_waiters(f->s), ==, 3);
        store_waiter_cancel(w3);
        g_assert_cmpuint(store_waiters(f->s), ==, 2);
        g_assert_cmpint(store_push(f->s, "q", false, v, 2, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2); /* length after the push, before serving (Redis) */
        g_assert_cmpuint(f->served->len, ==, 2);
        g_assert_cmpint(GPOINTER_TO_INT(g_array_index(f->served, Served, 0).token), ==, 1);
        g_assert_cmpstr(g_array_index(f->served, Served, 0).value.str.ptr, ==, "one");
        g_assert_cmpint(GPOINTER_TO_INT(g_array_index(f->served, Served, 1).token), ==, 2);
        g_assert_cmpstr(g_array_index(f->served, Served, 1).key, ==, "q");
        g_assert_cmpstr(g_array_index(f->served, Served, 1).value.str.ptr, ==, "two");
        assert_events(f, "q rpush, q lpop, q lpop, q del");
        g_assert_cmpuint(store_waiters(f->s), ==, 0);
        g_assert_cmpuint(store_dbsize(f->s), ==, 0);

        /* immediate pop */
        g_assert_cmpint(store_push(f->s, "q", false, v, 3, T0, &n), ==, 0);
        fx_clear(f);
        g_assert_cmpint(store_block(f->s, keys2, 2, false, NULL, T0, &w1, &key, &out), ==, 1);
        g_assert_cmpstr(key, ==, "q");
        g_assert_cmpstr(out.str.ptr, ==, "three");
        free(key);
        store_value_clear(&out);
        assert_events(f, "q rpop");

        /* wrong type */
        g_assert_cmpint(store_set(f->s, "str", &v[0], 0, 0, T0), ==, 1);
        {
                const char *k3[] = { "str" };

                g_assert_cmpint(store_block(f->s, k3, 1, true, NULL, T0, &w1, &key, &out), ==, -EMEDIUMTYPE);
        }

        /* served by LMove, LInsert and Rename too; one value serves one waiter */
        g_assert_cmpint(store_flush(f->s), ==, 0);
        fx_served_clear(f);
        g_assert_cmpint(store_block(f->s, keys, 1, true, GINT_TO_POINTER(4), T0, &w1, &key, &out), ==, 0);
        g_assert_cmpint(store_block(f->s, keys, 1, true, GINT_TO_POINTER(5), T0, &w2, &key, &out), ==, 0);
        g_assert_cmpint(store_push(f->s, "src", false, v, 2, T0, &n), ==, 0);
        g_assert_cmpint(store_lmove(f->s, "src", "q", true, true, T0, &out), ==, 0);
        store_value_clear(&out);
        g_assert_cmpuint(f->served->len, ==, 1);
        g_assert_cmpint(GPOINTER_TO_INT(g_array_index(f->served, Served, 0).token), ==, 4);
        g_assert_cmpint(store_rename(f->s, "src", "q", T0), ==, 0);
        g_assert_cmpuint(f->served->len, ==, 2);
        g_assert_cmpint(GPOINTER_TO_INT(g_array_index(f->served, Served, 1).token), ==, 5);
        g_assert_cmpstr(g_array_index(f->served, Served, 1).value.str.ptr, ==, "two");
        fx_served_clear(f);
        /* a pending waiter is freed with the store */
        g_assert_cmpint(store_block(f->s, keys, 1, true, NULL, T0, &w1, &key, &out), ==, 0);
}

/* A served callback that pushes again (reentrancy): serving continues in order. */
static Fixture *reent_fx;
static void reent_served(void *userdata, void *token, const char *key, StoreValue *value) {
        Fixture *f = userdata;
        StoreValue v = SV_S("again");

        fx_served(userdata, token, key, value);
        if (GPOINTER_TO_INT(token) == 1)
                g_assert_cmpint(store_push(f->s, "q", false, &v, 1, T0, NULL), ==, 0);
}

static void test_blocking_reentrant(void) {
        Fixture f;
        const char *keys[] = { "q" };
        StoreWaiter *w;
        StoreValue v = SV_S("x");

        memset(&f, 0, sizeof f);
        reent_fx = &f;
        f.events = g_ptr_array_new_with_free_func(g_free);
        f.served = g_array_new(FALSE, TRUE, sizeof(Served));
        g_assert_cmpint(store_new(&f.s, NULL, &f.account, fx_notify, reent_served, &f), ==, 0);
        for (int i = 1; i <= 3; i++)
                g_assert_cmpint(store_block(f.s, keys, 1, true, GINT_TO_POINTER(i), T0, &w, NULL, NULL), ==, 0);
        g_assert_cmpint(store_push(f.s, "q", false, &v, 1, T0, NULL), ==, 0);
        g_assert_cmpuint(f.served->len, ==, 2);
        g_assert_cmpint(GPOINTER_TO_INT(g_array_index(f.served, Served, 1).token), ==, 2);
        g_assert_cmpstr(g_array_index(f.served, Served, 1).value.str.ptr, ==, "again");
        g_assert_cmpuint(store_waiters(f.s), ==, 1);
        fx_teardown(&f, NULL);
}

/* ---- Move between two stores (namespaces) ---- */

/* Fill store a with one key of each kind, some with values on the heap. */
static void move_fill(Store *s) {
        const char *long_text = "a string longer than the inline buffer";
        StoreValue l = SV_S(long_text), sh = SV_S("v"), bl = SV_BLOB("a{sv}", "\1\2\3\4", 4);
        const char *fields[] = { "f1", "f2", "a field name that is long" };
        StoreValue fv[] = { SV_S("x"), SV_S(long_text), SV_I('x', 7) };
        const char *members[] = { "m1", "m2", "a member name that is long enough" };

        g_assert_cmpint(store_set(s, "str", &l, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_set(s, "short", &sh, 5000, 0, T0), ==, 1);
        g_assert_cmpint(store_set(s, "blob", &bl, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_hset(s, "hash", fields, fv, 3, T0, NULL), ==, 0);
        g_assert_cmpint(store_push(s, "list", false, fv, 3, T0, NULL), ==, 0);
        g_assert_cmpint(store_sadd(s, "set", members, 3, T0, NULL), ==, 0);
        for (unsigned i = 0; i < 200; i++) {   /* past the small form of hashes */
                g_autofree char *name = g_strdup_printf("field-%u", i);
                const char *nm = name;

                g_assert_cmpint(store_hset(s, "bighash", &nm, &fv[i % 3], 1, T0, NULL), ==, 0);
        }
}

static void test_move(void) {
        const char *keys[] = { "str", "short", "blob", "hash", "list", "set", "bighash" };
        StoreValue v = SV_S("v"), out;
        Fixture fa, fb, *a = &fa, *b = &fb;
        uint64_t base_a, base_b, used_a, used_b;
        int64_t ttl;
        size_t n;

        fx_setup(a, NULL);
        fx_setup(b, NULL);   /* its own hub account: the charge moves between accounts too */
        base_a = store_memory(a->s);
        base_b = store_memory(b->s);
        g_assert_cmpint(store_move(a->s, "nope", b->s, T0), ==, 0);
        g_assert_cmpint(store_move(a->s, "nope", a->s, T0), ==, -EINVAL);
        assert_events(a, "");
        assert_events(b, "");

        move_fill(a->s);
        fx_clear(a);
        used_a = store_memory(a->s);
        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
                g_autofree char *ea = g_strdup_printf("%s move_from", keys[i]);
                g_autofree char *eb = g_strdup_printf("%s move_to", keys[i]);

                g_assert_cmpint(store_move(a->s, keys[i], b->s, T0 + 1000), ==, 1);
                assert_events(a, ea);
                assert_events(b, eb);
        }
        g_assert_cmpuint(store_dbsize(a->s), ==, 0);
        g_assert_cmpuint(store_dbsize(b->s), ==, 7);
        /* the accounted bytes moved exactly: a is back at its base, b holds what a held
         * (the key tables' own sizes differ by the resizes they went through) */
        g_assert_cmpuint(store_memory(a->s), ==, base_a);
        g_assert_cmpuint(a->account.used, ==, store_memory(a->s));
        g_assert_cmpuint(b->account.used, ==, store_memory(b->s));
        g_assert_cmpuint(store_memory(b->s) - base_b, <=, used_a - base_a + 64);
        g_assert_cmpuint(store_memory(b->s) - base_b + 64, >=, used_a - base_a);
        g_assert_cmpint(store_ttl(b->s, "short", T0 + 1000, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, 4000);   /* the TTL moved */
        g_assert_cmpint(store_hlen(b->s, "hash", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpint(store_llen(b->s, "list", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpint(store_sismember(b->s, "set", "a member name that is long enough", T0), ==, 1);
        g_assert_cmpuint(store_next_deadline(a->s), ==, UINT64_MAX);
        g_assert_cmpuint(store_next_deadline(b->s), ==, T0 + 5000);

        /* the target has the key: nothing changes */
        g_assert_cmpint(store_set(a->s, "str", &v, 0, 0, T0), ==, 1);
        fx_clear(a);
        used_a = store_memory(a->s);
        used_b = store_memory(b->s);
        g_assert_cmpint(store_move(a->s, "str", b->s, T0), ==, 0);
        g_assert_cmpstr(get_str(a->s, "str", T0), ==, "v");
        g_assert_cmpuint(store_memory(a->s), ==, used_a);
        g_assert_cmpuint(store_memory(b->s), ==, used_b);
        assert_events(a, "");
        assert_events(b, "");
        /* ... unless it expired there */
        g_assert_cmpint(store_move(a->s, "str", b->s, T0 + 1000), ==, 0);
        g_assert_cmpint(store_move(a->s, "str", b->s, T0 + 5000), ==, 0); /* "str" in b has no TTL */
        g_assert_cmpint(store_set(a->s, "short", &v, 0, 0, T0), ==, 1);
        fx_clear(a);
        g_assert_cmpint(store_move(a->s, "short", b->s, T0 + 5000), ==, 1);
        assert_events(a, "short move_from");
        assert_events(b, "short expired, short move_to");
        g_assert_cmpint(store_ttl(b->s, "short", T0 + 5000, &ttl), ==, 0);
        g_assert_cmpint(ttl, ==, -1);
        /* an expired source is absent */
        g_assert_cmpint(store_set(a->s, "gone", &v, 10, 0, T0), ==, 1);
        fx_clear(a);
        g_assert_cmpint(store_move(a->s, "gone", b->s, T0 + 10), ==, 0);
        assert_events(a, "gone expired");
        g_assert_cmpint(store_get(b->s, "gone", T0 + 10, &out), ==, -ENOKEY);
        fx_teardown(a, NULL);   /* asserts each account is back at 0 */
        fx_teardown(b, NULL);
}

/* The target's memory limit holds; a list moved onto a waiter serves it. */
static void test_move_limits_waiters(void) {
        StoreLimits small;
        const char *qk[] = { "q" };
        g_autofree char *text = g_strnfill(400, 'x');
        StoreValue vs[] = { SV_S("one"), SV_S("two") }, big = SV_S(text), out;
        Fixture fa, fb, *a = &fa, *b = &fb;
        StoreWaiter *w;
        uint64_t used_a, used_b;
        char *key;

        store_limits_default(&small);
        fx_setup(a, NULL);
        small.max_memory = store_memory(a->s) + 300;   /* a short list fits, 400 bytes do not */
        fx_setup_limits(b, &small);
        g_assert_cmpint(store_set(a->s, "big", &big, 0, 0, T0), ==, 1);
        fx_clear(a);
        used_a = store_memory(a->s);
        used_b = store_memory(b->s);
        g_assert_cmpint(store_move(a->s, "big", b->s, T0), ==, -ENOBUFS);
        g_assert_cmpstr(store_last_limit(a->s), ==, "memory");
        g_assert_cmpuint(store_memory(a->s), ==, used_a);
        g_assert_cmpuint(store_memory(b->s), ==, used_b);
        g_assert_cmpint(store_get(a->s, "big", T0, &out), ==, 0);
        assert_events(a, "");
        assert_events(b, "");

        /* a waiter on b's "q" is served by the list moving in */
        g_assert_cmpint(store_block(b->s, qk, 1, true, GINT_TO_POINTER(7), T0, &w, &key, &out), ==, 0);
        g_assert_cmpint(store_push(a->s, "q", false, vs, 2, T0, NULL), ==, 0);
        fx_clear(a);
        g_assert_cmpint(store_move(a->s, "q", b->s, T0), ==, 1);
        g_assert_cmpuint(b->served->len, ==, 1);
        g_assert_cmpint(GPOINTER_TO_INT(g_array_index(b->served, Served, 0).token), ==, 7);
        g_assert_cmpstr(g_array_index(b->served, Served, 0).value.str.ptr, ==, "one");
        assert_events(a, "q move_from");
        assert_events(b, "q move_to, q lpop");
        g_assert_cmpuint(store_waiters(b->s), ==, 0);
        fx_teardown(a, NULL);
        fx_teardown(b, NULL);
}

/* ---- limits ---- */

static void test_limits(void) {
        StoreLimits l = {
                .max_key_len = 8,
                .max_value_size = 16,
                .max_elements = 3,
                .max_memory = 4096,
        };
        Fixture fx, *f = &fx;
        StoreValue v = SV_S("v"), big = SV_S("0123456789abcdefg"), out;
        const char *m[] = { "a", "b", "c", "d" };
        StoreValue mv[] = { SV_S("1"), SV_S("2"), SV_S("3"), SV_S("4") };
        uint64_t before;
        size_t n;

        fx_setup_limits(f, &l);
        g_assert_cmpint(store_set(f->s, "123456789", &v, 0, 0, T0), ==, -ENOBUFS);
        g_assert_cmpstr(store_last_limit(f->s), ==, "key-length");
        g_assert_cmpint(store_set(f->s, "12345678", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_set(f->s, "12345678", &big, 0, 0, T0), ==, -ENOBUFS);
        g_assert_cmpstr(store_last_limit(f->s), ==, "value-size");
        g_assert_cmpstr(get_str(f->s, "12345678", T0), ==, "v"); /* unchanged */
        g_assert_cmpuint(store_last_limit_wanted(f->s), ==, 17);
        g_assert_cmpint(store_append(f->s, "12345678", "0123456789abcdef", 16, T0, &n), ==, -ENOBUFS);
        g_assert_cmpuint(store_last_limit_wanted(f->s), ==, 17);
        g_assert_cmpint(store_setrange(f->s, "12345678", 16, "x", 1, T0, &n), ==, -ENOBUFS);
        g_assert_cmpuint(store_last_limit_wanted(f->s), ==, 17);
        {
                StoreValue blob = SV_BLOB("ay", "0123456789abcdef", 16);   /* 2 + 16 bytes */

                g_assert_cmpint(store_set(f->s, "b", &blob, 0, 0, T0), ==, -ENOBUFS);
                g_assert_cmpstr(store_last_limit(f->s), ==, "value-size");
                g_assert_cmpuint(store_last_limit_wanted(f->s), ==, 18);
                g_assert_cmpuint(store_value_bytes(&blob), ==, 18);
        }
        g_assert_cmpstr(get_str(f->s, "12345678", T0), ==, "v");

        g_assert_cmpint(store_sadd(f->s, "s", m, 4, T0, &n), ==, -ENOBUFS);
        g_assert_cmpstr(store_last_limit(f->s), ==, "elements");
        g_assert_cmpuint(store_last_limit_wanted(f->s), ==, 0);
        g_assert_cmpint(store_scard(f->s, "s", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpint(store_hset(f->s, "h", m, mv, 4, T0, &n), ==, -ENOBUFS);
        g_assert_cmpint(store_push(f->s, "l", true, mv, 4, T0, &n), ==, -ENOBUFS);
        g_assert_cmpint(store_push(f->s, "l", true, mv, 3, T0, &n), ==, 0);
        g_assert_cmpint(store_push(f->s, "l", true, mv, 1, T0, &n), ==, -ENOBUFS);
        g_assert_cmpint(store_llen(f->s, "l", T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 3);

        /* memory: fill up, then a write past the limit changes nothing */
        before = store_memory(f->s);
        g_assert_cmpuint(before, <=, 4096);
        {
                int i, r = 0;

                for (i = 0; i < 1000 && r >= 0; i++) {
                        char k[9];
                        StoreValue sv = SV_S("0123456789abcdef");

                        snprintf(k, sizeof k, "m%d", i);
                        r = store_set(f->s, k, &sv, 0, 0, T0);
                }
                g_assert_cmpint(r, ==, -ENOBUFS);
                g_assert_cmpstr(store_last_limit(f->s), ==, "memory");
                g_assert_cmpuint(store_memory(f->s), <=, 4096 + 256); /* bookkeeping may overshoot a bit */
        }
        {
                uint64_t dbs = store_dbsize(f->s), mem = store_memory(f->s);
                const char *ks[] = { "x1", "x2" };

                fx_clear(f);
                g_assert_cmpint(store_mset(f->s, ks, mv, 2, T0), ==, -ENOBUFS);
                g_assert_cmpuint(store_dbsize(f->s), ==, dbs);
                g_assert_cmpuint(store_memory(f->s), ==, mem);
                g_assert_cmpint(store_get(f->s, "x1", T0, &out), ==, -ENOKEY);
                assert_events(f, "");
        }
        fx_teardown(f, NULL);

        /* hub-wide account */
        fx_setup_limits(f, NULL);
        f->account.limit = f->account.used + 2000;
        {
                int i, r = 0;

                for (i = 0; i < 1000 && r >= 0; i++) {
                        char k[16];

                        snprintf(k, sizeof k, "k%d", i);
                        r = store_set(f->s, k, &v, 0, 0, T0);
                }
                g_assert_cmpint(r, ==, -ENOBUFS);
                g_assert_cmpstr(store_last_limit(f->s), ==, "hub-memory");
        }
        fx_teardown(f, NULL);
}

/* ---- notifications: reads are silent ---- */

static void test_reads_silent(Fixture *f, gconstpointer d) {
        StoreValue v = SV_S("1"), out, *vs;
        const char *k[] = { "s", "h", "l", "set" };
        const char **ks;
        StoreField *fs;
        int64_t ttl;
        size_t n;
        char *r;
        uint64_t cur;
        const char *t;

        g_assert_cmpint(store_set(f->s, "s", &v, 0, 0, T0), ==, 1);
        g_assert_cmpint(store_hset(f->s, "h", k, &v, 1, T0, NULL), ==, 0);
        g_assert_cmpint(store_push(f->s, "l", true, &v, 1, T0, NULL), ==, 0);
        g_assert_cmpint(store_sadd(f->s, "set", k, 1, T0, NULL), ==, 0);
        fx_clear(f);
        store_get(f->s, "s", T0, &out);
        store_mget(f->s, k, 4, T0, &vs);
        free(vs);
        store_exists(f->s, k, 4, T0, &n);
        store_keys(f->s, "*", T0, &ks, &n);
        free(ks);
        store_scan(f->s, 0, "*", 10, T0, &cur, &ks, &n);
        free(ks);
        store_type(f->s, "s", T0, &t);
        store_ttl(f->s, "s", T0, &ttl);
        store_strlen(f->s, "s", T0, &n);
        store_getrange(f->s, "s", 0, -1, T0, &r, &n);
        free(r);
        store_hget(f->s, "h", "s", T0, &out);
        store_hgetall(f->s, "h", T0, &fs, &n);
        free(fs);
        store_hlen(f->s, "h", T0, &n);
        store_hexists(f->s, "h", "s", T0);
        store_lrange(f->s, "l", 0, -1, T0, &vs, &n);
        free(vs);
        store_llen(f->s, "l", T0, &n);
        store_lindex(f->s, "l", 0, T0, &out);
        store_smembers(f->s, "set", T0, &ks, &n);
        free(ks);
        store_sismember(f->s, "set", "s", T0);
        store_scard(f->s, "set", T0, &n);
        store_srandmember(f->s, "set", 1, T0, &ks, &n);
        free(ks);
        store_randomkey(f->s, T0, &t);
        /* writes that change nothing are silent too */
        store_persist(f->s, "s", T0);
        store_del(f->s, (const char *[]) { "nope" }, 1, T0, &n);
        store_srem(f->s, "set", (const char *[]) { "nope" }, 1, T0, &n);
        store_hdel(f->s, "h", (const char *[]) { "nope" }, 1, T0, &n);
        {
                StoreValue nope = SV_S("nope");

                store_lrem(f->s, "l", 0, &nope, T0, &n);
        }
        assert_events(f, "");
        g_assert_cmpint(store_flush(f->s), ==, 0);
        assert_events(f, " flush");
        g_assert_cmpint(store_flush(f->s), ==, 0);
        assert_events(f, "");
        g_assert_cmpint(store_randomkey(f->s, T0, &t), ==, -ENOKEY);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

#define ADD(name, fn) g_test_add("/store/" name, Fixture, NULL, fx_setup, fn, fx_teardown)
        ADD("keys/basic", test_keys_basic);
        ADD("keys/types", test_types);
        g_test_add_func("/store/keys/glob", test_glob);
        ADD("keys/scan", test_keys_scan);
        ADD("keys/rename", test_rename);
        g_test_add_func("/store/keys/move", test_move);
        g_test_add_func("/store/keys/move-limits-waiters", test_move_limits_waiters);
        ADD("keys/expire", test_expire);
        ADD("keys/ttl-by-command", test_ttl_by_command);
        ADD("string/set-get", test_set_get);
        ADD("string/setget", test_setget);
        ADD("string/getdel-mget-mset", test_getdel_mget_mset);
        ADD("string/incr", test_incr);
        ADD("string/incrfloat", test_incrfloat);
        ADD("string/append-ranges", test_append_ranges);
        ADD("hash/all", test_hash);
        ADD("hash/order", test_hash_order);
        ADD("list/all", test_list);
        ADD("list/ring", test_list_ring);
        ADD("set/all", test_set);
        ADD("blocking/fifo", test_blocking);
        g_test_add_func("/store/blocking/reentrant", test_blocking_reentrant);
        g_test_add_func("/store/limits", test_limits);
        ADD("notify/reads-silent", test_reads_silent);
        return g_test_run();
}
