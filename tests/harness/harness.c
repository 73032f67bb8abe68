/* SPDX-License-Identifier: MIT */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#ifndef TH_BROKER_HELPER_PATH
#define TH_BROKER_HELPER_PATH "th-broker"
#endif

#define TH_START_TIMEOUT_MS 10000
#define TH_STOP_TIMEOUT_MS 10000

/* ---- child registry (for the SIGABRT safety net) ------------------------ */

#define TH_MAX_CHILDREN 256
static volatile sig_atomic_t registry[TH_MAX_CHILDREN]; /* pids, 0 = free */
static bool abort_handler_installed;

/* bus temp dirs (flat: sockets and a config file), removed on abort too */
#define TH_MAX_DIRS 64
static char dir_registry[TH_MAX_DIRS][PATH_MAX];

struct th_dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[];
};

static void rm_flat_dir_signal_safe(const char *path) {
        char buf[4096];
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return;
        for (;;) {
                long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));

                if (n <= 0)
                        break;
                for (long off = 0; off < n;) {
                        struct th_dirent64 *d = (struct th_dirent64 *) (buf + off);

                        if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
                                (void) unlinkat(fd, d->d_name, 0);
                        off += d->d_reclen;
                }
        }
        close(fd);
        (void) rmdir(path);
}

static void on_abort(int sig) {
        /* async-signal-safe: kill what we started, then die as intended */
        for (size_t i = 0; i < TH_MAX_CHILDREN; i++)
                if (registry[i] > 0)
                        (void) kill(-(pid_t) registry[i], SIGKILL);
        for (size_t i = 0; i < TH_MAX_DIRS; i++)
                if (dir_registry[i][0])
                        rm_flat_dir_signal_safe(dir_registry[i]);
        signal(sig, SIG_DFL);
        raise(sig);
}

static void install_abort_handler(void);

static void dir_registry_add(const char *path) {
        install_abort_handler();
        if (strlen(path) >= PATH_MAX)
                return;
        for (size_t i = 0; i < TH_MAX_DIRS; i++)
                if (!dir_registry[i][0]) {
                        strcpy(dir_registry[i], path);
                        return;
                }
}

static void dir_registry_remove(const char *path) {
        for (size_t i = 0; i < TH_MAX_DIRS; i++)
                if (strcmp(dir_registry[i], path) == 0)
                        dir_registry[i][0] = 0;
}

static void install_abort_handler(void) {
        if (!abort_handler_installed) {
                struct sigaction sa = { .sa_handler = on_abort, .sa_flags = SA_RESETHAND };

                sigemptyset(&sa.sa_mask);
                (void) sigaction(SIGABRT, &sa, NULL);
                abort_handler_installed = true;
        }
}

static void registry_add(pid_t pid) {
        install_abort_handler();
        for (size_t i = 0; i < TH_MAX_CHILDREN; i++)
                if (registry[i] == 0) {
                        registry[i] = pid;
                        return;
                }
}

static void registry_remove(pid_t pid) {
        for (size_t i = 0; i < TH_MAX_CHILDREN; i++)
                if (registry[i] == pid)
                        registry[i] = 0;
}

unsigned th_live_children(void) {
        unsigned n = 0;

        for (size_t i = 0; i < TH_MAX_CHILDREN; i++)
                if (registry[i] > 0)
                        n++;
        return n;
}

void th_cleanup_all(void) {
        for (size_t i = 0; i < TH_MAX_CHILDREN; i++) {
                pid_t pid = (pid_t) registry[i];

                if (pid <= 0)
                        continue;
                (void) kill(-pid, SIGKILL);
                (void) kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                registry[i] = 0;
        }
}

/* ---- processes ---------------------------------------------------------- */

static int64_t now_ms(void) {
        return g_get_monotonic_time() / 1000;
}

static void sleep_ms(int ms) {
        g_usleep((gulong) ms * 1000);
}

static char **default_env(void) {
        char **env = g_get_environ();

        env = g_environ_unsetenv(env, "DBUS_SESSION_BUS_ADDRESS");
        env = g_environ_unsetenv(env, "DBUS_SYSTEM_BUS_ADDRESS");
        return env;
}

