/* SPDX-License-Identifier: MIT */
/* Requests, EmitTo and WaitForWorkers across hosts (docs/redis.md, "Requests"): two hubs on two
 * private buses and one redis-server (redis-fixture.h).  A worker serving a method on hub b
 * answers a Request made on hub a; Request round-robins over a local and a remote server;
 * RequestAll gathers from both hubs; NoHandler, Timeout, WorkerGone (the worker exits
 * mid-request, and hub b is killed mid-request) as for local requests; EmitTo ID@b from a reaches
 * the worker; WaitForWorkers on a counts a worker of b; Redis killed: a Request bound for another
 * hub answers BackendUnavailable.  Workers are this binary re-executed with --worker. */
#include <errno.h>
#include <glib.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "harness.h"

#include "redis-fixture.h"

#define REQUESTS_IFACE "org.clusterhub.Requests1"
#define NO_HANDLER "org.clusterhub.Error.NoHandler"
#define TIMEOUT "org.clusterhub.Error.Timeout"
#define WORKER_GONE "org.clusterhub.Error.WorkerGone"
#define NOT_REGISTERED "org.clusterhub.Error.NotRegistered"

static const char *self_path;

/* ---- the worker process ------------------------------------------------------------------ */

static const char *worker_id;
static sd_bus_message *held[64];
static unsigned n_held;

/* echo: "ID:PAYLOAD"; hold: never answered; die: the worker exits without answering */
static int handle(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *ns, *method, *origin, *payload = NULL;
        g_autofree char *reply = NULL;

        if (sd_bus_message_read(m, "sss", &ns, &method, &origin) < 0)
                return -EINVAL;
        if (g_str_equal(method, "hold")) {
                if (n_held < G_N_ELEMENTS(held))
                        held[n_held++] = sd_bus_message_ref(m);
                return 1;
        }
        if (g_str_equal(method, "die"))
                _exit(0);
        if (g_str_equal(method, "bigerr")) { /* an error whose message is longer than a string crossing hosts */
                g_autofree char *big = g_strnfill(70000, 'e');
                return sd_bus_error_setf(ret_error, "org.example.Error.Big", "%s\xc3\xa9", big);
        }
        if (sd_bus_message_read(m, "v", "s", &payload) < 0)
                return sd_bus_error_set(ret_error, SD_BUS_ERROR_INVALID_ARGS, "a string, please");
        reply = g_strdup_printf("%s:%s:%s", worker_id, payload, origin);
        return sd_bus_reply_method_return(m, "v", "s", reply);
}

static const sd_bus_vtable handler_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Handle", "sssv", "v", handle, 0),
        SD_BUS_VTABLE_END,
};

/* --worker ADDRESS ID METHOD...: serves the methods, then registers, then serves until the bus
 * goes away. */
static int worker_main(int argc, char **argv) {
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        int r;

        worker_id = argv[3];
        if (th_connect(&bus, argv[2]) < 0)
                return 2;
        if (sd_bus_add_object_vtable(bus, NULL, "/org/clusterhub/Handler1", "org.clusterhub.Handler1", handler_vtable,
                                     NULL) < 0)
                return 3;
        r = sd_bus_message_new_method_call(bus, &m, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Serve");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, argv + 4);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, NULL, NULL);
        sd_bus_message_unref(m);
        if (r < 0)
                return 4;
        if (sd_bus_call_method(bus, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "Register", NULL, NULL, "sa{sv}", worker_id, 0) < 0)
                return 5;
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 0;
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return 6;
        }
}

/* ---- the test process -------------------------------------------------------------------- */

static void spawn_worker(ThProc *proc, Side *side, const char *id, const char *const *methods) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();

        g_ptr_array_add(argv, (char *) self_path);
        g_ptr_array_add(argv, "--worker");
        g_ptr_array_add(argv, side->bus.address);
        g_ptr_array_add(argv, (char *) id);
        for (size_t i = 0; methods[i]; i++)
                g_ptr_array_add(argv, (char *) methods[i]);
        g_ptr_array_add(argv, NULL);
        *proc = (ThProc) TH_PROC_NULL;
        g_assert_cmpint(th_spawn(proc, (const char *const *) argv->pdata, NULL, -1, -1), >, 0);
}

static void stop_worker(ThProc *proc) {
        (void) th_proc_stop(proc, SIGTERM, 5000);
        th_proc_clear(proc);
}

/* The connection a test calls hub a on: the bus, or a's private socket (VIA_SOCKET). */
static sd_bus *caller_of(Fixture *f, gconstpointer data) {
        return GPOINTER_TO_UINT(data) & VIA_SOCKET ? f->a.listener : f->a.emitter;
}

/* Request(target "", METHOD, <s PAYLOAD>, timeout_ms) on BUS: the reply string (to free) or
 * NULL with ERR set. */
static char *request(sd_bus *bus, const char *method, const char *payload, uint32_t timeout_ms, sd_bus_error *err) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *s = NULL;

        if (sd_bus_call_method(bus, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request", err, &reply, "ssva{sv}", "", method,
                               "s", payload, 1, "timeout_ms", "u", timeout_ms) < 0)
                return NULL;
        g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &s), >=, 0);
        return g_strdup(s);
}

