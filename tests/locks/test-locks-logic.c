/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>

#include "test-helpers.h"

#define T0(f) ((f)->tables[0].t)
#define T1(f) ((f)->tables[1].t)
#define ID(i) GINT_TO_POINTER(i)

static uint64_t must_grant(LockTable *t, const char *name, LockOwner *o, bool shared, uint64_t lease) {
        uint64_t token = 0;

        g_assert_cmpint(lock_acquire(t, name, o, shared, lease, NULL, NULL, &token), ==, 1);
        g_assert_cmpuint(token, >, 0);
        return token;
}

static LockWaiter *must_queue(LockTable *t, const char *name, LockOwner *o, bool shared, uint64_t lease, int id) {
        LockWaiter *w = NULL;
        uint64_t token = 4242;

        g_assert_cmpint(lock_acquire(t, name, o, shared, lease, ID(id), &w, &token), ==, 0);
        g_assert_nonnull(w);
        g_assert_cmpuint(token, ==, 4242); /* untouched */
        return w;
}

static size_t n_locks(LockTable *t) {
        LockTableStats s;

        lock_table_get_stats(t, &s);
        return s.n_locks;
}

static void test_basic(Fixture *f, gconstpointer data) {
        LockOwner a = { .description = "a" };
        LockTableStats s;
        uint64_t tok;

        tok = must_grant(T0(f), "x", &a, false, 0);
        g_assert_cmpuint(tok, ==, 1);
        g_assert_cmpuint(lock_hub_last_token(f->hub), ==, 1);
        lock_table_get_stats(T0(f), &s);
        g_assert_cmpuint(s.n_locks, ==, 1);
        g_assert_cmpuint(s.n_holders, ==, 1);
        g_assert_cmpuint(s.n_waiters, ==, 0);
        g_assert_cmpuint(lock_owner_n_holdings(&a), ==, 1);

        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&a)), ==, 0);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0); /* freed, no growth */
        g_assert_cmpuint(lock_owner_n_holdings(&a), ==, 0);
        g_assert_cmpuint(f->events->len, ==, 0);
        lock_owner_release_all(&a);
}

static void test_fifo(Fixture *f, gconstpointer data) {
        LockOwner o[20];
        uint64_t tok, last;

        for (int i = 0; i < 20; i++)
                lock_owner_init(&o[i], "o");

        tok = must_grant(T0(f), "x", &o[0], false, 0);
        for (int i = 1; i < 20; i++)
                must_queue(T0(f), "x", &o[i], false, 0, i);

        last = tok;
        for (int i = 1; i < 20; i++) {
                Event *e;

                g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&o[i - 1])), ==, 0);
                g_assert_cmpuint(f->events->len, ==, (guint) i);
                e = event_at(f, i - 1);
                g_assert_cmpint(e->kind, ==, 'g');
                g_assert_cmpint(e->id, ==, i);
                g_assert_cmpuint(e->token, >, last);
                tok = last = e->token;
                g_assert_cmpuint(lock_owner_n_holdings(&o[i]), ==, 1);
                g_assert_cmpuint(lock_owner_n_waiters(&o[i]), ==, 0);
        }
        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&o[19])), ==, 0);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static void test_shared_batch(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {}, d = {}, e = {}, g = {};
        uint64_t ta, tb, tc = 0;

        ta = must_grant(T0(f), "x", &a, true, 0);
        tb = must_grant(T0(f), "x", &b, true, 0);     /* readers share */
        must_queue(T0(f), "x", &c, false, 0, 3);      /* writer waits */
        must_queue(T0(f), "x", &d, true, 0, 4);       /* reader queues behind the writer */
        must_queue(T0(f), "x", &e, true, 0, 5);
        must_queue(T0(f), "x", &g, false, 0, 6);

        g_assert_cmpint(lock_unlock(T0(f), "x", ta, BY(&a)), ==, 0);
        g_assert_cmpuint(f->events->len, ==, 0);
        g_assert_cmpint(lock_unlock(T0(f), "x", tb, BY(&b)), ==, 0);
        g_assert_cmpuint(f->events->len, ==, 1);
        g_assert_cmpint(event_at(f, 0)->id, ==, 3);
        tc = event_at(f, 0)->token;

        /* The writer's unlock grants both readers together, not the writer behind them. */
        g_assert_cmpint(lock_unlock(T0(f), "x", tc, BY(&c)), ==, 0);
        g_assert_cmpuint(f->events->len, ==, 3);
        g_assert_cmpint(event_at(f, 1)->id, ==, 4);
        g_assert_cmpint(event_at(f, 2)->id, ==, 5);
        g_assert_cmpuint(event_at(f, 2)->token, >, event_at(f, 1)->token);

        lock_owner_release_all(&d);
        g_assert_cmpuint(f->events->len, ==, 3);
        lock_owner_release_all(&e);
        g_assert_cmpuint(f->events->len, ==, 4);
        g_assert_cmpint(event_at(f, 3)->id, ==, 6);
        lock_owner_release_all(&g);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static void test_release_holder(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {};

        must_grant(T0(f), "x", &a, false, 0);
        must_grant(T1(f), "y", &a, false, 0);  /* other namespace too */
        must_grant(T0(f), "z", &a, true, 0);
        must_queue(T0(f), "x", &b, false, 0, 2);
        must_queue(T1(f), "y", &c, false, 0, 3);

        lock_owner_release_all(&a);
        g_assert_cmpuint(f->events->len, ==, 2);
        g_assert_cmpint(event_at(f, 0)->id, ==, 2);
        g_assert_cmpint(event_at(f, 0)->table, ==, 0);
        g_assert_cmpint(event_at(f, 1)->id, ==, 3);
        g_assert_cmpint(event_at(f, 1)->table, ==, 1);
        g_assert_cmpuint(lock_owner_n_holdings(&a), ==, 0);
        g_assert_cmpuint(n_locks(T0(f)), ==, 1); /* "z" freed */

        lock_owner_release_all(&a); /* idempotent */
        lock_owner_release_all(&b);
        lock_owner_release_all(&c);
        g_assert_cmpuint(n_locks(T0(f)) + n_locks(T1(f)), ==, 0);
}

static void test_release_middle_waiter(Fixture *f, gconstpointer data) {
        LockOwner o[6], *holder = &o[0];
        uint64_t tok;

        for (int i = 0; i < 6; i++)
                lock_owner_init(&o[i], NULL);

        tok = must_grant(T0(f), "x", &o[0], false, 0);
        for (int i = 1; i < 6; i++)
                must_queue(T0(f), "x", &o[i], false, 0, i);

        lock_owner_release_all(&o[3]);
        g_assert_cmpuint(f->events->len, ==, 1);
        g_assert_cmpint(event_at(f, 0)->kind, ==, 'c');
        g_assert_cmpint(event_at(f, 0)->id, ==, 3);
        g_assert_cmpint(event_at(f, 0)->error, ==, -ECONNRESET);

        const int expected[] = { 1, 2, 4, 5 };
        for (size_t i = 0; i < G_N_ELEMENTS(expected); i++) {
                Event *e;

                g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(holder)), ==, 0);
                e = event_at(f, f->events->len - 1);
                g_assert_cmpint(e->kind, ==, 'g');
                g_assert_cmpint(e->id, ==, expected[i]);
                tok = e->token;
                holder = &o[e->id];
        }
        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(holder)), ==, 0);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static int collect_row(const LockHolderInfo *info, void *userdata) {
        GPtrArray *rows = userdata;

        g_ptr_array_add(rows, g_strdup_printf("%s|%s|%" G_GUINT64_FORMAT "|%zu|%s%s", info->name, info->holder,
                                              info->token, info->n_waiters, info->shared ? "S" : "X",
                                              info->detached ? "D" : ""));
        return 0;
}

