/* SPDX-License-Identifier: MIT */

/* Values: checking what the glue hands in, the compact stored form (PVal), views and
 * owned copies handed out, equality, and the numeric commands' arithmetic. */

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "store-internal.h"
#include "utf8.h"

static bool is_str_type(char t) {
        return t == 's' || t == 'o' || t == 'g';
}

static bool is_unsigned_type(char t) {
        return t == 'y' || t == 'q' || t == 'u' || t == 't';
}

static bool is_signed_type(char t) {
        return t == 'n' || t == 'i' || t == 'x';
}

static void int_range(char t, int64_t *min, uint64_t *max) {
        switch (t) {
        case 'y': *min = 0; *max = UINT8_MAX; break;
        case 'n': *min = INT16_MIN; *max = INT16_MAX; break;
        case 'q': *min = 0; *max = UINT16_MAX; break;
        case 'i': *min = INT32_MIN; *max = INT32_MAX; break;
        case 'u': *min = 0; *max = UINT32_MAX; break;
        case 'x': *min = INT64_MIN; *max = INT64_MAX; break;
        default:  *min = 0; *max = UINT64_MAX; break;
        }
}

size_t store_value_bytes(const StoreValue *v) {
        if (is_str_type(v->type))
                return v->str.len;
        if (v->type == 'v')
                return v->blob.len + (v->blob.sig ? strlen(v->blob.sig) : 0);
        return 0;
}

int value_check(Store *s, const StoreValue *v) {
        int64_t min;
        uint64_t max;

        if (!v)
                return -EINVAL;
        if (is_str_type(v->type)) {
                if (v->str.len > 0 && !v->str.ptr)
                        return -EINVAL;
                if (v->str.len > s->limits.max_value_size || v->str.len > UINT32_MAX - 1)
                        return limit_fail_value(s, v->str.len);
                if (!utf8_valid(v->str.ptr, v->str.len))
                        return -EINVAL;
                return 0;
        }
        if (is_signed_type(v->type)) {
                int_range(v->type, &min, &max);
                return v->i >= min && v->i <= (int64_t) max ? 0 : -EINVAL;
        }
        if (is_unsigned_type(v->type)) {
                int_range(v->type, &min, &max);
                return v->u <= max ? 0 : -EINVAL;
        }
        switch (v->type) {
        case 'b':
                return v->i == 0 || v->i == 1 ? 0 : -EINVAL;
        case 'd':
                return 0;
        case 'v':
                if (!v->blob.sig || v->blob.sig[0] == 0 || (v->blob.len > 0 && !v->blob.data))
                        return -EINVAL;
                if (store_value_bytes(v) > s->limits.max_value_size || v->blob.len > UINT32_MAX - 1)
                        return limit_fail_value(s, store_value_bytes(v));
                return 0;
        default:
                return -EINVAL;
        }
}

size_t value_estimate(const StoreValue *v) {
        if (is_str_type(v->type))
                return v->str.len > PVAL_INLINE_MAX ? mem_estimate(v->str.len + 1) : 0;
        if (v->type == 'v')
                return mem_estimate(strlen(v->blob.sig) + 1 + v->blob.len);
        return 0;
}

int pval_from_str(Store *s, PVal *ret, char type, const char *str, size_t len) {
        PVal v = { .type = type, .len = (uint32_t) len };

        if (len <= PVAL_INLINE_MAX) {
                v.inl = 1;
                if (len > 0)
                        memcpy(v.buf, str, len);
                v.buf[len] = 0;
        } else {
                v.p = mem_alloc(s, len + 1);
                if (!v.p)
                        return -ENOMEM;
                memcpy(v.p, str, len);
                v.p[len] = 0;
        }
        *ret = v;
        return 0;
}