/* RequestAll(METHOD) on BUS: replies and errors by key. */
static void request_all(sd_bus *bus, const char *method, uint32_t timeout_ms, GHashTable *replies, GHashTable *errors) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        const char *k, *v;

        if (sd_bus_call_method(bus, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "RequestAll", &err, &reply, "sva{sv}", method,
                               "s", "all", 1, "timeout_ms", "u", timeout_ms) < 0)
                g_error("RequestAll: %s: %s", err.name, err.message);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "s", &k), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &v), >=, 0);
                g_hash_table_insert(replies, g_strdup(k), g_strdup(v));
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        }
        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{ss}"), >, 0);
        while (sd_bus_message_read(reply, "{ss}", &k, &v) > 0)
                g_hash_table_insert(errors, g_strdup(k), g_strdup(v));
}

/* Waits until hub a's RequestAll of METHOD has a reply from KEY (a knows what b serves). */
static bool wait_served(sd_bus *bus, const char *method, const char *key) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        for (;;) {
                g_autoptr(GHashTable) replies = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
                g_autoptr(GHashTable) errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

                request_all(bus, method, 5000, replies, errors);
                if (g_hash_table_contains(replies, key) || g_hash_table_contains(errors, key))
                        return true;
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(20 * 1000);
        }
}

static void test_request_cross(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        ThProc wb;
        sd_bus *caller = caller_of(f, data);
        g_autofree char *reply = NULL, *origin = NULL;
        const char *unique = NULL;

        if (f->skipped)
                return;
        /* nobody serves it anywhere */
        g_assert_null(request(caller, "echo", "x", 5000, &err));
        g_assert_cmpstr(err.name, ==, NO_HANDLER);
        sd_bus_error_free(&err);

        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", NULL });
        g_assert_true(wait_served(caller, "echo", "wb@b"));
        reply = request(caller, "echo", "hello", 5000, &err);
        g_assert_nonnull(reply);
        /* the handler sees the caller as ORIGIN@a */
        g_assert_cmpint(sd_bus_get_unique_name(caller, &unique), >=, 0);
        origin = g_strdup_printf("wb:hello:%s@a", unique);
        if (GPOINTER_TO_UINT(data) & VIA_SOCKET)
                g_assert_true(g_str_has_prefix(reply, "wb:hello:") && g_str_has_suffix(reply, "@a"));
        else
                g_assert_cmpstr(reply, ==, origin);
        g_assert_cmpuint(stat_of(&f->a, "backend_requests_sent"), >=, 1);
        g_assert_cmpuint(stat_of(&f->b, "backend_requests_answered"), >=, 1);

        /* to the worker by its id as ListWorkers shows it */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *r = NULL;
                const char *s = NULL;

                g_assert_cmpint(sd_bus_call_method(caller, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request", &e, &r,
                                                   "ssva{sv}", "wb@b", "echo", "s", "targeted", 0), >=, 0);
                g_assert_cmpint(sd_bus_message_read(r, "v", "s", &s), >=, 0);
                g_assert_true(g_str_has_prefix(s, "wb:targeted:"));
                g_assert_cmpint(sd_bus_call_method(caller, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request", &e, NULL,
                                                   "ssva{sv}", "wb@b", "other", "s", "x", 0), <, 0);
                g_assert_cmpstr(e.name, ==, NO_HANDLER);
                sd_bus_error_free(&e);
                g_assert_cmpint(sd_bus_call_method(caller, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request", &e, NULL,
                                                   "ssva{sv}", "nobody@b", "echo", "s", "x", 0), <, 0);
                g_assert_cmpstr(e.name, ==, "org.clusterhub.Error.WorkerUnavailable");
        }
        /* file descriptors cannot cross hosts */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                int fd = dup(STDERR_FILENO);

                g_assert_cmpint(fd, >=, 0);
                g_assert_cmpint(sd_bus_call_method(caller, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request", &e, NULL,
                                                   "ssva{sv}", "", "echo", "h", fd, 0), <, 0);
                g_assert_cmpstr(e.name, ==, "org.clusterhub.Error.InvalidArgs");
                close(fd);
        }
        /* a method nobody serves on either hub */
        g_assert_null(request(caller, "nobody", "x", 5000, &err));
        g_assert_cmpstr(err.name, ==, NO_HANDLER);
        stop_worker(&wb);
}

/* One local and one remote server: requests go to both; RequestAll gathers from both. */
static void test_round_robin_and_all(Fixture *f, gconstpointer data) {
        g_autoptr(GHashTable) replies = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_autoptr(GHashTable) errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        ThProc wa, wb;
        unsigned from_a = 0, from_b = 0;

        if (f->skipped)
                return;
        spawn_worker(&wa, &f->a, "wa", (const char *[]) { "echo", NULL });
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        g_assert_true(wait_served(f->a.emitter, "echo", "wa"));
        for (unsigned i = 0; i < 8; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_autofree char *reply = request(f->a.emitter, "echo", "rr", 5000, &err);

                g_assert_nonnull(reply);
                if (g_str_has_prefix(reply, "wa:"))
                        from_a++;
                else if (g_str_has_prefix(reply, "wb:"))
                        from_b++;
        }
        g_test_message("8 requests on a: %u answered on a, %u on b", from_a, from_b);
        g_assert_cmpuint(from_a, ==, 4);
        g_assert_cmpuint(from_b, ==, 4);

        request_all(f->a.emitter, "echo", 5000, replies, errors);
        g_assert_cmpuint(g_hash_table_size(replies), ==, 2);
        g_assert_cmpuint(g_hash_table_size(errors), ==, 0);
        g_assert_true(g_str_has_prefix(g_hash_table_lookup(replies, "wa"), "wa:all:"));
        g_assert_true(g_str_has_prefix(g_hash_table_lookup(replies, "wb@b"), "wb:all:"));
        stop_worker(&wa);
        stop_worker(&wb);
}