static GPtrArray *list_rows(LockTable *t) {
        GPtrArray *rows = g_ptr_array_new_with_free_func(g_free);

        g_assert_cmpint(lock_table_list(t, collect_row, rows), ==, 0);
        return rows;
}

static void test_lease_survives(Fixture *f, gconstpointer data) {
        LockOwner a = { .description = ":1.42" }, b = { .description = "worker-b" };
        g_autoptr(GPtrArray) rows = NULL;
        uint64_t tok;

        f->now = 100;
        tok = must_grant(T0(f), "x", &a, false, 1000);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, 1100);
        must_queue(T0(f), "x", &b, false, 0, 2);

        lock_owner_release_all(&a);
        g_assert_cmpuint(f->events->len, ==, 0); /* still held */
        rows = list_rows(T0(f));
        g_assert_cmpuint(rows->len, ==, 1);
        g_autofree char *expect = g_strdup_printf("x|:1.42|%" G_GUINT64_FORMAT "|1|XD", tok);
        g_assert_cmpstr(rows->pdata[0], ==, expect);

        f->now = 1099;
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 0);
        g_assert_cmpuint(f->events->len, ==, 0);
        f->now = 1100;
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 1);
        g_assert_cmpuint(f->events->len, ==, 1);
        g_assert_cmpint(event_at(f, 0)->id, ==, 2);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, LOCK_NO_DEADLINE);

        /* A detached lease lock can be unlocked by its token and the holder's uid (the busctl
         * one-shot script): not by another uid, nor by a caller whose uid is unknown. */
        lock_owner_release_all(&b);
        lock_owner_set_uid(&a, 1000);
        tok = must_grant(T0(f), "y", &a, false, 50);
        lock_owner_release_all(&a);
        g_assert_cmpint(lock_unlock(T0(f), "y", tok, BY_UID(1001)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "y", tok, BY(&b)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "y", tok, BY_UID(1000)), ==, 0);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, LOCK_NO_DEADLINE);
}

