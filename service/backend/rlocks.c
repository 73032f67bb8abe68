/* SPDX-License-Identifier: MIT */
/* Locks1 across hosts: see rlocks.h and docs/redis.md ("Locks"). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus-util.h"
#include "hashmap.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "redis-link.h"
#include "rlocks.h"
#include "utf8.h"

#define RLOCKS_CHANNEL_PREFIX "clusterhub:locks:"

/* --- the scripts ------------------------------------------------------------------------------
 * Every script starts with LUA_PRELUDE.  ARGV[1..5] are always: this hub's instance (16 hex
 * digits), its node name, its lease in ms, the namespace, the lock name.  Every write of a
 * script is in the namespace's slot; the declared KEYS are checked for their type before
 * anything is written, so that a key some other client overwrote makes the script refuse
 * (an error reply) instead of failing half-way.  Lua numbers are doubles: tokens are never
 * computed in Lua (INCR, then GET for its exact text); the times in ms (about 1.8e12) and the
 * leases (at most --max-lease-ms) are exact in a double. */

#define LUA_PRELUDE                                                                                        \
        "local now\n"                                                                                      \
        "do local t = redis.call('TIME'); now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end\n" \
        "local RECORD = '^(%x+)\\t([^\\t]*)\\t(%d+)\\t([SX])\\t(%d+)\\t(.*)$'\n"                           \
        "local ENTRY = '^(%x+)\\t(%d+)\\t([SX])\\t(%d+)\\t(.*)$'\n"                                        \
        "local inst, node, ns, name = ARGV[1], ARGV[2], ARGV[4], ARGV[5]\n"                                \
        "local function deadline(lease)\n" /* decimal digits, never '1e+16': the records are matched with %d+ */ \
        "  if lease == '0' then return '0' end\n"                                                         \
        "  return string.format('%.0f', math.min(now + tonumber(lease), 2^53))\n"                         \
        "end\n"                                                                                            \
        "local function typed(k, want) local t = redis.call('TYPE', k)['ok']; return t == 'none' or t == want end\n" \
        "local function alive(hubs, i) local e = tonumber(redis.call('HGET', hubs, i) or ''); return e ~= nil and e >= now end\n" \
        "local function valid(hubs, tok, rec)\n"                                                           \
        "  if #tok > 19 or not string.match(tok, '^%d+$') then return false end\n"                        \
        "  local i, _, _, _, dl = string.match(rec, RECORD)\n"                                             \
        "  return i ~= nil and alive(hubs, i) and (dl == '0' or tonumber(dl) > now)\n"                    \
        "end\n"                                                                                            \
        "local function prune(hubs, holders, queue)\n"                                                     \
        "  local h = redis.call('HGETALL', holders)\n"                                                     \
        "  local n, excl, changed = 0, false, false\n"                                                     \
        "  for i = 1, #h, 2 do\n"                                                                          \
        "    if valid(hubs, h[i], h[i + 1]) then\n"                                                        \
        "      n = n + 1\n"                                                                                \
        "      local _, _, _, mode = string.match(h[i + 1], RECORD)\n"                                    \
        "      if mode == 'X' then excl = true end\n"                                                      \
        "    else redis.call('HDEL', holders, h[i]); changed = true end\n"                                \
        "  end\n"                                                                                          \
        "  while true do\n"                                                                                \
        "    local e = redis.call('LINDEX', queue, 0)\n"                                                   \
        "    if not e then break end\n"                                                                    \
        "    local i = string.match(e, ENTRY)\n"                                                           \
        "    if i and alive(hubs, i) then break end\n"                                                     \
        "    redis.call('LPOP', queue); changed = true\n"                                                  \
        "  end\n"                                                                                          \
        "  return n, excl, changed\n"                                                                      \
        "end\n"                                                                                            \
        "local function finish(names, holders, queue, wake)\n"                                             \
        "  local nq = redis.call('LLEN', queue)\n"                                                         \
        "  if redis.call('HLEN', holders) == 0 and nq == 0 then redis.call('SREM', names, name)\n"        \
        "  else redis.call('SADD', names, name) end\n"                                                     \
        "  if wake and nq > 0 then redis.call('PUBLISH', '" RLOCKS_CHANNEL_PREFIX "' .. ns, name) end\n"  \
        "end\n"

/* KEYS: fence, hubs, holders, queue, names (of one lock): checked, our lease renewed, pruned. */
#define LUA_LOCK_KEYS                                                                                      \
        "local fence, hubs, holders, queue, names = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]\n"        \
        "if not (typed(fence, 'string') and typed(hubs, 'hash') and typed(holders, 'hash') and typed(queue, 'list') and typed(names, 'set')) then\n" \
        "  return redis.error_reply('WRONGTYPE a lock key of namespace ' .. ns .. ' holds something else')\n" \
        "end\n"                                                                                            \
        "local f = redis.call('GET', fence)\n"                                                             \
        "if f and (#f > 18 or not string.match(f, '^%d+$')) then\n"                                        \
        "  return redis.error_reply('ERR ' .. fence .. ' does not hold a token')\n"                        \
        "end\n"                                                                                            \
        "redis.call('HSET', hubs, inst, now + tonumber(ARGV[3]))\n"                                       \
        "local n, excl, wake = prune(hubs, holders, queue)\n"

/* ARGV[6] the floor of the token (the hub's real-time clock in us), ARGV[7] '1' for TryLock,
 * ARGV[8] the longest queue, ARGV[9] the most locks, ARGV[10...] this hub's waiters on the lock
 * (queue entries).  Queues the ones that are not queued (TryLock: never), then, for as long as
 * the head of the queue is one of ours and compatible with the holders, grants it.  Returns
 * WID, RESULT for each entry: a token, QUEUED, BUSY (TryLock), FULL (queue), LOCKS (names). */
static const char grant_script[] = LUA_PRELUDE LUA_LOCK_KEYS
        "local out, mine = {}, {}\n"
        "local function grant(e)\n"
        "  local _, wid, mode, lease, holder = string.match(e, ENTRY)\n"
        "  if tonumber(redis.call('GET', fence) or '0') < tonumber(ARGV[6]) then redis.call('SET', fence, ARGV[6]) end\n"
        "  redis.call('INCR', fence)\n"
        "  local tok = redis.call('GET', fence)\n"
        "  local dl = deadline(lease)\n"
        "  redis.call('HSET', holders, tok, inst .. '\\t' .. node .. '\\t' .. wid .. '\\t' .. mode .. '\\t' .. dl .. '\\t' .. holder)\n"
        "  n = n + 1\n"
        "  if mode == 'X' then excl = true end\n"
        "  out[#out + 1] = wid; out[#out + 1] = tok\n"
        "end\n"
        "local function compatible(e) local _, _, mode = string.match(e, ENTRY); return n == 0 or (mode == 'S' and not excl) end\n"
        "if n == 0 and redis.call('LLEN', queue) == 0 and redis.call('SISMEMBER', names, name) == 0 and redis.call('SCARD', names) >= tonumber(ARGV[9]) then\n"
        "  for k = 10, #ARGV do local _, wid = string.match(ARGV[k], ENTRY); out[#out + 1] = wid; out[#out + 1] = 'LOCKS' end\n"
        "  return out\n"
        "end\n"
        "if ARGV[7] == '1' then\n"
        "  local e = ARGV[10]\n"
        "  if redis.call('LLEN', queue) == 0 and compatible(e) then grant(e)\n"
        "  else local _, wid = string.match(e, ENTRY); out[1] = wid; out[2] = 'BUSY' end\n"
        "  finish(names, holders, queue, wake)\n"
        "  return out\n"
        "end\n"
        "local queued, len = {}, 0\n" /* one pass over the queue, not one LPOS per waiter */
        "for _, e in ipairs(redis.call('LRANGE', queue, 0, -1)) do queued[e] = true; len = len + 1 end\n"
        "for k = 10, #ARGV do\n"
        "  local e = ARGV[k]\n"
        "  local _, wid = string.match(e, ENTRY)\n"
        "  if queued[e] then mine[e] = wid\n"
        "  elseif len >= tonumber(ARGV[8]) then out[#out + 1] = wid; out[#out + 1] = 'FULL'\n"
        "  else redis.call('RPUSH', queue, e); queued[e] = true; len = len + 1; mine[e] = wid end\n"
        "end\n"
        "while true do\n"
        "  local e = redis.call('LINDEX', queue, 0)\n"
        "  if not e or string.match(e, ENTRY) ~= inst then break end\n"
        "  if mine[e] then\n"
        "    if not compatible(e) then break end\n"
        "    redis.call('LPOP', queue); grant(e); mine[e] = nil; wake = true\n"
        "  else redis.call('LPOP', queue); wake = true end\n" /* ours, of a waiter that has gone */
        "end\n"
        "for e, wid in pairs(mine) do out[#out + 1] = wid; out[#out + 1] = 'QUEUED' end\n"
        "finish(names, holders, queue, wake)\n"
        "return out\n";

