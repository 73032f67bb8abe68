/* SPDX-License-Identifier: MIT */
/* Workers and events against the real clusterhubd on private buses: registration, worker
 * objects, Emit filtered by the bus (arg0, arg0namespace), namespaces, EmitTo with its queue,
 * death of a worker.  Worker processes are this binary re-executed with --worker. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

static const char *self_path;

/* ---- the worker process ---------------------------------------------------------------- */

static int on_event(sd_bus_message *m, void *userdata, const char *event, const char *origin) {
        const char *payload = "";
        (void) sd_bus_message_read(m, "v", "s", &payload);
        printf("%s %s %s %s\n", sd_bus_message_get_path(m) + strlen(CH_NAMESPACE_PATH_PREFIX), event, origin, payload);
        fflush(stdout);
        if (g_str_equal(event, "quit"))
                exit(EXIT_SUCCESS);
        return 0;
}

/* --worker ADDRESS ID NAMESPACE SPEC...: SPEC "=E" matches arg0 E, "~F" arg0namespace F. */
static int worker_main(int argc, char *argv[]) {
        sd_bus *bus = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *path = NULL;
        g_autofree char *ns_path = g_strconcat(CH_NAMESPACE_PATH_PREFIX, argv[4], NULL);
        int r;

        r = th_connect(&bus, argv[2]);
        if (r < 0)
                return 2;
        for (int i = 5; i < argc; i++) {
                const char *spec = argv[i];
                r = ch_events1_match_event(bus, NULL, NULL, ns_path, spec[0] == '=' ? spec + 1 : NULL,
                                           spec[0] == '~' ? spec + 1 : NULL, on_event, NULL);
                if (r < 0)
                        return 3;
        }
        r = ch_events1_match_event(bus, NULL, NULL, ns_path, "quit", NULL, on_event, NULL);
        if (r < 0)
                return 3;
        r = ch_hub1_call_register(bus, CH_BUS_NAME, CH_HUB_PATH, argv[3], NULL, NULL, &path, &e);
        if (r < 0) {
                fprintf(stderr, "Register: %s\n", e.message);
                return 4;
        }
        printf("registered %s\n", path);
        fflush(stdout);
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 5;
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return 6;
        }
}

/* ---- helpers of the test process ------------------------------------------------------- */

typedef struct Worker {
        ThProc proc;
        int out;
} Worker;

static void spawn_worker(Worker *w, const char *address, const char *id, const char *ns, const char *const *specs) {
        GPtrArray *argv = g_ptr_array_new();
        int fds[2];

        g_ptr_array_add(argv, (char *) self_path);
        g_ptr_array_add(argv, "--worker");
        g_ptr_array_add(argv, (char *) address);
        g_ptr_array_add(argv, (char *) id);
        g_ptr_array_add(argv, (char *) ns);
        for (size_t i = 0; specs && specs[i]; i++)
                g_ptr_array_add(argv, (char *) specs[i]);
        g_ptr_array_add(argv, NULL);
        g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
        w->proc = (ThProc) TH_PROC_NULL;
        g_assert_cmpint(th_spawn(&w->proc, (const char *const *) argv->pdata, NULL, fds[1], -1), >, 0);
        close(fds[1]);
        w->out = fds[0];
        g_ptr_array_free(argv, TRUE);
}

/* Reads the worker's output until it exits (bounded by the caller's timeouts). */
static char *collect(Worker *w) {
        GString *s = g_string_new(NULL);
        char buf[4096];
        ssize_t n;

        while ((n = read(w->out, buf, sizeof(buf))) > 0)
                g_string_append_len(s, buf, n);
        close(w->out);
        g_assert_true(th_proc_wait(&w->proc, 10000, NULL));
        th_proc_clear(&w->proc);
        return g_string_free(s, FALSE);
}

static int append_s(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "s", (const char *) userdata);
}

