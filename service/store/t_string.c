/* SPDX-License-Identifier: MIT */

/* Plain values: Get, Set, SetGet, GetDel, MGet, MSet, MSetNX, Incr, IncrFloat, Append, StrLen,
 * GetRange, SetRange. */

#include <math.h>
#include <stdlib.h>

#include "store-internal.h"

static size_t pval_heap_estimate(const PVal *v) {
        if ((v->type == 's' || v->type == 'o' || v->type == 'g') && !v->inl)
                return mem_estimate(v->len + 1);
        if (v->type == 'v')
                return mem_estimate(strlen(v->p) + 1 + v->len);
        return 0;
}

/* Memory a write of value at key (existing entry e or none) would add. */
static uint64_t set_estimate(const Entry *e, size_t key_len, const StoreValue *v) {
        uint64_t add = value_estimate(v) + (e ? 0 : entry_estimate(key_len));
        uint64_t old = e ? pval_heap_estimate(&e->v) : 0;

        return add > old ? add - old : 0;
}

/* The write itself; checks are done.  Fails only with -ENOMEM, leaving the store alone. */
static int set_one(Store *s, const char *key, size_t len, Entry *e, const StoreValue *value,
                   uint64_t deadline, bool keep_ttl) {
        PVal nv;
        int r;

        if (deadline != UINT64_MAX) {
                r = expire_reserve(s);
                if (r < 0)
                        return r;
        }
        r = pval_from(s, &nv, value);
        if (r < 0)
                return r;
        if (e) {
                pval_clear(s, &e->v);
                e->v = nv;
        } else {
                r = entry_add(s, key, len, &nv, &e);
                if (r < 0) {
                        pval_clear(s, &nv);
                        return r;
                }
        }
        if (deadline != UINT64_MAX)
                expire_set(s, e, deadline);
        else if (!keep_ttl)
                expire_clear(s, e);
        return 0;
}

int store_get(Store *s, const char *key, uint64_t now_ms, StoreValue *ret) {
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (!e)
                return -ENOKEY;
        if (!pval_is_plain(&e->v))
                return -EMEDIUMTYPE;
        if (ret)
                pval_view(&e->v, ret);
        return 0;
}

/* Set, and with ret_old (SetGet) the previous value: -EMEDIUMTYPE when it is a hash, list or
 * set, type '\0' when there was none. */
static int set_impl(Store *s, const char *key, const StoreValue *value, uint64_t ttl_ms,
                    unsigned flags, uint64_t now_ms, StoreValue *ret_old) {
        StoreValue old = {};
        uint64_t deadline = UINT64_MAX;
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        r = value_check(s, value);
        if (r < 0)
                return r;
        if ((flags & STORE_SET_NX) && (flags & STORE_SET_XX))
                return -EINVAL;
        if (ttl_ms > 0) {
                if ((flags & STORE_SET_KEEP_TTL) || now_ms + ttl_ms < now_ms || now_ms + ttl_ms == UINT64_MAX)
                        return -EINVAL;
                deadline = now_ms + ttl_ms;
        }
        e = entry_find(s, key, len, now_ms);
        if (ret_old && e && !pval_is_plain(&e->v))
                return -EMEDIUMTYPE;
        if (((flags & STORE_SET_NX) && e) || ((flags & STORE_SET_XX) && !e))
                r = 0;
        else {
                r = mem_check(s, set_estimate(e, len, value));
                if (r < 0)
                        return r;
                r = 1;
        }
        if (ret_old && e) {
                /* copied before the write replaces it; -ENOMEM leaves the store alone */
                int k = pval_to_owned(&e->v, &old);
                if (k < 0)
                        return k;
        }
        if (r > 0) {
                int k = set_one(s, key, len, e, value, deadline, flags & STORE_SET_KEEP_TTL);
                if (k < 0) {
                        store_value_clear(&old);
                        return k;
                }
                notify(s, key, "set");
                if (deadline != UINT64_MAX)
                        notify(s, key, "expire");
        }
        if (ret_old)
                *ret_old = old;
        return r;
}

