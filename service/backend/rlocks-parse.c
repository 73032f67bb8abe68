/* SPDX-License-Identifier: MIT */
/* Reading what the lock scripts leave in Redis and answer (rlocks-parse.h): plain logic. */
#include <errno.h>
#include <string.h>

#include "rlocks-parse.h"

int rlocks_parse_token(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || len == 0 || len > 19)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (v == 0 || v > INT64_MAX)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int rlocks_parse_u64(const char *s, size_t len, bool hex, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > (hex ? 16u : 19u))
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                unsigned d;
                if (s[i] >= '0' && s[i] <= '9')
                        d = (unsigned) (s[i] - '0');
                else if (hex && s[i] >= 'a' && s[i] <= 'f')
                        d = (unsigned) (s[i] - 'a' + 10);
                else
                        return -EBADMSG;
                v = v * (hex ? 16 : 10) + d;
        }
        *ret = v;
        return 0;
}

int rlocks_parse_record(const char *s, size_t len, RLockRecord *ret) {
        const char *f[6];
        size_t l[6], n = 0;
        const char *p = s, *end = s + len;
        RLockRecord rec = {};

        if (!s || len > 1024 || memchr(s, 0, len))
                return -EBADMSG;
        while (n < 5) {
                const char *tab = memchr(p, '\t', (size_t) (end - p));
                if (!tab)
                        return -EBADMSG;
                f[n] = p;
                l[n++] = (size_t) (tab - p);
                p = tab + 1;
        }
        f[5] = p;
        l[5] = (size_t) (end - p);
        if (rlocks_parse_u64(f[0], l[0], true, &rec.instance) < 0 || l[1] > RLOCKS_NODE_MAX ||
            rlocks_parse_u64(f[2], l[2], false, &rec.wid) < 0 || l[3] != 1 || (f[3][0] != 'S' && f[3][0] != 'X') ||
            rlocks_parse_u64(f[4], l[4], false, &rec.deadline_ms) < 0 || l[5] > RLOCKS_HOLDER_MAX || memchr(f[5], '\t', l[5]))
                return -EBADMSG;
        memcpy(rec.node, f[1], l[1]);
        rec.shared = f[3][0] == 'S';
        memcpy(rec.holder, f[5], l[5]);
        *ret = rec;
        return 0;
}

