/* SPDX-License-Identifier: MIT */
/* The real clusterhubd on private buses (dbus-daemon and dbus-broker), driven through the
 * generated client stubs of libclusterhub. */
#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <signal.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

#define NS CH_DEFAULT_NAMESPACE_PATH

static void assert_error(const sd_bus_error *e, int r, const char *name) {
        g_assert_cmpint(r, <, 0);
        g_assert_true(sd_bus_error_is_set(e));
        if (!sd_bus_error_has_name(e, name))
                g_error("expected %s, got %s: %s", name, e->name, e->message);
        g_test_message("%s: %s", e->name, e->message);
}

static int append_string_variant(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", (const char *) userdata);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 0);
}

static int append_ttl_variant(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", (const char *) userdata);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 1, "ttl_ms", "t", (uint64_t) 60000);
}

static void set_string(sd_bus *bus, const char *key, const char *value) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int set = 0;
        int r = ch_store1_call_set(bus, CH_BUS_NAME, NS, key, append_string_variant, (void *) value, &set, &e);
        if (r < 0)
                g_error("Set(%s): %s: %s", key, e.name, e.message);
        g_assert_true(set);
        sd_bus_error_free(&e);
}

static void test_set_get(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *s = NULL;
        int r;

        set_string(f->client, "greeting", "hello");
        r = ch_store1_call_get(f->client, CH_BUS_NAME, NS, "greeting", &reply, &e);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "s", &s), >, 0);
        g_assert_cmpstr(s, ==, "hello");
        sd_bus_message_unref(reply);

        /* a TTL'd value reads back, and TTL is reflected by Exists */
        r = ch_store1_call_set(f->client, CH_BUS_NAME, NS, "ttl", append_ttl_variant, "x", NULL, &e);
        g_assert_cmpint(r, >=, 0);
}

static void test_types_round_trip(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        /* integer, keeps its type */
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set", &e, NULL, "sva{sv}", "n", "x", (int64_t) -42, 0);
        g_assert_cmpint(r, >=, 0);
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Get", &e, &reply, "s", "n");
        g_assert_cmpint(r, >=, 0);
        int64_t x = 0;
        g_assert_cmpint(sd_bus_message_read(reply, "v", "x", &x), >, 0);
        g_assert_cmpint(x, ==, -42);
        reply = sd_bus_message_unref(reply);

        /* a dictionary with a nested array and a byte array */
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set", &e, NULL, "sva{sv}", "dict",
                               "a{sv}", 2, "name", "s", "job", "sizes", "ai", 3, 1, 2, 3, 0);
        g_assert_cmpint(r, >=, 0);
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Get", &e, &reply, "s", "dict");
        g_assert_cmpint(r, >=, 0);
        const char *contents = NULL;
        char type;
        g_assert_cmpint(sd_bus_message_peek_type(reply, &type, &contents), >, 0);
        g_assert_cmpstr(contents, ==, "a{sv}");
        const char *name = NULL, *k1 = NULL, *k2 = NULL;
        int32_t a = 0, b = 0, c = 0;
        g_assert_cmpint(sd_bus_message_read(reply, "v", "a{sv}", 2, &k1, "s", &name, &k2, "ai", 3, &a, &b, &c), >, 0);
        g_assert_cmpstr(k1, ==, "name");
        g_assert_cmpstr(k2, ==, "sizes");
        g_assert_cmpstr(name, ==, "job");
        g_assert_cmpint(a + b * 10 + c * 100, ==, 321);
        reply = sd_bus_message_unref(reply);

        static const uint8_t bytes[] = { 0, 1, 2, 255 };
        sd_bus_message *m = NULL;
        g_assert_cmpint(sd_bus_message_new_method_call(f->client, &m, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "s", "bytes"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'v', "ay"), >=, 0);
        g_assert_cmpint(sd_bus_message_append_array(m, 'y', bytes, sizeof(bytes)), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "a{sv}", 0), >=, 0);
        g_assert_cmpint(sd_bus_call(f->client, m, 0, &e, NULL), >=, 0);
        sd_bus_message_unref(m);
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Get", &e, &reply, "s", "bytes");
        g_assert_cmpint(r, >=, 0);
        const void *p = NULL;
        size_t n = 0;
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'v', "ay"), >, 0);
        g_assert_cmpint(sd_bus_message_read_array(reply, 'y', &p, &n), >, 0);
        g_assert_cmpuint(n, ==, sizeof(bytes));
        g_assert_cmpint(memcmp(p, bytes, n), ==, 0);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
}

