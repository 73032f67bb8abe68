/* SPDX-License-Identifier: MIT */

/* Randomised model test: many random operations among several owners on two tables, checked
 * after every step against a simple model (FIFO queues, holder sets, leases) and for the
 * invariants: never two exclusive holders, never exclusive + shared, strict FIFO grants, no
 * grantable waiter left waiting, tokens strictly increasing, only the holder releases (its owner,
 * or once detached a caller of its uid), no leaks (run under ASan/valgrind). */

#include <errno.h>
#include <stdlib.h>

#include "test-helpers.h"

#define N_OWNERS 5
#define N_NAMES 4
#define N_TABLES 2

static const char *const names[N_NAMES] = { "alpha", "beta", "gamma", "d\xc3\xa9lta" };

typedef struct MHolder {
        uint64_t token;
        bool shared;
        int owner; /* -1: detached */
        uid_t uid; /* its owner's */
        uint64_t deadline;
} MHolder;

typedef struct MWaiter {
        int id;
        int owner;
        bool shared;
        uint64_t lease;
        LockWaiter *w;
} MWaiter;

typedef struct MLock {
        GArray *holders; /* MHolder */
        GArray *waiters; /* MWaiter */
} MLock;

typedef struct Model {
        Fixture *f;
        GRand *rand;
        LockOwner owners[N_OWNERS];
        MLock locks[N_TABLES][N_NAMES];
        int next_id;
        uint64_t max_token;
        GHashTable *expect_cancel; /* ids */
        unsigned n_grants, n_queued_grants, n_cancels, n_expired, n_deadlocks, n_detached, n_refused;
} Model;

/* Owners 0 and 3 share a uid, 1 and 4 too; 2 is alone; 1003 is nobody's. */
static uid_t m_owner_uid(int owner) {
        return (uid_t) (1000 + owner % 3);
}

/* A caller of Unlock/Refresh: owner index (N_OWNERS: a connection holding nothing) and uid. */
typedef struct MCaller {
        int owner;
        uid_t uid;
} MCaller;

static MCaller m_random_caller(Model *m, const MHolder *h) {
        int c;

        if (g_rand_boolean(m->rand)) /* the rightful one, half the time */
                return h->owner >= 0 ? (MCaller) { h->owner, m_owner_uid(h->owner) } : (MCaller) { N_OWNERS, h->uid };
        c = g_rand_int_range(m->rand, 0, N_OWNERS + 1);
        return (MCaller) { c, c < N_OWNERS ? m_owner_uid(c) : (uid_t) g_rand_int_range(m->rand, 1000, 1004) };
}

static LockCaller m_lock_caller(Model *m, MCaller c) {
        return (LockCaller) { .owner = c.owner < N_OWNERS ? &m->owners[c.owner] : NULL, .uid = c.uid, .has_uid = true };
}

static bool m_may_release(const MHolder *h, MCaller c) {
        return h->owner >= 0 ? c.owner == h->owner : c.uid == h->uid;
}

static bool m_compatible(const MLock *l, bool shared) {
        if (l->holders->len == 0)
                return true;
        if (!shared)
                return false;
        for (guint i = 0; i < l->holders->len; i++)
                if (!g_array_index(l->holders, MHolder, i).shared)
                        return false;
        return true;
}

static bool m_owner_holds(const MLock *l, int owner) {
        for (guint i = 0; i < l->holders->len; i++)
                if (g_array_index(l->holders, MHolder, i).owner == owner)
                        return true;
        return false;
}

static uint64_t m_deadline(Model *m, uint64_t lease) {
        return lease > 0 ? m->f->now + lease : LOCK_NO_DEADLINE;
}

static void m_add_holder(Model *m, MLock *l, uint64_t token, bool shared, int owner, uint64_t lease) {
        MHolder h = { .token = token, .shared = shared, .owner = owner, .uid = m_owner_uid(owner),
                      .deadline = m_deadline(m, lease) };

        g_assert_cmpuint(token, >, m->max_token); /* strictly increasing, hub-wide */
        m->max_token = token;
        g_array_append_val(l->holders, h);
}

