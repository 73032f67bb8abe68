/* SPDX-License-Identifier: MIT */
/*
 * The system bus policy systemd/org.clusterhub.Hub1.conf on a private
 * "system-like" dbus-daemon (system.conf's default-deny policy + <include> of
 * the policy).  The hub runs as root, so the test includes a copy of the real
 * file with user="clusterhub" -> user="root" and group="clusterhub" -> the
 * primary group of a system user that exists on every Debian ("daemon",
 * uid 1): that user plays the group member, uid 65534 (nobody) the outsider.
 * Nothing is created on the host; the clients run under setpriv(1).
 *
 * Checks:
 *  - the shipped file is accepted by dbus-daemon as it is;
 *  - root (the hub's user in the copy) owns org.clusterhub.Hub1;
 *  - a group member calls methods (Store1.Set, Hub1.ListNamespaces);
 *  - nobody gets AccessDenied on the same calls, but may Introspect,
 *    Properties.Get and Peer.Ping;
 *  - neither nobody nor the member may own org.clusterhub.Hub1;
 *  - broadcast Events1.Event and Store1.KeyChanged signals reach the member
 *    and not nobody (a sentinel signal sent afterwards bounds the wait).
 *
 * This binary doubles as the signal listener run under setpriv
 * ("--listen ADDRESS"); it is copied into the bus's world-readable temp dir so
 * that other users can execute it wherever the build tree is.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <systemd/sd-bus.h>

#include "harness.h"

#define NS_PATH "/org/clusterhub/Hub1/ns/default"
#define HUB_PATH "/org/clusterhub/Hub1"
#define SENTINEL_IFACE "org.clusterhub.Test.Policy"
#define OUTSIDER_UID 65534

static const char *policy_src;   /* the shipped policy file */
static char *member_uid_s, *member_gid_s;
static char *skip_reason;

typedef struct Fixture {
        ThBus bus;
        ThHub hub;
        sd_bus *root;           /* a client as root */
        char *tmpdir;           /* the policy copy */
        char *listener;         /* copy of this binary in the bus temp dir */
        bool ready;
} Fixture;

/* ---- listener mode (runs as another user) -------------------------------- */

static int on_signal_msg(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *arg0 = NULL;

        (void) sd_bus_message_read_basic(m, 's', &arg0);
        printf("%s %s\n", sd_bus_message_get_member(m), arg0 ?: "");
        fflush(stdout);
        if (sd_bus_message_is_signal(m, SENTINEL_IFACE, "Sentinel"))
                exit(EXIT_SUCCESS);
        return 0;
}

static int listen_main(const char *address) {
        sd_bus *bus = NULL;
        int r = th_connect(&bus, address);

        if (r < 0) {
                fprintf(stderr, "listener: connect: %s\n", strerror(-r));
                return 2;
        }
        /* Eavesdropping-free subscriptions, as any unprivileged process would add them. */
        if (sd_bus_add_match(bus, NULL, "type='signal',interface='org.clusterhub.Events1'", on_signal_msg, NULL) < 0 ||
            sd_bus_add_match(bus, NULL, "type='signal',interface='org.clusterhub.Store1'", on_signal_msg, NULL) < 0 ||
            sd_bus_add_match(bus, NULL, "type='signal',interface='" SENTINEL_IFACE "'", on_signal_msg, NULL) < 0) {
                fprintf(stderr, "listener: AddMatch failed\n");
                return 2;
        }
        printf("READY\n");
        fflush(stdout);
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 3;
                if (r == 0 && sd_bus_wait(bus, 30 * 1000000ULL) <= 0)
                        return 4; /* 30 s without anything: the test has gone */
        }
}

/* ---- helpers ------------------------------------------------------------- */

/* Read a line from fd within timeout_ms; NULL on EOF/timeout. */
static char *read_line(int fd, GString *buf, int timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

        for (;;) {
                char *nl = memchr(buf->str, '\n', buf->len);
                if (nl) {
                        char *line = g_strndup(buf->str, (gsize) (nl - buf->str));
                        g_string_erase(buf, 0, (gssize) (nl - buf->str + 1));
                        return line;
                }
                gint64 left = (deadline - g_get_monotonic_time()) / 1000;
                if (left <= 0)
                        return NULL;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, (int) left) <= 0)
                        continue;
                char tmp[512];
                ssize_t n = read(fd, tmp, sizeof tmp);
                if (n <= 0)
                        return NULL;
                g_string_append_len(buf, tmp, n);
        }
}

