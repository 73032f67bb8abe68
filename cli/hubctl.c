/* SPDX-License-Identifier: MIT */
/* hubctl: the command-line client of clusterhubd (the redis-cli / flock(1) of the hub).
 *
 *   hubctl [--user|--system|--address=ADDR] [--ns=NAME] lock [OPTIONS] NAME -- COMMAND [ARGS...]
 *   hubctl [...] locks [--json]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clusterhub/clusterhub.h"
#include "config.h"

#define DEFAULT_NAMESPACE "default"
#define NO_LIMIT UINT64_MAX

typedef enum BusKind { BUS_USER, BUS_SYSTEM, BUS_ADDRESS } BusKind;

static BusKind arg_bus = BUS_USER;
static const char *arg_address;
static const char *arg_ns = DEFAULT_NAMESPACE;
static char *ns_path;

static const char *program = "hubctl";

static void help_main(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Talk to the clusterhub hub (org.clusterhub.Hub1).\n\n"
               "Commands:\n"
               "  lock [--timeout=DURATION] [--shared] [--nonblock] [--lease=DURATION] NAME -- COMMAND [ARGS...]\n"
               "                      Run COMMAND while holding the cluster-wide lock NAME\n"
               "  locks [--json]      List held and awaited locks\n\n"
               "Options:\n"
               "  -h --help           Show this help\n"
               "     --version        Show the version\n"
               "     --user           Connect to the user (session) bus (default)\n"
               "     --system         Connect to the system bus\n"
               "     --address=ADDR   Connect to the bus at ADDR\n"
               "     --ns=NAME        Namespace (default: \"" DEFAULT_NAMESPACE "\")\n\n"
               "See hubctl COMMAND --help, and docs/hubctl.md.\n",
               program);
}

static void help_lock(void) {
        printf("%s lock [OPTIONS...] NAME -- COMMAND [ARGS...]\n\n"
               "Wait for the cluster-wide lock NAME, run COMMAND, release the lock when COMMAND exits,\n"
               "and exit with its status (128+N if it was killed by signal N). The lock is tied to\n"
               "hubctl's bus connection: if hubctl dies, the hub releases it at once.\n\n"
               "Options:\n"
               "  -w --timeout=DURATION  Give up after DURATION (500ms, 10s, 5min; a bare number is\n"
               "                         seconds; 0 = --nonblock). Default: wait without limit\n"
               "  -s --shared            Take a shared (reader) lock\n"
               "  -n --nonblock          Fail at once (exit 1) if the lock is busy\n"
               "     --lease=DURATION    Hold with a lease: the lock outlives hubctl for DURATION\n"
               "  -h --help              Show this help\n\n"
               "Exit status: COMMAND's; 1 if the lock could not be taken (busy, timeout, error);\n"
               "126/127 if COMMAND could not be run.\n",
               program);
}

static void help_locks(void) {
        printf("%s locks [--json]\n\n"
               "List the locks of the namespace: name, holder, fencing token, waiters.\n\n"
               "Options:\n"
               "     --json     One JSON object per line\n"
               "  -h --help     Show this help\n",
               program);
}

/* --- helpers ----------------------------------------------------------------------------- */

static int log_bus_error(const char *what, const sd_bus_error *e, int r) {
        if (sd_bus_error_is_set(e))
                fprintf(stderr, "%s: %s: %s: %s\n", program, what, e->name, e->message ? e->message : "");
        else
                fprintf(stderr, "%s: %s: %s\n", program, what, strerror(r < 0 ? -r : r));
        return EXIT_FAILURE;
}

/* Parses a duration as systemd writes them ("500ms", "10s", "5min", "1h 30min", "1.5s"); a bare
 * number is seconds (as for flock -w). "infinity" is no limit.  Returns 0 and milliseconds. */
static int parse_duration_ms(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                double ms;
        } units[] = {
                { "msec", 1 }, { "ms", 1 },
                { "usec", 0.001 }, { "us", 0.001 },
                { "seconds", 1000 }, { "second", 1000 }, { "sec", 1000 }, { "s", 1000 },
                { "minutes", 60000 }, { "minute", 60000 }, { "min", 60000 }, { "m", 60000 },
                { "hours", 3600000 }, { "hour", 3600000 }, { "hr", 3600000 }, { "h", 3600000 },
                { "days", 86400000 }, { "day", 86400000 }, { "d", 86400000 },
                { "weeks", 604800000 }, { "week", 604800000 }, { "w", 604800000 },
        };
        double total = 0;
        bool any = false;
        const char *p = s;

        while (*p == ' ')
                p++;
        if (strcmp(p, "infinity") == 0) {
                *ret = NO_LIMIT;
                return 0;
        }
        while (*p) {
                char *end;
                double v, unit = 1000; /* bare number: seconds */
                size_t n = 0;

                if (*p == '-' || *p == '+')
                        return -EINVAL;
                errno = 0;
                v = strtod(p, &end);
                if (errno || end == p || !isfinite(v) || v < 0)
                        return -EINVAL;
                p = end;
                while (*p == ' ')
                        p++;
                for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                        size_t l = strlen(units[i].suffix);
                        if (strncmp(p, units[i].suffix, l) == 0 && !(p[l] >= 'a' && p[l] <= 'z')) {
                                unit = units[i].ms;
                                n = l;
                                break;
                        }
                }
                if (n == 0 && *p && !(*p >= '0' && *p <= '9') && *p != '.')
                        return -EINVAL; /* unknown unit */
                p += n;
                while (*p == ' ')
                        p++;
                total += v * unit;
                any = true;
        }
        if (!any)
                return -EINVAL;
        if (total >= 1.8e19)
                return -ERANGE;
        *ret = (uint64_t) ceil(total);
        return 0;
}

