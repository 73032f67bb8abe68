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
#include <unistd.h>

#include "clusterhub/ch-runtime.h"
#include "config.h"
#include "hubctl.h"

BusKind arg_bus = BUS_USER;
const char *arg_address;
static ChTransport arg_transport; /* CH_TRANSPORT_DEFAULT: $CLUSTERHUB_TRANSPORT, else auto */
static const char *used_address; /* the hub's private socket ("unix:path=...") when on it */
const char *arg_ns = DEFAULT_NAMESPACE;
bool arg_ns_set;
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
               "  stats                   Show the hub's counters\n"
               "  namespaces              List the namespaces\n"
               "  save                    Write the store to disk now (--data-dir)\n"
               "  dump [--ns=NAME]        Write every key (types, values, TTLs) as one JSON document\n"
               "  restore [--replace] [--from=NAME] [FILE|-]\n"
               "                          Write the keys of a dump back\n\n"
               "  help [COMMAND]          Show this help, or the help of COMMAND (help store METHOD:\n"
               "                          what a Store1 method does)\n\n"
               "Lock commands:\n"
               "  lock [--timeout=DURATION] [--shared] [--nonblock] [--lease=DURATION] NAME -- COMMAND [ARGS...]\n"
               "                          Run COMMAND while holding the cluster-wide lock NAME\n"
               "                          (without COMMAND: take it with --lease, print its token)\n"
               "  unlock NAME TOKEN       Release a lock taken without a command\n"
               "  locks                   List held and awaited locks\n\n"
               "Options:\n"
               "  -h --help           Show this help\n"
               "     --version        Show the version\n"
               "     --user           Connect to the user (session) bus (default)\n"
               "     --system         Connect to the system bus\n"
               "     --address=ADDR   Connect to the bus at ADDR\n"
               "     --transport=auto|bus|private\n"
               "                      The hub's private socket or the bus (default auto)\n"
               "     --ns=NAME        Namespace (default: \"" DEFAULT_NAMESPACE "\")\n\n"
               "Commands that print take --json (one JSON document; monitor: one per line).\n"
               "Values: TEXT (a string), s:TEXT, x:42, i:7, u:7, t:7, d:1.5, b:true, or JSON\n"
               "({\"a\":1} is a{sv}, [1,2] is av).\n"
               "Exit status: 0 ok, 1 error, 2 usage, 3 not found, 4 cannot reach the hub.\n"
               "See hubctl help COMMAND, hubctl COMMAND --help, and hubctl(1).\n",
               program);
}

/* --- helpers ----------------------------------------------------------------------------- */

static int failure_status;

void note_failure(int status) {
        if (status == 0 || failure_status == 0)
                failure_status = status;
}

/* The bus hubctl talks to, for messages: its name and the address it uses. */
static const char *bus_name(void) {
        return arg_bus == BUS_USER ? "the user bus" : arg_bus == BUS_SYSTEM ? "the system bus" : "the bus";
}

static const char *bus_address(char *buf, size_t size) {
        const char *a, *x;

        switch (arg_bus) {
        case BUS_USER:
                if ((a = getenv("DBUS_SESSION_BUS_ADDRESS")))
                        return a;
                if (!(x = getenv("XDG_RUNTIME_DIR")))
                        return NULL;
                snprintf(buf, size, "unix:path=%s/bus", x);
                return buf;
        case BUS_SYSTEM:
                a = getenv("DBUS_SYSTEM_BUS_ADDRESS");
                return a ? a : "unix:path=/run/dbus/system_bus_socket";
        default:
                return arg_address;
        }
}