/* ARGV[6] the token.  OK, NOTLOCKED, OTHER (that token is another hub's holder's), FOREIGN
 * (the lock is held, not under that token). */
static const char unlock_script[] = LUA_PRELUDE LUA_LOCK_KEYS
        "local rec = redis.call('HGET', holders, ARGV[6])\n"
        "local res = 'NOTLOCKED'\n"
        "if rec then\n"
        "  if string.match(rec, RECORD) == inst then redis.call('HDEL', holders, ARGV[6]); res = 'OK'; wake = true\n"
        "  else res = 'OTHER' end\n"
        "elseif n > 0 then res = 'FOREIGN' end\n"
        "finish(names, holders, queue, wake)\n"
        "return res\n";

/* ARGV[6] the token, ARGV[7] the new lease in ms (0: none).  As the unlock script. */
static const char refresh_script[] = LUA_PRELUDE LUA_LOCK_KEYS
        "local rec = redis.call('HGET', holders, ARGV[6])\n"
        "local res = 'NOTLOCKED'\n"
        "if rec then\n"
        "  local i, nd, wid, mode, _, holder = string.match(rec, RECORD)\n"
        "  if i == inst then\n"
        "    local dl = deadline(ARGV[7])\n"
        "    redis.call('HSET', holders, ARGV[6], i .. '\\t' .. nd .. '\\t' .. wid .. '\\t' .. mode .. '\\t' .. dl .. '\\t' .. holder)\n"
        "    res = 'OK'\n"
        "  else res = 'OTHER' end\n"
        "elseif n > 0 then res = 'FOREIGN' end\n"
        "finish(names, holders, queue, wake)\n"
        "return res\n";

/* ARGV[6] the waiter's id, ARGV[7] its queue entry: it leaves the queue; if it was granted
 * meanwhile (a grant script ran before this one), that hold is released. */
static const char cancel_script[] = LUA_PRELUDE LUA_LOCK_KEYS
        "if redis.call('LREM', queue, 0, ARGV[7]) > 0 then wake = true end\n"
        "local h = redis.call('HGETALL', holders)\n"
        "for k = 1, #h, 2 do\n"
        "  local i, _, wid = string.match(h[k + 1], RECORD)\n"
        "  if i == inst and wid == ARGV[6] then redis.call('HDEL', holders, h[k]); wake = true end\n"
        "end\n"
        "finish(names, holders, queue, wake)\n"
        "return 'OK'\n";

/* KEYS: hubs.  Renews this hub's lease in the namespace and forgets hubs whose lease ended. */
static const char renew_script[] = LUA_PRELUDE
        "if not typed(KEYS[1], 'hash') then return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is not a hash') end\n"
        "redis.call('HSET', KEYS[1], inst, now + tonumber(ARGV[3]))\n"
        "local h = redis.call('HGETALL', KEYS[1])\n"
        "for k = 1, #h, 2 do\n"
        "  local e = tonumber(h[k + 1])\n"
        "  if e == nil or e < now then redis.call('HDEL', KEYS[1], h[k]) end\n"
        "end\n"
        "return 'OK'\n";

/* KEYS: fence, hubs, names.  After the link came back, or a release could not be sent: ARGV[6]
 * is the number of this hub's holds in the namespace, then 6 values each: name, token, waiter
 * id, mode, lease left in ms (0: none), holder; then the queue entries of its live waiters.
 * Whatever Redis has of this hub that is not among them is removed (holds released while Redis
 * was unreachable, entries of waiters that were failed then).  A hold Redis still has stays; one
 * it lost (expired lease, Redis restarted) is written again if the lock is free and nobody
 * waits.  Returns the tokens this hub lost: another hub holds the lock now, or others wait. */
static const char reconcile_script[] = LUA_PRELUDE
        "local fence, hubs, names = KEYS[1], KEYS[2], KEYS[3]\n"
        "if not (typed(fence, 'string') and typed(hubs, 'hash') and typed(names, 'set')) then\n"
        "  return redis.error_reply('WRONGTYPE a lock key of namespace ' .. ns .. ' holds something else')\n"
        "end\n"
        "redis.call('HSET', hubs, inst, now + tonumber(ARGV[3]))\n"
        "local prefix = 'clusterhub:{' .. ns .. '}:lock:'\n"
        "local keep = {}\n"
        "local last = 6 + 6 * tonumber(ARGV[6])\n"
        "for k = 7, last, 6 do keep[ARGV[k + 1]] = true end\n"
        "local keepq = {}\n"
        "for k = last + 1, #ARGV do keepq[ARGV[k]] = true end\n"
        "local lost = {}\n"
        "local function fix(nm)\n"
        "  name = nm\n"
        "  local holders, queue = prefix .. 'h:' .. nm, prefix .. 'q:' .. nm\n"
        "  if not (typed(holders, 'hash') and typed(queue, 'list')) then return nil end\n"
        "  local h = redis.call('HGETALL', holders)\n"
        "  local wake = false\n"
        "  for k = 1, #h, 2 do\n"
        "    if string.match(h[k + 1], RECORD) == inst and not keep[h[k]] then redis.call('HDEL', holders, h[k]); wake = true end\n"
        "  end\n"
        "  for _, e in ipairs(redis.call('LRANGE', queue, 0, -1)) do\n"
        "    if string.match(e, ENTRY) == inst and not keepq[e] then redis.call('LREM', queue, 0, e); wake = true end\n"
        "  end\n"
        "  local n, excl, changed = prune(hubs, holders, queue)\n"
        "  finish(names, holders, queue, wake or changed)\n"
        "  return holders, queue, n, excl\n"
        "end\n"
        "for _, nm in ipairs(redis.call('SMEMBERS', names)) do fix(nm) end\n"
        "for k = 7, last, 6 do\n"
        "  local holders, queue, n, excl = fix(ARGV[k])\n"
        "  local tok = ARGV[k + 1]\n"
        "  if holders and redis.call('HEXISTS', holders, tok) == 0 then\n"
        "    if redis.call('LLEN', queue) == 0 and (n == 0 or (ARGV[k + 3] == 'S' and not excl)) then\n"
        "      local dl = deadline(ARGV[k + 4])\n"
        "      redis.call('HSET', holders, tok, inst .. '\\t' .. node .. '\\t' .. ARGV[k + 2] .. '\\t' .. ARGV[k + 3] .. '\\t' .. dl .. '\\t' .. ARGV[k + 5])\n"
        "      redis.call('SADD', names, ARGV[k])\n"
        "    else lost[#lost + 1] = tok end\n"
        "  elseif not holders then lost[#lost + 1] = tok end\n"
        "end\n"
        "return lost\n";

/* KEYS: hubs, names.  ARGV[6] the most names to list.  Returns the time (ms), then for each
 * lock with valid holders or waiters: name, number of waiters, {token, record, ...}. */
static const char list_script[] = LUA_PRELUDE
        "local hubs, names = KEYS[1], KEYS[2]\n"
        "if not (typed(hubs, 'hash') and typed(names, 'set')) then\n"
        "  return redis.error_reply('WRONGTYPE a lock key of namespace ' .. ns .. ' holds something else')\n"
        "end\n"
        "local prefix = 'clusterhub:{' .. ns .. '}:lock:'\n"
        "local out = {tostring(now)}\n"
        "local count = 0\n"
        "for _, nm in ipairs(redis.call('SMEMBERS', names)) do\n"
        "  if count >= tonumber(ARGV[6]) then break end\n"
        "  local holders, queue = prefix .. 'h:' .. nm, prefix .. 'q:' .. nm\n"
        "  if typed(holders, 'hash') and typed(queue, 'list') then\n"
        "    local rows = {}\n"
        "    local h = redis.call('HGETALL', holders)\n"
        "    for k = 1, #h, 2 do\n"
        "      if valid(hubs, h[k], h[k + 1]) then rows[#rows + 1] = h[k]; rows[#rows + 1] = h[k + 1] end\n"
        "    end\n"
        "    local nq = redis.call('LLEN', queue)\n"
        "    if #rows > 0 or nq > 0 then out[#out + 1] = nm; out[#out + 1] = nq; out[#out + 1] = rows; count = count + 1 end\n"
        "  end\n"
        "end\n"
        "return out\n";