/* Timeout when the remote worker does not answer; WorkerGone when it exits mid-request. */
static void test_timeout_and_gone(Fixture *f, gconstpointer data) {
        ThProc wb;
        g_autoptr(GHashTable) replies = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_autoptr(GHashTable) errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

        if (f->skipped)
                return;
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "hold", "die", "echo", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_assert_null(request(f->a.emitter, "hold", "x", 1000, &err));
                g_assert_cmpstr(err.name, ==, TIMEOUT);
                g_test_message("Timeout: %s", err.message);
        }
        /* a RequestAll: the remote worker's row is its Timeout */
        request_all(f->a.emitter, "hold", 1000, replies, errors);
        g_assert_cmpuint(g_hash_table_size(replies), ==, 0);
        g_assert_cmpuint(g_hash_table_size(errors), ==, 1);
        g_assert_true(g_str_has_prefix(g_hash_table_lookup(errors, "wb@b") ?: g_hash_table_lookup(errors, "@b"), TIMEOUT));
        {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_assert_null(request(f->a.emitter, "die", "x", 20000, &err));
                g_assert_cmpstr(err.name, ==, WORKER_GONE);
                g_test_message("WorkerGone: %s", err.message);
        }
        stop_worker(&wb);
}

typedef struct Pending {
        bool done;
        char *error;
} Pending;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        p->done = true;
        p->error = g_strdup(e ? e->name : "");
        return 0;
}

/* Hub b killed (SIGKILL) while its worker handles a request of a: a answers WorkerGone once b's
 * heartbeat expired (the fixture's 1500 ms lease). */
static void test_hub_killed(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        Pending p = {};
        ThProc wb;
        gint64 end, t0;
        uint64_t received;

        if (f->skipped)
                return;
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "hold", "echo", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        received = stat_of(&f->b, "backend_requests_received");
        g_assert_cmpint(sd_bus_call_method_async(f->a.emitter, &slot, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request",
                                                 on_reply, &p, "ssva{sv}", "", "hold", "s", "x", 1, "timeout_ms", "u",
                                                 (uint32_t) 60000), >=, 0);
        /* the request is out at b's worker once b counts it */
        g_assert_true(wait_stat_at_least(&f->b, "backend_requests_received", received + 1));
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        t0 = g_get_monotonic_time();
        g_assert_cmpint(th_proc_stop(&f->b.hub.proc, SIGKILL, 10000), !=, -1);
        while (!p.done) {
                g_assert_true(g_get_monotonic_time() < end + WAIT_MS * 1000);
                if (sd_bus_process(f->a.emitter, NULL) == 0)
                        (void) sd_bus_wait(f->a.emitter, 100 * 1000);
        }
        g_test_message("kill -9 of hub b mid-request -> %s on a: %.1f ms (lease 1500 ms)", p.error,
                       (g_get_monotonic_time() - t0) / 1000.0);
        g_assert_cmpstr(p.error, ==, WORKER_GONE);
        g_free(p.error);
        stop_worker(&wb);
}

/* An in-process worker on SIDE's bus: registers as ID and records the events it gets. */
static int on_worker_event(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        GPtrArray *got = userdata;
        const char *event, *origin, *payload = NULL;

        if (sd_bus_message_read(m, "ss", &event, &origin) >= 0 && sd_bus_message_read(m, "v", "s", &payload) >= 0)
                g_ptr_array_add(got, g_strdup_printf("%s %s %s", event, origin, payload));
        return 0;
}

static void test_emit_to(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *w = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        g_autoptr(GPtrArray) got = g_ptr_array_new_with_free_func(g_free);
        const char *unique = NULL;
        g_autofree char *want = NULL;
        gint64 end;

        if (f->skipped)
                return;
        g_assert_cmpint(th_connect(&w, f->b.bus.address), ==, 0);
        g_assert_cmpint(sd_bus_match_signal(w, NULL, TH_HUB_NAME, NS_PATH, EVENTS_IFACE, "Event", on_worker_event, got), >=, 0);
        g_assert_cmpint(sd_bus_call_method(w, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "Register", NULL, NULL, "sa{sv}", "we", 0),
                        >=, 0);
        g_assert_true(wait_seen(f, &f->a, "WorkerJoined we@b", 1));

        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, EVENTS_IFACE, "EmitTo", &err, NULL, "ssv",
                                           "we@b", "ping", "s", "across"), >=, 0);
        g_assert_cmpint(sd_bus_get_unique_name(f->a.emitter, &unique), >=, 0);
        want = g_strdup_printf("ping %s@a across", unique);
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        while (got->len == 0) {
                g_assert_true(g_get_monotonic_time() < end);
                if (sd_bus_process(w, NULL) == 0)
                        (void) sd_bus_wait(w, 50 * 1000);
        }
        g_assert_cmpstr(got->pdata[0], ==, want);

        /* a worker no host lists */
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, EVENTS_IFACE, "EmitTo", &err, NULL, "ssv",
                                           "nobody@b", "ping", "s", "x"), <, 0);
        g_assert_cmpstr(err.name, ==, NOT_REGISTERED);
}

