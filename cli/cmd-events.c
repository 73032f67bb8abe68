/* SPDX-License-Identifier: MIT */
/* hubctl emit, send, monitor: org.clusterhub.Events1, and following the hub's signals live. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hubctl.h"

enum { OPT_HELP, OPT_JSON, OPT_COUNT, OPT_NO_WORKERS, OPT_NO_KEYS, OPT_NO_EVENTS, OPT_NO_WAIT, OPT_TIMEOUT, OPT_STDIN,
       OPT_BYTES };

typedef struct EventArgs {
        void (*help)(void);
        bool json;
        uint64_t count; /* monitor: stop after that many lines; 0 = no limit */
        bool no_workers, no_keys, no_events;
        bool no_wait;
        uint64_t timeout_ms; /* send: NO_LIMIT = as long as the hub keeps the event queued */
        ValueSource source;
} EventArgs;

static int handle_option(const Option *o, const char *arg, void *userdata) {
        EventArgs *a = userdata;
        char *end;

        switch (o->id) {
        case OPT_HELP:
                a->help();
                return 1;
        case OPT_JSON:
                a->json = true;
                break;
        case OPT_COUNT:
                errno = 0;
                a->count = strtoull(arg, &end, 10);
                if (errno || end == arg || *end || arg[0] == '-') {
                        fprintf(stderr, "%s: Invalid --count '%s'.\n", program, arg);
                        return -EINVAL;
                }
                break;
        case OPT_NO_WORKERS:
                a->no_workers = true;
                break;
        case OPT_NO_KEYS:
                a->no_keys = true;
                break;
        case OPT_NO_EVENTS:
                a->no_events = true;
                break;
        case OPT_NO_WAIT:
                a->no_wait = true;
                break;
        case OPT_STDIN:
                a->source.from_stdin = true;
                break;
        case OPT_BYTES:
                a->source.bytes = true;
                break;
        case OPT_TIMEOUT:
                if (parse_duration_option("timeout", arg, &a->timeout_ms) < 0)
                        return -EINVAL;
                if (a->timeout_ms == 0) {
                        fprintf(stderr, "%s: --timeout must be more than 0.\n", program);
                        return -EINVAL;
                }
                break;
        }
        return 0;
}

#define PAYLOAD_OPTIONS { "stdin", 'x', false, OPT_STDIN }, { "bytes", 0, false, OPT_BYTES }
static const Option emit_options[] = {
        { "help", 'h', false, OPT_HELP },
        { "json", 0, false, OPT_JSON },
        { "no-wait", 0, false, OPT_NO_WAIT },
        PAYLOAD_OPTIONS,
        {}
};
static const Option send_options[] = {
        { "help", 'h', false, OPT_HELP },
        { "json", 0, false, OPT_JSON },
        { "no-wait", 0, false, OPT_NO_WAIT },
        { "timeout", 0, true, OPT_TIMEOUT },
        PAYLOAD_OPTIONS,
        {}
};

/* --- emit, send ------------------------------------------------------------------------------ */

static void help_emit(void) {
        printf("%s emit EVENT [VALUE]\n\n"
               "Broadcast EVENT with VALUE (Events1.Emit) to every process that subscribed to it in\n"
               "the namespace. VALUE is typed as for 'set' (TEXT, s:TEXT, x:42, d:1.5, b:true, JSON);\n"
               "without VALUE the payload is the empty string.\n\n"
               "Options:\n"
               "     --no-wait  Do not wait for the hub's acknowledgement (NO_REPLY_EXPECTED)\n"
               "     --json     Print null once it is sent (Emit returns nothing)\n"
               "  -x --stdin    Read VALUE from standard input as it is, a string\n"
               "     --bytes    Send VALUE (or standard input) as raw bytes, a D-Bus 'ay'\n"
               "  -h --help     Show this help\n",
               program);
}

