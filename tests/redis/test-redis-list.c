/* SPDX-License-Identifier: MIT */
/* Lists, sets and blocking pops of the Redis-backed store across two hubs (docs/redis.md "Lists,
 * sets and blocking pops"): a redis-server of the test's own, two private buses, a hub on each
 * (redis-fixture.h).  Pushes on one hub are popped on the other with their D-Bus types; a BLPop
 * waiting on one hub is served by a push on the other, or by bytes written straight into Redis
 * (through the keyspace notification); two waiters on two hubs share two values; timeouts,
 * Redis killed, the caller leaving (the value a round took for it goes back) and junk in Redis
 * all end with a named error or nothing lost.  Skipped only when redis-server is missing. */
#include <errno.h>
#include <glib.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "harness.h"

#include "redis-fixture.h"

#define STORE_IFACE "org.clusterhub.Store1"
#define RKEY(k) "clusterhub:{default}:k:" k

/* ---- calls ------------------------------------------------------------------------------- */

static sd_bus_message *new_call(Side *s, const char *method) {
        sd_bus_message *m = NULL;

        g_assert_cmpint(sd_bus_message_new_method_call(s->emitter, &m, TH_HUB_NAME, NS_PATH, STORE_IFACE, method), >=, 0);
        return m;
}

/* Sends M on SIDE: the reply, or NULL with ERR's name set. */
static sd_bus_message *send_call(Side *s, sd_bus_message *m, sd_bus_error *err) {
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call(s->emitter, m, 60 * 1000 * 1000, err, &reply);
        sd_bus_message_unref(m);
        return r < 0 ? NULL : reply;
}

static void assert_error(sd_bus_error *err, const char *name) {
        g_assert_true(sd_bus_error_is_set(err));
        if (!g_str_equal(err->name, name))
                g_error("expected %s, got %s: %s", name, err->name, err->message);
        g_test_message("%s: %s", err->name, err->message);
        sd_bus_error_free(err);
}

/* RPush/LPush KEY the strings of VALUES (NULL-terminated) as 's': the new length. */
static uint32_t push_strings(Side *s, const char *method, const char *key, const char *const *values) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_message *m = new_call(s, method);
        uint32_t len = 0;

        g_assert_cmpint(sd_bus_message_append(m, "s", key), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "v"), >=, 0);
        for (const char *const *v = values; *v; v++)
                g_assert_cmpint(sd_bus_message_append(m, "v", "s", *v), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        reply = send_call(s, m, &err);
        if (!reply)
                g_error("%s: %s", err.name, err.message);
        g_assert_cmpint(sd_bus_message_read(reply, "u", &len), >=, 0);
        return len;
}

static uint32_t call_u(Side *s, const char *method, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t u = 0;

        g_assert_cmpint(sd_bus_call_method(s->emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, method, NULL, &reply, "s", key), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "u", &u), >=, 0);
        return u;
}

/* The values of an "av" at REPLY's position that are all 's', joined with ','. */
static char *read_strings_av(sd_bus_message *reply) {
        GString *out = g_string_new(NULL);
        const char *v;

        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "v"), >, 0);
        while (!sd_bus_message_at_end(reply, false)) {
                g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &v), >=, 0);
                g_string_append_printf(out, "%s%s", out->len ? "," : "", v);
        }
        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        return g_string_free(out, false);
}

static char *lrange(Side *s, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

        g_assert_cmpint(sd_bus_call_method(s->emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LRange", NULL, &reply, "sxx", key,
                                           (int64_t) 0, (int64_t) -1), >=, 0);
        return read_strings_av(reply);
}

static char *lpop(Side *s, const char *key, uint32_t count) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

        g_assert_cmpint(sd_bus_call_method(s->emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LPop", NULL, &reply, "su", key, count),
                        >=, 0);
        return read_strings_av(reply);
}

/* The waiting calls go to the hubs' private sockets (VIA_SOCKET) instead of their buses. */
static bool pops_via_socket;

/* A connection of its own to SIDE's hub, for a waiting call. */
static sd_bus *connect_side(Side *s) {
        sd_bus *bus = NULL;

        if (pops_via_socket) {
                g_autofree char *path = th_hub_socket_path(&s->bus);
                g_assert_cmpint(th_connect_socket(&bus, path), ==, 0);
        } else
                g_assert_cmpint(th_connect(&bus, s->bus.address), ==, 0);
        return bus;
}

/* ---- blocking pops ------------------------------------------------------------------------ */

typedef struct Pop {
        sd_bus *bus;
        sd_bus_slot *slot;
        bool done;
        char *error;       /* its error's name */
        char *key;
        char *value;       /* an 's' value, or the type letter of another */
} Pop;

static int on_pop_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Pop *p = userdata;
        const char *key, *contents;
        char type;

        p->done = true;
        if (sd_bus_message_is_method_error(m, NULL)) {
                p->error = g_strdup(sd_bus_message_get_error(m)->name);
                return 0;
        }
        g_assert_cmpint(sd_bus_message_read(m, "s", &key), >=, 0);
        p->key = g_strdup(key);
        g_assert_cmpint(sd_bus_message_peek_type(m, &type, &contents), >, 0);
        if (g_str_equal(contents, "s")) {
                const char *v;
                g_assert_cmpint(sd_bus_message_read(m, "v", "s", &v), >=, 0);
                p->value = g_strdup(v);
        } else
                p->value = g_strdup(contents);
        return 0;
}

