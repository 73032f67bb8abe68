/* SPDX-License-Identifier: MIT */

/* Hashes: field name -> value.  HField nodes (name inline) kept in insertion order while the
 * hash is small, in a Dict once it grew past HASH_SMALL_MAX fields (see Hash). */

#include <math.h>
#include <stdlib.h>

#include "store-internal.h"

#define ORDER_MIN 4

size_t hash_len(const Hash *h) {
        return h ? h->dict.count : 0;
}

/* Slots of the order array: what the allocator handed out (at least what was asked). */
static size_t order_cap(const Hash *h) {
        return mem_usable(h->order) / sizeof(HField *);
}

/* Order array slots for n fields: a power of two, so that growing costs O(1) amortized and
 * the array matches what the allocator rounds to. */
static size_t order_slots(size_t n) {
        size_t c = ORDER_MIN;

        while (c < n)
                c *= 2;
        return c;
}

void hash_free(Store *s, Hash *h) {
        if (!h)
                return;
        if (hash_small(h)) {
                for (size_t i = 0; i < h->dict.count; i++) {
                        pval_clear(s, &h->order[i]->v);
                        mem_free(s, h->order[i]);
                }
                mem_free(s, h->order);
        } else {
                DICT_FOREACH(n, &h->dict, i) {
                        HField *f = container_of(n, HField, node);

                        pval_clear(s, &f->v);
                        mem_free(s, f);
                }
                dict_free_buckets(s, &h->dict);
        }
        mem_free(s, h);
}

size_t hash_memory(const Hash *h) {
        size_t n = mem_usable(h) + mem_usable(h->order) + mem_usable(h->dict.buckets);

        HASH_FOREACH(f, h)
                n += mem_usable(f) + pval_memory(&f->v);
        return n;
}

static size_t field_estimate(size_t len) {
        return mem_estimate(offsetof(HField, key) + len + 1);
}

/* Looks up key: *ret_e NULL when absent; -EMEDIUMTYPE when not a hash. */
static int hash_lookup(Store *s, const char *key, uint64_t now_ms, size_t *ret_len, Entry **ret_e) {
        return entry_lookup_kind(s, key, KIND_HASH, now_ms, ret_len, ret_e);
}

static Hash *entry_hash(const Entry *e) {
        return e ? e->v.obj : NULL;
}

static size_t entry_hash_len(const Entry *e) {
        return hash_len(entry_hash(e));
}

/* Index of f in a small hash's order. */
static size_t order_index(const Hash *h, const HField *f) {
        size_t i = 0;

        while (h->order[i] != f)
                i++;
        return i;
}

static HField *field_find(Entry *e, const char *name, size_t len) {
        Hash *h = entry_hash(e);
        uint32_t hash;
        DictNode *n;

        if (!h)
                return NULL;
        hash = dict_hash(name, len);
        if (hash_small(h)) {
                for (size_t i = 0; i < h->dict.count; i++) {
                        HField *f = h->order[i];

                        if (f->node.hash == hash && f->node.key_len == len && memcmp(f->key, name, len) == 0)
                                return f;
                }
                return NULL;
        }
        n = dict_find(&h->dict, name, len, hash);
        return n ? container_of(n, HField, node) : NULL;
}

/* Create an empty (small) hash at key. */
static int hash_create(Store *s, const char *key, size_t len, Entry **ret) {
        PVal v = { .type = KIND_HASH };
        Hash *h;
        int r;

        h = mem_alloc0(s, sizeof(Hash));
        if (!h)
                return -ENOMEM;
        dict_init(&h->dict, offsetof(HField, key));
        h->order = mem_alloc(s, ORDER_MIN * sizeof(HField *));
        if (!h->order) {
                mem_free(s, h);
                return -ENOMEM;
        }
        v.obj = h;
        r = entry_add(s, key, len, &v, ret);
        if (r < 0) {
                mem_free(s, h->order);
                mem_free(s, h);
                return r;
        }
        return 0;
}

/* Small -> big, once: every field into a table with room for one more. */
static int hash_convert(Store *s, Hash *h) {
        Dict d;
        int r;

        dict_init(&d, offsetof(HField, key));
        r = dict_reserve(s, &d, h->dict.count + 1);
        if (r < 0) {
                dict_free_buckets(s, &d);
                return r;
        }
        for (size_t i = 0; i < h->dict.count; i++)
                (void) dict_insert(s, &d, &h->order[i]->node); /* room reserved: no growth, no failure */
        mem_free(s, h->order);
        h->order = NULL;
        h->dict = d;
        return 0;
}

