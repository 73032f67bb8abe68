/* SPDX-License-Identifier: MIT */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "locks.h"
#include "utf8.h"
#include "macro.h"

typedef struct Lock Lock;

struct LockRequest {
        LockTable *table;
        Lock *lock;             /* NULL once taken out of its lock (pending cancel notification) */
        LockOwner *owner;       /* NULL: anonymous, or detached (owner released, held by lease) */
        void *waiter_token;
        uint64_t token;         /* 0 while waiting */
        uint64_t lease_ms;
        uint64_t deadline;      /* LOCK_NO_DEADLINE when not in the lease heap */
        size_t heap_idx;        /* index in hub->heap, SIZE_MAX when not in it */
        char *detached_desc;
        uid_t uid;              /* the owner's uid, recorded at grant (has_uid) */
        int cancel_error;
        bool has_uid;
        bool shared;
        bool granted;
        bool reserved;          /* counts in hub->heap_reserved */
        bool detached;
        bool cancel_pending;    /* in hub->cancelled, linked by by_lock */

        LIST_FIELDS(LockRequest, by_lock);
        LIST_FIELDS(LockRequest, by_owner);
};

struct Lock {
        LockTable *table;
        Lock *hash_next;
        LIST_FIELDS(Lock, by_table);
        LIST_FIELDS(Lock, dirty);
        bool is_dirty;

        /* Holders are either all shared, or exactly one exclusive. */
        LIST_HEAD(LockRequest) holders;
        LIST_HEAD(LockRequest) waiters;
        size_t n_holders;
        size_t n_waiters;

        char name[];
};

struct LockTable {
        LockHub *hub;
        LockLimits limits;
        LockTableCallbacks callbacks;
        void *userdata;

        Lock **buckets;
        size_t n_buckets;       /* power of two */
        uint64_t seed;

        LIST_HEAD(Lock) locks;  /* creation order, for listing */
        LIST_FIELDS(LockTable, by_hub);
        LIST_FIELDS(LockTable, dying);

        size_t n_locks;
        size_t n_holders;
        size_t n_waiters;
        size_t n_leases;
        unsigned listing;
        bool dying;
        bool in_dying_list;
};

struct LockHub {
        lock_clock_func_t clock;
        void *clock_userdata;
        uint64_t last_token;

        /* Binary min-heap of leased holders, by deadline. Capacity is reserved when a request
         * with a lease is made, so that granting it later never allocates. */
        LockRequest **heap;
        size_t heap_size;
        size_t heap_allocated;
        size_t heap_reserved;

