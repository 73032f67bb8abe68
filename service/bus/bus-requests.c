/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Requests1: a Request is forwarded to a serving connection as
 * org.clusterhub.Handler1.Handle and its reply (or error, unchanged) goes back to the caller.
 * Every pending request is a Deferred (the caller's call, its deadline) plus the forwarded
 * call's slot; it ends exactly once: reply, handler error, Timeout, WorkerGone (the handler's
 * connection closed), the caller leaving, or the namespace being dropped.
 *
 * A worker handles at most --max-handling-per-worker Handle calls at a time.  The bus counts
 * every call the hub has out against the hub's own connection until the worker answers
 * (dbus-daemon's max_replies_per_connection is 128 on a stock system bus, and it has no reply
 * timeout), so one worker that never answers would otherwise use up what every Request
 * needs.  The cap counts calls until the worker answers or leaves, also after their caller
 * gave up (the call is then orphaned, kept only to count it).  Requests past the cap wait in
 * the worker's backlog (--max-backlog-per-worker) within their own timeout; a Request without
 * a target goes to a serving worker under the cap first. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-requests.h"
#include "bus-util.h"
#include "variant-codec.h"
#include "ch-errors.h"
#include "ch-handler1-client.h"
#include "ch-requests1-server.h"
#include "deferred.h"
#include "log.h"
#include "namespace.h"
#include "peer.h"
#include "requests.h"
#include "workers.h"

#define HANDLER_PATH "/org/clusterhub/Handler1"

typedef struct Gather Gather;

/* One request for one handler: waiting in the handler's backlog, then out as a Handle call.
 * With neither D nor GATHER it is an orphan: its caller has its answer, and it is kept only
 * while the handler has not answered, to count against --max-handling-per-worker. */
typedef struct Forward {
        Hub *hub;
        Namespace *ns;          /* NULL once orphaned */
        Deferred *d;            /* the caller's Request (NULL inside a RequestAll) */
        Gather *gather;         /* the RequestAll it belongs to, or NULL */
        Peer *handler;          /* the connection handling it, or whose backlog holds it */
        bool out;               /* the Handle call is out: in handler->forwards, else in its backlog */
        bool any;               /* a Request without target: another server may take it */
        sd_bus_slot *slot;      /* the pending Handle call */
        char *worker;           /* the handler's id, for messages and RequestAll keys */
        char *method;
        char *origin;
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

static void handler_dispatch(Peer *p);

static Forward *forward_new(Namespace *ns, const char *method, const char *origin) {
        Forward *f = calloc(1, sizeof(Forward));

        if (!f)
                return NULL;
        f->hub = ns->hub;
        f->ns = ns;
        ns->n_forwards++;
        f->method = strdup(method);
        f->origin = strdup(origin);
        if (!f->method || !f->origin) {
                free(f->method);
                free(f->origin);
                free(f);
                return NULL;
        }
        return f;
}

/* F no longer belongs to its namespace (freed, or orphaned: its caller has its answer). */
static void forward_leave_namespace(Forward *f) {
        if (!f->ns)
                return;
        f->ns->n_forwards--;
        namespace_check_unused(f->ns);
        f->ns = NULL;
}

/* The Handle call of F is over (answered, or its handler left): it no longer counts. */
static void forward_call_ended(Forward *f) {
        if (f->out) {
                LIST_REMOVE(by_handler, f->handler->forwards, f);
                server_of(f->handler)->n_handling--;
                f->handler = NULL;
                f->out = false;
        }
        f->slot = sd_bus_slot_unref(f->slot);
}

/* F leaves the backlog it waits in, if any. */
static void forward_unqueue(Forward *f) {
        if (f->handler && !f->out) {
                ServerRef *s = server_of(f->handler);
                LIST_REMOVE(by_handler, s->backlog, f);
                s->n_backlog--;
                f->handler = NULL;
        }
}

static void forward_free(Forward *f) {
        if (!f)
                return;
        forward_leave_namespace(f);
        forward_call_ended(f);
        forward_unqueue(f);
        if (f->gather)
                LIST_REMOVE(by_gather, f->gather->pending, f);
        free(f->worker);
        free(f->method);
        free(f->origin);
        free(f);
}

/* F's caller is done with it (answered, timed out, gone): a Handle call still out stays, as an
 * orphan, until its handler answers; anything else is freed. */
static void forward_abandon(Forward *f) {
        if (!f->out) {
                forward_free(f);
                return;
        }
        if (f->gather)
                LIST_REMOVE(by_gather, f->gather->pending, f);
        f->gather = NULL;
        f->d = NULL;
        forward_leave_namespace(f);
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
                forward_abandon(f);
                if (g->n_pending == 0 && !g->starting)
                        gather_finish(g);
                return;
        }
        if (f->d) {
                (void) bus_reply_errorf(f->d->call, name, "%s", msg ? msg : name);
                f->d->userdata = NULL;
                deferred_free(f->d);
                f->d = NULL;
        }
        forward_abandon(f);
}