static bool m_find_waiter(Model *m, int id, int *ret_t, int *ret_n, guint *ret_i) {
        for (int t = 0; t < N_TABLES; t++)
                for (int n = 0; n < N_NAMES; n++) {
                        GArray *w = m->locks[t][n].waiters;

                        for (guint i = 0; i < w->len; i++)
                                if (g_array_index(w, MWaiter, i).id == id) {
                                        *ret_t = t;
                                        *ret_n = n;
                                        *ret_i = i;
                                        return true;
                                }
                }
        return false;
}

/* Apply the callbacks the library ran during the last operation, checking each. */
static void m_consume_events(Model *m) {
        Fixture *f = m->f;

        for (guint k = 0; k < f->events->len; k++) {
                Event *e = &g_array_index(f->events, Event, k);
                int t = 0, n = 0;
                guint i = 0;

                g_assert_true(m_find_waiter(m, e->id, &t, &n, &i));
                g_assert_cmpint(t, ==, e->table);
                MLock *l = &m->locks[t][n];
                MWaiter w = g_array_index(l->waiters, MWaiter, i);

                if (e->kind == 'g') {
                        g_assert_cmpuint(i, ==, 0);                   /* FIFO */
                        g_assert_true(m_compatible(l, w.shared));     /* no conflicting holders */
                        g_array_remove_index(l->waiters, 0);
                        m->n_queued_grants++;
                        m_add_holder(m, l, e->token, w.shared, w.owner, w.lease);
                } else {
                        g_assert_cmpint(e->kind, ==, 'c');
                        g_assert_cmpint(e->error, ==, -ECONNRESET);
                        g_assert_true(g_hash_table_remove(m->expect_cancel, GINT_TO_POINTER(e->id)));
                        g_array_remove_index(l->waiters, i);
                        m->n_cancels++;
                }
        }
        g_array_set_size(f->events, 0);
        g_assert_cmpuint(g_hash_table_size(m->expect_cancel), ==, 0);
}

typedef struct ListCheck {
        Model *m;
        int table;
        guint seen[N_NAMES];
        size_t rows;
} ListCheck;

static int check_row(const LockHolderInfo *info, void *userdata) {
        ListCheck *c = userdata;
        int n;

        for (n = 0; n < N_NAMES; n++)
                if (g_str_equal(info->name, names[n]))
                        break;
        g_assert_cmpint(n, <, N_NAMES);

        MLock *l = &c->m->locks[c->table][n];
        g_assert_cmpuint(c->seen[n], <, l->holders->len);
        MHolder *h = &g_array_index(l->holders, MHolder, c->seen[n]);
        g_assert_cmpuint(info->token, ==, h->token); /* same holders, in grant order */
        g_assert_cmpint(info->shared, ==, h->shared);
        g_assert_cmpint(info->detached, ==, h->owner < 0);
        g_assert_cmpuint(info->lease_deadline_ms, ==, h->deadline);
        g_assert_cmpuint(info->n_holders, ==, l->holders->len);
        g_assert_cmpuint(info->n_waiters, ==, l->waiters->len);
        if (h->owner >= 0)
                g_assert_cmpstr(info->holder, ==, c->m->owners[h->owner].description);
        c->seen[n]++;
        c->rows++;
        return 0;
}

static void m_check(Model *m) {
        uint64_t min_deadline = LOCK_NO_DEADLINE;
        size_t owner_h[N_OWNERS] = {}, owner_w[N_OWNERS] = {};

        for (int t = 0; t < N_TABLES; t++) {
                ListCheck c = { .m = m, .table = t };
                size_t n_locks = 0, n_holders = 0, n_waiters = 0;
                LockTableStats s;

                g_assert_cmpint(lock_table_list(m->f->tables[t].t, check_row, &c), ==, 0);
                for (int n = 0; n < N_NAMES; n++) {
                        MLock *l = &m->locks[t][n];
                        guint excl = 0;

                        g_assert_cmpuint(c.seen[n], ==, l->holders->len);
                        for (guint i = 0; i < l->holders->len; i++) {
                                MHolder *h = &g_array_index(l->holders, MHolder, i);

                                excl += !h->shared;
                                min_deadline = MIN(min_deadline, h->deadline);
                                if (h->owner >= 0)
                                        owner_h[h->owner]++;
                        }
                        for (guint i = 0; i < l->waiters->len; i++)
                                owner_w[g_array_index(l->waiters, MWaiter, i).owner]++;
                        /* Never two exclusive holders, never exclusive + shared. */
                        g_assert_true(excl == 0 || l->holders->len == 1);
                        /* Nobody left waiting who could be granted. */
                        if (l->waiters->len > 0)
                                g_assert_false(m_compatible(l, g_array_index(l->waiters, MWaiter, 0).shared));
                        n_locks += l->holders->len + l->waiters->len > 0;
                        n_holders += l->holders->len;
                        n_waiters += l->waiters->len;
                }
                lock_table_get_stats(m->f->tables[t].t, &s);
                g_assert_cmpuint(s.n_locks, ==, n_locks); /* empty locks are freed */
                g_assert_cmpuint(s.n_holders, ==, n_holders);
                g_assert_cmpuint(s.n_waiters, ==, n_waiters);
        }
        g_assert_cmpuint(lock_hub_next_deadline(m->f->hub), ==, min_deadline);
        for (int o = 0; o < N_OWNERS; o++) {
                g_assert_cmpuint(lock_owner_n_holdings(&m->owners[o]), ==, owner_h[o]);
                g_assert_cmpuint(lock_owner_n_waiters(&m->owners[o]), ==, owner_w[o]);
        }
}

