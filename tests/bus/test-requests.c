/* SPDX-License-Identifier: MIT */
/* Requests against the real clusterhubd: round-robin over serving workers, replies and
 * errors passed through, WorkerGone at once when a worker dies, Timeout, RequestAll, file
 * descriptors both ways, a target that registers late, and the bound on pending calls.
 * Worker processes are this binary re-executed with --worker. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "ch-handler1-server.h"
#include "clusterhub/clusterhub.h"
#include "harness.h"

static const char *self_path;
static const char *worker_id;
static sd_bus_message *held[64];
static unsigned n_held;

/* ---- the worker process ---------------------------------------------------------------- */

static int append_reply_string(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "s", (const char *) userdata);
}

static int append_reply_fd(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "h", *(int *) userdata);
}

static int handle(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *ns, const char *method, const char *origin) {
        /* "mixed" is served by every worker: those called "stuck" hold it, the others echo */
        if (g_str_equal(method, "mixed"))
                method = g_str_equal(worker_id, "stuck") ? "hold" : "echo";
        if (g_str_equal(method, "echo")) {
                const char *payload = NULL;
                if (sd_bus_message_read(m, "v", "s", &payload) < 0)
                        return sd_bus_error_set(ret_error, SD_BUS_ERROR_INVALID_ARGS, "echo wants a string");
                g_autofree char *reply = g_strdup_printf("%s:%s", worker_id, payload);
                return ch_handler1_reply_handle(m, append_reply_string, reply);
        }
        if (g_str_equal(method, "hold")) {
                if (n_held < G_N_ELEMENTS(held))
                        held[n_held++] = sd_bus_message_ref(m);
                return 1;
        }
        if (g_str_equal(method, "fail"))
                return sd_bus_error_set(ret_error, "org.example.Error.Custom", "custom failure from the handler");
        if (g_str_equal(method, "fd")) {
                int fd = -1, p[2];
                char buf[64] = "";
                if (sd_bus_message_read(m, "v", "h", &fd) < 0)
                        return sd_bus_error_set(ret_error, SD_BUS_ERROR_INVALID_ARGS, "fd wants an fd");
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                if (n < 0 || pipe2(p, O_CLOEXEC) < 0)
                        return -errno;
                g_autofree char *answer = g_strdup_printf("got[%s]", buf);
                if (write(p[1], answer, strlen(answer)) < 0)
                        return -errno;
                close(p[1]);
                int r = ch_handler1_reply_handle(m, append_reply_fd, &p[0]);
                close(p[0]);
                return r;
        }
        return sd_bus_error_setf(ret_error, SD_BUS_ERROR_UNKNOWN_METHOD, "no method %s", method);
}

static const ChHandler1Handlers handler_table = { .handle = handle };

/* "badsig" is answered before the vtable sees it (sd-bus enforces the declared reply type
 * there), with a reply of the wrong shape, as a worker not written with sd-bus could. */
static int badsig_filter(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *ns, *method;
        sd_bus_message *reply = NULL;
        int r;

        if (!sd_bus_message_is_method_call(m, "org.clusterhub.Handler1", "Handle"))
                return 0;
        if (sd_bus_message_read(m, "ss", &ns, &method) < 0 || !g_str_equal(method, "badsig")) {
                (void) sd_bus_message_rewind(m, true);
                return 0;
        }
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", "not a variant");
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r < 0 ? r : 1;
}

/* --worker ADDRESS ID METHOD...: serve the methods, then register (so that once the test
 * sees the worker registered, it also serves). */
static int worker_main(int argc, char *argv[]) {
        sd_bus *bus = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        worker_id = argv[3];
        if (th_connect(&bus, argv[2]) < 0)
                return 2;
        if (ch_handler1_add_object(bus, NULL, "/org/clusterhub/Handler1", &handler_table, NULL) < 0)
                return 3;
        if (sd_bus_add_filter(bus, NULL, badsig_filter, NULL) < 0)
                return 3;
        r = ch_requests1_call_serve(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, argv + 4, &e);
        if (r < 0) {
                fprintf(stderr, "Serve: %s\n", e.message);
                return 4;
        }
        r = ch_hub1_call_register(bus, CH_BUS_NAME, CH_HUB_PATH, worker_id, NULL, NULL, NULL, &e);
        if (r < 0) {
                fprintf(stderr, "Register: %s\n", e.message);
                return 4;
        }
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 0; /* the bus went away */
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return 6;
        }
}

