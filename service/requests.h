/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "list.h"
#include "limits.h"

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
        /* Its load, kept by the request machine: Handle calls out to it that it has not answered
         * (the bus counts them against the hub until it does, even after the caller gave up),
         * and requests waiting for one of those to end, oldest first. */
        size_t n_handling;
        LIST_HEAD(struct Forward) handling;     /* those calls (orphans too) */
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
/* The same (as its ServerRef), skipping servers that handle MAX_HANDLING calls or more (0: no
 * cap); when all of them do, the one with the fewest requests waiting for it (the first in
 * round-robin order on a tie), so that a stuck server does not collect the requests its healthy
 * peers could take. */
ServerRef *serve_table_pick_ready(ServeTable *t, const char *method, size_t max_handling);
/* Whether SERVER serves METHOD in T. */
bool serve_table_serves(ServeTable *t, ServerRef *server, const char *method);
/* Up to MAX servers of METHOD, in order of Serve; returns how many. */
size_t serve_table_servers(ServeTable *t, const char *method, void **ret, size_t max);
size_t serve_table_count(ServeTable *t, const char *method);
/* The methods served in T with their number of servers, up to MAX; returns how many. */
size_t serve_table_methods(ServeTable *t, const char **names, size_t *counts, size_t max);

/* --- the request machine ---------------------------------------------------------------------
 * A Request (or each server's share of a RequestAll) is one Forward for one server: waiting in
 * the server's backlog, then out as a Handle call, until the server answers or leaves.  A server
 * handles at most --max-handling-per-worker calls at a time (the bus counts every call the hub
 * has out against the hub until the worker answers, even after the caller gave up); requests
 * past the cap wait in its backlog (--max-backlog-per-worker).  A Forward whose caller has its
 * answer while its call is still out stays as an orphan, counted, until the server answers.
 *
 * Plain logic: the glue (bus/bus-requests.c) sends the calls, answers the callers and keeps
 * their deadlines, through RequestOps; the machine keeps the states, the load and the order. */

typedef struct Forward Forward;
typedef struct Gather Gather;
typedef struct RequestMachine RequestMachine;

/* Why the machine ends a Forward without its server's answer. */
typedef enum RequestError {
        REQUEST_ERROR_GONE,             /* its server left before replying */
        REQUEST_ERROR_GONE_QUEUED,      /* its server left while it waited in the backlog */
        REQUEST_ERROR_BUSY,             /* the server's backlog is full too */
        REQUEST_ERROR_UNSENDABLE,       /* the Handle call could not be sent (an errno) */
} RequestError;

typedef struct RequestOps {
        /* Sends F's Handle call to S, setting F->call; 0 or -errno. */
        int (*send)(Forward *f, ServerRef *s);
        /* Releases a Handle call (F->call) that is over or abandoned. */
        void (*call_free)(void *call);
        /* F failed with ERROR (on server S; ERRNUM for REQUEST_ERROR_UNSENDABLE): the glue names
         * the error and hands it back with forward_fail(). */
        void (*fail)(Forward *f, RequestError error, ServerRef *s, int errnum);
        /* F, a lone Request, failed with NAME: MESSAGE: answer its caller (F->caller), and end it. */
        void (*answer_error)(Forward *f, const char *name, const char *message);
        /* G has all its answers: answer its caller (G->caller) and end it (gather_free()). */
        void (*gathered)(Gather *g);
        /* F no longer counts in its namespace NS (it was freed or orphaned). */
        void (*left_namespace)(void *ns);
        /* Frees a reply stored in a gather. */
        void (*reply_free)(void *reply);
        /* The name of S's worker (its id, else its connection's name). */
        const char *(*server_name)(ServerRef *s);
} RequestOps;

struct RequestMachine {
        const RequestOps *ops;
        const Limits *limits;           /* max_handling_per_worker, max_backlog_per_worker */
        struct HubStats *stats;         /* requests_forwarded, _backlogged, _refused_busy */
};

struct Forward {
        RequestMachine *machine;
        void *ns;                       /* its namespace (the glue's); NULL once orphaned */
        ServeTable *table;              /* where its method is served: another server is picked there */
        void *caller;                   /* the glue's: the caller's pending Request; NULL in a RequestAll */
        Gather *gather;                 /* the RequestAll it belongs to, or NULL */
        ServerRef *handler;             /* the server handling it, or whose backlog holds it */
        bool out;                       /* its call is out (in handler->handling), else in the backlog */
        bool any;                       /* a Request without target: another server may take it */
        void *call;                     /* the glue's: the Handle call out */
        char *worker;                   /* the server's name, for messages and RequestAll keys */
        char *method;
        char *origin;
        LIST_FIELDS(Forward, by_handler);
        LIST_FIELDS(Forward, by_gather);
};

