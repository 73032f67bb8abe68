/* SPDX-License-Identifier: MIT */
/* The fixture of the Redis suites: see redis-fixture.h. */
#include <errno.h>
#include <glib/gstdio.h>
#include <hiredis/hiredis.h>
#include <string.h>
#include <unistd.h>

#include "redis-fixture.h"

static void seen_free(gpointer p) {
        Seen *s = p;
        g_free(s->event);
        g_free(s->origin);
        g_free(s->payload);
        g_free(s);
}

static int on_event(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Side *side = userdata;
        const char *event, *origin, *payload = "";
        Seen *s;

        g_assert_cmpint(sd_bus_message_read(m, "s", &event), >=, 0);
        g_assert_cmpint(sd_bus_message_read(m, "s", &origin), >=, 0);
        if (sd_bus_message_enter_container(m, 'v', "s") > 0)
                g_assert_cmpint(sd_bus_message_read(m, "s", &payload), >=, 0);
        s = g_new0(Seen, 1);
        s->event = g_strdup(event);
        s->origin = g_strdup(origin);
        s->payload = g_strdup(payload);
        g_ptr_array_add(side->seen, s);
        return 0;
}

/* WorkerJoined(ID, UNIQUE_NAME) and WorkerLeft(ID, REASON), seen as the event
 * "WorkerJoined ID" with the second argument as its payload */
static int on_worker_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Side *side = userdata;
        const char *id, *arg;
        Seen *s;

        g_assert_cmpint(sd_bus_message_read(m, "ss", &id, &arg), >=, 0);
        s = g_new0(Seen, 1);
        s->event = g_strdup_printf("%s %s", sd_bus_message_get_member(m), id);
        s->origin = g_strdup("");
        s->payload = g_strdup(arg);
        g_ptr_array_add(side->seen, s);
        return 0;
}

guint count_seen(Side *side, const char *event) {
        guint n = 0;
        for (guint i = 0; i < side->seen->len; i++)
                if (g_str_equal(((Seen *) side->seen->pdata[i])->event, event))
                        n++;
        return n;
}

Seen *find_seen(Side *side, const char *event) {
        for (guint i = 0; i < side->seen->len; i++)
                if (g_str_equal(((Seen *) side->seen->pdata[i])->event, event))
                        return side->seen->pdata[i];
        return NULL;
}

/* Processes both listeners until SIDE has seen EVENT N times; false after WAIT_MS. */
bool wait_seen(Fixture *f, Side *side, const char *event, guint n) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while (count_seen(side, event) < n) {
                if (g_get_monotonic_time() > end)
                        return false;
                while (sd_bus_process(f->a.listener, NULL) > 0 || sd_bus_process(f->b.listener, NULL) > 0)
                        ;
                if (count_seen(side, event) >= n)
                        break;
                (void) sd_bus_wait(side->listener, 50 * 1000);
        }
        return true;
}

/* Emit(EVENT, <s PAYLOAD>) through SIDE's hub: 0, or the error's errno (ERR gets its name). */
int emit(Side *side, const char *event, const char *payload, sd_bus_error *err) {
        return sd_bus_call_method(side->emitter, TH_HUB_NAME, NS_PATH, EVENTS_IFACE, "Emit", err, NULL, "sv", event, "s",
                                  payload);
}

char *expected_origin(Side *side) {
        const char *unique = NULL;
        g_assert_cmpint(sd_bus_get_unique_name(side->emitter, &unique), >=, 0);
        return g_strdup_printf("%s@%s", unique, side->node);
}

/* The GetStats entry KEY of SIDE's hub, as a bool ('b') or a number ('t'). */
uint64_t stat_of(Side *side, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t value = UINT64_MAX;
        const char *k, *contents;
        char type;

        g_assert_cmpint(sd_bus_call_method(side->emitter, TH_HUB_NAME, "/org/clusterhub/Hub1", "org.clusterhub.Hub1",
                                           "GetStats", NULL, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "s", &k), >=, 0);
                g_assert_cmpint(sd_bus_message_peek_type(reply, &type, &contents), >, 0);
                if (g_str_equal(k, key) && g_str_equal(contents, "b")) {
                        int b;
                        g_assert_cmpint(sd_bus_message_read(reply, "v", "b", &b), >=, 0);
                        value = b;
                } else if (g_str_equal(k, key) && g_str_equal(contents, "t"))
                        g_assert_cmpint(sd_bus_message_read(reply, "v", "t", &value), >=, 0);
                else
                        g_assert_cmpint(sd_bus_message_skip(reply, "v"), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        }
        return value;
}

bool wait_stat_at_least(Side *side, const char *key, uint64_t n) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while (stat_of(side, key) < n) {
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(10 * 1000);
        }
        return true;
}

/* Waits until SIDE's hub says its link to Redis is WANT (up or down). */
bool wait_connected(Side *side, bool want) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while ((stat_of(side, "backend_connected") == 1) != want) {
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(50 * 1000);
        }
        return true;
}

