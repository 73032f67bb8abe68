/* SPDX-License-Identifier: MIT */
/*
 * Client-side caching on the real hub (issue #13, docs/caching.md), on both brokers, and with
 * TH_TRANSPORT=private with the tracker on the hub's private socket:
 *  - Track hands out a read-only fd (PROT_WRITE mappings fail, PROT_READ works) of 65536
 *    counters; GetTracked's sequence is the counter of the key's bucket;
 *  - a Set by another connection has moved that counter when its reply arrives, and the
 *    tracker gets exactly one Invalidate([key]) for one read (none for a second Set until it
 *    reads again); HGetTracked and MGetTracked track too; TTL deadlines;
 *  - noloop, prefix mode, a table overflow invalidating the oldest key; 3000 writes under a
 *    prefix: 3000 Invalidate signals, in order (and what a tracker adds to a write, logged);
 *  - Flush and DropNamespace: Invalidate([]) and every counter moves; expiry invalidates;
 *  - NotTracking without Track and after Untrack; hostile options get named errors;
 *  - a tracker that disconnects is freed (tracking_peers, tracked_keys back to 0) and no longer
 *    keeps its namespace; the hub exits cleanly with trackers alive (ASan build: no leak).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

#define IFACE "org.clusterhub.Store1"
#define NS CH_DEFAULT_NAMESPACE_PATH
#define BUCKETS 65536u
#define PAGE_BYTES (BUCKETS * sizeof(uint64_t))

static uint64_t bucket(const char *key) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (const char *p = key; *p; p++) {
                h ^= (uint8_t) *p;
                h *= UINT64_C(0x100000001b3);
        }
        return h & (BUCKETS - 1);
}

static uint64_t now_us(void) {
        return (uint64_t) g_get_monotonic_time();
}

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void assert_error_name(const sd_bus_error *e, int r, const char *name) {
        g_assert_cmpint(r, <, 0);
        if (!sd_bus_error_has_name(e, name))
                g_error("expected %s, got %s: %s", name, e->name, e->message);
}

/* A counter of GetStats, 't' or 'u'. */
static uint64_t get_stat(sd_bus *bus, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t value = UINT64_MAX;
        const char *key, *contents;
        char type;

        int r = sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "GetStats", &e, &reply, "");
        if (r < 0)
                g_error("GetStats: %s: %s", e.name, e.message);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "s", &key), >, 0);
                g_assert_cmpint(sd_bus_message_peek_type(reply, &type, &contents), >, 0);
                if (g_str_equal(key, name) && g_str_equal(contents, "t"))
                        g_assert_cmpint(sd_bus_message_read(reply, "v", "t", &value), >, 0);
                else if (g_str_equal(key, name) && g_str_equal(contents, "u")) {
                        uint32_t u;
                        g_assert_cmpint(sd_bus_message_read(reply, "v", "u", &u), >, 0);
                        value = u;
                } else
                        g_assert_cmpint(sd_bus_message_skip(reply, "v"), >, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        }
        sd_bus_message_unref(reply);
        if (value == UINT64_MAX)
                g_error("GetStats has no '%s'", name);
        return value;
}

/* ---- the tracker's side ------------------------------------------------------------------- */

/* The Invalidate signals a connection received, as "NS:k1,k2" or "NS:[]". */
typedef struct Tracker {
        sd_bus *bus;
        sd_bus_slot *filter;
        GPtrArray *log;
        const uint64_t *page;
        int fd;
} Tracker;

static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Tracker *t = userdata;
        g_auto(GStrv) keys = NULL;

        if (!sd_bus_message_is_signal(m, IFACE, "Invalidate"))
                return 0;
        g_assert_cmpint(sd_bus_message_read_strv(m, &keys), >=, 0);
        g_autofree char *joined = keys ? g_strjoinv(",", keys) : NULL;
        g_ptr_array_add(t->log, g_strdup_printf("%s:%s", strrchr(sd_bus_message_get_path(m), '/') + 1,
                                                 keys && keys[0] ? joined : "[]"));
        return 0;
}

static void tracker_init(Tracker *t, sd_bus *bus) {
        *t = (Tracker) { .bus = bus, .log = g_ptr_array_new_with_free_func(g_free), .fd = -1 };
        /* a filter, not a match: the unicast signal must arrive without any AddMatch */
        g_assert_cmpint(sd_bus_add_filter(bus, &t->filter, on_message, t), >=, 0);
}

static void tracker_done(Tracker *t) {
        if (t->page)
                munmap((void *) t->page, PAGE_BYTES);
        if (t->fd >= 0)
                close(t->fd);
        sd_bus_slot_unref(t->filter);
        g_ptr_array_unref(t->log);
}

/* Everything the hub sent T before answering a call made now has been dispatched. */
static void tracker_sync(Tracker *t) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t n;
        int r;

        g_assert_cmpint(ch_store1_call_db_size(t->bus, CH_BUS_NAME, NS, &n, &e), >=, 0);
        while ((r = sd_bus_process(t->bus, NULL)) > 0)
                ;
        g_assert_cmpint(r, >=, 0);
}

static char *tracker_log(Tracker *t) {
        tracker_sync(t);
        g_ptr_array_add(t->log, NULL);
        char *s = g_strjoinv(" ", (char **) t->log->pdata);
        g_ptr_array_set_size(t->log, 0);
        return s;
}

