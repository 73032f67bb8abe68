/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A small open-addressing map from NUL-terminated string keys to pointers, for the hub's
 * own tables (namespaces, peers, workers).  Keys are borrowed: they must live as long as
 * their entry (callers use a string inside the value).  The store has its own compact
 * keyspace. */
typedef struct Hashmap Hashmap;

Hashmap *hashmap_new(void);
Hashmap *hashmap_free(Hashmap *h);
size_t hashmap_size(const Hashmap *h);
void *hashmap_get(const Hashmap *h, const char *key);
/* 0 on success, -EEXIST when present, -ENOMEM. */
int hashmap_put(Hashmap *h, const char *key, void *value);
/* Returns the removed value or NULL. */
void *hashmap_remove(Hashmap *h, const char *key);
/* Iterate: start with *state = 0; returns false at the end. Removing the current entry
 * while iterating is allowed; adding is not. */
bool hashmap_iterate(const Hashmap *h, size_t *state, void **ret_value, const char **ret_key);

static inline void hashmap_freep(Hashmap **h) {
        if (*h)
                hashmap_free(*h);
}
