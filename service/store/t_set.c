/* SPDX-License-Identifier: MIT */

/* Sets of strings: a Dict of SMember nodes (member inline). */

#include <stdlib.h>

#include "store-internal.h"

void set_free(Store *s, Dict *d) {
        if (!d)
                return;
        DICT_FOREACH(n, d, i)
                mem_free(s, container_of(n, SMember, node));
        dict_free_buckets(s, d);
        mem_free(s, d);
}

size_t set_memory(const Dict *d) {
        size_t n = mem_usable(d) + mem_usable(d->buckets);

        DICT_FOREACH(node, d, i)
                n += mem_usable(container_of(node, SMember, node));
        return n;
}

static int set_lookup(Store *s, const char *key, uint64_t now_ms, size_t *ret_len, Entry **ret_e) {
        return entry_lookup_kind(s, key, KIND_SET, now_ms, ret_len, ret_e);
}

static SMember *member_find(Entry *e, const char *m, size_t len) {
        DictNode *n;

        if (!e)
                return NULL;
        n = dict_find(e->v.obj, m, len, dict_hash(m, len));
        return n ? container_of(n, SMember, node) : NULL;
}

static int members_check(Store *s, const char *const *members, size_t n) {
        int r;

        if (n > 0 && !members)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                r = name_check(s, members[i], NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

static size_t set_count(const Entry *e) {
        return e ? ((const Dict *) e->v.obj)->count : 0;
}

int store_sadd(Store *s, const char *key, const char *const *members, size_t n, uint64_t now_ms,
               size_t *ret_added) {
        uint64_t extra = 0;
        size_t len, added = 0, newm = 0, done = 0;
        bool existed;
        Entry *e;
        int r;

        if (n == 0)
                return -EINVAL;
        r = set_lookup(s, key, now_ms, &len, &e);
        if (r < 0)
                return r;
        r = members_check(s, members, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                size_t ml = strlen(members[i]);

                if (!member_find(e, members[i], ml)) {
                        newm++;
                        extra += mem_estimate(offsetof(SMember, key) + ml + 1);
                }
        }
        if (set_count(e) + newm > s->limits.max_elements)
                return limit_fail(s, "elements");
        if (!e)
                extra += entry_estimate(len) + mem_estimate(sizeof(Dict));
        r = mem_check(s, extra);
        if (r < 0)
                return r;

        existed = e != NULL;
        if (!e) {
                PVal v = { .type = KIND_SET };
                Dict *d = mem_alloc(s, sizeof(Dict));

                if (!d)
                        return -ENOMEM;
                dict_init(d, offsetof(SMember, key));
                v.obj = d;
                r = entry_add(s, key, len, &v, &e);
                if (r < 0) {
                        mem_free(s, d);
                        return r;
                }
        }
        for (size_t i = 0; i < n; i++) {
                size_t ml = strlen(members[i]);
                SMember *m;

                if (member_find(e, members[i], ml)) {
                        done = i + 1;
                        continue;
                }
                m = mem_alloc(s, offsetof(SMember, key) + ml + 1);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                *m = (SMember) { .node.hash = dict_hash(members[i], ml), .node.key_len = (uint32_t) ml };
                memcpy(m->key, members[i], ml + 1);
                r = dict_insert(s, e->v.obj, &m->node);
                if (r < 0) {
                        mem_free(s, m);
                        break;
                }
                added++;
                done = i + 1;
        }
        if (set_count(e) == 0) {
                entry_delete(s, e);
                return r < 0 ? r : -ENOMEM;
        }
        if (added > 0) {
                StoreDelta delta = { .op = STORE_DELTA_SADD, .n = done, .names = members };

                notify_delta(s, key, "sadd", existed ? &delta : NULL);
        }
        if (r < 0)
                return r;
        if (ret_added)
                *ret_added = added;
        return 0;
}

static void member_delete(Store *s, Entry *e, SMember *m) {
        dict_unlink(s, e->v.obj, &m->node);
        mem_free(s, m);
}

int store_srem(Store *s, const char *key, const char *const *members, size_t n, uint64_t now_ms,
               size_t *ret_removed) {
        size_t c = 0;
        Entry *e;
        int r;

        r = set_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = members_check(s, members, n);
        if (r < 0)
                return r;
        for (size_t i = 0; e && i < n; i++) {
                SMember *m = member_find(e, members[i], strlen(members[i]));

                if (m) {
                        member_delete(s, e, m);
                        c++;
                }
        }
        if (c > 0) {
                StoreDelta delta = { .op = STORE_DELTA_SREM, .n = n, .names = members };

                notify_delta(s, key, "srem", &delta);
                if (set_count(e) == 0) {
                        entry_delete(s, e);
                        notify(s, key, "del");
                }
        }
        if (ret_removed)
                *ret_removed = c;
        return 0;
}

int store_smembers(Store *s, const char *key, uint64_t now_ms, const char ***ret_members, size_t *ret_n) {
        _cleanup_(freep) const char **a = NULL;
        size_t k = 0;
        Entry *e;
        int r;

        r = set_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        a = calloc(MAX(set_count(e), (size_t) 1), sizeof(char *));
        if (!a)
                return -ENOMEM;
        if (e)
                DICT_FOREACH(n, (Dict *) e->v.obj, i)
                        a[k++] = container_of(n, SMember, node)->key;
        if (ret_members)
                *ret_members = TAKE_PTR(a);
        if (ret_n)
                *ret_n = k;
        return 0;
}

int store_sismember(Store *s, const char *key, const char *member, uint64_t now_ms) {
        size_t ml;
        Entry *e;
        int r;

        r = set_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        r = name_check(s, member, &ml);
        if (r < 0)
                return r;
        return !!member_find(e, member, ml);
}

int store_scard(Store *s, const char *key, uint64_t now_ms, size_t *ret_n) {
        Entry *e;
        int r;

        r = set_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        if (ret_n)
                *ret_n = set_count(e);
        return 0;
}

static uint64_t rnd_cb(void *userdata) {
        return store_random(userdata);
}

int store_spop(Store *s, const char *key, size_t count, uint64_t now_ms, char ***ret_members, size_t *ret_n) {
        char **a;
        size_t k = 0;
        Entry *e;
        int r;

        r = set_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        if (count == 0)
                count = 1;
        count = MIN(count, set_count(e));
        a = calloc(MAX(count, (size_t) 1), sizeof(char *));
        if (!a)
                return -ENOMEM;
        for (k = 0; k < count; k++) {
                SMember *m = container_of(dict_random(e->v.obj, rnd_cb, s), SMember, node);

                a[k] = strdup(m->key);
                if (!a[k]) {
                        store_strv_free(a, k);
                        return -ENOMEM; /* members popped so far are gone */
                }
                member_delete(s, e, m);
        }
        if (k > 0) {
                /* random: the journal gets the members it took */
                StoreDelta delta = { .op = STORE_DELTA_SREM, .n = k, .names = (const char *const *) a };

                notify_delta(s, key, "spop", &delta);
                if (set_count(e) == 0) {
                        entry_delete(s, e);
                        notify(s, key, "del");
                }
        }
        if (ret_members)
                *ret_members = a;
        else
                store_strv_free(a, k);
        if (ret_n)
                *ret_n = k;
        return 0;
}

int store_srandmember(Store *s, const char *key, size_t count, uint64_t now_ms,
                      const char ***ret_members, size_t *ret_n) {
        _cleanup_(freep) const char **a = NULL;
        size_t total, k = 0;
        Entry *e;
        int r;

        r = set_lookup(s, key, now_ms, NULL, &e);
        if (r < 0)
                return r;
        if (count == 0)
                count = 1;
        total = set_count(e);
        a = calloc(MAX(total, (size_t) 1), sizeof(char *));
        if (!a)
                return -ENOMEM;
        if (e)
                DICT_FOREACH(n, (Dict *) e->v.obj, i)
                        a[k++] = container_of(n, SMember, node)->key;
        count = MIN(count, total);
        /* partial Fisher-Yates: the first count slots are a uniform distinct sample */
        for (size_t i = 0; i < count; i++) {
                size_t j = i + store_random(s) % (total - i);
                const char *t = a[i];

                a[i] = a[j];
                a[j] = t;
        }
        if (ret_members)
                *ret_members = TAKE_PTR(a);
        if (ret_n)
                *ret_n = count;
        return 0;
}
