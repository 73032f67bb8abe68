/* SPDX-License-Identifier: MIT */
/* Unit tests of the request machine (service/requests.c): forwarding to a server under
 * --max-handling-per-worker, the backlog and its hand-off, RequestAll's gathering, timeouts and
 * a server's death, driven without a bus: the ops below stand in for the glue and record what
 * the machine asks of it. */
#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "requests.h"

/* What the machine asked of the glue. */
static struct {
        unsigned sent;
        int send_error;                 /* the next send fails with it */
        GPtrArray *answers;             /* "name: message" of lone Requests' errors */
        unsigned gathered;
        Gather *last_gathered;
        unsigned left;                  /* left_namespace calls */
        unsigned calls_out;             /* calls sent and not freed */
} ops_log;

static int fake_send(Forward *f, ServerRef *s) {
        if (ops_log.send_error != 0) {
                int r = ops_log.send_error;
                ops_log.send_error = 0;
                return r;
        }
        f->call = g_strdup(s->server); /* freed by call_free: ASan sees a leak or a double free */
        ops_log.sent++;
        ops_log.calls_out++;
        return 0;
}

static void fake_call_free(void *call) {
        g_free(call);
        ops_log.calls_out--;
}

static void fake_fail(Forward *f, RequestError error, ServerRef *s, int errnum) {
        static const char *const names[] = {
                [REQUEST_ERROR_GONE] = "Gone",
                [REQUEST_ERROR_GONE_QUEUED] = "GoneQueued",
                [REQUEST_ERROR_BUSY] = "Busy",
                [REQUEST_ERROR_UNSENDABLE] = "Unsendable",
        };
        g_autofree char *msg = g_strdup_printf("%s %d", (const char *) s->server, errnum);
        forward_fail(f, names[error], msg);
}

static void fake_answer_error(Forward *f, const char *name, const char *message) {
        g_assert_nonnull(f->caller);
        g_ptr_array_add(ops_log.answers, g_strdup_printf("%s: %s", name, message));
}

static void fake_gathered(Gather *g) {
        ops_log.gathered++;
        ops_log.last_gathered = g;
}

static void fake_left_namespace(void *ns) {
        ops_log.left++;
}

static void fake_reply_free(void *reply) {
        g_free(reply);
}

static const char *fake_server_name(ServerRef *s) {
        return s->server;
}

static const RequestOps fake_ops = {
        .send = fake_send,
        .call_free = fake_call_free,
        .fail = fake_fail,
        .answer_error = fake_answer_error,
        .gathered = fake_gathered,
        .left_namespace = fake_left_namespace,
        .reply_free = fake_reply_free,
        .server_name = fake_server_name,
};

typedef struct Fixture {
        Limits limits;
        HubStats stats;
        RequestMachine m;
        ServeTable *table;
        ServerRef a, b, c;
        int ns;                         /* its address is the namespace */
        int caller;                     /* its address is every caller's pending call */
} Fixture;

static void fixture_init(Fixture *x, uint64_t max_handling, uint64_t max_backlog) {
        memset(&ops_log, 0, sizeof(ops_log));
        ops_log.answers = g_ptr_array_new_with_free_func(g_free);
        *x = (Fixture) { .a = { .server = "A" }, .b = { .server = "B" }, .c = { .server = "C" } };
        limits_init_default(&x->limits);
        x->limits.max_handling_per_worker = max_handling;
        x->limits.max_backlog_per_worker = max_backlog;
        x->m = (RequestMachine) { .ops = &fake_ops, .limits = &x->limits, .stats = &x->stats };
        g_assert_cmpint(serve_table_new(&x->table), ==, 0);
        g_assert_cmpint(serve_table_add(x->table, &x->a, "m"), ==, 0);
        g_assert_cmpint(serve_table_add(x->table, &x->b, "m"), ==, 0);
        g_assert_cmpint(serve_table_add(x->table, &x->c, "m"), ==, 0);
}

static void fixture_done(Fixture *x) {
        /* the servers leave: nothing may be left behind */
        server_gone(&x->a);
        server_gone(&x->b);
        server_gone(&x->c);
        serve_table_free(x->table);
        g_assert_cmpuint(ops_log.calls_out, ==, 0);
        g_ptr_array_unref(ops_log.answers);
}

/* A lone Request for S (ANY: without target). */
static Forward *request(Fixture *x, ServerRef *s, bool any) {
        Forward *f = NULL;

        g_assert_cmpint(forward_new(&x->m, &x->ns, x->table, "m", "caller", &f), ==, 0);
        f->caller = &x->caller;
        f->any = any;
        forward_submit_or_fail(f, s);
        return f;
}

