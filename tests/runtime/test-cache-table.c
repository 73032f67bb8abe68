/* SPDX-License-Identifier: MIT */
/* The client-side cache's logic on its own (bindings/runtime/cache-table.c): the bucket function
 * with the protocol's fixed vectors, the bounded LRU table, the read-only sequence page and the
 * freshness rule, the placeholders.  No bus. */
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache-table.h"

static uint64_t H(const char *s) {
        return cache_fnv1a(s, strlen(s));
}

static void test_fnv(void) {
        /* the vectors of CACHING-PROTOCOL.md, checked on the hub's side too */
        g_assert_cmphex(H(""), ==, UINT64_C(0xcbf29ce484222325));
        g_assert_cmphex(H("a"), ==, UINT64_C(0xaf63dc4c8601ec8c));
        g_assert_cmphex(H("foobar"), ==, UINT64_C(0x85944171f73967e8));
        /* bytes, not characters: a key with bytes >= 0x80 hashes them unsigned */
        g_assert_cmphex(cache_fnv1a("\xff", 1), ==, (UINT64_C(0xcbf29ce484222325) ^ 0xff) * UINT64_C(0x100000001b3));
}

static void test_table(void) {
        CacheTable t;
        char k[32];

        g_assert_cmpint(cache_table_init(&t, 0), ==, -EINVAL);
        g_assert_cmpint(cache_table_init(&t, 4), ==, 0);

        /* a value, an absence, hash fields of one key: distinct entries */
        g_assert_cmpint(cache_table_put(&t, H("a"), "a", NULL, false, NULL, 1, 0, 10), ==, 0);
        g_assert_cmpint(cache_table_put(&t, H("h"), "h", "f1", false, NULL, 2, 0, 10), ==, 0);
        g_assert_cmpint(cache_table_put(&t, H("h"), "h", "f2", false, NULL, 3, 0, 10), ==, 0);
        g_assert_cmpuint(t.n_entries, ==, 3);
        g_assert_nonnull(cache_table_lookup(&t, H("a"), "a", NULL));
        g_assert_null(cache_table_lookup(&t, H("a"), "a", "f1"));
        g_assert_null(cache_table_lookup(&t, H("h"), "h", NULL));
        g_assert_cmpuint(cache_table_lookup(&t, H("h"), "h", "f2")->seq, ==, 3);

        /* replacing keeps one entry */
        g_assert_cmpint(cache_table_put(&t, H("a"), "a", NULL, false, NULL, 7, 0, 11), ==, 0);
        g_assert_cmpuint(t.n_entries, ==, 3);
        g_assert_cmpuint(cache_table_lookup(&t, H("a"), "a", NULL)->seq, ==, 7);

        /* an invalidation of a key takes every field of it */
        g_assert_cmpuint(cache_table_remove_key(&t, "h", NULL), ==, 2);
        g_assert_cmpuint(cache_table_remove_key(&t, "h", NULL), ==, 0);
        g_assert_cmpuint(t.n_entries, ==, 1);

        /* bounded: the one used least recently goes */
        for (int i = 0; i < 3; i++) {
                snprintf(k, sizeof k, "k%d", i);
                g_assert_cmpint(cache_table_put(&t, H(k), k, NULL, false, NULL, i, 0, 12), ==, 0);
        }
        g_assert_cmpuint(t.n_entries, ==, 4);
        cache_table_touch(&t, cache_table_lookup(&t, H("a"), "a", NULL)); /* "k0" is the oldest now */
        g_assert_cmpint(cache_table_put(&t, H("k3"), "k3", NULL, false, NULL, 3, 0, 13), ==, 1);
        g_assert_cmpuint(t.n_entries, ==, 4);
        g_assert_null(cache_table_lookup(&t, H("k0"), "k0", NULL));
        g_assert_nonnull(cache_table_lookup(&t, H("a"), "a", NULL));
        g_assert_nonnull(cache_table_lookup(&t, H("k1"), "k1", NULL));
        /* many more: never above the bound */
        for (int i = 0; i < 1000; i++) {
                snprintf(k, sizeof k, "many%d", i);
                g_assert_cmpint(cache_table_put(&t, H(k), k, NULL, false, NULL, i, 0, 14), >=, 0);
                g_assert_cmpuint(t.n_entries, <=, 4);
        }
        g_assert_nonnull(cache_table_lookup(&t, H("many999"), "many999", NULL));
        g_assert_null(cache_table_lookup(&t, H("many995"), "many995", NULL));
        g_assert_cmpuint(cache_table_clear(&t), ==, 4);
        g_assert_null(t.lru_head);
        g_assert_null(t.lru_tail);
        cache_table_done(&t);
}

