/* SPDX-License-Identifier: MIT */
/* Requests: serving methods through org.clusterhub.Handler1 (replies now or later) and sending
 * requests, blocking or with a callback. */
#include <stdio.h>

#include "ch-handler1-server.h"
#include "runtime-internal.h"

#define REQUEST_BUS_MARGIN_MS 5000      /* the bus waits longer than the hub, so its Timeout wins */

int append_empty_payload(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "s", "");
}

static Served *served_find(ChClient *c, const char *ns, const char *method) {
        for (Served *s = c->served; s; s = s->next)
                if (streq(s->ns, ns) && streq(s->method, method))
                        return s;
        return NULL;
}

static void served_free(ChClient *c, Served *s) {
        LIST_REMOVE(c->served, s);
        free(s->ns);
        free(s->method);
        free(s);
}

/* ---- ChRequest --------------------------------------------------------------------------- */

static bool error_name_is_valid(const char *name) {
        size_t n = 0, elements = 1;
        bool start = true;

        if (isempty(name) || strlen(name) > 255)
                return false;
        for (const char *p = name; *p; p++, n++) {
                if (*p == '.') {
                        if (start)
                                return false;
                        elements++;
                        start = true;
                        continue;
                }
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (!start && *p >= '0' && *p <= '9')))
                        return false;
                start = false;
        }
        return !start && elements >= 2;
}

_public_ ChRequest *ch_request_ref(ChRequest *req) {
        if (req)
                req->n_ref++;
        return req;
}

_public_ ChRequest *ch_request_unref(ChRequest *req) {
        if (!req || --req->n_ref > 0)
                return NULL;
        if (!req->answered)
                (void) ch_request_fail(req, SD_BUS_ERROR_FAILED, "The handler did not reply.");
        if (req->client)
                LIST_REMOVE(req->client->requests, req);
        sd_bus_message_unref(req->call);
        free(req->ns);
        free(req->method);
        free(req->origin);
        free(req);
        return NULL;
}

_public_ ChClient *ch_request_get_client(ChRequest *req) {
        return req ? req->client : NULL;
}

_public_ const char *ch_request_get_namespace(ChRequest *req) {
        return req ? req->ns : NULL;
}

_public_ const char *ch_request_get_method(ChRequest *req) {
        return req ? req->method : NULL;
}

_public_ const char *ch_request_get_origin(ChRequest *req) {
        return req ? req->origin : NULL;
}

_public_ sd_bus_message *ch_request_get_payload(ChRequest *req) {
        return req ? req->call : NULL;
}

_public_ bool ch_request_is_answered(ChRequest *req) {
        return req && req->answered;
}

_public_ int ch_request_reply(ChRequest *req, ch_append_fn append, void *userdata) {
        int r;

        if (!req)
                return -EINVAL;
        if (req->answered)
                return -EALREADY;
        r = ch_handler1_reply_handle(req->call, append ? append : append_empty_payload, userdata);
        if (r < 0)
                return r; /* nothing was sent: the handler may still fail the request */
        req->answered = true;
        return 0;
}

_public_ int ch_request_fail(ChRequest *req, const char *name, const char *message) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (!req)
                return -EINVAL;
        if (req->answered)
                return -EALREADY;
        if (!error_name_is_valid(name))
                return -EINVAL;
        (void) sd_bus_error_set(&e, name, message); /* returns the errno NAME maps to */
        if (!sd_bus_error_is_set(&e))
                return -ENOMEM;
        r = sd_bus_reply_method_error(req->call, &e);
        sd_bus_error_free(&e);
        if (r < 0)
                return r;
        req->answered = true;
        return 0;
}

_public_ int ch_request_fail_errno(ChRequest *req, int error, const char *message) {
        const char *name;
        int r;

        if (!req || error == 0)
                return -EINVAL;
        if (req->answered)
                return -EALREADY;
        error = error < 0 ? -error : error;
        name = ch_error_name_from_errno(error);
        if (name)
                return ch_request_fail(req, name, message ? message : strerror(error));
        r = message ? sd_bus_reply_method_errnof(req->call, error, "%s", message) : sd_bus_reply_method_errno(req->call, error, NULL);
        if (r < 0)
                return r;
        req->answered = true;
        return 0;
}

/* ---- serving ---------------------------------------------------------------------------- */

