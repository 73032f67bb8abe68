/* SPDX-License-Identifier: MIT */
/*
 * No reply the bus will refuse (issue 16, item 1), on dbus-daemon and dbus-broker:
 *  - what the buses accept: a message nesting 63 containers passes both, 64 is dropped by
 *    dbus-broker (empty arrays counted), 65 by dbus-daemon; the hub's bound rests on this;
 *  - a value nesting 61 containers (its variant included) is stored by Set, HSet, LPush and
 *    comes back through Get, MGet, HGetAll, HMGet, LRange and BLPop; one of 62 is refused by
 *    Set, LPush, LSet, HSetNX with LimitExceeded naming both numbers, and the hub stays on
 *    the bus.  Before the bound, Set took it and MGet's a{sv} reply got the hub dropped;
 *  - RequestAll: a worker reply of 61 lands in the replies, one of 62 becomes a
 *    LimitExceeded entry in the errors (it cannot sit inside the a{sv} of replies), and a
 *    plain Request passes a 62-deep reply through unchanged (v in, v out).
 * Workers are this binary re-executed with --worker.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

#define IFACE "org.clusterhub.Store1"
#define NS CH_DEFAULT_NAMESPACE_PATH
#define LIMIT_EXCEEDED "org.clusterhub.Error.LimitExceeded"

static const char *self_path;

/* Appends a value of DEPTH containers, its variant included: variants around a u, with an
 * a{sv} (three levels) in the middle when there is room, so more than variants count. */
static int append_nested(sd_bus_message *m, unsigned depth) {
        uint32_t leaf = depth;
        unsigned i;
        int r = 0;

        if (depth == 0)
                return sd_bus_message_append_basic(m, 'u', &leaf);
        if (depth >= 5 && depth % 2 == 0) {
                /* v { a { e { s v ... } } } */
                r = sd_bus_message_open_container(m, 'v', "a{sv}");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "{sv}");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append_basic(m, 's', "k");
                if (r >= 0)
                        r = append_nested(m, depth - 3);
                for (i = 0; r >= 0 && i < 3; i++)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        for (i = 0; r >= 0 && i < depth; i++)
                r = sd_bus_message_open_container(m, 'v', i == depth - 1 ? "u" : "v");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 'u', &leaf);
        for (i = 0; r >= 0 && i < depth; i++)
                r = sd_bus_message_close_container(m);
        return r;
}

/* Reads the value at M's position; returns its depth (containers entered), checking the
 * leaf holds what append_nested() put there. */
static unsigned read_nested(sd_bus_message *m) {
        const char *contents;
        char type;
        unsigned deepest = 0;

        g_assert_cmpint(sd_bus_message_peek_type(m, &type, &contents), >, 0);
        if (!strchr("arve", type)) {
                g_assert_cmpint(sd_bus_message_skip(m, (char[]) { type, 0 }), >=, 0);
                return 0;
        }
        g_assert_cmpint(sd_bus_message_enter_container(m, type, contents), >, 0);
        while (sd_bus_message_at_end(m, false) == 0) {
                unsigned d = read_nested(m);
                deepest = MAX(deepest, d);
        }
        g_assert_cmpint(sd_bus_message_exit_container(m), >, 0);
        return deepest + 1;
}

static sd_bus_message *call(sd_bus *bus, const char *member, sd_bus_error *e, int (*fill)(sd_bus_message *m, void *ud), void *ud, int *ret) {
        sd_bus_message *m = NULL, *reply = NULL;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, NS, IFACE, member), >=, 0);
        g_assert_cmpint(fill(m, ud), >=, 0);
        *ret = sd_bus_call(bus, m, 10 * 1000 * 1000, e, &reply);
        sd_bus_message_unref(m);
        return reply;
}

typedef struct Args {
        const char *key;
        unsigned depth;
} Args;

static int fill_set(sd_bus_message *m, void *ud) {
        Args *a = ud;
        int r = sd_bus_message_append(m, "s", a->key);
        if (r >= 0)
                r = append_nested(m, a->depth);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 0);
        return r;
}

