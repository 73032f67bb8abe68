/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Locks1: unpack arguments, call the locks logic (service/locks/),
 * pack the reply.  One LockHub for the whole hub (tokens, lease deadlines) with ONE sd-event
 * timer; one LockTable per namespace; one LockOwner per Peer.  A Lock() that must wait is a
 * Deferred (deadline = timeout_ms, peer = the caller) plus a LockWait linking it to its
 * LockWaiter: the table's granted() callback answers it, its cancelled() callback or the
 * Deferred's on_end (timeout, caller gone) ends it.  With --redis each method takes its branch
 * to the rlocks part instead (service/backend/rlocks.h, "across hosts" below): the same
 * arguments and errors, answered once Redis has. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "bus-locks.h"
#include "bus-util.h"
#include "ch-errors.h"
#include "ch-locks1-server.h"
#include "deferred.h"
#include "log.h"
#include "namespace.h"
#include "peer.h"
#include "rlocks.h"

/* timeout_ms at or above this waits without limit (UINT64_MAX is the natural way to ask). */
#define LOCK_TIMEOUT_INFINITE_FROM (UINT64_C(1) << 63)

/* A Lock() call waiting in a queue. */
typedef struct LockWait {
        Namespace *ns;
        Deferred *deferred;
        LockWaiter *waiter;
        uint64_t timeout_ms;
        char name[];
} LockWait;

/* --- clock and the lease timer --------------------------------------------------------- */

static uint64_t lock_clock(void *userdata) {
        return hub_now_ms(userdata);
}

static int on_lock_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Hub *h = userdata;
        int r;

        r = lock_hub_expire(h->lock_hub);
        if (r > 0) {
                log_debug("%i lock lease(s) ended.", r);
                namespace_check_all_unused(h);
        }
        bus_locks_rearm(h);
        return 0;
}

