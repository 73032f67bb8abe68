/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "barrier.h"

int barrier_wait_new(Barrier *b, size_t count, void *userdata, BarrierWait **ret) {
        BarrierWait *w;

        assert(b);
        assert(ret);
        w = calloc(1, sizeof(BarrierWait));
        if (!w)
                return -ENOMEM;
        *w = (BarrierWait) { .barrier = b, .count = count, .userdata = userdata };
        LIST_APPEND(waits, b->waits, w);
        b->n++;
        *ret = w;
        return 0;
}

static void wait_unlink(BarrierWait *w) {
        Barrier *b = w->barrier;

        if (!b)
                return;
        LIST_REMOVE(waits, b->waits, w);
        b->n--;
        w->barrier = NULL;
}

void barrier_wait_free(BarrierWait *w) {
        if (!w)
                return;
        wait_unlink(w);
        free(w);
}

BarrierWait *barrier_take_ready(Barrier *b, size_t n_workers) {
        BarrierWait *w;

        assert(b);
        LIST_FOREACH(waits, w, b->waits)
                if (barrier_reached(w->count, n_workers)) {
                        wait_unlink(w);
                        return w;
                }
        return NULL;
}