/* Room for one more field, so that the insert after it cannot fail. */
static int hash_reserve_one(Store *s, Hash *h) {
        HField **a;

        if (!hash_small(h))
                return 0;
        if (h->dict.count >= HASH_SMALL_MAX)
                return hash_convert(s, h);
        if (h->dict.count < order_cap(h))
                return 0;
        a = mem_realloc(s, h->order, order_slots(h->dict.count + 1) * sizeof(HField *));
        if (!a)
                return -ENOMEM;
        h->order = a;
        return 0;
}

/* Takes over *v on success. */
static int field_add(Store *s, Hash *h, const char *name, size_t len, PVal *v) {
        HField *f = NULL;
        int r;

        r = hash_reserve_one(s, h);
        if (r < 0)
                return r;
        f = mem_alloc(s, offsetof(HField, key) + len + 1);
        if (!f)
                return -ENOMEM;
        *f = (HField) {
                .node.hash = dict_hash(name, len),
                .node.key_len = (uint32_t) len,
                .v = *v,
        };
        memcpy(f->key, name, len);
        f->key[len] = 0;
        if (hash_small(h))
                h->order[h->dict.count++] = f;
        else
                (void) dict_insert(s, &h->dict, &f->node); /* has buckets: cannot fail */
        *v = (PVal) {};
        return 0;
}

static void field_delete(Store *s, Hash *h, HField *f) {
        if (hash_small(h)) {
                size_t i = order_index(h, f), cap = order_cap(h);

                /* keep the order: shift the later ones down */
                memmove(h->order + i, h->order + i + 1, (h->dict.count - i - 1) * sizeof(HField *));
                h->dict.count--;
                if (cap > ORDER_MIN && h->dict.count < cap / 4) {
                        HField **a = mem_realloc(s, h->order, order_slots(2 * h->dict.count) * sizeof(HField *));

                        if (a)  /* failure: keep the bigger array */
                                h->order = a;
                }
        } else
                dict_unlink(s, &h->dict, &f->node);
        pval_clear(s, &f->v);
        mem_free(s, f);
}

/* Delete the key when its hash became empty (after a failed or emptying write). */
static bool hash_drop_if_empty(Store *s, Entry *e) {
        if (entry_hash_len(e) > 0)
                return false;
        entry_delete(s, e);
        return true;
}

int store_hset(Store *s, const char *key, const char *const *fields, const StoreValue *values,
               size_t n, uint64_t now_ms, size_t *ret_added) {
        uint64_t extra = 0;
        size_t len, added = 0, newf = 0, done = 0;
        StoreDelta delta;
        bool existed;
        Entry *e = NULL;
        int r;

        if (n == 0 || !fields || !values)
                return -EINVAL;
        r = hash_lookup(s, key, now_ms, &len, &e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                size_t fl;

                r = name_check(s, fields[i], &fl);
                if (r < 0)
                        return r;
                r = value_check(s, &values[i]);
                if (r < 0)
                        return r;
                extra += value_estimate(&values[i]);
                if (!field_find(e, fields[i], fl)) {
                        newf++;
                        extra += field_estimate(fl);
                }
        }
        if (entry_hash_len(e) + newf > s->limits.max_elements)
                return limit_fail(s, "elements");
        if (!e)
                extra += entry_estimate(len) + mem_estimate(sizeof(Hash)) + mem_estimate(ORDER_MIN * sizeof(HField *));
        r = mem_check(s, extra);
        if (r < 0)
                return r;

        existed = e != NULL;
        if (!e) {
                r = hash_create(s, key, len, &e);
                if (r < 0)
                        return r;
        }
        for (; done < n; done++) {
                size_t fl = strlen(fields[done]);
                HField *f = field_find(e, fields[done], fl);
                PVal v;

                r = pval_from(s, &v, &values[done]);
                if (r < 0)
                        goto fail;
                if (f) {
                        pval_clear(s, &f->v);
                        f->v = v;
                        continue;
                }
                r = field_add(s, e->v.obj, fields[done], fl, &v);
                if (r < 0) {
                        pval_clear(s, &v);
                        goto fail;
                }
                added++;
        }
        delta = (StoreDelta) { .op = STORE_DELTA_HSET, .n = n, .names = fields, .values = values };
        notify_delta(s, key, "hset", existed ? &delta : NULL);
        if (ret_added)
                *ret_added = added;
        return 0;

fail:
        /* -ENOMEM: what was written stays; an empty new hash goes */
        if (!hash_drop_if_empty(s, e) && done > 0) {
                delta = (StoreDelta) { .op = STORE_DELTA_HSET, .n = done, .names = fields, .values = values };
                notify_delta(s, key, "hset", existed ? &delta : NULL);
        }
        return r;
}

