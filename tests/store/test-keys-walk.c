/* SPDX-License-Identifier: MIT */
/*
 * Keys in slices and Scan's work bound (service/store/keyspace.c):
 *  - a walk in the smallest slices returns what store_keys() does, each key once;
 *  - writes between slices (mass deletes that would shrink the table, inserts that grow it)
 *    never make a walk return a key twice, and every key present throughout comes back;
 *  - Flush ends a walk; a walk survives its store being freed; max_keys gives -ENOBUFS;
 *  - one Scan call stops after STORE_SLICE_WORK units even when count asks for more, so a
 *    costly glob over long keys returns early (before, it ran through 10 * count buckets).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* before glib.h, which redefines MIN and MAX without complaint */
#include "store-internal.h"

#include <glib.h>

#include "store-test.h"

#define T0 1000

static Store *new_store(void) {
        Store *s;
        g_assert_cmpint(store_new(&s, NULL, NULL, NULL, NULL, NULL), ==, 0);
        return s;
}

static void set_key(Store *s, const char *key) {
        StoreValue v = SV_S("v");
        g_assert_cmpint(store_set(s, key, &v, 0, 0, T0), ==, 1);
}

static void del_key(Store *s, const char *key) {
        size_t n = 0;
        g_assert_cmpint(store_del(s, &key, 1, T0, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
}

/* Collects the walk's keys as a set; fails on a duplicate. */
static int found_key(void *userdata, const char *key, size_t len) {
        GHashTable *set = userdata;

        g_assert_cmpuint(strlen(key), ==, len);
        if (!g_hash_table_add(set, g_strdup(key)))
                g_error("the walk returned '%s' twice", key);
        return 0;
}

static GHashTable *new_set(void) {
        return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}

static int found_fail(void *userdata, const char *key, size_t len) {
        return -ENOMEM;
}

static void test_walk_equals_keys(void) {
        Store *s = new_store();
        GHashTable *set = new_set();
        StoreKeys *k;
        const char **keys;
        size_t n, steps = 0;
        int r;

        for (int i = 0; i < 10000; i++) {
                g_autofree char *key = g_strdup_printf("key:%d", i);
                set_key(s, key);
        }
        g_assert_cmpint(store_keys(s, "key:1*", T0, &keys, &n), ==, 0);
        g_assert_cmpint(store_keys_begin(s, "key:1*", 0, &k), ==, 0);
        while ((r = store_keys_step(k, T0, 1, found_key, set)) == 0)
                steps++;
        g_assert_cmpint(r, ==, 1);
        g_assert_cmpuint(steps, >, 1000);
        g_assert_cmpuint(g_hash_table_size(set), ==, n);
        for (size_t i = 0; i < n; i++)
                g_assert_true(g_hash_table_contains(set, keys[i]));
        free(keys);
        store_keys_free(k);

        /* "" matches nothing, "*" everything */
        g_hash_table_remove_all(set);
        g_assert_cmpint(store_keys_begin(s, "", 0, &k), ==, 0);
        g_assert_cmpint(store_keys_step(k, T0, STORE_SLICE_WORK, found_key, set), ==, 1);
        g_assert_cmpuint(g_hash_table_size(set), ==, 0);
        store_keys_free(k);
        g_assert_cmpint(store_keys_begin(s, "*", 0, &k), ==, 0);
        while ((r = store_keys_step(k, T0, 100, found_key, set)) == 0)
                ;
        g_assert_cmpuint(g_hash_table_size(set), ==, 10000);
        store_keys_free(k);

        /* the callback's error stops the walk */
        g_assert_cmpint(store_keys_begin(s, "*", 0, &k), ==, 0);
        g_assert_cmpint(store_keys_step(k, T0, 100, found_fail, NULL), ==, -ENOMEM);
        g_assert_cmpint(store_keys_step(k, T0, 100, found_fail, NULL), ==, 1);
        store_keys_free(k);
        g_hash_table_unref(set);
        store_free(s);
}

static void test_walk_writes_between_slices(void) {
        Store *s = new_store();
        StoreKeys *k;
        int r, round = 0;

        /* "stay:*" are present throughout; "tmp:*" come and go in large numbers, so that
         * the table would shrink (and grow again) many times during the walk */
        for (int i = 0; i < 2000; i++) {
                g_autofree char *key = g_strdup_printf("stay:%d", i);
                set_key(s, key);
        }
        for (int i = 0; i < 30000; i++) {
                g_autofree char *key = g_strdup_printf("tmp:%d", i);
                set_key(s, key);
        }
        GHashTable *set = new_set();
        g_assert_cmpint(store_keys_begin(s, "*", 0, &k), ==, 0);
        while ((r = store_keys_step(k, T0, 64, found_key, set)) == 0) {
                round++;
                if (round % 50 == 0) {
                        /* remove every tmp key, then bring some back */
                        for (int i = 0; i < 30000; i++) {
                                g_autofree char *key = g_strdup_printf("tmp:%d", i);
                                const char *kk = key;
                                size_t n = 0;
                                g_assert_cmpint(store_del(s, &kk, 1, T0, &n), ==, 0);
                        }
                } else if (round % 50 == 25) {
                        for (int i = 0; i < 30000; i += 2) {
                                g_autofree char *key = g_strdup_printf("tmp:%d", i);
                                set_key(s, key);
                        }
                }
        }
        g_assert_cmpint(r, ==, 1);
        g_assert_cmpint(round, >, 100);
        for (int i = 0; i < 2000; i++) {
                g_autofree char *key = g_strdup_printf("stay:%d", i);
                if (!g_hash_table_contains(set, key))
                        g_error("'%s' was present throughout but not returned", key);
        }
        g_test_message("%d slices, %u keys", round, g_hash_table_size(set));
        g_hash_table_unref(set);
        store_keys_free(k);

        store_free(s);
}

static void test_walk_pauses_shrink(void) {
        Store *s = new_store();
        StoreKeys *k;
        size_t size;

        for (int i = 0; i < 10000; i++) {
                g_autofree char *key = g_strdup_printf("key:%d", i);
                set_key(s, key);
        }
        size = s->keys.size;
        g_assert_cmpint(store_keys_begin(s, "*", 0, &k), ==, 0);
        GHashTable *set = new_set();
        g_assert_cmpint(store_keys_step(k, T0, 10, found_key, set), ==, 0);
        for (int i = 10; i < 10000; i++) {
                g_autofree char *key = g_strdup_printf("key:%d", i);
                del_key(s, key);
        }
        g_assert_cmpuint(s->keys.size, ==, size);      /* paused */
        while (store_keys_step(k, T0, 10, found_key, set) == 0)
                ;
        g_assert_cmpuint(s->keys.size, <=, 32);        /* shrunk as the walk ended */
        store_keys_free(k);
        g_hash_table_unref(set);
        store_free(s);
}

static void test_walk_flush_free_limit(void) {
        Store *s = new_store();
        GHashTable *set = new_set();
        StoreKeys *k, *k2;
        GHashTableIter it;
        const char *key;

        for (int i = 0; i < 1000; i++) {
                g_autofree char *name = g_strdup_printf("key:%d", i);
                set_key(s, name);
        }
        /* Flush ends the walk with what it had */
        g_assert_cmpint(store_keys_begin(s, "*", 0, &k), ==, 0);
        g_assert_cmpint(store_keys_step(k, T0, 10, found_key, set), ==, 0);
        g_assert_cmpint(store_flush(s), ==, 0);
        set_key(s, "after");
        g_assert_cmpint(store_keys_step(k, T0, 10, found_key, set), ==, 1);
        g_assert_cmpuint(g_hash_table_size(set), <, 1000);
        g_hash_table_iter_init(&it, set);
        while (g_hash_table_iter_next(&it, (gpointer *) &key, NULL))
                g_assert_true(g_str_has_prefix(key, "key:"));
        store_keys_free(k);

        /* max_keys */
        for (int i = 0; i < 100; i++) {
                g_autofree char *name = g_strdup_printf("key:%d", i);
                set_key(s, name);
        }
        g_hash_table_remove_all(set);
        g_assert_cmpint(store_keys_begin(s, "key:*", 50, &k), ==, 0);
        g_assert_cmpint(store_keys_step(k, T0, STORE_SLICE_WORK, found_key, set), ==, -ENOBUFS);
        g_assert_cmpstr(store_last_limit(s), ==, "reply-items");
        g_assert_cmpuint(g_hash_table_size(set), ==, 50);
        store_keys_free(k);

        /* a walk outlives its store, and one may be freed before it */
        g_assert_cmpint(store_keys_begin(s, "*", 0, &k), ==, 0);
        g_assert_cmpint(store_keys_begin(s, "*", 0, &k2), ==, 0);
        g_hash_table_remove_all(set);
        g_assert_cmpint(store_keys_step(k, T0, 10, found_key, set), ==, 0);
        store_keys_free(k2);
        store_free(s);
        g_assert_cmpint(store_keys_step(k, T0, 10, found_key, set), ==, 1);
        store_keys_free(k);
        g_hash_table_unref(set);
}

static void test_scan_work_bound(void) {
        StoreLimits l;
        Store *s;
        const char *pattern = "*a*a*a*a*a*a*a*ab";
        const char **keys;
        uint64_t cursor = 0;
        size_t n, calls = 0, total = 0;
        char key[501];

        store_limits_default(&l);
        g_assert_cmpint(store_new(&s, &l, NULL, NULL, NULL, NULL), ==, 0);
        memset(key, 'a', 500);
        key[500] = 0;
        for (int i = 0; i < 5000; i++) {
                int len = snprintf(key, sizeof(key), "%d", i);
                key[len] = 'a';
                if (i % 100 == 0)
                        key[499] = 'b';   /* 50 of them match */
                set_key(s, key);
                key[499] = 'a';
        }
        /* count asks for everything; the work bound stops the call well before */
        g_assert_cmpint(store_scan(s, 0, pattern, 100000, T0, &cursor, &keys, &n), ==, 0);
        free(keys);
        g_assert_cmpuint(cursor, !=, 0);
        /* and the whole scan still finds every match */
        cursor = 0;
        do {
                g_assert_cmpint(store_scan(s, cursor, pattern, 100000, T0, &cursor, &keys, &n), ==, 0);
                free(keys);
                total += n;
                calls++;
        } while (cursor != 0);
        g_test_message("Scan('%s') over 5000 keys of 500 bytes: %zu calls", pattern, calls);
        g_assert_cmpuint(total, ==, 50);
        store_free(s);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/store/keys-walk/equals-keys", test_walk_equals_keys);
        g_test_add_func("/store/keys-walk/writes-between-slices", test_walk_writes_between_slices);
        g_test_add_func("/store/keys-walk/pauses-shrink", test_walk_pauses_shrink);
        g_test_add_func("/store/keys-walk/flush-free-limit", test_walk_flush_free_limit);
        g_test_add_func("/store/keys-walk/scan-work-bound", test_scan_work_bound);
        return g_test_run();
}