/* WaitForWorkers on a, waiting, is answered when a worker registers on b; the ids include it. */
static void test_wait_for_workers(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *w = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        g_auto(GStrv) ids = NULL;
        Pending p = {};
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        if (f->skipped)
                return;
        g_assert_cmpint(sd_bus_call_method_async(f->a.emitter, &slot, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "WaitForWorkers",
                                                 on_reply, &p, "uu", 1, (uint32_t) WAIT_MS), >=, 0);
        g_assert_cmpint(sd_bus_flush(f->a.emitter), >=, 0);
        g_usleep(100 * 1000);
        g_assert_cmpint(sd_bus_process(f->a.emitter, NULL), >=, 0);
        g_assert_false(p.done);
        g_assert_cmpint(th_connect(&w, f->b.bus.address), ==, 0);
        g_assert_cmpint(sd_bus_call_method(w, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "Register", NULL, NULL, "sa{sv}", "wx", 0),
                        >=, 0);
        while (!p.done) {
                g_assert_true(g_get_monotonic_time() < end);
                if (sd_bus_process(f->a.emitter, NULL) == 0)
                        (void) sd_bus_wait(f->a.emitter, 50 * 1000);
        }
        g_assert_cmpstr(p.error, ==, "");
        g_free(p.error);
        /* answered at once now, with the remote id */
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "WaitForWorkers", &err, &reply,
                                           "uu", 1, (uint32_t) 1000), >=, 0);
        g_assert_cmpint(sd_bus_message_read_strv(reply, &ids), >=, 0);
        g_assert_true(g_strv_contains((const char *const *) ids, "wx@b"));
}

/* Redis killed: a Request that would go to hub b answers BackendUnavailable (never hangs); a's
 * own servers keep serving a's callers. */
static void test_redis_down(Fixture *f, gconstpointer data) {
        ThProc wa, wb;
        gint64 end;

        if (f->skipped)
                return;
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "remote", NULL });
        spawn_worker(&wa, &f->a, "wa", (const char *[]) { "local", NULL });
        g_assert_true(wait_served(f->a.emitter, "remote", "wb@b"));
        g_assert_true(wait_served(f->a.emitter, "local", "wa"));

        g_assert_cmpint(th_proc_stop(&f->redis, SIGKILL, 10000), !=, -1);
        th_proc_clear(&f->redis);
        f->redis = (ThProc) TH_PROC_NULL;
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        for (;;) {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_autofree char *reply = request(f->a.emitter, "remote", "x", 20000, &err);

                if (!reply) {
                        g_assert_cmpstr(err.name, ==, BACKEND_UNAVAILABLE);
                        break;
                }
                g_assert_true(g_get_monotonic_time() < end);
                g_usleep(20 * 1000);
        }
        g_assert_true(wait_connected(&f->a, false));
        {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_autofree char *reply = request(f->a.emitter, "remote", "x", 20000, &err);
                g_assert_null(reply);
                g_assert_cmpstr(err.name, ==, BACKEND_UNAVAILABLE);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_autofree char *reply = request(f->a.emitter, "local", "here", 20000, &err);
                g_assert_nonnull(reply);
                g_assert_true(g_str_has_prefix(reply, "wa:here:"));
        }
        stop_worker(&wa);
        stop_worker(&wb);
}

static void redis_cmd(redisContext *c, int argc, const char **argv, const size_t *len) {
        redisReply *r = redisCommandArgv(c, argc, argv, len);

        g_assert_nonnull(r);
        g_assert_cmpint(r->type, !=, REDIS_REPLY_ERROR);
        freeReplyObject(r);
}

/* Any client of the Redis can write the served lists and publish on the hubs' channels: junk
 * is counted and ignored; a node that claims to serve a method but listens to nothing makes a
 * Request answer WorkerGone, not hang. */
static void test_hostile(Fixture *f, gconstpointer data) {
        static const char *const junk[] = { "", "CHR1", "CHR1lQ", "\xff\xfe garbage", "CHR1lQ0123456701234567012345670000" };
        redisContext *c;
        ThProc wb;
        gint64 end;

        if (f->skipped)
                return;
        c = redisConnectUnix(f->sock);
        g_assert_true(c && !c->err);
        /* each hub's channel: its instance heads the list of what it serves */
        for (const char *const *node = (const char *const[]) { "a", "b", NULL }; *node; node++) {
                g_autofree char *key = g_strdup_printf("clusterhub:served:%s", *node), *channel = NULL;
                redisReply *served = redisCommand(c, "GET %s", key);

                g_assert_true(served && served->type == REDIS_REPLY_STRING && g_str_has_prefix(served->str, "CHS1 "));
                channel = g_strdup_printf("clusterhub:req:%.16s", served->str + 5);
                freeReplyObject(served);
                for (size_t j = 0; j < G_N_ELEMENTS(junk); j++) {
                        redisReply *n = redisCommand(c, "PUBLISH %s %s", channel, junk[j]);
                        g_assert_true(n && n->type == REDIS_REPLY_INTEGER && n->integer == 1); /* the hub listens */
                        freeReplyObject(n);
                }
        }
        /* a node with a list that does not parse, and one that serves "fake" but listens to nothing */
        redis_cmd(c, 5, (const char *[]) { "SET", "clusterhub:node:evil", "1", "PX", "600000" }, NULL);
        redis_cmd(c, 5, (const char *[]) { "SET", "clusterhub:node:junk", "1", "PX", "600000" }, NULL);
        redis_cmd(c, 4, (const char *[]) { "SADD", "clusterhub:nodes", "evil", "junk" }, NULL);
        redis_cmd(c, 3, (const char *[]) { "SET", "clusterhub:served:evil", "CHS1 00000000000000aa\ndefault\tfake\t3\n" }, NULL);
        redis_cmd(c, 3, (const char *[]) { "SET", "clusterhub:served:junk", "CHS1 zz\ndefault\tfake\n" }, NULL);
        redis_cmd(c, 3, (const char *[]) { "PUBLISH", "clusterhub:registry", "S\tevil" }, NULL);

        end = g_get_monotonic_time() + WAIT_MS * 1000;
        for (;;) {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;

                g_assert_null(request(f->a.emitter, "fake", "x", 20000, &err));
                if (!g_str_equal(err.name, NO_HANDLER)) {
                        g_assert_cmpstr(err.name, ==, WORKER_GONE);
                        g_test_message("%s", err.message);
                        break;
                }
                g_assert_true(g_get_monotonic_time() < end);
                g_usleep(50 * 1000);
        }
        g_assert_cmpuint(stat_of(&f->a, "backend_requests_dropped"), >=, G_N_ELEMENTS(junk));
        g_assert_cmpuint(stat_of(&f->b, "backend_requests_dropped"), >=, G_N_ELEMENTS(junk));
        redisFree(c);

        /* and requests still cross */
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        stop_worker(&wb);
}