/* S answered F (a lone Request): the glue passes the reply on and frees F. */
static void answered(Forward *f) {
        ServerRef *s = forward_call_ended(f);

        f->caller = NULL;
        forward_free(f);
        if (s)
                server_dispatch(s);
}

static void test_backlog_handoff(void) {
        Fixture x;
        Forward *f1, *f2, *f3;

        fixture_init(&x, 2, 1);
        f1 = request(&x, &x.a, false);
        f2 = request(&x, &x.a, false);
        g_assert_true(f1->out && f2->out);
        g_assert_cmpuint(x.a.n_handling, ==, 2);
        g_assert_cmpuint(x.stats.requests_forwarded, ==, 2);
        /* past the cap it waits in the backlog */
        f3 = request(&x, &x.a, false);
        g_assert_false(f3->out);
        g_assert_true(f3->handler == &x.a);
        g_assert_cmpuint(x.a.n_backlog, ==, 1);
        g_assert_cmpuint(x.stats.requests_backlogged, ==, 1);
        /* past the backlog it is refused, and that is all that happens to it */
        request(&x, &x.a, false);
        g_assert_cmpuint(ops_log.answers->len, ==, 1);
        g_assert_cmpstr(ops_log.answers->pdata[0], ==, "Busy: A 0");
        g_assert_cmpuint(x.stats.requests_refused_busy, ==, 1);
        g_assert_cmpuint(ops_log.left, ==, 1);

        /* A answers f2: the oldest in the backlog takes its place */
        answered(f2);
        g_assert_true(f3->out);
        g_assert_cmpuint(x.a.n_backlog, ==, 0);
        g_assert_cmpuint(x.a.n_handling, ==, 2);
        g_assert_cmpuint(ops_log.sent, ==, 3);
        /* a hand-off that cannot be sent fails that request, not the next */
        request(&x, &x.a, false);
        ops_log.send_error = -ECONNRESET;
        answered(f1);
        g_assert_cmpuint(ops_log.answers->len, ==, 2);
        g_autofree char *unsendable = g_strdup_printf("Unsendable: A %d", ECONNRESET);
        g_assert_cmpstr(ops_log.answers->pdata[1], ==, unsendable);
        answered(f3);
        g_assert_cmpuint(x.a.n_handling, ==, 0);
        fixture_done(&x);
}

static void test_round_robin_ready(void) {
        Fixture x;
        ServerRef *expected[] = { &x.a, &x.b, &x.c };
        Forward *f[4];

        fixture_init(&x, 1, 8);
        /* a Request without target goes to the next server under the cap, in turn */
        for (int i = 0; i < 3; i++) {
                ServerRef *s = serve_table_pick_ready(x.table, "m", x.limits.max_handling_per_worker);
                g_assert_true(s == expected[i]);
                f[i] = request(&x, s, true);
                g_assert_true(f[i]->out);
        }
        /* all at their cap: the one with the fewest waiting (A, next in turn) takes it, in its backlog */
        f[3] = request(&x, serve_table_pick_ready(x.table, "m", 1), true);
        g_assert_false(f[3]->out);
        g_assert_true(f[3]->handler == &x.a);
        g_assert_cmpuint(x.a.n_backlog, ==, 1);
        /* A has one waiting now: B and C, with none, come first */
        g_assert_true(serve_table_pick_ready(x.table, "m", 1) == &x.b);
        /* B answers, A dies: A's call out fails with WorkerGone, and the request that waited
         * for A, having no target, is handed to B, the one with room */
        answered(f[1]);
        server_gone(&x.a);
        g_assert_cmpuint(ops_log.answers->len, ==, 1);
        g_assert_cmpstr(ops_log.answers->pdata[0], ==, "Gone: A 0");
        g_assert_true(f[3]->out);
        g_assert_true(f[3]->handler == &x.b);
        fixture_done(&x);
}

static void test_server_death(void) {
        Fixture x;
        Forward *out, *queued_any;

        fixture_init(&x, 1, 8);
        out = request(&x, &x.a, false);
        request(&x, &x.a, false);
        queued_any = request(&x, &x.a, true);
        g_assert_true(out->out);
        g_assert_cmpuint(x.a.n_backlog, ==, 2);
        server_gone(&x.a);
        /* the call out: WorkerGone; the backlog with a target: WorkerGone too; without: B */
        g_assert_cmpuint(ops_log.answers->len, ==, 2);
        g_assert_cmpstr(ops_log.answers->pdata[0], ==, "Gone: A 0");
        g_assert_cmpstr(ops_log.answers->pdata[1], ==, "GoneQueued: A 0");
        g_assert_true(queued_any->out);
        g_assert_true(queued_any->handler == &x.b);
        g_assert_cmpuint(x.a.n_handling + x.a.n_backlog, ==, 0);
        g_assert_false(serve_table_serves(x.table, &x.a, "m"));
        g_assert_cmpuint(ops_log.left, ==, 2);
        fixture_done(&x);
}

