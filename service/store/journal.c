/* SPDX-License-Identifier: MIT */

/* What a persistence layer needs from the store: one write hook, a view of each entry and a
 * walk over all of them, and a loading mode that notifies nobody.  No file I/O here. */

#include <string.h>

#include "store-internal.h"

void store_set_journal(Store *s, StoreJournal journal, void *userdata) {
        s->journal = journal;
        s->journal_userdata = userdata;
}

void store_set_loading(Store *s, bool loading) {
        s->loading = loading;
}

static void entry_view(const Store *s, const Entry *e, StoreEntry *ret) {
        StoreEntry v = {
                .key = e->key,
                .kind = e->v.type,
                .deadline_ms = entry_deadline(s, e),
                .internal = e,
        };

        if (pval_is_plain(&e->v))
                pval_view(&e->v, &v.value);
        else
                v.n_items = collection_size(&e->v);
        *ret = v;
}

int store_entry_lookup(Store *s, const char *key, StoreEntry *ret) {
        size_t len;
        DictNode *n;

        if (!key || !ret)
                return -EINVAL;
        len = strlen(key);
        n = dict_find(&s->keys, key, len, dict_hash(key, len));
        if (!n)
                return -ENOKEY;
        entry_view(s, container_of(n, Entry, node), ret);
        return 0;
}

int store_entry_foreach_item(Store *s, const StoreEntry *se, StoreItemFn fn, void *userdata) {
        const Entry *e = se->internal;
        StoreValue v;
        int r;

        switch (e->v.type) {
        case KIND_HASH:
                /* in insertion order while small (Hash.order), else from its table */
                HASH_FOREACH(f, (const Hash *) e->v.obj) {
                        pval_view(&f->v, &v);
                        r = fn(userdata, f->key, &v);
                        if (r < 0)
                                return r;
                }
                return 0;
        case KIND_SET:
                DICT_FOREACH(n, (Dict *) e->v.obj, i) {
                        SMember *m = container_of(n, SMember, node);

                        r = fn(userdata, m->key, NULL);
                        if (r < 0)
                                return r;
                }
                return 0;
        case KIND_LIST: {
                const List *l = e->v.obj;

                for (size_t i = 0; i < l->len; i++) {
                        pval_view(&l->a[(l->head + i) & (l->cap - 1)], &v);
                        r = fn(userdata, NULL, &v);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        default:
                return -EMEDIUMTYPE;
        }
}

int store_foreach_entry(Store *s, StoreEntryFn fn, void *userdata) {
        StoreEntry v;
        int r;

        DICT_FOREACH(n, &s->keys, i) {
                entry_view(s, container_of(n, Entry, node), &v);
                r = fn(userdata, &v);
                if (r < 0)
                        return r;
        }
        return 0;
}
