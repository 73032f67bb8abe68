/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "list.h"

/* Who serves which method in one namespace: plain logic, no D-Bus.  A ServeTable per
 * namespace maps a method name to the connections serving it, in the order they started,
 * with a round-robin cursor; every entry also hangs off its server (a ServerRef embedded in
 * the Peer) so that a server's death removes exactly its entries. */

typedef struct ServeTable ServeTable;
typedef struct ServeEntry ServeEntry;
typedef struct ServedMethod ServedMethod;

/* Embedded in the server's Peer. */
typedef struct ServerRef {
        void *server;                   /* the Peer, handed back by requests_pick() */
        LIST_HEAD(ServeEntry) entries;
        size_t n;                       /* entries, in every table */
        /* Its load, kept by the request glue: Handle calls out to it that it has not answered
         * (the bus counts them against the hub until it does, even after the caller gave up),
         * and requests waiting for one of those to end, oldest first. */
        size_t n_handling;
        LIST_HEAD(struct Forward) backlog;
        size_t n_backlog;
} ServerRef;

int serve_table_new(ServeTable **ret);
ServeTable *serve_table_free(ServeTable *t);
/* Nobody serves anything in T. */
bool serve_table_is_empty(const ServeTable *t);

/* SERVER serves METHOD in T; 0, or -EALREADY when it already did. */
int serve_table_add(ServeTable *t, ServerRef *server, const char *method);
/* 0, or -ENOENT when SERVER did not serve METHOD in T. */
int serve_table_remove(ServeTable *t, ServerRef *server, const char *method);
/* Removes every entry of SERVER in every table. */
void server_ref_clear(ServerRef *server);

/* The next server of METHOD, round-robin; NULL when nobody serves it. */
void *serve_table_pick(ServeTable *t, const char *method);
/* The same, skipping servers that handle MAX_HANDLING calls or more (0: no cap); when all of
 * them do, the one with the fewest requests waiting for it (the first in round-robin order on
 * a tie), so that a stuck server does not collect the requests its healthy peers could take. */
void *serve_table_pick_ready(ServeTable *t, const char *method, size_t max_handling);
/* Whether SERVER serves METHOD in T. */
bool serve_table_serves(ServeTable *t, ServerRef *server, const char *method);
/* Up to MAX servers of METHOD, in order of Serve; returns how many. */
size_t serve_table_servers(ServeTable *t, const char *method, void **ret, size_t max);
size_t serve_table_count(ServeTable *t, const char *method);
