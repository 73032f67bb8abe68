/* SPDX-License-Identifier: MIT */
/* The generated client stubs against the generated server skeleton, over a socketpair
 * (no bus): every argument shape, errors, deferred replies, NotSupported, signals with
 * arg0 filtering, properties. */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ch-sample1-client.h"
#include "ch-sample1-server.h"

#define PATH "/org/example/Sample1"

typedef struct Server {
        sd_bus *bus;
        sd_bus_message *deferred;
        uint32_t deferred_value;
        int count_paths_calls;
        int stop;
        int fd;
} Server;

static int h_echo(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *text) {
        return ch_sample1_reply_echo(m, text);
}

static int h_all_basic(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint8_t y, int b, int16_t n,
                       uint16_t q, int32_t i, uint32_t u, int64_t x, uint64_t t, double d, const char *o, const char *g) {
        g_autofree char *s = g_strdup_printf("%u %d %d %u %d %u %" G_GINT64_FORMAT " %" G_GUINT64_FORMAT " %.1f %s %s",
                                             y, b, n, q, i, u, x, t, d, o, g);
        return ch_sample1_reply_all_basic(m, s, (int64_t) y + b + n + q + i + u + x + (int64_t) t + (int64_t) d);
}

static int h_reverse(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **items) {
        guint n = g_strv_length(items);
        g_autofree char **rev = g_new0(char *, n + 1);
        for (guint k = 0; k < n; k++)
                rev[k] = items[n - 1 - k];
        return ch_sample1_reply_reverse(m, rev);
}

static int h_count_paths(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **paths, const char *tag) {
        Server *s = userdata;
        s->count_paths_calls++;
        /* the argument after the array is read too */
        g_assert_cmpstr(tag, ==, "tag");
        for (char **p = paths; *p; p++)
                g_assert_true(sd_bus_object_path_is_valid(*p));
        return ch_sample1_reply_count_paths(m, g_strv_length(paths));
}

typedef struct WrapData {
        const char *key;
        const char *value_sig;
} WrapData;

static int append_wrapped(sd_bus_message *reply, void *userdata) {
        WrapData *w = userdata;
        return sd_bus_message_append(reply, "a{sv}", 2, "key", "s", w->key, "type", "s", w->value_sig);
}

static int h_wrap(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        const char *contents = NULL;
        char type;
        unsigned count = 0;
        int r;

        /* M is positioned at the first non-simple argument: the variant */
        r = sd_bus_message_peek_type(m, &type, &contents);
        g_assert_cmpint(r, >, 0);
        g_assert_cmpint(type, ==, 'v');
        WrapData w = { key, g_strdup(contents) };
        r = sd_bus_message_skip(m, "v");
        g_assert_cmpint(r, >=, 0);
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        g_assert_cmpint(r, >, 0);
        while (sd_bus_message_skip(m, "{sv}") > 0)
                count++;
        r = ch_sample1_reply_wrap(m, count, append_wrapped, &w);
        g_free((char *) w.value_sig);
        return r;
}

static int h_fail(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *name) {
        return sd_bus_error_setf(ret_error, name, "failed as asked: %s", name);
}

static int h_later(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint32_t value) {
        Server *s = userdata;
        /* keep the call; the server loop replies on its next turn */
        s->deferred = sd_bus_message_ref(m);
        s->deferred_value = value;
        return 1;
}

static int append_payload(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "s", (const char *) userdata);
}

static int h_fire(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *event) {
        Server *s = userdata;
        return ch_sample1_emit_changed(s->bus, NULL, PATH, event, "fired", append_payload, (void *) event) < 0 ? -EIO :
               ch_sample1_reply_fire(m);
}

static int p_count(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        uint32_t v = 42;
        return sd_bus_message_append_basic(reply, 'u', &v);
}

static int p_name(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append_basic(reply, 's', "sample");
}

static int p_tags(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append(reply, "as", 2, "a", "b");
}

static const ChSample1Handlers handlers = {
        .echo = h_echo,
        .all_basic = h_all_basic,
        .reverse = h_reverse,
        .count_paths = h_count_paths,
        .wrap = h_wrap,
        .fail = h_fail,
        .later = h_later,
        .fire = h_fire,
        /* .unimplemented stays NULL: NotSupported */
        .prop_count = p_count,
        .prop_name = p_name,
        .prop_tags = p_tags,
};

