/* SPDX-License-Identifier: MIT */
/*
 * The Redis-backed store (--redis, docs/redis.md "Store"): two hubs on two private buses share
 * one redis-server (redis-fixture.h).  A write on one hub is read on the other; Incr from both
 * is atomic; typed values keep their type across hosts; KeyChanged fires on both hubs; a TTL
 * set on one expires for the other; Redis down -> BackendUnavailable, Redis back -> it works;
 * hostile bytes written straight into Redis get a named error, never a crash.
 */
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/mman.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "harness.h"
#include "redis-fixture.h"

#define STORE_IFACE "org.clusterhub.Store1"
#define streq(a, b) (strcmp((a), (b)) == 0)

/* Store calls go through the hub's private socket (the fixture's listener connection) in the
 * VIA_SOCKET variants, else through the bus. */
static bool via_socket;

static sd_bus *conn(Side *s) {
        return via_socket ? s->listener : s->emitter;
}

static bool strv_has(char **l, const char *s) {
        return l && g_strv_contains((const char *const *) l, s);
}

static redisReply *redis_cmd(Fixture *f, int argc, const char **argv, const size_t *len) {
        redisContext *c = redisConnectUnix(f->sock);
        redisReply *r;

        g_assert_true(c && !c->err);
        r = redisCommandArgv(c, argc, argv, len);
        g_assert_nonnull(r);
        redisFree(c);
        return r;
}

static void set_s(Side *s, const char *key, const char *value) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(conn(s), TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", &e, NULL, "sva{sv}", key, "s", value, 0);
        if (r < 0)
                g_error("Set %s: %s", key, e.message);
}

/* Get KEY as text: "s:TEXT", "x:42", "d:1.5", or the error name. */
static char *get_text(Side *s, const char *key) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *contents = NULL;
        char type = 0;
        int r;

        r = sd_bus_call_method(conn(s), TH_HUB_NAME, NS_PATH, STORE_IFACE, "Get", &e, &reply, "s", key);
        if (r < 0)
                return g_strdup(e.name);
        g_assert_cmpint(sd_bus_message_peek_type(reply, &type, &contents), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'v', contents), >=, 0);
        if (streq(contents, "s")) {
                const char *t;
                g_assert_cmpint(sd_bus_message_read_basic(reply, 's', &t), >=, 0);
                return g_strdup_printf("s:%s", t);
        }
        if (streq(contents, "x")) {
                int64_t x;
                g_assert_cmpint(sd_bus_message_read_basic(reply, 'x', &x), >=, 0);
                return g_strdup_printf("x:%" G_GINT64_FORMAT, x);
        }
        if (streq(contents, "d")) {
                double d;
                g_assert_cmpint(sd_bus_message_read_basic(reply, 'd', &d), >=, 0);
                return g_strdup_printf("d:%.17g", d);
        }
        return g_strdup_printf("%s:?", contents);
}

