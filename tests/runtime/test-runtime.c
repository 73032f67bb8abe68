/* SPDX-License-Identifier: MIT */
/* The libclusterhub worker runtime against the real clusterhubd on private buses: emit / on /
 * off / once semantics, re-registration after a hub restart, serve / request (deferred replies,
 * errors passing through), locks.  Worker processes are this binary re-executed with --worker. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clusterhub/clusterhub.h"
#include "clusterhub/ch-runtime.h"
#include "harness.h"

static const char *self_path;

static int append_str(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "s", (const char *) userdata);
}

static const char *payload_str(sd_bus_message *m) {
        const char *s = NULL;
        if (sd_bus_message_read(m, "v", "s", &s) < 0)
                return "?";
        return s;
}

static int64_t now_ms(void) {
        return g_get_monotonic_time() / 1000;
}

/* ---- the worker process ---------------------------------------------------------------- */

static GPtrArray *kept_requests;

static void out(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void out(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static int w_on_ping(const char *event, const char *origin, sd_bus_message *payload, void *userdata) {
        ChClient *c = userdata;
        const char *p = payload_str(payload);
        out("ping %s %s", origin, p);
        /* emit from inside a listener: local "pong" listeners run now, nested */
        g_autofree char *copy = g_strdup(p);
        g_assert_cmpint(ch_emit(c, NULL, "pong", append_str, copy), ==, 1);
        return 0;
}

static int w_on_pong(const char *event, const char *origin, sd_bus_message *payload, void *userdata) {
        out("pong %s %s", origin, payload_str(payload));
        return 0;
}

static int w_on_quit(const char *event, const char *origin, sd_bus_message *payload, void *userdata) {
        ch_client_exit(userdata, 0);
        return 0;
}

static int h_upper(ChRequest *req, void *userdata) {
        g_autofree char *up = g_ascii_strup(payload_str(ch_request_get_payload(req)), -1);
        g_assert_cmpint(ch_request_reply(req, append_str, up), ==, 0);
        g_assert_cmpint(ch_request_reply(req, append_str, up), ==, -EALREADY);
        g_assert_cmpint(ch_request_fail(req, "com.example.Error.Late", "x"), ==, -EALREADY);
        return 0;
}

typedef struct Deferred {
        ChRequest *req;
        char *text;
} Deferred;

static int on_defer_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Deferred *d = userdata;
        g_autofree char *reply = g_strdup_printf("deferred:%s from %s", d->text, ch_request_get_origin(d->req));
        g_assert_cmpint(ch_request_reply(d->req, append_str, reply), ==, 0);
        ch_request_unref(d->req);
        g_free(d->text);
        g_free(d);
        return 0;
}

static int h_defer(ChRequest *req, void *userdata) {
        ChClient *c = userdata;
        Deferred *d = g_new0(Deferred, 1);
        d->req = ch_request_ref(req);
        d->text = g_strdup(payload_str(ch_request_get_payload(req)));
        g_assert_cmpint(sd_event_add_time_relative(ch_client_get_event(c), NULL, CLOCK_MONOTONIC, 100 * 1000, 0,
                                                   on_defer_timer, d), >=, 0);
        return 0;
}

static int h_fail(ChRequest *req, void *userdata) {
        g_autofree char *msg = g_strdup_printf("bad input: %s", payload_str(ch_request_get_payload(req)));
        return ch_request_fail(req, "com.example.Error.Bad", msg);
}

static int h_never(ChRequest *req, void *userdata) {
        g_ptr_array_add(kept_requests, ch_request_ref(req));
        return 0;
}

static int h_errno(ChRequest *req, void *userdata) {
        return -ENOKEY; /* maps to org.clusterhub.Error.NoSuchKey */
}

static int append_int_value(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "x", *(int64_t *) userdata);
        return r < 0 ? r : sd_bus_message_append(m, "a{sv}", 0);
}

static int incr_counter(ChClient *c, uint64_t token, void *userdata) {
        sd_bus *bus = ch_client_get_bus(c);
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int64_t v = 0;
        int set = 0, r;

        r = ch_store1_call_get(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "counter", &reply, &e);
        if (r >= 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "v", "x", &v), >, 0);
                sd_bus_message_unref(reply);
        } else
                g_assert_cmpstr(e.name, ==, CH_ERROR_NO_SUCH_KEY);
        sd_bus_error_free(&e);
        v++;
        r = ch_store1_call_set(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "counter", append_int_value, &v, &set, &e);
        g_assert_cmpint(r, ==, 0);
        return 7;
}

/* --worker ADDRESS ID MODE [N] */
static int worker_main(int argc, char *argv[]) {
        ChClientOptions o = { .address = argv[2] };
        ChClient *c = NULL;
        const char *mode = argv[4];
        int r;

        kept_requests = g_ptr_array_new();
        r = ch_client_new(&c, &o);
        if (r < 0)
                return 2;
        if (getenv("TEST_SAY_TRANSPORT"))
                out("transport %s", ch_client_get_private_socket(c) ? "private" : "bus");
        r = ch_register(c, argv[3]);
        if (r < 0) {
                fprintf(stderr, "register: %s\n", strerror(-r));
                return 3;
        }
        if (g_str_equal(mode, "echo")) {
                g_assert_cmpint(ch_on(c, NULL, "ping", w_on_ping, c, NULL), ==, 0);
                g_assert_cmpint(ch_on(c, NULL, "pong", w_on_pong, c, NULL), ==, 0);
                g_assert_cmpint(ch_on(c, NULL, "quit", w_on_quit, c, NULL), ==, 0);
                g_assert_cmpint(ch_serve(c, NULL, "upper", h_upper, c), ==, 0);
                g_assert_cmpint(ch_serve(c, NULL, "defer", h_defer, c), ==, 0);
                g_assert_cmpint(ch_serve(c, NULL, "fail", h_fail, c), ==, 0);
                g_assert_cmpint(ch_serve(c, NULL, "never", h_never, c), ==, 0);
                g_assert_cmpint(ch_serve(c, NULL, "errno", h_errno, c), ==, 0);
                g_assert_cmpint(ch_serve(c, NULL, "upper", h_upper, c), ==, -EEXIST);
                out("ready");
                r = ch_client_run(c);
        } else if (g_str_equal(mode, "locker")) {
                int n = atoi(argv[5]);
                out("ready");
                for (int i = 0; i < n; i++) {
                        r = ch_with_lock(c, NULL, "counter-lock", NULL, incr_counter, NULL);
                        if (r != 7) {
                                fprintf(stderr, "with_lock: %d\n", r);
                                return 4;
                        }
                }
                out("done");
                r = 0;
        } else
                return 9;
        for (unsigned i = 0; i < kept_requests->len; i++)
                ch_request_unref(kept_requests->pdata[i]);
        g_ptr_array_free(kept_requests, TRUE);
        ch_client_free(c);
        return r < 0 ? 5 : r;
}

/* ---- helpers of the test process ------------------------------------------------------- */

typedef struct Worker {
        ThProc proc;
        int out;
        GString *buf;
} Worker;

/* ENVP: the worker's whole environment, NULL: ours (minus the bus addresses). */
static void spawn_worker_env(Worker *w, const char *address, const char *id, const char *mode, const char *arg,
                             char **envp) {
        const char *argv[] = { self_path, "--worker", address, id, mode, arg, NULL };
        int fds[2];

        g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
        w->proc = (ThProc) TH_PROC_NULL;
        g_assert_cmpint(th_spawn(&w->proc, argv, (const char *const *) envp, fds[1], -1), >, 0);
        close(fds[1]);
        w->out = fds[0];
        w->buf = g_string_new(NULL);
}

static void spawn_worker(Worker *w, const char *address, const char *id, const char *mode, const char *arg) {
        spawn_worker_env(w, address, id, mode, arg, NULL);
}

/* The next line of the worker's output, waiting up to timeout_ms; NULL on timeout or EOF. */
static char *read_line(Worker *w, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;

        for (;;) {
                char *nl = memchr(w->buf->str, '\n', w->buf->len);
                if (nl) {
                        char *line = g_strndup(w->buf->str, nl - w->buf->str);
                        g_string_erase(w->buf, 0, nl - w->buf->str + 1);
                        return line;
                }
                int left = (int) (deadline - now_ms());
                if (left <= 0)
                        return NULL;
                struct pollfd p = { .fd = w->out, .events = POLLIN };
                if (poll(&p, 1, left) <= 0)
                        continue;
                char b[4096];
                ssize_t n = read(w->out, b, sizeof(b));
                if (n <= 0)
                        return NULL;
                g_string_append_len(w->buf, b, n);
        }
}

static void expect_line(Worker *w, const char *want) {
        g_autofree char *line = read_line(w, 10000);
        g_assert_cmpstr(line, ==, want);
}

static void worker_finish(Worker *w) {
        int status = -1;
        g_assert_true(th_proc_wait(&w->proc, 10000, &status));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        th_proc_clear(&w->proc);
        close(w->out);
        g_string_free(w->buf, TRUE);
}

static ChClient *client_new(ThFixture *f) {
        ChClientOptions o = { .bus_type = CH_BUS_ADDRESS, .address = f->bus.address };
        ChClient *c = NULL;
        g_assert_cmpint(ch_client_new(&c, &o), ==, 0);
        return c;
}

/* Runs C's loop until *counter reaches want (or timeout_ms passes). */
static void run_until(ChClient *c, const unsigned *counter, unsigned want, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;
        while (*counter < want && now_ms() < deadline)
                g_assert_cmpint(ch_client_process(c, 50 * 1000), >=, 0);
}