static int on_handle(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *ns, const char *method,
                     const char *origin) {
        ChClient *c = userdata;
        ChRequest *req;
        Served *s;
        int r;

        /* the hub forwards requests; a call from anyone else is a forged job */
        if (!client_sender_is_hub(c, m)) {
                (void) sd_bus_reply_method_errorf(m, SD_BUS_ERROR_ACCESS_DENIED,
                                                  "Only the owner of %s may call Handle.", CH_BUS_NAME);
                return 1;
        }
        s = served_find(c, ns, method);
        if (!s) {
                (void) sd_bus_reply_method_errorf(m, CH_ERROR_NO_HANDLER, "This worker does not serve '%s' in namespace '%s'.",
                                                  method, ns);
                return 1;
        }
        req = calloc(1, sizeof(ChRequest));
        if (!req)
                return -ENOMEM;
        req->n_ref = 1;
        req->call = sd_bus_message_ref(m);
        if (!(req->ns = strdup(ns)) || !(req->method = strdup(method)) || !(req->origin = strdup(origin))) {
                req->answered = true; /* sd-bus answers the -ENOMEM */
                ch_request_unref(req);
                return -ENOMEM;
        }
        req->client = c;
        LIST_PREPEND(c->requests, req);

        r = s->handler(req, s->userdata);
        if (r < 0 && !req->answered)
                (void) ch_request_fail_errno(req, r, NULL);
        ch_request_unref(req);
        return 1;
}

static const ChHandler1Handlers handler1_handlers = {
        .handle = on_handle,
};

static int serve_call(ChClient *c, const char *ns, const char *method, bool serve) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *methods[] = { (char *) method, NULL };
        int r;

        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        r = serve ? ch_requests1_call_serve(c->bus, CH_BUS_NAME, path, methods, &e)
                  : ch_requests1_call_unserve(c->bus, CH_BUS_NAME, path, methods, &e);
        client_set_error(c, &e, r);
        sd_bus_error_free(&e);
        return r;
}

_public_ int ch_serve(ChClient *c, const char *ns, const char *method, ch_request_handler_fn handler, void *userdata) {
        Served *s;
        int r;

        if (!c || isempty(method) || !handler)
                return -EINVAL;
        ns = ch_namespace_or_default(ns);
        if (!ch_namespace_is_valid(ns))
                return -EINVAL;
        if (served_find(c, ns, method))
                return -EEXIST;
        if (!c->handler_slot) {
                r = ch_handler1_add_object(c->bus, &c->handler_slot, CH_HANDLER_PATH, &handler1_handlers, c);
                if (r < 0)
                        return r;
        }
        s = calloc(1, sizeof(Served));
        if (!s)
                return -ENOMEM;
        if (!(s->ns = strdup(ns)) || !(s->method = strdup(method))) {
                free(s->ns);
                free(s);
                return -ENOMEM;
        }
        s->handler = handler;
        s->userdata = userdata;
        /* in the table before the hub knows: a request may come right after Serve's reply */
        LIST_PREPEND(c->served, s);
        r = serve_call(c, ns, method, true);
        if (r < 0) {
                served_free(c, s);
                return r;
        }
        return 0;
}

_public_ int ch_unserve(ChClient *c, const char *ns, const char *method) {
        Served *s;

        if (!c || isempty(method))
                return -EINVAL;
        ns = ch_namespace_or_default(ns);
        s = served_find(c, ns, method);
        if (!s)
                return -ENOENT;
        served_free(c, s);
        return serve_call(c, ns, method, false);
}

static int on_reserved(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        ChClient *c = userdata;

        if (error)
                client_set_error(c, error, -EIO);
        return 0;
}

