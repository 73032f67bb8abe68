/* SPDX-License-Identifier: MIT */
/* hubctl: what the subcommand files (cli/cmd-*.c) share. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "clusterhub/clusterhub.h"

#define DEFAULT_NAMESPACE "default"
#define NO_LIMIT UINT64_MAX

typedef enum BusKind { BUS_USER, BUS_SYSTEM, BUS_ADDRESS } BusKind;

extern BusKind arg_bus;
extern const char *arg_address;
extern const char *arg_ns;
extern char *ns_path;
extern const char *program;

/* Prints "hubctl: WHAT: NAME: MESSAGE" (or the errno text) on stderr; returns EXIT_FAILURE. */
int log_bus_error(const char *what, const sd_bus_error *e, int r);
/* "500ms", "10s", "5min", "1h 30min", bare number = seconds, "infinity" = NO_LIMIT. */
int parse_duration_ms(const char *s, uint64_t *ret);
int connect_bus(sd_bus **ret);
void json_string(FILE *f, const char *s);

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
/* cmd-store.c */
int verb_get(int argc, char *argv[]);
int verb_set(int argc, char *argv[]);
int verb_del(int argc, char *argv[]);
int verb_incr(int argc, char *argv[]);
int verb_keys(int argc, char *argv[]);
int verb_ttl(int argc, char *argv[]);
int verb_store(int argc, char *argv[]);
/* cmd-events.c */
int verb_emit(int argc, char *argv[]);
int verb_send(int argc, char *argv[]);
int verb_monitor(int argc, char *argv[]);
/* cmd-hub.c */
int verb_request(int argc, char *argv[]);
int verb_workers(int argc, char *argv[]);
int verb_wait_workers(int argc, char *argv[]);
int verb_stats(int argc, char *argv[]);

/* values.c: typed values (s:text, x:42, d:1.5, b:true, {"json":1}, bare text = string). */
typedef enum ValueFormat {
        VALUE_TYPED, /* the notation hubctl reads: plain string, x:42, d:1.5, b:true, JSON containers */
        VALUE_JSON,  /* JSON */
        VALUE_RAW,   /* strings and numbers as they are, no type prefix; containers as JSON */
} ValueFormat;

/* Appends TEXT as a variant ('v'). Returns 0 or -errno with a message on stderr. */
int value_append_variant(sd_bus_message *m, const char *text);
/* Appends ARGS to M according to the complete types of SIGNATURE (the in-signature of a method);
 * arrays take as many arguments as are left over (a{sv}: KEY VALUE pairs or one JSON object). */
int value_append_args(sd_bus_message *m, const char *signature, int argc, char **argv);
/* Prints the next complete value of M (any type) in FORMAT. Returns 0 or -errno. */
int value_print(FILE *f, sd_bus_message *m, ValueFormat format);
/* Prints every remaining argument of M: VALUE_JSON as one JSON value (an array if several),
 * else each argument on its own line(s), arrays one element per line, dictionaries KEY\tVALUE. */
int value_print_reply(FILE *f, sd_bus_message *m, ValueFormat format);