/* ---- the test process ------------------------------------------------------------------- */

static void spawn_worker(ThProc *proc, const char *address, const char *id, const char *const *methods) {
        GPtrArray *argv = g_ptr_array_new();

        g_ptr_array_add(argv, (char *) self_path);
        g_ptr_array_add(argv, "--worker");
        g_ptr_array_add(argv, (char *) address);
        g_ptr_array_add(argv, (char *) id);
        for (size_t i = 0; methods[i]; i++)
                g_ptr_array_add(argv, (char *) methods[i]);
        g_ptr_array_add(argv, NULL);
        *proc = (ThProc) TH_PROC_NULL;
        g_assert_cmpint(th_spawn(proc, (const char *const *) argv->pdata, NULL, -1, -1), >, 0);
        g_ptr_array_free(argv, TRUE);
}

static void wait_workers(sd_bus *bus, uint32_t n) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = ch_hub1_call_wait_for_workers(bus, CH_BUS_NAME, CH_HUB_PATH, n, 10000, NULL, &e);
        if (r < 0)
                g_error("WaitForWorkers(%u): %s", n, e.message);
}

/* Until the hub lists no worker: a stopped worker's departure reaches the hub from the bus, and
 * a caller on the private socket can overtake it (WaitForWorkers would count the departed). */
static void wait_no_workers(sd_bus *bus) {
        for (int i = 0; i < 1000; i++) {
                sd_bus_message *reply = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;
                int r = ch_hub1_call_list_workers(bus, CH_BUS_NAME, CH_HUB_PATH, &reply, &e);
                int n = 0;

                if (r < 0)
                        g_error("ListWorkers: %s", e.message);
                g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ssua{sv})"), >=, 0);
                while (sd_bus_message_skip(reply, "(ssua{sv})") > 0)
                        n++;
                sd_bus_message_unref(reply);
                if (n == 0)
                        return;
                g_usleep(10 * 1000);
        }
        g_error("workers still listed 10 s after they stopped");
}

static void stop_worker(ThProc *proc) {
        th_proc_stop(proc, SIGTERM, 5000);
        th_proc_clear(proc);
}

typedef struct Call {
        int done;
        char *error_name;
        char *error_message;
        char *reply;
        gint64 finished;
} Call;

static int append_request(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", (const char *) userdata);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 1, "timeout_ms", "u", (uint32_t) 5000);
}

static int append_request_short(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", (const char *) userdata);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 1, "timeout_ms", "u", (uint32_t) 400);
}

static int append_request_long(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", (const char *) userdata);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 1, "timeout_ms", "u", (uint32_t) 60000);
}

static int on_reply(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Call *c = userdata;
        const char *s = NULL;

        c->done = 1;
        c->finished = g_get_monotonic_time();
        if (error) {
                c->error_name = g_strdup(error->name);
                c->error_message = g_strdup(error->message);
        } else if (sd_bus_message_read(reply, "v", "s", &s) > 0)
                c->reply = g_strdup(s);
        return 0;
}

static void call_clear(Call *c) {
        g_free(c->error_name);
        g_free(c->error_message);
        g_free(c->reply);
        *c = (Call) {};
}

static void wait_calls(sd_bus *bus, Call *calls, size_t n, int timeout_s) {
        gint64 end = g_get_monotonic_time() + timeout_s * G_USEC_PER_SEC;
        for (;;) {
                size_t done = 0;
                for (size_t i = 0; i < n; i++)
                        done += calls[i].done;
                if (done == n)
                        return;
                g_assert_cmpint(g_get_monotonic_time(), <, end);
                if (sd_bus_process(bus, NULL) == 0)
                        sd_bus_wait(bus, 100000);
        }
}

