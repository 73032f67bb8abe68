/* SPDX-License-Identifier: MIT */
/* Locks1 across hosts: two hubs (a, b) on two private buses share one redis-server of the test's
 * own (tests/redis/redis-fixture.h).  A lock taken on one hub blocks the other; waiters on both
 * hubs are served in FIFO order; fencing tokens increase across hubs; a holder's connection
 * closed releases at once; a hub killed with SIGKILL loses its locks after its lease
 * (--node-lease-ms=1500 here) and its queued waiters are skipped; Redis killed makes Lock and
 * TryLock answer BackendUnavailable (and fails the Lock calls waiting), a lock held before stays
 * held and is written back once Redis is back; junk written into the lock keys never crashes a
 * hub; shared holders on both hubs, a Lock's timeout, a lease outliving its holder.  Skipped, with the reason, when redis-server is missing. */
#include <errno.h>
#include <glib.h>
#include <hiredis/hiredis.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "harness.h"

#include "redis-fixture.h"
#include "rlocks-parse.h"

#define LOCKS_IFACE "org.clusterhub.Locks1"
#define NOT_LOCK_OWNER "org.clusterhub.Error.NotLockOwner"

/* A client connection to SIDE's bus. */
static sd_bus *client(Side *side) {
        sd_bus *c = NULL;

        g_assert_cmpint(th_connect(&c, side->bus.address), ==, 0);
        return c;
}

/* Lock(NAME) on C with timeout_ms TIMEOUT: 0 and *TOKEN, or the error's errno (ERR its name). */
static int lock(sd_bus *c, const char *name, uint32_t timeout, uint64_t *token, sd_bus_error *err) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(c, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "Lock", err, &reply, "sa{sv}", name, 1, "timeout_ms",
                               "u", timeout);
        if (r < 0)
                return r;
        g_assert_cmpint(sd_bus_message_read(reply, "t", token), >, 0);
        return 0;
}

/* TryLock(NAME): 1 acquired (*TOKEN), 0 busy, or the error's errno. */
static int try_lock(sd_bus *c, const char *name, uint64_t *token, sd_bus_error *err) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int acquired, r;
        uint64_t t;

        r = sd_bus_call_method(c, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "TryLock", err, &reply, "sa{sv}", name, 0);
        if (r < 0)
                return r;
        g_assert_cmpint(sd_bus_message_read(reply, "bt", &acquired, &t), >, 0);
        if (acquired && token)
                *token = t;
        return acquired ? 1 : 0;
}

/* TryLock(NAME, shared SHARED, lease_ms LEASE): 1 acquired (*TOKEN), 0 busy, or the errno. */
static int try_lock_opts(sd_bus *c, const char *name, bool shared, uint64_t lease, uint64_t *token, sd_bus_error *err) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int acquired, r;
        uint64_t t;

        r = sd_bus_call_method(c, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "TryLock", err, &reply, "sa{sv}", name, 2, "shared",
                               "b", (int) shared, "lease_ms", "t", lease);
        if (r < 0)
                return r;
        g_assert_cmpint(sd_bus_message_read(reply, "bt", &acquired, &t), >, 0);
        if (acquired && token)
                *token = t;
        return acquired ? 1 : 0;
}

static int unlock(sd_bus *c, const char *name, uint64_t token, sd_bus_error *err) {
        return sd_bus_call_method(c, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "Unlock", err, NULL, "st", name, token);
}

/* A Lock() call in flight: its reply lands here. */
typedef struct Pending {
        sd_bus *c;
        sd_bus_slot *slot;
        bool done;
        uint64_t token;
        char *error;
        int *order;     /* where to record the order of grants (may be NULL) */
        int *n_order;
        int id;
} Pending;

static int on_lock_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        p->done = true;
        if (e)
                p->error = g_strdup(e->name);
        else {
                g_assert_cmpint(sd_bus_message_read(m, "t", &p->token), >, 0);
                if (p->order)
                        p->order[(*p->n_order)++] = p->id;
        }
        return 0;
}

static void lock_async(Pending *p, sd_bus *c, const char *name, uint32_t timeout) {
        p->c = c;
        g_assert_cmpint(sd_bus_call_method_async(c, &p->slot, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "Lock", on_lock_reply, p,
                                                 "sa{sv}", name, 1, "timeout_ms", "u", timeout), >=, 0);
        g_assert_cmpint(sd_bus_flush(c), >=, 0);
}

static void pending_done(Pending *p) {
        sd_bus_slot_unref(p->slot);
        g_free(p->error);
}