/* Starts METHOD (BLPop/BRPop) on KEYS (NULL-terminated) with TIMEOUT_MS on a connection of its
 * own to SIDE's hub, and waits until the hub has it waiting (WAITING more waiters there). */
static void pop_start_at(Pop *p, Side *s, const char *path, const char *method, const char *const *keys,
                         uint32_t timeout_ms) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

        *p = (Pop) { .bus = connect_side(s) };
        g_assert_cmpint(sd_bus_message_new_method_call(p->bus, &m, TH_HUB_NAME, path, STORE_IFACE, method), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, (char **) keys), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "u", timeout_ms), >=, 0);
        g_assert_cmpint(sd_bus_call_async(p->bus, &p->slot, m, on_pop_reply, p, 120 * 1000 * 1000), >=, 0);
        g_assert_cmpint(sd_bus_flush(p->bus), >=, 0);
}

static void pop_start(Pop *p, Side *s, const char *method, const char *const *keys, uint32_t timeout_ms) {
        pop_start_at(p, s, NS_PATH, method, keys, timeout_ms);
}

/* Processes P's connection until its reply came; false after WAIT_MS. */
static bool pop_wait(Pop *p) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while (!p->done) {
                if (g_get_monotonic_time() > end)
                        return false;
                while (sd_bus_process(p->bus, NULL) > 0)
                        ;
                if (!p->done)
                        (void) sd_bus_wait(p->bus, 50 * 1000);
        }
        return true;
}

/* Processes P's connection for a moment: its call is still unanswered. */
static void pop_still_waiting(Pop *p) {
        for (int i = 0; i < 5; i++) {
                while (sd_bus_process(p->bus, NULL) > 0)
                        ;
                (void) sd_bus_wait(p->bus, 20 * 1000);
        }
        g_assert_false(p->done);
}

static void pop_clear(Pop *p) {
        p->slot = sd_bus_slot_unref(p->slot);
        p->bus = sd_bus_flush_close_unref(p->bus);
        g_free(p->error);
        g_free(p->key);
        g_free(p->value);
        *p = (Pop) {};
}

/* Waits until SIDE's hub has N callers waiting in blocking pops. */
static bool wait_waiters(Side *s, uint64_t n) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while (stat_of(s, "backend_pop_waiters") != n) {
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(10 * 1000);
        }
        return true;
}

static redisContext *redis_raw(Fixture *f) {
        redisContext *c = redisConnectUnix(f->sock);

        g_assert_nonnull(c);
        g_assert_cmpint(c->err, ==, 0);
        return c;
}

static void raw_command(redisContext *c, const char *fmt, ...) {
        redisReply *r;
        va_list ap;

        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
        g_assert_nonnull(r);
        if (r->type == REDIS_REPLY_ERROR)
                g_error("Redis: %s", r->str);
        freeReplyObject(r);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Pushed on a, read and changed on b, and back. */
static void test_list_cross(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        g_autofree char *l1 = NULL, *l2 = NULL, *l3 = NULL, *l4 = NULL, *p1 = NULL, *p2 = NULL;
        sd_bus_message *m;

        if (f->skipped)
                return;
        g_assert_cmpuint(push_strings(&f->a, "RPush", "l", (const char *[]) { "a", "b", "c", NULL }), ==, 3);
        g_assert_cmpuint(push_strings(&f->b, "LPush", "l", (const char *[]) { "y", "z", NULL }), ==, 5);
        g_assert_cmpuint(call_u(&f->b, "LLen", "l"), ==, 5);
        l1 = lrange(&f->a, "l");
        g_assert_cmpstr(l1, ==, "z,y,a,b,c");
        /* LSet on b, LIndex on a */
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LSet", NULL, NULL, "sxv", "l",
                                           (int64_t) -1, "s", "C"), >=, 0);
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *v;
                g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LIndex", NULL, &reply, "sx",
                                                   "l", (int64_t) 4), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &v), >=, 0);
                g_assert_cmpstr(v, ==, "C");
        }
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LIndex", &err, NULL, "sx", "l",
                                           (int64_t) 5), <, 0);
        assert_error(&err, "org.clusterhub.Error.NoSuchKey");
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LSet", &err, NULL, "sxv", "l",
                                           (int64_t) 9, "s", "x"), <, 0);
        assert_error(&err, "org.clusterhub.Error.InvalidArgs");
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LSet", &err, NULL, "sxv", "nope",
                                           (int64_t) 0, "s", "x"), <, 0);
        assert_error(&err, "org.clusterhub.Error.NoSuchKey");
        /* LInsert on a, LRem on b, LTrim on a */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                int64_t len = 0;
                g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LInsert", NULL, &reply, "ssvv",
                                                   "l", "after", "s", "a", "s", "a2"), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "x", &len), >=, 0);
                g_assert_cmpint(len, ==, 6);
        }
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                uint32_t removed = 0;
                g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LRem", NULL, &reply, "sxv", "l",
                                                   (int64_t) 0, "s", "y"), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "u", &removed), >=, 0);
                g_assert_cmpuint(removed, ==, 1);
        }
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LTrim", NULL, NULL, "sxx", "l",
                                           (int64_t) 1, (int64_t) -1), >=, 0);
        l2 = lrange(&f->b, "l");
        g_assert_cmpstr(l2, ==, "a,a2,b,C");
        /* LMove from a's view to b's */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *v;
                g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LMove", NULL, &reply, "ssss",
                                                   "l", "l2", "left", "right"), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &v), >=, 0);
                g_assert_cmpstr(v, ==, "a");
        }
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LMove", &err, NULL, "ssss", "nope",
                                           "l2", "left", "right"), <, 0);
        assert_error(&err, "org.clusterhub.Error.NoSuchKey");
        l3 = lrange(&f->b, "l2");
        g_assert_cmpstr(l3, ==, "a");
        /* pops with a count on b; an absent list pops nothing */
        p1 = lpop(&f->b, "l", 2);
        g_assert_cmpstr(p1, ==, "a2,b");
        p2 = lpop(&f->b, "nope", 0);
        g_assert_cmpstr(p2, ==, "");
        /* RPushX on an absent list: 0, nothing made */
        g_assert_cmpuint(push_strings(&f->a, "RPushX", "nope", (const char *[]) { "x", NULL }), ==, 0);
        g_assert_cmpuint(call_u(&f->b, "LLen", "nope"), ==, 0);
        /* a list is a list: Get on it, LPush on a string */
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "str", "s",
                                           "v", 0), >=, 0);
        m = new_call(&f->a, "LPush");
        g_assert_cmpint(sd_bus_message_append(m, "sav", "str", 1, "s", "x"), >=, 0);
        g_assert_null(send_call(&f->a, m, &err));
        assert_error(&err, "org.clusterhub.Error.WrongType");
        l4 = lrange(&f->a, "l");
        g_assert_cmpstr(l4, ==, "C");
}

