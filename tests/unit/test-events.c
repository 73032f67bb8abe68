/* SPDX-License-Identifier: MIT */
/* Unit tests of the EmitTo queue (service/events.c): events for absent workers, their bounds by
 * count, bytes and age, their order, and their delivery when the worker joins; driven by
 * explicit calls and a fake clock, without a bus. */
#include <errno.h>
#include <glib.h>

#include "events.h"

static const EventQueueLimits limits = { .max_per_worker = 3, .max_age_ms = 1000, .max_bytes = 1000 };

static QueuedEvent *push(EventQueues *qs, const char *worker, void *owner, uint64_t cost, uint64_t now, intptr_t tag) {
        QueuedEvent *e = NULL;

        g_assert_cmpint(event_queues_push(qs, &limits, worker, owner, "origin", cost, now, (void *) tag, &e), ==, 0);
        g_assert_nonnull(e);
        return e;
}

/* Takes the next event of WORKER and checks it is the one tagged TAG. */
static void take_expect(EventQueues *qs, const char *worker, intptr_t tag) {
        QueuedEvent *e = event_queues_take(qs, worker);

        g_assert_nonnull(e);
        g_assert_cmpint((intptr_t) e->userdata, ==, tag);
        queued_event_free(qs, e);
}

static void test_order_and_delivery(void) {
        EventQueues qs = {};

        push(&qs, "a", NULL, 10, 0, 1);
        push(&qs, "b", NULL, 10, 1, 2);
        push(&qs, "a", NULL, 10, 2, 3);
        push(&qs, "a", NULL, 10, 3, 4);
        g_assert_cmpuint(event_queues_count(&qs, "a"), ==, 3);
        g_assert_cmpuint(event_queues_count(&qs, "b"), ==, 1);
        g_assert_cmpuint(event_queues_count(&qs, "c"), ==, 0);
        g_assert_cmpuint(qs.bytes, ==, 40);

        /* worker a joins: its events come out in the order they were emitted, b's stay */
        take_expect(&qs, "a", 1);
        take_expect(&qs, "a", 3);
        take_expect(&qs, "a", 4);
        g_assert_null(event_queues_take(&qs, "a"));
        g_assert_cmpuint(event_queues_count(&qs, "b"), ==, 1);
        g_assert_cmpuint(qs.n, ==, 1);
        g_assert_cmpuint(qs.bytes, ==, 10);
        /* an emptied queue costs nothing */
        g_assert_cmpuint(hashmap_size(qs.queues), ==, 1);
        take_expect(&qs, "b", 2);
        g_assert_cmpuint(hashmap_size(qs.queues), ==, 0);
        g_assert_cmpuint(qs.bytes, ==, 0);
        event_queues_done(&qs);
}

static void test_bounds(void) {
        EventQueues qs = {};
        QueuedEvent *e = NULL;

        /* by count, per worker */
        push(&qs, "a", NULL, 100, 0, 1);
        push(&qs, "a", NULL, 100, 0, 2);
        push(&qs, "a", NULL, 100, 0, 3);
        g_assert_cmpint(event_queues_push(&qs, &limits, "a", NULL, "o", 1, 0, NULL, &e), ==, -EHOSTUNREACH);
        g_assert_null(e);
        g_assert_cmpuint(event_queues_count(&qs, "a"), ==, 3);

        /* by bytes, hub-wide: up to the limit exactly, not one byte more */
        push(&qs, "b", NULL, 600, 0, 4);
        g_assert_cmpint(event_queues_push(&qs, &limits, "c", NULL, "o", 101, 0, NULL, &e), ==, -ENOBUFS);
        g_assert_null(e);
        g_assert_cmpuint(event_queues_count(&qs, "c"), ==, 0);
        g_assert_cmpuint(hashmap_size(qs.queues), ==, 2);
        push(&qs, "c", NULL, 100, 0, 5);
        g_assert_cmpuint(qs.bytes, ==, 1000);
        g_assert_cmpint(event_queues_push(&qs, &limits, "d", NULL, "o", 1, 0, NULL, &e), ==, -ENOBUFS);
        /* a cost larger than the limit on its own does not wrap around */
        take_expect(&qs, "b", 4);
        g_assert_cmpint(event_queues_push(&qs, &limits, "d", NULL, "o", UINT64_MAX, 0, NULL, &e), ==, -ENOBUFS);

        /* room again once one is delivered */
        take_expect(&qs, "a", 1);
        push(&qs, "a", NULL, 100, 0, 6);
        take_expect(&qs, "a", 2);
        take_expect(&qs, "a", 3);
        take_expect(&qs, "a", 6);
        event_queues_done(&qs);
}

