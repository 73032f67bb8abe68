/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Requests1: a Request is forwarded to a serving connection as
 * org.clusterhub.Handler1.Handle and its reply (or error, unchanged) goes back to the caller.
 * Every pending request is a Deferred (the caller's call, its deadline) plus the forwarded
 * call's slot; it ends exactly once: reply, handler error, Timeout, WorkerGone (the handler's
 * connection closed), the caller leaving, or the namespace being dropped. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-requests.h"
#include "bus-util.h"
#include "variant-codec.h"
#include "ch-handler1-client.h"
#include "ch-requests1-server.h"
#include "deferred.h"
#include "log.h"
#include "namespace.h"
#include "peer.h"
#include "requests.h"
#include "workers.h"

#define DEFAULT_TIMEOUT_MS 10000
#define HANDLER_PATH "/org/clusterhub/Handler1"

typedef struct Gather Gather;

/* One forwarded Handle call. */
typedef struct Forward {
        Hub *hub;
        Namespace *ns;
        Deferred *d;            /* the caller's Request (NULL inside a RequestAll) */
        Gather *gather;         /* the RequestAll it belongs to, or NULL */
        Peer *handler;          /* the connection handling it */
        sd_bus_slot *slot;      /* the pending Handle call */
        char *worker;           /* the handler's id, for messages and RequestAll keys */
        LIST_FIELDS(struct Forward, by_handler);
        LIST_FIELDS(struct Forward, by_gather);
} Forward;

/* A Request waiting for worker TARGET to register and serve METHOD. */
typedef struct Waiting {
        Namespace *ns;
        char *target;
        char *method;
        char *origin;
        uint64_t timeout_ms;
} Waiting;

/* A RequestAll gathering replies. */
struct Gather {
        Deferred *d;
        bool starting;             /* still forwarding: do not finish yet */
        LIST_HEAD(Forward) pending;
        sd_bus_message *replies;   /* "a{sv}" being built, in a scratch message */
        size_t n_pending;
        /* errors: parallel arrays */
        char **error_keys;
        char **error_values;
        size_t n_errors;
        sd_bus_message *results;   /* method return under construction */
        char **reply_keys;
        sd_bus_message **reply_msgs;
        size_t n_replies;
};

static ServerRef *server_of(Peer *p) {
        return &p->server;
}

/* --- pending request bookkeeping ----------------------------------------------------------- */

static void forward_free(Forward *f) {
        if (!f)
                return;
        if (f->handler)
                LIST_REMOVE(by_handler, f->handler->forwards, f);
        if (f->gather)
                LIST_REMOVE(by_gather, f->gather->pending, f);
        sd_bus_slot_unref(f->slot);
        free(f->worker);
        free(f);
}

static void gather_finish(Gather *g);