/* A message in the format of remote-request.h, forged by a test that is just another client of
 * the Redis: KIND, ID, REPLY_TO (an instance, as the hubs send it), TIMEOUT_MS, N strings and
 * one blob (BLOB NULL: no blob; GATHERED: as many blobs as BLOBS has). */
static GByteArray *forge(char kind, uint64_t id, uint64_t reply_to, uint64_t timeout_ms, const char *const *strings,
                         size_t n, const GByteArray *const *blobs, size_t n_blobs) {
        GByteArray *m = g_byte_array_new();
        uint32_t u;

        g_byte_array_append(m, (const guint8 *) "CHR1l", 5);
        g_byte_array_append(m, (const guint8 *) &kind, 1);
        g_byte_array_append(m, (const guint8 *) &id, 8);
        g_byte_array_append(m, (const guint8 *) &reply_to, 8);
        timeout_ms = GUINT64_TO_LE(timeout_ms);
        g_byte_array_append(m, (const guint8 *) &timeout_ms, 8);
        u = GUINT32_TO_LE((uint32_t) n);
        g_byte_array_append(m, (const guint8 *) &u, 4);
        for (size_t i = 0; i < n; i++) {
                u = GUINT32_TO_LE((uint32_t) strlen(strings[i]));
                g_byte_array_append(m, (const guint8 *) &u, 4);
                g_byte_array_append(m, (const guint8 *) strings[i], strlen(strings[i]) + 1);
        }
        u = GUINT32_TO_LE((uint32_t) n_blobs);
        g_byte_array_append(m, (const guint8 *) &u, 4);
        for (size_t i = 0; i < n_blobs; i++) {
                u = GUINT32_TO_LE(blobs[i]->len);
                g_byte_array_append(m, (const guint8 *) &u, 4);
                g_byte_array_append(m, blobs[i]->data, blobs[i]->len);
        }
        return m;
}

/* A "v" in the variant codec (service/bus/variant-codec.h) nesting N variants around "x": as
 * deep as the codec reads, deeper than a bus takes inside the hub's messages. */
static GByteArray *deep_value(unsigned n) {
        GByteArray *b = g_byte_array_new();
        uint32_t one = 1;

        for (unsigned i = 0; i < n; i++) {
                g_byte_array_append(b, (const guint8 *) &one, 4);
                g_byte_array_append(b, (const guint8 *) "v", 1);
        }
        g_byte_array_append(b, (const guint8 *) &one, 4);
        g_byte_array_append(b, (const guint8 *) "s", 1);
        g_byte_array_append(b, (const guint8 *) &one, 4);
        g_byte_array_append(b, (const guint8 *) "x", 1);
        return b;
}

/* NODE's instance, from what it serves in Redis. */
static uint64_t instance_of(redisContext *c, const char *node) {
        g_autofree char *key = g_strdup_printf("clusterhub:served:%s", node);
        redisReply *served = redisCommand(c, "GET %s", key);
        uint64_t v;

        g_assert_true(served && served->type == REDIS_REPLY_STRING && g_str_has_prefix(served->str, "CHS1 "));
        v = g_ascii_strtoull(served->str + 5, NULL, 16);
        freeReplyObject(served);
        return v;
}

static void publish_forged(redisContext *c, uint64_t instance, const GByteArray *m) {
        g_autofree char *channel = g_strdup_printf("clusterhub:req:%016" G_GINT64_MODIFIER "x", instance);

        redis_cmd(c, 3, (const char *[]) { "PUBLISH", channel, (const char *) m->data },
                  (const size_t[]) { 7, strlen(channel), m->len });
}

static int on_async_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        *(sd_bus_message **) userdata = sd_bus_message_ref(m);
        return 0;
}

/* Messages whose payloads nest as deep as the codec reads (64 variants): a hub must not pass
 * them on to its bus, which would drop the hub's connection (and the hub exits).  A forged
 * EmitTo and a forged Request to b, and forged answers to a RequestAll of a (its request ids
 * are counted from 1: any client can answer it, see the trust model in docs/redis.md). */
