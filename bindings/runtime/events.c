/* SPDX-License-Identifier: MIT */
/* Events: listeners with refcounted bus matches (arg0 / arg0namespace), local and remote emits,
 * and the rule that a process never receives its own remote emit. */
#include "runtime-internal.h"

#define MAX_EVENT_BYTES 255

static bool event_name_is_valid(const char *event) {
        return !isempty(event) && strlen(event) <= MAX_EVENT_BYTES;
}

static bool listener_matches(const Listener *l, const char *ns, const char *event) {
        size_t n;

        if (l->dead || !streq(l->ns, ns))
                return false;
        if (!l->prefix)
                return streq(l->name, event);
        n = strlen(l->name);
        return strncmp(event, l->name, n) == 0 && (event[n] == 0 || event[n] == '.');
}

static void match_unref(Match *m) {
        if (!m || --m->n_ref > 0)
                return;
        LIST_REMOVE(m->client->matches, m);
        sd_bus_slot_unref(m->slot);
        free(m->ns);
        free(m->name);
        free(m);
}

static void listener_free(ChClient *c, Listener *l) {
        if (l->next)
                l->next->prev = l->prev;
        else
                c->listeners_tail = l->prev;
        if (l->prev)
                l->prev->next = l->next;
        else
                c->listeners = l->next;
        free(l->ns);
        free(l->name);
        free(l);
}

/* Drops the listener's bus match at once; the record itself goes now or, while an event is
 * being dispatched (the loop may stand on it), at the end of the dispatch. */
static void listener_remove(ChClient *c, Listener *l) {
        if (l->dead)
                return;
        l->dead = true;
        match_unref(l->match);
        l->match = NULL;
        if (c->dispatching)
                c->need_sweep = true;
        else
                listener_free(c, l);
}

static void sweep(ChClient *c) {
        Listener *l, *next;

        if (c->dispatching || !c->need_sweep)
                return;
        c->need_sweep = false;
        for (l = c->listeners; l; l = next) {
                next = l->next;
                if (l->dead)
                        listener_free(c, l);
        }
}

/* M is positioned anywhere; each listener gets it positioned at the payload. */
static int dispatch(ChClient *c, const char *ns, const char *event, const char *origin, sd_bus_message *m) {
        uint64_t last = c->last_listener_id; /* listeners added by a callback wait for the next event */
        int n = 0;

        c->dispatching++;
        for (Listener *l = c->listeners; l; l = l->next) {
                if (l->id > last || !listener_matches(l, ns, event))
                        continue;
                ch_event_fn cb = l->cb;
                void *userdata = l->userdata;
                if (l->remaining > 0 && --l->remaining == 0)
                        listener_remove(c, l);
                if (sd_bus_message_rewind(m, true) < 0 || sd_bus_message_skip(m, "ss") < 0)
                        break;
                (void) cb(event, origin, m, userdata);
                n++;
        }
        c->dispatching--;
        sweep(c);
        return n;
}

static int on_event_signal(sd_bus_message *m, void *userdata, const char *event, const char *origin) {
        Match *match = userdata;
        ChClient *c = match->client;
        const char *sender = sd_bus_message_get_sender(m), *path = sd_bus_message_get_path(m);
        uint64_t cookie = 0;

        /* The hub's signals only, and none while no hub is on the bus.  The rule's sender= makes
         * the bus drop other senders' broadcasts, but a signal addressed to us is delivered
         * whatever our rules say, and sd-bus matches a well-known sender= against any unique
         * name: only this check tells the hub from a client that forges its signals. */
        if (!client_sender_is_hub(c, m))
                return 0;

        /* several of our rules may match one signal (an exact and a prefix listener): sd-bus
         * then runs each; dispatch the signal once, to every listener, in registration order */
        (void) sd_bus_message_get_cookie(m, &cookie);
        if (cookie == c->last_cookie && streq_ptr(sender, c->last_sender))
                return 0;
        c->last_cookie = cookie;
        free(c->last_sender);
        c->last_sender = sender ? strdup(sender) : NULL;
        /* our own broadcast comes back through the hub: the local listeners already had it */
        if (!sd_bus_message_get_destination(m) && client_origin_is_ours(c, origin))
                return 0;
        if (!path || strncmp(path, CH_NAMESPACE_PATH_PREFIX, strlen(CH_NAMESPACE_PATH_PREFIX)) != 0)
                return 0;
        (void) dispatch(c, path + strlen(CH_NAMESPACE_PATH_PREFIX), event, origin, m);
        return 0;
}