typedef enum ScriptId {
        SCRIPT_GRANT,
        SCRIPT_UNLOCK,
        SCRIPT_REFRESH,
        SCRIPT_CANCEL,
        SCRIPT_RENEW,
        SCRIPT_RECONCILE,
        SCRIPT_LIST,
        _SCRIPT_MAX,
} ScriptId;

static const char *const scripts[_SCRIPT_MAX] = {
        [SCRIPT_GRANT] = grant_script,
        [SCRIPT_UNLOCK] = unlock_script,
        [SCRIPT_REFRESH] = refresh_script,
        [SCRIPT_CANCEL] = cancel_script,
        [SCRIPT_RENEW] = renew_script,
        [SCRIPT_RECONCILE] = reconcile_script,
        [SCRIPT_LIST] = list_script,
};

/* --- state ------------------------------------------------------------------------------------ */

typedef struct RNs RNs;
typedef struct RName RName;
typedef struct RHold RHold;

/* A namespace where this hub holds or waits (or has something to put right in Redis). */
struct RNs {
        char *name;
        size_t n_holds, n_waits;
        size_t n_locks;         /* RNames pointing here */
        bool dirty;             /* a release did not reach Redis: the next reconcile removes it */
};

/* One lock of a namespace, as this hub knows it: its holds here, its waiters here. */
struct RName {
        RLocks *rl;
        RNs *ns;
        char *key;              /* "NS:NAME" */
        char *name;
        LIST_HEAD(RHold) holds;
        LIST_HEAD(RLockWait) waits;     /* in arrival order */
        bool polling;           /* a grant script for the waiters is on its way */
        bool again;             /* ...and another is due when it is answered */
};

struct RHold {
        RName *lock;
        uint64_t token;
        uint64_t wid;
        const LockOwner *owner; /* NULL once detached */
        char *holder;
        uid_t uid;
        bool has_uid;
        bool shared;
        bool detached;
        bool lost;              /* another hub took it while we could not renew */
        uint64_t lease_ms;
        uint64_t deadline_ms;   /* the hub's clock; UINT64_MAX: none */
        LIST_FIELDS(RHold, holds);
};

struct RLockWait {
        RLocks *rl;
        RName *lock;            /* NULL once cancelled */
        uint64_t wid;
        char *entry;
        const LockOwner *owner;
        char *holder;
        uid_t uid;
        bool has_uid;
        bool shared;
        uint64_t lease_ms;
        rlock_done_fn done;
        void *userdata;
        unsigned in_batch;      /* grant scripts on their way that carry it */
        LIST_FIELDS(RLockWait, waits);
};

typedef struct Call Call;

struct RLocks {
        LIST_HEAD(Call) tries;  /* TryLock calls waiting for Redis (their owner may go) */
        Hub *hub;
        RedisLink *link;
        char instance[17];
        uint64_t instance_id;
        Hashmap *namespaces;    /* name -> RNs */
        Hashmap *locks;         /* "NS:NAME" -> RName */
        sd_event_source *tick;
        char *sha[_SCRIPT_MAX];
        uint64_t next_wid;
        RLocksStats stats;
};

/* --- helpers ---------------------------------------------------------------------------------- */

static uint64_t now_ms(RLocks *rl) {
        return hub_now_ms(rl->hub);
}

/* The end of a lease of LEASE_MS from now on the hub's clock (UINT64_MAX: none, or too far). */
static uint64_t deadline_of(RLocks *rl, uint64_t lease_ms) {
        uint64_t now = now_ms(rl);

        return lease_ms == 0 || lease_ms >= UINT64_MAX - now ? UINT64_MAX : now + lease_ms;
}

static bool str_reply(const redisReply *x) {
        return x && (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS);
}

/* A copy of S without tabs and newlines (they separate the fields in Redis). */
static char *holder_dup(const char *s) {
        char *d = strndup(s && *s ? s : "(unknown)", RLOCKS_HOLDER_MAX);
        for (char *p = d; p && *p; p++)
                if (*p == '\t' || *p == '\n')
                        *p = ' ';
        return d;
}

static RNs *ns_get(RLocks *rl, const char *name) {
        RNs *n = hashmap_get(rl->namespaces, name);

        if (n)
                return n;
        n = calloc(1, sizeof(RNs));
        if (!n)
                return NULL;
        n->name = strdup(name);
        if (!n->name || hashmap_put(rl->namespaces, n->name, n) < 0) {
                free(n->name);
                free(n);
                return NULL;
        }
        return n;
}

static void ns_maybe_free(RLocks *rl, RNs *n) {
        if (!n || n->n_holds > 0 || n->n_waits > 0 || n->n_locks > 0 || n->dirty)
                return;
        hashmap_remove(rl->namespaces, n->name);
        free(n->name);
        free(n);
}

static RName *lock_find(RLocks *rl, const char *ns, const char *name) {
        _cleanup_(freep) char *key = NULL;

        if (asprintf(&key, "%s:%s", ns, name) < 0)
                return NULL;
        return hashmap_get(rl->locks, key);
}

static RName *lock_get(RLocks *rl, const char *ns, const char *name) {
        RName *l = lock_find(rl, ns, name);

        if (l)
                return l;
        l = calloc(1, sizeof(RName));
        if (!l)
                return NULL;
        l->rl = rl;
        l->ns = ns_get(rl, ns);
        l->name = strdup(name);
        if (!l->ns || !l->name || asprintf(&l->key, "%s:%s", ns, name) < 0 || hashmap_put(rl->locks, l->key, l) < 0) {
                free(l->key);
                free(l->name);
                if (l->ns)
                        ns_maybe_free(rl, l->ns);
                free(l);
                return NULL;
        }
        l->ns->n_locks++;
        return l;
}

static void lock_maybe_free(RName *l) {
        RLocks *rl = l->rl;

        if (!LIST_IS_EMPTY(l->holds) || !LIST_IS_EMPTY(l->waits) || l->polling)
                return;
        hashmap_remove(rl->locks, l->key);
        l->ns->n_locks--;
        ns_maybe_free(rl, l->ns);
        free(l->key);
        free(l->name);
        free(l);
}

static void hold_free(RHold *hd) {
        RName *l = hd->lock;

        LIST_REMOVE(holds, l->holds, hd);
        l->ns->n_holds--;
        l->rl->stats.holds--;
        free(hd->holder);
        free(hd);
        lock_maybe_free(l);
}

static RHold *hold_find(RName *l, uint64_t token) {
        RHold *hd;

        if (!l)
                return NULL;
        LIST_FOREACH(holds, hd, l->holds)
                if (hd->token == token)
                        return hd;
        return NULL;
}

/* The hold TOKEN of L, if this hub has it and its lease has not ended (an ended one is
 * forgotten here: Redis dropped it on its own clock already). */
static RHold *hold_find_live(RLocks *rl, RName *l, uint64_t token) {
        RHold *hd = hold_find(l, token);

        if (hd && hd->deadline_ms <= now_ms(rl)) {
                hold_free(hd);
                return NULL;
        }
        return hd;
}

static void wait_free(RLockWait *w) {
        free(w->entry);
        free(w->holder);
        free(w);
}

/* Takes W out of its lock's list (it stays allocated while a script carries it). */
static void wait_unlink(RLockWait *w) {
        RName *l = w->lock;

        if (!l)
                return;
        LIST_REMOVE(waits, l->waits, w);
        l->ns->n_waits--;
        w->rl->stats.waits--;
        w->lock = NULL;
        lock_maybe_free(l);
}

static void wait_finish(RLockWait *w, int r, uint64_t token, const char *detail) {
        rlock_done_fn done = w->done;
        void *userdata = w->userdata;

        wait_unlink(w);
        w->done = NULL;
        if (w->in_batch == 0)
                wait_free(w);
        if (done)
                done(userdata, r, token, detail);
}

/* --- sending scripts -------------------------------------------------------------------------- */

static void on_load_reply(RedisLink *link, const redisReply *reply, int error, void *userdata);

/* A SCRIPT LOAD on its way: which script it loads. */
typedef struct Load {
        RLocks *rl;
        ScriptId id;
} Load;

static void load_scripts(RLocks *rl) {
        for (size_t i = 0; i < _SCRIPT_MAX; i++) {
                const char *argv[] = { "SCRIPT", "LOAD", scripts[i] };
                const size_t len[] = { 6, 4, strlen(scripts[i]) };
                Load *ld;

                if (rl->sha[i])
                        continue;
                ld = malloc(sizeof(Load));
                if (!ld)
                        return;
                *ld = (Load) { .rl = rl, .id = (ScriptId) i };
                if (redis_link_command(rl->link, 3, argv, len, on_load_reply, ld) < 0)
                        free(ld);
        }
}