static void run_for(ChClient *c, int ms) {
        int64_t deadline = now_ms() + ms;
        while (now_ms() < deadline)
                g_assert_cmpint(ch_client_process(c, 20 * 1000), >=, 0);
}

typedef struct Log {
        GString *s;
        unsigned n;
} Log;

static int log_event(const char *event, const char *origin, sd_bus_message *payload, void *userdata) {
        Log *l = userdata;
        g_string_append_printf(l->s, "%s %s %s;", event, origin, payload_str(payload));
        l->n++;
        return 0;
}

/* ---- local semantics -------------------------------------------------------------------- */

typedef struct Order {
        GString *s;
        ChClient *c;
        uint64_t off_id;
        uint64_t added;
} Order;

static int ord_a(const char *e, const char *o, sd_bus_message *p, void *u) {
        Order *x = u;
        g_string_append_printf(x->s, "A(%s)", payload_str(p));
        return 0;
}
static int ord_b(const char *e, const char *o, sd_bus_message *p, void *u) {
        Order *x = u;
        g_string_append_printf(x->s, "B(%s)", payload_str(p));
        /* removing a later listener during the dispatch: it is not called */
        if (x->off_id) {
                g_assert_cmpint(ch_off(x->c, x->off_id), ==, 0);
                x->off_id = 0;
        }
        return 0;
}
static int ord_once(const char *e, const char *o, sd_bus_message *p, void *u) {
        g_string_append(((Order *) u)->s, "O");
        return 0;
}
static int ord_prefix(const char *e, const char *o, sd_bus_message *p, void *u) {
        g_string_append_printf(((Order *) u)->s, "P[%s]", e);
        return 0;
}
static int ord_added(const char *e, const char *o, sd_bus_message *p, void *u) {
        g_string_append(((Order *) u)->s, "N");
        return 0;
}
static int ord_adder(const char *e, const char *o, sd_bus_message *p, void *u) {
        Order *x = u;
        g_string_append(x->s, "D");
        /* a listener added during the dispatch waits for the next event */
        if (!x->added)
                g_assert_cmpint(ch_on(x->c, NULL, "jobs.a", ord_added, x, &x->added), ==, 0);
        return 0;
}
static int ord_removed(const char *e, const char *o, sd_bus_message *p, void *u) {
        g_string_append(((Order *) u)->s, "X");
        return 0;
}

static void test_local_order(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ChClient *c = client_new(f);
        Order x = { .s = g_string_new(NULL), .c = c };
        uint64_t a, many;

        g_assert_cmpint(ch_register(c, "solo"), ==, 0);
        g_assert_cmpstr(ch_client_get_id(c), ==, "solo");
        g_assert_cmpint(ch_on(c, NULL, "jobs.a", ord_a, &x, &a), ==, 0);
        g_assert_cmpint(ch_on(c, NULL, "jobs.a", ord_b, &x, NULL), ==, 0);
        g_assert_cmpint(ch_once(c, NULL, "jobs.a", ord_once, &x, NULL), ==, 0);
        g_assert_cmpint(ch_on_prefix(c, NULL, "jobs", ord_prefix, &x, NULL), ==, 0);
        g_assert_cmpint(ch_on(c, NULL, "jobs.a", ord_adder, &x, NULL), ==, 0);
        g_assert_cmpint(ch_on(c, NULL, "jobs.a", ord_removed, &x, &x.off_id), ==, 0);
        g_assert_cmpint(ch_many(c, NULL, "jobs.b", 2, ord_once, &x, &many), ==, 0);
        g_assert_cmpint(ch_on(c, "other", "jobs.a", ord_a, &x, NULL), ==, 0);

        /* synchronous, in registration order, before ch_emit_local returns */
        g_assert_cmpint(ch_emit_local(c, NULL, "jobs.a", append_str, "1"), ==, 5);
        g_assert_cmpstr(x.s->str, ==, "A(1)B(1)OP[jobs.a]D");
        g_string_truncate(x.s, 0);
        g_assert_cmpint(ch_emit_local(c, NULL, "jobs.a", append_str, "2"), ==, 5);
        g_assert_cmpstr(x.s->str, ==, "A(2)B(2)P[jobs.a]DN");
        g_string_truncate(x.s, 0);
        g_assert_cmpint(ch_emit_local(c, NULL, "jobs.b", NULL, NULL), ==, 2);
        g_assert_cmpint(ch_emit_local(c, NULL, "jobs.b", NULL, NULL), ==, 2);
        g_assert_cmpint(ch_emit_local(c, NULL, "jobs.b", NULL, NULL), ==, 1);
        g_assert_cmpstr(x.s->str, ==, "P[jobs.b]OP[jobs.b]OP[jobs.b]");
        g_assert_cmpint(ch_off(c, many), ==, -ENOENT); /* once/many remove themselves */
        g_string_truncate(x.s, 0);
        g_assert_cmpint(ch_emit_local(c, NULL, "jobsx", NULL, NULL), ==, 0);
        g_assert_cmpint(ch_emit_local(c, "other", "jobs.a", append_str, "o"), ==, 1);
        g_assert_cmpstr(x.s->str, ==, "A(o)");
        g_assert_cmpint(ch_off(c, a), ==, 0);
        g_assert_cmpint(ch_off(c, a), ==, -ENOENT);

        /* bad input */
        g_assert_cmpint(ch_emit(c, NULL, "", NULL, NULL), ==, -EINVAL);
        g_assert_cmpint(ch_emit(c, "bad/ns", "x", NULL, NULL), ==, -EINVAL);
        g_assert_cmpint(ch_on(c, NULL, "", ord_a, &x, NULL), ==, -EINVAL);
        g_autofree char *longname = g_strnfill(300, 'e');
        g_assert_cmpint(ch_emit_local(c, NULL, longname, NULL, NULL), ==, -EINVAL);

        g_string_free(x.s, TRUE);
        ch_client_free(c);
}

/* ---- remote semantics ------------------------------------------------------------------- */

static void test_remote(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Worker w;
        ChClient *c = client_new(f);
        Log pongs = { g_string_new(NULL) }, pings = { g_string_new(NULL) };

        spawn_worker(&w, f->bus.address, "w1", "echo", NULL);
        expect_line(&w, "ready");
        g_assert_cmpint(ch_register(c, "main"), ==, 0);
        g_assert_cmpint(ch_on(c, NULL, "pong", log_event, &pongs, NULL), ==, 0);
        g_assert_cmpint(ch_on(c, NULL, "ping", log_event, &pings, NULL), ==, 0);
        /* a second listener shares the bus match; a prefix listener adds another rule, and the
         * signal is still dispatched once per listener */
        g_assert_cmpint(ch_on_prefix(c, NULL, "pong", log_event, &pongs, NULL), ==, 0);

        /* emit: the local listener ran before it returned; the worker answers */
        g_assert_cmpint(ch_emit(c, NULL, "ping", append_str, "1"), ==, 1);
        g_assert_cmpstr(pings.s->str, ==, "ping main 1;");
        run_until(c, &pongs.n, 2, 10000);
        /* emit_remote: no local listener */
        g_assert_cmpint(ch_emit_remote(c, NULL, "ping", append_str, "2"), ==, 0);
        g_assert_cmpuint(pings.n, ==, 1);
        run_until(c, &pongs.n, 4, 10000);
        /* our own remote emits never come back to us */
        run_for(c, 300);
        g_assert_cmpstr(pings.s->str, ==, "ping main 1;");
        g_assert_cmpstr(pongs.s->str, ==, "pong w1 1;pong w1 1;pong w1 2;pong w1 2;");

        g_assert_cmpint(ch_emit_to(c, NULL, "w1", "quit", NULL, NULL), ==, 0);
        g_assert_cmpint(ch_client_flush(c), >=, 0);
        /* the worker's own remote pong did not reach its own listener: each pong once */
        expect_line(&w, "ping main 1");
        expect_line(&w, "pong w1 1");
        expect_line(&w, "ping main 2");
        expect_line(&w, "pong w1 2");
        g_autofree char *rest = read_line(&w, 2000);
        g_assert_null(rest);
        worker_finish(&w);
        g_string_free(pongs.s, TRUE);
        g_string_free(pings.s, TRUE);
        ch_client_free(c);
}

/* ---- hub restart ------------------------------------------------------------------------ */

typedef struct Regs {
        unsigned n;
        char *last;
} Regs;

static void on_registered(ChClient *c, const char *id, int error, void *userdata) {
        Regs *r = userdata;
        g_assert_cmpint(error, ==, 0);
        g_free(r->last);
        r->last = g_strdup(id);
        r->n++;
}

static bool worker_listed(sd_bus *bus, const char *id) {
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *wid, *unique;
        uint32_t pid;
        bool found = false;

        if (ch_hub1_call_list_workers(bus, CH_BUS_NAME, CH_HUB_PATH, &reply, &e) < 0) {
                sd_bus_error_free(&e);
                return false;
        }
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ssua{sv})"), >, 0);
        while (sd_bus_message_enter_container(reply, 'r', "ssua{sv}") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "ssu", &wid, &unique, &pid), >, 0);
                g_assert_cmpint(sd_bus_message_skip(reply, "a{sv}"), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                found = found || g_str_equal(wid, id);
        }
        sd_bus_message_unref(reply);
        return found;
}