static void test_age_expiry(void) {
        EventQueues qs = {};
        QueuedEvent *e;

        g_assert_cmpuint(event_queues_next_deadline(&qs), ==, UINT64_MAX);
        push(&qs, "a", NULL, 10, 100, 1);
        push(&qs, "b", NULL, 10, 200, 2);
        push(&qs, "a", NULL, 10, 300, 3);
        g_assert_cmpuint(event_queues_next_deadline(&qs), ==, 1100);

        /* nothing is too old yet */
        g_assert_null(event_queues_take_expired(&qs, 1099));
        /* at 1200 ms the first two are max_age_ms old, oldest first, whatever their worker */
        e = event_queues_take_expired(&qs, 1200);
        g_assert_cmpint((intptr_t) e->userdata, ==, 1);
        queued_event_free(&qs, e);
        e = event_queues_take_expired(&qs, 1200);
        g_assert_cmpint((intptr_t) e->userdata, ==, 2);
        queued_event_free(&qs, e);
        g_assert_null(event_queues_take_expired(&qs, 1200));
        g_assert_cmpuint(event_queues_next_deadline(&qs), ==, 1300);
        g_assert_cmpuint(event_queues_count(&qs, "a"), ==, 1);

        /* a delivered event no longer expires: the deadline moves to the next one */
        push(&qs, "b", NULL, 10, 1250, 4);
        take_expect(&qs, "a", 3);
        g_assert_cmpuint(event_queues_next_deadline(&qs), ==, 2250);
        g_assert_null(event_queues_take_expired(&qs, 2000));
        g_assert_nonnull(e = event_queues_take_expired(&qs, 2250));
        queued_event_free(&qs, e);
        g_assert_cmpuint(qs.n, ==, 0);
        g_assert_cmpuint(qs.bytes, ==, 0);
        g_assert_cmpuint(event_queues_next_deadline(&qs), ==, UINT64_MAX);

        /* an age no clock reaches is no deadline, and does not wrap around */
        EventQueueLimits forever = limits;
        forever.max_age_ms = UINT64_MAX;
        g_assert_cmpint(event_queues_push(&qs, &forever, "a", NULL, "o", 1, 5, NULL, &e), ==, 0);
        g_assert_cmpuint(e->deadline_ms, ==, UINT64_MAX);
        g_assert_null(event_queues_take_expired(&qs, UINT64_MAX - 1));
        event_queues_done(&qs);
}

static void test_owner_dropped(void) {
        EventQueues qs = {};
        QueuedEventList dropped = {};
        int ns1, ns2;
        QueuedEvent *e;

        push(&qs, "a", &ns1, 10, 0, 1);
        push(&qs, "a", &ns2, 10, 0, 2);
        push(&qs, "b", &ns1, 10, 0, 3);
        push(&qs, "b", &ns2, 10, 0, 4);
        g_assert_cmpuint(event_queues_take_owned(&qs, &ns1, &dropped), ==, 2);
        g_assert_cmpint((intptr_t) dropped.first->userdata, ==, 1);
        g_assert_cmpint((intptr_t) dropped.last->userdata, ==, 3);
        while ((e = dropped.first)) {
                LIST_REMOVE(all, dropped, e);
                queued_event_free(&qs, e);
        }
        g_assert_cmpuint(qs.n, ==, 2);
        g_assert_cmpuint(qs.bytes, ==, 20);
        /* the rest keeps its order */
        take_expect(&qs, "a", 2);
        take_expect(&qs, "b", 4);
        g_assert_cmpuint(event_queues_take_owned(&qs, &ns2, &dropped), ==, 0);
        event_queues_done(&qs);
}

static void test_remove_and_done(void) {
        EventQueues qs = {};
        QueuedEvent *e;

        e = push(&qs, "a", NULL, 10, 0, 1);
        push(&qs, "a", NULL, 10, 0, 2);
        push(&qs, "b", NULL, 10, 0, 3);
        /* the hub exiting: one event leaves, out of order */
        event_queues_remove(&qs, e);
        event_queues_remove(&qs, e); /* twice is a no-op */
        queued_event_free(&qs, e);
        g_assert_cmpuint(qs.n, ==, 2);
        g_assert_cmpuint(event_queues_count(&qs, "a"), ==, 1);
        e = event_queues_take_first(&qs);
        g_assert_cmpint((intptr_t) e->userdata, ==, 2);
        queued_event_free(&qs, e);
        /* what is left is freed with the queues */
        event_queues_done(&qs);
        g_assert_null(qs.queues);
        g_assert_cmpuint(qs.n, ==, 0);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/events/queue/order-and-delivery", test_order_and_delivery);
        g_test_add_func("/events/queue/bounds", test_bounds);
        g_test_add_func("/events/queue/age-expiry", test_age_expiry);
        g_test_add_func("/events/queue/owner-dropped", test_owner_dropped);
        g_test_add_func("/events/queue/remove-and-done", test_remove_and_done);
        return g_test_run();
}