static int call_track(sd_bus *bus, const char *path, sd_bus_error *e, int *ret_fd, const char *sig, ...) {
        sd_bus_message *m = NULL, *reply = NULL;
        uint32_t buckets = 0;
        int fd = -1, r;
        va_list ap;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, path, IFACE, "Track"), >=, 0);
        va_start(ap, sig);
        g_assert_cmpint(sd_bus_message_appendv(m, sig, ap), >=, 0);
        va_end(ap);
        r = sd_bus_call(bus, m, 0, e, &reply);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;
        g_assert_cmpint(sd_bus_message_read(reply, "hu", &fd, &buckets), >, 0);
        g_assert_cmpuint(buckets, ==, BUCKETS);
        if (ret_fd) {
                *ret_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                g_assert_cmpint(*ret_fd, >=, 0);
        }
        sd_bus_message_unref(reply);
        return 0;
}

/* Track in PATH with the a{sv} SIG...; maps the page. */
#define TRACK(t, path, ...)                                                                     \
        G_STMT_START {                                                                          \
                sd_bus_error _e = SD_BUS_ERROR_NULL;                                            \
                if ((t)->page)                                                                  \
                        munmap((void *) (t)->page, PAGE_BYTES);                                 \
                if ((t)->fd >= 0)                                                               \
                        close((t)->fd);                                                         \
                if (call_track((t)->bus, path, &_e, &(t)->fd, __VA_ARGS__) < 0)                 \
                        g_error("Track: %s: %s", _e.name, _e.message);                          \
                (t)->page = mmap(NULL, PAGE_BYTES, PROT_READ, MAP_SHARED, (t)->fd, 0);          \
                g_assert_true((t)->page != MAP_FAILED);                                         \
        } G_STMT_END

typedef struct Read {
        int found;
        char *value;            /* strings only; "" otherwise */
        uint64_t sequence, deadline_ns;
} Read;

static void read_done(Read *r) {
        free(r->value);
}

static int read_tail(sd_bus_message *reply, Read *out) {
        const char *contents, *s = "";
        char type;
        int r;

        r = sd_bus_message_peek_type(reply, &type, &contents);
        g_assert_cmpint(r, >, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'v', contents), >, 0);
        if (g_str_equal(contents, "s"))
                g_assert_cmpint(sd_bus_message_read(reply, "s", &s), >, 0);
        else
                g_assert_cmpint(sd_bus_message_skip(reply, contents), >=, 0);
        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        out->value = strdup(s);
        return sd_bus_message_read(reply, "tt", &out->sequence, &out->deadline_ns);
}

static int get_tracked(sd_bus *bus, const char *path, const char *key, const char *field, Read *out, sd_bus_error *e) {
        sd_bus_message *reply = NULL;
        int r;

        if (field)
                r = sd_bus_call_method(bus, CH_BUS_NAME, path, IFACE, "HGetTracked", e, &reply, "ss", key, field);
        else
                r = sd_bus_call_method(bus, CH_BUS_NAME, path, IFACE, "GetTracked", e, &reply, "s", key);
        if (r < 0)
                return r;
        g_assert_cmpint(sd_bus_message_read(reply, "b", &out->found), >, 0);
        g_assert_cmpint(read_tail(reply, out), >, 0);
        sd_bus_message_unref(reply);
        return 0;
}

static Read tracked(Tracker *t, const char *path, const char *key) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        Read r = {};

        if (get_tracked(t->bus, path, key, NULL, &r, &e) < 0)
                g_error("GetTracked(%s): %s: %s", key, e.name, e.message);
        return r;
}

static void set(sd_bus *bus, const char *path, const char *key, const char *value, uint64_t ttl_ms) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (ttl_ms)
                r = sd_bus_call_method(bus, CH_BUS_NAME, path, IFACE, "Set", &e, NULL, "sva{sv}", key, "s", value, 1,
                                       "ttl_ms", "t", ttl_ms);
        else
                r = sd_bus_call_method(bus, CH_BUS_NAME, path, IFACE, "Set", &e, NULL, "sva{sv}", key, "s", value, 0);
        if (r < 0)
                g_error("Set(%s): %s: %s", key, e.name, e.message);
}

static void call_ok(sd_bus *bus, const char *path, const char *iface, const char *method, const char *sig, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, path, iface, method), >=, 0);
        va_start(ap, sig);
        g_assert_cmpint(sd_bus_message_appendv(m, sig, ap), >=, 0);
        va_end(ap);
        if (sd_bus_call(bus, m, 0, &e, NULL) < 0)
                g_error("%s: %s: %s", method, e.name, e.message);
        sd_bus_message_unref(m);
}

