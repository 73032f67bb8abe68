/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Events1: Emit broadcasts, EmitTo unicasts or queues. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/rrequests.h"
#include "bus-events.h"
#include "bus-util.h"
#include "ch-errors.h"
#include "variant-codec.h"
#include "deferred.h"
#include "events.h"
#include "log.h"
#include "namespace.h"
#include "peer.h"
#include "transport/socket.h"
#include "workers.h"

static int copy_payload(sd_bus_message *signal, void *userdata) {
        sd_bus_message *call = userdata;
        return sd_bus_message_copy(signal, call, false);
}

/* The origin an event names: its emitter's worker id, else the emitter's name (its unique name
 * on the bus, its connection's on the private socket; never a sender field written there). */
static const char *origin_of(Hub *h, sd_bus_message *m) {
        Peer *p = peer_of(h, m);
        return p ? peer_origin(p) : strempty(peer_name_of(h, m));
}

static int check_event(Namespace *ns, sd_bus_error *ret_error, const char *event) {
        return bus_check_name(ret_error, "event name", event, ns->hub->limits.max_name_bytes);
}

/* Sends the EmitTo call CALL's event to P; CALL is positioned at its payload. */
static int deliver(Hub *h, Peer *p, sd_bus_message *call, const char *ns_path, const char *event, const char *origin) {
        /* on P's own connection: the bus, or its private-socket connection */
        int r = ch_events1_emit_event(p->bus, p->unique_name, ns_path, event, origin, copy_payload, call);
        if (r >= 0)
                h->stats.events_emitted++;
        return r;
}

/* The EmitTo queue (events.c) holds the order, the bounds and the deadlines; each event's call
 * is a Deferred without deadline of its own (the queue's timer ends it), so that the hub's exit
 * answers it like any pending call, and the call message itself holds the event and its
 * payload: nothing is copied while it waits. */

static EventQueueLimits queue_limits(const Hub *h) {
        return (EventQueueLimits) {
                .max_per_worker = h->limits.max_queued_per_worker,
                .max_age_ms = h->limits.max_queue_age_ms,
                .max_bytes = h->limits.max_queued_bytes,
        };
}

/* The worker id an EmitTo call names (its first argument). */
static const char *queued_worker(sd_bus_message *call) {
        const char *worker = NULL;

        if (sd_bus_message_rewind(call, true) < 0 || sd_bus_message_read_basic(call, 's', &worker) < 0)
                return "?";
        return worker;
}

/* E is out of the queues: its namespace may be unused now, and its call is done with. */
static void queued_done(Hub *h, QueuedEvent *e) {
        Deferred *d = e->userdata;
        Namespace *ns = e->owner;

        ns->n_queued_events--;
        namespace_check_unused(ns);
        queued_event_free(&h->event_queues, e);
        if (d) {
                d->userdata = NULL;
                deferred_free(d);
        }
}

/* The hub is exiting: deferred.c answered the call; the event leaves its queue. */
static void queued_ended(Deferred *d, DeferredEnd why) {
        QueuedEvent *e = d->userdata;

        if (!e)
                return;
        d->hub->stats.events_dropped++;
        e->userdata = NULL; /* deferred.c frees D */
        queued_done(d->hub, e);
}

static int on_queue_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Arms the queue's timer for its earliest deadline (off when none, or one the timer cannot
 * express: ms * 1000 would overflow). */
