/* SPDX-License-Identifier: MIT */
/* Unit tests of the hub's match rules (service/transport/match.c): parsing as dbus-daemon does,
 * every key against messages built on a bus that is started on one end of a socketpair but never
 * talks (sd-bus builds no message on a bus that was not started), and a connection's rule set. */
#include <errno.h>
#include <glib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "match.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MatchRule, match_rule_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MatchSet, match_set_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MatchIndex, match_index_free)

static sd_bus *bus;
static int peer_fd = -1;

static void bus_setup(void) {
        int fds[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
        g_assert_cmpint(sd_bus_new(&bus), ==, 0);
        g_assert_cmpint(sd_bus_set_fd(bus, fds[0], fds[0]), ==, 0);
        g_assert_cmpint(sd_bus_start(bus), >=, 0);
        peer_fd = fds[1];
}

static void bus_teardown(void) {
        sd_bus_close_unref(bus);    /* no flush: nobody answers the handshake */
        close(peer_fd);
}

/* A sealed signal with a body appended from TYPES and the arguments after it (NULL: none). */
static sd_bus_message *signal_new(const char *path, const char *iface, const char *member,
                                  const char *types, ...) {
        sd_bus_message *m = NULL;

        g_assert_cmpint(sd_bus_message_new_signal(bus, &m, path, iface, member), ==, 0);
        if (types) {
                va_list ap;

                va_start(ap, types);
                g_assert_cmpint(sd_bus_message_appendv(m, types, ap), >=, 0);
                va_end(ap);
        }
        g_assert_cmpint(sd_bus_message_seal(m, 1, 0), ==, 0);
        return m;
}

static sd_bus_message *signal_s(const char *arg0) {
        return signal_new("/org/clusterhub", "org.clusterhub.Events1", "Event", "s", arg0);
}

static sd_bus_message *signal_o(const char *arg0) {
        return signal_new("/org/clusterhub", "org.clusterhub.Events1", "Event", "o", arg0);
}

static sd_bus_message *signal_at(const char *path) {
        return signal_new(path, "org.clusterhub.Events1", "Event", NULL);
}

static bool matches(const char *rule, sd_bus_message *m, const char *sender) {
        g_autoptr(MatchRule) r = NULL;

        g_assert_cmpint(match_rule_parse(rule, &r), ==, 0);
        return match_rule_matches(r, m, sender);
}

/* RULE matches the message MAKE builds from ARG, and the message is freed. */
static bool matches_arg(const char *rule, sd_bus_message *(*make)(const char *), const char *arg) {
        sd_bus_message *m = make(arg);
        bool b = matches(rule, m, NULL);

        sd_bus_message_unref(m);
        return b;
}

static int parse_error(const char *text) {
        MatchRule *sentinel = (MatchRule *) &peer_fd, *r = sentinel;
        int k = match_rule_parse(text, &r);

        g_assert_true(r == sentinel);   /* untouched on failure */
        return k;
}

static void assert_canonical(const char *text, const char *canonical) {
        g_autoptr(MatchRule) r = NULL;
        g_autoptr(MatchRule) again = NULL;

        if (g_test_verbose())
                g_test_message("%s", text);
        g_assert_cmpint(match_rule_parse(text, &r), ==, 0);
        g_assert_cmpstr(match_rule_text(r), ==, canonical);
        /* the canonical text reads back as the same rule */
        g_assert_cmpint(match_rule_parse(match_rule_text(r), &again), ==, 0);
        g_assert_cmpstr(match_rule_text(again), ==, canonical);
}

static void test_parse_valid(void) {
        assert_canonical("", "");
        assert_canonical("   ", "");
        assert_canonical("type='signal'", "type='signal'");
        assert_canonical("type=signal,member=Foo", "type='signal',member='Foo'");
        assert_canonical("  type  ='signal',\tmember='Foo',", "type='signal',member='Foo'");
        assert_canonical("arg2='c',member='M',destination=':1.7',path='/a/b',interface='a.b.C',"
                         "sender='org.freedesktop.DBus',type='error'",
                         "type='error',sender='org.freedesktop.DBus',interface='a.b.C',member='M',"
                         "path='/a/b',destination=':1.7',arg2='c'");
        assert_canonical("type='method_call'", "type='method_call'");
        assert_canonical("type='method_return'", "type='method_return'");
        assert_canonical("path_namespace='/'", "path_namespace='/'");
        assert_canonical("path='/'", "path='/'");
        assert_canonical("path='/a_b/C9'", "path='/a_b/C9'");
        assert_canonical("arg3='c',arg1path='/b/',arg0namespace='a.b',arg63=''",
                         "arg0namespace='a.b',arg1path='/b/',arg3='c',arg63=''");
        assert_canonical("arg00='x'", "arg0='x'");      /* dbus-daemon reads the number as strtoul */
        assert_canonical("arg0namespace='com'", "arg0namespace='com'");
        assert_canonical("arg0namespace=':1.42'", "arg0namespace=':1.42'");
        assert_canonical("sender=':1.42'", "sender=':1.42'");
        assert_canonical("sender='a-b.c_d'", "sender='a-b.c_d'");
        assert_canonical("member='_a1'", "member='_a1'");
        assert_canonical("arg0path=''", "arg0path=''");

        /* eavesdrop: accepted, may repeat, the last counts; false is the same as absent */
        assert_canonical("eavesdrop='true'", "eavesdrop='true'");
        assert_canonical("eavesdrop=true,eavesdrop='false'", "");
        assert_canonical("eavesdrop='false',type='signal',eavesdrop=true", "type='signal',eavesdrop='true'");
}

static void test_parse_escapes(void) {
        /* 'it'\''s': close, escaped apostrophe, reopen */
        assert_canonical("arg0='it'\\''s'", "arg0='it'\\''s'");
        assert_canonical("arg0=it\\'s", "arg0='it'\\''s'");
        assert_canonical("arg0=\\'", "arg0=''\\'''");
        /* inside quotes every byte is literal, the backslash and the comma too */
        assert_canonical("arg0='a\\b,c=d'", "arg0='a\\b,c=d'");
        /* outside quotes a backslash before anything but an apostrophe stays */
        assert_canonical("arg0=a\\b", "arg0='a\\b'");
        assert_canonical("arg0=x\\", "arg0='x\\'");
        assert_canonical("arg0=''", "arg0=''");
        assert_canonical("arg0='a'b'c'", "arg0='abc'");
        /* whitespace in a value is the value's (dbus-daemon does not trim it) */
        assert_canonical("arg0= a b ", "arg0=' a b '");

        g_assert_true(matches_arg("arg0='it'\\''s'", signal_s, "it's"));
        g_assert_false(matches_arg("arg0='it'\\''s'", signal_s, "it\\'s"));
        g_assert_true(matches_arg("arg0='a\\b'", signal_s, "a\\b"));
        g_assert_true(matches_arg("arg0='a,b'", signal_s, "a,b"));
        g_assert_true(matches_arg("arg0=''", signal_s, ""));
        g_assert_false(matches_arg("arg0=''", signal_s, "x"));

        /* a value of whitespace is not a type, a name or a path */
        g_assert_cmpint(parse_error("type= 'signal'"), ==, -EINVAL);
        g_assert_cmpint(parse_error("type='signal' ,member='Foo'"), ==, -EINVAL);
}

static void test_parse_invalid(void) {
        static const char *const bad[] = {
                "foo='x'", "Type='signal'", "type='bogus'", "type=''", "type",
                "type='signal", "arg0='a", "='x'", "type='signal',='x'", "type='signal',,member='x'",
                /* duplicates */
                "type='signal',type='signal'", "type='signal',type='error'",
                "sender='org.a',sender='org.a'", "interface='a.b',interface='a.c'",
                "member='A',member='B'", "destination=':1.1',destination=':1.2'",
                "path='/',path='/'", "path='/a',path_namespace='/b'", "path_namespace='/',path='/'",
                "arg0='a',arg0='b'", "arg0='a',arg0path='/'", "arg0='a',arg0namespace='a'",
                "arg0namespace='a',arg0path='/a'", "arg5='a',arg05='b'",
                /* argN keys */
                "arg='x'", "argx='x'", "arg64='x'", "arg100='x'", "arg0001='x'", "arg-1='x'",
                "arg+1='x'", "arg 1='x'", "arg1namespace='a'", "arg0foo='x'", "arg0pathx='/'",
                "arg64path='/'", "arg0Path='/'",
                /* names */
                "sender=''", "sender=':'", "sender='org'", "sender='1a.b'", "sender='a..b'",
                "sender='.a.b'", "sender='a.b.'", "sender='a.b/c'", "sender=':1.'",
                "interface='org'", "interface='org.1a'", "interface='org.a-b'", "interface=''",
                "interface='a..b'", "interface='a.b.'",
                "member='1a'", "member='a.b'", "member=''", "member='a-b'",
                "path=''", "path='a'", "path='/a/'", "path='//'", "path='/a//b'", "path='/a-b'",
                "path_namespace='/a/'", "path_namespace=''",
                "destination='x'", "destination=''",
                "eavesdrop='maybe'", "eavesdrop=''",
                "arg0namespace=''", "arg0namespace='com..x'", "arg0namespace='.com'",
                "arg0namespace='1com'", "arg0namespace='com.'", "arg0namespace='a/b'",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                if (g_test_verbose())
                        g_test_message("%s", bad[i]);
                g_assert_cmpint(parse_error(bad[i]), ==, -EINVAL);
        }
}

static void test_parse_bounds(void) {
        char text[MATCH_RULE_MAX_LEN + 64];
        char name[300];
        size_t len;

        /* exactly MATCH_RULE_MAX_LEN bytes is fine, one more is -E2BIG */
        len = (size_t) snprintf(text, sizeof(text), "arg0='");
        memset(text + len, 'x', MATCH_RULE_MAX_LEN - len - 1);
        text[MATCH_RULE_MAX_LEN - 1] = '\'';
        text[MATCH_RULE_MAX_LEN] = '\0';
        g_assert_cmpuint(strlen(text), ==, MATCH_RULE_MAX_LEN);
        {
                g_autoptr(MatchRule) r = NULL;

                g_assert_cmpint(match_rule_parse(text, &r), ==, 0);
        }
        memmove(text + 7, text + 6, MATCH_RULE_MAX_LEN - 6 + 1);
        text[6] = 'x';
        g_assert_cmpuint(strlen(text), ==, MATCH_RULE_MAX_LEN + 1);
        g_assert_cmpint(parse_error(text), ==, -E2BIG);
        /* an invalid rule over the bound is still -E2BIG, as dbus-daemon checks the length first */
        memset(text, ',', sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
        g_assert_cmpint(parse_error(text), ==, -E2BIG);

        /* names: 255 bytes at most */
        memset(name, 'a', sizeof(name));
        name[1] = '.';
        name[255] = '\0';
        snprintf(text, sizeof(text), "interface='%s'", name);
        {
                g_autoptr(MatchRule) r = NULL;

                g_assert_cmpint(match_rule_parse(text, &r), ==, 0);
        }
        snprintf(text, sizeof(text), "sender='%s'", name);
        {
                g_autoptr(MatchRule) r = NULL;

                g_assert_cmpint(match_rule_parse(text, &r), ==, 0);
        }
        name[255] = 'a';
        name[256] = '\0';
        snprintf(text, sizeof(text), "interface='%s'", name);
        g_assert_cmpint(parse_error(text), ==, -EINVAL);
        snprintf(text, sizeof(text), "sender='%s'", name);
        g_assert_cmpint(parse_error(text), ==, -EINVAL);
        memset(name, 'a', sizeof(name));
        name[255] = '\0';
        snprintf(text, sizeof(text), "member='%s'", name);
        {
                g_autoptr(MatchRule) r = NULL;

                g_assert_cmpint(match_rule_parse(text, &r), ==, 0);
        }
        name[255] = 'a';
        name[256] = '\0';
        snprintf(text, sizeof(text), "member='%s'", name);
        g_assert_cmpint(parse_error(text), ==, -EINVAL);
}

/* Random rules from keys, values and junk: every text parses or is -EINVAL, and a rule's
 * canonical text parses back to itself (--verbose prints the seed, --seed repeats a run). */
static const char *const random_keys[] = {
        "type", "sender", "interface", "member", "path", "path_namespace", "destination",
        "eavesdrop", "arg0", "arg1", "arg63", "arg12path", "arg0namespace", "arg0path", "arg64", "x",
};
static const char *const random_values[] = {
        "signal", "error", "a.b", "/a", "/", "x", "", ":1.2", "M", "true", "com.example", "/a/b/",
        "it s", "a,b", "\\", "\\'",
};
static const char *const random_junk[] = { "'", ",", " ", "=", "\\", "\t", "''" };

static void random_rule(GString *text) {
        int pairs = g_test_rand_int_range(0, 6);

        for (int i = 0; i < pairs; i++) {
                int parts = g_test_rand_int_range(1, 4);

                if (i > 0)
                        g_string_append(text, g_test_rand_bit() ? "," : " , ");
                g_string_append_printf(text, "%s=", random_keys[g_test_rand_int_range(0, G_N_ELEMENTS(random_keys))]);
                for (int j = 0; j < parts; j++) {
                        const char *v = random_values[g_test_rand_int_range(0, G_N_ELEMENTS(random_values))];

                        if (g_test_rand_bit())
                                g_string_append_printf(text, "'%s'", v);
                        else
                                g_string_append(text, v);
                }
                if (g_test_rand_int_range(0, 8) == 0)
                        g_string_append(text, random_junk[g_test_rand_int_range(0, G_N_ELEMENTS(random_junk))]);
        }
}

static void test_parse_random(void) {
        sd_bus_message *m = signal_new("/a", "a.b", "M", "ss", "a.b", "/a");
        unsigned parsed = 0;

        for (int i = 0; i < 20000; i++) {
                g_autoptr(MatchRule) r = NULL;
                g_autoptr(MatchRule) again = NULL;
                g_autoptr(GString) text = g_string_new(NULL);
                int k;

                random_rule(text);
                k = match_rule_parse(text->str, &r);
                if (k < 0) {
                        g_assert_cmpint(k, ==, -EINVAL);
                        continue;
                }
                parsed++;
                (void) match_rule_matches(r, m, NULL);
                g_assert_cmpint(match_rule_parse(match_rule_text(r), &again), ==, 0);
                g_assert_cmpstr(match_rule_text(again), ==, match_rule_text(r));
        }
        /* the generator must reach the success path, else the test checks nothing */
        g_assert_cmpuint(parsed, >, 1000);
        if (g_test_verbose())
                g_test_message("%u of 20000 parsed", parsed);
        sd_bus_message_unref(m);
}

static void test_match_type(void) {
        sd_bus_message *sig = signal_at("/a"), *call = NULL, *ret = NULL, *err = NULL;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &call, "org.clusterhub", "/a", "a.b", "M"), ==, 0);
        g_assert_cmpint(sd_bus_message_seal(call, 2, 0), ==, 0);
        g_assert_cmpint(sd_bus_message_new_method_return(call, &ret), ==, 0);
        g_assert_cmpint(sd_bus_message_new_method_errorf(call, &err, "org.clusterhub.Error.X", "x"), ==, 0);

        g_assert_true(matches("type='signal'", sig, NULL));
        g_assert_false(matches("type='signal'", call, NULL));
        g_assert_true(matches("type='method_call'", call, NULL));
        g_assert_false(matches("type='method_call'", sig, NULL));
        g_assert_true(matches("type='method_return'", ret, NULL));
        g_assert_false(matches("type='method_return'", err, NULL));
        g_assert_true(matches("type='error'", err, NULL));
        g_assert_false(matches("type='error'", ret, NULL));
        /* no key: everything */
        g_assert_true(matches("", sig, NULL));
        g_assert_true(matches("", call, NULL));
        g_assert_true(matches("eavesdrop='true'", ret, NULL));

        sd_bus_message_unref(sig);
        sd_bus_message_unref(call);
        sd_bus_message_unref(ret);
        sd_bus_message_unref(err);
}