static void test_missing_key(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        g_assert_cmpint(sd_bus_error_add_map(ch_error_map), >=, 0);
        r = ch_store1_call_get(f->client, CH_BUS_NAME, NS, "nothing-here", &reply, &e);
        assert_error(&e, r, CH_ERROR_NO_SUCH_KEY);
        g_assert_cmpint(r, ==, -ENOKEY);
        g_assert_nonnull(strstr(e.message, "nothing-here"));
        g_assert_null(reply);
        sd_bus_error_free(&e);
}

static void test_del_exists_keys(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *some[] = { "job:1", "job:2", "other", "absent", NULL };
        char **keys = NULL;
        uint32_t n = 0;

        set_string(f->client, "job:1", "a");
        set_string(f->client, "job:2", "b");
        set_string(f->client, "other", "c");
        g_assert_cmpint(ch_store1_call_exists(f->client, CH_BUS_NAME, NS, some, &n, &e), >=, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpint(ch_store1_call_keys(f->client, CH_BUS_NAME, NS, "job:*", &keys, &e), >=, 0);
        g_assert_cmpuint(g_strv_length(keys), ==, 2);
        g_assert_true(g_strv_contains((const char *const *) keys, "job:1"));
        g_assert_true(g_strv_contains((const char *const *) keys, "job:2"));
        g_strfreev(keys);
        g_assert_cmpint(ch_store1_call_del(f->client, CH_BUS_NAME, NS, some, &n, &e), >=, 0);
        g_assert_cmpuint(n, ==, 3);
        g_assert_cmpint(ch_store1_call_exists(f->client, CH_BUS_NAME, NS, some, &n, &e), >=, 0);
        g_assert_cmpuint(n, ==, 0);
}

static void test_namespaces_isolated(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char **names = NULL;
        int r;

        set_string(f->client, "k", "default-value");
        /* a key of its own keeps "other" (a namespace that holds nothing goes away) */
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_NAMESPACE_PATH_PREFIX "other", CH_STORE1_INTERFACE, "Set", &e, NULL,
                                           "sva{sv}", "o", "s", "other-value", 0), >=, 0);
        r = ch_store1_call_get(f->client, CH_BUS_NAME, CH_NAMESPACE_PATH_PREFIX "other", "k", &reply, &e);
        assert_error(&e, r, CH_ERROR_NO_SUCH_KEY);
        sd_bus_error_free(&e);
        g_assert_cmpint(ch_hub1_call_list_namespaces(f->client, CH_BUS_NAME, CH_HUB_PATH, &names, &e), >=, 0);
        g_assert_true(g_strv_contains((const char *const *) names, "default"));
        g_assert_true(g_strv_contains((const char *const *) names, "other"));
        g_strfreev(names);
        g_assert_cmpint(ch_hub1_call_drop_namespace(f->client, CH_BUS_NAME, CH_HUB_PATH, "other", &e), >=, 0);
        r = ch_hub1_call_drop_namespace(f->client, CH_BUS_NAME, CH_HUB_PATH, "other", &e);
        assert_error(&e, r, CH_ERROR_NO_SUCH_NAMESPACE);
        sd_bus_error_free(&e);
        r = ch_hub1_call_drop_namespace(f->client, CH_BUS_NAME, CH_HUB_PATH, "no/slash", &e);
        assert_error(&e, r, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
}

