/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Requests1: a Request is forwarded to a serving connection as
 * org.clusterhub.Handler1.Handle and its reply (or error, unchanged) goes back to the caller.
 * The request machine (requests.c) keeps every forwarded request's state, its handler's load
 * (--max-handling-per-worker, the backlog), RequestAll's gathering and the Requests waiting for
 * a worker id that is not registered yet; this file sends the Handle calls, answers the callers
 * and keeps their deadlines (a Deferred each).  A request ends exactly once: reply, handler
 * error, Timeout, WorkerGone (the handler's connection closed), the caller leaving, or the
 * namespace being dropped. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/rrequests.h"
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

static ServerRef *server_of(Peer *p) {
        return &p->server;
}

static Peer *peer_of_server(ServerRef *s) {
        return s ? s->server : NULL;
}

/* --- what the request machine asks of the bus ---------------------------------------------- */

static const RequestOps request_ops;

static RequestMachine *machine_of(Hub *h) {
        if (!h->requests.ops)
                h->requests = (RequestMachine) { .ops = &request_ops, .limits = &h->limits, .stats = &h->stats };
        return &h->requests;
}

/* A Forward of METHOD for ORIGIN in NS, counted there until it leaves (left_namespace()). */
static int forward_new_in(Namespace *ns, const char *method, const char *origin, Forward **ret) {
        int r = forward_new(machine_of(ns->hub), ns, ns->served, method, origin, ret);

        if (r >= 0)
                ns->n_forwards++;
        return r;
}

static void left_namespace(void *userdata) {
        Namespace *ns = userdata;

        ns->n_forwards--;
        namespace_check_unused(ns);
}

static const char *server_name(ServerRef *s) {
        return peer_origin(peer_of_server(s));
}

static void call_free(void *call) {
        sd_bus_slot_unref(call);
}

static void reply_free(void *reply) {
        sd_bus_message_unref(reply);
}

/* F ended with the error NAME and a message made from FMT. */
static void forward_failf(Forward *f, const char *name, const char *fmt, ...) _printf_(3, 4);
static void forward_failf(Forward *f, const char *name, const char *fmt, ...) {
        _cleanup_(freep) char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        forward_fail(f, name, msg ? msg : name);
}

static void fail_forward(Forward *f, RequestError error, ServerRef *s, int errnum) {
        const Limits *l = f->machine->limits;

        switch (error) {
        case REQUEST_ERROR_GONE:
                forward_failf(f, CH_ERROR_WORKER_GONE, "Worker '%s' left before replying.", server_name(s));
                break;
        case REQUEST_ERROR_GONE_QUEUED:
                forward_failf(f, CH_ERROR_WORKER_GONE, "Worker '%s' left before handling '%s'.", server_name(s), f->method);
                break;
        case REQUEST_ERROR_BUSY:
                forward_failf(f, CH_ERROR_LIMIT_EXCEEDED,
                              "Worker '%s' has %zu calls in flight that it has not answered (--max-handling-per-worker=%llu) "
                              "and %zu more waiting (--max-backlog-per-worker=%llu).",
                              server_name(s), s->n_handling, (unsigned long long) l->max_handling_per_worker, s->n_backlog,
                              (unsigned long long) l->max_backlog_per_worker);
                break;
        case REQUEST_ERROR_UNSENDABLE:
                forward_failf(f, CH_ERROR_WORKER_UNAVAILABLE, "Cannot forward '%s' to worker '%s': %s", f->method,
                              server_name(s), strerror(errnum));
                break;
        }
}

/* The error NAME for the call of D, here or on the hub that asked (requests across hosts). */
static void reply_errorf(Deferred *d, const char *name, const char *fmt, ...) _printf_(3, 4);
static void reply_errorf(Deferred *d, const char *name, const char *fmt, ...) {
        _cleanup_(freep) char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!rrequests_answer_error(d, name, msg ? msg : name))
                (void) bus_reply_errorf(d->call, name, "%s", msg ? msg : name);
}

