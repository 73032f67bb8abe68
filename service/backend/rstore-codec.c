/* SPDX-License-Identifier: MIT */
/* Store1 values as Redis bytes, and the key names of the Redis-backed store (rstore-codec.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "rstore-codec.h"
#include "utf8.h"

#define KEY_HEAD "clusterhub:{"
#define KEY_MID "}:k:"

bool rstore_is_canonical_int(const char *s, size_t len, int64_t *ret) {
        static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
        bool neg = false;
        const char *d = s;
        size_t n = len;

        if (len == 0 || len > 20)
                return false;
        if (*d == '-') {
                neg = true;
                d++;
                n--;
        }
        if (n == 0 || n > 19)
                return false;
        if (d[0] == '0' && (n > 1 || neg))
                return false; /* "0" only: no "-0", no leading zeros */
        for (size_t i = 0; i < n; i++)
                if (d[i] < '0' || d[i] > '9')
                        return false;
        if (n == 19 && memcmp(d, neg ? min : max, 19) > 0)
                return false;
        if (ret) {
                uint64_t u = 0;
                for (size_t i = 0; i < n; i++)
                        u = u * 10 + (uint64_t) (d[i] - '0');
                *ret = neg ? (int64_t) (0 - u) : (int64_t) u;
        }
        return true;
}

static int tagged(char letter, const void *payload, size_t len, const void *extra, size_t extra_len, char **ret,
                  size_t *ret_len) {
        size_t n = 2 + len + extra_len;
        char *b = malloc(n + 1);

        if (!b)
                return -ENOMEM;
        b[0] = RSTORE_TAG;
        b[1] = letter;
        if (len)
                memcpy(b + 2, payload, len);
        if (extra_len)
                memcpy(b + 2 + len, extra, extra_len);
        b[n] = 0;
        *ret = b;
        *ret_len = n;
        return 0;
}

static int format_double(double d, char *buf, size_t size) {
        if (isnan(d))
                return snprintf(buf, size, "nan");
        if (isinf(d))
                return snprintf(buf, size, d < 0 ? "-inf" : "inf");
        return snprintf(buf, size, "%.17g", d);
}

int rstore_encode(const StoreValue *v, char **ret, size_t *ret_len) {
        char num[64];
        int n;

        switch (v->type) {
        case 'x':
                n = snprintf(num, sizeof(num), "%" PRIi64, v->i);
                *ret = strndup(num, (size_t) n);
                if (!*ret)
                        return -ENOMEM;
                *ret_len = (size_t) n;
                return 0;
        case 's':
                if ((v->str.len > 0 && v->str.ptr[0] == RSTORE_TAG) || rstore_is_canonical_int(v->str.ptr, v->str.len, NULL))
                        return tagged('s', v->str.ptr, v->str.len, NULL, 0, ret, ret_len);
                *ret = malloc(v->str.len + 1);
                if (!*ret)
                        return -ENOMEM;
                if (v->str.len)
                        memcpy(*ret, v->str.ptr, v->str.len);
                (*ret)[v->str.len] = 0;
                *ret_len = v->str.len;
                return 0;
        case 'o': case 'g':
                return tagged(v->type, v->str.ptr, v->str.len, NULL, 0, ret, ret_len);
        case 'y': case 'n': case 'i': case 'b':
                n = snprintf(num, sizeof(num), "%" PRIi64, v->i);
                return tagged(v->type, num, (size_t) n, NULL, 0, ret, ret_len);
        case 'q': case 'u': case 't':
                n = snprintf(num, sizeof(num), "%" PRIu64, v->u);
                return tagged(v->type, num, (size_t) n, NULL, 0, ret, ret_len);
        case 'd':
                n = format_double(v->d, num, sizeof(num));
                return tagged('d', num, (size_t) n, NULL, 0, ret, ret_len);
        case 'v':
                if (!v->blob.sig || !*v->blob.sig)
                        return -EINVAL;
                /* the signature with its NUL, then the bytes */
                return tagged('v', v->blob.sig, strlen(v->blob.sig) + 1, v->blob.data, v->blob.len, ret, ret_len);
        default:
                return -EINVAL;
        }
}

