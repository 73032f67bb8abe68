/* SPDX-License-Identifier: MIT */
#pragma once

/* Locks logic for org.clusterhub.Locks1: fair (FIFO), fenced (hub-wide monotonic tokens),
 * crash-safe named locks, exclusive or shared, with optional leases.
 *
 * Plain C, no D-Bus: the bus glue owns one LockHub, one LockTable per namespace and one LockOwner
 * per connection (embedded in its Peer), and translates the calls and the callbacks below.
 *
 * Objects:
 *   LockHub    hub-wide: token counter, clock, one lease-deadline heap for all tables (so the
 *              glue arms ONE timer), and the dispatcher that runs callbacks.
 *   LockTable  one namespace's locks, with its limits and callbacks.
 *   LockOwner  one client (connection). Embedded by the glue, zero-initialised (or
 *              lock_owner_init()). Intrusive lists of its holdings and waiters hang off it, so
 *              lock_owner_release_all() costs time proportional to what it holds.
 *   LockWaiter a queued Lock() call. Handed to the glue when a request queues; the glue keeps it
 *              to cancel the wait (timeout, caller gone). It is freed by the library right after
 *              its granted() or cancelled() callback, or by lock_waiter_cancel().
 *
 * Errors are negative errno values, mapped by the glue to D-Bus errors:
 *   -EINVAL   bad lock name (empty, not UTF-8, too long), bad argument      -> InvalidArgs
 *   -ENOLCK   Unlock/Refresh: no lock of that name is held                   -> NotLocked
 *   -EPERM    Unlock/Refresh: the lock is held, but not under that token     -> NotLockOwner
 *   -EACCES   Unlock/Refresh: the token is right, the caller is not its holder -> NotLockOwner
 *   -ENOBUFS  too many locks, holders or waiters in this table               -> LimitExceeded
 *   -ERANGE   lease_ms above the table's max_lease_ms                        -> LimitExceeded
 *   -EDEADLK  Lock(): the caller's own hold on this lock blocks the request   -> Deadlock
 *             (it would wait forever, e.g. an exclusive request by a holder)    (or InvalidArgs)
 *   -ESHUTDOWN  the table is being freed (only seen from inside callbacks)
 *   -EBUSY    mutation attempted from inside a lock_table_list() callback
 *   -ENOMEM
 * Outputs are written only on success.
 *
 * Re-entrancy: callbacks run only when all state is consistent, one at a time, from a single
 * hub-wide dispatch loop. A callback may call any function of this header on any table or owner
 * (unlock the lock it was just granted, acquire, cancel other waiters, release an owner, even
 * lock_table_free()); work those calls trigger (further grants, frees) is queued and performed
 * by the outer loop after the callback returns, in order. Only lock_hub_free() must not be called
 * from a callback.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "list.h"

typedef struct LockHub LockHub;
typedef struct LockTable LockTable;
typedef struct LockRequest LockRequest; /* a holder or a waiter (private) */
typedef struct LockRequest LockWaiter;  /* what the glue sees of a queued request */

/* The deadline value meaning "none". */
#define LOCK_NO_DEADLINE UINT64_MAX

/* ---------------------------------------------------------------------------------------------
 * Owners */

typedef struct LockOwner {
        /* Set by the glue, read whenever locks are listed: the caller's worker id or unique bus
         * name. Must stay valid as long as the owner holds or waits for anything (may be NULL). */
        const char *description;

        /* Set by the glue (lock_owner_set_uid()) before the owner's first request: the
         * effective uid of the caller. A hold records it when granted; after the owner is
         * released, a caller with the same uid and the token may still Unlock/Refresh it.
         * Zero-initialised means unknown (nobody but the owner itself may release its holds). */
        uid_t uid;
        bool has_uid;

        /* Private to the locks module. */
        LockHub *hub;
        LIST_HEAD(LockRequest) holdings;
        LIST_HEAD(LockRequest) waiters;
} LockOwner;

/* Initialise an owner (equivalent to zero-initialising it and setting the description).
 * An owner must be released (lock_owner_release_all()) before its memory goes away, unless the
 * hub was freed first (lock_hub_free() empties every owner). */
void lock_owner_init(LockOwner *o, const char *description);

/* Record the owner's effective uid (see LockOwner.uid). Holds granted before keep what they had
 * recorded, unless they had none. */
void lock_owner_set_uid(LockOwner *o, uid_t uid);

/* The owner's connection is gone. Releases every lock it holds without a lease, removes every
 * waiter it has queued (each gets the table's cancelled() callback with -ECONNRESET, so the glue
 * can free its pending-call record), and detaches the locks it holds with a lease: those stay
 * held, listed as disconnected, until their lease ends or their token unlocks them. Next waiters
 * are granted. Afterwards the owner is empty and may be reused or freed. Idempotent. */