static void emit(sd_bus *bus, const char *ns, const char *event, const char *payload) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_autofree char *path = g_strconcat(CH_NAMESPACE_PATH_PREFIX, ns, NULL);
        int r = ch_events1_call_emit(bus, CH_BUS_NAME, path, event, append_s, (void *) payload, &e);
        if (r < 0)
                g_error("Emit(%s): %s", event, e.message);
}

static void emit_to(sd_bus *bus, const char *ns, const char *worker, const char *event, const char *payload) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_autofree char *path = g_strconcat(CH_NAMESPACE_PATH_PREFIX, ns, NULL);
        int r = ch_events1_call_emit_to(bus, CH_BUS_NAME, path, worker, event, append_s, (void *) payload, &e);
        if (r < 0)
                g_error("EmitTo(%s, %s): %s", worker, event, e.message);
}

static void wait_workers(sd_bus *bus, uint32_t n) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char **ids = NULL;
        int r = ch_hub1_call_wait_for_workers(bus, CH_BUS_NAME, CH_HUB_PATH, n, 10000, &ids, &e);
        if (r < 0)
                g_error("WaitForWorkers(%u): %s", n, e.message);
        g_assert_cmpuint(g_strv_length(ids), >=, n);
        g_strfreev(ids);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Five workers with different subscriptions; each receives exactly its events, in order,
 * none twice, none of another namespace. */
static void test_filtering(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *s1[] = { "=jobs.a", NULL }, *s2[] = { "=jobs.b", NULL }, *s3[] = { "=jobs.a", "=jobs.b", NULL };
        const char *s4[] = { "~jobs", NULL }, *s5[] = { "=jobs.a", NULL };
        Worker w[5];
        GString *want[5];
        const char *events[] = { "jobs.a", "jobs.b", "jobs.c", "jobsx", "other.a", "jobs.a.deep" };

        spawn_worker(&w[0], f->bus.address, "w1", "default", s1);
        spawn_worker(&w[1], f->bus.address, "w2", "default", s2);
        spawn_worker(&w[2], f->bus.address, "w3", "default", s3);
        spawn_worker(&w[3], f->bus.address, "w4", "default", s4);
        spawn_worker(&w[4], f->bus.address, "w5", "other", s5);
        wait_workers(f->client, 5);
        for (int i = 0; i < 5; i++)
                want[i] = g_string_new(NULL);
        for (int k = 0; k < 60; k++) {
                const char *ev = events[k % G_N_ELEMENTS(events)];
                g_autofree char *payload = g_strdup_printf("%d", k);
                emit(f->client, "default", ev, payload);
                const char *origin = NULL;
                g_assert_cmpint(sd_bus_get_unique_name(f->client, &origin), >=, 0);
                g_autofree char *expect = g_strdup_printf("default %s %s %s\n", ev, origin, payload);
                if (g_str_equal(ev, "jobs.a"))
                        g_string_append(want[0], expect), g_string_append(want[2], expect);
                if (g_str_equal(ev, "jobs.b"))
                        g_string_append(want[1], expect), g_string_append(want[2], expect);
                if (g_str_has_prefix(ev, "jobs.") || g_str_equal(ev, "jobs"))
                        g_string_append(want[3], expect);
        }
        /* the same event name in another namespace reaches only that namespace */
        emit(f->client, "other", "jobs.a", "elsewhere");
        const char *origin = NULL;
        g_assert_cmpint(sd_bus_get_unique_name(f->client, &origin), >=, 0);
        g_string_append_printf(want[4], "other jobs.a %s elsewhere\n", origin);
        for (int i = 0; i < 5; i++) {
                g_autofree char *id = g_strdup_printf("w%d", i + 1);
                emit_to(f->client, i == 4 ? "other" : "default", id, "quit", "bye");
                g_string_append_printf(want[i], "%s quit %s bye\n", i == 4 ? "other" : "default", origin);
        }
        for (int i = 0; i < 5; i++) {
                g_autofree char *got = collect(&w[i]);
                g_autofree char *registered = g_strdup_printf("registered /org/clusterhub/Hub1/worker/w%d\n", i + 1);
                g_assert_true(g_str_has_prefix(got, registered));
                g_assert_cmpstr(got + strlen(registered), ==, want[i]->str);
                g_string_free(want[i], TRUE);
        }
}

