/* SPDX-License-Identifier: MIT */
/* The logic of requests across hosts (service/backend/remote-request.h): the messages hubs send
 * each other and the list of what a hub serves, both read from a Redis anybody can write to. */
#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "remote-request.h"

static void test_roundtrip(void) {
        static const char payload[] = { 1, 's', 0, 3, 0, 0, 0, 'a', 0, 'c' };
        const char *strings[] = { "node-1", "default", "echo", ":1.42", "w1" };
        const void *blobs[] = { payload };
        size_t sizes[] = { sizeof(payload) };
        RemoteMsg m = { .kind = REMOTE_REQUEST, .id = 0x1122334455667788u, .reply_to = 42, .timeout_ms = 9000,
                        .n_strings = 5, .strings = strings, .n_blobs = 1, .blobs = blobs, .blob_sizes = sizes }, d;
        char *msg = NULL;
        size_t size = 0;

        g_assert_cmpint(remote_msg_encode(&m, &msg, &size), ==, 0);
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, 0);
        g_assert_cmpint(d.kind, ==, REMOTE_REQUEST);
        g_assert_cmpuint(d.id, ==, m.id);
        g_assert_cmpuint(d.reply_to, ==, 42);
        g_assert_cmpuint(d.timeout_ms, ==, 9000);
        g_assert_cmpuint(d.n_strings, ==, 5);
        for (size_t i = 0; i < 5; i++)
                g_assert_cmpstr(d.strings[i], ==, strings[i]);
        g_assert_cmpuint(d.n_blobs, ==, 1);
        g_assert_cmpmem(d.blobs[0], d.blob_sizes[0], payload, sizeof(payload));
        remote_msg_done(&d);

        /* every truncation, and a byte too many, is refused without reading past the end */
        for (size_t n = 0; n < size; n++) {
                char *cut = g_memdup2(msg, n);
                g_assert_cmpint(remote_msg_decode(cut, n, &d), ==, -EBADMSG);
                g_free(cut);
        }
        {
                char *longer = g_malloc(size + 1);
                memcpy(longer, msg, size);
                longer[size] = 0;
                g_assert_cmpint(remote_msg_decode(longer, size + 1, &d), ==, -EBADMSG);
                g_free(longer);
        }
        /* an unknown kind, a wrong magic, the other byte order */
        msg[5] = 'Z';
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EBADMSG);
        msg[5] = REMOTE_REPLY; /* 5 strings and a blob do not make a reply */
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EBADMSG);
        msg[5] = REMOTE_REQUEST_ALL; /* nor a RequestAll (4 strings) */
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EBADMSG);
        msg[5] = REMOTE_REQUEST;
        msg[4] = msg[4] == 'l' ? 'B' : 'l';
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EPROTONOSUPPORT);
        msg[0] = 'X';
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EBADMSG);
        free(msg);
}

static void test_gathered(void) {
        const char *strings[] = { "w1", "w2", "w3", "org.clusterhub.Error.Timeout: late" };
        const void *blobs[] = { "ab", "" };
        size_t sizes[] = { 2, 0 };
        RemoteMsg m = { .kind = REMOTE_GATHERED, .n_strings = 4, .strings = strings, .n_blobs = 2, .blobs = blobs,
                        .blob_sizes = sizes }, d;
        char *msg = NULL;
        size_t size;

        g_assert_cmpint(remote_msg_encode(&m, &msg, &size), ==, 0);
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, 0);
        g_assert_cmpuint(d.n_strings, ==, 4);
        g_assert_cmpuint(d.n_blobs, ==, 2);
        g_assert_cmpmem(d.blobs[0], d.blob_sizes[0], "ab", 2);
        g_assert_cmpuint(d.blob_sizes[1], ==, 0);
        remote_msg_done(&d);
        free(msg);

        /* a key per reply, then pairs: 3 strings with 2 replies leave an error without value */
        m.n_strings = 3;
        g_assert_cmpint(remote_msg_encode(&m, &msg, &size), ==, -EINVAL);
        m.n_strings = 1;
        g_assert_cmpint(remote_msg_encode(&m, &msg, &size), ==, -EINVAL);
        /* an empty gather */
        m.n_strings = 0;
        m.n_blobs = 0;
        g_assert_cmpint(remote_msg_encode(&m, &msg, &size), ==, 0);
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, 0);
        remote_msg_done(&d);
        free(msg);
}

