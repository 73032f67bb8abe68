/* SPDX-License-Identifier: MIT */
/* BLPop/BRPop waiters served from Redis in rounds (rstore-wait.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "macro.h"
#include "rstore-wait.h"

/* Keys are Redis names, declared in KEYS (one slot: every key has the namespace's hash tag).
 * TYPE first: a key of another type is skipped, or WrongType for a fresh waiter, as the local
 * store's find_list(); an expired key is "none". */
const char RWAIT_SCRIPT[] =
        "local out, a = {}, 1\n"
        "while a <= #ARGV do\n"
        "  local left, fresh, n = ARGV[a] == 'l', ARGV[a + 1] == '1', tonumber(ARGV[a + 2])\n"
        "  a = a + 3\n"
        "  local r = 0\n"
        "  for j = 0, n - 1 do\n"
        "    local i = tonumber(ARGV[a + j])\n"
        "    local t = redis.call('TYPE', KEYS[i]).ok\n"
        "    if t == 'list' then\n"
        "      r = { i, redis.call(left and 'LPOP' or 'RPOP', KEYS[i]) }\n"
        "      break\n"
        "    elseif t ~= 'none' and fresh then\n"
        "      r = -1\n"
        "      break\n"
        "    end\n"
        "  end\n"
        "  out[#out + 1] = r\n"
        "  a = a + n\n"
        "end\n"
        "return out\n";

RWaitQueue *rwait_queue_new(void) {
        return calloc(1, sizeof(RWaitQueue));
}

static void waiter_free(RWaiter *w) {
        RWaitQueue *q = w->queue;

        LIST_REMOVE(waiters, q->waiters, w);
        q->n_waiters--;
        free(w); /* keys live in the same allocation */
}

static void queue_free_if_done(RWaitQueue *q) {
        if (q->dropped && q->n_chunks == 0) {
                while (q->waiters.first)
                        waiter_free(q->waiters.first);
                free(q);
        }
}

void rwait_queue_drop(RWaitQueue *q) {
        RWaiter *w, *next;

        if (!q)
                return;
        q->dropped = true;
        q->wanted = false;
        for (w = q->waiters.first; w; w = next) {
                next = w->waiters_next;
                if (w->in_round)
                        w->token = NULL; /* its chunk's answer puts its value back */
                else
                        waiter_free(w);
        }
        queue_free_if_done(q);
}

int rwait_add(RWaitQueue *q, const char *const *keys, size_t n, bool left, void *token, RWaiter **ret) {
        size_t total = 0;
        RWaiter *w;
        char *p;

        if (n == 0 || !keys || q->dropped)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(keys[i]) + 1;

                if (total > SIZE_MAX / 2 - len)
                        return -ENOMEM;
                total += len;
        }
        if (n > (SIZE_MAX / 2 - total - sizeof(RWaiter)) / sizeof(char *))
                return -ENOMEM;
        w = malloc(sizeof(RWaiter) + n * sizeof(char *) + total);
        if (!w)
                return -ENOMEM;
        *w = (RWaiter) {
                .queue = q,
                .token = token,
                .left = left,
                .fresh = true,
                .n_keys = n,
                .keys = (char **) (w + 1),
        };
        p = (char *) (w->keys + n);
        for (size_t i = 0; i < n; i++) {
                w->keys[i] = p;
                p = stpcpy(p, keys[i]) + 1;
        }
        LIST_APPEND(waiters, q->waiters, w);
        q->n_waiters++;
        q->wanted = true;
        if (ret)
                *ret = w;
        return 0;
}

void rwait_cancel(RWaiter *w) {
        if (!w)
                return;
        if (w->in_round)
                w->token = NULL;
        else
                waiter_free(w);
}

void rwait_done(RWaiter *w) {
        if (w && !w->in_round)
                waiter_free(w);
}

bool rwait_event_adds(const char *event) {
        /* what Redis 7 sends when a list may have got elements: the pushes (LMOVE's and
         * BLMOVE's destination included), LINSERT, a list renamed, moved, copied or restored
         * onto the key, SORT ... STORE.  Pops, trims, removals and deletions add nothing. */
        static const char *const adds[] = {
                "lpush", "rpush", "linsert", "rename_to", "move_to", "copy_to", "restore", "sortstore",
        };

        if (!event)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(adds); i++)
                if (streq(event, adds[i]))
                        return true;
        return false;
}

bool rwait_has_key(const RWaitQueue *q, const char *key) {
        for (RWaiter *w = q->waiters.first; w; w = w->waiters_next)
                for (size_t i = 0; w->token && i < w->n_keys; i++)
                        if (streq(w->keys[i], key))
                                return true;
        return false;
}