static uint64_t random_lease(Model *m) {
        return g_rand_int_range(m->rand, 0, 3) == 0 ? (uint64_t) g_rand_int_range(m->rand, 1, 200) : 0;
}

static void op_acquire(Model *m, bool try) {
        int t = g_rand_int_range(m->rand, 0, N_TABLES), n = g_rand_int_range(m->rand, 0, N_NAMES);
        int o = g_rand_int_range(m->rand, 0, N_OWNERS), id = ++m->next_id;
        bool shared = g_rand_boolean(m->rand);
        uint64_t lease = random_lease(m), token = 0;
        MLock *l = &m->locks[t][n];
        LockWaiter *w = NULL;
        int r, expect;

        if (l->waiters->len == 0 && m_compatible(l, shared))
                expect = 1;
        else if (try)
                expect = 0;
        else if (m_owner_holds(l, o))
                expect = -EDEADLK;
        else
                expect = 0;

        if (try)
                r = lock_try_acquire(m->f->tables[t].t, names[n], &m->owners[o], shared, lease, &token);
        else
                r = lock_acquire(m->f->tables[t].t, names[n], &m->owners[o], shared, lease,
                                 GINT_TO_POINTER(id), &w, &token);
        g_assert_cmpint(r, ==, expect);

        m->n_deadlocks += r == -EDEADLK;
        if (r == 1) {
                m_add_holder(m, l, token, shared, o, lease);
                m->n_grants++;
        }
        else if (r == 0 && !try) {
                MWaiter mw = { .id = id, .owner = o, .shared = shared, .lease = lease, .w = w };
                g_assert_nonnull(w);
                g_array_append_val(l->waiters, mw);
        } else
                g_assert_cmpuint(token, ==, 0);
}

static MLock *random_lock(Model *m, int *ret_t, int *ret_n) {
        *ret_t = g_rand_int_range(m->rand, 0, N_TABLES);
        *ret_n = g_rand_int_range(m->rand, 0, N_NAMES);
        return &m->locks[*ret_t][*ret_n];
}

static void op_unlock(Model *m) {
        int t = 0, n = 0;
        MLock *l = random_lock(m, &t, &n);

        if (l->holders->len > 0 && g_rand_int_range(m->rand, 0, 5) > 0) {
                guint i = g_rand_int_range(m->rand, 0, l->holders->len);
                MHolder *h = &g_array_index(l->holders, MHolder, i);
                MCaller c = m_random_caller(m, h);
                LockCaller lc = m_lock_caller(m, c);
                uint64_t token = h->token;

                if (!m_may_release(h, c)) {
                        g_assert_cmpint(lock_unlock(m->f->tables[t].t, names[n], token, &lc), ==, -EACCES);
                        m->n_refused++;
                        return;
                }
                g_array_remove_index(l->holders, i);
                g_assert_cmpint(lock_unlock(m->f->tables[t].t, names[n], token, &lc), ==, 0);
        } else {
                /* A stale or foreign token: refused, nothing changes. */
                uint64_t token = g_rand_int_range(m->rand, 0, (gint32) MIN(m->max_token + 2, (uint64_t) G_MAXINT32));
                for (guint i = 0; i < l->holders->len; i++)
                        if (g_array_index(l->holders, MHolder, i).token == token)
                                return;
                LockCaller lc = m_lock_caller(m, (MCaller) { g_rand_int_range(m->rand, 0, N_OWNERS + 1), 1000 });
                g_assert_cmpint(lock_unlock(m->f->tables[t].t, names[n], token, &lc), ==,
                                l->holders->len > 0 ? -EPERM : -ENOLCK);
        }
}