static void help_send(void) {
        printf("%s send WORKER EVENT [VALUE]\n\n"
               "Send EVENT with VALUE to the worker WORKER only (Events1.EmitTo). A worker that is not\n"
               "registered yet gets it when it registers (the hub queues a bounded number of events\n"
               "for a bounded time, clusterhubd --max-queue-age-ms, then reports WorkerUnavailable).\n"
               "hubctl waits until the event is delivered.\n\n"
               "Options:\n"
               "     --timeout=DURATION  Stop waiting after DURATION (exit 1; the hub may still deliver)\n"
               "     --no-wait           Do not wait for delivery or errors (NO_REPLY_EXPECTED)\n"
               "     --json              Print null once it is delivered (EmitTo returns nothing)\n"
               "  -x --stdin             Read VALUE from standard input as it is, a string\n"
               "     --bytes             Send VALUE (or standard input) as raw bytes, a D-Bus 'ay'\n"
               "  -h --help              Show this help\n",
               program);
}

static int emit(int argc, char *argv[], bool to) {
        EventArgs a = { .help = to ? help_send : help_emit, .timeout_ms = NO_LIMIT };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        int n, r, first = to ? 2 : 1, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, to ? send_options : emit_options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional(argv[0], n, first, a.source.from_stdin ? first : first + 1,
                             to ? "WORKER EVENT [VALUE]" : "EVENT [VALUE]") < 0)
                return EXIT_USAGE;
        if (connect_bus(&bus) < 0)
                return EXIT_FAILURE;
        r = new_call(bus, &m, ns_path, CH_EVENTS1_INTERFACE, to ? "EmitTo" : "Emit");
        if (r >= 0 && to)
                r = value_append_string(m, "worker id", argv[1]);
        if (r >= 0)
                r = value_append_string(m, "event name", argv[first]);
        if (r >= 0)
                r = n > first || a.source.from_stdin ? value_append_source(m, &a.source, argv[first + 1])
                                                      : sd_bus_message_append(m, "v", "s", "");
        if (r >= 0 && a.no_wait) {
                r = sd_bus_message_set_expect_reply(m, false);
                if (r >= 0)
                        r = sd_bus_send(bus, m, NULL);
                if (r < 0)
                        fprintf(stderr, "%s: Cannot send %s: %s\n", program, sd_bus_message_get_member(m), strerror(-r));
                else
                        ret = EXIT_SUCCESS;
        } else if (r >= 0) {
                /* EmitTo replies once the event is delivered; the hub bounds how long */
                uint64_t usec = !to ? 0 : a.timeout_ms == NO_LIMIT || a.timeout_ms > UINT64_MAX / 2000 ? UINT64_MAX : a.timeout_ms * 1000;
                if (call_and_report(bus, m, usec, NULL) >= 0)
                        ret = EXIT_SUCCESS;
        }
        if (ret == EXIT_SUCCESS && a.json) {
                puts("null");
                ret = finish_output();
        }
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}

int verb_emit(int argc, char *argv[]) {
        return emit(argc, argv, false);
}

int verb_send(int argc, char *argv[]) {
        return emit(argc, argv, true);
}

/* --- monitor --------------------------------------------------------------------------------- */

static void help_monitor(void) {
        printf("%s monitor [OPTIONS...] [PATTERN...]\n\n"
               "Follow the namespace live until Ctrl-C, one line per signal:\n"
               "  event EVENT ORIGIN VALUE      (Events1.Event)\n"
               "  key KEY COMMAND               (Store1.KeyChanged)\n"
               "  joined WORKER UNIQUE-NAME     (Hub1.WorkerJoined)\n"
               "  left WORKER REASON            (Hub1.WorkerLeft)\n"
               "PATTERN limits events and key changes, filtered by the bus: NAME is that event (or\n"
               "key) only (arg0='NAME'), NAME.* or NAME. the dotted family NAME, NAME.x, NAME.x.y\n"
               "(arg0namespace='NAME'). Without PATTERN everything is shown.\n\n"
               "Options:\n"
               "     --json         One JSON object per line\n"
               "  -n --count=N      Exit after N lines\n"
               "     --no-events    Do not show events\n"
               "     --no-keys      Do not show key changes\n"
               "     --no-workers   Do not show workers joining and leaving\n"
               "  -h --help         Show this help\n",
               program);
}

typedef struct Monitor {
        EventArgs *args;
        char **patterns;        /* argv[1..n]: arg0 filters */
        int n_patterns;
        uint64_t lines;
        int error;
        char *hub_owner;        /* the unique name that owns the hub's name now, or NULL */
} Monitor;

/* A signal is the hub's only when it comes from the current owner of its name: a rule's
 * sender='org.clusterhub.Hub1' does not stop a signal sent to us directly, and while no hub
 * is on the bus anyone could send one. */