/* Processes the connections in CS (N of them) until P is answered; false after WAIT_MS. */
static bool wait_pending(Pending *p, sd_bus **cs, size_t n) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while (!p->done) {
                if (g_get_monotonic_time() > end)
                        return false;
                for (size_t i = 0; i < n; i++)
                        while (sd_bus_process(cs[i], NULL) > 0)
                                ;
                if (!p->done)
                        (void) sd_bus_wait(p->c, 20 * 1000);
        }
        return true;
}

/* The rows of ListLocks on SIDE for NAME: their number; *HOLDER (may be NULL) gets the first
 * row's holder and *WAITERS its number of waiters. */
static unsigned list_rows(sd_bus *c, const char *name, char **holder, uint32_t *waiters) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        unsigned n = 0;

        g_assert_cmpint(sd_bus_call_method(c, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "ListLocks", NULL, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(sstua{sv})"), >, 0);
        while (sd_bus_message_enter_container(reply, 'r', "sstua{sv}") > 0) {
                const char *nm, *h;
                uint64_t token;
                uint32_t w;

                g_assert_cmpint(sd_bus_message_read(reply, "sstu", &nm, &h, &token, &w), >, 0);
                g_assert_cmpint(sd_bus_message_skip(reply, "a{sv}"), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                if (!g_str_equal(nm, name))
                        continue;
                if (n == 0 && holder)
                        *holder = g_strdup(h);
                if (n == 0 && waiters)
                        *waiters = w;
                n++;
        }
        return n;
}

/* Waits until ListLocks on C shows NAME's first holder as disconnected (its hub saw it go). */
static bool wait_disconnected(sd_bus *c, const char *name) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        for (;;) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *nm, *h, *k;
                uint64_t token;
                uint32_t w;
                int disc = 0;

                g_assert_cmpint(sd_bus_call_method(c, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "ListLocks", NULL, &reply, ""), >=, 0);
                g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(sstua{sv})"), >, 0);
                while (sd_bus_message_enter_container(reply, 'r', "sstua{sv}") > 0) {
                        g_assert_cmpint(sd_bus_message_read(reply, "sstu", &nm, &h, &token, &w), >, 0);
                        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
                        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                                g_assert_cmpint(sd_bus_message_read(reply, "s", &k), >, 0);
                                if (g_str_equal(k, "disconnected") && g_str_equal(nm, name))
                                        g_assert_cmpint(sd_bus_message_read(reply, "v", "b", &disc), >, 0);
                                else
                                        g_assert_cmpint(sd_bus_message_skip(reply, "v"), >=, 0);
                                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                        }
                        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                }
                if (disc)
                        return true;
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(20 * 1000);
        }
}

/* Waits until ListLocks on C says NAME has N waiters (they are in Redis's queue). */
static bool wait_waiters(sd_bus *c, const char *name, uint32_t n) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        for (;;) {
                uint32_t w = 0;

                if (list_rows(c, name, NULL, &w) > 0 && w == n)
                        return true;
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(20 * 1000);
        }
}

/* A lock taken on hub a blocks Lock on hub b until a unlocks; the tokens increase; ListLocks
 * on b names a's holder ID@NODE. */
static void test_blocks_across(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cb = NULL, *cb2 = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        g_autofree char *holder = NULL, *expected = NULL;
        const char *unique = NULL;
        uint64_t t1 = 0, t2 = 0;
        Pending p = {};

        if (f->skipped)
                return;
        if (GPOINTER_TO_UINT(data) & VIA_SOCKET) {
                /* the holder on a's private socket, the waiter on b's */
                g_autofree char *pa = th_hub_socket_path(&f->a.bus), *pb = th_hub_socket_path(&f->b.bus);
                g_assert_cmpint(th_connect_socket(&ca, pa), ==, 0);
                g_assert_cmpint(th_connect_socket(&cb, pb), ==, 0);
        } else {
                ca = client(&f->a);
                cb = client(&f->b);
        }
        cb2 = client(&f->b);
        g_assert_cmpint(lock(ca, "job", 5000, &t1, NULL), ==, 0);
        g_assert_cmpint(try_lock(cb2, "job", NULL, NULL), ==, 0);
        g_assert_cmpuint(list_rows(cb2, "job", &holder, NULL), ==, 1);
        g_assert_cmpint(sd_bus_get_unique_name(ca, &unique), >=, 0);
        expected = g_strdup_printf("%s@a", unique);
        g_assert_cmpstr(holder, ==, expected);

        lock_async(&p, cb, "job", 20000);
        g_assert_true(wait_waiters(cb2, "job", 1));
        g_assert_false(p.done);
        /* b's caller cannot unlock a's hold, even with its token */
        g_assert_cmpint(unlock(cb2, "job", t1, &err), <, 0);
        g_assert_cmpstr(err.name, ==, NOT_LOCK_OWNER);

        g_assert_cmpint(unlock(ca, "job", t1, NULL), >=, 0);
        g_assert_true(wait_pending(&p, (sd_bus *[]) { cb }, 1));
        g_assert_null(p.error);
        t2 = p.token;
        g_assert_cmpuint(t2, >, t1);
        g_assert_cmpint(unlock(cb, "job", t2, NULL), >=, 0);
        pending_done(&p);
}