/* How to get a hub (or a bus) where hubctl looks for it. */
static void print_fix(bool bus_missing) {
        if (arg_bus == BUS_SYSTEM)
                fprintf(stderr, "  Start it with: systemctl start clusterhubd.service%s\n",
                        bus_missing ? " (and the system bus: systemctl start dbus.service)" : "");
        else if (arg_bus == BUS_USER)
                fprintf(stderr, "  Start a hub with ./scripts/run-hub (or systemctl --user start clusterhubd.service) and\n"
                                "  paste the export DBUS_SESSION_BUS_ADDRESS=... line it prints, or point\n"
                                "  DBUS_SESSION_BUS_ADDRESS (or --address=) at the bus the hub is on.\n");
        else
                fprintf(stderr, "  Check --address=, or start a hub there: clusterhubd --address=%s\n", arg_address);
}

static bool is_unreachable(const sd_bus_error *e, int r) {
        if (sd_bus_error_is_set(e))
                return sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
                       sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER) ||
                       sd_bus_error_has_name(e, SD_BUS_ERROR_DISCONNECTED);
        return r == -ECONNRESET || r == -ENOTCONN || r == -ECONNREFUSED || r == -EPIPE || r == -ESHUTDOWN;
}

int log_bus_error(const char *what, const sd_bus_error *e, int r) {
        int status = EXIT_FAILURE;
        char buf[512];

        if (is_unreachable(e, r)) {
                const char *a = bus_address(buf, sizeof(buf));
                if (sd_bus_error_is_set(e) && !sd_bus_error_has_name(e, SD_BUS_ERROR_DISCONNECTED))
                        fprintf(stderr, "%s: %s: No hub on %s (%s): nobody owns %s there.\n", program, what, bus_name(),
                                a ? a : "?", CH_BUS_NAME);
                else if (used_address)
                        fprintf(stderr, "%s: %s: Lost the connection to the hub's private socket (%s): %s\n", program,
                                what, used_address, sd_bus_error_is_set(e) ? e->message : strerror(-r));
                else
                        fprintf(stderr, "%s: %s: Lost the connection to %s (%s): %s\n", program, what, bus_name(),
                                a ? a : "?", sd_bus_error_is_set(e) ? e->message : strerror(-r));
                print_fix(false);
                status = EXIT_UNREACHABLE;
        } else if (sd_bus_error_is_set(e)) {
                fprintf(stderr, "%s: %s: %s: %s\n", program, what, e->name, e->message ? e->message : "");
                if (sd_bus_error_has_name(e, CH_ERROR_NO_SUCH_KEY) || sd_bus_error_has_name(e, CH_ERROR_NO_SUCH_NAMESPACE))
                        status = EXIT_NOT_FOUND;
        } else
                fprintf(stderr, "%s: %s: %s\n", program, what, strerror(r < 0 ? -r : r));
        note_failure(status);
        return status;
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

bool namespace_name_ok(const char *s) {
        if (!*s || strlen(s) > 255)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

/* Is A a D-Bus address sd-bus can use: TRANSPORT:KEY=VALUE,... (alternatives separated by ';')? */
static bool address_ok(const char *a) {
        static const char *const transports[] = { "unix:", "tcp:", "unixexec:", "x-machine-unix:", "x-machine-exec:", "vsock:" };
        bool any = false;

        for (const char *p = a; *p;) {
                size_t l = strcspn(p, ";");
                bool known = false;
                for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++)
                        if (strncmp(p, transports[i], strlen(transports[i])) == 0 && strlen(transports[i]) < l)
                                known = true;
                if (!known)
                        return false;
                any = true;
                p += l;
                if (*p == ';')
                        p++;
        }
        return any;
}

/* Was the private transport asked for (or a bad $CLUSTERHUB_TRANSPORT given)?  Then the
 * library's message, which names the socket, is the one to print. */
static bool private_asked(void) {
        const char *e = getenv("CLUSTERHUB_TRANSPORT");
        ChTransport t = arg_transport;

        if (t == CH_TRANSPORT_DEFAULT && e && *e && ch_transport_from_string(e, &t) < 0)
                return true;
        return t == CH_TRANSPORT_PRIVATE;
}

static ChClientOptions client_options(ChTransport transport) {
        return (ChClientOptions) {
                .bus_type = arg_bus == BUS_SYSTEM ? CH_BUS_SYSTEM : arg_bus == BUS_USER ? CH_BUS_USER : CH_BUS_ADDRESS,
                .address = arg_bus == BUS_ADDRESS ? arg_address : NULL,
                .transport = transport,
        };
}

const char *socket_address(void) {
        return used_address;
}

int reconnect_bus(sd_bus **ret, bool private_only) {
        ChClientOptions o = client_options(private_only ? CH_TRANSPORT_PRIVATE : arg_transport);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        used_address = NULL; /* it was the closed connection's */
        r = ch_bus_open(&bus, &o, &error);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        if (r > 0)
                (void) sd_bus_get_address(bus, &used_address);
        *ret = bus;
        return r;
}

int connect_bus(sd_bus **ret) {
        ChClientOptions o = client_options(arg_transport);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        char buf[512];
        const char *a = bus_address(buf, sizeof(buf));
        int r;

        if (a && !address_ok(a)) {
                fprintf(stderr, "%s: Cannot connect to %s: '%s'%s is not a D-Bus address (e.g. unix:path=/run/user/%u/bus).\n",
                        program, bus_name(), a,
                        arg_bus == BUS_USER ? " (DBUS_SESSION_BUS_ADDRESS)" : arg_bus == BUS_SYSTEM ? " (DBUS_SYSTEM_BUS_ADDRESS)" : "",
                        (unsigned) getuid());
                print_fix(true);
                note_failure(EXIT_UNREACHABLE);
                return -EINVAL;
        }
        /* the library's choice: the hub's private socket or the bus (ch-runtime.h) */
        r = ch_bus_open(&bus, &o, &error);
        if (r > 0)
                (void) sd_bus_get_address(bus, &used_address);
        if (r < 0) {
                if (private_asked())
                        fprintf(stderr, "%s: %s.\n", program, error.message ? error.message : strerror(-r));
                else if (arg_bus == BUS_USER && !a)
                        fprintf(stderr, "%s: Cannot connect to the user bus: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set.\n",
                                program);
                else if (r == -EINVAL)
                        fprintf(stderr, "%s: Cannot connect to %s: '%s' is not a D-Bus address (e.g. unix:path=/run/user/1000/bus).\n",
                                program, bus_name(), a ? a : "");
                else
                        fprintf(stderr, "%s: Cannot connect to %s at %s: %s.\n", program, bus_name(), a ? a : "?",
                                strerror(-r));
                sd_bus_error_free(&error);
                print_fix(true);
                note_failure(EXIT_UNREACHABLE);
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

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int print_sorted_strings(sd_bus_message *reply, const char *what, bool json) {
        const char **items = NULL;
        size_t n = 0, allocated = 0;
        const char *s;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "s");
        while (r >= 0 && (r = sd_bus_message_read_basic(reply, 's', &s)) > 0) {
                if (n == allocated) {
                        const char **grown = reallocarray(items, allocated ? allocated * 2 : 64, sizeof(char *));
                        if (!grown) {
                                r = -ENOMEM;
                                break;
                        }
                        items = grown;
                        allocated = allocated ? allocated * 2 : 64;
                }
                items[n++] = s; /* borrowed from REPLY */
        }
        if (r < 0) {
                fprintf(stderr, "%s: Bad %s reply: %s\n", program, what, strerror(-r));
                free(items);
                return r;
        }
        if (n > 0)
                qsort(items, n, sizeof(char *), cmp_str);
        if (json)
                json_string_array(stdout, (char **) items, n);
        else
                for (size_t i = 0; i < n; i++)
                        printf("%s\n", items[i]);
        free(items);
        return 0;
}

void json_string_array(FILE *f, char **strv, size_t n) {
        fputc('[', f);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        fputc(',', f);
                json_string(f, strv[i]);
        }
        fputs("]\n", f);
}

/* --- subcommand arguments ------------------------------------------------------------------ */

static bool looks_like_number(const char *s) {
        return s[0] == '-' && ((s[1] >= '0' && s[1] <= '9') || (s[1] == '.' && s[2] >= '0' && s[2] <= '9'));
}

static int parse_failed(void) {
        note_failure(EXIT_USAGE);
        return PARSE_FAILED;
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
                                return parse_failed();
                        }
                        if (eq && !o->has_arg) {
                                fprintf(stderr, "%s %s: option '--%s' takes no value.\n", program, argv[0], o->name);
                                return parse_failed();
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
                                return parse_failed();
                        }
                        value = a[2] ? a + 2 : NULL;
                }
                if (o->has_arg && !value) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "%s %s: option '%s' needs a value.\n", program, argv[0], a);
                                return parse_failed();
                        }
                        value = argv[++i];
                }
                r = handle(o, value, userdata);
                if (r < 0)
                        return parse_failed();
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
        note_failure(EXIT_USAGE);
        return -EINVAL;
}