/* Records an error for KEY in G; takes ownership of KEY and VALUE. */
static void gather_add_error(Gather *g, char *key, char *value) {
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

/* F ended with an error (name, message); route it to its caller or its gather. */
static void forward_fail(Forward *f, const char *name, const char *fmt, ...) _printf_(3, 4);
static void forward_fail(Forward *f, const char *name, const char *fmt, ...) {
        _cleanup_(freep) char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (f->gather) {
                Gather *g = f->gather;
                char *value = NULL;
                if (asprintf(&value, "%s: %s", name, msg ? msg : "") < 0)
                        value = NULL;
                gather_add_error(g, strdup(f->worker ? f->worker : "?"), value);
                g->n_pending--;
                forward_free(f);
                if (g->n_pending == 0 && !g->starting)
                        gather_finish(g);
                return;
        }
        (void) sd_bus_reply_method_errorf(f->d->call, name, "%s", msg ? msg : name);
        f->d->userdata = NULL;
        deferred_free(f->d);
        forward_free(f);
}

static int on_handle_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Forward *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        /* the slot dies with this callback */
        f->slot = sd_bus_slot_unref(f->slot);
        if (!e && !sd_bus_message_has_signature(reply, "v")) {
                forward_fail(f, SD_BUS_ERROR_FAILED, "Worker '%s' replied with signature '%s', not 'v'.",
                             f->worker, strempty(sd_bus_message_get_signature(reply, true)));
                return 0;
        }
        if (e) {
                /* NoReply from the bus means the handler's connection is going away */
                if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY) || sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
                    sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        forward_fail(f, "org.clusterhub.Error.WorkerGone", "Worker '%s' left before replying.", f->worker);
                else
                        forward_fail(f, e->name, "%s", e->message ? e->message : "");
                return 0;
        }
        if (f->gather && codec_message_fits(reply, CODEC_VARIANT_DEPTH_MAX) == 0) {
                /* it could not sit inside the a{sv} of replies: the bus would drop the hub */
                forward_fail(f, "org.clusterhub.Error.LimitExceeded", "Worker '%s' replied with a value nested deeper than %u containers, more than a RequestAll reply can carry.",
                             f->worker, CODEC_VARIANT_DEPTH_MAX);
                return 0;
        }
        if (f->gather) {
                Gather *g = f->gather;
                char **k = realloc(g->reply_keys, (g->n_replies + 1) * sizeof(char *));
                sd_bus_message **v = k ? realloc(g->reply_msgs, (g->n_replies + 1) * sizeof(sd_bus_message *)) : NULL;
                if (k)
                        g->reply_keys = k;
                if (v) {
                        g->reply_msgs = v;
                        g->reply_keys[g->n_replies] = strdup(f->worker);
                        g->reply_msgs[g->n_replies] = sd_bus_message_ref(reply);
                        g->n_replies++;
                }
                g->n_pending--;
                forward_free(f);
                if (g->n_pending == 0)
                        gather_finish(g);
                return 0;
        }
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
                r = sd_bus_message_new_method_return(f->d->call, &out);
                if (r >= 0)
                        r = sd_bus_message_copy(out, reply, true);
                if (r >= 0)
                        r = sd_bus_send(NULL, out, NULL);
                if (r < 0)
                        (void) sd_bus_reply_method_errorf(f->d->call, SD_BUS_ERROR_FAILED,
                                                          "Cannot pass on the reply of worker '%s': %s", f->worker, strerror(-r));
        }
        f->d->userdata = NULL;
        deferred_free(f->d);
        forward_free(f);
        return 0;
}

/* The forwarded call's bus timeout: ours plus a second, saturating (UINT64_MAX: none). */
static uint64_t bus_timeout_usec(uint64_t timeout_ms) {
        if (timeout_ms >= UINT64_MAX / USEC_PER_MSEC - 1000)
                return UINT64_MAX;
        return (timeout_ms + 1000) * USEC_PER_MSEC;
}

/* Forwards CALL (positioned at its payload) to HANDLER; the Handle call's own timeout is a
 * little longer than ours, so that ours decides. */
static int forward(Namespace *ns, sd_bus_message *call, Peer *handler, const char *method, const char *origin,
                   uint64_t timeout_ms, Forward *f) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Hub *h = ns->hub;
        int r;

        r = sd_bus_message_new_method_call(h->bus, &m, handler->unique_name, HANDLER_PATH, CH_HANDLER1_INTERFACE, "Handle");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "sss", ns->name, method, origin);
        if (r < 0)
                return r;
        r = sd_bus_message_copy(m, call, false);
        if (r < 0)
                return r;
        /* everything that can fail comes before the call, so F is linked only when it is out */
        f->worker = strdup(peer_origin(handler));
        if (!f->worker)
                return -ENOMEM;
        f->ns = ns;
        r = sd_bus_call_async(h->bus, &f->slot, m, on_handle_reply, f, bus_timeout_usec(timeout_ms));
        if (r < 0)
                return r;
        f->handler = handler;
        LIST_APPEND(by_handler, handler->forwards, f);
        h->stats.requests_forwarded++;
        return 0;
}

