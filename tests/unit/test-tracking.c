/* SPDX-License-Identifier: MIT */
/* Unit tests of client-side caching's logic (service/tracking.c), without a bus: the bucket
 * hash, the sequence page and its read-only fd, keys and prefix mode, noloop, the three bounds,
 * flush, re-configuration and release. */
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tracking.h"

/* What ops->invalidate reported, in order. */
typedef struct Report {
        TrackOwner *owner;
        void *space;
        size_t n;
        char *first;            /* NULL when n == 0 */
} Report;

static GArray *reports;
static TrackOwner *writer;      /* is_writer() answers true for it */

static void on_invalidate(TrackOwner *owner, void *space, const char *const *keys, size_t n) {
        Report r = { owner, space, n, n > 0 ? g_strdup(keys[0]) : NULL };

        g_assert_true(n <= 1);
        g_array_append_val(reports, r);
}

static bool on_is_writer(TrackOwner *owner) {
        return owner == writer;
}

static const TrackOps ops = { on_invalidate, on_is_writer };

static void report_clear(gpointer p) {
        g_free(((Report *) p)->first);
}

static void reset(void) {
        g_array_set_size(reports, 0);
        writer = NULL;
}

static const Report *report_at(guint i) {
        g_assert_cmpuint(i, <, reports->len);
        return &g_array_index(reports, Report, i);
}

static void assert_report(guint i, TrackOwner *owner, const char *key) {
        const Report *r = report_at(i);

        g_assert_true(r->owner == owner);
        if (key) {
                g_assert_cmpuint(r->n, ==, 1);
                g_assert_cmpstr(r->first, ==, key);
        } else
                g_assert_cmpuint(r->n, ==, 0);
}

static const TrackOptions keys_mode = { .mode = TRACK_MODE_KEYS };

static void test_hash(void) {
        /* the vectors the library checks too (CACHING-PROTOCOL.md) */
        g_assert_cmphex(track_hash("", 0), ==, UINT64_C(0xcbf29ce484222325));
        g_assert_cmphex(track_hash("a", 1), ==, UINT64_C(0xaf63dc4c8601ec8c));
        g_assert_cmphex(track_hash("foobar", 6), ==, UINT64_C(0x85944171f73967e8));
        g_assert_cmpuint(track_bucket("foobar"), ==, UINT64_C(0x85944171f73967e8) & (TRACK_BUCKETS - 1));
        g_assert_cmpuint(track_bucket("a"), ==, 0xec8c);
}

static void test_options(void) {
        TrackHub *h = NULL;
        size_t a = 99, b = 99;

        g_assert_cmpint(track_hub_new(&ops, 100, 1000, &h), ==, 0);
        g_assert_cmpint(track_options_check(h, &keys_mode, NULL, NULL), ==, 0);

        TrackOptions o = { .mode = TRACK_MODE_KEYS, .max_keys = 100 };
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, 0);
        o.max_keys = 101;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, -ENOBUFS);

        const char *one[] = { "user:" };
        o = (TrackOptions) { .mode = TRACK_MODE_KEYS, .prefixes = one, .n_prefixes = 1 };
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, -EINVAL);
        o.mode = TRACK_MODE_PREFIX;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, 0);
        o.n_prefixes = 0;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, -EINVAL);
        o.mode = 7;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, -EINVAL);

        const char *overlap[] = { "cfg:", "user:", "user:1" };
        o = (TrackOptions) { .mode = TRACK_MODE_PREFIX, .prefixes = overlap, .n_prefixes = 3 };
        g_assert_cmpint(track_options_check(h, &o, &a, &b), ==, -EINVAL);
        g_assert_cmpuint(a, ==, 1);
        g_assert_cmpuint(b, ==, 2);
        const char *same[] = { "x", "x" };
        o.prefixes = same;
        o.n_prefixes = 2;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, -EINVAL);
        const char *every[] = { "", "x" };
        o.prefixes = every;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, -EINVAL);
        o.n_prefixes = 1;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, 0);

        char names[TRACK_MAX_PREFIXES + 1][8];
        const char *many[TRACK_MAX_PREFIXES + 1];
        for (size_t i = 0; i <= TRACK_MAX_PREFIXES; i++) {
                snprintf(names[i], sizeof(names[i]), "%03zu:", i);
                many[i] = names[i];
        }
        o.prefixes = many;
        o.n_prefixes = TRACK_MAX_PREFIXES;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, 0);
        o.n_prefixes = TRACK_MAX_PREFIXES + 1;
        g_assert_cmpint(track_options_check(h, &o, NULL, NULL), ==, -ENOBUFS);
        track_hub_free(h);
}