/* Run argv (as another user when as_uid/as_gid are given, via setpriv), return
 * its exit status (-1: did not finish in 15 s, killed); output in *out. */
static int run(const char *as_uid, const char *as_gid, const char *const *cmd, char **out) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        ThProc proc = TH_PROC_NULL;
        g_autoptr(GString) buf = g_string_new(NULL);
        int fds[2], status = 0;

        if (as_uid) {
                g_ptr_array_add(argv, (char *) "setpriv");
                g_ptr_array_add(argv, g_strdup_printf("--reuid=%s", as_uid));
                g_ptr_array_add(argv, g_strdup_printf("--regid=%s", as_gid));
                g_ptr_array_add(argv, (char *) "--clear-groups");
        }
        for (size_t i = 0; cmd[i]; i++)
                g_ptr_array_add(argv, (char *) cmd[i]);
        g_ptr_array_add(argv, NULL);

        g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
        g_assert_cmpint(th_spawn(&proc, (const char *const *) argv->pdata, NULL, fds[1], fds[1]), >, 0);
        close(fds[1]);
        for (gint64 deadline = g_get_monotonic_time() + 15 * G_USEC_PER_SEC; g_get_monotonic_time() < deadline;) {
                struct pollfd p = { .fd = fds[0], .events = POLLIN };
                if (poll(&p, 1, 200) <= 0)
                        continue;
                char tmp[1024];
                ssize_t n = read(fds[0], tmp, sizeof tmp);
                if (n <= 0)
                        break;
                g_string_append_len(buf, tmp, n);
        }
        close(fds[0]);
        if (!th_proc_wait(&proc, 5000, &status)) {
                th_proc_stop(&proc, SIGKILL, 1000);
                status = -1;
        }
        th_proc_clear(&proc);
        if (as_uid) {
                g_free(argv->pdata[1]);
                g_free(argv->pdata[2]);
        }
        g_test_message("%s%s%s -> %d: %s", as_uid ? "as uid " : "", as_uid ?: "", as_uid ? ":" : "", status, buf->str);
        if (out)
                *out = g_strdup(buf->str);
        return status == -1 ? -1 : (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static int busctl(Fixture *f, const char *uid, const char *gid, char **out, const char *const *args) {
        g_autofree char *addr = g_strdup_printf("--address=%s", f->bus.address);
        const char *cmd[32] = { "busctl", addr, "--timeout=5", NULL };
        size_t n = 3;

        for (size_t i = 0; args[i] && n < G_N_ELEMENTS(cmd) - 1; i++)
                cmd[n++] = args[i];
        cmd[n] = NULL;
        return run(uid, gid, cmd, out);
}

#define SET_ARGS(key) (const char *const[]) { "call", TH_HUB_NAME, NS_PATH, "org.clusterhub.Store1", "Set", \
                        "sva{sv}", key, "s", "secret-value", "0", NULL }

/* ---- fixture ------------------------------------------------------------- */

static char *policy_copy(const char *dir) {
        g_autofree char *text = NULL;
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_get_contents(policy_src, &text, NULL, &error));
        g_assert_nonnull(strstr(text, "user=\"clusterhub\""));
        g_assert_nonnull(strstr(text, "group=\"clusterhub\""));
        g_autofree char *member_group = g_strdup_printf("group=\"%s\"", getgrgid((gid_t) atoi(member_gid_s))->gr_name);
        g_auto(GStrv) a = g_strsplit(text, "user=\"clusterhub\"", -1);
        g_autofree char *t1 = g_strjoinv("user=\"root\"", a);
        g_auto(GStrv) b = g_strsplit(t1, "group=\"clusterhub\"", -1);
        g_autofree char *t2 = g_strjoinv(member_group, b);
        char *path = g_build_filename(dir, "org.clusterhub.Hub1.conf", NULL);
        g_assert_true(g_file_set_contents(path, t2, -1, &error));
        return path;
}

