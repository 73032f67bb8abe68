/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Events1: Emit broadcasts, EmitTo unicasts or queues. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-events.h"
#include "bus-util.h"
#include "ch-errors.h"
#include "variant-codec.h"
#include "deferred.h"
#include "log.h"
#include "namespace.h"
#include "peer.h"
#include "workers.h"

/* EmitTo calls waiting for a worker id that is not registered yet, oldest first.  Each is a
 * Deferred whose deadline is the queue age limit; the call message itself holds the event
 * and its payload, so nothing is copied while it waits. */
typedef struct WorkerQueue {
        char *id;
        LIST_HEAD(Deferred) items;
        size_t n;
} WorkerQueue;

typedef struct QueuedEvent {
        WorkerQueue *queue;
        Namespace *ns;          /* where it was emitted: DropNamespace fails it */
        char *origin;
        uint64_t cost;          /* bytes charged to hub->queued_bytes */
} QueuedEvent;

static int copy_payload(sd_bus_message *signal, void *userdata) {
        sd_bus_message *call = userdata;
        return sd_bus_message_copy(signal, call, false);
}

static const char *origin_of(Hub *h, sd_bus_message *m) {
        Peer *p = peer_find(h, sd_bus_message_get_sender(m));
        return p ? peer_origin(p) : sd_bus_message_get_sender(m);
}

static int check_event(Namespace *ns, sd_bus_error *ret_error, const char *event) {
        return bus_check_name(ret_error, "event name", event, ns->hub->limits.max_name_bytes);
}

static int method_emit(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *event) {
        Namespace *ns = userdata;
        Hub *h = ns->hub;
        int r;

        r = check_event(ns, ret_error, event);
        if (r < 0)
                return r;
        r = ch_events1_emit_event(h->bus, NULL, ns->path, event, origin_of(h, m), copy_payload, m);
        if (r < 0)
                return bus_error_errno(ret_error, r, "Cannot emit event '%s': %s", event, strerror(-r));
        h->stats.events_emitted++;
        return ch_events1_reply_emit(m);
}

/* Sends the EmitTo call CALL's event to P; CALL is positioned at its payload. */
static int deliver(Hub *h, Peer *p, sd_bus_message *call, const char *ns_path, const char *event, const char *origin) {
        int r = ch_events1_emit_event(h->bus, p->unique_name, ns_path, event, origin, copy_payload, call);
        if (r >= 0)
                h->stats.events_emitted++;
        return r;
}

static void queued_free(QueuedEvent *q) {
        free(q->origin);
        free(q);
}

static void queue_unlink(Hub *h, Deferred *d) {
        QueuedEvent *q = d->userdata;
        WorkerQueue *wq = q->queue;

        h->queued_bytes -= q->cost;
        LIST_REMOVE(by_kind, wq->items, d);
        wq->n--;
        if (wq->n == 0) {
                hashmap_remove(h->worker_queues, wq->id);
                free(wq->id);
                free(wq);
        }
        queued_free(q);
}

static void queued_ended(Deferred *d, DeferredEnd why) {
        Hub *h = d->hub;
        QueuedEvent *q = d->userdata;
        _cleanup_(freep) char *id = strdup(q->queue->id);

        h->stats.events_dropped++;
        queue_unlink(h, d);
        if (why == DEFERRED_TIMEOUT)
                (void) sd_bus_reply_method_errorf(d->call, "org.clusterhub.Error.WorkerUnavailable",
                                                  "Worker '%s' did not register within %llu ms (--max-queue-age-ms).",
                                                  id ? id : "?", (unsigned long long) h->limits.max_queue_age_ms);
}

/* What a queued EmitTo really costs the hub beyond its payload and names: the retained
 * sd_bus_message (its struct, the received buffer's header and the allocator's rounding), the
 * Deferred, the QueuedEvent and its place in the deadline heap.  Measured with the hub's
 * VmRSS over 5,000-20,000 queued calls (payloads 's' of 64 B to 8 kB, 'ay', 'a(y)'):
 * 1,374 to 1,626 bytes per message beyond the payload's wire size, on glibc x86-64. */
#define QUEUED_OVERHEAD 1664

static size_t align_to(size_t offset, size_t alignment) {
        return (offset + alignment - 1) & ~(alignment - 1);
}

/* The D-Bus marshalling alignment of a value of TYPE, and its size when fixed (else 0). */
static size_t type_alignment(char type, size_t *ret_fixed) {
        size_t fixed = 0, alignment;

        switch (type) {
        case 'y': fixed = 1; alignment = 1; break;
        case 'n': case 'q': fixed = 2; alignment = 2; break;
        case 'b': case 'i': case 'u': case 'h': fixed = 4; alignment = 4; break;
        case 'x': case 't': case 'd': fixed = 8; alignment = 8; break;
        case 'g': case 'v': alignment = 1; break;
        case 'r': case 'e': case '(': case '{': alignment = 8; break;
        default: alignment = 4; break; /* s, o, a */
        }
        if (ret_fixed)
                *ret_fixed = fixed;
        return alignment;
}