static void test_hostile_deep(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GByteArray) deep = deep_value(63);
        const GByteArray *blobs[] = { deep };
        uint64_t ia, ib, sent;
        redisContext *c;
        const char *k, *v;
        bool row_error = false;
        ThProc wb;
        gint64 end;

        if (f->skipped)
                return;
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", "hold", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        c = redisConnectUnix(f->sock);
        g_assert_true(c && !c->err);
        ia = instance_of(c, "a");
        ib = instance_of(c, "b");

        {
                g_autoptr(GByteArray) emit = forge('E', 0, ia, 0, (const char *[]) { "default", "deep", "wb", "evil@x" }, 4,
                                                   blobs, 1);
                g_autoptr(GByteArray) req = forge('Q', 77, ia, 5000, (const char *[]) { "evil", "default", "echo", "o", "" },
                                                  5, blobs, 1);
                publish_forged(c, ib, emit);
                publish_forged(c, ib, req);
        }

        /* a RequestAll of a, held by wb on b; forged answers with every id it may have */
        sent = stat_of(&f->a, "backend_requests_sent");
        g_assert_cmpint(sd_bus_call_method_async(f->a.emitter, &slot, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "RequestAll",
                                                 on_async_reply, &reply, "sva{sv}", "hold", "s", "x", 1, "timeout_ms", "u",
                                                 (uint32_t) 20000), >=, 0);
        g_assert_cmpint(sd_bus_flush(f->a.emitter), >=, 0);
        g_assert_true(wait_stat_at_least(&f->a, "backend_requests_sent", sent + 1));
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        for (uint64_t id = 1; id <= sent + 1; id++) {
                g_autoptr(GByteArray) ans = forge('G', id, ib, 0, (const char *[]) { "k" }, 1, blobs, 1);
                publish_forged(c, ia, ans);
        }
        while (!reply) {
                g_assert_true(g_get_monotonic_time() < end);
                if (sd_bus_process(f->a.emitter, NULL) == 0)
                        (void) sd_bus_wait(f->a.emitter, 50 * 1000);
        }
        if (sd_bus_message_is_method_error(reply, NULL))
                g_error("RequestAll: %s: %s", sd_bus_message_get_error(reply)->name, sd_bus_message_get_error(reply)->message);
        g_assert_cmpint(sd_bus_message_skip(reply, "a{sv}"), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{ss}"), >, 0);
        while (sd_bus_message_read(reply, "{ss}", &k, &v) > 0)
                if (g_str_equal(k, "k@b") && strstr(v, "LimitExceeded"))
                        row_error = true;
        g_assert_true(row_error);

        /* a Request of a to wb@b, held there; forged replies */
        sd_bus_message_unref(reply);
        reply = NULL;
        slot = sd_bus_slot_unref(slot);
        sent = stat_of(&f->a, "backend_requests_sent");
        g_assert_cmpint(sd_bus_call_method_async(f->a.emitter, &slot, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request",
                                                 on_async_reply, &reply, "ssva{sv}", "wb@b", "hold", "s", "x", 1,
                                                 "timeout_ms", "u", (uint32_t) 20000), >=, 0);
        g_assert_cmpint(sd_bus_flush(f->a.emitter), >=, 0);
        g_assert_true(wait_stat_at_least(&f->a, "backend_requests_sent", sent + 1));
        for (uint64_t id = 1; id <= sent + 1; id++) {
                g_autoptr(GByteArray) ans = forge('R', id, ib, 0, NULL, 0, blobs, 1);
                publish_forged(c, ia, ans);
        }
        while (!reply) {
                g_assert_true(g_get_monotonic_time() < end);
                if (sd_bus_process(f->a.emitter, NULL) == 0)
                        (void) sd_bus_wait(f->a.emitter, 50 * 1000);
        }
        g_assert_true(sd_bus_message_is_method_error(reply, "org.clusterhub.Error.LimitExceeded"));

        /* both hubs are still on their buses, and requests still cross */
        g_assert_cmpuint(stat_of(&f->a, "backend_connected"), ==, 1);
        g_assert_cmpuint(stat_of(&f->b, "backend_connected"), ==, 1);
        g_assert_cmpuint(stat_of(&f->b, "backend_requests_dropped"), >=, 1);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_autofree char *r = request(f->a.emitter, "echo", "still", 20000, &err);

                g_assert_nonnull(r);
        }
        redisFree(c);
        stop_worker(&wb);
}

/* Hubs that exit (SIGTERM) with calls in flight: b while it runs a Request and a RequestAll of a
 * (it exits cleanly; a answers both once b's heartbeat expires), then a while one of its callers
 * waits for a lock in Redis (answered ShuttingDown, a clean exit: under the ASan build, nothing
 * leaked). */