/* Bad input of every kind gets a named error and the hub keeps serving. */
static void test_bad_input(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        g_autofree char *long_key = g_strnfill(513, 'k');
        int r;

        r = ch_store1_call_get(f->client, CH_BUS_NAME, NS, "", &reply, &e);
        assert_error(&e, r, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        r = ch_store1_call_get(f->client, CH_BUS_NAME, NS, long_key, &reply, &e);
        assert_error(&e, r, CH_ERROR_INVALID_ARGS);
        g_assert_nonnull(strstr(e.message, "512"));
        sd_bus_error_free(&e);

        /* wrong argument types: sd-bus answers InvalidArgs before our code runs */
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set", &e, NULL, "ss", "k", "v");
        assert_error(&e, r, SD_BUS_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        /* unknown and mistyped options */
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set", &e, NULL, "sva{sv}", "k", "s", "v",
                               1, "ttl", "t", (uint64_t) 5);
        assert_error(&e, r, CH_ERROR_INVALID_ARGS);
        g_assert_nonnull(strstr(e.message, "ttl"));
        sd_bus_error_free(&e);
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set", &e, NULL, "sva{sv}", "k", "s", "v",
                               1, "ttl_ms", "s", "soon");
        assert_error(&e, r, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        /* file descriptors cannot be stored */
        r = sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set", &e, NULL, "sva{sv}", "fd", "h", 0, 0);
        if (r < 0 && !sd_bus_error_has_name(&e, SD_BUS_ERROR_INCONSISTENT_MESSAGE))
                assert_error(&e, r, CH_ERROR_INVALID_ARGS);
        sd_bus_error_free(&e);
        /* namespace path elements that are not namespaces */
        r = ch_store1_call_get(f->client, CH_BUS_NAME, CH_NAMESPACE_PATH_PREFIX "a/b", "k", &reply, &e);
        assert_error(&e, r, SD_BUS_ERROR_UNKNOWN_OBJECT);
        sd_bus_error_free(&e);

        /* still serving */
        set_string(f->client, "after", "ok");
}

/* The live introspection of every object equals the XML the bindings were generated from. */
static void assert_interface_matches(GDBusInterfaceInfo *want, GDBusInterfaceInfo *got) {
        g_assert_nonnull(got);
        for (guint i = 0; want->methods && want->methods[i]; i++) {
                GDBusMethodInfo *wm = want->methods[i];
                GDBusMethodInfo *gm = g_dbus_interface_info_lookup_method(got, wm->name);
                g_assert_nonnull(gm);
                for (int dir = 0; dir < 2; dir++) {
                        GDBusArgInfo **wa = dir ? wm->out_args : wm->in_args, **ga = dir ? gm->out_args : gm->in_args;
                        guint n = 0;
                        for (; wa && wa[n]; n++) {
                                g_assert_true(ga && ga[n]);
                                g_assert_cmpstr(wa[n]->name, ==, ga[n]->name);
                                g_assert_cmpstr(wa[n]->signature, ==, ga[n]->signature);
                        }
                        g_assert_true(!ga || !ga[n]);
                }
        }
        for (guint i = 0; want->signals && want->signals[i]; i++) {
                GDBusSignalInfo *ws = want->signals[i];
                GDBusSignalInfo *gs = g_dbus_interface_info_lookup_signal(got, ws->name);
                g_assert_nonnull(gs);
                guint n = 0;
                for (; ws->args && ws->args[n]; n++) {
                        g_assert_cmpstr(ws->args[n]->name, ==, gs->args[n]->name);
                        g_assert_cmpstr(ws->args[n]->signature, ==, gs->args[n]->signature);
                }
                g_assert_true(!gs->args || !gs->args[n]);
        }
        for (guint i = 0; want->properties && want->properties[i]; i++) {
                GDBusPropertyInfo *gp = g_dbus_interface_info_lookup_property(got, want->properties[i]->name);
                g_assert_nonnull(gp);
                g_assert_cmpstr(gp->signature, ==, want->properties[i]->signature);
                g_assert_cmpint(gp->flags, ==, want->properties[i]->flags);
        }
        /* nothing beyond the XML */
        guint nw = 0, ng = 0;
        while (want->methods && want->methods[nw])
                nw++;
        while (got->methods && got->methods[ng])
                ng++;
        g_assert_cmpuint(nw, ==, ng);
}

static void check_object(sd_bus *bus, const char *path, const char *const *xml_texts) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *text = NULL;
        GError *error = NULL;

        g_assert_cmpint(sd_bus_call_method(bus, CH_BUS_NAME, path, "org.freedesktop.DBus.Introspectable", "Introspect", &e, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &text), >, 0);
        GDBusNodeInfo *live = g_dbus_node_info_new_for_xml(text, &error);
        g_assert_no_error(error);
        for (size_t i = 0; xml_texts[i]; i++) {
                GDBusNodeInfo *want = g_dbus_node_info_new_for_xml(xml_texts[i], &error);
                g_assert_no_error(error);
                g_test_message("%s: %s", path, want->interfaces[0]->name);
                assert_interface_matches(want->interfaces[0], g_dbus_node_info_lookup_interface(live, want->interfaces[0]->name));
                g_dbus_node_info_unref(want);
        }
        g_dbus_node_info_unref(live);
        sd_bus_message_unref(reply);
}

