/* SPDX-License-Identifier: MIT */

/* The keyspace: the Store object, key lookup with lazy expiry, and the key commands
 * (Del, Exists, Keys, Scan, Type, Rename, Move, Expire, Persist, TTL, Flush, DBSize,
 * RandomKey). */

#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

void store_limits_default(StoreLimits *ret) {
        *ret = (StoreLimits) {
                .max_key_len = STORE_DEFAULT_MAX_KEY_LEN,
                .max_value_size = STORE_DEFAULT_MAX_VALUE_SIZE,
                .max_elements = STORE_DEFAULT_MAX_ELEMENTS,
                .max_memory = STORE_DEFAULT_MAX_MEMORY,
        };
}

int store_new(Store **ret, const StoreLimits *limits, StoreAccount *hub_account,
              StoreNotify notify_cb, StoreServed served, void *userdata) {
        Store *s;

        if (!ret)
                return -EINVAL;
        s = calloc(1, sizeof(Store));
        if (!s)
                return -ENOMEM;
        if (limits)
                s->limits = *limits;
        else
                store_limits_default(&s->limits);
        dict_init(&s->keys, offsetof(Entry, key));
        s->account = hub_account;
        s->notify = notify_cb;
        s->served = served;
        s->userdata = userdata;
        s->rng = UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t) (uintptr_t) s;
        *ret = s;
        return 0;
}

static void entries_free(Store *s) {
        DICT_FOREACH(n, &s->keys, i) {
                Entry *e = container_of(n, Entry, node);

                e->heap_idx = NO_HEAP;
                pval_clear(s, &e->v);
                mem_free(s, e);
        }
        dict_free_buckets(s, &s->keys);
        expire_free(s);
}

static void walks_end(Store *s);

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        walks_end(s);
        blocking_free(s);
        entries_free(s);
        free(s);
        return NULL;
}

const char *store_last_limit(const Store *s) {
        return s->last_limit;
}

uint64_t store_last_limit_wanted(const Store *s) {
        return s->last_limit_wanted;
}

uint64_t store_memory(const Store *s) {
        return s->used;
}

void store_set_seed(Store *s, uint64_t seed) {
        s->rng = seed ? seed : 1;
}

uint64_t store_random(Store *s) {
        /* xorshift64* */
        uint64_t x = s->rng;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s->rng = x;
        return x * UINT64_C(0x2545f4914f6cdd1d);
}

void notify_delta(Store *s, const char *key, const char *event, const StoreDelta *delta) {
        if (s->loading)
                return;
        /* the journal first: whatever the notification reveals is on record before it */
        if (s->journal)
                s->journal(s->journal_userdata, key, event, delta);
        if (s->notify)
                s->notify(s->userdata, key, event);
}

void notify(Store *s, const char *key, const char *event) {
        notify_delta(s, key, event, NULL);
}