/* A second connection, on the same transport as f->client. */
static sd_bus *connect_same(ThFixture *f) {
        sd_bus *b = NULL;

        if (th_transport_private())
                g_assert_cmpint(th_connect_socket(&b, f->socket_path), >=, 0);
        else
                g_assert_cmpint(th_connect(&b, f->bus.address), >=, 0);
        return b;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_basic(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *w = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;

        g_assert_cmphex(bucket("foobar"), ==, UINT64_C(0x85944171f73967e8) & (BUCKETS - 1));
        tracker_init(&t, f->client);
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);
        TRACK(&t, NS, "a{sv}", 0);

        /* the fd maps for reading only */
        g_assert_true(mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, t.fd, 0) == MAP_FAILED);
        g_assert_cmpint(mprotect((void *) t.page, PAGE_BYTES, PROT_READ | PROT_WRITE), <, 0);
        uint64_t one = 1;
        g_assert_cmpint(pwrite(t.fd, &one, sizeof(one), 0), <, 0);

        /* absent: found false, cached absence is tracked too */
        Read r = tracked(&t, NS, "k");
        g_assert_false(r.found);
        g_assert_cmpstr(r.value, ==, "");
        g_assert_cmpuint(r.sequence, ==, t.page[bucket("k")]);
        g_assert_cmpuint(r.deadline_ns, ==, 0);
        read_done(&r);
        g_assert_cmpuint(get_stat(w, "tracking_peers"), ==, 1);
        g_assert_cmpuint(get_stat(w, "tracked_keys"), ==, 1);

        /* another connection's Set: the counter moved when its reply came, one Invalidate */
        uint64_t before = t.page[bucket("k")];
        set(w, NS, "k", "v1", 0);
        g_assert_cmpuint(__atomic_load_n(&t.page[bucket("k")], __ATOMIC_ACQUIRE), ==, before + 1);
        g_autofree char *log1 = tracker_log(&t);
        g_assert_cmpstr(log1, ==, "default:k");
        /* the pair is gone: the next Set moves the counter and sends nothing */
        set(w, NS, "k", "v2", 0);
        g_assert_cmpuint(t.page[bucket("k")], ==, before + 2);
        g_autofree char *log2 = tracker_log(&t);
        g_assert_cmpstr(log2, ==, "");
        g_assert_cmpuint(get_stat(w, "tracked_keys"), ==, 0);

        /* read again: value, sequence, TTL deadline; re-armed */
        set(w, NS, "k", "v3", 60000);
        uint64_t t0 = mono_ns();
        r = tracked(&t, NS, "k");
        g_assert_true(r.found);
        g_assert_cmpstr(r.value, ==, "v3");
        g_assert_cmpuint(r.sequence, ==, t.page[bucket("k")]);
        g_assert_cmpuint(r.deadline_ns, >, t0);
        g_assert_cmpuint(r.deadline_ns, <=, t0 + UINT64_C(60000000000));
        read_done(&r);
        call_ok(w, NS, IFACE, "Del", "as", 1, "k");
        g_autofree char *log3 = tracker_log(&t);
        g_assert_cmpstr(log3, ==, "default:k");

        /* HGetTracked: the hash key is what is tracked */
        call_ok(w, NS, IFACE, "HSet", "sa{sv}", "h", 1, "f", "s", "x");
        g_assert_cmpint(get_tracked(t.bus, NS, "h", "f", &r, &e), >=, 0);
        g_assert_true(r.found);
        g_assert_cmpstr(r.value, ==, "x");
        g_assert_cmpuint(r.sequence, ==, t.page[bucket("h")]);
        read_done(&r);
        g_assert_cmpint(get_tracked(t.bus, NS, "h", "nofield", &r, &e), >=, 0);
        g_assert_false(r.found);
        read_done(&r);
        call_ok(w, NS, IFACE, "HSet", "sa{sv}", "h", 1, "g", "s", "y");
        g_autofree char *log4 = tracker_log(&t);
        g_assert_cmpstr(log4, ==, "default:h");

        /* MGetTracked: one entry per key, in order; a hash is not found there */
        set(w, NS, "m1", "one", 0);
        sd_bus_message *reply = NULL;
        g_assert_cmpint(sd_bus_call_method(t.bus, CH_BUS_NAME, NS, IFACE, "MGetTracked", &e, &reply, "as", 3, "m1", "nope", "h"),
                        >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(bvtt)"), >, 0);
        const char *want[] = { "m1", "nope", "h" };
        for (int i = 0; i < 3; i++) {
                Read m = {};
                g_assert_cmpint(sd_bus_message_enter_container(reply, 'r', "bvtt"), >, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "b", &m.found), >, 0);
                g_assert_cmpint(read_tail(reply, &m), >, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                g_assert_cmpint(m.found, ==, i == 0);
                g_assert_cmpstr(m.value, ==, i == 0 ? "one" : "");
                g_assert_cmpuint(m.sequence, ==, t.page[bucket(want[i])]);
                read_done(&m);
        }
        sd_bus_message_unref(reply);
        call_ok(w, NS, IFACE, "MSet", "a{sv}", 3, "m1", "s", "a", "nope", "s", "b", "other", "s", "c");
        call_ok(w, NS, IFACE, "Del", "as", 1, "h");
        g_autofree char *log5 = tracker_log(&t);
        g_assert_cmpstr(log5, ==, "default:m1 default:nope default:h");
        g_assert_cmpuint(get_stat(w, "invalidations_sent"), >=, 5);

        /* Untrack: Invalidate([]), then NotTracking; idempotent */
        call_ok(t.bus, NS, IFACE, "Untrack", "");
        g_autofree char *log6 = tracker_log(&t);
        g_assert_cmpstr(log6, ==, "default:[]");
        call_ok(t.bus, NS, IFACE, "Untrack", "");
        g_assert_cmpint(get_tracked(t.bus, NS, "k", NULL, &r, &e), <, 0);
        assert_error_name(&e, -1, "org.clusterhub.Error.NotTracking");
        sd_bus_error_free(&e);
        g_assert_cmpuint(get_stat(w, "tracking_peers"), ==, 0);

        tracker_done(&t);
        sd_bus_flush_close_unref(w);
}