static void test_match_interface_member(void) {
        sd_bus_message *m = signal_new("/a", "org.clusterhub.Events1", "KeyChanged", NULL);
        sd_bus_message *call = NULL;

        g_assert_true(matches("interface='org.clusterhub.Events1'", m, NULL));
        g_assert_false(matches("interface='org.clusterhub.Events'", m, NULL));
        g_assert_false(matches("interface='org.clusterhub.Events12'", m, NULL));
        g_assert_true(matches("member='KeyChanged'", m, NULL));
        g_assert_false(matches("member='KeyChange'", m, NULL));
        g_assert_true(matches("type='signal',interface='org.clusterhub.Events1',member='KeyChanged'", m, NULL));
        g_assert_false(matches("type='signal',interface='org.clusterhub.Events1',member='Other'", m, NULL));

        /* a method call without an interface field matches no interface= rule */
        g_assert_cmpint(sd_bus_message_new_method_call(bus, &call, NULL, "/a", NULL, "M"), ==, 0);
        g_assert_cmpint(sd_bus_message_seal(call, 3, 0), ==, 0);
        g_assert_false(matches("interface='org.clusterhub.Events1'", call, NULL));
        g_assert_true(matches("member='M'", call, NULL));

        sd_bus_message_unref(m);
        sd_bus_message_unref(call);
}