/* Tokens strictly increase whichever hub grants. */
static void test_tokens_increase(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cb = NULL;
        uint64_t last = 0;

        if (f->skipped)
                return;
        ca = client(&f->a);
        cb = client(&f->b);
        for (unsigned i = 0; i < 20; i++) {
                sd_bus *c = i % 3 == 0 ? cb : ca;
                const char *name = i % 2 ? "t1" : "t2";
                uint64_t t = 0;

                g_assert_cmpint(try_lock(c, name, &t, NULL), ==, 1);
                g_assert_cmpuint(t, >, last);
                last = t;
                g_assert_cmpint(unlock(c, name, t, NULL), >=, 0);
        }
}

/* Three waiters on two hubs are granted in the order they queued. */
static void test_fifo(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *h = NULL, *w1 = NULL, *w2 = NULL, *w3 = NULL;
        Pending p[3] = {};
        int order[3], n_order = 0;
        sd_bus *ws[3];
        uint64_t t = 0, last;

        if (f->skipped)
                return;
        h = client(&f->a);
        w1 = client(&f->b);
        w2 = client(&f->a);
        w3 = client(&f->b);
        ws[0] = w1;
        ws[1] = w2;
        ws[2] = w3;
        g_assert_cmpint(lock(h, "fifo", 5000, &t, NULL), ==, 0);
        last = t;
        for (int i = 0; i < 3; i++) {
                p[i].order = order;
                p[i].n_order = &n_order;
                p[i].id = i;
                lock_async(&p[i], ws[i], "fifo", 25000);
                g_assert_true(wait_waiters(h, "fifo", (uint32_t) i + 1));
        }
        g_assert_cmpint(unlock(h, "fifo", t, NULL), >=, 0);
        for (int i = 0; i < 3; i++) {
                g_assert_true(wait_pending(&p[i], ws, 3));
                g_assert_null(p[i].error);
                g_assert_cmpint(n_order, ==, i + 1);
                g_assert_cmpint(order[i], ==, i);
                g_assert_cmpuint(p[i].token, >, last);
                last = p[i].token;
                g_assert_cmpint(unlock(ws[i], "fifo", p[i].token, NULL), >=, 0);
        }
        for (int i = 0; i < 3; i++)
                pending_done(&p[i]);
}

/* The holder's connection closes: the waiter on the other hub gets the lock from a's release,
 * not from the end of a lease (the hubs' lease is 60 s here, longer than the wait allowed). */
static void setup_long_lease(Fixture *f, gconstpointer data) {
        f->hub_args[0] = "--node-lease-ms=60000";
        fixture_setup(f, data);
}

/* Names and holders in Redis that are not UTF-8 (D-Bus strings must be): ListLocks leaves them
 * out and answers (it answered nothing before: its reply could not be built), with a timeout of
 * its own well under the bus's default. */
static void test_hostile_utf8(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        g_autofree char *record = NULL;
        redisContext *rc;
        redisReply *hub;
        uint64_t t = 0;

        if (f->skipped)
                return;
        ca = client(&f->a);
        /* a live hold, so that the hubs hash has a live instance to forge a holder with */
        g_assert_cmpint(try_lock(ca, "real", &t, NULL), ==, 1);
        rc = redisConnectUnix(f->sock);
        g_assert_true(rc && !rc->err);
        hub = redisCommand(rc, "HKEYS clusterhub:{default}:lock:hubs");
        g_assert_true(hub && hub->type == REDIS_REPLY_ARRAY && hub->elements >= 1);
        record = g_strdup_printf("%s\tn\xff\t1\tX\t0\th\xfe", hub->element[0]->str);
        freeReplyObject(hub);
        freeReplyObject(redisCommand(rc, "RPUSH clusterhub:{default}:lock:q:bad\xff junk"));
        freeReplyObject(redisCommand(rc, "HSET clusterhub:{default}:lock:h:bad2 1 %s", record));
        freeReplyObject(redisCommand(rc, "SADD clusterhub:{default}:lock:names bad\xff bad2"));
        redisFree(rc);

        g_assert_cmpint(sd_bus_message_new_method_call(ca, &m, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "ListLocks"), >=, 0);
        g_assert_cmpint(sd_bus_call(ca, m, 10 * 1000 * 1000, &e, &reply), >=, 0);
        g_assert_cmpuint(list_rows(ca, "real", NULL, NULL), ==, 1);
        g_assert_cmpint(unlock(ca, "real", t, NULL), >=, 0);
}