void bus_locks_rearm(Hub *h) {
        uint64_t next;
        int r;

        if (!h || !h->lock_hub || !h->lock_timer)
                return;
        next = lock_hub_next_deadline(h->lock_hub);
        if (next == LOCK_NO_DEADLINE || next >= UINT64_MAX / USEC_PER_MSEC) {
                (void) sd_event_source_set_enabled(h->lock_timer, SD_EVENT_OFF);
                return;
        }
        r = sd_event_source_set_time(h->lock_timer, next * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(h->lock_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the lock lease timer: %m");
}

/* A hub that restarts remembers no token: start this run's tokens above every token an earlier
 * run could have issued. Runs start at their real-time clock in microseconds and take one token
 * per grant, and no run grants a lock per microsecond (each grant is a bus round trip), so an
 * earlier run's tokens stay below the clock reading of any later start. See docs/locks.md. */
static int locks_raise_floor_from_clock(Hub *h) {
        struct timespec ts;
        uint64_t floor;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        floor = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
        log_debug("Lock tokens of this run start above %llu (real-time clock, us).", (unsigned long long) floor);
        return lock_hub_raise_token_floor(h->lock_hub, floor);
}

int bus_locks_setup(Hub *h) {
        int r;

        r = lock_hub_new(lock_clock, h, &h->lock_hub);
        if (r < 0)
                return r;
        r = locks_raise_floor_from_clock(h);
        if (r < 0)
                return log_error_errno(r, "Failed to start lock tokens above the real-time clock: %m");
        r = sd_event_add_time(h->event, &h->lock_timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC,
                              on_lock_timer, h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->lock_timer, "lock-leases");
        return sd_event_source_set_enabled(h->lock_timer, SD_EVENT_OFF);
}

void bus_locks_shutdown(Hub *h) {
        h->lock_timer = sd_event_source_disable_unref(h->lock_timer);
        h->lock_hub = lock_hub_free(h->lock_hub);
}

/* --- errors ---------------------------------------------------------------------------- */

/* Long names are cut in messages (they are at most max-name-bytes anyway). */
#define NAME_FMT "'%.80s%s'"
#define NAME_ARG(n) (n), strlen(n) > 80 ? "..." : ""

static int lock_error(sd_bus_error *ret_error, int r, Namespace *ns, const char *name, uint64_t token,
                      uint64_t lease_ms) {
        switch (r) {
        case -EINVAL:
                if (lock_table_check_name(ns->locks, name) < 0)
                        return bus_error_errno(ret_error, r,
                                               "Invalid lock name " NAME_FMT ": it must be non-empty UTF-8 of at most %llu bytes.",
                                               NAME_ARG(name), (unsigned long long) ns->hub->limits.max_name_bytes);
                return bus_error_errno(ret_error, r, "Invalid argument for lock " NAME_FMT " in namespace '%s'.",
                                       NAME_ARG(name), ns->name);
        case -ENOLCK:
                return bus_error_errno(ret_error, r, "Lock " NAME_FMT " is not held by anybody in namespace '%s'.",
                                       NAME_ARG(name), ns->name);
        case -EPERM:
                return bus_error_errno(ret_error, r,
                                       "Token %llu does not hold lock " NAME_FMT " in namespace '%s' (stale or foreign token); the lock stays held.",
                                       (unsigned long long) token, NAME_ARG(name), ns->name);
        case -EACCES:
                sd_bus_error_setf(ret_error, CH_ERROR_NOT_LOCK_OWNER,
                                  "Lock " NAME_FMT " in namespace '%s' (token %llu) is not the caller's: only its holder's connection, or after a holder with a lease has gone a caller of the same uid, may release or refresh it.",
                                  NAME_ARG(name), ns->name, (unsigned long long) token);
                return r;
        case -ERANGE:
                sd_bus_error_setf(ret_error, CH_ERROR_LIMIT_EXCEEDED,
                                  "Lock " NAME_FMT ": lease_ms %llu is above the hub's limit of %llu (--max-lease-ms).",
                                  NAME_ARG(name), (unsigned long long) lease_ms,
                                  (unsigned long long) ns->hub->limits.max_lease_ms);
                return r;
        case -ENOBUFS: {
                const Limits *lim = &ns->hub->limits;
                LockTableStats s;
                lock_table_get_stats(ns->locks, &s);
                return bus_error_errno(ret_error, r,
                                       "Cannot take lock " NAME_FMT ": namespace '%s' has %zu locks, %zu holders and %zu waiters (limits %llu, %llu, %llu: --max-locks, --max-lock-holders, --max-lock-waiters).",
                                       NAME_ARG(name), ns->name, s.n_locks, s.n_holders, s.n_waiters,
                                       (unsigned long long) lim->max_locks, (unsigned long long) lim->max_lock_holders,
                                       (unsigned long long) lim->max_lock_waiters);
        }
        case -EDEADLK:
                return bus_error_errno(ret_error, r,
                                       "Lock " NAME_FMT " in namespace '%s' would wait for the caller's own hold on it.",
                                       NAME_ARG(name), ns->name);
        case -ESHUTDOWN:
                return bus_error_errno(ret_error, -ECANCELED, "Namespace '%s' is being dropped (lock " NAME_FMT ").",
                                       ns->name, NAME_ARG(name));
        default:
                return r;
        }
}

/* bus_read_options() messages name the option; ours also name the lock. */
static int prefix_error(sd_bus_error *ret_error, int r, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        if (!sd_bus_error_is_set(ret_error))
                return r;
        sd_bus_error_move(&e, ret_error);
        sd_bus_error_setf(ret_error, e.name, "Lock " NAME_FMT ": %s", NAME_ARG(name), e.message ? e.message : "");
        return r;
}

/* --- options --------------------------------------------------------------------------- */

typedef struct LockOptions {
        uint64_t timeout_ms;
        uint64_t lease_ms;
        bool shared;
} LockOptions;

static int read_lock_options(sd_bus_message *m, Hub *h, const char *name, LockOptions *o, sd_bus_error *ret_error) {
        const BusOption table[] = {
                { "timeout_ms", BUS_OPTION_UINT64, &o->timeout_ms },
                { "lease_ms", BUS_OPTION_UINT64, &o->lease_ms },
                { "shared", BUS_OPTION_BOOL, &o->shared },
                {}
        };
        int r;

        *o = (LockOptions) {};
        r = bus_read_options(m, table, ret_error);
        if (r < 0)
                return prefix_error(ret_error, r, name);
        if (o->timeout_ms == 0)
                o->timeout_ms = h->limits.lock_timeout_ms;
        if (o->timeout_ms >= LOCK_TIMEOUT_INFINITE_FROM)
                o->timeout_ms = UINT64_MAX; /* deferred_new(): no deadline */
        return 0;
}

/* --- waiting Lock() calls ----------------------------------------------------------------- */

static void lock_wait_free(LockWait *w) {
        free(w);
}

static void on_granted(void *userdata, void *waiter_token, uint64_t token) {
        LockWait *w = waiter_token;
        Deferred *d = w->deferred;
        int r;

        r = ch_locks1_reply_lock(d->call, token);
        if (r < 0)
                /* its connection is closing: the bus will tell us, and the lock is released then */
                log_debug_errno(r, "Failed to answer Lock('%s') with token %llu: %m", w->name,
                                (unsigned long long) token);
        deferred_free(d);
        lock_wait_free(w);
}

static void on_cancelled(void *userdata, void *waiter_token, int error) {
        LockWait *w = waiter_token;
        Deferred *d = w->deferred;

        if (error == -ESHUTDOWN)
                (void) bus_reply_errorf(d->call, CH_ERROR_NAMESPACE_DROPPED,
                                        "Namespace '%s' was dropped while waiting for lock " NAME_FMT ".",
                                        w->ns->name, NAME_ARG(w->name));
        /* -ECONNRESET: the caller is gone, nobody to answer */
        deferred_free(d);
        lock_wait_free(w);
}

static void lock_wait_ended(Deferred *d, DeferredEnd why) {
        LockWait *w = d->userdata;
        Hub *h = d->hub;

        lock_waiter_cancel(w->waiter); /* may grant whoever was behind it */
        if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, CH_ERROR_TIMEOUT,
                                        "Timed out after %llu ms waiting for lock " NAME_FMT " in namespace '%s'.",
                                        (unsigned long long) w->timeout_ms, NAME_ARG(w->name), w->ns->name);
        lock_wait_free(w);
        bus_locks_rearm(h);
}

static const LockTableCallbacks table_callbacks = {
        .granted = on_granted,
        .cancelled = on_cancelled,
};

static size_t limit_size(uint64_t v) {
        return v > SIZE_MAX ? SIZE_MAX : (size_t) v;
}

int bus_locks_table_new(Namespace *ns, LockTable **ret) {
        const Limits *lim = &ns->hub->limits;
        LockLimits l = {
                .max_name_len = limit_size(lim->max_name_bytes),
                .max_locks = limit_size(lim->max_locks),
                .max_holders = limit_size(lim->max_lock_holders),
                .max_waiters = limit_size(lim->max_lock_waiters),
                .max_lease_ms = lim->max_lease_ms,
        };
        return lock_table_new(ns->hub->lock_hub, &l, &table_callbacks, ns, ret);
}

/* --- who the caller is ------------------------------------------------------------------ */

static int sender_euid(Hub *h, sd_bus_message *m, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *c = NULL;
        uid_t uid;
        int r;

        r = peer_query_creds(h, m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &c);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(c, &uid);
        if (r < 0)
                return r;
        *ret = uid;
        return 0;
}

/* Holds record their owner's uid at grant, so that after the owner left with a lease a caller
 * of the same uid can still release them. Asked once per peer (a round trip to the bus). */
static void peer_learn_uid(Peer *p, sd_bus_message *m) {
        uid_t uid;
        int r;

        if (p->lock_owner.has_uid)
                return;
        r = sender_euid(p->hub, m, &uid);
        if (r < 0) {
                /* its lease holds then end only by their lease once it has gone */
                log_debug_errno(r, "Cannot learn the uid of %s: %m", p->unique_name);
                return;
        }
        lock_owner_set_uid(&p->lock_owner, uid);
}

/* The caller of Unlock/Refresh: its peer, if it has one (its own holds), and its uid. */
static void lock_caller_of(Hub *h, sd_bus_message *m, LockCaller *ret) {
        Peer *p = peer_of(h, m);
        uid_t uid;

        *ret = (LockCaller) {};
        if (p) {
                ret->owner = &p->lock_owner;
                if (p->lock_owner.has_uid) {
                        ret->uid = p->lock_owner.uid;
                        ret->has_uid = true;
                        return;
                }
        }
        if (sender_euid(h, m, &uid) >= 0) {
                ret->uid = uid;
                ret->has_uid = true;
        }
}

/* --- across hosts (--redis): the same calls, answered from Redis (service/backend/rlocks.c) --- */

/* A Locks1 call answered once Redis has: the call, and what its messages name. */
typedef struct RCall {
        Hub *hub;
        sd_bus_message *call;
        Deferred *deferred;     /* Lock: its deadline and caller */
        RLockWait *wait;
        uint64_t timeout_ms;
        uint64_t token;
        uint64_t lease_ms;
        char *ns;
        char name[];
} RCall;

static RCall *rcall_new(Hub *h, sd_bus_message *m, const char *ns, const char *name) {
        RCall *c = calloc(1, sizeof(RCall) + strlen(name) + 1);

        if (!c)
                return NULL;
        c->ns = strdup(ns);
        if (!c->ns) {
                free(c);
                return NULL;
        }
        c->hub = h;
        c->call = sd_bus_message_ref(m);
        strcpy(c->name, name);
        return c;
}

static void rcall_free(RCall *c) {
        sd_bus_message_unref(c->call);
        free(c->ns);
        free(c);
}

/* The error of a call across hosts: the local messages where the meaning is the same. */
static int rlock_error(sd_bus_error *e, int r, Hub *h, const char *ns, const char *name, uint64_t token,
                       uint64_t lease_ms, const char *detail) {
        switch (r) {
        case -EHOSTDOWN:
                if (detail)
                        return bus_error_errno(e, r, "Redis refused lock " NAME_FMT " in namespace '%s': %s", NAME_ARG(name),
                                               ns, detail);
                return bus_error_errno(e, r, "Lock " NAME_FMT " in namespace '%s': Redis cannot be reached (--redis).",
                                       NAME_ARG(name), ns);
        case -ESTALE:
                sd_bus_error_setf(e, CH_ERROR_NOT_LOCK_OWNER,
                                  "Lock " NAME_FMT " in namespace '%s' (token %llu) was lost: this hub could not renew its lease in Redis, and another hub took the lock.",
                                  NAME_ARG(name), ns, (unsigned long long) token);
                return r;
        case -ENOBUFS:
                return bus_error_errno(e, r,
                                       "Cannot take lock " NAME_FMT ": namespace '%s' has too many %s (limits %llu, %llu, %llu: --max-locks, --max-lock-holders, --max-lock-waiters).",
                                       NAME_ARG(name), ns, detail ? detail : "holders or waiters on this hub",
                                       (unsigned long long) h->limits.max_locks, (unsigned long long) h->limits.max_lock_holders,
                                       (unsigned long long) h->limits.max_lock_waiters);
        case -ENOLCK:
                return bus_error_errno(e, r, "Lock " NAME_FMT " is not held by anybody in namespace '%s'.", NAME_ARG(name), ns);
        case -EPERM:
                return bus_error_errno(e, r,
                                       "Token %llu does not hold lock " NAME_FMT " in namespace '%s' (stale or foreign token); the lock stays held.",
                                       (unsigned long long) token, NAME_ARG(name), ns);
        case -EACCES:
                sd_bus_error_setf(e, CH_ERROR_NOT_LOCK_OWNER,
                                  "Lock " NAME_FMT " in namespace '%s' (token %llu) is not the caller's: only its holder's connection, or after a holder with a lease has gone a caller of the same uid, may release or refresh it.",
                                  NAME_ARG(name), ns, (unsigned long long) token);
                return r;
        case -ERANGE:
                sd_bus_error_setf(e, CH_ERROR_LIMIT_EXCEEDED,
                                  "Lock " NAME_FMT ": lease_ms %llu is above the hub's limit of %llu (--max-lease-ms).",
                                  NAME_ARG(name), (unsigned long long) lease_ms, (unsigned long long) h->limits.max_lease_ms);
                return r;
        case -EDEADLK:
                return bus_error_errno(e, r, "Lock " NAME_FMT " in namespace '%s' would wait for the caller's own hold on it.",
                                       NAME_ARG(name), ns);
        case -EINVAL:
                return bus_error_errno(e, r,
                                       "Lock " NAME_FMT " (token %llu): its holder has disconnected, a lease of 0 would hold it forever.",
                                       NAME_ARG(name), (unsigned long long) token);
        default:
                return r;
        }
}

static void rcall_reply_error(RCall *c, int r, const char *detail) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        r = rlock_error(&e, r, c->hub, c->ns, c->name, c->token, c->lease_ms, detail);
        if (!sd_bus_error_is_set(&e))
                sd_bus_error_set_errno(&e, r);
        (void) bus_reply_error(c->call, &e); /* counts it in unheard_errors for a one-way Unlock */
}

