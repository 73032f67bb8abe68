/* SPDX-License-Identifier: MIT */
/* hubctl: what the subcommand files (cli/cmd-*.c) share. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "clusterhub/clusterhub.h"

#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

#define DEFAULT_NAMESPACE "default"
#define NO_LIMIT UINT64_MAX

/* Exit status (hubctl(1) EXIT STATUS): 0 done; 1 the hub refused or something failed; 2 the
 * command line is wrong; 3 what was asked for does not exist (NoSuchKey, NoSuchNamespace);
 * 4 the hub cannot be reached (no bus, a bad address, no hub on the bus). */
#define EXIT_USAGE 2
#define EXIT_NOT_FOUND 3
#define EXIT_UNREACHABLE 4

typedef enum BusKind { BUS_USER, BUS_SYSTEM, BUS_ADDRESS } BusKind;

extern BusKind arg_bus;
extern const char *arg_address;
extern const char *arg_ns;
extern bool arg_ns_set; /* --ns was given (dump and restore: one namespace instead of all) */
extern char *ns_path;
extern const char *program;

/* Prints "hubctl: WHAT: NAME: MESSAGE" (or the errno text) on stderr, with the fix when the hub
 * cannot be reached; returns the exit status for it (1, EXIT_NOT_FOUND or EXIT_UNREACHABLE) and
 * remembers it for main() (see note_failure()). */
int log_bus_error(const char *what, const sd_bus_error *e, int r);
/* Remembers why the command fails (the first call wins) for main(), which returns it in place of
 * a subcommand's EXIT_FAILURE.  note_failure(0) forgets it. */
void note_failure(int status);
/* "500ms", "10s", "5min", "1h 30min", bare number = seconds, "infinity" = NO_LIMIT. */
int parse_duration_ms(const char *s, uint64_t *ret);
int connect_bus(sd_bus **ret);
/* The private socket's address ("unix:path=...") while connect_bus() or reconnect_bus() is on
 * it, else NULL (on the bus).  Owned by that connection: copy it before closing it. */
const char *socket_address(void);
/* Connects again as connect_bus() did, printing nothing (a reconnection loop says what it
 * does): PRIVATE_ONLY on the private socket only.  1 on the socket, 0 on the bus, or -errno. */
int reconnect_bus(sd_bus **ret, bool private_only);
/* 1 to 255 characters of [A-Za-z0-9_]. */
bool namespace_name_ok(const char *s);
void json_string(FILE *f, const char *s);
/* ["a","b"] and a newline: --json of every listing is one JSON document, [] when empty. */
void json_string_array(FILE *f, char **strv, size_t n);
/* Prints the "as" at REPLY's position sorted, one per line, or with JSON as one array; read in
 * linear time (libsystemd 252's sd_bus_message_read_strv() is quadratic: a 1M-key Keys).
 * WHAT names the call in an error.  Returns 0 or -errno (reported). */
int print_sorted_strings(sd_bus_message *reply, const char *what, bool json);

/* Subcommand arguments. Options may come anywhere before "--": a long option (--name, --name=V,
 * --name V) or a declared short one (-h, -n); "-" and negative numbers ("-5", "-1.5") are
 * positional. The positional arguments are moved to argv[1..N]; returns N, PARSE_DONE (HANDLE
 * returned > 0, e.g. for --help) or PARSE_FAILED (message printed). */
typedef struct Option {
        const char *name;
        char short_name;
        bool has_arg;
        int id;
} Option;
#define PARSE_DONE (-1)
#define PARSE_FAILED (-2)
int parse_args(int argc, char *argv[], const Option *opts, void *userdata,
               int (*handle)(const Option *o, const char *arg, void *userdata));
int check_positional(const char *verb, int npos, int min, int max, const char *usage);
int parse_duration_option(const char *name, const char *value, uint64_t *ret);
/* sd_bus_call; on failure prints the error (name and message) and returns it. */
int call_and_report(sd_bus *bus, sd_bus_message *m, uint64_t usec, sd_bus_message **ret_reply);
/* A method call to the hub. */
int new_call(sd_bus *bus, sd_bus_message **ret, const char *path, const char *interface, const char *member);
/* fflush(stdout): EXIT_SUCCESS, or EXIT_FAILURE with a message. */
int finish_output(void);