static void test_introspection_contract(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *const hub[] = { ch_hub1_introspection_xml, NULL };
        const char *const ns[] = { ch_events1_introspection_xml, ch_requests1_introspection_xml,
                                   ch_store1_introspection_xml, ch_locks1_introspection_xml, NULL };

        check_object(f->client, CH_HUB_PATH, hub);
        check_object(f->client, NS, ns);
}

static void test_version_and_stats(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *version = NULL;

        g_assert_cmpint(ch_hub1_get_version(f->client, CH_BUS_NAME, CH_HUB_PATH, &version, &e), >=, 0);
        g_assert_true(g_str_has_prefix(version, "0."));
        free(version);
        set_string(f->client, "counted", "1");
        /* calls to members that do not exist are not counted (nor can they grow the table) */
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "NoSuchMethod", &e, NULL, ""), <, 0);
        sd_bus_error_free(&e);
        g_assert_cmpint(ch_hub1_call_get_stats(f->client, CH_BUS_NAME, CH_HUB_PATH, &reply, &e), >=, 0);
        uint64_t keys = UINT64_MAX, uptime = UINT64_MAX, sets = 0, unknown = 0;
        const char *key, *name;
        uint64_t n;
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "s", &key), >, 0);
                if (g_str_equal(key, "keys"))
                        g_assert_cmpint(sd_bus_message_read(reply, "v", "t", &keys), >, 0);
                else if (g_str_equal(key, "uptime_ms"))
                        g_assert_cmpint(sd_bus_message_read(reply, "v", "t", &uptime), >, 0);
                else if (g_str_equal(key, "calls")) {
                        g_assert_cmpint(sd_bus_message_enter_container(reply, 'v', "a{st}"), >, 0);
                        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{st}"), >, 0);
                        while (sd_bus_message_read(reply, "{st}", &name, &n) > 0)
                                if (g_str_equal(name, "Store1.Set"))
                                        sets = n;
                                else if (g_str_equal(name, "Store1.NoSuchMethod"))
                                        unknown = n;
                        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                }
                else
                        g_assert_cmpint(sd_bus_message_skip(reply, "v"), >, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        }
        g_assert_cmpuint(keys, ==, 1);
        g_assert_cmpuint(sets, ==, 1);
        g_assert_cmpuint(unknown, ==, 0);
        g_assert_cmpuint(uptime, !=, UINT64_MAX);
        sd_bus_message_unref(reply);
}

static uint64_t hub_cpu_ticks(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int) pid);
        g_autofree char *text = NULL;
        unsigned long utime = 0, stime = 0;

        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        /* fields 14 and 15, after the ")" that ends the command name */
        const char *p = strrchr(text, ')');
        g_assert_nonnull(p);
        g_assert_cmpint(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime), ==, 2);
        return utime + stime;
}

/* Deadlines too far away for the timer (a TTL or timeout of 2^62 ms) are no deadline: the
 * hub must not spin on them. */
static void test_huge_deadlines(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const uint64_t huge = UINT64_C(1) << 62;
        int64_t ttl = 0;

        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Set", &e, NULL, "sva{sv}",
                                           "far", "s", "x", 1, "ttl_ms", "t", huge), >=, 0);
        g_assert_cmpint(ch_store1_call_ttl(f->client, CH_BUS_NAME, NS, "far", &ttl, &e), >=, 0);
        g_assert_cmpint(ttl, >, 0);
        /* and a request that waits for an absent worker with a 2^62 ms timeout */
        sd_bus_slot *slot = NULL;
        g_assert_cmpint(sd_bus_call_method_async(f->client, &slot, CH_BUS_NAME, NS, "org.clusterhub.Requests1", "Request", NULL, NULL,
                                                 "ssva{sv}", "ghost", "m", "s", "x", 1, "timeout_ms", "t", huge), >=, 0);
        g_assert_cmpint(sd_bus_flush(f->client), >=, 0);
        uint64_t before = hub_cpu_ticks(f->hub.proc.pid);
        g_usleep(G_USEC_PER_SEC);
        uint64_t spent = hub_cpu_ticks(f->hub.proc.pid) - before;
        g_test_message("hub CPU over 1 s with a 2^62 ms TTL pending: %" G_GUINT64_FORMAT " ticks", spent);
        g_assert_cmpuint(spent, <, 20);
        set_string(f->client, "still", "serving");
        sd_bus_slot_unref(slot);
}

