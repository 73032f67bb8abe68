/* SPDX-License-Identifier: MIT */
/* hubctl request (Requests1), workers, wait-workers, stats (Hub1). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hubctl.h"

enum { OPT_HELP, OPT_JSON, OPT_RAW, OPT_TO, OPT_TIMEOUT, OPT_STDIN, OPT_BYTES };

typedef struct HubArgs {
        void (*help)(void);
        bool json;
        ValueFormat format;
        const char *to;
        uint64_t timeout_ms; /* 0: the hub's default */
        ValueSource source;
} HubArgs;

static int handle_option(const Option *o, const char *arg, void *userdata) {
        HubArgs *a = userdata;

        switch (o->id) {
        case OPT_HELP:
                a->help();
                return 1;
        case OPT_JSON:
                a->json = true;
                a->format = VALUE_JSON;
                break;
        case OPT_RAW:
                if (!a->json)
                        a->format = VALUE_RAW;
                break;
        case OPT_TO:
                a->to = arg;
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
                if (a->timeout_ms == 0 || a->timeout_ms > UINT32_MAX) {
                        fprintf(stderr, "%s: --timeout must be more than 0 and at most %" PRIu32 " ms.\n", program,
                                UINT32_MAX);
                        return -EINVAL;
                }
                break;
        }
        return 0;
}

#define HELP_OPTION { "help", 'h', false, OPT_HELP }
#define JSON_OPTION { "json", 0, false, OPT_JSON }

/* The call's own timeout: the hub enforces TIMEOUT_MS, give its reply some slack to arrive. */
static uint64_t call_usec(uint64_t timeout_ms, uint64_t hub_default_ms) {
        return ((timeout_ms ? timeout_ms : hub_default_ms) + 5000) * 1000;
}

/* --- request --------------------------------------------------------------------------------- */

static void help_request(void) {
        printf("%s request [OPTIONS...] METHOD [VALUE]\n\n"
               "Call METHOD, served by a worker of the namespace (Requests1.Request), and print its\n"
               "reply as 'get' prints a value. VALUE is typed as for 'set'; without VALUE the payload\n"
               "is the empty string. Errors: NoHandler (nobody serves METHOD), Timeout, WorkerGone,\n"
               "WorkerUnavailable, or the handler's own error.\n\n"
               "Options:\n"
               "     --to=WORKER         Ask that worker (waiting for it to register), not any one\n"
               "     --timeout=DURATION  Give up after DURATION (default: the hub's, 10s)\n"
               "     --json              Print the reply as JSON\n"
               "  -r --raw               Print the reply without type prefix\n"
               "  -x --stdin             Read VALUE from standard input as it is, a string\n"
               "     --bytes             Send VALUE (or standard input) as raw bytes, a D-Bus 'ay'\n"
               "  -h --help              Show this help\n",
               program);
}

int verb_request(int argc, char *argv[]) {
        static const Option options[] = {
                HELP_OPTION, JSON_OPTION,
                { "raw", 'r', false, OPT_RAW },
                { "to", 0, true, OPT_TO },
                { "timeout", 0, true, OPT_TIMEOUT },
                { "stdin", 'x', false, OPT_STDIN },
                { "bytes", 0, false, OPT_BYTES },
                {}
        };
        HubArgs a = { .help = help_request, .format = VALUE_TYPED };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        int n, r, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("request", n, 1, a.source.from_stdin ? 1 : 2, "[--to=WORKER] [--timeout=DURATION] METHOD [VALUE]") < 0)
                return EXIT_USAGE;
        if (connect_bus(&bus) < 0)
                return EXIT_FAILURE;
        r = new_call(bus, &m, ns_path, CH_REQUESTS1_INTERFACE, "Request");
        if (r >= 0)
                r = value_append_string(m, "worker id", a.to ? a.to : "");
        if (r >= 0)
                r = value_append_string(m, "method name", argv[1]);
        if (r >= 0)
                r = n > 1 || a.source.from_stdin ? value_append_source(m, &a.source, argv[2])
                                                 : sd_bus_message_append(m, "v", "s", "");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && a.timeout_ms)
                r = sd_bus_message_append(m, "{sv}", "timeout_ms", "t", a.timeout_ms);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = call_and_report(bus, m, call_usec(a.timeout_ms, 10000), &reply);
        if (r >= 0) {
                r = value_print(stdout, reply, a.format);
                fputc('\n', stdout);
                ret = r < 0 ? EXIT_FAILURE : finish_output();
        }
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- workers --------------------------------------------------------------------------------- */