static void test_hostile(void) {
        /* a string length past the end, a count past any bound, a NUL inside a string */
        const char *strings[] = { "name", "message" };
        RemoteMsg m = { .kind = REMOTE_ERROR, .n_strings = 2, .strings = strings }, d;
        char *msg = NULL;
        size_t size;
        const size_t first = 4 + 1 + 1 + 8 + 8 + 8; /* the count of strings */

        g_assert_cmpint(remote_msg_encode(&m, &msg, &size), ==, 0);
        msg[first + 4] = 100;
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EBADMSG);
        msg[first + 4] = 4;
        msg[first + 4 + 4 + 1] = 0;
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EBADMSG);
        msg[first + 4 + 4 + 1] = 'a';
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, 0);
        remote_msg_done(&d);
        memset(msg + first, 0xff, 4);
        g_assert_cmpint(remote_msg_decode(msg, size, &d), ==, -EBADMSG);
        free(msg);

        strings[0] = NULL;
        g_assert_cmpint(remote_msg_encode(&m, &msg, &size), ==, -EINVAL);
}

static void test_channel(void) {
        uint64_t i = 0;

        g_assert_cmpint(remote_request_channel_instance("clusterhub:req:00000000000000ff", &i), ==, 0);
        g_assert_cmpuint(i, ==, 255);
        g_assert_cmpint(remote_request_channel_instance("clusterhub:req:ff", &i), ==, -EINVAL);
        g_assert_cmpint(remote_request_channel_instance("clusterhub:req:00000000000000FG", &i), ==, -EINVAL);
        g_assert_cmpint(remote_request_channel_instance("clusterhub:events:x", &i), ==, -EINVAL);
}

typedef struct Line {
        char ns[64], method[64];
        uint64_t count;
} Line;

static int collect(const char *ns, const char *method, uint64_t count, void *userdata) {
        GArray *lines = userdata;
        Line l = { .count = count };

        g_strlcpy(l.ns, ns, sizeof(l.ns));
        g_strlcpy(l.method, method, sizeof(l.method));
        g_array_append_val(lines, l);
        return 0;
}

static int parse(const char *s, uint64_t *instance, guint *n) {
        g_autoptr(GArray) lines = g_array_new(FALSE, TRUE, sizeof(Line));
        int r = remote_served_parse(s, strlen(s), instance, collect, lines);

        *n = lines->len;
        return r;
}

static void test_served(void) {
        uint64_t instance = 0;
        guint n = 0;
        static const char *const bad[] = {
                "", "CHS1 00000000000000ff", "CHS1 ff\n", "CHS2 00000000000000ff\n",
                "CHS1 00000000000000ff\ndefault\techo\n", "CHS1 00000000000000ff\ndefault\techo\t0\n",
                "CHS1 00000000000000ff\ndefault\techo\t1x\n", "CHS1 00000000000000ff\ndefault\techo\t-1\n",
                "CHS1 00000000000000ff\n\techo\t1\n", "CHS1 00000000000000ff\ndefault\techo\t1",
                "CHS1 00000000000000ff\ndefault\techo\t99999999999999999999999\n",
        };

        g_assert_cmpint(parse("CHS1 00000000000000ff\n", &instance, &n), ==, 0);
        g_assert_cmpuint(instance, ==, 255);
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpint(parse("CHS1 0123456789abcdef\ndefault\techo\t2\njobs\tm\t1\n", &instance, &n), ==, 0);
        g_assert_cmpuint(instance, ==, 0x0123456789abcdefu);
        g_assert_cmpuint(n, ==, 2);
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_test_message("%s", bad[i]);
                g_assert_cmpint(parse(bad[i], &instance, &n), ==, -EBADMSG);
        }
        /* bounded: REMOTE_SERVED_MAX lines at most, and a line of at most two names */
        {
                GString *s = g_string_new("CHS1 00000000000000ff\n");
                for (unsigned i = 0; i <= REMOTE_SERVED_MAX; i++)
                        g_string_append_printf(s, "ns\tm%u\t1\n", i);
                g_assert_cmpint(parse(s->str, &instance, &n), ==, -EBADMSG);
                g_string_free(s, TRUE);
        }
        g_assert_true(remote_served_name_ok("echo"));
        g_assert_false(remote_served_name_ok("a\tb"));
        g_assert_false(remote_served_name_ok("a\nb"));
        g_assert_false(remote_served_name_ok(""));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/remote-request/roundtrip", test_roundtrip);
        g_test_add_func("/remote-request/gathered", test_gathered);
        g_test_add_func("/remote-request/hostile", test_hostile);
        g_test_add_func("/remote-request/channel", test_channel);
        g_test_add_func("/remote-request/served", test_served);
        return g_test_run();
}