static bool path_matches(const char *rule, const char *path) {
        sd_bus_message *m = signal_at(path);
        bool b = matches(rule, m, NULL);

        sd_bus_message_unref(m);
        return b;
}

static void test_match_path(void) {
        g_assert_true(path_matches("path='/com/example/foo'", "/com/example/foo"));
        g_assert_false(path_matches("path='/com/example/foo'", "/com/example/foo/bar"));
        g_assert_false(path_matches("path='/com/example/foo'", "/com/example"));
        g_assert_true(path_matches("path='/'", "/"));
        g_assert_false(path_matches("path='/'", "/a"));

        /* the specification's example */
        g_assert_true(path_matches("path_namespace='/com/example/foo'", "/com/example/foo"));
        g_assert_true(path_matches("path_namespace='/com/example/foo'", "/com/example/foo/bar"));
        g_assert_true(path_matches("path_namespace='/com/example/foo'", "/com/example/foo/bar/baz"));
        g_assert_false(path_matches("path_namespace='/com/example/foo'", "/com/example/foobar"));
        g_assert_false(path_matches("path_namespace='/com/example/foo'", "/com/example"));
        g_assert_false(path_matches("path_namespace='/com/example/foo'", "/"));
        /* '/' is the whole tree */
        g_assert_true(path_matches("path_namespace='/'", "/"));
        g_assert_true(path_matches("path_namespace='/'", "/a"));
        g_assert_true(path_matches("path_namespace='/'", "/org/clusterhub/x"));
}