static int fill_hset(sd_bus_message *m, void *ud) {
        Args *a = ud;
        int r = sd_bus_message_append(m, "s", a->key);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "f");
        if (r >= 0)
                r = append_nested(m, a->depth);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int fill_hsetnx(sd_bus_message *m, void *ud) {
        Args *a = ud;
        int r = sd_bus_message_append(m, "ss", a->key, "g");
        return r < 0 ? r : append_nested(m, a->depth);
}

static int fill_push(sd_bus_message *m, void *ud) {
        Args *a = ud;
        int r = sd_bus_message_append(m, "s", a->key);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "v");
        if (r >= 0)
                r = append_nested(m, a->depth);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int fill_lset(sd_bus_message *m, void *ud) {
        Args *a = ud;
        int r = sd_bus_message_append(m, "sx", a->key, (int64_t) 0);
        return r < 0 ? r : append_nested(m, a->depth);
}

static int fill_key(sd_bus_message *m, void *ud) {
        return sd_bus_message_append(m, "s", ((Args *) ud)->key);
}

static int fill_keys(sd_bus_message *m, void *ud) {
        return sd_bus_message_append(m, "as", 1, ((Args *) ud)->key);
}

static int fill_hmget(sd_bus_message *m, void *ud) {
        return sd_bus_message_append(m, "sas", ((Args *) ud)->key, 1, "f");
}

static int fill_lrange(sd_bus_message *m, void *ud) {
        return sd_bus_message_append(m, "sxx", ((Args *) ud)->key, (int64_t) 0, (int64_t) -1);
}

static int fill_pop(sd_bus_message *m, void *ud) {
        return sd_bus_message_append(m, "su", ((Args *) ud)->key, (uint32_t) 1);
}

static int fill_blpop(sd_bus_message *m, void *ud) {
        return sd_bus_message_append(m, "asu", 1, ((Args *) ud)->key, (uint32_t) 1000);
}

static void ok(sd_bus *bus, const char *member, int (*fill)(sd_bus_message *, void *), Args *a) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;
        sd_bus_message *reply = call(bus, member, &e, fill, a, &r);
        if (r < 0)
                g_error("%s(%s, depth %u): %s: %s", member, a->key, a->depth, e.name, e.message);
        sd_bus_message_unref(reply);
}

/* The reply of MEMBER, whose first argument of type SIG holds the value: its depth, the
 * variant included. */
static unsigned read_back(sd_bus *bus, const char *member, int (*fill)(sd_bus_message *, void *), Args *a, const char *sig) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        unsigned depth;
        int r;
        sd_bus_message *reply = call(bus, member, &e, fill, a, &r);

        if (r < 0)
                g_error("%s(%s): %s: %s", member, a->key, e.name, e.message);
        g_assert_true(sd_bus_message_has_signature(reply, sig));
        depth = read_nested(reply) - (unsigned) (strlen(sig) > 2 ? 2 : g_str_equal(sig, "av") ? 1 : 0);
        sd_bus_message_unref(reply);
        return depth;
}

static void refused(sd_bus *bus, const char *member, int (*fill)(sd_bus_message *, void *), Args *a) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;
        sd_bus_message *reply = call(bus, member, &e, fill, a, &r);

        g_assert_null(reply);
        g_assert_cmpint(r, <, 0);
        if (!sd_bus_error_has_name(&e, LIMIT_EXCEEDED))
                g_error("%s(%s, depth %u): expected %s, got %s: %s", member, a->key, a->depth, LIMIT_EXCEEDED, e.name, e.message);
        g_test_message("%s: %s", member, e.message);
        g_assert_nonnull(strstr(e.message, "62"));
        g_assert_nonnull(strstr(e.message, "61"));
        sd_bus_error_free(&e);
}

/* A probe of the buses themselves: a call to the bus driver nesting N containers. */
static int probe_bus(const char *address, unsigned n) {
        sd_bus *b = NULL;
        sd_bus_message *m = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        g_assert_cmpint(th_connect(&b, address), >=, 0);
        g_assert_cmpint(sd_bus_message_new_method_call(b, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                       "org.freedesktop.DBus", "GetId"), >=, 0);
        g_assert_cmpint(append_nested(m, n), >=, 0);
        r = sd_bus_call(b, m, 10 * 1000 * 1000, &e, NULL);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(b);
        /* the driver refuses the arguments (InvalidArgs) or the bus drops us */
        r = sd_bus_error_has_name(&e, SD_BUS_ERROR_INVALID_ARGS) ? 1 : 0;
        sd_bus_error_free(&e);
        return r;
}