static void help_workers(void) {
        printf("%s workers [--json]\n\n"
               "List the registered workers (Hub1.ListWorkers) in order of registration: id, unique\n"
               "bus name, pid, systemd unit and the time it registered.\n\n"
               "Options:\n"
               "     --json     One JSON array of objects (id, unique_name, pid, unit, since_ms)\n"
               "  -h --help     Show this help\n",
               program);
}

typedef struct WorkerRow {
        char *id, *unique, *unit;
        uint32_t pid;
        uint64_t since_ms;
} WorkerRow;

static int read_details(sd_bus_message *reply, WorkerRow *w) {
        int r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key, *contents;
                char type;
                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, &type, &contents);
                if (r < 0)
                        return r;
                if (strcmp(key, "unit") == 0 && strcmp(contents, "s") == 0) {
                        const char *unit;
                        r = sd_bus_message_read(reply, "v", "s", &unit);
                        if (r >= 0 && !(w->unit = strdup(unit)))
                                r = -ENOMEM;
                } else if (strcmp(key, "since_ms") == 0 && strcmp(contents, "t") == 0)
                        r = sd_bus_message_read(reply, "v", "t", &w->since_ms);
                else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

static void format_time(uint64_t ms, char *buf, size_t size) {
        time_t t = ms / 1000;
        struct tm tm;
        if (ms == 0 || !localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, size, "-");
}

int verb_workers(int argc, char *argv[]) {
        static const Option options[] = { HELP_OPTION, JSON_OPTION, {} };
        HubArgs a = { .help = help_workers };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        WorkerRow *rows = NULL;
        size_t count = 0;
        int n, r, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("workers", n, 0, 0, "[--json]") < 0)
                return EXIT_FAILURE;
        if (connect_bus(&bus) < 0)
                return EXIT_FAILURE;
        r = new_call(bus, &m, CH_HUB_PATH, CH_HUB1_INTERFACE, "ListWorkers");
        if (r >= 0)
                r = call_and_report(bus, m, 0, &reply);
        if (r < 0)
                goto finish;
        r = sd_bus_message_enter_container(reply, 'a', "(ssua{sv})");
        while (r >= 0) {
                const char *id, *unique;
                WorkerRow w = {};
                r = sd_bus_message_enter_container(reply, 'r', "ssua{sv}");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "ssu", &id, &unique, &w.pid);
                if (r >= 0)
                        r = read_details(reply, &w);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0) {
                        WorkerRow *nr = realloc(rows, (count + 1) * sizeof(WorkerRow));
                        w.id = strdup(id);
                        w.unique = strdup(unique);
                        if (!nr || !w.id || !w.unique)
                                r = -ENOMEM;
                        if (nr)
                                rows = nr;
                }
                if (r < 0) {
                        free(w.id);
                        free(w.unique);
                        free(w.unit);
                        break;
                }
                rows[count++] = w;
        }
        if (r < 0) {
                fprintf(stderr, "%s: Bad ListWorkers reply: %s\n", program, strerror(-r));
                goto finish;
        }
        if (a.json) {
                fputc('[', stdout);
                for (size_t i = 0; i < count; i++) {
                        fputs(i ? ",{\"id\":" : "{\"id\":", stdout);
                        json_string(stdout, rows[i].id);
                        fputs(",\"unique_name\":", stdout);
                        json_string(stdout, rows[i].unique);
                        printf(",\"pid\":%" PRIu32 ",\"unit\":", rows[i].pid);
                        json_string(stdout, rows[i].unit ? rows[i].unit : "");
                        printf(",\"since_ms\":%" PRIu64 "}", rows[i].since_ms);
                }
                fputs("]\n", stdout);
        } else if (count == 0)
                printf("No workers.\n");
        else {
                int wi = 2, wu = 11, wn = 4;
                for (size_t i = 0; i < count; i++) {
                        if ((int) strlen(rows[i].id) > wi)
                                wi = strlen(rows[i].id);
                        if ((int) strlen(rows[i].unique) > wu)
                                wu = strlen(rows[i].unique);
                        if (rows[i].unit && (int) strlen(rows[i].unit) > wn)
                                wn = strlen(rows[i].unit);
                }
                printf("%-*s  %-*s  %7s  %-*s  %s\n", wi, "ID", wu, "UNIQUE NAME", "PID", wn, "UNIT", "SINCE");
                for (size_t i = 0; i < count; i++) {
                        char since[64];
                        format_time(rows[i].since_ms, since, sizeof(since));
                        printf("%-*s  %-*s  %7" PRIu32 "  %-*s  %s\n", wi, rows[i].id, wu, rows[i].unique, rows[i].pid,
                               wn, rows[i].unit && rows[i].unit[0] ? rows[i].unit : "-", since);
                }
        }
        ret = finish_output();