bool redis_ping(const char *sock) {
        redisContext *c = redisConnectUnix(sock);
        redisReply *r;
        bool ok;

        if (!c || c->err) {
                if (c)
                        redisFree(c);
                return false;
        }
        r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && g_str_equal(r->str, "PONG");
        if (r)
                freeReplyObject(r);
        redisFree(c);
        return ok;
}

void redis_start(Fixture *f) {
        const char *argv[] = { "redis-server", "--port", "0", "--unixsocket", f->sock, "--unixsocketperm", "700",
                               "--save", "", "--appendonly", "no", "--dir", f->dir, "--daemonize", "no", NULL };
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        g_assert_cmpint(th_spawn(&f->redis, argv, NULL, -1, -1), >, 0);
        while (!redis_ping(f->sock)) {
                g_assert_true(g_get_monotonic_time() < end);
                g_assert_false(th_proc_exited(&f->redis));
                g_usleep(20 * 1000);
        }
}

void side_start(Fixture *f, Side *side, const char *node, unsigned flags) {
        g_autofree char *redis = g_strdup_printf("--redis=unix:%s", f->sock);
        g_autofree char *name = g_strdup_printf("--node-name=%s", node);
        g_autofree char *path = NULL;
        /* a short lease: the test of a killed hub waits for it (the default is 15 s) */
        const char *args[16] = { redis, name, "--node-lease-ms=1500" };
        size_t n = 3;

        for (size_t i = 0; i < G_N_ELEMENTS(f->hub_args) && f->hub_args[i]; i++)
                args[n++] = f->hub_args[i];
        if (!(flags & VIA_SOCKET))
                args[n++] = "--no-listen";
        args[n] = NULL;

        side->node = node;
        side->seen = g_ptr_array_new_with_free_func(seen_free);
        g_assert_true(th_bus_start(&side->bus, TH_BUS_DBUS_DAEMON));
        if (flags & VIA_SOCKET) {
                g_assert_cmpint(th_hub_spawn_listening(&side->hub, &side->bus, args, &path), ==, 0);
                g_assert_cmpint(th_connect_socket(&side->listener, path), ==, 0);
        } else {
                g_assert_cmpint(th_hub_spawn(&side->hub, side->bus.address, args), ==, 0);
                g_assert_cmpint(th_connect(&side->listener, side->bus.address), ==, 0);
        }
        g_assert_cmpint(th_connect(&side->emitter, side->bus.address), ==, 0);
        g_assert_cmpint(sd_bus_match_signal(side->listener, NULL, TH_HUB_NAME, NS_PATH, EVENTS_IFACE, "Event", on_event,
                                            side), >=, 0);
        g_assert_cmpint(sd_bus_match_signal(side->listener, NULL, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "WorkerJoined",
                                            on_worker_signal, side), >=, 0);
        g_assert_cmpint(sd_bus_match_signal(side->listener, NULL, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "WorkerLeft",
                                            on_worker_signal, side), >=, 0);
}

void side_stop(Side *side) {
        side->emitter = sd_bus_flush_close_unref(side->emitter);
        side->listener = sd_bus_flush_close_unref(side->listener);
        if (side->hub.proc.pid > 0)
                g_assert_cmpint(th_hub_stop(&side->hub), ==, 0); /* a clean exit, also after Redis came and went */
        th_hub_clear(&side->hub);
        th_bus_stop(&side->bus);
        if (side->seen)
                g_ptr_array_unref(side->seen);
}

void fixture_setup(Fixture *f, gconstpointer data) {
        g_autofree char *server = g_find_program_in_path("redis-server");
        unsigned flags = GPOINTER_TO_UINT(data);

        f->redis = (ThProc) TH_PROC_NULL;
        f->a.hub.proc = (ThProc) TH_PROC_NULL;
        f->b.hub.proc = (ThProc) TH_PROC_NULL;
        if (!server) {
                f->skipped = true;
                g_test_skip("redis-server is not installed (apt-get install redis-server; scripts/deps.sh lists it)");
                return;
        }
        f->dir = g_dir_make_tmp("ch-redis-XXXXXX", NULL);
        g_assert_nonnull(f->dir);
        f->sock = g_build_filename(f->dir, "redis.sock", NULL);
        if (flags & REDIS_LATER)
                f->redis = (ThProc) TH_PROC_NULL;
        else
                redis_start(f);
        side_start(f, &f->a, "a", flags);
        side_start(f, &f->b, "b", flags);
        g_assert_true(wait_connected(&f->a, !(flags & REDIS_LATER)));
        g_assert_true(wait_connected(&f->b, !(flags & REDIS_LATER)));
}

void fixture_teardown(Fixture *f, gconstpointer data) {
        if (f->skipped)
                return;
        side_stop(&f->a);
        side_stop(&f->b);
        (void) th_proc_stop(&f->redis, SIGTERM, 10000);
        th_proc_clear(&f->redis);
        if (f->sock)
                (void) g_unlink(f->sock);
        if (f->dir)
                (void) g_rmdir(f->dir);
        g_free(f->sock);
        g_free(f->dir);
}