static void test_lease_attached_expires(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {};
        uint64_t t1;

        f->now = 0;
        t1 = must_grant(T0(f), "x", &a, false, 10);
        must_grant(T1(f), "x", &a, false, 5);
        must_queue(T0(f), "x", &b, false, 30, 7); /* its lease starts when granted */
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, 5);
        f->now = 10;
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 2);
        g_assert_cmpuint(lock_owner_n_holdings(&a), ==, 0);
        g_assert_cmpint(event_at(f, 0)->id, ==, 7);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, 40);
        g_assert_cmpint(lock_unlock(T0(f), "x", t1, BY(&a)), ==, -EPERM); /* stale */
        lock_owner_release_all(&b);                                 /* lease survives */
        g_assert_cmpuint(n_locks(T0(f)), ==, 1);
        f->now = 1000;
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 1);
        g_assert_cmpuint(n_locks(T0(f)) + n_locks(T1(f)), ==, 0);
}

static void test_unlock_errors(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {};
        uint64_t ta, tb, tok = 0;

        ta = must_grant(T0(f), "x", &a, false, 0);
        tb = must_grant(T0(f), "y", &b, false, 0);

        g_assert_cmpint(lock_unlock(T0(f), "x", tb, BY(&a)), ==, -EPERM);    /* foreign token */
        g_assert_cmpint(lock_unlock(T0(f), "x", ta + 100, BY(&a)), ==, -EPERM);
        g_assert_cmpint(lock_unlock(T0(f), "x", 0, BY(&a)), ==, -EPERM);
        g_assert_cmpint(lock_unlock(T0(f), "nope", ta, BY(&a)), ==, -ENOLCK);
        g_assert_cmpint(lock_unlock(T1(f), "x", ta, BY(&a)), ==, -ENOLCK);   /* other namespace */
        g_assert_cmpint(lock_unlock(T0(f), "", ta, BY(&a)), ==, -EINVAL);
        g_assert_cmpint(lock_unlock(T0(f), "x", ta, NULL), ==, -EINVAL);
        g_assert_cmpint(lock_try_acquire(T0(f), "x", &b, false, 0, &tok), ==, 0); /* still held */
        g_assert_cmpuint(tok, ==, 0);

        g_assert_cmpint(lock_unlock(T0(f), "x", ta, BY(&a)), ==, 0);
        g_assert_cmpint(lock_unlock(T0(f), "x", ta, BY(&a)), ==, -ENOLCK);   /* double unlock */
        tok = must_grant(T0(f), "x", &b, false, 0);
        g_assert_cmpint(lock_unlock(T0(f), "x", ta, BY(&a)), ==, -EPERM);    /* stale, lock re-taken */
        g_assert_cmpint(lock_try_acquire(T0(f), "x", &a, true, 0, &ta), ==, 0);
        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&b)), ==, 0);
        lock_owner_release_all(&b);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static void test_tokens_monotonic(Fixture *f, gconstpointer data) {
        LockOwner a = {};
        uint64_t last = 0;

        for (int i = 0; i < 100; i++) {
                char name[16];
                uint64_t tok;

                g_snprintf(name, sizeof name, "k%d", i % 7);
                tok = must_grant(i % 2 ? T1(f) : T0(f), name, &a, true, 0);
                g_assert_cmpuint(tok, >, last);
                last = tok;
                if (i % 3 == 0)
                        g_assert_cmpint(lock_unlock(i % 2 ? T1(f) : T0(f), name, tok, BY(&a)), ==, 0);
        }
        lock_owner_release_all(&a);
        g_assert_cmpuint(n_locks(T0(f)) + n_locks(T1(f)), ==, 0);
        /* A new table in the same hub continues the sequence. */
        g_assert_cmpuint(lock_hub_last_token(f->hub), ==, last);
}

