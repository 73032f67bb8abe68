/* SPDX-License-Identifier: MIT */
/* The bookkeeping of BLPop/BRPop waiters whose lists live in Redis (rstore-wait.h): rounds,
 * chunks, FIFO order, orphans and a dropped queue.  No Redis, no bus. */
#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "rstore-wait.h"

static int tok[16];

static RWaiter *add(RWaitQueue *q, const char *k1, const char *k2, int t) {
        const char *keys[] = { k1, k2 };
        RWaiter *w = NULL;

        g_assert_cmpint(rwait_add(q, keys, k2 ? 2 : 1, true, &tok[t], &w), ==, 0);
        g_assert_nonnull(w);
        return w;
}

static void test_add_wants_round(void) {
        RWaitQueue *q = rwait_queue_new();
        RWaitChunk *c = NULL;
        RWaiter *w;

        g_assert_false(rwait_round_begin(q)); /* nobody waits */
        g_assert_cmpint(rwait_add(q, NULL, 0, true, &tok[0], NULL), ==, -EINVAL);
        w = add(q, "a", "b", 0);
        g_assert_true(w->fresh);
        g_assert_cmpstr(w->keys[0], ==, "a");
        g_assert_cmpstr(w->keys[1], ==, "b");
        g_assert_true(rwait_round_begin(q));
        g_assert_false(rwait_round_begin(q)); /* the wish is taken */
        g_assert_cmpint(rwait_chunk_next(q, 64, 256, &c), ==, 0);
        g_assert_nonnull(c);
        g_assert_cmpuint(c->n_waiters, ==, 1);
        g_assert_cmpuint(c->n_keys, ==, 2);
        g_assert_true(w->in_round);
        g_assert_true(rwait_chunk_key(c, 0, 0) == w->keys[0]);
        g_assert_true(rwait_chunk_key(c, 0, 1) == w->keys[1]);
        g_assert_null(rwait_chunk_key(c, 0, 2));
        g_assert_null(rwait_chunk_key(c, 1, 0));
        {
                RWaitChunk *none = NULL;
                g_assert_cmpint(rwait_chunk_next(q, 64, 256, &none), ==, 0);
                g_assert_null(none); /* every waiter is in the round */
        }
        /* a round in flight: a wish waits for its end */
        rwait_want(q);
        g_assert_false(rwait_round_begin(q));
        g_assert_true(rwait_chunk_end(c) == q);
        g_assert_false(w->in_round);
        g_assert_false(w->fresh);
        g_assert_cmpuint(q->n_waiters, ==, 1);
        g_assert_true(rwait_round_begin(q));
        g_assert_cmpint(rwait_chunk_next(q, 64, 256, &c), ==, 0);
        rwait_chunk_done(c, 0); /* served */
        g_assert_true(rwait_chunk_end(c) == q);
        g_assert_cmpuint(q->n_waiters, ==, 0);
        rwait_queue_drop(q);
}

static void test_chunks_fifo_and_distinct_keys(void) {
        RWaitQueue *q = rwait_queue_new();
        RWaitChunk *c1 = NULL, *c2 = NULL, *c3 = NULL;
        RWaiter *w[5];

        w[0] = add(q, "a", "b", 0);
        w[1] = add(q, "b", "a", 1);
        w[2] = add(q, "c", NULL, 2);
        w[3] = add(q, "d", "e", 3);
        w[4] = add(q, "a", NULL, 4);
        g_assert_true(rwait_round_begin(q));
        /* 3 waiters or 5 keys (duplicates counted) at most per chunk */
        g_assert_cmpint(rwait_chunk_next(q, 3, 5, &c1), ==, 0);
        g_assert_cmpuint(c1->n_waiters, ==, 3);
        g_assert_true(c1->waiters[0] == w[0] && c1->waiters[1] == w[1] && c1->waiters[2] == w[2]);
        g_assert_cmpuint(c1->n_keys, ==, 3); /* a, b, c */
        g_assert_cmpstr(c1->keys[c1->index[c1->off[1] + 0]], ==, "b");
        g_assert_cmpstr(c1->keys[c1->index[c1->off[1] + 1]], ==, "a");
        /* w[1]'s "a" is w[0]'s copy in keys[], but its own through rwait_chunk_key() */
        g_assert_true(c1->keys[0] == w[0]->keys[0]);
        g_assert_true(rwait_chunk_key(c1, 1, 0) == w[1]->keys[1]);
        rwait_chunk_done(c1, 0);
        g_assert_cmpstr(rwait_chunk_key(c1, 1, 0), ==, "a");
        g_assert_null(rwait_chunk_key(c1, 0, 0)); /* answered */
        g_assert_cmpint(rwait_chunk_next(q, 3, 5, &c2), ==, 0);
        g_assert_cmpuint(c2->n_waiters, ==, 2);
        g_assert_true(c2->waiters[0] == w[3] && c2->waiters[1] == w[4]);
        g_assert_cmpint(rwait_chunk_next(q, 3, 5, &c3), ==, 0);
        g_assert_null(c3);
        g_assert_cmpuint(q->n_chunks, ==, 2);
        rwait_chunk_done(c1, 1);
        g_assert_true(rwait_chunk_end(c1) == q);
        g_assert_true(rwait_chunk_end(c2) == q);
        g_assert_cmpuint(q->n_waiters, ==, 3);
        g_assert_true(q->waiters.first == w[2] && w[2]->waiters_next == w[3]);
        rwait_queue_drop(q);
}

