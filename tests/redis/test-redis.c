/* SPDX-License-Identifier: MIT */
/* Several hosts through one Redis: a redis-server of our own on a Unix socket in a temp dir, two
 * private buses, a hub on each (--node-name=a, --node-name=b), and events crossing between
 * them (subscribers on the bus, and on the hubs' private sockets); then Redis killed (Emit answers BackendUnavailable, this host's subscribers still get
 * the event) and restarted (the hubs reconnect, subscribe again, and events cross again).
 * The worker list too: a worker of one hub is listed on the other as ID@NODE with
 * WorkerJoined/WorkerLeft; a hub killed drops out after its lease (--node-lease-ms=1500 here);
 * a Redis restart rebuilds the lists; junk written into the registry's keys is ignored.
 * Skipped, with the reason, only when redis-server is not installed. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <hiredis/hiredis.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "harness.h"

#include "redis-fixture.h"

/* An Emit on one hub reaches the other's subscribers with the origin ID@NODE, both ways; the
 * emitting hub's own subscribers get it once. */
static void check_crossing(Fixture *f, const char *tag) {
        g_autofree char *ab = g_strdup_printf("ab.%s", tag), *ba = g_strdup_printf("ba.%s", tag);
        g_autofree char *origin_a = expected_origin(&f->a), *origin_b = expected_origin(&f->b);
        guint ab_on_a = count_seen(&f->a, ab), ab_on_b = count_seen(&f->b, ab);
        guint ba_on_a = count_seen(&f->a, ba);
        Seen *s;

        g_assert_cmpint(emit(&f->a, ab, "from a", NULL), >=, 0);
        g_assert_true(wait_seen(f, &f->b, ab, ab_on_b + 1));
        s = find_seen(&f->b, ab);
        g_assert_cmpstr(s->origin, ==, origin_a);
        g_assert_cmpstr(s->payload, ==, "from a");

        /* b answers only now: its event reaches a through Redis after a's own publication of
         * AB came back to a (Redis sends to each subscriber in publication order), so a second
         * AB on a would be there by the time BA is */
        g_assert_cmpint(emit(&f->b, ba, "from b", NULL), >=, 0);
        g_assert_true(wait_seen(f, &f->a, ba, ba_on_a + 1));
        s = find_seen(&f->a, ba);
        g_assert_cmpstr(s->origin, ==, origin_b);
        g_assert_cmpstr(s->payload, ==, "from b");
        g_assert_cmpuint(count_seen(&f->a, ab), ==, ab_on_a + 1);
        s = find_seen(&f->a, ab);
        g_assert_true(g_str_has_prefix(s->origin, ":")); /* local: no @node */
        g_assert_null(strchr(s->origin, '@'));
}

static void test_events_cross(Fixture *f, gconstpointer data) {
        if (f->skipped)
                return;
        check_crossing(f, "1");
        check_crossing(f, "2");
        g_assert_cmpuint(stat_of(&f->a, "backend_events_published"), ==, 2);
        g_assert_cmpuint(stat_of(&f->a, "backend_events_received"), ==, 2);
        g_assert_cmpuint(stat_of(&f->b, "backend_events_received"), ==, 2);
}

static void test_redis_down_and_back(Fixture *f, gconstpointer data) {
        gint64 end;
        int r;

        if (f->skipped)
                return;
        check_crossing(f, "before");

        gint64 t0 = g_get_monotonic_time();
        g_assert_cmpint(th_proc_stop(&f->redis, SIGKILL, 10000), !=, -1);
        th_proc_clear(&f->redis);
        f->redis = (ThProc) TH_PROC_NULL;

        /* until the hub has noticed, an Emit may still be accepted; once it has, Emit answers
         * BackendUnavailable (never hangs: each call here has sd-bus's default bound), and this
         * host's subscribers have the event all the same */
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        for (unsigned i = 0;; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_autofree char *ev = g_strdup_printf("down.%u", i);

                r = emit(&f->a, ev, "x", &err);
                if (r < 0) {
                        g_assert_cmpstr(err.name, ==, BACKEND_UNAVAILABLE);
                        g_test_message("kill -9 of redis-server -> BackendUnavailable: %.1f ms (%u Emit calls before)",
                                       (g_get_monotonic_time() - t0) / 1000.0, i);
                        g_assert_true(wait_seen(f, &f->a, ev, 1));
                        break;
                }
                g_assert_true(g_get_monotonic_time() < end);
                g_usleep(20 * 1000);
        }
        g_assert_true(wait_connected(&f->a, false));
        g_assert_true(wait_connected(&f->b, false));
        {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_assert_cmpint(emit(&f->b, "down.b", "y", &err), <, 0);
                g_assert_cmpstr(err.name, ==, BACKEND_UNAVAILABLE);
                g_assert_true(wait_seen(f, &f->b, "down.b", 1));
        }

        t0 = g_get_monotonic_time();
        redis_start(f);
        g_test_message("redis-server restarted and answering PING: %.1f ms", (g_get_monotonic_time() - t0) / 1000.0);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_true(wait_connected(&f->b, true));
        g_test_message("restart -> both hubs connected and subscribed: %.1f ms", (g_get_monotonic_time() - t0) / 1000.0);
        g_assert_cmpuint(stat_of(&f->a, "backend_reconnects"), >=, 1);
        g_assert_cmpuint(stat_of(&f->b, "backend_reconnects"), >=, 1);
        check_crossing(f, "after");
        /* nothing emitted during the outage crossed afterwards */
        g_assert_cmpuint(count_seen(&f->b, "down.0"), ==, 0);
        g_assert_cmpuint(count_seen(&f->a, "down.b"), ==, 0);
}