static void test_refresh(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {};
        uint64_t tok, tb;

        f->now = 0;
        lock_owner_set_uid(&a, 7);
        tok = must_grant(T0(f), "x", &a, false, 100);
        tb = must_grant(T0(f), "y", &b, false, 0);
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 500, BY(&a)), ==, 0);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, 500);
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 5, BY(&b)), ==, -EACCES); /* not b's */
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 5, BY_UID(7)), ==, -EACCES); /* a is alive */
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, 500);
        g_assert_cmpint(lock_refresh(T0(f), "x", tb, 500, BY(&b)), ==, -EPERM);
        g_assert_cmpint(lock_refresh(T0(f), "z", tok, 500, BY(&a)), ==, -ENOLCK);
        g_assert_cmpint(lock_refresh(T0(f), "y", tb, 50, BY(&b)), ==, 0); /* add a lease */
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, 50);
        g_assert_cmpint(lock_refresh(T0(f), "y", tb, 0, BY(&b)), ==, 0);  /* remove it */
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, 500);

        f->now = 400;
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 500, BY(&a)), ==, 0);
        f->now = 600;
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 0);
        lock_owner_release_all(&a);
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 0, BY_UID(7)), ==, -EINVAL); /* would be forever */
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 5000, BY_UID(8)), ==, -EACCES);
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 200, BY_UID(7)), ==, 0);
        f->now = 800;
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 1);
        g_assert_cmpint(lock_refresh(T0(f), "x", tok, 10, BY_UID(7)), ==, -ENOLCK);
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 0);
        lock_owner_release_all(&b);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static void test_cancel_waiter_ahead(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {}, d = {};
        LockWaiter *wb, *wd;

        must_grant(T0(f), "x", &a, true, 0);
        wb = must_queue(T0(f), "x", &b, false, 0, 2);
        must_queue(T0(f), "x", &c, true, 0, 3);
        wd = must_queue(T0(f), "x", &d, true, 0, 4);
        g_assert_cmpuint(lock_owner_n_waiters(&b), ==, 1);

        lock_waiter_cancel(wb); /* the writer times out: readers behind it join the holder */
        g_assert_cmpuint(lock_owner_n_waiters(&b), ==, 0);
        g_assert_cmpuint(f->events->len, ==, 2);
        g_assert_cmpint(event_at(f, 0)->id, ==, 3);
        g_assert_cmpint(event_at(f, 1)->id, ==, 4);
        (void) wd;
        lock_waiter_cancel(NULL);

        lock_owner_release_all(&a);
        lock_owner_release_all(&c);
        lock_owner_release_all(&d);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static void test_trylock(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {};
        uint64_t tok = 0;

        g_assert_cmpint(lock_try_acquire(T0(f), "x", &a, true, 0, &tok), ==, 1);
        g_assert_cmpuint(tok, >, 0);
        g_assert_cmpint(lock_try_acquire(T0(f), "x", &b, true, 0, &tok), ==, 1);
        must_queue(T0(f), "x", &c, false, 0, 3);
        tok = 0;
        /* Compatible with the holders, but a writer is queued: FIFO says no. */
        g_assert_cmpint(lock_try_acquire(T0(f), "x", &b, true, 0, &tok), ==, 0);
        g_assert_cmpint(lock_try_acquire(T0(f), "x", &b, false, 0, &tok), ==, 0);
        g_assert_cmpuint(tok, ==, 0);
        g_assert_cmpint(lock_try_acquire(T0(f), "", &b, false, 0, &tok), ==, -EINVAL);
        lock_owner_release_all(&a);
        lock_owner_release_all(&b);
        g_assert_cmpint(event_at(f, 0)->id, ==, 3);
        lock_owner_release_all(&c);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static void test_deadlock(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {};
        uint64_t tok = 0;

        must_grant(T0(f), "x", &a, false, 0);
        g_assert_cmpint(lock_acquire(T0(f), "x", &a, false, 0, ID(1), NULL, &tok), ==, -EDEADLK);
        g_assert_cmpint(lock_acquire(T0(f), "x", &a, true, 0, ID(1), NULL, &tok), ==, -EDEADLK);
        must_grant(T0(f), "s", &a, true, 0);
        must_grant(T0(f), "s", &a, true, 0); /* a second shared hold is fine */
        g_assert_cmpint(lock_acquire(T0(f), "s", &a, false, 0, ID(1), NULL, &tok), ==, -EDEADLK); /* upgrade */
        must_queue(T0(f), "s", &b, false, 0, 2);
        g_assert_cmpint(lock_acquire(T0(f), "s", &a, true, 0, ID(1), NULL, &tok), ==, -EDEADLK);
        g_assert_cmpuint(tok, ==, 0);
        lock_owner_release_all(&a);
        g_assert_cmpint(event_at(f, 0)->id, ==, 2);
        lock_owner_release_all(&b);
}

static void test_limits(Fixture *f, gconstpointer data) {
        LockLimits limits = { .max_name_len = 8, .max_locks = 2, .max_holders = 3, .max_waiters = 2 };
        LockOwner a = {}, b = {}, c = {};
        uint64_t tok = 0;
        Fixture g;

        /* Default name limit on the default fixture. */
        char long_name[LOCK_DEFAULT_MAX_NAME_LEN + 2];
        memset(long_name, 'n', sizeof long_name);
        long_name[LOCK_DEFAULT_MAX_NAME_LEN] = 0;
        g_assert_cmpint(lock_table_check_name(T0(f), long_name), ==, 0);
        long_name[LOCK_DEFAULT_MAX_NAME_LEN] = 'n';
        long_name[LOCK_DEFAULT_MAX_NAME_LEN + 1] = 0;
        g_assert_cmpint(lock_table_check_name(T0(f), long_name), ==, -EINVAL);
        g_assert_cmpint(lock_acquire(T0(f), long_name, &a, false, 0, NULL, NULL, &tok), ==, -EINVAL);
        g_assert_cmpint(lock_acquire(T0(f), NULL, &a, false, 0, NULL, NULL, &tok), ==, -EINVAL);
        g_assert_cmpint(lock_table_check_name(T0(f), ""), ==, -EINVAL);
        g_assert_cmpint(lock_table_check_name(T0(f), "\xff"), ==, -EINVAL);
        g_assert_cmpint(lock_table_check_name(T0(f), "\xc0\xaf"), ==, -EINVAL);      /* overlong */
        g_assert_cmpint(lock_table_check_name(T0(f), "\xed\xa0\x80"), ==, -EINVAL);  /* surrogate */
        g_assert_cmpint(lock_table_check_name(T0(f), "caf\xc3\xa9"), ==, 0);
        g_assert_cmpint(lock_table_check_name(T0(f), "\xf0\x9f\x94\x92"), ==, 0);
        g_assert_cmpuint(tok, ==, 0);

        fixture_setup_limits(&g, &limits);
        g_assert_cmpint(lock_table_check_name(g.tables[0].t, "12345678"), ==, 0);
        g_assert_cmpint(lock_table_check_name(g.tables[0].t, "123456789"), ==, -EINVAL);

        must_grant(g.tables[0].t, "a", &a, true, 0);
        must_grant(g.tables[0].t, "b", &a, true, 0);
        g_assert_cmpint(lock_acquire(g.tables[0].t, "c", &a, true, 0, NULL, NULL, &tok), ==, -ENOBUFS);
        must_grant(g.tables[0].t, "a", &b, true, 0);
        g_assert_cmpint(lock_acquire(g.tables[0].t, "a", &b, true, 0, NULL, NULL, &tok), ==, -ENOBUFS);
        must_queue(g.tables[0].t, "a", &c, false, 0, 1);
        must_queue(g.tables[0].t, "b", &c, false, 0, 2);
        g_assert_cmpint(lock_acquire(g.tables[0].t, "b", &c, false, 0, ID(3), NULL, &tok), ==, -ENOBUFS);
        /* Other tables have their own budget. */
        must_grant(g.tables[1].t, "c", &a, true, 0);
        g_assert_cmpuint(tok, ==, 0);

        lock_owner_release_all(&a);
        g_assert_cmpuint(g.events->len, ==, 1); /* "b" granted to c; "a" still held shared by b */
        g_assert_cmpint(g_array_index(g.events, Event, 0).id, ==, 2);
        lock_owner_release_all(&b);
        g_assert_cmpuint(g.events->len, ==, 2);
        g_assert_cmpint(g_array_index(g.events, Event, 1).id, ==, 1);
        lock_owner_release_all(&c);
        g_assert_cmpuint(g.events->len, ==, 2);
        fixture_teardown(&g, NULL);
}

static void test_table_free(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {};

        must_grant(T0(f), "x", &a, false, 0);
        must_grant(T0(f), "l", &a, false, 1000);
        must_grant(T1(f), "x", &a, false, 0);
        must_queue(T0(f), "x", &b, false, 0, 2);
        must_queue(T0(f), "x", &c, false, 10, 3);
        must_queue(T1(f), "x", &c, false, 0, 4);

        f->tables[0].t = lock_table_free(T0(f));
        g_assert_cmpuint(f->events->len, ==, 2);
        g_assert_cmpint(event_at(f, 0)->id, ==, 2);
        g_assert_cmpint(event_at(f, 0)->error, ==, -ESHUTDOWN);
        g_assert_cmpint(event_at(f, 1)->id, ==, 3);
        g_assert_cmpuint(lock_owner_n_holdings(&a), ==, 1);
        g_assert_cmpuint(lock_owner_n_waiters(&b), ==, 0);
        g_assert_cmpuint(lock_owner_n_waiters(&c), ==, 1);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, LOCK_NO_DEADLINE);

        lock_owner_release_all(&a);
        g_assert_cmpint(event_at(f, 2)->id, ==, 4);
        g_assert_cmpuint(lock_owner_n_holdings(&c), ==, 1);

        /* Left held on purpose: lock_hub_free() must clean up T1 and empty the owners (which
         * must outlive it: they are on this stack frame). */
        f->hub = lock_hub_free(f->hub);
        g_assert_cmpuint(lock_owner_n_holdings(&c), ==, 0);
}

/* Only the holder releases a hold: its owner while it is alive; after it left with a lease, a
 * caller of the uid it had, presenting the token. The token alone is no credential. */
static void test_only_holder_releases(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {}, d = {}, e = {};
        uint64_t tx, ta, tb, tl, td, te, tn;

        lock_owner_set_uid(&a, 1000);
        lock_owner_set_uid(&b, 1000); /* same user, another connection */
        lock_owner_set_uid(&c, 2000);

        /* Held by a live owner: nobody else, whatever their uid. */
        tx = must_grant(T0(f), "x", &a, false, 0);
        g_assert_cmpint(lock_unlock(T0(f), "x", tx, BY(&b)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "x", tx, BY(&c)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "x", tx, BY(NULL)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "x", tx, BY_UID(1000)), ==, -EACCES);
        g_assert_cmpint(lock_refresh(T0(f), "x", tx, 1, BY(&b)), ==, -EACCES);
        g_assert_cmpint(lock_refresh(T0(f), "x", tx, 1, BY_UID(1000)), ==, -EACCES);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, LOCK_NO_DEADLINE); /* untouched */
        g_assert_cmpint(lock_unlock(T0(f), "x", tx, BY(&a)), ==, 0);

        /* Shared holders: each releases only its own hold. */
        ta = must_grant(T0(f), "s", &a, true, 0);
        tb = must_grant(T0(f), "s", &b, true, 0);
        g_assert_cmpint(lock_unlock(T0(f), "s", tb, BY(&a)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "s", ta, BY(&b)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "s", ta, BY(&a)), ==, 0);
        g_assert_cmpint(lock_unlock(T0(f), "s", tb, BY(&b)), ==, 0);

        /* Left with a lease: the same uid with the token, from any connection. */
        tl = must_grant(T0(f), "l", &a, false, 1000);
        lock_owner_release_all(&a);
        g_assert_cmpint(lock_unlock(T0(f), "l", tl, BY(&c)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "l", tl, BY_UID(2000)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "l", tl, BY_UID(0)), ==, -EACCES); /* root is no one special */
        g_assert_cmpint(lock_refresh(T0(f), "l", tl, 5000, BY(&c)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "l", tl + 1, BY(&b)), ==, -EPERM); /* right uid, wrong token */
        g_assert_cmpint(lock_refresh(T0(f), "l", tl, 5000, BY(&b)), ==, 0);
        g_assert_cmpint(lock_unlock(T0(f), "l", tl, BY(&b)), ==, 0);

        /* An owner whose uid is unknown: once it has gone, only its lease ends the hold (a
         * zero-initialised owner must not pass for uid 0). */
        f->now = 0;
        td = must_grant(T0(f), "d", &d, false, 100);
        lock_owner_release_all(&d);
        g_assert_cmpint(lock_unlock(T0(f), "d", td, BY_UID(0)), ==, -EACCES);
        g_assert_cmpint(lock_unlock(T0(f), "d", td, BY(&d)), ==, -EACCES);
        f->now = 100;
        g_assert_cmpint(lock_hub_expire(f->hub), ==, 1);

        /* A uid learnt after the grant is recorded by the holds that had none. */
        te = must_grant(T0(f), "e", &e, false, 100);
        lock_owner_set_uid(&e, 3000);
        lock_owner_release_all(&e);
        g_assert_cmpint(lock_unlock(T0(f), "e", te, BY_UID(3000)), ==, 0);

        /* Anonymous holds (never made by the bus glue): the token is the only credential. */
        g_assert_cmpint(lock_acquire(T0(f), "n", NULL, false, 0, NULL, NULL, &tn), ==, 1);
        g_assert_cmpint(lock_unlock(T0(f), "n", tn, BY(&c)), ==, 0);

        lock_owner_release_all(&b);
        lock_owner_release_all(&c);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

/* Tokens continue above a raised floor, never below what was issued. */
static void test_token_floor(Fixture *f, gconstpointer data) {
        LockOwner a = {};
        uint64_t t;

        g_assert_cmpuint(must_grant(T0(f), "x", &a, false, 0), ==, 1);
        g_assert_cmpint(lock_hub_raise_token_floor(f->hub, UINT64_C(1000000)), ==, 0);
        t = must_grant(T1(f), "x", &a, false, 0);
        g_assert_cmpuint(t, ==, UINT64_C(1000001));
        g_assert_cmpint(lock_hub_raise_token_floor(f->hub, 5), ==, 0); /* lower: no-op */
        g_assert_cmpuint(must_grant(T0(f), "y", &a, false, 0), ==, t + 1);
        g_assert_cmpint(lock_hub_raise_token_floor(f->hub, LOCK_TOKEN_FLOOR_MAX), ==, -ERANGE);
        g_assert_cmpint(lock_hub_raise_token_floor(f->hub, UINT64_MAX), ==, -ERANGE);
        g_assert_cmpint(lock_hub_raise_token_floor(NULL, 1), ==, -EINVAL);
        g_assert_cmpuint(lock_hub_last_token(f->hub), ==, t + 1);
        g_assert_cmpint(lock_hub_raise_token_floor(f->hub, LOCK_TOKEN_FLOOR_MAX - 1), ==, 0);
        g_assert_cmpuint(must_grant(T0(f), "z", &a, false, 0), ==, LOCK_TOKEN_FLOOR_MAX);
        lock_owner_release_all(&a);
}

/* Leases are bounded: a lease_ms above max_lease_ms is refused, before anything is queued. */
static void test_lease_limit(Fixture *f, gconstpointer data) {
        LockLimits limits = { .max_lease_ms = 100 };
        LockOwner a = {}, b = {};
        uint64_t tok = 0, t;
        Fixture g;

        /* the default bound */
        g_assert_cmpint(lock_acquire(T0(f), "x", &a, false, LOCK_DEFAULT_MAX_LEASE_MS + 1, NULL, NULL, &tok), ==, -ERANGE);
        g_assert_cmpint(lock_try_acquire(T0(f), "x", &a, false, UINT64_MAX, &tok), ==, -ERANGE);
        g_assert_cmpuint(tok, ==, 0);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
        t = must_grant(T0(f), "x", &a, false, LOCK_DEFAULT_MAX_LEASE_MS);
        g_assert_cmpint(lock_refresh(T0(f), "x", t, UINT64_MAX, BY(&a)), ==, -ERANGE);
        g_assert_cmpuint(lock_hub_next_deadline(f->hub), ==, LOCK_DEFAULT_MAX_LEASE_MS);
        /* refused even where it would have waited or been busy */
        g_assert_cmpint(lock_try_acquire(T0(f), "x", &b, false, UINT64_MAX, &tok), ==, -ERANGE);
        g_assert_cmpint(lock_acquire(T0(f), "x", &b, false, UINT64_MAX, ID(1), NULL, &tok), ==, -ERANGE);
        g_assert_cmpuint(lock_owner_n_waiters(&b), ==, 0);

        fixture_setup_limits(&g, &limits);
        g_assert_cmpint(lock_try_acquire(g.tables[0].t, "y", &b, false, 101, &tok), ==, -ERANGE);
        g_assert_cmpint(lock_try_acquire(g.tables[0].t, "y", &b, false, 100, &tok), ==, 1);
        g_assert_cmpint(lock_refresh(g.tables[0].t, "y", tok, 101, BY(&b)), ==, -ERANGE);
        g_assert_cmpint(lock_refresh(g.tables[0].t, "y", tok, 100, BY(&b)), ==, 0);
        lock_owner_release_all(&b);
        fixture_teardown(&g, NULL);
        lock_owner_release_all(&a);
}

/* --- Re-entrancy ---------------------------------------------------------------------------- */

static void hook_unlock_at_once(Fixture *f, TableCtx *c, int id, uint64_t token) {
        LockOwner *o = f->hook_data;

        g_assert_cmpint(lock_unlock(c->t, "x", token, BY(&o[id])), ==, 0);
}

static void test_reentrant_unlock(Fixture *f, gconstpointer data) {
        LockOwner o[8];
        uint64_t tok;

        for (int i = 0; i < 8; i++)
                lock_owner_init(&o[i], NULL);
        tok = must_grant(T0(f), "x", &o[0], false, 0);
        for (int i = 1; i < 8; i++)
                must_queue(T0(f), "x", &o[i], i % 2, 0, i);

        f->hook_data = o;
        f->on_granted = hook_unlock_at_once;
        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&o[0])), ==, 0);
        g_assert_cmpuint(f->events->len, ==, 7);
        for (int i = 1; i < 8; i++)
                g_assert_cmpint(event_at(f, i - 1)->id, ==, i);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
        for (int i = 0; i < 8; i++)
                g_assert_cmpuint(lock_owner_n_holdings(&o[i]) + lock_owner_n_waiters(&o[i]), ==, 0);
}