/* The link drops while a grant script for a waiting Lock is on its way: Redis holds the scripts
 * (CLIENT PAUSE WRITE), then the hubs' subscription connections are killed, so the hub closes
 * its link with the script unanswered.  The waiter fails with BackendUnavailable, and the
 * script's own failure, heard after, finds its lock still there (it had been freed: a use after
 * free under ASan, which the Redis killed in redis-down hit now and then). */
static void test_drop_while_polling(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *cb = NULL, *ca2 = NULL;
        uint64_t t = 0, scripts;
        redisContext *rc;
        Pending p = {};

        if (f->skipped)
                return;
        cb = client(&f->b); /* the holder on b: on a the lock has nothing but the waiter */
        ca2 = client(&f->a);
        g_assert_cmpint(lock(cb, "stop", 5000, &t, NULL), ==, 0);
        lock_async(&p, ca2, "stop", 60000);
        g_assert_true(wait_waiters(cb, "stop", 1));
        rc = redisConnectUnix(f->sock);
        g_assert_true(rc && !rc->err);
        freeReplyObject(redisCommand(rc, "CLIENT PAUSE 4000 WRITE"));
        /* the next retry (every lease/3) sends a grant script that Redis holds */
        scripts = stat_of(&f->a, "backend_lock_scripts");
        g_assert_true(wait_stat_at_least(&f->a, "backend_lock_scripts", scripts + 1));
        freeReplyObject(redisCommand(rc, "CLIENT KILL TYPE pubsub"));
        g_assert_true(wait_connected(&f->a, false) || stat_of(&f->a, "backend_reconnects") > 0);
        g_assert_true(wait_pending(&p, &ca2, 1));
        g_assert_cmpstr(p.error, ==, BACKEND_UNAVAILABLE);
        pending_done(&p);
        freeReplyObject(redisCommand(rc, "CLIENT UNPAUSE"));
        redisFree(rc);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_cmpint(unlock(cb, "stop", t, NULL), >=, 0);
}

static void setup_far_lease(Fixture *f, gconstpointer data) {
        f->hub_args[0] = "--max-lease-ms=100000000000000000";
        fixture_setup(f, data);
}

/* A lease whose end in ms has more digits than Lua prints exactly (1e16 ms from now) is still a
 * hold: the scripts write its deadline in digits (they wrote '1.0000017e+16', which the next
 * script of any hub did not read as a record, and dropped: b got the lock). */
static void test_far_lease(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cb = NULL;
        uint64_t t = 0;
        uint32_t waiters = 0;
        g_autofree char *holder = NULL;

        if (f->skipped)
                return;
        ca = client(&f->a);
        cb = client(&f->b);
        g_assert_cmpint(try_lock_opts(ca, "far", false, UINT64_C(10000000000000000), &t, NULL), ==, 1);
        g_assert_cmpint(try_lock(cb, "far", NULL, NULL), ==, 0);
        g_assert_cmpuint(list_rows(cb, "far", &holder, &waiters), ==, 1);
        g_assert_true(g_str_has_suffix(holder, "@a"));
        g_assert_cmpint(unlock(ca, "far", t, NULL), >=, 0);
        g_assert_cmpint(try_lock(cb, "far", &t, NULL), ==, 1);
}

static void test_holder_gone(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cb = NULL;
        uint64_t t = 0;
        Pending p = {};

        if (f->skipped)
                return;
        ca = client(&f->a);
        cb = client(&f->b);
        g_assert_cmpint(lock(ca, "gone", 5000, &t, NULL), ==, 0);
        lock_async(&p, cb, "gone", 25000);
        g_assert_true(wait_waiters(cb, "gone", 1));
        gint64 t0 = g_get_monotonic_time();
        ca = sd_bus_flush_close_unref(ca);
        g_assert_true(wait_pending(&p, (sd_bus *[]) { cb }, 1));
        g_assert_null(p.error);
        g_assert_cmpuint(p.token, >, t);
        g_test_message("holder's connection closed on a -> waiter on b granted: %.1f ms",
                       (g_get_monotonic_time() - t0) / 1000.0);
        pending_done(&p);
}

/* Hub a killed with SIGKILL while it holds a lock and has a waiter queued: the waiter on b,
 * queued behind a's, gets the lock once a's lease has ended. */