/* Redis stopped (SIGSTOP: the socket stays open, nothing answers): the hub's own timers notice,
 * Emit answers BackendUnavailable instead of waiting; SIGCONT: the link comes back. */
static void test_redis_hangs(Fixture *f, gconstpointer data) {
        gint64 end;

        if (f->skipped)
                return;
        g_assert_cmpint(th_proc_kill(&f->redis, SIGSTOP), ==, 0);
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        for (unsigned i = 0;; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
                g_autofree char *ev = g_strdup_printf("hang.%u", i);

                if (emit(&f->a, ev, "h", &err) < 0) {
                        g_assert_cmpstr(err.name, ==, BACKEND_UNAVAILABLE);
                        break;
                }
                g_assert_true(g_get_monotonic_time() < end);
                g_usleep(100 * 1000);
        }
        g_assert_cmpuint(stat_of(&f->a, "backend_commands_failed"), >=, 1);
        g_assert_cmpint(th_proc_kill(&f->redis, SIGCONT), ==, 0);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_true(wait_connected(&f->b, true));
        check_crossing(f, "after-hang");
}

/* A Redis that evicts keys (maxmemory-policy other than noeviction) could drop the store, the
 * locks and the worker list without a trace: a hub that links to one says so in its log. */
static void test_eviction_policy_warned(Fixture *f, gconstpointer data) {
        g_autofree char *log_path = NULL, *redis_arg = NULL, *text = NULL;
        const char *args[3];
        ThBus bus = {};
        ThHub hub = { .proc = TH_PROC_NULL };
        redisContext *c;
        redisReply *r;
        gint64 end;
        int saved, fd;

        if (f->skipped)
                return;
        c = redisConnectUnix(f->sock);
        g_assert_true(c && !c->err);
        r = redisCommand(c, "CONFIG SET maxmemory-policy allkeys-lru");
        g_assert_true(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        redisFree(c);

        /* a third hub, its log (our stderr, inherited) in a file of its own */
        log_path = g_build_filename(f->dir, "hub.log", NULL);
        redis_arg = g_strdup_printf("--redis=unix:%s", f->sock);
        args[0] = redis_arg;
        args[1] = "--node-name=c";
        args[2] = NULL;
        fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        g_assert_cmpint(fd, >=, 0);
        g_assert_true(th_bus_start(&bus, TH_BUS_DBUS_DAEMON));
        saved = dup(STDERR_FILENO);
        g_assert_cmpint(dup2(fd, STDERR_FILENO), ==, STDERR_FILENO);
        g_assert_cmpint(th_hub_spawn(&hub, bus.address, args), ==, 0);
        g_assert_cmpint(dup2(saved, STDERR_FILENO), ==, STDERR_FILENO);
        close(saved);
        close(fd);

        end = g_get_monotonic_time() + WAIT_MS * 1000;
        for (;;) {
                g_free(text);
                text = NULL;
                g_assert_true(g_file_get_contents(log_path, &text, NULL, NULL));
                if (strstr(text, "maxmemory-policy allkeys-lru"))
                        break;
                g_assert_true(g_get_monotonic_time() < end);
                g_usleep(20 * 1000);
        }
        g_assert_nonnull(strstr(text, "Set maxmemory-policy noeviction"));
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
        th_bus_stop(&bus);
        (void) g_unlink(log_path);
}

/* The variant codec's "v" nesting N variants around a string (the form of
 * service/bus/variant-codec.h, this machine's byte order). */
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

/* An event message as another hub would PUBLISH it (service/backend/remote-event.h). */
static GByteArray *forge_event(const char *event, const GByteArray *payload) {
        GByteArray *m = g_byte_array_new();
        const char *strings[] = { "x", "evil", event };
        uint64_t instance = 0x5eed5eed5eed5eedull;
        const char order = G_BYTE_ORDER == G_LITTLE_ENDIAN ? 'l' : 'B';

        g_byte_array_append(m, (const guint8 *) "CHE1", 4);
        g_byte_array_append(m, (const guint8 *) &order, 1);
        g_byte_array_append(m, (const guint8 *) &instance, 8);
        for (size_t i = 0; i < G_N_ELEMENTS(strings); i++) {
                uint32_t n = GUINT32_TO_LE((uint32_t) strlen(strings[i]));
                g_byte_array_append(m, (const guint8 *) &n, 4);
                g_byte_array_append(m, (const guint8 *) strings[i], strlen(strings[i]) + 1);
        }
        g_byte_array_append(m, payload->data, payload->len);
        return m;
}

/* An event from Redis whose payload nests deeper than a bus carries is dropped (dbus-broker
 * would drop the hub for sending it); one just within the bound is delivered. */
static void test_events_hostile_deep(Fixture *f, gconstpointer data) {
        g_autoptr(GByteArray) too_deep = NULL, deepest = NULL, fits = NULL, last = NULL;
        uint64_t dropped;
        redisContext *c;
        redisReply *r;

        if (f->skipped)
                return;
        too_deep = deep_value(63); /* Event's own variant + 63: 64 levels */
        deepest = deep_value(62);
        fits = forge_event("deep.fits", deepest);
        last = forge_event("deep.too", too_deep);
        dropped = stat_of(&f->b, "backend_events_dropped");
        c = redisConnectUnix(f->sock);
        g_assert_true(c && !c->err);
        r = redisCommand(c, "PUBLISH clusterhub:events:default %b", last->data, (size_t) last->len);
        g_assert_true(r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
        r = redisCommand(c, "PUBLISH clusterhub:events:default %b", fits->data, (size_t) fits->len);
        g_assert_true(r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
        redisFree(c);
        /* the second message arrives after the first: once it is here, the first was handled */
        g_assert_true(wait_seen(f, &f->b, "deep.fits", 1));
        g_assert_cmpuint(count_seen(&f->b, "deep.too"), ==, 0);
        g_assert_cmpuint(stat_of(&f->b, "backend_events_dropped"), ==, dropped + 1);
        check_crossing(f, "after-deep");
}

/* A hub starts and serves without Redis; Emit answers BackendUnavailable until Redis comes. */
static void test_redis_later(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;

        if (f->skipped)
                return;
        g_assert_cmpint(emit(&f->a, "early", "e", &err), <, 0);
        g_assert_cmpstr(err.name, ==, BACKEND_UNAVAILABLE);
        g_assert_true(wait_seen(f, &f->a, "early", 1));
        redis_start(f);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_true(wait_connected(&f->b, true));
        g_assert_cmpuint(stat_of(&f->a, "backend_reconnects"), ==, 0);
        check_crossing(f, "later");
        g_assert_cmpuint(count_seen(&f->b, "early"), ==, 0);
}


/* --- workers across hosts ------------------------------------------------------------------ */

/* A connection to SIDE's bus that registers as worker ID. */
static sd_bus *worker_start(Side *side, const char *id) {
        sd_bus *w = NULL;

        g_assert_cmpint(th_connect(&w, side->bus.address), ==, 0);
        g_assert_cmpint(sd_bus_call_method(w, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "Register", NULL, NULL, "sa{sv}", id, 0),
                        >=, 0);
        return w;
}

/* Whether SIDE's ListWorkers has ID; *RET_NODE (may be NULL) gets its details' "node" ("" for
 * none). */
static bool listed(Side *side, const char *id, char **ret_node) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *wid, *unique;
        bool found = false;
        uint32_t pid;

        g_assert_cmpint(sd_bus_call_method(side->emitter, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "ListWorkers", NULL, &reply, ""),
                        >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ssua{sv})"), >, 0);
        while (sd_bus_message_enter_container(reply, 'r', "ssua{sv}") > 0) {
                g_autofree char *node = g_strdup("");

                g_assert_cmpint(sd_bus_message_read(reply, "ssu", &wid, &unique, &pid), >=, 0);
                g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
                while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                        const char *k, *v;

                        g_assert_cmpint(sd_bus_message_read(reply, "s", &k), >=, 0);
                        if (g_str_equal(k, "node")) {
                                g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &v), >=, 0);
                                g_free(node);
                                node = g_strdup(v);
                        } else
                                g_assert_cmpint(sd_bus_message_skip(reply, "v"), >=, 0);
                        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                }
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                if (g_str_equal(wid, id)) {
                        found = true;
                        if (ret_node)
                                *ret_node = g_steal_pointer(&node);
                }
        }
        return found;
}