static void test_noloop_prefix(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *w = NULL;

        tracker_init(&t, f->client);
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);

        /* without noloop the tracker hears of its own writes */
        TRACK(&t, NS, "a{sv}", 0);
        Read r = tracked(&t, NS, "own");
        read_done(&r);
        set(t.bus, NS, "own", "1", 0);
        g_autofree char *log1 = tracker_log(&t);
        g_assert_cmpstr(log1, ==, "default:own");

        /* noloop: its own write is silent (the counter still moves), another's is not */
        TRACK(&t, NS, "a{sv}", 1, "noloop", "b", 1);
        g_autofree char *log2 = tracker_log(&t);
        g_assert_cmpstr(log2, ==, "default:[]");        /* re-configured */
        r = tracked(&t, NS, "own");
        read_done(&r);
        uint64_t before = t.page[bucket("own")];
        set(t.bus, NS, "own", "2", 0);
        g_assert_cmpuint(t.page[bucket("own")], ==, before + 1);
        g_autofree char *log3 = tracker_log(&t);
        g_assert_cmpstr(log3, ==, "");
        r = tracked(&t, NS, "own");
        read_done(&r);
        set(w, NS, "own", "3", 0);
        g_autofree char *log4 = tracker_log(&t);
        g_assert_cmpstr(log4, ==, "default:own");

        /* prefix mode: every change under a prefix, read or not, once per change */
        TRACK(&t, NS, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 2, "user:", "cfg.");
        g_autofree char *log5 = tracker_log(&t);
        g_assert_cmpstr(log5, ==, "default:[]");
        set(w, NS, "user:1", "a", 0);
        set(w, NS, "user:1", "b", 0);
        set(w, NS, "users", "c", 0);
        set(w, NS, "cfg.x", "d", 0);
        g_autofree char *log6 = tracker_log(&t);
        g_assert_cmpstr(log6, ==, "default:user:1 default:user:1 default:cfg.x");
        g_assert_cmpuint(get_stat(w, "tracked_keys"), ==, 0);

        tracker_done(&t);
        sd_bus_flush_close_unref(w);
}

static void test_overflow(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *w = NULL;

        tracker_init(&t, f->client);
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);
        TRACK(&t, NS, "a{sv}", 1, "max_keys", "u", (uint32_t) 2);
        uint64_t overflows = get_stat(w, "tracking_overflows");
        Read r = tracked(&t, NS, "a");
        read_done(&r);
        r = tracked(&t, NS, "b");
        read_done(&r);
        g_autofree char *log1 = tracker_log(&t);
        g_assert_cmpstr(log1, ==, "");
        r = tracked(&t, NS, "c");
        read_done(&r);
        /* the oldest, a, is invalidated and forgotten */
        g_autofree char *log2 = tracker_log(&t);
        g_assert_cmpstr(log2, ==, "default:a");
        g_assert_cmpuint(get_stat(w, "tracking_overflows"), ==, overflows + 1);
        g_assert_cmpuint(get_stat(w, "tracked_keys"), ==, 2);
        call_ok(w, NS, IFACE, "MSet", "a{sv}", 3, "a", "s", "1", "b", "s", "2", "c", "s", "3");
        g_autofree char *log3 = tracker_log(&t);
        g_assert_cmpstr(log3, ==, "default:b default:c");
        /* more keys in one MGetTracked than the table holds: refused, nothing tracked */
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int q = sd_bus_call_method(t.bus, CH_BUS_NAME, NS, IFACE, "MGetTracked", &e, NULL, "as", 3, "a", "b", "c");
        assert_error_name(&e, q, "org.clusterhub.Error.LimitExceeded");
        sd_bus_error_free(&e);
        g_assert_cmpint(sd_bus_call_method(t.bus, CH_BUS_NAME, NS, IFACE, "MGetTracked", &e, NULL, "as", 2, "a", "b"), >=, 0);
        g_autofree char *log4 = tracker_log(&t);
        g_assert_cmpstr(log4, ==, "");
        g_assert_cmpuint(get_stat(w, "tracked_keys"), ==, 2);
        tracker_done(&t);
        sd_bus_flush_close_unref(w);
}

static bool page_all_above(const uint64_t *page, const uint64_t *old) {
        for (size_t i = 0; i < BUCKETS; i++)
                if (page[i] <= old[i])
                        return false;
        return true;
}

static void test_flush_drop(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *w = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *trk = CH_NAMESPACE_PATH_PREFIX "trk";
        g_autofree uint64_t *old = g_new(uint64_t, BUCKETS);

        tracker_init(&t, f->client);
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);

        /* Flush: Invalidate([]) and every counter moves */
        TRACK(&t, NS, "a{sv}", 0);
        set(w, NS, "k", "v", 0);
        Read r = tracked(&t, NS, "k");
        read_done(&r);
        memcpy(old, t.page, PAGE_BYTES);
        call_ok(w, NS, IFACE, "Flush", "");
        g_assert_true(page_all_above(t.page, old));
        g_autofree char *log1 = tracker_log(&t);
        g_assert_cmpstr(log1, ==, "default:[]");
        g_assert_cmpuint(get_stat(w, "tracked_keys"), ==, 0);

        /* DropNamespace of a tracked namespace: from its path, every counter, then NotTracking */
        call_ok(t.bus, NS, IFACE, "Untrack", "");
        g_autofree char *log0 = tracker_log(&t);
        g_assert_cmpstr(log0, ==, "default:[]");
        tracker_done(&t);  /* one filter on the connection at a time */
        Tracker t2;
        tracker_init(&t2, f->client);
        TRACK(&t2, trk, "a{sv}", 0);
        set(w, trk, "x", "1", 0);
        r = tracked(&t2, trk, "x");
        read_done(&r);
        memcpy(old, t2.page, PAGE_BYTES);
        call_ok(w, CH_HUB_PATH, "org.clusterhub.Hub1", "DropNamespace", "s", "trk");
        g_assert_true(page_all_above(t2.page, old));
        g_autofree char *log2 = tracker_log(&t2);
        g_assert_cmpstr(log2, ==, "trk:[]");
        g_assert_cmpint(get_tracked(t2.bus, trk, "x", NULL, &r, &e), <, 0);
        assert_error_name(&e, -1, "org.clusterhub.Error.NotTracking");
        sd_bus_error_free(&e);
        g_assert_cmpuint(get_stat(w, "tracking_peers"), ==, 0);
        tracker_done(&t2);
        sd_bus_flush_close_unref(w);
}

