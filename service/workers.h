/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "hub.h"

typedef struct Peer Peer;

#define WORKER_ID_MAX 64

/* Membership: which connection is worker ID.  Plain logic over the hub's tables; the bus
 * glue (bus/bus-workers.c) announces the changes, and peer_free() has it announce a worker's
 * death (bus_workers_left()). */

/* ID: 1 to WORKER_ID_MAX characters of [A-Za-z0-9_] (a D-Bus object path element). */
bool worker_id_is_valid(const char *id);

/* The id a caller gets when it asks for none: the instance of its systemd template unit
 * ("worker@3.service" -> "3", when that instance is a valid id), else one made from its
 * unique bus name (":1.42" -> "bus_1_42").  UNIT may be NULL. */
int worker_id_derive(const char *unit, const char *unique_name, char **ret);

/* Whose id ID is, for a caller with UNIT (may be NULL) and UNIQUE_NAME.  Ids the hub derives
 * can be taken only by the caller they are derived for: "3" belongs to the process of
 * worker@3.service, "bus_1_42" to connection :1.42.  The first may still be taken by anyone
 * while no such caller claims it; the second never by another connection. */
typedef enum WorkerClaim {
        WORKER_CLAIM_NONE,      /* nobody's in particular: first come, first served */
        WORKER_CLAIM_OWN,       /* derived for this caller: it takes precedence */
        WORKER_CLAIM_FOREIGN,   /* derived from another connection's unique name: refused */
} WorkerClaim;
WorkerClaim worker_id_claim(const char *id, const char *unit, const char *unique_name);

/* Makes P worker ID.  -EADDRINUSE when another live peer holds ID, -EALREADY when P is
 * already registered under ID, -EBUSY when P is registered under another id. */
int workers_add(Hub *h, Peer *p, const char *id);

/* Decides whether P may take ID (its unit and unique name must be known).  0: it is free;
 * 1: it is held by a peer that has no claim on it while P has one, *ret_squatter is that
 * peer, to be removed before workers_add(); -EALREADY: P holds it; -EADDRINUSE: another peer
 * holds it with an equal or better claim; -EPERM: it is derived for another connection. */
int workers_check_claim(Hub *h, Peer *p, const char *id, Peer **ret_squatter);

/* Removes P from the registry (no-op when it is not registered); returns whether it was. */
bool workers_remove(Hub *h, Peer *p);

Peer *workers_find(Hub *h, const char *id);
size_t workers_count(const Hub *h);
