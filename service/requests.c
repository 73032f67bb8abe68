/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "hub.h"
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

ServerRef *serve_table_pick_ready(ServeTable *t, const char *method, size_t max_handling) {
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
        return best->server;
}

bool serve_table_serves(ServeTable *t, ServerRef *server, const char *method) {
        return find_entry(hashmap_get(t->methods, method), server) != NULL;
}

size_t serve_table_count(ServeTable *t, const char *method) {
        ServedMethod *m = hashmap_get(t->methods, method);
        return m ? m->n : 0;
}

size_t serve_table_methods(ServeTable *t, const char **names, size_t *counts, size_t max) {
        ServedMethod *m;
        size_t i = 0, n = 0;

        while (n < max && hashmap_iterate(t->methods, &i, (void **) &m, NULL)) {
                names[n] = m->name;
                counts[n] = m->n;
                n++;
        }
        return n;
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

/* --- the request machine ------------------------------------------------------------------- */

int forward_new(RequestMachine *m, void *ns, ServeTable *table, const char *method, const char *origin, Forward **ret) {
        Forward *f;

        assert(m && ns && table && method && origin && ret);
        f = calloc(1, sizeof(Forward));
        if (!f)
                return -ENOMEM;
        *f = (Forward) { .machine = m, .ns = ns, .table = table };
        f->method = strdup(method);
        f->origin = strdup(origin);
        if (!f->method || !f->origin) {
                free(f->method);
                free(f->origin);
                free(f);
                return -ENOMEM;
        }
        *ret = f;
        return 0;
}

/* F no longer belongs to its namespace (freed, or orphaned: its caller has its answer). */
static void forward_leave_namespace(Forward *f) {
        void *ns = f->ns;

        if (!ns)
                return;
        f->ns = NULL;
        f->table = NULL;
        f->machine->ops->left_namespace(ns);
}

ServerRef *forward_call_ended(Forward *f) {
        ServerRef *s = NULL;

        if (f->out) {
                s = f->handler;
                LIST_REMOVE(by_handler, s->handling, f);
                s->n_handling--;
                f->handler = NULL;
                f->out = false;
        }
        if (f->call) {
                f->machine->ops->call_free(f->call);
                f->call = NULL;
        }
        return s;
}

/* F leaves the backlog it waits in, if any. */
static void forward_unqueue(Forward *f) {
        if (f->handler && !f->out) {
                ServerRef *s = f->handler;
                LIST_REMOVE(by_handler, s->backlog, f);
                s->n_backlog--;
                f->handler = NULL;
        }
}

Forward *forward_free(Forward *f) {
        if (!f)
                return NULL;
        forward_leave_namespace(f);
        (void) forward_call_ended(f);
        forward_unqueue(f);
        if (f->gather)
                LIST_REMOVE(by_gather, f->gather->pending, f);
        free(f->worker);
        free(f->method);
        free(f->origin);
        free(f);
        return NULL;
}

void forward_abandon(Forward *f) {
        if (!f->out) {
                forward_free(f);
                return;
        }
        if (f->gather)
                LIST_REMOVE(by_gather, f->gather->pending, f);
        f->gather = NULL;
        f->caller = NULL;
        forward_leave_namespace(f);
}

static bool server_has_room(const RequestMachine *m, const ServerRef *s) {
        uint64_t max = m->limits->max_handling_per_worker;
        return max == 0 || s->n_handling < max;
}

/* Sends F to S now. */
static int forward_send(Forward *f, ServerRef *s) {
        RequestMachine *m = f->machine;
        int r;

        assert(!f->out && !f->handler);
        r = m->ops->send(f, s);
        if (r < 0)
                return r;
        f->handler = s;
        f->out = true;
        LIST_APPEND(by_handler, s->handling, f);
        s->n_handling++;
        m->stats->requests_forwarded++;
        return 0;
}

int forward_submit(Forward *f, ServerRef *s) {
        RequestMachine *m = f->machine;

        free(f->worker);
        f->worker = strdup(m->ops->server_name(s));
        if (!f->worker)
                return -ENOMEM;
        if (server_has_room(m, s))
                return forward_send(f, s);
        if (s->n_backlog >= m->limits->max_backlog_per_worker)
                return -EXFULL;
        f->handler = s;
        LIST_APPEND(by_handler, s->backlog, f);
        s->n_backlog++;
        m->stats->requests_backlogged++;
        return 0;
}

void forward_submit_or_fail(Forward *f, ServerRef *s) {
        int r = forward_submit(f, s);

        if (r == -EXFULL) {
                f->machine->stats->requests_refused_busy++;
                f->machine->ops->fail(f, REQUEST_ERROR_BUSY, s, 0);
        } else if (r < 0)
                f->machine->ops->fail(f, REQUEST_ERROR_UNSENDABLE, s, -r);
}

/* Takes ownership of KEY and VALUE (either may be NULL: out of memory). */
static void gather_add_error_take(Gather *g, char *key, char *value) {
        char **k = realloc(g->error_keys, (g->n_errors + 1) * sizeof(char *));
        char **v = k ? realloc(g->error_values, (g->n_errors + 1) * sizeof(char *)) : NULL;

        if (k)
                g->error_keys = k;
        if (!v) {
                free(key);
                free(value);
                return;
        }
        g->error_values = v;
        g->error_keys[g->n_errors] = key;
        g->error_values[g->n_errors] = value;
        g->n_errors++;
}

void gather_add_error(Gather *g, const char *key, const char *value) {
        gather_add_error_take(g, strdup(key), strdup(value));
}

/* One of G's ended: G finishes when it was the last and no more are coming. */
static void gather_one_ended(Gather *g) {
        g->n_pending--;
        if (g->n_pending == 0 && !g->starting)
                g->machine->ops->gathered(g);
}

void forward_fail(Forward *f, const char *name, const char *message) {
        if (f->gather) {
                Gather *g = f->gather;
                char *value = NULL;

                if (asprintf(&value, "%s: %s", name, message) < 0)
                        value = NULL;
                gather_add_error_take(g, strdup(f->worker ? f->worker : "?"), value);
                forward_abandon(f);
                gather_one_ended(g);
                return;
        }
        if (f->caller)
                f->machine->ops->answer_error(f, name, message);
        f->caller = NULL;
        forward_abandon(f);
}

void gather_add_reply(Gather *g, const char *key, void *reply) {
        char **k = realloc(g->reply_keys, (g->n_replies + 1) * sizeof(char *));
        void **v = k ? realloc(g->replies, (g->n_replies + 1) * sizeof(void *)) : NULL;

        if (k)
                g->reply_keys = k;
        if (!v) {
                g->machine->ops->reply_free(reply);
                return;
        }
        g->replies = v;
        g->reply_keys[g->n_replies] = strdup(key);
        g->replies[g->n_replies] = reply;
        g->n_replies++;
}

void gather_hold(Gather *g) {
        g->n_pending++;
}

void gather_release(Gather *g) {
        gather_one_ended(g);
}

void forward_gathered(Forward *f, void *reply) {
        Gather *g = f->gather;

        gather_add_reply(g, f->worker, reply);
        forward_free(f);
        gather_one_ended(g);
}

void server_dispatch(ServerRef *s) {
        Forward *f;
        int r;

        while ((f = s->backlog.first) && server_has_room(f->machine, s)) {
                forward_unqueue(f);
                r = forward_send(f, s);
                if (r < 0)
                        f->machine->ops->fail(f, REQUEST_ERROR_UNSENDABLE, s, -r);
        }
}

void server_gone(ServerRef *s) {
        Forward *f;

        server_ref_clear(s);
        while ((f = s->handling.first)) {
                (void) forward_call_ended(f);
                f->machine->ops->fail(f, REQUEST_ERROR_GONE, s, 0);
        }
        /* what waited for S: a Request without target goes to another server, the rest fails */
        while ((f = s->backlog.first)) {
                ServerRef *other = NULL;

                forward_unqueue(f);
                if (f->any && f->table)
                        other = serve_table_pick_ready(f->table, f->method, f->machine->limits->max_handling_per_worker);
                if (!other) {
                        f->machine->ops->fail(f, REQUEST_ERROR_GONE_QUEUED, s, 0);
                        continue;
                }
                forward_submit_or_fail(f, other);
        }
}

/* The first Forward of NS in the list starting at FIRST, or NULL. */
static Forward *first_of_namespace(Forward *first, const void *ns) {
        for (Forward *f = first; f; f = f->by_handler_next)
                if (f->ns == ns)
                        return f;
        return NULL;
}

void server_fail_namespace(ServerRef *s, const void *ns, const char *name, const char *message) {
        Forward *f;

        /* failing one may finish a RequestAll, which lets go of its other Forwards: look again
         * from the start each time */
        while ((f = first_of_namespace(s->handling.first, ns)) || (f = first_of_namespace(s->backlog.first, ns)))
                forward_fail(f, name, message);
}

int gather_new(RequestMachine *m, void *caller, Gather **ret) {
        Gather *g = calloc(1, sizeof(Gather));

        if (!g)
                return -ENOMEM;
        *g = (Gather) { .machine = m, .caller = caller, .starting = true };
        *ret = g;
        return 0;
}

void gather_add(Gather *g, Forward *f) {
        f->gather = g;
        LIST_APPEND(by_gather, g->pending, f);
        g->n_pending++;
}

void gather_started(Gather *g) {
        g->starting = false;
        if (g->n_pending == 0)
                g->machine->ops->gathered(g);
}

void gather_timeout(Gather *g, const char *when_out, const char *when_queued) {
        Forward *f;

        while ((f = g->pending.first)) {
                gather_add_error(g, f->worker ? f->worker : "?", f->out ? when_out : when_queued);
                g->n_pending--;
                forward_abandon(f);
        }
}

Gather *gather_free(Gather *g) {
        if (!g)
                return NULL;
        while (g->pending.first)
                forward_abandon(g->pending.first);
        for (size_t i = 0; i < g->n_errors; i++) {
                free(g->error_keys[i]);
                free(g->error_values[i]);
        }
        for (size_t i = 0; i < g->n_replies; i++) {
                free(g->reply_keys[i]);
                g->machine->ops->reply_free(g->replies[i]);
        }
        free(g->error_keys);
        free(g->error_values);
        free(g->reply_keys);
        free(g->replies);
        free(g);
        return NULL;
}

/* --- requests waiting for their target ------------------------------------------------------ */

int request_wait_new(RequestWaits *l, const char *target, const char *method, uint64_t timeout_ms, void *userdata,
                     RequestWait **ret) {
        RequestWait *w;

        assert(l && target && method && ret);
        w = calloc(1, sizeof(RequestWait));
        if (!w)
                return -ENOMEM;
        *w = (RequestWait) { .timeout_ms = timeout_ms, .userdata = userdata };
        w->target = strdup(target);
        w->method = strdup(method);
        if (!w->target || !w->method) {
                request_wait_free(w);
                return -ENOMEM;
        }
        w->waits = l;
        LIST_APPEND(by_waits, l->items, w);
        l->n++;
        *ret = w;
        return 0;
}

static void request_wait_unlink(RequestWait *w) {
        if (!w->waits)
                return;
        LIST_REMOVE(by_waits, w->waits->items, w);
        w->waits->n--;
        w->waits = NULL;
}

RequestWait *request_wait_free(RequestWait *w) {
        if (!w)
                return NULL;
        request_wait_unlink(w);
        free(w->target);
        free(w->method);
        free(w);
        return NULL;
}

size_t request_waits_take_ready(RequestWaits *l, const char *id, ServeTable *table, ServerRef *s, RequestWaitList *ret) {
        RequestWait *w, *next;
        size_t n = 0;

        for (w = l->items.first; w; w = next) {
                next = w->by_waits_next;
                if (!streq(w->target, id) || !serve_table_serves(table, s, w->method))
                        continue;
                request_wait_unlink(w);
                LIST_APPEND(by_waits, *ret, w);
                n++;
        }
        return n;
}
