/* SPDX-License-Identifier: MIT */
#pragma once

/* The logic of the client-side cache (cache.c has the bus glue): the bucket function shared with
 * the hub, the bounded entry table (LRU), the read-only sequence page and the freshness rule,
 * and the placeholders of fetches in flight (docs/caching.md, CACHING-PROTOCOL.md).  No bus
 * here; tests/runtime/test-cache-table.c tests it on its own. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

/* FNV-1a 64-bit of the N bytes at S: the hub's bucket function, before masking. */
static inline uint64_t cache_fnv1a(const char *s, size_t n) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char) s[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

/* The hub's sequence page, mapped PROT_READ: BUCKETS counters. */
typedef struct CachePage {
        const uint64_t *counters;
        uint32_t buckets;               /* a power of two */
} CachePage;

typedef struct CacheEntry CacheEntry;
struct CacheEntry {
        CacheEntry *hnext;              /* chain of its slot */
        CacheEntry *lru_prev, *lru_next;
        uint64_t hash;                  /* cache_fnv1a(key): the page bucket and the slot */
        char *key;                      /* key and field share the entry's allocation */
        char *field;                    /* HGet's field, NULL for Get */
        bool found;                     /* false: a cached absence (reply NULL) */
        bool any_type;                  /* an absence from MGetTracked, which says found false for
                                         * a hash, list or set too: served to mget only */
        sd_bus_message *reply;          /* the (b v t t) reply, referenced */
        uint64_t seq;                   /* the bucket's counter when the hub read the key */
        uint64_t deadline_ns;           /* CLOCK_MONOTONIC end of the key's TTL, 0: none */
        uint64_t stored_ns;             /* CLOCK_MONOTONIC when stored (max age) */
        uint64_t mget_call;             /* the ch_cache_mget() call that last handed out reply */
        /* the value decoded once for the typed getters: vtype 's' (vstr, into reply), 'x'
         * (vint), 'T' (a uint64 above INT64_MAX), 0 (any other type) */
        char vtype;
        const char *vstr;
        int64_t vint;
};

typedef struct CacheTable {
        CacheEntry **slots;
        size_t n_slots;                 /* a power of two >= max_entries */
        size_t n_entries;
        size_t max_entries;
        CacheEntry *lru_head, *lru_tail; /* head: used last */
} CacheTable;

int cache_table_init(CacheTable *t, size_t max_entries);
/* Frees every entry and the slots. */
void cache_table_done(CacheTable *t);
CacheEntry *cache_table_lookup(const CacheTable *t, uint64_t hash, const char *key, const char *field);
/* Stores (replacing the entry of the same key and field), taking a new reference on REPLY.
 * When full, the entry used least recently goes first: returns 1 then, else 0, or -ENOMEM. */
int cache_table_put(CacheTable *t, uint64_t hash, const char *key, const char *field, bool found,
                    sd_bus_message *reply, uint64_t seq, uint64_t deadline_ns, uint64_t now_ns);
void cache_table_remove(CacheTable *t, CacheEntry *e);
/* Removes the entries of KEY (its value, and every hash field of it); returns how many.  With a
 * PAGE, only those whose counter has moved: an entry read after the change that an Invalidate
 * reports (fetched again before the signal was dispatched) is not what it is about. */
size_t cache_table_remove_key(CacheTable *t, const char *key, const CachePage *page);
/* Removes everything; returns how many. */
size_t cache_table_clear(CacheTable *t);
/* Marks E as used now (LRU order). */
void cache_table_touch(CacheTable *t, CacheEntry *e);


#define CACHE_PAGE_MAX_BUCKETS (UINT32_C(1) << 24) /* 128 MiB: more is a hostile hub */

/* Maps BUCKETS counters of FD read-only (FD may be closed afterwards).  -EINVAL for a bucket
 * count that is not a power of two in [1, CACHE_PAGE_MAX_BUCKETS], -EBADMSG for a file smaller
 * than the counters. */
int cache_page_map(CachePage *p, int fd, uint32_t buckets);
void cache_page_unmap(CachePage *p);

static inline uint64_t cache_page_load(const CachePage *p, uint64_t hash) {
        return __atomic_load_n(&p->counters[hash & (p->buckets - 1)], __ATOMIC_ACQUIRE);
}

/* The freshness rule: the bucket's counter still is the entry's, the key's TTL has not ended and
 * the entry is younger than MAX_AGE_NS (UINT64_MAX: no limit). */
static inline bool cache_entry_fresh(const CacheEntry *e, const CachePage *p, uint64_t now_ns, uint64_t max_age_ns) {
        if (cache_page_load(p, e->hash) != e->seq)
                return false;
        if (e->deadline_ns != 0 && now_ns >= e->deadline_ns)
                return false;
        return max_age_ns == UINT64_MAX || now_ns - e->stored_ns < max_age_ns;
}

/* A fetch in flight (Redis's "caching-in-progress" placeholder): its reply is stored only if no
 * invalidation of its key (or of everything) was dispatched since its request left. */
typedef struct CacheFetch CacheFetch;
struct CacheFetch {
        CacheFetch *next, *prev;
        char *key;
        bool invalidated;
};

/* Marks the fetches of KEY (NULL: all) invalidated. */
void cache_fetches_invalidate(CacheFetch *head, const char *key);
