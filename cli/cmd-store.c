/* SPDX-License-Identifier: MIT */
/* hubctl get, set, del, incr, keys, ttl, store: org.clusterhub.Store1 of the namespace. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hubctl.h"

enum { OPT_HELP, OPT_JSON, OPT_RAW, OPT_TTL, OPT_NX, OPT_XX, OPT_KEEP_TTL, OPT_STDIN, OPT_BYTES };

typedef struct StoreArgs {
        void (*help)(void);
        ValueFormat format;
        bool json;
        uint64_t ttl_ms; /* 0: none */
        bool nx, xx, keep_ttl;
        ValueSource source;
} StoreArgs;

static int handle_option(const Option *o, const char *arg, void *userdata) {
        StoreArgs *a = userdata;

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
        case OPT_TTL:
                if (parse_duration_option("ttl", arg, &a->ttl_ms) < 0)
                        return -EINVAL;
                if (a->ttl_ms == 0 || a->ttl_ms == NO_LIMIT) {
                        /* as Redis refuses SET k v PX 0; deleting is hubctl del (or Expire(k, 0)) */
                        fprintf(stderr, "%s: --ttl must be more than 0 and finite (to delete a key: %s del KEY).\n",
                                program, program);
                        return -EINVAL;
                }
                break;
        case OPT_STDIN:
                a->source.from_stdin = true;
                break;
        case OPT_BYTES:
                a->source.bytes = true;
                break;
        case OPT_NX:
                a->nx = true;
                break;
        case OPT_XX:
                a->xx = true;
                break;
        case OPT_KEEP_TTL:
                a->keep_ttl = true;
                break;
        }
        return 0;
}

#define HELP_OPTION { "help", 'h', false, OPT_HELP }
#define JSON_OPTION { "json", 0, false, OPT_JSON }
#define RAW_OPTION { "raw", 'r', false, OPT_RAW }

static const Option value_options[] = { HELP_OPTION, JSON_OPTION, RAW_OPTION, {} };
static const Option list_options[] = { HELP_OPTION, JSON_OPTION, {} };

/* Connects and prepares a Store1 call of the namespace. */
static int store_call(sd_bus **bus, sd_bus_message **m, const char *member) {
        int r = connect_bus(bus);
        if (r < 0)
                return r;
        return new_call(*bus, m, ns_path, CH_STORE1_INTERFACE, member);
}

/* store_call() and the KEY as its first argument. */
static int store_call_key(sd_bus **bus, sd_bus_message **m, const char *member, const char *key) {
        int r = store_call(bus, m, member);
        if (r < 0)
                return r;
        return value_append_string(*m, "key", key);
}

/* Runs M and prints the reply (every argument) in FORMAT. */
static int run_and_print(sd_bus *bus, sd_bus_message *m, ValueFormat format) {
        sd_bus_message *reply = NULL;
        int r;

        r = call_and_report(bus, m, 0, &reply);
        if (r >= 0) {
                r = value_print_reply(stdout, reply, format);
                if (r < 0)
                        fprintf(stderr, "%s: Cannot read the %s reply: %s\n", program, sd_bus_message_get_member(m),
                                strerror(-r));
        }
        sd_bus_message_unref(reply);
        return r < 0 ? EXIT_FAILURE : finish_output();
}

static int finish(sd_bus *bus, sd_bus_message *m, int ret) {
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* --- get ------------------------------------------------------------------------------------- */

static void help_get(void) {
        printf("%s get [--json|--raw] KEY\n\n"
               "Print the value of KEY (Store1.Get) in hubctl's typed notation: strings as they are,\n"
               "other types with their prefix (x:42, d:1.5, b:true), containers as JSON. A missing key\n"
               "exits 3 with org.clusterhub.Error.NoSuchKey.\n\n"
               "Options:\n"
               "     --json     Print the value as JSON\n"
               "  -r --raw      Print the value without type prefix (x:42 prints 42)\n"
               "  -h --help     Show this help\n",
               program);
}

int verb_get(int argc, char *argv[]) {
        StoreArgs a = { .help = help_get, .format = VALUE_TYPED };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        int n, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, value_options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("get", n, 1, 1, "KEY") < 0)
                return EXIT_FAILURE;
        if (store_call_key(&bus, &m, "Get", argv[1]) >= 0)
                ret = run_and_print(bus, m, a.format);
        return finish(bus, m, ret);
}