static void setup(Fixture *f, gconstpointer data) {
        g_autoptr(GError) error = NULL;
        int r;

        *f = (Fixture) { .bus.proc = TH_PROC_NULL };
        if (skip_reason) {
                g_test_skip(skip_reason);
                return;
        }
        f->tmpdir = g_dir_make_tmp("ch-policy-XXXXXX", &error);
        g_assert_no_error(error);
        g_autofree char *policy = policy_copy(f->tmpdir);
        if (!th_bus_start_full(&f->bus, TH_BUS_SYSTEM_LIKE, policy)) {
                g_test_skip(f->bus.skip_reason);
                return;
        }
        /* The listener must be executable by other users. */
        g_autofree char *self = g_file_read_link("/proc/self/exe", &error);
        g_assert_no_error(error);
        f->listener = g_build_filename(f->bus.tmpdir, "listener", NULL);
        g_autofree char *contents = NULL;
        gsize len;
        g_assert_true(g_file_get_contents(self, &contents, &len, &error));
        g_assert_true(g_file_set_contents(f->listener, contents, (gssize) len, &error));
        g_assert_cmpint(chmod(f->listener, 0755), ==, 0);

        r = th_hub_spawn(&f->hub, f->bus.address, NULL);
        if (r == -ENOENT) {
                g_test_skip("clusterhubd is not built");
                return;
        }
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpint(th_connect(&f->root, f->bus.address), ==, 0);
        f->ready = true;
}

static void teardown(Fixture *f, gconstpointer data) {
        f->root = sd_bus_flush_close_unref(f->root);
        if (f->hub.proc.pid > 0 || f->hub.binary)
                (void) th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        th_bus_stop(&f->bus);
        g_free(f->listener);
        if (f->tmpdir) {
                g_autofree char *p = g_build_filename(f->tmpdir, "org.clusterhub.Hub1.conf", NULL);
                (void) g_unlink(p);
                (void) g_rmdir(f->tmpdir);
                g_free(f->tmpdir);
        }
}

#define RETURN_IF_SKIPPED(f) G_STMT_START { if (!(f)->ready) return; } G_STMT_END

/* ---- tests --------------------------------------------------------------- */

/* The shipped file, unmodified, is a valid policy for dbus-daemon. */
static void test_shipped_file_loads(void) {
        ThBus bus = { .proc = TH_PROC_NULL };

        if (skip_reason) {
                g_test_skip(skip_reason);
                return;
        }
        if (!th_bus_start_full(&bus, TH_BUS_SYSTEM_LIKE, policy_src)) {
                g_autofree char *msg = g_strdup_printf("bus did not start: %s", bus.skip_reason);
                /* dbus-daemon refuses a malformed policy: that is a failure, not a skip. */
                g_test_fail_printf("%s", msg);
        }
        th_bus_stop(&bus);
}

static void test_owner(Fixture *f, gconstpointer data) {
        g_autofree char *owner = NULL;
        sd_bus_creds *creds = NULL;
        uid_t uid;

        RETURN_IF_SKIPPED(f);
        g_assert_cmpint(sd_bus_get_name_creds(f->root, TH_HUB_NAME, SD_BUS_CREDS_EUID, &creds), >=, 0);
        g_assert_cmpint(sd_bus_creds_get_euid(creds, &uid), ==, 0);
        g_assert_cmpuint(uid, ==, 0);
        sd_bus_creds_unref(creds);
}

static void test_member_calls(Fixture *f, gconstpointer data) {
        g_autofree char *out = NULL, *out2 = NULL;

        RETURN_IF_SKIPPED(f);
        g_assert_cmpint(busctl(f, member_uid_s, member_gid_s, &out, SET_ARGS("policy.member")), ==, 0);
        g_assert_nonnull(strstr(out, "b true"));
        g_assert_cmpint(busctl(f, member_uid_s, member_gid_s, &out2,
                               (const char *const[]) { "call", TH_HUB_NAME, HUB_PATH, "org.clusterhub.Hub1",
                                                       "ListNamespaces", NULL }), ==, 0);
        g_assert_nonnull(strstr(out2, "default"));
}

static void test_outsider_denied(Fixture *f, gconstpointer data) {
        g_autofree char *nobody = g_strdup_printf("%d", OUTSIDER_UID);
        g_autofree char *out = NULL, *out2 = NULL;

        RETURN_IF_SKIPPED(f);
        g_assert_cmpint(busctl(f, nobody, nobody, &out, SET_ARGS("policy.nobody")), !=, 0);
        g_assert_nonnull(strstr(out, "Access denied"));
        g_assert_cmpint(busctl(f, nobody, nobody, &out2,
                               (const char *const[]) { "call", TH_HUB_NAME, HUB_PATH, "org.clusterhub.Hub1",
                                                       "ListNamespaces", NULL }), !=, 0);
        g_assert_nonnull(strstr(out2, "Access denied"));

        /* and nothing was written */
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(f->root, TH_HUB_NAME, NS_PATH, "org.clusterhub.Store1", "Exists", &e, &reply,
                                   "as", 1, "policy.nobody");
        g_assert_cmpint(r, >=, 0);
        uint32_t n = 99;
        g_assert_cmpint(sd_bus_message_read(reply, "u", &n), >, 0);
        g_assert_cmpuint(n, ==, 0);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
}

