/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "hub.h"
#include "list.h"

typedef struct Peer Peer;
typedef struct Deferred Deferred;

/* Why a deferred call ends without its normal reply. */
typedef enum DeferredEnd {
        DEFERRED_TIMEOUT,       /* its deadline passed */
        DEFERRED_CALLER_GONE,   /* the caller disconnected: nobody to answer */
        DEFERRED_SHUTDOWN,      /* the hub is exiting: deferred.c already answered the call */
} DeferredEnd;

/* Every call the hub answers later (Lock, Request, BLPop, WaitForWorkers) is one Deferred:
 * a reference to the call, its deadline, and the peer that made it.  One min-heap of
 * deadlines and one sd-event timer serve them all. */
struct Deferred {
        Hub *hub;
        sd_bus_message *call;
        Peer *peer;                  /* the caller, or NULL */
        uint64_t deadline_ms;        /* UINT64_MAX: none */
        size_t heap_index;           /* SIZE_MAX when not in the heap */
        /* Called once when the call ends without a reply (timeout or the caller left); it must
         * release what it holds in its capability (a lock waiter, a list waiter...).  It must
         * not free D: the deferred module does after it returns. */
        void (*on_end)(Deferred *d, DeferredEnd why);
        void *userdata;
        LIST_FIELDS(Deferred, by_peer);
        LIST_FIELDS(Deferred, by_kind); /* free for the capability's own list */
        LIST_FIELDS(Deferred, all);     /* every pending call of the hub (deferred.c) */
};

/* Takes a reference to CALL.  PEER may be NULL.  -ENOBUFS when PEER already has
 * --max-pending-per-peer calls waiting. */
int deferred_new(Hub *h, sd_bus_message *call, Peer *peer, uint64_t timeout_ms,
                 void (*on_end)(Deferred *d, DeferredEnd why), void *userdata, Deferred **ret);
/* Frees D without calling on_end (after its reply was sent). */
void deferred_free(Deferred *d);
/* Ends D with WHY: runs on_end, then frees. */
void deferred_end(Deferred *d, DeferredEnd why);

/* Answers every pending call with the error NAME (saying the hub got WHY, e.g. "SIGTERM"),
 * then ends each with DEFERRED_SHUTDOWN so its capability releases what it holds. */
void deferred_fail_all(Hub *h, const char *name, const char *why);

int deferred_setup(Hub *h);
void deferred_shutdown(Hub *h);
size_t deferred_pending(const Hub *h);