static void on_rlock_done(void *userdata, int r, uint64_t token, const char *detail) {
        RCall *c = userdata;

        if (r > 0)
                (void) ch_locks1_reply_lock(c->call, token);
        else
                rcall_reply_error(c, r, detail);
        deferred_free(c->deferred);
        rcall_free(c);
}

static void rlock_wait_ended(Deferred *d, DeferredEnd why) {
        RCall *c = d->userdata;

        rlocks_wait_cancel(c->wait);
        if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, CH_ERROR_TIMEOUT,
                                        "Timed out after %llu ms waiting for lock " NAME_FMT " in namespace '%s'.",
                                        (unsigned long long) c->timeout_ms, NAME_ARG(c->name), c->ns);
        rcall_free(c);
}

static RLockRequest rlock_request(Namespace *ns, Peer *p, const char *name, const LockOptions *o) {
        return (RLockRequest) {
                .ns = ns->name,
                .name = name,
                .owner = &p->lock_owner,
                .holder = peer_origin(p),
                .uid = p->lock_owner.uid,
                .has_uid = p->lock_owner.has_uid,
                .shared = o->shared,
                .lease_ms = o->lease_ms,
        };
}

static int rlock_method_lock(RLocks *rl, sd_bus_message *m, Namespace *ns, Peer *p, const char *name, const LockOptions *o,
                             sd_bus_error *ret_error) {
        RLockRequest req = rlock_request(ns, p, name, o);
        RCall *c;
        int r;

        c = rcall_new(ns->hub, m, ns->name, name);
        if (!c)
                return -ENOMEM;
        c->timeout_ms = o->timeout_ms;
        c->lease_ms = o->lease_ms;
        r = deferred_new(ns->hub, m, p, o->timeout_ms, rlock_wait_ended, c, &c->deferred);
        if (r < 0) {
                rcall_free(c);
                return r;
        }
        r = rlocks_lock(rl, &req, on_rlock_done, c, &c->wait);
        if (r < 0) {
                deferred_free(c->deferred);
                rcall_free(c);
                return rlock_error(ret_error, r, ns->hub, ns->name, name, 0, o->lease_ms, NULL);
        }
        return 1;
}

