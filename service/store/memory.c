/* SPDX-License-Identifier: MIT */

/* Memory accounting, in one place.  Every allocation the store makes for its data goes
 * through here and is charged with malloc_usable_size(), so the accounted figure is what
 * the allocator really handed out (minus its per-chunk header) and goes back to exactly
 * where it was when the data is freed.  Limits are checked before a write with
 * mem_estimate(), a model of glibc's chunk sizes. */

#include <malloc.h>
#include <stdlib.h>

#include "store-internal.h"

static void charge(Store *s, void *p) {
        size_t n = malloc_usable_size(p);

        s->used += n;
        if (s->account)
                s->account->used += n;
}

static void uncharge(Store *s, void *p) {
        size_t n = malloc_usable_size(p);

        s->used -= n;
        if (s->account)
                s->account->used -= n;
}

void *mem_alloc(Store *s, size_t n) {
        void *p = malloc(n);

        if (p)
                charge(s, p);
        return p;
}

void *mem_alloc0(Store *s, size_t n) {
        void *p = calloc(1, n);

        if (p)
                charge(s, p);
        return p;
}

void *mem_realloc(Store *s, void *p, size_t n) {
        size_t old = p ? malloc_usable_size(p) : 0;
        void *q = realloc(p, n);

        if (!q)
                return NULL;
        s->used -= old;
        if (s->account)
                s->account->used -= old;
        charge(s, q);
        return q;
}

void mem_free(Store *s, void *p) {
        if (!p)
                return;
        uncharge(s, p);
        free(p);
}

size_t mem_estimate(size_t n) {
        /* glibc: chunk = request + 8 rounded up to 16, at least 32; usable = chunk - 8 */
        size_t c = (n + 8 + 15) & ~(size_t) 15;

        return MAX(c, (size_t) 32) - 8;
}

int limit_fail(Store *s, const char *name) {
        s->last_limit = name;
        s->last_limit_wanted = 0;
        return -ENOBUFS;
}

int limit_fail_value(Store *s, uint64_t wanted) {
        limit_fail(s, "value-size");
        s->last_limit_wanted = wanted;
        return -ENOBUFS;
}

int mem_check(Store *s, uint64_t extra) {
        if (extra == 0)
                return 0;
        if (s->used + extra > s->limits.max_memory)
                return limit_fail(s, "memory");
        if (s->account && s->account->limit > 0 && s->account->used + extra > s->account->limit)
                return limit_fail(s, "hub-memory");
        return 0;
}

size_t mem_usable(const void *p) {
        return p ? malloc_usable_size((void *) p) : 0;
}

/* Would N accounted bytes, leaving FROM, fit into TO?  The hub-wide account only counts
 * when the two stores have different ones. */
int mem_check_move(Store *to, const Store *from, uint64_t n) {
        if (to->used + n > to->limits.max_memory)
                return limit_fail(to, "memory");
        if (to->account && to->account != from->account && to->account->limit > 0 &&
            to->account->used + n > to->account->limit)
                return limit_fail(to, "hub-memory");
        return 0;
}

void mem_transfer(Store *from, Store *to, uint64_t n) {
        from->used -= n;
        to->used += n;
        if (from->account != to->account) {
                if (from->account)
                        from->account->used -= n;
                if (to->account)
                        to->account->used += n;
        }
}
