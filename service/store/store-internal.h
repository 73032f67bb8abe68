/* SPDX-License-Identifier: MIT */
#pragma once

/* Internal types of the store; not part of the API (see store.h). */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "macro.h"
#include "store.h"
#include "utf8.h"

/* Internal kinds beside the D-Bus type codes of plain values. */
#define KIND_HASH 'H'
#define KIND_LIST 'L'
#define KIND_SET  'S'

#define PVAL_INLINE_MAX 7 /* strings up to 7 bytes (+NUL) live inside the PVal */

/* A stored value: 16 bytes.  Strings live in buf when short (inl), else in p (len bytes +
 * NUL).  Blobs: p = "sig\0" followed by len bytes of data.  Collections: obj. */
typedef struct PVal {
        char type;
        uint8_t inl;
        uint16_t _pad;
        uint32_t len;
        union {
                int64_t i;
                uint64_t u;
                double d;
                char *p;
                void *obj;
                char buf[8];
        };
} PVal;

/* ---- memory.c ---- */
void *mem_alloc(Store *s, size_t n);
void *mem_alloc0(Store *s, size_t n);
void *mem_realloc(Store *s, void *p, size_t n);
void mem_free(Store *s, void *p);
size_t mem_estimate(size_t n);
int mem_check(Store *s, uint64_t extra);
int limit_fail(Store *s, const char *name);
/* limit_fail(s, "value-size") for a value of WANTED bytes. */
int limit_fail_value(Store *s, uint64_t wanted);
/* Accounted size of one allocation (0 for NULL). */
size_t mem_usable(const void *p);
/* Moving data of N accounted bytes from one store to another (Move): the check against TO's
 * limits, and the transfer of the charge once the data belongs to TO. */
int mem_check_move(Store *to, const Store *from, uint64_t n);
void mem_transfer(Store *from, Store *to, uint64_t n);

/* ---- dict.c: chained hash table, power-of-two buckets, amortized full rehash ---- */
typedef struct DictNode {
        struct DictNode *next;
        uint32_t hash;
        uint32_t key_len;
} DictNode;

typedef struct Dict {
        DictNode **buckets;
        size_t size;   /* 0 or a power of two */
        size_t count;
        size_t key_off; /* offset of the NUL-terminated key from the node */
} Dict;

#define DICT_KEY(d, n) ((char *) (n) + (d)->key_off)