static int match_get(ChClient *c, const char *ns, const char *name, bool prefix, Match **ret) {
        _cleanup_free_ char *path = NULL;
        Match *m;
        int r;

        for (m = c->matches; m; m = m->next)
                if (m->prefix == prefix && streq(m->ns, ns) && streq(m->name, name)) {
                        m->n_ref++;
                        *ret = m;
                        return 0;
                }
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        m = calloc(1, sizeof(Match));
        if (!m)
                return -ENOMEM;
        m->client = c;
        m->prefix = prefix;
        m->n_ref = 1;
        if (!(m->ns = strdup(ns)) || !(m->name = strdup(name))) {
                r = -ENOMEM;
                goto fail;
        }
        /* synchronous: when ch_on() returns, the bus sends us the event; sender= the hub's name:
         * the bus delivers only broadcasts of whoever owns it at the time */
        r = ch_events1_match_event(c->bus, &m->slot, CH_BUS_NAME, path, prefix ? NULL : name, prefix ? name : NULL,
                                   on_event_signal, m);
        if (r < 0)
                goto fail;
        LIST_PREPEND(c->matches, m);
        *ret = m;
        return 0;
fail:
        free(m->ns);
        free(m->name);
        free(m);
        return r;
}

static int listener_add(ChClient *c, const char *ns, const char *name, bool prefix, unsigned count,
                        ch_event_fn cb, void *userdata, uint64_t *ret_id) {
        Listener *l;
        int r;

        if (!c || !cb || !event_name_is_valid(name))
                return -EINVAL;
        ns = ch_namespace_or_default(ns);
        if (!ch_namespace_is_valid(ns))
                return -EINVAL;
        l = calloc(1, sizeof(Listener));
        if (!l)
                return -ENOMEM;
        if (!(l->ns = strdup(ns)) || !(l->name = strdup(name))) {
                free(l->ns);
                free(l);
                return -ENOMEM;
        }
        r = match_get(c, ns, name, prefix, &l->match);
        if (r < 0) {
                free(l->ns);
                free(l->name);
                free(l);
                return r;
        }
        l->id = ++c->last_listener_id;
        l->prefix = prefix;
        l->remaining = count;
        l->cb = cb;
        l->userdata = userdata;
        /* append: listeners run in registration order */
        l->prev = c->listeners_tail;
        if (c->listeners_tail)
                c->listeners_tail->next = l;
        else
                c->listeners = l;
        c->listeners_tail = l;
        if (ret_id)
                *ret_id = l->id;
        return 0;
}

_public_ int ch_on(ChClient *c, const char *ns, const char *event, ch_event_fn cb, void *userdata, uint64_t *ret_id) {
        return listener_add(c, ns, event, false, 0, cb, userdata, ret_id);
}

_public_ int ch_once(ChClient *c, const char *ns, const char *event, ch_event_fn cb, void *userdata, uint64_t *ret_id) {
        return listener_add(c, ns, event, false, 1, cb, userdata, ret_id);
}

_public_ int ch_many(ChClient *c, const char *ns, const char *event, unsigned count, ch_event_fn cb, void *userdata,
                     uint64_t *ret_id) {
        if (count == 0)
                return -EINVAL;
        return listener_add(c, ns, event, false, count, cb, userdata, ret_id);
}

_public_ int ch_on_prefix(ChClient *c, const char *ns, const char *prefix, ch_event_fn cb, void *userdata, uint64_t *ret_id) {
        return listener_add(c, ns, prefix, true, 0, cb, userdata, ret_id);
}

_public_ int ch_off(ChClient *c, uint64_t id) {
        if (!c)
                return -EINVAL;
        for (Listener *l = c->listeners; l; l = l->next)
                if (l->id == id && !l->dead) {
                        listener_remove(c, l);
                        return 0;
                }
        return -ENOENT;
}