/* --- set ------------------------------------------------------------------------------------- */

static void help_set(void) {
        printf("%s set [OPTIONS...] KEY VALUE\n"
               "%s set [OPTIONS...] -x KEY < FILE\n\n"
               "Store VALUE at KEY (Store1.Set). VALUE is typed: TEXT or s:TEXT (a string), x:42, i:7,\n"
               "u:7, t:7, n:7, q:7, y:7, d:1.5, b:true, o:/object/path, or JSON ({\"a\":1} is a{sv}, [1,\"a\"]\n"
               "is av; numbers become x or d). A VALUE starting with '-' needs '--' before it.\n"
               "Like Redis, a set without --ttl or --keep-ttl clears an existing TTL.\n\n"
               "Options:\n"
               "     --ttl=DURATION  Expire the key after DURATION (500ms, 10s, 5min; bare number = s)\n"
               "     --nx            Only set KEY if it does not exist\n"
               "     --xx            Only set KEY if it exists\n"
               "     --keep-ttl      Keep the key's current TTL\n"
               "     --json          Print Set's answer, true or false (not set: --nx, --xx)\n"
               "  -x --stdin         Read VALUE from standard input as it is, a string (like redis-cli -x)\n"
               "     --bytes         Store VALUE (or standard input) as raw bytes, a D-Bus 'ay';\n"
               "                     'hubctl get --raw' writes them back\n"
               "  -h --help          Show this help\n\n"
               "Exit status 1 when --nx or --xx prevented the write.\n",
               program, program);
}

int verb_set(int argc, char *argv[]) {
        static const Option options[] = {
                HELP_OPTION,
                JSON_OPTION,
                { "ttl", 0, true, OPT_TTL },
                { "nx", 0, false, OPT_NX },
                { "xx", 0, false, OPT_XX },
                { "keep-ttl", 0, false, OPT_KEEP_TTL },
                { "stdin", 'x', false, OPT_STDIN },
                { "bytes", 0, false, OPT_BYTES },
                {}
        };
        StoreArgs a = { .help = help_set };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        int n, r, set = 0, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (a.source.from_stdin) {
                if (check_positional("set", n, 1, 1, "-x KEY < FILE") < 0)
                        return EXIT_USAGE;
        } else if (check_positional("set", n, 2, 2, "KEY VALUE [--ttl=DURATION] [--nx|--xx]") < 0)
                return EXIT_USAGE;
        if (a.nx && a.xx) {
                fprintf(stderr, "%s set: --nx and --xx exclude each other.\n", program);
                return EXIT_USAGE;
        }
        if (a.keep_ttl && a.ttl_ms) {
                fprintf(stderr, "%s set: --ttl and --keep-ttl exclude each other.\n", program);
                return EXIT_USAGE;
        }
        if (store_call_key(&bus, &m, "Set", argv[1]) < 0)
                goto finish;
        r = value_append_source(m, &a.source, a.source.from_stdin ? NULL : argv[2]);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && a.ttl_ms)
                r = sd_bus_message_append(m, "{sv}", "ttl_ms", "t", a.ttl_ms);
        if (r >= 0 && a.nx)
                r = sd_bus_message_append(m, "{sv}", "nx", "b", 1);
        if (r >= 0 && a.xx)
                r = sd_bus_message_append(m, "{sv}", "xx", "b", 1);
        if (r >= 0 && a.keep_ttl)
                r = sd_bus_message_append(m, "{sv}", "keep_ttl", "b", 1);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                goto finish;
        if (call_and_report(bus, m, 0, &reply) < 0)
                goto finish;
        if (sd_bus_message_read(reply, "b", &set) < 0)
                goto finish;
        if (a.json) {
                /* Set's reply: whether it set the key */
                puts(set ? "true" : "false");
                if (finish_output() != EXIT_SUCCESS)
                        goto finish;
        }
        if (!set) {
                fprintf(stderr, "%s: Key '%s' was not set: it %s.\n", program, argv[1],
                        a.nx ? "exists (--nx)" : "does not exist (--xx)");
                goto finish;
        }
        ret = EXIT_SUCCESS;