/* A second hub on the same bus refuses to start, with a clear exit status. */
static void test_name_taken(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ThHub second = { .proc = TH_PROC_NULL };
        int status = 0;

        g_assert_cmpint(th_hub_spawn_nowait(&second, f->bus.address, NULL), >=, 0);
        g_assert_true(th_hub_wait_exit(&second, &status));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        th_hub_clear(&second);
        /* the first one still serves */
        set_string(f->client, "still", "here");
}


/* Losing the bus is a failure: the hub logs why and exits non-zero, so that systemd's
 * Restart=on-failure brings it back (it used to exit 0 without a word). */
static void test_bus_lost(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *bin = th_hub_binary(), *arg = g_strdup_printf("--address=%s", f->bus.address);
        g_autofree char *logpath = g_build_filename(g_get_tmp_dir(), "ch-bus-lost-XXXXXX", NULL);
        g_autofree char *log = NULL;
        ThProc hub = TH_PROC_NULL;
        int fd, status = 0;

        g_assert_nonnull(bin);
        fd = g_mkstemp(logpath);
        g_assert_cmpint(fd, >=, 0);
        const char *argv[] = { bin, arg, NULL };
        g_assert_cmpint(th_spawn(&hub, argv, NULL, fd, fd), >, 0);
        close(fd);
        g_assert_cmpint(th_wait_for_name(f->client, TH_HUB_NAME, true, 10000), ==, 0);

        th_bus_stop(&f->bus);
        g_assert_true(th_proc_wait(&hub, 10000, &status));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), !=, 0);
        g_assert_true(g_file_get_contents(logpath, &log, NULL, NULL));
        g_test_message("hub log: %s", log);
        g_assert_nonnull(strstr(log, "Lost the connection to"));
        th_proc_clear(&hub);
        (void) unlink(logpath);
}

typedef struct Pending {
        unsigned answered;
        unsigned shutting_down;
} Pending;

static int on_pending_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        p->answered++;
        g_test_message("reply: %s: %s", e ? e->name : "(success)", e ? e->message : "");
        if (e && sd_bus_error_has_name(e, "org.clusterhub.Error.ShuttingDown"))
                p->shutting_down++;
        return 0;
}

/* On SIGTERM every waiting call is answered with ShuttingDown, not left to the caller's own
 * timeout (or a bus NoReply): a Lock waiter, a BLPop, a Request for an absent worker, a
 * WaitForWorkers barrier and an EmitTo queued for an absent worker. */