static void request_async(sd_bus *bus, const char *target, const char *method, const char *payload, ch_append_fn append, Call *c) {
        g_assert_cmpint(ch_requests1_call_request_async(bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, target, method,
                                                        append, (void *) payload, on_reply, c, 30 * G_USEC_PER_SEC), >=, 0);
}

static void test_round_robin(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *methods[] = { "echo", NULL };
        ThProc w[3];
        static Call calls[300];
        unsigned per_worker[3] = {};

        for (int i = 0; i < 3; i++) {
                g_autofree char *id = g_strdup_printf("r%d", i);
                spawn_worker(&w[i], f->bus.address, id, methods);
        }
        wait_workers(f->client, 3);
        /* in rounds of 30, so that no worker reaches --max-handling-per-worker (32): past it
         * the hub prefers the workers with room over strict turns */
        for (int i = 0; i < 300; i++) {
                g_autofree char *payload = g_strdup_printf("p%d", i);
                request_async(f->client, "", "echo", payload, append_request, &calls[i]);
                if (i % 30 == 29)
                        wait_calls(f->client, calls + i - 29, 30, 30);
        }
        for (int i = 0; i < 300; i++) {
                g_autofree char *tail = g_strdup_printf(":p%d", i);
                g_assert_null(calls[i].error_name);
                g_assert_true(g_str_has_suffix(calls[i].reply, tail));
                per_worker[calls[i].reply[1] - '0']++;
                call_clear(&calls[i]);
        }
        g_test_message("spread: %u %u %u", per_worker[0], per_worker[1], per_worker[2]);
        for (int i = 0; i < 3; i++)
                g_assert_cmpuint(per_worker[i], ==, 100);

        /* a named worker */
        Call c = {};
        request_async(f->client, "r2", "echo", "direct", append_request, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.reply, ==, "r2:direct");
        call_clear(&c);
        for (int i = 0; i < 3; i++)
                stop_worker(&w[i]);
}

static void test_worker_gone(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *m1[] = { "hold", NULL }, *m2[] = { "echo", NULL };
        ThProc victim, other;
        Call calls[10] = {}, ok = {};

        spawn_worker(&victim, f->bus.address, "victim", m1);
        spawn_worker(&other, f->bus.address, "other", m2);
        wait_workers(f->client, 2);
        for (int i = 0; i < 10; i++)
                request_async(f->client, "victim", "hold", "x", append_request, &calls[i]);
        /* let them reach the handler */
        request_async(f->client, "other", "echo", "before", append_request, &ok);
        wait_calls(f->client, &ok, 1, 10);
        call_clear(&ok);
        g_usleep(200 * 1000);
        while (sd_bus_process(f->client, NULL) > 0)
                ;
        gint64 killed = g_get_monotonic_time();
        th_proc_kill(&victim, SIGKILL);
        wait_calls(f->client, calls, 10, 5);
        for (int i = 0; i < 10; i++) {
                g_assert_cmpstr(calls[i].error_name, ==, CH_ERROR_WORKER_GONE);
                g_assert_cmpint(calls[i].finished - killed, <, G_USEC_PER_SEC);
                call_clear(&calls[i]);
        }
        g_test_message("10 callers got WorkerGone within 1 s of SIGKILL (timeout was 5 s)");
        /* the other worker is unaffected */
        request_async(f->client, "other", "echo", "after", append_request, &ok);
        wait_calls(f->client, &ok, 1, 10);
        g_assert_cmpstr(ok.reply, ==, "other:after");
        call_clear(&ok);
        th_proc_wait(&victim, 5000, NULL);
        th_proc_clear(&victim);
        stop_worker(&other);
}

