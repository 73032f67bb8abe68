/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "hub.h"

typedef struct Peer Peer;

#define WORKER_ID_MAX 64

/* Membership: which connection is worker ID.  Plain logic over the hub's tables; the bus
 * glue (bus/bus-workers.c) announces the changes. */

/* ID: 1 to WORKER_ID_MAX characters of [A-Za-z0-9_] (a D-Bus object path element). */
bool worker_id_is_valid(const char *id);

/* The id a caller gets when it asks for none: the instance of its systemd template unit
 * ("worker@3.service" -> "3", when that instance is a valid id), else one made from its
 * unique bus name (":1.42" -> "bus_1_42").  UNIT may be NULL. */
int worker_id_derive(const char *unit, const char *unique_name, char **ret);

/* Makes P worker ID.  -EADDRINUSE when another live peer holds ID, -EALREADY when P is
 * already registered under ID, -EBUSY when P is registered under another id. */
int workers_add(Hub *h, Peer *p, const char *id);

/* Removes P from the registry (no-op when it is not registered); returns whether it was. */
bool workers_remove(Hub *h, Peer *p);

Peer *workers_find(Hub *h, const char *id);
size_t workers_count(const Hub *h);

/* Called by peer_free(): P is gone; announces WorkerLeft(REASON) when it was a worker. */
void workers_peer_gone(Peer *p, const char *reason);