static void test_hub_killed(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *ca2 = NULL, *cb = NULL;
        uint64_t t = 0;
        Pending pa = {}, pb = {};

        if (f->skipped)
                return;
        ca = client(&f->a);
        ca2 = client(&f->a);
        cb = client(&f->b);
        g_assert_cmpint(lock(ca, "k", 5000, &t, NULL), ==, 0);
        lock_async(&pa, ca2, "k", 25000);
        g_assert_true(wait_waiters(cb, "k", 1));
        lock_async(&pb, cb, "k", 25000);
        g_assert_true(wait_waiters(cb, "k", 2));

        gint64 t0 = g_get_monotonic_time();
        g_assert_cmpint(th_proc_stop(&f->a.hub.proc, SIGKILL, 10000), !=, -1);
        g_assert_true(wait_pending(&pb, (sd_bus *[]) { cb }, 1));
        g_assert_null(pb.error);
        g_assert_cmpuint(pb.token, >, t);
        g_test_message("kill -9 of hub a (holder + a waiter there) -> waiter on b granted: %.1f ms (lease 1500 ms)",
                       (g_get_monotonic_time() - t0) / 1000.0);
        g_assert_cmpint(unlock(cb, "k", pb.token, NULL), >=, 0);
        pending_done(&pa);
        pending_done(&pb);
}

/* Redis killed: Lock and TryLock answer BackendUnavailable at once; a lock held before stays
 * held by its holder; Redis back (empty): the hub writes its hold again, so the other hub
 * still cannot take it, and tokens keep increasing. */
static void test_redis_down(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cb = NULL;
        uint64_t held = 0, t = 0;
        Pending p = {};

        if (f->skipped)
                return;
        ca = client(&f->a);
        cb = client(&f->b);
        g_assert_cmpint(lock(ca, "keep", 5000, &held, NULL), ==, 0);
        lock_async(&p, cb, "keep", 60000);
        g_assert_true(wait_waiters(ca, "keep", 1));

        g_assert_cmpint(th_proc_stop(&f->redis, SIGKILL, 10000), !=, -1);
        th_proc_clear(&f->redis);
        f->redis = (ThProc) TH_PROC_NULL;
        g_assert_true(wait_connected(&f->a, false));
        g_assert_true(wait_connected(&f->b, false));
        /* the waiting Lock fails with the link (its place in the queue would not last) */
        g_assert_true(wait_pending(&p, (sd_bus *[]) { cb }, 1));
        g_assert_cmpstr(p.error, ==, BACKEND_UNAVAILABLE);
        pending_done(&p);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e1 = SD_BUS_ERROR_NULL, e2 = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e3 = SD_BUS_ERROR_NULL;

                g_assert_cmpint(lock(cb, "other", 60000, &t, &e1), <, 0);
                g_assert_cmpstr(e1.name, ==, BACKEND_UNAVAILABLE);
                g_assert_cmpint(try_lock(cb, "other", &t, &e2), <, 0);
                g_assert_cmpstr(e2.name, ==, BACKEND_UNAVAILABLE);
                g_assert_cmpint(unlock(ca, "keep", held, &e3), <, 0);
                g_assert_cmpstr(e3.name, ==, BACKEND_UNAVAILABLE);
        }

        redis_start(f);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_true(wait_connected(&f->b, true));
        /* a's hold is back in Redis once a has reconciled: b cannot take it */
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
        while (list_rows(cb, "keep", NULL, NULL) == 0) {
                g_assert_true(g_get_monotonic_time() < end);
                g_usleep(20 * 1000);
        }
        g_assert_cmpint(try_lock(cb, "keep", NULL, NULL), ==, 0);
        g_assert_cmpint(unlock(ca, "keep", held, NULL), >=, 0);
        g_assert_cmpint(try_lock(cb, "keep", &t, NULL), ==, 1);
        g_assert_cmpuint(t, >, held); /* the counter Redis lost starts again above the clock */
        g_assert_cmpint(unlock(cb, "keep", t, NULL), >=, 0);
}

/* Junk in every lock key: the hubs answer (an error is fine) and keep running; once the keys
 * are cleared, locks work again. */