finish:
        sd_bus_message_unref(reply);
        return finish(bus, m, ret);
}

/* --- del ------------------------------------------------------------------------------------- */

static void help_del(void) {
        printf("%s del [--json] KEY...\n\n"
               "Delete the keys (Store1.Del) and print how many of them existed.\n\n"
               "Options:\n"
               "     --json     Print the number as JSON\n"
               "  -h --help     Show this help\n",
               program);
}

int verb_del(int argc, char *argv[]) {
        StoreArgs a = { .help = help_del, .format = VALUE_RAW };
        const Option *options = list_options;
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        int n, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("del", n, 1, -1, "KEY...") < 0)
                return EXIT_FAILURE;
        if (store_call(&bus, &m, "Del") >= 0 && value_append_args(m, "as", n, argv + 1) >= 0)
                ret = run_and_print(bus, m, a.format);
        return finish(bus, m, ret);
}

/* --- incr ------------------------------------------------------------------------------------ */

static void help_incr(void) {
        printf("%s incr [--json] KEY [BY]\n\n"
               "Add BY (default 1; may be negative) to the number at KEY and print the result\n"
               "(Store1.Incr; Store1.IncrFloat when BY has a fraction or exponent, e.g. 0.5).\n"
               "A missing key counts as 0. Errors: NotANumber, Overflow, WrongType.\n\n"
               "Options:\n"
               "     --json     Print the number as JSON\n"
               "  -h --help     Show this help\n",
               program);
}

int verb_incr(int argc, char *argv[]) {
        StoreArgs a = { .help = help_incr, .format = VALUE_RAW };
        const Option *options = list_options;
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        const char *by = "1";
        bool fractional;
        int n, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("incr", n, 1, 2, "KEY [BY]") < 0)
                return EXIT_FAILURE;
        if (n == 2)
                by = argv[2];
        fractional = strpbrk(by, ".eE") || strncasecmp(by, "inf", 3) == 0 || strncasecmp(by, "nan", 3) == 0;
        if (store_call(&bus, &m, fractional ? "IncrFloat" : "Incr") >= 0 &&
            value_append_args(m, fractional ? "sd" : "sx", 2, (char *[]) { argv[1], (char *) by }) >= 0)
                ret = run_and_print(bus, m, a.format);
        return finish(bus, m, ret);
}

/* --- keys ------------------------------------------------------------------------------------ */

static void help_keys(void) {
        printf("%s keys [--json] [PATTERN]\n\n"
               "List the keys matching the glob PATTERN (Store1.Keys; * ? [abc] [^a] [a-z] and \\,\n"
               "as in Redis; default *), sorted, one per line.\n\n"
               "Options:\n"
               "     --json     One JSON array of strings\n"
               "  -h --help     Show this help\n",
               program);
}

int verb_keys(int argc, char *argv[]) {
        StoreArgs a = { .help = help_keys };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        int n, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, list_options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("keys", n, 0, 1, "[PATTERN]") < 0)
                return EXIT_FAILURE;
        if (store_call(&bus, &m, "Keys") < 0 || value_append_string(m, "pattern", n ? argv[1] : "*") < 0)
                goto finish;
        if (call_and_report(bus, m, 0, &reply) < 0)
                goto finish;
        if (print_sorted_strings(reply, "Keys", a.json) < 0)
                goto finish;
        ret = finish_output();
finish:
        sd_bus_message_unref(reply);
        return finish(bus, m, ret);
}

/* --- ttl ------------------------------------------------------------------------------------- */

static void help_ttl(void) {
        printf("%s ttl [--json] KEY\n\n"
               "Print the remaining time to live of KEY in milliseconds (Store1.TTL, Redis PTTL):\n"
               "-1 if it has no TTL, -2 if it does not exist.\n\n"
               "Options:\n"
               "     --json     Print the number as JSON\n"
               "  -h --help     Show this help\n",
               program);
}

int verb_ttl(int argc, char *argv[]) {
        StoreArgs a = { .help = help_ttl, .format = VALUE_RAW };
        const Option *options = list_options;
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        int n, ret = EXIT_FAILURE;

        n = parse_args(argc, argv, options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("ttl", n, 1, 1, "KEY") < 0)
                return EXIT_FAILURE;
        if (store_call_key(&bus, &m, "TTL", argv[1]) >= 0)
                ret = run_and_print(bus, m, a.format);
        return finish(bus, m, ret);
}