static int incr(Side *s, const char *key, int64_t by, int64_t *ret, sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(s->emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Incr", e, &reply, "sx", key, by);
        if (r < 0)
                return r;
        return sd_bus_message_read(reply, "x", ret);
}

static void test_set_get_cross(Fixture *f, gconstpointer data) {
        g_autofree char *v1 = NULL, *v2 = NULL, *v3 = NULL;

        if (f->skipped)
                return;
        via_socket = GPOINTER_TO_UINT(data) & VIA_SOCKET;
        set_s(&f->a, "greeting", "hello from a");
        v1 = get_text(&f->b, "greeting");
        g_assert_cmpstr(v1, ==, "s:hello from a");
        set_s(&f->b, "greeting", "hello from b");
        v2 = get_text(&f->a, "greeting");
        g_assert_cmpstr(v2, ==, "s:hello from b");
        v3 = get_text(&f->a, "missing");
        g_assert_cmpstr(v3, ==, "org.clusterhub.Error.NoSuchKey");
        via_socket = false;
}

/* Callers that leave while Redis has their calls, and a namespace dropped meanwhile: the
 * replies find nobody, and nothing is used after it was freed (run under ASan). */
static void test_caller_gone(Fixture *f, gconstpointer data) {
        via_socket = GPOINTER_TO_UINT(data) & VIA_SOCKET;
        if (f->skipped)
                return;
        for (unsigned round = 0; round < 5; round++) {
                g_autofree char *path = th_hub_socket_path(&f->a.bus);
                sd_bus *c = NULL;
                if (via_socket)
                        g_assert_cmpint(th_connect_socket(&c, path), >=, 0);
                else
                        g_assert_cmpint(th_connect(&c, f->a.bus.address), >=, 0);
                for (unsigned i = 0; i < 200; i++) {
                        g_autofree char *key = g_strdup_printf("gone%u", i);
                        g_assert_cmpint(sd_bus_call_method_async(c, NULL, TH_HUB_NAME, "/org/clusterhub/Hub1/ns/leaving", STORE_IFACE,
                                                                 i % 2 ? "Set" : "Append", NULL, NULL, i % 2 ? "sva{sv}" : "ss", key,
                                                                 "s", "x", 0), >=, 0);
                        g_assert_cmpint(sd_bus_call_method_async(c, NULL, TH_HUB_NAME, "/org/clusterhub/Hub1/ns/leaving", STORE_IFACE,
                                                                 "Incr", NULL, NULL, "sx", "n", (int64_t) 1), >=, 0);
                }
                g_assert_cmpint(sd_bus_flush(c), >=, 0);
                if (round % 2)
                        (void) sd_bus_call_method(f->a.emitter, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "DropNamespace", NULL, NULL, "s",
                                                  "leaving");
                sd_bus_flush_close_unref(c);
        }
        set_s(&f->a, "after", "ok");
        g_autofree char *v = get_text(&f->b, "after");
        g_assert_cmpstr(v, ==, "s:ok");
        via_socket = false;
}

/* Replies to the pipelined calls of test_incr_atomic. */
typedef struct Tally {
        unsigned replies, errors;
} Tally;

static int on_incr_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Tally *t = userdata;
        t->replies++;
        if (sd_bus_message_is_method_error(m, NULL)) {
                t->errors++;
                g_test_message("Incr failed: %s", sd_bus_message_get_error(m)->message);
        }
        return 0;
}

/* Sends N Incr(KEY, BY_A) on a and N Incr(KEY, BY_B) on b, interleaved and pipelined, and
 * waits for every reply (a hub may answer them out of order: a compare-and-set retries). */
static void incr_both(Fixture *f, const char *key, unsigned n, int64_t by_a, int64_t by_b) {
        Tally t = {};
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        for (unsigned i = 0; i < n; i++) {
                g_assert_cmpint(sd_bus_call_method_async(f->a.emitter, NULL, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Incr", on_incr_reply,
                                                         &t, "sx", key, by_a), >=, 0);
                g_assert_cmpint(sd_bus_call_method_async(f->b.emitter, NULL, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Incr", on_incr_reply,
                                                         &t, "sx", key, by_b), >=, 0);
        }
        while (t.replies < 2 * n) {
                g_assert_true(g_get_monotonic_time() < end);
                while (sd_bus_process(f->a.emitter, NULL) > 0 || sd_bus_process(f->b.emitter, NULL) > 0)
                        ;
                if (t.replies < 2 * n)
                        (void) sd_bus_wait(f->a.emitter, 10 * 1000);
        }
        g_assert_cmpuint(t.errors, ==, 0);
}