/* Every D-Bus type goes in on a and comes back on b with its type; LRem compares by value and
 * type. */
static void test_typed_elements(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_message *m;
        uint8_t y;
        int16_t n;
        uint16_t q;
        int32_t i;
        uint32_t u;
        int64_t x;
        uint64_t t;
        double d;
        int b;
        const char *s, *o, *g, *k1, *k2;
        int32_t v1, v2;

        if (f->skipped)
                return;
        m = new_call(&f->a, "RPush");
        g_assert_cmpint(sd_bus_message_append(m, "s", "typed"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "v"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "vvvvvvvvvvvvv", "y", 200, "n", -3, "q", 65535, "i", -70000, "u", 4000000000u,
                                              "x", INT64_MIN, "t", UINT64_MAX, "d", 2.5, "b", 1, "s", "42", "o", "/a/b", "g", "a{sv}",
                                              "a{si}", 2, "one", 1, "two", 2), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "vv", "x", (int64_t) 5, "s", "5"), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        reply = send_call(&f->a, m, NULL);
        g_assert_nonnull(reply);
        reply = sd_bus_message_unref(reply);

        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LRange", NULL, &reply, "sxx", "typed",
                                           (int64_t) 0, (int64_t) -1), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "v"), >, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "vvvvvvvvvvvv", "y", &y, "n", &n, "q", &q, "i", &i, "u", &u, "x", &x, "t", &t,
                                            "d", &d, "b", &b, "s", &s, "o", &o, "g", &g), >=, 0);
        g_assert_cmpuint(y, ==, 200);
        g_assert_cmpint(n, ==, -3);
        g_assert_cmpuint(q, ==, 65535);
        g_assert_cmpint(i, ==, -70000);
        g_assert_cmpuint(u, ==, 4000000000u);
        g_assert_cmpint(x, ==, INT64_MIN);
        g_assert_cmpuint(t, ==, UINT64_MAX);
        g_assert_cmpfloat(d, ==, 2.5);
        g_assert_cmpint(b, ==, 1);
        g_assert_cmpstr(s, ==, "42"); /* a numeric 's' stays 's' */
        g_assert_cmpstr(o, ==, "/a/b");
        g_assert_cmpstr(g, ==, "a{sv}");
        g_assert_cmpint(sd_bus_message_read(reply, "v", "a{si}", 2, &k1, &v1, &k2, &v2), >=, 0);
        g_assert_cmpstr(k1, ==, "one");
        g_assert_cmpint(v1, ==, 1);
        g_assert_cmpstr(k2, ==, "two");
        g_assert_cmpint(v2, ==, 2);
        g_assert_cmpint(sd_bus_message_read(reply, "vv", "x", &x, "s", &s), >=, 0);
        g_assert_cmpint(x, ==, 5);
        g_assert_cmpstr(s, ==, "5");
        reply = sd_bus_message_unref(reply);

        /* x 5 and s "5" are different values: LRem takes only the one asked for */
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LRem", NULL, &reply, "sxv", "typed",
                                           (int64_t) 0, "x", (int64_t) 5), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "u", &u), >=, 0);
        g_assert_cmpuint(u, ==, 1);
        reply = sd_bus_message_unref(reply);
        /* the blob as pivot: by its bytes */
        m = new_call(&f->b, "LInsert");
        g_assert_cmpint(sd_bus_message_append(m, "ssvv", "typed", "before", "a{si}", 2, "one", 1, "two", 2, "s", "marker"), >=, 0);
        reply = send_call(&f->b, m, NULL);
        g_assert_nonnull(reply);
        g_assert_cmpint(sd_bus_message_read(reply, "x", &x), >=, 0);
        g_assert_cmpint(x, ==, 15);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LIndex", NULL, &reply, "sx", "typed",
                                           (int64_t) 12), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &s), >=, 0);
        g_assert_cmpstr(s, ==, "marker");
}