void rstore_value_done(RStoreValue *v) {
        v->owned = mfree(v->owned);
        v->value = (StoreValue) {};
}

/* Text without NUL, valid UTF-8: a D-Bus string. */
static bool is_text(const char *s, size_t len) {
        return !memchr(s, 0, len) && utf8_valid(s, len);
}

static int decode_text(char type, const char *s, size_t len, RStoreValue *ret) {
        char *copy;

        if (!is_text(s, len))
                return -EBADMSG;
        copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        ret->owned = copy;
        ret->value = (StoreValue) { .type = type, .str = { copy, len } };
        return 0;
}

static int parse_unsigned(const char *s, size_t len, uint64_t max, uint64_t *ret) {
        uint64_t u = 0;

        if (len == 0 || len > 20 || (s[0] == '0' && len > 1))
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                unsigned digit = (unsigned) (s[i] - '0');
                if (u > (UINT64_MAX - digit) / 10)
                        return -EBADMSG;
                u = u * 10 + digit;
        }
        if (u > max)
                return -EBADMSG;
        *ret = u;
        return 0;
}

/* The largest value of the unsigned integer type TYPE ('b': 0 or 1). */
static uint64_t unsigned_max(char type) {
        switch (type) {
        case 'b':
                return 1;
        case 'y':
                return UINT8_MAX;
        case 'q':
                return UINT16_MAX;
        case 'u':
                return UINT32_MAX;
        default:
                return UINT64_MAX;
        }
}

static int parse_signed(const char *s, size_t len, int64_t min, int64_t max, int64_t *ret) {
        int64_t i;

        if (!rstore_is_canonical_int(s, len, &i) || i < min || i > max)
                return -EBADMSG;
        *ret = i;
        return 0;
}

static int parse_double(const char *s, size_t len, double *ret) {
        char buf[64];
        char *end = NULL;

        if (len == 0 || len >= sizeof(buf))
                return -EBADMSG;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (streq(buf, "nan")) {
                *ret = NAN;
                return 0;
        }
        if (strchr(buf, 'n') || strchr(buf, 'N') || strchr(buf, 'x') || strchr(buf, 'X')) {
                /* only "inf"/"-inf" beyond plain decimals: no hex floats, no "nan(...)" */
                if (streq(buf, "inf") || streq(buf, "-inf")) {
                        *ret = buf[0] == '-' ? -INFINITY : INFINITY;
                        return 0;
                }
                return -EBADMSG;
        }
        errno = 0;
        double d = strtod(buf, &end);
        if (end != buf + len || end == buf)
                return -EBADMSG;
        *ret = d;
        return 0;
}