/* F's caller (a lone Request) gets the error NAME: MESSAGE. */
static void answer_error(Forward *f, const char *name, const char *message) {
        Deferred *d = f->caller;

        reply_errorf(d, name, "%s", message);
        d->userdata = NULL;
        deferred_free(d);
}


static void gather_finish(Gather *g);

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
                forward_failf(f, CH_ERROR_WORKER_GONE, "Worker '%s' left before replying.", f->worker);
        else if (sd_bus_error_has_name(e, SD_BUS_ERROR_LIMITS_EXCEEDED) || sd_bus_error_has_name(e, SD_BUS_ERROR_NO_MEMORY))
                forward_failf(f, CH_ERROR_LIMIT_EXCEEDED,
                             "The bus refused to pass '%s' to worker '%s' (%s: %s). The bus allows the hub fewer calls in "
                             "flight than the hub does: lower --max-handling-per-worker, or raise the bus's limit "
                             "(dbus-daemon: max_replies_per_connection).", f->method, f->worker, e->name, m);
        else if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
                forward_failf(f, CH_ERROR_WORKER_UNAVAILABLE, "The bus policy does not let the hub call worker '%s': %s", f->worker, m);
        else
                forward_failf(f, CH_ERROR_WORKER_UNAVAILABLE, "The bus could not deliver '%s' to worker '%s' (%s: %s).",
                             f->method, f->worker, e->name, m);
}

static int on_handle_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Forward *f = userdata;
        Peer *handler = peer_of_server(f->handler);
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        bool from_handler = reply_from_handler(f, reply, handler);
        ServerRef *s;
        int r;

        /* the call is over: it stops counting, and the slot dies with this callback */
        s = forward_call_ended(f);
        if (!f->caller && !f->gather) {
                forward_free(f); /* an orphan: its caller was answered already */
                goto dispatch;
        }
        if (!e && !sd_bus_message_has_signature(reply, "v")) {
                forward_failf(f, SD_BUS_ERROR_FAILED, "Worker '%s' replied with signature '%s', not 'v'.",
                              f->worker, strempty(sd_bus_message_get_signature(reply, true)));
                goto dispatch;
        }
        if (e) {
                if (from_handler)
                        forward_fail(f, e->name, e->message ? e->message : "");
                else
                        forward_fail_bus(f, e);
                goto dispatch;
        }
        if (f->gather && codec_message_fits(reply, CODEC_VARIANT_DEPTH_MAX) == 0) {
                /* it could not sit inside the a{sv} of replies: the bus would drop the hub */
                forward_failf(f, CH_ERROR_LIMIT_EXCEEDED, "Worker '%s' replied with a value nested deeper than %u containers, more than a RequestAll reply can carry.",
                              f->worker, CODEC_VARIANT_DEPTH_MAX);
                goto dispatch;
        }
        if (f->gather) {
                forward_gathered(f, sd_bus_message_ref(reply));
                goto dispatch;
        }
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
                Deferred *d = f->caller;

                r = 0;
                if (rrequests_answer_reply(d, reply)) /* a request of another hub: answered there */
                        goto replied;
                r = sd_bus_message_new_method_return(d->call, &out);
                if (r >= 0)
                        r = sd_bus_message_copy(out, reply, true);
                if (r >= 0)
                        r = bus_send(out);
replied:
                if (r < 0)
                        (void) bus_reply_errorf(d->call, SD_BUS_ERROR_FAILED,
                                                "Cannot pass on the reply of worker '%s': %s", f->worker, strerror(-r));
                d->userdata = NULL;
                deferred_free(d);
                f->caller = NULL;
        }
        forward_free(f);
dispatch:
        /* a slot of the handler is free: the oldest request in its backlog takes it */
        if (s)
                server_dispatch(s);
        return 0;
}

/* Sends F to S as a Handle call, its payload taken from the caller's call.  The call has no bus
 * timeout: the caller's deadline is ours to keep, and the bus counts the call against the hub
 * until the worker answers whatever sd-bus does, so F keeps counting until then. */