typedef struct Reenter {
        LockOwner *victim;
        LockOwner *self;
        LockWaiter *cancel_me;
        LockTable *t;
        int acquired;
        int list_rc;
} Reenter;

static int list_noop(const LockHolderInfo *info, void *userdata) {
        Reenter *r = userdata;
        uint64_t tok;

        /* Mutation from a list callback is refused, not corrupting. */
        r->list_rc = lock_try_acquire(r->t, "q", NULL, false, 0, &tok);
        return 0;
}

static void hook_mixed(Fixture *f, TableCtx *c, int id, uint64_t token) {
        Reenter *r = f->hook_data;
        uint64_t tok;

        if (id == 1) {
                /* Release another owner (holder elsewhere and waiter here), cancel a waiter,
                 * acquire something new and list: all from inside the callback. */
                lock_owner_release_all(r->victim);
                lock_waiter_cancel(r->cancel_me);
                r->cancel_me = NULL;
                g_assert_cmpint(lock_acquire(c->t, "other", r->self, false, 0, ID(99), NULL, &tok), >=, 0);
                r->acquired++;
                g_assert_cmpint(lock_table_list(c->t, list_noop, r), ==, 0);
                g_assert_cmpint(lock_unlock(c->t, "x", token, BY(r->self)), ==, 0);
        }
}