/* Incr from both hubs, interleaved, pipelined: the exact sum (Redis's INCRBY, atomic). */
static void test_incr_atomic(Fixture *f, gconstpointer data) {
        int64_t v = 0;

        if (f->skipped)
                return;
        incr_both(f, "counter", 500, 1, 2);
        g_assert_cmpint(incr(&f->b, "counter", 0, &v, NULL), >=, 0);
        g_assert_cmpint(v, ==, 1500);

        /* a string holding a number stays a string; the read-modify-write is atomic too */
        set_s(&f->a, "text-counter", "10");
        incr_both(f, "text-counter", 50, 1, 1);
        g_autofree char *t = get_text(&f->a, "text-counter");
        g_assert_cmpstr(t, ==, "s:110");

        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                g_assert_cmpint(incr(&f->a, "counter", INT64_MAX, &v, &e), <, 0);
                g_assert_cmpstr(e.name, ==, "org.clusterhub.Error.Overflow");
        }
}

/* Typed values keep their type across hosts. */
static void test_typed(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *k1, *k2, *s1;
        int64_t x;
        double d;
        uint32_t u;

        if (f->skipped)
                return;
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "int", "x",
                                           (int64_t) -42, 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "dbl", "d",
                                           2.5, 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "str42",
                                           "s", "42", 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "u32",
                                           "u", (uint32_t) 7, 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "dict",
                                           "a{sv}", 2, "one", "x", (int64_t) 1, "two", "s", "zwei", 0), >=, 0);
        g_autofree char *vi = get_text(&f->b, "int"), *vd = get_text(&f->b, "dbl"), *vs = get_text(&f->b, "str42");
        g_assert_cmpstr(vi, ==, "x:-42");
        g_assert_cmpstr(vd, ==, "d:2.5");
        g_assert_cmpstr(vs, ==, "s:42");

        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Get", &e, &reply, "s", "u32"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "u", &u), >=, 0);
        g_assert_cmpuint(u, ==, 7);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Get", &e, &reply, "s", "dict"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "a{sv}", 2, &k1, "x", &x, &k2, "s", &s1), >=, 0);
        g_assert_cmpstr(k1, ==, "one");
        g_assert_cmpint(x, ==, 1);
        g_assert_cmpstr(k2, ==, "two");
        g_assert_cmpstr(s1, ==, "zwei");
        reply = sd_bus_message_unref(reply);

        /* IncrFloat on the double, from the other hub; Incr on the u keeps it a u */
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "IncrFloat", &e, &reply, "sd", "dbl", 0.25),
                        >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "d", &d), >=, 0);
        g_assert_cmpfloat(d, ==, 2.75);
        g_assert_cmpint(incr(&f->b, "u32", 3, &x, NULL), >=, 0);
        g_assert_cmpint(x, ==, 10);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Type", &e, &reply, "s", "u32"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &s1), >=, 0);
        g_assert_cmpstr(s1, ==, "int");

        /* what another Redis client reads: an int64 is plain decimal */
        const char *argv[] = { "GET", "clusterhub:{default}:k:int" };
        redisReply *r = redis_cmd(f, 2, argv, NULL);
        g_assert_cmpint(r->type, ==, REDIS_REPLY_STRING);
        g_assert_cmpstr(r->str, ==, "-42");
        freeReplyObject(r);
}

/* KeyChanged: received on both hubs for a write on one. */
typedef struct Changes {
        GPtrArray *seen; /* "key event" */
} Changes;

static int on_key_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Changes *c = userdata;
        const char *key, *event;

        if (sd_bus_message_read(m, "ss", &key, &event) >= 0)
                g_ptr_array_add(c->seen, g_strdup_printf("%s %s", key, event));
        return 0;
}

static bool has_change(Changes *c, const char *what) {
        for (guint i = 0; i < c->seen->len; i++)
                if (streq(c->seen->pdata[i], what))
                        return true;
        return false;
}

static bool wait_change(Side *s, Changes *c, const char *what) {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

        while (!has_change(c, what)) {
                if (g_get_monotonic_time() > end)
                        return false;
                while (sd_bus_process(s->listener, NULL) > 0)
                        ;
                if (has_change(c, what))
                        break;
                (void) sd_bus_wait(s->listener, 50 * 1000);
        }
        return true;
}

