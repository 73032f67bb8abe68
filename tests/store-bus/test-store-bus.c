/* SPDX-License-Identifier: MIT */
/*
 * org.clusterhub.Store1 on the real hub, on private buses (dbus-daemon and dbus-broker):
 *  - 100,000 keys with random TTLs set over the bus (async, 64 in flight): after the last
 *    deadline none is readable, the namespace is empty and store_bytes is back where it was;
 *  - BLPop: two waiters woken by one RPush of two values, first waiter first; Timeout; a
 *    waiter that disconnects leaves nothing behind;
 *  - KeyChanged: arg0 and arg1 matches see exactly their events; reads emit nothing;
 *  - SetGet's reply, Move of a key with its TTL into another namespace (created on the way,
 *    within its memory limit), KeyChanged move_from/move_to in both namespaces;
 *  - LimitExceeded messages name the size asked for, the limit and its option.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gio/gio.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

#define IFACE "org.clusterhub.Store1"
#define NS CH_DEFAULT_NAMESPACE_PATH

static uint64_t now_us(void) {
        return (uint64_t) g_get_monotonic_time();
}

static uint64_t get_stat(sd_bus *bus, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t value = UINT64_MAX;
        const char *key;

        int r = sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "GetStats", &e, &reply, "");
        if (r < 0)
                g_error("GetStats: %s: %s", e.name, e.message);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "s", &key), >, 0);
                if (g_str_equal(key, name))
                        g_assert_cmpint(sd_bus_message_read(reply, "v", "t", &value), >, 0);
                else
                        g_assert_cmpint(sd_bus_message_skip(reply, "v"), >, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        }
        sd_bus_message_unref(reply);
        g_assert_cmpuint(value, !=, UINT64_MAX);
        return value;
}

static long vm_rss_kb(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/status", (int) pid);
        g_autofree char *text = NULL;
        if (!g_file_get_contents(path, &text, NULL, NULL))
                return -1;
        const char *p = strstr(text, "VmRSS:");
        return p ? strtol(p + 6, NULL, 10) : -1;
}

static uint64_t dbsize(sd_bus *bus, const char *ns) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t n = UINT64_MAX;
        g_assert_cmpint(ch_store1_call_db_size(bus, CH_BUS_NAME, ns, &n, &e), >=, 0);
        return n;
}

static void assert_error_name(const sd_bus_error *e, int r, const char *name) {
        g_assert_cmpint(r, <, 0);
        if (!sd_bus_error_has_name(e, name))
                g_error("expected %s, got %s: %s", name, e->name, e->message);
}

/* Pump a few connections (dispatching callbacks and signals) until *done or timeout. */
static void pump(sd_bus **buses, size_t n, bool (*done)(void *), void *userdata, unsigned timeout_ms) {
        uint64_t end = now_us() + (uint64_t) timeout_ms * 1000;
        while (now_us() < end && !(done && done(userdata))) {
                bool busy = false;
                for (size_t i = 0; i < n; i++) {
                        int r;
                        while ((r = sd_bus_process(buses[i], NULL)) > 0)
                                busy = true;
                        g_assert_cmpint(r, >=, 0);
                }
                if (!busy)
                        g_usleep(2000);
        }
}

/* ---- 100,000 keys with random TTLs -------------------------------------------------------- */

#define FLOOD_KEYS 100000
#define FLOOD_IN_FLIGHT 64

typedef struct Flood {
        unsigned sent, done, errors;
        uint32_t *ttl_ms;
        uint64_t last_deadline_us;    /* reply time + TTL: the hub's deadline is earlier */
} Flood;

static Flood flood;

static int flood_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        unsigned idx = GPOINTER_TO_UINT(userdata);
        flood.done++;
        if (sd_bus_message_is_method_error(m, NULL)) {
                if (flood.errors++ < 5)
                        g_test_message("Set ttl:%u: %s: %s", idx, sd_bus_message_get_error(m)->name,
                                       sd_bus_message_get_error(m)->message);
                return 0;
        }
        uint64_t deadline = now_us() + (uint64_t) flood.ttl_ms[idx] * 1000;
        if (deadline > flood.last_deadline_us)
                flood.last_deadline_us = deadline;
        return 0;
}

