/* SPDX-License-Identifier: MIT */
#pragma once

#include "ch-requests1-server.h"
#include "hub.h"

typedef struct Peer Peer;

/* The Requests1 handlers; their userdata is the Namespace. */
extern const ChRequests1Handlers bus_requests_handlers;

/* P registered or started serving: dispatch requests waiting for its id. */
void bus_requests_worker_ready(Peer *p);

/* P is gone: its served methods are withdrawn and every request it was handling fails with
 * WorkerGone at once. */
void bus_requests_peer_gone(Peer *p);

/* NS is being dropped: its pending requests fail with NamespaceDropped. */
void bus_requests_drop(Namespace *ns);
