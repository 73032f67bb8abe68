/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "hub.h"
#include "list.h"
#include "locks.h"
#include "requests.h"

typedef struct Deferred Deferred;

/* Everything the logic knows about one caller (a bus connection): its identity, and the state
 * it owns in every capability.  A peer exists only for callers that hold state (a worker, a
 * lock holder or waiter, a pending call); a plain Get creates none.  Its death (the bus tells
 * us through sd_bus_track) is one call, peer_free(), that releases exactly its own state. */
struct Peer {
        Hub *hub;
        char *unique_name;           /* ":1.42" */
        sd_bus_track *track;

        /* membership: set while registered as a worker */
        char *id;
        char *unit;
        pid_t pid;
        uint64_t since_ms;           /* CLOCK_REALTIME */
        LIST_FIELDS(Peer, workers);  /* in hub->worker_list, in order of registration */

        LockOwner lock_owner;        /* locks held and awaited */
        ServerRef server;            /* methods it serves, in every namespace */
        LIST_HEAD(struct Forward) forwards; /* requests it is handling */
        LIST_HEAD(Deferred) deferred;/* calls of this peer not answered yet */
        size_t n_deferred;
};

/* The peer of the sender of M, created (and tracked) when absent. */
int peer_get_or_new(Hub *h, sd_bus_message *m, Peer **ret);
/* The peer of unique name NAME, or NULL. */
Peer *peer_find(Hub *h, const char *unique_name);
/* The identity a peer shows others: its worker id, else its unique name. */
const char *peer_origin(const Peer *p);
/* Fails with LimitExceeded (naming the peer and the option) when P has as many calls waiting
 * as --max-pending-per-peer allows; deferred_new() enforces the same bound. */
int peer_check_pending(Peer *p, sd_bus_error *ret_error);
/* Releases everything the peer holds, as if it disconnected; REASON for the logs/signals. */
void peer_free(Peer *p, const char *reason);