static int reserve(ChClient *c, const char *ns) {
        int ret = 0;

        for (Served *s = c->served; s; s = s->next) {
                if (ns && !streq(s->ns, ns))
                        continue;
                _cleanup_free_ char *path = NULL;
                char *methods[] = { s->method, NULL };
                int r = ch_namespace_path(s->ns, &path);
                if (r >= 0)
                        r = ch_requests1_call_serve_async(c->bus, NULL, CH_BUS_NAME, path, methods, on_reserved, c, 0);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

int requests_reattach(ChClient *c) {
        if (!c->handler_slot)
                return 0;
        c->handler_slot = sd_bus_slot_unref(c->handler_slot);
        return ch_handler1_add_object(c->bus, &c->handler_slot, CH_HANDLER_PATH, &handler1_handlers, c);
}

/* After a hub restart: serve everything again (asynchronously, in the loop). */
int requests_reserve_all(ChClient *c) {
        return reserve(c, NULL);
}

int requests_reserve_namespace(ChClient *c, const char *ns) {
        return reserve(c, ns);
}

/* ---- requesting ------------------------------------------------------------------------- */

typedef struct RequestArgs {
        ch_append_fn append;
        void *userdata;
        uint64_t timeout_ms;
} RequestArgs;

/* Request's trailing arguments: the payload and the options. */
static int append_request(sd_bus_message *m, void *userdata) {
        RequestArgs *a = userdata;
        int r;

        r = a->append ? a->append(m, a->userdata) : append_empty_payload(m, NULL);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 1, "timeout_ms", "t", a->timeout_ms);
}

static uint64_t bus_timeout_usec(uint64_t timeout_ms) {
        if (timeout_ms > (UINT64_MAX / USEC_PER_MSEC) - REQUEST_BUS_MARGIN_MS)
                return UINT64_MAX;
        return (timeout_ms + REQUEST_BUS_MARGIN_MS) * USEC_PER_MSEC;
}

_public_ int ch_request(ChClient *c, const char *ns, const char *target, const char *method,
                        ch_append_fn append, void *userdata, uint64_t timeout_ms,
                        sd_bus_message **ret_reply, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        RequestArgs a;
        int r;

        if (!c || isempty(method))
                return -EINVAL;
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        a = (RequestArgs) { append, userdata, timeout_ms ? timeout_ms : c->request_timeout_ms };
        /* built here rather than with the generated blocking stub: that one uses the bus's
         * default timeout (25 s), and ours follows timeout_ms */
        r = sd_bus_message_new_method_call(c->bus, &m, CH_BUS_NAME, path, CH_REQUESTS1_INTERFACE, "Request");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", target ? target : "", method);
        if (r < 0)
                return r;
        r = append_request(m, &a);
        if (r < 0)
                return r;
        r = sd_bus_call(c->bus, m, bus_timeout_usec(a.timeout_ms), &e, &reply);
        client_set_error(c, &e, r);
        if (r < 0) {
                if (ret_error)
                        sd_bus_error_move(ret_error, &e);
                sd_bus_error_free(&e);
                return r;
        }
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

static void pending_free(Pending *p) {
        if (p->client)
                LIST_REMOVE(p->client->pending, p);
        sd_bus_slot_unref(p->slot);
        free(p);
}

static int on_request_reply(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Pending *p = userdata;
        ChClient *c = p->client;
        ch_reply_fn cb = p->cb;
        void *ud = p->userdata;

        pending_free(p); /* sd-bus holds the slot while this runs */
        cb(c, reply, error, ud);
        return 0;
}

_public_ int ch_request_async(ChClient *c, const char *ns, const char *target, const char *method,
                              ch_append_fn append, void *append_userdata, uint64_t timeout_ms,
                              ch_reply_fn callback, void *userdata) {
        _cleanup_free_ char *path = NULL;
        RequestArgs a;
        Pending *p;
        int r;

        if (!c || isempty(method) || !callback)
                return -EINVAL;
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        a = (RequestArgs) { append, append_userdata, timeout_ms ? timeout_ms : c->request_timeout_ms };
        p = calloc(1, sizeof(Pending));
        if (!p)
                return -ENOMEM;
        *p = (Pending) { .client = c, .cb = callback, .userdata = userdata };
        r = ch_requests1_call_request_async(c->bus, &p->slot, CH_BUS_NAME, path, target ? target : "", method,
                                            append_request, &a, on_request_reply, p, bus_timeout_usec(a.timeout_ms));
        if (r < 0) {
                free(p);
                return r;
        }
        LIST_PREPEND(c->pending, p);
        return 0;
}

void requests_free_all(ChClient *c) {
        while (c->pending)
                pending_free(c->pending);
        while (c->requests) {
                ChRequest *req = c->requests;
                if (!req->answered)
                        (void) ch_request_fail(req, SD_BUS_ERROR_FAILED, "The worker is shutting down.");
                LIST_REMOVE(c->requests, req);
                req->client = NULL;
        }
        while (c->served)
                served_free(c, c->served);
        c->handler_slot = sd_bus_slot_unref(c->handler_slot);
}