static void test_hub_restart(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Worker w;
        ChClient *c = client_new(f);
        Log pongs = { g_string_new(NULL) };
        Regs regs = { 0 };
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *s;

        spawn_worker(&w, f->bus.address, "w2", "echo", NULL);
        expect_line(&w, "ready");
        ch_client_set_registered_callback(c, on_registered, &regs);
        g_assert_cmpint(ch_register(c, NULL), ==, 0); /* id derived by the hub */
        g_assert_cmpuint(regs.n, ==, 1);
        g_autofree char *derived = g_strdup(ch_client_get_id(c));
        g_assert_nonnull(derived);
        g_assert_cmpint(ch_on(c, NULL, "pong", log_event, &pongs, NULL), ==, 0);

        /* restart the hub under both */
        th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        run_for(c, 100);
        g_assert_null(ch_client_get_id(c));
        g_assert_cmpint(th_fixture_spawn_hub(f, NULL), ==, 0);

        /* we and the worker register again within a few seconds */
        run_until(c, &regs.n, 2, 5000);
        g_assert_cmpuint(regs.n, ==, 2);
        g_assert_cmpstr(regs.last, ==, derived);
        g_assert_cmpstr(ch_client_get_id(c), ==, derived);
        int64_t deadline = now_ms() + 5000;
        while (!worker_listed(f->client, "w2") && now_ms() < deadline)
                g_usleep(20 * 1000);
        g_assert_true(worker_listed(f->client, "w2"));
        g_assert_true(worker_listed(f->client, derived));

        /* and keep receiving events, and serving */
        g_assert_cmpint(ch_emit(c, NULL, "ping", append_str, "after"), ==, 0);
        run_until(c, &pongs.n, 1, 10000);
        g_assert_cmpstr(pongs.s->str, ==, "pong w2 after;");
        deadline = now_ms() + 5000;
        int r;
        do {
                sd_bus_error_free(&e);
                r = ch_request(c, NULL, "w2", "upper", append_str, "x", 2000, &reply, &e);
        } while (r == -EBADRQC && now_ms() < deadline && (g_usleep(20000), true));
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &s), >, 0);
        g_assert_cmpstr(s, ==, "X");
        sd_bus_message_unref(reply);

        g_assert_cmpint(ch_emit_to(c, NULL, "w2", "quit", NULL, NULL), ==, 0);
        ch_client_flush(c);
        g_autofree char *ping = g_strdup_printf("ping %s after", derived);
        expect_line(&w, ping);
        expect_line(&w, "pong w2 after");
        worker_finish(&w);
        g_free(regs.last);
        g_string_free(pongs.s, TRUE);
        ch_client_free(c);
}

/* ---- requests --------------------------------------------------------------------------- */

typedef struct AsyncResult {
        unsigned done;
        char *value;
        char *error;
} AsyncResult;

static void on_async_reply(ChClient *c, sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        AsyncResult *a = userdata;
        const char *s;
        if (error)
                a->error = g_strdup_printf("%s: %s", error->name, error->message);
        else {
                g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &s), >, 0);
                a->value = g_strdup(s);
        }
        a->done++;
}

static int self_second_reply = 1;

static int h_self(ChRequest *req, void *userdata) {
        g_autofree char *r = g_strdup_printf("self:%s:%s:%s", ch_request_get_namespace(req), ch_request_get_method(req),
                                             payload_str(ch_request_get_payload(req)));
        g_assert_cmpint(ch_request_reply(req, append_str, r), ==, 0);
        self_second_reply = ch_request_reply(req, append_str, r);
        return 0;
}

static int h_silent(ChRequest *req, void *userdata) {
        return 0; /* neither replies nor keeps the request */
}

static char *request_str(ChClient *c, const char *target, const char *method, const char *payload, uint64_t timeout_ms,
                         int *ret_r, char **ret_error) {
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *s;
        char *v = NULL;

        *ret_r = ch_request(c, NULL, target, method, append_str, (void *) payload, timeout_ms, &reply, &e);
        if (*ret_r >= 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &s), >, 0);
                v = g_strdup(s);
                sd_bus_message_unref(reply);
                *ret_error = NULL;
        } else {
                *ret_error = g_strdup_printf("%s: %s", e.name, e.message);
                sd_bus_error_free(&e);
        }
        return v;
}

static void test_requests(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Worker w;
        ChClient *c = client_new(f);
        g_autofree char *err = NULL;
        AsyncResult a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
        char *v;
        int r;

        spawn_worker(&w, f->bus.address, "w3", "echo", NULL);
        expect_line(&w, "ready");
        g_assert_cmpint(ch_register(c, "asker"), ==, 0);

        /* round trip, any worker and the named one */
        v = request_str(c, NULL, "upper", "abc", 0, &r, &err);
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpstr(v, ==, "ABC");
        g_free(v);
        v = request_str(c, "w3", "upper", "def", 0, &r, &err);
        g_assert_cmpstr(v, ==, "DEF");
        g_free(v);
        /* a deferred reply */
        v = request_str(c, "w3", "defer", "later", 0, &r, &err);
        g_assert_cmpstr(v, ==, "deferred:later from asker");
        g_free(v);
        /* a handler's own error passes through unchanged */
        v = request_str(c, NULL, "fail", "oops", 0, &r, &err);
        g_assert_null(v);
        g_assert_cmpstr(err, ==, "com.example.Error.Bad: bad input: oops");
        g_assert_cmpstr(ch_client_get_last_error(c)->name, ==, "com.example.Error.Bad");
        g_clear_pointer(&err, g_free);
        /* a handler returning -errno */
        v = request_str(c, NULL, "errno", "k", 0, &r, &err);
        g_assert_null(v);
        g_assert_cmpint(r, ==, -ENOKEY);
        g_assert_true(g_str_has_prefix(err, CH_ERROR_NO_SUCH_KEY ": "));
        g_clear_pointer(&err, g_free);
        /* nobody serves it */
        v = request_str(c, NULL, "nope", "k", 0, &r, &err);
        g_assert_cmpint(r, ==, -EBADRQC);
        g_assert_true(g_str_has_prefix(err, CH_ERROR_NO_HANDLER ": "));
        g_clear_pointer(&err, g_free);
        /* a handler that never replies: the per-call timeout */
        int64_t t0 = now_ms();
        v = request_str(c, NULL, "never", "k", 300, &r, &err);
        g_assert_cmpint(r, ==, -ETIMEDOUT);
        g_assert_true(g_str_has_prefix(err, CH_ERROR_TIMEOUT ": "));
        g_assert_cmpint(now_ms() - t0, <, 3000);
        g_clear_pointer(&err, g_free);

        /* asynchronous requests, also to a method this very client serves */
        g_assert_cmpint(ch_serve(c, "ns2", "selfecho", h_self, NULL), ==, 0);
        g_assert_cmpint(ch_serve(c, "ns2", "silent", h_silent, NULL), ==, 0);
        g_assert_cmpint(ch_request_async(c, NULL, "w3", "defer", append_str, "A", 0, on_async_reply, &a1), ==, 0);
        g_assert_cmpint(ch_request_async(c, "ns2", NULL, "selfecho", append_str, "B", 0, on_async_reply, &a2), ==, 0);
        g_assert_cmpint(ch_request_async(c, "ns2", NULL, "silent", append_str, "C", 0, on_async_reply, &a3), ==, 0);
        run_until(c, &a1.done, 1, 10000);
        run_until(c, &a2.done, 1, 10000);
        run_until(c, &a3.done, 1, 10000);
        g_assert_cmpstr(a1.value, ==, "deferred:A from asker");
        g_assert_cmpstr(a2.value, ==, "self:ns2:selfecho:B");
        g_assert_cmpint(self_second_reply, ==, -EALREADY);
        g_assert_cmpstr(a3.error, ==, "org.freedesktop.DBus.Error.Failed: The handler did not reply.");
        g_assert_cmpint(ch_unserve(c, "ns2", "selfecho"), ==, 0);
        g_assert_cmpint(ch_unserve(c, "ns2", "selfecho"), ==, -ENOENT);
        g_assert_cmpint(ch_request_async(c, "ns2", NULL, "selfecho", append_str, "B", 0, on_async_reply, &a2), ==, 0);
        run_until(c, &a2.done, 2, 10000);
        g_assert_true(g_str_has_prefix(a2.error, CH_ERROR_NO_HANDLER));

        g_assert_cmpint(ch_emit_to(c, NULL, "w3", "quit", NULL, NULL), ==, 0);
        ch_client_flush(c);
        worker_finish(&w);
        g_free(a1.value);
        g_free(a2.value);
        g_free(a2.error);
        g_free(a3.error);
        ch_client_free(c);
}

/* ---- locks ------------------------------------------------------------------------------ */

static int locked_body(ChClient *c, uint64_t token, void *userdata) {
        uint64_t *seen = userdata;
        *seen = token;
        return 42;
}

static int failing_body(ChClient *c, uint64_t token, void *userdata) {
        return -EPROTO;
}

/* When this returns, the hub has handled everything C sent before (one connection's calls are
 * handled in order). */
static void client_barrier(ChClient *c) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_assert_cmpint(sd_bus_call_method(ch_client_get_bus(c), CH_BUS_NAME, CH_HUB_PATH, CH_HUB1_INTERFACE, "GetStats",
                                           &e, NULL, NULL), >=, 0);
        sd_bus_error_free(&e);
}