static void op_cancel(Model *m) {
        int t = 0, n = 0;
        MLock *l = random_lock(m, &t, &n);
        guint i = 0;

        if (l->waiters->len == 0)
                return;
        i = g_rand_int_range(m->rand, 0, l->waiters->len);
        LockWaiter *w = g_array_index(l->waiters, MWaiter, i).w;
        g_array_remove_index(l->waiters, i);
        lock_waiter_cancel(w);
}

static void op_release(Model *m) {
        int o = g_rand_int_range(m->rand, 0, N_OWNERS);

        for (int t = 0; t < N_TABLES; t++)
                for (int n = 0; n < N_NAMES; n++) {
                        MLock *l = &m->locks[t][n];

                        for (guint i = 0; i < l->waiters->len; i++)
                                if (g_array_index(l->waiters, MWaiter, i).owner == o)
                                        g_hash_table_add(m->expect_cancel, GINT_TO_POINTER(g_array_index(l->waiters, MWaiter, i).id));
                        for (guint i = 0; i < l->holders->len;) {
                                MHolder *h = &g_array_index(l->holders, MHolder, i);

                                if (h->owner != o) {
                                        i++;
                                        continue;
                                }
                                if (h->deadline != LOCK_NO_DEADLINE) {
                                        h->owner = -1;
                                        m->n_detached++;
                                        i++;
                                } else
                                        g_array_remove_index(l->holders, i);
                        }
                }
        lock_owner_release_all(&m->owners[o]);
}

static void op_expire(Model *m) {
        int expect = 0;

        m->f->now += g_rand_int_range(m->rand, 0, 60);
        for (int t = 0; t < N_TABLES; t++)
                for (int n = 0; n < N_NAMES; n++) {
                        GArray *hs = m->locks[t][n].holders;

                        for (guint i = 0; i < hs->len;)
                                if (g_array_index(hs, MHolder, i).deadline <= m->f->now) {
                                        g_array_remove_index(hs, i);
                                        m->n_expired++;
                                        expect++;
                                } else
                                        i++;
                }
        g_assert_cmpint(lock_hub_expire(m->f->hub), ==, expect);
}

static void op_refresh(Model *m) {
        int t = 0, n = 0;
        MLock *l = random_lock(m, &t, &n);
        uint64_t lease = random_lease(m);
        MHolder *h;
        MCaller c;
        LockCaller lc;

        if (l->holders->len == 0)
                return;
        h = &g_array_index(l->holders, MHolder, g_rand_int_range(m->rand, 0, l->holders->len));
        c = m_random_caller(m, h);
        lc = m_lock_caller(m, c);
        if (!m_may_release(h, c)) {
                g_assert_cmpint(lock_refresh(m->f->tables[t].t, names[n], h->token, lease, &lc), ==, -EACCES);
                m->n_refused++;
                return;
        }
        if (lease == 0 && h->owner < 0) {
                g_assert_cmpint(lock_refresh(m->f->tables[t].t, names[n], h->token, 0, &lc), ==, -EINVAL);
                return;
        }
        g_assert_cmpint(lock_refresh(m->f->tables[t].t, names[n], h->token, lease, &lc), ==, 0);
        h->deadline = m_deadline(m, lease);
}