static void on_load_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        _cleanup_(freep) Load *ld = userdata;
        RLocks *rl = ld->rl;

        if (!reply || reply->type != REDIS_REPLY_STRING || reply->len != 40 || rl->sha[ld->id])
                return; /* EVAL does until the next try */
        rl->sha[ld->id] = strndup(reply->str, reply->len);
}

static void forget_scripts(RLocks *rl) {
        for (size_t i = 0; i < _SCRIPT_MAX; i++)
                rl->sha[i] = mfree(rl->sha[i]);
}

/* Sends script ID with N_KEYS keys then the arguments (ARGS, N_ARGS; the first five are the
 * common ones, filled here from NS and NAME).  -ENOTCONN/-ENOBUFS: nothing sent. */
static int send_script(RLocks *rl, ScriptId id, const char *ns, const char *name, size_t n_keys, const char *const *keys,
                       size_t n_args, const char *const *args, redis_reply_fn cb, void *userdata) {
        Hub *h = rl->hub;
        size_t n = 3 + n_keys + 5 + n_args, i = 0;
        _cleanup_(freep) const char **argv = calloc(n, sizeof(char *));
        _cleanup_(freep) size_t *len = calloc(n, sizeof(size_t));
        char n_keys_s[8], lease[32];
        int r;

        if (!argv || !len)
                return -ENOMEM;
        snprintf(n_keys_s, sizeof(n_keys_s), "%zu", n_keys);
        snprintf(lease, sizeof(lease), "%" PRIu64, h->limits.node_lease_ms);
        argv[i++] = rl->sha[id] ? "EVALSHA" : "EVAL";
        argv[i++] = rl->sha[id] ?: scripts[id];
        argv[i++] = n_keys_s;
        for (size_t k = 0; k < n_keys; k++)
                argv[i++] = keys[k];
        argv[i++] = rl->instance;
        argv[i++] = h->node_name;
        argv[i++] = lease;
        argv[i++] = ns;
        argv[i++] = name ?: "";
        for (size_t k = 0; k < n_args; k++)
                argv[i++] = args[k];
        for (size_t k = 0; k < n; k++)
                len[k] = strlen(argv[k]);
        r = redis_link_command(rl->link, (int) n, argv, len, cb, userdata);
        if (r >= 0)
                rl->stats.scripts++;
        return r;
}

/* The five keys of lock NAME of NS. */
typedef struct LockKeys {
        char *k[5];
} LockKeys;

static void lock_keys_done(LockKeys *k) {
        for (size_t i = 0; i < ELEMENTSOF(k->k); i++)
                free(k->k[i]);
}

static int lock_keys(const char *ns, const char *name, LockKeys *ret) {
        LockKeys k = {};

        if (asprintf(&k.k[0], "clusterhub:{%s}:lock:fence", ns) < 0 || asprintf(&k.k[1], "clusterhub:{%s}:lock:hubs", ns) < 0 ||
            asprintf(&k.k[2], "clusterhub:{%s}:lock:h:%s", ns, name) < 0 ||
            asprintf(&k.k[3], "clusterhub:{%s}:lock:q:%s", ns, name) < 0 ||
            asprintf(&k.k[4], "clusterhub:{%s}:lock:names", ns) < 0) {
                lock_keys_done(&k);
                return -ENOMEM;
        }
        *ret = k;
        return 0;
}

static int send_lock_script(RLocks *rl, ScriptId id, const char *ns, const char *name, size_t n_args,
                            const char *const *args, redis_reply_fn cb, void *userdata) {
        _cleanup_(lock_keys_done) LockKeys k = {};
        int r;

        r = lock_keys(ns, name, &k);
        if (r < 0)
                return r;
        return send_script(rl, id, ns, name, 5, (const char *const *) k.k, n_args, args, cb, userdata);
}

/* What a failed script means for the caller: -EHOSTDOWN, and Redis's text in *DETAIL. */
static int script_error(RLocks *rl, const redisReply *reply, int error, const char **detail) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
                if (strncmp(reply->str, "NOSCRIPT", 8) == 0) {
                        /* somebody flushed the scripts: EVAL until they are loaded again */
                        forget_scripts(rl);
                        load_scripts(rl);
                }
                log_debug("Redis refused a lock script: %s", reply->str);
                *detail = reply->str;
        } else
                *detail = error == -ETIMEDOUT ? "Redis did not answer in time" : "the link to Redis closed";
        return -EHOSTDOWN;
}

static int link_error(int r) {
        return r == -ENOTCONN || r == -ENOBUFS ? -EHOSTDOWN : r;
}

/* The real-time clock in us: the floor of the next token, so that a counter Redis lost
 * (restarted empty, failover) starts again above the tokens issued before. */
static void token_floor(char buf[static 32]) {
        struct timespec ts = {};

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(buf, 32, "%" PRIu64, (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000);
}

static void grant_limits(RLocks *rl, char waiters[static 32], char locks[static 32]) {
        snprintf(waiters, 32, "%" PRIu64, rl->hub->limits.max_lock_waiters);
        snprintf(locks, 32, "%" PRIu64, rl->hub->limits.max_locks);
}

static char *make_entry(RLocks *rl, uint64_t wid, bool shared, uint64_t lease_ms, const char *holder) {
        char *e = NULL;

        if (asprintf(&e, "%s\t%" PRIu64 "\t%c\t%" PRIu64 "\t%s", rl->instance, wid, shared ? 'S' : 'X', lease_ms, holder) < 0)
                return NULL;
        return e;
}

/* A hold this hub now has (from a grant script's answer). */
static RHold *hold_new(RName *l, uint64_t token, uint64_t wid, const LockOwner *owner, const char *holder, uid_t uid,
                       bool has_uid, bool shared, uint64_t lease_ms) {
        RLocks *rl = l->rl;
        RHold *hd = calloc(1, sizeof(RHold));

        if (!hd)
                return NULL;
        hd->holder = strdup(holder);
        if (!hd->holder) {
                free(hd);
                return NULL;
        }
        hd->lock = l;
        hd->token = token;
        hd->wid = wid;
        hd->owner = owner;
        hd->uid = uid;
        hd->has_uid = has_uid;
        hd->shared = shared;
        hd->lease_ms = lease_ms;
        hd->deadline_ms = deadline_of(rl, lease_ms);
        LIST_APPEND(holds, l->holds, hd);
        l->ns->n_holds++;
        rl->stats.holds++;
        return hd;
}

static void on_release_reply(RedisLink *link, const redisReply *reply, int error, void *userdata);

/* Releases TOKEN of NS/NAME in Redis, nobody waiting for the answer (an owner gone, a lease
 * ended, a grant nobody wants any more).  If it cannot be sent, the next reconcile does it. */
static void release_in_redis(RLocks *rl, RNs *n, const char *name, uint64_t token) {
        char tok[32];
        int r;

        snprintf(tok, sizeof(tok), "%" PRIu64, token);
        r = send_lock_script(rl, SCRIPT_UNLOCK, n->name, name, 1, (const char *[]) { tok }, on_release_reply, rl);
        if (r < 0)
                n->dirty = true;
}

static void on_release_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
                log_debug("Redis refused to release a lock: %s", reply->str);
        /* no reply: the link went down; the reconcile when it is back removes what is not held */
}

/* --- Lock(): the waiters of one lock, polled together ----------------------------------------- */

typedef struct Batch {
        RName *lock;
        size_t n;
        RLockWait *w[];
} Batch;

static void poll_lock(RName *l);

/* The result for waiter WID in a grant script's answer, or NULL. */
static const redisReply *result_of(const redisReply *reply, uint64_t wid) {
        for (size_t k = 0; k + 1 < reply->elements; k += 2) {
                const redisReply *id = reply->element[k];
                uint64_t v;

                if (str_reply(id) && rlocks_parse_u64(id->str, id->len, false, &v) >= 0 && v == wid)
                        return str_reply(reply->element[k + 1]) ? reply->element[k + 1] : NULL;
        }
        return NULL;
}