static void test_page(void) {
        TrackHub *h = NULL;
        TrackSpace *s = NULL;
        TrackOwner a = {};
        int ns = 1, fd = -1;

        reset();
        g_assert_cmpint(track_hub_new(&ops, 100, 1000, &h), ==, 0);
        g_assert_cmpint(track_space_new(h, &ns, &s), ==, 0);
        g_assert_null(track_space_page(s));
        /* nobody tracks: a change costs nothing and reports nothing */
        track_key_changed(s, "k", true);
        g_assert_cmpuint(track_sequence(s, "k"), ==, 0);

        g_assert_cmpint(track_start(s, &a, &keys_mode, &fd), ==, 0);
        g_assert_cmpint(fd, >=, 0);
        g_assert_nonnull(track_space_page(s));

        /* the fd maps for reading only, and cannot be written through */
        size_t bytes = TRACK_BUCKETS * sizeof(uint64_t);
        g_assert_true(mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        const uint64_t *page = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
        g_assert_true(page != MAP_FAILED);
        g_assert_cmpint(mprotect((void *) page, bytes, PROT_READ | PROT_WRITE), <, 0);
        uint64_t one = 1;
        g_assert_cmpint(pwrite(fd, &one, sizeof(one), 0), <, 0);

        size_t bk = track_bucket("k");
        uint64_t before = page[bk];
        g_assert_cmpuint(track_sequence(s, "k"), ==, before);
        track_key_changed(s, "k", true);
        g_assert_cmpuint(page[bk], ==, before + 1);
        g_assert_cmpuint(track_sequence(s, "k"), ==, before + 1);
        /* another bucket did not move */
        size_t bother = track_bucket("other");
        g_assert_cmpuint(bother, !=, bk);
        g_assert_cmpuint(page[bother], ==, 0);

        /* a flush moves every counter */
        track_space_flush(s);
        for (size_t i = 0; i < TRACK_BUCKETS; i++)
                g_assert_cmpuint(page[i], >=, 1);
        g_assert_cmpuint(page[bk], ==, before + 2);

        /* dropping the space moves them again; the mapping stays valid for the tracker */
        reset();
        track_space_free(s);
        g_assert_cmpuint(page[bk], ==, before + 3);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, NULL);
        g_assert_true(LIST_IS_EMPTY(a.trackers));
        munmap((void *) page, bytes);
        track_hub_free(h);
}

