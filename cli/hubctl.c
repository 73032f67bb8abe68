/* SPDX-License-Identifier: MIT */
/* hubctl: the command-line client of clusterhubd (the redis-cli / systemctl / flock(1) of the hub).
 *
 *   hubctl [--user|--system|--address=ADDR] [--ns=NAME] COMMAND [OPTIONS] ARGS...
 *
 * This file holds main(), the global options and what the subcommands share; the subcommands
 * live in cmd-store.c (Store1), cmd-events.c (Events1, monitor), cmd-hub.c (Hub1, Requests1) and
 * cmd-locks.c (Locks1); values.c reads and prints typed values. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hubctl.h"

BusKind arg_bus = BUS_USER;
const char *arg_address;
const char *arg_ns = DEFAULT_NAMESPACE;
char *ns_path;

const char *program = "hubctl";

static void help_main(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Talk to the clusterhub hub (org.clusterhub.Hub1).\n\n"
               "Store commands:\n"
               "  get KEY                 Print the value of KEY\n"
               "  set KEY VALUE [--ttl=DURATION] [--nx|--xx]\n"
               "                          Store VALUE at KEY\n"
               "  del KEY...              Delete keys, print how many existed\n"
               "  incr KEY [BY]           Add BY (default 1) to KEY, print the new value\n"
               "  keys [PATTERN]          List keys matching a glob (default *)\n"
               "  ttl KEY                 Remaining time to live in ms (-1 none, -2 no key)\n"
               "  store COMMAND ARGS...   Call any Store1 method (hset, lpush, smembers, ...)\n\n"
               "Event commands:\n"
               "  emit EVENT [VALUE]      Broadcast EVENT to its subscribers\n"
               "  send WORKER EVENT [VALUE]\n"
               "                          Send EVENT to one worker\n"
               "  monitor [PATTERN...]    Follow events, key changes and workers until Ctrl-C\n\n"
               "Request, worker and hub commands:\n"
               "  request [--to=WORKER] [--timeout=DURATION] METHOD [VALUE]\n"
               "                          Call METHOD served by a worker, print its reply\n"
               "  workers                 List registered workers\n"
               "  wait-workers N [--timeout=DURATION]\n"
               "                          Wait until N workers are registered\n"
               "  stats                   Show the hub's counters\n\n"
               "Lock commands:\n"
               "  lock [--timeout=DURATION] [--shared] [--nonblock] [--lease=DURATION] NAME -- COMMAND [ARGS...]\n"
               "                          Run COMMAND while holding the cluster-wide lock NAME\n"
               "  locks                   List held and awaited locks\n\n"
               "Options:\n"
               "  -h --help           Show this help\n"
               "     --version        Show the version\n"
               "     --user           Connect to the user (session) bus (default)\n"
               "     --system         Connect to the system bus\n"
               "     --address=ADDR   Connect to the bus at ADDR\n"
               "     --ns=NAME        Namespace (default: \"" DEFAULT_NAMESPACE "\")\n\n"
               "Listing commands take --json. Values: TEXT (a string), s:TEXT, x:42, i:7, u:7, t:7,\n"
               "d:1.5, b:true, or JSON ({\"a\":1} is a{sv}, [1,2] is av).\n"
               "See hubctl COMMAND --help, and hubctl(1).\n",
               program);
}

/* --- helpers ----------------------------------------------------------------------------- */

int log_bus_error(const char *what, const sd_bus_error *e, int r) {
        if (sd_bus_error_is_set(e))
                fprintf(stderr, "%s: %s: %s: %s\n", program, what, e->name, e->message ? e->message : "");
        else
                fprintf(stderr, "%s: %s: %s\n", program, what, strerror(r < 0 ? -r : r));
        return EXIT_FAILURE;
}

/* Parses a duration as systemd writes them ("500ms", "10s", "5min", "1h 30min", "1.5s"); a bare
 * number is seconds (as for flock -w). "infinity" is no limit.  Returns 0 and milliseconds. */