/* --- Request -------------------------------------------------------------------------- */

static void request_ended(Deferred *d, DeferredEnd why) {
        Forward *f = d->userdata;

        if (!f)
                return;
        if (why == DEFERRED_TIMEOUT)
                (void) sd_bus_reply_method_errorf(d->call, "org.clusterhub.Error.Timeout",
                                                  "Worker '%s' did not answer within the timeout.", f->worker ? f->worker : "?");
        d->userdata = NULL;
        forward_free(f);
}

static void waiting_free(Waiting *w) {
        if (!w)
                return;
        free(w->target);
        free(w->method);
        free(w);
}

static void waiting_ended(Deferred *d, DeferredEnd why) {
        Waiting *w = d->userdata;

        LIST_REMOVE(by_kind, w->ns->waiting, d);
        if (why == DEFERRED_TIMEOUT)
                (void) sd_bus_reply_method_errorf(d->call, "org.clusterhub.Error.WorkerUnavailable",
                                                  "Worker '%s' did not register and serve '%s' within %llu ms.",
                                                  w->target, w->method, (unsigned long long) w->timeout_ms);
        waiting_free(w);
}

typedef struct RequestOptions {
        uint64_t timeout_ms;
} RequestOptions;

static int read_request_options(sd_bus_message *m, RequestOptions *o, sd_bus_error *ret_error) {
        const BusOption table[] = {
                { "timeout_ms", BUS_OPTION_UINT64, &o->timeout_ms },
                {}
        };
        int r = bus_read_options(m, table, ret_error);
        if (r >= 0 && o->timeout_ms == 0)
                o->timeout_ms = DEFAULT_TIMEOUT_MS;
        return r;
}

/* Reads the trailing options of a Request while keeping CALL positioned at its payload. */
static int peek_options(sd_bus_message *m, RequestOptions *o, sd_bus_error *ret_error) {
        int r;

        r = sd_bus_message_skip(m, "v");
        if (r < 0)
                return r;
        r = read_request_options(m, o, ret_error);
        if (r < 0)
                return r;
        /* back to the payload: rewind, skip the leading strings */
        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        return 0;
}

static int start_request(Namespace *ns, sd_bus_message *m, Peer *caller, Peer *handler, const char *method,
                         uint64_t timeout_ms, sd_bus_error *ret_error) {
        Forward *f;
        Deferred *d;
        int r;

        f = calloc(1, sizeof(Forward));
        if (!f)
                return -ENOMEM;
        f->hub = ns->hub;
        r = deferred_new(ns->hub, m, caller, timeout_ms, request_ended, f, &d);
        if (r < 0) {
                free(f);
                return r;
        }
        f->d = d;
        r = forward(ns, m, handler, method, peer_origin(caller), timeout_ms, f);
        if (r < 0) {
                d->userdata = NULL;
                deferred_free(d);
                forward_free(f);
                return bus_error_errno(ret_error, -EHOSTUNREACH, "Cannot forward '%s' to worker '%s': %s",
                                       method, peer_origin(handler), strerror(-r));
        }
        return 1;
}

static int wait_for_target(Namespace *ns, sd_bus_message *m, Peer *caller, const char *target, const char *method,
                           uint64_t timeout_ms, sd_bus_error *ret_error) {
        CodecBuf buf = {};
        Waiting *w;
        Deferred *d;
        int r;

        /* the call waits with its payload: no fds kept for a worker that may never come */
        r = codec_read(m, "v", &buf);
        codec_buf_done(&buf);
        if (r == -EBADF)
                return bus_error_errno(ret_error, -EINVAL,
                                       "Worker '%s' is not registered; a request carrying file descriptors does not wait for it.", target);
        if (r < 0)
                return bus_error_errno(ret_error, -EINVAL, "Cannot read the payload of '%s': %s", method, strerror(-r));
        w = calloc(1, sizeof(Waiting));
        if (!w)
                return -ENOMEM;
        w->ns = ns;
        w->timeout_ms = timeout_ms;
        w->target = strdup(target);
        w->method = strdup(method);
        if (!w->target || !w->method) {
                waiting_free(w);
                return -ENOMEM;
        }
        r = deferred_new(ns->hub, m, caller, timeout_ms, waiting_ended, w, &d);
        if (r < 0) {
                waiting_free(w);
                return r;
        }
        LIST_APPEND(by_kind, ns->waiting, d);
        return 1;
}