finish:
        for (size_t i = 0; i < count; i++) {
                free(rows[i].id);
                free(rows[i].unique);
                free(rows[i].unit);
        }
        free(rows);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- wait-workers ---------------------------------------------------------------------------- */

static void help_wait_workers(void) {
        printf("%s wait-workers [--timeout=DURATION] [--json] N\n\n"
               "Wait until at least N workers are registered (Hub1.WaitForWorkers, the all-ready\n"
               "barrier), then print their ids, one per line. Exit 1 with\n"
               "org.clusterhub.Error.Timeout if they are not there in time.\n\n"
               "Options:\n"
               "     --timeout=DURATION  How long to wait (default 10s, at most 49 days)\n"
               "     --json              One JSON array of strings\n"
               "  -h --help              Show this help\n",
               program);
}

int verb_wait_workers(int argc, char *argv[]) {
        static const Option options[] = { HELP_OPTION, JSON_OPTION, { "timeout", 0, true, OPT_TIMEOUT }, {} };
        HubArgs a = { .help = help_wait_workers };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        char **ids = NULL, *end;
        unsigned long count;
        int n, r, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("wait-workers", n, 1, 1, "[--timeout=DURATION] N") < 0)
                return EXIT_FAILURE;
        errno = 0;
        count = strtoul(argv[1], &end, 10);
        if (errno || end == argv[1] || *end || argv[1][0] == '-' || count > UINT32_MAX) {
                fprintf(stderr, "%s wait-workers: '%s' is not a number of workers.\n", program, argv[1]);
                return EXIT_USAGE;
        }
        if (connect_bus(&bus) < 0)
                return EXIT_FAILURE;
        r = new_call(bus, &m, CH_HUB_PATH, CH_HUB1_INTERFACE, "WaitForWorkers");
        if (r >= 0)
                r = sd_bus_message_append(m, "uu", (uint32_t) count, (uint32_t) (a.timeout_ms ? a.timeout_ms : 10000));
        if (r >= 0)
                r = call_and_report(bus, m, call_usec(a.timeout_ms, 10000), &reply);
        if (r < 0)
                goto finish;
        r = sd_bus_message_read_strv(reply, &ids);
        if (r < 0) {
                fprintf(stderr, "%s: Bad WaitForWorkers reply: %s\n", program, strerror(-r));
                goto finish;
        }
        size_t nids = 0;
        while (ids && ids[nids])
                nids++;
        if (a.json)
                json_string_array(stdout, ids, nids);
        else
                for (size_t i = 0; i < nids; i++)
                        printf("%s\n", ids[i]);
        ret = finish_output();
finish:
        for (size_t i = 0; ids && ids[i]; i++)
                free(ids[i]);
        free(ids);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- stats ----------------------------------------------------------------------------------- */

static void help_stats(void) {
        printf("%s stats [--json]\n\n"
               "Show the hub's counters (Hub1.GetStats) as a table: uptime, workers, namespaces, keys,\n"
               "store bytes, pending requests, locks, events, and calls per method.\n\n"
               "Options:\n"
               "     --json     One JSON object\n"
               "  -h --help     Show this help\n",
               program);
}

static void format_ms(uint64_t ms, char *buf, size_t size) {
        uint64_t s = ms / 1000;
        if (s >= 86400)
                snprintf(buf, size, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "min", s / 86400, s % 86400 / 3600, s % 3600 / 60);
        else if (s >= 3600)
                snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "min %" PRIu64 "s", s / 3600, s % 3600 / 60, s % 60);
        else if (s >= 60)
                snprintf(buf, size, "%" PRIu64 "min %" PRIu64 "s", s / 60, s % 60);
        else
                snprintf(buf, size, "%" PRIu64 ".%03" PRIu64 "s", s, ms % 1000);
}