static void test_match_sender_destination(void) {
        sd_bus_message *m = NULL, *bare = signal_at("/a");

        g_assert_cmpint(sd_bus_message_new_signal(bus, &m, "/a", "a.b", "C"), ==, 0);
        g_assert_cmpint(sd_bus_message_set_sender(m, ":1.5"), ==, 0);
        g_assert_cmpint(sd_bus_message_set_destination(m, ":1.7"), ==, 0);
        g_assert_cmpint(sd_bus_message_seal(m, 4, 0), ==, 0);

        /* the message's own sender when no SENDER is given */
        g_assert_true(matches("sender=':1.5'", m, NULL));
        g_assert_false(matches("sender=':1.6'", m, NULL));
        g_assert_false(matches("sender='org.clusterhub'", m, NULL));
        /* SENDER, when given, is the name the message goes out as */
        g_assert_true(matches("sender='org.clusterhub'", m, "org.clusterhub"));
        g_assert_false(matches("sender=':1.5'", m, "org.clusterhub"));
        g_assert_true(matches("sender='org.clusterhub'", bare, "org.clusterhub"));
        /* no sender at all: no sender= rule matches */
        g_assert_false(matches("sender='org.clusterhub'", bare, NULL));
        g_assert_true(matches("type='signal'", bare, NULL));

        g_assert_true(matches("destination=':1.7'", m, NULL));
        g_assert_false(matches("destination=':1.5'", m, NULL));
        /* a broadcast has no destination */
        g_assert_false(matches("destination=':1.7'", bare, NULL));

        sd_bus_message_unref(m);
        sd_bus_message_unref(bare);
}

static void test_match_args(void) {
        sd_bus_message *m = signal_new("/a", "a.b", "C", "sosisv", "zero", "/one", "two", 3, "four",
                                       "s", "five");

        g_assert_true(matches("arg0='zero'", m, NULL));
        g_assert_false(matches("arg0='zer'", m, NULL));
        g_assert_false(matches("arg0='zeroo'", m, NULL));
        /* argN: STRING only, an OBJECT_PATH, an int or a variant holding a string is not one */
        g_assert_false(matches("arg1='/one'", m, NULL));
        g_assert_true(matches("arg1path='/one'", m, NULL));
        g_assert_true(matches("arg2='two'", m, NULL));
        g_assert_false(matches("arg3='3'", m, NULL));
        g_assert_true(matches("arg4='four'", m, NULL));
        g_assert_false(matches("arg5='five'", m, NULL));
        /* past the end of the body */
        g_assert_false(matches("arg6=''", m, NULL));
        g_assert_false(matches("arg63='x'", m, NULL));
        /* every arg key must hold */
        g_assert_true(matches("arg0='zero',arg2='two',arg4='four'", m, NULL));
        g_assert_false(matches("arg0='zero',arg2='two',arg4='five'", m, NULL));
        g_assert_true(matches("type='signal',interface='a.b',member='C',path='/a',arg0='zero',arg1path='/'", m, NULL));

        sd_bus_message_unref(m);

        /* no body */
        m = signal_at("/a");
        g_assert_false(matches("arg0=''", m, NULL));
        g_assert_false(matches("arg0path='/'", m, NULL));
        g_assert_false(matches("arg0namespace='a'", m, NULL));
        sd_bus_message_unref(m);
}

static void test_match_arg0namespace(void) {
        /* the specification's example */
        g_assert_true(matches_arg("arg0namespace='com.example.backend1'", signal_s, "com.example.backend1"));
        g_assert_true(matches_arg("arg0namespace='com.example.backend1'", signal_s, "com.example.backend1.foo"));
        g_assert_true(matches_arg("arg0namespace='com.example.backend1'", signal_s, "com.example.backend1.foo.bar"));
        g_assert_false(matches_arg("arg0namespace='com.example.backend1'", signal_s, "com.example.backend1foo"));
        g_assert_false(matches_arg("arg0namespace='com.example.backend1'", signal_s, "com.example.backend2"));
        g_assert_false(matches_arg("arg0namespace='com.example.backend1'", signal_s, "com.example"));
        g_assert_false(matches_arg("arg0namespace='com.example.backend1'", signal_s, ""));
        /* one element is a namespace too */
        g_assert_true(matches_arg("arg0namespace='com'", signal_s, "com.example"));
        g_assert_false(matches_arg("arg0namespace='com'", signal_s, "comx"));
        /* an OBJECT_PATH is not a STRING */
        g_assert_false(matches_arg("arg0namespace='com'", signal_o, "/com"));
}