static void test_timeout_orphan(void) {
        Fixture x;
        Forward *f, *g;

        fixture_init(&x, 1, 8);
        f = request(&x, &x.a, false);
        g = request(&x, &x.a, false);
        /* the caller's deadline passes (the glue answers Timeout): the call out stays counted */
        f->caller = NULL;
        forward_abandon(f);
        g_assert_null(f->ns);
        g_assert_cmpuint(ops_log.left, ==, 1);
        g_assert_cmpuint(x.a.n_handling, ==, 1);
        g_assert_false(g->out);
        /* the waiting one times out too: it simply leaves the backlog */
        g->caller = NULL;
        forward_abandon(g);
        g_assert_cmpuint(x.a.n_backlog, ==, 0);
        g_assert_cmpuint(ops_log.left, ==, 2);
        /* the orphan's answer frees its place */
        g_assert_true(forward_call_ended(f) == &x.a);
        forward_free(f);
        g_assert_cmpuint(x.a.n_handling, ==, 0);
        g_assert_cmpuint(ops_log.answers->len, ==, 0);
        fixture_done(&x);
}

static Gather *request_all(Fixture *x, Forward **ret) {
        ServerRef *servers[] = { &x->a, &x->b, &x->c };
        Gather *g = NULL;

        g_assert_cmpint(gather_new(&x->m, &x->caller, &g), ==, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(servers); i++) {
                g_assert_cmpint(forward_new(&x->m, &x->ns, x->table, "m", "caller", &ret[i]), ==, 0);
                gather_add(g, ret[i]);
                forward_submit_or_fail(ret[i], servers[i]);
        }
        gather_started(g);
        return g;
}

static void test_gather(void) {
        Fixture x;
        Forward *f[3];
        Gather *g;

        fixture_init(&x, 4, 8);
        g = request_all(&x, f);
        g_assert_cmpuint(g->n_pending, ==, 3);
        /* A answers, B fails, C dies: one reply, two errors, and then it is complete */
        (void) forward_call_ended(f[0]);
        forward_gathered(f[0], g_strdup("reply of A"));
        (void) forward_call_ended(f[1]);
        forward_fail(f[1], "org.example.Error", "no");
        g_assert_cmpuint(ops_log.gathered, ==, 0);
        server_gone(&x.c);
        g_assert_cmpuint(ops_log.gathered, ==, 1);
        g_assert_true(ops_log.last_gathered == g);
        g_assert_cmpuint(g->n_replies, ==, 1);
        g_assert_cmpstr(g->reply_keys[0], ==, "A");
        g_assert_cmpstr(g->replies[0], ==, "reply of A");
        g_assert_cmpuint(g->n_errors, ==, 2);
        g_assert_cmpstr(g->error_keys[0], ==, "B");
        g_assert_cmpstr(g->error_values[0], ==, "org.example.Error: no");
        g_assert_cmpstr(g->error_keys[1], ==, "C");
        g_assert_cmpstr(g->error_values[1], ==, "Gone: C 0");
        /* no lone caller was answered: the gather's caller gets it all at once */
        g_assert_cmpuint(ops_log.answers->len, ==, 0);
        gather_free(g);
        g_assert_cmpuint(ops_log.left, ==, 3);

        /* a server that cannot be reached at the start does not finish it early */
        ops_log.send_error = -EIO;
        g = request_all(&x, f);
        g_assert_cmpuint(ops_log.gathered, ==, 1);
        g_assert_cmpuint(g->n_errors, ==, 1);
        g_assert_cmpstr(g->error_values[0], ==, "Unsendable: A 5");
        g_assert_cmpuint(g->n_pending, ==, 2);
        gather_free(g);
        /* the calls out stay, as orphans, until their servers answer or leave */
        g_assert_cmpuint(x.b.n_handling, ==, 1);
        fixture_done(&x);
}