static void test_hostile(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cb = NULL;
        redisContext *rc;
        uint64_t t = 0;
        const char **junk[] = {
                (const char *[]) { "HSET", "clusterhub:{default}:lock:h:evil", "1", "zz\tnot a record", NULL },
                (const char *[]) { "HSET", "clusterhub:{default}:lock:h:evil", "99999999999999999999999", "0123456789abcdef\tn\t1\tX\t0\tx", NULL },
                (const char *[]) { "RPUSH", "clusterhub:{default}:lock:q:evil", "garbage", "\t\t\t", "0123456789abcdef\t1\tX\t0\tghost", NULL },
                (const char *[]) { "HSET", "clusterhub:{default}:lock:hubs", "0123456789abcdef", "notanumber", NULL },
                (const char *[]) { "SADD", "clusterhub:{default}:lock:names", "evil", "ghost", NULL },
                (const char *[]) { "PUBLISH", "clusterhub:locks:default", "evil", NULL },
                (const char *[]) { "PUBLISH", "clusterhub:locks:", "", NULL },
        };

        if (f->skipped)
                return;
        ca = client(&f->a);
        cb = client(&f->b);
        rc = redisConnectUnix(f->sock);
        g_assert_true(rc && !rc->err);
        for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
                int argc = 0;
                while (junk[i][argc])
                        argc++;
                freeReplyObject(redisCommandArgv(rc, argc, junk[i], NULL));
        }
        /* junk records and entries are dropped: the lock is free */
        g_assert_cmpint(try_lock(ca, "evil", &t, NULL), ==, 1);
        g_assert_cmpint(unlock(ca, "evil", t, NULL), >=, 0);
        (void) list_rows(cb, "evil", NULL, NULL);

        /* keys of the wrong type, a fence that is no number: refused, the hubs stay up */
        freeReplyObject(redisCommand(rc, "SET clusterhub:{default}:lock:fence notanumber"));
        freeReplyObject(redisCommand(rc, "SET clusterhub:{default}:lock:h:w x"));
        freeReplyObject(redisCommand(rc, "SET clusterhub:{default}:lock:q:w x"));
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e1 = SD_BUS_ERROR_NULL, e2 = SD_BUS_ERROR_NULL;
                g_assert_cmpint(try_lock(ca, "evil", &t, &e1), <, 0);
                g_assert_cmpstr(e1.name, ==, BACKEND_UNAVAILABLE);
                g_assert_cmpint(lock(cb, "w", 2000, &t, &e2), <, 0);
                g_assert_cmpstr(e2.name, ==, BACKEND_UNAVAILABLE);
        }
        freeReplyObject(redisCommand(rc, "SET clusterhub:{default}:lock:names x"));
        freeReplyObject(redisCommand(rc, "SET clusterhub:{default}:lock:hubs x"));
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                g_assert_cmpint(sd_bus_call_method(cb, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "ListLocks", &e, &reply, ""), <, 0);
                g_assert_cmpstr(e.name, ==, BACKEND_UNAVAILABLE);
        }
        freeReplyObject(redisCommand(rc, "DEL clusterhub:{default}:lock:fence clusterhub:{default}:lock:h:w "
                                         "clusterhub:{default}:lock:q:w clusterhub:{default}:lock:names "
                                         "clusterhub:{default}:lock:hubs"));
        redisFree(rc);
        g_assert_cmpuint(stat_of(&f->a, "backend_connected"), ==, 1);
        g_assert_cmpuint(stat_of(&f->b, "backend_connected"), ==, 1);
        g_assert_cmpint(try_lock(cb, "w", &t, NULL), ==, 1);
        g_assert_cmpint(unlock(cb, "w", t, NULL), >=, 0);
}

/* Shared holders on both hubs at once; an exclusive Lock waits for them, and its timeout takes
 * it out of the queue, so that the lock is free once the readers are gone. */
static void test_shared_and_timeout(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cb = NULL, *cb2 = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        uint64_t ta = 0, tb = 0, t = 0;

        if (f->skipped)
                return;
        ca = client(&f->a);
        cb = client(&f->b);
        cb2 = client(&f->b);
        g_assert_cmpint(try_lock_opts(ca, "cfg", true, 0, &ta, NULL), ==, 1);
        g_assert_cmpint(try_lock_opts(cb, "cfg", true, 0, &tb, NULL), ==, 1);
        g_assert_cmpuint(tb, >, ta);
        g_assert_cmpuint(list_rows(cb2, "cfg", NULL, NULL), ==, 2);
        g_assert_cmpint(try_lock(cb2, "cfg", NULL, NULL), ==, 0);
        g_assert_cmpint(lock(cb2, "cfg", 300, &t, &err), <, 0);
        g_assert_cmpstr(err.name, ==, "org.clusterhub.Error.Timeout");
        /* a reader asking for the writer's lock on its own hub: Deadlock, not a wait */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                g_assert_cmpint(lock(ca, "cfg", 300, &t, &e), <, 0);
                g_assert_cmpstr(e.name, ==, "org.clusterhub.Error.Deadlock");
        }
        g_assert_cmpint(unlock(ca, "cfg", ta, NULL), >=, 0);
        g_assert_cmpint(unlock(cb, "cfg", tb, NULL), >=, 0);
        /* the timed-out request left the queue: nobody waits, TryLock gets it */
        g_assert_cmpint(try_lock(cb2, "cfg", &t, NULL), ==, 1);
        g_assert_cmpuint(t, >, tb);
        g_assert_cmpint(unlock(cb2, "cfg", t, NULL), >=, 0);
}

/* A lock with a lease outlives its holder's connection (other hubs still see it held), and a
 * later connection of the same uid on the same hub refreshes and unlocks it; a caller on the
 * other hub cannot. */