static void format_bytes(uint64_t b, char *buf, size_t size) {
        if (b >= 10 * 1024 * 1024)
                snprintf(buf, size, "%" PRIu64 " (%.1f MiB)", b, b / 1048576.0);
        else if (b >= 10 * 1024)
                snprintf(buf, size, "%" PRIu64 " (%.1f KiB)", b, b / 1024.0);
        else
                snprintf(buf, size, "%" PRIu64, b);
}

typedef struct StatRow {
        char *name, *value;
} StatRow;

typedef struct Stats {
        StatRow *rows;
        size_t n;
} Stats;

static int add_row(Stats *st, const char *name, char *value) {
        StatRow *nr = realloc(st->rows, (st->n + 1) * sizeof(StatRow));
        if (!nr || !value) {
                free(value);
                if (nr)
                        st->rows = nr;
                return -ENOMEM;
        }
        st->rows = nr;
        st->rows[st->n].name = strdup(name);
        st->rows[st->n].value = value;
        if (!st->rows[st->n].name) {
                free(value);
                return -ENOMEM;
        }
        st->n++;
        return 0;
}

/* Top-level counters first, in the hub's order; nested ones (calls.*) after them, sorted. */
static int cmp_row(const void *a, const void *b) {
        const StatRow *x = a, *y = b;
        bool nx = strchr(x->name, '.'), ny = strchr(y->name, '.');
        if (nx != ny)
                return nx ? 1 : -1;
        return nx ? strcmp(x->name, y->name) : 0;
}

/* Collects one a{sv} level as NAME VALUE rows; nested dictionaries as PREFIX.NAME. */
static int collect_stats(sd_bus_message *reply, const char *prefix, Stats *st) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', NULL);
        if (r < 0)
                return r;
        for (;;) {
                const char *contents, *key;
                char type, entry[16], name[256];
                r = sd_bus_message_peek_type(reply, &type, &contents);
                if (r <= 0)
                        break;
                snprintf(entry, sizeof(entry), "%s", contents); /* "sv" */
                r = sd_bus_message_enter_container(reply, 'e', entry);
                if (r >= 0)
                        r = sd_bus_message_read_basic(reply, 's', &key);
                if (r < 0)
                        return r;
                snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "." : "", key);
                if (entry[1] == 'v') {
                        r = sd_bus_message_peek_type(reply, &type, &contents);
                        if (r >= 0)
                                r = sd_bus_message_enter_container(reply, 'v', contents);
                        if (r < 0)
                                return r;
                } else
                        contents = entry + 1;
                char *text = NULL;
                size_t text_len = 0;
                if (contents[0] == 'a' && contents[1] == '{' && contents[2] == 's') {
                        r = collect_stats(reply, name, st);
                } else if (contents[0] == 't' || contents[0] == 'u') {
                        uint64_t v = 0;
                        uint32_t u;
                        char human[64] = "";
                        if (contents[0] == 't')
                                r = sd_bus_message_read_basic(reply, 't', &v);
                        else if ((r = sd_bus_message_read_basic(reply, 'u', &u)) >= 0)
                                v = u;
                        size_t kl = strlen(key);
                        if (kl > 3 && strcmp(key + kl - 3, "_ms") == 0)
                                format_ms(v, human, sizeof(human));
                        else if (strstr(key, "bytes"))
                                format_bytes(v, human, sizeof(human));
                        if (r >= 0) {
                                if (!human[0])
                                        snprintf(human, sizeof(human), "%" PRIu64, v);
                                r = add_row(st, name, strdup(human));
                        }
                } else {
                        FILE *f = open_memstream(&text, &text_len);
                        if (!f)
                                return -ENOMEM;
                        r = value_print(f, reply, VALUE_RAW);
                        if (fclose(f) != 0 && r >= 0)
                                r = -ENOMEM;
                        if (r >= 0)
                                r = add_row(st, name, text);
                        else
                                free(text);
                }
                if (r >= 0 && entry[1] == 'v')
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