/* Whether the reply REPLY to F's Handle call comes from the handler itself, not from the bus
 * (its driver refusing the call) or from sd-bus (a local timeout or disconnect).  On the private
 * socket nothing stands between: what the handler's connection carries is the handler's, except
 * the errors sd-bus makes up locally when the connection goes. */
static bool reply_from_handler(Forward *f, sd_bus_message *reply, const Peer *handler) {
        const char *sender = sd_bus_message_get_sender(reply);
        const sd_bus_error *e;

        if (!handler)
                return false;
        if (handler->conn) {
                e = sd_bus_message_get_error(reply);
                return !e || !(sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY) ||
                               sd_bus_error_has_name(e, SD_BUS_ERROR_DISCONNECTED));
        }
        return sender && streq(sender, handler->unique_name);
}

/* F's Handle call failed with E, which the bus or sd-bus made, not the handler: name it as the
 * hub's error so that it is not taken for the handler's own. */
static void forward_fail_bus(Forward *f, const sd_bus_error *e) {
        const char *m = e->message ? e->message : "";

        if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY) || sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
            sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER) || sd_bus_error_has_name(e, SD_BUS_ERROR_DISCONNECTED))
                forward_fail(f, CH_ERROR_WORKER_GONE, "Worker '%s' left before replying.", f->worker);
        else if (sd_bus_error_has_name(e, SD_BUS_ERROR_LIMITS_EXCEEDED) || sd_bus_error_has_name(e, SD_BUS_ERROR_NO_MEMORY))
                forward_fail(f, CH_ERROR_LIMIT_EXCEEDED,
                             "The bus refused to pass '%s' to worker '%s' (%s: %s). The bus allows the hub fewer calls in "
                             "flight than the hub does: lower --max-handling-per-worker, or raise the bus's limit "
                             "(dbus-daemon: max_replies_per_connection).", f->method, f->worker, e->name, m);
        else if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
                forward_fail(f, CH_ERROR_WORKER_UNAVAILABLE, "The bus policy does not let the hub call worker '%s': %s", f->worker, m);
        else
                forward_fail(f, CH_ERROR_WORKER_UNAVAILABLE, "The bus could not deliver '%s' to worker '%s' (%s: %s).",
                             f->method, f->worker, e->name, m);
}

static int on_handle_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Forward *f = userdata;
        Peer *handler = f->handler;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        bool from_handler = reply_from_handler(f, reply, handler);
        int r;

        /* the call is over: it stops counting, and the slot dies with this callback */
        forward_call_ended(f);
        if (!f->d && !f->gather) {
                forward_free(f); /* an orphan: its caller was answered already */
                goto dispatch;
        }
        if (!e && !sd_bus_message_has_signature(reply, "v")) {
                forward_fail(f, SD_BUS_ERROR_FAILED, "Worker '%s' replied with signature '%s', not 'v'.",
                             f->worker, strempty(sd_bus_message_get_signature(reply, true)));
                goto dispatch;
        }
        if (e) {
                if (from_handler)
                        forward_fail(f, e->name, "%s", e->message ? e->message : "");
                else
                        forward_fail_bus(f, e);
                goto dispatch;
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
                goto dispatch;
        }
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
                r = sd_bus_message_new_method_return(f->d->call, &out);
                if (r >= 0)
                        r = sd_bus_message_copy(out, reply, true);
                if (r >= 0)
                        r = bus_send(out);
                if (r < 0)
                        (void) bus_reply_errorf(f->d->call, SD_BUS_ERROR_FAILED,
                                                "Cannot pass on the reply of worker '%s': %s", f->worker, strerror(-r));
        }
        f->d->userdata = NULL;
        deferred_free(f->d);
        forward_free(f);
