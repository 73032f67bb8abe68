/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "list.h"

/* The WaitForWorkers barrier: calls waiting until at least COUNT workers are registered.  Plain
 * logic, no D-Bus: the glue (bus/bus-workers.c) adds one wait per call, hands back the waits
 * the number of workers now satisfies and answers them; a wait that times out or whose caller
 * leaves is removed with barrier_wait_free(), the caller's deadline being the glue's. */

typedef struct BarrierWait BarrierWait;

typedef struct Barrier {
        LIST_HEAD(BarrierWait) waits;   /* oldest first */
        size_t n;
} Barrier;

struct BarrierWait {
        Barrier *barrier;
        size_t count;                   /* workers it waits for */
        void *userdata;                 /* the glue's: the call */
        LIST_FIELDS(BarrierWait, waits);
};

/* Whether N_WORKERS registered workers satisfy a wait for COUNT. */
static inline bool barrier_reached(size_t count, size_t n_workers) {
        return n_workers >= count;
}

/* A wait for COUNT workers, last in B. */
int barrier_wait_new(Barrier *b, size_t count, void *userdata, BarrierWait **ret);
/* Removes W from its barrier and frees it (NULL is fine). */
void barrier_wait_free(BarrierWait *w);
/* The oldest wait of B that N_WORKERS registered workers satisfy, removed from B (the caller
 * frees it once answered); NULL when none.  Called whenever the number of workers grew: a
 * worker that leaves before then does not count, and no wait is ever satisfied twice. */
BarrierWait *barrier_take_ready(Barrier *b, size_t n_workers);