static bool logged(Tracker *t, const char *entry) {
        for (guint i = 0; i < t->log->len; i++)
                if (g_str_equal(g_ptr_array_index(t->log, i), entry))
                        return true;
        return false;
}

static void test_expiry(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *w = NULL;

        tracker_init(&t, f->client);
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);
        TRACK(&t, NS, "a{sv}", 0);
        set(w, NS, "ttl", "v", 300);
        Read r = tracked(&t, NS, "ttl");
        g_assert_true(r.found);
        g_assert_cmpuint(r.deadline_ns, >, 0);
        uint64_t seq = r.sequence;
        read_done(&r);
        /* the hub's expiry timer deletes it: Invalidate without anybody writing */
        uint64_t end = now_us() + 10 * G_USEC_PER_SEC;
        while (!logged(&t, "default:ttl") && now_us() < end) {
                int q = sd_bus_process(t.bus, NULL);
                g_assert_cmpint(q, >=, 0);
                if (q == 0)
                        g_assert_cmpint(sd_bus_wait(t.bus, 100000), >=, 0);
        }
        g_assert_true(logged(&t, "default:ttl"));
        g_assert_cmpuint(t.page[bucket("ttl")], >, seq);

        /* a TTL whose end in ns does not fit 64 bits (2^62 ms): the deadline saturates, it must not
         * wrap to an earlier time (here: about now, which no cache would ever serve) */
        set(w, NS, "far", "v", UINT64_C(1) << 62);
        r = tracked(&t, NS, "far");
        g_assert_true(r.found);
        g_assert_cmpuint(r.deadline_ns, ==, UINT64_MAX);
        read_done(&r);
        tracker_done(&t);
        sd_bus_flush_close_unref(w);
}

static void expect_track_error(sd_bus *bus, const char *error, const char *sig, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, NS, IFACE, "Track"), >=, 0);
        va_start(ap, sig);
        g_assert_cmpint(sd_bus_message_appendv(m, sig, ap), >=, 0);
        va_end(ap);
        int r = sd_bus_call(bus, m, 0, &e, NULL);
        assert_error_name(&e, r, error);
        g_test_message("%s: %s", e.name, e.message);
        sd_bus_error_free(&e);
        sd_bus_message_unref(m);
}

static void test_errors(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *c = f->client;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        Read r = {};
        const char *inv = "org.clusterhub.Error.InvalidArgs", *lim = "org.clusterhub.Error.LimitExceeded";

        g_assert_cmpint(get_tracked(c, NS, "k", NULL, &r, &e), <, 0);
        assert_error_name(&e, -1, "org.clusterhub.Error.NotTracking");
        sd_bus_error_free(&e);
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, NS, IFACE, "MGetTracked", &e, NULL, "as", 1, "k"), <, 0);
        assert_error_name(&e, -1, "org.clusterhub.Error.NotTracking");
        sd_bus_error_free(&e);
        call_ok(c, NS, IFACE, "Untrack", "");

        expect_track_error(c, inv, "a{sv}", 1, "bogus", "b", 1);
        expect_track_error(c, inv, "a{sv}", 1, "mode", "u", (uint32_t) 1);
        expect_track_error(c, inv, "a{sv}", 1, "mode", "s", "bcast");
        expect_track_error(c, inv, "a{sv}", 1, "noloop", "s", "yes");
        expect_track_error(c, inv, "a{sv}", 1, "max_keys", "x", (int64_t) -1);
        expect_track_error(c, inv, "a{sv}", 1, "prefixes", "as", 1, "a");
        expect_track_error(c, inv, "a{sv}", 1, "mode", "s", "prefix");
        expect_track_error(c, inv, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 0);
        expect_track_error(c, inv, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 2, "ab", "a");
        expect_track_error(c, inv, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 2, "", "a");
        expect_track_error(c, inv, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 2, "a", "a");
        expect_track_error(c, lim, "a{sv}", 1, "max_keys", "u", (uint32_t) 65537);

        /* 65 prefixes */
        sd_bus_message *m = NULL;
        char **many = g_new0(char *, 66);
        for (int i = 0; i < 65; i++)
                many[i] = g_strdup_printf("p%02d:", i);
        g_assert_cmpint(sd_bus_message_new_method_call(c, &m, CH_BUS_NAME, NS, IFACE, "Track"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "{sv}"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "{sv}", "mode", "s", "prefix"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'e', "sv"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "s", "prefixes"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'v', "as"), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, many), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        int q = sd_bus_call(c, m, 0, &e, NULL);
        assert_error_name(&e, q, lim);
        sd_bus_error_free(&e);
        sd_bus_message_unref(m);
        /* 64 are fine */
        g_free(many[64]);
        many[64] = NULL;
        g_assert_cmpint(sd_bus_message_new_method_call(c, &m, CH_BUS_NAME, NS, IFACE, "Track"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "{sv}"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "{sv}", "mode", "s", "prefix"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'e', "sv"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "s", "prefixes"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'v', "as"), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, many), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_call(c, m, 0, &e, NULL), >=, 0);
        sd_bus_message_unref(m);
        g_strfreev(many);
        /* nothing was tracked by the refused calls; the good one counts */
        g_assert_cmpuint(get_stat(c, "tracking_peers"), ==, 1);

        /* WrongType as Get and HGet */
        call_ok(c, NS, IFACE, "Untrack", "");
        g_assert_cmpint(call_track(c, NS, &e, NULL, "a{sv}", 0), >=, 0);
        call_ok(c, NS, IFACE, "RPush", "sav", "list", 1, "s", "x");
        set(c, NS, "str", "v", 0);
        g_assert_cmpint(get_tracked(c, NS, "list", NULL, &r, &e), <, 0);
        assert_error_name(&e, -1, "org.clusterhub.Error.WrongType");
        sd_bus_error_free(&e);
        g_assert_cmpint(get_tracked(c, NS, "str", "f", &r, &e), <, 0);
        assert_error_name(&e, -1, "org.clusterhub.Error.WrongType");
        sd_bus_error_free(&e);
        call_ok(c, NS, IFACE, "Untrack", "");

        /* on the socket the hub knows whether a connection passes file descriptors */
        if (th_transport_private()) {
                sd_bus *nofd = NULL;
                g_autofree char *address = g_strdup_printf("unix:path=%s", f->socket_path);
                g_assert_cmpint(sd_bus_new(&nofd), >=, 0);
                g_assert_cmpint(sd_bus_set_address(nofd, address), >=, 0);
                g_assert_cmpint(sd_bus_set_bus_client(nofd, true), >=, 0);
                g_assert_cmpint(sd_bus_negotiate_fds(nofd, false), >=, 0);
                g_assert_cmpint(sd_bus_start(nofd), >=, 0);
                int q2 = call_track(nofd, NS, &e, NULL, "a{sv}", 0);
                assert_error_name(&e, q2, "org.clusterhub.Error.NotSupported");
                sd_bus_error_free(&e);
                g_assert_cmpuint(get_stat(c, "tracking_peers"), ==, 0);
                sd_bus_flush_close_unref(nofd);
        }
}