void rwait_want(RWaitQueue *q) {
        if (!q->dropped && q->n_waiters > 0)
                q->wanted = true;
}

bool rwait_key_event(RWaitQueue *q, const char *key, const char *event) {
        if (q->dropped || !rwait_event_adds(event) || !rwait_has_key(q, key))
                return false;
        q->wanted = true;
        return true;
}

bool rwait_round_begin(RWaitQueue *q) {
        if (q->dropped || q->n_chunks > 0 || !q->wanted)
                return false;
        q->wanted = false;
        for (RWaiter *w = q->waiters.first; w; w = w->waiters_next)
                if (w->token)
                        return true;
        return false;
}

static void chunk_free(RWaitChunk *c) {
        if (!c)
                return;
        free(c->waiters);
        free(c->keys);
        free(c->index);
        free(c->off);
        free(c);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(RWaitChunk *, chunk_free);

/* Adds W's keys to C (distinct, through SEEN: key -> place + 1). */
static int chunk_add(RWaitChunk *c, Hashmap *seen, RWaiter *w) {
        for (size_t j = 0; j < w->n_keys; j++) {
                uintptr_t place = (uintptr_t) hashmap_get(seen, w->keys[j]);
                int r;

                if (place == 0) {
                        c->keys[c->n_keys] = w->keys[j];
                        place = ++c->n_keys;
                        r = hashmap_put(seen, w->keys[j], (void *) place);
                        if (r < 0)
                                return r;
                }
                c->index[c->off[c->n_waiters] + j] = (size_t) place - 1;
        }
        c->waiters[c->n_waiters] = w;
        c->off[c->n_waiters + 1] = c->off[c->n_waiters] + w->n_keys;
        c->n_waiters++;
        w->in_round = true;
        return 0;
}

int rwait_chunk_next(RWaitQueue *q, size_t max_waiters, size_t max_keys, RWaitChunk **ret) {
        _cleanup_(chunk_freep) RWaitChunk *c = NULL;
        _cleanup_(hashmap_freep) Hashmap *seen = NULL;
        size_t n = 0, keys = 0;
        RWaiter *first = NULL;
        int r;

        max_waiters = MAX(max_waiters, (size_t) 1);
        /* who goes in: the oldest waiters not in a round, while they fit (keys counted with
         * duplicates: a bound, not the exact number) */
        for (RWaiter *w = q->waiters.first; w && n < max_waiters; w = w->waiters_next) {
                if (w->in_round || !w->token)
                        continue;
                if (n > 0 && keys + w->n_keys > max_keys)
                        break;
                if (!first)
                        first = w;
                n++;
                keys += w->n_keys;
        }
        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        c = calloc(1, sizeof(RWaitChunk));
        if (!c)
                return -ENOMEM;
        c->queue = q;
        c->waiters = calloc(n, sizeof(RWaiter *));
        c->keys = calloc(keys, sizeof(char *));
        c->index = calloc(keys, sizeof(size_t));
        c->off = calloc(n + 1, sizeof(size_t));
        seen = hashmap_new();
        if (!c->waiters || !c->keys || !c->index || !c->off || !seen)
                return -ENOMEM;
        for (RWaiter *w = first; w && c->n_waiters < n; w = w->waiters_next) {
                if (w->in_round || !w->token)
                        continue;
                r = chunk_add(c, seen, w);
                if (r < 0) {
                        for (size_t i = 0; i < c->n_waiters; i++)
                                c->waiters[i]->in_round = false;
                        return r;
                }
        }
        q->n_chunks++;
        *ret = TAKE_PTR(c);
        return 0;
}

const char *rwait_chunk_key(const RWaitChunk *c, size_t i, size_t p) {
        if (i >= c->n_waiters || !c->waiters[i])
                return NULL;
        for (size_t j = c->off[i]; j < c->off[i + 1]; j++)
                if (c->index[j] == p)
                        return c->waiters[i]->keys[j - c->off[i]];
        return NULL;
}

void rwait_chunk_done(RWaitChunk *c, size_t i) {
        RWaiter *w;

        if (i >= c->n_waiters || !c->waiters[i])
                return;
        w = c->waiters[i];
        c->waiters[i] = NULL;
        waiter_free(w);
}

RWaitQueue *rwait_chunk_end(RWaitChunk *c) {
        RWaitQueue *q = c->queue;

        for (size_t i = 0; i < c->n_waiters; i++) {
                RWaiter *w = c->waiters[i];

                if (!w)
                        continue;
                w->in_round = false;
                w->fresh = false;
                if (!w->token)
                        waiter_free(w);
        }
        chunk_free(c);
        q->n_chunks--;
        if (q->dropped && q->n_chunks == 0) {
                queue_free_if_done(q);
                return NULL;
        }
        return q;
}