static void test_lease(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *ca2 = NULL, *cb = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        uint64_t t = 0;

        if (f->skipped)
                return;
        ca = client(&f->a);
        ca2 = client(&f->a);
        cb = client(&f->b);
        g_assert_cmpint(try_lock_opts(ca, "deploy", false, 60000, &t, NULL), ==, 1);
        ca = sd_bus_flush_close_unref(ca);
        g_assert_true(wait_disconnected(ca2, "deploy"));
        g_assert_cmpint(try_lock(cb, "deploy", NULL, NULL), ==, 0);
        g_assert_cmpint(sd_bus_call_method(cb, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "Refresh", &err, NULL, "stt", "deploy", t,
                                           (uint64_t) 1000), <, 0);
        g_assert_cmpstr(err.name, ==, NOT_LOCK_OWNER);
        g_assert_cmpint(sd_bus_call_method(ca2, TH_HUB_NAME, NS_PATH, LOCKS_IFACE, "Refresh", NULL, NULL, "stt", "deploy", t,
                                           (uint64_t) 30000), >=, 0);
        g_assert_cmpint(unlock(ca2, "deploy", t, NULL), >=, 0);
        g_assert_cmpint(try_lock(cb, "deploy", &t, NULL), ==, 1);
        g_assert_cmpint(unlock(cb, "deploy", t, NULL), >=, 0);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                g_assert_cmpint(unlock(cb, "deploy", t, &e), <, 0);
                g_assert_cmpstr(e.name, ==, "org.clusterhub.Error.NotLocked");
        }

        /* a lease that ends lets the waiter on the other hub in; the old holder's Unlock then
         * answers NotLockOwner: the lock is held, under b's token */
        Pending p = {};
        uint64_t short_t = 0;
        g_assert_cmpint(try_lock_opts(ca2, "short", false, 300, &short_t, NULL), ==, 1);
        lock_async(&p, cb, "short", 25000);
        g_assert_true(wait_pending(&p, (sd_bus *[]) { cb }, 1));
        g_assert_null(p.error);
        g_assert_cmpuint(p.token, >, short_t);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                g_assert_cmpint(unlock(ca2, "short", short_t, &e), <, 0);
                g_assert_cmpstr(e.name, ==, NOT_LOCK_OWNER); /* held, under b's token now */
        }
        g_assert_cmpint(unlock(cb, "short", p.token, NULL), >=, 0);
        pending_done(&p);
}

/* -m perf: uncontended Lock+Unlock pairs through hub a, with --redis, and through a hub of the
 * same build without it. */
static double pairs_per_sec(sd_bus *c, unsigned n) {
        gint64 t0 = g_get_monotonic_time();

        for (unsigned i = 0; i < n; i++) {
                uint64_t t = 0;
                g_assert_cmpint(lock(c, "perf", 5000, &t, NULL), ==, 0);
                g_assert_cmpint(unlock(c, "perf", t, NULL), >=, 0);
        }
        return n / ((g_get_monotonic_time() - t0) / 1e6);
}

static void test_perf(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ca = NULL, *cl = NULL;
        ThBus bus = {};
        ThHub hub = { .proc = TH_PROC_NULL };
        const unsigned n = 3000;

        if (f->skipped)
                return;
        ca = client(&f->a);
        g_assert_true(th_bus_start(&bus, TH_BUS_DBUS_DAEMON));
        g_assert_cmpint(th_hub_spawn(&hub, bus.address, NULL), ==, 0);
        g_assert_cmpint(th_connect(&cl, bus.address), ==, 0);
        (void) pairs_per_sec(ca, 200);
        (void) pairs_per_sec(cl, 200);
        for (int round = 0; round < 3; round++) {
                double with = pairs_per_sec(ca, n), without = pairs_per_sec(cl, n);
                g_test_message("uncontended Lock+Unlock pairs/s through one hub: --redis %.0f, local %.0f (%.2fx)", with,
                               without, without / with);
        }
        cl = sd_bus_flush_close_unref(cl);
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
        th_bus_stop(&bus);
}