static void on_rtry_done(void *userdata, int r, uint64_t token, const char *detail) {
        RCall *c = userdata;

        if (r >= 0)
                (void) ch_locks1_reply_try_lock(c->call, r > 0, r > 0 ? token : 0);
        else
                rcall_reply_error(c, r, detail);
        rcall_free(c);
}

static int rlock_method_try_lock(RLocks *rl, sd_bus_message *m, Namespace *ns, Peer *p, const char *name,
                                 const LockOptions *o, sd_bus_error *ret_error) {
        RLockRequest req = rlock_request(ns, p, name, o);
        RCall *c;
        int r;

        c = rcall_new(ns->hub, m, ns->name, name);
        if (!c)
                return -ENOMEM;
        c->lease_ms = o->lease_ms;
        r = rlocks_try_lock(rl, &req, on_rtry_done, c);
        if (r < 0) {
                rcall_free(c);
                return rlock_error(ret_error, r, ns->hub, ns->name, name, 0, o->lease_ms, NULL);
        }
        return 1;
}

static void on_runlock_done(void *userdata, int r, uint64_t token, const char *detail) {
        RCall *c = userdata;

        if (r >= 0)
                (void) ch_locks1_reply_unlock(c->call);
        else
                rcall_reply_error(c, r, detail);
        rcall_free(c);
}

