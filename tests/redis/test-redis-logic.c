/* SPDX-License-Identifier: MIT */
/* The logic of --redis: URL parsing and the message an event crosses hosts in. */
#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "redis-url.h"
#include "remote-event.h"
#include "rstore-codec.h"
#include <math.h>

static void test_url_good(void) {
        static const struct {
                const char *url, *host, *path, *user, *password;
                unsigned port, db;
        } cases[] = {
                { "redis://localhost", "localhost", NULL, NULL, NULL, 6379, 0 },
                { "redis://10.0.0.5:6380", "10.0.0.5", NULL, NULL, NULL, 6380, 0 },
                { "redis://h:1/3", "h", NULL, NULL, NULL, 1, 3 },
                { "redis://h/", "h", NULL, NULL, NULL, 6379, 0 },
                { "redis://secret@h", "h", NULL, NULL, "secret", 6379, 0 },
                { "redis://:secret@h:7000/2", "h", NULL, NULL, "secret", 7000, 2 },
                { "redis://alice:pw@h:7000", "h", NULL, "alice", "pw", 7000, 0 },
                { "redis://alice:p%40ss%3Aw@h", "h", NULL, "alice", "p@ss:w", 6379, 0 },
                { "redis://alice:p@ss@h", "h", NULL, "alice", "p@ss", 6379, 0 },
                { "redis://[::1]:6390/1", "::1", NULL, NULL, NULL, 6390, 1 },
                { "redis://[fe80::1]", "fe80::1", NULL, NULL, NULL, 6379, 0 },
                { "unix:/run/redis/redis.sock", NULL, "/run/redis/redis.sock", NULL, NULL, 0, 0 },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                RedisUrl u = {};
                char where[128];

                g_test_message("%s", cases[i].url);
                g_assert_cmpint(redis_url_parse(cases[i].url, &u), ==, 0);
                g_assert_cmpstr(u.host, ==, cases[i].host);
                g_assert_cmpstr(u.path, ==, cases[i].path);
                g_assert_cmpstr(u.user, ==, cases[i].user);
                g_assert_cmpstr(u.password, ==, cases[i].password);
                g_assert_cmpuint(u.port, ==, cases[i].port);
                g_assert_cmpuint(u.db, ==, cases[i].db);
                /* never the password */
                redis_url_where(&u, where, sizeof(where));
                g_assert_true(!cases[i].password || !strstr(where, cases[i].password));
                redis_url_done(&u);
        }
}

static void test_url_bad(void) {
        static const char *const bad[] = {
                "", "localhost:6379", "http://h", "redis://", "redis://:6379", "redis://h:0", "redis://h:65536",
                "redis://h:x", "redis://h:12a", "redis://h/x", "redis://h/-1", "redis://h/99999999999",
                "redis://a b", "redis://[::1", "redis://[::1]x", "redis://::1", "redis://u:p%4@h", "redis://u:p%00@h",
                "redis://u:p%zz@h", "unix:", "unix:relative", "redis://@", "redis://pw@",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                RedisUrl u = {};
                g_test_message("%s", bad[i]);
                g_assert_cmpint(redis_url_parse(bad[i], &u), ==, -EINVAL);
                g_assert_null(u.host);
                g_assert_null(u.password);
        }
        g_assert_cmpint(redis_url_parse(NULL, &(RedisUrl) {}), ==, -EINVAL);
}

static void test_event_roundtrip(void) {
        static const char payload[] = { 1, 's', 0, 3, 0, 0, 0, 'a', 0, 'c' };
        RemoteEvent e = { .instance = 0x1122334455667788u, .node = "node-1", .origin = ":1.42", .event = "jobs.done",
                          .payload = payload, .payload_size = sizeof(payload) }, d;
        char *msg = NULL;
        size_t size = 0;

        g_assert_cmpint(remote_event_encode(&e, &msg, &size), ==, 0);
        g_assert_cmpint(remote_event_decode(msg, size, &d), ==, 0);
        g_assert_cmpuint(d.instance, ==, e.instance);
        g_assert_cmpstr(d.node, ==, "node-1");
        g_assert_cmpstr(d.origin, ==, ":1.42");
        g_assert_cmpstr(d.event, ==, "jobs.done");
        g_assert_cmpmem(d.payload, d.payload_size, payload, sizeof(payload));

        /* every truncation is refused, never read past the end */
        for (size_t n = 0; n < size - sizeof(payload); n++) {
                char *cut = g_memdup2(msg, n);
                g_assert_cmpint(remote_event_decode(cut, n, &d), ==, -EBADMSG);
                g_free(cut);
        }
        /* a NUL inside a name, a wrong magic, the other byte order */
        msg[4 + 1 + 8 + 4 + 1] = 0;
        g_assert_cmpint(remote_event_decode(msg, size, &d), ==, -EBADMSG);
        msg[4 + 1 + 8 + 4 + 1] = 'o';
        g_assert_cmpint(remote_event_decode(msg, size, &d), ==, 0);
        msg[4] = msg[4] == 'l' ? 'B' : 'l';
        g_assert_cmpint(remote_event_decode(msg, size, &d), ==, -EPROTONOSUPPORT);
        msg[0] = 'X';
        g_assert_cmpint(remote_event_decode(msg, size, &d), ==, -EBADMSG);
        free(msg);

        /* a length that points past the end */
        e.payload_size = 0;
        g_assert_cmpint(remote_event_encode(&e, &msg, &size), ==, 0);
        msg[4 + 1 + 8] = 100;
        g_assert_cmpint(remote_event_decode(msg, size, &d), ==, -EBADMSG);
        free(msg);
}