/* --- store: any Store1 method ------------------------------------------------------------------ */

typedef struct MethodInfo {
        char name[64];
        char in[64];
        char out[64];
        char in_args[256];  /* "s key, s field" */
        char out_args[256]; /* "v value" */
        char doc[2048];  /* the org.gtk.GDBus.DocString, XML entities decoded */
} MethodInfo;

/* Copies the attribute value at P (after the opening quote) into DST, decoding XML entities. */
static void copy_attr(char *dst, size_t size, const char *p) {
        static const struct {
                const char *entity;
                char c;
        } entities[] = { { "&quot;", '"' }, { "&apos;", '\'' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&amp;", '&' } };
        size_t n = 0;

        while (*p && *p != '"' && n + 1 < size) {
                bool decoded = false;
                for (size_t i = 0; *p == '&' && i < sizeof(entities) / sizeof(entities[0]); i++)
                        if (strncmp(p, entities[i].entity, strlen(entities[i].entity)) == 0) {
                                dst[n++] = entities[i].c;
                                p += strlen(entities[i].entity);
                                decoded = true;
                                break;
                        }
                if (!decoded)
                        dst[n++] = *p++;
        }
        dst[n] = 0;
}

/* The value of attribute ATTR="..." of the element starting at EL (before its '>'), or NULL. */
static const char *attr(const char *el, const char *attr_eq) {
        const char *gt = strchr(el, '>'), *a = strstr(el, attr_eq);
        return a && gt && a < gt ? a + strlen(attr_eq) : NULL;
}

static void append_list(char *dst, size_t size, const char *type, const char *name) {
        size_t l = strlen(dst);
        snprintf(dst + l, size - l, "%s%s %s", l ? ", " : "", type, name);
}

static void read_arg(MethodInfo *mi, const char *a) {
        const char *t = attr(a, "type=\""), *nm = attr(a, "name=\""), *dir = attr(a, "direction=\"");
        bool out = dir && strncmp(dir, "out", 3) == 0;
        char type[64], name[64];

        if (!t)
                return;
        copy_attr(type, sizeof(type), t);
        copy_attr(name, sizeof(name), nm ? nm : "\"");
        if (strlen(out ? mi->out : mi->in) + strlen(type) < sizeof(mi->in))
                strcat(out ? mi->out : mi->in, type);
        if (out)
                append_list(mi->out_args, sizeof(mi->out_args), type, name);
        else
                append_list(mi->in_args, sizeof(mi->in_args), type, name);
}

/* Walks the <method> elements of the generated introspection XML; calls FN for each. Returns
 * FN's first non-zero result. The XML is our own generated text: elements and attributes in
 * the fixed form the generator writes. */
static int each_method(int (*fn)(const MethodInfo *mi, void *userdata), void *userdata) {
        const char *p = ch_store1_introspection_xml;

        while ((p = strstr(p, "<method name=\""))) {
                MethodInfo mi = {};
                const char *tagend = strchr(p, '>'), *end;
                if (!tagend)
                        break;
                if (tagend[-1] == '/')
                        end = tagend; /* <method name="Flush"/> */
                else if (!(end = strstr(p, "</method>")))
                        break;
                copy_attr(mi.name, sizeof(mi.name), p + strlen("<method name=\""));
                for (const char *a = strstr(p, "<arg "); a && a < end; a = strstr(a + 1, "<arg "))
                        read_arg(&mi, a);
                for (const char *a = strstr(p, "<annotation "); a && a < end; a = strstr(a + 1, "<annotation ")) {
                        const char *nm = attr(a, "name=\""), *v = attr(a, "value=\"");
                        if (nm && v && strncmp(nm, "org.gtk.GDBus.DocString\"", 24) == 0) {
                                copy_attr(mi.doc, sizeof(mi.doc), v);
                                break;
                        }
                }
                int r = fn(&mi, userdata);
                if (r != 0)
                        return r;
                p = end;
        }
        return 0;
}

static int print_method(const MethodInfo *mi, void *userdata) {
        printf("  %-12s %-8s -> %s\n", mi->name, mi->in[0] ? mi->in : "-", mi->out[0] ? mi->out : "-");
        return 0;
}

static int find_method(const MethodInfo *mi, void *userdata) {
        MethodInfo *want = userdata;
        if (strcasecmp(mi->name, want->name) != 0)
                return 0;
        *want = *mi;
        return 1;
}

/* hubctl store METHOD --help, hubctl help store METHOD: the method's documentation from the XML. */
int store_method_help(const char *method) {
        MethodInfo mi = {};

        snprintf(mi.name, sizeof(mi.name), "%s", method);
        if (each_method(find_method, &mi) <= 0) {
                fprintf(stderr, "%s store: '%s' is not a method of org.clusterhub.Store1 (see %s store --help).\n", program,
                        method, program);
                return EXIT_USAGE;
        }
        printf("%s store %s\n\norg.clusterhub.Store1.%s(%s)%s%s\n\n", program, mi.name, mi.name, mi.in_args,
               mi.out_args[0] ? " -> " : "", mi.out_args);
        /* wrap the doc at 92 columns */
        for (const char *p = mi.doc; *p;) {
                size_t len = strlen(p), cut = len;
                if (len > 92) {
                        cut = 92;
                        while (cut > 0 && p[cut] != ' ')
                                cut--;
                        if (cut == 0)
                                cut = 92;
                }
                printf("%.*s\n", (int) cut, p);
                p += cut;
                while (*p == ' ')
                        p++;
        }
        return finish_output();
}

static void help_store(void) {
        printf("%s store [--json|--raw] COMMAND [ARGS...]\n\n"
               "Call any org.clusterhub.Store1 method of the namespace. COMMAND is the method name in\n"
               "any case (hset, HSet, lrange); ARGS follow its signature: one argument per value, an\n"
               "array takes all arguments left over, a{sv} takes FIELD VALUE pairs or one JSON object,\n"
               "v is a typed value (x:42, d:1.5, b:true, JSON; bare text is a string). Negative numbers\n"
               "are arguments, not options. The reply is printed one value per line (arrays one element\n"
               "per line, dictionaries FIELD<TAB>VALUE), or as JSON with --json.\n\n"
               "Options:\n"
               "     --json     Print the reply as JSON (an array when the method returns several values)\n"
               "  -r --raw      Print values without type prefix\n"
               "  -h --help     Show this help\n\n"
               "'%s store METHOD --help' shows what METHOD does.\n\n"
               "Methods (signature in -> out):\n",
               program, program);
        (void) each_method(print_method, NULL);
}

int verb_store(int argc, char *argv[]) {
        StoreArgs a = { .help = help_store, .format = VALUE_TYPED };
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        MethodInfo mi = {};
        int n, ret = EXIT_FAILURE;

        if (argc == 3 && argv[1][0] != '-' && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0))
                return store_method_help(argv[1]);
        n = parse_args(argc, argv, value_options, &a, handle_option);
        if (n < 0)
                return n == PARSE_DONE ? EXIT_SUCCESS : EXIT_FAILURE;
        if (check_positional("store", n, 1, -1, "COMMAND [ARGS...]") < 0)
                return EXIT_FAILURE;
        snprintf(mi.name, sizeof(mi.name), "%s", argv[1]);
        if (each_method(find_method, &mi) <= 0) {
                fprintf(stderr, "%s store: '%s' is not a method of org.clusterhub.Store1 (see %s store --help).\n",
                        program, argv[1], program);
                return EXIT_USAGE;
        }
        /* blocking commands wait on the hub's side: let the call wait as long */
        uint64_t usec = 0;
        if (strcmp(mi.name, "BLPop") == 0 || strcmp(mi.name, "BRPop") == 0)
                usec = UINT64_MAX;
        if (store_call(&bus, &m, mi.name) >= 0 && value_append_args(m, mi.in, n - 1, argv + 2) >= 0) {
                sd_bus_message *reply = NULL;
                if (call_and_report(bus, m, usec, &reply) >= 0) {
                        int r = value_print_reply(stdout, reply, a.format);
                        ret = r < 0 ? EXIT_FAILURE : finish_output();
                }
                sd_bus_message_unref(reply);
        }
        return finish(bus, m, ret);
}