uint32_t dict_hash(const char *key, size_t len);
void dict_init(Dict *d, size_t key_off);
DictNode *dict_find(const Dict *d, const char *key, size_t len, uint32_t hash);
int dict_insert(Store *s, Dict *d, DictNode *n);
void dict_unlink(Store *s, Dict *d, DictNode *n);
/* Replace node old (already in d) by new (same key) in place. */
void dict_replace(Dict *d, DictNode *old, DictNode *n);
DictNode *dict_random(const Dict *d, uint64_t (*rnd)(void *), void *userdata);
void dict_free_buckets(Store *s, Dict *d);
uint64_t dict_scan(const Dict *d, uint64_t cursor, void (*fn)(DictNode *n, void *userdata), void *userdata);
#define DICT_FOREACH(n, d, i)                                            \
        for (size_t i = 0; i < (d)->size; i++)                           \
                for (DictNode *n = (d)->buckets[i], *n##_next = n ? n->next : NULL; n; \
                     n = n##_next, n##_next = n ? n->next : NULL)

/* ---- keyspace.c ---- */
typedef struct Entry {
        DictNode node;
        PVal v;
        uint32_t heap_idx; /* UINT32_MAX: no TTL */
        char key[];
} Entry;

typedef struct HeapItem {
        uint64_t deadline;
        Entry *e;
} HeapItem;

struct StoreWaiter {
        Store *store;
        StoreWaiter *prev, *next;
        void *token;
        bool left;
        size_t n_keys;
        char **keys;
};

struct Store {
        Dict keys;
        HeapItem *heap;
        size_t heap_n, heap_cap;

        StoreLimits limits;
        StoreAccount *account;
        uint64_t used;
        const char *last_limit;
        uint64_t last_limit_wanted;

        StoreNotify notify;
        StoreServed served;
        void *userdata;

        uint64_t rng;

        StoreWaiter *waiters_head, *waiters_tail;
        size_t n_waiters;
        bool ready, serving;

        /* Keys walks in progress: while there are any, the key table does not shrink */
        LIST_HEAD(StoreKeys) key_walks;

        /* journal.c: the write hook (called before notify) and the loading mode */
        StoreJournal journal;
        void *journal_userdata;
        bool loading;
};

static inline bool dict_shrink_paused(const Store *s, const Dict *d) {
        return d == &s->keys && s->key_walks.first;
}
/* Shrink D to fit its count, as dict_unlink() would have (once a pause ends). */
void dict_shrink(Store *s, Dict *d);
/* Make sure D has at least N buckets (at least one: the next dict_insert() cannot fail, and
 * N - count inserts do not grow it). */
int dict_reserve(Store *s, Dict *d, size_t n);

#define NO_HEAP UINT32_MAX

int key_check(Store *s, const char *key, size_t *ret_len);
int name_check(Store *s, const char *name, size_t *ret_len);
Entry *entry_find(Store *s, const char *key, size_t len, uint64_t now_ms);
/* Checks KEY and looks it up: *ret_e NULL when absent; -EMEDIUMTYPE when it holds another KIND
 * (KIND_HASH, KIND_LIST, KIND_SET). */
int entry_lookup_kind(Store *s, const char *key, char kind, uint64_t now_ms, size_t *ret_len, Entry **ret_e);
int entry_add(Store *s, const char *key, size_t len, PVal *v, Entry **ret);
void entry_delete(Store *s, Entry *e);
size_t entry_estimate(size_t key_len);
void notify(Store *s, const char *key, const char *event);
/* notify() with what changed, for the journal (NULL: the resulting state). */
void notify_delta(Store *s, const char *key, const char *event, const StoreDelta *delta);
uint64_t store_random(Store *s);
/* Redis glob match in O(plen * slen) (glob.c).  The _steps variant adds the work it did
 * (pattern bytes examined) to *steps, so callers can bound a slice of work. */
bool glob_match(const char *p, size_t plen, const char *str, size_t slen);
bool glob_match_steps(const char *p, size_t plen, const char *str, size_t slen, size_t *steps);

/* ---- expire.c ---- */
void expire_set(Store *s, Entry *e, uint64_t deadline);
void expire_clear(Store *s, Entry *e);
uint64_t entry_deadline(const Store *s, const Entry *e);
int expire_reserve(Store *s);
void expire_free(Store *s);

/* ---- value.c ---- */
int value_check(Store *s, const StoreValue *v);
size_t value_estimate(const StoreValue *v);
int pval_from(Store *s, PVal *ret, const StoreValue *v);
int pval_from_str(Store *s, PVal *ret, char type, const char *str, size_t len);
void pval_clear(Store *s, PVal *v);
void pval_view(const PVal *p, StoreValue *ret);
int pval_to_owned(const PVal *p, StoreValue *ret);
const char *pval_str(const PVal *p);
bool pval_equal(const PVal *p, const StoreValue *v);
bool pval_is_plain(const PVal *p);
/* Accounted bytes of everything p owns (not p itself). */
size_t pval_memory(const PVal *p);
void collection_free(Store *s, PVal *v);
size_t collection_size(const PVal *v);
int num_incr(Store *s, PVal *v, int64_t by, int64_t *ret);
int num_incrfloat(Store *s, PVal *v, double by, double *ret);
int parse_ll_strict(const char *p, size_t len, int64_t *ret);

/* ---- t_hash.c / t_list.c / t_set.c ---- */
typedef struct HField {
        DictNode node;
        PVal v;
        char key[];
} HField;

/* A hash.  Small (at most HASH_SMALL_MAX fields): order holds the fields in insertion order,
 * found by a scan of their hashes, and dict only keeps the count (no buckets), like Redis's
 * listpack encoding.  Past that it converts once to big: dict holds the fields, order is
 * NULL, and the order is the table's, like Redis's hashtable encoding. */
#define HASH_SMALL_MAX 128
typedef struct Hash {
        Dict dict;
        HField **order;
} Hash;

typedef struct SMember {
        DictNode node;
        char key[];
} SMember;

typedef struct List {
        PVal *a;
        size_t cap, head, len;
} List;

static inline bool hash_small(const Hash *h) {
        return h->order != NULL;
}

/* Fields one by one: insertion order while small.  No changes to h while iterating. */
typedef struct HashIter {
        const Hash *h;
        size_t i;
        DictNode *n;
} HashIter;

static inline HField *hash_next(HashIter *it) {
        const Hash *h = it->h;

        if (hash_small(h))
                return it->i < h->dict.count ? h->order[it->i++] : NULL;
        if (it->n && it->n->next) {
                it->n = it->n->next;
                return container_of(it->n, HField, node);
        }
        while (it->i < h->dict.size) {
                it->n = h->dict.buckets[it->i++];
                if (it->n)
                        return container_of(it->n, HField, node);
        }
        return NULL;
}

/* Declares HField *f for the loop body. */
#define HASH_FOREACH(f, hash)                                                   \
        for (HashIter _it_##f = { .h = (hash) }; _it_##f.h; _it_##f.h = NULL)   \
                for (HField *f; ((f) = hash_next(&_it_##f)); )

void hash_free(Store *s, Hash *h);
size_t hash_len(const Hash *h);
void set_free(Store *s, Dict *d);
void list_free(Store *s, List *l);
size_t hash_memory(const Hash *h);
size_t set_memory(const Dict *d);
size_t list_memory(const List *l);
PVal list_pop(Store *s, List *l, bool left);
size_t list_len(const List *l);

/* ---- blocking.c ---- */
void blocking_signal(Store *s);
void blocking_serve(Store *s, uint64_t now_ms);
void blocking_free(Store *s);
