/* SPDX-License-Identifier: MIT */
/* hubctl lock NAME -- COMMAND, hubctl locks: org.clusterhub.Locks1. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hubctl.h"

static void help_lock(void) {
        printf("%s lock [OPTIONS...] NAME -- COMMAND [ARGS...]\n"
               "%s lock [OPTIONS...] -c 'SHELL COMMAND' NAME\n"
               "%s lock --lease=DURATION [OPTIONS...] NAME      (prints the token; see 'unlock')\n\n"
               "Wait for the cluster-wide lock NAME, run COMMAND, release the lock when COMMAND exits,\n"
               "and exit with its status (128+N if it was killed by signal N). The lock is tied to\n"
               "hubctl's bus connection: if hubctl dies, the hub releases it at once.\n"
               "Without a command, the lock is taken with its lease and held after hubctl exits, for a\n"
               "script of several steps: hubctl prints the fencing token, and 'hubctl unlock NAME TOKEN'\n"
               "releases it (or the lease ends).\n\n"
               "Options:\n"
               "  -w --timeout=DURATION  Give up after DURATION (500ms, 10s, 5min; a bare number is\n"
               "                         seconds; 0 = --nonblock). Default: wait without limit\n"
               "  -s --shared            Take a shared (reader) lock\n"
               "  -n --nonblock          Fail at once if the lock is busy\n"
               "  -E --conflict-exit-code=N\n"
               "                         Exit N (default 1) when the lock is busy (-n) or the wait timed\n"
               "                         out (-w), as flock(1)\n"
               "  -c --command=COMMAND   Run COMMAND with sh -c\n"
               "     --lease=DURATION    Hold with a lease: the lock outlives hubctl for DURATION\n"
               "  -h --help              Show this help\n\n"
               "Exit status: COMMAND's; 1 (or -E's) if the lock is busy or the wait timed out; 2 for a\n"
               "wrong command line; 4 if the hub cannot be reached; 126/127 if COMMAND could not be run.\n",
               program, program, program);
}

static void help_unlock(void) {
        printf("%s unlock [--json] NAME TOKEN\n\n"
               "Release the lock NAME held with TOKEN (Locks1.Unlock), e.g. one that 'hubctl lock --lease'\n"
               "took without a command. Any process of the same user that presents the token may release\n"
               "a lock whose holder has gone.\n\n"
               "Options:\n"
               "     --json     Print null once it is released (Unlock returns nothing)\n"
               "  -h --help     Show this help\n\n"
               "Exit status 1 with NotLocked or NotLockOwner if TOKEN does not hold NAME (any more).\n",
               program);
}

static void help_locks(void) {
        printf("%s locks [--json]\n\n"
               "List the locks of the namespace: name, holder, fencing token, waiters.\n\n"
               "Options:\n"
               "     --json     One JSON array of objects (name, holder, token, waiters)\n"
               "  -h --help     Show this help\n",
               program);
}

/* --- lock ---------------------------------------------------------------------------------- */

typedef struct LockArgs {
        uint64_t timeout_ms; /* NO_LIMIT: wait without limit */
        uint64_t lease_ms;
        bool shared;
        bool nonblock;
        int conflict_status;
        const char *shell_command;
        const char *name;
        char **command; /* NULL: take the lock (with its lease) and exit */
} LockArgs;

static int append_lock_options(sd_bus_message *m, void *userdata) {
        const LockArgs *a = userdata;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "timeout_ms", "t", a->timeout_ms);
        if (r >= 0 && a->lease_ms > 0)
                r = sd_bus_message_append(m, "{sv}", "lease_ms", "t", a->lease_ms);
        if (r >= 0 && a->shared)
                r = sd_bus_message_append(m, "{sv}", "shared", "b", 1);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

typedef struct LockReply {
        bool done;
        uint64_t token;
        sd_bus_error error;
} LockReply;

static int on_lock_reply(sd_bus_message *reply, const sd_bus_error *error, uint64_t token, void *userdata) {
        LockReply *l = userdata;

        l->done = true;
        l->token = token;
        if (sd_bus_error_is_set(error))
                sd_bus_error_copy(&l->error, error);
        return 0;
}

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig) {
        if (child_pid > 0)
                (void) kill(child_pid, sig);
}

