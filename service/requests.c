/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "macro.h"
#include "requests.h"

struct ServedMethod {
        char *name;
        LIST_HEAD(ServeEntry) servers;
        ServeEntry *cursor;             /* the next to pick */
        size_t n;
};

struct ServeEntry {
        ServeTable *table;
        ServedMethod *method;
        ServerRef *server;
        LIST_FIELDS(ServeEntry, by_method);
        LIST_FIELDS(ServeEntry, by_server);
};

struct ServeTable {
        Hashmap *methods;               /* name -> ServedMethod */
};

bool serve_table_is_empty(const ServeTable *t) {
        return hashmap_size(t->methods) == 0;
}

int serve_table_new(ServeTable **ret) {
        ServeTable *t = calloc(1, sizeof(ServeTable));

        if (!t)
                return -ENOMEM;
        t->methods = hashmap_new();
        if (!t->methods) {
                free(t);
                return -ENOMEM;
        }
        *ret = t;
        return 0;
}

static void entry_free(ServeEntry *e) {
        ServedMethod *m = e->method;

        if (m->cursor == e)
                m->cursor = e->by_method_next;
        LIST_REMOVE(by_method, m->servers, e);
        LIST_REMOVE(by_server, e->server->entries, e);
        e->server->n--;
        m->n--;
        if (m->n == 0) {
                hashmap_remove(e->table->methods, m->name);
                free(m->name);
                free(m);
        }
        free(e);
}

ServeTable *serve_table_free(ServeTable *t) {
        ServedMethod *m;
        size_t i = 0;

        if (!t)
                return NULL;
        /* removing the current entry while iterating is allowed */
        while (hashmap_iterate(t->methods, &i, (void **) &m, NULL))
                for (;;) {
                        bool last = m->n == 1;
                        entry_free(m->servers.first);
                        if (last)
                                break;
                }
        hashmap_free(t->methods);
        free(t);
        return NULL;
}

static ServeEntry *find_entry(ServedMethod *m, ServerRef *server) {
        ServeEntry *e;

        if (!m)
                return NULL;
        LIST_FOREACH(by_method, e, m->servers)
                if (e->server == server)
                        return e;
        return NULL;
}

int serve_table_add(ServeTable *t, ServerRef *server, const char *method) {
        ServedMethod *m = hashmap_get(t->methods, method);
        ServeEntry *e;
        int r;

        if (find_entry(m, server))
                return -EALREADY;
        if (!m) {
                m = calloc(1, sizeof(ServedMethod));
                if (!m || !(m->name = strdup(method))) {
                        free(m);
                        return -ENOMEM;
                }
                r = hashmap_put(t->methods, m->name, m);
                if (r < 0) {
                        free(m->name);
                        free(m);
                        return r;
                }
        }
        e = calloc(1, sizeof(ServeEntry));
        if (!e) {
                if (m->n == 0) {
                        hashmap_remove(t->methods, m->name);
                        free(m->name);
                        free(m);
                }
                return -ENOMEM;
        }
        *e = (ServeEntry) { .table = t, .method = m, .server = server };
        LIST_APPEND(by_method, m->servers, e);
        LIST_APPEND(by_server, server->entries, e);
        server->n++;
        m->n++;
        return 0;
}

int serve_table_remove(ServeTable *t, ServerRef *server, const char *method) {
        ServeEntry *e = find_entry(hashmap_get(t->methods, method), server);

        if (!e)
                return -ENOENT;
        entry_free(e);
        return 0;
}

void server_ref_clear(ServerRef *server) {
        while (server->entries.first)
                entry_free(server->entries.first);
}

void *serve_table_pick(ServeTable *t, const char *method) {
        ServedMethod *m = hashmap_get(t->methods, method);
        ServeEntry *e;

        if (!m)
                return NULL;
        e = m->cursor ? m->cursor : m->servers.first;
        m->cursor = e->by_method_next;
        return e->server->server;
}

void *serve_table_pick_ready(ServeTable *t, const char *method, size_t max_handling) {
        ServedMethod *m = hashmap_get(t->methods, method);
        ServeEntry *e, *best = NULL;

        if (!m)
                return NULL;
        e = m->cursor ? m->cursor : m->servers.first;
        for (size_t i = 0; i < m->n; i++) {
                ServerRef *s = e->server;
                if (max_handling == 0 || s->n_handling < max_handling) {
                        best = e;
                        break;
                }
                if (!best || s->n_backlog < best->server->n_backlog)
                        best = e;
                e = e->by_method_next ? e->by_method_next : m->servers.first;
        }
        m->cursor = best->by_method_next;
        return best->server->server;
}

bool serve_table_serves(ServeTable *t, ServerRef *server, const char *method) {
        return find_entry(hashmap_get(t->methods, method), server) != NULL;
}

size_t serve_table_count(ServeTable *t, const char *method) {
        ServedMethod *m = hashmap_get(t->methods, method);
        return m ? m->n : 0;
}

size_t serve_table_servers(ServeTable *t, const char *method, void **ret, size_t max) {
        ServedMethod *m = hashmap_get(t->methods, method);
        ServeEntry *e;
        size_t n = 0;

        if (!m)
                return 0;
        LIST_FOREACH(by_method, e, m->servers) {
                if (n >= max)
                        break;
                ret[n++] = e->server->server;
        }
        return n;
}
