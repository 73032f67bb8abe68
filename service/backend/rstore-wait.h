/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "list.h"

/* BLPop/BRPop waiters of one namespace whose lists live in Redis (--redis): the bookkeeping,
 * without Redis or the bus, so that it can be tested alone (tests/redis/test-redis-logic.c).
 *
 * No Redis connection is parked per waiter.  The hub keeps its waiters in a queue per
 * namespace, oldest first, and serves them in ROUNDS: one Lua script per CHUNK of waiters
 * (RWAIT_SCRIPT), which for each waiter in order pops from the first non-empty list among its
 * keys.  The chunks of a round are sent back to back on the one command connection, so Redis
 * runs them in order: among the waiters of one hub, the oldest waiter whose list has an element
 * gets it (FIFO).  A round runs when a waiter arrives (its first try), when a keyspace
 * notification says an element may have arrived on a key some waiter waits on, and on a
 * periodic retry (notifications are at most once).  At most one round is in flight per
 * namespace: what asks for a round meanwhile (rwait_want()) gets one right after it. */

typedef struct RWaitQueue RWaitQueue;

typedef struct RWaiter {
        RWaitQueue *queue;
        /* the glue's (its waiting call); NULL once the caller is gone while the waiter was in a
         * round (an orphan: what the round pops for it must go back to its list) */
        void *token;
        bool left;          /* BLPop; BRPop otherwise */
        bool fresh;         /* never tried: a key of another type is WrongType (as the local store) */
        bool in_round;      /* in a chunk that Redis has not answered yet */
        size_t n_keys;
        char **keys;        /* in the same allocation */
        LIST_FIELDS(struct RWaiter, waiters);
} RWaiter;

struct RWaitQueue {
        LIST_HEAD(RWaiter) waiters;  /* oldest first; orphans included */
        size_t n_waiters;
        size_t n_chunks;             /* chunks of the round in flight */
        bool wanted;                 /* a round should run once none is in flight */
        bool dropped;                /* its owner let it go: freed by the last chunk's end */
        void *userdata;              /* the owner's */
};

/* One script call: some waiters (oldest first) and the distinct keys they wait on. */
typedef struct RWaitChunk {
        RWaitQueue *queue;
        RWaiter **waiters;
        size_t n_waiters;
        const char **keys;           /* distinct; borrowed from the waiters: valid until the first
                                      * rwait_chunk_done() (see rwait_chunk_key()) */
        size_t n_keys;
        size_t *index;               /* waiter i's keys: index[off[i] + j] is its key j's place in keys */
        size_t *off;
} RWaitChunk;

/* What the script found for one waiter of a chunk. */
typedef enum RWaitOutcome {
        RWAIT_NOTHING,               /* every list was empty: it waits on */
        RWAIT_POPPED,                /* a value was popped for it from one of its keys */
        RWAIT_WRONG_TYPE,            /* fresh, and a key before any non-empty list holds another type */
} RWaitOutcome;

/* The script.  KEYS: the chunk's keys (Redis names); ARGV, for each waiter in order: "l" or "r",
 * "1" when fresh else "0", the number of its keys N, then N 1-based places in KEYS.  The reply
 * has one element per waiter: 0 (nothing), -1 (wrong type), or {place, value}. */
extern const char RWAIT_SCRIPT[];

RWaitQueue *rwait_queue_new(void);
/* Lets the queue go: every waiter that is not in a round is freed (end their calls first);
 * a queue with chunks in flight is freed by rwait_chunk_end() of the last one. */
void rwait_queue_drop(RWaitQueue *q);

/* A new waiter on KEYS (copied), at the end of the queue.  It asks for a round (its first
 * try).  -EINVAL without keys, -ENOMEM. */
int rwait_add(RWaitQueue *q, const char *const *keys, size_t n, bool left, void *token, RWaiter **ret);
/* The caller of W is gone (timeout, disconnection, namespace dropped): W is freed at once, or,
 * when it is in a round, becomes an orphan that rwait_chunk_end() frees. */
void rwait_cancel(RWaiter *w);
/* W, not in a round, was answered (failed): unlinks and frees it. */
void rwait_done(RWaiter *w);

/* Does EVENT (a Redis keyspace event) on a list possibly add elements? */
bool rwait_event_adds(const char *event);
/* Does a waiter of Q wait on KEY? */
bool rwait_has_key(const RWaitQueue *q, const char *key);
/* Asks for a round. */
void rwait_want(RWaitQueue *q);
/* KEY changed with EVENT: asks for a round when a waiter waits on KEY and EVENT may have added
 * elements.  Returns whether it did. */
bool rwait_key_event(RWaitQueue *q, const char *key, const char *event);

/* Starts a round when one is wanted, none is in flight and there are waiters: returns true
 * and clears the wish; then take its chunks with rwait_chunk_next() until it gives NULL. */
bool rwait_round_begin(RWaitQueue *q);
/* The next chunk of the round begun last: the oldest waiters that are not in a round yet, as
 * many as fit in MAX_WAITERS waiters and MAX_KEYS distinct keys (a waiter with more keys goes
 * alone).  *RET NULL when every waiter is in the round.  -ENOMEM. */
int rwait_chunk_next(RWaitQueue *q, size_t max_waiters, size_t max_keys, RWaitChunk **ret);
/* Waiter I's own copy of the key at KEYS place P (0-based), or NULL when it does not wait on
 * it (P is not a valid answer for it).  Use it rather than C->keys[P], which may be another
 * waiter's copy, gone once that waiter was answered (rwait_chunk_done()). */
const char *rwait_chunk_key(const RWaitChunk *c, size_t i, size_t p);
/* Waiter I of C was answered (or its orphan's value put back): unlinks and frees it. */
void rwait_chunk_done(RWaitChunk *c, size_t i);
/* Redis answered C (or failed it), and the glue called rwait_chunk_done() for every waiter it
 * answered: the rest leave the round (orphans are freed) and wait on, no longer fresh.  Frees
 * C, and a dropped queue with its last chunk.  Returns C's queue, or NULL when it was freed. */
RWaitQueue *rwait_chunk_end(RWaitChunk *c);