int rstore_decode(const char *data, size_t len, RStoreValue *ret) {
        RStoreValue v = {};
        int64_t i;
        uint64_t u;
        int r;

        if (len == 0 || data[0] != RSTORE_TAG) {
                if (rstore_is_canonical_int(data, len, &i)) {
                        *ret = (RStoreValue) { .value = { .type = 'x', .i = i } };
                        return 0;
                }
                r = decode_text('s', data, len, &v);
                if (r < 0)
                        return r;
                *ret = v;
                return 0;
        }
        if (len < 2)
                return -EBADMSG;
        const char *p = data + 2;
        size_t n = len - 2;
        char type = data[1];
        switch (type) {
        case 's': case 'o': case 'g':
                r = decode_text(type, p, n, &v);
                if (r < 0)
                        return r;
                if (type == 'o' && (n == 0 || p[0] != '/')) /* sd-bus checks the rest when it appends */
                        r = -EBADMSG;
                if (r < 0) {
                        rstore_value_done(&v);
                        return r;
                }
                break;
        case 'y': case 'b': case 'q': case 'u': case 't':
                r = parse_unsigned(p, n, unsigned_max(type), &u);
                v.value = (StoreValue) { .type = type, .u = u }; /* 'y', 'b': .i, the same bits */
                break;
        case 'n': case 'i':
                r = parse_signed(p, n, type == 'n' ? INT16_MIN : INT32_MIN, type == 'n' ? INT16_MAX : INT32_MAX, &i);
                v.value = (StoreValue) { .type = type, .i = i };
                break;
        case 'd': {
                double d = 0;
                r = parse_double(p, n, &d);
                v.value = (StoreValue) { .type = 'd', .d = d };
                break;
        }
        case 'v': {
                const char *nul = memchr(p, 0, n);
                size_t sig_len;

                if (!nul)
                        return -EBADMSG;
                sig_len = (size_t) (nul - p);
                /* a single complete type; sd-bus checks it when the value is appended */
                if (sig_len == 0 || sig_len > 255 || !is_text(p, sig_len))
                        return -EBADMSG;
                v.value = (StoreValue) { .type = 'v', .blob = { p, nul + 1, n - sig_len - 1 } };
                r = 0;
                break;
        }
        default:
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int rstore_key(const char *ns, const char *key, char **ret) {
        char *s;

        if (asprintf(&s, KEY_HEAD "%s" KEY_MID "%s", ns, key) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int rstore_key_prefix(const char *ns, char **ret) {
        return rstore_key(ns, "", ret);
}

static bool ns_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int rstore_key_parse(const char *redis_key, size_t len, const char **ret_ns, size_t *ret_ns_len, const char **ret_key) {
        const size_t head = strlen(KEY_HEAD), mid = strlen(KEY_MID);
        size_t n = 0;

        if (len < head || memcmp(redis_key, KEY_HEAD, head) != 0)
                return -EINVAL;
        while (head + n < len && ns_char(redis_key[head + n]))
                n++;
        if (n == 0 || len - head - n < mid || memcmp(redis_key + head + n, KEY_MID, mid) != 0)
                return -EINVAL;
        *ret_ns = redis_key + head;
        *ret_ns_len = n;
        *ret_key = redis_key + head + n + mid;
        return 0;
}

int rstore_match_pattern(const char *ns, const char *glob, char **ret) {
        _cleanup_(freep) char *prefix = NULL;
        size_t glob_len = glob ? strlen(glob) : 0, n = 0;
        char *s;
        int r;

        r = rstore_key_prefix(ns, &prefix);
        if (r < 0)
                return r;
        if (glob_len == 0) {
                glob = "*";
                glob_len = 1;
        }
        s = malloc(2 * strlen(prefix) + glob_len + 2);
        if (!s)
                return -ENOMEM;
        for (const char *p = prefix; *p; p++) {
                if (strchr("*?[]\\^-", *p))
                        s[n++] = '\\';
                s[n++] = *p;
        }
        memcpy(s + n, glob, glob_len);
        n += glob_len;
        /* an odd number of trailing backslashes would escape nothing: make it a literal one */
        size_t bs = 0;
        while (bs < glob_len && glob[glob_len - 1 - bs] == '\\')
                bs++;
        if (bs % 2 == 1)
                s[n++] = '\\';
        s[n] = 0;
        *ret = s;
        return 0;
}

int rstore_notify_flags_merge(const char *current, char **ret) {
        const char *want = RSTORE_NOTIFY_FLAGS;
        size_t len = current ? strlen(current) : 0;
        bool all = current && strchr(current, 'A');
        char *s = malloc(len + strlen(want) + 1);
        bool changed = false;
        size_t n = len;

        if (!s)
                return -ENOMEM;
        if (len)
                memcpy(s, current, len);
        for (const char *w = want; *w; w++) {
                bool covered = memchr(s, *w, n) || (all && *w != 'K' && *w != 'E');
                if (!covered) {
                        s[n++] = *w;
                        changed = true;
                }
        }
        s[n] = 0;
        *ret = s;
        return changed;
}

bool rstore_event_name_is_valid(const char *event, size_t len) {
        if (len == 0 || len > 32)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((event[i] >= 'a' && event[i] <= 'z') || (event[i] >= '0' && event[i] <= '9') || event[i] == '_'))
                        return false;
        return true;
}