static void *server_thread(void *p) {
        Server *s = p;
        sd_id128_t id;
        int r;

        g_assert_cmpint(sd_id128_randomize(&id), >=, 0);
        g_assert_cmpint(sd_bus_new(&s->bus), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(s->bus, s->fd, s->fd), >=, 0);
        g_assert_cmpint(sd_bus_set_server(s->bus, 1, id), >=, 0);
        g_assert_cmpint(ch_sample1_add_object(s->bus, NULL, PATH, &handlers, s), >=, 0);
        g_assert_cmpint(sd_bus_start(s->bus), >=, 0);
        while (!g_atomic_int_get(&s->stop)) {
                r = sd_bus_process(s->bus, NULL);
                if (r < 0)
                        break;
                if (s->deferred) {
                        g_assert_cmpint(ch_sample1_reply_later(s->deferred, s->deferred_value * 2), >=, 0);
                        s->deferred = sd_bus_message_unref(s->deferred);
                        continue;
                }
                if (r == 0)
                        (void) sd_bus_wait(s->bus, 100 * 1000);
        }
        sd_bus_flush_close_unref(s->bus);
        return NULL;
}

typedef struct Fixture {
        Server server;
        pthread_t thread;
        sd_bus *client;
} Fixture;

static void setup(Fixture *f, gconstpointer data) {
        int fds[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
        f->server = (Server) { .fd = fds[0] };
        g_assert_cmpint(pthread_create(&f->thread, NULL, server_thread, &f->server), ==, 0);
        g_assert_cmpint(sd_bus_new(&f->client), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(f->client, fds[1], fds[1]), >=, 0);
        g_assert_cmpint(sd_bus_start(f->client), >=, 0);
}

static void teardown(Fixture *f, gconstpointer data) {
        g_atomic_int_set(&f->server.stop, 1);
        sd_bus_flush_close_unref(f->client);
        pthread_join(f->thread, NULL);
}

#define TEST_BOUND 1000

/* The bound is process-wide; it is set before the server thread starts and reset after it ended. */
static void setup_bounded(Fixture *f, gconstpointer data) {
        ch_sample1_set_max_strv(TEST_BOUND);
        setup(f, data);
}

static void teardown_bounded(Fixture *f, gconstpointer data) {
        teardown(f, data);
        ch_sample1_set_max_strv(CH_SAMPLE1_MAX_STRV_DEFAULT);
}

static void test_simple(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *out = NULL;
        int64_t sum = 0;

        g_assert_cmpint(ch_sample1_call_echo(f->client, NULL, PATH, "héllo 'quoted'", &out, &e), >=, 0);
        g_assert_cmpstr(out, ==, "héllo 'quoted'");
        free(out);
        out = NULL;
        g_assert_cmpint(ch_sample1_call_all_basic(f->client, NULL, PATH, 255, 1, -3, 4, -5, 6, -7, 8, 9.5, "/o", "a{sv}", &out, &sum, &e), >=, 0);
        g_assert_cmpstr(out, ==, "255 1 -3 4 -5 6 -7 8 9.5 /o a{sv}");
        g_assert_cmpint(sum, ==, 255 + 1 - 3 + 4 - 5 + 6 - 7 + 8 + 9);
        free(out);
}

static void test_strv(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *in[] = { "a", "b", "c", NULL };
        char **out = NULL;

        g_assert_cmpint(ch_sample1_call_reverse(f->client, NULL, PATH, in, &out, &e), >=, 0);
        g_assert_cmpstr(out[0], ==, "c");
        g_assert_cmpstr(out[2], ==, "a");
        g_assert_null(out[3]);
        g_strfreev(out);
}

/* One million keys, the hub's default --max-elements: the skeleton reads them and the stub reads
 * the reply in linear time (sd_bus_message_read_strv of libsystemd 252 took minutes). Only the
 * test timeout bounds it; the client waits as long as it takes. */
static void test_strv_million(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const guint n = 1000000;
        char **in = g_new0(char *, n + 1);
        char **out = NULL;

        for (guint k = 0; k < n; k++)
                in[k] = g_strdup_printf("key:%u", k);
        g_assert_cmpint(sd_bus_set_method_call_timeout(f->client, UINT64_MAX), >=, 0);
        g_assert_cmpint(ch_sample1_call_reverse(f->client, NULL, PATH, in, &out, &e), >=, 0);
        g_assert_false(sd_bus_error_is_set(&e));
        g_assert_cmpuint(g_strv_length(out), ==, n);
        g_assert_cmpstr(out[0], ==, in[n - 1]);
        g_assert_cmpstr(out[n - 1], ==, in[0]);
        g_strfreev(out);
        g_strfreev(in);
}

static char **numbered(const char *prefix, guint n) {
        char **l = g_new0(char *, n + 1);
        for (guint k = 0; k < n; k++)
                l[k] = g_strdup_printf("%s%u", prefix, k);
        return l;
}

/* At the bound the call goes through; one more fails with the limit error naming the argument and
 * the bound, and the handler never runs.  A million elements over a bound of 1000 is refused
 * without reading them all (quickly, but only the test timeout bounds it). */
static void test_strv_bound(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_auto(GStrv) at = numbered("k", TEST_BOUND), over = numbered("k", TEST_BOUND + 1);
        g_auto(GStrv) paths_at = numbered("/p/", TEST_BOUND), paths_over = numbered("/p/", TEST_BOUND + 1);
        g_auto(GStrv) million = numbered("/p/", 1000000);
        char **out = NULL;
        char *empty[] = { NULL };
        uint32_t count = 0;
        int r;

        g_assert_cmpint(sd_bus_set_method_call_timeout(f->client, UINT64_MAX), >=, 0);
        g_assert_cmpint(ch_sample1_call_reverse(f->client, NULL, PATH, at, &out, &e), >=, 0);
        g_assert_cmpuint(g_strv_length(out), ==, TEST_BOUND);
        g_strfreev(g_steal_pointer(&out));

        r = ch_sample1_call_reverse(f->client, NULL, PATH, over, &out, &e);
        g_assert_cmpint(r, <, 0);
        g_assert_null(out);
        g_assert_cmpstr(e.name, ==, "org.example.Error.LimitExceeded");
        g_assert_cmpstr(e.message, ==, "Argument 'items' of Reverse has more than 1000 elements.");
        sd_bus_error_free(&e);

        g_assert_cmpint(ch_sample1_call_count_paths(f->client, NULL, PATH, paths_at, "tag", &count, &e), >=, 0);
        g_assert_cmpuint(count, ==, TEST_BOUND);
        g_assert_cmpint(f->server.count_paths_calls, ==, 1);
        for (int k = 0; k < 2; k++) {
                r = ch_sample1_call_count_paths(f->client, NULL, PATH, k ? million : paths_over, "tag", &count, &e);
                g_assert_cmpint(r, <, 0);
                g_assert_cmpstr(e.name, ==, "org.example.Error.LimitExceeded");
                g_assert_cmpstr(e.message, ==, "Argument 'paths' of CountPaths has more than 1000 elements.");
                sd_bus_error_free(&e);
        }
        g_assert_cmpint(f->server.count_paths_calls, ==, 1);

        /* an empty array is an empty list, not NULL, both ways */
        g_assert_cmpint(ch_sample1_call_reverse(f->client, NULL, PATH, empty, &out, &e), >=, 0);
        g_assert_nonnull(out);
        g_assert_null(out[0]);
        g_strfreev(out);
        g_assert_cmpint(ch_sample1_call_count_paths(f->client, NULL, PATH, empty, "tag", &count, &e), >=, 0);
        g_assert_cmpuint(count, ==, 0);
}

static int append_wrap_args(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "ai", 2, 1, 2);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 3, "a", "b", 1, "b", "u", 2, "c", "s", "x");
}

