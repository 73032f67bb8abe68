/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "locks.h"
#include "rlocks-parse.h"

/* Locks1 across hosts (--redis, docs/redis.md "Locks"): the lock tables live in Redis, this part
 * keeps what this hub holds and who waits here, and talks to Redis with Lua scripts.
 *
 * In Redis, for namespace NS (every key in the slot of the hash tag {NS}):
 *   clusterhub:{NS}:lock:fence     the namespace's token counter (INCR in the grant script)
 *   clusterhub:{NS}:lock:hubs      hash: hub instance -> the end of its lease (Redis TIME, ms)
 *   clusterhub:{NS}:lock:h:NAME    hash: token -> "INST\tNODE\tWID\tMODE\tDEADLINE_MS\tHOLDER"
 *   clusterhub:{NS}:lock:q:NAME    list, FIFO: "INST\tWID\tMODE\tLEASE_MS\tHOLDER"
 *   clusterhub:{NS}:lock:names     set of the names with holders or waiters (ListLocks)
 * and the channel clusterhub:locks:NS, where a script that may let a waiter in publishes NAME.
 * A holder or a queued waiter is valid while its hub's lease (in ...:lock:hubs) has not ended
 * (the owning hub renews it every --node-lease-ms / 3) and, for a hold with a lease, until its
 * deadline; every script drops what is no longer valid before it looks at a lock.  Only the hub
 * of the head of the queue grants it, to itself, in one script with the INCR of the fence.
 *
 * Errors (negative errno, as the local locks' for the glue's messages): -EHOSTDOWN Redis cannot
 * be reached now or refused the script (BackendUnavailable; DETAIL has Redis's text), -ENOLCK,
 * -EPERM (the lock is held, not under that token, or this hub lost the hold: DETAIL says so),
 * -EACCES, -ENOBUFS, -ERANGE, -EDEADLK, -EINVAL, -ENOMEM. */

typedef struct RLocks RLocks;
typedef struct RLockWait RLockWait;

extern const BackendPartOps rlocks_ops;

/* Who asks, and what (Lock, TryLock). OWNER is the caller's identity (its peer's LockOwner: only
 * compared, never dereferenced); HOLDER its description (worker id or unique name). */
typedef struct RLockRequest {
        const char *ns;
        const char *name;
        const LockOwner *owner;
        const char *holder;
        uid_t uid;
        bool has_uid;
        bool shared;
        uint64_t lease_ms;
} RLockRequest;

/* The outcome of a call: R >= 0 and TOKEN (Lock; TryLock: R 1 acquired, 0 busy), or a negative
 * errno; DETAIL (may be NULL) says more, e.g. Redis's error text. */
typedef void (*rlock_done_fn)(void *userdata, int r, uint64_t token, const char *detail);

/* Lock(): 0 and later exactly one call of DONE (granted, or an error: Redis went away, a limit),
 * unless rlocks_wait_cancel() comes first; or a negative errno now (nothing is called then). */
int rlocks_lock(RLocks *rl, const RLockRequest *req, rlock_done_fn done, void *userdata, RLockWait **ret);
/* The waiting Lock() ends (its timeout, its caller gone): it leaves the queue in Redis, or if it
 * was granted meanwhile, the hold is released. DONE is not called. */
void rlocks_wait_cancel(RLockWait *w);

/* TryLock(), Unlock(), Refresh(): 0 and later one call of DONE, or a negative errno now. */
int rlocks_try_lock(RLocks *rl, const RLockRequest *req, rlock_done_fn done, void *userdata);
int rlocks_unlock(RLocks *rl, const char *ns, const char *name, uint64_t token, const LockCaller *caller,
                  rlock_done_fn done, void *userdata);
int rlocks_refresh(RLocks *rl, const char *ns, const char *name, uint64_t token, uint64_t lease_ms,
                   const LockCaller *caller, rlock_done_fn done, void *userdata);

/* ListLocks(): one row per holder, as Redis has them. */
typedef struct RLockRow {
        char *name;
        char *holder;           /* this hub's holder's description, or HOLDER@NODE */
        uint64_t token;
        uint32_t n_waiters;
        bool shared;
        bool detached;          /* this hub's holder has gone, its lease keeps the lock */
        uint64_t lease_left_ms; /* UINT64_MAX: no lease */
} RLockRow;

typedef void (*rlock_list_fn)(void *userdata, int r, const RLockRow *rows, size_t n_rows, const char *detail);
int rlocks_list(RLocks *rl, const char *ns, rlock_list_fn done, void *userdata);

/* OWNER's connection has gone: its holds without a lease are released (in Redis at once), those
 * with a lease stay until it ends, detached. Its waiting Lock() calls are cancelled by their
 * caller (rlocks_wait_cancel()). */
void rlocks_owner_gone(RLocks *rl, const LockOwner *owner);

/* GetStats numbers. */
typedef struct RLocksStats {
        uint64_t holds;
        uint64_t waits;
        uint64_t scripts;       /* sent */
        uint64_t wakes;         /* messages on clusterhub:locks:* */
        uint64_t lost;          /* holds another hub took while this one could not renew */
} RLocksStats;
void rlocks_get_stats(const RLocks *rl, RLocksStats *ret);