/* Waits until SIDE's ListWorkers has ID (WANT) or not. */
static bool wait_listed(Side *side, const char *id, bool want) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while (listed(side, id, NULL) != want) {
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(50 * 1000);
        }
        return true;
}

static void test_workers_cross(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *w2 = NULL;
        sd_bus *w1;
        g_autofree char *node = NULL;
        const char *unique = NULL;
        Seen *s;

        if (f->skipped)
                return;
        w1 = worker_start(&f->a, "w1");
        g_assert_true(wait_seen(f, &f->b, "WorkerJoined w1@a", 1));
        g_assert_cmpint(sd_bus_get_unique_name(w1, &unique), >=, 0);
        s = find_seen(&f->b, "WorkerJoined w1@a");
        g_assert_cmpstr(s->payload, ==, unique); /* its unique name on its own bus */
        g_assert_true(listed(&f->b, "w1@a", &node));
        g_assert_cmpstr(node, ==, "a");
        g_assert_false(listed(&f->b, "w1", NULL));
        /* the local listing is unchanged: the plain id, no node, once */
        g_clear_pointer(&node, g_free);
        g_assert_true(listed(&f->a, "w1", &node));
        g_assert_cmpstr(node, ==, "");
        g_assert_false(listed(&f->a, "w1@a", NULL));
        g_assert_true(wait_seen(f, &f->a, "WorkerJoined w1", 1)); /* the local signal, plain */

        w2 = worker_start(&f->b, "w2");
        g_assert_true(wait_seen(f, &f->a, "WorkerJoined w2@b", 1));
        g_assert_true(listed(&f->a, "w2@b", NULL));
        g_assert_cmpuint(stat_of(&f->a, "backend_remote_workers"), ==, 1);

        /* Unregister: WorkerLeft on the other host, with the reason */
        g_assert_cmpint(sd_bus_call_method(w1, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "Unregister", NULL, NULL, ""), >=, 0);
        g_assert_true(wait_seen(f, &f->b, "WorkerLeft w1@a", 1));
        g_assert_cmpstr(find_seen(&f->b, "WorkerLeft w1@a")->payload, ==, "unregistered");
        g_assert_false(listed(&f->b, "w1@a", NULL));

        /* a worker that exits (its connection closes) */
        w1 = sd_bus_flush_close_unref(w1);
        w2 = sd_bus_flush_close_unref(w2);
        g_assert_true(wait_seen(f, &f->a, "WorkerLeft w2@b", 1));
        g_assert_cmpstr(find_seen(&f->a, "WorkerLeft w2@b")->payload, ==, "disconnected");
        g_assert_false(listed(&f->a, "w2@b", NULL));
        g_assert_cmpuint(stat_of(&f->a, "backend_remote_workers"), ==, 0);
        /* nothing announced twice */
        g_assert_cmpuint(count_seen(&f->b, "WorkerJoined w1@a"), ==, 1);
        g_assert_cmpuint(count_seen(&f->a, "WorkerJoined w2@b"), ==, 1);
}