static void test_complex(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *key = NULL, *type = NULL, *k1 = NULL, *k2 = NULL;
        uint32_t count = 0;

        g_assert_cmpint(ch_sample1_call_wrap(f->client, NULL, PATH, "k", append_wrap_args, NULL, &reply, &e), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "ua{sv}", &count, 2, &k1, "s", &key, &k2, "s", &type), >, 0);
        g_assert_cmpstr(k1, ==, "key");
        g_assert_cmpstr(k2, ==, "type");
        g_assert_cmpuint(count, ==, 3);
        g_assert_cmpstr(key, ==, "k");
        g_assert_cmpstr(type, ==, "ai");
        sd_bus_message_unref(reply);
}

static void test_errors(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *out = (char *) "untouched";
        int r;

        r = ch_sample1_call_fail(f->client, NULL, PATH, "org.example.Error.Custom", &e);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e.name, ==, "org.example.Error.Custom");
        g_assert_cmpstr(e.message, ==, "failed as asked: org.example.Error.Custom");
        sd_bus_error_free(&e);

        r = ch_sample1_call_unimplemented(f->client, NULL, PATH, &e);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e.name, ==, "org.example.Error.NotSupported");
        g_assert_nonnull(strstr(e.message, "Unimplemented"));
        sd_bus_error_free(&e);

        /* outputs are not clobbered on failure */
        r = ch_sample1_call_echo(f->client, NULL, "/nowhere", "x", &out, &e);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(out, ==, "untouched");
        sd_bus_error_free(&e);
}