static void on_poll_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        Batch *b = userdata;
        RName *l = b->lock;
        RLocks *rl = l->rl;
        const char *detail = NULL;
        int fail = 0;

        /* L stays polling until the end: finishing its last waiter must not free it here */
        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
                fail = script_error(rl, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL, error, &detail);
                if (reply) /* the waiters fail here: the next tick takes whatever they left out of Redis */
                        l->ns->dirty = true;
        }
        for (size_t i = 0; i < b->n; i++) {
                RLockWait *w = b->w[i];
                const redisReply *res;
                uint64_t token;

                w->in_batch--;
                if (!w->done) { /* cancelled: the cancel script, sent after this one, released a grant */
                        if (w->in_batch == 0)
                                wait_free(w);
                        continue;
                }
                if (fail < 0) {
                        /* a link that went down fails every waiter anyway; an error reply fails them here */
                        if (reply)
                                wait_finish(w, fail, 0, detail);
                        continue;
                }
                res = result_of(reply, w->wid);
                if (!res || streq(res->str, "QUEUED"))
                        continue;
                if (streq(res->str, "FULL") || streq(res->str, "LOCKS")) {
                        wait_finish(w, -ENOBUFS, 0, streq(res->str, "FULL") ? "waiters" : "locks");
                        continue;
                }
                if (rlocks_parse_token(res->str, res->len, &token) < 0) {
                        l->ns->dirty = true; /* whatever it holds in Redis is not ours to keep */
                        wait_finish(w, -EHOSTDOWN, 0, "Redis answered a grant this hub cannot read");
                        continue;
                }
                if (!hold_new(l, token, w->wid, w->owner, w->holder, w->uid, w->has_uid, w->shared, w->lease_ms)) {
                        release_in_redis(rl, l->ns, l->name, token);
                        wait_finish(w, -ENOMEM, 0, NULL);
                        continue;
                }
                wait_finish(w, 1, token, NULL);
        }
        free(b);
        l->polling = false;
        if (l->again && !LIST_IS_EMPTY(l->waits)) {
                l->again = false;
                poll_lock(l);
        }
        l->again = false;
        lock_maybe_free(l);
}

/* Sends one grant script for every waiter of L (or, when one is on its way, asks for another). */
static void poll_lock(RName *l) {
        RLocks *rl = l->rl;
        char floor[32], max_w[32], max_l[32];
        _cleanup_(freep) const char **args = NULL;
        size_t n = 0, i = 0;
        RLockWait *w;
        Batch *b;
        int r;

        if (l->polling) {
                l->again = true;
                return;
        }
        LIST_FOREACH(waits, w, l->waits)
                n++;
        if (n == 0)
                return;
        args = calloc(4 + n, sizeof(char *));
        b = calloc(1, sizeof(Batch) + n * sizeof(RLockWait *));
        if (!args || !b) {
                free(b);
                return; /* the next tick tries again */
        }
        token_floor(floor);
        grant_limits(rl, max_w, max_l);
        args[i++] = floor;
        args[i++] = "0";
        args[i++] = max_w;
        args[i++] = max_l;
        b->lock = l;
        LIST_FOREACH(waits, w, l->waits) {
                args[i++] = w->entry;
                b->w[b->n++] = w;
        }
        r = send_lock_script(rl, SCRIPT_GRANT, l->ns->name, l->name, i, args, on_poll_reply, b);
        if (r < 0) {
                free(b);
                return; /* link down: the waiters fail with it; -ENOBUFS: the next tick */
        }
        for (size_t k = 0; k < b->n; k++)
                b->w[k]->in_batch++;
        l->polling = true;
}

static bool holds_blocking(RName *l, const LockOwner *owner, bool shared) {
        RHold *hd;

        if (!l || !owner)
                return false;
        LIST_FOREACH(holds, hd, l->holds)
                if (hd->owner == owner && !hd->lost && (!shared || !hd->shared))
                        return true;
        return false;
}

int rlocks_lock(RLocks *rl, const RLockRequest *req, rlock_done_fn done, void *userdata, RLockWait **ret) {
        RName *l;
        RLockWait *w;
        RNs *n;

        if (!redis_link_is_up(rl->link))
                return -EHOSTDOWN;
        if (req->lease_ms > rl->hub->limits.max_lease_ms)
                return -ERANGE;
        l = lock_find(rl, req->ns, req->name);
        if (holds_blocking(l, req->owner, req->shared))
                return -EDEADLK;
        n = hashmap_get(rl->namespaces, req->ns);
        if (n && (n->n_waits >= rl->hub->limits.max_lock_waiters || n->n_holds >= rl->hub->limits.max_lock_holders))
                return -ENOBUFS;
        l = lock_get(rl, req->ns, req->name);
        if (!l)
                return -ENOMEM;
        w = calloc(1, sizeof(RLockWait));
        if (!w) {
                lock_maybe_free(l);
                return -ENOMEM;
        }
        w->rl = rl;
        w->wid = ++rl->next_wid;
        w->holder = holder_dup(req->holder);
        w->entry = w->holder ? make_entry(rl, w->wid, req->shared, req->lease_ms, w->holder) : NULL;
        if (!w->entry) {
                wait_free(w);
                lock_maybe_free(l);
                return -ENOMEM;
        }
        w->owner = req->owner;
        w->uid = req->uid;
        w->has_uid = req->has_uid;
        w->shared = req->shared;
        w->lease_ms = req->lease_ms;
        w->done = done;
        w->userdata = userdata;
        w->lock = l;
        LIST_APPEND(waits, l->waits, w);
        l->ns->n_waits++;
        rl->stats.waits++;
        poll_lock(l);
        if (!l->polling) { /* could not be sent */
                w->done = NULL;
                wait_unlink(w);
                wait_free(w);
                return -EHOSTDOWN;
        }
        *ret = w;
        return 0;
}

static void on_cancel_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
                log_debug("Redis refused to take a waiter out of its queue: %s", reply->str);
}

void rlocks_wait_cancel(RLockWait *w) {
        RLocks *rl;
        RName *l;
        char wid[32];
        int r;

        if (!w)
                return;
        rl = w->rl;
        l = w->lock;
        w->done = NULL;
        if (l) {
                snprintf(wid, sizeof(wid), "%" PRIu64, w->wid);
                r = send_lock_script(rl, SCRIPT_CANCEL, l->ns->name, l->name, 2, (const char *[]) { wid, w->entry },
                                     on_cancel_reply, rl);
                if (r < 0)
                        l->ns->dirty = true; /* the reconcile removes its entry */
                wait_unlink(w);
        }
        if (w->in_batch == 0)
                wait_free(w);
}

/* --- TryLock, Unlock, Refresh --------------------------------------------------------------- */

struct Call {
        RLocks *rl;
        rlock_done_fn done;
        void *userdata;
        char *ns, *name, *holder;
        const LockOwner *owner;
        uid_t uid;
        bool has_uid, shared;
        bool in_list;           /* a TryLock in rl->tries */
        bool gone;              /* ...whose owner has gone */
        uint64_t wid, token, lease_ms;
        LIST_FIELDS(Call, tries);
};

static void call_free(Call *c) {
        if (c->in_list)
                LIST_REMOVE(tries, c->rl->tries, c);
        free(c->ns);
        free(c->name);
        free(c->holder);
        free(c);
}

static Call *call_new(RLocks *rl, const char *ns, const char *name, rlock_done_fn done, void *userdata) {
        Call *c = calloc(1, sizeof(Call));

        if (!c)
                return NULL;
        c->rl = rl;
        c->done = done;
        c->userdata = userdata;
        c->ns = strdup(ns);
        c->name = strdup(name);
        if (!c->ns || !c->name) {
                call_free(c);
                return NULL;
        }
        return c;
}

static void on_try_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        Call *c = userdata;
        RLocks *rl = c->rl;
        const char *detail = NULL;
        const redisReply *res;
        uint64_t token;
        RName *l;
        int r;

        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
                r = script_error(rl, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL, error, &detail);
                c->done(c->userdata, r, 0, detail);
        } else if (!(res = result_of(reply, c->wid)) || streq(res->str, "BUSY"))
                c->done(c->userdata, 0, 0, NULL);
        else if (streq(res->str, "LOCKS"))
                c->done(c->userdata, -ENOBUFS, 0, "locks");
        else if (rlocks_parse_token(res->str, res->len, &token) < 0)
                c->done(c->userdata, -EHOSTDOWN, 0, "Redis answered a grant this hub cannot read");
        else if (c->gone) { /* its caller left meanwhile: nobody holds it */
                release_in_redis(rl, ns_get(rl, c->ns) ?: &(RNs) { .name = c->ns }, c->name, token);
                c->done(c->userdata, 0, 0, NULL);
        } else if (!(l = lock_get(rl, c->ns, c->name)) ||
                 !hold_new(l, token, c->wid, c->owner, c->holder, c->uid, c->has_uid, c->shared, c->lease_ms)) {
                if (l)
                        lock_maybe_free(l);
                release_in_redis(rl, ns_get(rl, c->ns) ?: &(RNs) { .name = c->ns }, c->name, token);
                c->done(c->userdata, -ENOMEM, 0, NULL);
        } else
                c->done(c->userdata, 1, token, NULL);
        call_free(c);
}