int parse_duration_ms(const char *s, uint64_t *ret) {
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

int connect_bus(sd_bus **ret) {
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

void json_string(FILE *f, const char *s) {
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

/* --- subcommand arguments ------------------------------------------------------------------ */

static bool looks_like_number(const char *s) {
        return s[0] == '-' && ((s[1] >= '0' && s[1] <= '9') || (s[1] == '.' && s[2] >= '0' && s[2] <= '9'));
}

int parse_args(int argc, char *argv[], const Option *opts, void *userdata,
               int (*handle)(const Option *o, const char *arg, void *userdata)) {
        int npos = 0;
        bool only_positional = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const Option *o = NULL;
                const char *value = NULL;
                int r;

                if (only_positional || a[0] != '-' || a[1] == 0 || looks_like_number(a)) {
                        argv[1 + npos++] = argv[i];
                        continue;
                }
                if (strcmp(a, "--") == 0) {
                        only_positional = true;
                        continue;
                }
                if (a[1] == '-') {
                        const char *eq = strchr(a + 2, '=');
                        size_t l = eq ? (size_t) (eq - a - 2) : strlen(a + 2);
                        for (const Option *p = opts; p->name; p++)
                                if (strlen(p->name) == l && strncmp(p->name, a + 2, l) == 0) {
                                        o = p;
                                        break;
                                }
                        if (!o) {
                                fprintf(stderr, "%s %s: unknown option '%s' (see %s %s --help).\n", program, argv[0], a,
                                        program, argv[0]);
                                return PARSE_FAILED;
                        }
                        if (eq && !o->has_arg) {
                                fprintf(stderr, "%s %s: option '--%s' takes no value.\n", program, argv[0], o->name);
                                return PARSE_FAILED;
                        }
                        value = eq ? eq + 1 : NULL;
                } else {
                        for (const Option *p = opts; p->name; p++)
                                if (p->short_name && p->short_name == a[1]) {
                                        o = p;
                                        break;
                                }
                        if (!o || (a[2] && !o->has_arg)) {
                                fprintf(stderr, "%s %s: unknown option '%s' (see %s %s --help).\n", program, argv[0], a,
                                        program, argv[0]);
                                return PARSE_FAILED;
                        }
                        value = a[2] ? a + 2 : NULL;
                }
                if (o->has_arg && !value) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "%s %s: option '%s' needs a value.\n", program, argv[0], a);
                                return PARSE_FAILED;
                        }
                        value = argv[++i];
                }
                r = handle(o, value, userdata);
                if (r < 0)
                        return PARSE_FAILED;
                if (r > 0)
                        return PARSE_DONE;
        }
        return npos;
}

int check_positional(const char *verb, int npos, int min, int max, const char *usage) {
        if (npos >= min && (max < 0 || npos <= max))
                return 0;
        fprintf(stderr, "%s %s: %s arguments; usage: %s %s %s\n", program, verb, npos < min ? "missing" : "too many",
                program, verb, usage);
        return -EINVAL;
}

int parse_duration_option(const char *name, const char *value, uint64_t *ret) {
        if (parse_duration_ms(value, ret) < 0) {
                fprintf(stderr, "%s: Invalid --%s '%s' (e.g. 500ms, 10s, 5min; a bare number is seconds).\n", program,
                        name, value);
                return -EINVAL;
        }
        return 0;
}

int call_and_report(sd_bus *bus, sd_bus_message *m, uint64_t usec, sd_bus_message **ret_reply) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(bus, m, usec, &e, ret_reply);
        if (r < 0) {
                log_bus_error(sd_bus_message_get_member(m), &e, r);
                sd_bus_error_free(&e);
                return r;
        }
        return 0;
}

int new_call(sd_bus *bus, sd_bus_message **ret, const char *path, const char *interface, const char *member) {
        int r = sd_bus_message_new_method_call(bus, ret, CH_BUS_NAME, path, interface, member);
        if (r < 0)
                fprintf(stderr, "%s: Cannot build the %s call: %s\n", program, member, strerror(-r));
        return r;
}

int finish_output(void) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "%s: Failed to write the output: %s\n", program, strerror(errno));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

/* --- main ---------------------------------------------------------------------------------- */

static const Verb verbs[] = {
        { "get", verb_get },
        { "set", verb_set },
        { "del", verb_del },
        { "incr", verb_incr },
        { "keys", verb_keys },
        { "ttl", verb_ttl },
        { "store", verb_store },
        { "emit", verb_emit },
        { "send", verb_send },
        { "monitor", verb_monitor },
        { "request", verb_request },
        { "workers", verb_workers },
        { "wait-workers", verb_wait_workers },
        { "stats", verb_stats },
        { "lock", verb_lock },
        { "locks", verb_locks },
};

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
        r = -1;
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                if (strcmp(verb, verbs[i].name) == 0) {
                        r = verbs[i].run(argc, argv);
                        break;
                }
        if (r < 0) {
                fprintf(stderr, "%s: unknown command '%s' (see --help).\n", program, verb);
                r = EXIT_FAILURE;
        }
        free(ns_path);
        return r;
}
