/* SPDX-License-Identifier: MIT */
/*
 * Self-test of the bus test harness.  Needs dbus-daemon (and dbus-broker for
 * the broker cases, else they skip); never needs clusterhubd: the hub cases
 * run this same binary in "--address=" mode as a stand-in hub that owns
 * org.clusterhub.Hub1 and exits 0 on SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "harness.h"

/* ---- stand-in hub ------------------------------------------------------- */

static volatile sig_atomic_t fake_hub_quit;

static void fake_hub_on_term(int sig) {
        fake_hub_quit = 1;
}

static int fake_hub_main(const char *address) {
        struct sigaction sa = { .sa_handler = fake_hub_on_term };
        sd_bus *bus = NULL;
        int r;

        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);

        r = th_connect(&bus, address);
        if (r < 0) {
                fprintf(stderr, "fake hub: connect %s: %s\n", address, strerror(-r));
                return 1;
        }
        r = sd_bus_request_name(bus, TH_HUB_NAME, 0);
        if (r < 0) {
                fprintf(stderr, "fake hub: RequestName: %s\n", strerror(-r));
                sd_bus_unref(bus);
                return 1;
        }
        while (!fake_hub_quit) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r == 0)
                        (void) sd_bus_wait(bus, 100 * 1000);
        }
        sd_bus_flush_close_unref(bus);
        return fake_hub_quit ? 0 : 1;
}

/* ---- helpers ------------------------------------------------------------ */

/* Alive and not a zombie (orphans may linger as zombies under a lazy PID 1). */
static bool pid_alive(pid_t pid);

/* A SIGKILL takes a moment to land on a busy machine: wait for PID to be gone (10 s at most). */
static bool pid_gone(pid_t pid) {
        for (gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC; pid_alive(pid);) {
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(10 * 1000);
        }
        return true;
}

static bool pid_alive(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int) pid);
        g_autofree char *stat = NULL;
        const char *p;

        if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
                return false;
        if (!g_file_get_contents(path, &stat, NULL, NULL))
                return false;
        p = strrchr(stat, ')');
        return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

/* Children of pid (from /proc/PID/task/PID/children), or NULL if unreadable. */
static GArray *children_of(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/task/%d/children", (int) pid, (int) pid);
        g_autofree char *text = NULL;
        g_auto(GStrv) parts = NULL;
        GArray *a;

        if (!g_file_get_contents(path, &text, NULL, NULL))
                return NULL;
        a = g_array_new(FALSE, FALSE, sizeof(pid_t));
        parts = g_strsplit(g_strstrip(text), " ", -1);
        for (size_t i = 0; parts[i]; i++)
                if (*parts[i]) {
                        pid_t c = (pid_t) atoi(parts[i]);
                        g_array_append_val(a, c);
                }
        return a;
}

static void assert_list_names(sd_bus *client) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char **names = NULL;
        const char *unique = NULL;
        int r;

        r = sd_bus_call_method(client, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "ListNames", &error, &reply, "");
        g_assert_cmpint(r, >=, 0);
        r = sd_bus_message_read_strv(reply, &names);
        g_assert_cmpint(r, >=, 0);
        g_assert_true(g_strv_contains((const char *const *) names, "org.freedesktop.DBus"));
        r = sd_bus_get_unique_name(client, &unique);
        g_assert_cmpint(r, >=, 0);
        g_assert_true(g_strv_contains((const char *const *) names, unique));
        g_strfreev(names);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
}

/* ---- tests -------------------------------------------------------------- */