static bool namespace_name_ok(const char *s) {
        if (!*s || strlen(s) > 255)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

static int connect_bus(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        switch (arg_bus) {
        case BUS_USER:
                r = sd_bus_open_user(&bus);
                break;
        case BUS_SYSTEM:
                r = sd_bus_open_system(&bus);
                break;
        default:
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, arg_address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
                break;
        }
        if (r < 0) {
                sd_bus_unref(bus);
                fprintf(stderr, "%s: Failed to connect to %s: %s\n", program,
                        arg_bus == BUS_USER ? "the user bus" : arg_bus == BUS_SYSTEM ? "the system bus" : arg_address,
                        strerror(-r));
                return r;
        }
        *ret = bus;
        return 0;
}

/* --- lock ---------------------------------------------------------------------------------- */

typedef struct LockArgs {
        uint64_t timeout_ms; /* NO_LIMIT: wait without limit */
        uint64_t lease_ms;
        bool shared;
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

static int verb_lock(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "timeout", required_argument, NULL, 'w' },
                { "shared", no_argument, NULL, 's' },
                { "nonblock", no_argument, NULL, 'n' },
                { "lease", required_argument, NULL, 'L' },
                {}
        };
        LockArgs a = { .timeout_ms = NO_LIMIT };
        bool nonblock = false;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        const char *name;
        char **cmd;
        int c, r, ret;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+hw:snL:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help_lock();
                        return EXIT_SUCCESS;
                case 'w':
                        if (parse_duration_ms(optarg, &a.timeout_ms) < 0) {
                                fprintf(stderr, "%s: Invalid --timeout '%s' (e.g. 500ms, 10s, 5min).\n", program, optarg);
                                return EXIT_FAILURE;
                        }
                        if (a.timeout_ms == 0)
                                nonblock = true;
                        else if (a.timeout_ms > UINT64_MAX / 2000)
                                a.timeout_ms = NO_LIMIT;
                        break;
                case 's':
                        a.shared = true;
                        break;
                case 'n':
                        nonblock = true;
                        break;
                case 'L':
                        if (parse_duration_ms(optarg, &a.lease_ms) < 0 || a.lease_ms == NO_LIMIT) {
                                fprintf(stderr, "%s: Invalid --lease '%s' (e.g. 30s, 5min).\n", program, optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (optind >= argc) {
                fprintf(stderr, "%s lock: a lock NAME and a COMMAND are needed (see --help).\n", program);
                return EXIT_FAILURE;
        }
        name = argv[optind++];
        if (optind < argc && strcmp(argv[optind], "--") == 0)
                optind++;
        if (optind >= argc) {
                fprintf(stderr, "%s lock: a COMMAND to run under lock '%s' is needed: hubctl lock %s -- COMMAND.\n",
                        program, name, name);
                return EXIT_FAILURE;
        }
        cmd = argv + optind;

        r = connect_bus(&bus);
        if (r < 0)
                return EXIT_FAILURE;

        uint64_t token = 0;
        if (nonblock) {
                int acquired = 0;
                r = ch_locks1_call_try_lock(bus, CH_BUS_NAME, ns_path, name, append_lock_options, &a, &acquired, &token, &e);
                if (r < 0) {
                        ret = log_bus_error("TryLock", &e, r);
                        goto finish;
                }
                if (!acquired) {
                        fprintf(stderr, "%s: Lock '%s' in namespace '%s' is busy.\n", program, name, arg_ns);
                        ret = EXIT_FAILURE;
                        goto finish;
                }
        } else {
                LockReply l = { .error = SD_BUS_ERROR_NULL };
                /* the hub enforces timeout_ms; give the reply a little longer to arrive */
                uint64_t call_usec = a.timeout_ms == NO_LIMIT ? UINT64_MAX : (a.timeout_ms + 5000) * 1000;

                r = ch_locks1_call_lock_async(bus, NULL, CH_BUS_NAME, ns_path, name, append_lock_options, &a,
                                              on_lock_reply, &l, call_usec);
                while (r >= 0 && !l.done) {
                        r = sd_bus_process(bus, NULL);
                        if (r == 0)
                                r = sd_bus_wait(bus, UINT64_MAX);
                }
                if (r < 0 || sd_bus_error_is_set(&l.error)) {
                        ret = log_bus_error("Lock", &l.error, r);
                        sd_bus_error_free(&l.error);
                        goto finish;
                }
                token = l.token;
        }

        /* The lock is ours while this connection stays open (or its lease runs). */
        ret = run_command(cmd);

        r = ch_locks1_call_unlock(bus, CH_BUS_NAME, ns_path, name, token, &e);
        if (r < 0)
                /* e.g. its lease ended while the command ran: say so, keep the command's status */
                (void) log_bus_error("Unlock", &e, r);

finish:
        sd_bus_error_free(&e);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- locks --------------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"': fputs("\\\"", f); break;
                case '\\': fputs("\\\\", f); break;
                case '\n': fputs("\\n", f); break;
                case '\t': fputs("\\t", f); break;
                case '\r': fputs("\\r", f); break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

typedef struct LockRow {
        const char *name, *holder;
        uint64_t token;
        uint32_t waiters;
} LockRow;

static int verb_locks(int argc, char *argv[]) {
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
                        return EXIT_FAILURE;
                }
        if (optind < argc) {
                fprintf(stderr, "%s locks: unexpected argument '%s'.\n", program, argv[optind]);
                return EXIT_FAILURE;
        }
        r = connect_bus(&bus);
        if (r < 0)
                return EXIT_FAILURE;
        r = ch_locks1_call_list_locks(bus, CH_BUS_NAME, ns_path, &reply, &e);
        if (r < 0) {
                ret = log_bus_error("ListLocks", &e, r);
                goto finish;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sstu)");
        for (;;) {
                LockRow row;
                if (r < 0)
                        break;
                r = sd_bus_message_read(reply, "(sstu)", &row.name, &row.holder, &row.token, &row.waiters);
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
                for (size_t i = 0; i < n; i++) {
                        fputs("{\"name\":", stdout);
                        json_string(stdout, rows[i].name);
                        fputs(",\"holder\":", stdout);
                        json_string(stdout, rows[i].holder);
                        printf(",\"token\":%" PRIu64 ",\"waiters\":%" PRIu32 "}\n", rows[i].token, rows[i].waiters);
                }
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
                printf("%-*s  %-*s  %10s  %7s\n", wn, "NAME", wh, "HOLDER", "TOKEN", "WAITERS");
                for (size_t i = 0; i < n; i++)
                        printf("%-*s  %-*s  %10" PRIu64 "  %7" PRIu32 "\n", wn, rows[i].name, wh, rows[i].holder,
                               rows[i].token, rows[i].waiters);
        }
        ret = fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
finish:
        free(rows);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- main ---------------------------------------------------------------------------------- */

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_USER, ARG_SYSTEM, ARG_ADDRESS, ARG_NS };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "user", no_argument, NULL, ARG_USER },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "ns", required_argument, NULL, ARG_NS },
                {}
        };
        const char *verb;
        int c, r;

        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help_main();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("hubctl %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                case ARG_USER:
                        arg_bus = BUS_USER;
                        break;
                case ARG_SYSTEM:
                        arg_bus = BUS_SYSTEM;
                        break;
                case ARG_ADDRESS:
                        arg_bus = BUS_ADDRESS;
                        arg_address = optarg;
                        break;
                case ARG_NS:
                        arg_ns = optarg;
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (!namespace_name_ok(arg_ns)) {
                fprintf(stderr, "%s: '%s' is not a namespace name: 1 to 255 characters of [A-Za-z0-9_].\n", program, arg_ns);
                return EXIT_FAILURE;
        }
        if (optind >= argc) {
                fprintf(stderr, "%s: a command is needed (see --help).\n", program);
                return EXIT_FAILURE;
        }
        r = sd_bus_error_add_map(ch_error_map);
        if (r < 0) {
                fprintf(stderr, "%s: Failed to register the error map: %s\n", program, strerror(-r));
                return EXIT_FAILURE;
        }
        if (asprintf(&ns_path, "%s%s", CH_NAMESPACE_PATH_PREFIX, arg_ns) < 0)
                return EXIT_FAILURE;

        verb = argv[optind];
        argc -= optind;
        argv += optind;
        if (strcmp(verb, "lock") == 0)
                r = verb_lock(argc, argv);
        else if (strcmp(verb, "locks") == 0)
                r = verb_locks(argc, argv);
        else {
                fprintf(stderr, "%s: unknown command '%s' (see --help).\n", program, verb);
                r = EXIT_FAILURE;
        }
        free(ns_path);
        return r;
}
