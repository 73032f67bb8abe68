/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "bus/bus-util.h"
#include "deferred.h"
#include "log.h"
#include "namespace.h"
#include "peer.h"

typedef struct DeferredHeap {
        Deferred **items;
        size_t size;
        size_t allocated;
        sd_event_source *timer;
        LIST_HEAD(Deferred) all;    /* every pending call, with or without a deadline */
} DeferredHeap;

static DeferredHeap *heap_of(const Hub *h) {
        return h->deferred_heap;
}

static void heap_swap(DeferredHeap *q, size_t a, size_t b) {
        Deferred *t = q->items[a];
        q->items[a] = q->items[b];
        q->items[b] = t;
        q->items[a]->heap_index = a;
        q->items[b]->heap_index = b;
}

static void heap_up(DeferredHeap *q, size_t i) {
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (q->items[p]->deadline_ms <= q->items[i]->deadline_ms)
                        break;
                heap_swap(q, i, p);
                i = p;
        }
}

static void heap_down(DeferredHeap *q, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                if (l < q->size && q->items[l]->deadline_ms < q->items[m]->deadline_ms)
                        m = l;
                if (r < q->size && q->items[r]->deadline_ms < q->items[m]->deadline_ms)
                        m = r;
                if (m == i)
                        return;
                heap_swap(q, i, m);
                i = m;
        }
}

static void heap_remove(DeferredHeap *q, Deferred *d) {
        size_t i = d->heap_index;

        if (i == SIZE_MAX)
                return;
        q->size--;
        if (i != q->size) {
                q->items[i] = q->items[q->size];
                q->items[i]->heap_index = i;
                heap_down(q, i);
                heap_up(q, i);
        }
        d->heap_index = SIZE_MAX;
}

static void arm_timer(Hub *h) {
        DeferredHeap *q = heap_of(h);
        int r;

        if (q->size == 0) {
                (void) sd_event_source_set_enabled(q->timer, SD_EVENT_OFF);
                return;
        }
        r = sd_event_source_set_time(q->timer, q->items[0]->deadline_ms * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->timer, SD_EVENT_ON);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the deadline timer: %m");
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Hub *h = userdata;
        DeferredHeap *q = heap_of(h);
        uint64_t now = hub_now_ms(h);

        while (q->size > 0 && q->items[0]->deadline_ms <= now)
                deferred_end(q->items[0], DEFERRED_TIMEOUT);
        arm_timer(h);
        /* a wait that ended may have been all a namespace still held */
        namespace_check_all_unused(h);
        return 0;
}

int deferred_setup(Hub *h) {
        DeferredHeap *q = calloc(1, sizeof(DeferredHeap));
        int r;

        if (!q)
                return -ENOMEM;
        h->deferred_heap = q;
        r = sd_event_add_time(h->event, &q->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_timer, h);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(q->timer, SD_EVENT_OFF);
}

void deferred_shutdown(Hub *h) {
        DeferredHeap *q = heap_of(h);

        if (!q)
                return;
        sd_event_source_disable_unref(q->timer);
        free(q->items);
        free(q);
        h->deferred_heap = NULL;
}

size_t deferred_pending(const Hub *h) {
        return h->n_deferred;
}

int deferred_new(Hub *h, sd_bus_message *call, Peer *peer, uint64_t timeout_ms,
                 void (*on_end)(Deferred *d, DeferredEnd why), void *userdata, Deferred **ret) {
        DeferredHeap *q = heap_of(h);
        Deferred *d;

        /* one bound for every kind of wait a connection can start */
        if (peer && peer->n_deferred >= h->limits.max_pending_per_peer)
                return -ENOBUFS;
        d = calloc(1, sizeof(Deferred));
        if (!d)
                return -ENOMEM;
        *d = (Deferred) {
                .hub = h,
                .call = sd_bus_message_ref(call),
                .peer = peer,
                .deadline_ms = UINT64_MAX,
                .heap_index = SIZE_MAX,
                .on_end = on_end,
                .userdata = userdata,
        };
        /* a deadline the timer cannot express (ms * 1000 would overflow) is no deadline */
        uint64_t now = hub_now_ms(h);
        if (timeout_ms > 0 && timeout_ms < UINT64_MAX / USEC_PER_MSEC - now) {
                if (q->size == q->allocated) {
                        size_t a = MAX(q->allocated * 2, (size_t) 16);
                        Deferred **n = realloc(q->items, a * sizeof(Deferred *));
                        if (!n) {
                                sd_bus_message_unref(d->call);
                                free(d);
                                return -ENOMEM;
                        }
                        q->items = n;
                        q->allocated = a;
                }
                d->deadline_ms = now + timeout_ms;
                d->heap_index = q->size;
                q->items[q->size++] = d;
                heap_up(q, d->heap_index);
                if (q->items[0] == d)
                        arm_timer(h);
        }
        LIST_APPEND(all, q->all, d);
        if (peer) {
                LIST_APPEND(by_peer, peer->deferred, d);
                peer->n_deferred++;
        }
        h->n_deferred++;
        *ret = d;
        return 0;
}

void deferred_free(Deferred *d) {
        if (!d)
                return;
        heap_remove(heap_of(d->hub), d);
        LIST_REMOVE(all, heap_of(d->hub)->all, d);
        if (d->peer) {
                LIST_REMOVE(by_peer, d->peer->deferred, d);
                d->peer->n_deferred--;
        }
        d->hub->n_deferred--;
        sd_bus_message_unref(d->call);
        free(d);
}

static void fail_one(Deferred *d, const char *name, const char *why) {
        (void) bus_reply_errorf(d->call, name, "The hub is exiting (%s); the call was not completed.", why);
        deferred_end(d, DEFERRED_SHUTDOWN);
}

void deferred_end(Deferred *d, DeferredEnd why) {
        /* out of the heap and the peer's list first, so on_end may do anything */
        heap_remove(heap_of(d->hub), d);
        if (d->on_end)
                d->on_end(d, why);
        deferred_free(d);
}

void deferred_fail_all(Hub *h, const char *name, const char *why) {
        DeferredHeap *q = heap_of(h);

        /* ending one call may end or complete others (a lock passed on, a gather finished):
         * always take the list's head again */
        while (q && q->all.first)
                fail_one(q->all.first, name, why);
}