static void test_keys_mode(void) {
        TrackHub *h = NULL;
        TrackSpace *s = NULL;
        TrackOwner a = {}, b = {};
        TrackStats st;
        int ns = 1, fd;

        reset();
        g_assert_cmpint(track_hub_new(&ops, 100, 1000, &h), ==, 0);
        g_assert_cmpint(track_space_new(h, &ns, &s), ==, 0);
        g_assert_cmpint(track_start(s, &a, &keys_mode, &fd), ==, 0);
        g_assert_cmpint(track_start(s, &b, &keys_mode, &fd), ==, 0);
        Tracker *ta = track_find(s, &a), *tb = track_find(s, &b);
        g_assert_nonnull(ta);
        g_assert_nonnull(tb);

        g_assert_cmpint(track_read(ta, "k"), ==, 0);
        g_assert_cmpint(track_read(ta, "k"), ==, 0);   /* once per pair */
        g_assert_cmpint(track_read(tb, "k"), ==, 0);
        g_assert_cmpint(track_read(ta, "j"), ==, 0);
        track_hub_get_stats(h, &st);
        g_assert_cmpuint(st.owners, ==, 2);
        g_assert_cmpuint(st.keys, ==, 3);

        track_key_changed(s, "k", true);
        g_assert_cmpuint(reports->len, ==, 2);
        assert_report(0, &a, "k");
        assert_report(1, &b, "k");
        g_assert_true(report_at(0)->space == &ns);
        /* the pairs are gone: a second change reports nothing until read again */
        track_key_changed(s, "k", true);
        g_assert_cmpuint(reports->len, ==, 2);
        g_assert_cmpuint(tracker_n_keys(ta), ==, 1);
        g_assert_cmpint(track_read(ta, "k"), ==, 0);
        track_key_changed(s, "k", false);
        g_assert_cmpuint(reports->len, ==, 3);
        assert_report(2, &a, "k");

        /* noloop: the writer hears nothing of its own write, the pair is forgotten anyway */
        reset();
        TrackOptions nl = { .mode = TRACK_MODE_KEYS, .noloop = true };
        g_assert_cmpint(track_start(s, &a, &nl, &fd), ==, 0);   /* re-configured: [] */
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, NULL);
        g_assert_cmpuint(tracker_n_keys(ta), ==, 0);            /* "j" forgotten */
        g_assert_true(track_find(s, &a) == ta);
        reset();
        g_assert_cmpint(track_read(ta, "n"), ==, 0);
        g_assert_cmpint(track_read(tb, "n"), ==, 0);
        writer = &a;
        track_key_changed(s, "n", true);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &b, "n");
        g_assert_cmpuint(tracker_n_keys(ta), ==, 0);
        /* expiry is nobody's write: noloop does not hide it */
        reset();
        writer = &a;
        g_assert_cmpint(track_read(ta, "e"), ==, 0);
        track_key_changed(s, "e", false);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, "e");

        /* flush: [] to everyone, every pair forgotten */
        reset();
        g_assert_cmpint(track_read(ta, "x"), ==, 0);
        g_assert_cmpint(track_read(tb, "y"), ==, 0);
        track_space_flush(s);
        g_assert_cmpuint(reports->len, ==, 2);
        track_hub_get_stats(h, &st);
        g_assert_cmpuint(st.keys, ==, 0);

        /* stop: [] to it; idempotent */
        reset();
        g_assert_cmpint(track_read(ta, "x"), ==, 0);
        g_assert_cmpint(track_stop(s, &a), ==, 1);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, NULL);
        g_assert_cmpint(track_stop(s, &a), ==, 0);
        g_assert_null(track_find(s, &a));
        track_hub_get_stats(h, &st);
        g_assert_cmpuint(st.owners, ==, 1);
        g_assert_cmpuint(st.keys, ==, 0);

        /* release (death): nothing reported, everything freed */
        reset();
        g_assert_cmpint(track_read(tb, "x"), ==, 0);
        track_owner_release_all(&b);
        g_assert_cmpuint(reports->len, ==, 0);
        track_hub_get_stats(h, &st);
        g_assert_cmpuint(st.owners, ==, 0);
        g_assert_cmpuint(st.keys, ==, 0);
        g_assert_cmpuint(track_space_n_trackers(s), ==, 0);
        track_key_changed(s, "x", true);
        g_assert_cmpuint(reports->len, ==, 0);
        track_space_free(s);
        track_hub_free(h);
}