static void test_errors(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *methods[] = { "hold", "fail", "badsig", NULL };
        ThProc w;
        Call c = {};

        spawn_worker(&w, f->bus.address, "e1", methods);
        wait_workers(f->client, 1);

        request_async(f->client, "", "hold", "x", append_request_short, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, CH_ERROR_TIMEOUT);
        call_clear(&c);

        request_async(f->client, "", "fail", "x", append_request, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, "org.example.Error.Custom");
        g_assert_cmpstr(c.error_message, ==, "custom failure from the handler");
        call_clear(&c);

        request_async(f->client, "", "nobody-serves-this", "x", append_request, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, CH_ERROR_NO_HANDLER);
        call_clear(&c);

        request_async(f->client, "", "", "x", append_request, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, CH_ERROR_INVALID_ARGS);
        call_clear(&c);

        /* a worker that breaks the protocol: a named error, not a malformed reply */
        request_async(f->client, "", "badsig", "x", append_request, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, SD_BUS_ERROR_FAILED);
        g_assert_nonnull(strstr(c.error_message, "not 'v'"));
        call_clear(&c);

        /* a registered worker that does not serve the method: NoHandler at once, not
         * WorkerUnavailable once the call's 5 s have passed */
        request_async(f->client, "e1", "not-served", "x", append_request, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, CH_ERROR_NO_HANDLER);
        g_assert_nonnull(strstr(c.error_message, "'e1' does not serve 'not-served'"));
        call_clear(&c);

        /* an unknown target: waited for, then WorkerUnavailable */
        request_async(f->client, "ghost", "fail", "x", append_request_short, &c);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, CH_ERROR_WORKER_UNAVAILABLE);
        call_clear(&c);
        stop_worker(&w);
}

static void test_late_target(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *methods[] = { "echo", NULL };
        ThProc w;
        Call c = {};

        request_async(f->client, "late", "echo", "waited", append_request, &c);
        g_usleep(300 * 1000);
        while (sd_bus_process(f->client, NULL) > 0)
                ;
        g_assert_false(c.done);
        spawn_worker(&w, f->bus.address, "late", methods);
        wait_calls(f->client, &c, 1, 10);
        g_assert_cmpstr(c.reply, ==, "late:waited");
        call_clear(&c);
        stop_worker(&w);
}

static int append_all(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", "all");
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 0);
}

static int append_all_short(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", "all");
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 1, "timeout_ms", "u", (uint32_t) 300);
}

static void test_request_all(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *echo[] = { "echo", "fail", NULL }, *failing[] = { "fail", NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        ThProc w[3];
        unsigned n_replies = 0, n_errors = 0;

        /* nobody serves it: empty maps at once */
        g_assert_cmpint(ch_requests1_call_request_all(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "echo", append_all, NULL, &reply, &e), >=, 0);
        g_assert_cmpint(sd_bus_message_skip(reply, "a{sv}a{ss}"), >=, 0);
        reply = sd_bus_message_unref(reply);

        spawn_worker(&w[0], f->bus.address, "a0", echo);
        spawn_worker(&w[1], f->bus.address, "a1", echo);
        spawn_worker(&w[2], f->bus.address, "a2", failing);
        wait_workers(f->client, 3);
        g_assert_cmpint(ch_requests1_call_request_all(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "echo", append_all, NULL, &reply, &e), >=, 0);
        const char *k, *v;
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "sv", &k, "s", &v), >, 0);
                g_autofree char *want = g_strdup_printf("%s:all", k);
                g_assert_cmpstr(v, ==, want);
                n_replies++;
                sd_bus_message_exit_container(reply);
        }
        sd_bus_message_exit_container(reply);
        g_assert_cmpuint(n_replies, ==, 2);
        reply = sd_bus_message_unref(reply);

        g_assert_cmpint(ch_requests1_call_request_all(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "fail", append_all, NULL, &reply, &e), >=, 0);
        g_assert_cmpint(sd_bus_message_skip(reply, "a{sv}"), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{ss}"), >, 0);
        while (sd_bus_message_read(reply, "{ss}", &k, &v) > 0) {
                g_assert_true(g_str_has_prefix(v, "org.example.Error.Custom: "));
                n_errors++;
        }
        g_assert_cmpuint(n_errors, ==, 3);
        sd_bus_message_unref(reply);
        for (int i = 0; i < 3; i++)
                stop_worker(&w[i]);
        wait_no_workers(f->client);

        /* a worker that never answers becomes a Timeout entry, the others still reply */
        const char *hold[] = { "hold", "echo", NULL };
        spawn_worker(&w[0], f->bus.address, "slow", hold);
        wait_workers(f->client, 1);
        g_assert_cmpint(ch_requests1_call_request_all(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "hold", append_all_short, NULL, &reply, &e), >=, 0);
        g_assert_cmpint(sd_bus_message_skip(reply, "a{sv}"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "a{ss}", 1, &k, &v), >, 0);
        g_assert_cmpstr(k, ==, "slow");
        g_assert_true(g_str_has_prefix(v, CH_ERROR_TIMEOUT ": "));
        sd_bus_message_unref(reply);
        stop_worker(&w[0]);
}