static void test_key_changed(Fixture *f, gconstpointer data) {
        Changes ca = { g_ptr_array_new_with_free_func(g_free) }, cb = { g_ptr_array_new_with_free_func(g_free) };
        g_autofree char *ttl_value = NULL;
        gint64 end;

        if (f->skipped)
                return;
        via_socket = GPOINTER_TO_UINT(data) & VIA_SOCKET;
        g_assert_cmpint(sd_bus_match_signal(f->a.listener, NULL, NULL, NS_PATH, STORE_IFACE, "KeyChanged", on_key_changed, &ca), >=, 0);
        g_assert_cmpint(sd_bus_match_signal(f->b.listener, NULL, NULL, NS_PATH, STORE_IFACE, "KeyChanged", on_key_changed, &cb), >=, 0);
        set_s(&f->a, "watched", "1");
        g_assert_true(wait_change(&f->a, &ca, "watched set"));
        g_assert_true(wait_change(&f->b, &cb, "watched set"));
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "HSet", NULL, NULL, "sa{sv}", "h", 1, "f",
                                           "s", "v"), >=, 0);
        g_assert_true(wait_change(&f->a, &ca, "h hset"));
        g_assert_true(wait_change(&f->b, &cb, "h hset"));

        /* a TTL set on a expires for b, which hears "expired" */
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "short",
                                           "s", "soon gone", 1, "ttl_ms", "t", (uint64_t) 200), >=, 0);
        g_assert_true(wait_change(&f->b, &cb, "short expired"));
        ttl_value = get_text(&f->b, "short");
        g_assert_cmpstr(ttl_value, ==, "org.clusterhub.Error.NoSuchKey");
        /* one signal per change on each hub: the writer does not also emit its own */
        end = 0;
        for (guint i = 0; i < ca.seen->len; i++)
                end += streq(ca.seen->pdata[i], "watched set");
        g_assert_cmpint(end, ==, 1);
        g_ptr_array_unref(ca.seen);
        g_ptr_array_unref(cb.seen);
        via_socket = false;
}

/* Redis killed: store calls answer BackendUnavailable, never hang; Redis back: they work. */
static void test_down_and_back(Fixture *f, gconstpointer data) {
        g_autofree char *v = NULL;

        if (f->skipped)
                return;
        set_s(&f->a, "k", "before");
        g_assert_cmpint(th_proc_stop(&f->redis, SIGKILL, 10000), !=, -1);
        th_proc_clear(&f->redis);
        f->redis = (ThProc) TH_PROC_NULL;
        g_assert_true(wait_connected(&f->a, false));
        for (int i = 0; i < 3; i++) {
                g_autofree char *g = get_text(&f->a, "k");
                g_assert_cmpstr(g, ==, BACKEND_UNAVAILABLE);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                int64_t x;
                g_assert_cmpint(incr(&f->a, "n", 1, &x, &e), <, 0);
                g_assert_cmpstr(e.name, ==, BACKEND_UNAVAILABLE);
        }
        redis_start(f);
        g_assert_true(wait_connected(&f->a, true));
        g_assert_true(wait_connected(&f->b, true));
        set_s(&f->a, "k", "after");
        v = get_text(&f->b, "k");
        g_assert_cmpstr(v, ==, "s:after");
}