static void test_gather_timeout(void) {
        Fixture x;
        Forward *f[3];
        Gather *g;

        fixture_init(&x, 1, 8);
        /* B is busy: its share waits in its backlog */
        request(&x, &x.b, false);
        g = request_all(&x, f);
        g_assert_true(f[0]->out && !f[1]->out && f[2]->out);
        (void) forward_call_ended(f[2]);
        forward_gathered(f[2], g_strdup("reply of C"));
        /* the deadline: A's call out and B's waiting share become errors of their kind */
        gather_timeout(g, "out", "queued");
        g_assert_cmpuint(g->n_pending, ==, 0);
        g_assert_cmpuint(g->n_errors, ==, 2);
        g_assert_cmpstr(g->error_keys[0], ==, "A");
        g_assert_cmpstr(g->error_values[0], ==, "out");
        g_assert_cmpstr(g->error_keys[1], ==, "B");
        g_assert_cmpstr(g->error_values[1], ==, "queued");
        g_assert_cmpuint(ops_log.gathered, ==, 0);
        gather_free(g);
        /* A's call is an orphan, still counted; B's backlog is empty */
        g_assert_cmpuint(x.a.n_handling, ==, 1);
        g_assert_cmpuint(x.b.n_backlog, ==, 0);
        fixture_done(&x);
}

static void test_namespace_dropped(void) {
        Fixture x;
        int other_ns;
        Forward *f, *h = NULL;

        fixture_init(&x, 1, 8);
        f = request(&x, &x.a, false);
        request(&x, &x.a, false);
        g_assert_cmpint(forward_new(&x.m, &other_ns, x.table, "m", "caller", &h), ==, 0);
        h->caller = &x.caller;
        forward_submit_or_fail(h, &x.a);
        server_fail_namespace(&x.a, &x.ns, "Dropped", "ns");
        g_assert_cmpuint(ops_log.answers->len, ==, 2);
        /* the call out stays counted as an orphan; the other namespace's request stays */
        g_assert_cmpuint(x.a.n_handling, ==, 1);
        g_assert_null(f->ns);
        g_assert_cmpuint(x.a.n_backlog, ==, 1);
        g_assert_true(x.a.backlog.first == h);
        fixture_done(&x);
}

static void test_wait_for_target(void) {
        RequestWaits waits = {};
        RequestWaitList ready = {};
        RequestWait *w[4];
        ServeTable *t = NULL;
        ServerRef one = { .server = "one" };

        g_assert_cmpint(serve_table_new(&t), ==, 0);
        g_assert_cmpint(request_wait_new(&waits, "one", "m", 100, (void *) 1, &w[0]), ==, 0);
        g_assert_cmpint(request_wait_new(&waits, "two", "m", 100, (void *) 2, &w[1]), ==, 0);
        g_assert_cmpint(request_wait_new(&waits, "one", "x", 100, (void *) 3, &w[2]), ==, 0);
        g_assert_cmpint(request_wait_new(&waits, "one", "m", 100, (void *) 4, &w[3]), ==, 0);
        g_assert_cmpuint(waits.n, ==, 4);

        /* worker one registers but serves nothing yet: all keep waiting */
        g_assert_cmpuint(request_waits_take_ready(&waits, "one", t, &one, &ready), ==, 0);
        /* it serves m: its two requests for m go, in order; x and worker two's stay */
        g_assert_cmpint(serve_table_add(t, &one, "m"), ==, 0);
        g_assert_cmpuint(request_waits_take_ready(&waits, "one", t, &one, &ready), ==, 2);
        g_assert_true(ready.first == w[0]);
        g_assert_true(ready.last == w[3]);
        g_assert_cmpuint(waits.n, ==, 2);
        while (ready.first) {
                RequestWait *r = ready.first;
                LIST_REMOVE(by_waits, ready, r);
                request_wait_free(r);
        }
        /* a wait whose caller's deadline passed just leaves */
        request_wait_free(w[2]);
        g_assert_cmpuint(waits.n, ==, 1);
        g_assert_true(waits.items.first == w[1]);
        request_wait_free(w[1]);
        g_assert_cmpuint(waits.n, ==, 0);
        serve_table_free(t);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/requests/backlog-handoff", test_backlog_handoff);
        g_test_add_func("/requests/round-robin-ready", test_round_robin_ready);
        g_test_add_func("/requests/server-death", test_server_death);
        g_test_add_func("/requests/timeout-orphan", test_timeout_orphan);
        g_test_add_func("/requests/gather", test_gather);
        g_test_add_func("/requests/gather-timeout", test_gather_timeout);
        g_test_add_func("/requests/namespace-dropped", test_namespace_dropped);
        g_test_add_func("/requests/wait-for-target", test_wait_for_target);
        return g_test_run();
}
