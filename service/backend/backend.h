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