void lock_owner_release_all(LockOwner *o);

/* Number of locks held / requests queued by this owner (all tables). O(n). */
size_t lock_owner_n_holdings(const LockOwner *o);
size_t lock_owner_n_waiters(const LockOwner *o);

/* ---------------------------------------------------------------------------------------------
 * Hub */

/* Clock in milliseconds (the glue uses CLOCK_MONOTONIC via sd_event_now(); tests a fake one). */
typedef uint64_t (*lock_clock_func_t)(void *userdata);

/* Create a hub. Tokens start at 1 and increase by one per grant, across all tables (the glue
 * raises the start with lock_hub_raise_token_floor()). */
int lock_hub_new(lock_clock_func_t clock, void *clock_userdata, LockHub **ret);

/* Tokens granted from now on are all > floor (and still increase by one per grant). Lowering is a
 * no-op: tokens never go backwards. The glue calls it at start with the real-time clock in
 * microseconds, so that a restarted hub (which remembers nothing) starts above every token an
 * earlier run could have issued; a persistence layer may call it with the last token it saved.
 * Returns 0, or -ERANGE for a floor >= LOCK_TOKEN_FLOOR_MAX (the counter must never wrap). */
#define LOCK_TOKEN_FLOOR_MAX (UINT64_C(1) << 62)
int lock_hub_raise_token_floor(LockHub *h, uint64_t floor);

/* Free the hub and every table still in it (see lock_table_free()). Not from a callback.
 * Owners must not be used with a freed hub until released (they are emptied here). */
LockHub *lock_hub_free(LockHub *h);

/* Earliest lease deadline over all tables (ms, on the hub's clock), LOCK_NO_DEADLINE if none.
 * O(1). After every call into this module that may have changed locks, the glue re-reads this
 * and re-arms its single timer. */
uint64_t lock_hub_next_deadline(const LockHub *h);

/* Release every lease whose deadline is <= now, granting next waiters. Returns the number of
 * leases ended (>= 0). Call it when the timer fires. */
int lock_hub_expire(LockHub *h);

/* The last token handed out (0 if none yet). */
uint64_t lock_hub_last_token(const LockHub *h);

/* ---------------------------------------------------------------------------------------------
 * Tables (one per namespace) */

typedef struct LockLimits {
        size_t max_name_len; /* bytes, without the NUL; default 256 */
        size_t max_locks;    /* distinct lock names alive in a table; default 16384 */
        size_t max_holders;  /* holders in a table (each shared holder counts); default 65536 */
        size_t max_waiters;  /* queued requests in a table; default 65536 */
        uint64_t max_lease_ms; /* longest lease_ms of Lock/TryLock/Refresh; default 3600000 */
} LockLimits;

#define LOCK_DEFAULT_MAX_NAME_LEN 256
#define LOCK_DEFAULT_MAX_LOCKS 16384
#define LOCK_DEFAULT_MAX_HOLDERS 65536
#define LOCK_DEFAULT_MAX_WAITERS 65536
#define LOCK_DEFAULT_MAX_LEASE_MS UINT64_C(3600000)

typedef struct LockTableCallbacks {
        /* A queued request was granted (after an unlock, a release, an expired lease or a cancelled
         * waiter ahead of it). Reply to the pending Lock() call with `token`. The LockWaiter is
         * already freed. Required. */
        void (*granted)(void *userdata, void *waiter_token, uint64_t token);
        /* A queued request was removed by the library: -ECONNRESET (its owner was released) or
         * -ESHUTDOWN (the table is being freed). Fail/free the pending call. The LockWaiter is
         * already freed. Not called for lock_waiter_cancel(). Optional. */
        void (*cancelled)(void *userdata, void *waiter_token, int error);
} LockTableCallbacks;

/* Create a table in hub `h`. `limits` NULL or any field 0 means the default. `userdata` is passed
 * to the callbacks (e.g. the glue's namespace object). */
int lock_table_new(LockHub *h, const LockLimits *limits, const LockTableCallbacks *callbacks,
                   void *userdata, LockTable **ret);

/* Drop the table: every waiter gets cancelled(-ESHUTDOWN), every hold is discarded. Returns NULL.
 * From inside a callback the table stops accepting calls at once (-ESHUTDOWN) and is freed when
 * the callback returns. */
LockTable *lock_table_free(LockTable *t);

/* Validate a lock name: non-empty, valid UTF-8, at most the table's max_name_len bytes.
 * Returns 0 or -EINVAL. (Every function taking a name does this.) */
int lock_table_check_name(const LockTable *t, const char *name);