static int send_handle(Forward *f, ServerRef *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Deferred *d = f->caller ? f->caller : f->gather->caller;
        Peer *handler = peer_of_server(s);
        Namespace *ns = f->ns;
        sd_bus_slot *slot = NULL;
        const char *skip;
        int r;

        /* on the handler's own connection: the bus, or its private-socket connection */
        r = sd_bus_message_new_method_call(handler->bus, &m, handler->unique_name, HANDLER_PATH, CH_HANDLER1_INTERFACE, "Handle");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "sss", ns->name, f->method, f->origin);
        if (r < 0)
                return r;
        /* the payload follows the target and the method (Request), or the method (RequestAll) */
        r = sd_bus_message_rewind(d->call, true);
        for (int i = 0; r >= 0 && i < (f->gather ? 1 : 2); i++)
                r = sd_bus_message_read_basic(d->call, 's', &skip);
        if (r >= 0)
                r = sd_bus_message_copy(m, d->call, false);
        if (r < 0)
                return r;
        r = sd_bus_call_async(handler->bus, &slot, m, on_handle_reply, f, UINT64_MAX);
        bus_sent(handler->bus);
        if (r < 0)
                return r;
        f->call = slot;
        return 0;
}

static void gathered(Gather *g) {
        gather_finish(g);
}

static const RequestOps request_ops = {
        .send = send_handle,
        .call_free = call_free,
        .fail = fail_forward,
        .answer_error = answer_error,
        .gathered = gathered,
        .left_namespace = left_namespace,
        .reply_free = reply_free,
        .server_name = server_name,
};

/* --- Request -------------------------------------------------------------------------- */

static void request_ended(Deferred *d, DeferredEnd why) {
        Forward *f = d->userdata;

        if (!f)
                return;
        if (why == DEFERRED_TIMEOUT && f->out)
                reply_errorf(d, CH_ERROR_TIMEOUT, "Worker '%s' did not answer '%s' within the timeout.", f->worker, f->method);
        else if (why == DEFERRED_TIMEOUT)
                reply_errorf(d, CH_ERROR_TIMEOUT,
                                        "Worker '%s' did not start handling '%s' within the timeout: it has %zu calls in "
                                        "flight that it has not answered (--max-handling-per-worker=%llu).",
                                        f->worker, f->method, f->handler->n_handling,
                                        (unsigned long long) f->machine->limits->max_handling_per_worker);
        d->userdata = NULL;
        f->caller = NULL;
        forward_abandon(f);
}

static void waiting_ended(Deferred *d, DeferredEnd why) {
        RequestWait *w = d->userdata;

        if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, CH_ERROR_WORKER_UNAVAILABLE,
                                        "Worker '%s' did not register and serve '%s' within %llu ms.",
                                        w->target, w->method, (unsigned long long) w->timeout_ms);
        request_wait_free(w);
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
static int start_request(Namespace *ns, sd_bus_message *m, Peer *caller, const char *origin, Peer *handler, bool any,
                         const char *method, uint64_t timeout_ms) {
        Forward *f;
        Deferred *d;
        int r;

        r = forward_new_in(ns, method, origin, &f);
        if (r < 0)
                return r;
        f->any = any;
        r = deferred_new(ns->hub, m, caller, timeout_ms, request_ended, f, &d);
        if (r < 0) {
                forward_free(f);
                return r;
        }
        f->caller = d;
        forward_submit_or_fail(f, server_of(handler));
        return 1;
}

static int wait_for_target(Namespace *ns, sd_bus_message *m, Peer *caller, const char *target, const char *method,
                           uint64_t timeout_ms, sd_bus_error *ret_error) {
        CodecBuf buf = {};
        RequestWait *w;
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
        r = request_wait_new(&ns->waiting, target, method, timeout_ms, NULL, &w);
        if (r < 0)
                return r;
        r = deferred_new(ns->hub, m, caller, timeout_ms, waiting_ended, w, &d);
        if (r < 0) {
                request_wait_free(w);
                return r;
        }
        w->userdata = d;
        return 1;
}

