/* SPDX-License-Identifier: MIT */

/* Blocking pops (BLPop/BRPop): waiters queue in one list in order of arrival.  A write
 * that may make a list non-empty (push, insert, move, rename of a list) calls
 * blocking_signal() and, once it is complete, blocking_serve(), which walks the waiters
 * oldest first and serves each whose keys now hold a non-empty list.  A served waiter is
 * unlinked and freed before its callback runs, and the walk restarts after every
 * callback, so callbacks may call into the store (nested serving is folded into the
 * outer walk).  Cost: O(waiters) per write that signals while waiters exist. */

#include <stdlib.h>

#include "store-internal.h"

static void waiter_unlink(Store *s, StoreWaiter *w) {
        if (w->prev)
                w->prev->next = w->next;
        else
                s->waiters_head = w->next;
        if (w->next)
                w->next->prev = w->prev;
        else
                s->waiters_tail = w->prev;
        w->prev = w->next = NULL;
        s->n_waiters--;
}

static void waiter_free(StoreWaiter *w) {
        free(w); /* keys live in the same allocation */
}

void blocking_signal(Store *s) {
        if (s->n_waiters > 0)
                s->ready = true;
}

/* The first non-empty list among keys; -EMEDIUMTYPE when a key holds another type
 * (only reported when report_type). */
static int find_list(Store *s, char *const *keys, size_t n, uint64_t now_ms, bool report_type,
                     size_t *ret_i, Entry **ret_e) {
        for (size_t i = 0; i < n; i++) {
                Entry *e = entry_find(s, keys[i], strlen(keys[i]), now_ms);

                if (!e)
                        continue;
                if (e->v.type != KIND_LIST) {
                        if (report_type)
                                return -EMEDIUMTYPE;
                        continue;
                }
                *ret_i = i;
                *ret_e = e;
                return 1;
        }
        return 0;
}

/* Pop one value off e (a non-empty list); notifies, deletes an emptied list. */
static int pop_owned(Store *s, Entry *e, const char *key, bool left, StoreValue *ret) {
        List *l = e->v.obj;
        PVal v;
        int r;

        r = pval_to_owned(left ? &l->a[l->head] : &l->a[(l->head + l->len - 1) & (l->cap - 1)], ret);
        if (r < 0)
                return r;
        v = list_pop(s, l, left);
        pval_clear(s, &v);
        notify_delta(s, key, left ? "lpop" : "rpop", &(const StoreDelta) { .op = STORE_DELTA_POP, .left = left, .n = 1 });
        if (l->len == 0) {
                entry_delete(s, e);
                notify(s, key, "del");
        }
        return 0;
}

static bool serve_one(Store *s, uint64_t now_ms) {
        for (StoreWaiter *w = s->waiters_head; w; w = w->next) {
                StoreValue v;
                Entry *e;
                size_t i;
                int r;

                r = find_list(s, w->keys, w->n_keys, now_ms, false, &i, &e);
                if (r <= 0)
                        continue;
                r = pop_owned(s, e, w->keys[i], w->left, &v);
                if (r < 0)
                        return false; /* out of memory: leave the waiter, try later */
                waiter_unlink(s, w);
                if (s->served)
                        s->served(s->userdata, w->token, w->keys[i], &v);
                else
                        store_value_clear(&v);
                waiter_free(w);
                return true;
        }
        return false;
}

void blocking_serve(Store *s, uint64_t now_ms) {
        if (s->serving)
                return; /* the outer walk picks it up */
        s->serving = true;
        while (s->ready) {
                s->ready = false;
                while (serve_one(s, now_ms))
                        ;
        }
        s->serving = false;
}

int store_block(Store *s, const char *const *keys, size_t n, bool left, void *token,
                uint64_t now_ms, StoreWaiter **ret_waiter, char **ret_key, StoreValue *ret_value) {
        StoreWaiter *w;
        size_t total = 0, i;
        Entry *e;
        char *p;
        int r;

        if (n == 0 || !keys)
                return -EINVAL;
        for (size_t k = 0; k < n; k++) {
                size_t len;

                r = key_check(s, keys[k], &len);
                if (r < 0)
                        return r;
                total += len + 1;
        }
        r = find_list(s, (char *const *) keys, n, now_ms, true, &i, &e);
        if (r < 0)
                return r;
        if (r > 0) {
                _cleanup_(freep) char *k = strdup(keys[i]);
                StoreValue v;

                if (!k)
                        return -ENOMEM;
                r = pop_owned(s, e, keys[i], left, &v);
                if (r < 0)
                        return r;
                if (ret_key)
                        *ret_key = TAKE_PTR(k);
                if (ret_value)
                        *ret_value = v;
                else
                        store_value_clear(&v);
                return 1;
        }

        w = malloc(sizeof(StoreWaiter) + n * sizeof(char *) + total);
        if (!w)
                return -ENOMEM;
        *w = (StoreWaiter) {
                .store = s,
                .token = token,
                .left = left,
                .n_keys = n,
                .keys = (char **) (w + 1),
        };
        p = (char *) (w->keys + n);
        for (size_t k = 0; k < n; k++) {
                w->keys[k] = p;
                p = stpcpy(p, keys[k]) + 1;
        }
        w->prev = s->waiters_tail;
        if (s->waiters_tail)
                s->waiters_tail->next = w;
        else
                s->waiters_head = w;
        s->waiters_tail = w;
        s->n_waiters++;
        if (ret_waiter)
                *ret_waiter = w;
        return 0;
}

void store_waiter_cancel(StoreWaiter *w) {
        if (!w)
                return;
        waiter_unlink(w->store, w);
        waiter_free(w);
}

size_t store_waiters(const Store *s) {
        return s->n_waiters;
}

void blocking_free(Store *s) {
        while (s->waiters_head) {
                StoreWaiter *w = s->waiters_head;

                waiter_unlink(s, w);
                waiter_free(w);
        }
}