static bool from_hub(const Monitor *mon, sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);
        return mon->hub_owner && sender && strcmp(sender, mon->hub_owner) == 0;
}

static void set_hub_owner(Monitor *mon, const char *owner) {
        free(mon->hub_owner);
        mon->hub_owner = owner && *owner ? strdup(owner) : NULL;
}

/* NameOwnerChanged(name, old, new) for the hub's name; only the bus itself may say so. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        const char *name, *old_owner, *new_owner, *sender = sd_bus_message_get_sender(m);

        if (!sender || strcmp(sender, "org.freedesktop.DBus") != 0)
                return 0;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || strcmp(name, CH_BUS_NAME) != 0)
                return 0;
        set_hub_owner(mon, new_owner);
        return 0;
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
        stop_requested = 1;
}

/* Appends a match value, quoted as the D-Bus match rule syntax wants it ('\'' for '). */
static void append_quoted(FILE *f, const char *s) {
        fputc('\'', f);
        for (; *s; s++)
                if (*s == '\'')
                        fputs("'\\''", f);
                else
                        fputc(*s, f);
        fputc('\'', f);
}

static char *match_rule(const char *interface, const char *member, const char *path, const char *pattern) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        fprintf(f, "type='signal',sender='%s',interface='%s',member='%s',path=", CH_BUS_NAME, interface, member);
        append_quoted(f, path);
        if (pattern) {
                size_t l = strlen(pattern);
                if (l >= 2 && strcmp(pattern + l - 2, ".*") == 0) {
                        char *ns = strndup(pattern, l - 2);
                        fputs(",arg0namespace=", f);
                        append_quoted(f, ns ? ns : "");
                        free(ns);
                } else if (l >= 1 && pattern[l - 1] == '.') {
                        char *ns = strndup(pattern, l - 1);
                        fputs(",arg0namespace=", f);
                        append_quoted(f, ns ? ns : "");
                        free(ns);
                } else {
                        fputs(",arg0=", f);
                        append_quoted(f, pattern);
                }
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static void monitor_line_done(Monitor *mon) {
        fputc('\n', stdout);
        fflush(stdout);
        mon->lines++;
        if (mon->args->count && mon->lines >= mon->args->count)
                stop_requested = 1;
}

static int on_event(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        const char *event, *origin;
        int r;

        if (!from_hub(mon, m))
                return 0;
        r = sd_bus_message_read(m, "ss", &event, &origin);
        if (r < 0)
                return 0;
        if (mon->args->json) {
                fputs("{\"type\":\"event\",\"namespace\":", stdout);
                json_string(stdout, arg_ns);
                fputs(",\"event\":", stdout);
                json_string(stdout, event);
                fputs(",\"origin\":", stdout);
                json_string(stdout, origin);
                fputs(",\"value\":", stdout);
                r = value_print(stdout, m, VALUE_JSON);
                fputc('}', stdout);
        } else {
                printf("event %s %s ", event, origin);
                r = value_print(stdout, m, VALUE_TYPED);
        }
        if (r < 0)
                mon->error = r;
        monitor_line_done(mon);
        return 0;
}

/* KeyChanged(key, command), WorkerJoined(id, unique_name), WorkerLeft(id, reason): two strings. */
static int on_two_strings(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        const char *member = sd_bus_message_get_member(m), *a, *b, *type, *na, *nb;

        if (!from_hub(mon, m) || sd_bus_message_read(m, "ss", &a, &b) < 0)
                return 0;
        if (strcmp(member, "KeyChanged") == 0) {
                type = "key";
                na = "key";
                nb = "command";
        } else if (strcmp(member, "WorkerJoined") == 0) {
                type = "joined";
                na = "worker";
                nb = "unique_name";
        } else {
                type = "left";
                na = "worker";
                nb = "reason";
        }
        if (mon->args->json) {
                printf("{\"type\":\"%s\",", type);
                if (strcmp(type, "key") == 0) {
                        fputs("\"namespace\":", stdout);
                        json_string(stdout, arg_ns);
                        fputc(',', stdout);
                }
                printf("\"%s\":", na);
                json_string(stdout, a);
                printf(",\"%s\":", nb);
                json_string(stdout, b);
                fputc('}', stdout);
        } else
                printf("%s %s %s", type, a, b);
        monitor_line_done(mon);
        return 0;
}

static int add_match(sd_bus *bus, const char *interface, const char *member, const char *path, const char *pattern,
                     sd_bus_message_handler_t handler, Monitor *mon) {
        char *rule = match_rule(interface, member, path, pattern);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (!rule)
                return -ENOMEM;
        r = sd_bus_add_match(bus, NULL, rule, handler, mon);
        if (r < 0)
                fprintf(stderr, "%s: Cannot subscribe with the match %s: %s\n", program, rule, strerror(-r));
        free(rule);
        sd_bus_error_free(&e);
        return r;
}

/* Who the hub is, and its signals that MON shows: on each new connection.  0 or -errno (said). */
static int monitor_subscribe(sd_bus *bus, Monitor *mon) {
        const EventArgs *a = mon->args;
        int r;

        /* who the hub is, before any of its signals can arrive, and whenever that changes */
        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                "NameOwnerChanged", on_owner_changed, mon);
        if (r < 0) {
                fprintf(stderr, "%s: Cannot watch the owner of %s: %s\n", program, CH_BUS_NAME, strerror(-r));
                return r;
        }
        /* arg0 filters apply to events and key changes; one match per pattern (the bus ORs them) */
        for (int i = 0; r >= 0 && i < (mon->n_patterns ? mon->n_patterns : 1); i++) {
                const char *pattern = mon->n_patterns ? mon->patterns[i] : NULL;
                if (!a->no_events)
                        r = add_match(bus, CH_EVENTS1_INTERFACE, "Event", ns_path, pattern, on_event, mon);
                if (r >= 0 && !a->no_keys)
                        r = add_match(bus, CH_STORE1_INTERFACE, "KeyChanged", ns_path, pattern, on_two_strings, mon);
        }
        if (r >= 0 && !a->no_workers)
                r = add_match(bus, CH_HUB1_INTERFACE, "WorkerJoined", CH_HUB_PATH, NULL, on_two_strings, mon);
        if (r >= 0 && !a->no_workers)
                r = add_match(bus, CH_HUB1_INTERFACE, "WorkerLeft", CH_HUB_PATH, NULL, on_two_strings, mon);
        return r;
}