int parse_duration_option(const char *name, const char *value, uint64_t *ret) {
        if (parse_duration_ms(value, ret) < 0) {
                fprintf(stderr, "%s: Invalid --%s '%s' (e.g. 500ms, 10s, 5min; a bare number is seconds).\n", program,
                        name, value);
                note_failure(EXIT_USAGE);
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

static int verb_help(int argc, char *argv[]);

static const Verb verbs[] = {
        { "help", verb_help },
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
        { "namespaces", verb_namespaces },
        { "save", verb_save },
        { "lock", verb_lock },
        { "locks", verb_locks },
        { "unlock", verb_unlock },
        { "dump", verb_dump },
        { "restore", verb_restore },
};

/* hubctl help [COMMAND [METHOD]]: hubctl --help, hubctl COMMAND --help, hubctl store METHOD --help. */
static int verb_help(int argc, char *argv[]) {
        if (argc <= 1) {
                help_main();
                return finish_output();
        }
        if (argc == 3 && strcmp(argv[1], "store") == 0)
                return store_method_help(argv[2]);
        if (argc > 2) {
                fprintf(stderr, "%s help: too many arguments; usage: %s help [COMMAND], %s help store METHOD\n", program,
                        program, program);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                if (strcmp(argv[1], verbs[i].name) == 0 && verbs[i].run != verb_help)
                        return verbs[i].run(2, (char *[]) { argv[1], (char *) "--help", NULL });
        fprintf(stderr, "%s help: unknown command '%s' (see %s --help).\n", program, argv[1], program);
        return EXIT_USAGE;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_USER, ARG_SYSTEM, ARG_ADDRESS, ARG_NS, ARG_TRANSPORT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "user", no_argument, NULL, ARG_USER },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "ns", required_argument, NULL, ARG_NS },
                { "transport", required_argument, NULL, ARG_TRANSPORT },
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
                        arg_ns_set = true;
                        break;
                case ARG_TRANSPORT:
                        if (ch_transport_from_string(optarg, &arg_transport) < 0) {
                                fprintf(stderr, "%s: --transport=%s: not one of auto, bus, private.\n", program, optarg);
                                return EXIT_USAGE;
                        }
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (!namespace_name_ok(arg_ns)) {
                fprintf(stderr, "%s: '%s' is not a namespace name: 1 to 255 characters of [A-Za-z0-9_].\n", program, arg_ns);
                return EXIT_USAGE;
        }
        if (optind >= argc) {
                fprintf(stderr, "%s: a command is needed (see --help).\n", program);
                return EXIT_USAGE;
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
                r = EXIT_USAGE;
        } else if (r == EXIT_FAILURE && failure_status != 0)
                r = failure_status; /* e.g. NoSuchKey: 3, no hub: 4 */
        free(ns_path);
        return r;
}