/* Bytes any client of the Redis can write: a named error, never a crash. */
static void test_hostile(Fixture *f, gconstpointer data) {
        static const struct {
                const char *key, *value;
                size_t len;
        } junk[] = {
                { "clusterhub:{default}:k:bin", "\x80\x81\xfe", 3 },
                { "clusterhub:{default}:k:nul", "a\0b", 3 },
                { "clusterhub:{default}:k:tag", "\xff", 1 },
                { "clusterhub:{default}:k:badtag", "\xffZ12", 4 },
                { "clusterhub:{default}:k:badint", "\xffy300", 5 },
                { "clusterhub:{default}:k:baddbl", "\xff" "d1.5junk", 9 },
                { "clusterhub:{default}:k:badblob", "\xffvas\0\x05\0\0\0ab", 12 },
                { "clusterhub:{default}:k:badsig", "\xffv((\0", 5 },
                { "clusterhub:{default}:k:badpath", "\xffo no path", 10 },
                { "clusterhub:{default}:k:badutf8", "\xffs\xc3\x28", 4 },
        };
        const char *getters[] = { "Get", "GetDel" };

        if (f->skipped)
                return;
        for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
                const char *argv[] = { "SET", junk[i].key, junk[i].value };
                const size_t len[] = { 3, strlen(junk[i].key), junk[i].len };
                freeReplyObject(redis_cmd(f, 3, argv, len));
        }
        /* a huge value (past --max-value-bytes) another client wrote */
        {
                g_autofree char *big = g_malloc(4 * 1024 * 1024);
                memset(big, 'x', 4 * 1024 * 1024);
                const char *argv[] = { "SET", "clusterhub:{default}:k:huge", big };
                const size_t len[] = { 3, strlen(argv[1]), 4 * 1024 * 1024 };
                freeReplyObject(redis_cmd(f, 3, argv, len));
        }
        for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
                const char *key = junk[i].key + strlen("clusterhub:{default}:k:");
                for (size_t g = 0; g < G_N_ELEMENTS(getters); g++) {
                        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                        int r = sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, getters[g], &e, NULL, "s", key);
                        g_assert_cmpint(r, <, 0);
                        g_assert_cmpstr(e.name, ==, "org.clusterhub.Error.WrongType");
                }
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                int64_t x;
                g_assert_cmpint(incr(&f->a, "bin", 1, &x, &e), <, 0);
                g_assert_cmpstr(e.name, ==, "org.clusterhub.Error.WrongType");
        }
        /* the huge one: more than --max-value-bytes, which no hub writes */
        {
                g_autofree char *g = get_text(&f->a, "huge");
                g_assert_cmpstr(g, ==, "org.clusterhub.Error.LimitExceeded");
        }
        /* MGet leaves them out */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "MGet", NULL, &reply, "as", 2,
                                                   "tag", "badblob"), >=, 0);
                g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >=, 0);
                g_assert_cmpint(sd_bus_message_at_end(reply, false), >, 0);
        }
        /* a key name that is not UTF-8 is left out of Keys */
        {
                const char *argv[] = { "SET", "clusterhub:{default}:k:\xc3\x28", "x" };
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                char **keys = NULL;
                freeReplyObject(redis_cmd(f, 3, argv, NULL));
                g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Keys", NULL, &reply, "s", "*"), >=, 0);
                g_assert_cmpint(sd_bus_message_read_strv(reply, &keys), >=, 0);
                g_assert_true(strv_has(keys, "huge"));
                g_assert_cmpuint(keys ? g_strv_length(keys) : 0, ==, G_N_ELEMENTS(junk) + 1);
                g_strfreev(keys);
        }
        /* both hubs still serve */
        set_s(&f->a, "still", "alive");
        g_autofree char *v = get_text(&f->b, "still");
        g_assert_cmpstr(v, ==, "s:alive");
}