static void test_sigterm_answers_pending(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *waiter = NULL;
        Pending pending = {};
        const unsigned n = 5;
        int status = 0;

        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, NS, "org.clusterhub.Locks1", "Lock", &e, NULL,
                                           "sa{sv}", "busy", 0), >=, 0);
        g_assert_cmpint(th_connect(&waiter, f->bus.address), >=, 0);
        g_assert_cmpint(sd_bus_call_method_async(waiter, NULL, CH_BUS_NAME, NS, "org.clusterhub.Locks1", "Lock",
                                                 on_pending_reply, &pending, "sa{sv}", "busy", 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method_async(waiter, NULL, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "BLPop",
                                                 on_pending_reply, &pending, "asu", 1, "nothing", 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method_async(waiter, NULL, CH_BUS_NAME, NS, "org.clusterhub.Requests1", "Request",
                                                 on_pending_reply, &pending, "ssva{sv}", "ghost", "m", "s", "x", 0), >=, 0);
        g_assert_cmpint(sd_bus_call_method_async(waiter, NULL, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "WaitForWorkers",
                                                 on_pending_reply, &pending, "uu", 5, 600000), >=, 0);
        g_assert_cmpint(sd_bus_call_method_async(waiter, NULL, CH_BUS_NAME, NS, "org.clusterhub.Events1", "EmitTo",
                                                 on_pending_reply, &pending, "ssv", "absent", "job", "s", "x"), >=, 0);
        /* calls of one connection are handled in order: once this returns, all five wait */
        g_assert_cmpint(sd_bus_call_method(waiter, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "GetStats", &e, NULL, ""), >=, 0);
        g_assert_cmpuint(pending.answered, ==, 0);

        g_assert_cmpint(th_hub_kill(&f->hub, SIGTERM), ==, 0);
        for (gint64 end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC; pending.answered < n && g_get_monotonic_time() < end;) {
                int r = sd_bus_process(waiter, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        (void) sd_bus_wait(waiter, 100 * 1000);
        }
        g_assert_cmpuint(pending.answered, ==, n);
        g_assert_cmpuint(pending.shutting_down, ==, n);
        g_assert_true(th_hub_wait_exit(&f->hub, &status));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        sd_bus_flush_close_unref(waiter);
}

/* An id derived from a unique name belongs to that connection: nobody else can take it first
 * and make the real caller's Register fail. */
static void test_worker_id_squat(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *victim = NULL;
        const char *unique = NULL, *path = NULL;
        sd_bus_message *reply = NULL;
        int r;

        g_assert_cmpint(th_connect(&victim, f->bus.address), >=, 0);
        g_assert_cmpint(sd_bus_get_unique_name(victim, &unique), >=, 0);
        g_autofree char *derived = g_strdup_printf("bus_%s", unique + 1);
        g_strdelimit(derived, ".-", '_');

        r = sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "Register", &e, NULL, "sa{sv}", derived, 0);
        assert_error(&e, r, "org.clusterhub.Error.IdInUse");
        sd_bus_error_free(&e);
        /* an id of the same shape that no connection has is no one's either */
        r = sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "Register", &e, NULL, "sa{sv}", "bus_999999_1", 0);
        assert_error(&e, r, "org.clusterhub.Error.IdInUse");
        sd_bus_error_free(&e);

        /* the owner gets it, derived or asked for by name */
        r = sd_bus_call_method(victim, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "Register", &e, &reply, "sa{sv}", "", 0);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "o", &path), >, 0);
        g_assert_true(g_str_has_suffix(path, derived));
        reply = sd_bus_message_unref(reply);
        r = sd_bus_call_method(victim, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "Register", &e, NULL, "sa{sv}", derived, 0);
        g_assert_cmpint(r, >=, 0);
        sd_bus_flush_close_unref(victim);
}

/* An array argument past --max-elements is refused while it is read, named, without the hub
 * reading the rest (it used to parse in quadratic time first: 25 s for 400k keys). */
static void test_array_bound(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *const args[] = { "--max-elements=1000", NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        char **keys = g_new0(char *, 1002);
        uint32_t n = 0;
        int r;

        g_assert_cmpint(th_hub_stop(&f->hub), ==, 0);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, args), ==, 0);
        for (unsigned i = 0; i < 1001; i++)
                keys[i] = g_strdup_printf("k%u", i);

        g_assert_cmpint(sd_bus_message_new_method_call(f->client, &m, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Exists"), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, keys), >=, 0);
        r = sd_bus_call(f->client, m, 0, &e, NULL);
        assert_error(&e, r, "org.clusterhub.Error.LimitExceeded");
        g_assert_nonnull(strstr(e.message, "Exists"));
        g_assert_nonnull(strstr(e.message, "1000"));
        sd_bus_error_free(&e);
        m = sd_bus_message_unref(m);

        /* 1000 is within the bound */
        g_free(keys[1000]);
        keys[1000] = NULL;
        g_assert_cmpint(sd_bus_message_new_method_call(f->client, &m, CH_BUS_NAME, NS, CH_STORE1_INTERFACE, "Exists"), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, keys), >=, 0);
        g_assert_cmpint(sd_bus_call(f->client, m, 0, &e, &reply), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "u", &n), >, 0);
        g_assert_cmpuint(n, ==, 0);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        g_strfreev(keys);
}

static char **list_namespaces(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char **names = NULL;

        g_assert_cmpint(sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "ListNamespaces", &e, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read_strv(reply, &names), >=, 0);
        sd_bus_message_unref(reply);
        return names;
}

/* Wait (10 s at most) until ListNamespaces shows NAME (present) or does not (!present). */
static bool wait_namespace(sd_bus *bus, const char *name, bool present) {
        for (gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;;) {
                char **names = list_namespaces(bus);
                bool has = g_strv_contains((const char *const *) names, name);
                g_strfreev(names);
                if (has == present)
                        return true;
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(20 * 1000);
        }
}

