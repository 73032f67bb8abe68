/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

typedef struct Entry {
        const char *key; /* NULL: empty; TOMBSTONE: deleted */
        void *value;
} Entry;

struct Hashmap {
        Entry *entries;
        size_t capacity; /* power of two */
        size_t size;
        size_t used;     /* size + tombstones */
};

static const char tombstone[1];
#define TOMBSTONE tombstone

static uint64_t hash_string(const char *s) {
        /* FNV-1a, 64 bit */
        uint64_t h = UINT64_C(14695981039346656037);
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= UINT64_C(1099511628211);
        }
        return h;
}

Hashmap *hashmap_new(void) {
        return calloc(1, sizeof(Hashmap));
}

Hashmap *hashmap_free(Hashmap *h) {
        if (!h)
                return NULL;
        free(h->entries);
        free(h);
        return NULL;
}

size_t hashmap_size(const Hashmap *h) {
        return h ? h->size : 0;
}

static Entry *find_slot(const Hashmap *h, const char *key, bool for_insert) {
        size_t mask = h->capacity - 1, i = hash_string(key) & mask;
        Entry *first_free = NULL;

        for (size_t n = 0; n < h->capacity; n++, i = (i + 1) & mask) {
                Entry *e = h->entries + i;
                if (!e->key)
                        return for_insert ? (first_free ? first_free : e) : NULL;
                if (e->key == TOMBSTONE) {
                        if (!first_free)
                                first_free = e;
                        continue;
                }
                if (strcmp(e->key, key) == 0)
                        return e;
        }
        return for_insert ? first_free : NULL;
}

static int resize(Hashmap *h, size_t capacity) {
        Entry *old = h->entries;
        size_t old_capacity = h->capacity;
        Entry *n = calloc(capacity, sizeof(Entry));

        if (!n)
                return -ENOMEM;
        h->entries = n;
        h->capacity = capacity;
        h->used = h->size;
        for (size_t i = 0; i < old_capacity; i++)
                if (old[i].key && old[i].key != TOMBSTONE)
                        *find_slot(h, old[i].key, true) = old[i];
        free(old);
        return 0;
}

void *hashmap_get(const Hashmap *h, const char *key) {
        if (!h || h->size == 0)
                return NULL;
        Entry *e = find_slot(h, key, false);
        return e ? e->value : NULL;
}

int hashmap_put(Hashmap *h, const char *key, void *value) {
        Entry *e;
        int r;

        if (h->capacity == 0 || (h->used + 1) * 4 > h->capacity * 3) {
                size_t c = h->capacity ? h->capacity : 8;
                while ((h->size + 1) * 2 > c)
                        c *= 2;
                r = resize(h, c);
                if (r < 0)
                        return r;
        }
        if (h->size > 0 && find_slot(h, key, false))
                return -EEXIST;
        e = find_slot(h, key, true);
        if (!e->key)
                h->used++;
        e->key = key;
        e->value = value;
        h->size++;
        return 0;
}

void *hashmap_remove(Hashmap *h, const char *key) {
        if (!h || h->size == 0)
                return NULL;
        Entry *e = find_slot(h, key, false);
        if (!e)
                return NULL;
        void *v = e->value;
        e->key = TOMBSTONE;
        e->value = NULL;
        h->size--;
        return v;
}

bool hashmap_iterate(const Hashmap *h, size_t *state, void **ret_value, const char **ret_key) {
        if (!h)
                return false;
        for (; *state < h->capacity; (*state)++) {
                Entry *e = h->entries + *state;
                if (e->key && e->key != TOMBSTONE) {
                        (*state)++;
                        if (ret_value)
                                *ret_value = e->value;
                        if (ret_key)
                                *ret_key = e->key;
                        return true;
                }
        }
        return false;
}