/* A Keys pattern cannot reach past its namespace; other namespaces are apart. */
static void test_namespaces(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char **keys = NULL;
        int moved = 0;

        if (f->skipped)
                return;
        set_s(&f->a, "mine", "1");
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, "/org/clusterhub/Hub1/ns/other", STORE_IFACE, "Set", NULL, NULL,
                                           "sva{sv}", "theirs", "s", "2", 0), >=, 0);
        const char *patterns[] = { "*", "\\", "*}:k:*", "[^m]*" };
        for (size_t i = 0; i < G_N_ELEMENTS(patterns); i++) {
                reply = sd_bus_message_unref(reply);
                g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Keys", NULL, &reply, "s", patterns[i]),
                                >=, 0);
                g_assert_cmpint(sd_bus_message_read_strv(reply, &keys), >=, 0);
                g_assert_false(strv_has(keys, "theirs"));
                g_strfreev(keys);
        }
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Move", NULL, &reply, "ss", "mine", "other"),
                        >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "b", &moved), >=, 0);
        g_assert_true(moved);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, "/org/clusterhub/Hub1/ns/other", STORE_IFACE, "DBSize", NULL,
                                           &reply, ""), >=, 0);
        uint64_t n = 0;
        g_assert_cmpint(sd_bus_message_read(reply, "t", &n), >=, 0);
        g_assert_cmpuint(n, ==, 2);

        /* DropNamespace on b deletes the namespace's keys in Redis: a sees none */
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, HUB_PATH, HUB_IFACE, "DropNamespace", NULL, NULL, "s", "other"),
                        >=, 0);
        reply = sd_bus_message_unref(reply);
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, "/org/clusterhub/Hub1/ns/other", STORE_IFACE, "DBSize", NULL,
                                           &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "t", &n), >=, 0);
        g_assert_cmpuint(n, ==, 0);
}

/* Client-side caching across hosts: a tracker on b hears of a write on a (through Redis's
 * notification); a write through b moves b's counter before its reply. */
static uint64_t fnv_bucket(const char *key, uint32_t buckets) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (const char *p = key; *p; p++) {
                h ^= (uint8_t) *p;
                h *= UINT64_C(0x100000001b3);
        }
        return h & (buckets - 1);
}

typedef struct Invalidated {
        unsigned n;
        char *last;
} Invalidated;

static int on_invalidate(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Invalidated *inv = userdata;
        char **keys = NULL;

        if (sd_bus_message_read_strv(m, &keys) >= 0) {
                inv->n++;
                g_free(inv->last);
                inv->last = keys ? g_strjoinv(",", keys) : g_strdup("");
                g_strfreev(keys);
        }
        return 0;
}

static void tracked_get(sd_bus *bus, const char *key, bool *found, char **value, uint64_t *seq, uint64_t *deadline) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *v = NULL;
        int f = 0, r;

        r = sd_bus_call_method(bus, TH_HUB_NAME, NS_PATH, STORE_IFACE, "GetTracked", &e, &reply, "s", key);
        if (r < 0)
                g_error("GetTracked: %s", e.message);
        g_assert_cmpint(sd_bus_message_read(reply, "bvtt", &f, "s", &v, seq, deadline), >=, 0);
        *found = f;
        *value = g_strdup(v);
}