static void test_ttl_flood(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *bus = f->client;
        GRand *rand = g_rand_new();
        pid_t hub_pid = f->hub.proc.pid;

        uint64_t bytes_before = get_stat(bus, "store_bytes"), keys_before = get_stat(bus, "keys");
        long rss_before = vm_rss_kb(hub_pid);
        g_assert_cmpuint(keys_before, ==, 0);

        memset(&flood, 0, sizeof(flood));
        flood.ttl_ms = g_new(uint32_t, FLOOD_KEYS);
        uint64_t t0 = now_us();
        while (flood.done < FLOOD_KEYS) {
                while (flood.sent < FLOOD_KEYS && flood.sent - flood.done < FLOOD_IN_FLIGHT) {
                        unsigned i = flood.sent++;
                        char key[32], value[32];
                        sd_bus_message *m = NULL;
                        flood.ttl_ms[i] = (uint32_t) g_rand_int_range(rand, 200, 2001);
                        snprintf(key, sizeof(key), "ttl:%u", i);
                        snprintf(value, sizeof(value), "value-%u", i);
                        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, NS, IFACE, "Set"), >=, 0);
                        g_assert_cmpint(sd_bus_message_append(m, "sva{sv}", key, "s", value, 1, "ttl_ms", "t",
                                                              (uint64_t) flood.ttl_ms[i]), >=, 0);
                        g_assert_cmpint(sd_bus_call_async(bus, NULL, m, flood_reply, GUINT_TO_POINTER(i), 30 * G_USEC_PER_SEC), >=, 0);
                        sd_bus_message_unref(m);
                }
                int r = sd_bus_process(bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        g_assert_cmpint(sd_bus_wait(bus, UINT64_MAX), >=, 0);
        }
        uint64_t t1 = now_us();
        uint64_t bytes_full = get_stat(bus, "store_bytes"), keys_full = get_stat(bus, "keys");
        long rss_full = vm_rss_kb(hub_pid);
        g_test_message("set %u keys in %.2f s (%u errors); then keys=%" PRIu64 " store_bytes=%" PRIu64 " VmRSS=%ld kB",
                       FLOOD_KEYS, (t1 - t0) / 1e6, flood.errors, keys_full, bytes_full, rss_full);
        g_assert_cmpuint(flood.errors, ==, 0);

        /* wait for the last deadline, then nothing may be readable */
        uint64_t now = now_us();
        if (flood.last_deadline_us + 20000 > now)
                g_usleep((gulong) (flood.last_deadline_us + 20000 - now));
        unsigned sampled = 0;
        for (unsigned s = 0; s < 2000; s++) {
                unsigned i = (unsigned) g_rand_int_range(rand, 0, FLOOD_KEYS);
                char key[32];
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                snprintf(key, sizeof(key), "ttl:%u", i);
                int r = ch_store1_call_get(bus, CH_BUS_NAME, NS, key, &reply, &e);
                assert_error_name(&e, r, CH_ERROR_NO_SUCH_KEY);
                sd_bus_error_free(&e);
                sampled++;
        }
        char *sample[1001];
        for (unsigned s = 0; s < 1000; s++)
                sample[s] = g_strdup_printf("ttl:%u", (unsigned) g_rand_int_range(rand, 0, FLOOD_KEYS));
        sample[1000] = NULL;
        uint32_t n = UINT32_MAX;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_assert_cmpint(ch_store1_call_exists(bus, CH_BUS_NAME, NS, sample, &n, &e), >=, 0);
        g_assert_cmpuint(n, ==, 0);
        for (unsigned s = 0; s < 1000; s++)
                g_free(sample[s]);

        /* every key is collected by the hub's expiry timer (DBSize counts uncollected keys) */
        uint64_t t2 = now_us(), size;
        while ((size = dbsize(bus, NS)) != 0 && now_us() - t2 < 10 * G_USEC_PER_SEC)
                g_usleep(10000);
        g_test_message("DBSize %" PRIu64 " %.3f s after the last deadline (%u sampled Gets: NoSuchKey)", size,
                       (now_us() - flood.last_deadline_us) / 1e6, sampled);
        g_assert_cmpuint(size, ==, 0);
        char **keys = NULL;
        g_assert_cmpint(ch_store1_call_keys(bus, CH_BUS_NAME, NS, "*", &keys, &e), >=, 0);
        g_assert_cmpuint(keys ? g_strv_length(keys) : 0, ==, 0);   /* the stub gives NULL for an empty array */
        g_strfreev(keys);

        uint64_t bytes_after = get_stat(bus, "store_bytes"), keys_after = get_stat(bus, "keys");
        long rss_after = vm_rss_kb(hub_pid);
        g_test_message("store_bytes: before %" PRIu64 ", full %" PRIu64 ", after %" PRIu64, bytes_before, bytes_full, bytes_after);
        g_test_message("hub VmRSS:   before %ld kB, full %ld kB, after %ld kB (allocator caching may keep it higher)",
                       rss_before, rss_full, rss_after);
        fprintf(stderr, "# store_bytes before %" PRIu64 " full %" PRIu64 " after %" PRIu64 "; VmRSS kB before %ld full %ld after %ld; set in %.2f s\n",
                bytes_before, bytes_full, bytes_after, rss_before, rss_full, rss_after, (t1 - t0) / 1e6);
        g_assert_cmpuint(keys_after, ==, 0);
        g_assert_cmpuint(bytes_after, ==, bytes_before);
        g_free(flood.ttl_ms);
        g_rand_free(rand);
}

