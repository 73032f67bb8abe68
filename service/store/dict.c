/* SPDX-License-Identifier: MIT */

/* A compact chained hash table: nodes are embedded at the head of the caller's
 * allocations (key bytes inline after a fixed header), buckets are a power of two.  It
 * grows at load 1 and shrinks below load 1/8, rehashing in one go (amortized O(1)); nodes
 * never move, so views into them survive a resize.  Scan uses Redis's reverse-binary
 * cursor, which stays correct across resizes between calls: growing never makes it visit
 * a key twice, shrinking can, so the key table does not shrink while a Keys walk runs. */

#include "store-internal.h"

#define DICT_MIN_SIZE 4

uint32_t dict_hash(const char *key, size_t len) {
        /* FNV-1a, 64 bit, with a murmur3 finalizer */
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t) key[i];
                h *= UINT64_C(0x100000001b3);
        }
        h ^= h >> 33;
        h *= UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 33;
        h *= UINT64_C(0xc4ceb9fe1a85ec53);
        h ^= h >> 33;
        return (uint32_t) h;
}

void dict_init(Dict *d, size_t key_off) {
        *d = (Dict) { .key_off = key_off };
}

DictNode *dict_find(const Dict *d, const char *key, size_t len, uint32_t hash) {
        if (d->size == 0)
                return NULL;
        for (DictNode *n = d->buckets[hash & (d->size - 1)]; n; n = n->next)
                if (n->hash == hash && n->key_len == len && memcmp(DICT_KEY(d, n), key, len) == 0)
                        return n;
        return NULL;
}

static void dict_resize(Store *s, Dict *d, size_t size) {
        DictNode **b;

        if (size == d->size)
                return;
        if (size == 0) {
                mem_free(s, d->buckets);
                d->buckets = NULL;
                d->size = 0;
                return;
        }
        b = mem_alloc0(s, size * sizeof(DictNode *));
        if (!b)
                return; /* keep the old table; a higher load is still correct */
        for (size_t i = 0; i < d->size; i++) {
                DictNode *n = d->buckets[i];

                while (n) {
                        DictNode *next = n->next;
                        size_t j = n->hash & (size - 1);

                        n->next = b[j];
                        b[j] = n;
                        n = next;
                }
        }
        mem_free(s, d->buckets);
        d->buckets = b;
        d->size = size;
}

int dict_insert(Store *s, Dict *d, DictNode *n) {
        size_t j;

        if (d->size == 0)
                dict_resize(s, d, DICT_MIN_SIZE);
        else if (d->count >= d->size)
                dict_resize(s, d, d->size * 2);
        if (d->size == 0)
                return -ENOMEM;
        j = n->hash & (d->size - 1);
        n->next = d->buckets[j];
        d->buckets[j] = n;
        d->count++;
        return 0;
}

int dict_reserve(Store *s, Dict *d, size_t n) {
        size_t size = DICT_MIN_SIZE;

        while (size < n)
                size *= 2;
        if (size > d->size)
                dict_resize(s, d, size);
        return d->size >= MAX(n, (size_t) 1) ? 0 : -ENOMEM;
}

void dict_unlink(Store *s, Dict *d, DictNode *n) {
        DictNode **p = &d->buckets[n->hash & (d->size - 1)];

        while (*p != n)
                p = &(*p)->next;
        *p = n->next;
        n->next = NULL;
        d->count--;
        if (!dict_shrink_paused(s, d))
                dict_shrink(s, d);
}

void dict_shrink(Store *s, Dict *d) {
        if (d->count == 0)
                dict_resize(s, d, 0);
        else if (d->size > DICT_MIN_SIZE && d->count < d->size / 8) {
                size_t size = DICT_MIN_SIZE;

                while (size < d->count * 2)
                        size *= 2;
                dict_resize(s, d, size);
        }
}

void dict_replace(Dict *d, DictNode *old, DictNode *n) {
        DictNode **p = &d->buckets[old->hash & (d->size - 1)];

        while (*p != old)
                p = &(*p)->next;
        n->next = old->next;
        *p = n;
}

DictNode *dict_random(const Dict *d, uint64_t (*rnd)(void *), void *userdata) {
        DictNode *n;
        size_t len = 0, k;

        if (d->count == 0)
                return NULL;
        /* load is >= 1/8, so this takes a few tries on average */
        do
                n = d->buckets[rnd(userdata) & (d->size - 1)];
        while (!n);
        for (DictNode *i = n; i; i = i->next)
                len++;
        k = rnd(userdata) % len;
        while (k-- > 0)
                n = n->next;
        return n;
}

void dict_free_buckets(Store *s, Dict *d) {
        mem_free(s, d->buckets);
        d->buckets = NULL;
        d->size = d->count = 0;
}

static uint64_t rev(uint64_t v) {
        uint64_t r = 0;

        for (int i = 0; i < 64; i++) {
                r = (r << 1) | (v & 1);
                v >>= 1;
        }
        return r;
}

uint64_t dict_scan(const Dict *d, uint64_t cursor, void (*fn)(DictNode *n, void *userdata), void *userdata) {
        uint64_t mask;

        if (d->size == 0)
                return 0;
        mask = d->size - 1;
        for (DictNode *n = d->buckets[cursor & mask]; n; n = n->next)
                fn(n, userdata);
        /* increment the reversed cursor, Redis's dictScan() */
        cursor |= ~mask;
        cursor = rev(cursor);
        cursor++;
        return rev(cursor);
}