dispatch:
        /* a slot of HANDLER is free: the oldest request in its backlog takes it */
        if (handler)
                handler_dispatch(handler);
        return 0;
}

/* Sends F to HANDLER as a Handle call, its payload taken from the caller's call.  The call has
 * no bus timeout: the caller's deadline is ours to keep, and the bus counts the call against
 * the hub until the worker answers whatever sd-bus does, so F keeps counting until then. */
static int forward_send(Forward *f, Peer *handler) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus_message *call = f->d ? f->d->call : f->gather->d->call;
        const char *skip;
        Hub *h = f->hub;
        int r;

        assert(!f->out && !f->handler);
        /* on the handler's own connection: the bus, or its private-socket connection */
        r = sd_bus_message_new_method_call(handler->bus, &m, handler->unique_name, HANDLER_PATH, CH_HANDLER1_INTERFACE, "Handle");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "sss", f->ns->name, f->method, f->origin);
        if (r < 0)
                return r;
        /* the payload follows the target and the method (Request), or the method (RequestAll) */
        r = sd_bus_message_rewind(call, true);
        for (int i = 0; r >= 0 && i < (f->gather ? 1 : 2); i++)
                r = sd_bus_message_read_basic(call, 's', &skip);
        if (r >= 0)
                r = sd_bus_message_copy(m, call, false);
        if (r < 0)
                return r;
        r = sd_bus_call_async(handler->bus, &f->slot, m, on_handle_reply, f, UINT64_MAX);
        bus_sent(handler->bus);
        if (r < 0)
                return r;
        f->handler = handler;
        f->out = true;
        LIST_APPEND(by_handler, handler->forwards, f);
        server_of(handler)->n_handling++;
        h->stats.requests_forwarded++;
        return 0;
}

static bool handler_has_room(Peer *p) {
        uint64_t max = p->hub->limits.max_handling_per_worker;
        return max == 0 || server_of(p)->n_handling < max;
}

/* Sends F to HANDLER, or, when HANDLER already handles as many calls as it may, puts F in its
 * backlog.  -EXFULL when the backlog is full too; -errno when the call cannot be sent. */
static int forward_submit(Forward *f, Peer *handler) {
        ServerRef *s = server_of(handler);

        free(f->worker);
        f->worker = strdup(peer_origin(handler));
        if (!f->worker)
                return -ENOMEM;
        if (handler_has_room(handler))
                return forward_send(f, handler);
        if (s->n_backlog >= f->hub->limits.max_backlog_per_worker)
                return -EXFULL;
        f->handler = handler;
        LIST_APPEND(by_handler, s->backlog, f);
        s->n_backlog++;
        f->hub->stats.requests_backlogged++;
        return 0;
}

/* Fails F after forward_submit() returned R. */
static void forward_fail_submit(Forward *f, Peer *handler, int r) {
        Hub *h = f->hub;

        if (r == -EXFULL) {
                h->stats.requests_refused_busy++;
                forward_fail(f, CH_ERROR_LIMIT_EXCEEDED,
                             "Worker '%s' has %zu calls in flight that it has not answered (--max-handling-per-worker=%llu) "
                             "and %zu more waiting (--max-backlog-per-worker=%llu).",
                             peer_origin(handler), server_of(handler)->n_handling,
                             (unsigned long long) h->limits.max_handling_per_worker, server_of(handler)->n_backlog,
                             (unsigned long long) h->limits.max_backlog_per_worker);
        } else
                forward_fail(f, CH_ERROR_WORKER_UNAVAILABLE, "Cannot forward '%s' to worker '%s': %s",
                             f->method, peer_origin(handler), strerror(-r));
}

/* P has room again: send what waits in its backlog, oldest first, while the room lasts. */
static void handler_dispatch(Peer *p) {
        Forward *f;
        int r;

        while (handler_has_room(p) && (f = server_of(p)->backlog.first)) {
                forward_unqueue(f);
                r = forward_send(f, p);
                if (r < 0)
                        forward_fail_submit(f, p, r);
        }
}

/* --- Request -------------------------------------------------------------------------- */