static int append_fd(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "h", *(int *) userdata);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 0);
}

static void test_fd_passing(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *methods[] = { "fd", NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        ThProc w;
        int p[2], fd = -1;
        char buf[64] = "";

        spawn_worker(&w, f->bus.address, "fdw", methods);
        wait_workers(f->client, 1);
        g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
        g_assert_cmpint(write(p[1], "hello-fd", 8), ==, 8);
        close(p[1]);
        g_assert_cmpint(ch_requests1_call_request(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "", "fd", append_fd, &p[0], &reply, &e), >=, 0);
        close(p[0]);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "h", &fd), >, 0);
        g_assert_cmpint(read(fd, buf, sizeof(buf) - 1), >, 0);
        g_assert_cmpstr(buf, ==, "got[hello-fd]");
        sd_bus_message_unref(reply);

        /* a request carrying fds does not wait for a worker that is not there */
        g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
        int r = ch_requests1_call_request(f->client, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "absent", "fd", append_fd, &p[0], &reply, &e);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e.name, ==, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        close(p[0]);
        close(p[1]);
        stop_worker(&w);
}

static void test_serve_limit(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *args[] = { "--max-served-per-peer=2", NULL };
        ThHub hub = { .proc = TH_PROC_NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *two[] = { "a", "b", NULL }, *again[] = { "b", NULL }, *third[] = { "c", NULL };
        sd_bus *bus = NULL;

        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, args), ==, 0);
        g_assert_cmpint(th_connect(&bus, f->bus.address), >=, 0);
        g_assert_cmpint(ch_requests1_call_serve(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, two, &e), >=, 0);
        g_assert_cmpint(ch_requests1_call_serve(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, again, &e), >=, 0);
        g_assert_cmpint(ch_requests1_call_serve(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, third, &e), <, 0);
        g_assert_cmpstr(e.name, ==, CH_ERROR_LIMIT_EXCEEDED);
        sd_bus_error_free(&e);
        sd_bus_flush_close_unref(bus);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
}

static void test_pending_limit(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *args[] = { "--max-pending-per-peer=50", NULL };
        const char *methods[] = { "hold", NULL };
        ThHub hub = { .proc = TH_PROC_NULL };
        static Call calls[60];
        sd_bus *bus = NULL;
        unsigned limited = 0;
        ThProc w;

        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, args), ==, 0);
        g_assert_cmpint(th_connect(&bus, f->bus.address), >=, 0);
        spawn_worker(&w, f->bus.address, "holder", methods);
        wait_workers(bus, 1);
        for (int i = 0; i < 60; i++)
                request_async(bus, "", "hold", "x", append_request_short, &calls[i]);
        wait_calls(bus, calls, 60, 20);
        for (int i = 0; i < 60; i++) {
                if (g_strcmp0(calls[i].error_name, CH_ERROR_LIMIT_EXCEEDED) == 0)
                        limited++;
                else
                        g_assert_cmpstr(calls[i].error_name, ==, CH_ERROR_TIMEOUT);
                call_clear(&calls[i]);
        }
        g_assert_cmpuint(limited, ==, 10);
        stop_worker(&w);
        sd_bus_flush_close_unref(bus);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
}

/* Once a Ping on BUS returns, the hub has handled (and forwarded) everything BUS sent before. */
static void sync_with_hub(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, "org.freedesktop.DBus.Peer", "Ping", &e, NULL, "");
        if (r < 0)
                g_error("Ping: %s", e.message);
}

