/* SPDX-License-Identifier: MIT */

/* Lists: a ring buffer of PVal (power-of-two capacity), O(1) push and pop at both ends
 * and O(1) indexing; it grows by doubling and shrinks below a quarter full. */

#include <stdlib.h>

#include "store-internal.h"

#define LIST_MIN_CAP 4

static List *entry_list(Entry *e) {
        return e ? e->v.obj : NULL;
}

size_t list_len(const List *l) {
        return l ? l->len : 0;
}

static PVal *list_at(List *l, size_t i) {
        return &l->a[(l->head + i) & (l->cap - 1)];
}

size_t list_memory(const List *l) {
        size_t n = mem_usable(l) + mem_usable(l->a);

        for (size_t i = 0; i < l->len; i++)
                n += pval_memory(&l->a[(l->head + i) & (l->cap - 1)]);
        return n;
}

static int list_resize(Store *s, List *l, size_t cap) {
        PVal *a;

        a = mem_alloc(s, cap * sizeof(PVal));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < l->len; i++)
                a[i] = *list_at(l, i);
        mem_free(s, l->a);
        l->a = a;
        l->cap = cap;
        l->head = 0;
        return 0;
}

/* Room for n more values, so that the pushes after it cannot fail. */
static int list_reserve(Store *s, List *l, size_t n) {
        size_t cap = MAX(l->cap, (size_t) LIST_MIN_CAP);

        while (cap < l->len + n)
                cap *= 2;
        if (cap == l->cap)
                return 0;
        return list_resize(s, l, cap);
}

static void list_maybe_shrink(Store *s, List *l) {
        if (l->cap > LIST_MIN_CAP && l->len < l->cap / 4)
                (void) list_resize(s, l, l->cap / 2); /* failure: keep the bigger array */
}

static void list_push(List *l, bool left, PVal v) {
        if (left) {
                l->head = (l->head - 1) & (l->cap - 1);
                l->a[l->head] = v;
        } else
                *list_at(l, l->len) = v;
        l->len++;
}

PVal list_pop(Store *s, List *l, bool left) {
        PVal v;

        if (left) {
                v = l->a[l->head];
                l->head = (l->head + 1) & (l->cap - 1);
        } else
                v = *list_at(l, l->len - 1);
        l->len--;
        list_maybe_shrink(s, l);
        return v;
}

static void list_remove_at(Store *s, List *l, size_t i) {
        pval_clear(s, list_at(l, i));
        if (i < l->len / 2) {
                for (size_t j = i; j > 0; j--)
                        *list_at(l, j) = *list_at(l, j - 1);
                l->head = (l->head + 1) & (l->cap - 1);
        } else
                for (size_t j = i; j + 1 < l->len; j++)
                        *list_at(l, j) = *list_at(l, j + 1);
        l->len--;
}

/* Insert at index i (0..len); room must be reserved. */
static void list_insert_at(List *l, size_t i, PVal v) {
        l->len++;
        for (size_t j = l->len - 1; j > i; j--)
                *list_at(l, j) = *list_at(l, j - 1);
        *list_at(l, i) = v;
}

void list_free(Store *s, List *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->len; i++)
                pval_clear(s, list_at(l, i));
        mem_free(s, l->a);
        mem_free(s, l);
}

static int list_lookup(Store *s, const char *key, uint64_t now_ms, size_t *ret_len, Entry **ret_e) {
        return entry_lookup_kind(s, key, KIND_LIST, now_ms, ret_len, ret_e);
}

static int list_create(Store *s, const char *key, size_t len, Entry **ret) {
        PVal v = { .type = KIND_LIST };
        List *l;
        int r;

        l = mem_alloc0(s, sizeof(List));
        if (!l)
                return -ENOMEM;
        v.obj = l;
        r = entry_add(s, key, len, &v, ret);
        if (r < 0) {
                mem_free(s, l);
                return r;
        }
        return 0;
}

/* Delete the key of an emptied list; notifies "del". */
static bool list_drop_if_empty(Store *s, Entry *e, const char *key) {
        if (entry_list(e)->len > 0)
                return false;
        entry_delete(s, e);
        if (key)
                notify(s, key, "del");
        return true;
}

