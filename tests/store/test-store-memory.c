/* SPDX-License-Identifier: MIT */

/* Memory: 100,000 keys with random TTLs come and go without leaving memory behind, and
 * a small bench of bytes per small key (compare: Redis ~ 60-90 bytes of overhead) and per
 * hash field. */

#include <errno.h>
#include <malloc.h>
#include <stdio.h>

#include "store-test.h"

#define T0 UINT64_C(1000000)

static size_t heap_used(void) {
        struct mallinfo2 m = mallinfo2();

        return m.uordblks + m.hblkhd; /* incl. mmapped blocks (big bucket arrays) */
}

static size_t n_events;

static void count_notify(void *userdata, const char *key, const char *event) {
        n_events++;
}

static void test_ttl_memory(void) {
        GRand *rnd = g_rand_new_with_seed(1234);
        StoreAccount acc = {};
        Store *s;
        uint64_t mem_before, mem_full;
        size_t heap_before, heap_full, heap_after, expired, lazily = 0;
        uint64_t max_deadline = 0;
        char k[32];

        g_assert_cmpint(store_new(&s, NULL, &acc, count_notify, NULL, NULL), ==, 0);
        mem_before = store_memory(s);
        heap_before = heap_used();
        for (int i = 0; i < 100000; i++) {
                uint64_t ttl = (uint64_t) g_rand_int_range(rnd, 1, 60000);
                StoreValue v = SV_S(i % 2 ? "small" : "a somewhat longer value string");

                snprintf(k, sizeof k, "key:%d", i);
                g_assert_cmpint(store_set(s, k, &v, ttl, 0, T0), ==, 1);
                max_deadline = MAX(max_deadline, T0 + ttl);
        }
        n_events = 0;
        mem_full = store_memory(s);
        heap_full = heap_used();
        g_assert_cmpuint(store_dbsize(s), ==, 100000);

        /* at the deadline none is readable: half checked lazily by Get */
        for (int i = 0; i < 100000; i += 2) {
                StoreValue v;

                snprintf(k, sizeof k, "key:%d", i);
                g_assert_cmpint(store_get(s, k, max_deadline, &v), ==, -ENOKEY);
                lazily++;
        }
        expired = store_expire_due(s, max_deadline, 0);
        g_assert_cmpuint(expired + lazily, ==, 100000);
        g_assert_cmpuint(n_events, ==, 100000); /* one "expired" each */
        g_assert_cmpuint(store_dbsize(s), ==, 0);
        g_assert_cmpuint(store_next_deadline(s), ==, UINT64_MAX);
        heap_after = heap_used();

        g_test_message("100k keys with TTL: accounted %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT
                       " -> %" G_GUINT64_FORMAT " bytes; heap (mallinfo2) %zu -> %zu -> %zu bytes",
                       mem_before, mem_full, store_memory(s), heap_before, heap_full, heap_after);
        g_assert_cmpuint(store_memory(s), ==, mem_before);
        g_assert_cmpuint(acc.used, ==, mem_before);
        /* the heap returns to where it was; mallinfo2 counts chunks parked in glibc's
         * per-thread tcache (at most 7 per size class) as used, hence a small tolerance */
        g_assert_cmpint((gssize) heap_after - (gssize) heap_before, <, 16384);
        store_free(s);
        g_rand_free(rnd);
}

static void bench(const char *value, size_t n) {
        Store *s;
        StoreAccount acc = {};
        size_t heap_before, heap_after;
        StoreValue v = SV_S(value);
        char k[32];
        gint64 t0, t1;

        g_assert_cmpint(store_new(&s, NULL, &acc, NULL, NULL, NULL), ==, 0);
        heap_before = heap_used();
        t0 = g_get_monotonic_time();
        for (size_t i = 0; i < n; i++) {
                snprintf(k, sizeof k, "key:%zu", i);
                g_assert_cmpint(store_set(s, k, &v, 0, 0, 0), ==, 1);
        }
        t1 = g_get_monotonic_time();
        heap_after = heap_used();
        g_test_message("bench: %zu keys \"key:N\" = \"%s\" (%zu bytes): accounted %.1f bytes/key, "
                       "heap %.1f bytes/key (key+value+overhead), %.0f ns/set",
                       n, value, strlen(value), (double) store_memory(s) / (double) n,
                       (double) (heap_after - heap_before) / (double) n, (double) (t1 - t0) * 1000.0 / (double) n);
        store_free(s);
        g_assert_cmpuint(acc.used, ==, 0);
}

/* Hashes: nkeys hashes "h:N" of nfields fields "field:M" = "value" each. */
static void bench_hash(size_t nkeys, size_t nfields) {
        Store *s;
        StoreAccount acc = {};
        StoreLimits l;
        size_t heap_before, heap_after;
        StoreValue v = SV_S("value");
        char k[32], f[32];

        store_limits_default(&l);
        l.max_memory = UINT64_MAX;
        g_assert_cmpint(store_new(&s, &l, &acc, NULL, NULL, NULL), ==, 0);
        heap_before = heap_used();
        for (size_t i = 0; i < nkeys; i++) {
                snprintf(k, sizeof k, "h:%zu", i);
                for (size_t j = 0; j < nfields; j++) {
                        const char *fp = f;

                        snprintf(f, sizeof f, "field:%zu", j);
                        g_assert_cmpint(store_hset(s, k, &fp, &v, 1, 0, NULL), ==, 0);
                }
        }
        heap_after = heap_used();
        g_test_message("bench: %zu hashes of %zu fields \"field:M\" = \"value\": accounted %.1f bytes/field, "
                       "heap %.1f bytes/field (key and hash overhead shared out)",
                       nkeys, nfields, (double) store_memory(s) / (double) (nkeys * nfields),
                       (double) (heap_after - heap_before) / (double) (nkeys * nfields));
        store_free(s);
        g_assert_cmpuint(acc.used, ==, 0);
}

static void test_bench(void) {
        size_t n = g_test_thorough() || !g_getenv("STORE_QUICK") ? 1000000 : 100000;

        bench("value", n);
        bench("value-of-16-byte", n);
        bench_hash(n / 10, 10);
        bench_hash(n / 100, 100);
        bench_hash(1, n);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/store/memory/ttl-100k", test_ttl_memory);
        g_test_add_func("/store/memory/bench", test_bench);
        return g_test_run();
}