/* ---- BLPop -------------------------------------------------------------------------------- */

typedef struct PopResult {
        bool done;
        char *key, *value, *error;
        uint64_t at_us;
} PopResult;

static int pop_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        PopResult *p = userdata;
        const char *key = NULL, *value = NULL;
        p->done = true;
        p->at_us = now_us();
        if (sd_bus_message_is_method_error(m, NULL)) {
                p->error = g_strdup(sd_bus_message_get_error(m)->name);
                return 0;
        }
        g_assert_cmpint(sd_bus_message_read(m, "sv", &key, "s", &value), >, 0);
        p->key = g_strdup(key);
        p->value = g_strdup(value);
        return 0;
}

static bool both_done(void *userdata) {
        PopResult *p = userdata;
        return p[0].done && p[1].done;
}

/* A round trip on the same connection: the hub has handled everything this connection sent. */
static void sync_point(sd_bus *bus) {
        (void) dbsize(bus, NS);
}

static void test_blpop_two_waiters(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *a = NULL, *b = NULL;
        sd_bus_slot *sa = NULL, *sb = NULL;
        PopResult res[2] = { { 0 } };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t len = 0;

        g_assert_cmpint(th_connect(&a, f->bus.address), >=, 0);
        g_assert_cmpint(th_connect(&b, f->bus.address), >=, 0);

        /* a waits first, b second; each wait is registered before the next step */
        g_assert_cmpint(sd_bus_call_method_async(a, &sa, CH_BUS_NAME, NS, IFACE, "BLPop", pop_reply, &res[0], "asu", 1, "jobs", (uint32_t) 10000), >=, 0);
        sync_point(a);
        g_assert_cmpint(sd_bus_call_method_async(b, &sb, CH_BUS_NAME, NS, IFACE, "BLPop", pop_reply, &res[1], "asu", 1, "jobs", (uint32_t) 10000), >=, 0);
        sync_point(b);
        g_assert_cmpuint(get_stat(f->client, "pending_calls"), ==, 2);
        g_assert_false(res[0].done || res[1].done);

        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, IFACE, "RPush", &e, NULL, "sav", "jobs", 2, "s", "first", "s", "second"), >=, 0);
        sd_bus *both[] = { a, b };
        pump(both, 2, both_done, res, 5000);
        g_assert_true(res[0].done && res[1].done);
        g_test_message("waiter 1 got %s=%s, waiter 2 got %s=%s", res[0].key, res[0].value, res[1].key, res[1].value);
        g_assert_null(res[0].error);
        g_assert_null(res[1].error);
        g_assert_cmpstr(res[0].key, ==, "jobs");
        g_assert_cmpstr(res[0].value, ==, "first");
        g_assert_cmpstr(res[1].key, ==, "jobs");
        g_assert_cmpstr(res[1].value, ==, "second");
        g_assert_cmpint(ch_store1_call_l_len(f->client, CH_BUS_NAME, NS, "jobs", &len, &e), >=, 0);
        g_assert_cmpuint(len, ==, 0);
        g_assert_cmpuint(get_stat(f->client, "pending_calls"), ==, 0);

        /* same with BRPop on the other end */
        for (int i = 0; i < 2; i++) {
                g_free(res[i].key);
                g_free(res[i].value);
                memset(&res[i], 0, sizeof(res[i]));
        }
        sa = sd_bus_slot_unref(sa);
        sb = sd_bus_slot_unref(sb);
        g_assert_cmpint(sd_bus_call_method_async(b, &sb, CH_BUS_NAME, NS, IFACE, "BRPop", pop_reply, &res[0], "asu", 2, "other", "jobs", (uint32_t) 10000), >=, 0);
        sync_point(b);
        g_assert_cmpint(sd_bus_call_method_async(a, &sa, CH_BUS_NAME, NS, IFACE, "BRPop", pop_reply, &res[1], "asu", 1, "jobs", (uint32_t) 10000), >=, 0);
        sync_point(a);
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, IFACE, "RPush", &e, NULL, "sav", "jobs", 3, "s", "x", "s", "y", "s", "z"), >=, 0);
        pump(both, 2, both_done, res, 5000);
        g_assert_true(both_done(res));
        g_assert_cmpstr(res[0].value, ==, "z");     /* b waited first */
        g_assert_cmpstr(res[1].value, ==, "y");
        g_assert_cmpint(ch_store1_call_l_len(f->client, CH_BUS_NAME, NS, "jobs", &len, &e), >=, 0);
        g_assert_cmpuint(len, ==, 1);

        for (int i = 0; i < 2; i++) {
                g_free(res[i].key);
                g_free(res[i].value);
        }
        sd_bus_slot_unref(sa);
        sd_bus_slot_unref(sb);
        sd_bus_flush_close_unref(a);
        sd_bus_flush_close_unref(b);
}