int name_check(Store *s, const char *name, size_t *ret_len) {
        size_t len = 0;

        if (!name)
                return -EINVAL;
        len = strnlen(name, s->limits.max_key_len + 1);
        if (len > s->limits.max_key_len)
                return limit_fail(s, "key-length");
        if (!utf8_valid(name, len))
                return -EINVAL;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int key_check(Store *s, const char *key, size_t *ret_len) {
        if (!key || key[0] == 0)
                return -EINVAL;
        return name_check(s, key, ret_len);
}

static int keys_check(Store *s, const char *const *keys, size_t n) {
        int r;

        if (n > 0 && !keys)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                r = key_check(s, keys[i], NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

size_t entry_estimate(size_t key_len) {
        return mem_estimate(offsetof(Entry, key) + key_len + 1);
}

static bool entry_expired(const Store *s, const Entry *e, uint64_t now_ms) {
        return e->heap_idx != NO_HEAP && entry_deadline(s, e) <= now_ms;
}

void entry_delete(Store *s, Entry *e) {
        expire_clear(s, e);
        dict_unlink(s, &s->keys, &e->node);
        pval_clear(s, &e->v);
        mem_free(s, e);
}

static void entry_expire_now(Store *s, Entry *e) {
        notify(s, e->key, "expired");
        entry_delete(s, e);
}

Entry *entry_find(Store *s, const char *key, size_t len, uint64_t now_ms) {
        DictNode *n = dict_find(&s->keys, key, len, dict_hash(key, len));
        Entry *e;

        if (!n)
                return NULL;
        e = container_of(n, Entry, node);
        if (entry_expired(s, e, now_ms)) {
                entry_expire_now(s, e);
                return NULL;
        }
        return e;
}

/* Takes over *v on success (and resets it); leaves it alone on failure. */
int entry_add(Store *s, const char *key, size_t len, PVal *v, Entry **ret) {
        Entry *e;
        int r;

        e = mem_alloc(s, offsetof(Entry, key) + len + 1);
        if (!e)
                return -ENOMEM;
        /* not a compound literal: the allocation may be shorter than sizeof(Entry) */
        e->node = (DictNode) { .hash = dict_hash(key, len), .key_len = (uint32_t) len };
        e->v = *v;
        e->heap_idx = NO_HEAP;
        memcpy(e->key, key, len);
        e->key[len] = 0;
        r = dict_insert(s, &s->keys, &e->node);
        if (r < 0) {
                mem_free(s, e);
                return r;
        }
        *v = (PVal) {};
        if (ret)
                *ret = e;
        return 0;
}

/* ---- commands ---- */

int store_del(Store *s, const char *const *keys, size_t n, uint64_t now_ms, size_t *ret_count) {
        size_t c = 0;
        int r;

        r = keys_check(s, keys, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                Entry *e = entry_find(s, keys[i], strlen(keys[i]), now_ms);

                if (!e)
                        continue;
                entry_delete(s, e);
                notify(s, keys[i], "del");
                c++;
        }
        if (ret_count)
                *ret_count = c;
        return 0;
}

int store_exists(Store *s, const char *const *keys, size_t n, uint64_t now_ms, size_t *ret_count) {
        size_t c = 0;
        int r;

        r = keys_check(s, keys, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (entry_find(s, keys[i], strlen(keys[i]), now_ms))
                        c++;
        if (ret_count)
                *ret_count = c;
        return 0;
}

typedef struct KeyCollect {
        const Store *s;
        const char *glob;
        size_t glob_len;
        uint64_t now_ms;
        const char **keys;
        size_t n, cap;
        size_t work;
        bool oom;
} KeyCollect;

static void collect_key(DictNode *n, void *userdata) {
        KeyCollect *c = userdata;
        Entry *e = container_of(n, Entry, node);

        c->work += 4;
        if (c->oom || entry_expired(c->s, e, c->now_ms))
                return;
        if (c->glob && !glob_match_steps(c->glob, c->glob_len, e->key, e->node.key_len, &c->work))
                return;
        if (c->n >= c->cap) {
                size_t cap = MAX(c->cap * 2, (size_t) 16);
                const char **k = realloc(c->keys, cap * sizeof(char *));

                if (!k) {
                        c->oom = true;
                        return;
                }
                c->keys = k;
                c->cap = cap;
        }
        c->keys[c->n++] = e->key;
}

static int collect_init(Store *s, KeyCollect *c, const char *glob, uint64_t now_ms) {
        *c = (KeyCollect) { .s = s, .now_ms = now_ms };
        if (glob && !(glob[0] == '*' && glob[1] == 0) && glob[0] != 0) {
                c->glob = glob;
                c->glob_len = strlen(glob);
        }
        /* always hand out an array, even an empty one */
        c->keys = malloc(16 * sizeof(char *));
        if (!c->keys)
                return -ENOMEM;
        c->cap = 16;
        return 0;
}

int store_keys(Store *s, const char *glob, uint64_t now_ms, const char ***ret_keys, size_t *ret_n) {
        KeyCollect c;
        int r;

        if (!glob)
                return -EINVAL;
        r = collect_init(s, &c, glob, now_ms);
        if (r < 0)
                return r;
        if (glob[0] == 0)
                c.glob = glob; /* "" matches nothing */
        DICT_FOREACH(n, &s->keys, i)
                collect_key(n, &c);
        if (c.oom) {
                free(c.keys);
                return -ENOMEM;
        }
        if (ret_keys)
                *ret_keys = c.keys;
        else
                free(c.keys);
        if (ret_n)
                *ret_n = c.n;
        return 0;
}

int store_scan(Store *s, uint64_t cursor, const char *glob, size_t count, uint64_t now_ms,
               uint64_t *ret_cursor, const char ***ret_keys, size_t *ret_n) {
        KeyCollect c;
        size_t visits;
        int r;

        r = collect_init(s, &c, glob, now_ms);
        if (r < 0)
                return r;
        if (count == 0)
                count = 10;
        /* like Redis, visit at most 10*count buckets per call, so sparse matches return */
        visits = count > SIZE_MAX / 10 ? SIZE_MAX : count * 10;
        do {
                c.work++;
                cursor = dict_scan(&s->keys, cursor, collect_key, &c);
        } while (cursor != 0 && c.n < count && --visits > 0 && c.work < STORE_SLICE_WORK && !c.oom);
        if (c.oom) {
                free(c.keys);
                return -ENOMEM;
        }
        if (ret_cursor)
                *ret_cursor = cursor;
        if (ret_keys)
                *ret_keys = c.keys;
        else
                free(c.keys);
        if (ret_n)
                *ret_n = c.n;
        return 0;
}

/* --- Keys in slices ---------------------------------------------------------------- */

struct StoreKeys {
        Store *s;               /* NULL once the walk ended */
        LIST_FIELDS(StoreKeys, walks);
        char *glob;             /* NULL: every key */
        size_t glob_len;
        bool none;              /* "" matches nothing */
        uint64_t cursor;
        size_t max_keys, n;
        /* during a step */
        uint64_t now_ms;
        size_t work;
        StoreKeyFound found;
        void *userdata;
        int error;
};

int store_keys_begin(Store *s, const char *glob, size_t max_keys, StoreKeys **ret) {
        StoreKeys *k;

        if (!s || !glob || !ret)
                return -EINVAL;
        k = calloc(1, sizeof(StoreKeys));
        if (!k)
                return -ENOMEM;
        k->none = glob[0] == 0;
        if (!k->none && !(glob[0] == '*' && glob[1] == 0)) {
                k->glob = strdup(glob);
                if (!k->glob) {
                        free(k);
                        return -ENOMEM;
                }
                k->glob_len = strlen(glob);
        }
        k->s = s;
        k->max_keys = max_keys;
        LIST_APPEND(walks, s->key_walks, k);
        *ret = k;
        return 0;
}

static void walk_key(DictNode *n, void *userdata) {
        StoreKeys *k = userdata;
        Entry *e = container_of(n, Entry, node);

        k->work += 4;
        if (k->error < 0 || entry_expired(k->s, e, k->now_ms))
                return;
        if (k->glob && !glob_match_steps(k->glob, k->glob_len, e->key, e->node.key_len, &k->work))
                return;
        if (k->max_keys > 0 && k->n >= k->max_keys) {
                k->error = limit_fail(k->s, "reply-items");
                return;
        }
        k->n++;
        /* what the caller does with it (a reply to build) costs too */
        k->work += 4 + e->node.key_len / 16;
        k->error = k->found(k->userdata, e->key, e->node.key_len);
}

static void walk_end(StoreKeys *k) {
        Store *s = k->s;

        if (!s)
                return;
        LIST_REMOVE(walks, s->key_walks, k);
        k->s = NULL;
        /* the last walk out lets the table shrink to what it holds now */
        if (!s->key_walks.first)
                dict_shrink(s, &s->keys);
}

int store_keys_step(StoreKeys *k, uint64_t now_ms, size_t work, StoreKeyFound found, void *userdata) {
        if (!k || !found)
                return -EINVAL;
        if (!k->s || k->none) {
                walk_end(k);
                return 1;
        }
        k->now_ms = now_ms;
        k->work = 0;
        k->found = found;
        k->userdata = userdata;
        k->error = 0;
        do {
                k->work++;
                k->cursor = dict_scan(&k->s->keys, k->cursor, walk_key, k);
        } while (k->cursor != 0 && k->work < work && k->error >= 0);
        if (k->error < 0) {
                walk_end(k);
                return k->error;
        }
        if (k->cursor == 0) {
                walk_end(k);
                return 1;
        }
        return 0;
}

StoreKeys *store_keys_free(StoreKeys *k) {
        if (!k)
                return NULL;
        walk_end(k);
        free(k->glob);
        free(k);
        return NULL;
}

/* Flush and store_free(): the table goes, and with it every walk's place in it. */
static void walks_end(Store *s) {
        while (s->key_walks.first)
                walk_end(s->key_walks.first);
}

static const char *type_name(char t) {
        switch (t) {
        case 's': case 'o': case 'g':
                return "string";
        case 'y': case 'n': case 'q': case 'i': case 'u': case 'x': case 't':
                return "int";
        case 'd':
                return "double";
        case 'b':
                return "bool";
        case KIND_HASH:
                return "hash";
        case KIND_LIST:
                return "list";
        case KIND_SET:
                return "set";
        default:
                return "value";
        }
}

int store_type(Store *s, const char *key, uint64_t now_ms, const char **ret_type) {
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (ret_type)
                *ret_type = e ? type_name(e->v.type) : "none";
        return 0;
}

static int rename_impl(Store *s, const char *src, const char *dst, bool nx, uint64_t now_ms) {
        size_t slen = 0, dlen = 0;
        Entry *e, *d, *ne;
        uint64_t deadline = UINT64_MAX;
        bool list;
        int r;

        r = key_check(s, src, &slen);
        if (r < 0)
                return r;
        r = key_check(s, dst, &dlen);
        if (r < 0)
                return r;
        e = entry_find(s, src, slen, now_ms);
        if (!e)
                return -ENOKEY;
        d = entry_find(s, dst, dlen, now_ms);
        if (d && nx)
                return 0;
        if (e == d)
                return 1;
        if (dlen > slen) {
                r = mem_check(s, entry_estimate(dlen) - entry_estimate(slen));
                if (r < 0)
                        return r;
        }
        if (e->heap_idx != NO_HEAP) {
                deadline = entry_deadline(s, e);
                r = expire_reserve(s);
                if (r < 0)
                        return r;
        }
        ne = mem_alloc(s, offsetof(Entry, key) + dlen + 1);
        if (!ne)
                return -ENOMEM;
        ne->node = (DictNode) { .hash = dict_hash(dst, dlen), .key_len = (uint32_t) dlen };
        ne->v = (PVal) {};
        ne->heap_idx = NO_HEAP;
        memcpy(ne->key, dst, dlen + 1);

        if (d) {
                /* take dst's place in the table: no allocation can fail from here on */
                ne->v = e->v;
                e->v = (PVal) {};
                expire_clear(s, d);
                dict_replace(&s->keys, &d->node, &ne->node);
                pval_clear(s, &d->v);
                mem_free(s, d);
        } else {
                r = dict_insert(s, &s->keys, &ne->node);
                if (r < 0) {
                        mem_free(s, ne);
                        return r;
                }
                ne->v = e->v;
                e->v = (PVal) {};
        }
        if (deadline != UINT64_MAX)
                expire_set(s, ne, deadline); /* room reserved above */
        list = ne->v.type == KIND_LIST;
        entry_delete(s, e);

        notify(s, src, "rename_from");
        notify(s, dst, "rename_to");
        if (list) {
                blocking_signal(s);
                blocking_serve(s, now_ms);
        }
        return 1;
}

int store_rename(Store *s, const char *src, const char *dst, uint64_t now_ms) {
        int r = rename_impl(s, src, dst, false, now_ms);

        return r < 0 ? r : 0;
}

int store_renamenx(Store *s, const char *src, const char *dst, uint64_t now_ms) {
        return rename_impl(s, src, dst, true, now_ms);
}

/* Accounted bytes of e and everything it owns. */
static size_t entry_memory(const Entry *e) {
        return mem_usable(e) + pval_memory(&e->v);
}

int store_move(Store *s, const char *key, Store *dst, uint64_t now_ms) {
        uint64_t deadline = UINT64_MAX;
        size_t len = 0, bytes;
        Entry *e;
        bool list;
        int r;

        if (!dst || dst == s)
                return -EINVAL;
        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        r = key_check(dst, key, NULL);
        if (r == -ENOBUFS)
                return limit_fail(s, store_last_limit(dst));
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (!e || entry_find(dst, key, len, now_ms))
                return 0;
        bytes = entry_memory(e);
        r = mem_check_move(dst, s, bytes);
        if (r < 0)
                return limit_fail(s, store_last_limit(dst));
        if (e->heap_idx != NO_HEAP) {
                deadline = entry_deadline(s, e);
                r = expire_reserve(dst);
                if (r < 0)
                        return r;
        }
        r = dict_reserve(dst, &dst->keys, 1);
        if (r < 0)
                return r;

        /* nothing can fail from here on: the entry, its key inline, changes tables */
        expire_clear(s, e);
        dict_unlink(s, &s->keys, &e->node);
        mem_transfer(s, dst, bytes);
        (void) dict_insert(dst, &dst->keys, &e->node); /* has buckets: cannot fail */
        if (deadline != UINT64_MAX)
                expire_set(dst, e, deadline);
        list = e->v.type == KIND_LIST;

        notify(s, key, "move_from");
        notify(dst, key, "move_to");
        if (list) {
                blocking_signal(dst);
                blocking_serve(dst, now_ms);
        }
        return 1;
}

int store_expire(Store *s, const char *key, uint64_t ttl_ms, uint64_t now_ms) {
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (!e)
                return 0;
        if (ttl_ms == 0) {
                entry_delete(s, e);
                notify(s, key, "del");
                return 1;
        }
        if (now_ms + ttl_ms < now_ms || now_ms + ttl_ms == UINT64_MAX)
                return -EINVAL;
        r = expire_reserve(s);
        if (r < 0)
                return r;
        expire_set(s, e, now_ms + ttl_ms);
        notify(s, key, "expire");
        return 1;
}

int store_persist(Store *s, const char *key, uint64_t now_ms) {
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (!e || e->heap_idx == NO_HEAP)
                return 0;
        expire_clear(s, e);
        notify(s, key, "persist");
        return 1;
}

int store_ttl(Store *s, const char *key, uint64_t now_ms, int64_t *ret_ttl_ms) {
        size_t len = 0;
        Entry *e;
        int64_t t;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (!e)
                t = -2;
        else if (e->heap_idx == NO_HEAP)
                t = -1;
        else {
                uint64_t d = entry_deadline(s, e) - now_ms;

                t = d > INT64_MAX ? INT64_MAX : (int64_t) d;
        }
        if (ret_ttl_ms)
                *ret_ttl_ms = t;
        return 0;
}

int store_flush(Store *s) {
        bool any = s->keys.count > 0;

        walks_end(s);
        entries_free(s);
        if (any)
                notify(s, "", "flush");
        return 0;
}

uint64_t store_dbsize(const Store *s) {
        return s->keys.count;
}

static uint64_t rnd_cb(void *userdata) {
        return store_random(userdata);
}

int store_randomkey(Store *s, uint64_t now_ms, const char **ret_key) {
        for (;;) {
                DictNode *n = dict_random(&s->keys, rnd_cb, s);
                Entry *e;

                if (!n)
                        return -ENOKEY;
                e = container_of(n, Entry, node);
                if (entry_expired(s, e, now_ms)) {
                        entry_expire_now(s, e);
                        continue;
                }
                if (ret_key)
                        *ret_key = e->key;
                return 0;
        }
}

int entry_lookup_kind(Store *s, const char *key, char kind, uint64_t now_ms, size_t *ret_len, Entry **ret_e) {
        size_t len = 0;
        Entry *e;
        int r;

        r = key_check(s, key, &len);
        if (r < 0)
                return r;
        e = entry_find(s, key, len, now_ms);
        if (e && e->v.type != kind)
                return -EMEDIUMTYPE;
        if (ret_len)
                *ret_len = len;
        *ret_e = e;
        return 0;
}