static void test_bus_kind(gconstpointer data) {
        ThBusKind kind = (ThBusKind) GPOINTER_TO_INT(data);
        ThBus bus;
        sd_bus *client = NULL;
        g_autofree char *tmpdir = NULL;
        g_autoptr(GArray) kids = NULL;
        pid_t pid;
        int r;

        if (!th_bus_start(&bus, kind)) {
                if (kind == TH_BUS_BROKER && !g_getenv("TH_REQUIRE_BROKER"))
                        g_test_skip(bus.skip_reason);
                else
                        g_test_fail_printf("%s: %s", th_bus_kind_to_string(kind), bus.skip_reason);
                g_free(bus.skip_reason);
                return;
        }
        g_assert_nonnull(bus.address);
        g_assert_true(g_str_has_prefix(bus.address, "unix:path="));
        g_assert_true(g_file_test(bus.tmpdir, G_FILE_TEST_IS_DIR));
        tmpdir = g_strdup(bus.tmpdir);
        pid = bus.proc.pid;
        g_assert_cmpint(pid, >, 0);
        g_assert_cmpuint(th_live_children(), ==, 1);

        r = th_connect(&client, bus.address);
        g_assert_cmpint(r, ==, 0);
        assert_list_names(client);
        client = sd_bus_flush_close_unref(client);

        kids = children_of(pid); /* th-broker's dbus-broker */

        th_bus_stop(&bus);
        g_assert_false(pid_alive(pid));
        for (guint i = 0; kids && i < kids->len; i++)
                g_assert_false(pid_alive(g_array_index(kids, pid_t, i)));
        g_assert_false(g_file_test(tmpdir, G_FILE_TEST_EXISTS));
        g_assert_cmpuint(th_live_children(), ==, 0);
        g_assert_null(bus.address);
        th_bus_stop(&bus); /* idempotent */
        g_free(bus.skip_reason);
}

static void test_system_like(void) {
        static const char policy[] =
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <policy context=\"default\">\n"
                "    <allow own=\"org.clusterhub.HarnessTest\"/>\n"
                "    <allow send_destination=\"org.clusterhub.HarnessTest\" send_interface=\"org.freedesktop.DBus.Peer\"/>\n"
                "  </policy>\n"
                "</busconfig>\n";
        g_autoptr(GError) error = NULL;
        g_autofree char *dir = g_dir_make_tmp("th-policy-XXXXXX", &error);
        g_autofree char *file = NULL;
        sd_bus_error berr = SD_BUS_ERROR_NULL;
        sd_bus *owner = NULL, *client = NULL;
        ThBus bus;
        int r;

        g_assert_no_error(error);
        file = g_build_filename(dir, "test.conf", NULL);
        g_assert_true(g_file_set_contents(file, policy, -1, &error));

        if (!th_bus_start_full(&bus, TH_BUS_SYSTEM_LIKE, file)) {
                g_test_fail_printf("system-like bus: %s", bus.skip_reason);
                g_free(bus.skip_reason);
                goto out;
        }
        g_assert_true(g_str_has_suffix(bus.address, "/system_bus_socket") ||
                      strstr(bus.address, "/system_bus_socket,") != NULL);

        g_assert_cmpint(th_connect(&owner, bus.address), ==, 0);
        g_assert_cmpint(th_connect(&client, bus.address), ==, 0);
        assert_list_names(client);

        /* default deny own, except what the included file allows */
        r = sd_bus_request_name(owner, "org.example.NotAllowed", 0);
        g_assert_cmpint(r, ==, -EACCES);
        r = sd_bus_request_name(owner, "org.clusterhub.HarnessTest", 0);
        g_assert_cmpint(r, >=, 0);

        /* method calls are denied by default ... */
        r = sd_bus_call_method(client, "org.clusterhub.HarnessTest", "/", "org.example.Iface",
                               "Nope", &berr, NULL, "");
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(berr.name, ==, SD_BUS_ERROR_ACCESS_DENIED);
        sd_bus_error_free(&berr);
        /* ... unless the included file allows them (sd-bus answers Peer.Ping itself) */
        {
                sd_bus_message *m = NULL;

                r = sd_bus_message_new_method_call(client, &m, "org.clusterhub.HarnessTest", "/",
                                                   "org.freedesktop.DBus.Peer", "Ping");
                g_assert_cmpint(r, >=, 0);
                r = sd_bus_send(client, m, NULL);
                g_assert_cmpint(r, >=, 0);
                sd_bus_message_unref(m);
                /* the owner must process the call for the reply to come back */
                for (int i = 0; i < 200; i++) {
                        (void) sd_bus_process(owner, NULL);
                        (void) sd_bus_flush(owner);
                        r = sd_bus_process(client, NULL);
                        g_assert_cmpint(r, >=, 0);
                        if (r == 0)
                                g_usleep(5000);
                }
                r = sd_bus_call_method(client, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetId", &berr, NULL, "");
                g_assert_cmpint(r, >=, 0);
        }

        owner = sd_bus_flush_close_unref(owner);
        client = sd_bus_flush_close_unref(client);
        th_bus_stop(&bus);
        g_free(bus.skip_reason);
        g_assert_cmpuint(th_live_children(), ==, 0);
out:
        sd_bus_error_free(&berr);
        g_unlink(file);
        g_rmdir(dir);
}

static void test_spawn(void) {
        const char *const sleep_argv[] = { "sleep", "1000", NULL };
        const char *const true_argv[] = { "sh", "-c", "exit 7", NULL };
        const char *const missing_argv[] = { "/nonexistent/th-no-such-binary", NULL };
        ThProc p = TH_PROC_NULL;
        int status = -1;
        pid_t pid;

        pid = th_spawn(&p, sleep_argv, NULL, -1, -1);
        g_assert_cmpint(pid, >, 0);
        g_assert_true(pid_alive(pid));
        g_assert_false(th_proc_wait(&p, 50, NULL));
        g_assert_cmpint(th_proc_kill(&p, SIGTERM), ==, 0);
        g_assert_true(th_proc_wait(&p, 5000, &status));
        g_assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
        g_assert_false(pid_alive(pid));
        th_proc_clear(&p);

        pid = th_spawn(&p, true_argv, NULL, -1, -1);
        g_assert_cmpint(pid, >, 0);
        status = th_proc_stop(&p, SIGCONT, 5000); /* SIGCONT: just wait */
        g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 7);
        th_proc_clear(&p);

        pid = th_spawn(&p, missing_argv, NULL, -1, -1);
        g_assert_cmpint(pid, ==, -ENOENT);
        th_proc_clear(&p);

        /* th_proc_stop escalates to SIGKILL for a process ignoring SIGTERM */
        {
                const char *const stubborn[] = { "sh", "-c", "trap '' TERM; sleep 1000 & wait", NULL };

                pid = th_spawn(&p, stubborn, NULL, -1, -1);
                g_assert_cmpint(pid, >, 0);
                g_usleep(100 * 1000);
                status = th_proc_stop(&p, SIGTERM, 200);
                g_assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                th_proc_clear(&p);
        }
        g_assert_cmpuint(th_live_children(), ==, 0);
}