static void test_blpop_timeout_and_disconnect(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *d = NULL;
        uint32_t len = 0;

        /* timeout */
        uint64_t t0 = now_us();
        int r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, IFACE, "BLPop", &e, &reply, "asu", 2, "empty1", "empty2", (uint32_t) 300);
        uint64_t took = now_us() - t0;
        assert_error_name(&e, r, CH_ERROR_TIMEOUT);
        g_test_message("BLPop timeout 300 ms: %s after %.0f ms", e.name, took / 1e3);
        g_assert_cmpuint(took, >=, 290000);
        g_assert_cmpuint(took, <, 3000000);
        sd_bus_error_free(&e);

        /* a waiter that disconnects leaves nothing behind */
        g_assert_cmpint(th_connect(&d, f->bus.address), >=, 0);
        g_assert_cmpint(sd_bus_call_method_async(d, NULL, CH_BUS_NAME, NS, IFACE, "BLPop", NULL, NULL, "asu", 1, "q2", (uint32_t) 10000), >=, 0);
        sync_point(d);
        g_assert_cmpuint(get_stat(f->client, "pending_calls"), ==, 1);
        d = sd_bus_flush_close_unref(d);
        uint64_t t1 = now_us();
        uint64_t pending;
        while ((pending = get_stat(f->client, "pending_calls")) != 0 && now_us() - t1 < 5 * G_USEC_PER_SEC)
                g_usleep(5000);
        g_test_message("pending_calls %" PRIu64 " %.1f ms after the waiter disconnected", pending, (now_us() - t1) / 1e3);
        g_assert_cmpuint(pending, ==, 0);
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, IFACE, "RPush", &e, &reply, "sav", "q2", 1, "s", "kept"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "u", &len), >, 0);
        g_assert_cmpuint(len, ==, 1);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(ch_store1_call_l_len(f->client, CH_BUS_NAME, NS, "q2", &len, &e), >=, 0);
        g_assert_cmpuint(len, ==, 1);
        /* and a new waiter gets it at once */
        const char *key = NULL, *value = NULL;
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, IFACE, "BLPop", &e, &reply, "asu", 1, "q2", (uint32_t) 100), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "sv", &key, "s", &value), >, 0);
        g_assert_cmpstr(value, ==, "kept");
        sd_bus_message_unref(reply);
}

/* ---- KeyChanged -------------------------------------------------------------------------- */

#define SIG_NS CH_NAMESPACE_PATH_PREFIX "sig"