int store_set(Store *s, const char *key, const StoreValue *value, uint64_t ttl_ms,
              unsigned flags, uint64_t now_ms) {
        return set_impl(s, key, value, ttl_ms, flags, now_ms, NULL);
}

int store_setget(Store *s, const char *key, const StoreValue *value, uint64_t ttl_ms,
                 unsigned flags, uint64_t now_ms, StoreValue *ret_old) {
        StoreValue old = {};
        int r;

        r = set_impl(s, key, value, ttl_ms, flags, now_ms, &old);
        if (r < 0)
                return r;
        if (ret_old)
                *ret_old = old;
        else
                store_value_clear(&old);
        return r;
}

int store_getdel(Store *s, const char *key, uint64_t now_ms, StoreValue *ret) {
        StoreValue v;
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (!e)
                return -ENOKEY;
        if (!pval_is_plain(&e->v))
                return -EMEDIUMTYPE;
        r = pval_to_owned(&e->v, &v);
        if (r < 0)
                return r;
        entry_delete(s, e);
        notify(s, key, "del");
        if (ret)
                *ret = v;
        else
                store_value_clear(&v);
        return 0;
}

int store_mget(Store *s, const char *const *keys, size_t n, uint64_t now_ms, StoreValue **ret_values) {
        _cleanup_(freep) StoreValue *a = NULL;
        int r;

        if (n > 0 && !keys)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                r = key_check(s, keys[i], NULL);
                if (r < 0)
                        return r;
        }
        a = calloc(MAX(n, (size_t) 1), sizeof(StoreValue));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                Entry *e = entry_find(s, keys[i], strlen(keys[i]), now_ms);

                if (e && pval_is_plain(&e->v))
                        pval_view(&e->v, &a[i]);
        }
        if (ret_values)
                *ret_values = TAKE_PTR(a);
        return 0;
}

static int mset_check(Store *s, const char *const *keys, const StoreValue *values, size_t n,
                      uint64_t now_ms, bool *ret_any_exists) {
        uint64_t extra = 0;
        bool any = false;
        int r;

        if (n > 0 && (!keys || !values))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                r = key_check(s, keys[i], NULL);
                if (r < 0)
                        return r;
                r = value_check(s, &values[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(keys[i]);
                Entry *e = entry_find(s, keys[i], len, now_ms);

                if (e)
                        any = true;
                /* upper bound: duplicates counted twice */
                extra += value_estimate(&values[i]) + (e ? 0 : entry_estimate(len));
        }
        r = mem_check(s, extra);
        if (r < 0)
                return r;
        *ret_any_exists = any;
        return 0;
}

static int mset_apply(Store *s, const char *const *keys, const StoreValue *values, size_t n, uint64_t now_ms) {
        int r;

        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(keys[i]);

                r = set_one(s, keys[i], len, entry_find(s, keys[i], len, now_ms), &values[i], UINT64_MAX, false);
                if (r < 0)
                        return r; /* -ENOMEM only: earlier keys stay set */
                notify(s, keys[i], "set");
        }
        return 0;
}

int store_mset(Store *s, const char *const *keys, const StoreValue *values, size_t n, uint64_t now_ms) {
        bool any;
        int r;

        r = mset_check(s, keys, values, n, now_ms, &any);
        if (r < 0)
                return r;
        return mset_apply(s, keys, values, n, now_ms);
}

int store_msetnx(Store *s, const char *const *keys, const StoreValue *values, size_t n, uint64_t now_ms) {
        bool any;
        int r;

        r = mset_check(s, keys, values, n, now_ms, &any);
        if (r < 0)
                return r;
        if (any)
                return 0;
        r = mset_apply(s, keys, values, n, now_ms);
        return r < 0 ? r : 1;
}