/* Lock(): request lock `name` for `owner` (NULL: anonymous; only its token or its lease ends the
 * hold, whoever presents the token: the bus glue never makes anonymous holds). `shared` asks for
 * a reader lock. `lease_ms` 0: held until unlocked or the owner is released; > 0: held until
 * unlocked or now+lease_ms, even after the owner is released; above max_lease_ms: -ERANGE.
 *
 * Granted at once when the lock is compatible (free, or shared and held shared) and nobody is
 * queued on it (strict FIFO: a shared request queues behind a queued exclusive one): returns 1
 * and stores the fencing token in *ret_token. Otherwise queues a waiter and returns 0, storing it
 * in *ret_waiter (may be NULL if the caller never cancels); the table's granted() callback later
 * reports the token with `waiter_token`. Negative errno on error (-EINVAL, -ENOBUFS, -EDEADLK,
 * -ENOMEM, -EXDEV if the owner is used with another hub). */
int lock_acquire(LockTable *t, const char *name, LockOwner *owner, bool shared, uint64_t lease_ms,
                 void *waiter_token, LockWaiter **ret_waiter, uint64_t *ret_token);

/* TryLock(): like lock_acquire() but never queues: returns 1 and the token when granted, 0 when
 * the lock is busy (or others are queued for it), negative errno on error. */
int lock_try_acquire(LockTable *t, const char *name, LockOwner *owner, bool shared,
                     uint64_t lease_ms, uint64_t *ret_token);

/* Remove a queued waiter (its Lock() call timed out or its caller went away) and grant whatever
 * becomes grantable. No callback is run for the waiter itself; `w` is freed. NULL is a no-op. */
void lock_waiter_cancel(LockWaiter *w);

/* Who calls Unlock/Refresh. Only the holder releases a hold:
 *   - a hold whose owner is alive: only that owner (caller->owner == the holder's owner);
 *   - a hold whose owner was released (held by its lease): a caller whose uid is the uid the
 *     hold recorded (has_uid on both sides), presenting the token;
 *   - an anonymous hold (acquired with owner NULL): any caller presenting the token.
 * Everyone else gets -EACCES; the token alone is not a credential (ListLocks shows it). */
typedef struct LockCaller {
        const LockOwner *owner; /* the caller's owner, NULL when it has none */
        uid_t uid;              /* the caller's effective uid, when has_uid */
        bool has_uid;
} LockCaller;

/* Unlock(): release the hold identified by `token` (each shared holder has its own token).
 * Returns 0, -ENOLCK when `name` is not held by anybody, -EPERM when it is held but `token` is
 * not one of its holders' (stale or foreign token: the lock stays held), -EACCES when `caller`
 * may not release that hold (see LockCaller), -EINVAL (also for caller NULL). */
int lock_unlock(LockTable *t, const char *name, uint64_t token, const LockCaller *caller);

/* Refresh(): set the lease of the hold `token` on `name` to now+lease_ms. lease_ms 0 removes the
 * lease (held until unlock or owner release) and is refused with -EINVAL for a hold whose owner
 * is already released (it would be held forever); above max_lease_ms: -ERANGE. Other errors as
 * lock_unlock(). */
int lock_refresh(LockTable *t, const char *name, uint64_t token, uint64_t lease_ms,
                 const LockCaller *caller);

/* ListLocks(): one call of `f` per holder of every lock, locks in creation order, holders in
 * grant order. A lock momentarily without holders (only seen from inside a callback) is reported
 * once with token 0 and holder "". `f` returning < 0 stops the iteration and is returned.
 * `f` must not change the table: lock_acquire()/lock_try_acquire()/lock_unlock()/lock_refresh()
 * on it fail with -EBUSY; lock_waiter_cancel(), lock_owner_release_all(), lock_hub_expire() and
 * lock_table_free() must not be called from `f` (the glue only packs rows there). */
typedef struct LockHolderInfo {
        const char *name;           /* the lock's name */
        const char *holder;         /* owner description (also once detached: see detached),
                                     * "(anonymous)"/"(unknown)" when none is known */
        uint64_t token;             /* this holder's fencing token */
        uint64_t lease_deadline_ms; /* LOCK_NO_DEADLINE when not leased */
        bool shared;
        bool detached;              /* owner released, held by its lease */
        size_t n_holders;           /* holders of this lock */
        size_t n_waiters;           /* requests queued on this lock */
} LockHolderInfo;

typedef int (*lock_list_func_t)(const LockHolderInfo *info, void *userdata);

int lock_table_list(LockTable *t, lock_list_func_t f, void *userdata);

typedef struct LockTableStats {
        size_t n_locks;
        size_t n_holders;
        size_t n_waiters;
        size_t n_leases; /* holders with a lease, detached or not */
} LockTableStats;

void lock_table_get_stats(const LockTable *t, LockTableStats *ret);