static void test_locks(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ChClient *c = client_new(f), *c2 = client_new(f);
        Worker w[2];
        uint64_t tok = 0, tok2 = 0, seen = 0;
        ChLockOptions quick = { .timeout_ms = 200 };
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int64_t v = 0;

        g_assert_cmpint(ch_lock(c, NULL, "L", NULL, &tok), ==, 0);
        g_assert_cmpuint(tok, >, 0);
        g_assert_cmpint(ch_trylock(c2, NULL, "L", NULL, &tok2), ==, -EBUSY);
        g_assert_cmpuint(tok2, ==, 0); /* untouched on failure */
        g_assert_cmpint(ch_lock(c2, NULL, "L", &quick, &tok2), ==, -ETIMEDOUT);
        g_assert_cmpstr(ch_client_get_last_error(c2)->name, ==, CH_ERROR_TIMEOUT);
        g_assert_cmpint(ch_unlock(c2, NULL, "L", tok + 1000), ==, -EPERM);
        g_assert_cmpint(ch_unlock(c, NULL, "L", tok), ==, 0);
        g_assert_cmpint(ch_unlock(c, NULL, "L", tok), ==, -ENOLCK);
        g_assert_cmpint(ch_trylock(c2, NULL, "L", NULL, &tok2), ==, 0);
        g_assert_cmpuint(tok2, >, tok); /* fencing tokens increase */
        g_assert_cmpint(ch_unlock(c2, NULL, "L", tok2), ==, 0);

        /* with_lock: fn's result, and the lock is free afterwards, also after a failing fn */
        g_assert_cmpint(ch_with_lock(c, NULL, "L", NULL, locked_body, &seen), ==, 42);
        g_assert_cmpuint(seen, >, tok2);
        g_assert_cmpint(ch_with_lock(c, NULL, "L", NULL, failing_body, NULL), ==, -EPROTO);
        /* with_lock's Unlock is one-way: another connection sees the lock free once the hub
         * handled it, i.e. once a later call of c has its answer */
        client_barrier(c);
        g_assert_cmpint(ch_trylock(c2, NULL, "L", NULL, &tok2), ==, 0);
        /* held by c2: with_lock in c waits, times out, fn not run */
        seen = 0;
        g_assert_cmpint(ch_with_lock(c, NULL, "L", &quick, locked_body, &seen), ==, -ETIMEDOUT);
        g_assert_cmpuint(seen, ==, 0);
        g_assert_cmpint(ch_unlock(c2, NULL, "L", tok2), ==, 0);
        g_assert_cmpint(ch_lock(c, NULL, "", NULL, &tok), ==, -EINVAL);

        /* two processes x 50 read-modify-write increments under one lock */
        spawn_worker(&w[0], f->bus.address, "l1", "locker", "50");
        spawn_worker(&w[1], f->bus.address, "l2", "locker", "50");
        for (int i = 0; i < 2; i++) {
                expect_line(&w[i], "ready");
        }
        for (int i = 0; i < 2; i++) {
                g_autofree char *line = read_line(&w[i], 60000);
                g_assert_cmpstr(line, ==, "done");
                worker_finish(&w[i]);
        }
        g_assert_cmpint(ch_store1_call_get(ch_client_get_bus(c), CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "counter", &reply, &e), ==, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "x", &v), >, 0);
        g_assert_cmpint(v, ==, 100);
        sd_bus_message_unref(reply);
        ch_client_free(c2);
        ch_client_free(c);
}

/* ---- forged events ---------------------------------------------------------------------- */

/* What any client can send: the hub's Event signal from the namespace path, broadcast or
 * addressed to DESTINATION. */
static void forge_event(sd_bus *rogue, const char *destination, const char *payload) {
        sd_bus_message *m = NULL;

        g_assert_cmpint(sd_bus_message_new_signal(rogue, &m, CH_DEFAULT_NAMESPACE_PATH, CH_EVENTS1_INTERFACE, "Event"), >=, 0);
        if (destination)
                g_assert_cmpint(sd_bus_message_set_destination(m, destination), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "ssv", "jobs.run", "hub", "s", payload), >=, 0);
        g_assert_cmpint(sd_bus_send(rogue, m, NULL), >=, 0);
        sd_bus_message_unref(m);
}

/* A NameOwnerChanged look-alike telling DESTINATION that the rogue now owns the hub's name. */
static void forge_owner_change(sd_bus *rogue, const char *destination, const char *old_owner) {
        sd_bus_message *m = NULL;
        const char *me = NULL;

        g_assert_cmpint(sd_bus_get_unique_name(rogue, &me), >=, 0);
        g_assert_cmpint(sd_bus_message_new_signal(rogue, &m, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                  "NameOwnerChanged"), >=, 0);
        g_assert_cmpint(sd_bus_message_set_destination(m, destination), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "sss", CH_BUS_NAME, old_owner, me), >=, 0);
        g_assert_cmpint(sd_bus_send(rogue, m, NULL), >=, 0);
        sd_bus_message_unref(m);
}

/* When this returns, the bus has routed every message BUS sent before (it handles one
 * connection's messages in order). */
static void bus_barrier(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_assert_cmpint(sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                           "GetId", &e, NULL, ""), >=, 0);
        sd_bus_error_free(&e);
}

/* A real event, through the hub.  Sent after the forged ones from the same connection, it
 * reaches the victim after them: once it is in, the forged ones have been handled. */
static void emit_through_hub(sd_bus *bus, const char *payload) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_assert_cmpint(sd_bus_call_method(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, CH_EVENTS1_INTERFACE, "Emit", &e,
                                           NULL, "sv", "jobs.run", "s", payload), >=, 0);
        sd_bus_error_free(&e);
}

static int h_job(ChRequest *req, void *userdata) {
        (*(unsigned *) userdata)++;
        return ch_request_reply(req, NULL, NULL);
}

static int on_forged_handle_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        char **error = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        *error = g_strdup(e ? e->name : "(no error)");
        return 0;
}

static void test_forged_events(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ChClient *c = client_new(f);
        sd_bus *rogue = NULL;
        Log jobs = { g_string_new(NULL) };
        Regs regs = { 0 };
        const char *rogue_name = NULL, *hub = NULL;
        g_autofree char *hub_owner = NULL, *handle_error = NULL, *want = NULL;
        sd_bus_message *owner_reply = NULL;
        unsigned handled = 0;
        int64_t deadline;

        g_assert_cmpint(th_connect(&rogue, f->bus.address), ==, 0);
        g_assert_cmpint(sd_bus_get_unique_name(rogue, &rogue_name), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->client, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetNameOwner", NULL, &owner_reply, "s", CH_BUS_NAME), >=, 0);
        g_assert_cmpint(sd_bus_message_read(owner_reply, "s", &hub), >, 0);
        hub_owner = g_strdup(hub);
        sd_bus_message_unref(owner_reply);
        ch_client_set_registered_callback(c, on_registered, &regs);
        g_assert_cmpint(ch_register(c, "victim"), ==, 0);
        g_assert_cmpint(ch_on_prefix(c, NULL, "jobs", log_event, &jobs, NULL), ==, 0);
        g_assert_cmpint(ch_serve(c, NULL, "job", h_job, &handled), ==, 0);

        /* while the hub runs: broadcast, unicast, and unicast after a forged owner change */
        forge_event(rogue, NULL, "forged-broadcast");
        forge_event(rogue, ch_client_get_unique_name(c), "forged-unicast");
        forge_owner_change(rogue, ch_client_get_unique_name(c), hub_owner);
        forge_event(rogue, ch_client_get_unique_name(c), "forged-after-owner-change");
        forge_event(rogue, NULL, "forged-broadcast-after-owner-change");
        emit_through_hub(rogue, "real-1");
        run_until(c, &jobs.n, 1, 10000);
        want = g_strdup_printf("jobs.run %s real-1;", rogue_name);
        g_assert_cmpstr(jobs.s->str, ==, want);

        /* nor does a request reach the handler other than through the hub */
        g_assert_cmpint(sd_bus_call_method_async(rogue, NULL, ch_client_get_unique_name(c), CH_HANDLER_PATH,
                                                 CH_HANDLER1_INTERFACE, "Handle", on_forged_handle_reply, &handle_error,
                                                 "sssv", "default", "job", "hub", "s", "forged-job"), >=, 0);
        deadline = now_ms() + 10000;
        while (!handle_error && now_ms() < deadline) {
                g_assert_cmpint(ch_client_process(c, 20 * 1000), >=, 0);
                while (sd_bus_process(rogue, NULL) > 0)
                        ;
        }
        g_assert_cmpstr(handle_error, ==, SD_BUS_ERROR_ACCESS_DENIED);
        g_assert_cmpuint(handled, ==, 0);

        /* while no hub is on the bus */
        th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        deadline = now_ms() + 10000;
        while (ch_client_get_id(c) && now_ms() < deadline)
                g_assert_cmpint(ch_client_process(c, 20 * 1000), >=, 0);
        g_assert_null(ch_client_get_id(c));
        forge_event(rogue, NULL, "forged-broadcast-no-hub");
        forge_event(rogue, ch_client_get_unique_name(c), "forged-unicast-no-hub");
        bus_barrier(rogue);

        /* a new hub: its events arrive again (and the forged ones, queued before it, did not) */
        g_assert_cmpint(th_fixture_spawn_hub(f, NULL), ==, 0);
        run_until(c, &regs.n, 2, 10000);
        g_assert_cmpuint(regs.n, ==, 2);
        forge_event(rogue, NULL, "forged-broadcast-new-hub");
        forge_event(rogue, ch_client_get_unique_name(c), "forged-unicast-new-hub");
        emit_through_hub(rogue, "real-2");
        run_until(c, &jobs.n, 2, 10000);
        g_free(want);
        want = g_strdup_printf("jobs.run %s real-1;jobs.run %s real-2;", rogue_name, rogue_name);
        g_assert_cmpstr(jobs.s->str, ==, want);
        g_assert_cmpuint(jobs.n, ==, 2);
        g_assert_cmpuint(handled, ==, 0);

        g_free(regs.last);
        g_string_free(jobs.s, TRUE);
        sd_bus_flush_close_unref(rogue);
        ch_client_free(c);
}

/* ---- losing the bus --------------------------------------------------------------------- */

/* A program whose stdout and stderr both come to w->out. */
static bool spawn_program(Worker *w, const char *env, const char *address, const char *id) {
        const char *bin = g_getenv(env);
        g_autofree char *addr = g_strdup_printf("--address=%s", address);
        const char *argv[] = { bin, addr, id, NULL };
        int fds[2];

        if (!bin || !g_file_test(bin, G_FILE_TEST_IS_EXECUTABLE))
                return false;
        g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
        w->proc = (ThProc) TH_PROC_NULL;
        g_assert_cmpint(th_spawn(&w->proc, argv, NULL, fds[1], fds[1]), >, 0);
        close(fds[1]);
        w->out = fds[0];
        w->buf = g_string_new(NULL);
        return true;
}

/* Skips lines until one contains NEEDLE; fails after 10 s or at EOF. */
static void expect_line_containing(Worker *w, const char *needle) {
        int64_t deadline = now_ms() + 10000;

        for (;;) {
                int left = (int) (deadline - now_ms());
                g_autofree char *line = read_line(w, left > 0 ? left : 1);
                if (!line)
                        g_error("%s: no line containing '%s'", w->proc.name, needle);
                g_test_message("%s: %s", w->proc.name, line);
                if (strstr(line, needle))
                        return;
        }
}

static void test_bus_lost(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        static const struct {
                const char *env, *id, *ready, *registered;
        } programs[] = {
                /* the runtime's example */
                { "CLUSTERHUB_EXAMPLE_WORKER", "lost1", "ready: serving", "registered as worker lost1" },
                /* sd-bus and the generated stubs */
                { "CLUSTERHUB_WORKER", "lost2", "registered as /org/clusterhub/Hub1/worker/lost2",
                  "registered as /org/clusterhub/Hub1/worker/lost2" },
        };
        Worker w[G_N_ELEMENTS(programs)];

        for (size_t i = 0; i < G_N_ELEMENTS(programs); i++)
                if (!spawn_program(&w[i], programs[i].env, f->bus.address, programs[i].id)) {
                        g_test_skip("example workers not built");
                        for (size_t j = 0; j < i; j++)
                                th_proc_stop(&w[j].proc, SIGKILL, 1000);
                        return;
                }
        for (size_t i = 0; i < G_N_ELEMENTS(programs); i++)
                expect_line_containing(&w[i], programs[i].ready);

        /* the hub going away is not the bus going away: the workers register again */
        th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, NULL), ==, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(programs); i++) {
                expect_line_containing(&w[i], programs[i].registered);
                g_assert_false(th_proc_exited(&w[i].proc));
        }

        /* the bus daemon dies: each worker says which bus it lost and exits with a failure */
        g_assert_cmpint(th_proc_kill(&f->bus.proc, SIGKILL), ==, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(programs); i++) {
                int status = 0;
                g_autofree char *lost = g_strdup_printf("the connection to the bus %s", f->bus.address);

                expect_line_containing(&w[i], lost);
                g_assert_true(th_proc_wait(&w[i].proc, 10000, &status));
                g_assert_true(WIFEXITED(status));
                g_assert_cmpint(WEXITSTATUS(status), !=, 0);
                th_proc_clear(&w[i].proc);
                close(w[i].out);
                g_string_free(w[i].buf, TRUE);
        }
}