typedef struct Verb {
        const char *name;
        int (*run)(int argc, char *argv[]);
} Verb;

/* cmd-locks.c */
int verb_lock(int argc, char *argv[]);
int verb_locks(int argc, char *argv[]);
int verb_unlock(int argc, char *argv[]);
/* cmd-store.c */
int verb_get(int argc, char *argv[]);
int verb_set(int argc, char *argv[]);
int verb_del(int argc, char *argv[]);
int verb_incr(int argc, char *argv[]);
int verb_keys(int argc, char *argv[]);
int verb_ttl(int argc, char *argv[]);
int verb_store(int argc, char *argv[]);
/* What the Store1 method METHOD does, from the interface XML; an exit status. */
int store_method_help(const char *method);
/* cmd-events.c */
int verb_emit(int argc, char *argv[]);
int verb_send(int argc, char *argv[]);
int verb_monitor(int argc, char *argv[]);
/* cmd-hub.c */
int verb_request(int argc, char *argv[]);
int verb_workers(int argc, char *argv[]);
int verb_wait_workers(int argc, char *argv[]);
int verb_stats(int argc, char *argv[]);
int verb_save(int argc, char *argv[]);
int verb_namespaces(int argc, char *argv[]);
/* cmd-dump.c */
int verb_dump(int argc, char *argv[]);
int verb_restore(int argc, char *argv[]);

/* values.c: typed values (s:text, x:42, d:1.5, b:true, {"json":1}, bare text = string). */
typedef enum ValueFormat {
        VALUE_TYPED, /* the notation hubctl reads: plain string, x:42, d:1.5, b:true, JSON containers */
        VALUE_JSON,  /* JSON */
        VALUE_RAW,   /* strings and numbers as they are, no type prefix; containers as JSON */
} ValueFormat;

/* Appends TEXT as a variant ('v'). Returns 0 or -errno with a message on stderr. */
int value_append_variant(sd_bus_message *m, const char *text);
/* Appends TEXT as a string ('s') argument; WHAT names it in the error (e.g. "key"). Refuses
 * invalid UTF-8 with a message on stderr (-EINVAL). */
int value_append_string(sd_bus_message *m, const char *what, const char *text);
/* The check of value_append_string() alone: 0, or -EINVAL with a message. */
int value_check_string(const char *what, const char *text);

/* Where a value comes from: an argument in the typed notation, or (-x, like redis-cli -x) all of
 * standard input, stored as it is: a string, or with --bytes an 'ay'. */
typedef struct ValueSource {
        bool from_stdin;
        bool bytes;
} ValueSource;
/* Appends the value of SRC (ARG, or standard input) as a variant. */
int value_append_source(sd_bus_message *m, const ValueSource *src, const char *arg);
/* Appends ARGS to M according to the complete types of SIGNATURE (the in-signature of a method);
 * arrays take as many arguments as are left over (a{sv}: KEY VALUE pairs or one JSON object). */
int value_append_args(sd_bus_message *m, const char *signature, int argc, char **argv);
/* Prints the next complete value of M (any type) in FORMAT. Returns 0, 1 when it wrote a byte
 * array as raw bytes (VALUE_RAW: no newline should follow), or -errno. */
int value_print(FILE *f, sd_bus_message *m, ValueFormat format);
/* A basic D-Bus value as sd_bus_message_read_basic() reads it. */
typedef union ValueBasic {
        const char *s;
        int b;
        int h;
        uint8_t y;
        int16_t n;
        uint16_t q;
        int32_t i;
        uint32_t u;
        int64_t x;
        uint64_t t;
        double d;
} ValueBasic;
/* Prints V of TYPE when it is a boolean (true/false) or an integer (decimal, as JSON has them);
 * false, printing nothing, for any other type. */
bool value_print_number(FILE *f, char type, const ValueBasic *v);
/* Prints every remaining argument of M: VALUE_JSON as one JSON value (an array if several, null
 * if none),
 * else each argument on its own line(s), arrays one element per line, dictionaries KEY\tVALUE. */
int value_print_reply(FILE *f, sd_bus_message *m, ValueFormat format);