pid_t th_spawn(ThProc *proc, const char *const *argv, const char *const *envp,
               int stdout_fd, int stderr_fd) {
        g_auto(GStrv) own_env = NULL;
        char *const *env;
        int errpipe[2], child_errno = 0, devnull;
        pid_t parent = getpid(), pid;
        ssize_t n;

        g_return_val_if_fail(proc && argv && argv[0], -EINVAL);

        proc->pid = -1;
        proc->status = 0;
        proc->reaped = false;
        g_free(proc->name);
        proc->name = g_path_get_basename(argv[0]);

        if (!envp) {
                own_env = default_env();
                env = own_env;
        } else {
                env = (char *const *) envp;
        }
        if (stdout_fd < 0)
                stdout_fd = STDERR_FILENO; /* keep TAP on stdout clean */
        if (stderr_fd < 0)
                stderr_fd = STDERR_FILENO;

        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0)
                return -errno;
        if (pipe2(errpipe, O_CLOEXEC) < 0) {
                int r = -errno;

                close(devnull);
                return r;
        }

        pid = fork();
        if (pid < 0) {
                int r = -errno;

                close(devnull);
                close(errpipe[0]);
                close(errpipe[1]);
                return r;
        }
        if (pid == 0) {
                sigset_t none;
                int e;

                /* only async-signal-safe calls from here on */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                /* own process group, so leftovers (grandchildren) can be killed too */
                (void) setpgid(0, 0);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                signal(SIGABRT, SIG_DFL);
                if (stdout_fd == STDOUT_FILENO)
                        stdout_fd = dup(stdout_fd);
                if (stderr_fd == STDOUT_FILENO)
                        stderr_fd = dup(stderr_fd);
                if (dup2(devnull, STDIN_FILENO) < 0 ||
                    dup2(stdout_fd, STDOUT_FILENO) < 0 ||
                    dup2(stderr_fd, STDERR_FILENO) < 0)
                        goto fail;
                execvpe(argv[0], (char *const *) argv, env);
        fail:
                e = errno;
                (void) !write(errpipe[1], &e, sizeof(e));
                _exit(127);
        }

        close(devnull);
        close(errpipe[1]);
        do
                n = read(errpipe[0], &child_errno, sizeof(child_errno));
        while (n < 0 && errno == EINTR);
        close(errpipe[0]);

        (void) setpgid(pid, pid); /* also here, against the race with kill(-pid) */
        proc->pid = pid;
        registry_add(pid);
        if (n == (ssize_t) sizeof(child_errno)) {
                /* exec failed: reap the child and report why */
                th_proc_wait(proc, -1, NULL);
                return -child_errno;
        }
        return pid;
}

static void proc_reaped(ThProc *proc, int status) {
        registry_remove(proc->pid);
        proc->status = status;
        proc->reaped = true;
        proc->pid = -1;
}