/* A private dbus-daemon with system.conf's policy and its stock limits (the harness writes no
 * <limit>, so max_replies_per_connection is dbus-daemon's built-in 128), plus a policy that
 * lets these root processes own the hub's name and call each other. */
typedef struct SystemBus {
        ThBus bus;
        char *dir;
} SystemBus;

static bool system_bus_start(SystemBus *sb) {
        g_autoptr(GError) error = NULL;
        g_autofree char *policy = NULL;

        sb->dir = g_dir_make_tmp("ch-requests-XXXXXX", &error);
        g_assert_no_error(error);
        policy = g_build_filename(sb->dir, "open.conf", NULL);
        g_assert_true(g_file_set_contents(policy,
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig><policy context=\"default\">\n"
                "  <allow own=\"" CH_BUS_NAME "\"/>\n"
                "  <allow send_type=\"method_call\"/>\n"
                "</policy></busconfig>\n", -1, &error));
        if (!th_bus_start_full(&sb->bus, TH_BUS_SYSTEM_LIKE, policy)) {
                g_test_skip(sb->bus.skip_reason);
                return false;
        }
        return true;
}

static void system_bus_stop(SystemBus *sb) {
        th_bus_stop(&sb->bus);
        if (sb->dir) {
                g_autofree char *policy = g_build_filename(sb->dir, "open.conf", NULL);
                g_unlink(policy);
                g_rmdir(sb->dir);
                g_free(sb->dir);
        }
}

/* 200 Requests to a worker that never answers, from two connections (each may have 128 calls
 * out itself); returns once the hub has them all. */
static void flood_stuck(const char *address, sd_bus *clients[2], Call *calls) {
        for (int c = 0; c < 2; c++) {
                g_assert_cmpint(th_connect(&clients[c], address), >=, 0);
                for (int i = 0; i < 100; i++)
                        request_async(clients[c], "stuck", "hold", "x", append_request_long, &calls[c * 100 + i]);
                sync_with_hub(clients[c]);
        }
}

/* On a bus with stock system limits, one worker that never answers cannot starve the
 * Requests of everyone else: the hub keeps at most --max-handling-per-worker calls out to it,
 * the rest wait in the hub; a Request without target goes to the worker with room. */
static void test_stuck_worker(void) {
        const char *stuck_methods[] = { "hold", "mixed", NULL }, *healthy_methods[] = { "echo", "mixed", NULL };
        static Call stuck_calls[200], mixed[100];
        SystemBus sb = {};
        ThHub hub = { .proc = TH_PROC_NULL };
        sd_bus *clients[2] = {}, *bus = NULL;
        ThProc stuck, healthy;
        Call c = {};

        if (!system_bus_start(&sb))
                return;
        g_assert_cmpint(th_hub_spawn(&hub, sb.bus.address, NULL), ==, 0);
        g_assert_cmpint(th_connect(&bus, sb.bus.address), >=, 0);
        spawn_worker(&stuck, sb.bus.address, "stuck", stuck_methods);
        spawn_worker(&healthy, sb.bus.address, "healthy", healthy_methods);
        wait_workers(bus, 2);

        flood_stuck(sb.bus.address, clients, stuck_calls);
        request_async(bus, "healthy", "echo", "still served", append_request, &c);
        wait_calls(bus, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, NULL);
        g_assert_cmpstr(c.reply, ==, "healthy:still served");
        call_clear(&c);

        /* without a target, every one goes to the worker with room: the stuck one has none */
        for (int i = 0; i < 100; i++)
                request_async(bus, "", "mixed", "m", append_request, &mixed[i]);
        wait_calls(bus, mixed, 100, 20);
        for (int i = 0; i < 100; i++) {
                g_assert_cmpstr(mixed[i].error_name, ==, NULL);
                g_assert_cmpstr(mixed[i].reply, ==, "healthy:m");
                call_clear(&mixed[i]);
        }
        for (int i = 0; i < 200; i++)
                g_assert_false(stuck_calls[i].done);

        /* the stuck worker leaves: what it held and what waited for it fail at once */
        th_proc_kill(&stuck, SIGKILL);
        for (int i = 0; i < 2; i++)
                wait_calls(clients[i], stuck_calls + i * 100, 100, 10);
        for (int i = 0; i < 200; i++) {
                g_assert_cmpstr(stuck_calls[i].error_name, ==, CH_ERROR_WORKER_GONE);
                call_clear(&stuck_calls[i]);
        }
        th_proc_wait(&stuck, 5000, NULL);
        th_proc_clear(&stuck);
        stop_worker(&healthy);
        for (int i = 0; i < 2; i++)
                sd_bus_flush_close_unref(clients[i]);
        sd_bus_flush_close_unref(bus);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
        system_bus_stop(&sb);
}

