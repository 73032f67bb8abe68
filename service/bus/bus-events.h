/* SPDX-License-Identifier: MIT */
#pragma once

#include "ch-events1-server.h"
#include "hub.h"

typedef struct Peer Peer;

/* The Events1 handlers; their userdata is the Namespace. */
extern const ChEvents1Handlers bus_events_handlers;

/* P just registered: deliver, in order, what EmitTo queued for its id. */
void bus_events_worker_joined(Peer *p);

/* NS is being dropped: its queued EmitTo calls fail with NamespaceDropped at once. */
void bus_events_drop(Namespace *ns);

/* Drops every queue (at exit). */
void bus_events_shutdown(Hub *h);

/* Delivers event EVENT of namespace NS from ORIGIN (ID@NODE) with PAYLOAD (the variant codec's
 * "v") to local worker WORKER, for an EmitTo of another hub (backend/rrequests.h).  -ENOLINK
 * when no such worker is registered here, -EINVAL for a name that does not pass. */
int bus_events_deliver_remote(Hub *h, const char *ns, const char *worker, const char *event, const char *origin,
                              const void *payload, size_t size);