/* Adds to *SIZE the wire size of the values from M's read position to the end of the
 * current container, as D-Bus marshals them (padding included: an 'a(y)' costs 8 bytes per
 * element where its stored form costs 1).  Linear in the payload; arrays of fixed-size
 * values are read in one step. */
static int wire_size(sd_bus_message *m, uint64_t *size) {
        for (;;) {
                const char *contents;
                size_t fixed;
                char type;
                int r;

                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r <= 0)
                        return r;
                *size = align_to(*size, type_alignment(type, &fixed));
                if (fixed > 0) {
                        uint64_t scratch;
                        *size += fixed;
                        r = sd_bus_message_read_basic(m, type, &scratch);
                } else if (type == 's' || type == 'o' || type == 'g') {
                        const char *v;
                        r = sd_bus_message_read_basic(m, type, &v);
                        *size += (type == 'g' ? 1 : 4) + (r >= 0 ? strlen(v) : 0) + 1;
                } else {
                        if (type == 'a') {
                                size_t elem_fixed;
                                size_t elem_alignment = type_alignment(contents[0], &elem_fixed);

                                *size = align_to(*size + 4, elem_alignment);
                                if (elem_fixed > 0 && !contents[1]) {
                                        const void *p;
                                        size_t n;
                                        r = sd_bus_message_read_array(m, contents[0], &p, &n);
                                        *size += n;
                                        if (r < 0)
                                                return r;
                                        continue;
                                }
                        } else if (type == 'v')
                                *size += strlen(contents) + 2;
                        r = sd_bus_message_enter_container(m, type, contents);
                        if (r < 0)
                                return r;
                        r = wire_size(m, size);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(m);
                }
                if (r < 0)
                        return r;
        }
}

/* What queueing the EmitTo call M costs: its payload as marshalled, the names it carries
 * (path, event, worker id; the origin twice: sender field and our copy), and the rest. */
static int queued_cost(sd_bus_message *m, const char *origin, uint64_t *ret) {
        const char *worker, *event;
        uint64_t size = 0;
        int r;

        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ss", &worker, &event);
        if (r < 0)
                return r;
        r = wire_size(m, &size);
        if (r < 0)
                return r;
        *ret = size + strlen(sd_bus_message_get_path(m)) + strlen(worker) + strlen(event) + 2 * strlen(origin) +
               QUEUED_OVERHEAD;
        return 0;
}

static int enqueue(Namespace *ns, sd_bus_message *m, sd_bus_error *ret_error, const char *worker, const char *event) {
        Hub *h = ns->hub;
        WorkerQueue *wq = hashmap_get(h->worker_queues, worker);
        QueuedEvent *q;
        Deferred *d;
        uint64_t cost = 0;
        int r;

        if (wq && wq->n >= h->limits.max_queued_per_worker) {
                h->stats.events_dropped++;
                return bus_error_errno(ret_error, -EHOSTUNREACH,
                                       "Worker '%s' is not registered and already has %zu queued messages (--max-queued-per-worker).",
                                       worker, wq->n);
        }
        /* the queue holds the payload: bound it, and keep no fds for a process that may never come */
        {
                CodecBuf buf = {};
                size_t size;
                r = codec_read(m, "v", &buf);
                size = buf.size;
                codec_buf_done(&buf);
                if (r == -EBADF)
                        return bus_error_errno(ret_error, -EINVAL, "Worker '%s' is not registered; an event carrying file descriptors is not queued.", worker);
                if (r == -ELOOP)
                        return bus_error_errno(ret_error, -EINVAL, "The payload of '%s' is nested too deeply.", event);
                if (r < 0)
                        return r;
                if (size > h->limits.max_value_bytes)
                        return bus_error_errno(ret_error, -ENOBUFS, "Worker '%s' is not registered and the payload of '%s' is larger than --max-value-bytes=%llu, the most that is queued.",
                                               worker, event, (unsigned long long) h->limits.max_value_bytes);
                r = queued_cost(m, origin_of(h, m), &cost);
                if (r < 0)
                        return r;
                if (h->queued_bytes + cost > h->limits.max_queued_bytes) {
                        h->stats.events_dropped++;
                        return bus_error_errno(ret_error, -ENOBUFS,
                                               "Worker '%s' is not registered and the hub already holds %llu bytes for absent workers (--max-queued-bytes).",
                                               worker, (unsigned long long) h->queued_bytes);
                }
        }
        if (!wq) {
                wq = calloc(1, sizeof(WorkerQueue));
                if (!wq || !(wq->id = strdup(worker))) {
                        free(wq);
                        return -ENOMEM;
                }
                r = hashmap_put(h->worker_queues, wq->id, wq);
                if (r < 0) {
                        free(wq->id);
                        free(wq);
                        return r;
                }
        }
        q = calloc(1, sizeof(QueuedEvent));
        if (!q || !(q->origin = strdup(origin_of(h, m)))) {
                free(q);
                r = -ENOMEM;
                goto fail;
        }
        q->queue = wq;
        q->ns = ns;
        q->cost = cost;
        r = deferred_new(h, m, NULL, h->limits.max_queue_age_ms, queued_ended, q, &d);
        if (r < 0) {
                queued_free(q);
                goto fail;
        }
        LIST_APPEND(by_kind, wq->items, d);
        wq->n++;
        h->queued_bytes += cost;
        h->stats.events_queued++;
        return 1;
fail:
        if (wq->n == 0) {
                hashmap_remove(h->worker_queues, wq->id);
                free(wq->id);
                free(wq);
        }
        return r;
}