static int on_key_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        GPtrArray *log = userdata;
        const char *key = NULL, *event = NULL;
        g_assert_cmpint(sd_bus_message_read(m, "ss", &key, &event), >, 0);
        g_assert_cmpstr(sd_bus_message_get_path(m), ==, SIG_NS);
        g_ptr_array_add(log, g_strdup_printf("%s:%s", key, event));
        return 0;
}

static char *joined(GPtrArray *log) {
        GString *s = g_string_new(NULL);
        for (guint i = 0; i < log->len; i++)
                g_string_append_printf(s, "%s%s", i ? " " : "", (char *) log->pdata[i]);
        return g_string_free(s, FALSE);
}

typedef struct Want {
        GPtrArray *log;
        guint n;
} Want;

static bool have_enough(void *userdata) {
        Want *w = userdata;
        for (; w->log; w++)
                if (w->log->len < w->n)
                        return false;
        return true;
}

static void call_ok(sd_bus *bus, const char *method, const char *sig, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;
        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, SIG_NS, IFACE, method), >=, 0);
        va_start(ap, sig);
        g_assert_cmpint(sd_bus_message_appendv(m, sig, ap), >=, 0);
        va_end(ap);
        int r = sd_bus_call(bus, m, 0, &e, NULL);
        if (r < 0 && !sd_bus_error_has_name(&e, CH_ERROR_NO_SUCH_KEY))
                g_error("%s: %s: %s", method, e.name, e.message);
        sd_bus_error_free(&e);
        sd_bus_message_unref(m);
}