/* Dispatch the waiting requests of NS that P can now serve. */
static void dispatch_waiting(Namespace *ns, Peer *p) {
        RequestWaitList ready = {};
        RequestWait *w;

        request_waits_take_ready(&ns->waiting, p->id, ns->served, server_of(p), &ready);
        while ((w = ready.first)) {
                Deferred *d = w->userdata;
                Forward *f;

                LIST_REMOVE(by_waits, ready, w);
                if (forward_new_in(ns, w->method, d->peer ? peer_origin(d->peer) : "", &f) < 0) {
                        (void) bus_reply_errorf(d->call, CH_ERROR_WORKER_UNAVAILABLE,
                                                "Cannot forward '%s' to worker '%s': %s", w->method, w->target, strerror(ENOMEM));
                        request_wait_free(w);
                        d->userdata = NULL;
                        d->on_end = NULL;
                        deferred_free(d);
                        continue;
                }
                request_wait_free(w);
                f->caller = d;
                d->userdata = f;
                d->on_end = request_ended;
                forward_submit_or_fail(f, server_of(p));
        }
}

/* A Request to TARGET, "ID@NODE", a worker of another hub (--redis). */
static int request_remote_target(Namespace *ns, sd_bus_message *m, sd_bus_error *ret_error, const char *target,
                                 const char *method) {
        _cleanup_(freep) char *id = NULL;
        RequestOptions o = {};
        RemoteNode *node;
        Peer *caller;
        int r;

        r = peek_options(m, ns->hub->limits.request_timeout_ms, &o, ret_error);
        if (r < 0)
                return r;
        r = rrequests_target(ns->hub, target, &id, &node);
        if (r == -ENOENT)
                return bus_error_errno(ret_error, -EHOSTUNREACH, "Worker '%s' is not registered on any host.", target);
        if (r == -EHOSTDOWN)
                return bus_error_errno(ret_error, r, "Redis cannot be reached (--redis) to pass on '%s' to '%s'.", method, target);
        if (r < 0)
                return r;
        r = peer_get_or_new(ns->hub, m, &caller);
        if (r < 0)
                return r;
        r = peer_check_pending(caller, ret_error);
        if (r < 0)
                return r;
        r = rrequests_send(ns->hub, node, id, ns->name, method, peer_origin(caller), m, caller, o.timeout_ms);
        if (r == -EINVAL)
                return bus_error_errno(ret_error, r, "The payload of '%s' carries file descriptors, which cannot cross hosts.", method);
        if (r == -EHOSTDOWN)
                return bus_error_errno(ret_error, r, "Redis cannot be reached (--redis) to pass on '%s'.", method);
        return r;
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
        if (strchr(target, '@') && rrequests_enabled(ns->hub))
                return request_remote_target(ns, m, ret_error, target, method);
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
                RemoteNode *node = NULL;

                /* round-robin over the servers here and the other hubs that serve it (--redis) */
                r = rrequests_pick(ns->hub, ns->name, method, serve_table_count(ns->served, method), &node);
                if (r == -EHOSTDOWN)
                        return bus_error_errno(ret_error, r, "Nobody serves '%s' in namespace '%s' on this host, and Redis "
                                               "cannot be reached to ask the others (--redis).", method, ns->name);
                if (r > 0) {
                        r = rrequests_send(ns->hub, node, NULL, ns->name, method, peer_origin(caller), m, caller, o.timeout_ms);
                        if (r == -EHOSTDOWN && serve_table_count(ns->served, method) > 0)
                                goto local; /* Redis went away: this host's servers still serve */
                        if (r == -EINVAL)
                                return bus_error_errno(ret_error, r, "The payload of '%s' carries file descriptors, which "
                                                       "cannot cross hosts.", method);
                        if (r == -EHOSTDOWN)
                                return bus_error_errno(ret_error, r, "Redis cannot be reached (--redis) to pass on '%s'.", method);
                        if (r == -ENOBUFS)
                                return peer_check_pending(caller, ret_error) < 0 ? -ENOBUFS : r;
                        return r;
                }
        local:
                handler = peer_of_server(serve_table_pick_ready(ns->served, method, ns->hub->limits.max_handling_per_worker));
                if (!handler)
                        return bus_error_errno(ret_error, -EBADRQC, "Nobody serves '%s' in namespace '%s'.", method, ns->name);
                return start_request(ns, m, caller, peer_origin(caller), handler, true, method, o.timeout_ms);
        }
        handler = workers_find(ns->hub, target);
        if (handler && serve_table_serves(ns->served, server_of(handler), method))
                return start_request(ns, m, caller, peer_origin(caller), handler, false, method, o.timeout_ms);
        if (handler)
                return bus_error_errno(ret_error, -EBADRQC, "Worker '%s' does not serve '%s' in namespace '%s'.",
                                       target, method, ns->name);
        /* not registered yet (systemd may still be starting it): wait within the timeout */
        return wait_for_target(ns, m, caller, target, method, o.timeout_ms, ret_error);
}