static void run_seed(guint32 seed, int n_ops) {
        static const char *const desc[N_OWNERS] = { "o0", "o1", "o2", "o3", "o4" };
        Fixture f;
        Model m = { .f = &f };

        fixture_setup(&f, NULL);
        m.rand = g_rand_new_with_seed(seed);
        m.expect_cancel = g_hash_table_new(NULL, NULL);
        for (int o = 0; o < N_OWNERS; o++) {
                lock_owner_init(&m.owners[o], desc[o]);
                lock_owner_set_uid(&m.owners[o], m_owner_uid(o));
        }
        for (int t = 0; t < N_TABLES; t++)
                for (int n = 0; n < N_NAMES; n++) {
                        m.locks[t][n].holders = g_array_new(FALSE, TRUE, sizeof(MHolder));
                        m.locks[t][n].waiters = g_array_new(FALSE, TRUE, sizeof(MWaiter));
                }

        for (int i = 0; i < n_ops; i++) {
                switch (g_rand_int_range(m.rand, 0, 20)) {
                case 0 ... 6:
                        op_acquire(&m, false);
                        break;
                case 7 ... 8:
                        op_acquire(&m, true);
                        break;
                case 9 ... 12:
                        op_unlock(&m);
                        break;
                case 13 ... 14:
                        op_cancel(&m);
                        break;
                case 15 ... 16:
                        op_release(&m);
                        break;
                case 17 ... 18:
                        op_expire(&m);
                        break;
                default:
                        op_refresh(&m);
                }
                m_consume_events(&m);
                m_check(&m);
        }

        g_test_message("seed %u: %u immediate grants, %u queued grants, %u cancelled, %u detached, %u expired, %u EDEADLK, %u refused",
                       seed, m.n_grants, m.n_queued_grants, m.n_cancels, m.n_detached, m.n_expired, m.n_deadlocks, m.n_refused);
        g_assert_cmpuint(m.n_queued_grants, >, 0);
        g_assert_cmpuint(m.n_refused, >, 0);

        if (seed % 2 == 0) {
                /* Clean shutdown: everything goes away and the tables end empty. */
                for (int o = 0; o < N_OWNERS; o++) {
                        for (int t = 0; t < N_TABLES; t++)
                                for (int n = 0; n < N_NAMES; n++) {
                                        GArray *w = m.locks[t][n].waiters;
                                        for (guint i = 0; i < w->len; i++)
                                                if (g_array_index(w, MWaiter, i).owner == o)
                                                        g_hash_table_add(m.expect_cancel, GINT_TO_POINTER(g_array_index(w, MWaiter, i).id));
                                }
                        lock_owner_release_all(&m.owners[o]);
                        /* Grants to other owners' waiters are fine; consume them in the model. */
                        for (guint k = 0; k < f.events->len; k++) {
                                Event *e = &g_array_index(f.events, Event, k);
                                int t = 0, n = 0;
                                guint i = 0;

                                g_assert_true(m_find_waiter(&m, e->id, &t, &n, &i));
                                g_array_remove_index(m.locks[t][n].waiters, i);
                                if (e->kind == 'c')
                                        g_assert_true(g_hash_table_remove(m.expect_cancel, GINT_TO_POINTER(e->id)));
                        }
                        g_array_set_size(f.events, 0);
                }
                f.now += 1000;
                g_assert_cmpint(lock_hub_expire(f.hub), >=, 0);
                g_assert_cmpuint(lock_hub_next_deadline(f.hub), ==, LOCK_NO_DEADLINE);
                for (int t = 0; t < N_TABLES; t++) {
                        LockTableStats s;

                        lock_table_get_stats(f.tables[t].t, &s);
                        g_assert_cmpuint(s.n_locks + s.n_holders + s.n_waiters + s.n_leases, ==, 0);
                }
        }
        /* Odd seeds: leave everything held and queued; lock_hub_free() must clean up. */

        fixture_teardown(&f, NULL);
        for (int o = 0; o < N_OWNERS; o++) {
                g_assert_cmpuint(lock_owner_n_holdings(&m.owners[o]), ==, 0);
                g_assert_cmpuint(lock_owner_n_waiters(&m.owners[o]), ==, 0);
        }
        for (int t = 0; t < N_TABLES; t++)
                for (int n = 0; n < N_NAMES; n++) {
                        g_array_unref(m.locks[t][n].holders);
                        g_array_unref(m.locks[t][n].waiters);
                }
        g_hash_table_unref(m.expect_cancel);
        g_rand_free(m.rand);
}

static void test_random(void) {
        const char *e = g_getenv("LOCKS_RANDOM_SEED");
        int n_seeds = g_test_slow() ? 1000 : 100;

        if (e) {
                run_seed((guint32) strtoul(e, NULL, 0), 20000);
                return;
        }
        for (int s = 1; s <= n_seeds; s++) {
                g_test_message("seed %d (rerun with LOCKS_RANDOM_SEED=%d)", s, s);
                run_seed((guint32) s, 3000);
        }
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/locks/random/model", test_random);
        return g_test_run();
}