static void test_key_changed(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *s1 = NULL, *s2 = NULL, *s3 = NULL, *c = f->client;
        g_autoptr(GPtrArray) l1 = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) l2 = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) l3 = g_ptr_array_new_with_free_func(g_free);
        const char *base = "type='signal',interface='org.clusterhub.Store1',member='KeyChanged',path='" SIG_NS "'";
        g_autofree char *m1 = g_strdup_printf("%s,arg0='k'", base);
        g_autofree char *m2 = g_strdup_printf("%s,arg1='expired'", base);

        call_ok(c, "DBSize", "");      /* creates the namespace */
        g_assert_cmpint(th_connect(&s1, f->bus.address), >=, 0);
        g_assert_cmpint(th_connect(&s2, f->bus.address), >=, 0);
        g_assert_cmpint(th_connect(&s3, f->bus.address), >=, 0);
        g_assert_cmpint(sd_bus_add_match(s1, NULL, m1, on_key_changed, l1), >=, 0);
        g_assert_cmpint(sd_bus_add_match(s2, NULL, m2, on_key_changed, l2), >=, 0);
        g_assert_cmpint(sd_bus_add_match(s3, NULL, base, on_key_changed, l3), >=, 0);

        call_ok(c, "Set", "sva{sv}", "k", "s", "v1", 0);                                /* k:set */
        call_ok(c, "Set", "sva{sv}", "other", "s", "v", 0);
        call_ok(c, "Set", "sva{sv}", "k2", "s", "v", 0);                               /* not k */
        call_ok(c, "Expire", "st", "k", (uint64_t) 60000);                             /* k:expire */
        /* reads */
        call_ok(c, "Get", "s", "k");
        call_ok(c, "Exists", "as", 2, "k", "k");
        call_ok(c, "TTL", "s", "k");
        call_ok(c, "Type", "s", "k");
        call_ok(c, "StrLen", "s", "k");
        call_ok(c, "MGet", "as", 1, "k");
        call_ok(c, "Keys", "s", "*");
        call_ok(c, "Scan", "tsu", (uint64_t) 0, "*", (uint32_t) 10);
        call_ok(c, "Del", "as", 1, "k");                                                /* k:del */
        call_ok(c, "Del", "as", 1, "k");                                                /* nothing: absent */
        call_ok(c, "Set", "sva{sv}", "k", "s", "v2", 1, "ttl_ms", "t", (uint64_t) 150);    /* k:set k:expire */
        call_ok(c, "Set", "sva{sv}", "other", "s", "v", 1, "ttl_ms", "t", (uint64_t) 200); /* other:set other:expire */

        sd_bus *subs[] = { s1, s2, s3 };
        Want want[] = { { l1, 6 }, { l2, 2 }, { l3, 10 }, { NULL, 0 } };
        pump(subs, 3, have_enough, want, 5000);   /* the expiry timer fires without any read */
        pump(subs, 3, NULL, NULL, 200);           /* and nothing more arrives */
        g_autofree char *j1 = joined(l1), *j2 = joined(l2), *j3 = joined(l3);
        g_test_message("arg0='k':         %s", j1);
        g_test_message("arg1='expired':   %s", j2);
        g_test_message("whole namespace:  %s", j3);
        g_assert_cmpstr(j1, ==, "k:set k:expire k:del k:set k:expire k:expired");
        g_assert_cmpstr(j2, ==, "k:expired other:expired");
        g_assert_cmpstr(j3, ==, "k:set other:set k2:set k:expire k:del k:set k:expire other:set other:expire k:expired other:expired");

        /* reads of every kind emit nothing; a marker write shows the stream is live */
        g_ptr_array_set_size(l3, 0);
        call_ok(c, "HSet", "sa{sv}", "h", 1, "f", "s", "v");
        call_ok(c, "RPush", "sav", "l", 2, "s", "a", "s", "b");
        call_ok(c, "SAdd", "sas", "s", 1, "m");
        pump(subs, 3, NULL, NULL, 200);
        g_ptr_array_set_size(l3, 0);
        call_ok(c, "Get", "s", "k2");
        call_ok(c, "Get", "s", "missing");
        call_ok(c, "GetRange", "sxx", "k2", (int64_t) 0, (int64_t) -1);
        call_ok(c, "DBSize", "");
        call_ok(c, "RandomKey", "");
        call_ok(c, "HGet", "ss", "h", "f");
        call_ok(c, "HGetAll", "s", "h");
        call_ok(c, "HMGet", "sas", "h", 1, "f");
        call_ok(c, "HExists", "ss", "h", "f");
        call_ok(c, "HLen", "s", "h");
        call_ok(c, "HKeys", "s", "h");
        call_ok(c, "HVals", "s", "h");
        call_ok(c, "LRange", "sxx", "l", (int64_t) 0, (int64_t) -1);
        call_ok(c, "LLen", "s", "l");
        call_ok(c, "LIndex", "sx", "l", (int64_t) -1);
        call_ok(c, "SMembers", "s", "s");
        call_ok(c, "SIsMember", "ss", "s", "m");
        call_ok(c, "SCard", "s", "s");
        call_ok(c, "SRandMember", "su", "s", (uint32_t) 1);
        call_ok(c, "Persist", "s", "k2");            /* no TTL: changes nothing */
        call_ok(c, "LTrim", "sxx", "l", (int64_t) 0, (int64_t) -1);   /* keeps everything */
        call_ok(c, "Set", "sva{sv}", "marker", "s", "v", 0);
        Want want3[] = { { l3, 1 }, { NULL, 0 } };
        pump(subs, 3, have_enough, want3, 5000);
        pump(subs, 3, NULL, NULL, 100);
        g_autofree char *j4 = joined(l3);
        g_test_message("after reads: %s", j4);
        g_assert_cmpstr(j4, ==, "marker:set");

        sd_bus_flush_close_unref(s1);
        sd_bus_flush_close_unref(s2);
        sd_bus_flush_close_unref(s3);
}

/* ---- SetGet and Move over the bus ----------------------------------------------------------- */

#define MV_SRC CH_NAMESPACE_PATH_PREFIX "mvsrc"
#define MV_DST CH_NAMESPACE_PATH_PREFIX "mvdst"

static int on_any_key_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        GPtrArray *log = userdata;
        const char *key = NULL, *event = NULL, *path = sd_bus_message_get_path(m);
        g_assert_cmpint(sd_bus_message_read(m, "ss", &key, &event), >, 0);
        g_ptr_array_add(log, g_strdup_printf("%s:%s:%s", strrchr(path, '/') + 1, key, event));
        return 0;
}

static bool has_namespace(sd_bus *bus, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_auto(GStrv) names = NULL;
        g_assert_cmpint(ch_hub1_call_list_namespaces(bus, CH_BUS_NAME, CH_HUB_PATH, &names, &e), >=, 0);
        return g_strv_contains((const char *const *) names, name);
}

