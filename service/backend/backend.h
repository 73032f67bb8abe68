/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "hub.h"

/* Several hosts through one Redis (--redis=URL, docs/redis.md): the hub's glue between its
 * capabilities and the Redis link (redis-link.h).  Today: events and the worker list
 * (registry.h).  An Emit is published on the
 * namespace's channel (remote-event.h); every other hub delivers it to its own subscribers
 * with the origin "ID@NODE"; a hub skips its own publications, which it delivered already. */

typedef struct Backend Backend;
struct RedisLink;

/* A part of the backend (the store, locks, requests across hosts): made with the backend, told
 * when the link comes up or goes down, and given the messages of the channels (PATTERNS, for
 * PSUBSCRIBE) it asked for.  Its state is reached from the glue with backend_part(). */
typedef struct BackendPartOps {
        const char *name;
        /* NULL-terminated PSUBSCRIBE patterns, or NULL */
        const char *const *patterns;
        int (*new)(Hub *h, struct RedisLink *link, uint64_t instance, void **ret);
        void (*free)(void *part);
        /* the link came up (UP true) or went down: every command in flight has failed by now */
        void (*link_state)(void *part, bool up);
        /* a message on CHANNEL, which matched one of PATTERNS: 1 when it was this part's, 0 when
         * not (the next part is asked) */
        int (*on_message)(void *part, const char *channel, const char *data, size_t size);
        /* GetStats entries */
        int (*append_stats)(void *part, sd_bus_message *reply);
} BackendPartOps;

/* The parts, in the order they are made and asked (backend.c). */
extern const BackendPartOps *const backend_parts[];
/* The state of part OPS of H's backend; NULL without --redis. */
void *backend_part(Hub *h, const BackendPartOps *ops);
/* The link of H's backend (NULL without --redis), and whether it is up now. */
struct RedisLink *backend_link(Hub *h);
bool backend_is_up(Hub *h);
/* The worker list of every host (registry.h), NULL without --redis. */
struct Registry *backend_registry(Hub *h);
/* Whether the codec's "v" in DATA/SIZE (from another host) nests at most MAX containers deep,
 * its own variant counted: 1 yes, 0 no, -errno when it does not read.  Checked before what
 * another host sent goes onto this hub's bus: a message deeper than the bus takes makes the
 * bus drop the hub. */
int backend_value_fits(Hub *h, const void *data, size_t size, unsigned max);
/* A sealed message (never sent) holding the codec's "v" in DATA/SIZE, rewound to read it. */
int backend_value_message(Hub *h, const void *data, size_t size, sd_bus_message **ret);
/* This hub's random id, new at each start (0 without --redis). */
uint64_t backend_instance(Hub *h);

/* Connects (in the background) to H->redis_url; NULL *RET without --redis. */
int backend_new(Hub *h, Backend **ret);
Backend *backend_free(Backend *b);

/* Publishes the event of call M (its payload, a "v", follows N_SKIP strings) from namespace NS
 * with ORIGIN.  -EHOSTDOWN (BackendUnavailable) when Redis cannot be reached now (or has
 * REDIS_MAX_PENDING_COMMANDS unanswered: it is not keeping up); -EINVAL when
 * the payload carries file descriptors, which cannot cross hosts.  0 without a backend. */
int backend_publish_event(Hub *h, const char *ns, const char *event, const char *origin, sd_bus_message *m,
                          unsigned n_skip);

/* GetStats entries: backend, backend_connected, backend_reconnects, backend_commands_failed,
 * backend_events_published, backend_events_received, backend_events_dropped,
 * backend_remote_workers. */
int backend_append_stats(Hub *h, sd_bus_message *reply);

/* A local worker joined or left: tell the other hubs (nothing without a backend, or while
 * Redis is unreachable: the next connection sends the whole registry). */
void backend_worker_joined(Hub *h, const char *id, const char *unique_name, uint32_t pid, const char *unit,
                           uint64_t since_ms);
void backend_worker_left(Hub *h, const char *id, const char *reason);
/* Appends a ListWorkers row for every worker of another hub (ID@NODE). */
int backend_append_workers(Hub *h, sd_bus_message *reply);