/* Without the cap the bus's own limit is reached; its refusal reaches the caller as the hub's
 * named LimitExceeded, saying which limit, not as if the handler had raised it. */
static void test_bus_limit_named(void) {
        const char *args[] = { "--max-handling-per-worker=0", NULL };
        const char *stuck_methods[] = { "hold", NULL }, *healthy_methods[] = { "echo", NULL };
        static Call stuck_calls[200];
        SystemBus sb = {};
        ThHub hub = { .proc = TH_PROC_NULL };
        sd_bus *clients[2] = {}, *bus = NULL;
        ThProc stuck, healthy;
        Call c = {};

        if (!system_bus_start(&sb))
                return;
        g_assert_cmpint(th_hub_spawn(&hub, sb.bus.address, args), ==, 0);
        g_assert_cmpint(th_connect(&bus, sb.bus.address), >=, 0);
        spawn_worker(&stuck, sb.bus.address, "stuck", stuck_methods);
        spawn_worker(&healthy, sb.bus.address, "healthy", healthy_methods);
        wait_workers(bus, 2);
        flood_stuck(sb.bus.address, clients, stuck_calls);
        request_async(bus, "healthy", "echo", "x", append_request, &c);
        wait_calls(bus, &c, 1, 10);
        g_test_message("%s: %s", c.error_name, c.error_message);
        g_assert_cmpstr(c.error_name, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(c.error_message, "max_replies_per_connection"));
        g_assert_nonnull(strstr(c.error_message, "--max-handling-per-worker"));
        call_clear(&c);
        th_proc_kill(&stuck, SIGKILL);
        th_proc_wait(&stuck, 5000, NULL);
        th_proc_clear(&stuck);
        stop_worker(&healthy);
        for (int i = 0; i < 2; i++) {
                wait_calls(clients[i], stuck_calls + i * 100, 100, 10);
                sd_bus_flush_close_unref(clients[i]);
        }
        for (int i = 0; i < 200; i++)
                call_clear(&stuck_calls[i]);
        sd_bus_flush_close_unref(bus);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
        system_bus_stop(&sb);
}

/* The cap and the backlog, small: past both, LimitExceeded names the worker and the options;
 * a call whose caller gave up still counts until the worker answers; a backlogged request
 * times out saying why it never started. */
static void test_handling_cap(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *args[] = { "--max-handling-per-worker=2", "--max-backlog-per-worker=3", NULL };
        const char *methods[] = { "hold", "echo", NULL };
        ThHub hub = { .proc = TH_PROC_NULL };
        Call calls[6] = {}, c = {};
        sd_bus *bus = NULL;
        ThProc w;

        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, args), ==, 0);
        g_assert_cmpint(th_connect(&bus, f->bus.address), >=, 0);
        spawn_worker(&w, f->bus.address, "busy", methods);
        wait_workers(bus, 1);
        for (int i = 0; i < 6; i++)
                request_async(bus, "busy", "hold", "x", append_request_short, &calls[i]);
        wait_calls(bus, calls, 6, 10);
        g_assert_cmpstr(calls[5].error_name, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(calls[5].error_message, "'busy'"));
        g_assert_nonnull(strstr(calls[5].error_message, "--max-handling-per-worker=2"));
        g_assert_nonnull(strstr(calls[5].error_message, "--max-backlog-per-worker=3"));
        for (int i = 0; i < 5; i++) {
                g_assert_cmpstr(calls[i].error_name, ==, CH_ERROR_TIMEOUT);
                g_assert_true((i < 2) == (strstr(calls[i].error_message, "did not start") == NULL));
        }
        /* the two held calls still count, though their callers have their Timeout */
        request_async(bus, "busy", "echo", "y", append_request_short, &c);
        wait_calls(bus, &c, 1, 10);
        g_assert_cmpstr(c.error_name, ==, CH_ERROR_TIMEOUT);
        g_assert_nonnull(strstr(c.error_message, "did not start handling 'echo'"));
        call_clear(&c);
        for (int i = 0; i < 6; i++)
                call_clear(&calls[i]);
        stop_worker(&w);
        sd_bus_flush_close_unref(bus);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
}