static void setget(sd_bus *bus, const char *key, const char *value, int *ret_had, char **ret_old) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *old = NULL;
        int had = -1;
        int r = sd_bus_call_method(bus, CH_BUS_NAME, MV_SRC, IFACE, "SetGet", &e, &reply, "sva{sv}", key, "s", value, 0);
        if (r < 0)
                g_error("SetGet: %s: %s", e.name, e.message);
        g_assert_cmpint(sd_bus_message_read(reply, "bv", &had, "s", &old), >, 0);
        *ret_had = had;
        *ret_old = g_strdup(old);
        sd_bus_message_unref(reply);
}

static bool move(sd_bus *bus, const char *key, const char *target, sd_bus_error *e) {
        sd_bus_message *reply = NULL;
        int moved = -1;
        int r = sd_bus_call_method(bus, CH_BUS_NAME, MV_SRC, IFACE, "Move", e, &reply, "ss", key, target);
        if (r < 0)
                return false;
        g_assert_cmpint(sd_bus_message_read(reply, "b", &moved), >, 0);
        sd_bus_message_unref(reply);
        return moved;
}

static void test_setget_move(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *const args[] = { "--max-namespace-memory=8192", NULL };
        g_autoptr(GPtrArray) log = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *big = g_strnfill(5000, 'x');
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *c = NULL, *sub = NULL;
        g_autofree char *old1 = NULL, *old2 = NULL;
        const char *value = NULL;
        int had = -1;

        g_assert_cmpint(th_hub_stop(&f->hub), ==, 0);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, args), ==, 0);
        c = f->client;          /* in private mode a new connection to the new hub */
        g_assert_cmpint(th_connect(&sub, f->bus.address), >=, 0);
        g_assert_cmpint(sd_bus_add_match(sub, NULL, "type='signal',interface='org.clusterhub.Store1',member='KeyChanged'",
                                         on_any_key_changed, log), >=, 0);

        /* SetGet: (false, "") for an absent key, then the old value */
        setget(c, "k", "v1", &had, &old1);
        g_assert_cmpint(had, ==, 0);
        g_assert_cmpstr(old1, ==, "");
        setget(c, "k", "v2", &had, &old2);
        g_assert_cmpint(had, ==, 1);
        g_assert_cmpstr(old2, ==, "v1");

        /* Move: a missing key moves nowhere and creates no namespace */
        g_assert_false(move(c, "nope", "mvdst", &e));
        g_assert_false(sd_bus_error_is_set(&e));
        g_assert_false(has_namespace(c, "mvdst"));
        g_assert_false(move(c, "k", "not-a-name", &e));
        assert_error_name(&e, -EINVAL, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        g_assert_false(move(c, "k", "mvsrc", &e));
        assert_error_name(&e, -EINVAL, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        /* the key and its TTL move; the target namespace is created */
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_SRC, IFACE, "Expire", &e, NULL, "st", "k", (uint64_t) 60000), >=, 0);
        g_assert_true(move(c, "k", "mvdst", &e));
        g_assert_true(has_namespace(c, "mvdst"));
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_SRC, IFACE, "Get", &e, NULL, "s", "k"), <, 0);
        assert_error_name(&e, -ENOKEY, CH_ERROR_NO_SUCH_KEY);
        sd_bus_error_free(&e);
        sd_bus_message *reply = NULL;
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_DST, IFACE, "Get", &e, &reply, "s", "k"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &value), >, 0);
        g_assert_cmpstr(value, ==, "v2");
        reply = sd_bus_message_unref(reply);
        int64_t ttl = 0;
        g_assert_cmpint(ch_store1_call_ttl(c, CH_BUS_NAME, MV_DST, "k", &ttl, &e), >=, 0);
        g_assert_cmpint(ttl, >, 0);
        g_assert_cmpint(ttl, <=, 60000);
        /* the target has the key now: false */
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_SRC, IFACE, "Set", &e, NULL, "sva{sv}", "k", "s", "again", 0), >=, 0);
        g_assert_false(move(c, "k", "mvdst", &e));
        g_assert_false(sd_bus_error_is_set(&e));

        /* the target's memory limit: 5000 bytes do not fit beside 5000 more */
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_SRC, IFACE, "Set", &e, NULL, "sva{sv}", "big", "s", big, 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_DST, IFACE, "Set", &e, NULL, "sva{sv}", "other", "s", big, 0), >=, 0);
        g_assert_false(move(c, "big", "mvdst", &e));
        assert_error_name(&e, -ENOBUFS, CH_ERROR_LIMIT_EXCEEDED);
        g_test_message("Move past the target's memory: %s", e.message);
        g_assert_nonnull(strstr(e.message, "'mvdst'"));
        g_assert_nonnull(strstr(e.message, "--max-namespace-memory"));
        sd_bus_error_free(&e);
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_SRC, IFACE, "StrLen", &e, &reply, "s", "big"), >=, 0);
        reply = sd_bus_message_unref(reply);

        /* KeyChanged in both namespaces: move_from, move_to */
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, MV_SRC, IFACE, "Set", &e, NULL, "sva{sv}", "marker", "s", "m", 0), >=, 0);
        sd_bus *subs[] = { sub };
        Want want[] = { { log, 9 }, { NULL, 0 } };
        pump(subs, 1, have_enough, want, 5000);
        pump(subs, 1, NULL, NULL, 100);
        g_autofree char *j = joined(log);
        g_test_message("%s", j);
        g_assert_cmpstr(j, ==, "mvsrc:k:set mvsrc:k:set mvsrc:k:expire mvsrc:k:move_from mvdst:k:move_to mvsrc:k:set "
                               "mvsrc:big:set mvdst:other:set mvsrc:marker:set");
        sd_bus_flush_close_unref(sub);
}

