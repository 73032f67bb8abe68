/* SPDX-License-Identifier: MIT */
/* The client-side cache's table, page and placeholders (cache-table.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "cache-table.h"

static size_t slot_of(const CacheTable *t, uint64_t hash) {
        /* the page uses the low bits; mixing in the high ones spreads keys of one bucket */
        return (size_t) ((hash ^ (hash >> 32)) & (t->n_slots - 1));
}

int cache_table_init(CacheTable *t, size_t max_entries) {
        size_t n = 16;

        if (max_entries == 0 || max_entries > (SIZE_MAX >> 4))
                return -EINVAL;
        while (n < max_entries)
                n <<= 1;
        *t = (CacheTable) {
                .slots = calloc(n, sizeof(CacheEntry *)),
                .n_slots = n,
                .max_entries = max_entries,
        };
        return t->slots ? 0 : -ENOMEM;
}

static void entry_free(CacheEntry *e) {
        sd_bus_message_unref(e->reply);
        free(e);
}

static void lru_unlink(CacheTable *t, CacheEntry *e) {
        if (e->lru_prev)
                e->lru_prev->lru_next = e->lru_next;
        else
                t->lru_head = e->lru_next;
        if (e->lru_next)
                e->lru_next->lru_prev = e->lru_prev;
        else
                t->lru_tail = e->lru_prev;
        e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(CacheTable *t, CacheEntry *e) {
        e->lru_prev = NULL;
        e->lru_next = t->lru_head;
        if (t->lru_head)
                t->lru_head->lru_prev = e;
        t->lru_head = e;
        if (!t->lru_tail)
                t->lru_tail = e;
}

void cache_table_touch(CacheTable *t, CacheEntry *e) {
        if (t->lru_head == e)
                return;
        lru_unlink(t, e);
        lru_push_front(t, e);
}

CacheEntry *cache_table_lookup(const CacheTable *t, uint64_t hash, const char *key, const char *field) {
        for (CacheEntry *e = t->slots[slot_of(t, hash)]; e; e = e->hnext)
                if (e->hash == hash && strcmp(e->key, key) == 0 &&
                    (field ? e->field && strcmp(e->field, field) == 0 : !e->field))
                        return e;
        return NULL;
}

void cache_table_remove(CacheTable *t, CacheEntry *e) {
        CacheEntry **p = &t->slots[slot_of(t, e->hash)];

        while (*p && *p != e)
                p = &(*p)->hnext;
        if (*p)
                *p = e->hnext;
        lru_unlink(t, e);
        t->n_entries--;
        entry_free(e);
}

int cache_table_put(CacheTable *t, uint64_t hash, const char *key, const char *field, bool found,
                    sd_bus_message *reply, uint64_t seq, uint64_t deadline_ns, uint64_t now_ns) {
        size_t nk = strlen(key) + 1, nf = field ? strlen(field) + 1 : 0;
        CacheEntry *e, *old;
        int evicted = 0;

        e = malloc(sizeof(CacheEntry) + nk + nf);
        if (!e)
                return -ENOMEM;
        *e = (CacheEntry) {
                .hash = hash,
                .key = (char *) (e + 1),
                .field = field ? (char *) (e + 1) + nk : NULL,
                .found = found,
                .reply = found ? sd_bus_message_ref(reply) : NULL,
                .seq = seq,
                .deadline_ns = deadline_ns,
                .stored_ns = now_ns,
        };
        memcpy(e->key, key, nk);
        if (field)
                memcpy(e->field, field, nf);

        old = cache_table_lookup(t, hash, key, field);
        if (old)
                cache_table_remove(t, old);
        else if (t->n_entries >= t->max_entries) {
                cache_table_remove(t, t->lru_tail);
                evicted = 1;
        }
        size_t s = slot_of(t, hash);
        e->hnext = t->slots[s];
        t->slots[s] = e;
        lru_push_front(t, e);
        t->n_entries++;
        return evicted;
}

size_t cache_table_remove_key(CacheTable *t, const char *key, const CachePage *page) {
        uint64_t hash = cache_fnv1a(key, strlen(key));
        CacheEntry **p = &t->slots[slot_of(t, hash)];
        size_t n = 0;

        while (*p) {
                CacheEntry *e = *p;
                if (e->hash == hash && strcmp(e->key, key) == 0 && (!page || cache_page_load(page, hash) != e->seq)) {
                        *p = e->hnext;
                        lru_unlink(t, e);
                        t->n_entries--;
                        entry_free(e);
                        n++;
                } else
                        p = &e->hnext;
        }
        return n;
}

size_t cache_table_clear(CacheTable *t) {
        size_t n = t->n_entries;

        while (t->lru_head)
                cache_table_remove(t, t->lru_head);
        return n;
}

void cache_table_done(CacheTable *t) {
        if (!t->slots)
                return;
        (void) cache_table_clear(t);
        free(t->slots);
        *t = (CacheTable) {};
}

int cache_page_map(CachePage *p, int fd, uint32_t buckets) {
        struct stat st;
        size_t size;
        void *m;

        if (buckets == 0 || buckets > CACHE_PAGE_MAX_BUCKETS || (buckets & (buckets - 1)) != 0)
                return -EINVAL;
        size = (size_t) buckets * sizeof(uint64_t);
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t) st.st_size < size)
                return -EBADMSG;
        m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        p->counters = m;
        p->buckets = buckets;
        return 0;
}

void cache_page_unmap(CachePage *p) {
        if (p->counters)
                (void) munmap((void *) p->counters, (size_t) p->buckets * sizeof(uint64_t));
        p->counters = NULL;
        p->buckets = 0;
}

void cache_fetches_invalidate(CacheFetch *head, const char *key) {
        for (CacheFetch *f = head; f; f = f->next)
                if (!key || strcmp(f->key, key) == 0)
                        f->invalidated = true;
}