static void request_ended(Deferred *d, DeferredEnd why) {
        Forward *f = d->userdata;
        Hub *h = d->hub;

        if (!f)
                return;
        if (why == DEFERRED_TIMEOUT && f->out)
                (void) bus_reply_errorf(d->call, CH_ERROR_TIMEOUT,
                                        "Worker '%s' did not answer '%s' within the timeout.", f->worker, f->method);
        else if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, CH_ERROR_TIMEOUT,
                                        "Worker '%s' did not start handling '%s' within the timeout: it has %zu calls in "
                                        "flight that it has not answered (--max-handling-per-worker=%llu).",
                                        f->worker, f->method, server_of(f->handler)->n_handling,
                                        (unsigned long long) h->limits.max_handling_per_worker);
        d->userdata = NULL;
        f->d = NULL;
        forward_abandon(f);
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
                (void) bus_reply_errorf(d->call, "org.clusterhub.Error.WorkerUnavailable",
                                        "Worker '%s' did not register and serve '%s' within %llu ms.",
                                        w->target, w->method, (unsigned long long) w->timeout_ms);
        waiting_free(w);
}

typedef struct RequestOptions {
        uint64_t timeout_ms;
} RequestOptions;

/* timeout_ms 0 or absent: DEFAULT_MS (--request-timeout-ms) */
static int read_request_options(sd_bus_message *m, uint64_t default_ms, RequestOptions *o, sd_bus_error *ret_error) {
        const BusOption table[] = {
                { "timeout_ms", BUS_OPTION_UINT64, &o->timeout_ms },
                {}
        };
        int r = bus_read_options(m, table, ret_error);
        if (r >= 0 && o->timeout_ms == 0)
                o->timeout_ms = default_ms;
        return r;
}

/* Reads the trailing options of a Request while keeping CALL positioned at its payload. */
static int peek_options(sd_bus_message *m, uint64_t default_ms, RequestOptions *o, sd_bus_error *ret_error) {
        int r;

        r = sd_bus_message_skip(m, "v");
        if (r < 0)
                return r;
        r = read_request_options(m, default_ms, o, ret_error);
        if (r < 0)
                return r;
        /* back to the payload: rewind, skip the leading strings */
        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        return 0;
}

/* Starts a Request of CALLER for HANDLER (any serving worker when ANY); the call is answered
 * from here on, errors included. */
static int start_request(Namespace *ns, sd_bus_message *m, Peer *caller, Peer *handler, bool any, const char *method,
                         uint64_t timeout_ms) {
        Forward *f;
        int r;

        f = forward_new(ns, method, peer_origin(caller));
        if (!f)
                return -ENOMEM;
        f->any = any;
        r = deferred_new(ns->hub, m, caller, timeout_ms, request_ended, f, &f->d);
        if (r < 0) {
                forward_free(f);
                return r;
        }
        r = forward_submit(f, handler);
        if (r < 0)
                forward_fail_submit(f, handler, r);
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
                Forward *f;
                int r;

                next = d->by_kind_next;
                if (!streq(w->target, p->id) || !serve_table_serves(ns->served, server_of(p), w->method))
                        continue;
                LIST_REMOVE(by_kind, ns->waiting, d);
                f = forward_new(ns, w->method, d->peer ? peer_origin(d->peer) : "");
                if (!f) {
                        (void) bus_reply_errorf(d->call, CH_ERROR_WORKER_UNAVAILABLE,
                                                "Cannot forward '%s' to worker '%s': %s", w->method, w->target, strerror(ENOMEM));
                        waiting_free(w);
                        d->userdata = NULL;
                        d->on_end = NULL;
                        deferred_free(d);
                        continue;
                }
                waiting_free(w);
                f->d = d;
                d->userdata = f;
                d->on_end = request_ended;
                r = forward_submit(f, p);
                if (r < 0)
                        forward_fail_submit(f, p, r);
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
        r = peek_options(m, ns->hub->limits.request_timeout_ms, &o, ret_error);
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
                handler = serve_table_pick_ready(ns->served, method, ns->hub->limits.max_handling_per_worker);
                if (!handler)
                        return bus_error_errno(ret_error, -EBADRQC, "Nobody serves '%s' in namespace '%s'.", method, ns->name);
                return start_request(ns, m, caller, handler, true, method, o.timeout_ms);
        }
        handler = workers_find(ns->hub, target);
        if (handler && serve_table_serves(ns->served, server_of(handler), method))
                return start_request(ns, m, caller, handler, false, method, o.timeout_ms);
        if (handler)
                return bus_error_errno(ret_error, -EBADRQC, "Worker '%s' does not serve '%s' in namespace '%s'.",
                                       target, method, ns->name);
        /* not registered yet (systemd may still be starting it): wait within the timeout */
        return wait_for_target(ns, m, caller, target, method, o.timeout_ms, ret_error);
}