        LIST_HEAD(LockTable) tables;
        LIST_HEAD(LockTable) dying;      /* lock_table_free() deferred */
        LIST_HEAD(Lock) dirty;           /* locks whose queue must be re-examined */
        LIST_HEAD(LockRequest) cancelled; /* waiters whose cancelled() callback is due */
        unsigned dispatching;
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static uint64_t hub_now(LockHub *h) {
        return h->clock(h->clock_userdata);
}

static uint64_t deadline_after(uint64_t now, uint64_t ms) {
        /* Saturate below LOCK_NO_DEADLINE. */
        if (ms >= LOCK_NO_DEADLINE - 1 - now)
                return LOCK_NO_DEADLINE - 1;
        return now + ms;
}

static uint64_t name_hash(const LockTable *t, const char *name) {
        uint64_t h = UINT64_C(0xcbf29ce484222325) ^ t->seed;

        for (const unsigned char *p = (const unsigned char *) name; *p; p++) {
                h ^= *p;
                h *= UINT64_C(0x100000001b3);
        }
        return h ^ (h >> 29);
}

/* ------------------------------------------------------------------------------------------ */
/* Lease heap */

static bool heap_less(const LockHub *h, size_t a, size_t b) {
        if (h->heap[a]->deadline != h->heap[b]->deadline)
                return h->heap[a]->deadline < h->heap[b]->deadline;
        return h->heap[a]->token < h->heap[b]->token;
}

static void heap_swap(LockHub *h, size_t a, size_t b) {
        LockRequest *tmp = h->heap[a];

        h->heap[a] = h->heap[b];
        h->heap[b] = tmp;
        h->heap[a]->heap_idx = a;
        h->heap[b]->heap_idx = b;
}

static void heap_sift_up(LockHub *h, size_t i) {
        while (i > 0 && heap_less(h, i, (i - 1) / 2)) {
                heap_swap(h, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static void heap_sift_down(LockHub *h, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;

                if (l < h->heap_size && heap_less(h, l, m))
                        m = l;
                if (r < h->heap_size && heap_less(h, r, m))
                        m = r;
                if (m == i)
                        return;
                heap_swap(h, i, m);
                i = m;
        }
}

/* Make room for one more leased holder (ever). Only this allocates. */
static int heap_reserve(LockHub *h, LockRequest *r) {
        if (r->reserved)
                return 0;

        if (h->heap_reserved >= h->heap_allocated) {
                size_t n = MAX(h->heap_allocated * 2, (size_t) 16);
                LockRequest **a;

                a = realloc(h->heap, n * sizeof(LockRequest *));
                if (!a)
                        return -ENOMEM;
                h->heap = a;
                h->heap_allocated = n;
        }

        h->heap_reserved++;
        r->reserved = true;
        return 0;
}

static void heap_push(LockHub *h, LockRequest *r) {
        assert(r->reserved);
        assert(r->heap_idx == SIZE_MAX);
        assert(h->heap_size < h->heap_allocated);

        r->heap_idx = h->heap_size;
        h->heap[h->heap_size++] = r;
        heap_sift_up(h, r->heap_idx);
        r->table->n_leases++;
}

static void heap_remove(LockHub *h, LockRequest *r) {
        size_t i = r->heap_idx;

        if (i == SIZE_MAX)
                return;

        h->heap_size--;
        if (i != h->heap_size) {
                h->heap[i] = h->heap[h->heap_size];
                h->heap[i]->heap_idx = i;
                heap_sift_down(h, i);
                heap_sift_up(h, i);
        }
        r->heap_idx = SIZE_MAX;
        r->deadline = LOCK_NO_DEADLINE;
        r->table->n_leases--;
}

static void heap_update(LockHub *h, LockRequest *r) {
        heap_sift_down(h, r->heap_idx);
        heap_sift_up(h, r->heap_idx);
}

/* ------------------------------------------------------------------------------------------ */
/* Locks */

static Lock *table_find(const LockTable *t, const char *name) {
        Lock *l;

        if (t->n_buckets == 0)
                return NULL;

        for (l = t->buckets[name_hash(t, name) & (t->n_buckets - 1)]; l; l = l->hash_next)
                if (streq(l->name, name))
                        return l;
        return NULL;
}

static void table_hash_insert(LockTable *t, Lock *l) {
        size_t b = name_hash(t, l->name) & (t->n_buckets - 1);

        l->hash_next = t->buckets[b];
        t->buckets[b] = l;
}

static int table_hash_reserve(LockTable *t) {
        Lock **nb;
        size_t n;

        if (t->n_locks < t->n_buckets)
                return 0;

        n = MAX(t->n_buckets * 2, (size_t) 16);
        nb = calloc(n, sizeof(Lock *));
        if (!nb)
                return -ENOMEM;

        for (size_t i = 0; i < t->n_buckets; i++)
                while (t->buckets[i]) {
                        Lock *l = t->buckets[i];
                        size_t b = name_hash(t, l->name) & (n - 1);

                        t->buckets[i] = l->hash_next;
                        l->hash_next = nb[b];
                        nb[b] = l;
                }

        free(t->buckets);
        t->buckets = nb;
        t->n_buckets = n;
        return 0;
}

static void table_hash_remove(LockTable *t, Lock *l) {
        Lock **p = &t->buckets[name_hash(t, l->name) & (t->n_buckets - 1)];

        while (*p != l)
                p = &(*p)->hash_next;
        *p = l->hash_next;
}

static int lock_new(LockTable *t, const char *name, Lock **ret) {
        size_t len = strlen(name);
        Lock *l;
        int r;

        if (t->n_locks >= t->limits.max_locks)
                return -ENOBUFS;

        r = table_hash_reserve(t);
        if (r < 0)
                return r;

        l = calloc(1, offsetof(Lock, name) + len + 1);
        if (!l)
                return -ENOMEM;
        memcpy(l->name, name, len + 1);
        l->table = t;

        table_hash_insert(t, l);
        LIST_APPEND(by_table, t->locks, l);
        t->n_locks++;

        *ret = l;
        return 0;
}

static void lock_free(Lock *l) {
        LockTable *t = l->table;

        assert(l->n_holders == 0 && l->n_waiters == 0);

        if (l->is_dirty)
                LIST_REMOVE(dirty, t->hub->dirty, l);
        table_hash_remove(t, l);
        LIST_REMOVE(by_table, t->locks, l);
        t->n_locks--;
        free(l);
}

static void lock_mark_dirty(Lock *l) {
        if (l->is_dirty)
                return;
        LIST_APPEND(dirty, l->table->hub->dirty, l);
        l->is_dirty = true;
}

static bool lock_compatible(const Lock *l, bool shared) {
        if (l->n_holders == 0)
                return true;
        return shared && l->holders.first->shared;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests */

static void request_detach_owner(LockRequest *r) {
        if (!r->owner)
                return;

        if (r->granted)
                LIST_REMOVE(by_owner, r->owner->holdings, r);
        else
                LIST_REMOVE(by_owner, r->owner->waiters, r);
        r->owner = NULL;
}

static void request_drop_lease(LockRequest *r) {
        LockHub *h = r->table->hub;

        heap_remove(h, r);
        if (r->reserved) {
                h->heap_reserved--;
                r->reserved = false;
        }
}

/* Take the request out of its lock, marking the lock for re-examination. */
static void request_unlink_lock(LockRequest *r) {
        Lock *l = r->lock;
        LockTable *t = r->table;

        if (!l)
                return;

        if (r->granted) {
                LIST_REMOVE(by_lock, l->holders, r);
                l->n_holders--;
                t->n_holders--;
        } else {
                LIST_REMOVE(by_lock, l->waiters, r);
                l->n_waiters--;
                t->n_waiters--;
        }
        r->lock = NULL;
        lock_mark_dirty(l);
}

static void request_free(LockRequest *r) {
        request_detach_owner(r);
        request_drop_lease(r);
        request_unlink_lock(r);
        free(r->detached_desc);
        free(r);
}

static void request_freep(LockRequest **r) {
        if (*r)
                request_free(*r);
}

static LockRequest *request_new(LockTable *t, bool shared, uint64_t lease_ms, void *waiter_token) {
        LockRequest *r;

        r = calloc(1, sizeof(LockRequest));
        if (!r)
                return NULL;

        r->table = t;
        r->shared = shared;
        r->lease_ms = lease_ms;
        r->waiter_token = waiter_token;
        r->deadline = LOCK_NO_DEADLINE;
        r->heap_idx = SIZE_MAX;
        return r;
}

/* Make `r` (already linked nowhere) a holder of `l`. Never fails. */
static void request_make_holder(LockRequest *r, Lock *l, LockOwner *owner) {
        LockTable *t = l->table;
        LockHub *h = t->hub;

        r->lock = l;
        r->granted = true;
        r->token = ++h->last_token;
        LIST_APPEND(by_lock, l->holders, r);
        l->n_holders++;
        t->n_holders++;

        if (owner) {
                r->owner = owner;
                r->uid = owner->uid;
                r->has_uid = owner->has_uid;
                LIST_APPEND(by_owner, owner->holdings, r);
        }

        if (r->lease_ms > 0) {
                r->deadline = deadline_after(hub_now(h), r->lease_ms);
                heap_push(h, r);
        }
}

/* Grant the head waiter of `l`. Never fails. */
static void lock_grant_head(Lock *l) {
        LockRequest *r = l->waiters.first;
        LockOwner *owner = r->owner;

        request_detach_owner(r);
        LIST_REMOVE(by_lock, l->waiters, r);
        l->n_waiters--;
        l->table->n_waiters--;

        request_make_holder(r, l, owner);
}

/* ------------------------------------------------------------------------------------------ */
/* Dispatch: the only place that runs callbacks and frees empty locks. Re-entrant calls from a
 * callback only queue work (dirty locks, cancellations, dying tables), which this loop then
 * performs, one step at a time, after the callback returns. */

static void table_destroy(LockTable *t);

static bool hub_dispatch_one(LockHub *h) {
        LockRequest *r;
        LockTable *t;
        Lock *l;

        r = h->cancelled.first;
        if (r) {
                LIST_REMOVE(by_lock, h->cancelled, r);
                r->cancel_pending = false;
                t = r->table;
                if (t->callbacks.cancelled)
                        t->callbacks.cancelled(t->userdata, r->waiter_token, r->cancel_error);
                request_free(r);
                return true;
        }

        l = h->dirty.first;
        if (l) {
                t = l->table;
                r = l->waiters.first;
                if (!t->dying && r && lock_compatible(l, r->shared)) {
                        void *waiter_token = r->waiter_token;

                        /* The lock stays dirty: the next waiter is looked at on the next step. */
                        lock_grant_head(l);
                        r->waiter_token = NULL;
                        t->callbacks.granted(t->userdata, waiter_token, r->token);
                        return true;
                }

                LIST_REMOVE(dirty, h->dirty, l);
                l->is_dirty = false;
                if (!t->dying && l->n_holders == 0 && l->n_waiters == 0)
                        lock_free(l);
                return true;
        }

        t = h->dying.first;
        if (t) {
                table_destroy(t);
                return true;
        }

        return false;
}

static void hub_dispatch(LockHub *h) {
        if (h->dispatching > 0)
                return;

        h->dispatching++;
        while (hub_dispatch_one(h))
                ;
        h->dispatching--;
}

/* Called from the dispatch loop only (h->dispatching > 0). */
static void table_destroy(LockTable *t) {
        LockHub *h = t->hub;
        LIST_HEAD(LockRequest) doomed = {};
        LockRequest *r;
        Lock *l;

        assert(h->dispatching > 0);

        if (t->in_dying_list) {
                LIST_REMOVE(dying, h->dying, t);
                t->in_dying_list = false;
        }

        /* First take everything apart without running any callback... */
        while ((l = t->locks.first)) {
                while ((r = l->holders.first))
                        request_free(r);
                while ((r = l->waiters.first)) {
                        request_detach_owner(r);
                        request_drop_lease(r);
                        request_unlink_lock(r);
                        LIST_APPEND(by_lock, doomed, r);
                }
                lock_free(l);
        }

        /* ...then tell the glue about the waiters: the table is empty and refuses calls. */
        while ((r = doomed.first)) {
                LIST_REMOVE(by_lock, doomed, r);
                if (t->callbacks.cancelled)
                        t->callbacks.cancelled(t->userdata, r->waiter_token, -ESHUTDOWN);
                request_free(r);
        }

        assert(t->n_locks == 0 && t->n_holders == 0 && t->n_waiters == 0 && t->n_leases == 0);

        LIST_REMOVE(by_hub, h->tables, t);
        free(t->buckets);
        free(t);
}

/* ------------------------------------------------------------------------------------------ */
/* Owners */

void lock_owner_init(LockOwner *o, const char *description) {
        assert(o);

        *o = (LockOwner) {
                .description = description,
        };
}

void lock_owner_set_uid(LockOwner *o, uid_t uid) {
        LockRequest *r;

        assert(o);

        o->uid = uid;
        o->has_uid = true;
        LIST_FOREACH(by_owner, r, o->holdings)
                if (!r->has_uid) {
                        r->uid = uid;
                        r->has_uid = true;
                }
}

static void request_detach_leased(LockRequest *r) {
        const char *desc = r->owner->description ?: "(unknown)";

        r->detached_desc = strdup(desc);
        r->detached = true;
        request_detach_owner(r);
}

void lock_owner_release_all(LockOwner *o) {
        LockRequest *r;
        LockHub *h;

        if (!o || !o->hub)
                return;
        h = o->hub;

        while ((r = o->waiters.first)) {
                request_detach_owner(r);
                request_drop_lease(r);
                request_unlink_lock(r);
                r->cancel_pending = true;
                r->cancel_error = -ECONNRESET;
                LIST_APPEND(by_lock, h->cancelled, r);
        }

        while ((r = o->holdings.first)) {
                if (r->heap_idx != SIZE_MAX)
                        request_detach_leased(r);
                else
                        request_free(r);
        }

        o->hub = NULL;
        hub_dispatch(h);
}

size_t lock_owner_n_holdings(const LockOwner *o) {
        const LockRequest *r;
        size_t n = 0;

        LIST_FOREACH(by_owner, r, o->holdings)
                n++;
        return n;
}

size_t lock_owner_n_waiters(const LockOwner *o) {
        const LockRequest *r;
        size_t n = 0;

        LIST_FOREACH(by_owner, r, o->waiters)
                n++;
        return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Hub */

int lock_hub_new(lock_clock_func_t clock, void *clock_userdata, LockHub **ret) {
        LockHub *h;

        if (!clock || !ret)
                return -EINVAL;

        h = calloc(1, sizeof(LockHub));
        if (!h)
                return -ENOMEM;

        h->clock = clock;
        h->clock_userdata = clock_userdata;
        *ret = h;
        return 0;
}

LockHub *lock_hub_free(LockHub *h) {
        LockTable *t;

        if (!h)
                return NULL;

        assert(h->dispatching == 0);

        /* Tables freed here may see calls from their cancelled() callbacks: let the loop handle
         * them, then sweep again until nothing is left. */
        while ((t = h->tables.first)) {
                h->dispatching++;
                LIST_FOREACH(by_hub, t, h->tables)
                        (void) lock_table_free(t);
                h->dispatching--;
                hub_dispatch(h);
        }

        assert(h->heap_size == 0 && h->heap_reserved == 0);
        free(h->heap);
        free(h);
        return NULL;
}

uint64_t lock_hub_next_deadline(const LockHub *h) {
        if (!h || h->heap_size == 0)
                return LOCK_NO_DEADLINE;
        return h->heap[0]->deadline;
}

int lock_hub_expire(LockHub *h) {
        uint64_t now;
        int n = 0;

        if (!h)
                return -EINVAL;

        now = hub_now(h);
        while (h->heap_size > 0 && h->heap[0]->deadline <= now) {
                request_free(h->heap[0]);
                if (n < INT32_MAX)
                        n++;
        }

        hub_dispatch(h);
        return n;
}

uint64_t lock_hub_last_token(const LockHub *h) {
        return h ? h->last_token : 0;
}

int lock_hub_raise_token_floor(LockHub *h, uint64_t floor) {
        if (!h)
                return -EINVAL;
        if (floor >= LOCK_TOKEN_FLOOR_MAX)
                return -ERANGE;

        h->last_token = MAX(h->last_token, floor);
        return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tables */

int lock_table_new(LockHub *h, const LockLimits *limits, const LockTableCallbacks *callbacks,
                   void *userdata, LockTable **ret) {
        LockTable *t;

        if (!h || !callbacks || !callbacks->granted || !ret)
                return -EINVAL;

        t = calloc(1, sizeof(LockTable));
        if (!t)
                return -ENOMEM;

        t->hub = h;
        t->callbacks = *callbacks;
        t->userdata = userdata;
        if (limits)
                t->limits = *limits;
        if (t->limits.max_name_len == 0)
                t->limits.max_name_len = LOCK_DEFAULT_MAX_NAME_LEN;
        if (t->limits.max_locks == 0)
                t->limits.max_locks = LOCK_DEFAULT_MAX_LOCKS;
        if (t->limits.max_holders == 0)
                t->limits.max_holders = LOCK_DEFAULT_MAX_HOLDERS;
        if (t->limits.max_waiters == 0)
                t->limits.max_waiters = LOCK_DEFAULT_MAX_WAITERS;
        if (t->limits.max_lease_ms == 0)
                t->limits.max_lease_ms = LOCK_DEFAULT_MAX_LEASE_MS;

        if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed))
                t->seed = (uint64_t) (uintptr_t) t ^ UINT64_C(0x9e3779b97f4a7c15);

        LIST_APPEND(by_hub, h->tables, t);
        *ret = t;
        return 0;
}

LockTable *lock_table_free(LockTable *t) {
        LockHub *h;

        if (!t || t->dying)
                return NULL;

        h = t->hub;
        t->dying = true;
        LIST_APPEND(dying, h->dying, t);
        t->in_dying_list = true;
        hub_dispatch(h);
        return NULL;
}

int lock_table_check_name(const LockTable *t, const char *name) {
        size_t max = t ? t->limits.max_name_len : LOCK_DEFAULT_MAX_NAME_LEN;

        if (!name || name[0] == '\0')
                return -EINVAL;
        if (strnlen(name, max + 1) > max)
                return -EINVAL;
        if (!utf8_valid(name, strlen(name)))
                return -EINVAL;
        return 0;
}

static int table_check_mutable(const LockTable *t) {
        if (!t)
                return -EINVAL;
        if (t->dying)
                return -ESHUTDOWN;
        if (t->listing > 0)
                return -EBUSY;
        return 0;
}

static bool lock_held_by(const Lock *l, const LockOwner *owner) {
        const LockRequest *r;

        LIST_FOREACH(by_lock, r, l->holders)
                if (r->owner == owner)
                        return true;
        return false;
}

static int acquire(LockTable *t, const char *name, LockOwner *owner, bool shared,
                   uint64_t lease_ms, bool try, void *waiter_token, LockWaiter **ret_waiter,
                   uint64_t *ret_token) {
        _cleanup_(request_freep) LockRequest *r = NULL;
        bool grant;
        Lock *l;
        int k;

        k = table_check_mutable(t);
        if (k < 0)
                return k;
        k = lock_table_check_name(t, name);
        if (k < 0)
                return k;
        if (lease_ms > t->limits.max_lease_ms)
                return -ERANGE;
        if (owner && owner->hub && owner->hub != t->hub &&
            (!LIST_IS_EMPTY(owner->holdings) || !LIST_IS_EMPTY(owner->waiters)))
                return -EXDEV;

        l = table_find(t, name);
        grant = !l || (LIST_IS_EMPTY(l->waiters) && lock_compatible(l, shared));

        if (!grant) {
                if (try)
                        return 0;
                if (owner && lock_held_by(l, owner))
                        return -EDEADLK;
                if (t->n_waiters >= t->limits.max_waiters)
                        return -ENOBUFS;
        } else if (t->n_holders >= t->limits.max_holders)
                return -ENOBUFS;

        r = request_new(t, shared, lease_ms, grant ? NULL : waiter_token);
        if (!r)
                return -ENOMEM;

        if (lease_ms > 0) {
                k = heap_reserve(t->hub, r);
                if (k < 0)
                        return k;
        }

        if (!l) {
                k = lock_new(t, name, &l);
                if (k < 0)
                        return k;
        }

        /* Nothing can fail from here on. */
        if (owner)
                owner->hub = t->hub;

        if (grant) {
                request_make_holder(r, l, owner);
                *ret_token = r->token;
                TAKE_PTR(r);
                return 1;
        }

        r->lock = l;
        LIST_APPEND(by_lock, l->waiters, r);
        l->n_waiters++;
        t->n_waiters++;
        if (owner) {
                r->owner = owner;
                LIST_APPEND(by_owner, owner->waiters, r);
        }
        if (ret_waiter)
                *ret_waiter = r;
        TAKE_PTR(r);
        return 0;
}

int lock_acquire(LockTable *t, const char *name, LockOwner *owner, bool shared, uint64_t lease_ms,
                 void *waiter_token, LockWaiter **ret_waiter, uint64_t *ret_token) {
        if (!ret_token)
                return -EINVAL;
        return acquire(t, name, owner, shared, lease_ms, false, waiter_token, ret_waiter, ret_token);
}

int lock_try_acquire(LockTable *t, const char *name, LockOwner *owner, bool shared,
                     uint64_t lease_ms, uint64_t *ret_token) {
        if (!ret_token)
                return -EINVAL;
        return acquire(t, name, owner, shared, lease_ms, true, NULL, NULL, ret_token);
}

void lock_waiter_cancel(LockWaiter *w) {
        LockHub *h;

        if (!w)
                return;

        assert(!w->granted);
        h = w->table->hub;

        if (w->cancel_pending)
                LIST_REMOVE(by_lock, h->cancelled, w);
        request_free(w);
        hub_dispatch(h);
}

/* Only the holder releases a hold (see LockCaller in locks.h). */
static bool caller_may_release(const LockRequest *r, const LockCaller *c) {
        if (r->owner)
                return c->owner == r->owner;
        if (r->detached)
                return r->has_uid && c->has_uid && c->uid == r->uid;
        return true; /* anonymous: the token is the only credential */
}

static int find_holder(LockTable *t, const char *name, uint64_t token, const LockCaller *caller,
                       LockRequest **ret) {
        LockRequest *r;
        Lock *l;
        int k;

        k = table_check_mutable(t);
        if (k < 0)
                return k;
        if (!caller)
                return -EINVAL;
        k = lock_table_check_name(t, name);
        if (k < 0)
                return k;

        l = table_find(t, name);
        if (!l || l->n_holders == 0)
                return -ENOLCK;

        LIST_FOREACH(by_lock, r, l->holders)
                if (r->token == token) {
                        if (!caller_may_release(r, caller))
                                return -EACCES;
                        *ret = r;
                        return 0;
                }

        return -EPERM;
}

int lock_unlock(LockTable *t, const char *name, uint64_t token, const LockCaller *caller) {
        LockRequest *r;
        int k;

        k = find_holder(t, name, token, caller, &r);
        if (k < 0)
                return k;

        request_free(r);
        hub_dispatch(t->hub);
        return 0;
}

int lock_refresh(LockTable *t, const char *name, uint64_t token, uint64_t lease_ms,
                 const LockCaller *caller) {
        LockRequest *r;
        LockHub *h;
        int k;

        k = find_holder(t, name, token, caller, &r);
        if (k < 0)
                return k;
        if (lease_ms > t->limits.max_lease_ms)
                return -ERANGE;
        h = t->hub;

        if (lease_ms == 0) {
                if (!r->owner)
                        return -EINVAL;
                request_drop_lease(r);
                r->lease_ms = 0;
                return 0;
        }

        k = heap_reserve(h, r);
        if (k < 0)
                return k;

        r->lease_ms = lease_ms;
        r->deadline = deadline_after(hub_now(h), lease_ms);
        if (r->heap_idx == SIZE_MAX)
                heap_push(h, r);
        else
                heap_update(h, r);
        return 0;
}

static const char *request_holder_description(const LockRequest *r) {
        if (r->owner)
                return r->owner->description ?: "(unknown)";
        if (r->detached)
                return r->detached_desc ?: "(unknown)";
        return "(anonymous)";
}

int lock_table_list(LockTable *t, lock_list_func_t f, void *userdata) {
        const Lock *l;
        int k = 0;

        if (!t || !f)
                return -EINVAL;

        t->listing++;
        LIST_FOREACH(by_table, l, t->locks) {
                LockHolderInfo info = {
                        .name = l->name,
                        .n_holders = l->n_holders,
                        .n_waiters = l->n_waiters,
                };
                const LockRequest *r;

                if (l->n_holders == 0) {
                        if (l->n_waiters == 0)
                                continue;
                        info.holder = "";
                        info.lease_deadline_ms = LOCK_NO_DEADLINE;
                        k = f(&info, userdata);
                        if (k < 0)
                                break;
                        continue;
                }

                LIST_FOREACH(by_lock, r, l->holders) {
                        info.holder = request_holder_description(r);
                        info.token = r->token;
                        info.lease_deadline_ms = r->deadline;
                        info.shared = r->shared;
                        info.detached = r->detached;
                        k = f(&info, userdata);
                        if (k < 0)
                                break;
                }
                if (k < 0)
                        break;
        }
        t->listing--;

        return k < 0 ? k : 0;
}

void lock_table_get_stats(const LockTable *t, LockTableStats *ret) {
        *ret = (LockTableStats) {
                .n_locks = t->n_locks,
                .n_holders = t->n_holders,
                .n_waiters = t->n_waiters,
                .n_leases = t->n_leases,
        };
}