static int on_worker_left(sd_bus_message *m, void *userdata, const char *id, const char *reason) {
        char **out = userdata;
        g_free(*out);
        *out = g_strdup_printf("%s %s", id, reason);
        return 0;
}

static bool object_exists(sd_bus *bus, const char *path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *id = NULL;
        int r = ch_worker1_get_id(bus, CH_BUS_NAME, path, &id, &e);
        free(id);
        sd_bus_error_free(&e);
        return r >= 0;
}

/* kill -9 a worker: WorkerLeft at once, its object gone, its id free again. */
static void test_worker_death(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Worker w;
        char *left = NULL;
        sd_bus_slot *slot = NULL;
        const char *path = CH_HUB_PATH "/worker/victim";

        g_assert_cmpint(ch_hub1_match_worker_left(f->client, &slot, NULL, CH_HUB_PATH, "victim", NULL, on_worker_left, &left), >=, 0);
        spawn_worker(&w, f->bus.address, "victim", "default", NULL);
        wait_workers(f->client, 1);
        g_assert_true(object_exists(f->client, path));
        gint64 start = g_get_monotonic_time();
        th_proc_kill(&w.proc, SIGKILL);
        while (!left && g_get_monotonic_time() - start < 5 * G_USEC_PER_SEC)
                if (sd_bus_process(f->client, NULL) == 0)
                        sd_bus_wait(f->client, 100000);
        g_assert_cmpstr(left, ==, "victim disconnected");
        g_test_message("WorkerLeft arrived %.1f ms after SIGKILL", (g_get_monotonic_time() - start) / 1000.0);
        g_assert_cmpint(g_get_monotonic_time() - start, <, G_USEC_PER_SEC);
        g_assert_false(object_exists(f->client, path));
        g_free(collect(&w));

        /* the id can be taken again */
        spawn_worker(&w, f->bus.address, "victim", "default", NULL);
        wait_workers(f->client, 1);
        g_assert_true(object_exists(f->client, path));
        emit_to(f->client, "default", "victim", "quit", "x");
        g_free(collect(&w));
        sd_bus_slot_unref(slot);
        g_free(left);
}

typedef struct ObjSeen {
        char *added;
        char *removed;
        char *added_ifaces;
} ObjSeen;

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        ObjSeen *o = userdata;
        const char *path, *iface;
        GString *ifaces = g_string_new(NULL);

        if (sd_bus_message_read(m, "o", &path) > 0 && sd_bus_message_enter_container(m, 'a', "{sa{sv}}") > 0) {
                while (sd_bus_message_enter_container(m, 'e', "sa{sv}") > 0) {
                        if (sd_bus_message_read(m, "s", &iface) > 0)
                                g_string_append_printf(ifaces, "%s ", iface);
                        sd_bus_message_skip(m, "a{sv}");
                        sd_bus_message_exit_container(m);
                }
                g_free(o->added);
                o->added = g_strdup(path);
        }
        g_free(o->added_ifaces);
        o->added_ifaces = g_string_free(ifaces, FALSE);
        return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        ObjSeen *o = userdata;
        const char *path;
        if (sd_bus_message_read(m, "o", &path) > 0) {
                g_free(o->removed);
                o->removed = g_strdup(path);
        }
        return 0;
}

