/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashmap.h"
#include "list.h"

/* The EmitTo queue: events for a worker id that is not registered yet wait here, in order, until
 * it registers or they are too old.  Plain logic, no D-Bus: the glue (bus/bus-events.c) pushes
 * an event with what it costs, takes events back out (delivery when the worker joins, expiry on
 * its timer, a dropped namespace, shutdown) and answers their calls.  An event's payload and
 * call stay the glue's (USERDATA); the queue keeps the order, the bounds and the deadlines. */

typedef struct EventQueue EventQueue;
typedef struct QueuedEvent QueuedEvent;

/* What the queues may hold: --max-queued-per-worker, --max-queue-age-ms, --max-queued-bytes. */
typedef struct EventQueueLimits {
        uint64_t max_per_worker;
        uint64_t max_age_ms;
        uint64_t max_bytes;
} EventQueueLimits;

/* Every queue of the hub.  A zero-initialised one is empty. */
typedef struct EventQueues {
        Hashmap *queues;                /* worker id -> EventQueue */
        LIST_HEAD(QueuedEvent) all;     /* every queued event, oldest first: the order of deadlines */
        size_t n;
        uint64_t bytes;                 /* the cost of all of them */
} EventQueues;

struct QueuedEvent {
        EventQueue *queue;              /* NULL once taken out */
        void *owner;                    /* where it was emitted (the namespace) */
        char *origin;                   /* who emitted it */
        uint64_t cost;                  /* bytes charged to EventQueues.bytes */
        uint64_t deadline_ms;           /* it expires then (the glue's clock, ms) */
        void *userdata;                 /* the glue's: the call that carries the event */
        LIST_FIELDS(QueuedEvent, by_queue);
        LIST_FIELDS(QueuedEvent, all);
};

/* Queues an event of COST bytes for WORKER, last in its queue, expiring at NOW_MS + max_age_ms.
 * -EHOSTUNREACH when WORKER already has max_per_worker events queued; -ENOBUFS when the queues
 * would hold more than max_bytes; nothing changes then. */
int event_queues_push(EventQueues *qs, const EventQueueLimits *l, const char *worker, void *owner, const char *origin,
                      uint64_t cost, uint64_t now_ms, void *userdata, QueuedEvent **ret);
/* How many events wait for WORKER. */
size_t event_queues_count(const EventQueues *qs, const char *worker);
/* The oldest event for WORKER, taken out of the queues (delivery: the worker joined); NULL when
 * none.  Taking them one by one hands them out in the order they were pushed. */
QueuedEvent *event_queues_take(EventQueues *qs, const char *worker);
/* The oldest event whose deadline is NOW_MS or earlier, taken out; NULL when none. */
QueuedEvent *event_queues_take_expired(EventQueues *qs, uint64_t now_ms);
/* A list of events taken out, linked through their "all" fields. */
typedef LIST_HEAD(QueuedEvent) QueuedEventList;
/* Every event emitted in OWNER (a namespace being dropped), taken out and appended to RET,
 * oldest first; returns how many. */
size_t event_queues_take_owned(EventQueues *qs, const void *owner, QueuedEventList *ret);
/* The oldest event of all, taken out (shutdown); NULL when none. */
QueuedEvent *event_queues_take_first(EventQueues *qs);
/* Takes E out of the queues (no-op when it was taken already). */
void event_queues_remove(EventQueues *qs, QueuedEvent *e);
/* The earliest deadline, UINT64_MAX when nothing is queued. */
uint64_t event_queues_next_deadline(const EventQueues *qs);
/* Frees E, taking it out first; returns NULL. */
QueuedEvent *queued_event_free(EventQueues *qs, QueuedEvent *e);
/* Frees every event (their USERDATA is the caller's) and the queues' map. */
void event_queues_done(EventQueues *qs);