static void test_match_argpath(void) {
        static const char *const yes[] = { "/", "/aa/", "/aa/bb/", "/aa/bb/cc/", "/aa/bb/cc" };
        static const char *const no[] = { "/aa/b", "/aa", "/aa/bb", "", "aa/bb/" };

        /* the specification's example: arg0path='/aa/bb/' */
        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
                g_assert_true(matches_arg("arg0path='/aa/bb/'", signal_s, yes[i]));
                if (yes[i][0] == '/' && (yes[i][1] == '\0' || yes[i][strlen(yes[i]) - 1] != '/'))
                        g_assert_true(matches_arg("arg0path='/aa/bb/'", signal_o, yes[i]));
        }
        for (size_t i = 0; i < G_N_ELEMENTS(no); i++)
                g_assert_false(matches_arg("arg0path='/aa/bb/'", signal_s, no[i]));
        g_assert_false(matches_arg("arg0path='/aa/bb/'", signal_o, "/aa/b"));
        g_assert_false(matches_arg("arg0path='/aa/bb/'", signal_o, "/aa/bb"));

        /* without the trailing '/': equal, or the argument a '/'-ended prefix */
        g_assert_true(matches_arg("arg0path='/aa/bb'", signal_s, "/aa/bb"));
        g_assert_true(matches_arg("arg0path='/aa/bb'", signal_s, "/aa/"));
        g_assert_true(matches_arg("arg0path='/aa/bb'", signal_s, "/"));
        g_assert_false(matches_arg("arg0path='/aa/bb'", signal_s, "/aa/bb/"));
        g_assert_false(matches_arg("arg0path='/aa/bb'", signal_s, "/aa/bb/cc"));
        g_assert_false(matches_arg("arg0path='/aa/bb'", signal_s, "/aa/bbb"));
        g_assert_false(matches_arg("arg0path='/aa/bb'", signal_s, "/aa"));
        g_assert_true(matches_arg("arg0path='/aa/bb'", signal_o, "/aa/bb"));

        /* empty on either side: only the empty string */
        g_assert_true(matches_arg("arg0path=''", signal_s, ""));
        g_assert_false(matches_arg("arg0path=''", signal_s, "/"));
        g_assert_false(matches_arg("arg0path='/'", signal_s, ""));
        /* argNpath values are not validated: any string, as in dbus-daemon */
        g_assert_true(matches_arg("arg0path='a.b/'", signal_s, "a.b/c"));
}

/* The 64th argument after containers of every kind, deep nesting included. */
static void test_match_many_args(void) {
        sd_bus_message *m = NULL;
        char arrays[40], structs[48];
        const char *s;
        int32_t x;

        g_assert_cmpint(sd_bus_message_new_signal(bus, &m, "/a", "a.b", "C"), ==, 0);
        /* arg0: 32 nested arrays (the limit) around one int */
        memset(arrays, 'a', 32);
        arrays[32] = 'i';
        arrays[33] = '\0';
        for (int d = 0; d < 32; d++)
                g_assert_cmpint(sd_bus_message_open_container(m, 'a', arrays + d + 1), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "i", 7), >=, 0);
        for (int d = 0; d < 32; d++)
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        /* arg1: 20 nested structs around a string; arg2: variants in variants */
        memset(structs, '(', 20);
        structs[20] = 's';
        memset(structs + 21, ')', 20);
        structs[41] = '\0';
        for (int d = 0; d < 20; d++) {
                g_autofree char *contents = g_strndup(structs + d + 1, 41 - 2 * (d + 1));

                g_assert_cmpint(sd_bus_message_open_container(m, 'r', contents), >=, 0);
        }
        g_assert_cmpint(sd_bus_message_append(m, "s", "deep"), >=, 0);
        for (int d = 0; d < 20; d++)
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "v", "v", "v", "s", "inner"), >=, 0);
        /* arg3..: a{sv}, as, then strings and ints alternating up to arg 99 */
        g_assert_cmpint(sd_bus_message_append(m, "a{sv}as", 2, "k", "s", "v", "n", "u", 1, 3, "a", "b", "c"), >=, 0);
        for (int i = 5; i < 100; i++) {
                if (i % 2 == 0) {
                        char v[16];

                        snprintf(v, sizeof(v), "v%d", i);
                        g_assert_cmpint(sd_bus_message_append(m, "s", v), >=, 0);
                } else
                        g_assert_cmpint(sd_bus_message_append(m, "i", i), >=, 0);
        }
        g_assert_cmpint(sd_bus_message_seal(m, 5, 0), ==, 0);

        g_assert_false(matches("arg1='deep'", m, NULL));
        g_assert_false(matches("arg2='inner'", m, NULL));
        g_assert_true(matches("arg6='v6'", m, NULL));
        g_assert_true(matches("arg62='v62'", m, NULL));
        g_assert_false(matches("arg63='v63'", m, NULL));      /* an int */
        g_assert_false(matches("arg0path='/'", m, NULL));       /* an array */
        g_assert_true(matches("arg6='v6',arg62='v62'", m, NULL));
        g_assert_true(matches("arg62path='v62'", m, NULL));

        /* the body reads from its start afterwards */
        g_assert_cmpint(sd_bus_message_skip(m, arrays), >=, 0);
        g_assert_cmpint(sd_bus_message_skip(m, structs), >=, 0);
        g_assert_cmpint(sd_bus_message_skip(m, "v"), >=, 0);
        g_assert_cmpint(sd_bus_message_skip(m, "a{sv}as"), >=, 0);
        g_assert_cmpint(sd_bus_message_read(m, "is", &x, &s), ==, 1);
        g_assert_cmpint(x, ==, 5);
        g_assert_cmpstr(s, ==, "v6");
        sd_bus_message_unref(m);
}