/* The logic: what the hub reads back from Redis (hostile) parses or is refused, never more. */
static void test_parse(void) {
        RLockRecord rec = {};
        uint64_t v = 0;
        char big[2000];
        const char *bad[] = {
                "",
                "0123456789abcdef\ta\t1\tX\t0",              /* five fields */
                "0123456789abcdefff\ta\t1\tX\t0\th",         /* instance too long */
                "012345678ABCDEF\ta\t1\tX\t0\th",            /* upper-case hex */
                "0123456789abcdef\ta\t1\tW\t0\th",           /* mode */
                "0123456789abcdef\ta\t1\tXX\t0\th",
                "0123456789abcdef\ta\t-1\tX\t0\th",          /* waiter */
                "0123456789abcdef\ta\t1\tX\t1e+15\th",       /* a deadline Lua printed as a float */
                "0123456789abcdef\ta\t1\tX\t99999999999999999999\th",
                "0123456789abcdef\ta\t1\tX\t0\th\tmore",    /* a tab in the holder */
                "0123456789abcdef\taaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\t1\tX\t0\th", /* node 65 */
        };

        const char *good = "0123456789abcdef\tweb1\t7\tS\t1796190585045\tw1";

        g_assert_cmpint(rlocks_parse_record(good, strlen(good), &rec), ==, 0);
        g_assert_cmphex(rec.instance, ==, 0x0123456789abcdefu);
        g_assert_cmpstr(rec.node, ==, "web1");
        g_assert_cmpuint(rec.wid, ==, 7);
        g_assert_true(rec.shared);
        g_assert_cmpuint(rec.deadline_ms, ==, 1796190585045u);
        g_assert_cmpstr(rec.holder, ==, "w1");
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                RLockRecord untouched = { .wid = 42 };
                g_assert_cmpint(rlocks_parse_record(bad[i], strlen(bad[i]), &untouched), ==, -EBADMSG);
                g_assert_cmpuint(untouched.wid, ==, 42);
        }
        g_assert_cmpint(rlocks_parse_record("a\0b\tn\t1\tX\t0\th", 14, &rec), ==, -EBADMSG);
        memset(big, 'a', sizeof(big));
        g_assert_cmpint(rlocks_parse_record(big, sizeof(big), &rec), ==, -EBADMSG);

        g_assert_cmpint(rlocks_parse_token("1796190555044895", 16, &v), ==, 0);
        g_assert_cmpuint(v, ==, 1796190555044895u);
        g_assert_cmpint(rlocks_parse_token("9223372036854775807", 19, &v), ==, 0);
        v = 5;
        g_assert_cmpint(rlocks_parse_token("9223372036854775808", 19, &v), ==, -EBADMSG); /* >= 2^63 */
        g_assert_cmpint(rlocks_parse_token("0", 1, &v), ==, -EBADMSG);
        g_assert_cmpint(rlocks_parse_token("", 0, &v), ==, -EBADMSG);
        g_assert_cmpint(rlocks_parse_token("12a", 3, &v), ==, -EBADMSG);
        g_assert_cmpint(rlocks_parse_token("1e+15", 5, &v), ==, -EBADMSG);
        g_assert_cmpint(rlocks_parse_token("12345678901234567890", 20, &v), ==, -EBADMSG);
        g_assert_cmpuint(v, ==, 5);
        g_assert_cmpint(rlocks_parse_u64("ff", 2, true, &v), ==, 0);
        g_assert_cmpuint(v, ==, 255);
        g_assert_cmpint(rlocks_parse_u64("ff", 2, false, &v), ==, -EBADMSG);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/redis-locks/parse", test_parse);
        g_test_add("/redis-locks/blocks-across", Fixture, NULL, fixture_setup, test_blocks_across, fixture_teardown);
        g_test_add("/redis-locks/blocks-across-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), fixture_setup,
                   test_blocks_across, fixture_teardown);
        g_test_add("/redis-locks/tokens-increase", Fixture, NULL, fixture_setup, test_tokens_increase, fixture_teardown);
        g_test_add("/redis-locks/fifo", Fixture, NULL, fixture_setup, test_fifo, fixture_teardown);
        g_test_add("/redis-locks/holder-gone", Fixture, NULL, setup_long_lease, test_holder_gone, fixture_teardown);
        g_test_add("/redis-locks/hub-killed", Fixture, NULL, fixture_setup, test_hub_killed, fixture_teardown);
        g_test_add("/redis-locks/redis-down", Fixture, NULL, fixture_setup, test_redis_down, fixture_teardown);
        g_test_add("/redis-locks/hostile", Fixture, NULL, fixture_setup, test_hostile, fixture_teardown);
        g_test_add("/redis-locks/shared-and-timeout", Fixture, NULL, fixture_setup, test_shared_and_timeout, fixture_teardown);
        g_test_add("/redis-locks/lease", Fixture, NULL, fixture_setup, test_lease, fixture_teardown);
        g_test_add("/redis-locks/hostile-utf8", Fixture, NULL, fixture_setup, test_hostile_utf8, fixture_teardown);
        g_test_add("/redis-locks/drop-while-polling", Fixture, NULL, fixture_setup, test_drop_while_polling, fixture_teardown);
        g_test_add("/redis-locks/far-lease", Fixture, NULL, setup_far_lease, test_far_lease, fixture_teardown);
        if (g_test_perf())
                g_test_add("/redis-locks/perf", Fixture, NULL, fixture_setup, test_perf, fixture_teardown);
        return g_test_run();
}
