/* SPDX-License-Identifier: MIT */
#pragma once

#include "ch-store1-server.h"
#include "hub.h"
#include "tracking.h"

typedef struct Store Store;

/* The Store1 handlers; their userdata is the Namespace. */
extern const ChStore1Handlers bus_store_handlers;

/* Creates the store of namespace NS, wired to emit KeyChanged from its path. */
int bus_store_new(Namespace *ns, Store **ret);

/* Re-arms NS's expiry timer at the store's next deadline. */
void bus_store_rearm(Namespace *ns);

/* NS is being dropped: fail its waiting BLPop/BRPop calls, stop its timer. */
void bus_store_drop(Namespace *ns);

/* How tracking.c's invalidations reach the trackers: the unicast Invalidate signal. */
extern const TrackOps bus_store_track_ops;
