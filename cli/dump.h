/* SPDX-License-Identifier: MIT */
/* hubctl dump and restore (cmd-dump.c, cmd-restore.c): what both share. The dump format is in
 * cmd-dump.c's header comment, hubctl(1) (DUMP FORMAT) and docs/hubctl.md. */
#pragma once

#include <stdbool.h>
#include <string.h>

#include "hubctl.h"

#define DUMP_FORMAT "clusterhub-dump"
#define DUMP_VERSION 1
#define WINDOW 64      /* calls in flight at most: dbus-daemon's default max_replies_per_connection is 128 */
#define NESTING_MAX 64 /* signatures: D-Bus allows 32 arrays and 32 structs */

enum { DUMP_OPT_HELP, DUMP_OPT_NS, DUMP_OPT_REPLACE, DUMP_OPT_FROM };

typedef struct DumpArgs {
        void (*help)(void);
        bool replace;
        const char *from;
} DumpArgs;

/* The options of dump and restore (parse_args()): --ns sets the global arg_ns. */
int dump_handle_option(const Option *o, const char *arg, void *userdata);

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

/* Length of the single complete type at SIG, or 0 when SIG does not start with one that a
 * stored value may hold (every D-Bus type but 'h': the hub refuses file descriptors). */
size_t type_len(const char *sig, unsigned depth);
/* SIG is one complete type a stored value may hold. */
bool signature_ok(const char *sig);
/* What Store1.Type answers for a plain value of signature SIG. */
const char *type_of_signature(const char *sig);

/* Calls in flight on one connection: the hub answers them in order, so a client that waits for
 * each reply before the next call spends its time on round trips. */
typedef struct Pipe {
        sd_bus *bus;
        unsigned inflight;
} Pipe;

typedef struct Reply Reply;
struct Reply {
        Pipe *pipe;
        sd_bus_slot *slot;
        sd_bus_message *m; /* the reply or the error, once it came (done == NULL) */
        /* restore: called with the reply instead of keeping it; it may free the Reply */
        void (*done)(Reply *r, sd_bus_message *m);
};

/* Sends CALL (after waiting for a place in the window of WINDOW calls); its reply lands in R. */
int pipe_send(Pipe *p, Reply *r, sd_bus_message *call);
/* Forgets R: its reply, or (still in flight) the call's callback. */
void reply_clear(Reply *r);
/* Runs the connection until at most MAX calls are in flight. */
int pipe_wait(Pipe *p, unsigned max);

/* A Store1 call at PATH, with KEY as its first argument unless NULL. */
int new_store_call(sd_bus *bus, sd_bus_message **ret, const char *path, const char *member, const char *key);
/* The error of an error reply M, or NULL. */
const sd_bus_error *reply_error(sd_bus_message *m);