/* A RequestAll gathering its servers' answers, keyed by worker. */
struct Gather {
        RequestMachine *machine;
        void *caller;                   /* the glue's: the RequestAll call */
        bool starting;                  /* still forwarding: do not finish yet */
        LIST_HEAD(Forward) pending;
        size_t n_pending;
        char **error_keys;              /* errors, "name: message" */
        char **error_values;
        size_t n_errors;
        char **reply_keys;              /* replies (the glue's) */
        void **replies;
        size_t n_replies;
};

/* A Forward of METHOD on behalf of ORIGIN in namespace NS, whose servers are in TABLE. */
int forward_new(RequestMachine *m, void *ns, ServeTable *table, const char *method, const char *origin, Forward **ret);
Forward *forward_free(Forward *f);
/* F's caller is done with it (answered, timed out, gone): a call still out stays, as an
 * orphan, until its server answers; anything else is freed. */
void forward_abandon(Forward *f);
/* F's Handle call is over (its server answered): it stops counting; returns that server, whose
 * backlog may now move on (server_dispatch()), or NULL when it was not out. */
ServerRef *forward_call_ended(Forward *f);
/* Sends F to S, or puts it in S's backlog when S handles as many calls as it may; -EXFULL when
 * the backlog is full too, -errno when the call cannot be sent. */
int forward_submit(Forward *f, ServerRef *s);
/* The same, failing F (through RequestOps.fail) when it can be neither sent nor queued. */
void forward_submit_or_fail(Forward *f, ServerRef *s);
/* F ended with the error NAME: MESSAGE: its caller gets it (RequestOps.answer_error), or its
 * gather records it (and finishes when it was the last). */
void forward_fail(Forward *f, const char *name, const char *message);
/* F's server answered REPLY (the glue's; taken) inside a RequestAll: recorded under its worker,
 * and F is freed; the gather finishes when it was the last. */
void forward_gathered(Forward *f, void *reply);

/* S has room again: what waits in its backlog goes out, oldest first, while the room lasts. */
void server_dispatch(ServerRef *s);
/* S is gone: its methods are withdrawn, its calls out fail with REQUEST_ERROR_GONE, and its
 * backlog goes to another server of the method when it had no target (else fails). */
void server_gone(ServerRef *s);
/* Fails every Forward of namespace NS that S handles or holds in its backlog with NAME: MESSAGE
 * (calls out stay counted as orphans until answered). */
void server_fail_namespace(ServerRef *s, const void *ns, const char *name, const char *message);

/* Requests for a worker id that is not registered yet (systemd may still be starting it): they
 * wait, within their caller's deadline (the glue's), until that worker registers and serves
 * their method in their namespace. */
typedef struct RequestWait RequestWait;
typedef LIST_HEAD(RequestWait) RequestWaitList;

/* The waits of one namespace, oldest first.  A zero-initialised one is empty. */
typedef struct RequestWaits {
        RequestWaitList items;
        size_t n;
} RequestWaits;

struct RequestWait {
        RequestWaits *waits;            /* NULL once taken out */
        char *target;
        char *method;
        uint64_t timeout_ms;            /* the caller's, for messages */
        void *userdata;                 /* the glue's: the caller's pending Request */
        LIST_FIELDS(RequestWait, by_waits);
};

int request_wait_new(RequestWaits *l, const char *target, const char *method, uint64_t timeout_ms, void *userdata,
                     RequestWait **ret);
/* Takes W out of its list, if it is in one, and frees it. */
RequestWait *request_wait_free(RequestWait *w);
/* Every wait of L for worker ID whose method S serves in TABLE, taken out and appended to RET
 * in their order; returns how many. */
size_t request_waits_take_ready(RequestWaits *l, const char *id, ServeTable *table, ServerRef *s, RequestWaitList *ret);

int gather_new(RequestMachine *m, void *caller, Gather **ret);
/* F (new, of the same caller) is one of G's. */
void gather_add(Gather *g, Forward *f);
/* Records an error for KEY in G (strings copied; on failure to copy the entry is lost). */
void gather_add_error(Gather *g, const char *key, const char *value);
/* Every Forward of G is submitted: it finishes now when all of them already ended. */
void gather_started(Gather *g);
/* G's deadline passed: every Forward still pending is recorded with the error WHEN_OUT (its
 * call was out: it stays as an orphan) or WHEN_QUEUED (it waited in a backlog) and let go; the
 * glue then answers the caller with what G holds. */
void gather_timeout(Gather *g, const char *when_out, const char *when_queued);
Gather *gather_free(Gather *g);
/* Answers G waits for that are no Forward of this hub (another hub's share, requests across
 * hosts): each hold keeps G from finishing until released; a release may finish G. */
void gather_hold(Gather *g);
void gather_release(Gather *g);
/* Records REPLY (the glue's; taken) under KEY (copied) in G. */
void gather_add_reply(Gather *g, const char *key, void *reply);