/* kill -9 of hub a: b drops a's workers once a's heartbeat has expired (the lease, 1.5 s here). */
static void test_workers_hub_killed(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *w1 = NULL, *w2 = NULL;

        if (f->skipped)
                return;
        w1 = worker_start(&f->a, "w1");
        w2 = worker_start(&f->b, "w2");
        g_assert_true(wait_listed(&f->b, "w1@a", true));
        g_assert_true(wait_listed(&f->a, "w2@b", true));

        gint64 t0 = g_get_monotonic_time();
        g_assert_cmpint(th_proc_stop(&f->a.hub.proc, SIGKILL, 10000), !=, -1);
        g_assert_true(wait_seen(f, &f->b, "WorkerLeft w1@a", 1));
        g_test_message("kill -9 of hub a -> WorkerLeft on b: %.1f ms (lease 1500 ms)", (g_get_monotonic_time() - t0) / 1000.0);
        g_assert_cmpstr(find_seen(&f->b, "WorkerLeft w1@a")->payload, ==, "its hub is gone (heartbeat expired)");
        g_assert_false(listed(&f->b, "w1@a", NULL));
        g_assert_true(listed(&f->b, "w2", NULL)); /* b's own worker stays */
}

/* Redis killed: ListWorkers answers with the local workers and the last known remote ones;
 * Redis restarted empty: the hubs write their registries again and read each other's, so a
 * worker that joined during the outage is announced and listed on the other host. */