/* Worker objects are announced through org.freedesktop.DBus.ObjectManager. */
static void test_object_manager(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus_slot *s1 = NULL, *s2 = NULL;
        sd_bus *worker = NULL;
        ObjSeen o = {};
        const char *path = NULL;
        unsigned found = 0;

        g_assert_cmpint(sd_bus_match_signal(f->client, &s1, CH_BUS_NAME, CH_HUB_PATH, "org.freedesktop.DBus.ObjectManager",
                                            "InterfacesAdded", on_interfaces_added, &o), >=, 0);
        g_assert_cmpint(sd_bus_match_signal(f->client, &s2, CH_BUS_NAME, CH_HUB_PATH, "org.freedesktop.DBus.ObjectManager",
                                            "InterfacesRemoved", on_interfaces_removed, &o), >=, 0);
        g_assert_cmpint(th_connect(&worker, f->bus.address), >=, 0);
        g_assert_cmpint(ch_hub1_call_register(worker, CH_BUS_NAME, CH_HUB_PATH, "om", NULL, NULL, NULL, &e), >=, 0);
        gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (!o.added && g_get_monotonic_time() < end)
                if (sd_bus_process(f->client, NULL) == 0)
                        sd_bus_wait(f->client, 100000);
        g_assert_cmpstr(o.added, ==, CH_HUB_PATH "/worker/om");
        g_assert_nonnull(strstr(o.added_ifaces, CH_WORKER1_INTERFACE));

        /* GetManagedObjects lists it with its properties */
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH, "org.freedesktop.DBus.ObjectManager",
                                           "GetManagedObjects", &e, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "o", &path), >, 0);
                if (g_str_equal(path, CH_HUB_PATH "/worker/om"))
                        found++;
                sd_bus_message_skip(reply, "a{sa{sv}}");
                sd_bus_message_exit_container(reply);
        }
        g_assert_cmpuint(found, ==, 1);
        sd_bus_message_unref(reply);

        /* and removed when it leaves */
        sd_bus_flush_close_unref(worker);
        end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (!o.removed && g_get_monotonic_time() < end)
                if (sd_bus_process(f->client, NULL) == 0)
                        sd_bus_wait(f->client, 100000);
        g_assert_cmpstr(o.removed, ==, CH_HUB_PATH "/worker/om");
        sd_bus_slot_unref(s1);
        sd_bus_slot_unref(s2);
        g_free(o.added);
        g_free(o.removed);
        g_free(o.added_ifaces);
}

/* Membership calls and their errors. */
static void test_register(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *other = NULL;
        char *path = NULL;
        int r;

        g_assert_cmpint(sd_bus_error_add_map(ch_error_map), >=, 0);
        g_assert_cmpint(ch_hub1_call_register(f->client, CH_BUS_NAME, CH_HUB_PATH, "alpha", NULL, NULL, &path, &e), >=, 0);
        g_assert_cmpstr(path, ==, CH_HUB_PATH "/worker/alpha");
        free(path);
        /* idempotent for the same connection */
        g_assert_cmpint(ch_hub1_call_register(f->client, CH_BUS_NAME, CH_HUB_PATH, "alpha", NULL, NULL, NULL, &e), >=, 0);

        g_assert_cmpint(th_connect(&other, f->bus.address), >=, 0);
        r = ch_hub1_call_register(other, CH_BUS_NAME, CH_HUB_PATH, "alpha", NULL, NULL, NULL, &e);
        g_assert_cmpint(r, ==, -EADDRINUSE);
        g_assert_cmpstr(e.name, ==, CH_ERROR_ID_IN_USE);
        sd_bus_error_free(&e);
        r = ch_hub1_call_register(other, CH_BUS_NAME, CH_HUB_PATH, "bad id", NULL, NULL, NULL, &e);
        g_assert_cmpstr(e.name, ==, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        r = ch_hub1_call_unregister(other, CH_BUS_NAME, CH_HUB_PATH, &e);
        g_assert_cmpstr(e.name, ==, CH_ERROR_NOT_REGISTERED);
        sd_bus_error_free(&e);

        /* an empty id is derived from the unique name (no systemd unit here) */
        g_assert_cmpint(ch_hub1_call_register(other, CH_BUS_NAME, CH_HUB_PATH, "", NULL, NULL, &path, &e), >=, 0);
        g_assert_true(g_str_has_prefix(path, CH_HUB_PATH "/worker/bus_"));
        free(path);

        /* ListWorkers in order of registration, with pid and details */
        sd_bus_message *reply = NULL;
        const char *id = NULL, *unique = NULL, *k1 = NULL, *unit = NULL, *k2 = NULL;
        uint32_t pid = 0;
        uint64_t since = 0;
        g_assert_cmpint(ch_hub1_call_list_workers(f->client, CH_BUS_NAME, CH_HUB_PATH, &reply, &e), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ssua{sv})"), >, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "(ssua{sv})", &id, &unique, &pid, 2, &k1, "s", &unit, &k2, "t", &since), >, 0);
        g_assert_cmpstr(id, ==, "alpha");
        g_assert_cmpuint(pid, ==, getpid());
        g_assert_cmpstr(k2, ==, "since_ms");
        g_assert_cmpuint(since, >, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "(ssua{sv})", &id, &unique, &pid, 2, &k1, "s", &unit, &k2, "t", &since), >, 0);
        g_assert_true(g_str_has_prefix(id, "bus_"));
        sd_bus_message_unref(reply);

        g_assert_cmpint(ch_hub1_call_unregister(f->client, CH_BUS_NAME, CH_HUB_PATH, &e), >=, 0);
        sd_bus_flush_close_unref(other);

        /* WaitForWorkers times out with a named error */
        r = ch_hub1_call_wait_for_workers(f->client, CH_BUS_NAME, CH_HUB_PATH, 5, 200, NULL, &e);
        g_assert_cmpstr(e.name, ==, CH_ERROR_TIMEOUT);
        sd_bus_error_free(&e);
}