/* Reads do not leave namespaces behind: 1,100 reads of new names (more than --max-namespaces)
 * all succeed, and what held nothing is gone; a namespace stays while it holds keys, served
 * methods or locks, and goes when it holds nothing again. */
static void test_namespace_disuse(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *xml = NULL;
        uint32_t n = 99;

        for (unsigned i = 0; i < 1100; i++) {
                g_autofree char *path = g_strdup_printf("%s/ns/typo%u", CH_HUB_PATH, i);
                int r = sd_bus_call_method(f->client, CH_BUS_NAME, path, CH_STORE1_INTERFACE, "Exists", &e, &reply, "as", 1, "k");
                if (r < 0)
                        g_error("Exists in typo%u: %s: %s", i, e.name, e.message);
                g_assert_cmpint(sd_bus_message_read(reply, "u", &n), >, 0);
                g_assert_cmpuint(n, ==, 0);
                reply = sd_bus_message_unref(reply);
        }
        g_assert_true(wait_namespace(f->client, "typo1099", false));
        g_auto(GStrv) left = list_namespaces(f->client);
        g_autofree char *joined = g_strjoinv(" ", left);
        g_assert_cmpstr(joined, ==, "default");

        /* introspecting a namespace before its first write shows its interfaces */
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH "/ns/fresh", "org.freedesktop.DBus.Introspectable",
                                           "Introspect", &e, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &xml), >, 0);
        g_assert_nonnull(strstr(xml, "org.clusterhub.Store1"));
        reply = sd_bus_message_unref(reply);

        /* keys keep it; deleting the last one lets it go */
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH "/ns/kept", CH_STORE1_INTERFACE, "Set", &e, NULL,
                                           "sva{sv}", "k", "s", "v", 0), >=, 0);
        g_usleep(100 * 1000);
        g_assert_true(wait_namespace(f->client, "kept", true));
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH "/ns/kept", CH_STORE1_INTERFACE, "Del", &e, NULL,
                                           "as", 1, "k"), >=, 0);
        g_assert_true(wait_namespace(f->client, "kept", false));

        /* a lock keeps it, until it is released */
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH "/ns/locked", "org.clusterhub.Locks1", "Lock", &e, &reply,
                                           "sa{sv}", "l", 0), >=, 0);
        uint64_t token = 0;
        g_assert_cmpint(sd_bus_message_read(reply, "t", &token), >, 0);
        reply = sd_bus_message_unref(reply);
        g_usleep(100 * 1000);
        g_assert_true(wait_namespace(f->client, "locked", true));
        g_assert_cmpint(sd_bus_call_method(f->client, CH_BUS_NAME, CH_HUB_PATH "/ns/locked", "org.clusterhub.Locks1", "Unlock", &e, NULL,
                                           "st", "l", token), >=, 0);
        g_assert_true(wait_namespace(f->client, "locked", false));

        /* a served method keeps it, until its server leaves */
        sd_bus *server = NULL;
        g_assert_cmpint(th_connect(&server, f->bus.address), >=, 0);
        g_assert_cmpint(sd_bus_call_method(server, CH_BUS_NAME, CH_HUB_PATH "/ns/served", "org.clusterhub.Requests1", "Serve", &e, NULL,
                                           "as", 1, "m"), >=, 0);
        g_usleep(100 * 1000);
        g_assert_true(wait_namespace(f->client, "served", true));
        sd_bus_flush_close_unref(server);
        g_assert_true(wait_namespace(f->client, "served", false));
        /* default always stays */
        g_assert_true(wait_namespace(f->client, "default", true));
}

/* Limit options: sizes take K/M/G/T; 0 is refused unless the option says what 0 means. */
static void run_hub_args(const char *arg, int *status, char **err) {
        g_autofree char *bin = th_hub_binary();
        const char *argv[] = { bin, arg, "--version", NULL };
        g_autoptr(GError) error = NULL;

        g_assert_nonnull(bin);
        g_assert_true(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, err, status, &error));
}