/* In process: ch_client_run() returns -ECONNRESET and the last error names the bus. */
static int give_up(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), -ETIMEDOUT);
}

static void test_bus_lost_run(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ChClient *c = client_new(f);
        g_autofree char *lost = g_strdup_printf("Lost the connection to the bus %s", f->bus.address);

        g_assert_cmpint(ch_register(c, "inproc"), ==, 0);
        g_assert_cmpint(th_proc_kill(&f->bus.proc, SIGKILL), ==, 0);
        /* should the lost bus go unnoticed, the loop ends after 10 s with -ETIMEDOUT */
        g_assert_cmpint(sd_event_add_time_relative(ch_client_get_event(c), NULL, CLOCK_MONOTONIC, 10 * 1000 * 1000, 0,
                                                   give_up, NULL), >=, 0);
        g_assert_cmpint(ch_client_run(c), ==, -ECONNRESET);
        g_assert_cmpstr(ch_client_get_last_error(c)->name, ==, SD_BUS_ERROR_DISCONNECTED);
        g_assert_true(g_str_has_prefix(ch_client_get_last_error(c)->message, lost));
        g_assert_null(ch_client_get_id(c));
        g_assert_cmpint(ch_client_process(c, 0), ==, -ECONNRESET);
        g_assert_cmpint(ch_client_run(c), ==, -ECONNRESET);
        ch_client_free(c);
}

/* clusterhub-worker (sd-bus and the generated stubs, what clusterhub-worker@.service runs)
 * prints the events it gets: only the hub's. */
static char *worker_unique_name(sd_bus *bus, const char *id) {
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *wid, *unique;
        char *found = NULL;
        uint32_t pid;

        g_assert_cmpint(ch_hub1_call_list_workers(bus, CH_BUS_NAME, CH_HUB_PATH, &reply, &e), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ssua{sv})"), >, 0);
        while (sd_bus_message_enter_container(reply, 'r', "ssua{sv}") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "ssu", &wid, &unique, &pid), >, 0);
                g_assert_cmpint(sd_bus_message_skip(reply, "a{sv}"), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                if (!found && g_str_equal(wid, id))
                        found = g_strdup(unique);
        }
        sd_bus_message_unref(reply);
        g_assert_nonnull(found);
        return found;
}

static void expect_event_line(Worker *w, const char *origin, const char *payload) {
        g_autofree char *want = g_strdup_printf("jobs.run %s <s \"%s\">", origin, payload);
        int64_t deadline = now_ms() + 10000;

        for (;;) {
                int left = (int) (deadline - now_ms());
                g_autofree char *line = read_line(w, left > 0 ? left : 1);
                g_assert_nonnull(line);
                g_test_message("%s: %s", w->proc.name, line);
                if (g_str_has_prefix(line, "jobs.run ")) {
                        g_assert_cmpstr(line, ==, want);
                        return;
                }
        }
}

static void test_forged_events_worker(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Worker w;
        sd_bus *rogue = NULL;
        sd_bus_message *owner_reply = NULL;
        const char *rogue_name = NULL, *hub = NULL;
        g_autofree char *hub_owner = NULL, *victim = NULL;

        if (!spawn_program(&w, "CLUSTERHUB_WORKER", f->bus.address, "forgee")) {
                g_test_skip("clusterhub-worker not built");
                return;
        }
        expect_line_containing(&w, "registered as /org/clusterhub/Hub1/worker/forgee");
        g_assert_cmpint(th_connect(&rogue, f->bus.address), ==, 0);
        g_assert_cmpint(sd_bus_get_unique_name(rogue, &rogue_name), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->client, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetNameOwner", NULL, &owner_reply, "s", CH_BUS_NAME), >=, 0);
        g_assert_cmpint(sd_bus_message_read(owner_reply, "s", &hub), >, 0);
        hub_owner = g_strdup(hub);
        sd_bus_message_unref(owner_reply);
        victim = worker_unique_name(f->client, "forgee");

        forge_event(rogue, NULL, "forged-broadcast");
        forge_event(rogue, victim, "forged-unicast");
        forge_owner_change(rogue, victim, hub_owner);
        forge_event(rogue, victim, "forged-after-owner-change");
        emit_through_hub(rogue, "real-1");
        expect_event_line(&w, rogue_name, "real-1");

        th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        expect_line_containing(&w, "the hub went away");
        forge_event(rogue, NULL, "forged-broadcast-no-hub");
        forge_event(rogue, victim, "forged-unicast-no-hub");
        bus_barrier(rogue);
        g_assert_cmpint(th_fixture_spawn_hub(f, NULL), ==, 0);
        expect_line_containing(&w, "registered as /org/clusterhub/Hub1/worker/forgee (again");
        forge_event(rogue, victim, "forged-unicast-new-hub");
        emit_through_hub(rogue, "real-2");
        expect_event_line(&w, rogue_name, "real-2");

        sd_bus_flush_close_unref(rogue);
        g_assert_cmpint(th_proc_kill(&w.proc, SIGTERM), ==, 0);
        worker_finish(&w);
}

/* DropNamespace takes a worker's served methods with it; the hub says so (NamespaceDropped) and
 * the runtime serves there again, so requests find the worker once more. */
static void test_namespace_dropped(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ChClient *c = client_new(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        AsyncResult a = { 0 };
        unsigned tries = 0;

        g_assert_cmpint(ch_serve(c, "dropme", "selfecho", h_self, NULL), ==, 0);
        g_assert_cmpint(ch_request_async(c, "dropme", NULL, "selfecho", append_str, "1", 0, on_async_reply, &a), ==, 0);
        run_until(c, &a.done, 1, 10000);
        g_assert_cmpstr(a.value, ==, "self:dropme:selfecho:1");
        g_clear_pointer(&a.value, g_free);

        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH, CH_HUB1_INTERFACE, "DropNamespace", &e, NULL, "s", "dropme"), >=, 0);
        /* served again once the runtime has seen the signal: retry while it is NoHandler */
        for (int64_t end = now_ms() + 10000; now_ms() < end; tries++) {
                g_clear_pointer(&a.error, g_free);
                g_assert_cmpint(ch_request_async(c, "dropme", NULL, "selfecho", append_str, "2", 0, on_async_reply, &a), ==, 0);
                run_until(c, &a.done, a.done + 1, 10000);
                if (a.value)
                        break;
                g_assert_true(g_str_has_prefix(a.error, CH_ERROR_NO_HANDLER));
                run_for(c, 20);
        }
        g_test_message("served again after %u NoHandler answers", tries);
        g_assert_cmpstr(a.value, ==, "self:dropme:selfecho:2");
        g_free(a.value);
        g_free(a.error);
        ch_client_free(c);
}