static void test_deferred(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t doubled = 0;

        g_assert_cmpint(ch_sample1_call_later(f->client, NULL, PATH, 21, &doubled, &e), >=, 0);
        g_assert_cmpuint(doubled, ==, 42);
}

typedef struct AsyncResult {
        int done;
        const char *echoed;
        char *error_name;
} AsyncResult;

static int on_echo(sd_bus_message *reply, const sd_bus_error *error, const char *echoed, void *userdata) {
        AsyncResult *a = userdata;
        a->done++;
        a->echoed = echoed ? g_intern_string(echoed) : NULL;
        a->error_name = error ? g_strdup(error->name) : NULL;
        return 0;
}

static void test_async(Fixture *f, gconstpointer data) {
        AsyncResult a = {};

        g_assert_cmpint(ch_sample1_call_echo_async(f->client, NULL, NULL, PATH, "async", on_echo, &a, 0), >=, 0);
        while (!a.done)
                g_assert_cmpint(sd_bus_process(f->client, NULL) >= 0 ? sd_bus_wait(f->client, 100000) : -1, >=, 0);
        g_assert_cmpstr(a.echoed, ==, "async");
        g_assert_null(a.error_name);

        a = (AsyncResult) {};
        g_assert_cmpint(ch_sample1_call_echo_async(f->client, NULL, NULL, "/nowhere", "x", on_echo, &a, 0), >=, 0);
        while (!a.done)
                g_assert_cmpint(sd_bus_process(f->client, NULL) >= 0 ? sd_bus_wait(f->client, 100000) : -1, >=, 0);
        g_assert_nonnull(a.error_name);
        g_free(a.error_name);
}

typedef struct SignalResult {
        int count;
        char *last_key;
} SignalResult;

static int on_changed(sd_bus_message *m, void *userdata, const char *key, const char *event) {
        SignalResult *s = userdata;
        const char *payload = NULL;
        s->count++;
        g_free(s->last_key);
        s->last_key = g_strdup(key);
        g_assert_cmpstr(event, ==, "fired");
        /* M is positioned at the payload */
        g_assert_cmpint(sd_bus_message_read(m, "v", "s", &payload), >, 0);
        g_assert_cmpstr(payload, ==, key);
        return 0;
}

static void test_signal_arg0(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        SignalResult only_b = {}, family = {};
        sd_bus_slot *s1 = NULL, *s2 = NULL;

        /* On a peer-to-peer connection sd-bus filters matches locally, with the same rule syntax
         * the broker uses. */
        g_assert_cmpint(ch_sample1_match_changed(f->client, &s1, NULL, PATH, "jobs.b", NULL, on_changed, &only_b), >=, 0);
        g_assert_cmpint(ch_sample1_match_changed(f->client, &s2, NULL, PATH, NULL, "jobs", on_changed, &family), >=, 0);
        /* the server emits Changed(event, "fired") from Fire(event) */
        g_assert_cmpint(ch_sample1_call_fire(f->client, NULL, PATH, "jobs.b", &e), >=, 0);
        g_assert_cmpint(ch_sample1_call_fire(f->client, NULL, PATH, "jobs.a", &e), >=, 0);
        g_assert_cmpint(ch_sample1_call_fire(f->client, NULL, PATH, "jobsx", &e), >=, 0);
        g_assert_cmpint(ch_sample1_call_fire(f->client, NULL, PATH, "other", &e), >=, 0);
        while (sd_bus_process(f->client, NULL) > 0)
                ;
        g_assert_cmpint(only_b.count, ==, 1);
        g_assert_cmpstr(only_b.last_key, ==, "jobs.b");
        g_assert_cmpint(family.count, ==, 2);
        g_assert_cmpstr(family.last_key, ==, "jobs.a");
        sd_bus_slot_unref(s1);
        sd_bus_slot_unref(s2);
        g_free(only_b.last_key);
        g_free(family.last_key);
}

static void test_properties(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t count = 0;
        char *name = NULL;
        char **tags = NULL;

        g_assert_cmpint(ch_sample1_get_count(f->client, NULL, PATH, &count, &e), >=, 0);
        g_assert_cmpuint(count, ==, 42);
        g_assert_cmpint(ch_sample1_get_name(f->client, NULL, PATH, &name, &e), >=, 0);
        g_assert_cmpstr(name, ==, "sample");
        free(name);
        g_assert_cmpint(ch_sample1_get_tags(f->client, NULL, PATH, &tags, &e), >=, 0);
        g_assert_cmpuint(g_strv_length(tags), ==, 2);
        g_strfreev(tags);
}