typedef struct AsyncReply {
        int done;
        char *error;
} AsyncReply;

static int on_emit_to(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        AsyncReply *a = userdata;
        a->done = 1;
        a->error = error ? g_strdup(error->name) : NULL;
        return 0;
}

static void wait_async(sd_bus *bus, AsyncReply *a) {
        gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (!a->done && g_get_monotonic_time() < end)
                if (sd_bus_process(bus, NULL) == 0)
                        sd_bus_wait(bus, 100000);
        g_assert_true(a->done);
}

/* EmitTo a worker systemd has not started yet: it gets the event when it registers; past the
 * queue's bounds the caller gets WorkerUnavailable. */
static void test_emit_to_queue(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *args[] = { "--max-queued-per-worker=2", "--max-queue-age-ms=1500", "--max-queued-bytes=5000", NULL };
        const char *s[] = { "=hello", NULL };
        AsyncReply a1 = {}, a2 = {}, a3 = {}, a4 = {};
        ThHub hub = { .proc = TH_PROC_NULL };
        sd_bus *bus = NULL;
        Worker w;

        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, args), ==, 0);
        g_assert_cmpint(th_connect(&bus, f->bus.address), >=, 0);
        g_assert_cmpint(ch_events1_call_emit_to_async(bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "late", "hello", append_s, "one", on_emit_to, &a1, 0), >=, 0);
        g_assert_cmpint(ch_events1_call_emit_to_async(bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "late", "hello", append_s, "two", on_emit_to, &a2, 0), >=, 0);
        g_assert_cmpint(ch_events1_call_emit_to_async(bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "late", "hello", append_s, "three", on_emit_to, &a3, 0), >=, 0);
        wait_async(bus, &a3);
        g_assert_cmpstr(a3.error, ==, CH_ERROR_WORKER_UNAVAILABLE);
        g_assert_false(a1.done);

        spawn_worker(&w, f->bus.address, "late", "default", s);
        wait_async(bus, &a1);
        wait_async(bus, &a2);
        g_assert_null(a1.error);
        g_assert_null(a2.error);
        emit_to(bus, "default", "late", "quit", "x");
        g_autofree char *got = collect(&w);
        const char *origin = NULL;
        sd_bus_get_unique_name(bus, &origin);
        g_autofree char *want = g_strdup_printf("registered %s/worker/late\ndefault hello %s one\ndefault hello %s two\ndefault quit %s x\n",
                                                CH_HUB_PATH, origin, origin, origin);
        g_assert_cmpstr(got, ==, want);

        /* payloads that would be kept are bounded, and fds are not kept for an absent worker */
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                g_autofree char *big = g_strnfill(1024 * 1024 + 1, 'x');
                int r = ch_events1_call_emit_to(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "absent", "big", append_s, big, &e);
                g_assert_cmpint(r, <, 0);
                g_assert_cmpstr(e.name, ==, CH_ERROR_LIMIT_EXCEEDED);
                sd_bus_error_free(&e);
                r = sd_bus_call_method(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, CH_EVENTS1_INTERFACE, "EmitTo", &e, NULL, "ssv", "absent", "fd", "h", 1);
                g_assert_cmpint(r, <, 0);
                g_assert_cmpstr(e.name, ==, CH_ERROR_INVALID_ARGS);
                sd_bus_error_free(&e);
        }

        /* the hub-wide budget for absent workers holds across ids */
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                g_autofree char *kb = g_strnfill(1000, 'k');
                AsyncReply g1 = {};
                g_assert_cmpint(ch_events1_call_emit_to_async(bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "ghost1", "e", append_s, kb, on_emit_to, &g1, 0), >=, 0);
                int r = ch_events1_call_emit_to(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "ghost2", "e", append_s, kb, &e);
                g_assert_cmpint(r, <, 0);
                g_assert_cmpstr(e.name, ==, CH_ERROR_LIMIT_EXCEEDED);
                g_assert_nonnull(strstr(e.message, "--max-queued-bytes"));
                sd_bus_error_free(&e);
                wait_async(bus, &g1);
                g_assert_cmpstr(g1.error, ==, CH_ERROR_WORKER_UNAVAILABLE);
                g_free(g1.error);
        }

        /* nobody registers: the queued call fails after --max-queue-age-ms */
        g_assert_cmpint(ch_events1_call_emit_to_async(bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "never", "hello", append_s, "x", on_emit_to, &a4, 0), >=, 0);
        wait_async(bus, &a4);
        g_assert_cmpstr(a4.error, ==, CH_ERROR_WORKER_UNAVAILABLE);

        sd_bus_flush_close_unref(bus);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
        g_free(a1.error), g_free(a2.error), g_free(a3.error), g_free(a4.error);
}