/* Runs ARGV as a child; returns its exit status as a shell reports it. */
static int run_command(char **argv) {
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        struct sigaction sa = { .sa_handler = forward_signal, .sa_flags = SA_RESTART };
        int status;
        pid_t pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "%s: fork: %s\n", program, strerror(errno));
                return 126;
        }
        if (pid == 0) {
                execvp(argv[0], argv);
                fprintf(stderr, "%s: %s: %s\n", program, argv[0], strerror(errno));
                _exit(errno == ENOENT ? 127 : 126);
        }
        child_pid = pid;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                (void) sigaction(forwarded[i], &sa, NULL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        fprintf(stderr, "%s: waitpid: %s\n", program, strerror(errno));
                        return 126;
                }
        child_pid = 0;
        sa.sa_handler = SIG_DFL;
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                (void) sigaction(forwarded[i], &sa, NULL);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 126;
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s lock: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return -EINVAL;
}

/* Parses the options and positional arguments of 'lock' into A. Returns 0, 1 (--help) or -EINVAL. */
static int parse_lock_args(int argc, char *argv[], LockArgs *a) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "timeout", required_argument, NULL, 'w' },
                { "shared", no_argument, NULL, 's' },
                { "nonblock", no_argument, NULL, 'n' },
                { "conflict-exit-code", required_argument, NULL, 'E' },
                { "command", required_argument, NULL, 'c' },
                { "lease", required_argument, NULL, 'L' },
                {}
        };
        char *end;
        long v;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+hw:snE:c:L:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help_lock();
                        return 1;
                case 'w':
                        if (parse_duration_ms(optarg, &a->timeout_ms) < 0)
                                return usage("Invalid --timeout '%s' (e.g. 500ms, 10s, 5min).", optarg);
                        if (a->timeout_ms == 0)
                                a->nonblock = true;
                        else if (a->timeout_ms > UINT64_MAX / 2000)
                                a->timeout_ms = NO_LIMIT;
                        break;
                case 's':
                        a->shared = true;
                        break;
                case 'n':
                        a->nonblock = true;
                        break;
                case 'E':
                        errno = 0;
                        v = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || v < 0 || v > 255)
                                return usage("Invalid --conflict-exit-code '%s' (0 to 255).", optarg);
                        a->conflict_status = (int) v;
                        break;
                case 'c':
                        a->shell_command = optarg;
                        break;
                case 'L':
                        if (parse_duration_ms(optarg, &a->lease_ms) < 0 || a->lease_ms == NO_LIMIT || a->lease_ms == 0)
                                return usage("Invalid --lease '%s' (more than 0, e.g. 30s, 5min).", optarg);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind >= argc)
                return usage("a lock NAME is needed (see %s lock --help).", program);
        a->name = argv[optind++];
        if (optind < argc && strcmp(argv[optind], "--") == 0)
                optind++;
        if (a->shell_command) {
                if (optind < argc)
                        return usage("-c takes the whole command; '%s' is left over.", argv[optind]);
        } else if (optind < argc)
                a->command = argv + optind;
        else if (a->lease_ms == 0)
                return usage("without a COMMAND the lock would end with hubctl: give --lease=DURATION to hold '%s' "
                             "after hubctl exits, or a COMMAND (hubctl lock NAME -- COMMAND).", a->name);
        return 0;
}

/* Takes the lock: TryLock with --nonblock, else Lock (waiting as long as the hub lets it).
 * Returns 0 and the token, or an exit status (message printed). */