/* The hub's owner now (signals count once it is known); false when nobody owns its name. */
static bool monitor_find_hub(sd_bus *bus, Monitor *mon) {
        sd_bus_message *reply = NULL;
        const char *owner = NULL;

        if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetNameOwner", NULL, &reply, "s", CH_BUS_NAME) >= 0 &&
            sd_bus_message_read(reply, "s", &owner) >= 0 && !mon->hub_owner)
                set_hub_owner(mon, owner);
        sd_bus_message_unref(reply);
        return mon->hub_owner != NULL;
}

/* Shows signals until asked to stop, a signal cannot be shown, or the connection ends (-errno). */
static int monitor_run(sd_bus *bus, Monitor *mon) {
        int r = 0;

        while (!stop_requested && mon->error >= 0) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0 && r != -EINTR)
                        return r;
        }
        return 0;
}

/* As the library's transport does (bindings/runtime/client.c): 50 ms, doubling up to 1 s; in
 * auto mode the bus is tried too after that many attempts on the socket. */
#define RECONNECT_FIRST_MS 50
#define RECONNECT_MAX_MS 1000
#define RECONNECT_ATTEMPTS_BEFORE_BUS 8

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        (void) nanosleep(&ts, NULL); /* SIGINT ends it early: the caller checks stop_requested */
}

/* The hub's private socket closed (the hub exited or restarted): connect again until a hub
 * answers, subscribe again, and say so.  1 when monitoring again, 0 when asked to stop, -errno. */