static void test_workers_redis_restart(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *w1 = NULL, *w3 = NULL;

        if (f->skipped)
                return;
        w1 = worker_start(&f->a, "w1");
        g_assert_true(wait_listed(&f->b, "w1@a", true));

        g_assert_cmpint(th_proc_stop(&f->redis, SIGKILL, 10000), !=, -1);
        th_proc_clear(&f->redis);
        f->redis = (ThProc) TH_PROC_NULL;
        g_assert_true(wait_connected(&f->a, false));
        g_assert_true(wait_connected(&f->b, false));
        w3 = worker_start(&f->a, "w3");
        g_assert_true(listed(&f->a, "w1", NULL));
        g_assert_true(listed(&f->a, "w3", NULL));
        g_assert_true(listed(&f->b, "w1@a", NULL)); /* last known */
        g_assert_false(listed(&f->b, "w3@a", NULL));

        redis_start(f);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_true(wait_connected(&f->b, true));
        g_assert_true(wait_seen(f, &f->b, "WorkerJoined w3@a", 1));
        g_assert_true(wait_listed(&f->b, "w3@a", true));
        g_assert_true(wait_listed(&f->b, "w1@a", true));
        /* and the channel works again */
        w3 = sd_bus_flush_close_unref(w3);
        g_assert_true(wait_seen(f, &f->b, "WorkerLeft w3@a", 1));
        g_assert_true(listed(&f->b, "w1@a", NULL));
}


/* Any client of the Redis can write the registry's keys and channel: what does not parse is
 * ignored, what does is listed, and a node whose heartbeat disappears drops out. */
static void test_workers_hostile(Fixture *f, gconstpointer data) {
        static const char *const commands[][6] = {
                { "SET", "clusterhub:node:evil", "1", "PX", "600000", NULL },
                { "SADD", "clusterhub:nodes", "evil", "bad/name", "", NULL },
                { "HSET", "clusterhub:workers:evil", "good", ":1.9\t42\t1000\tx.service", NULL },
                { "HSET", "clusterhub:workers:evil", "bad-id", ":1.9\t42\t1000\tx.service", NULL },
                { "HSET", "clusterhub:workers:evil", "nopid", ":1.9\tx\t1000\tx.service", NULL },
                { "HSET", "clusterhub:workers:evil", "short", ":1.9", NULL },
                { "HSET", "clusterhub:workers:bad/name", "w", ":1.9\t1\t1\t", NULL },
                { "PUBLISH", "clusterhub:registry", "J\tevil", NULL },
                { "PUBLISH", "clusterhub:registry", "J\tevil\tzz\tnot a value", NULL },
                { "PUBLISH", "clusterhub:registry", "J\tevil\tbig\t:1.1\t99999999999\t1\t", NULL },
                { "PUBLISH", "clusterhub:registry", "L\tevil", NULL },
                { "PUBLISH", "clusterhub:registry", "\xff\xfe\t\t", NULL },
                { "PUBLISH", "clusterhub:registry", "", NULL },
                { "PUBLISH", "clusterhub:registry", "S\tevil", NULL },
        };
        redisContext *c;

        if (f->skipped)
                return;
        c = redisConnectUnix(f->sock);
        g_assert_true(c && !c->err);
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
                int argc = 0;
                redisReply *r;

                while (commands[i][argc])
                        argc++;
                r = redisCommandArgv(c, argc, (const char **) commands[i], NULL);
                g_assert_nonnull(r);
                freeReplyObject(r);
        }
        g_assert_true(wait_seen(f, &f->b, "WorkerJoined good@evil", 1));
        g_assert_true(wait_listed(&f->a, "good@evil", true));
        g_assert_cmpuint(stat_of(&f->a, "backend_remote_workers"), ==, 1);
        g_assert_cmpuint(stat_of(&f->b, "backend_remote_workers"), ==, 1);
        g_assert_cmpuint(count_seen(&f->b, "WorkerJoined big@evil"), ==, 0);

        /* its heartbeat gone: it drops out, and the script forgets the node */
        freeReplyObject(redisCommand(c, "DEL clusterhub:node:evil"));
        g_assert_true(wait_seen(f, &f->b, "WorkerLeft good@evil", 1));
        g_assert_cmpstr(find_seen(&f->b, "WorkerLeft good@evil")->payload, ==, "its hub is gone (heartbeat expired)");
        g_assert_true(wait_listed(&f->a, "good@evil", false));
        redisReply *r = redisCommand(c, "SISMEMBER clusterhub:nodes evil");
        g_assert_true(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
        freeReplyObject(r);
        redisFree(c);
        check_crossing(f, "after-hostile");
}