static int acquire(sd_bus *bus, LockArgs *a, uint64_t *ret_token) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r, status;

        if (a->nonblock) {
                int acquired = 0;
                r = ch_locks1_call_try_lock(bus, CH_BUS_NAME, ns_path, a->name, append_lock_options, a, &acquired, ret_token, &e);
                if (r < 0) {
                        status = log_bus_error("TryLock", &e, r);
                        sd_bus_error_free(&e);
                        return status;
                }
                if (!acquired) {
                        fprintf(stderr, "%s: Lock '%s' in namespace '%s' is busy.\n", program, a->name, arg_ns);
                        return a->conflict_status;
                }
                return 0;
        }

        LockReply l = { .error = SD_BUS_ERROR_NULL };
        /* the hub enforces timeout_ms; give the reply a little longer to arrive */
        uint64_t call_usec = a->timeout_ms == NO_LIMIT ? UINT64_MAX : (a->timeout_ms + 5000) * 1000;

        r = ch_locks1_call_lock_async(bus, NULL, CH_BUS_NAME, ns_path, a->name, append_lock_options, a, on_lock_reply, &l,
                                      call_usec);
        while (r >= 0 && !l.done) {
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(bus, UINT64_MAX);
        }
        if (r < 0 || sd_bus_error_is_set(&l.error)) {
                status = log_bus_error("Lock", &l.error, r);
                if (sd_bus_error_has_name(&l.error, CH_ERROR_TIMEOUT))
                        status = a->conflict_status;
                sd_bus_error_free(&l.error);
                return status;
        }
        *ret_token = l.token;
        return 0;
}

int verb_lock(int argc, char *argv[]) {
        LockArgs a = { .timeout_ms = NO_LIMIT, .conflict_status = EXIT_FAILURE };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        uint64_t token = 0;
        int r, ret;

        r = parse_lock_args(argc, argv, &a);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : EXIT_USAGE;
        if (value_check_string("lock name", a.name) < 0)
                return EXIT_USAGE;
        if (connect_bus(&bus) < 0)
                return EXIT_UNREACHABLE;

        ret = acquire(bus, &a, &token);
        if (ret != 0)
                goto finish;
        if (!a.command && !a.shell_command) {
                /* held by its lease after we exit: the token is what unlocks it */
                printf("%" PRIu64 "\n", token);
                ret = finish_output();
                goto finish;
        }

        /* The lock is ours while this connection stays open (or its lease runs). */
        ret = run_command(a.command ? a.command : (char *[]) { (char *) "sh", (char *) "-c", (char *) a.shell_command, NULL });

        r = ch_locks1_call_unlock(bus, CH_BUS_NAME, ns_path, a.name, token, &e);
        if (r < 0) {
                /* e.g. its lease ended while the command ran: say so, keep the command's status */
                (void) log_bus_error("Unlock", &e, r);
                note_failure(0);
        }
finish:
        sd_bus_error_free(&e);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- unlock -------------------------------------------------------------------------------- */

int verb_unlock(int argc, char *argv[]) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        uint64_t token;
        char *end;
        bool json = false;
        int r, ret = EXIT_SUCCESS;

        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
                help_unlock();
                return EXIT_SUCCESS;
        }
        /* --json anywhere among the arguments */
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--json") == 0) {
                        json = true;
                        memmove(argv + i, argv + i + 1, (argc - i) * sizeof(char *));
                        argc--;
                        break;
                }
        if (check_positional("unlock", argc - 1, 2, 2, "NAME TOKEN") < 0)
                return EXIT_USAGE;
        errno = 0;
        token = strtoull(argv[2], &end, 10);
        if (errno || end == argv[2] || *end || argv[2][0] == '-') {
                fprintf(stderr, "%s unlock: '%s' is not a lock token (the number 'hubctl lock' printed).\n", program, argv[2]);
                return EXIT_USAGE;
        }
        if (value_check_string("lock name", argv[1]) < 0)
                return EXIT_USAGE;
        if (connect_bus(&bus) < 0)
                return EXIT_UNREACHABLE;
        r = ch_locks1_call_unlock(bus, CH_BUS_NAME, ns_path, argv[1], token, &e);
        if (r < 0)
                ret = log_bus_error("Unlock", &e, r);
        else if (json) {
                puts("null");
                ret = finish_output();
        }
        sd_bus_error_free(&e);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- locks --------------------------------------------------------------------------------- */

typedef struct LockRow {
        const char *name, *holder;
        uint64_t token;
        uint32_t waiters;
        int shared, disconnected;
        bool has_lease;
        uint64_t lease_ms;
} LockRow;