static void test_reentrant_mixed(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, v = {}, w = {};
        Reenter r = { .victim = &v, .self = &b, .t = T0(f) };
        uint64_t tok;

        tok = must_grant(T0(f), "x", &a, false, 0);
        must_grant(T0(f), "other", &v, false, 0);
        must_queue(T0(f), "x", &b, false, 0, 1);
        must_queue(T0(f), "x", &v, false, 0, 2);
        r.cancel_me = must_queue(T0(f), "x", &w, false, 0, 3);
        must_queue(T0(f), "x", &w, true, 0, 4);

        f->hook_data = &r;
        f->on_granted = hook_mixed;
        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&a)), ==, 0);
        /* 1 granted; inside: v released (waiter 2 cancelled, "other" freed then re-taken by b at
         * once), waiter 3 cancelled silently, x unlocked -> 4 granted. */
        g_assert_cmpuint(f->events->len, ==, 3);
        g_assert_cmpint(event_at(f, 0)->kind, ==, 'g');
        g_assert_cmpint(event_at(f, 0)->id, ==, 1);
        g_assert_cmpint(event_at(f, 1)->kind, ==, 'c');
        g_assert_cmpint(event_at(f, 1)->id, ==, 2);
        g_assert_cmpint(event_at(f, 2)->kind, ==, 'g');
        g_assert_cmpint(event_at(f, 2)->id, ==, 4);
        g_assert_cmpint(r.acquired, ==, 1);
        g_assert_cmpint(r.list_rc, ==, -EBUSY);
        g_assert_cmpuint(lock_owner_n_holdings(&b), ==, 1);
        f->on_granted = NULL;
        lock_owner_release_all(&a);
        lock_owner_release_all(&b);
        lock_owner_release_all(&w);
        g_assert_cmpuint(n_locks(T0(f)), ==, 0);
}