static void test_exit_in_flight(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *c1 = NULL, *c2 = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *s_req = NULL, *s_all = NULL, *s_lock = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *r_req = NULL, *r_all = NULL, *r_lock = NULL, *got = NULL;
        uint64_t received, token;
        const char *k, *v;
        bool gone_row = false;
        ThProc wb;
        gint64 end;

        if (f->skipped)
                return;
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", "hold", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        g_assert_cmpint(th_connect(&c1, f->a.bus.address), ==, 0);
        g_assert_cmpint(th_connect(&c2, f->a.bus.address), ==, 0);

        received = stat_of(&f->b, "backend_requests_received");
        g_assert_cmpint(sd_bus_call_method_async(c2, &s_req, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request", on_async_reply,
                                                 &r_req, "ssva{sv}", "", "hold", "s", "x", 1, "timeout_ms", "u",
                                                 (uint32_t) 60000), >=, 0);
        g_assert_cmpint(sd_bus_call_method_async(c2, &s_all, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "RequestAll",
                                                 on_async_reply, &r_all, "sva{sv}", "hold", "s", "x", 1, "timeout_ms", "u",
                                                 (uint32_t) 60000), >=, 0);
        g_assert_cmpint(sd_bus_flush(c2), >=, 0);
        g_assert_true(wait_stat_at_least(&f->b, "backend_requests_received", received + 2));
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        g_assert_cmpint(th_hub_stop(&f->b.hub), ==, 0);
        while (!r_req || !r_all) {
                g_assert_true(g_get_monotonic_time() < end);
                if (sd_bus_process(c2, NULL) == 0)
                        (void) sd_bus_wait(c2, 50 * 1000);
        }
        g_assert_true(sd_bus_message_is_method_error(r_req, WORKER_GONE));
        g_assert_false(sd_bus_message_is_method_error(r_all, NULL));
        g_assert_cmpint(sd_bus_message_skip(r_all, "a{sv}"), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(r_all, 'a', "{ss}"), >, 0);
        while (sd_bus_message_read(r_all, "{ss}", &k, &v) > 0)
                if (g_str_equal(k, "@b") && g_str_has_prefix(v, WORKER_GONE))
                        gone_row = true;
        g_assert_true(gone_row);

        /* c1 holds a lock in Redis, c2 waits for it; a exits */
        g_assert_cmpint(sd_bus_call_method(c1, TH_HUB_NAME, NS_PATH, "org.clusterhub.Locks1", "Lock", NULL, &got, "sa{sv}",
                                           "exit", 1, "timeout_ms", "u", (uint32_t) 10000), >=, 0);
        g_assert_cmpint(sd_bus_message_read(got, "t", &token), >, 0);
        g_assert_cmpint(sd_bus_call_method_async(c2, &s_lock, TH_HUB_NAME, NS_PATH, "org.clusterhub.Locks1", "Lock",
                                                 on_async_reply, &r_lock, "sa{sv}", "exit", 1, "timeout_ms", "u",
                                                 (uint32_t) 60000), >=, 0);
        /* a call after it on the same connection: the hub has taken the Lock call when it answers */
        g_assert_cmpint(sd_bus_call_method(c2, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "GetStats", NULL, NULL, ""), >=, 0);
        g_assert_null(r_lock);
        g_assert_cmpint(th_hub_stop(&f->a.hub), ==, 0);
        while (!r_lock) {
                g_assert_true(g_get_monotonic_time() < end);
                if (sd_bus_process(c2, NULL) == 0)
                        (void) sd_bus_wait(c2, 50 * 1000);
        }
        g_assert_true(sd_bus_message_is_method_error(r_lock, "org.clusterhub.Error.ShuttingDown"));
        stop_worker(&wb);
}

/* A handler's error whose message is longer than a message string may be (65,535 bytes) reaches
 * the caller on the other host, cut, under its own name; in a RequestAll row too.  (The answer
 * could not be sent before: the caller got Timeout.) */
static void test_long_error(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        g_autoptr(GHashTable) replies = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_autoptr(GHashTable) errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        const char *row;
        ThProc wb;

        if (f->skipped)
                return;
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", "bigerr", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        g_assert_null(request(f->a.emitter, "bigerr", "x", 20000, &err));
        g_assert_cmpstr(err.name, ==, "org.example.Error.Big");
        g_assert_cmpuint(strlen(err.message), <=, 65535);
        g_assert_cmpuint(strlen(err.message), >=, 65000);
        request_all(f->a.emitter, "bigerr", 20000, replies, errors);
        row = g_hash_table_lookup(errors, "wb@b");
        g_assert_nonnull(row);
        g_assert_true(g_str_has_prefix(row, "org.example.Error.Big"));
        stop_worker(&wb);
}

static void setup_few_remote(Fixture *f, gconstpointer data) {
        f->hub_args[0] = "--max-remote-workers=2";
        fixture_setup(f, data);
}

/* What other hubs serve is bounded in all by --max-remote-workers: a node (any client of the
 * Redis can add one) whose list does not fit any more is ignored; b's still counts. */
static void test_served_bound(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        redisContext *c;
        ThProc wb;

        if (f->skipped)
                return;
        c = redisConnectUnix(f->sock);
        g_assert_true(c && !c->err);
        redis_cmd(c, 5, (const char *[]) { "SET", "clusterhub:node:evil", "1", "PX", "600000" }, NULL);
        redis_cmd(c, 3, (const char *[]) { "SADD", "clusterhub:nodes", "evil" }, NULL);
        redis_cmd(c, 3, (const char *[]) { "SET", "clusterhub:served:evil",
                                           "CHS1 00000000000000aa\ndefault\tfake1\t1\ndefault\tfake2\t1\ndefault\tfake3\t1\n" }, NULL);
        redisFree(c);
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", NULL });
        g_assert_true(wait_served(f->a.emitter, "echo", "wb@b"));
        g_assert_null(request(f->a.emitter, "fake1", "x", 20000, &err));
        g_assert_cmpstr(err.name, ==, NO_HANDLER);
        {
                g_autofree char *r = request(f->a.emitter, "echo", "y", 20000, NULL);
                g_assert_true(r && g_str_has_prefix(r, "wb:y:"));
        }
        stop_worker(&wb);
}