int store_hsetnx(Store *s, const char *key, const char *field, const StoreValue *value, uint64_t now_ms) {
        size_t fl;
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = name_check(s, field, &fl);
        if (r < 0)
                return r;
        if (field_find(e, field, fl))
                return 0;
        r = store_hset(s, key, &field, value, 1, now_ms, NULL);
        return r < 0 ? r : 1;
}

int store_hget(Store *s, const char *key, const char *field, uint64_t now_ms, StoreValue *ret) {
        size_t fl;
        HField *f = NULL;
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = name_check(s, field, &fl);
        if (r < 0)
                return r;
        f = field_find(e, field, fl);
        if (!f)
                return -ENOKEY;
        if (ret)
                pval_view(&f->v, ret);
        return 0;
}

int store_hmget(Store *s, const char *key, const char *const *fields, size_t n, uint64_t now_ms,
                StoreValue **ret_values) {
        _cleanup_(freep) StoreValue *a = NULL;
        Entry *e = NULL;
        int r;

        if (n > 0 && !fields)
                return -EINVAL;
        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = name_check(s, fields[i], NULL);
                if (r < 0)
                        return r;
        }
        a = calloc(MAX(n, (size_t) 1), sizeof(StoreValue));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                HField *f = field_find(e, fields[i], strlen(fields[i]));

                if (f)
                        pval_view(&f->v, &a[i]);
        }
        if (ret_values)
                *ret_values = TAKE_PTR(a);
        return 0;
}

int store_hgetall(Store *s, const char *key, uint64_t now_ms, StoreField **ret_fields, size_t *ret_n) {
        _cleanup_(freep) StoreField *a = NULL;
        size_t k = 0, cnt;
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        cnt = entry_hash_len(e);
        a = calloc(MAX(cnt, (size_t) 1), sizeof(StoreField));
        if (!a)
                return -ENOMEM;
        if (e)
                HASH_FOREACH(f, entry_hash(e)) {
                        a[k].name = f->key;
                        pval_view(&f->v, &a[k].value);
                        k++;
                }
        if (ret_fields)
                *ret_fields = TAKE_PTR(a);
        if (ret_n)
                *ret_n = k;
        return 0;
}

int store_hdel(Store *s, const char *key, const char *const *fields, size_t n, uint64_t now_ms,
               size_t *ret_count) {
        size_t c = 0;
        Entry *e = NULL;
        int r;

        if (n > 0 && !fields)
                return -EINVAL;
        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = name_check(s, fields[i], NULL);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; e && i < n; i++) {
                HField *f = field_find(e, fields[i], strlen(fields[i]));

                if (!f)
                        continue;
                field_delete(s, e->v.obj, f);
                c++;
        }
        if (c > 0) {
                StoreDelta delta = { .op = STORE_DELTA_HDEL, .n = n, .names = fields };

                notify_delta(s, key, "hdel", &delta);
                if (hash_drop_if_empty(s, e))
                        notify(s, key, "del");
        }
        if (ret_count)
                *ret_count = c;
        return 0;
}

int store_hexists(Store *s, const char *key, const char *field, uint64_t now_ms) {
        size_t fl;
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = name_check(s, field, &fl);
        if (r < 0)
                return r;
        return !!field_find(e, field, fl);
}

int store_hlen(Store *s, const char *key, uint64_t now_ms, size_t *ret_n) {
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        if (ret_n)
                *ret_n = entry_hash_len(e);
        return 0;
}

int store_hkeys(Store *s, const char *key, uint64_t now_ms, const char ***ret_fields, size_t *ret_n) {
        _cleanup_(freep) const char **a = NULL;
        size_t k = 0, cnt;
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        cnt = entry_hash_len(e);
        a = calloc(MAX(cnt, (size_t) 1), sizeof(char *));
        if (!a)
                return -ENOMEM;
        if (e)
                HASH_FOREACH(f, entry_hash(e))
                        a[k++] = f->key;
        if (ret_fields)
                *ret_fields = TAKE_PTR(a);
        if (ret_n)
                *ret_n = k;
        return 0;
}