int events_rematch_all(ChClient *c) {
        int ret = 0;

        c->last_cookie = 0; /* a new connection numbers its messages from 1 again */
        free(c->last_sender);
        c->last_sender = NULL;
        for (Match *m = c->matches; m; m = m->next) {
                _cleanup_free_ char *path = NULL;
                int r;

                m->slot = sd_bus_slot_unref(m->slot);
                r = ch_namespace_path(m->ns, &path);
                if (r >= 0)
                        r = ch_events1_match_event_async(c->bus, &m->slot, CH_BUS_NAME, path, m->prefix ? NULL : m->name,
                                                         m->prefix ? m->name : NULL, on_event_signal, m);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

void events_free_all(ChClient *c) {
        while (c->listeners) {
                Listener *l = c->listeners;
                if (!l->dead)
                        match_unref(l->match);
                listener_free(c, l);
        }
        while (c->matches) {
                /* unreachable unless a listener leaked its reference; be safe */
                c->matches->n_ref = 1;
                match_unref(c->matches);
        }
}

/* ---- emitting -------------------------------------------------------------------------- */

static int append_payload(sd_bus_message *m, ch_append_fn append, void *userdata) {
        return append ? append(m, userdata) : append_empty_payload(m, NULL);
}

_public_ int ch_emit_local(ChClient *c, const char *ns, const char *event, ch_append_fn append, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        const char *origin;
        int r;

        if (!c || !event_name_is_valid(event))
                return -EINVAL;
        ns = ch_namespace_or_default(ns);
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        origin = c->registered && c->id ? c->id : ch_client_get_unique_name(c);
        /* the same signal the hub would send, so listeners read local and remote events alike */
        r = sd_bus_message_new_signal(c->bus, &m, path, CH_EVENTS1_INTERFACE, "Event");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", event, origin ? origin : "");
        if (r < 0)
                return r;
        r = append_payload(m, append, userdata);
        if (r < 0)
                return r;
        r = sd_bus_message_seal(m, c->local_cookie++, 0);
        if (r < 0)
                return r;
        return dispatch(c, ns, event, origin ? origin : "", m);
}

static int send_emit(ChClient *c, const char *ns, const char *worker, const char *event, ch_append_fn append, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!c || !event_name_is_valid(event))
                return -EINVAL;
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, CH_BUS_NAME, path, CH_EVENTS1_INTERFACE, worker ? "EmitTo" : "Emit");
        if (r < 0)
                return r;
        if (worker) {
                r = sd_bus_message_append_basic(m, 's', worker);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_append_basic(m, 's', event);
        if (r < 0)
                return r;
        r = append_payload(m, append, userdata);
        if (r < 0)
                return r;
        /* fire and forget (DESIGN: NO_REPLY_EXPECTED when no ack is wanted); the bus keeps
         * the order per sender */
        r = sd_bus_message_set_expect_reply(m, 0);
        if (r < 0)
                return r;
        return sd_bus_send(c->bus, m, NULL);
}

_public_ int ch_emit_remote(ChClient *c, const char *ns, const char *event, ch_append_fn append, void *userdata) {
        int r = send_emit(c, ns, NULL, event, append, userdata);
        return r < 0 ? r : 0;
}

_public_ int ch_emit(ChClient *c, const char *ns, const char *event, ch_append_fn append, void *userdata) {
        int n, r;

        /* check everything before any listener runs */
        if (!c || !event_name_is_valid(event) || !ch_namespace_is_valid(ch_namespace_or_default(ns)))
                return -EINVAL;
        n = ch_emit_local(c, ns, event, append, userdata);
        if (n < 0)
                return n;
        r = ch_emit_remote(c, ns, event, append, userdata);
        return r < 0 ? r : n;
}

_public_ int ch_emit_to(ChClient *c, const char *ns, const char *worker, const char *event, ch_append_fn append,
                        void *userdata) {
        int r;

        if (isempty(worker))
                return -EINVAL;
        r = send_emit(c, ns, worker, event, append, userdata);
        return r < 0 ? r : 0;
}