bool th_proc_exited(ThProc *proc) {
        int status;
        pid_t r;

        if (!proc || proc->reaped)
                return true;
        if (proc->pid <= 0)
                return true;
        do
                r = waitpid(proc->pid, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return false;
        if (r < 0) /* ECHILD: someone else reaped it */
                status = W_EXITCODE(255, 0);
        proc_reaped(proc, status);
        return true;
}

bool th_proc_wait(ThProc *proc, int timeout_ms, int *status) {
        int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
        int delay = 1;

        for (;;) {
                if (th_proc_exited(proc)) {
                        if (status)
                                *status = proc->status;
                        return true;
                }
                if (now_ms() >= deadline)
                        return false;
                sleep_ms(delay);
                if (delay < 20)
                        delay *= 2;
        }
}

int th_proc_kill(ThProc *proc, int sig) {
        if (!proc || proc->reaped || proc->pid <= 0)
                return -ESRCH;
        return kill(proc->pid, sig) < 0 ? -errno : 0;
}

int th_proc_stop(ThProc *proc, int sig, int timeout_ms) {
        int status = 0;
        pid_t pgid;

        if (!proc || proc->pid <= 0)
                return proc && proc->reaped ? proc->status : 0;
        pgid = proc->pid;
        (void) th_proc_kill(proc, sig ? sig : SIGTERM);
        if (!th_proc_wait(proc, timeout_ms, &status)) {
                g_test_message("harness: %s (pid %d) did not exit within %d ms, sending SIGKILL",
                               proc->name ? proc->name : "child", (int) proc->pid, timeout_ms);
                (void) kill(-pgid, SIGKILL);
                (void) th_proc_kill(proc, SIGKILL);
                th_proc_wait(proc, -1, &status);
        }
        /* whatever it left behind in its process group goes too */
        (void) kill(-pgid, SIGKILL);
        return status;
}

void th_proc_clear(ThProc *proc) {
        if (!proc)
                return;
        if (proc->pid > 0)
                th_proc_stop(proc, SIGKILL, TH_STOP_TIMEOUT_MS);
        g_clear_pointer(&proc->name, g_free);
}

/* Read one line from fd within timeout_ms.  Returns a new string (no '\n') or NULL. */
static char *read_line(int fd, int timeout_ms) {
        GString *s = g_string_new(NULL);
        int64_t deadline = now_ms() + timeout_ms;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int64_t left = deadline - now_ms();
                char c;
                ssize_t n;
                int r;

                if (left <= 0)
                        break;
                r = poll(&p, 1, (int) left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                n = read(fd, &c, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (c == '\n')
                        return g_string_free(s, FALSE);
                g_string_append_c(s, c);
        }
        g_string_free(s, TRUE);
        return NULL;
}

/* ---- private buses ------------------------------------------------------ */

const char *th_bus_kind_to_string(ThBusKind kind) {
        switch (kind) {
        case TH_BUS_DBUS_DAEMON:
                return "dbus-daemon";
        case TH_BUS_BROKER:
                return "dbus-broker";
        case TH_BUS_SYSTEM_LIKE:
                return "dbus-daemon (system-like)";
        default:
                return "unknown";
        }
}

static const char config_head[] =
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n";

static const char session_policy[] =
        "  <policy context=\"default\">\n"
        "    <allow user=\"*\"/>\n"
        "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
        "    <allow eavesdrop=\"true\"/>\n"
        "    <allow own=\"*\"/>\n"
        "  </policy>\n"
        "  <limit name=\"max_incoming_bytes\">1000000000</limit>\n"
        "  <limit name=\"max_incoming_unix_fds\">250000000</limit>\n"
        "  <limit name=\"max_outgoing_bytes\">1000000000</limit>\n"
        "  <limit name=\"max_outgoing_unix_fds\">250000000</limit>\n"
        "  <limit name=\"max_message_size\">1000000000</limit>\n"
        "  <limit name=\"service_start_timeout\">120000</limit>\n"
        "  <limit name=\"auth_timeout\">240000</limit>\n"
        "  <limit name=\"pending_fd_timeout\">150000</limit>\n"
        "  <limit name=\"max_completed_connections\">100000</limit>\n"
        "  <limit name=\"max_incomplete_connections\">10000</limit>\n"
        "  <limit name=\"max_connections_per_user\">100000</limit>\n"
        "  <limit name=\"max_pending_service_starts\">10000</limit>\n"
        "  <limit name=\"max_names_per_connection\">50000</limit>\n"
        "  <limit name=\"max_match_rules_per_connection\">50000</limit>\n"
        "  <limit name=\"max_replies_per_connection\">50000</limit>\n";

/* The default policy of /usr/share/dbus-1/system.conf (dbus 1.14). */
static const char system_policy[] =
        "  <policy context=\"default\">\n"
        "    <allow user=\"*\"/>\n"
        "    <deny own=\"*\"/>\n"
        "    <deny send_type=\"method_call\"/>\n"
        "    <allow send_type=\"signal\"/>\n"
        "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
        "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
        "    <allow receive_type=\"method_call\"/>\n"
        "    <allow receive_type=\"method_return\"/>\n"
        "    <allow receive_type=\"error\"/>\n"
        "    <allow receive_type=\"signal\"/>\n"
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Containers1\"/>\n"
        "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\" send_member=\"UpdateActivationEnvironment\"/>\n"
        "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Debug.Stats\"/>\n"
        "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.systemd1.Activator\"/>\n"
        "  </policy>\n";

static char *write_config(ThBus *bus, const char *policy_file, GError **error) {
        g_autoptr(GString) s = g_string_new(config_head);
        g_autofree char *esc_dir = g_markup_escape_text(bus->tmpdir, -1);
        char *path = g_build_filename(bus->tmpdir, "bus.conf", NULL);

        if (bus->kind == TH_BUS_SYSTEM_LIKE) {
                g_string_append(s, "  <type>system</type>\n");
                g_string_append_printf(s, "  <listen>unix:path=%s/system_bus_socket</listen>\n", esc_dir);
                g_string_append(s, "  <auth>EXTERNAL</auth>\n");
                g_string_append(s, system_policy);
                if (policy_file) {
                        g_autofree char *abs = g_canonicalize_filename(policy_file, NULL);
                        g_autofree char *esc = g_markup_escape_text(abs, -1);

                        g_string_append_printf(s, "  <include ignore_missing=\"no\">%s</include>\n", esc);
                }
        } else {
                g_string_append(s, "  <type>session</type>\n");
                g_string_append_printf(s, "  <listen>unix:dir=%s</listen>\n", esc_dir);
                g_string_append(s, "  <auth>EXTERNAL</auth>\n");
                g_string_append(s, session_policy);
        }
        g_string_append(s, "</busconfig>\n");

        if (!g_file_set_contents(path, s->str, (gssize) s->len, error)) {
                g_free(path);
                return NULL;
        }
        return path;
}

static bool bus_fail(ThBus *bus, char *reason) {
        g_free(bus->skip_reason);
        bus->skip_reason = reason;
        th_bus_stop(bus);
        return false;
}

static void rm_rf(const char *path) {
        GDir *dir = g_dir_open(path, 0, NULL);

        if (dir) {
                const char *name;

                while ((name = g_dir_read_name(dir))) {
                        g_autofree char *child = g_build_filename(path, name, NULL);

                        if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
                            !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
                                rm_rf(child);
                        else
                                (void) g_unlink(child);
                }
                g_dir_close(dir);
        }
        (void) g_rmdir(path);
}

/*
 * Remove bus temp dirs left by test processes that died without running
 * their cleanup (e.g. _exit() in a g_test_trap_subprocess() child).  Each dir
 * holds an "owner" file with the creating pid.
 */
static void sweep_stale_dirs(void) {
        const char *tmp = g_get_tmp_dir();
        GDir *dir = g_dir_open(tmp, 0, NULL);
        const char *name;

        if (!dir)
                return;
        while ((name = g_dir_read_name(dir))) {
                g_autofree char *path = NULL, *owner_file = NULL, *owner = NULL;
                pid_t pid;

                if (!g_str_has_prefix(name, "clusterhub-bus-"))
                        continue;
                path = g_build_filename(tmp, name, NULL);
                owner_file = g_build_filename(path, "owner", NULL);
                if (!g_file_get_contents(owner_file, &owner, NULL, NULL))
                        continue;
                pid = (pid_t) atoi(owner);
                if (pid > 0 && pid != getpid() && kill(pid, 0) < 0 && errno == ESRCH)
                        rm_rf(path);
        }
        g_dir_close(dir);
}

static char *broker_helper(void) {
        const char *e = g_getenv("TH_BROKER_HELPER");

        return g_strdup(e && *e ? e : TH_BROKER_HELPER_PATH);
}

bool th_bus_start(ThBus *bus, ThBusKind kind) {
        return th_bus_start_full(bus, kind, NULL);
}

bool th_bus_start_full(ThBus *bus, ThBusKind kind, const char *policy_file) {
        g_autoptr(GError) error = NULL;
        g_autofree char *line = NULL;
        int out[2];
        pid_t pid;

        g_return_val_if_fail(bus, false);
        memset(bus, 0, sizeof(*bus));
        bus->proc.pid = -1;
        bus->kind = kind;

        sweep_stale_dirs();
        bus->tmpdir = g_dir_make_tmp("clusterhub-bus-XXXXXX", &error);
        if (!bus->tmpdir)
                return bus_fail(bus, g_strdup_printf("cannot create a temp dir: %s", error->message));
        dir_registry_add(bus->tmpdir);
        {
                g_autofree char *owner_file = g_build_filename(bus->tmpdir, "owner", NULL);
                g_autofree char *self = g_strdup_printf("%d\n", (int) getpid());

                (void) g_file_set_contents(owner_file, self, -1, NULL);
        }
        if (kind == TH_BUS_SYSTEM_LIKE)
                (void) chmod(bus->tmpdir, 0755); /* let other users connect */

        if (pipe2(out, O_CLOEXEC) < 0)
                return bus_fail(bus, g_strdup_printf("pipe: %s", g_strerror(errno)));

        if (kind == TH_BUS_DBUS_DAEMON || kind == TH_BUS_SYSTEM_LIKE) {
                g_autofree char *prog = g_find_program_in_path("dbus-daemon");
                g_autofree char *cfg_arg = NULL, *fd_arg = NULL;

                if (!prog) {
                        close(out[0]);
                        close(out[1]);
                        return bus_fail(bus, g_strdup("dbus-daemon is not installed"));
                }
                bus->config_path = write_config(bus, policy_file, &error);
                if (!bus->config_path) {
                        close(out[0]);
                        close(out[1]);
                        return bus_fail(bus, g_strdup_printf("cannot write the bus config: %s",
                                                             error->message));
                }
                cfg_arg = g_strdup_printf("--config-file=%s", bus->config_path);
                /* dbus-daemon prints the address on its stdout (fd 1) */
                {
                        const char *argv[] = { prog, cfg_arg, "--nofork", "--nosyslog",
                                               "--print-address=1", NULL };

                        pid = th_spawn(&bus->proc, argv, NULL, out[1], -1);
                }
        } else if (kind == TH_BUS_BROKER) {
                g_autofree char *prog = g_find_program_in_path("dbus-broker");
                g_autofree char *helper = broker_helper();
                g_autofree char *sock = g_build_filename(bus->tmpdir, "bus", NULL);

                if (!prog) {
                        close(out[0]);
                        close(out[1]);
                        return bus_fail(bus, g_strdup("dbus-broker is not installed"));
                }
                if (access(helper, X_OK) < 0) {
                        close(out[0]);
                        close(out[1]);
                        return bus_fail(bus, g_strdup_printf("broker helper %s is missing", helper));
                }
                {
                        const char *argv[] = { helper, sock, NULL };

                        pid = th_spawn(&bus->proc, argv, NULL, out[1], -1);
                }
        } else {
                close(out[0]);
                close(out[1]);
                return bus_fail(bus, g_strdup_printf("unknown bus kind %d", (int) kind));
        }
        close(out[1]);

        if (pid < 0) {
                close(out[0]);
                return bus_fail(bus, g_strdup_printf("cannot start %s: %s",
                                                     th_bus_kind_to_string(kind), g_strerror((int) -pid)));
        }

        line = read_line(out[0], TH_START_TIMEOUT_MS);
        close(out[0]);
        if (!line || !g_str_has_prefix(line, "unix:")) {
                int status = 0;
                bool exited = th_proc_exited(&bus->proc);

                status = bus->proc.status;
                return bus_fail(bus, g_strdup_printf("%s did not start (%s)",
                                                     th_bus_kind_to_string(kind),
                                                     exited ? (WIFEXITED(status) ? "exited" : "killed")
                                                            : "no address within 10 s"));
        }
        bus->address = g_steal_pointer(&line);
        g_test_message("harness: %s (pid %d) at %s", th_bus_kind_to_string(kind),
                       (int) bus->proc.pid, bus->address);
        return true;
}


void th_bus_stop(ThBus *bus) {
        if (!bus)
                return;
        th_proc_stop(&bus->proc, SIGTERM, TH_STOP_TIMEOUT_MS);
        th_proc_clear(&bus->proc);
        if (bus->tmpdir) {
                rm_rf(bus->tmpdir);
                dir_registry_remove(bus->tmpdir);
        }
        g_clear_pointer(&bus->tmpdir, g_free);
        g_clear_pointer(&bus->address, g_free);
        g_clear_pointer(&bus->config_path, g_free);
        /* skip_reason is kept for the caller; freed on the next start or by fixture teardown */
}

/* ---- sd-bus clients ----------------------------------------------------- */

int th_connect(sd_bus **ret, const char *address) {
        sd_bus *bus = NULL;
        int r;

        g_return_val_if_fail(ret && address, -EINVAL);

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

int th_connect_socket(sd_bus **ret, const char *path) {
        g_autofree char *address = NULL;

        g_return_val_if_fail(ret && path, -EINVAL);
        address = g_strdup_printf("unix:path=%s", path);
        return th_connect(ret, address);
}

char *th_hub_socket_path(const ThBus *bus) {
        return g_build_filename(bus->tmpdir, "hub.sock", NULL);
}

int th_hub_spawn_listening(ThHub *hub, const ThBus *bus, const char *const *extra_args, char **ret_path) {
        g_autofree char *path = th_hub_socket_path(bus);
        g_autofree char *listen = g_strdup_printf("--listen=%s", path);
        g_autoptr(GPtrArray) args = g_ptr_array_new();
        int r;

        g_ptr_array_add(args, listen);
        for (size_t i = 0; extra_args && extra_args[i]; i++)
                g_ptr_array_add(args, (char *) extra_args[i]);
        g_ptr_array_add(args, NULL);
        r = th_hub_spawn(hub, bus->address, (const char *const *) args->pdata);
        if (r < 0)
                return r;
        if (ret_path)
                *ret_path = g_steal_pointer(&path);
        return 0;
}

int th_name_has_owner(sd_bus *bus, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r, has = 0;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "NameHasOwner", &error, &reply, "s", name);
        if (r >= 0)
                r = sd_bus_message_read(reply, "b", &has);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return r < 0 ? r : !!has;
}

int th_name_owner_pid(sd_bus *bus, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint32_t pid = 0;
        int r;

        r = th_name_has_owner(bus, name);
        if (r <= 0)
                return r < 0 ? r : -ENXIO;
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionUnixProcessID", &error, &reply, "s", name);
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", &pid);
        /* the name went away between the two calls */
        if (r < 0 && sd_bus_error_has_name(&error, "org.freedesktop.DBus.Error.NameHasNoOwner"))
                r = -ENXIO;
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return r < 0 ? r : pid > INT32_MAX ? -ERANGE : (int) pid;
}

int th_get_stat(sd_bus *bus, const char *key, uint64_t *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *k;
        int r, found = 0;

        r = sd_bus_call_method(bus, TH_HUB_NAME, TH_HUB_PATH, "org.clusterhub.Hub1", "GetStats", &error, &reply,
                               NULL);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &k);
                if (r >= 0 && !found && strcmp(k, key) == 0) {
                        r = sd_bus_message_read(reply, "v", "t", ret);
                        found = r > 0;
                } else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return r < 0 ? r : found ? 0 : -ENOENT;
}

int th_wait_for_name(sd_bus *bus, const char *name, bool want_owner, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;

        for (;;) {
                int r = th_name_has_owner(bus, name);

                if (r < 0)
                        return r;
                if (!!r == want_owner)
                        return 0;
                if (now_ms() >= deadline)
                        return -ETIMEDOUT;
                sleep_ms(10);
        }
}

/* ---- the hub ------------------------------------------------------------ */

char *th_hub_binary(void) {
        const char *e = g_getenv("CLUSTERHUBD");
        char *path;

        if (e && *e)
                path = g_strdup(e);
        else if ((e = g_getenv("MESON_BUILD_ROOT")) && *e)
                path = g_build_filename(e, "service", "clusterhubd", NULL);
        else
                return NULL;
        if (access(path, X_OK) < 0) {
                g_free(path);
                return NULL;
        }
        return path;
}

int th_hub_spawn_nowait(ThHub *hub, const char *address, const char *const *extra_args) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
        g_auto(GStrv) env = NULL;
        pid_t pid;

        g_return_val_if_fail(hub && address, -EINVAL);
        memset(hub, 0, sizeof(*hub));
        hub->proc.pid = -1;
        hub->address = g_strdup(address);
        hub->binary = th_hub_binary();
        if (!hub->binary)
                return -ENOENT;

        g_ptr_array_add(argv, g_strdup(hub->binary));
        g_ptr_array_add(argv, g_strdup_printf("--address=%s", address));
        for (size_t i = 0; extra_args && extra_args[i]; i++)
                g_ptr_array_add(argv, g_strdup(extra_args[i]));
        /* TH_HUB_ARGS: more options for every hub, separated by spaces (README.md) */
        if (g_getenv("TH_HUB_ARGS")) {
                g_auto(GStrv) more = g_strsplit(g_getenv("TH_HUB_ARGS"), " ", -1);
                for (size_t i = 0; more[i]; i++)
                        if (*more[i])
                                g_ptr_array_add(argv, g_strdup(more[i]));
        }
        g_ptr_array_add(argv, NULL);

        env = g_get_environ();
        env = g_environ_setenv(env, "DBUS_SESSION_BUS_ADDRESS", address, TRUE);
        env = g_environ_setenv(env, "DBUS_SYSTEM_BUS_ADDRESS", address, TRUE);
        /* a hub on the "user bus" (--user) listens in $XDG_RUNTIME_DIR: the bus's temp dir,
         * never the host's runtime dir */
        env = g_environ_unsetenv(env, "XDG_RUNTIME_DIR");
        env = g_environ_unsetenv(env, "RUNTIME_DIRECTORY");
        if (g_str_has_prefix(address, "unix:path=")) {
                g_autofree char *sock = g_strndup(address + strlen("unix:path="), strcspn(address + strlen("unix:path="), ","));
                g_autofree char *dir = g_path_get_dirname(sock);
                env = g_environ_setenv(env, "XDG_RUNTIME_DIR", dir, TRUE);
        }

        pid = th_spawn(&hub->proc, (const char *const *) argv->pdata, (const char *const *) env, -1, -1);
        if (pid < 0)
                return (int) pid;
        g_test_message("harness: clusterhubd (pid %d) on %s", (int) pid, address);
        return 0;
}