/* value must have passed value_check() */
int pval_from(Store *s, PVal *ret, const StoreValue *value) {
        PVal v = { .type = value->type };

        if (is_str_type(value->type))
                return pval_from_str(s, ret, value->type, value->str.ptr, value->str.len);
        if (value->type == 'v') {
                size_t sl = strlen(value->blob.sig);

                v.p = mem_alloc(s, sl + 1 + value->blob.len);
                if (!v.p)
                        return -ENOMEM;
                memcpy(v.p, value->blob.sig, sl + 1);
                if (value->blob.len > 0)
                        memcpy(v.p + sl + 1, value->blob.data, value->blob.len);
                v.len = (uint32_t) value->blob.len;
        } else if (value->type == 'd')
                v.d = value->d;
        else
                v.i = value->i; /* same bits for u */
        *ret = v;
        return 0;
}

void collection_free(Store *s, PVal *v) {
        switch (v->type) {
        case KIND_HASH:
                hash_free(s, v->obj);
                break;
        case KIND_SET:
                set_free(s, v->obj);
                break;
        case KIND_LIST:
                list_free(s, v->obj);
                break;
        }
}

size_t collection_size(const PVal *v) {
        switch (v->type) {
        case KIND_HASH:
                return hash_len(v->obj);
        case KIND_SET:
                return ((const Dict *) v->obj)->count;
        case KIND_LIST:
                return list_len(v->obj);
        default:
                return 1;
        }
}

size_t pval_memory(const PVal *p) {
        if (is_str_type(p->type))
                return p->inl ? 0 : mem_usable(p->p);
        switch (p->type) {
        case 'v':
                return mem_usable(p->p);
        case KIND_HASH:
                return hash_memory(p->obj);
        case KIND_SET:
                return set_memory(p->obj);
        case KIND_LIST:
                return list_memory(p->obj);
        default:
                return 0;
        }
}

void pval_clear(Store *s, PVal *v) {
        if (is_str_type(v->type)) {
                if (!v->inl)
                        mem_free(s, v->p);
        } else if (v->type == 'v')
                mem_free(s, v->p);
        else
                collection_free(s, v);
        *v = (PVal) {};
}

const char *pval_str(const PVal *p) {
        return p->inl ? p->buf : p->p;
}

bool pval_is_plain(const PVal *p) {
        return p->type != KIND_HASH && p->type != KIND_LIST && p->type != KIND_SET;
}

void pval_view(const PVal *p, StoreValue *ret) {
        StoreValue v = { .type = p->type };

        if (is_str_type(p->type)) {
                v.str.ptr = pval_str(p);
                v.str.len = p->len;
        } else if (p->type == 'v') {
                v.blob.sig = p->p;
                v.blob.data = p->p + strlen(p->p) + 1;
                v.blob.len = p->len;
        } else if (p->type == 'd')
                v.d = p->d;
        else
                v.i = p->i;
        *ret = v;
}

int pval_to_owned(const PVal *p, StoreValue *ret) {
        StoreValue v;

        pval_view(p, &v);
        return store_value_copy(ret, &v);
}

bool pval_equal(const PVal *p, const StoreValue *v) {
        StoreValue a;

        pval_view(p, &a);
        return store_value_equal(&a, v);
}

/* ---- public helpers ---- */

void store_value_clear(StoreValue *v) {
        if (!v)
                return;
        if (is_str_type(v->type))
                free((char *) v->str.ptr);
        else if (v->type == 'v')
                free((char *) v->blob.sig);
        *v = (StoreValue) {};
}

void store_values_free(StoreValue *v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                store_value_clear(&v[i]);
        free(v);
}