/* DropNamespace fails the namespace's queued EmitTo calls at once (the queue age here is
 * 30 s, the wait 10 s), and leaves another namespace's queue alone. */
static void test_emit_to_drop(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *xns = g_strconcat(CH_NAMESPACE_PATH_PREFIX, "xns", NULL);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        AsyncReply in_x = {}, in_default = {};

        g_assert_cmpint(ch_events1_call_emit_to_async(f->client, NULL, CH_BUS_NAME, xns, "ghost", "e", append_s, "x",
                                                      on_emit_to, &in_x, 60 * G_USEC_PER_SEC), >=, 0);
        g_assert_cmpint(ch_events1_call_emit_to_async(f->client, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "ghost", "e",
                                                      append_s, "d", on_emit_to, &in_default, 60 * G_USEC_PER_SEC), >=, 0);
        g_assert_cmpint(ch_hub1_call_drop_namespace(f->client, CH_BUS_NAME, CH_HUB_PATH, "xns", &e), >=, 0);
        wait_async(f->client, &in_x);
        g_assert_cmpstr(in_x.error, ==, CH_ERROR_NAMESPACE_DROPPED);
        /* the hub answered the drop after failing the queue; the default one still waits */
        g_assert_cmpint(sd_bus_process(f->client, NULL), >=, 0);
        g_assert_false(in_default.done);
        g_assert_cmpint(ch_hub1_call_drop_namespace(f->client, CH_BUS_NAME, CH_HUB_PATH, "default", &e), >=, 0);
        wait_async(f->client, &in_default);
        g_assert_cmpstr(in_default.error, ==, CH_ERROR_NAMESPACE_DROPPED);
        g_free(in_x.error), g_free(in_default.error);
}