static void test_outsider_may_look(Fixture *f, gconstpointer data) {
        g_autofree char *nobody = g_strdup_printf("%d", OUTSIDER_UID);
        g_autofree char *out = NULL, *out2 = NULL, *out3 = NULL;

        RETURN_IF_SKIPPED(f);
        g_assert_cmpint(busctl(f, nobody, nobody, &out, (const char *const[]) { "introspect", TH_HUB_NAME, HUB_PATH, NULL }), ==, 0);
        g_assert_nonnull(strstr(out, "org.clusterhub.Hub1"));
        g_assert_cmpint(busctl(f, nobody, nobody, &out2, (const char *const[]) {
                                       "get-property", TH_HUB_NAME, HUB_PATH, "org.clusterhub.Hub1", "Version", NULL }), ==, 0);
        g_assert_nonnull(strstr(out2, "s \""));
        g_assert_cmpint(busctl(f, nobody, nobody, &out3, (const char *const[]) {
                                       "call", TH_HUB_NAME, HUB_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL }), ==, 0);
}

static void test_nobody_else_owns(Fixture *f, gconstpointer data) {
        g_autofree char *nobody = g_strdup_printf("%d", OUTSIDER_UID);
        const char *const req[] = { "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    "RequestName", "su", TH_HUB_NAME, "4", NULL };
        g_autofree char *out = NULL, *out2 = NULL, *out3 = NULL;

        RETURN_IF_SKIPPED(f);
        g_assert_cmpint(busctl(f, nobody, nobody, &out, req), !=, 0);
        g_assert_nonnull(strstr(out, "Access denied"));
        g_assert_cmpint(busctl(f, member_uid_s, member_gid_s, &out2, req), !=, 0);
        g_assert_nonnull(strstr(out2, "Access denied"));
        /* Even with the hub gone, the name stays out of reach. */
        g_assert_cmpint(th_hub_stop(&f->hub), ==, 0);
        g_assert_cmpint(busctl(f, nobody, nobody, &out3, req), !=, 0);
        g_assert_nonnull(strstr(out3, "Access denied"));
}

typedef struct Listener {
        ThProc proc;
        int fd;
        GString *buf;
        GPtrArray *lines;
} Listener;

static void listener_start(Fixture *f, Listener *l, const char *uid, const char *gid) {
        const char *argv[] = { "setpriv", NULL, NULL, "--clear-groups", f->listener, "--listen", f->bus.address, NULL };
        g_autofree char *u = g_strdup_printf("--reuid=%s", uid), *g = g_strdup_printf("--regid=%s", gid);
        int fds[2];

        argv[1] = u;
        argv[2] = g;
        *l = (Listener) { .proc = TH_PROC_NULL, .buf = g_string_new(NULL), .lines = g_ptr_array_new_with_free_func(g_free) };
        g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
        g_assert_cmpint(th_spawn(&l->proc, argv, NULL, fds[1], -1), >, 0);
        close(fds[1]);
        l->fd = fds[0];
        g_autofree char *line = read_line(l->fd, l->buf, 10000);
        g_assert_cmpstr(line, ==, "READY");
}

/* Collect lines until the sentinel (or 10 s). */
static void listener_collect(Listener *l) {
        for (;;) {
                char *line = read_line(l->fd, l->buf, 10000);
                if (!line)
                        break;
                g_test_message("uid %d received: %s", (int) l->proc.pid, line);
                g_ptr_array_add(l->lines, line);
                if (g_str_has_prefix(line, "Sentinel"))
                        break;
        }
}

static bool listener_got(Listener *l, const char *prefix) {
        for (guint i = 0; i < l->lines->len; i++)
                if (g_str_has_prefix(l->lines->pdata[i], prefix))
                        return true;
        return false;
}

static void listener_stop(Listener *l) {
        (void) th_proc_stop(&l->proc, SIGTERM, 2000);
        th_proc_clear(&l->proc);
        close(l->fd);
        g_string_free(l->buf, true);
        g_ptr_array_unref(l->lines);
}

static void test_signals_stay_in_group(Fixture *f, gconstpointer data) {
        g_autofree char *nobody = g_strdup_printf("%d", OUTSIDER_UID);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        Listener member, outsider;

        RETURN_IF_SKIPPED(f);
        listener_start(f, &member, member_uid_s, member_gid_s);
        listener_start(f, &outsider, nobody, nobody);

        /* root (a member in the real deployment) emits and writes */
        g_assert_cmpint(sd_bus_call_method(f->root, TH_HUB_NAME, NS_PATH, "org.clusterhub.Events1", "Emit", &e, NULL,
                                           "sv", "policy.secret", "s", "payload"), >=, 0);
        g_assert_cmpint(sd_bus_call_method(f->root, TH_HUB_NAME, NS_PATH, "org.clusterhub.Store1", "Set", &e, NULL,
                                           "sva{sv}", "policy.key", "s", "v", 0), >=, 0);
        /* Routed after the hub's signals (they precede its replies on one connection). */
        g_assert_cmpint(sd_bus_emit_signal(f->root, "/", SENTINEL_IFACE, "Sentinel", "s", "end"), >=, 0);
        g_assert_cmpint(sd_bus_flush(f->root), >=, 0);

        listener_collect(&member);
        listener_collect(&outsider);
        g_assert_true(listener_got(&member, "Sentinel"));
        g_assert_true(listener_got(&outsider, "Sentinel"));
        g_assert_true(listener_got(&member, "Event policy.secret"));
        g_assert_true(listener_got(&member, "KeyChanged policy.key"));
        g_assert_false(listener_got(&outsider, "Event"));
        g_assert_false(listener_got(&outsider, "KeyChanged"));

        listener_stop(&member);
        listener_stop(&outsider);
        sd_bus_error_free(&e);
}

int main(int argc, char **argv) {
        if (argc == 3 && strcmp(argv[1], "--listen") == 0)
                return listen_main(argv[2]);

        g_test_init(&argc, &argv, NULL);

        const char *src = g_getenv("MESON_SOURCE_ROOT");
        static char path[4096];
        g_snprintf(path, sizeof path, "%s/systemd/org.clusterhub.Hub1.conf", src ?: ".");
        policy_src = path;

        struct passwd *pw = getpwnam("daemon");
        g_autofree char *setpriv = g_find_program_in_path("setpriv");
        g_autofree char *busctl_bin = g_find_program_in_path("busctl");
        g_autofree char *dbus_daemon = g_find_program_in_path("dbus-daemon");
        if (geteuid() != 0)
                skip_reason = g_strdup("needs root (setpriv to other users)");
        else if (!setpriv || !busctl_bin)
                skip_reason = g_strdup("setpriv (util-linux) or busctl (systemd) not installed");
        else if (!dbus_daemon)
                skip_reason = g_strdup("dbus-daemon not installed");
        else if (!pw || pw->pw_uid == 0 || !getgrgid(pw->pw_gid))
                skip_reason = g_strdup("no system user 'daemon' to play the group member");
        else {
                member_uid_s = g_strdup_printf("%u", (unsigned) pw->pw_uid);
                member_gid_s = g_strdup_printf("%u", (unsigned) pw->pw_gid);
        }

        g_test_add_func("/policy/shipped-file-loads", test_shipped_file_loads);
        g_test_add("/policy/hub-owns-name", Fixture, NULL, setup, test_owner, teardown);
        g_test_add("/policy/member-calls", Fixture, NULL, setup, test_member_calls, teardown);
        g_test_add("/policy/outsider-denied", Fixture, NULL, setup, test_outsider_denied, teardown);
        g_test_add("/policy/outsider-may-introspect", Fixture, NULL, setup, test_outsider_may_look, teardown);
        g_test_add("/policy/nobody-else-owns", Fixture, NULL, setup, test_nobody_else_owns, teardown);
        g_test_add("/policy/signals-stay-in-group", Fixture, NULL, setup, test_signals_stay_in_group, teardown);
        int ret = g_test_run();
        g_free(skip_reason);
        g_free(member_uid_s);
        g_free(member_gid_s);
        return ret;
}