/* Dispatch the waiting requests of NS that P can now serve. */
static void dispatch_waiting(Namespace *ns, Peer *p) {
        Deferred *d, *next;

        for (d = ns->waiting.first; d; d = next) {
                Waiting *w = d->userdata;
                const char *skip1, *skip2;
                Forward *f;
                int r;

                next = d->by_kind_next;
                if (!streq(w->target, p->id) || !serve_table_serves(ns->served, server_of(p), w->method))
                        continue;
                LIST_REMOVE(by_kind, ns->waiting, d);
                f = calloc(1, sizeof(Forward));
                r = f ? 0 : -ENOMEM;
                if (r >= 0)
                        r = sd_bus_message_rewind(d->call, true);
                if (r >= 0)
                        r = sd_bus_message_read(d->call, "ss", &skip1, &skip2);
                if (r >= 0) {
                        f->hub = ns->hub;
                        f->d = d;
                        r = forward(ns, d->call, p, w->method, d->peer ? peer_origin(d->peer) : "", w->timeout_ms, f);
                }
                if (r < 0) {
                        (void) sd_bus_reply_method_errorf(d->call, "org.clusterhub.Error.WorkerUnavailable",
                                                          "Cannot forward '%s' to worker '%s': %s", w->method, w->target, strerror(-r));
                        waiting_free(w);
                        d->userdata = NULL;
                        d->on_end = NULL;
                        deferred_free(d);
                        forward_free(f);
                        continue;
                }
                waiting_free(w);
                d->userdata = f;
                d->on_end = request_ended;
        }
}