/* Find or prepare a plain value for a numeric command.  *ret_e NULL: absent. */
static int numeric_entry(Store *s, const char *key, uint64_t now_ms, size_t *ret_len, Entry **ret_e) {
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (e && !pval_is_plain(&e->v))
                return -EMEDIUMTYPE;
        if (!e) {
                r = mem_check(s, entry_estimate(len));
                if (r < 0)
                        return r;
        }
        *ret_len = len;
        *ret_e = e;
        return 0;
}

int store_incr(Store *s, const char *key, int64_t by, uint64_t now_ms, int64_t *ret) {
        size_t len = 0;
        Entry *e;
        int64_t v;
        int r;

        r = numeric_entry(s, key, now_ms, &len, &e);
        if (r < 0)
                return r;
        if (e) {
                r = num_incr(s, &e->v, by, &v);
                if (r < 0)
                        return r;
        } else {
                PVal nv = { .type = 'x', .i = by };

                r = entry_add(s, key, len, &nv, NULL);
                if (r < 0)
                        return r;
                v = by;
        }
        notify(s, key, "incrby");
        if (ret)
                *ret = v;
        return 0;
}

int store_incrfloat(Store *s, const char *key, double by, uint64_t now_ms, double *ret) {
        size_t len = 0;
        Entry *e;
        double v;
        int r;

        r = numeric_entry(s, key, now_ms, &len, &e);
        if (r < 0)
                return r;
        if (e) {
                r = num_incrfloat(s, &e->v, by, &v);
                if (r < 0)
                        return r;
        } else {
                PVal nv = { .type = 'd', .d = by };

                if (!isfinite(by))
                        return -ERANGE;
                r = entry_add(s, key, len, &nv, NULL);
                if (r < 0)
                        return r;
                v = by;
        }
        notify(s, key, "incrbyfloat");
        if (ret)
                *ret = v;
        return 0;
}

/* Replace the bytes of string value v by buf/len (same type). */
static int pval_replace_str(Store *s, PVal *v, const char *buf, size_t len) {
        PVal nv;
        int r;

        r = pval_from_str(s, &nv, v->type, buf, len);
        if (r < 0)
                return r;
        pval_clear(s, v);
        *v = nv;
        return 0;
}

/* Lookup for Append / SetRange: an 's' value or none. */
static int text_entry(Store *s, const char *key, const char *str, size_t len, uint64_t now_ms,
                      size_t *ret_key_len, Entry **ret_e) {
        size_t klen;
        Entry *e;
        int r;

        r = key_check(s, key, &klen);
        if (r < 0)
                return r;
        if ((len > 0 && !str) || !utf8_valid(str, len))
                return -EINVAL;
        e = entry_find(s, key, klen, now_ms);
        if (e && e->v.type != 's')
                return -EMEDIUMTYPE;
        *ret_key_len = klen;
        *ret_e = e;
        return 0;
}

/* Create key as an 's' holding str. */
static int text_create(Store *s, const char *key, size_t klen, const char *str, size_t len) {
        StoreValue v = { .type = 's', .str = { str, len } };
        int r;

        r = value_check(s, &v);
        if (r < 0)
                return r;
        r = mem_check(s, set_estimate(NULL, klen, &v));
        if (r < 0)
                return r;
        return set_one(s, key, klen, NULL, &v, UINT64_MAX, false);
}