/* The hub's side: a memfd of BUCKETS counters mapped writable, and the read-only fd it passes. */
static uint64_t *hub_page(uint32_t buckets, int *ret_ro_fd) {
        char proc[64];
        int fd = memfd_create("test-seq", MFD_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, buckets * 8), ==, 0);
        uint64_t *w = mmap(NULL, buckets * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        g_assert_true(w != MAP_FAILED);
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        *ret_ro_fd = open(proc, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(*ret_ro_fd, >=, 0);
        close(fd);
        return w;
}

static bool mapped_read_only(const void *addr) {
        g_autofree char *maps = NULL;
        char want[32];

        g_assert_true(g_file_get_contents("/proc/self/maps", &maps, NULL, NULL));
        snprintf(want, sizeof want, "%lx-", (unsigned long) (uintptr_t) addr);
        for (char *line = maps; line && *line;) {
                char *nl = strchr(line, '\n');
                if (g_str_has_prefix(line, want)) {
                        char *perm = strchr(line, ' ');
                        return perm && strncmp(perm + 1, "r--s", 4) == 0;
                }
                line = nl ? nl + 1 : NULL;
        }
        return false;
}

static void test_page(void) {
        CachePage p = {};
        int ro;
        uint64_t *w = hub_page(16, &ro);

        /* hostile bucket counts and sizes */
        g_assert_cmpint(cache_page_map(&p, ro, 0), ==, -EINVAL);
        g_assert_cmpint(cache_page_map(&p, ro, 12), ==, -EINVAL);
        g_assert_cmpint(cache_page_map(&p, ro, CACHE_PAGE_MAX_BUCKETS * 2), ==, -EINVAL);
        g_assert_cmpint(cache_page_map(&p, ro, 32), ==, -EBADMSG);
        g_assert_null(p.counters);

        g_assert_cmpint(cache_page_map(&p, ro, 16), ==, 0);
        close(ro); /* the mapping stays */
        g_assert_true(mapped_read_only(p.counters));

        /* the hub's bumps are seen */
        uint64_t h = H("foobar");
        g_assert_cmpuint(cache_page_load(&p, h), ==, 0);
        __atomic_fetch_add(&w[h & 15], 1, __ATOMIC_RELEASE);
        g_assert_cmpuint(cache_page_load(&p, h), ==, 1);

        /* the freshness rule */
        CacheEntry e = { .hash = h, .seq = 1, .stored_ns = 1000 };
        g_assert_true(cache_entry_fresh(&e, &p, 2000, UINT64_MAX));
        g_assert_true(cache_entry_fresh(&e, &p, 2000, 1001));
        g_assert_false(cache_entry_fresh(&e, &p, 2001, 1001)); /* max age */
        e.deadline_ns = 5000;
        g_assert_true(cache_entry_fresh(&e, &p, 4999, UINT64_MAX));
        g_assert_false(cache_entry_fresh(&e, &p, 5000, UINT64_MAX)); /* TTL ended */
        e.deadline_ns = 0;
        __atomic_fetch_add(&w[h & 15], 1, __ATOMIC_RELEASE); /* a write of any key of the bucket */
        g_assert_false(cache_entry_fresh(&e, &p, 2000, UINT64_MAX));
        /* another bucket's bump does not matter */
        e.seq = 2;
        __atomic_fetch_add(&w[(h + 1) & 15], 1, __ATOMIC_RELEASE);
        g_assert_true(cache_entry_fresh(&e, &p, 2000, UINT64_MAX));

        /* an Invalidate takes the entries whose counter moved, not one read after the change */
        CacheTable t;
        g_assert_cmpint(cache_table_init(&t, 8), ==, 0);
        uint64_t now_seq = cache_page_load(&p, h);
        g_assert_cmpint(cache_table_put(&t, h, "foobar", NULL, false, NULL, now_seq, 0, 1), ==, 0);
        g_assert_cmpint(cache_table_put(&t, h, "foobar", "f", false, NULL, now_seq - 1, 0, 1), ==, 0);
        g_assert_cmpuint(cache_table_remove_key(&t, "foobar", &p), ==, 1);
        g_assert_nonnull(cache_table_lookup(&t, h, "foobar", NULL));
        g_assert_null(cache_table_lookup(&t, h, "foobar", "f"));
        __atomic_fetch_add(&w[h & 15], 1, __ATOMIC_RELEASE);
        g_assert_cmpuint(cache_table_remove_key(&t, "foobar", &p), ==, 1);
        g_assert_cmpuint(t.n_entries, ==, 0);
        cache_table_done(&t);

        cache_page_unmap(&p);
        g_assert_null(p.counters);
        munmap(w, 16 * 8);
}

static void test_placeholders(void) {
        CacheFetch a = { .key = (char *) "a" }, b = { .key = (char *) "b" }, a2 = { .key = (char *) "a" };

        a.next = &b;
        b.prev = &a;
        b.next = &a2;
        a2.prev = &b;
        cache_fetches_invalidate(&a, "a");
        g_assert_true(a.invalidated);
        g_assert_false(b.invalidated);
        g_assert_true(a2.invalidated);
        cache_fetches_invalidate(&a, "zz");
        g_assert_false(b.invalidated);
        cache_fetches_invalidate(&a, NULL); /* Invalidate([]) */
        g_assert_true(b.invalidated);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/cache-table/fnv", test_fnv);
        g_test_add_func("/cache-table/table", test_table);
        g_test_add_func("/cache-table/page", test_page);
        g_test_add_func("/cache-table/placeholders", test_placeholders);
        return g_test_run();
}