/* ---- the private socket ----------------------------------------------------------------- */

static uint64_t stat_of(ChClient *c, const char *key) {
        uint64_t value = 0;

        g_assert_cmpint(th_get_stat(ch_client_get_bus(c), key, &value), ==, 0);
        return value;
}

/* The hub of F, listening on its private socket too; returns the socket's path. */
static char *start_listening_hub(ThFixture *f) {
        char *path = NULL;
        g_assert_cmpint(th_hub_spawn_listening(&f->hub, &f->bus, NULL, &path), ==, 0);
        return path;
}

static ChClient *client_new_transport(ThFixture *f, ChTransport t, const char *socket) {
        ChClientOptions o = { .address = f->bus.address, .transport = t, .private_socket = socket };
        ChClient *c = NULL;
        g_assert_cmpint(ch_client_new(&c, &o), ==, 0);
        return c;
}

/* Our environment for a worker, without the bus addresses, with $CLUSTERHUB_PRIVATE_SOCKET =
 * SOCKET (NULL: unset) and the worker saying which transport it chose. */
static char **worker_env(const char *socket) {
        char **env = g_get_environ();
        env = g_environ_unsetenv(env, "DBUS_SESSION_BUS_ADDRESS");
        env = g_environ_unsetenv(env, "DBUS_SYSTEM_BUS_ADDRESS");
        env = g_environ_unsetenv(env, "CLUSTERHUB_TRANSPORT");
        env = socket ? g_environ_setenv(env, "CLUSTERHUB_PRIVATE_SOCKET", socket, TRUE)
                     : g_environ_unsetenv(env, "CLUSTERHUB_PRIVATE_SOCKET");
        return g_environ_setenv(env, "TEST_SAY_TRANSPORT", "1", TRUE);
}

static char *request_upper(ChClient *c, const char *target, const char *payload) {
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *s;
        char *v;
        int r;

        r = ch_request(c, NULL, target, "upper", append_str, (void *) payload, 5000, &reply, &e);
        if (r < 0) {
                v = g_strdup_printf("error %s", e.name);
                sd_bus_error_free(&e);
                return v;
        }
        g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &s), >, 0);
        v = g_strdup(s);
        sd_bus_message_unref(reply);
        return v;
}

/* A worker on the socket serves a client on the bus and the other way round; events cross too. */
static void test_socket_and_bus(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *path = start_listening_hub(f);
        g_auto(GStrv) sock_env = worker_env(path), bus_env = worker_env(NULL);
        Worker ws, wb;
        Log pongs = { g_string_new(NULL) };

        spawn_worker_env(&ws, f->bus.address, "ws", "echo", NULL, sock_env);
        expect_line(&ws, "transport private");
        expect_line(&ws, "ready");
        spawn_worker_env(&wb, f->bus.address, "wb", "echo", NULL, bus_env);
        expect_line(&wb, "transport bus");
        expect_line(&wb, "ready");

        ChClient *cb = client_new_transport(f, CH_TRANSPORT_BUS, path);
        ChClient *cs = client_new_transport(f, CH_TRANSPORT_PRIVATE, path);
        g_assert_null(ch_client_get_private_socket(cb));
        g_assert_cmpstr(ch_client_get_private_socket(cs), ==, path);
        g_assert_true(g_str_has_prefix(ch_client_get_unique_name(cs), ":p2p."));

        /* requests both ways, and each transport to itself */
        g_autofree char *a = request_upper(cb, "ws", "bus to socket");
        g_autofree char *b = request_upper(cs, "wb", "socket to bus");
        g_autofree char *x = request_upper(cs, "ws", "socket to socket");
        g_assert_cmpstr(a, ==, "BUS TO SOCKET");
        g_assert_cmpstr(b, ==, "SOCKET TO BUS");
        g_assert_cmpstr(x, ==, "SOCKET TO SOCKET");

        /* an emit from the bus reaches the socket worker; its answer reaches the socket client */
        g_assert_cmpint(ch_on(cs, NULL, "pong", log_event, &pongs, NULL), ==, 0);
        g_assert_cmpint(ch_register(cb, "cb"), ==, 0);
        g_assert_cmpint(ch_emit(cb, NULL, "ping", append_str, "p"), ==, 0);
        ch_client_flush(cb);
        run_until(cs, &pongs.n, 2, 10000);
        g_assert_cmpuint(pongs.n, ==, 2);
        g_assert_true(strstr(pongs.s->str, "pong ws p;"));
        g_assert_true(strstr(pongs.s->str, "pong wb p;"));
        expect_line(&ws, "ping cb p");
        expect_line(&ws, "pong ws p");
        expect_line(&wb, "ping cb p");
        expect_line(&wb, "pong wb p");

        g_assert_cmpint(ch_emit_to(cs, NULL, "ws", "quit", NULL, NULL), ==, 0);
        g_assert_cmpint(ch_emit_to(cs, NULL, "wb", "quit", NULL, NULL), ==, 0);
        ch_client_flush(cs);
        worker_finish(&ws);
        worker_finish(&wb);
        g_string_free(pongs.s, TRUE);
        ch_client_free(cs);
        ch_client_free(cb);
}

/* A hub restart on the socket: the connection closes, the client connects again, adds its
 * matches again, serves and registers again. */
static void test_socket_hub_restart(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *path = start_listening_hub(f);
        g_auto(GStrv) sock_env = worker_env(path);
        Worker w;
        Log pongs = { g_string_new(NULL) };
        Regs regs = { 0 };

        spawn_worker_env(&w, f->bus.address, "w2", "echo", NULL, sock_env);
        expect_line(&w, "transport private");
        expect_line(&w, "ready");
        ChClient *c = client_new_transport(f, CH_TRANSPORT_AUTO, path);
        g_assert_cmpstr(ch_client_get_private_socket(c), ==, path);
        ch_client_set_registered_callback(c, on_registered, &regs);
        g_assert_cmpint(ch_register(c, NULL), ==, 0);
        g_autofree char *derived = g_strdup(ch_client_get_id(c));
        g_assert_true(g_str_has_prefix(derived, "bus_p2p_"));
        g_assert_cmpint(ch_on(c, NULL, "pong", log_event, &pongs, NULL), ==, 0);

        /* kill the hub hard (no goodbye) and start it again on the same socket */
        g_assert_cmpint(th_hub_kill(&f->hub, SIGKILL), ==, 0);
        g_assert_true(th_hub_wait_exit(&f->hub, NULL));
        th_hub_clear(&f->hub);
        run_for(c, 200);
        g_assert_null(ch_client_get_id(c));
        g_free(path);
        path = start_listening_hub(f);

        run_until(c, &regs.n, 2, 10000);
        g_assert_cmpuint(regs.n, ==, 2);
        /* derived from the connection's name again: a new connection, a new name */
        g_assert_true(g_str_has_prefix(regs.last, "bus_p2p_"));
        g_assert_cmpstr(ch_client_get_id(c), ==, regs.last);
        g_free(derived);
        derived = g_strdup(regs.last);
        g_assert_cmpstr(ch_client_get_private_socket(c), ==, path);
        int64_t deadline = now_ms() + 10000;
        while (!worker_listed(ch_client_get_bus(c), "w2") && now_ms() < deadline)
                run_for(c, 20);
        g_assert_true(worker_listed(ch_client_get_bus(c), "w2"));

        /* the worker serves again, and both listen again */
        g_autofree char *up = NULL;
        deadline = now_ms() + 10000;
        do {
                g_free(up);
                up = request_upper(c, "w2", "again");
        } while (!g_str_equal(up, "AGAIN") && now_ms() < deadline && (g_usleep(20000), true));
        g_assert_cmpstr(up, ==, "AGAIN");
        g_assert_cmpint(ch_emit(c, NULL, "ping", append_str, "after"), ==, 0);
        run_until(c, &pongs.n, 1, 10000);
        g_assert_cmpstr(pongs.s->str, ==, "pong w2 after;");

        g_assert_cmpint(ch_emit_to(c, NULL, "w2", "quit", NULL, NULL), ==, 0);
        ch_client_flush(c);
        g_autofree char *ping = g_strdup_printf("ping %s after", derived);
        expect_line(&w, ping);
        expect_line(&w, "pong w2 after");
        worker_finish(&w);
        g_free(regs.last);
        g_string_free(pongs.s, TRUE);
        ch_client_free(c);
}

/* The hub comes back without its socket: after a few attempts an auto client follows it on the
 * bus; a private one keeps waiting for the socket. */