int rlocks_try_lock(RLocks *rl, const RLockRequest *req, rlock_done_fn done, void *userdata) {
        char floor[32], max_w[32], max_l[32];
        _cleanup_(freep) char *entry = NULL;
        RNs *n;
        Call *c;
        int r;

        if (!redis_link_is_up(rl->link))
                return -EHOSTDOWN;
        if (req->lease_ms > rl->hub->limits.max_lease_ms)
                return -ERANGE;
        n = hashmap_get(rl->namespaces, req->ns);
        if (n && n->n_holds >= rl->hub->limits.max_lock_holders)
                return -ENOBUFS;
        c = call_new(rl, req->ns, req->name, done, userdata);
        if (!c)
                return -ENOMEM;
        c->holder = holder_dup(req->holder);
        c->owner = req->owner;
        c->uid = req->uid;
        c->has_uid = req->has_uid;
        c->shared = req->shared;
        c->lease_ms = req->lease_ms;
        c->wid = ++rl->next_wid;
        entry = c->holder ? make_entry(rl, c->wid, req->shared, req->lease_ms, c->holder) : NULL;
        if (!entry) {
                call_free(c);
                return -ENOMEM;
        }
        token_floor(floor);
        grant_limits(rl, max_w, max_l);
        r = send_lock_script(rl, SCRIPT_GRANT, req->ns, req->name, 5, (const char *[]) { floor, "1", max_w, max_l, entry },
                             on_try_reply, c);
        if (r < 0) {
                call_free(c);
                return link_error(r);
        }
        LIST_APPEND(tries, rl->tries, c);
        c->in_list = true;
        return 0;
}

/* The answer of the unlock and refresh scripts. */
static int simple_result(const redisReply *reply) {
        if (streq(reply->str, "OK"))
                return 0;
        if (streq(reply->str, "NOTLOCKED"))
                return -ENOLCK;
        if (streq(reply->str, "OTHER"))
                return -EACCES;
        return -EPERM;
}

static void on_unlock_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        Call *c = userdata;
        const char *detail = NULL;
        RNs *n;
        int r;

        if (!str_reply(reply)) {
                r = script_error(c->rl, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL, error, &detail);
                /* our hold is gone here already: the reconcile releases it in Redis */
                n = c->token ? ns_get(c->rl, c->ns) : NULL;
                if (n)
                        n->dirty = true;
        } else
                r = simple_result(reply);
        c->done(c->userdata, r, c->token, detail);
        call_free(c);
}

/* Only the holder releases a hold (as LockCaller in locks.h says). */
static bool caller_may_release(const RHold *hd, const LockCaller *c) {
        if (hd->owner)
                return c->owner == hd->owner;
        return hd->has_uid && c->has_uid && c->uid == hd->uid;
}

int rlocks_unlock(RLocks *rl, const char *ns, const char *name, uint64_t token, const LockCaller *caller,
                  rlock_done_fn done, void *userdata) {
        RHold *hd = hold_find_live(rl, lock_find(rl, ns, name), token);
        char tok[32];
        Call *c;
        int r;

        if (hd && !caller_may_release(hd, caller))
                return -EACCES;
        if (!redis_link_is_up(rl->link))
                return -EHOSTDOWN;
        if (hd && hd->lost) {
                hold_free(hd);
                return -ESTALE;
        }
        c = call_new(rl, ns, name, done, userdata);
        if (!c)
                return -ENOMEM;
        snprintf(tok, sizeof(tok), "%" PRIu64, token);
        r = send_lock_script(rl, SCRIPT_UNLOCK, ns, name, 1, (const char *[]) { tok }, on_unlock_reply, c);
        if (r < 0) {
                call_free(c);
                return link_error(r);
        }
        if (hd) {
                c->token = token; /* ours: forget it now, the answer cannot give it back */
                hold_free(hd);
        }
        return 0;
}

static void on_refresh_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        Call *c = userdata;
        const char *detail = NULL;
        RHold *hd;
        int r;

        if (!str_reply(reply))
                r = script_error(c->rl, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL, error, &detail);
        else
                r = simple_result(reply);
        hd = hold_find(lock_find(c->rl, c->ns, c->name), c->token);
        if (r == 0 && hd) {
                hd->lease_ms = c->lease_ms;
                hd->deadline_ms = deadline_of(c->rl, c->lease_ms);
        } else if (hd && (r == -ENOLCK || r == -EPERM || r == -EACCES)) {
                hd->lost = true; /* Redis no longer has it as ours */
                c->rl->stats.lost++;
                r = -ESTALE;
        }
        c->done(c->userdata, r, c->token, detail);
        call_free(c);
}

int rlocks_refresh(RLocks *rl, const char *ns, const char *name, uint64_t token, uint64_t lease_ms,
                   const LockCaller *caller, rlock_done_fn done, void *userdata) {
        RHold *hd = hold_find_live(rl, lock_find(rl, ns, name), token);
        char tok[32], lease[32];
        Call *c;
        int r;

        if (hd && !caller_may_release(hd, caller))
                return -EACCES;
        if (lease_ms > rl->hub->limits.max_lease_ms)
                return -ERANGE;
        if (hd && lease_ms == 0 && !hd->owner)
                return -EINVAL;
        if (!redis_link_is_up(rl->link))
                return -EHOSTDOWN;
        if (hd && hd->lost)
                return -ESTALE;
        c = call_new(rl, ns, name, done, userdata);
        if (!c)
                return -ENOMEM;
        c->token = token;
        c->lease_ms = lease_ms;
        snprintf(tok, sizeof(tok), "%" PRIu64, token);
        snprintf(lease, sizeof(lease), "%" PRIu64, lease_ms);
        r = send_lock_script(rl, SCRIPT_REFRESH, ns, name, 2, (const char *[]) { tok, lease }, on_refresh_reply, c);
        if (r < 0) {
                call_free(c);
                return link_error(r);
        }
        return 0;
}

/* --- ListLocks --------------------------------------------------------------------------------- */

typedef struct ListCall {
        RLocks *rl;
        rlock_list_fn done;
        void *userdata;
        char *ns;
} ListCall;

static void rows_free(RLockRow *rows, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(rows[i].name);
                free(rows[i].holder);
        }
        free(rows);
}

/* Rows from the list script's answer: hostile, so every piece is checked; what does not parse is
 * left out. */