static void on_rrefresh_done(void *userdata, int r, uint64_t token, const char *detail) {
        RCall *c = userdata;

        if (r >= 0)
                (void) ch_locks1_reply_refresh(c->call);
        else
                rcall_reply_error(c, r, detail);
        rcall_free(c);
}

/* Unlock (REFRESH false) or Refresh across hosts. */
static int rlock_method_release(RLocks *rl, sd_bus_message *m, Namespace *ns, const LockCaller *caller, const char *name,
                                uint64_t token, bool refresh, uint64_t lease_ms, sd_bus_error *ret_error) {
        RCall *c;
        int r;

        r = lock_table_check_name(ns->locks, name);
        if (r < 0)
                return lock_error(ret_error, r, ns, name, token, lease_ms);
        c = rcall_new(ns->hub, m, ns->name, name);
        if (!c)
                return -ENOMEM;
        c->token = token;
        c->lease_ms = lease_ms;
        if (refresh)
                r = rlocks_refresh(rl, ns->name, name, token, lease_ms, caller, on_rrefresh_done, c);
        else
                r = rlocks_unlock(rl, ns->name, name, token, caller, on_runlock_done, c);
        if (r < 0) {
                rcall_free(c);
                return rlock_error(ret_error, r, ns->hub, ns->name, name, token, lease_ms, NULL);
        }
        return 1;
}