/* -m perf: one Request at a time, local (a's worker) and cross-host (b's worker), from a. */
static void test_perf(Fixture *f, gconstpointer data) {
        const unsigned n = 2000;
        ThProc wa, wb;
        struct {
                const char *what, *method;
        } runs[] = { { "local (a -> worker on a)", "local" }, { "cross-host (a -> Redis -> b -> worker on b)", "remote" } };

        if (f->skipped)
                return;
        spawn_worker(&wa, &f->a, "wa", (const char *[]) { "local", NULL });
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "remote", NULL });
        g_assert_true(wait_served(f->a.emitter, "remote", "wb@b"));
        g_assert_true(wait_served(f->a.emitter, "local", "wa"));
        for (size_t r = 0; r < G_N_ELEMENTS(runs); r++) {
                gint64 t0 = g_get_monotonic_time();

                for (unsigned i = 0; i < n; i++) {
                        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                        g_autofree char *reply = request(f->a.emitter, runs[r].method, "p", 20000, &err);
                        g_assert_nonnull(reply);
                }
                g_test_minimized_result((g_get_monotonic_time() - t0) / 1e6 / n, "%s", runs[r].what);
                g_test_message("%s: %.1f us per Request, one at a time (%u requests)", runs[r].what,
                               (double) (g_get_monotonic_time() - t0) / n, n);
        }
        stop_worker(&wa);
        stop_worker(&wb);
}

static void setup_one_remote_request(Fixture *f, gconstpointer data) {
        f->hub_args[0] = "--max-remote-requests=1";
        fixture_setup(f, data);
}

/* A hub runs at most --max-remote-requests requests of other hosts at once: past it, the asking
 * hub's caller gets LimitExceeded from the hub that refused. */
static void test_remote_requests_bound(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *first = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *c = NULL;
        uint64_t received;
        ThProc wb;

        if (f->skipped)
                return;
        spawn_worker(&wb, &f->b, "wb", (const char *[]) { "echo", "hold", NULL });
        g_assert_true(wait_served(f->a.emitter, "hold", "wb@b"));
        g_assert_cmpint(th_connect(&c, f->a.bus.address), ==, 0);
        received = stat_of(&f->b, "backend_requests_received");
        g_assert_cmpint(sd_bus_call_method_async(c, &slot, TH_HUB_NAME, NS_PATH, REQUESTS_IFACE, "Request", on_async_reply,
                                                 &first, "ssva{sv}", "", "hold", "s", "x", 1, "timeout_ms", "u",
                                                 (uint32_t) 60000), >=, 0);
        g_assert_cmpint(sd_bus_flush(c), >=, 0);
        g_assert_true(wait_stat_at_least(&f->b, "backend_requests_received", received + 1));
        g_assert_null(request(f->a.emitter, "echo", "y", 20000, &err));
        g_assert_cmpstr(err.name, ==, "org.clusterhub.Error.LimitExceeded");
        g_assert_nonnull(strstr(err.message, "--max-remote-requests"));
        stop_worker(&wb);
}

int main(int argc, char **argv) {
        if (argc >= 4 && g_str_equal(argv[1], "--worker"))
                return worker_main(argc, argv);
        self_path = argv[0];
        g_test_init(&argc, &argv, NULL);
        g_test_add("/redis-requests/cross", Fixture, NULL, fixture_setup, test_request_cross, fixture_teardown);
        g_test_add("/redis-requests/cross-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), fixture_setup, test_request_cross,
                   fixture_teardown);
        g_test_add("/redis-requests/round-robin-and-all", Fixture, NULL, fixture_setup, test_round_robin_and_all,
                   fixture_teardown);
        g_test_add("/redis-requests/timeout-and-gone", Fixture, NULL, fixture_setup, test_timeout_and_gone, fixture_teardown);
        g_test_add("/redis-requests/hub-killed", Fixture, NULL, fixture_setup, test_hub_killed, fixture_teardown);
        g_test_add("/redis-requests/emit-to", Fixture, NULL, fixture_setup, test_emit_to, fixture_teardown);
        g_test_add("/redis-requests/wait-for-workers", Fixture, NULL, fixture_setup, test_wait_for_workers, fixture_teardown);
        g_test_add("/redis-requests/hostile", Fixture, NULL, fixture_setup, test_hostile, fixture_teardown);
        g_test_add("/redis-requests/hostile-deep", Fixture, NULL, fixture_setup, test_hostile_deep, fixture_teardown);
        g_test_add("/redis-requests/long-error", Fixture, NULL, fixture_setup, test_long_error, fixture_teardown);
        g_test_add("/redis-requests/remote-requests-bound", Fixture, NULL, setup_one_remote_request,
                   test_remote_requests_bound, fixture_teardown);
        g_test_add("/redis-requests/served-bound", Fixture, NULL, setup_few_remote, test_served_bound, fixture_teardown);
        g_test_add("/redis-requests/exit-in-flight", Fixture, NULL, fixture_setup, test_exit_in_flight, fixture_teardown);
        g_test_add("/redis-requests/redis-down", Fixture, NULL, fixture_setup, test_redis_down, fixture_teardown);
        if (g_test_perf())
                g_test_add("/redis-requests/perf", Fixture, NULL, fixture_setup, test_perf, fixture_teardown);
        return g_test_run();
}
