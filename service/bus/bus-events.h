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