static uint64_t list_grow_estimate(const List *l, size_t n) {
        size_t cap = MAX(l ? l->cap : 0, (size_t) LIST_MIN_CAP), len = list_len(l);

        while (cap < len + n)
                cap *= 2;
        return l && cap == l->cap ? 0 : mem_estimate(cap * sizeof(PVal));
}

static int push_impl(Store *s, const char *key, bool left, const StoreValue *values, size_t n,
                     bool only_existing, uint64_t now_ms, size_t *ret_len) {
        uint64_t extra = 0;
        size_t len, result, pushed = 0;
        StoreDelta delta;
        bool existed;
        Entry *e;
        List *l;
        int r;

        if (n == 0 || !values)
                return -EINVAL;
        r = list_lookup(s, key, now_ms, &len, &e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = value_check(s, &values[i]);
                if (r < 0)
                        return r;
                extra += value_estimate(&values[i]);
        }
        if (!e && only_existing) {
                if (ret_len)
                        *ret_len = 0;
                return 0;
        }
        if (list_len(entry_list(e)) + n > s->limits.max_elements)
                return limit_fail(s, "elements");
        extra += list_grow_estimate(entry_list(e), n);
        if (!e)
                extra += entry_estimate(len) + mem_estimate(sizeof(List));
        r = mem_check(s, extra);
        if (r < 0)
                return r;

        existed = e != NULL;
        if (!e) {
                r = list_create(s, key, len, &e);
                if (r < 0)
                        return r;
        }
        l = entry_list(e);
        r = list_reserve(s, l, n);
        if (r < 0)
                goto fail;
        for (; pushed < n; pushed++) {
                PVal v;

                r = pval_from(s, &v, &values[pushed]);
                if (r < 0)
                        goto fail; /* earlier values stay pushed */
                list_push(l, left, v);
        }
        result = l->len;
        delta = (StoreDelta) { .op = STORE_DELTA_PUSH, .left = left, .n = n, .values = values };
        notify_delta(s, key, left ? "lpush" : "rpush", existed ? &delta : NULL);
        blocking_signal(s);
        blocking_serve(s, now_ms);
        if (ret_len)
                *ret_len = result;
        return 0;

fail:
        if (!list_drop_if_empty(s, e, NULL) && l->len > 0) {
                delta = (StoreDelta) { .op = STORE_DELTA_PUSH, .left = left, .n = pushed, .values = values };
                notify_delta(s, key, left ? "lpush" : "rpush", existed && pushed > 0 ? &delta : NULL);
                blocking_signal(s);
                blocking_serve(s, now_ms);
        }
        return r;
}

int store_push(Store *s, const char *key, bool left, const StoreValue *values, size_t n,
               uint64_t now_ms, size_t *ret_len) {
        return push_impl(s, key, left, values, n, false, now_ms, ret_len);
}

int store_pushx(Store *s, const char *key, bool left, const StoreValue *values, size_t n,
                uint64_t now_ms, size_t *ret_len) {
        return push_impl(s, key, left, values, n, true, now_ms, ret_len);
}

int store_pop(Store *s, const char *key, bool left, size_t count, uint64_t now_ms,
              StoreValue **ret_values, size_t *ret_n) {
        StoreValue *a;
        Entry *e;
        List *l;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        l = entry_list(e);
        if (count == 0)
                count = 1;
        count = MIN(count, list_len(l));
        a = calloc(MAX(count, (size_t) 1), sizeof(StoreValue));
        if (!a)
                return -ENOMEM;
        /* copy out first: running out of memory changes nothing */
        for (size_t i = 0; i < count; i++) {
                r = pval_to_owned(list_at(l, left ? i : l->len - 1 - i), &a[i]);
                if (r < 0) {
                        store_values_free(a, i);
                        return r;
                }
        }
        for (size_t i = 0; i < count; i++) {
                PVal v = list_pop(s, l, left);

                pval_clear(s, &v);
        }
        if (count > 0) {
                StoreDelta delta = { .op = STORE_DELTA_POP, .left = left, .n = count };

                notify_delta(s, key, left ? "lpop" : "rpop", &delta);
                list_drop_if_empty(s, e, key);
        }
        if (ret_values)
                *ret_values = a;
        else
                store_values_free(a, count);
        if (ret_n)
                *ret_n = count;
        return 0;
}

