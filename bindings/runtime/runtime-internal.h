/* SPDX-License-Identifier: MIT */
#pragma once

/* Internals of the libclusterhub worker runtime, shared by its capability files:
 * client.c (connection, loop, registration, hub restarts), events.c, requests.c, locks.c, cache.c. */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../clusterhub/ch-runtime.h"
#include "../clusterhub/clusterhub.h"

#define _public_ __attribute__((visibility("default")))
#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

#define TAKE_PTR(p)                            \
        ({                                     \
                __typeof__(p) _ptr_ = (p);     \
                (p) = NULL;                    \
                _ptr_;                         \
        })

#define streq(a, b) (strcmp((a), (b)) == 0)

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static inline bool isempty(const char *s) {
        return !s || !*s;
}

#define USEC_PER_MSEC UINT64_C(1000)

/* Doubly linked lists: a struct with `next`/`prev` members, a head pointer. */
#define LIST_PREPEND(head, item)                                \
        do {                                                    \
                (item)->prev = NULL;                            \
                (item)->next = (head);                          \
                if (head)                                       \
                        (head)->prev = (item);                  \
                (head) = (item);                                \
        } while (0)
#define LIST_REMOVE(head, item)                                 \
        do {                                                    \
                if ((item)->next)                               \
                        (item)->next->prev = (item)->prev;      \
                if ((item)->prev)                               \
                        (item)->prev->next = (item)->next;      \
                else                                            \
                        (head) = (item)->next;                  \
                (item)->next = (item)->prev = NULL;             \
        } while (0)

typedef struct Match Match;
typedef struct Listener Listener;
typedef struct Served Served;
typedef struct Pending Pending;

/* One bus match rule for an (ns, event) or (ns, prefix), shared by its listeners. */
struct Match {
        Match *next, *prev;
        ChClient *client;
        char *ns;
        char *name;
        bool prefix;
        unsigned n_ref;
        sd_bus_slot *slot;
};

struct Listener {
        Listener *next, *prev;
        uint64_t id;
        char *ns;
        char *name;
        bool prefix;
        unsigned remaining;     /* calls left for once/many, 0: unlimited */
        bool dead;              /* removed while dispatching; freed by the sweep */
        ch_event_fn cb;
        void *userdata;
        Match *match;
};

struct Served {
        Served *next, *prev;
        char *ns;
        char *method;
        ch_request_handler_fn handler;
        void *userdata;
};

/* An asynchronous call of the runtime waiting for its reply. */
struct Pending {
        Pending *next, *prev;
        ChClient *client;
        sd_bus_slot *slot;
        ch_reply_fn cb;
        void *userdata;
};

struct ChRequest {
        ChRequest *next, *prev;
        unsigned n_ref;
        ChClient *client;       /* NULL once the client is freed */
        sd_bus_message *call;
        char *ns;
        char *method;
        char *origin;
        bool answered;
};

struct ChClient {
        sd_bus *bus;
        sd_event *event;
        sd_bus_error last_error;
        uint64_t request_timeout_ms;

        /* registration and the hub's name */
        bool want_registered;
        char *wanted_id;        /* what ch_register() asked for ("" = derived) */
        char *id;               /* the registered id; valid while `registered` */
        bool registered;
        char *hub_owner;        /* unique name of the current hub, NULL when none */
        char *registered_owner; /* the hub we registered with */
        sd_bus_slot *noc_slot;
        sd_bus_slot *dropped_slot;   /* the hub's NamespaceDropped */
        sd_bus_slot *disconnected_slot;
        bool bus_lost;          /* the connection is gone: the loop ended with -ECONNRESET */

        /* the private socket (NULL on the bus): a hub restart closes the connection, and the
         * client connects again */
        char *private_socket;
        char *description;
        int64_t event_priority;
        sd_event_source *reconnect_source;
        uint64_t reconnect_delay_usec;
        int reconnect_error;    /* the last failure logged, so that a retry loop logs it once */
        unsigned reconnect_attempts;
        bool bus_fallback;      /* auto: if the socket stays away, follow the hub on this bus: */
        ChBusType bus_type;
        char *address;
        sd_bus_slot *register_slot;
        ch_registered_fn registered_cb;
        void *registered_userdata;

        /* events */
        Listener *listeners, *listeners_tail;
        Match *matches;
        uint64_t last_listener_id;
        unsigned dispatching;
        bool need_sweep;
        uint64_t last_cookie;           /* the Event signal dispatched last: several matching */
        char *last_sender;              /* rules deliver it several times; dispatch it once */
        uint64_t local_cookie;

        /* requests */
        Served *served;
        sd_bus_slot *handler_slot;
        ChRequest *requests;
        Pending *pending;

        /* client-side caches (cache.c) */
        ChCache *caches;
};

/* transport.c */
/* Chooses and opens the connection for O: 1 on the private socket (*ret_socket its path), 0 on
 * the bus (*ret_socket NULL). */
int transport_open(const ChClientOptions *o, sd_bus **ret, char **ret_socket, sd_bus_error *error);
/* The transport O asks for (ChClientOptions.transport, else $CLUSTERHUB_TRANSPORT, else auto). */
int transport_of(const ChClientOptions *o, ChTransport *ret, sd_bus_error *error);
/* Connects to the bus of O. */
int transport_connect_bus(const ChClientOptions *o, sd_bus **ret, sd_bus_error *error);
/* Connects to the hub's socket at PATH, checks the server's uid (root or ours), waits for Hello. */
int transport_connect_private(const char *path, const char *description, sd_bus **ret, sd_bus_error *error);
/* One line on stderr, "libclusterhub: ..." */
void transport_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* client.c */
int client_set_error(ChClient *c, const sd_bus_error *e, int r);
bool ch_namespace_is_valid(const char *ns);
int ch_namespace_path(const char *ns, char **ret);
const char *ch_namespace_or_default(const char *ns);
bool client_origin_is_ours(ChClient *c, const char *origin);
/* true if M was sent by the current owner of org.clusterhub.Hub1 (false while there is none) */
bool client_sender_is_hub(ChClient *c, sd_bus_message *m);

/* events.c */
void events_free_all(ChClient *c);
/* On a new connection: add every match rule again (asynchronously, ahead of later calls). */
int events_rematch_all(ChClient *c);

/* requests.c */
void requests_free_all(ChClient *c);
int requests_reserve_all(ChClient *c);
/* On a new connection: export org.clusterhub.Handler1 again if it was. */
int requests_reattach(ChClient *c);
/* Namespace NS was dropped: serve what we serve there again. */
int requests_reserve_namespace(ChClient *c, const char *ns);
int append_empty_payload(sd_bus_message *m, void *userdata);

/* cache.c */
/* The hub restarted or the connection is being replaced: every cache forgets its entries and
 * its tracking (the next read calls Track again). */
void cache_reset_all(ChClient *c);
/* The client is being freed: its caches forget everything and outlive it as empty shells. */
void cache_detach_all(ChClient *c);