int verb_stats(int argc, char *argv[]) {
        static const Option options[] = { HELP_OPTION, JSON_OPTION, {} };
        HubArgs a = { .help = help_stats };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        int n, r, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("stats", n, 0, 0, "[--json]") < 0)
                return EXIT_FAILURE;
        if (connect_bus(&bus) < 0)
                return EXIT_FAILURE;
        r = new_call(bus, &m, CH_HUB_PATH, CH_HUB1_INTERFACE, "GetStats");
        if (r >= 0)
                r = call_and_report(bus, m, 0, &reply);
        if (r < 0)
                goto finish;
        if (a.json) {
                r = value_print(stdout, reply, VALUE_JSON);
                fputc('\n', stdout);
        } else {
                Stats st = {};
                int width = 4;
                r = collect_stats(reply, "", &st);
                if (r >= 0 && st.n)
                        qsort(st.rows, st.n, sizeof(StatRow), cmp_row);
                for (size_t i = 0; i < st.n; i++)
                        if ((int) strlen(st.rows[i].name) > width)
                                width = strlen(st.rows[i].name);
                if (r >= 0) {
                        printf("%-*s  %s\n", width, "NAME", "VALUE");
                        for (size_t i = 0; i < st.n; i++)
                                printf("%-*s  %s\n", width, st.rows[i].name, st.rows[i].value);
                }
                for (size_t i = 0; i < st.n; i++) {
                        free(st.rows[i].name);
                        free(st.rows[i].value);
                }
                free(st.rows);
        }
        if (r < 0) {
                fprintf(stderr, "%s: Bad GetStats reply: %s\n", program, strerror(-r));
                goto finish;
        }
        ret = finish_output();
finish:
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- namespaces ------------------------------------------------------------------------------ */

static void help_namespaces(void) {
        printf("%s namespaces [--json]\n\n"
               "List the hub's namespaces (Hub1.ListNamespaces), sorted, one per line.\n\n"
               "Options:\n"
               "     --json     One JSON array of strings\n"
               "  -h --help     Show this help\n",
               program);
}

int verb_namespaces(int argc, char *argv[]) {
        static const Option options[] = { HELP_OPTION, JSON_OPTION, {} };
        HubArgs a = { .help = help_namespaces };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        int n, r, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_USAGE;
        if (check_positional("namespaces", n, 0, 0, "[--json]") < 0)
                return EXIT_USAGE;
        if (connect_bus(&bus) < 0)
                return EXIT_UNREACHABLE;
        r = new_call(bus, &m, CH_HUB_PATH, CH_HUB1_INTERFACE, "ListNamespaces");
        if (r >= 0)
                r = call_and_report(bus, m, 0, &reply);
        if (r < 0)
                goto finish;
        if (print_sorted_strings(reply, "ListNamespaces", a.json) < 0)
                goto finish;
        ret = finish_output();
finish:
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- save ------------------------------------------------------------------------------------ */

static void help_save(void) {
        printf("%s save [--json]\n\n"
               "Write the hub's store to disk now as a snapshot (Hub1.Save), for a hub started with\n"
               "--data-dir: a forked child writes it while the hub goes on serving, and save returns\n"
               "once the new log is synced and in place (docs/persistence.md).\n\n"
               "Options:\n"
               "     --json     Print null once it is done (Save returns nothing)\n"
               "  -h --help     Show this help\n\n"
               "Exit status 1 with NotSupported when the hub keeps its store in memory only.\n",
               program);
}

int verb_save(int argc, char *argv[]) {
        static const Option options[] = { HELP_OPTION, JSON_OPTION, {} };
        HubArgs a = { .help = help_save };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        int n, r, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_USAGE;
        if (check_positional("save", n, 0, 0, "[--json]") < 0)
                return EXIT_USAGE;
        if (connect_bus(&bus) < 0)
                return EXIT_UNREACHABLE;
        r = new_call(bus, &m, CH_HUB_PATH, CH_HUB1_INTERFACE, "Save");
        /* a snapshot of a large store takes a while: no client-side timeout */
        if (r >= 0)
                r = call_and_report(bus, m, UINT64_MAX, NULL);
        if (r >= 0) {
                if (a.json)
                        puts("null");
                ret = finish_output();
        }
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}