static void test_bus_limits(ThFixture *f, gconstpointer data) {
        ThBusKind kind = GPOINTER_TO_INT(data);

        TH_RETURN_IF_SKIPPED(f);
        g_assert_cmpint(probe_bus(f->bus.address, 63), ==, 1);
        g_assert_cmpint(probe_bus(f->bus.address, 64), ==, kind == TH_BUS_DBUS_DAEMON ? 1 : 0);
        g_assert_cmpint(probe_bus(f->bus.address, 65), ==, 0);
}

static void test_store_depth(ThFixture *f, gconstpointer data) {
        sd_bus *c;
        Args deep = { "deep", 61 }, hash = { "h", 61 }, list = { "l", 61 }, list2 = { "l2", 61 };

        TH_RETURN_IF_SKIPPED(f);
        c = f->client;

        /* the deepest that fits, through every command that returns values */
        ok(c, "Set", fill_set, &deep);
        ok(c, "HSet", fill_hset, &hash);
        ok(c, "RPush", fill_push, &list);
        ok(c, "RPush", fill_push, &list2);
        g_assert_cmpuint(read_back(c, "Get", fill_key, &deep, "v"), ==, 61);
        g_assert_cmpuint(read_back(c, "MGet", fill_keys, &deep, "a{sv}"), ==, 61);
        g_assert_cmpuint(read_back(c, "HGetAll", fill_key, &hash, "a{sv}"), ==, 61);
        g_assert_cmpuint(read_back(c, "HMGet", fill_hmget, &hash, "a{sv}"), ==, 61);
        g_assert_cmpuint(read_back(c, "HVals", fill_key, &hash, "av"), ==, 61);
        g_assert_cmpuint(read_back(c, "LRange", fill_lrange, &list, "av"), ==, 61);
        g_assert_cmpuint(read_back(c, "LPop", fill_pop, &list, "av"), ==, 61);
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                int r;
                sd_bus_message *reply = call(c, "BLPop", &e, fill_blpop, &list2, &r);
                if (r < 0)
                        g_error("BLPop: %s", e.message);
                g_assert_cmpint(sd_bus_message_skip(reply, "s"), >, 0);
                g_assert_cmpuint(read_nested(reply), ==, 61);
                sd_bus_message_unref(reply);
        }

        /* one more is refused, by name, wherever a value comes in alone */
        Args deeper = { "deeper", 62 }, l = { "l", 62 }, h = { "h", 62 };
        ok(c, "RPush", fill_push, &(Args) { "l", 1 });
        refused(c, "Set", fill_set, &deeper);
        refused(c, "RPush", fill_push, &l);
        refused(c, "LSet", fill_lset, &l);
        refused(c, "HSetNX", fill_hsetnx, &h);
        /* nothing was stored, and the hub is still here to say so */
        g_assert_cmpint(th_name_has_owner(c, CH_BUS_NAME), ==, 1);
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                int r;
                sd_bus_message *reply = call(c, "Exists", &e, fill_keys, &deeper, &r);
                uint32_t n = 1;
                g_assert_cmpint(r, >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "u", &n), >, 0);
                g_assert_cmpuint(n, ==, 0);
                sd_bus_message_unref(reply);
        }
        g_assert_cmpuint(read_back(c, "LRange", fill_lrange, &list, "av"), ==, 1);   /* [v(u)] */
        g_assert_cmpuint(read_back(c, "MGet", fill_keys, &deep, "a{sv}"), ==, 61);
        g_assert_true(th_proc_exited(&f->hub.proc) == false);
}

/* ---- RequestAll ------------------------------------------------------------------------- */

/* Handle(s ns, s method, s origin, v payload): "nest" answers a value of the depth the
 * payload (a u) asks for. */