static void hook_free_table(Fixture *f, TableCtx *c, int id, uint64_t token) {
        uint64_t tok;

        if (id == 1) {
                lock_table_free(c->t);
                /* Refused from now on, and nothing freed under our feet. */
                g_assert_cmpint(lock_acquire(c->t, "y", NULL, false, 0, NULL, NULL, &tok), ==, -ESHUTDOWN);
                g_assert_cmpint(lock_unlock(c->t, "x", token, BY(NULL)), ==, -ESHUTDOWN);
                lock_table_free(c->t); /* twice is fine */
                c->t = NULL;
        }
}

static void hook_cancel_reacquire(Fixture *f, TableCtx *c, int id, int error) {
        uint64_t tok;

        /* The namespace is going away: calls on other tables still work. */
        g_assert_cmpint(error, ==, -ESHUTDOWN);
        g_assert_cmpint(lock_acquire(f->tables[1].t, "z", NULL, false, 0, NULL, NULL, &tok), ==, 1);
        g_assert_cmpint(lock_unlock(f->tables[1].t, "z", tok, BY(NULL)), ==, 0); /* anonymous */
}

static void test_reentrant_free_table(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {};
        uint64_t tok;

        tok = must_grant(T0(f), "x", &a, false, 0);
        must_queue(T0(f), "x", &b, false, 0, 1);
        must_queue(T0(f), "x", &c, false, 0, 2);
        f->on_granted = hook_free_table;
        f->on_cancelled = hook_cancel_reacquire;
        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&a)), ==, 0);
        g_assert_null(f->tables[0].t);
        g_assert_cmpuint(f->events->len, ==, 2);
        g_assert_cmpint(event_at(f, 1)->kind, ==, 'c');
        g_assert_cmpint(event_at(f, 1)->id, ==, 2);
        g_assert_cmpuint(lock_owner_n_holdings(&b) + lock_owner_n_waiters(&c), ==, 0);
        lock_owner_release_all(&a);
        lock_owner_release_all(&b);
        lock_owner_release_all(&c);
}