/* Every write path moves the counter of each key it changes before its reply: KEYS (up to 4)
 * of PAGE must all have moved by the time the call made with call_ok() returned. */
static void assert_moved(const uint64_t *page, const uint64_t *before, const char *const *keys, const char *what) {
        for (size_t i = 0; keys[i]; i++)
                if (__atomic_load_n(&page[bucket(keys[i])], __ATOMIC_ACQUIRE) <= before[i])
                        g_error("%s did not move the counter of '%s' before its reply", what, keys[i]);
}

#define WRITE_MOVES(page, what, keys_, call)                                                    \
        G_STMT_START {                                                                          \
                const char *const _k[] = { UNPACK keys_, NULL };                                \
                uint64_t _b[G_N_ELEMENTS(_k)];                                                  \
                for (size_t _i = 0; _k[_i]; _i++)                                               \
                        _b[_i] = (page)[bucket(_k[_i])];                                        \
                call;                                                                           \
                assert_moved((page), _b, _k, (what));                                           \
        } G_STMT_END
#define UNPACK(...) __VA_ARGS__

static void test_write_paths(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *w = NULL, *b = connect_same(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *trk = CH_NAMESPACE_PATH_PREFIX "trk2";
        int fd2 = -1;

        tracker_init(&t, f->client);
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);
        TRACK(&t, NS, "a{sv}", 0);
        /* the destination namespace of Move, tracked too: its own page */
        g_assert_cmpint(call_track(t.bus, trk, &e, &fd2, "a{sv}", 0), >=, 0);
        const uint64_t *page2 = mmap(NULL, PAGE_BYTES, PROT_READ, MAP_SHARED, fd2, 0);
        g_assert_true(page2 != MAP_FAILED);

        WRITE_MOVES(t.page, "Set", ("a"), set(w, NS, "a", "1", 0));
        WRITE_MOVES(t.page, "Rename", ("a", "b"), call_ok(w, NS, IFACE, "Rename", "ss", "a", "b"));
        /* Move: the source's page and the destination's, both ways */
        uint64_t dst0 = page2[bucket("b")];
        WRITE_MOVES(t.page, "Move (source)", ("b"), call_ok(w, NS, IFACE, "Move", "ss", "b", "trk2"));
        g_assert_cmpuint(page2[bucket("b")], >, dst0);
        dst0 = t.page[bucket("b")];
        WRITE_MOVES(page2, "Move (source)", ("b"), call_ok(w, trk, IFACE, "Move", "ss", "b", "default"));
        g_assert_cmpuint(t.page[bucket("b")], >, dst0);
        WRITE_MOVES(t.page, "MSet", ("m1", "m2"), call_ok(w, NS, IFACE, "MSet", "a{sv}", 2, "m1", "s", "x", "m2", "s", "y"));
        WRITE_MOVES(t.page, "Expire", ("m1"), call_ok(w, NS, IFACE, "Expire", "st", "m1", (uint64_t) 600000));
        WRITE_MOVES(t.page, "Persist", ("m1"), call_ok(w, NS, IFACE, "Persist", "s", "m1"));
        WRITE_MOVES(t.page, "Incr", ("n"), call_ok(w, NS, IFACE, "Incr", "sx", "n", (int64_t) 1));
        WRITE_MOVES(t.page, "Append", ("m2"), call_ok(w, NS, IFACE, "Append", "ss", "m2", "z"));
        WRITE_MOVES(t.page, "SetRange", ("m2"), call_ok(w, NS, IFACE, "SetRange", "sus", "m2", 0u, "w"));
        WRITE_MOVES(t.page, "GetDel", ("m2"), call_ok(w, NS, IFACE, "GetDel", "s", "m2"));
        WRITE_MOVES(t.page, "HSet", ("h"), call_ok(w, NS, IFACE, "HSet", "sa{sv}", "h", 1, "f", "s", "x"));
        WRITE_MOVES(t.page, "HIncr", ("h"), call_ok(w, NS, IFACE, "HIncr", "ssx", "h", "g", (int64_t) 2));
        WRITE_MOVES(t.page, "HDel", ("h"), call_ok(w, NS, IFACE, "HDel", "sas", "h", 2, "f", "g"));
        WRITE_MOVES(t.page, "RPush", ("l"), call_ok(w, NS, IFACE, "RPush", "sav", "l", 2, "s", "x", "s", "y"));
        WRITE_MOVES(t.page, "LMove", ("l", "l2"), call_ok(w, NS, IFACE, "LMove", "ssss", "l", "l2", "left", "right"));
        WRITE_MOVES(t.page, "LPop", ("l"), call_ok(w, NS, IFACE, "LPop", "su", "l", 1u));
        WRITE_MOVES(t.page, "SAdd", ("s"), call_ok(w, NS, IFACE, "SAdd", "sas", "s", 2, "p", "q"));
        WRITE_MOVES(t.page, "SPop", ("s"), call_ok(w, NS, IFACE, "SPop", "su", "s", 1u));
        WRITE_MOVES(t.page, "Del", ("s", "l2"), call_ok(w, NS, IFACE, "Del", "as", 2, "s", "l2"));

        /* BLPop served by another connection's RPush: the pop (and the deletion of the emptied
         * list) move the counter too, before the pusher's reply */
        sd_bus_slot *slot = NULL;
        g_assert_cmpint(sd_bus_call_method_async(b, &slot, CH_BUS_NAME, NS, IFACE, "BLPop", NULL, NULL, "asu", 1, "q", 0u),
                        >=, 0);
        uint64_t n = 0;
        g_assert_cmpint(ch_store1_call_db_size(b, CH_BUS_NAME, NS, &n, &e), >=, 0); /* the BLPop waits now */
        uint64_t q0 = t.page[bucket("q")];
        call_ok(w, NS, IFACE, "RPush", "sav", "q", 1, "s", "v");
        /* RPush alone moves it once; the served pop (and the deletion of the emptied list) more */
        g_assert_cmpuint(t.page[bucket("q")], >=, q0 + 2);
        sd_bus_slot_unref(slot);

        munmap((void *) page2, PAGE_BYTES);
        close(fd2);
        tracker_done(&t);
        sd_bus_flush_close_unref(w);
        sd_bus_flush_close_unref(b);
}