static void test_limit_options(void) {
        static const struct {
                const char *arg;
                bool ok;
                const char *message;
        } cases[] = {
                { "--max-memory=8G", true, NULL },
                { "--max-queued-bytes=64MiB", true, NULL },
                { "--max-value-bytes=512KB", true, NULL },
                { "--max-handling-per-worker=0", true, NULL },
                { "--max-memory=8X", false, "optionally with K, M, G or T" },
                { "--max-locks=10K", false, "a whole number is needed" },
                { "--max-locks=0", false, "at least 1" },
                { "--max-lease-ms=0", false, "at least 1" },
                { "--max-memory=99999999999T", false, "too large" },
                { "--max-memory=-1", false, "a whole number" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *err = NULL;
                int status = 0;

                run_hub_args(cases[i].arg, &status, &err);
                g_test_message("%s: status %d, %s", cases[i].arg, status, err);
                g_assert_true(WIFEXITED(status));
                g_assert_cmpint(WEXITSTATUS(status), ==, cases[i].ok ? 0 : 2);
                if (cases[i].message)
                        g_assert_nonnull(strstr(err, cases[i].message));
        }
}

/* The default timeouts come from the limits table: a Request without timeout_ms and a
 * WaitForWorkers with 0 end after --request-timeout-ms / --wait-timeout-ms, well before the
 * client's own 5 s (they would wait 10 s by default). */
static void test_default_timeouts(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *const args[] = { "--request-timeout-ms=200", "--wait-timeout-ms=200", NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        int r;

        g_assert_cmpint(th_hub_stop(&f->hub), ==, 0);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, args), ==, 0);

        g_assert_cmpint(sd_bus_message_new_method_call(f->client, &m, CH_BUS_NAME, NS, "org.clusterhub.Requests1", "Request"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "ssva{sv}", "ghost", "m", "s", "x", 0), >=, 0);
        r = sd_bus_call(f->client, m, 5 * G_USEC_PER_SEC, &e, NULL);
        assert_error(&e, r, "org.clusterhub.Error.WorkerUnavailable");
        sd_bus_error_free(&e);
        m = sd_bus_message_unref(m);

        g_assert_cmpint(sd_bus_message_new_method_call(f->client, &m, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "WaitForWorkers"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "uu", 3, 0), >=, 0);
        r = sd_bus_call(f->client, m, 5 * G_USEC_PER_SEC, &e, NULL);
        assert_error(&e, r, "org.clusterhub.Error.Timeout");
        sd_bus_error_free(&e);
        sd_bus_message_unref(m);
}

/* The fixture's client is where the harness switch says: on the bus (a unique name ":1.N" from
 * the bus daemon), or with TH_TRANSPORT=private on the hub's socket (":p2p.N" from the hub), also
 * after th_fixture_spawn_hub() replaced the hub; either way the hub answers it. */
static void test_transport(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        const char *prefix = th_transport_private() ? ":p2p." : ":1.";
        const char *unique = NULL;

        g_assert_cmpint(sd_bus_get_unique_name(f->client, &unique), >=, 0);
        g_assert_true(g_str_has_prefix(unique, prefix));
        g_assert_cmpint(th_name_has_owner(f->client, TH_HUB_NAME), ==, 1);
        set_string(f->client, "where", unique);

        g_assert_cmpint(th_hub_stop(&f->hub), ==, 0);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, NULL), ==, 0);
        g_assert_cmpint(sd_bus_get_unique_name(f->client, &unique), >=, 0);
        g_assert_true(g_str_has_prefix(unique, prefix));
        set_string(f->client, "where", unique);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/transport", test_transport);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/store/set-get", test_set_get);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/store/types", test_types_round_trip);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/store/missing-key", test_missing_key);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/store/del-exists-keys", test_del_exists_keys);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/namespaces", test_namespaces_isolated);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/bad-input", test_bad_input);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/introspection-contract", test_introspection_contract);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/version-stats", test_version_and_stats);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/name-taken", test_name_taken);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/huge-deadlines", test_huge_deadlines);
        TH_ADD_BUS_TEST("/hub/bus-lost-exits-failure", test_bus_lost);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/sigterm-answers-pending", test_sigterm_answers_pending);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/worker-id-squat", test_worker_id_squat);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/array-bound", test_array_bound);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/namespace-disuse", test_namespace_disuse);
        g_test_add_func("/hub/limit-options", test_limit_options);
        TH_ADD_BUS_TEST_WITH_HUB("/hub/default-timeouts", test_default_timeouts);
        return g_test_run();
}
