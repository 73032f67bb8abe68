/* SPDX-License-Identifier: MIT */
/* Unit tests of the WaitForWorkers barrier (service/barrier.c), driven by explicit calls: the
 * glue tells it how many workers there are and ends the waits whose deadline passed. */
#include <glib.h>

#include "barrier.h"

static BarrierWait *wait_new(Barrier *b, size_t count, intptr_t tag) {
        BarrierWait *w = NULL;

        g_assert_cmpint(barrier_wait_new(b, count, (void *) tag, &w), ==, 0);
        return w;
}

static void take_expect(Barrier *b, size_t n_workers, intptr_t tag) {
        BarrierWait *w = barrier_take_ready(b, n_workers);

        g_assert_nonnull(w);
        g_assert_cmpint((intptr_t) w->userdata, ==, tag);
        barrier_wait_free(w);
}

static void test_count_reached(void) {
        Barrier b = {};

        g_assert_true(barrier_reached(0, 0));
        g_assert_true(barrier_reached(2, 3));
        g_assert_false(barrier_reached(3, 2));
        wait_new(&b, 3, 1);
        wait_new(&b, 1, 2);
        wait_new(&b, 2, 3);
        wait_new(&b, 1, 4);
        g_assert_cmpuint(b.n, ==, 4);
        /* one worker: both waits for one, oldest first; the others keep waiting */
        take_expect(&b, 1, 2);
        take_expect(&b, 1, 4);
        g_assert_null(barrier_take_ready(&b, 1));
        /* three at once satisfy the rest, in order of their calls */
        take_expect(&b, 3, 1);
        take_expect(&b, 3, 3);
        g_assert_null(barrier_take_ready(&b, 3));
        g_assert_cmpuint(b.n, ==, 0);
        g_assert_null(b.waits.first);
}

static void test_timeout(void) {
        Barrier b = {};
        BarrierWait *early;

        early = wait_new(&b, 2, 1);
        wait_new(&b, 2, 2);
        /* the first call's deadline passes with one worker: it ends, unanswered by the barrier */
        g_assert_null(barrier_take_ready(&b, 1));
        g_assert_cmpuint(early->count, ==, 2);
        barrier_wait_free(early);
        g_assert_cmpuint(b.n, ==, 1);
        /* the second worker satisfies only the call still waiting */
        take_expect(&b, 2, 2);
        g_assert_null(barrier_take_ready(&b, 2));
        barrier_wait_free(NULL);
}

static void test_worker_leaves_again(void) {
        Barrier b = {};
        size_t n_workers = 0;

        wait_new(&b, 2, 1);
        /* one joins (1), leaves (0), another joins (1): never two at once */
        n_workers++;
        g_assert_null(barrier_take_ready(&b, n_workers));
        n_workers--;
        n_workers++;
        g_assert_null(barrier_take_ready(&b, n_workers));
        /* the second one at the same time is what it waits for */
        n_workers++;
        take_expect(&b, n_workers, 1);
        /* a wait answered is not answered again when more join */
        g_assert_null(barrier_take_ready(&b, n_workers + 1));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/barrier/count-reached", test_count_reached);
        g_test_add_func("/barrier/timeout", test_timeout);
        g_test_add_func("/barrier/worker-leaves-again", test_worker_leaves_again);
        return g_test_run();
}