static bool has_namespace(sd_bus *bus, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_auto(GStrv) names = NULL;
        g_assert_cmpint(ch_hub1_call_list_namespaces(bus, CH_BUS_NAME, CH_HUB_PATH, &names, &e), >=, 0);
        return g_strv_contains((const char *const *) names, name);
}

static void test_disconnect(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *c = f->client;
        Tracker t;
        const char *gone = CH_NAMESPACE_PATH_PREFIX "gone";

        tracker_init(&t, connect_same(f));
        TRACK(&t, gone, "a{sv}", 0);
        Read r = tracked(&t, gone, "k");
        read_done(&r);
        g_assert_cmpuint(get_stat(c, "tracking_peers"), ==, 1);
        g_assert_cmpuint(get_stat(c, "tracked_keys"), ==, 1);
        /* an empty namespace stays while somebody tracks it (its page must not change under it) */
        tracker_sync(&t);
        g_assert_true(has_namespace(c, "gone"));

        sd_bus *b = t.bus;
        tracker_done(&t);
        sd_bus_flush_close_unref(b);
        uint64_t end = now_us() + 10 * G_USEC_PER_SEC;
        while (get_stat(c, "tracking_peers") != 0 && now_us() < end)
                g_usleep(20000);
        g_assert_cmpuint(get_stat(c, "tracking_peers"), ==, 0);
        g_assert_cmpuint(get_stat(c, "tracked_keys"), ==, 0);
        while (has_namespace(c, "gone") && now_us() < end)
                g_usleep(20000);
        g_assert_false(has_namespace(c, "gone"));
}

/* A prefix tracker of every key hears of every one of many writes, once each, in order; the
 * cost a tracker adds to a write is logged (a measurement, not a check). */
#define MANY_WRITES 3000

static uint64_t timed_sets(sd_bus *w, const char *tag) {
        uint64_t t0 = now_us();
        for (int i = 0; i < MANY_WRITES; i++) {
                char k[32], v[32];
                snprintf(k, sizeof(k), "%s%d", tag, i % 100);
                snprintf(v, sizeof(v), "%d", i);
                set(w, NS, k, v, 0);
        }
        return now_us() - t0;
}

/* CPU time of the hub's main thread so far, in ns (0 when the kernel does not say). */
static uint64_t hub_cpu_ns(ThFixture *f) {
        g_autofree char *path = g_strdup_printf("/proc/%d/task/%d/schedstat", (int) f->hub.proc.pid, (int) f->hub.proc.pid);
        g_autofree char *text = NULL;

        if (!g_file_get_contents(path, &text, NULL, NULL))
                return 0;
        return g_ascii_strtoull(text, NULL, 10);
}