void store_strv_free(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

int store_value_copy(StoreValue *ret, const StoreValue *src) {
        StoreValue v = *src;

        if (is_str_type(src->type)) {
                char *p;

                if (src->str.len > 0 && !src->str.ptr)
                        return -EINVAL;
                p = malloc(src->str.len + 1);
                if (!p)
                        return -ENOMEM;
                if (src->str.len > 0)
                        memcpy(p, src->str.ptr, src->str.len);
                p[src->str.len] = 0;
                v.str.ptr = p;
        } else if (src->type == 'v') {
                size_t sl;
                char *p;

                if (!src->blob.sig)
                        return -EINVAL;
                sl = strlen(src->blob.sig);
                p = malloc(sl + 1 + src->blob.len);
                if (!p)
                        return -ENOMEM;
                memcpy(p, src->blob.sig, sl + 1);
                if (src->blob.len > 0)
                        memcpy(p + sl + 1, src->blob.data, src->blob.len);
                v.blob.sig = p;
                v.blob.data = p + sl + 1;
        } else if (!strchr("ynqiuxtbd", src->type) || src->type == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

bool store_value_equal(const StoreValue *a, const StoreValue *b) {
        if (a->type != b->type)
                return false;
        if (is_str_type(a->type))
                return a->str.len == b->str.len &&
                        (a->str.len == 0 || memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0);
        if (a->type == 'v')
                return streq(a->blob.sig, b->blob.sig) && a->blob.len == b->blob.len &&
                        (a->blob.len == 0 || memcmp(a->blob.data, b->blob.data, a->blob.len) == 0);
        if (a->type == 'd')
                return memcmp(&a->d, &b->d, sizeof(double)) == 0;
        if (a->type == 0)
                return true;
        return a->i == b->i;
}

/* ---- numbers ---- */

/* Redis's string2ll(): no spaces, no '+', no leading zeros, fits int64. */
int parse_ll_strict(const char *p, size_t len, int64_t *ret) {
        bool neg = false;
        uint64_t v = 0;
        size_t i = 0;

        if (len == 0 || len > 20)
                return -EDOM;
        if (len == 1 && p[0] == '0') {
                *ret = 0;
                return 0;
        }
        if (p[0] == '-') {
                neg = true;
                i = 1;
                if (len == 1)
                        return -EDOM;
        }
        if (p[i] < '1' || p[i] > '9')
                return -EDOM;
        for (; i < len; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -EDOM;
                if (v > (UINT64_MAX - 9) / 10)
                        return -EDOM;
                v = v * 10 + (uint64_t) (p[i] - '0');
        }
        if (neg) {
                if (v > (uint64_t) INT64_MAX + 1)
                        return -EDOM;
                *ret = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v;
        } else {
                if (v > INT64_MAX)
                        return -EDOM;
                *ret = (int64_t) v;
        }
        return 0;
}

/* Redis's string2ld(): the whole string, no spaces, not NaN. */
static int parse_ld_strict(const char *p, size_t len, long double *ret) {
        char buf[5120];
        char *end;
        long double v;

        if (len == 0 || len >= sizeof(buf))
                return -EDOM;
        memcpy(buf, p, len);
        buf[len] = 0;
        if (buf[0] == ' ' || buf[0] == '\t' || buf[0] == '\n' || buf[0] == '\r' || buf[0] == '\f' ||
            buf[0] == '\v')
                return -EDOM;
        errno = 0;
        v = strtold(buf, &end);
        if (*end != 0 || isnan(v) || (errno == ERANGE && isinf(v)))
                return -EDOM;
        *ret = v;
        return 0;
}

/* The long double a user meant by d: the shortest decimal that round-trips to d, read as a
 * long double (Redis parses INCRBYFLOAT's argument text as a long double; we get a
 * double from D-Bus, so 0.1 must become 0.1L, not 0.1000000000000000055L). */
static long double double_to_ld(double d) {
        char buf[64];

        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, sizeof buf, "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                        break;
        }
        return strtold(buf, NULL);
}

static int format_ld(long double v, char *buf, size_t size) {
        int n;

        /* Redis ld2string(LD_STR_HUMAN): %.17Lf, trailing zeros and dot removed */
        n = snprintf(buf, size, "%.17Lf", v);
        if (n < 0 || (size_t) n >= size)
                return -ERANGE;
        if (strchr(buf, '.')) {
                char *p = buf + n - 1;

                while (*p == '0') {
                        p--;
                        n--;
                }
                if (*p == '.')
                        n--;
                buf[n] = 0;
        }
        if (streq(buf, "-0")) {
                strcpy(buf, "0");
                n = 1;
        }
        return n;
}

static int int_add(char type, const PVal *v, int64_t by, PVal *ret, int64_t *ret_i) {
        int64_t min;
        uint64_t max;
        PVal r = *v;

        int_range(type, &min, &max);
        if (is_signed_type(type)) {
                int64_t x;

                if (__builtin_add_overflow(v->i, by, &x) || x < min || x > (int64_t) max)
                        return -ERANGE;
                r.i = x;
                *ret_i = x;
        } else {
                uint64_t x;

                if (by < 0) {
                        uint64_t m = by == INT64_MIN ? (uint64_t) INT64_MAX + 1 : (uint64_t) -by;

                        if (m > v->u)
                                return -ERANGE;
                        x = v->u - m;
                } else if (__builtin_add_overflow(v->u, (uint64_t) by, &x))
                        return -ERANGE;
                if (x > max || x > INT64_MAX)
                        return -ERANGE;
                r.u = x;
                *ret_i = (int64_t) x;
        }
        *ret = r;
        return 0;
}

int num_incr(Store *s, PVal *v, int64_t by, int64_t *ret) {
        PVal n;
        int64_t r;
        int k;

        if (is_signed_type(v->type) || is_unsigned_type(v->type)) {
                k = int_add(v->type, v, by, &n, &r);
                if (k < 0)
                        return k;
                *v = n;
        } else if (v->type == 's') {
                int64_t cur;
                char buf[32];

                if (parse_ll_strict(pval_str(v), v->len, &cur) < 0)
                        return -EDOM;
                if (__builtin_add_overflow(cur, by, &r))
                        return -ERANGE;
                k = snprintf(buf, sizeof buf, "%" PRIi64, r);
                k = pval_from_str(s, &n, 's', buf, (size_t) k);
                if (k < 0)
                        return k;
                pval_clear(s, v);
                *v = n;
        } else if (v->type == 'd' || v->type == 'b' || v->type == 'o' || v->type == 'g')
                return -EDOM;
        else
                return -EMEDIUMTYPE;
        if (ret)
                *ret = r;
        return 0;
}

int num_incrfloat(Store *s, PVal *v, double by, double *ret) {
        double r;

        if (v->type == 'd') {
                r = v->d + by;
                if (!isfinite(r))
                        return -ERANGE;
                v->d = r;
        } else if (v->type == 's') {
                long double cur, x;
                char buf[5200];
                PVal n;
                int k;

                if (parse_ld_strict(pval_str(v), v->len, &cur) < 0)
                        return -EDOM;
                x = cur + double_to_ld(by);
                /* the reply is a double: a result it cannot hold is Overflow too */
                if (!isfinite(x) || !isfinite((double) x))
                        return -ERANGE;
                k = format_ld(x, buf, sizeof buf);
                if (k < 0)
                        return k;
                k = pval_from_str(s, &n, 's', buf, (size_t) k);
                if (k < 0)
                        return k;
                pval_clear(s, v);
                *v = n;
                r = (double) x;
        } else if (is_signed_type(v->type) || is_unsigned_type(v->type)) {
                long double cur = is_signed_type(v->type) ? (long double) v->i : (long double) v->u;
                long double x = cur + by;
                int64_t min;
                uint64_t max;

                if (!isfinite(x))
                        return -ERANGE;
                if (x != floorl(x))
                        return -EDOM;
                int_range(v->type, &min, &max);
                if (x < (long double) min || x > (long double) max)
                        return -ERANGE;
                if (is_signed_type(v->type))
                        v->i = (int64_t) x;
                else
                        v->u = (uint64_t) x;
                r = (double) x;
        } else if (v->type == 'b' || v->type == 'o' || v->type == 'g')
                return -EDOM;
        else
                return -EMEDIUMTYPE;
        if (ret)
                *ret = r;
        return 0;
}