static void test_prefix_mode(void) {
        TrackHub *h = NULL;
        TrackSpace *s = NULL;
        TrackOwner a = {}, b = {};
        int ns = 1, fd;
        const char *pfx[] = { "user:", "cfg." };
        TrackOptions o = { .mode = TRACK_MODE_PREFIX, .prefixes = pfx, .n_prefixes = 2 };
        const char *all[] = { "" };
        TrackOptions every = { .mode = TRACK_MODE_PREFIX, .prefixes = all, .n_prefixes = 1, .noloop = true };

        reset();
        g_assert_cmpint(track_hub_new(&ops, 100, 1000, &h), ==, 0);
        g_assert_cmpint(track_space_new(h, &ns, &s), ==, 0);
        g_assert_cmpint(track_start(s, &a, &o, &fd), ==, 0);
        g_assert_cmpint(track_start(s, &b, &every, &fd), ==, 0);
        /* reads remember nothing in prefix mode */
        g_assert_cmpint(track_read(track_find(s, &a), "user:1"), ==, 0);
        g_assert_cmpuint(tracker_n_keys(track_find(s, &a)), ==, 0);

        track_key_changed(s, "user:1", true);
        track_key_changed(s, "user:1", true);   /* once per change */
        track_key_changed(s, "cfg.x", true);
        track_key_changed(s, "users", true);    /* no prefix of a's */
        g_assert_cmpuint(reports->len, ==, 7);
        assert_report(0, &a, "user:1");
        assert_report(1, &b, "user:1");
        assert_report(2, &a, "user:1");
        assert_report(3, &b, "user:1");
        assert_report(4, &a, "cfg.x");
        assert_report(5, &b, "cfg.x");
        assert_report(6, &b, "users");
        /* noloop in prefix mode */
        reset();
        writer = &b;
        track_key_changed(s, "user:2", true);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, "user:2");

        /* a bad re-configuration changes nothing */
        reset();
        const char *bad[] = { "a", "ab" };
        TrackOptions ob = { .mode = TRACK_MODE_PREFIX, .prefixes = bad, .n_prefixes = 2 };
        g_assert_cmpint(track_start(s, &a, &ob, &fd), ==, -EINVAL);
        g_assert_cmpuint(reports->len, ==, 0);
        track_key_changed(s, "cfg.y", true);
        g_assert_cmpuint(reports->len, ==, 2);
        assert_report(0, &a, "cfg.y");
        assert_report(1, &b, "cfg.y");

        /* switching modes: a in keys mode hears only of what it read */
        reset();
        g_assert_cmpint(track_start(s, &a, &keys_mode, &fd), ==, 0);
        assert_report(0, &a, NULL);
        track_key_changed(s, "user:3", true);
        g_assert_cmpuint(reports->len, ==, 2);
        assert_report(1, &b, "user:3");
        g_assert_cmpint(track_read(track_find(s, &a), "user:3"), ==, 0);
        track_key_changed(s, "user:3", true);
        g_assert_cmpuint(reports->len, ==, 4);
        assert_report(2, &a, "user:3");
        assert_report(3, &b, "user:3");
        /* and back to prefix mode */
        reset();
        g_assert_cmpint(track_start(s, &a, &o, &fd), ==, 0);
        track_key_changed(s, "user:4", true);
        track_key_changed(s, "user:4", true);
        g_assert_cmpuint(reports->len, ==, 5);
        assert_report(0, &a, NULL);
        assert_report(1, &b, "user:4");
        assert_report(2, &a, "user:4");
        assert_report(3, &b, "user:4");
        assert_report(4, &a, "user:4");

        track_owner_release_all(&a);
        track_owner_release_all(&b);
        track_space_free(s);
        track_hub_free(h);
}