static gint cmp_str(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *smembers(Side *s, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char **l = NULL, *out;

        g_assert_cmpint(sd_bus_call_method(s->emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SMembers", NULL, &reply, "s", key), >=, 0);
        g_assert_cmpint(sd_bus_message_read_strv(reply, &l), >=, 0);
        qsort(l, g_strv_length(l), sizeof(char *), (int (*)(const void *, const void *)) cmp_str);
        out = g_strjoinv(",", l);
        g_strfreev(l);
        return out;
}

static void test_sets_cross(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autofree char *m1 = NULL, *m2 = NULL, *popped = NULL, *rnd = NULL;
        const char *members[] = { "a", "b", "c", "a", NULL };
        uint32_t u = 0;
        int b = 0;

        if (f->skipped)
                return;
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SAdd", NULL, &reply, "sas", "set", 4,
                                           members[0], members[1], members[2], members[3]), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "u", &u), >=, 0);
        g_assert_cmpuint(u, ==, 3);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpuint(call_u(&f->b, "SCard", "set"), ==, 3);
        m1 = smembers(&f->b, "set");
        g_assert_cmpstr(m1, ==, "a,b,c");
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SIsMember", NULL, &reply, "ss", "set", "b"),
                        >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "b", &b), >=, 0);
        g_assert_true(b);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SRem", NULL, &reply, "sas", "set", 2, "b",
                                           "zz"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "u", &u), >=, 0);
        g_assert_cmpuint(u, ==, 1);
        reply = sd_bus_message_unref(reply);
        m2 = smembers(&f->a, "set");
        g_assert_cmpstr(m2, ==, "a,c");
        /* SRandMember: distinct, from the set; SPop takes them */
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SRandMember", NULL, &reply, "su", "set",
                                           5), >=, 0);
        {
                char **l = NULL;
                g_assert_cmpint(sd_bus_message_read_strv(reply, &l), >=, 0);
                g_assert_cmpuint(g_strv_length(l), ==, 2);
                g_strfreev(l);
        }
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SPop", NULL, &reply, "su", "set", 5), >=, 0);
        {
                char **l = NULL;
                g_assert_cmpint(sd_bus_message_read_strv(reply, &l), >=, 0);
                g_assert_cmpuint(g_strv_length(l), ==, 2);
                g_strfreev(l);
        }
        reply = sd_bus_message_unref(reply);
        g_assert_cmpuint(call_u(&f->a, "SCard", "set"), ==, 0);
        /* members are checked as the local store does */
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SAdd", &err, NULL, "sas", "set", 1, ""), <, 0);
        assert_error(&err, "org.clusterhub.Error.InvalidArgs");
        /* a set is a set */
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "RPush", NULL, NULL, "sav", "list", 1, "s",
                                           "x"), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SAdd", &err, NULL, "sas", "list", 1, "m"),
                        <, 0);
        assert_error(&err, "org.clusterhub.Error.WrongType");
}

/* A BLPop waiting on b is served by an RPush on a; a BRPop on b by bytes written into Redis
 * by another client (a canonical int64 reads back as 'x'), through the notification. */
