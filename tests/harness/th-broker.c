/* SPDX-License-Identifier: MIT */
/*
 * th-broker: run a private dbus-broker without dbus-broker-launch, systemd or
 * any privilege, by playing its controller ourselves (the way dbus-broker's
 * own test/dbus/util-broker.c does).
 *
 *   th-broker SOCKET_PATH
 *
 * Binds a listening AF_UNIX socket at SOCKET_PATH, forks
 * `dbus-broker --controller FD`, hands it the listener with a permissive
 * policy (everyone may connect, own, send and receive), prints
 * "unix:path=SOCKET_PATH\n" on stdout, closes stdout (the "ready" signal for
 * the harness), then babysits the broker until SIGTERM/SIGINT (it then stops
 * the broker and waits for it) or until the broker exits.  Both processes die
 * with their parent (PR_SET_PDEATHSIG).
 *
 * Environment: TH_DBUS_BROKER overrides the broker binary (default
 * "dbus-broker", looked up in PATH).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

/* policy wire format of dbus-broker 33 (src/launch/policy.c: policy_export()) */
#define POLICY_T_BATCH "bt" "a(btbs)" "a(btssssuutt)" "a(btssssuutt)"
#define POLICY_T "a(u(" POLICY_T_BATCH "))" "a(buu(" POLICY_T_BATCH "))" "a(ss)" "b" "s"

static pid_t broker_pid = -1;

static int append_policy(sd_bus_message *m) {
        int r;

        r = sd_bus_message_open_container(m, 'v', "(" POLICY_T ")");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'r', POLICY_T);
        if (r < 0)
                return r;

        /* one batch for the fall-back uid (-1): allow connect, own, send, recv */
        r = sd_bus_message_open_container(m, 'a', "(u(" POLICY_T_BATCH "))");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'r', "u(" POLICY_T_BATCH ")");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "u", (uint32_t) -1);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'r', POLICY_T_BATCH);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, POLICY_T_BATCH,
                                  true, UINT64_C(1),
                                  1, true, UINT64_C(1), true, "",
                                  1, true, UINT64_C(1), "", "", "", "", 0, 0, UINT64_C(0), UINT64_MAX,
                                  1, true, UINT64_C(1), "", "", "", "", 0, 0, UINT64_C(0), UINT64_MAX);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        /* no per-gid / uid-range batches */
        r = sd_bus_message_open_container(m, 'a', "(buu(" POLICY_T_BATCH "))");
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        /* no SELinux rules */
        r = sd_bus_message_open_container(m, 'a', "(ss)");
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        /* AppArmor off, a session bus */
        r = sd_bus_message_append(m, "bs", false, "session");
        if (r < 0)
                return r;

        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int method_reload_config(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        sd_bus *bus = sd_bus_message_get_bus(message);
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, NULL, "/org/bus1/DBus/Listener/0",
                                           "org.bus1.DBus.Listener", "SetPolicy");
        if (r >= 0)
                r = append_policy(m);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, error, NULL);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static const sd_bus_vtable controller_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("ReloadConfig", NULL, NULL, method_reload_config, 0),
        SD_BUS_VTABLE_END
};

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        int code = EXIT_FAILURE;

        broker_pid = -1; /* reaped by sd-event */
        if (si->si_code == CLD_EXITED)
                code = si->si_status;
        else if (si->si_code == CLD_KILLED && si->si_status == SIGTERM)
                code = EXIT_SUCCESS;
        return sd_event_exit(sd_event_source_get_event(s), code);
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        /* Stop the broker; on_child() ends the loop once it is gone. */
        if (broker_pid > 0)
                (void) kill(broker_pid, SIGTERM);
        else
                return sd_event_exit(sd_event_source_get_event(s), EXIT_SUCCESS);
        return 0;
}