static void test_socket_gone(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *path = start_listening_hub(f);
        Regs regs = { 0 };
        Log pongs = { g_string_new(NULL) };

        ChClient *c = client_new_transport(f, CH_TRANSPORT_AUTO, path);
        ChClient *p = client_new_transport(f, CH_TRANSPORT_PRIVATE, path);
        g_assert_nonnull(ch_client_get_private_socket(c));
        ch_client_set_registered_callback(c, on_registered, &regs);
        g_assert_cmpint(ch_register(c, "follower"), ==, 0);
        g_assert_cmpint(ch_register(p, "waiter"), ==, 0);
        g_assert_cmpint(ch_on(c, NULL, "pong", log_event, &pongs, NULL), ==, 0);

        th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_hub_spawn(&f->hub, f->bus.address, NULL), ==, 0); /* no --listen */
        /* both loops run meanwhile */
        int64_t deadline = now_ms() + 30000;
        while (regs.n < 2 && now_ms() < deadline) {
                g_assert_cmpint(ch_client_process(c, 20 * 1000), >=, 0);
                g_assert_cmpint(ch_client_process(p, 20 * 1000), >=, 0);
        }
        g_assert_cmpuint(regs.n, ==, 2);
        g_assert_null(ch_client_get_private_socket(c));
        g_assert_cmpstr(ch_client_get_id(c), ==, "follower");
        g_assert_true(worker_listed(f->client, "follower"));
        g_assert_cmpstr(ch_client_get_private_socket(p), ==, path);
        g_assert_null(ch_client_get_id(p));
        g_assert_false(worker_listed(f->client, "waiter"));
        /* its listeners came along */
        ChClient *b = client_new_transport(f, CH_TRANSPORT_BUS, NULL);
        g_assert_cmpint(ch_emit_remote(b, NULL, "pong", append_str, "on the bus"), ==, 0);
        ch_client_flush(b);
        run_until(c, &pongs.n, 1, 10000);
        g_assert_cmpuint(pongs.n, ==, 1);
        g_assert_true(g_str_has_suffix(pongs.s->str, " on the bus;"));
        ch_client_free(b);
        ch_client_free(p);
        ch_client_free(c);
        g_free(regs.last);
        g_string_free(pongs.s, TRUE);
}

/* Sets $NAME to VALUE (NULL: unsets) for one test; restore with env_restore(). */
typedef struct SavedEnv {
        const char *name;
        char *value;
} SavedEnv;

static SavedEnv env_set(const char *name, const char *value) {
        SavedEnv saved = { name, g_strdup(g_getenv(name)) };
        if (value)
                g_assert_true(g_setenv(name, value, TRUE));
        else
                g_unsetenv(name);
        return saved;
}

static void env_restore(SavedEnv *saved) {
        if (saved->value)
                g_assert_true(g_setenv(saved->name, saved->value, TRUE));
        else
                g_unsetenv(saved->name);
        g_free(saved->value);
}

static int open_client(ThFixture *f, ChTransport t, const char *socket, char **ret_private, char **ret_error) {
        ChClientOptions o = { .address = f->bus.address, .transport = t, .private_socket = socket };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        r = ch_bus_open(&bus, &o, &e);
        *ret_error = r < 0 ? g_strdup(e.message) : NULL;
        *ret_private = NULL;
        sd_bus_error_free(&e);
        if (r >= 0) {
                /* the hub answers on either */
                g_assert_cmpint(sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, CH_HUB1_INTERFACE, "GetStats", NULL, NULL,
                                                   NULL), >=, 0);
                if (r > 0)
                        *ret_private = g_strdup("private");
        }
        sd_bus_flush_close_unref(bus);
        return r;
}

/* Which transport each setting chooses; a missing socket falls back in auto and fails, naming
 * the path, in private. */
static void test_transport_choice(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *path = start_listening_hub(f);
        g_autofree char *missing = g_build_filename(f->bus.tmpdir, "nothing-here", NULL);
        g_autofree char *on = NULL, *err = NULL;
        ChTransport t;
        SavedEnv env_t = env_set("CLUSTERHUB_TRANSPORT", NULL), env_s = env_set("CLUSTERHUB_PRIVATE_SOCKET", NULL);

        g_assert_cmpint(ch_transport_from_string("auto", &t), ==, 0);
        g_assert_cmpint(t, ==, CH_TRANSPORT_AUTO);
        g_assert_cmpint(ch_transport_from_string("private", &t), ==, 0);
        g_assert_cmpint(t, ==, CH_TRANSPORT_PRIVATE);
        g_assert_cmpint(ch_transport_from_string("bus", &t), ==, 0);
        g_assert_cmpint(t, ==, CH_TRANSPORT_BUS);
        g_assert_cmpint(ch_transport_from_string("p2p", &t), ==, -EINVAL);
        g_assert_cmpint(t, ==, CH_TRANSPORT_BUS); /* untouched */
        g_assert_cmpstr(ch_transport_to_string(CH_TRANSPORT_PRIVATE), ==, "private");
        g_assert_null(ch_transport_to_string(CH_TRANSPORT_DEFAULT));

        /* an explicit address and no socket named: the bus, in auto as by default */
        g_assert_cmpint(open_client(f, CH_TRANSPORT_DEFAULT, NULL, &on, &err), ==, 0);
        g_assert_cmpint(open_client(f, CH_TRANSPORT_AUTO, NULL, &on, &err), ==, 0);
        /* ... and private cannot guess one */
        g_assert_cmpint(open_client(f, CH_TRANSPORT_PRIVATE, NULL, &on, &err), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "CLUSTERHUB_PRIVATE_SOCKET"));
        g_clear_pointer(&err, g_free);

        /* a socket named: auto takes it, bus does not */
        g_assert_cmpint(open_client(f, CH_TRANSPORT_AUTO, path, &on, &err), ==, 1);
        g_clear_pointer(&on, g_free);
        g_assert_cmpint(open_client(f, CH_TRANSPORT_BUS, path, &on, &err), ==, 0);
        g_assert_cmpint(open_client(f, CH_TRANSPORT_PRIVATE, path, &on, &err), ==, 1);
        g_clear_pointer(&on, g_free);

        /* a missing socket: auto falls back to the bus, private fails naming it */
        g_assert_cmpint(open_client(f, CH_TRANSPORT_AUTO, missing, &on, &err), ==, 0);
        g_assert_cmpint(open_client(f, CH_TRANSPORT_PRIVATE, missing, &on, &err), ==, -ENOENT);
        g_assert_nonnull(strstr(err, missing));
        g_clear_pointer(&err, g_free);
        ChClientOptions o = { .address = f->bus.address, .transport = CH_TRANSPORT_PRIVATE, .private_socket = missing };
        ChClient *c = NULL;
        g_assert_cmpint(ch_client_new(&c, &o), ==, -ENOENT);
        g_assert_null(c);
        c = client_new_transport(f, CH_TRANSPORT_AUTO, missing);
        g_assert_null(ch_client_get_private_socket(c));
        ch_client_free(c);

        /* the environment: the socket, and the transport (an option given by the program wins) */
        SavedEnv e1 = env_set("CLUSTERHUB_PRIVATE_SOCKET", path);
        g_assert_cmpint(open_client(f, CH_TRANSPORT_DEFAULT, NULL, &on, &err), ==, 1);
        g_clear_pointer(&on, g_free);
        SavedEnv e2 = env_set("CLUSTERHUB_TRANSPORT", "bus");
        g_assert_cmpint(open_client(f, CH_TRANSPORT_DEFAULT, NULL, &on, &err), ==, 0);
        g_assert_cmpint(open_client(f, CH_TRANSPORT_PRIVATE, NULL, &on, &err), ==, 1);
        g_clear_pointer(&on, g_free);
        env_restore(&e2);
        e2 = env_set("CLUSTERHUB_TRANSPORT", "private");
        g_assert_cmpint(open_client(f, CH_TRANSPORT_DEFAULT, missing, &on, &err), ==, -ENOENT);
        g_assert_nonnull(strstr(err, missing));
        g_clear_pointer(&err, g_free);
        env_restore(&e2);
        e2 = env_set("CLUSTERHUB_TRANSPORT", "sideways");
        g_assert_cmpint(open_client(f, CH_TRANSPORT_DEFAULT, NULL, &on, &err), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "sideways"));
        g_clear_pointer(&err, g_free);
        env_restore(&e2);
        env_restore(&e1);

        /* the standard place: $XDG_RUNTIME_DIR/clusterhub/private of the standard user bus */
        g_autofree char *runtime = g_build_filename(f->bus.tmpdir, "runtime", NULL);
        g_autofree char *hubdir = g_build_filename(runtime, "clusterhub", NULL);
        g_autofree char *standard = g_build_filename(hubdir, "private", NULL);
        g_autofree char *standard_bus = g_strdup_printf("unix:path=%s/bus", runtime);
        g_assert_cmpint(g_mkdir_with_parents(hubdir, 0700), ==, 0);
        g_assert_cmpint(symlink(path, standard), ==, 0);
        ChClientOptions user = { .bus_type = CH_BUS_USER };
        sd_bus *bus = NULL;
        SavedEnv x = env_set("XDG_RUNTIME_DIR", runtime), d = env_set("DBUS_SESSION_BUS_ADDRESS", standard_bus);
        g_assert_cmpint(ch_bus_open(&bus, &user, NULL), ==, 1);
        bus = sd_bus_flush_close_unref(bus);
        /* another session bus: its hub is not the one listening in the standard place */
        env_restore(&d);
        d = env_set("DBUS_SESSION_BUS_ADDRESS", f->bus.address);
        g_assert_cmpint(ch_bus_open(&bus, &user, NULL), ==, 0);
        bus = sd_bus_flush_close_unref(bus);
        env_restore(&d);
        env_restore(&x);

        env_restore(&env_s);
        env_restore(&env_t);
}

/* --listen-foreign PATH: listens on PATH and accepts, saying nothing (run as another uid). */
static int foreign_main(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        /* another uid: neither the harness nor PR_SET_PDEATHSIG (cleared by setpriv) may stop us */
        alarm(120);
        if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
                return 2;
        strcpy(sa.sun_path, path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 16) < 0)
                return 3;
        for (;;)
                (void) accept4(fd, NULL, NULL, SOCK_CLOEXEC); /* kept open until we are killed */
}