static void test_blpop_cross(Fixture *f, gconstpointer data) {
        redisContext *c;
        Pop p;

        if (f->skipped)
                return;
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "q0", "q", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        pop_still_waiting(&p);
        g_assert_cmpuint(push_strings(&f->a, "RPush", "q", (const char *[]) { "job1", "job2", NULL }), ==, 2);
        g_assert_true(pop_wait(&p));
        g_assert_null(p.error);
        g_assert_cmpstr(p.key, ==, "q");
        g_assert_cmpstr(p.value, ==, "job1");
        pop_clear(&p);
        g_assert_cmpuint(call_u(&f->a, "LLen", "q"), ==, 1);

        /* at once when a list has something (BRPop: its tail) */
        pop_start(&p, &f->a, "BRPop", (const char *[]) { "q", NULL }, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.value, ==, "job2");
        pop_clear(&p);

        /* straight into Redis, as another client would */
        pop_start(&p, &f->b, "BRPop", (const char *[]) { "raw", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        c = redis_raw(f);
        raw_command(c, "RPUSH %s %s %s", RKEY("raw"), "7", "text");
        g_assert_true(pop_wait(&p));
        g_assert_null(p.error);
        g_assert_cmpstr(p.key, ==, "raw");
        g_assert_cmpstr(p.value, ==, "text");
        pop_clear(&p);
        pop_start(&p, &f->b, "BRPop", (const char *[]) { "raw", NULL }, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.value, ==, "x"); /* "7" is the int64 7 */
        pop_clear(&p);
        redisFree(c);
        g_assert_cmpuint(stat_of(&f->b, "backend_pop_waiters"), ==, 0);
}

/* Two waiters on two hubs, two values pushed: each gets exactly one. */
static void test_two_waiters(Fixture *f, gconstpointer data) {
        Pop pa, pb;

        if (f->skipped)
                return;
        pop_start(&pa, &f->a, "BLPop", (const char *[]) { "w", NULL }, 0);
        pop_start(&pb, &f->b, "BLPop", (const char *[]) { "w", NULL }, 0);
        g_assert_true(wait_waiters(&f->a, 1));
        g_assert_true(wait_waiters(&f->b, 1));
        g_assert_cmpuint(push_strings(&f->a, "RPush", "w", (const char *[]) { "v1", "v2", NULL }), >=, 0);
        g_assert_true(pop_wait(&pa));
        g_assert_true(pop_wait(&pb));
        g_assert_null(pa.error);
        g_assert_null(pb.error);
        g_assert_cmpstr(pa.value, !=, pb.value);
        g_assert_true(g_str_equal(pa.value, "v1") || g_str_equal(pa.value, "v2"));
        g_assert_true(g_str_equal(pb.value, "v1") || g_str_equal(pb.value, "v2"));
        g_assert_cmpuint(call_u(&f->a, "LLen", "w"), ==, 0);
        pop_clear(&pa);
        pop_clear(&pb);

        /* FIFO among one hub's waiters: the first one gets the first value */
        pop_start(&pa, &f->b, "BLPop", (const char *[]) { "fifo", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        pop_start(&pb, &f->b, "BLPop", (const char *[]) { "fifo", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 2));
        g_assert_cmpuint(push_strings(&f->a, "RPush", "fifo", (const char *[]) { "first", NULL }), ==, 1);
        g_assert_true(pop_wait(&pa));
        g_assert_cmpstr(pa.value, ==, "first");
        pop_still_waiting(&pb);
        g_assert_cmpuint(push_strings(&f->a, "RPush", "fifo", (const char *[]) { "second", NULL }), >=, 0);
        g_assert_true(pop_wait(&pb));
        g_assert_cmpstr(pb.value, ==, "second");
        pop_clear(&pa);
        pop_clear(&pb);
}

/* 300 waiters of one hub (one connection, 300 calls) and 300 values pushed at once: the round
 * runs in several chunks, in order, and waiter i gets value i. */
static void test_many_waiters(Fixture *f, gconstpointer data) {
        enum { N = 300 };
        g_autofree Pop *p = g_new0(Pop, N);
        sd_bus *bus;
        sd_bus_message *m;
        gint64 end;
        unsigned done;

        if (f->skipped)
                return;
        bus = connect_side(&f->b);
        for (unsigned i = 0; i < N; i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;

                p[i].bus = bus;
                g_assert_cmpint(sd_bus_message_new_method_call(bus, &call, TH_HUB_NAME, NS_PATH, STORE_IFACE, "BLPop"), >=, 0);
                g_assert_cmpint(sd_bus_message_append(call, "asu", 1, "many", 0), >=, 0);
                g_assert_cmpint(sd_bus_call_async(bus, &p[i].slot, call, on_pop_reply, &p[i], 120 * 1000 * 1000), >=, 0);
        }
        g_assert_cmpint(sd_bus_flush(bus), >=, 0);
        g_assert_true(wait_waiters(&f->b, N));
        m = new_call(&f->a, "RPush");
        g_assert_cmpint(sd_bus_message_append(m, "s", "many"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "v"), >=, 0);
        for (unsigned i = 0; i < N; i++) {
                g_autofree char *v = g_strdup_printf("%u", 1000 + i);
                g_assert_cmpint(sd_bus_message_append(m, "v", "s", v), >=, 0);
        }
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        sd_bus_message_unref(send_call(&f->a, m, NULL));
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        do {
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                done = 0;
                for (unsigned i = 0; i < N; i++)
                        done += p[i].done;
                if (done < N)
                        (void) sd_bus_wait(bus, 50 * 1000);
                g_assert_true(g_get_monotonic_time() < end);
        } while (done < N);
        for (unsigned i = 0; i < N; i++) {
                g_autofree char *want = g_strdup_printf("%u", 1000 + i);
                g_assert_null(p[i].error);
                g_assert_cmpstr(p[i].value, ==, want);
                p[i].bus = NULL;
                pop_clear(&p[i]);
        }
        sd_bus_flush_close_unref(bus);
        g_assert_cmpuint(call_u(&f->a, "LLen", "many"), ==, 0);
}

/* Keyspace notifications switched off behind the hub's back: the periodic retry still serves. */
static void test_retry_without_notifications(Fixture *f, gconstpointer data) {
        redisContext *c;
        Pop p;

        if (f->skipped)
                return;
        c = redis_raw(f);
        raw_command(c, "CONFIG SET notify-keyspace-events %s", "");
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "quiet", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        raw_command(c, "RPUSH %s %s", RKEY("quiet"), "late");
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.value, ==, "late");
        pop_clear(&p);
        redisFree(c);
}

static int on_invalidate(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        GString *seen = userdata;
        char **keys = NULL;

        if (sd_bus_message_read_strv(m, &keys) >= 0) {
                g_autofree char *joined = g_strjoinv(",", keys);
                g_string_append_printf(seen, "[%s]", joined);
        }
        g_strfreev(keys);
        return 0;
}

/* Client-side caching: a list or set write through a hub tells that hub's trackers of its keys
 * before the write's reply. */
static void test_tracking(Fixture *f, gconstpointer data) {
        g_autoptr(GString) seen = g_string_new(NULL);
        const char *keys[] = { "tl", "tl2", "ts" };
        sd_bus *tb;
        int fd = -1;

        if (f->skipped)
                return;
        tb = connect_side(&f->b);
        g_assert_cmpint(sd_bus_match_signal(tb, NULL, NULL, NS_PATH, STORE_IFACE, "Invalidate", on_invalidate, seen), >=, 0);
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                uint32_t buckets;
                g_assert_cmpint(sd_bus_call_method(tb, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Track", NULL, &reply, "a{sv}", 0), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "hu", &fd, &buckets), >=, 0);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                g_assert_cmpint(sd_bus_call_method(tb, TH_HUB_NAME, NS_PATH, STORE_IFACE, "GetTracked", NULL, &reply, "s", keys[i]), >=, 0);
        }
        /* each write's Invalidate is queued on TB before the write's reply: no waiting */
        g_assert_cmpint(sd_bus_call_method(tb, TH_HUB_NAME, NS_PATH, STORE_IFACE, "RPush", NULL, NULL, "sav", "tl", 1, "s", "x"), >=, 0);
        while (sd_bus_process(tb, NULL) > 0)
                ;
        g_assert_nonnull(strstr(seen->str, "[tl]"));
        g_assert_cmpint(sd_bus_call_method(tb, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LMove", NULL, NULL, "ssss", "tl", "tl2", "left",
                                           "left"), >=, 0);
        while (sd_bus_process(tb, NULL) > 0)
                ;
        g_assert_nonnull(strstr(seen->str, "tl2"));
        g_assert_cmpint(sd_bus_call_method(tb, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SAdd", NULL, NULL, "sas", "ts", 1, "m"), >=, 0);
        while (sd_bus_process(tb, NULL) > 0)
                ;
        g_assert_nonnull(strstr(seen->str, "ts"));
        sd_bus_flush_close_unref(tb);
}

/* Timeout as local; a key of another type is WrongType at once. */
static void test_timeout_and_type(Fixture *f, gconstpointer data) {
        Pop p;

        if (f->skipped)
                return;
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "empty", NULL }, 100);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, "org.clusterhub.Error.Timeout");
        pop_clear(&p);
        g_assert_true(wait_waiters(&f->b, 0));
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "str", "s",
                                           "v", 0), >=, 0);
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "empty", "str", NULL }, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, "org.clusterhub.Error.WrongType");
        pop_clear(&p);
        /* no key: InvalidArgs */
        pop_start(&p, &f->b, "BLPop", (const char *[]) { NULL }, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, "org.clusterhub.Error.InvalidArgs");
        pop_clear(&p);
}