static long vm_rss_kb(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/status", (int) pid);
        g_autofree char *status = NULL;
        const char *line;

        g_assert_true(g_file_get_contents(path, &status, NULL, NULL));
        line = strstr(status, "\nVmRSS:");
        g_assert_nonnull(line);
        return atol(line + strlen("\nVmRSS:"));
}

typedef struct Refusals {
        unsigned n;
        char *first;
} Refusals;

static int on_refused(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Refusals *r = userdata;
        if (!error)
                return 0;
        g_assert_cmpstr(error->name, ==, CH_ERROR_LIMIT_EXCEEDED);
        if (r->n++ == 0)
                r->first = g_strdup(error->message);
        return 0;
}

static int append_small_structs(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_open_container(m, 'v', "a(y)");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(y)");
        for (int i = 0; r >= 0 && i < 500; i++)
                r = sd_bus_message_append(m, "(y)", (uint8_t) i);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* EmitTo for absent workers until --max-queued-bytes refuses; returns how many were queued. */
static unsigned queue_until_refused(sd_bus *bus, ch_append_fn append, void *payload) {
        Refusals refused = {};
        unsigned sent = 0;

        while (refused.n == 0) {
                g_assert_cmpuint(sent, <, 200000);
                for (int i = 0; i < 200; i++, sent++) {
                        g_autofree char *id = g_strdup_printf("absent%u", sent % 100);
                        g_assert_cmpint(ch_events1_call_emit_to_async(bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, id, "e",
                                                                      append, payload, on_refused, &refused, 600 * G_USEC_PER_SEC), >=, 0);
                }
                /* the hub answers in order: once Ping returns, every refusal so far is in */
                g_assert_cmpint(sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL, NULL, ""), >=, 0);
                while (sd_bus_process(bus, NULL) > 0)
                        ;
        }
        g_assert_nonnull(strstr(refused.first, "--max-queued-bytes"));
        g_free(refused.first);
        return sent - refused.n;
}

/* The EmitTo budget counts what a queued call really costs the hub: queueing until it refuses
 * grows the hub's resident memory by no more than the budget and a fixed slack, for payloads
 * small and large, and for one whose marshalled form is 8 times its stored one. */
static void test_emit_to_budget(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const long budget_kb = 8 * 1024, slack_kb = 4 * 1024;
        const char *args[] = { "--max-queued-bytes=8388608", "--max-queued-per-worker=100000", "--max-queue-age-ms=600000", NULL };
        g_autofree char *small = g_strnfill(64, 's');
        g_autofree char *large = g_strnfill(8000, 'l');
        struct {
                ch_append_fn append;
                void *payload;
        } kinds[] = {
                { append_s, small },
                { append_s, large },
                { append_small_structs, NULL },
        };

        for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++) {
                ThHub hub = { .proc = TH_PROC_NULL };
                sd_bus *bus = NULL;
                long before, after;
                unsigned queued;

                g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, args), ==, 0);
                g_assert_cmpint(th_connect(&bus, f->bus.address), >=, 0);
                g_assert_cmpint(sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL, NULL, ""), >=, 0);
                before = vm_rss_kb(hub.proc.pid);
                queued = queue_until_refused(bus, kinds[k].append, kinds[k].payload);
                after = vm_rss_kb(hub.proc.pid);
                g_test_message("payload kind %zu: %u queued, VmRSS %ld -> %ld kB (budget %ld kB)", k, queued, before, after, budget_kb);
#if defined(__SANITIZE_ADDRESS__)
                /* ASan's redzones and quarantine are not what the budget models */
                (void) slack_kb;
#else
                g_assert_cmpint(after - before, <=, budget_kb + slack_kb);