static void test_many_writes(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *w = connect_same(f);

        uint64_t c0 = hub_cpu_ns(f);
        uint64_t plain = timed_sets(w, "a");
        uint64_t c1 = hub_cpu_ns(f);
        tracker_init(&t, f->client);
        TRACK(&t, NS, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 1, "b");
        uint64_t sent = get_stat(w, "invalidations_sent");
        uint64_t c2 = hub_cpu_ns(f);
        uint64_t tracked = timed_sets(w, "b");
        uint64_t c3 = hub_cpu_ns(f);
        tracker_sync(&t);
        g_assert_cmpuint(t.log->len, ==, MANY_WRITES);
        for (int i = 0; i < MANY_WRITES; i++) {
                g_autofree char *want = g_strdup_printf("default:b%d", i % 100);
                g_assert_cmpstr(g_ptr_array_index(t.log, i), ==, want);
        }
        g_assert_cmpuint(get_stat(w, "invalidations_sent"), ==, sent + MANY_WRITES);
        fprintf(stderr, "# %d Sets (%s): %.1f us round trip and %.1f us of hub CPU each untracked; "
                "%.1f us and %.1f us with a prefix tracker (one Invalidate each)\n",
                MANY_WRITES, th_transport_private() ? "writer and tracker on the private socket" : "on the bus",
                (double) plain / MANY_WRITES, (double) (c1 - c0) / 1000 / MANY_WRITES,
                (double) tracked / MANY_WRITES, (double) (c3 - c2) / 1000 / MANY_WRITES);
        tracker_done(&t);
        sd_bus_flush_close_unref(w);
}

/* A tracker on the private socket that never reads its Invalidate signals (and sends nothing)
 * is closed by the connection's queue bound, as a stalled subscriber is: the signals it is sent
 * are caused by other connections' writes, so the check on its own incoming messages never runs.
 * Private socket only (on the bus the broker's own quotas apply). */
static void test_stalled_tracker(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *extra[] = { "--max-queued-per-connection=64", NULL };
        sd_bus *slow = NULL, *w = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;

        th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, extra), ==, 0);
        g_assert_cmpint(th_fixture_reconnect(f), ==, 0);
        g_assert_cmpint(th_connect_socket(&slow, f->socket_path), >=, 0);
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);
        /* every key, and then never another read or call */
        g_assert_cmpint(call_track(slow, NS, &e, NULL, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 1, ""), >=, 0);
        g_assert_cmpuint(get_stat(w, "tracking_peers"), ==, 1);

        /* 40,000 Invalidate signals of ~450 bytes: far past what the kernel's socket buffer takes,
         * then past 64 in the hub's queue */
        g_autofree char *pad = g_strnfill(400, 'k');
        uint64_t end = now_us() + 120 * G_USEC_PER_SEC;
        for (int round = 0; round < 400 && get_stat(w, "tracking_peers") > 0 && now_us() < end; round++) {
                sd_bus_message *m = NULL;
                g_assert_cmpint(sd_bus_message_new_method_call(w, &m, CH_BUS_NAME, NS, IFACE, "MSet"), >=, 0);
                g_assert_cmpint(sd_bus_message_open_container(m, 'a', "{sv}"), >=, 0);
                for (int i = 0; i < 100; i++) {
                        g_autofree char *k = g_strdup_printf("%s%d", pad, i);
                        g_assert_cmpint(sd_bus_message_append(m, "{sv}", k, "s", "v"), >=, 0);
                }
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
                if (sd_bus_call(w, m, 0, &e, NULL) < 0)
                        g_error("MSet: %s: %s", e.name, e.message);
                sd_bus_message_unref(m);
        }
        end = now_us() + 10 * G_USEC_PER_SEC;
        while (get_stat(w, "tracking_peers") > 0 && now_us() < end)
                g_usleep(20000);
        g_assert_cmpuint(get_stat(w, "tracking_peers"), ==, 0);
        g_assert_cmpuint(get_stat(w, "connections_dropped_slow"), >=, 1);
        sd_bus_close_unref(slow);
        sd_bus_flush_close_unref(w);
}

/* The hub exits cleanly with trackers, pairs and pages alive (an ASan/LSan build reports leaks
 * and errors through its exit status). */
static void test_hub_exit(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Tracker t;
        sd_bus *p = connect_same(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *other = CH_NAMESPACE_PATH_PREFIX "other";

        tracker_init(&t, f->client);
        TRACK(&t, NS, "a{sv}", 0);
        g_assert_cmpint(call_track(t.bus, other, &e, NULL, "a{sv}", 1, "max_keys", "u", (uint32_t) 8), >=, 0);
        g_assert_cmpint(call_track(p, NS, &e, NULL, "a{sv}", 2, "mode", "s", "prefix", "prefixes", "as", 1, ""), >=, 0);
        for (int i = 0; i < 20; i++) {
                g_autofree char *k = g_strdup_printf("k%d", i);
                Read r = tracked(&t, i % 2 ? NS : other, k);
                read_done(&r);
                set(p, NS, k, "v", 0);
        }
        g_assert_cmpuint(get_stat(p, "tracking_peers"), ==, 1 + 1);
        tracker_done(&t);
        int status = th_hub_stop(&f->hub);
        g_test_message("hub exit status 0x%x", status);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        sd_bus_flush_close_unref(p);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/basic", test_basic);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/noloop-prefix", test_noloop_prefix);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/overflow", test_overflow);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/flush-drop", test_flush_drop);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/expiry", test_expiry);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/write-paths", test_write_paths);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/errors", test_errors);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/disconnect", test_disconnect);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/many-writes", test_many_writes);
        TH_ADD_BUS_TEST_WITH_HUB("/tracking/hub-exit", test_hub_exit);
        if (th_transport_private())
                TH_ADD_BUS_TEST_WITH_HUB("/tracking/stalled-tracker", test_stalled_tracker);
        return g_test_run();
}
