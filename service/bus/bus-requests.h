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

/* Runs a request of another hub (requests across hosts, backend/rrequests.h) like a local one:
 * METHOD in namespace NS for ORIGIN ("ID@NODE"), one server round-robin, the worker TARGET (when
 * not empty: WorkerUnavailable when it is not registered here), or every server (ALL),
 * its payload in CALL (a call never sent: "ssv" for a Request, "sv" for a RequestAll), within
 * TIMEOUT_MS.  1 when started (the answer goes through rrequests_answer_*()), else -errno with
 * ERROR set (NoHandler when nobody serves it here). */
int bus_requests_serve_remote(Hub *h, bool all, const char *target, const char *ns, const char *method,
                              const char *origin, sd_bus_message *call, uint64_t timeout_ms, sd_bus_error *error);