/* -m perf: N events emitted on a, each waited for on b before the next (cross-host latency), and
 * the same on a's own listener (local latency), in one run. */
static void test_perf(Fixture *f, gconstpointer data) {
        const unsigned n = 2000;
        struct {
                const char *what;
                Side *to;
        } runs[] = { { "local (a -> a)", &f->a }, { "cross-host (a -> Redis -> b)", &f->b } };

        if (f->skipped)
                return;
        for (size_t r = 0; r < G_N_ELEMENTS(runs); r++) {
                g_autofree char *ev = g_strdup_printf("perf.%zu", r);
                gint64 t0 = g_get_monotonic_time();

                for (unsigned i = 0; i < n; i++) {
                        g_assert_cmpint(emit(&f->a, ev, "p", NULL), >=, 0);
                        g_assert_true(wait_seen(f, runs[r].to, ev, i + 1));
                }
                g_test_minimized_result((g_get_monotonic_time() - t0) / 1e6 / n, "%s", runs[r].what);
                g_test_message("%s: %.1f us per Emit until the subscriber has it (%u events)", runs[r].what,
                               (double) (g_get_monotonic_time() - t0) / n, n);
        }
}

/* Without --redis nothing changes: GetStats says so. */
static void test_no_backend(void) {
        ThBus bus = {};
        ThHub hub = { .proc = TH_PROC_NULL };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *c = NULL;
        Side side = {};

        g_assert_true(th_bus_start(&bus, TH_BUS_DBUS_DAEMON));
        g_assert_cmpint(th_hub_spawn(&hub, bus.address, NULL), ==, 0);
        g_assert_cmpint(th_connect(&c, bus.address), ==, 0);
        side.emitter = c;
        g_assert_cmpint(emit(&side, "alone", "z", NULL), >=, 0);
        g_assert_cmpuint(stat_of(&side, "backend_connected"), ==, UINT64_MAX); /* no such entry */
        g_assert_cmpint(th_hub_stop(&hub), ==, 0);
        th_hub_clear(&hub);
        th_bus_stop(&bus);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add("/redis/events-cross", Fixture, NULL, fixture_setup, test_events_cross, fixture_teardown);
        g_test_add("/redis/down-and-back", Fixture, NULL, fixture_setup, test_redis_down_and_back, fixture_teardown);
        g_test_add("/redis/events-cross-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), fixture_setup, test_events_cross,
                   fixture_teardown);
        g_test_add("/redis/events-hostile-deep", Fixture, NULL, fixture_setup, test_events_hostile_deep, fixture_teardown);
        g_test_add("/redis/eviction-policy-warned", Fixture, NULL, fixture_setup, test_eviction_policy_warned,
                   fixture_teardown);
        g_test_add("/redis/redis-later", Fixture, GUINT_TO_POINTER(REDIS_LATER), fixture_setup, test_redis_later, fixture_teardown);
        g_test_add("/redis/hangs", Fixture, NULL, fixture_setup, test_redis_hangs, fixture_teardown);
        g_test_add("/redis/workers-cross", Fixture, NULL, fixture_setup, test_workers_cross, fixture_teardown);
        g_test_add("/redis/workers-hub-killed", Fixture, NULL, fixture_setup, test_workers_hub_killed, fixture_teardown);
        g_test_add("/redis/workers-redis-restart", Fixture, NULL, fixture_setup, test_workers_redis_restart, fixture_teardown);
        g_test_add("/redis/workers-hostile", Fixture, NULL, fixture_setup, test_workers_hostile, fixture_teardown);
        g_test_add_func("/redis/no-backend", test_no_backend);
        if (g_test_perf())
                g_test_add("/redis/perf", Fixture, NULL, fixture_setup, test_perf, fixture_teardown);
        return g_test_run();
}