/* Matching leaves the message as it was: readable from the start, sendable. */
static void test_match_leaves_message(void) {
        g_autoptr(MatchSet) set = NULL;
        sd_bus_message *m = signal_new("/a", "a.b", "C", "sss", "one", "two", "three");
        const char *a, *b, *c;

        g_assert_cmpint(match_set_new(&set), ==, 0);
        g_assert_cmpint(match_set_add(set, "arg2='nope'"), ==, 0);
        g_assert_cmpint(match_set_add(set, "arg1='two'"), ==, 0);

        /* a message someone already started to read is matched from its first argument */
        g_assert_cmpint(sd_bus_message_read(m, "s", &a), ==, 1);
        g_assert_true(match_set_matches(set, m, NULL));
        g_assert_cmpint(sd_bus_message_read(m, "sss", &a, &b, &c), ==, 1);
        g_assert_cmpstr(a, ==, "one");
        g_assert_cmpstr(b, ==, "two");
        g_assert_cmpstr(c, ==, "three");
        /* twice the same answer */
        g_assert_true(match_set_matches(set, m, NULL));
        g_assert_true(match_set_matches(set, m, NULL));
        g_assert_cmpint(sd_bus_message_read(m, "sss", &a, &b, &c), ==, 1);
        g_assert_cmpstr(c, ==, "three");
        sd_bus_message_unref(m);
}

/* An unsealed body cannot be read: header keys still match, arg keys never. */
static void test_match_unsealed(void) {
        sd_bus_message *m = NULL;

        g_assert_cmpint(sd_bus_message_new_signal(bus, &m, "/a", "a.b", "C"), ==, 0);
        g_assert_cmpint(sd_bus_message_append(m, "s", "x"), >=, 0);
        g_assert_true(matches("type='signal',path='/a',member='C'", m, NULL));
        g_assert_false(matches("arg0='x'", m, NULL));
        g_assert_cmpint(sd_bus_message_seal(m, 6, 0), ==, 0);
        g_assert_true(matches("arg0='x'", m, NULL));
        sd_bus_message_unref(m);
}

static void test_set_add_remove(void) {
        g_autoptr(MatchSet) set = NULL;
        sd_bus_message *a = signal_s("a"), *b = signal_s("b");

        g_assert_cmpint(match_set_new(&set), ==, 0);
        g_assert_cmpuint(match_set_size(set), ==, 0);
        g_assert_false(match_set_matches(set, a, NULL));

        /* an equal rule twice is two rules; one remove takes one */
        g_assert_cmpint(match_set_add(set, "type='signal',arg0='a'"), ==, 0);
        g_assert_cmpint(match_set_add(set, "arg0=a,type=signal"), ==, 0);
        g_assert_cmpuint(match_set_size(set), ==, 2);
        g_assert_true(match_set_matches(set, a, NULL));
        g_assert_false(match_set_matches(set, b, NULL));
        g_assert_cmpint(match_set_remove(set, "type='signal',arg0='a'"), ==, 0);
        g_assert_cmpuint(match_set_size(set), ==, 1);
        g_assert_true(match_set_matches(set, a, NULL));

        /* any rule of the set */
        g_assert_cmpint(match_set_add(set, "arg0='b'"), ==, 0);
        g_assert_true(match_set_matches(set, a, NULL));
        g_assert_true(match_set_matches(set, b, NULL));

        /* equality is dbus-daemon's: same keys and values, whatever the order and quoting */
        g_assert_cmpint(match_set_remove(set, "arg0='a',type='signal'"), ==, 0);
        g_assert_false(match_set_matches(set, a, NULL));
        g_assert_cmpint(match_set_remove(set, "arg0='a',type='signal'"), ==, -ENOENT);
        g_assert_cmpint(match_set_remove(set, "arg0path='b'"), ==, -ENOENT);
        g_assert_cmpint(match_set_remove(set, "arg0='b',type='signal'"), ==, -ENOENT);
        g_assert_cmpint(match_set_remove(set, "arg0='b',eavesdrop='true'"), ==, -ENOENT);
        g_assert_cmpint(match_set_remove(set, "arg0='b',eavesdrop='false'"), ==, 0);
        g_assert_cmpuint(match_set_size(set), ==, 0);
        g_assert_false(match_set_matches(set, b, NULL));

        /* bad text: the parse error, the set unchanged */
        g_assert_cmpint(match_set_add(set, "arg0='b',bogus='x'"), ==, -EINVAL);
        g_assert_cmpint(match_set_remove(set, "bogus='x'"), ==, -EINVAL);
        g_assert_cmpuint(match_set_size(set), ==, 0);

        sd_bus_message_unref(a);
        sd_bus_message_unref(b);
}

static void test_set_cap(void) {
        g_autoptr(MatchSet) set = NULL;
        char text[64];
        sd_bus_message *m = signal_s("k511");

        g_assert_cmpint(match_set_new(&set), ==, 0);
        for (unsigned i = 0; i < MATCH_SET_MAX_RULES; i++) {
                snprintf(text, sizeof(text), "arg0='k%u'", i);
                g_assert_cmpint(match_set_add(set, text), ==, 0);
        }
        g_assert_cmpuint(match_set_size(set), ==, MATCH_SET_MAX_RULES);
        g_assert_true(match_set_matches(set, m, NULL));
        g_assert_cmpint(match_set_add(set, "arg0='k0'"), ==, -ENOBUFS);
        g_assert_cmpint(match_set_add(set, "bogus='x'"), ==, -EINVAL);
        g_assert_cmpuint(match_set_size(set), ==, MATCH_SET_MAX_RULES);
        /* removing one makes room for one */
        g_assert_cmpint(match_set_remove(set, "arg0='k511'"), ==, 0);
        g_assert_false(match_set_matches(set, m, NULL));
        g_assert_cmpint(match_set_add(set, "arg0='k511'"), ==, 0);
        g_assert_cmpint(match_set_add(set, "arg0='k512'"), ==, -ENOBUFS);
        g_assert_true(match_set_matches(set, m, NULL));
        sd_bus_message_unref(m);
}

/* ---- the index: it must find exactly the sets match_set_matches() says match ---- */