static int parse_list(RLocks *rl, const char *ns, const redisReply *reply, RLockRow **ret, size_t *ret_n) {
        RLockRow *rows = NULL;
        size_t n = 0, allocated = 0;
        uint64_t now;

        if (reply->elements < 1 || !str_reply(reply->element[0]) ||
            rlocks_parse_u64(reply->element[0]->str, reply->element[0]->len, false, &now) < 0)
                return -EBADMSG;
        for (size_t k = 1; k + 2 < reply->elements; k += 3) {
                const redisReply *name = reply->element[k], *nq = reply->element[k + 1], *hs = reply->element[k + 2];
                uint32_t waiters;

                if (!str_reply(name) || strlen(name->str) != name->len || name->len > rl->hub->limits.max_name_bytes ||
                    !utf8_valid(name->str, name->len) || nq->type != REDIS_REPLY_INTEGER || hs->type != REDIS_REPLY_ARRAY)
                        continue; /* D-Bus strings are UTF-8: a reply with it could not be built */
                waiters = nq->integer < 0 ? 0 : nq->integer > UINT32_MAX ? UINT32_MAX : (uint32_t) nq->integer;
                for (size_t j = 0; j + 1 < hs->elements || (j == 0 && hs->elements == 0); j += 2) {
                        RLockRow row = { .n_waiters = waiters, .lease_left_ms = UINT64_MAX };
                        RLockRecord rec;
                        RHold *hd = NULL;

                        if (hs->elements > 0) {
                                if (!str_reply(hs->element[j]) || !str_reply(hs->element[j + 1]) ||
                                    rlocks_parse_token(hs->element[j]->str, hs->element[j]->len, &row.token) < 0 ||
                                    rlocks_parse_record(hs->element[j + 1]->str, hs->element[j + 1]->len, &rec) < 0 ||
                                    !utf8_valid(rec.node, strlen(rec.node)) || !utf8_valid(rec.holder, strlen(rec.holder)))
                                        continue;
                                row.shared = rec.shared;
                                if (rec.deadline_ms > 0)
                                        row.lease_left_ms = rec.deadline_ms > now ? rec.deadline_ms - now : 0;
                                if (rec.instance == rl->instance_id)
                                        hd = hold_find(lock_find(rl, ns, name->str), row.token);
                                if (hd) {
                                        row.holder = strdup(hd->holder);
                                        row.detached = hd->detached;
                                } else if (asprintf(&row.holder, "%s@%s", rec.holder, rec.node) < 0)
                                        row.holder = NULL;
                        } else
                                row.holder = strdup(""); /* waiters, no holder (as the local listing) */
                        row.name = strdup(name->str);
                        if (!row.name || !row.holder) {
                                free(row.name);
                                free(row.holder);
                                rows_free(rows, n);
                                return -ENOMEM;
                        }
                        if (n == allocated) {
                                size_t a = MAX(allocated * 2, (size_t) 16);
                                RLockRow *nr = realloc(rows, a * sizeof(RLockRow));
                                if (!nr) {
                                        free(row.name);
                                        free(row.holder);
                                        rows_free(rows, n);
                                        return -ENOMEM;
                                }
                                rows = nr;
                                allocated = a;
                        }
                        rows[n++] = row;
                        if (hs->elements == 0)
                                break;
                }
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

static void on_list_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        ListCall *c = userdata;
        const char *detail = NULL;
        RLockRow *rows = NULL;
        size_t n = 0;
        int r;

        if (!reply || reply->type != REDIS_REPLY_ARRAY)
                r = script_error(c->rl, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL, error, &detail);
        else {
                r = parse_list(c->rl, c->ns, reply, &rows, &n);
                if (r == -EBADMSG) {
                        r = -EHOSTDOWN;
                        detail = "Redis answered a listing this hub cannot read";
                }
        }
        c->done(c->userdata, r, rows, n, detail);
        rows_free(rows, n);
        free(c->ns);
        free(c);
}

int rlocks_list(RLocks *rl, const char *ns, rlock_list_fn done, void *userdata) {
        _cleanup_(freep) char *hubs = NULL, *names = NULL;
        char max[32];
        ListCall *c;
        int r;

        if (!redis_link_is_up(rl->link))
                return -EHOSTDOWN;
        if (asprintf(&hubs, "clusterhub:{%s}:lock:hubs", ns) < 0 || asprintf(&names, "clusterhub:{%s}:lock:names", ns) < 0)
                return -ENOMEM;
        c = calloc(1, sizeof(ListCall));
        if (!c || !(c->ns = strdup(ns))) {
                free(c);
                return -ENOMEM;
        }
        c->rl = rl;
        c->done = done;
        c->userdata = userdata;
        snprintf(max, sizeof(max), "%" PRIu64, rl->hub->limits.max_locks);
        r = send_script(rl, SCRIPT_LIST, ns, NULL, 2, (const char *[]) { hubs, names }, 1, (const char *[]) { max },
                        on_list_reply, c);
        if (r < 0) {
                free(c->ns);
                free(c);
                return link_error(r);
        }
        return 0;
}

/* --- owners, the tick, the link ---------------------------------------------------------------- */

void rlocks_owner_gone(RLocks *rl, const LockOwner *owner) {
        _cleanup_(freep) RName **all = NULL;
        size_t n = 0, i = 0;
        RName *l;
        Call *c;

        if (!rl || !owner)
                return;
        LIST_FOREACH(tries, c, rl->tries)
                if (c->owner == owner) {
                        c->owner = NULL;
                        c->gone = true;
                }
        /* releasing may free locks: collect them first */
        all = calloc(hashmap_size(rl->locks) + 1, sizeof(RName *));
        if (!all)
                return;
        while (hashmap_iterate(rl->locks, &i, (void **) &l, NULL))
                all[n++] = l;
        for (size_t k = 0; k < n; k++) {
                RName *lk = all[k];
                RHold *hd, *next;
                bool last = false;

                for (hd = lk->holds.first; hd && !last; hd = next) {
                        next = hd->holds_next;
                        last = !next;
                        if (hd->owner != owner)
                                continue;
                        if (hd->lease_ms > 0 && !hd->lost) {
                                hd->owner = NULL;
                                hd->detached = true;
                                continue;
                        }
                        if (!hd->lost)
                                release_in_redis(rl, lk->ns, lk->name, hd->token);
                        hold_free(hd); /* may free LK when it was its last */
                }
        }
}

static void on_renew_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
                log_warning("Redis refused to renew this hub's lock lease: %s", reply->str);
}

static void renew_ns(RLocks *rl, RNs *n) {
        _cleanup_(freep) char *hubs = NULL;

        if (asprintf(&hubs, "clusterhub:{%s}:lock:hubs", n->name) < 0)
                return;
        (void) send_script(rl, SCRIPT_RENEW, n->name, NULL, 1, (const char *[]) { hubs }, 0, NULL, on_renew_reply, rl);
}

static void reconcile_ns(RLocks *rl, RNs *n);

static uint64_t tick_usec(const RLocks *rl) {
        uint64_t usec = rl->hub->limits.node_lease_ms * 1000 / 3;
        return usec < 1000 ? 1000 : usec;
}

/* Every lease/3: renew our lease in every namespace where we hold or wait (one script each),
 * retry every lock with waiters here (a wake may have been lost; a dead hub's lease ended),
 * and end the holds whose lease ended here. */
static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        RLocks *rl = userdata;
        _cleanup_(freep) RName **all = NULL;
        uint64_t now = now_ms(rl);
        size_t n = 0, i = 0;
        RNs *ns;
        RName *l;

        (void) sd_event_source_set_time_relative(s, tick_usec(rl));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (!redis_link_is_up(rl->link))
                return 0;
        while (hashmap_iterate(rl->namespaces, &i, (void **) &ns, NULL))
                if (ns->dirty) { /* a release that could not be sent: put Redis right (renews too) */
                        reconcile_ns(rl, ns);
                        ns_maybe_free(rl, ns); /* removing the current entry is allowed */
                } else if (ns->n_holds > 0 || ns->n_waits > 0)
                        renew_ns(rl, ns);
        all = calloc(hashmap_size(rl->locks) + 1, sizeof(RName *));
        if (!all)
                return 0;
        i = 0;
        while (hashmap_iterate(rl->locks, &i, (void **) &l, NULL))
                all[n++] = l;
        for (size_t k = 0; k < n; k++) {
                RName *lk = all[k];
                RHold *hd, *next;
                bool gone = false;

                if (!LIST_IS_EMPTY(lk->waits))
                        poll_lock(lk);
                for (hd = lk->holds.first; hd && !gone; hd = next) {
                        next = hd->holds_next;
                        gone = !next && LIST_IS_EMPTY(lk->waits) && !lk->polling;
                        if (hd->deadline_ms > now)
                                continue;
                        if (!hd->lost)
                                release_in_redis(rl, lk->ns, lk->name, hd->token);
                        hold_free(hd);
                }
        }
        return 0;
}

typedef struct Reconcile {
        RLocks *rl;
        char ns[];
} Reconcile;

static void on_reconcile_reply(RedisLink *link, const redisReply *reply, int error, void *userdata) {
        _cleanup_(freep) Reconcile *rc = userdata;
        RLocks *rl = rc->rl;
        RName *l;
        size_t i = 0;

        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
                if (reply)
                        log_warning("Redis refused to take back this hub's locks: %s",
                                    reply->type == REDIS_REPLY_ERROR ? reply->str : "not an array");
                return;
        }
        for (size_t k = 0; k < reply->elements; k++) {
                uint64_t token;

                if (!str_reply(reply->element[k]) ||
                    rlocks_parse_token(reply->element[k]->str, reply->element[k]->len, &token) < 0)
                        continue;
                i = 0;
                while (hashmap_iterate(rl->locks, &i, (void **) &l, NULL)) {
                        RHold *hd = streq(l->ns->name, rc->ns) ? hold_find(l, token) : NULL;

                        if (hd && !hd->lost) {
                                hd->lost = true;
                                rl->stats.lost++;
                                log_warning("Lock '%s' in namespace '%s' (token %" PRIu64 ", holder %s) was taken by "
                                            "another hub while Redis could not be reached: this hub no longer holds it.",
                                            l->name, l->ns->name, token, hd->holder);
                        }
                }
        }
}