typedef struct RRows {
        const RLockRow *rows;
        size_t n;
} RRows;

static int append_rrows(sd_bus_message *reply, void *userdata) {
        const RLockRow *rows = ((const RRows *) userdata)->rows;
        size_t n = ((const RRows *) userdata)->n;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sstua{sv})");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const RLockRow *row = &rows[i];
                bool leased = row->lease_left_ms != UINT64_MAX;

                r = sd_bus_message_open_container(reply, 'r', "sstua{sv}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "sstu", row->name, row->holder, row->token, row->n_waiters);
                if (r >= 0 && leased)
                        r = sd_bus_message_append(reply, "a{sv}", 3, "shared", "b", (int) row->shared, "disconnected", "b",
                                                  (int) row->detached, "lease_ms", "t", row->lease_left_ms);
                else if (r >= 0)
                        r = sd_bus_message_append(reply, "a{sv}", 2, "shared", "b", (int) row->shared, "disconnected", "b",
                                                  (int) row->detached);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static void on_rlist_done(void *userdata, int r, const RLockRow *rows, size_t n_rows, const char *detail) {
        RCall *c = userdata;

        if (r >= 0) {
                RRows rr = { .rows = rows, .n = n_rows };
                r = ch_locks1_reply_list_locks(c->call, append_rrows, &rr);
                if (r < 0) { /* never leave it unanswered (a reply over the bus's size, say) */
                        log_debug_errno(r, "Failed to answer ListLocks: %m");
                        (void) bus_reply_errorf(c->call, SD_BUS_ERROR_FAILED, "Cannot build the ListLocks reply (%zu rows): %s",
                                                n_rows, strerror(-r));
                }
        } else
                rcall_reply_error(c, r, detail);
        rcall_free(c);
}

static int rlock_method_list(RLocks *rl, sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error) {
        RCall *c;
        int r;

        c = rcall_new(ns->hub, m, ns->name, "");
        if (!c)
                return -ENOMEM;
        r = rlocks_list(rl, ns->name, on_rlist_done, c);
        if (r < 0) {
                rcall_free(c);
                if (r == -EHOSTDOWN)
                        return bus_error_errno(ret_error, r, "ListLocks in namespace '%s': Redis cannot be reached (--redis).",
                                               ns->name);
                return r;
        }
        return 1;
}

void bus_locks_peer_gone(Peer *p) {
        RLocks *rl = backend_part(p->hub, &rlocks_ops);

        if (rl)
                rlocks_owner_gone(rl, &p->lock_owner);
}

/* --- methods ---------------------------------------------------------------------------- */

static int method_lock(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *name) {
        Namespace *ns = userdata;
        Hub *h = ns->hub;
        LockOptions o;
        uint64_t token = 0;
        LockWait *w;
        RLocks *rl;
        Peer *p;
        int r;

        r = read_lock_options(m, h, name, &o, ret_error);
        if (r < 0)
                return r;
        r = lock_table_check_name(ns->locks, name);
        if (r < 0)
                return lock_error(ret_error, r, ns, name, 0, o.lease_ms);
        r = peer_get_or_new(h, m, &p);
        if (r < 0)
                return r;
        peer_learn_uid(p, m);
        r = peer_check_pending(p, ret_error);
        if (r < 0)
                return r;
        rl = backend_part(h, &rlocks_ops);
        if (rl)
                return rlock_method_lock(rl, m, ns, p, name, &o, ret_error);

        w = calloc(1, sizeof(LockWait) + strlen(name) + 1);
        if (!w)
                return -ENOMEM;
        w->ns = ns;
        w->timeout_ms = o.timeout_ms;
        strcpy(w->name, name);

        r = lock_acquire(ns->locks, name, &p->lock_owner, o.shared, o.lease_ms, w, &w->waiter, &token);
        if (r != 0) {
                lock_wait_free(w);
                bus_locks_rearm(h);
                if (r < 0)
                        return lock_error(ret_error, r, ns, name, 0, o.lease_ms);
                return ch_locks1_reply_lock(m, token);
        }

        /* queued: nothing can be granted before we return to the event loop */
        r = deferred_new(h, m, p, o.timeout_ms, lock_wait_ended, w, &w->deferred);
        if (r < 0) {
                lock_waiter_cancel(w->waiter);
                lock_wait_free(w);
                bus_locks_rearm(h);
                return r;
        }
        return 1;
}

static int method_try_lock(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *name) {
        Namespace *ns = userdata;
        Hub *h = ns->hub;
        LockOptions o;
        uint64_t token = 0;
        RLocks *rl;
        Peer *p;
        int r;

        r = read_lock_options(m, h, name, &o, ret_error);
        if (r < 0)
                return r;
        r = lock_table_check_name(ns->locks, name);
        if (r < 0)
                return lock_error(ret_error, r, ns, name, 0, o.lease_ms);
        r = peer_get_or_new(h, m, &p);
        if (r < 0)
                return r;
        peer_learn_uid(p, m);
        rl = backend_part(h, &rlocks_ops);
        if (rl)
                return rlock_method_try_lock(rl, m, ns, p, name, &o, ret_error);
        r = lock_try_acquire(ns->locks, name, &p->lock_owner, o.shared, o.lease_ms, &token);
        bus_locks_rearm(h);
        if (r < 0)
                return lock_error(ret_error, r, ns, name, 0, o.lease_ms);
        return ch_locks1_reply_try_lock(m, r > 0, r > 0 ? token : 0);
}

static int method_unlock(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *name, uint64_t token) {
        Namespace *ns = userdata;
        LockCaller caller;
        RLocks *rl;
        int r;

        lock_caller_of(ns->hub, m, &caller);
        rl = backend_part(ns->hub, &rlocks_ops);
        if (rl)
                return rlock_method_release(rl, m, ns, &caller, name, token, false, 0, ret_error);
        r = lock_unlock(ns->locks, name, token, &caller);
        bus_locks_rearm(ns->hub);
        if (r < 0) /* a one-way Unlock (the bindings' default): the generated code counts it */
                return lock_error(ret_error, r, ns, name, token, 0);
        return ch_locks1_reply_unlock(m);
}

static int method_refresh(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *name, uint64_t token,
                          uint64_t lease_ms) {
        Namespace *ns = userdata;
        LockCaller caller;
        RLocks *rl;
        int r;

        lock_caller_of(ns->hub, m, &caller);
        rl = backend_part(ns->hub, &rlocks_ops);
        if (rl)
                return rlock_method_release(rl, m, ns, &caller, name, token, true, lease_ms, ret_error);
        r = lock_refresh(ns->locks, name, token, lease_ms, &caller);
        bus_locks_rearm(ns->hub);
        if (r == -EINVAL && lease_ms == 0 && lock_table_check_name(ns->locks, name) >= 0)
                return bus_error_errno(ret_error, r,
                                       "Lock " NAME_FMT " (token %llu): its holder has disconnected, a lease of 0 would hold it forever.",
                                       NAME_ARG(name), (unsigned long long) token);
        if (r < 0)
                return lock_error(ret_error, r, ns, name, token, lease_ms);
        return ch_locks1_reply_refresh(m);
}

typedef struct LockRows {
        sd_bus_message *reply;
        uint64_t now_ms;
} LockRows;

/* (name, holder, token, waiters, details): details says what the holder string does not:
 * "shared" (b), "disconnected" (b: held by its lease after its connection closed), and
 * "lease_ms" (t: what is left of the lease) when there is one. */
static int append_lock_row(const LockHolderInfo *info, void *userdata) {
        LockRows *rows = userdata;
        sd_bus_message *reply = rows->reply;
        uint32_t waiters = info->n_waiters > UINT32_MAX ? UINT32_MAX : (uint32_t) info->n_waiters;
        bool leased = info->lease_deadline_ms != LOCK_NO_DEADLINE;
        uint64_t left = leased && info->lease_deadline_ms > rows->now_ms ? info->lease_deadline_ms - rows->now_ms : 0;
        int r;

        r = sd_bus_message_open_container(reply, 'r', "sstua{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "sstu", info->name, info->holder ? info->holder : "", info->token, waiters);
        if (r < 0)
                return r;
        if (leased)
                r = sd_bus_message_append(reply, "a{sv}", 3, "shared", "b", (int) info->shared,
                                          "disconnected", "b", (int) info->detached, "lease_ms", "t", left);
        else
                r = sd_bus_message_append(reply, "a{sv}", 2, "shared", "b", (int) info->shared,
                                          "disconnected", "b", (int) info->detached);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int append_locks(sd_bus_message *reply, void *userdata) {
        Namespace *ns = userdata;
        LockRows rows = { .reply = reply, .now_ms = hub_now_ms(ns->hub) };
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sstua{sv})");
        if (r < 0)
                return r;
        r = lock_table_list(ns->locks, append_lock_row, &rows);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int method_list_locks(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Namespace *ns = userdata;
        RLocks *rl = backend_part(ns->hub, &rlocks_ops);

        if (rl)
                return rlock_method_list(rl, m, ns, ret_error);
        return ch_locks1_reply_list_locks(m, append_locks, userdata);
}

const ChLocks1Handlers bus_locks_handlers = {
        .lock = method_lock,
        .try_lock = method_try_lock,
        .unlock = method_unlock,
        .refresh = method_refresh,
        .list_locks = method_list_locks,
};
