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
#include "tracking.h"

typedef struct Deferred Deferred;
typedef struct Peer Peer;

/* Everything the logic knows about one caller (a bus connection): its identity, and the state
 * it owns in every capability.  A peer exists only for callers that hold state (a worker, a
 * lock holder or waiter, a pending call); a plain Get creates none.  Its death (the bus tells
 * us through sd_bus_track) is one call, peer_free(), that releases exactly its own state. */
struct Peer {
        Hub *hub;
        char *unique_name;           /* ":1.42" on the bus, ":p2p.7" on the private socket */
        sd_bus *bus;                 /* its connection: the hub's bus, or its own socket connection */
        struct Connection *conn;     /* on the private socket: its connection, else NULL */
        sd_bus_track *track;         /* on the bus: tells of its death */

        /* membership: set while registered as a worker */
        char *id;
        char *unit;
        pid_t pid;
        uint64_t since_ms;           /* CLOCK_REALTIME */
        LIST_FIELDS(Peer, workers);  /* in hub->worker_list, in order of registration */

        LockOwner lock_owner;        /* locks held and awaited */
        ServerRef server;            /* methods it serves in every namespace, requests it handles */
        LIST_HEAD(Deferred) deferred;/* calls of this peer not answered yet */
        size_t n_deferred;
        TrackOwner track_owner;      /* client-side caching: what it tracks (tracking.h) */
};

/* Who sent M: on the bus the unique name the broker stamped in its sender field; on the private
 * socket the name of the connection it came on, whatever sender field it carries (a direct peer
 * writes its own).  NULL when M has none (a bus message without sender). */
const char *peer_name_of(Hub *h, sd_bus_message *m);
/* The peer that sent M (see peer_name_of()), or NULL when it holds no state. */
Peer *peer_of(Hub *h, sd_bus_message *m);
/* The peer that sent M, created when absent (tracked on the bus; on the socket its connection's
 * death releases it). */
int peer_get_or_new(Hub *h, sd_bus_message *m, Peer **ret);
/* The peer of unique name NAME, or NULL. */
Peer *peer_find(Hub *h, const char *unique_name);
/* The credentials of whoever sent M: the broker's on the bus, the socket's (SO_PEERCRED, taken
 * at accept) on the private socket; never derived from a sender field there. */
int peer_query_creds(Hub *h, sd_bus_message *m, uint64_t mask, sd_bus_creds **ret);
/* The identity a peer shows others: its worker id, else its unique name. */
const char *peer_origin(const Peer *p);
/* Fails with LimitExceeded (naming the peer and the option) when P has as many calls waiting
 * as --max-pending-per-peer allows; deferred_new() enforces the same bound. */
int peer_check_pending(Peer *p, sd_bus_error *ret_error);
/* Releases everything the peer holds, as if it disconnected; REASON for the logs/signals. */
void peer_free(Peer *p, const char *reason);