static int method_emit_to(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *worker, const char *event) {
        Namespace *ns = userdata;
        Peer *p;
        int r;

        if (!worker_id_is_valid(worker))
                return bus_error_errno(ret_error, -EINVAL, "'%s' is not a worker id: 1 to %d characters of [A-Za-z0-9_].",
                                       worker, WORKER_ID_MAX);
        r = check_event(ns, ret_error, event);
        if (r < 0)
                return r;
        p = workers_find(ns->hub, worker);
        if (!p)
                return enqueue(ns, m, ret_error, worker, event);
        r = deliver(ns->hub, p, m, ns->path, event, origin_of(ns->hub, m));
        if (r < 0)
                return bus_error_errno(ret_error, -EHOSTUNREACH, "Cannot send event '%s' to worker '%s': %s", event, worker, strerror(-r));
        return ch_events1_reply_emit_to(m);
}

void bus_events_worker_joined(Peer *p) {
        Hub *h = p->hub;
        WorkerQueue *wq = hashmap_get(h->worker_queues, p->id);
        unsigned delivered = 0;

        while (wq) {
                Deferred *d = wq->items.first;
                QueuedEvent *q = d->userdata;
                const char *worker = NULL, *event = NULL;
                bool last = wq->n == 1;
                int r;

                r = sd_bus_message_rewind(d->call, true);
                if (r >= 0)
                        r = sd_bus_message_read(d->call, "ss", &worker, &event);
                if (r >= 0)
                        r = deliver(h, p, d->call, sd_bus_message_get_path(d->call), event, q->origin);
                if (r >= 0) {
                        (void) ch_events1_reply_emit_to(d->call);
                        delivered++;
                } else
                        (void) sd_bus_reply_method_errorf(d->call, "org.clusterhub.Error.WorkerUnavailable",
                                                          "Delivery to worker '%s' failed: %s", p->id, strerror(-r));
                queue_unlink(h, d);
                deferred_free(d);
                if (last)
                        break;
        }
        if (delivered > 0)
                log_debug("Delivered %u queued events to worker %s.", delivered, p->id);
}

void bus_events_drop(Namespace *ns) {
        Hub *h = ns->hub;
        WorkerQueue *wq;
        size_t i = 0;
        unsigned failed = 0;

        /* removing the current entry (a queue emptied here) while iterating is allowed */
        while (hashmap_iterate(h->worker_queues, &i, (void **) &wq, NULL)) {
                Deferred *d, *next;

                for (d = wq->items.first; d; d = next) {
                        QueuedEvent *q = d->userdata;

                        next = d->by_kind_next; /* NULL for the last one, whose unlink frees WQ */
                        if (q->ns != ns)
                                continue;
                        (void) sd_bus_reply_method_errorf(d->call, CH_ERROR_NAMESPACE_DROPPED,
                                                          "Namespace '%s' was dropped while this event waited for worker '%s'.",
                                                          ns->name, wq->id);
                        h->stats.events_dropped++;
                        failed++;
                        queue_unlink(h, d);
                        deferred_free(d);
                }
        }
        if (failed > 0)
                log_debug("Failed %u queued events of dropped namespace %s.", failed, ns->name);
}

void bus_events_shutdown(Hub *h) {
        WorkerQueue *wq;
        size_t i = 0;

        while (hashmap_iterate(h->worker_queues, &i, (void **) &wq, NULL)) {
                while (wq->items.first) {
                        Deferred *d = wq->items.first;
                        bool last = wq->n == 1;
                        queue_unlink(h, d);
                        deferred_free(d);
                        if (last)
                                break;
                }
                i = 0;
        }
}

const ChEvents1Handlers bus_events_handlers = {
        .emit = method_emit,
        .emit_to = method_emit_to,
};