static int worker_filter(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *ns, *method, *origin;
        sd_bus_message *reply = NULL;
        uint32_t depth = 0;
        int r;

        if (!sd_bus_message_is_method_call(m, "org.clusterhub.Handler1", "Handle"))
                return 0;
        r = sd_bus_message_read(m, "sssv", &ns, &method, &origin, "u", &depth);
        if (r >= 0)
                r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = append_nested(reply, depth);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r < 0 ? r : 1;
}

static int worker_main(const char *address) {
        sd_bus *bus = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *methods[] = { (char *) "nest", NULL };
        int r;

        if (th_connect(&bus, address) < 0)
                return 2;
        if (sd_bus_add_filter(bus, NULL, worker_filter, NULL) < 0)
                return 3;
        if (ch_requests1_call_serve(bus, CH_BUS_NAME, NS, methods, &e) < 0 ||
            ch_hub1_call_register(bus, CH_BUS_NAME, CH_HUB_PATH, "deep", NULL, NULL, NULL, &e) < 0) {
                fprintf(stderr, "worker: %s\n", e.message);
                return 4;
        }
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 0;
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return 6;
        }
}

/* RequestAll("nest", DEPTH): the depth of the worker's entry in the replies, or 0 and its
 * entry in the errors in *ret_error. */
static unsigned request_all(sd_bus *c, uint32_t depth, char **ret_error) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *k, *v;
        unsigned got = 0;
        int r;

        r = sd_bus_call_method(c, CH_BUS_NAME, NS, "org.clusterhub.Requests1", "RequestAll", &e, &reply,
                               "sva{sv}", "nest", "u", depth, 0);
        if (r < 0)
                g_error("RequestAll(%u): %s: %s", depth, e.name, e.message);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "s", &k), >, 0);
                got = read_nested(reply);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >, 0);
        }
        g_assert_cmpint(sd_bus_message_exit_container(reply), >, 0);
        *ret_error = NULL;
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{ss}"), >, 0);
        while (sd_bus_message_read(reply, "{ss}", &k, &v) > 0)
                *ret_error = g_strdup(v);
        sd_bus_message_unref(reply);
        return got;
}

static void test_request_all_depth(ThFixture *f, gconstpointer data) {
        ThProc worker = TH_PROC_NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *error = NULL;

        TH_RETURN_IF_SKIPPED(f);
        const char *argv[] = { self_path, "--worker", f->bus.address, NULL };
        g_assert_cmpint(th_spawn(&worker, argv, NULL, -1, -1), >, 0);
        g_assert_cmpint(ch_hub1_call_wait_for_workers(f->client, CH_BUS_NAME, CH_HUB_PATH, 1, 10000, NULL, &e), >=, 0);

        g_assert_cmpuint(request_all(f->client, 61, &error), ==, 61);
        g_assert_null(error);
        g_assert_cmpuint(request_all(f->client, 62, &error), ==, 0);
        g_assert_nonnull(error);
        g_test_message("errors[deep] = %s", error);
        g_assert_true(g_str_has_prefix(error, LIMIT_EXCEEDED ": "));
        g_free(error);

        /* a Request reply is v in, v out: as deep as the worker's own reply, so it passes */
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, "org.clusterhub.Requests1", "Request", &e, &reply,
                                           "ssva{sv}", "deep", "nest", "u", (uint32_t) 62, 0), >=, 0);
        g_assert_cmpuint(read_nested(reply), ==, 62);
        sd_bus_message_unref(reply);

        /* and the hub is still on the bus */
        g_assert_cmpuint(request_all(f->client, 3, &error), ==, 3);
        g_assert_null(error);
        th_proc_stop(&worker, SIGTERM, 5000);
        th_proc_clear(&worker);
}

int main(int argc, char *argv[]) {
        self_path = argv[0];
        if (argc >= 3 && g_str_equal(argv[1], "--worker"))
                return worker_main(argv[2]);
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST("/store-depth/bus-limits", test_bus_limits);
        TH_ADD_BUS_TEST_WITH_HUB("/store-depth/values", test_store_depth);
        TH_ADD_BUS_TEST_WITH_HUB("/store-depth/request-all", test_request_all_depth);
        return g_test_run();
}