/* A failed assertion (abort()) still kills the buses and helpers and removes the temp dirs. */
static void test_abort_cleanup(void) {
        g_autoptr(GError) error = NULL;
        g_autofree char *file = NULL, *text = NULL;
        g_auto(GStrv) fields = NULL;
        int fd;

        if (g_test_subprocess()) {
                const char *const sleep_argv[] = { "sleep", "1000", NULL };
                ThBus daemon, broker;
                ThProc p = TH_PROC_NULL;
                FILE *f = fopen(g_getenv("TH_ABORT_FILE"), "we");

                g_assert_nonnull(f);
                g_assert_true(th_bus_start(&daemon, TH_BUS_DBUS_DAEMON));
                g_assert_cmpint(th_spawn(&p, sleep_argv, NULL, -1, -1), >, 0);
                fprintf(f, "%d %s %d", (int) daemon.proc.pid, daemon.tmpdir, (int) p.pid);
                if (th_bus_start(&broker, TH_BUS_BROKER))
                        fprintf(f, " %d %s", (int) broker.proc.pid, broker.tmpdir);
                fclose(f);
                /* what g_assert*() does outside a test subprocess (inside
                 * one GLib _exit()s instead: then PDEATHSIG kills the
                 * children and the next th_bus_start() sweeps the dirs) */
                abort();
        }

        fd = g_file_open_tmp("th-abort-XXXXXX", &file, &error);
        g_assert_no_error(error);
        close(fd);
        g_setenv("TH_ABORT_FILE", file, TRUE);
        g_test_trap_subprocess(NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_failed();
        g_unsetenv("TH_ABORT_FILE");

        g_assert_true(g_file_get_contents(file, &text, NULL, &error));
        g_unlink(file);
        fields = g_strsplit(text, " ", -1);
        g_assert_cmpuint(g_strv_length(fields), >=, 3);
        g_assert_true(pid_gone(atoi(fields[0])));
        g_assert_false(g_file_test(fields[1], G_FILE_TEST_EXISTS));
        g_assert_true(pid_gone(atoi(fields[2])));
        if (g_strv_length(fields) >= 5) {
                g_assert_true(pid_gone(atoi(fields[3])));
                g_assert_false(g_file_test(fields[4], G_FILE_TEST_EXISTS));
        }
}

static void test_env_isolated(void) {
        const char *const argv[] = { "sh", "-c",
                "test -z \"$DBUS_SESSION_BUS_ADDRESS\" && test -z \"$DBUS_SYSTEM_BUS_ADDRESS\"", NULL };
        ThProc p = TH_PROC_NULL;
        int status;

        g_setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/host-bus", TRUE);
        g_assert_cmpint(th_spawn(&p, argv, NULL, -1, -1), >, 0);
        g_assert_true(th_proc_wait(&p, 5000, &status));
        g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        th_proc_clear(&p);
        g_unsetenv("DBUS_SESSION_BUS_ADDRESS");
}

static void test_fixture(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_assert_nonnull(f->client);
        assert_list_names(f->client);
        g_assert_cmpint(th_name_has_owner(f->client, TH_HUB_NAME), ==, 0);
}

static void test_fixture_hub(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_assert_cmpint(f->hub.proc.pid, >, 0);
        g_assert_cmpint(th_name_has_owner(f->client, TH_HUB_NAME), ==, 1);
}

static void test_hub_lifecycle(ThFixture *f, gconstpointer data) {
        const char *const extra[] = { "--user", NULL };
        ThHub hub;
        int status = -1;
        pid_t pid;

        TH_RETURN_IF_SKIPPED(f);

        /* stop: SIGTERM, clean exit, name released */
        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, extra), ==, 0);
        g_assert_cmpint(th_name_has_owner(f->client, TH_HUB_NAME), ==, 1);
        pid = hub.proc.pid;
        status = th_hub_stop(&hub);
        g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        g_assert_false(pid_alive(pid));
        g_assert_cmpint(th_wait_for_name(f->client, TH_HUB_NAME, false, 5000), ==, 0);
        th_hub_clear(&hub);

        /* kill + wait_exit (a crash) */
        g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, NULL), ==, 0);
        g_assert_cmpint(th_hub_kill(&hub, SIGKILL), ==, 0);
        g_assert_true(th_hub_wait_exit(&hub, &status));
        g_assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        g_assert_cmpint(th_wait_for_name(f->client, TH_HUB_NAME, false, 5000), ==, 0);
        th_hub_clear(&hub);

        /* a hub that exits at start-up is reported at once, not after 10 s */
        {
                const char *const fail[] = { "--th-exit=3", NULL };
                gint64 t0 = g_get_monotonic_time();

                g_assert_cmpint(th_hub_spawn(&hub, f->bus.address, fail), ==, -ECHILD);
                g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
                g_assert_true(WIFEXITED(hub.proc.status) && WEXITSTATUS(hub.proc.status) == 3);
                th_hub_clear(&hub);
        }
        g_assert_cmpuint(th_live_children(), ==, 1); /* only the bus */
}