/* Redis's range normalization; false when empty. */
static bool range_norm(size_t len, int64_t start, int64_t stop, size_t *ret_start, size_t *ret_stop) {
        int64_t l = (int64_t) len;

        if (start < 0)
                start = l + start;
        if (stop < 0)
                stop = l + stop;
        if (start < 0)
                start = 0;
        if (start > stop || start >= l)
                return false;
        if (stop >= l)
                stop = l - 1;
        *ret_start = (size_t) start;
        *ret_stop = (size_t) stop;
        return true;
}

int store_lrange(Store *s, const char *key, int64_t start, int64_t stop, uint64_t now_ms,
                 StoreValue **ret_values, size_t *ret_n) {
        _cleanup_(freep) StoreValue *a = NULL;
        size_t from = 0, to = 0, k = 0;
        bool any;
        Entry *e;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        any = range_norm(list_len(entry_list(e)), start, stop, &from, &to);
        a = calloc(any ? to - from + 1 : 1, sizeof(StoreValue));
        if (!a)
                return -ENOMEM;
        if (any)
                for (size_t i = from; i <= to; i++)
                        pval_view(list_at(entry_list(e), i), &a[k++]);
        if (ret_values)
                *ret_values = TAKE_PTR(a);
        if (ret_n)
                *ret_n = k;
        return 0;
}

int store_llen(Store *s, const char *key, uint64_t now_ms, size_t *ret_len) {
        Entry *e;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        if (ret_len)
                *ret_len = list_len(entry_list(e));
        return 0;
}

static bool index_norm(size_t len, int64_t index, size_t *ret) {
        if (index < 0)
                index += (int64_t) len;
        if (index < 0 || index >= (int64_t) len)
                return false;
        *ret = (size_t) index;
        return true;
}

int store_lindex(Store *s, const char *key, int64_t index, uint64_t now_ms, StoreValue *ret) {
        Entry *e;
        size_t i;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        if (!e || !index_norm(entry_list(e)->len, index, &i))
                return -ENOKEY;
        if (ret)
                pval_view(list_at(entry_list(e), i), ret);
        return 0;
}

int store_lset(Store *s, const char *key, int64_t index, const StoreValue *value, uint64_t now_ms) {
        PVal v, *p;
        Entry *e;
        size_t i;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = value_check(s, value);
        if (r < 0)
                return r;
        if (!e)
                return -ENOKEY;
        if (!index_norm(entry_list(e)->len, index, &i))
                return -EINVAL;
        p = list_at(entry_list(e), i);
        {
                StoreValue old;
                uint64_t add = value_estimate(value), sub;

                pval_view(p, &old);
                sub = value_estimate(&old);
                r = mem_check(s, add > sub ? add - sub : 0);
                if (r < 0)
                        return r;
        }
        r = pval_from(s, &v, value);
        if (r < 0)
                return r;
        pval_clear(s, p);
        *p = v;
        notify(s, key, "lset");
        return 0;
}

int store_ltrim(Store *s, const char *key, int64_t start, int64_t stop, uint64_t now_ms) {
        size_t from, to, len;
        Entry *e;
        List *l;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        if (!e)
                return 0;
        l = entry_list(e);
        len = l->len;
        if (!range_norm(len, start, stop, &from, &to)) {
                from = len;
                to = len - 1; /* remove everything */
        }
        if (from == 0 && to == len - 1)
                return 0; /* nothing removed: no change, no notification */
        for (size_t i = to + 1; i < len; i++) {
                PVal v = list_pop(s, l, false);

                pval_clear(s, &v);
        }
        for (size_t i = 0; i < from && l->len > 0; i++) {
                PVal v = list_pop(s, l, true);

                pval_clear(s, &v);
        }
        notify(s, key, "ltrim");
        list_drop_if_empty(s, e, key);
        return 0;
}