/* After the link came back: put Redis right about this namespace (see reconcile_script). */
static void reconcile_ns(RLocks *rl, RNs *n) {
        _cleanup_(freep) char *fence = NULL, *hubs = NULL, *names = NULL;
        _cleanup_(freep) const char **args = NULL;
        _cleanup_(freep) char *nums = NULL;
        uint64_t now = now_ms(rl);
        size_t n_args = 0, i = 0, h = 0;
        char count[32];
        Reconcile *rc;
        RName *l;
        int r;

        if (asprintf(&fence, "clusterhub:{%s}:lock:fence", n->name) < 0 ||
            asprintf(&hubs, "clusterhub:{%s}:lock:hubs", n->name) < 0 ||
            asprintf(&names, "clusterhub:{%s}:lock:names", n->name) < 0)
                return;
        args = calloc(1 + 6 * n->n_holds + n->n_waits + 1, sizeof(char *));
        nums = calloc(n->n_holds + 1, 3 * 32);
        if (!args || !nums)
                return;
        args[n_args++] = count; /* filled below */
        while (hashmap_iterate(rl->locks, &i, (void **) &l, NULL)) {
                RHold *hd;

                if (l->ns != n)
                        continue;
                LIST_FOREACH(holds, hd, l->holds) {
                        char *tok = nums + h * 96, *wid = tok + 32, *left = tok + 64;

                        if (hd->lost || h >= n->n_holds)
                                continue;
                        snprintf(tok, 32, "%" PRIu64, hd->token);
                        snprintf(wid, 32, "%" PRIu64, hd->wid);
                        snprintf(left, 32, "%" PRIu64,
                                 hd->deadline_ms == UINT64_MAX ? 0 : hd->deadline_ms > now ? hd->deadline_ms - now : 1);
                        args[n_args++] = l->name;
                        args[n_args++] = tok;
                        args[n_args++] = wid;
                        args[n_args++] = hd->shared ? "S" : "X";
                        args[n_args++] = left;
                        args[n_args++] = hd->holder;
                        h++;
                }
        }
        snprintf(count, sizeof(count), "%zu", h);
        i = 0;
        while (hashmap_iterate(rl->locks, &i, (void **) &l, NULL)) {
                RLockWait *w;

                if (l->ns != n)
                        continue;
                LIST_FOREACH(waits, w, l->waits)
                        if (n_args < 1 + 6 * n->n_holds + n->n_waits)
                                args[n_args++] = w->entry;
        }
        rc = malloc(sizeof(Reconcile) + strlen(n->name) + 1);
        if (!rc)
                return;
        rc->rl = rl;
        strcpy(rc->ns, n->name);
        r = send_script(rl, SCRIPT_RECONCILE, n->name, NULL, 3, (const char *[]) { fence, hubs, names }, n_args, args,
                        on_reconcile_reply, rc);
        if (r < 0) {
                free(rc);
                return;
        }
        n->dirty = false;
}

static void fail_waiters(RLocks *rl) {
        _cleanup_(freep) RName **all = calloc(hashmap_size(rl->locks) + 1, sizeof(RName *));
        size_t n = 0, i = 0;
        RName *l;

        if (!all)
                return;
        while (hashmap_iterate(rl->locks, &i, (void **) &l, NULL))
                all[n++] = l;
        for (size_t k = 0; k < n; k++) {
                RName *lk = all[k];
                bool gone = false;

                /* a grant script still on its way keeps LK (polling): its callback hears the link's
                 * failure after this, exactly once, and frees LK then */
                lk->again = false;
                while (!gone && lk->waits.first) {
                        RLockWait *w = lk->waits.first;
                        gone = !w->waits_next && LIST_IS_EMPTY(lk->holds);
                        wait_finish(w, -EHOSTDOWN, 0, "the link to Redis closed while the call waited");
                }
                if (!gone)
                        lock_maybe_free(lk);
        }
}

static void rlocks_link_state(void *part, bool up) {
        RLocks *rl = part;
        _cleanup_(freep) RNs **all = NULL;
        size_t n = 0, i = 0;
        RNs *ns;

        if (!up) {
                fail_waiters(rl);
                return;
        }
        forget_scripts(rl);
        load_scripts(rl);
        all = calloc(hashmap_size(rl->namespaces) + 1, sizeof(RNs *));
        if (!all)
                return;
        while (hashmap_iterate(rl->namespaces, &i, (void **) &ns, NULL))
                all[n++] = ns;
        for (size_t k = 0; k < n; k++) {
                reconcile_ns(rl, all[k]);
                ns_maybe_free(rl, all[k]);
        }
}

static int rlocks_on_message(void *part, const char *channel, const char *data, size_t size) {
        RLocks *rl = part;
        _cleanup_(freep) char *name = NULL;
        const char *ns;
        RName *l;

        if (strncmp(channel, RLOCKS_CHANNEL_PREFIX, strlen(RLOCKS_CHANNEL_PREFIX)) != 0)
                return 0;
        rl->stats.wakes++;
        ns = channel + strlen(RLOCKS_CHANNEL_PREFIX);
        if (size == 0 || size > rl->hub->limits.max_name_bytes || memchr(data, 0, size))
                return 1;
        name = strndup(data, size);
        if (!name)
                return 1;
        l = lock_find(rl, ns, name);
        if (l && !LIST_IS_EMPTY(l->waits))
                poll_lock(l);
        return 1;
}

static int rlocks_append_stats(void *part, sd_bus_message *reply) {
        RLocks *rl = part;
        int r;

        if ((r = bus_append_stat(reply, "backend_lock_holds", 't', &rl->stats.holds)) < 0 ||
            (r = bus_append_stat(reply, "backend_lock_waits", 't', &rl->stats.waits)) < 0 ||
            (r = bus_append_stat(reply, "backend_lock_scripts", 't', &rl->stats.scripts)) < 0 ||
            (r = bus_append_stat(reply, "backend_lock_wakes", 't', &rl->stats.wakes)) < 0 ||
            (r = bus_append_stat(reply, "backend_locks_lost", 't', &rl->stats.lost)) < 0)
                return r;
        return 0;
}

void rlocks_get_stats(const RLocks *rl, RLocksStats *ret) {
        *ret = rl->stats;
}

static void rlocks_free(void *part) {
        RLocks *rl = part;
        RName *l;
        RNs *n;
        size_t i = 0;

        if (!rl)
                return;
        sd_event_source_disable_unref(rl->tick);
        /* the link is gone (backend_free frees it first): nothing is in flight any more */
        while (hashmap_iterate(rl->locks, &i, (void **) &l, NULL)) {
                RHold *hd;
                RLockWait *w;

                while ((hd = l->holds.first)) {
                        LIST_REMOVE(holds, l->holds, hd);
                        free(hd->holder);
                        free(hd);
                }
                while ((w = l->waits.first)) {
                        LIST_REMOVE(waits, l->waits, w);
                        if (w->done)
                                w->done(w->userdata, -EHOSTDOWN, 0, "the hub is exiting");
                        wait_free(w);
                }
                hashmap_remove(rl->locks, l->key);
                free(l->key);
                free(l->name);
                free(l);
        }
        i = 0;
        while (hashmap_iterate(rl->namespaces, &i, (void **) &n, NULL)) {
                hashmap_remove(rl->namespaces, n->name);
                free(n->name);
                free(n);
        }
        hashmap_free(rl->locks);
        hashmap_free(rl->namespaces);
        forget_scripts(rl);
        free(rl);
}

static int rlocks_new(Hub *h, RedisLink *link, uint64_t instance, void **ret) {
        RLocks *rl = calloc(1, sizeof(RLocks));
        int r;

        if (!rl)
                return -ENOMEM;
        rl->hub = h;
        rl->link = link;
        snprintf(rl->instance, sizeof(rl->instance), "%016" PRIx64, instance);
        rl->instance_id = instance;
        rl->namespaces = hashmap_new();
        rl->locks = hashmap_new();
        if (!rl->namespaces || !rl->locks) {
                rlocks_free(rl);
                return -ENOMEM;
        }
        r = sd_event_add_time_relative(h->event, &rl->tick, CLOCK_MONOTONIC, tick_usec(rl), 1000, on_tick, rl);
        if (r < 0) {
                rlocks_free(rl);
                return r;
        }
        (void) sd_event_source_set_description(rl->tick, "lock-lease-renewal");
        *ret = rl;
        return 0;
}

static const char *const rlocks_patterns[] = { RLOCKS_CHANNEL_PREFIX "*", NULL };

const BackendPartOps rlocks_ops = {
        .name = "locks",
        .patterns = rlocks_patterns,
        .new = rlocks_new,
        .free = rlocks_free,
        .link_state = rlocks_link_state,
        .on_message = rlocks_on_message,
        .append_stats = rlocks_append_stats,
};