static void test_big_waiter_alone(void) {
        RWaitQueue *q = rwait_queue_new();
        const char *keys[] = { "k1", "k2", "k3", "k4" };
        RWaitChunk *c = NULL;
        RWaiter *big = NULL;

        g_assert_cmpint(rwait_add(q, keys, 4, false, &tok[0], &big), ==, 0);
        add(q, "x", NULL, 1);
        g_assert_true(rwait_round_begin(q));
        g_assert_cmpint(rwait_chunk_next(q, 10, 2, &c), ==, 0);
        g_assert_cmpuint(c->n_waiters, ==, 1); /* more keys than the bound: alone */
        g_assert_cmpuint(c->n_keys, ==, 4);
        g_assert_false(c->waiters[0]->left);
        rwait_chunk_end(c);
        rwait_queue_drop(q);
}

static void test_events(void) {
        RWaitQueue *q = rwait_queue_new();
        RWaitChunk *c = NULL;

        add(q, "a", NULL, 0);
        g_assert_true(rwait_round_begin(q));
        g_assert_cmpint(rwait_chunk_next(q, 64, 256, &c), ==, 0);
        g_assert_true(rwait_chunk_end(c) == q);
        g_assert_false(rwait_key_event(q, "a", "lpop"));
        g_assert_false(rwait_key_event(q, "a", "del"));
        g_assert_false(rwait_key_event(q, "b", "rpush"));
        g_assert_false(rwait_round_begin(q));
        g_assert_true(rwait_key_event(q, "a", "rpush"));
        g_assert_true(rwait_round_begin(q));
        g_assert_true(rwait_event_adds("lpush"));
        g_assert_true(rwait_event_adds("linsert"));
        g_assert_true(rwait_event_adds("rename_to"));
        g_assert_false(rwait_event_adds("rename_from"));
        g_assert_false(rwait_event_adds("expired"));
        g_assert_false(rwait_event_adds(NULL));
        rwait_queue_drop(q);
}

static void test_orphans(void) {
        RWaitQueue *q = rwait_queue_new();
        RWaitChunk *c = NULL;
        RWaiter *w0, *w1, *w2;

        w0 = add(q, "a", NULL, 0);
        w1 = add(q, "a", NULL, 1);
        g_assert_true(rwait_round_begin(q));
        g_assert_cmpint(rwait_chunk_next(q, 64, 256, &c), ==, 0);
        w2 = add(q, "a", NULL, 2); /* arrives during the round: not in it */
        g_assert_false(w2->in_round);
        rwait_cancel(w0); /* in the round: an orphan */
        g_assert_null(w0->token);
        g_assert_cmpuint(q->n_waiters, ==, 3);
        rwait_cancel(w2); /* not in a round: gone at once */
        g_assert_cmpuint(q->n_waiters, ==, 2);
        g_assert_false(rwait_has_key(q, "b"));
        g_assert_true(rwait_has_key(q, "a")); /* w1 */
        g_assert_true(c->waiters[0] == w0 && c->waiters[0]->token == NULL);
        g_assert_true(rwait_chunk_end(c) == q); /* the orphan is freed */
        g_assert_cmpuint(q->n_waiters, ==, 1);
        g_assert_true(q->waiters.first == w1);
        rwait_done(w1);
        g_assert_cmpuint(q->n_waiters, ==, 0);
        rwait_queue_drop(q);
}

static void test_drop_in_flight(void) {
        RWaitQueue *q = rwait_queue_new();
        RWaitChunk *c = NULL;

        add(q, "a", NULL, 0);
        g_assert_true(rwait_round_begin(q));
        g_assert_cmpint(rwait_chunk_next(q, 64, 256, &c), ==, 0);
        add(q, "b", NULL, 1);
        rwait_queue_drop(q); /* the waiter not in the round goes; the queue waits for its chunk */
        g_assert_cmpuint(q->n_waiters, ==, 1);
        g_assert_null(c->waiters[0]->token);
        g_assert_false(rwait_round_begin(q));
        g_assert_cmpint(rwait_add(q, (const char *const[]) { "c" }, 1, true, &tok[2], NULL), ==, -EINVAL);
        g_assert_null(rwait_chunk_end(c)); /* ASan: the queue is freed here, once */
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/rstore-wait/add-wants-round", test_add_wants_round);
        g_test_add_func("/rstore-wait/chunks-fifo", test_chunks_fifo_and_distinct_keys);
        g_test_add_func("/rstore-wait/big-waiter-alone", test_big_waiter_alone);
        g_test_add_func("/rstore-wait/events", test_events);
        g_test_add_func("/rstore-wait/orphans", test_orphans);
        g_test_add_func("/rstore-wait/drop-in-flight", test_drop_in_flight);
        return g_test_run();
}