static int monitor_reconnect(sd_bus **bus, Monitor *mon, const char *address, int lost) {
        bool private_only = true;
        unsigned delay = RECONNECT_FIRST_MS;
        int r;

        fprintf(stderr, "%s monitor: The hub went away (%s: %s); reconnecting.\n", program, address, strerror(-lost));
        fflush(stderr);
        set_hub_owner(mon, NULL);
        for (unsigned attempt = 1; !stop_requested; attempt++) {
                sleep_ms(delay);
                if (stop_requested)
                        break;
                delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
                /* --transport=private (or its variable) stays on the socket: reconnect_bus()
                 * then asks for it anyway */
                if (attempt > RECONNECT_ATTEMPTS_BEFORE_BUS)
                        private_only = false;
                r = reconnect_bus(bus, private_only);
                if (r < 0)
                        continue;
                r = monitor_subscribe(*bus, mon);
                if (r < 0) {
                        *bus = sd_bus_flush_close_unref(*bus);
                        if (r == -ENOMEM)
                                return r;
                        continue;
                }
                if (!monitor_find_hub(*bus, mon) && socket_address()) {
                        /* a socket without a hub behind it: the next try */
                        *bus = sd_bus_flush_close_unref(*bus);
                        continue;
                }
                if (socket_address())
                        fprintf(stderr, "%s monitor: The hub is back on %s; monitoring again.\n", program, socket_address());
                else
                        fprintf(stderr, "%s monitor: The hub's socket is not back; monitoring on %s instead.\n", program,
                                arg_bus == BUS_SYSTEM ? "the system bus" : arg_bus == BUS_USER ? "the user bus" : arg_address);
                fflush(stderr);
                return 1;
        }
        return 0;
}

int verb_monitor(int argc, char *argv[]) {
        static const Option options[] = {
                { "help", 'h', false, OPT_HELP },
                { "json", 0, false, OPT_JSON },
                { "count", 'n', true, OPT_COUNT },
                { "no-workers", 0, false, OPT_NO_WORKERS },
                { "no-keys", 0, false, OPT_NO_KEYS },
                { "no-events", 0, false, OPT_NO_EVENTS },
                {}
        };
        EventArgs a = { .help = help_monitor };
        Monitor mon = { .args = &a };
        struct sigaction sa = { .sa_handler = on_stop_signal };
        sd_bus *bus = NULL;
        int n, r = 0;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        for (int i = 1; i <= n; i++)
                if (!argv[i][0] || strcmp(argv[i], ".*") == 0 || strcmp(argv[i], ".") == 0) {
                        fprintf(stderr, "%s monitor: '%s' is not a pattern (an event name, or NAME.* for a family).\n",
                                program, argv[i]);
                        return EXIT_FAILURE;
                }
        mon.patterns = argv + 1;
        mon.n_patterns = n;
        if (connect_bus(&bus) < 0)
                return EXIT_FAILURE;
        if (monitor_subscribe(bus, &mon) < 0) {
                sd_bus_flush_close_unref(bus);
                free(mon.hub_owner);
                return EXIT_FAILURE;
        }
        /* the matches are in place (sd_bus_add_match waits for the bus to confirm) */
        fprintf(stderr, "Monitoring namespace '%s'%s. Press Ctrl-C to stop.\n", arg_ns,
                n ? " (filtered)" : "");
        /* signals come once a hub is there; say so if none is yet, as the other commands would */
        if (!monitor_find_hub(bus, &mon))
                fprintf(stderr, "No hub on the bus yet (nobody owns %s): waiting for one; ./scripts/run-hub starts one.\n",
                        CH_BUS_NAME);
        fflush(stderr);

        sigemptyset(&sa.sa_mask);
        (void) sigaction(SIGINT, &sa, NULL);
        (void) sigaction(SIGTERM, &sa, NULL);
        (void) sigaction(SIGPIPE, &sa, NULL);
        for (;;) {
                _cleanup_free_ char *address = NULL;

                r = monitor_run(bus, &mon);
                /* on the bus the hub comes and goes as NameOwnerChanged says; the private socket
                 * is the hub's own, and closes with it */
                if (r >= 0 || stop_requested || !socket_address())
                        break;
                address = strdup(socket_address());
                bus = sd_bus_flush_close_unref(bus);
                r = address ? monitor_reconnect(&bus, &mon, address, r) : -ENOMEM;
                if (r <= 0)
                        break;
        }
        if (r < 0 && !stop_requested)
                fprintf(stderr, "%s: Lost the bus connection: %s\n", program, strerror(-r));
        sd_bus_flush_close_unref(bus);
        free(mon.hub_owner);
        if (mon.error < 0) {
                fprintf(stderr, "%s: Cannot show a signal: %s\n", program, strerror(-mon.error));
                return EXIT_FAILURE;
        }
        return r < 0 && !stop_requested ? EXIT_FAILURE : finish_output();
}