static void test_bounds(void) {
        TrackHub *h = NULL;
        TrackSpace *s1 = NULL, *s2 = NULL;
        TrackOwner a = {}, b = {};
        TrackStats st;
        int n1 = 1, n2 = 2, fd;

        reset();
        /* 4 pairs per owner, 6 in the hub */
        g_assert_cmpint(track_hub_new(&ops, 4, 6, &h), ==, 0);
        g_assert_cmpint(track_space_new(h, &n1, &s1), ==, 0);
        g_assert_cmpint(track_space_new(h, &n2, &s2), ==, 0);

        /* the tracker's own bound (max_keys 2): the oldest goes, as a change of it */
        TrackOptions two = { .mode = TRACK_MODE_KEYS, .max_keys = 2 };
        g_assert_cmpint(track_start(s1, &a, &two, &fd), ==, 0);
        Tracker *a1 = track_find(s1, &a);
        g_assert_cmpint(track_read(a1, "k1"), ==, 0);
        g_assert_cmpint(track_read(a1, "k2"), ==, 0);
        g_assert_cmpuint(reports->len, ==, 0);
        g_assert_cmpint(track_read(a1, "k3"), ==, 0);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, "k1");
        g_assert_cmpuint(tracker_n_keys(a1), ==, 2);
        track_hub_get_stats(h, &st);
        g_assert_cmpuint(st.overflows, ==, 1);
        track_key_changed(s1, "k1", true);      /* forgotten: nothing */
        g_assert_cmpuint(reports->len, ==, 1);

        /* the per-owner bound counts every space of the owner */
        reset();
        g_assert_cmpint(track_start(s2, &a, &keys_mode, &fd), ==, 0);
        Tracker *a2 = track_find(s2, &a);
        g_assert_cmpint(track_read(a2, "m1"), ==, 0);
        g_assert_cmpint(track_read(a2, "m2"), ==, 0);   /* a: k2 k3 m1 m2 = 4 */
        g_assert_cmpuint(reports->len, ==, 0);
        g_assert_cmpint(track_read(a2, "m3"), ==, 0);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, "k2");
        g_assert_true(report_at(0)->space == &n1);

        /* the hub-wide bound: b's reads push out a's oldest */
        reset();
        g_assert_cmpint(track_start(s1, &b, &keys_mode, &fd), ==, 0);
        Tracker *b1 = track_find(s1, &b);
        g_assert_cmpint(track_read(b1, "z1"), ==, 0);
        g_assert_cmpint(track_read(b1, "z2"), ==, 0);   /* 4 + 2 = 6 */
        g_assert_cmpuint(reports->len, ==, 0);
        g_assert_cmpint(track_read(b1, "z3"), ==, 0);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, "k3");
        track_hub_get_stats(h, &st);
        g_assert_cmpuint(st.keys, ==, 6);
        g_assert_cmpuint(st.overflows, ==, 3);

        /* a key of the same name in another space is another pair: the hub-wide eviction takes
         * a's "m1" of s2, and b's "m1" of s1 stays */
        reset();
        g_assert_cmpint(track_read(b1, "m1"), ==, 0);
        g_assert_cmpuint(reports->len, ==, 1);
        assert_report(0, &a, "m1");
        g_assert_true(report_at(0)->space == &n2);
        track_key_changed(s2, "m1", true);
        g_assert_cmpuint(reports->len, ==, 1);
        track_key_changed(s1, "m1", true);
        g_assert_cmpuint(reports->len, ==, 2);
        assert_report(1, &b, "m1");
        g_assert_true(report_at(1)->space == &n1);

        track_owner_release_all(&a);
        track_owner_release_all(&b);
        track_hub_get_stats(h, &st);
        g_assert_cmpuint(st.keys, ==, 0);
        g_assert_cmpuint(st.owners, ==, 0);
        track_space_free(s1);
        track_space_free(s2);
        track_hub_free(h);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        reports = g_array_new(FALSE, TRUE, sizeof(Report));
        g_array_set_clear_func(reports, report_clear);
        g_test_add_func("/tracking/hash", test_hash);
        g_test_add_func("/tracking/options", test_options);
        g_test_add_func("/tracking/page", test_page);
        g_test_add_func("/tracking/keys-mode", test_keys_mode);
        g_test_add_func("/tracking/prefix-mode", test_prefix_mode);
        g_test_add_func("/tracking/bounds", test_bounds);
        r = g_test_run();
        g_array_free(reports, TRUE);
        return r;
}