static void test_tracking(Fixture *f, gconstpointer data) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Invalidated inv = {};
        const uint64_t *page;
        uint32_t buckets = 0;
        uint64_t seq = 0, deadline = 0, before;
        bool found;
        int fd = -1;

        if (f->skipped)
                return;
        sd_bus *tb = f->b.listener; /* b's tracker: it also hears Invalidate */
        g_assert_cmpint(sd_bus_match_signal(tb, NULL, NULL, NS_PATH, STORE_IFACE, "Invalidate", on_invalidate, &inv), >=, 0);
        g_assert_cmpint(sd_bus_call_method(tb, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Track", NULL, &reply, "a{sv}", 0), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "hu", &fd, &buckets), >=, 0);
        page = mmap(NULL, buckets * sizeof(uint64_t), PROT_READ, MAP_SHARED, fd, 0);
        g_assert_true(page != MAP_FAILED);
        uint64_t b = fnv_bucket("cached", buckets);

        g_autofree char *v0 = NULL;
        tracked_get(tb, "cached", &found, &v0, &seq, &deadline);
        g_assert_false(found);
        g_assert_cmpuint(seq, ==, __atomic_load_n(&page[b], __ATOMIC_ACQUIRE));

        /* a write on a: b's counter moves and b's tracker hears Invalidate([cached]) */
        before = seq;
        set_s(&f->a, "cached", "v1");
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
        while (inv.n == 0 || __atomic_load_n(&page[b], __ATOMIC_ACQUIRE) == before) {
                g_assert_true(g_get_monotonic_time() < end);
                while (sd_bus_process(tb, NULL) > 0)
                        ;
                (void) sd_bus_wait(tb, 20 * 1000);
        }
        g_assert_cmpstr(inv.last, ==, "cached");

        /* read again, with a TTL: the value of a, a deadline */
        g_assert_cmpint(sd_bus_call_method(f->a.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "cached", "s",
                                           "v2", 1, "ttl_ms", "t", (uint64_t) 600000), >=, 0);
        g_autofree char *v1 = NULL;
        tracked_get(tb, "cached", &found, &v1, &seq, &deadline);
        g_assert_true(found);
        g_assert_cmpstr(v1, ==, "v2");
        g_assert_cmpuint(deadline, >, 0);

        /* a write through b itself: b's counter has moved when the reply comes */
        before = __atomic_load_n(&page[b], __ATOMIC_ACQUIRE);
        g_assert_cmpint(sd_bus_call_method(f->b.emitter, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set", NULL, NULL, "sva{sv}", "cached", "s",
                                           "v3", 0), >=, 0);
        g_assert_cmpuint(__atomic_load_n(&page[b], __ATOMIC_ACQUIRE), >, before);

        munmap((void *) page, buckets * sizeof(uint64_t));
        g_free(inv.last);
}

/* -m perf: Set and Get through hub a, one at a time and 64 in flight. */
static void perf_run(Side *s, const char *method, unsigned n, unsigned inflight) {
        Tally t = {};
        unsigned sent = 0;
        gint64 t0 = g_get_monotonic_time();

        while (t.replies < n) {
                while (sent < n && sent - t.replies < inflight) {
                        g_autofree char *key = g_strdup_printf("perf%u", sent % 1000);
                        if (streq(method, "Set"))
                                g_assert_cmpint(sd_bus_call_method_async(s->emitter, NULL, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Set",
                                                                         on_incr_reply, &t, "sva{sv}", key, "s", "value", 0), >=, 0);
                        else
                                g_assert_cmpint(sd_bus_call_method_async(s->emitter, NULL, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Get",
                                                                         on_incr_reply, &t, "s", key), >=, 0);
                        sent++;
                }
                if (sd_bus_process(s->emitter, NULL) == 0)
                        (void) sd_bus_wait(s->emitter, 10 * 1000);
        }
        g_assert_cmpuint(t.errors, ==, 0);
        double secs = (g_get_monotonic_time() - t0) / 1e6;
        g_test_message("%s through the hub with --redis, %u in flight: %.0f/s (%u calls)", method, inflight, n / secs, n);
}

static void test_perf(Fixture *f, gconstpointer data) {
        if (f->skipped)
                return;
        perf_run(&f->a, "Set", 3000, 1);
        perf_run(&f->a, "Get", 3000, 1);
        perf_run(&f->a, "Set", 30000, 64);
        perf_run(&f->a, "Get", 30000, 64);
}

/* SIGTERM while Redis has a call: the caller hears ShuttingDown (not a NoReply), the hub exits
 * cleanly. */
typedef struct Answer {
        bool done;
        char *error;
} Answer;

static int on_answer(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Answer *a = userdata;
        a->done = true;
        if (sd_bus_message_is_method_error(m, NULL))
                a->error = g_strdup(sd_bus_message_get_error(m)->name);
        return 0;
}

static void test_shutdown(Fixture *f, gconstpointer data) {
        Answer a = {};
        gint64 end;

        if (f->skipped)
                return;
        set_s(&f->a, "k", "v");
        g_assert_cmpint(kill(f->redis.pid, SIGSTOP), ==, 0);
        g_assert_cmpint(sd_bus_call_method_async(f->a.emitter, NULL, TH_HUB_NAME, NS_PATH, STORE_IFACE, "Get", on_answer, &a, "s", "k"),
                        >=, 0);
        g_assert_cmpint(sd_bus_flush(f->a.emitter), >=, 0);
        /* the hub has it when it counts it among its waiting calls */
        g_assert_true(wait_stat_at_least(&f->a, "pending_calls", 1));
        g_assert_cmpint(th_hub_stop(&f->a.hub), ==, 0);
        th_hub_clear(&f->a.hub);
        end = g_get_monotonic_time() + WAIT_MS * 1000;
        while (!a.done) {
                g_assert_true(g_get_monotonic_time() < end);
                if (sd_bus_process(f->a.emitter, NULL) == 0)
                        (void) sd_bus_wait(f->a.emitter, 20 * 1000);
        }
        g_assert_cmpstr(a.error, ==, "org.clusterhub.Error.ShuttingDown");
        g_free(a.error);
        g_assert_cmpint(kill(f->redis.pid, SIGCONT), ==, 0);
}

/* --data-dir and --redis exclude each other: the start fails, saying so. */
static void test_no_data_dir(void) {
        g_autofree char *hub = th_hub_binary(), *err = NULL, *dir = g_dir_make_tmp("rstore-XXXXXX", NULL);
        g_autofree char *data = g_strdup_printf("--data-dir=%s", dir);
        const char *argv[] = { hub, "--redis=unix:/nonexistent", "--node-name=x", data, "--address=unix:path=/nonexistent", NULL };
        int status = 0;

        g_assert_nonnull(hub);
        g_assert_true(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err, &status, NULL));
        g_assert_false(g_spawn_check_wait_status(status, NULL));
        g_assert_nonnull(strstr(err, "--data-dir= and --redis= exclude each other"));
        g_rmdir(dir);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add("/redis-store/set-get-cross", Fixture, NULL, fixture_setup, test_set_get_cross, fixture_teardown);
        g_test_add("/redis-store/set-get-cross-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), fixture_setup, test_set_get_cross,
                   fixture_teardown);
        g_test_add("/redis-store/incr-atomic", Fixture, NULL, fixture_setup, test_incr_atomic, fixture_teardown);
        g_test_add("/redis-store/typed", Fixture, NULL, fixture_setup, test_typed, fixture_teardown);
        g_test_add("/redis-store/key-changed", Fixture, NULL, fixture_setup, test_key_changed, fixture_teardown);
        g_test_add("/redis-store/key-changed-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), fixture_setup, test_key_changed,
                   fixture_teardown);
        g_test_add("/redis-store/down-and-back", Fixture, NULL, fixture_setup, test_down_and_back, fixture_teardown);
        g_test_add("/redis-store/caller-gone", Fixture, NULL, fixture_setup, test_caller_gone, fixture_teardown);
        g_test_add("/redis-store/caller-gone-socket", Fixture, GUINT_TO_POINTER(VIA_SOCKET), fixture_setup, test_caller_gone,
                   fixture_teardown);
        g_test_add("/redis-store/hostile", Fixture, NULL, fixture_setup, test_hostile, fixture_teardown);
        g_test_add("/redis-store/namespaces", Fixture, NULL, fixture_setup, test_namespaces, fixture_teardown);
        g_test_add("/redis-store/tracking", Fixture, NULL, fixture_setup, test_tracking, fixture_teardown);
        g_test_add("/redis-store/shutdown", Fixture, NULL, fixture_setup, test_shutdown, fixture_teardown);
        g_test_add_func("/redis-store/no-data-dir", test_no_data_dir);
        if (g_test_perf())
                g_test_add("/redis-store/perf", Fixture, NULL, fixture_setup, test_perf, fixture_teardown);
        return g_test_run();
}