/* Redis killed while a BLPop waits: BackendUnavailable, and a new one is refused at once. */
static void test_redis_killed(Fixture *f, gconstpointer data) {
        Pop p;

        if (f->skipped)
                return;
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "k", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        g_assert_cmpint(th_proc_stop(&f->redis, SIGKILL, 10000), !=, -1);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, BACKEND_UNAVAILABLE);
        pop_clear(&p);
        g_assert_true(wait_connected(&f->b, false));
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "k", NULL }, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, BACKEND_UNAVAILABLE);
        pop_clear(&p);
        g_assert_cmpuint(stat_of(&f->b, "backend_pop_waiters"), ==, 0);
        /* back: waiting works again */
        redis_start(f);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_true(wait_connected(&f->b, true));
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "k", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        g_assert_cmpuint(push_strings(&f->a, "RPush", "k", (const char *[]) { "after", NULL }), ==, 1);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.value, ==, "after");
        pop_clear(&p);
}

/* The caller leaves while it waits: nothing is lost.  First while no round is in flight; then
 * while Redis is stopped with the round that pops for it queued: the value goes back. */
static void test_caller_gone(Fixture *f, gconstpointer data) {
        g_autofree char *got = NULL, *got2 = NULL;
        Pop p;

        if (f->skipped)
                return;
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "g", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        p.bus = sd_bus_flush_close_unref(p.bus);
        g_assert_true(wait_waiters(&f->b, 0));
        g_assert_cmpuint(push_strings(&f->a, "RPush", "g", (const char *[]) { "kept", NULL }), ==, 1);
        got = lpop(&f->b, "g", 0);
        g_assert_cmpstr(got, ==, "kept");
        pop_clear(&p);

        g_assert_cmpuint(push_strings(&f->a, "RPush", "g", (const char *[]) { "v1", "v2", NULL }), ==, 2);
        g_assert_cmpint(th_proc_kill(&f->redis, SIGSTOP), ==, 0);
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "g", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1)); /* its round waits for Redis */
        p.bus = sd_bus_flush_close_unref(p.bus);
        g_assert_true(wait_waiters(&f->b, 0)); /* an orphan now */
        g_assert_cmpint(th_proc_kill(&f->redis, SIGCONT), ==, 0);
        g_assert_true(wait_stat_at_least(&f->b, "backend_pops_pushed_back", 1));
        /* through hub b: its push-back went out on b's command connection before this LRange
         * (the counter moves when it is sent, not when Redis has run it; through hub a the
         * LRange could overtake it) */
        got2 = lrange(&f->b, "g");
        g_assert_cmpstr(got2, ==, "v1,v2"); /* LPUSH back onto the head: the order is kept */
        pop_clear(&p);
        g_assert_cmpuint(stat_of(&f->b, "backend_pops_lost"), ==, 0);
}