#endif
                sd_bus_flush_close_unref(bus);
                g_assert_cmpint(th_hub_stop(&hub), ==, 0);
                th_hub_clear(&hub);
        }
}

static int try_emit(sd_bus *bus, const char *event, const char *payload, sd_bus_error *e) {
        return ch_events1_call_emit(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, event, append_s, (void *) payload, e);
}

/* What the hub broadcasts is bounded: an event's size, and the bytes one connection emits per
 * second; an emitter past its rate is refused, the others are not. */
static void test_emit_limits(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *args[] = { "--max-event-bytes=1000", "--max-emit-bytes-per-sec=2000", NULL };
        g_autofree char *big = g_strnfill(1001, 'b');
        g_autofree char *mid = g_strnfill(500, 'm');
        ThHub hub = { .proc = TH_PROC_NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *a = NULL, *b = NULL;
        unsigned sent = 0;
        int r;

        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, args), ==, 0);
        g_assert_cmpint(th_connect(&a, f->bus.address), >=, 0);
        g_assert_cmpint(th_connect(&b, f->bus.address), >=, 0);

        r = try_emit(a, "big", big, &e);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e.name, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(e.message, "--max-event-bytes=1000"));
        sd_bus_error_free(&e);
        r = ch_events1_call_emit_to(a, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "someone", "big", append_s, big, &e);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e.name, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(e.message, "--max-event-bytes=1000"));
        sd_bus_error_free(&e);

        /* about 700 bytes each against 2000 per second: the burst is spent long before 100 */
        for (; sent < 100; sent++) {
                r = try_emit(a, "mid", mid, &e);
                if (r < 0)
                        break;
        }
        g_test_message("%u events went out before the rate refused", sent);
        g_assert_cmpuint(sent, >=, 1);
        g_assert_cmpuint(sent, <, 100);
        g_assert_cmpstr(e.name, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(e.message, "--max-emit-bytes-per-sec=2000"));
        sd_bus_error_free(&e);

        /* another emitter has its own allowance */
        r = try_emit(b, "mid", mid, &e);
        if (r < 0)
                g_error("the other emitter was refused: %s", e.message);

        sd_bus_flush_close_unref(a);
        sd_bus_flush_close_unref(b);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
}

static void test_bad_event_input(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_autofree char *long_name = g_strnfill(256, 'e');
        int r;

        r = ch_events1_call_emit(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "", append_s, "x", &e);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e.name, ==, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        r = ch_events1_call_emit(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, long_name, append_s, "x", &e);
        g_assert_cmpstr(e.name, ==, CH_ERROR_INVALID_ARGS);
        g_assert_nonnull(strstr(e.message, "255"));
        sd_bus_error_free(&e);
        r = ch_events1_call_emit_to(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "no such/id", "ev", append_s, "x", &e);
        g_assert_cmpstr(e.name, ==, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        /* still serving */
        emit(f->client, "default", "fine", "ok");
}

int main(int argc, char *argv[]) {
        if (argc >= 5 && g_str_equal(argv[1], "--worker"))
                return worker_main(argc, argv);
        self_path = argv[0];
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/events/filtering", test_filtering);
        TH_ADD_BUS_TEST_WITH_HUB("/events/worker-death", test_worker_death);
        TH_ADD_BUS_TEST_WITH_HUB("/workers/register", test_register);
        TH_ADD_BUS_TEST_WITH_HUB("/workers/object-manager", test_object_manager);
        TH_ADD_BUS_TEST("/events/emit-to-queue", test_emit_to_queue);
        TH_ADD_BUS_TEST_WITH_HUB("/events/bad-input", test_bad_event_input);
        TH_ADD_BUS_TEST_WITH_HUB("/events/emit-to-drop", test_emit_to_drop);
        TH_ADD_BUS_TEST("/events/emit-to-budget", test_emit_to_budget);
        TH_ADD_BUS_TEST("/events/emit-limits", test_emit_limits);
        return g_test_run();
}