/* --- RequestAll --------------------------------------------------------------------------- */

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
                r = sd_bus_message_copy(out, g->replies[i], false);
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
        Deferred *d = g->caller;
        int r;

        if (rrequests_answer_gather(d, g)) /* a RequestAll of another hub: its rows go back there */
                return;
        r = sd_bus_message_new_method_return(d->call, &out);
        if (r >= 0)
                r = append_gathered(out, g);
        if (r >= 0)
                r = bus_send(out);
        if (r < 0)
                (void) bus_reply_errorf(d->call, SD_BUS_ERROR_FAILED, "Cannot build the RequestAll reply: %s", strerror(-r));
}

static void gather_finish(Gather *g) {
        Deferred *d = g->caller;

        gather_reply(g);
        d->userdata = NULL;
        deferred_free(d);
        gather_free(g);
}

static void gather_ended(Deferred *d, DeferredEnd why) {
        Gather *g = d->userdata;

        if (!g)
                return;
        /* the other hubs still out (--redis): Timeout errors, or let go */
        rrequests_gather_end(d->hub, g, why == DEFERRED_TIMEOUT);
        if (why == DEFERRED_TIMEOUT) {
                /* the ones still out become Timeout errors */
                gather_timeout(g, CH_ERROR_TIMEOUT ": no answer within the timeout",
                               CH_ERROR_TIMEOUT ": the worker was busy with as many calls as --max-handling-per-worker "
                               "allows for the whole timeout");
                gather_reply(g);
        }
        d->userdata = NULL;
        gather_free(g);
}

/* Scatters METHOD of CALLER (NULL: another hub's, with ORIGIN) to every server of NS and, when
 * REMOTE, to every other hub that serves it; the call M is answered from there. */
static int start_gather(Namespace *ns, sd_bus_message *m, Peer *caller, const char *origin, const char *method,
                        uint64_t timeout_ms, bool remote) {
        _cleanup_(freep) void **servers = NULL;
        size_t n = serve_table_count(ns->served, method);
        Gather *g;
        Deferred *d;
        int r;

        servers = calloc(n + 1, sizeof(void *));
        if (!servers)
                return -ENOMEM;
        n = serve_table_servers(ns->served, method, servers, n);
        r = gather_new(machine_of(ns->hub), NULL, &g);
        if (r < 0)
                return r;
        r = deferred_new(ns->hub, m, caller, timeout_ms, gather_ended, g, &d);
        if (r < 0) {
                gather_free(g);
                return r;
        }
        g->caller = d;
        for (size_t i = 0; i < n; i++) {
                Peer *server = servers[i];
                Forward *f;

                if (forward_new_in(ns, method, origin, &f) < 0) {
                        gather_add_error(g, peer_origin(server), SD_BUS_ERROR_NO_MEMORY ": out of memory");
                        continue;
                }
                gather_add(g, f);
                forward_submit_or_fail(f, server_of(server));
        }
        if (remote) /* the other hubs' shares (--redis) */
                rrequests_gather(ns->hub, g, ns->name, method, origin, m, timeout_ms);
        gather_started(g);
        return 1;
}

static int method_request_all(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *method) {
        Namespace *ns = userdata;
        RequestOptions o = {};
        Peer *caller;
        const char *skip;
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
        if (serve_table_count(ns->served, method) == 0 && rrequests_count_hubs(ns->hub, ns->name, method) == 0)
                return ch_requests1_reply_request_all(m, NULL, NULL);
        r = peer_get_or_new(ns->hub, m, &caller);
        if (r < 0)
                return r;
        r = peer_check_pending(caller, ret_error);
        if (r < 0)
                return r;
        return start_gather(ns, m, caller, peer_origin(caller), method, o.timeout_ms, true);
}