#define INDEX_SETS 24

static const char *const index_rules[] = {
        "type='signal',interface='org.clusterhub.Events1',member='Event',arg0='a'",
        "type='signal',interface='org.clusterhub.Events1',member='Event',arg0='b',path='/ns/x'",
        "interface='org.clusterhub.Events1',member='Event',arg0='a',arg1='o'",
        "interface='org.clusterhub.Events1',member='Event'",
        "interface='org.clusterhub.Events1',member='Event',path_namespace='/ns'",
        "interface='org.clusterhub.Events1',member='Event',arg0namespace='a'",
        "interface='org.clusterhub.Events1',member='Event',arg0path='/a/'",
        "interface='org.clusterhub.Events1',member='Event',arg1='a'",
        "interface='org.clusterhub.Events1',member='Event',arg0='a',sender='org.clusterhub'",
        "interface='org.clusterhub.Events1',member='Event',arg0='a',destination=':1.1'",
        "interface='org.clusterhub.Events1',member='Event',arg0=''",
        "interface='org.clusterhub.Events1',member='Event',arg0='a\tb'",
        "interface='org.clusterhub.Events1',member='Event',type='method_call'",
        "interface='org.clusterhub.Store1',member='KeyChanged',arg0='a'",
        "interface='org.clusterhub.Store1',member='KeyChanged',arg1='set'",
        "interface='org.clusterhub.Store1'",
        "member='Event'",
        "member='Event',arg0='a'",
        "arg0='b'",
        "path='/ns/x'",
        "type='signal'",
        "sender='org.clusterhub',arg0namespace='b'",
        "",
};

/* A message from a small space, so that rules and messages meet often. */
static sd_bus_message *index_message(void) {
        static const char *const ifaces[] = { "org.clusterhub.Events1", "org.clusterhub.Store1", "a.b" };
        static const char *const members[] = { "Event", "KeyChanged", "M" };
        static const char *const paths[] = { "/ns/x", "/ns", "/a" };
        static const char *const args[] = { "a", "b", "", "a\tb", "a.c", "/a/b", "o", "set" };
        const char *iface = ifaces[g_test_rand_int_range(0, G_N_ELEMENTS(ifaces))];
        const char *member = members[g_test_rand_int_range(0, G_N_ELEMENTS(members))];
        const char *path = paths[g_test_rand_int_range(0, G_N_ELEMENTS(paths))];
        const char *a0 = args[g_test_rand_int_range(0, G_N_ELEMENTS(args))];
        const char *a1 = args[g_test_rand_int_range(0, G_N_ELEMENTS(args))];

        switch (g_test_rand_int_range(0, 4)) {
        case 0:
                return signal_new(path, iface, member, NULL);
        case 1:
                return signal_new(path, iface, member, "s", a0);
        case 2:
                return signal_new(path, iface, member, "ss", a0, a1);
        default:
                return signal_new(path, iface, member, "us", 7U, a1);
        }
}

static void record_owner(void *owner, void *userdata) {
        unsigned *seen = userdata;

        seen[GPOINTER_TO_UINT(owner)]++;
}

/* Every message against every set: the index finds a set once when it matches, never else. */
static unsigned index_check(MatchIndex *x, MatchSet **sets, sd_bus_message *m, const char *sender) {
        unsigned seen[INDEX_SETS + 1] = {}, want = 0;
        size_t n = match_index_foreach(x, m, sender, record_owner, seen);

        for (unsigned i = 1; i <= INDEX_SETS; i++) {
                bool expected = match_set_matches(sets[i - 1], m, sender);

                g_assert_cmpuint(seen[i], ==, expected ? 1 : 0);
                want += expected;
        }
        g_assert_cmpuint(n, ==, want);
        return want;
}

static void test_index_random(void) {
        g_autoptr(MatchIndex) x = NULL;
        MatchSet *sets[INDEX_SETS];
        unsigned found = 0, checked = 0;

        g_assert_cmpint(match_index_new(&x), ==, 0);
        for (unsigned i = 0; i < INDEX_SETS; i++)
                /* owners 1..N, so that NULL is never one */
                g_assert_cmpint(match_set_new_indexed(x, GUINT_TO_POINTER(i + 1), &sets[i]), ==, 0);

        for (int round = 0; round < 4000; round++) {
                MatchSet *s = sets[g_test_rand_int_range(0, INDEX_SETS)];
                const char *rule = index_rules[g_test_rand_int_range(0, G_N_ELEMENTS(index_rules))];
                sd_bus_message *m;

                /* rules come and go (twice the same one too); removing an absent one is -ENOENT */
                if (g_test_rand_int_range(0, 3) > 0)
                        (void) match_set_add(s, rule);
                else
                        {
                        int k = match_set_remove(s, rule);

                        g_assert_true(k == 0 || k == -ENOENT);
                }
                m = index_message();
                found += index_check(x, sets, m, g_test_rand_bit() ? "org.clusterhub" : NULL);
                checked++;
                sd_bus_message_unref(m);
        }
        /* the walk met matches and misses, else it checks little */
        g_assert_cmpuint(found, >, checked);
        g_assert_cmpuint(found, <, checked * INDEX_SETS);

        /* taken out of the index as sets go: the rest still answer the same */
        for (unsigned i = 0; i < INDEX_SETS; i += 2) {
                match_set_free(sets[i]);
                g_assert_cmpint(match_set_new_indexed(x, GUINT_TO_POINTER(i + 1), &sets[i]), ==, 0);
        }
        for (int round = 0; round < 500; round++) {
                sd_bus_message *m = index_message();

                (void) index_check(x, sets, m, NULL);
                sd_bus_message_unref(m);
        }
        for (unsigned i = 0; i < INDEX_SETS; i++)
                match_set_free(sets[i]);
        g_assert_cmpuint(match_index_size(x), ==, 0);
}

