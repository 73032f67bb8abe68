/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "macro.h"

/* The events waiting for one worker id, oldest first. */
struct EventQueue {
        char *id;
        LIST_HEAD(QueuedEvent) items;
        size_t n;
};

static EventQueue *queue_free(EventQueue *q) {
        if (!q)
                return NULL;
        free(q->id);
        free(q);
        return NULL;
}

static int queue_get_or_new(EventQueues *qs, const char *worker, EventQueue **ret) {
        EventQueue *q;
        int r;

        if (!qs->queues) {
                qs->queues = hashmap_new();
                if (!qs->queues)
                        return -ENOMEM;
        }
        q = hashmap_get(qs->queues, worker);
        if (q) {
                *ret = q;
                return 0;
        }
        q = calloc(1, sizeof(EventQueue));
        if (!q || !(q->id = strdup(worker))) {
                free(q);
                return -ENOMEM;
        }
        r = hashmap_put(qs->queues, q->id, q);
        if (r < 0) {
                queue_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

/* Drops Q when it holds nothing: an absent worker nobody writes to costs nothing. */
static void queue_gc(EventQueues *qs, EventQueue *q) {
        if (q->n > 0)
                return;
        hashmap_remove(qs->queues, q->id);
        queue_free(q);
}

size_t event_queues_count(const EventQueues *qs, const char *worker) {
        EventQueue *q = qs->queues ? hashmap_get(qs->queues, worker) : NULL;
        return q ? q->n : 0;
}

int event_queues_push(EventQueues *qs, const EventQueueLimits *l, const char *worker, void *owner, const char *origin,
                      uint64_t cost, uint64_t now_ms, void *userdata, QueuedEvent **ret) {
        _cleanup_(freep) QueuedEvent *e = NULL;
        EventQueue *q;
        int r;

        assert(qs && l && worker && origin && ret);
        if (event_queues_count(qs, worker) >= l->max_per_worker)
                return -EHOSTUNREACH;
        if (cost > l->max_bytes || qs->bytes > l->max_bytes - cost)
                return -ENOBUFS;
        e = calloc(1, sizeof(QueuedEvent));
        if (!e || !(e->origin = strdup(origin)))
                return -ENOMEM;
        r = queue_get_or_new(qs, worker, &q);
        if (r < 0) {
                free(e->origin);
                return r;
        }
        e->queue = q;
        e->owner = owner;
        e->cost = cost;
        e->deadline_ms = l->max_age_ms < UINT64_MAX - now_ms ? now_ms + l->max_age_ms : UINT64_MAX;
        e->userdata = userdata;
        LIST_APPEND(by_queue, q->items, e);
        q->n++;
        LIST_APPEND(all, qs->all, e);
        qs->n++;
        qs->bytes += cost;
        *ret = TAKE_PTR(e);
        return 0;
}

void event_queues_remove(EventQueues *qs, QueuedEvent *e) {
        EventQueue *q = e->queue;

        if (!q)
                return;
        LIST_REMOVE(by_queue, q->items, e);
        q->n--;
        LIST_REMOVE(all, qs->all, e);
        qs->n--;
        qs->bytes -= e->cost;
        e->queue = NULL;
        queue_gc(qs, q);
}

static QueuedEvent *take(EventQueues *qs, QueuedEvent *e) {
        if (e)
                event_queues_remove(qs, e);
        return e;
}

QueuedEvent *event_queues_take(EventQueues *qs, const char *worker) {
        EventQueue *q = qs->queues ? hashmap_get(qs->queues, worker) : NULL;
        return take(qs, q ? q->items.first : NULL);
}

QueuedEvent *event_queues_take_expired(EventQueues *qs, uint64_t now_ms) {
        /* one age limit for all: the oldest expires first */
        QueuedEvent *e = qs->all.first;
        return take(qs, e && e->deadline_ms <= now_ms ? e : NULL);
}

size_t event_queues_take_owned(EventQueues *qs, const void *owner, QueuedEventList *ret) {
        QueuedEvent *e, *next;
        size_t n = 0;

        for (e = qs->all.first; e; e = next) {
                next = e->all_next;
                if (e->owner != owner)
                        continue;
                event_queues_remove(qs, e);
                LIST_APPEND(all, *ret, e);
                n++;
        }
        return n;
}

QueuedEvent *event_queues_take_first(EventQueues *qs) {
        return take(qs, qs->all.first);
}

uint64_t event_queues_next_deadline(const EventQueues *qs) {
        return qs->all.first ? qs->all.first->deadline_ms : UINT64_MAX;
}

QueuedEvent *queued_event_free(EventQueues *qs, QueuedEvent *e) {
        if (!e)
                return NULL;
        event_queues_remove(qs, e);
        free(e->origin);
        free(e);
        return NULL;
}

void event_queues_done(EventQueues *qs) {
        while (qs->all.first)
                queued_event_free(qs, qs->all.first);
        qs->queues = hashmap_free(qs->queues);
}