static void queue_timer_arm(Hub *h) {
        uint64_t next = event_queues_next_deadline(&h->event_queues);
        int r;

        if (next >= UINT64_MAX / USEC_PER_MSEC) {
                if (h->event_queue_timer)
                        (void) sd_event_source_set_enabled(h->event_queue_timer, SD_EVENT_OFF);
                return;
        }
        if (!h->event_queue_timer)
                r = sd_event_add_time(h->event, &h->event_queue_timer, CLOCK_MONOTONIC, next * USEC_PER_MSEC, USEC_PER_MSEC,
                                      on_queue_timer, h);
        else {
                r = sd_event_source_set_time(h->event_queue_timer, next * USEC_PER_MSEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(h->event_queue_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to arm the EmitTo queue's timer: %m");
}

static int on_queue_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Hub *h = userdata;
        QueuedEvent *e;

        while ((e = event_queues_take_expired(&h->event_queues, hub_now_ms(h)))) {
                Deferred *d = e->userdata;

                h->stats.events_dropped++;
                (void) bus_reply_errorf(d->call, CH_ERROR_WORKER_UNAVAILABLE,
                                        "Worker '%s' did not register within %llu ms (--max-queue-age-ms).",
                                        queued_worker(d->call), (unsigned long long) h->limits.max_queue_age_ms);
                queued_done(h, e);
        }
        queue_timer_arm(h);
        return 0;
}

/* What a queued EmitTo really costs the hub beyond its payload and names: the retained
 * sd_bus_message (its struct, the received buffer's header and the allocator's rounding), the
 * Deferred, the QueuedEvent and its place in the deadline heap.  Measured with the hub's
 * VmRSS over 5,000-20,000 queued calls (payloads 's' of 64 B to 8 kB, 'ay', 'a(y)'):
 * 1,374 to 1,626 bytes per message beyond the payload's wire size, on glibc x86-64. */
#define QUEUED_OVERHEAD 1664

/* What queueing the EmitTo call M costs: its payload as marshalled (WIRE bytes), the names it
 * carries (path, event, worker id; the origin twice: sender field and our copy), and the rest. */
static uint64_t queued_cost(sd_bus_message *m, uint64_t wire, const char *worker, const char *event, const char *origin) {
        return wire + strlen(sd_bus_message_get_path(m)) + strlen(worker) + strlen(event) + 2 * strlen(origin) +
               QUEUED_OVERHEAD;
}

/* The marshalled size of M's payload, which follows N_STRINGS strings; M is left positioned at
 * the payload again. */
static int payload_wire_size(sd_bus_message *m, unsigned n_strings, uint64_t *ret) {
        const char *skip;
        uint64_t size = 0;
        int r;

        for (unsigned pass = 0; pass < 2; pass++) {
                r = sd_bus_message_rewind(m, true);
                for (unsigned i = 0; r >= 0 && i < n_strings; i++)
                        r = sd_bus_message_read_basic(m, 's', &skip);
                if (r < 0)
                        return r;
                if (pass == 0) {
                        r = bus_message_values_size(m, &size);
                        if (r < 0)
                                return r;
                }
        }
        *ret = size;
        return 0;
}

/* --- what one emitter may broadcast -------------------------------------------------------
 * The bus charges the hub for every signal it has not delivered yet: dbus-daemon stops reading
 * from the hub once 127 MiB of them wait for a subscriber that does not read, and every client
 * of the hub then waits (docs/guarantees.md).  So the hub bounds each event
 * (--max-event-bytes) and the bytes each connection may emit per second
 * (--max-emit-bytes-per-sec, a token bucket holding one second's worth, or one largest event).
 * A bucket is kept only while it is not full: a full one is the same as none, so idle
 * emitters cost nothing and the map is swept of them as it grows. */

typedef struct EmitBucket {
        char *sender;
        double tokens;          /* bytes that may be emitted now */
        uint64_t updated_usec;
} EmitBucket;

/* What the Event signal of PAYLOAD_WIRE bytes costs on the bus, about: header and names too. */
static uint64_t event_cost(const char *path, const char *event, const char *origin, uint64_t payload_wire) {
        return 128 + strlen(path) + strlen(event) + strlen(origin) + payload_wire;
}

/* One second's worth, and never less than the largest event costs, names and header included,
 * so that every event that passes --max-event-bytes can go out at some rate. */
static double bucket_capacity(const Hub *h) {
        uint64_t largest = event_cost(HUB_NS_PREFIX, "", "", h->limits.max_event_bytes) + 3 * h->limits.max_name_bytes + 64;
        return (double) MAX(h->limits.max_emit_bytes_per_sec, largest);
}

static void bucket_refill(const Hub *h, EmitBucket *b, uint64_t now) {
        if (now > b->updated_usec)
                b->tokens += (double) (now - b->updated_usec) * (double) h->limits.max_emit_bytes_per_sec / USEC_PER_SEC;
        b->tokens = MIN(b->tokens, bucket_capacity(h));
        b->updated_usec = now;
}

static void bucket_free(EmitBucket *b) {
        free(b->sender);
        free(b);
}

/* Drops the buckets that have refilled: they are the same as none. */
static void buckets_sweep(Hub *h, uint64_t now) {
        EmitBucket *b;
        size_t i = 0;

        while (hashmap_iterate(h->emit_buckets, &i, (void **) &b, NULL)) {
                bucket_refill(h, b, now);
                if (b->tokens >= bucket_capacity(h)) {
                        hashmap_remove(h->emit_buckets, b->sender);
                        bucket_free(b);
                }
        }
        h->emit_buckets_swept = hashmap_size(h->emit_buckets);
}

/* Takes COST bytes from SENDER's bucket: 1, or 0 when it has not enough. */
static int bucket_take(Hub *h, const char *sender, uint64_t cost) {
        EmitBucket *b;
        uint64_t now = 0;
        int r;

        if (h->limits.max_emit_bytes_per_sec == 0)
                return 1;
        (void) sd_event_now(h->event, CLOCK_MONOTONIC, &now);
        if (!h->emit_buckets) {
                h->emit_buckets = hashmap_new();
                if (!h->emit_buckets)
                        return -ENOMEM;
        }
        b = hashmap_get(h->emit_buckets, sender);
        if (b)
                bucket_refill(h, b, now);
        else {
                if (hashmap_size(h->emit_buckets) >= MAX(h->emit_buckets_swept * 2, (size_t) 1024))
                        buckets_sweep(h, now);
                b = calloc(1, sizeof(EmitBucket));
                if (!b || !(b->sender = strdup(sender))) {
                        free(b);
                        return -ENOMEM;
                }
                b->tokens = bucket_capacity(h);
                b->updated_usec = now;
                r = hashmap_put(h->emit_buckets, b->sender, b);
                if (r < 0) {
                        bucket_free(b);
                        return r;
                }
        }
        if (b->tokens < (double) cost)
                return 0;
        b->tokens -= (double) cost;
        return 1;
}

/* Whether the event EVENT of call M (its payload after N_STRINGS strings) may go out: within
 * --max-event-bytes, and within what its sender may emit per second.  M stays positioned at
 * the payload; *RET_WIRE is the payload's marshalled size. */
static int event_admit(Namespace *ns, sd_bus_message *m, unsigned n_strings, const char *event, sd_bus_error *ret_error,
                       uint64_t *ret_wire) {
        Hub *h = ns->hub;
        const char *origin = origin_of(h, m);
        uint64_t wire, cost;
        int r;

        r = payload_wire_size(m, n_strings, &wire);
        if (r < 0)
                return r;
        if (wire > h->limits.max_event_bytes) {
                h->stats.events_refused++;
                return bus_error_errno(ret_error, -ENOBUFS, "The payload of event '%s' is %llu bytes on the bus; the limit is "
                                       "--max-event-bytes=%llu.", event, (unsigned long long) wire,
                                       (unsigned long long) h->limits.max_event_bytes);
        }
        cost = event_cost(ns->path, event, origin, wire);
        r = bucket_take(h, peer_name_of(h, m) ?: origin, cost);
        if (r < 0)
                return r;
        if (r == 0) {
                h->stats.events_refused++;
                return bus_error_errno(ret_error, -ENOBUFS, "%s emits faster than --max-emit-bytes-per-sec=%llu allows; event "
                                       "'%s' (%llu bytes) is refused.", origin,
                                       (unsigned long long) h->limits.max_emit_bytes_per_sec, event, (unsigned long long) cost);
        }
        *ret_wire = wire;
        return 0;
}

static int enqueue(Namespace *ns, sd_bus_message *m, sd_bus_error *ret_error, const char *worker, const char *event,
                   uint64_t wire) {
        Hub *h = ns->hub;
        EventQueueLimits l = queue_limits(h);
        size_t n = event_queues_count(&h->event_queues, worker);
        QueuedEvent *e;
        Deferred *d;
        uint64_t cost = 0;
        int r;

        if (n >= l.max_per_worker) {
                h->stats.events_dropped++;
                return bus_error_errno(ret_error, -EHOSTUNREACH,
                                       "Worker '%s' is not registered and already has %zu queued messages (--max-queued-per-worker).",
                                       worker, n);
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
                cost = queued_cost(m, wire, worker, event, origin_of(h, m));
        }
        r = deferred_new(h, m, NULL, 0, queued_ended, NULL, &d);
        if (r < 0)
                return r;
        r = event_queues_push(&h->event_queues, &l, worker, ns, origin_of(h, m), cost, hub_now_ms(h), d, &e);
        if (r < 0) {
                deferred_free(d);
                if (r != -ENOBUFS)
                        return r;
                h->stats.events_dropped++;
                return bus_error_errno(ret_error, -ENOBUFS,
                                       "Worker '%s' is not registered and the hub already holds %llu bytes for absent workers (--max-queued-bytes).",
                                       worker, (unsigned long long) h->event_queues.bytes);
        }
        d->userdata = e;
        ns->n_queued_events++;
        h->stats.events_queued++;
        if (h->event_queues.all.first == e)
                queue_timer_arm(h);
        return 1;
}

/* An Emit call's event, sent on any connection: the call is read again from its payload each
 * time, after its first N_SKIP strings. */
typedef struct EmitArgs {
        sd_bus_message *call;
        unsigned n_skip;
        const char *path, *event, *origin;
} EmitArgs;

static int copy_payload_again(sd_bus_message *signal, void *userdata) {
        EmitArgs *a = userdata;
        const char *skip;
        int r;

        r = sd_bus_message_rewind(a->call, true);
        for (unsigned i = 0; r >= 0 && i < a->n_skip; i++)
                r = sd_bus_message_read_basic(a->call, 's', &skip);
        if (r < 0)
                return r;
        return sd_bus_message_copy(signal, a->call, false);
}

static int emit_event_on(sd_bus *bus, void *userdata) {
        EmitArgs *a = userdata;
        return ch_events1_emit_event(bus, NULL, a->path, a->event, a->origin, copy_payload_again, a);
}

static int method_emit(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *event) {
        Namespace *ns = userdata;
        Hub *h = ns->hub;
        int r;

        uint64_t wire;

        r = check_event(ns, ret_error, event);
        if (r < 0)
                return r;
        r = event_admit(ns, m, 1, event, ret_error, &wire);
        if (r < 0)
                return r;
        EmitArgs a = { .call = m, .n_skip = 1, .path = ns->path, .event = event, .origin = origin_of(h, m) };
        SignalProbe probe = { ns->path, CH_EVENTS1_INTERFACE, "Event", "ss", { event, a.origin } };
        r = hub_broadcast(h, &probe, emit_event_on, &a);
        if (r < 0)
                return bus_error_errno(ret_error, r, "Cannot emit event '%s': %s", event, strerror(-r));
        h->stats.events_emitted++;
        /* other hosts (--redis), after this host's subscribers, who never wait for Redis */
        r = backend_publish_event(h, ns->name, event, a.origin, m, 1);
        if (r < 0)
                return bus_error_errno(ret_error, r, "Event '%s' reached this host's subscribers only: %s", event,
                                       r == -EHOSTDOWN ? "Redis cannot be reached (--redis)" : strerror(-r));
        return ch_events1_reply_emit(m);
}

/* EmitTo ID@NODE, a worker of another hub (--redis): published to that hub, which delivers it
 * like a local EmitTo; not confirmed (at most once). */
static int emit_to_remote(Namespace *ns, sd_bus_message *m, sd_bus_error *ret_error, const char *worker, const char *event) {
        uint64_t wire;
        int r;

        r = check_event(ns, ret_error, event);
        if (r < 0)
                return r;
        r = event_admit(ns, m, 2, event, ret_error, &wire);
        if (r < 0)
                return r;
        r = rrequests_emit_to(ns->hub, ns->name, worker, event, origin_of(ns->hub, m), m, 2);
        if (r == -ENOENT)
                return bus_error_errno(ret_error, -ENOLINK, "No worker '%s' is registered on another host.", worker);
        if (r == -EINVAL)
                return bus_error_errno(ret_error, r, "Event '%s' carries file descriptors, which cannot cross hosts.", event);
        if (r == -EHOSTDOWN)
                return bus_error_errno(ret_error, r, "Redis cannot be reached (--redis) to send event '%s' to '%s'.", event, worker);
        if (r < 0)
                return bus_error_errno(ret_error, r, "Cannot send event '%s' to worker '%s': %s", event, worker, strerror(-r));
        ns->hub->stats.events_emitted++;
        return ch_events1_reply_emit_to(m);
}

typedef struct RemotePayload {
        const void *data;
        size_t size;
} RemotePayload;

static int append_remote_payload(sd_bus_message *signal, void *userdata) {
        const RemotePayload *p = userdata;
        return codec_append(signal, "v", p->data, p->size);
}

int bus_events_deliver_remote(Hub *h, const char *ns, const char *worker, const char *event, const char *origin,
                              const void *payload, size_t size) {
        _cleanup_(freep) char *path = NULL;
        RemotePayload pl = { payload, size };
        Peer *p;
        int r;

        if (!namespace_name_is_valid(h, ns) || !worker_id_is_valid(worker) || strlen(event) == 0 ||
            strlen(event) > h->limits.max_name_bytes)
                return -EINVAL;
        p = workers_find(h, worker);
        if (!p)
                return -ENOLINK;
        if (asprintf(&path, "%s/%s", HUB_NS_PREFIX, ns) < 0)
                return -ENOMEM;
        r = ch_events1_emit_event(p->bus, p->unique_name, path, event, origin, append_remote_payload, &pl);
        if (r >= 0)
                h->stats.events_emitted++;
        return r;
}

static int method_emit_to(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *worker, const char *event) {
        Namespace *ns = userdata;
        Peer *p;
        int r;

        if (strchr(worker, '@') && backend_link(ns->hub))
                return emit_to_remote(ns, m, ret_error, worker, event);
        if (!worker_id_is_valid(worker))
                return bus_error_errno(ret_error, -EINVAL, "'%s' is not a worker id: 1 to %d characters of [A-Za-z0-9_].",
                                       worker, WORKER_ID_MAX);
        uint64_t wire;

        r = check_event(ns, ret_error, event);
        if (r < 0)
                return r;
        r = event_admit(ns, m, 2, event, ret_error, &wire);
        if (r < 0)
                return r;
        p = workers_find(ns->hub, worker);
        if (!p)
                return enqueue(ns, m, ret_error, worker, event, wire);
        r = deliver(ns->hub, p, m, ns->path, event, origin_of(ns->hub, m));
        if (r < 0)
                return bus_error_errno(ret_error, -EHOSTUNREACH, "Cannot send event '%s' to worker '%s': %s", event, worker, strerror(-r));
        return ch_events1_reply_emit_to(m);
}

void bus_events_worker_joined(Peer *p) {
        Hub *h = p->hub;
        unsigned delivered = 0;
        QueuedEvent *e;

        while ((e = event_queues_take(&h->event_queues, p->id))) {
                Deferred *d = e->userdata;
                const char *worker = NULL, *event = NULL;
                int r;

                r = sd_bus_message_rewind(d->call, true);
                if (r >= 0)
                        r = sd_bus_message_read(d->call, "ss", &worker, &event);
                if (r >= 0)
                        r = deliver(h, p, d->call, sd_bus_message_get_path(d->call), event, e->origin);
                if (r >= 0) {
                        (void) ch_events1_reply_emit_to(d->call);
                        delivered++;
                } else
                        (void) bus_reply_errorf(d->call, CH_ERROR_WORKER_UNAVAILABLE,
                                                "Delivery to worker '%s' failed: %s", p->id, strerror(-r));
                queued_done(h, e);
        }
        if (delivered > 0)
                log_debug("Delivered %u queued events to worker %s.", delivered, p->id);
}

void bus_events_drop(Namespace *ns) {
        Hub *h = ns->hub;
        QueuedEventList dropped = {};
        QueuedEvent *e;
        size_t failed;

        failed = event_queues_take_owned(&h->event_queues, ns, &dropped);
        while ((e = dropped.first)) {
                Deferred *d = e->userdata;

                LIST_REMOVE(all, dropped, e);
                (void) bus_reply_errorf(d->call, CH_ERROR_NAMESPACE_DROPPED,
                                        "Namespace '%s' was dropped while this event waited for worker '%s'.",
                                        ns->name, queued_worker(d->call));
                h->stats.events_dropped++;
                queued_done(h, e);
        }
        if (failed > 0)
                log_debug("Failed %zu queued events of dropped namespace %s.", failed, ns->name);
}

void bus_events_shutdown(Hub *h) {
        QueuedEvent *e;
        EmitBucket *b;
        size_t i = 0;

        while (hashmap_iterate(h->emit_buckets, &i, (void **) &b, NULL)) {
                hashmap_remove(h->emit_buckets, b->sender);
                bucket_free(b);
        }
        h->emit_buckets = hashmap_free(h->emit_buckets);

        while ((e = event_queues_take_first(&h->event_queues)))
                queued_done(h, e);
        event_queues_done(&h->event_queues);
        h->event_queue_timer = sd_event_source_disable_unref(h->event_queue_timer);
}

const ChEvents1Handlers bus_events_handlers = {
        .emit = method_emit,
        .emit_to = method_emit_to,
};