/* Only the sets that can match are visited: an event name's subscribers, not the others. */
static void test_index_counts(void) {
        g_autoptr(MatchIndex) x = NULL;
        MatchSet *sets[INDEX_SETS];
        unsigned seen[INDEX_SETS + 1] = {};
        char rule[128];
        sd_bus_message *m = signal_s("e3");

        g_assert_cmpint(match_index_new(&x), ==, 0);
        for (unsigned i = 0; i < INDEX_SETS; i++) {
                g_assert_cmpint(match_set_new_indexed(x, GUINT_TO_POINTER(i + 1), &sets[i]), ==, 0);
                snprintf(rule, sizeof(rule), "interface='org.clusterhub.Events1',member='Event',arg0='e%u'", i % 4);
                g_assert_cmpint(match_set_add(sets[i], rule), ==, 0);
        }
        g_assert_cmpuint(match_index_size(x), ==, INDEX_SETS);
        g_assert_cmpuint(match_index_foreach(x, m, NULL, record_owner, seen), ==, INDEX_SETS / 4);
        for (unsigned i = 0; i < INDEX_SETS; i++)
                g_assert_cmpuint(seen[i + 1], ==, i % 4 == 3 ? 1 : 0);
        for (unsigned i = 0; i < INDEX_SETS; i++)
                match_set_free(sets[i]);
        sd_bus_message_unref(m);
}

/* -m perf: what the index saves a broadcast with 1,000 subscribers, one event name each (the
 * scale rows of clusterhub-bench): every set walked, against the index.  Not a pass/fail timing:
 * it prints both (run: test-match -m perf -p /match/index/perf --verbose). */
#define PERF_SETS 1000
#define PERF_SIGNALS 20000

static void count_owner(void *owner, void *userdata) {
        (*(unsigned *) userdata)++;
}

static void test_index_perf(void) {
        g_autoptr(MatchIndex) x = NULL;
        MatchSet *indexed[PERF_SETS], *plain[PERF_SETS];
        sd_bus_message *m[16];
        unsigned walked = 0, found = 0;
        double t_walk, t_index;
        char rule[256];

        if (!g_test_perf()) {
                g_test_skip("a measurement: run with -m perf");
                return;
        }
        g_assert_cmpint(match_index_new(&x), ==, 0);
        for (unsigned i = 0; i < PERF_SETS; i++) {
                snprintf(rule, sizeof(rule), "type='signal',path='/org/clusterhub/ns/default',"
                         "interface='org.clusterhub.Events1',member='Event',arg0='scale.%u'", i);
                g_assert_cmpint(match_set_new_indexed(x, GUINT_TO_POINTER(i + 1), &indexed[i]), ==, 0);
                g_assert_cmpint(match_set_new(&plain[i]), ==, 0);
                g_assert_cmpint(match_set_add(indexed[i], rule), ==, 0);
                g_assert_cmpint(match_set_add(plain[i], rule), ==, 0);
        }
        for (unsigned k = 0; k < G_N_ELEMENTS(m); k++) {
                g_autofree char *event = g_strdup_printf("scale.%u", k * 61);

                m[k] = signal_new("/org/clusterhub/ns/default", "org.clusterhub.Events1", "Event", "ss", event, ":1.7");
        }

        g_test_timer_start();
        for (unsigned n = 0; n < PERF_SIGNALS; n++)
                for (unsigned i = 0; i < PERF_SETS; i++)
                        walked += match_set_matches(plain[i], m[n % G_N_ELEMENTS(m)], "org.clusterhub");
        t_walk = g_test_timer_elapsed();
        g_test_timer_start();
        for (unsigned n = 0; n < PERF_SIGNALS; n++)
                (void) match_index_foreach(x, m[n % G_N_ELEMENTS(m)], "org.clusterhub", count_owner, &found);
        t_index = g_test_timer_elapsed();

        g_assert_cmpuint(walked, ==, PERF_SIGNALS);
        g_assert_cmpuint(found, ==, walked);
        g_test_message("%u signals, %u sets of one rule each: every set %.2f us/signal, the index %.3f us/signal (%.0fx)",
                       PERF_SIGNALS, PERF_SETS, t_walk * 1e6 / PERF_SIGNALS, t_index * 1e6 / PERF_SIGNALS, t_walk / t_index);
        for (unsigned i = 0; i < PERF_SETS; i++) {
                match_set_free(indexed[i]);
                match_set_free(plain[i]);
        }
        for (unsigned k = 0; k < G_N_ELEMENTS(m); k++)
                sd_bus_message_unref(m[k]);
}

int main(int argc, char *argv[]) {
        int r;

        g_test_init(&argc, &argv, NULL);
        bus_setup();
        g_test_add_func("/match/parse/valid", test_parse_valid);
        g_test_add_func("/match/parse/escapes", test_parse_escapes);
        g_test_add_func("/match/parse/invalid", test_parse_invalid);
        g_test_add_func("/match/parse/bounds", test_parse_bounds);
        g_test_add_func("/match/parse/random", test_parse_random);
        g_test_add_func("/match/type", test_match_type);
        g_test_add_func("/match/interface-member", test_match_interface_member);
        g_test_add_func("/match/path", test_match_path);
        g_test_add_func("/match/sender-destination", test_match_sender_destination);
        g_test_add_func("/match/args", test_match_args);
        g_test_add_func("/match/arg0namespace", test_match_arg0namespace);
        g_test_add_func("/match/argpath", test_match_argpath);
        g_test_add_func("/match/many-args", test_match_many_args);
        g_test_add_func("/match/leaves-message", test_match_leaves_message);
        g_test_add_func("/match/unsealed", test_match_unsealed);
        g_test_add_func("/match/set/add-remove", test_set_add_remove);
        g_test_add_func("/match/set/cap", test_set_cap);
        g_test_add_func("/match/index/random", test_index_random);
        g_test_add_func("/match/index/counts", test_index_counts);
        g_test_add_func("/match/index/perf", test_index_perf);
        r = g_test_run();
        bus_teardown();
        return r;
}