static int method_request(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *target, const char *method) {
        Namespace *ns = userdata;
        RequestOptions o = {};
        Peer *caller, *handler;
        const char *skip1, *skip2;
        int r;

        r = bus_check_name(ret_error, "method name", method, ns->hub->limits.max_name_bytes);
        if (r < 0)
                return r;
        if (*target && !worker_id_is_valid(target))
                return bus_error_errno(ret_error, -EINVAL, "'%s' is not a worker id: 1 to %d characters of [A-Za-z0-9_].",
                                       target, WORKER_ID_MAX);
        r = peek_options(m, &o, ret_error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ss", &skip1, &skip2);
        if (r < 0)
                return r;
        r = peer_get_or_new(ns->hub, m, &caller);
        if (r < 0)
                return r;
        r = peer_check_pending(caller, ret_error);
        if (r < 0)
                return r;

        if (!*target) {
                handler = serve_table_pick(ns->served, method);
                if (!handler)
                        return bus_error_errno(ret_error, -EBADRQC, "Nobody serves '%s' in namespace '%s'.", method, ns->name);
                return start_request(ns, m, caller, handler, method, o.timeout_ms, ret_error);
        }
        handler = workers_find(ns->hub, target);
        if (handler && serve_table_serves(ns->served, server_of(handler), method))
                return start_request(ns, m, caller, handler, method, o.timeout_ms, ret_error);
        /* not there yet (systemd may still be starting it): wait within the timeout */
        return wait_for_target(ns, m, caller, target, method, o.timeout_ms, ret_error);
}

/* --- RequestAll --------------------------------------------------------------------------- */

static void gather_free(Gather *g) {
        while (g->pending.first)
                forward_free(g->pending.first);
        for (size_t i = 0; i < g->n_errors; i++) {
                free(g->error_keys[i]);
                free(g->error_values[i]);
        }
        for (size_t i = 0; i < g->n_replies; i++) {
                free(g->reply_keys[i]);
                sd_bus_message_unref(g->reply_msgs[i]);
        }
        free(g->error_keys);
        free(g->error_values);
        free(g->reply_keys);
        free(g->reply_msgs);
        free(g);
}

static int append_gathered(sd_bus_message *out, Gather *g) {
        int r;

        r = sd_bus_message_open_container(out, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_replies; i++) {
                r = sd_bus_message_open_container(out, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_basic(out, 's', g->reply_keys[i] ? g->reply_keys[i] : "");
                if (r < 0)
                        return r;
                r = sd_bus_message_copy(out, g->reply_msgs[i], false);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(out);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(out);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(out, 'a', "{ss}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_errors; i++) {
                r = sd_bus_message_append(out, "{ss}", g->error_keys[i] ? g->error_keys[i] : "",
                                          g->error_values[i] ? g->error_values[i] : "");
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(out);
}

static void gather_reply(Gather *g) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
        int r;

        r = sd_bus_message_new_method_return(g->d->call, &out);
        if (r >= 0)
                r = append_gathered(out, g);
        if (r >= 0)
                r = sd_bus_send(NULL, out, NULL);
        if (r < 0)
                (void) sd_bus_reply_method_errorf(g->d->call, SD_BUS_ERROR_FAILED, "Cannot build the RequestAll reply: %s", strerror(-r));
}

static void gather_finish(Gather *g) {
        Deferred *d = g->d;

        gather_reply(g);
        d->userdata = NULL;
        deferred_free(d);
        gather_free(g);
}

static void gather_ended(Deferred *d, DeferredEnd why) {
        Gather *g = d->userdata;
        Forward *f;

        if (!g)
                return;
        if (why == DEFERRED_TIMEOUT) {
                /* the ones still out become Timeout errors */
                while ((f = g->pending.first)) {
                        gather_add_error(g, TAKE_PTR(f->worker), strdup("org.clusterhub.Error.Timeout: no answer within the timeout"));
                        g->n_pending--;
                        forward_free(f);
                }
                gather_reply(g);
        }
        d->userdata = NULL;
        gather_free(g);
}

static int method_request_all(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *method) {
        Namespace *ns = userdata;
        _cleanup_(freep) void **servers = NULL;
        RequestOptions o = {};
        Peer *caller;
        Gather *g;
        const char *skip;
        size_t n;
        int r;

        r = bus_check_name(ret_error, "method name", method, ns->hub->limits.max_name_bytes);
        if (r < 0)
                return r;
        r = peek_options(m, &o, ret_error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &skip);
        if (r < 0)
                return r;
        n = serve_table_count(ns->served, method);
        if (n == 0)
                return ch_requests1_reply_request_all(m, NULL, NULL);
        r = peer_get_or_new(ns->hub, m, &caller);
        if (r < 0)
                return r;
        r = peer_check_pending(caller, ret_error);
        if (r < 0)
                return r;
        servers = calloc(n, sizeof(void *));
        g = calloc(1, sizeof(Gather));
        if (!servers || !g) {
                free(g);
                return -ENOMEM;
        }
        n = serve_table_servers(ns->served, method, servers, n);
        r = deferred_new(ns->hub, m, caller, o.timeout_ms, gather_ended, g, &g->d);
        if (r < 0) {
                free(g);
                return r;
        }
        g->starting = true;
        for (size_t i = 0; i < n; i++) {
                Peer *server = servers[i];
                Forward *f = calloc(1, sizeof(Forward));
                if (!f) {
                        gather_add_error(g, strdup(peer_origin(server)), strdup("org.freedesktop.DBus.Error.NoMemory: out of memory"));
                        continue;
                }
                f->hub = ns->hub;
                f->gather = g;
                LIST_APPEND(by_gather, g->pending, f);
                g->n_pending++;
                r = sd_bus_message_rewind(m, true);
                if (r >= 0)
                        r = sd_bus_message_read(m, "s", &skip);
                if (r >= 0)
                        r = forward(ns, m, server, method, peer_origin(caller), o.timeout_ms, f);
                if (r < 0) {
                        if (!f->worker)
                                f->worker = strdup(peer_origin(server));
                        forward_fail(f, "org.clusterhub.Error.WorkerUnavailable", "Cannot forward: %s", strerror(-r));
                }
        }
        g->starting = false;
        if (g->n_pending == 0)
                gather_finish(g);
        return 1;
}

/* --- Serve ---------------------------------------------------------------------------- */

static int method_serve(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **methods) {
        Namespace *ns = userdata;
        Peer *p;
        int r;

        for (char **i = methods; i && *i; i++) {
                r = bus_check_name(ret_error, "method name", *i, ns->hub->limits.max_name_bytes);
                if (r < 0)
                        return r;
        }
        r = peer_get_or_new(ns->hub, m, &p);
        if (r < 0)
                return r;
        for (char **i = methods; i && *i; i++) {
                if (server_of(p)->n >= ns->hub->limits.max_served_per_peer && !serve_table_serves(ns->served, server_of(p), *i))
                        return bus_error_errno(ret_error, -ENOBUFS, "%s already serves %zu methods (--max-served-per-peer).",
                                               p->unique_name, server_of(p)->n);
                r = serve_table_add(ns->served, server_of(p), *i);
                if (r < 0 && r != -EALREADY)
                        return r;
        }
        r = ch_requests1_reply_serve(m);
        if (p->id && ns->waiting.first)
                dispatch_waiting(ns, p);
        return r;
}

static int method_unserve(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **methods) {
        Namespace *ns = userdata;
        Peer *p = peer_find(ns->hub, sd_bus_message_get_sender(m));

        for (char **i = methods; p && i && *i; i++)
                (void) serve_table_remove(ns->served, server_of(p), *i);
        return ch_requests1_reply_unserve(m);
}

void bus_requests_worker_ready(Peer *p) {
        Namespace *ns;
        size_t i = 0;

        if (!p->id)
                return;
        while (hashmap_iterate(p->hub->namespaces, &i, (void **) &ns, NULL))
                if (ns->waiting.first)
                        dispatch_waiting(ns, p);
}

void bus_requests_peer_gone(Peer *p) {
        server_ref_clear(server_of(p));
        while (p->forwards.first)
                forward_fail(p->forwards.first, "org.clusterhub.Error.WorkerGone",
                             "Worker '%s' left before replying.", peer_origin(p));
}

void bus_requests_drop(Namespace *ns) {
        Hub *h = ns->hub;

        while (ns->waiting.first) {
                Deferred *d = ns->waiting.first;
                Waiting *w = d->userdata;
                LIST_REMOVE(by_kind, ns->waiting, d);
                (void) sd_bus_reply_method_errorf(d->call, "org.clusterhub.Error.NamespaceDropped", "Namespace '%s' was dropped.", ns->name);
                waiting_free(w);
                d->userdata = NULL;
                d->on_end = NULL;
                deferred_free(d);
        }
        Peer *p;
        size_t i = 0;

        while (hashmap_iterate(h->peers, &i, (void **) &p, NULL)) {
                Forward *f, *next;
                for (f = p->forwards.first; f; f = next) {
                        next = f->by_handler_next;
                        if (f->ns == ns)
                                forward_fail(f, "org.clusterhub.Error.NamespaceDropped", "Namespace '%s' was dropped.", ns->name);
                }
        }
}

const ChRequests1Handlers bus_requests_handlers = {
        .serve = method_serve,
        .unserve = method_unserve,
        .request = method_request,
        .request_all = method_request_all,
};