/* ---- LimitExceeded names the limit, the size asked for, and the option ---------------------- */

static char *limit_message(sd_bus *bus, const char *method, const char *sig, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;
        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, NS, IFACE, method), >=, 0);
        va_start(ap, sig);
        g_assert_cmpint(sd_bus_message_appendv(m, sig, ap), >=, 0);
        va_end(ap);
        int r = sd_bus_call(bus, m, 0, &e, NULL);
        assert_error_name(&e, r, CH_ERROR_LIMIT_EXCEEDED);
        char *msg = g_strdup(e.message);
        g_test_message("%s: %s", method, msg);
        sd_bus_error_free(&e);
        sd_bus_message_unref(m);
        return msg;
}

static void test_limit_messages(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *const args[] = { "--max-value-bytes=16", "--max-elements=2", NULL };
        const char *big = "0123456789abcdefghij";   /* 20 bytes */
        sd_bus *c = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;

        g_assert_cmpint(th_hub_stop(&f->hub), ==, 0);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, args), ==, 0);
        c = f->client;          /* in private mode a new connection to the new hub */

        g_autofree char *set = limit_message(c, "Set", "sva{sv}", "k", "s", big, 0);
        g_assert_cmpstr(set, ==, "Value of 'k' is 20 bytes; the limit is 16 (--max-value-bytes).");
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, NS, IFACE, "Set", &e, NULL, "sva{sv}", "k", "s", "0123456789", 0), >=, 0);
        g_autofree char *append = limit_message(c, "Append", "ss", "k", "0123456789");
        g_assert_cmpstr(append, ==, "Value of 'k' is 20 bytes; the limit is 16 (--max-value-bytes).");
        g_autofree char *setrange = limit_message(c, "SetRange", "sus", "k", (uint32_t) 15, "xy");
        g_assert_cmpstr(setrange, ==, "Value of 'k' is 17 bytes; the limit is 16 (--max-value-bytes).");
        /* MSet names the key whose value is too large, not the first one */
        g_autofree char *mset = limit_message(c, "MSet", "a{sv}", 2, "small", "s", "v", "large", "s", big);
        g_assert_cmpstr(mset, ==, "Value of 'large' is 20 bytes; the limit is 16 (--max-value-bytes).");
        g_assert_cmpint(sd_bus_call_method(c, CH_BUS_NAME, NS, IFACE, "SAdd", &e, NULL, "sas", "set", 2, "a", "b"), >=, 0);
        g_autofree char *sadd = limit_message(c, "SAdd", "sas", "set", 1, "c");
        g_assert_cmpstr(sadd, ==, "Limit exceeded for key 'set': elements; the limit is 2 (--max-elements).");
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/ttl-100k", test_ttl_flood);
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/blpop-two-waiters", test_blpop_two_waiters);
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/blpop-timeout-disconnect", test_blpop_timeout_and_disconnect);
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/key-changed", test_key_changed);
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/limit-messages", test_limit_messages);
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/setget-move", test_setget_move);
        return g_test_run();
}