/* Bytes in Redis that are not clusterhub values: a named error, never a crash. */
static void test_hostile(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        redisContext *c;
        Pop p;

        if (f->skipped)
                return;
        c = redis_raw(f);
        raw_command(c, "RPUSH %s %b %s", RKEY("bad"), "\xff\xfejunk", (size_t) 6, "fine");
        raw_command(c, "RPUSH %s %b", RKEY("bad2"), "\xc3\x28", (size_t) 2); /* not UTF-8 */
        raw_command(c, "RPUSH %s %b", RKEY("bad3"), "\xffvs\0\x01", (size_t) 5); /* a blob that does not parse */
        raw_command(c, "SADD %s %b", RKEY("badset"), "\xff\x00", (size_t) 2);
        redisFree(c);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LRange", &err, NULL, "sxx", "bad",
                                           (int64_t) 0, (int64_t) -1), <, 0);
        assert_error(&err, "org.clusterhub.Error.WrongType");
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LIndex", &err, NULL, "sx", "bad",
                                           (int64_t) 0), <, 0);
        assert_error(&err, "org.clusterhub.Error.WrongType");
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LPop", &err, NULL, "su", "bad", 1), <, 0);
        assert_error(&err, "org.clusterhub.Error.WrongType");
        /* the junk was consumed: the rest reads */
        {
                g_autofree char *rest = lrange(&f->b, "bad");
                g_assert_cmpstr(rest, ==, "fine");
        }
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "bad2", NULL }, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, "org.clusterhub.Error.WrongType");
        pop_clear(&p);
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "RPop", &err, NULL, "su", "bad3", 1), <, 0);
        assert_error(&err, "org.clusterhub.Error.WrongType");
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "SMembers", &err, NULL, "s", "badset"), <, 0);
        assert_error(&err, "org.clusterhub.Error.WrongType");
        /* longer than --max-value-bytes (64 here): LimitExceeded, from a read, a pop and a wait */
        c = redis_raw(f);
        raw_command(c, "RPUSH %s %s %s", RKEY("big"), "short", "this element is far longer than the sixty-four bytes this test's hubs allow");
        raw_command(c, "RPUSH %s %s", RKEY("big2"), "this element is far longer than the sixty-four bytes this test's hubs allow");
        redisFree(c);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "LRange", &err, NULL, "sxx", "big",
                                           (int64_t) 0, (int64_t) -1), <, 0);
        assert_error(&err, "org.clusterhub.Error.LimitExceeded");
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "RPop", &err, NULL, "su", "big", 1), <, 0);
        assert_error(&err, "org.clusterhub.Error.LimitExceeded");
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "big2", NULL }, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, "org.clusterhub.Error.LimitExceeded");
        pop_clear(&p);
        {
                g_autofree char *rest = lrange(&f->b, "big");
                g_assert_cmpstr(rest, ==, "short");
        }
        /* both hubs still answer */
        g_assert_cmpuint(call_u(&f->a, "LLen", "bad"), ==, 1);
        g_assert_cmpuint(call_u(&f->b, "LLen", "bad2"), ==, 0);
}


/* The hub exits while a round is in flight (Redis stopped): the caller hears ShuttingDown, and
 * the hub exits cleanly (the round's failure comes back while the hub is freeing itself). */
static void test_exit_in_round(Fixture *f, gconstpointer data) {
        Pop p;

        if (f->skipped)
                return;
        g_assert_cmpint(th_proc_kill(&f->redis, SIGSTOP), ==, 0);
        pop_start(&p, &f->b, "BLPop", (const char *[]) { "e", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        g_assert_cmpint(th_hub_stop(&f->b.hub), ==, 0);
        g_assert_true(pop_wait(&p));
        g_assert_cmpstr(p.error, ==, "org.clusterhub.Error.ShuttingDown");
        pop_clear(&p);
        g_assert_cmpint(th_proc_kill(&f->redis, SIGCONT), ==, 0);
}

/* DropNamespace ends the waiters of that namespace on that hub; the other hub's wait on. */
static void test_namespace_dropped(Fixture *f, gconstpointer data) {
        Pop pa, pb;

        if (f->skipped)
                return;
        pop_start(&pa, &f->a, "BLPop", (const char *[]) { "d", NULL }, 0);
        pop_start(&pb, &f->b, "BLPop", (const char *[]) { "d", NULL }, 0);
        g_assert_true(wait_waiters(&f->a, 1));
        g_assert_true(wait_waiters(&f->b, 1));
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "DropNamespace", NULL, NULL, "s",
                                           "default"), >=, 0);
        g_assert_true(pop_wait(&pb));
        g_assert_cmpstr(pb.error, ==, "org.clusterhub.Error.NamespaceDropped");
        pop_still_waiting(&pa);
        g_assert_cmpuint(push_strings(&f->b, "RPush", "d", (const char *[]) { "still", NULL }), ==, 1);
        g_assert_true(pop_wait(&pa));
        g_assert_cmpstr(pa.value, ==, "still");
        pop_clear(&pa);
        pop_clear(&pb);

        /* a namespace whose only use here is the wait (the hub let its Namespace go when idle) */
        pop_start_at(&pb, &f->b, "/org/clusterhub/Hub1/ns/jobs", "BLPop", (const char *[]) { "d", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "DropNamespace", NULL, NULL, "s", "jobs"),
                        >=, 0);
        pop_still_waiting(&pb); /* a's drop ends a's waiters, not b's */
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "DropNamespace", NULL, NULL, "s", "jobs"),
                        >=, 0);
        g_assert_true(pop_wait(&pb));
        g_assert_cmpstr(pb.error, ==, "org.clusterhub.Error.NamespaceDropped");
        pop_clear(&pb);
        g_assert_true(wait_waiters(&f->b, 0));
        /* and a new wait there works */
        pop_start_at(&pb, &f->b, "/org/clusterhub/Hub1/ns/jobs", "BLPop", (const char *[]) { "d", NULL }, 0);
        g_assert_true(wait_waiters(&f->b, 1));
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
                g_assert_cmpint(sd_bus_message_new_method_call(f->a.emitter, &m, TH_HUB_NAME, "/org/clusterhub/Hub1/ns/jobs",
                                                               STORE_IFACE, "RPush"), >=, 0);
                g_assert_cmpint(sd_bus_message_append(m, "sav", "d", 1, "s", "new"), >=, 0);
                g_assert_cmpint(sd_bus_call(f->a.emitter, m, 0, NULL, &reply), >=, 0);
        }
        g_assert_true(pop_wait(&pb));
        g_assert_cmpstr(pb.value, ==, "new");
        pop_clear(&pb);
}