static void test_event_bounds(void) {
        char long_name[300];
        RemoteEvent e = { .node = long_name, .origin = "o", .event = "e" };
        char *msg = NULL;
        size_t size;

        memset(long_name, 'n', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = 0;
        g_assert_cmpint(remote_event_encode(&e, &msg, &size), ==, -EINVAL);
        e.node = NULL;
        g_assert_cmpint(remote_event_encode(&e, &msg, &size), ==, -EINVAL);
        g_assert_null(msg);
}

static void test_channel(void) {
        g_assert_cmpstr(remote_event_channel_namespace("clusterhub:events:default"), ==, "default");
        g_assert_null(remote_event_channel_namespace("clusterhub:events:"));
        g_assert_null(remote_event_channel_namespace("other:default"));
        g_assert_null(remote_event_channel_namespace(NULL));
}


/* ---- the Redis-backed store's encoding (rstore-codec.h) ---- */

static void roundtrip(const StoreValue *v, const char *want_bytes, size_t want_len) {
        char *b = NULL;
        size_t len = 0;
        RStoreValue d = {};

        g_assert_cmpint(rstore_encode(v, &b, &len), ==, 0);
        if (want_bytes) {
                g_assert_cmpuint(len, ==, want_len);
                g_assert_true(memcmp(b, want_bytes, len) == 0);
        }
        g_assert_cmpint(rstore_decode(b, len, &d), ==, 0);
        g_assert_true(store_value_equal(v, &d.value));
        rstore_value_done(&d);
        free(b);
}

static void test_codec_roundtrip(void) {
        StoreValue v;

        v = (StoreValue) { .type = 'x', .i = -42 };
        roundtrip(&v, "-42", 3);
        v = (StoreValue) { .type = 'x', .i = INT64_MIN };
        roundtrip(&v, "-9223372036854775808", 20);
        v = (StoreValue) { .type = 'x', .i = INT64_MAX };
        roundtrip(&v, "9223372036854775807", 19);
        v = (StoreValue) { .type = 's', .str = { "hello", 5 } };
        roundtrip(&v, "hello", 5);
        v = (StoreValue) { .type = 's', .str = { "", 0 } };
        roundtrip(&v, "", 0);
        /* strings that would read back as an int64 get the tag; "042", "+1", "-0" do not */
        v = (StoreValue) { .type = 's', .str = { "42", 2 } };
        roundtrip(&v, "\xffs42", 4);
        v = (StoreValue) { .type = 's', .str = { "042", 3 } };
        roundtrip(&v, "042", 3);
        v = (StoreValue) { .type = 's', .str = { "-0", 2 } };
        roundtrip(&v, "-0", 2);
        v = (StoreValue) { .type = 's', .str = { "9223372036854775808", 19 } };
        roundtrip(&v, "9223372036854775808", 19);
        v = (StoreValue) { .type = 'd', .d = 2.5 };
        roundtrip(&v, "\xff" "d2.5", 5);
        v = (StoreValue) { .type = 'd', .d = 0.1 };
        roundtrip(&v, NULL, 0);
        v = (StoreValue) { .type = 'd', .d = -INFINITY };
        roundtrip(&v, "\xff" "d-inf", 6);
        v = (StoreValue) { .type = 'b', .i = 1 };
        roundtrip(&v, "\xff" "b1", 3);
        v = (StoreValue) { .type = 'y', .i = 255 };
        roundtrip(&v, "\xffy255", 5);
        v = (StoreValue) { .type = 'n', .i = -32768 };
        roundtrip(&v, NULL, 0);
        v = (StoreValue) { .type = 't', .u = UINT64_MAX };
        roundtrip(&v, "\xfft18446744073709551615", 22);
        v = (StoreValue) { .type = 'o', .str = { "/a/b", 4 } };
        roundtrip(&v, "\xffo/a/b", 6);
        v = (StoreValue) { .type = 'v', .blob = { "ay", "\x02\0\0\0ab", 6 } };
        roundtrip(&v, "\xffvay\0\x02\0\0\0ab", 11);
}

static void test_codec_hostile(void) {
        static const struct {
                const char *bytes;
                size_t len;
        } bad[] = {
                { "\x80", 1 }, { "a\0b", 3 }, { "\xff", 1 }, { "\xffZ1", 3 }, { "\xffy256", 5 }, { "\xffy-1", 4 },
                { "\xffn32768", 7 }, { "\xffi01", 4 }, { "\xff" "b2", 3 }, { "\xfft18446744073709551616", 22 },
                { "\xff" "d", 2 }, { "\xff" "d1.5x", 6 }, { "\xff" "d0x10", 6 }, { "\xff" "dnan(1)", 8 },
                { "\xffvas", 4 }, { "\xffv\0ab", 5 }, { "\xffo", 2 }, { "\xffo rel", 6 }, { "\xffs\xc3\x28", 4 },
                { "\xffs\0", 3 },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                RStoreValue d = {};
                g_assert_cmpint(rstore_decode(bad[i].bytes, bad[i].len, &d), ==, -EBADMSG);
        }
}

static void test_codec_keys(void) {
        char *k = NULL, *p = NULL;
        const char *ns, *key;
        size_t ns_len;

        g_assert_cmpint(rstore_key("ns_1", "a:b", &k), ==, 0);
        g_assert_cmpstr(k, ==, "clusterhub:{ns_1}:k:a:b");
        g_assert_cmpint(rstore_key_parse(k, strlen(k), &ns, &ns_len, &key), ==, 0);
        g_assert_cmpuint(ns_len, ==, 4);
        g_assert_true(strncmp(ns, "ns_1", 4) == 0);
        g_assert_cmpstr(key, ==, "a:b");
        free(k);
        g_assert_cmpint(rstore_key_parse("clusterhub:{x}:lock:a", 21, &ns, &ns_len, &key), ==, -EINVAL);
        g_assert_cmpint(rstore_key_parse("clusterhub:{}:k:a", 17, &ns, &ns_len, &key), ==, -EINVAL);
        g_assert_cmpint(rstore_key_parse("other", 5, &ns, &ns_len, &key), ==, -EINVAL);

        g_assert_cmpint(rstore_match_pattern("n", "a*", &p), ==, 0);
        g_assert_cmpstr(p, ==, "clusterhub:{n}:k:a*");
        free(p);
        g_assert_cmpint(rstore_match_pattern("n", NULL, &p), ==, 0);
        g_assert_cmpstr(p, ==, "clusterhub:{n}:k:*");
        free(p);
        /* a trailing lone backslash escapes nothing of the prefix's */
        g_assert_cmpint(rstore_match_pattern("n", "a\\", &p), ==, 0);
        g_assert_cmpstr(p, ==, "clusterhub:{n}:k:a\\\\");
        free(p);
        g_assert_cmpint(rstore_match_pattern("n", "a\\\\", &p), ==, 0);
        g_assert_cmpstr(p, ==, "clusterhub:{n}:k:a\\\\");
        free(p);
}

static void test_notify_flags(void) {
        char *s = NULL;

        g_assert_cmpint(rstore_notify_flags_merge("", &s), ==, 1);
        g_assert_cmpstr(s, ==, "Kg$lshxe");
        free(s);
        g_assert_cmpint(rstore_notify_flags_merge("Ex", &s), ==, 1);
        g_assert_cmpstr(s, ==, "ExKg$lshe");
        free(s);
        g_assert_cmpint(rstore_notify_flags_merge("KA", &s), ==, 0);
        free(s);
        g_assert_cmpint(rstore_notify_flags_merge("AK", &s), ==, 0);
        free(s);
        g_assert_true(rstore_event_name_is_valid("rename_from", 11));
        g_assert_false(rstore_event_name_is_valid("", 0));
        g_assert_false(rstore_event_name_is_valid("Set", 3));
        g_assert_false(rstore_event_name_is_valid("a b", 3));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/redis-url/good", test_url_good);
        g_test_add_func("/redis-url/bad", test_url_bad);
        g_test_add_func("/remote-event/roundtrip", test_event_roundtrip);
        g_test_add_func("/remote-event/bounds", test_event_bounds);
        g_test_add_func("/remote-event/channel", test_channel);
        g_test_add_func("/rstore-codec/roundtrip", test_codec_roundtrip);
        g_test_add_func("/rstore-codec/hostile", test_codec_hostile);
        g_test_add_func("/rstore-codec/keys", test_codec_keys);
        g_test_add_func("/rstore-codec/notify-flags", test_notify_flags);
        return g_test_run();
}