int th_hub_spawn(ThHub *hub, const char *address, const char *const *extra_args) {
        sd_bus *bus = NULL;
        int64_t deadline;
        int r;

        r = th_hub_spawn_nowait(hub, address, extra_args);
        if (r < 0)
                return r;

        r = th_connect(&bus, address);
        if (r < 0)
                return r;
        deadline = now_ms() + TH_START_TIMEOUT_MS;
        for (;;) {
                /* the owner must be this hub: right after an earlier hub on the same bus exited,
                 * the bus may still list that one as the owner for a while (dbus-broker, with
                 * thousands of its replies to drop), and a call made then gets NoReply */
                r = th_name_owner_pid(bus, TH_HUB_NAME);
                if (r == (int) hub->proc.pid)
                        break;
                if (r < 0 && r != -ENXIO)
                        break;
                if (th_proc_exited(&hub->proc)) {
                        r = -ECHILD;
                        break;
                }
                if (now_ms() >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                sleep_ms(10);
        }
        sd_bus_flush_close_unref(bus);
        return r > 0 ? 0 : r;
}

int th_hub_kill(ThHub *hub, int sig) {
        return hub ? th_proc_kill(&hub->proc, sig) : -EINVAL;
}

bool th_hub_wait_exit(ThHub *hub, int *status) {
        return hub && th_proc_wait(&hub->proc, TH_STOP_TIMEOUT_MS, status);
}

int th_hub_stop(ThHub *hub) {
        return hub ? th_proc_stop(&hub->proc, SIGTERM, TH_STOP_TIMEOUT_MS) : 0;
}

void th_hub_clear(ThHub *hub) {
        if (!hub)
                return;
        th_hub_stop(hub);
        th_proc_clear(&hub->proc);
        g_clear_pointer(&hub->address, g_free);
        g_clear_pointer(&hub->binary, g_free);
}

/* ---- GTest fixture ------------------------------------------------------ */

bool th_transport_private(void) {
        return g_strcmp0(g_getenv("TH_TRANSPORT"), "private") == 0;
}

int th_fixture_reconnect(ThFixture *f) {
        sd_bus *client = NULL;
        int r;

        g_return_val_if_fail(f, -EINVAL);
        if (!f->socket_path)
                return 0;       /* on the bus the client's connection outlives the hub */
        r = th_connect_socket(&client, f->socket_path);
        if (r < 0)
                return r;
        sd_bus_flush_close_unref(f->client);
        f->client = client;
        return 0;
}

int th_fixture_spawn_hub(ThFixture *f, const char *const *extra_args) {
        int r;

        g_return_val_if_fail(f, -EINVAL);
        if (f->socket_path)
                r = th_hub_spawn_listening(&f->hub, &f->bus, extra_args, NULL);
        else
                r = th_hub_spawn(&f->hub, f->bus.address, extra_args);
        if (r < 0)
                return r;
        return th_fixture_reconnect(f);
}

static void fixture_setup(ThFixture *f, ThBusKind kind, bool with_hub) {
        int r;

        memset(f, 0, sizeof(*f));
        f->bus.proc.pid = -1;
        f->hub.proc.pid = -1;
        f->with_hub = with_hub;

        if (!th_bus_start(&f->bus, kind)) {
                if (kind == TH_BUS_BROKER && !g_getenv("TH_REQUIRE_BROKER")) {
                        g_test_skip(f->bus.skip_reason);
                } else {
                        g_test_message("harness: %s", f->bus.skip_reason);
                        g_test_fail();
                }
                return;
        }
        r = th_connect(&f->client, f->bus.address);
        if (r < 0) {
                g_test_message("harness: cannot connect to %s: %s", f->bus.address, g_strerror(-r));
                g_test_fail();
                return;
        }
        if (with_hub) {
                bool private = th_transport_private();

                if (private)
                        r = th_hub_spawn_listening(&f->hub, &f->bus, NULL, &f->socket_path);
                else
                        r = th_hub_spawn(&f->hub, f->bus.address, NULL);
                if (r == -ENOENT) {
                        g_test_skip("clusterhubd is not built (set CLUSTERHUBD or MESON_BUILD_ROOT)");
                        return;
                }
                if (r < 0) {
                        g_test_message("harness: clusterhubd did not take %s: %s", TH_HUB_NAME,
                                       r == -ECHILD ? "it exited" : g_strerror(-r));
                        g_test_fail();
                        return;
                }
                if (private) {
                        /* the test's own client talks to the hub over the socket */
                        sd_bus_flush_close_unref(f->client);
                        f->client = NULL;
                        r = th_connect_socket(&f->client, f->socket_path);
                        if (r < 0) {
                                g_test_message("harness: cannot connect to %s: %s", f->socket_path, g_strerror(-r));
                                g_test_fail();
                                return;
                        }
                }
        }
        f->ready = true;
}

void th_fixture_setup(ThFixture *f, gconstpointer user_data) {
        fixture_setup(f, (ThBusKind) GPOINTER_TO_INT(user_data), false);
}

void th_fixture_setup_hub(ThFixture *f, gconstpointer user_data) {
        fixture_setup(f, (ThBusKind) GPOINTER_TO_INT(user_data), true);
}

bool th_fixture_skipped(ThFixture *f) {
        return !f->ready;
}

void th_fixture_teardown(ThFixture *f, gconstpointer user_data) {
        f->client = sd_bus_flush_close_unref(f->client);
        g_clear_pointer(&f->socket_path, g_free);
        th_hub_clear(&f->hub);
        th_bus_stop(&f->bus);
        g_clear_pointer(&f->bus.skip_reason, g_free);
}