static int cmp_double(gconstpointer a, gconstpointer b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* The time from an RPush on PUSHER returning to a BLPop already waiting on WAITER being
 * answered, N times; g_test_message() prints the median and the 90th percentile. */
static void measure_serve(Fixture *f, Side *pusher, Side *waiter, const char *what, unsigned n) {
        g_autofree double *t = g_new0(double, n);

        for (unsigned i = 0; i < n; i++) {
                Pop p;
                gint64 start;

                pop_start(&p, waiter, "BLPop", (const char *[]) { "perf", NULL }, 0);
                g_assert_true(wait_waiters(waiter, 1));
                start = g_get_monotonic_time();
                g_assert_cmpuint(push_strings(pusher, "RPush", "perf", (const char *[]) { "v", NULL }), >=, 0);
                g_assert_true(pop_wait(&p));
                t[i] = (double) (g_get_monotonic_time() - start) / 1000.0;
                g_assert_cmpstr(p.value, ==, "v");
                pop_clear(&p);
        }
        qsort(t, n, sizeof(double), cmp_double);
        g_test_message("%s: %u pops, median %.2f ms, 90th percentile %.2f ms (from the push's call until the waiter's reply)",
                       what, n, t[n / 2], t[n * 9 / 10]);
}

/* -m perf: a waiting BLPop served by a push on the other hub, and on its own hub. */
static void test_perf(Fixture *f, gconstpointer data) {
        if (f->skipped)
                return;
        measure_serve(f, &f->a, &f->b, "push on a, BLPop waiting on b", 200);
        measure_serve(f, &f->b, &f->b, "push on b, BLPop waiting on b", 200);
}

static void setup(Fixture *f, gconstpointer data) {
        pops_via_socket = GPOINTER_TO_UINT(data) & VIA_SOCKET;
        fixture_setup(f, data);
}

static void setup_small_values(Fixture *f, gconstpointer data) {
        f->hub_args[0] = "--max-value-bytes=64";
        setup(f, data);
}

static void setup_long_timeout(Fixture *f, gconstpointer data) {
        /* SIGSTOP holds Redis for as long as the test needs: no command may time out meanwhile */
        f->hub_args[0] = "--redis-timeout-ms=600000";
        setup(f, data);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add("/redis-list/list-cross", Fixture, NULL, setup, test_list_cross, fixture_teardown);
        g_test_add("/redis-list/typed-elements", Fixture, NULL, setup, test_typed_elements, fixture_teardown);
        g_test_add("/redis-list/sets-cross", Fixture, NULL, setup, test_sets_cross, fixture_teardown);
        g_test_add("/redis-list/blpop-cross", Fixture, NULL, setup, test_blpop_cross, fixture_teardown);
        g_test_add("/redis-list/two-waiters", Fixture, NULL, setup, test_two_waiters, fixture_teardown);
        g_test_add("/redis-list/many-waiters", Fixture, NULL, setup, test_many_waiters, fixture_teardown);
        g_test_add("/redis-list/retry-without-notifications", Fixture, NULL, setup, test_retry_without_notifications, fixture_teardown);
        g_test_add("/redis-list/tracking", Fixture, NULL, setup, test_tracking, fixture_teardown);
        g_test_add("/redis-list/timeout-and-type", Fixture, NULL, setup, test_timeout_and_type, fixture_teardown);
        g_test_add("/redis-list/redis-killed", Fixture, NULL, setup, test_redis_killed, fixture_teardown);
        g_test_add("/redis-list/caller-gone", Fixture, NULL, setup_long_timeout, test_caller_gone, fixture_teardown);
        g_test_add("/redis-list/namespace-dropped", Fixture, NULL, setup, test_namespace_dropped, fixture_teardown);
        g_test_add("/redis-list/exit-in-round", Fixture, NULL, setup_long_timeout, test_exit_in_round, fixture_teardown);
        /* the waiting callers on the hubs' private sockets */
        g_test_add("/redis-list/blpop-cross-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), setup, test_blpop_cross, fixture_teardown);
        g_test_add("/redis-list/caller-gone-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), setup_long_timeout, test_caller_gone,
                   fixture_teardown);
        g_test_add("/redis-list/hostile", Fixture, NULL, setup_small_values, test_hostile, fixture_teardown);
        if (g_test_perf())
                g_test_add("/redis-list/perf", Fixture, NULL, setup, test_perf, fixture_teardown);
        return g_test_run();
}