static void read_machine_id(char out[33]) {
        char buf[64] = "";
        FILE *f = fopen("/etc/machine-id", "re");
        size_t i;

        if (f) {
                if (!fgets(buf, sizeof(buf), f))
                        buf[0] = 0;
                fclose(f);
        }
        for (i = 0; i < 32; i++)
                if (!((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f')))
                        break;
        if (i == 32) {
                memcpy(out, buf, 32);
                out[32] = 0;
        } else {
                strcpy(out, "0123456789abcdef0123456789abcdef");
        }
}

int main(int argc, char **argv) {
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char machine_id[33], fdstr[16];
        const char *broker_bin;
        sigset_t mask;
        int listener = -1, pair[2], r, ret = EXIT_FAILURE;
        pid_t parent = getppid();

        if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "usage: th-broker SOCKET_PATH (shorter than %zu bytes)\n",
                        sizeof(sa.sun_path));
                return 2;
        }
        /* die with the test that started us */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                return EXIT_FAILURE;

        broker_bin = getenv("TH_DBUS_BROKER");
        if (!broker_bin || !*broker_bin)
                broker_bin = "dbus-broker";
        read_machine_id(machine_id);

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        strcpy(sa.sun_path, argv[1]);
        (void) unlink(argv[1]);
        listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (listener < 0 || bind(listener, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            listen(listener, 256) < 0) {
                fprintf(stderr, "th-broker: cannot listen on %s: %m\n", argv[1]);
                goto out;
        }
        (void) chmod(argv[1], 0666);

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0) {
                fprintf(stderr, "th-broker: socketpair: %m\n");
                goto out;
        }
        snprintf(fdstr, sizeof(fdstr), "%d", pair[1]);

        parent = getpid();
        broker_pid = fork();
        if (broker_pid < 0) {
                fprintf(stderr, "th-broker: fork: %m\n");
                goto out;
        }
        if (broker_pid == 0) {
                sigset_t none;

                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                        _exit(EXIT_FAILURE);
                if (fcntl(pair[1], F_SETFD, 0) < 0)
                        _exit(EXIT_FAILURE);
                /* keep our stdout (the ready pipe) out of the broker */
                dup2(STDERR_FILENO, STDOUT_FILENO);
                execlp(broker_bin, broker_bin,
                       "--controller", fdstr,
                       "--machine-id", machine_id,
                       "--max-bytes", "1000000000",
                       "--max-fds", "100000",
                       "--max-matches", "1000000",
                       "--max-objects", "1000000",
                       (char *) NULL);
                fprintf(stderr, "th-broker: cannot execute %s: %m\n", broker_bin);
                _exit(127);
        }
        close(pair[1]);

        r = sd_event_new(&event);
        if (r >= 0)
                r = sd_event_add_child(event, NULL, broker_pid, WEXITED, on_child, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_term, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_term, NULL);
        if (r >= 0)
                r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_fd(bus, pair[0], pair[0]);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, "/org/bus1/DBus/Controller",
                                             "org.bus1.DBus.Controller", controller_vtable, NULL);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, NULL, "/org/bus1/DBus/Broker",
                                                   "org.bus1.DBus.Broker", "AddListener");
        if (r >= 0)
                r = sd_bus_message_append(m, "oh", "/org/bus1/DBus/Listener/0", listener);
        if (r >= 0)
                r = append_policy(m);
        if (r >= 0)
                r = sd_bus_call(bus, m, 10 * 1000 * 1000, &error, NULL);
        if (r < 0) {
                fprintf(stderr, "th-broker: setting up %s failed: %s%s%s\n", broker_bin,
                        strerror(-r), error.message ? ": " : "", error.message ? error.message : "");
                (void) kill(broker_pid, SIGKILL);
                (void) waitpid(broker_pid, NULL, 0);
                broker_pid = -1;
                goto out;
        }
        close(listener);
        listener = -1;
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);

        /* ready */
        printf("unix:path=%s\n", argv[1]);
        fflush(stdout);
        (void) freopen("/dev/null", "w", stdout);

        r = sd_event_loop(event);
        ret = r < 0 ? EXIT_FAILURE : r;
        if (broker_pid > 0) {
                (void) kill(broker_pid, SIGKILL);
                (void) waitpid(broker_pid, NULL, 0);
        }
out:
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
        if (listener >= 0)
                close(listener);
        (void) unlink(argv[1]);
        return ret;
}