/* A Request without target that waits for a busy worker is not lost when that worker leaves:
 * another serving worker takes it; the calls it was handling get WorkerGone. */
static void test_backlog_reroute(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *args[] = { "--max-handling-per-worker=2", NULL };
        const char *stuck_methods[] = { "mixed", NULL }, *healthy_methods[] = { "mixed", NULL };
        ThHub hub = { .proc = TH_PROC_NULL };
        Call busy[2] = {}, waiting = {};
        sd_bus *bus = NULL;
        ThProc stuck, healthy;

        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, args), ==, 0);
        g_assert_cmpint(th_connect(&bus, f->bus.address), >=, 0);
        spawn_worker(&stuck, f->bus.address, "stuck", stuck_methods);
        wait_workers(bus, 1);
        for (int i = 0; i < 2; i++)
                request_async(bus, "", "mixed", "held", append_request_long, &busy[i]);
        request_async(bus, "", "mixed", "waits", append_request_long, &waiting);
        sync_with_hub(bus);
        spawn_worker(&healthy, f->bus.address, "healthy", healthy_methods);
        wait_workers(bus, 2);
        g_assert_false(waiting.done);
        th_proc_kill(&stuck, SIGKILL);
        wait_calls(bus, busy, 2, 10);
        wait_calls(bus, &waiting, 1, 10);
        for (int i = 0; i < 2; i++) {
                g_assert_cmpstr(busy[i].error_name, ==, CH_ERROR_WORKER_GONE);
                call_clear(&busy[i]);
        }
        g_assert_cmpstr(waiting.error_name, ==, NULL);
        g_assert_cmpstr(waiting.reply, ==, "healthy:waits");
        call_clear(&waiting);
        th_proc_wait(&stuck, 5000, NULL);
        th_proc_clear(&stuck);
        stop_worker(&healthy);
        sd_bus_flush_close_unref(bus);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
}

int main(int argc, char *argv[]) {
        if (argc >= 4 && g_str_equal(argv[1], "--worker"))
                return worker_main(argc, argv);
        self_path = argv[0];
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/requests/round-robin", test_round_robin);
        TH_ADD_BUS_TEST_WITH_HUB("/requests/worker-gone", test_worker_gone);
        TH_ADD_BUS_TEST_WITH_HUB("/requests/errors", test_errors);
        TH_ADD_BUS_TEST_WITH_HUB("/requests/late-target", test_late_target);
        TH_ADD_BUS_TEST_WITH_HUB("/requests/request-all", test_request_all);
        TH_ADD_BUS_TEST_WITH_HUB("/requests/fd-passing", test_fd_passing);
        TH_ADD_BUS_TEST("/requests/pending-limit", test_pending_limit);
        TH_ADD_BUS_TEST("/requests/serve-limit", test_serve_limit);
        TH_ADD_BUS_TEST("/requests/handling-cap", test_handling_cap);
        TH_ADD_BUS_TEST("/requests/backlog-reroute", test_backlog_reroute);
        g_test_add_func("/system-like/requests/stuck-worker", test_stuck_worker);
        g_test_add_func("/system-like/requests/bus-limit-named", test_bus_limit_named);
        return g_test_run();
}