static void hook_release_self(Fixture *f, TableCtx *c, int id, uint64_t token) {
        /* The reply to the grant failed (peer gone): the glue releases the peer right here. */
        lock_owner_release_all(f->hook_data);
}

static void test_reentrant_release_self(Fixture *f, gconstpointer data) {
        LockOwner a = {}, b = {}, c = {};
        uint64_t tok;

        tok = must_grant(T0(f), "x", &a, false, 0);
        must_queue(T0(f), "x", &b, false, 0, 1);
        must_grant(T0(f), "y", &b, false, 0);
        must_queue(T0(f), "x", &c, false, 0, 2);
        f->hook_data = &b;
        f->on_granted = hook_release_self;
        g_assert_cmpint(lock_unlock(T0(f), "x", tok, BY(&a)), ==, 0);
        f->on_granted = NULL;
        /* b got x, released everything at once, then c got x. */
        g_assert_cmpuint(f->events->len, ==, 2);
        g_assert_cmpint(event_at(f, 0)->id, ==, 1);
        g_assert_cmpint(event_at(f, 1)->id, ==, 2);
        g_assert_cmpuint(lock_owner_n_holdings(&b), ==, 0);
        g_assert_cmpuint(lock_owner_n_holdings(&c), ==, 1);
        g_assert_cmpuint(n_locks(T0(f)), ==, 1);
        lock_owner_release_all(&c);
        lock_owner_release_all(&a);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/locks/basic", test_basic);
        ADD("/locks/fifo", test_fifo);
        ADD("/locks/shared-batch-writer-not-starved", test_shared_batch);
        ADD("/locks/release-all/holder", test_release_holder);
        ADD("/locks/release-all/middle-waiter", test_release_middle_waiter);
        ADD("/locks/lease/survives-owner", test_lease_survives);
        ADD("/locks/lease/expires", test_lease_attached_expires);
        ADD("/locks/unlock-errors", test_unlock_errors);
        ADD("/locks/tokens-monotonic", test_tokens_monotonic);
        ADD("/locks/refresh", test_refresh);
        ADD("/locks/cancel-waiter-ahead", test_cancel_waiter_ahead);
        ADD("/locks/trylock", test_trylock);
        ADD("/locks/deadlock", test_deadlock);
        ADD("/locks/limits", test_limits);
        ADD("/locks/table-free", test_table_free);
        ADD("/locks/only-holder-releases", test_only_holder_releases);
        ADD("/locks/token-floor", test_token_floor);
        ADD("/locks/lease-limit", test_lease_limit);
        ADD("/locks/reentrant/unlock-in-granted", test_reentrant_unlock);
        ADD("/locks/reentrant/mixed", test_reentrant_mixed);
        ADD("/locks/reentrant/free-table", test_reentrant_free_table);
        ADD("/locks/reentrant/release-self", test_reentrant_release_self);

        return g_test_run();
}