static void test_introspect(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *xml = NULL;

        g_assert_cmpint(sd_bus_call_method(f->client, NULL, PATH, "org.freedesktop.DBus.Introspectable", "Introspect", &e, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &xml), >, 0);
        /* argument names come from SD_BUS_METHOD_WITH_ARGS */
        g_assert_nonnull(strstr(xml, "<arg type=\"s\" name=\"text\" direction=\"in\"/>"));
        g_assert_nonnull(strstr(xml, "<arg type=\"a{sv}\" name=\"wrapped\" direction=\"out\"/>"));
        g_assert_nonnull(strstr(xml, "org.freedesktop.DBus.Method.NoReply"));
        g_assert_nonnull(strstr(ch_sample1_introspection_xml, "org.example.Sample1"));
        sd_bus_message_unref(reply);
}

/* A send hook sees every reply, error reply and signal of the interface; sd-bus no longer
 * answers a failed call itself. */
static int hooked_replies, hooked_errors, hooked_signals;

static int count_and_send(sd_bus_message *m) {
        if (sd_bus_message_is_method_error(m, NULL))
                g_atomic_int_inc(&hooked_errors);
        else if (sd_bus_message_is_signal(m, NULL, NULL))
                g_atomic_int_inc(&hooked_signals);
        else
                g_atomic_int_inc(&hooked_replies);
        return sd_bus_send(NULL, m, NULL);
}

static void setup_hooked(Fixture *f, gconstpointer data) {
        ch_sample1_set_send_hook(count_and_send);
        setup(f, data);
}

static void teardown_hooked(Fixture *f, gconstpointer data) {
        teardown(f, data);
        ch_sample1_set_send_hook(NULL);
}

static void test_send_hook(Fixture *f, gconstpointer data) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t doubled = 0;
        char *out = NULL;

        g_assert_cmpint(ch_sample1_call_echo(f->client, NULL, PATH, "hooked", &out, &e), >=, 0);
        g_assert_cmpstr(out, ==, "hooked");
        free(out);
        g_assert_cmpint(ch_sample1_call_later(f->client, NULL, PATH, 4, &doubled, &e), >=, 0);
        g_assert_cmpuint(doubled, ==, 8);
        g_assert_cmpint(g_atomic_int_get(&hooked_replies), ==, 2);

        /* ret_error, a NULL handler: the same errors as without a hook, sent through it */
        g_assert_cmpint(ch_sample1_call_fail(f->client, NULL, PATH, "org.example.Error.Custom", &e), <, 0);
        g_assert_cmpstr(e.name, ==, "org.example.Error.Custom");
        g_assert_cmpstr(e.message, ==, "failed as asked: org.example.Error.Custom");
        sd_bus_error_free(&e);
        g_assert_cmpint(ch_sample1_call_unimplemented(f->client, NULL, PATH, &e), <, 0);
        g_assert_cmpstr(e.name, ==, "org.example.Error.NotSupported");
        sd_bus_error_free(&e);
        g_assert_cmpint(g_atomic_int_get(&hooked_errors), ==, 2);

        /* a signal and its reply */
        g_assert_cmpint(ch_sample1_call_fire(f->client, NULL, PATH, "x", &e), >=, 0);
        g_assert_cmpint(g_atomic_int_get(&hooked_signals), ==, 1);
        g_assert_cmpint(g_atomic_int_get(&hooked_replies), ==, 3);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, setup, fn, teardown)
        ADD("/codegen/p2p/simple", test_simple);
        ADD("/codegen/p2p/strv", test_strv);
        ADD("/codegen/p2p/strv-million", test_strv_million);
        g_test_add("/codegen/p2p/strv-bound", Fixture, NULL, setup_bounded, test_strv_bound, teardown_bounded);
        ADD("/codegen/p2p/complex", test_complex);
        ADD("/codegen/p2p/errors", test_errors);
        ADD("/codegen/p2p/deferred", test_deferred);
        ADD("/codegen/p2p/async", test_async);
        ADD("/codegen/p2p/signal-match", test_signal_arg0);
        ADD("/codegen/p2p/properties", test_properties);
        ADD("/codegen/p2p/introspect", test_introspect);
        g_test_add("/codegen/p2p/send-hook", Fixture, NULL, setup_hooked, test_send_hook, teardown_hooked);
        return g_test_run();
}
