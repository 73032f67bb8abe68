/* SPDX-License-Identifier: MIT */
#pragma once

#include "ch-locks1-server.h"
#include "hub.h"
#include "locks.h"

/* The Locks1 handlers; their userdata is the Namespace. */
extern const ChLocks1Handlers bus_locks_handlers;

/* The hub-wide LockHub (h->lock_hub) and its one lease timer (h->lock_timer). */
int bus_locks_setup(Hub *h);
void bus_locks_shutdown(Hub *h);

/* The lock table of namespace NS (granted/cancelled callbacks answer the pending Lock calls). */
int bus_locks_table_new(Namespace *ns, LockTable **ret);

/* Re-arms the lease timer at lock_hub_next_deadline(); call after anything that may change
 * leases (peer_free() does). */
void bus_locks_rearm(Hub *h);

/* Peer P's connection has gone: with --redis, its holds in Redis are released (peer_free()). */
struct Peer;
void bus_locks_peer_gone(struct Peer *p);