int main(int argc, char **argv) {
        g_autofree char *self = NULL;

        if (argc >= 2 && g_str_has_prefix(argv[1], "--address=")) {
                for (int i = 2; i < argc; i++)
                        if (g_str_has_prefix(argv[i], "--th-exit="))
                                return atoi(argv[i] + strlen("--th-exit="));
                return fake_hub_main(argv[1] + strlen("--address="));
        }

        g_test_init(&argc, &argv, NULL);

        /* the stand-in hub is this binary */
        self = g_file_read_link("/proc/self/exe", NULL);
        g_assert_nonnull(self);
        g_setenv("CLUSTERHUBD", self, TRUE);
        g_unsetenv("DBUS_SESSION_BUS_ADDRESS");
        g_unsetenv("DBUS_SYSTEM_BUS_ADDRESS");

        g_test_add_data_func("/harness/bus/dbus-daemon", GINT_TO_POINTER(TH_BUS_DBUS_DAEMON), test_bus_kind);
        g_test_add_data_func("/harness/bus/dbus-broker", GINT_TO_POINTER(TH_BUS_BROKER), test_bus_kind);
        g_test_add_func("/harness/bus/system-like", test_system_like);
        g_test_add_func("/harness/spawn", test_spawn);
        g_test_add_func("/harness/spawn-env", test_env_isolated);
        g_test_add_func("/harness/abort-cleanup", test_abort_cleanup);
        TH_ADD_BUS_TEST("/harness/fixture", test_fixture);
        TH_ADD_BUS_TEST_WITH_HUB("/harness/fixture-hub", test_fixture_hub);
        TH_ADD_BUS_TEST("/harness/hub-lifecycle", test_hub_lifecycle);

        return g_test_run();
}