/* --- RequestAll --------------------------------------------------------------------------- */

static void gather_free(Gather *g) {
        while (g->pending.first)
                forward_abandon(g->pending.first);
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
                r = bus_send(out);
        if (r < 0)
                (void) bus_reply_errorf(g->d->call, SD_BUS_ERROR_FAILED, "Cannot build the RequestAll reply: %s", strerror(-r));
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
                        gather_add_error(g, strdup(f->worker ? f->worker : "?"),
                                         strdup(f->out ? "org.clusterhub.Error.Timeout: no answer within the timeout"
                                                       : "org.clusterhub.Error.Timeout: the worker was busy with as many calls "
                                                         "as --max-handling-per-worker allows for the whole timeout"));
                        g->n_pending--;
                        forward_abandon(f);
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
        r = peek_options(m, ns->hub->limits.request_timeout_ms, &o, ret_error);
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
                Forward *f = forward_new(ns, method, peer_origin(caller));
                if (!f) {
                        gather_add_error(g, strdup(peer_origin(server)), strdup("org.freedesktop.DBus.Error.NoMemory: out of memory"));
                        continue;
                }
                f->gather = g;
                LIST_APPEND(by_gather, g->pending, f);
                g->n_pending++;
                r = forward_submit(f, server);
                if (r < 0)
                        forward_fail_submit(f, server, r);
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
        Peer *p = peer_of(ns->hub, m);

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
        ServerRef *s = server_of(p);
        Forward *f;

        server_ref_clear(s);
        while ((f = p->forwards.first)) {
                forward_call_ended(f);
                forward_fail(f, CH_ERROR_WORKER_GONE, "Worker '%s' left before replying.", peer_origin(p));
        }
        /* what waited for P: a Request without target goes to another server, the rest fails */
        while ((f = s->backlog.first)) {
                Peer *other = NULL;
                int r;

                forward_unqueue(f);
                if (f->any)
                        other = serve_table_pick_ready(f->ns->served, f->method, p->hub->limits.max_handling_per_worker);
                if (!other) {
                        forward_fail(f, CH_ERROR_WORKER_GONE, "Worker '%s' left before handling '%s'.", peer_origin(p), f->method);
                        continue;
                }
                r = forward_submit(f, other);
                if (r < 0)
                        forward_fail_submit(f, other, r);
        }
}

/* The first request of NS in LIST (a handler's forwards or backlog), or NULL. */
static Forward *first_of_namespace(Forward *first, Namespace *ns) {
        for (Forward *f = first; f; f = f->by_handler_next)
                if (f->ns == ns)
                        return f;
        return NULL;
}

void bus_requests_drop(Namespace *ns) {
        Hub *h = ns->hub;
        Peer *p;
        size_t i = 0;

        while (ns->waiting.first) {
                Deferred *d = ns->waiting.first;
                Waiting *w = d->userdata;
                LIST_REMOVE(by_kind, ns->waiting, d);
                (void) bus_reply_errorf(d->call, CH_ERROR_NAMESPACE_DROPPED, "Namespace '%s' was dropped.", ns->name);
                waiting_free(w);
                d->userdata = NULL;
                d->on_end = NULL;
                deferred_free(d);
        }
        /* Failing one may finish a RequestAll, which lets go of its other forwards: look again
         * from the start each time.  The calls out stay counted (as orphans) until answered. */
        while (hashmap_iterate(h->peers, &i, (void **) &p, NULL)) {
                Forward *f;

                while ((f = first_of_namespace(p->forwards.first, ns)) ||
                       (f = first_of_namespace(server_of(p)->backlog.first, ns)))
                        forward_fail(f, CH_ERROR_NAMESPACE_DROPPED, "Namespace '%s' was dropped.", ns->name);
        }
}

const ChRequests1Handlers bus_requests_handlers = {
        .serve = method_serve,
        .unserve = method_unserve,
        .request = method_request,
        .request_all = method_request_all,
};