int bus_requests_serve_remote(Hub *h, bool all, const char *target, const char *ns_name, const char *method,
                              const char *origin, sd_bus_message *call, uint64_t timeout_ms, sd_bus_error *error) {
        Namespace *ns = NULL;
        Peer *handler;

        if (*target) {
                /* a worker of this hub, as a local Request to a registered worker (no waiting: the
                 * other hub saw it listed) */
                handler = workers_find(h, target);
                if (!handler)
                        return sd_bus_error_setf(error, CH_ERROR_WORKER_UNAVAILABLE, "Worker '%s' is not registered on node '%s'.",
                                                 target, h->node_name);
                if (namespace_get(h, ns_name, false, &ns) < 0 || !serve_table_serves(ns->served, server_of(handler), method))
                        return sd_bus_error_setf(error, CH_ERROR_NO_HANDLER, "Worker '%s@%s' does not serve '%s' in namespace '%s'.",
                                                 target, h->node_name, method, ns_name);
                return start_request(ns, call, NULL, origin, handler, false, method, timeout_ms);
        }
        if (namespace_get(h, ns_name, false, &ns) < 0 || serve_table_count(ns->served, method) == 0)
                return sd_bus_error_setf(error, CH_ERROR_NO_HANDLER, "Nobody serves '%s' in namespace '%s' on node '%s'.",
                                         method, ns_name, h->node_name);
        if (all)
                return start_gather(ns, call, NULL, origin, method, timeout_ms, false);
        handler = peer_of_server(serve_table_pick_ready(ns->served, method, h->limits.max_handling_per_worker));
        return start_request(ns, call, NULL, origin, handler, true, method, timeout_ms);
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
        rrequests_served_changed(ns->hub);
        if (p->id && ns->waiting.n > 0)
                dispatch_waiting(ns, p);
        return r;
}

static int method_unserve(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **methods) {
        Namespace *ns = userdata;
        Peer *p = peer_of(ns->hub, m);

        for (char **i = methods; p && i && *i; i++)
                (void) serve_table_remove(ns->served, server_of(p), *i);
        rrequests_served_changed(ns->hub);
        return ch_requests1_reply_unserve(m);
}

void bus_requests_worker_ready(Peer *p) {
        Namespace *ns;
        size_t i = 0;

        if (!p->id)
                return;
        while (hashmap_iterate(p->hub->namespaces, &i, (void **) &ns, NULL))
                if (ns->waiting.n > 0)
                        dispatch_waiting(ns, p);
}

void bus_requests_peer_gone(Peer *p) {
        bool served = server_of(p)->n > 0;

        server_gone(server_of(p));
        if (served)
                rrequests_served_changed(p->hub);
}

void bus_requests_drop(Namespace *ns) {
        _cleanup_(freep) char *msg = NULL;
        Hub *h = ns->hub;
        Peer *p;
        size_t i = 0;

        while (ns->waiting.items.first) {
                RequestWait *w = ns->waiting.items.first;
                Deferred *d = w->userdata;

                request_wait_free(w);
                (void) bus_reply_errorf(d->call, CH_ERROR_NAMESPACE_DROPPED, "Namespace '%s' was dropped.", ns->name);
                d->userdata = NULL;
                d->on_end = NULL;
                deferred_free(d);
        }
        rrequests_served_changed(h);
        if (asprintf(&msg, "Namespace '%s' was dropped.", ns->name) < 0)
                msg = NULL;
        /* the calls out stay counted (as orphans) until answered */
        while (hashmap_iterate(h->peers, &i, (void **) &p, NULL))
                server_fail_namespace(server_of(p), ns, CH_ERROR_NAMESPACE_DROPPED, msg ? msg : "Namespace dropped.");
}

const ChRequests1Handlers bus_requests_handlers = {
        .serve = method_serve,
        .unserve = method_unserve,
        .request = method_request,
        .request_all = method_request_all,
};