/* A socket served by a process of another uid: auto falls back to the bus, private refuses. */
static void test_foreign_socket(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *setpriv = g_find_program_in_path("setpriv");
        if (geteuid() != 0 || !setpriv) {
                g_test_skip("needs root and setpriv (util-linux) to serve a socket as uid 65534");
                return;
        }
        g_autofree char *hub_path = start_listening_hub(f); /* the bus the clients fall back to */
        g_autofree char *dir = g_build_filename(f->bus.tmpdir, "foreign", NULL);
        g_autofree char *path = g_build_filename(dir, "private", NULL);
        g_autofree char *on = NULL, *err = NULL;
        ThProc proc = TH_PROC_NULL;
        const char *argv[] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", self_path,
                               "--listen-foreign", path, NULL };

        g_assert_cmpint(chmod(f->bus.tmpdir, 0755), ==, 0);
        g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
        g_assert_cmpint(chown(dir, 65534, 65534), ==, 0);
        g_assert_cmpint(th_spawn(&proc, argv, NULL, -1, -1), >, 0);
        int64_t deadline = now_ms() + 10000;
        while (!g_file_test(path, G_FILE_TEST_EXISTS) && now_ms() < deadline && !th_proc_exited(&proc))
                g_usleep(20 * 1000);
        g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));

        g_assert_cmpint(open_client(f, CH_TRANSPORT_AUTO, path, &on, &err), ==, 0);
        g_assert_null(on);
        g_assert_cmpint(open_client(f, CH_TRANSPORT_PRIVATE, path, &on, &err), ==, -EPERM);
        g_test_message("private: %s", err);
        g_assert_nonnull(strstr(err, path));
        g_assert_nonnull(strstr(err, "uid 65534"));
        ChClient *c = client_new_transport(f, CH_TRANSPORT_AUTO, path);
        g_assert_null(ch_client_get_private_socket(c));
        ch_client_free(c);

        th_proc_stop(&proc, SIGKILL, 10000);
        th_proc_clear(&proc);
}

static int unlock_inside(ChClient *c, uint64_t token, void *userdata) {
        g_assert_cmpint(ch_unlock(c, NULL, "U", token), ==, 0); /* the body loses the lock */
        return 5;
}

/* One-way Unlock on either transport: a later Lock of the same client waits behind it, and a
 * failing one is counted by the hub. */
static void test_unlock_oneway(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *path = start_listening_hub(f);
        ChClient *clients[2] = { client_new_transport(f, CH_TRANSPORT_BUS, NULL),
                                 client_new_transport(f, CH_TRANSPORT_PRIVATE, path) };
        ChLockOptions checked = { .check_unlock = true };
        uint64_t unheard = 0;

        g_assert_null(ch_client_get_private_socket(clients[0]));
        g_assert_nonnull(ch_client_get_private_socket(clients[1]));
        for (int i = 0; i < 2; i++) {
                ChClient *c = clients[i];
                ChLockOptions quick = { .timeout_ms = 2000 };
                uint64_t tok = 0, tok2 = 0;

                g_assert_cmpuint(stat_of(c, "unheard_errors"), ==, unheard);
                g_assert_cmpint(ch_lock(c, NULL, "U", NULL, &tok), ==, 0);
                g_assert_cmpint(ch_unlock_noreply(c, NULL, "U", tok), ==, 0);
                /* handled before this Lock: else it would be -EDEADLK (we hold it) */
                g_assert_cmpint(ch_lock(c, NULL, "U", &quick, &tok2), ==, 0);
                g_assert_cmpuint(tok2, >, tok);
                g_assert_cmpint(ch_unlock_noreply(c, NULL, "U", tok2), ==, 0);
                g_assert_cmpuint(stat_of(c, "unheard_errors"), ==, unheard);

                /* nobody hears these fail; the hub counts them */
                g_assert_cmpint(ch_unlock_noreply(c, NULL, "U", tok2), ==, 0);  /* NotLocked */
                g_assert_cmpint(ch_unlock_noreply(c, NULL, "", tok2), ==, -EINVAL); /* not sent */
                g_assert_cmpuint(stat_of(c, "unheard_errors"), ==, ++unheard);
                /* with_lock unlocks one-way: a body that lost the lock goes unnoticed but counted */
                g_assert_cmpint(ch_with_lock(c, NULL, "U", NULL, unlock_inside, NULL), ==, 5);
                g_assert_cmpuint(stat_of(c, "unheard_errors"), ==, ++unheard);
                /* ... unless asked to check */
                g_assert_cmpint(ch_with_lock(c, NULL, "U", &checked, unlock_inside, NULL), ==, -ENOLCK);
                g_assert_cmpuint(stat_of(c, "unheard_errors"), ==, unheard);
                /* a two-way failure is heard, not counted */
                g_assert_cmpint(ch_unlock(c, NULL, "U", tok2), ==, -ENOLCK);
                g_assert_cmpuint(stat_of(c, "unheard_errors"), ==, unheard);
        }
        ch_client_free(clients[1]);
        ch_client_free(clients[0]);
}


/* Runs hubctl ARGS with $CLUSTERHUB_PRIVATE_SOCKET = SOCKET; returns its exit status. */
static int run_hubctl(const char *socket, const char *const *args, char **ret_out, char **ret_err) {
        g_autofree char *hubctl = g_build_filename(g_getenv("MESON_BUILD_ROOT"), "cli", "hubctl", NULL);
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_auto(GStrv) env = worker_env(socket);
        g_autoptr(GError) error = NULL;
        int status = -1;

        g_ptr_array_add(argv, hubctl);
        for (size_t i = 0; args[i]; i++)
                g_ptr_array_add(argv, (char *) args[i]);
        g_ptr_array_add(argv, NULL);
        g_assert_true(g_spawn_sync(NULL, (char **) argv->pdata, env, G_SPAWN_DEFAULT, NULL, NULL, ret_out, ret_err, &status,
                                   &error));
        g_test_message("hubctl: %s", *ret_err);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* hubctl --transport= makes the library's choice. */
static void test_hubctl_transport(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *path = start_listening_hub(f);
        g_autofree char *missing = g_build_filename(f->bus.tmpdir, "nothing-here", NULL);
        g_autofree char *address = g_strdup_printf("--address=%s", f->bus.address);
        ChClient *c = client_new_transport(f, CH_TRANSPORT_BUS, NULL);
        char *out = NULL, *err = NULL;
        uint64_t accepted = stat_of(c, "connections_accepted");

        /* on the socket, when named */
        const char *set[] = { address, "--transport=private", "set", "k", "v", NULL };
        g_assert_cmpint(run_hubctl(path, set, &out, &err), ==, 0);
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        g_assert_cmpuint(stat_of(c, "connections_accepted"), ==, ++accepted);
        const char *get[] = { address, "get", "k", NULL }; /* auto */
        g_assert_cmpint(run_hubctl(path, get, &out, &err), ==, 0);
        g_assert_cmpstr(out, ==, "v\n");
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        g_assert_cmpuint(stat_of(c, "connections_accepted"), ==, ++accepted);
        /* on the bus, when asked */
        const char *get_bus[] = { address, "--transport=bus", "get", "k", NULL };
        g_assert_cmpint(run_hubctl(path, get_bus, &out, &err), ==, 0);
        g_assert_cmpstr(out, ==, "v\n");
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        g_assert_cmpuint(stat_of(c, "connections_accepted"), ==, accepted);
        /* a missing socket: auto uses the bus, private fails naming it (cannot reach: 4) */
        g_assert_cmpint(run_hubctl(missing, get, &out, &err), ==, 0);
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        const char *get_private[] = { address, "--transport=private", "get", "k", NULL };
        g_assert_cmpint(run_hubctl(missing, get_private, &out, &err), ==, 4);
        g_assert_nonnull(strstr(err, missing));
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        const char *bad[] = { address, "--transport=carrier-pigeon", "get", "k", NULL };
        g_assert_cmpint(run_hubctl(path, bad, &out, &err), ==, 2);
        g_assert_nonnull(strstr(err, "carrier-pigeon"));
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        ch_client_free(c);
}

int main(int argc, char **argv) {
        self_path = argv[0];
        if (argc >= 5 && g_str_equal(argv[1], "--worker"))
                return worker_main(argc, argv);
        if (argc == 3 && g_str_equal(argv[1], "--listen-foreign"))
                return foreign_main(argv[2]);
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/local-order", test_local_order);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/remote", test_remote);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/hub-restart", test_hub_restart);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/requests", test_requests);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/namespace-dropped", test_namespace_dropped);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/locks", test_locks);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/forged-events", test_forged_events);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/forged-events-worker", test_forged_events_worker);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/bus-lost", test_bus_lost);
        TH_ADD_BUS_TEST_WITH_HUB("/runtime/bus-lost-run", test_bus_lost_run);
        TH_ADD_BUS_TEST("/runtime/socket-and-bus", test_socket_and_bus);
        TH_ADD_BUS_TEST("/runtime/socket-hub-restart", test_socket_hub_restart);
        TH_ADD_BUS_TEST("/runtime/socket-gone", test_socket_gone);
        TH_ADD_BUS_TEST("/runtime/transport-choice", test_transport_choice);
        TH_ADD_BUS_TEST("/runtime/foreign-socket", test_foreign_socket);
        TH_ADD_BUS_TEST("/runtime/unlock-oneway", test_unlock_oneway);
        TH_ADD_BUS_TEST("/runtime/hubctl-transport", test_hubctl_transport);
        return g_test_run();
}