int store_lrem(Store *s, const char *key, int64_t count, const StoreValue *value, uint64_t now_ms,
               size_t *ret_removed) {
        size_t removed = 0;
        Entry *e;
        List *l;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = value_check(s, value);
        if (r < 0)
                return r;
        l = entry_list(e);
        if (l) {
                uint64_t limit = count == 0 ? UINT64_MAX : count < 0 ? (uint64_t) -(count + 1) + 1 : (uint64_t) count;

                if (count >= 0) {
                        for (size_t i = 0; i < l->len && removed < limit;)
                                if (pval_equal(list_at(l, i), value)) {
                                        list_remove_at(s, l, i);
                                        removed++;
                                } else
                                        i++;
                } else {
                        for (size_t i = l->len; i > 0 && removed < limit; i--)
                                if (pval_equal(list_at(l, i - 1), value)) {
                                        list_remove_at(s, l, i - 1);
                                        removed++;
                                }
                }
                if (removed > 0) {
                        list_maybe_shrink(s, l);
                        notify(s, key, "lrem");
                        list_drop_if_empty(s, e, key);
                }
        }
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}

int store_linsert(Store *s, const char *key, bool before, const StoreValue *pivot,
                  const StoreValue *value, uint64_t now_ms, int64_t *ret) {
        Entry *e;
        List *l;
        PVal v;
        int64_t result = -1;
        int r;

        r = list_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = value_check(s, pivot);
        if (r < 0)
                return r;
        r = value_check(s, value);
        if (r < 0)
                return r;
        l = entry_list(e);
        if (!l) {
                if (ret)
                        *ret = 0;
                return 0;
        }
        for (size_t i = 0; i < l->len; i++) {
                if (!pval_equal(list_at(l, i), pivot))
                        continue;
                if (l->len + 1 > s->limits.max_elements)
                        return limit_fail(s, "elements");
                r = mem_check(s, value_estimate(value) + list_grow_estimate(l, 1));
                if (r < 0)
                        return r;
                r = list_reserve(s, l, 1);
                if (r < 0)
                        return r;
                r = pval_from(s, &v, value);
                if (r < 0)
                        return r;
                list_insert_at(l, before ? i : i + 1, v);
                result = (int64_t) l->len;
                notify(s, key, "linsert");
                blocking_signal(s);
                blocking_serve(s, now_ms);
                break;
        }
        if (ret)
                *ret = result;
        return 0;
}

int store_lmove(Store *s, const char *src, const char *dst, bool from_left, bool to_left,
                uint64_t now_ms, StoreValue *ret) {
        _cleanup_(store_value_clear) StoreValue copy = {};
        StoreDelta pop, push;
        bool created = false;
        size_t dlen;
        Entry *se, *de;
        List *sl, *dl;
        PVal v;
        int r;

        r = list_lookup(s, src, now_ms, NULL, &se);
        if (r < 0)
                return r;
        r = list_lookup(s, dst, now_ms, &dlen, &de);
        if (r < 0)
                return r;
        if (!se || entry_list(se)->len == 0)
                return -ENOKEY;
        sl = entry_list(se);
        if (de != se) {
                uint64_t extra;

                if (list_len(entry_list(de)) + 1 > s->limits.max_elements)
                        return limit_fail(s, "elements");
                extra = list_grow_estimate(entry_list(de), 1);
                if (!de)
                        extra += entry_estimate(dlen) + mem_estimate(sizeof(List));
                r = mem_check(s, extra);
                if (r < 0)
                        return r;
        }
        r = pval_to_owned(list_at(sl, from_left ? 0 : sl->len - 1), &copy);
        if (r < 0)
                return r;
        if (!de) {
                r = list_create(s, dst, dlen, &de);
                if (r < 0)
                        return r;
                created = true;
        }
        dl = entry_list(de);
        if (de != se) {
                r = list_reserve(s, dl, 1);
                if (r < 0) {
                        list_drop_if_empty(s, de, NULL);
                        return r;
                }
        }
        v = list_pop(s, sl, from_left);
        list_push(dl, to_left, v); /* same list: the slot just freed */
        /* the deltas of the two steps, in order: also right when src == dst (a rotation) */
        pop = (StoreDelta) { .op = STORE_DELTA_POP, .left = from_left, .n = 1 };
        push = (StoreDelta) { .op = STORE_DELTA_PUSH, .left = to_left, .n = 1, .values = &copy };
        notify_delta(s, src, from_left ? "lpop" : "rpop", &pop);
        if (de != se)
                list_drop_if_empty(s, se, src);
        notify_delta(s, dst, to_left ? "lpush" : "rpush", created ? NULL : &push);
        blocking_signal(s);
        blocking_serve(s, now_ms);
        if (ret)
                *ret = copy;
        else
                store_value_clear(&copy);
        copy = (StoreValue) {};
        return 0;
}