int store_hvals(Store *s, const char *key, uint64_t now_ms, StoreValue **ret_values, size_t *ret_n) {
        _cleanup_(freep) StoreValue *a = NULL;
        size_t k = 0, cnt;
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        cnt = entry_hash_len(e);
        a = calloc(MAX(cnt, (size_t) 1), sizeof(StoreValue));
        if (!a)
                return -ENOMEM;
        if (e)
                HASH_FOREACH(f, entry_hash(e))
                        pval_view(&f->v, &a[k++]);
        if (ret_values)
                *ret_values = TAKE_PTR(a);
        if (ret_n)
                *ret_n = k;
        return 0;
}

/* After HIncr/HIncrFloat: the delta is the field's new value, when the hash existed (e). */
static void hincr_notify(Store *s, const char *key, Entry *e, const char *field, size_t fl, const char *event) {
        HField *f = e ? field_find(e, field, fl) : NULL;
        StoreValue v;

        if (!f) {
                notify(s, key, event);
                return;
        }
        pval_view(&f->v, &v);
        notify_delta(s, key, event, &(const StoreDelta) {
                .op = STORE_DELTA_HSET, .n = 1, .names = &field, .values = &v });
}

/* Common part of HIncr/HIncrFloat: the field, or room for a new one (*ret_f NULL). */
static int hincr_prepare(Store *s, const char *key, const char *field, uint64_t now_ms,
                         size_t *ret_len, size_t *ret_fl, Entry **ret_e, HField **ret_f) {
        size_t len = 0, fl = 0;
        HField *f = NULL;
        Entry *e = NULL;
        int r;

        r = hash_lookup(s, key, now_ms, &len, &e);
        if (r < 0)
                return r;
        r = name_check(s, field, &fl);
        if (r < 0)
                return r;
        f = field_find(e, field, fl);
        if (!f) {
                uint64_t extra = field_estimate(fl);

                if (entry_hash_len(e) + 1 > s->limits.max_elements)
                        return limit_fail(s, "elements");
                if (!e)
                        extra += entry_estimate(len) + mem_estimate(sizeof(Hash)) + mem_estimate(ORDER_MIN * sizeof(HField *));
                r = mem_check(s, extra);
                if (r < 0)
                        return r;
        }
        *ret_len = len;
        *ret_fl = fl;
        *ret_e = e;
        *ret_f = f;
        return 0;
}

static int hincr_create(Store *s, const char *key, size_t len, Entry *e, const char *field, size_t fl, PVal *v) {
        bool created = false;
        int r;

        if (!e) {
                r = hash_create(s, key, len, &e);
                if (r < 0)
                        return r;
                created = true;
        }
        r = field_add(s, e->v.obj, field, fl, v);
        if (r < 0 && created)
                entry_delete(s, e);
        return r;
}

int store_hincr(Store *s, const char *key, const char *field, int64_t by, uint64_t now_ms, int64_t *ret) {
        size_t len = 0, fl = 0;
        HField *f = NULL;
        Entry *e = NULL;
        int64_t v;
        int r;

        r = hincr_prepare(s, key, field, now_ms, &len, &fl, &e, &f);
        if (r < 0)
                return r;
        if (f) {
                r = num_incr(s, &f->v, by, &v);
                if (r < 0)
                        return r;
        } else {
                PVal nv = { .type = 'x', .i = by };

                r = hincr_create(s, key, len, e, field, fl, &nv);
                if (r < 0)
                        return r;
                v = by;
        }
        hincr_notify(s, key, e, field, fl, "hincrby");
        if (ret)
                *ret = v;
        return 0;
}

int store_hincrfloat(Store *s, const char *key, const char *field, double by, uint64_t now_ms, double *ret) {
        size_t len = 0, fl = 0;
        HField *f = NULL;
        Entry *e = NULL;
        double v;
        int r;

        r = hincr_prepare(s, key, field, now_ms, &len, &fl, &e, &f);
        if (r < 0)
                return r;
        if (f) {
                r = num_incrfloat(s, &f->v, by, &v);
                if (r < 0)
                        return r;
        } else {
                PVal nv = { .type = 'd', .d = by };

                if (!isfinite(by))
                        return -ERANGE;
                r = hincr_create(s, key, len, e, field, fl, &nv);
                if (r < 0)
                        return r;
                v = by;
        }
        hincr_notify(s, key, e, field, fl, "hincrbyfloat");
        if (ret)
                *ret = v;
        return 0;
}