int store_append(Store *s, const char *key, const char *str, size_t len, uint64_t now_ms, size_t *ret_len) {
        _cleanup_(freep) char *buf = NULL;
        size_t klen, n;
        Entry *e;
        int r;

        r = text_entry(s, key, str, len, now_ms, &klen, &e);
        if (r < 0)
                return r;
        if (!e) {
                r = text_create(s, key, klen, str, len);
                if (r < 0)
                        return r;
                n = len;
        } else {
                n = e->v.len + len;
                if (n > s->limits.max_value_size || n > UINT32_MAX - 1)
                        return limit_fail_value(s, n);
                if (n > PVAL_INLINE_MAX) {
                        r = mem_check(s, mem_estimate(n + 1) - (e->v.inl ? 0 : mem_estimate(e->v.len + 1)));
                        if (r < 0)
                                return r;
                }
                buf = malloc(n + 1);
                if (!buf)
                        return -ENOMEM;
                memcpy(buf, pval_str(&e->v), e->v.len);
                if (len > 0)
                        memcpy(buf + e->v.len, str, len);
                r = pval_replace_str(s, &e->v, buf, n);
                if (r < 0)
                        return r;
        }
        notify(s, key, "append");
        if (ret_len)
                *ret_len = n;
        return 0;
}

int store_strlen(Store *s, const char *key, uint64_t now_ms, size_t *ret_len) {
        size_t len, n = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (e) {
                if (e->v.type != 's' && e->v.type != 'o' && e->v.type != 'g')
                        return -EMEDIUMTYPE;
                n = e->v.len;
        }
        if (ret_len)
                *ret_len = n;
        return 0;
}

int store_getrange(Store *s, const char *key, int64_t start, int64_t end, uint64_t now_ms,
                   char **ret, size_t *ret_len) {
        const char *p = "";
        size_t len, n = 0;
        char *out;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (e) {
                int64_t sl;

                if (e->v.type != 's' && e->v.type != 'o' && e->v.type != 'g')
                        return -EMEDIUMTYPE;
                sl = e->v.len;
                if (start < 0)
                        start = sl + start;
                if (end < 0)
                        end = sl + end;
                if (start < 0)
                        start = 0;
                if (end < 0)
                        end = 0;
                if (end >= sl)
                        end = sl - 1;
                if (sl > 0 && start <= end) {
                        p = pval_str(&e->v) + start;
                        n = (size_t) (end - start + 1);
                        if (!utf8_valid(p, n))
                                return -EINVAL;
                }
        }
        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, p, n);
        out[n] = 0;
        if (ret)
                *ret = out;
        else
                free(out);
        if (ret_len)
                *ret_len = n;
        return 0;
}

int store_setrange(Store *s, const char *key, uint64_t offset, const char *str, size_t len,
                   uint64_t now_ms, size_t *ret_len) {
        _cleanup_(freep) char *buf = NULL;
        size_t klen, old, n;
        Entry *e;
        int r;

        r = text_entry(s, key, str, len, now_ms, &klen, &e);
        if (r < 0)
                return r;
        old = e ? e->v.len : 0;
        if (len == 0) {
                /* nothing to write: Redis returns the length and changes nothing */
                if (ret_len)
                        *ret_len = old;
                return 0;
        }
        if (offset > s->limits.max_value_size || offset + len > s->limits.max_value_size ||
            offset + len > UINT32_MAX - 1)
                return limit_fail_value(s, offset > UINT64_MAX - len ? UINT64_MAX : offset + len);
        n = MAX(old, (size_t) offset + len);
        buf = malloc(n + 1);
        if (!buf)
                return -ENOMEM;
        if (old > 0)
                memcpy(buf, pval_str(&e->v), old);
        if (offset > old)
                memset(buf + old, ' ', offset - old);
        memcpy(buf + offset, str, len);
        buf[n] = 0;
        if (!utf8_valid(buf, n))
                return -EINVAL;
        if (!e)
                r = text_create(s, key, klen, buf, n);
        else {
                if (n > PVAL_INLINE_MAX) {
                        r = mem_check(s, mem_estimate(n + 1) - MIN(mem_estimate(n + 1), e->v.inl ? 0 : mem_estimate(old + 1)));
                        if (r < 0)
                                return r;
                }
                r = pval_replace_str(s, &e->v, buf, n);
        }
        if (r < 0)
                return r;
        notify(s, key, "setrange");
        if (ret_len)
                *ret_len = n;
        return 0;
}
