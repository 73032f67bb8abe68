/* SPDX-License-Identifier: MIT */
/* The logic of --redis: URL parsing and the message an event crosses hosts in. */
#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "redis-url.h"
#include "remote-event.h"

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

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/redis-url/good", test_url_good);
        g_test_add_func("/redis-url/bad", test_url_bad);
        g_test_add_func("/remote-event/roundtrip", test_event_roundtrip);
        g_test_add_func("/remote-event/bounds", test_event_bounds);
        g_test_add_func("/remote-event/channel", test_channel);
        return g_test_run();
}