/* One (sstua{sv}) row of ListLocks: 1, 0 at the end, or -errno. */
static int read_lock_row(sd_bus_message *reply, LockRow *row) {
        const char *key;
        int r;

        *row = (LockRow) {};
        r = sd_bus_message_enter_container(reply, 'r', "sstua{sv}");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "sstu", &row->name, &row->holder, &row->token, &row->waiters);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "shared") == 0)
                        r = sd_bus_message_read(reply, "v", "b", &row->shared);
                else if (strcmp(key, "disconnected") == 0)
                        r = sd_bus_message_read(reply, "v", "b", &row->disconnected);
                else if (strcmp(key, "lease_ms") == 0) {
                        r = sd_bus_message_read(reply, "v", "t", &row->lease_ms);
                        row->has_lease = r >= 0;
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        return r < 0 ? r : 1;
}

/* "exclusive", "shared, disconnected, lease 12.3s", ... */
static void format_state(const LockRow *row, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s%s", row->shared ? "shared" : "exclusive", row->disconnected ? ", disconnected" : "");
        if (row->has_lease && n > 0 && (size_t) n < size)
                snprintf(buf + n, size - n, ", lease %" PRIu64 ".%01" PRIu64 "s", row->lease_ms / 1000, row->lease_ms % 1000 / 100);
}

int verb_locks(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                {}
        };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        LockRow *rows = NULL;
        size_t n = 0, allocated = 0;
        bool json = false;
        int c, r, ret = EXIT_FAILURE;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help_locks();
                        return EXIT_SUCCESS;
                case 'j':
                        json = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "%s locks: unexpected argument '%s'.\n", program, argv[optind]);
                return EXIT_USAGE;
        }
        r = connect_bus(&bus);
        if (r < 0)
                return EXIT_UNREACHABLE;
        r = ch_locks1_call_list_locks(bus, CH_BUS_NAME, ns_path, &reply, &e);
        if (r < 0) {
                ret = log_bus_error("ListLocks", &e, r);
                goto finish;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sstua{sv})");
        for (;;) {
                LockRow row;
                if (r < 0)
                        break;
                r = read_lock_row(reply, &row);
                if (r <= 0)
                        break;
                if (n == allocated) {
                        allocated = allocated ? allocated * 2 : 16;
                        LockRow *nr = realloc(rows, allocated * sizeof(LockRow));
                        if (!nr) {
                                r = -ENOMEM;
                                break;
                        }
                        rows = nr;
                }
                rows[n++] = row;
        }
        if (r < 0) {
                fprintf(stderr, "%s: Bad ListLocks reply: %s\n", program, strerror(-r));
                goto finish;
        }

        if (json) {
                fputc('[', stdout);
                for (size_t i = 0; i < n; i++) {
                        fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
                        json_string(stdout, rows[i].name);
                        fputs(",\"holder\":", stdout);
                        json_string(stdout, rows[i].holder);
                        printf(",\"token\":%" PRIu64 ",\"waiters\":%" PRIu32 ",\"shared\":%s,\"disconnected\":%s,\"lease_ms\":",
                               rows[i].token, rows[i].waiters, rows[i].shared ? "true" : "false",
                               rows[i].disconnected ? "true" : "false");
                        if (rows[i].has_lease)
                                printf("%" PRIu64 "}", rows[i].lease_ms);
                        else
                                fputs("null}", stdout);
                }
                fputs("]\n", stdout);
        } else if (n == 0) {
                printf("No locks in namespace '%s'.\n", arg_ns);
        } else {
                int wn = 4, wh = 6;
                for (size_t i = 0; i < n; i++) {
                        if ((int) strlen(rows[i].name) > wn)
                                wn = strlen(rows[i].name);
                        if ((int) strlen(rows[i].holder) > wh)
                                wh = strlen(rows[i].holder);
                }
                printf("%-*s  %-*s  %10s  %7s  %s\n", wn, "NAME", wh, "HOLDER", "TOKEN", "WAITERS", "STATE");
                for (size_t i = 0; i < n; i++) {
                        char state[96];
                        format_state(&rows[i], state, sizeof(state));
                        printf("%-*s  %-*s  %10" PRIu64 "  %7" PRIu32 "  %s\n", wn, rows[i].name, wh, rows[i].holder,
                               rows[i].token, rows[i].waiters, state);
                }
        }
        ret = fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
finish:
        free(rows);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
        sd_bus_flush_close_unref(bus);
        return ret;
}

