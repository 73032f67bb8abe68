/* SPDX-License-Identifier: MIT */
/* The client: connection, event loop, registration, and following the hub across restarts
 * (NameOwnerChanged of org.clusterhub.Hub1). */
#include <stdio.h>

#include "runtime-internal.h"

#define BUS_DRIVER_NAME "org.freedesktop.DBus"
#define NOC_MATCH                                                                        \
        "type='signal',sender='" BUS_DRIVER_NAME "',path='/org/freedesktop/DBus',"      \
        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" CH_BUS_NAME "'"
#define DROPPED_MATCH                                                                    \
        "type='signal',sender='" CH_BUS_NAME "',path='" CH_HUB_PATH "',"                \
        "interface='" CH_HUB1_INTERFACE "',member='NamespaceDropped'"

int client_set_error(ChClient *c, const sd_bus_error *e, int r) {
        sd_bus_error_free(&c->last_error);
        if (e && sd_bus_error_is_set(e))
                (void) sd_bus_error_copy(&c->last_error, e);
        else if (r < 0)
                (void) sd_bus_error_set_errno(&c->last_error, r);
        return r;
}

bool ch_namespace_is_valid(const char *ns) {
        size_t n = 0;

        for (const char *p = ns; *p; p++, n++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return n > 0 && n <= 255;
}

const char *ch_namespace_or_default(const char *ns) {
        return isempty(ns) ? "default" : ns;
}

int ch_namespace_path(const char *ns, char **ret) {
        char *p;

        ns = ch_namespace_or_default(ns);
        if (!ch_namespace_is_valid(ns))
                return -EINVAL;
        if (asprintf(&p, "%s%s", CH_NAMESPACE_PATH_PREFIX, ns) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

bool client_sender_is_hub(ChClient *c, sd_bus_message *m) {
        /* On the private socket only the hub writes to us (its uid was checked when connecting),
         * whatever sender field it stamps.  On the bus anyone may send us anything: only the
         * current owner of the hub's name is the hub. */
        if (c->private_socket)
                return sd_bus_message_get_bus(m) == c->bus && c->hub_owner;
        return c->hub_owner && streq_ptr(sd_bus_message_get_sender(m), c->hub_owner);
}

bool client_origin_is_ours(ChClient *c, const char *origin) {
        const char *unique = NULL;

        if (c->registered && c->id && streq(origin, c->id))
                return true;
        return sd_bus_get_unique_name(c->bus, &unique) >= 0 && streq(origin, unique);
}

static int set_str(char **p, const char *s) {
        char *copy = NULL;

        if (s && !(copy = strdup(s)))
                return -ENOMEM;
        free(*p);
        *p = copy;
        return 0;
}

/* The worker id is the last element of the worker object path /org/clusterhub/Hub1/worker/<id>. */
static int id_from_path(ChClient *c, const char *path, char **ret) {
        static const char prefix[] = CH_HUB_PATH "/worker/";
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (strncmp(path, prefix, strlen(prefix)) == 0 && path[strlen(prefix)] && !strchr(path + strlen(prefix), '/')) {
                char *id = strdup(path + strlen(prefix));
                if (!id)
                        return -ENOMEM;
                *ret = id;
                return 0;
        }
        r = ch_worker1_get_id(c->bus, CH_BUS_NAME, path, ret, &e);
        sd_bus_error_free(&e);
        return r;
}

static void notify_registered(ChClient *c, int error) {
        if (c->registered_cb)
                c->registered_cb(c, error < 0 ? NULL : c->id, error, c->registered_userdata);
}

/* ---- following the hub ------------------------------------------------------------------ */

static int on_reregistered(sd_bus_message *reply, const sd_bus_error *error, const char *worker, void *userdata) {
        ChClient *c = userdata;
        _cleanup_free_ char *id = NULL;
        int r;

        c->register_slot = sd_bus_slot_unref(c->register_slot);
        if (error) {
                r = client_set_error(c, error, sd_bus_error_get_errno(error) > 0 ? -sd_bus_error_get_errno(error) : -EIO);
        } else {
                r = id_from_path(c, worker, &id);
                if (r >= 0) {
                        free(c->id);
                        c->id = TAKE_PTR(id);
                        c->registered = true;
                        (void) set_str(&c->registered_owner, sd_bus_message_get_sender(reply));
                }
        }
        notify_registered(c, r);
        return 0;
}

static void hub_appeared(ChClient *c) {
        int r;

        /* Serve before Register (the hub handles one connection's calls in order): a Request
         * naming our id must never find us registered but not serving, which is NoHandler. */
        (void) requests_reserve_all(c);
        if (!c->want_registered)
                return;
        c->register_slot = sd_bus_slot_unref(c->register_slot);
        /* the id asked for: one the hub derives from the unit comes out the same; one derived from
         * a connection's name (bus_p2p_7) is that connection's alone, and a new connection after
         * a restart on the private socket gets a new one */
        r = ch_hub1_call_register_async(c->bus, &c->register_slot, CH_BUS_NAME, CH_HUB_PATH, c->wanted_id, NULL, NULL,
                                        on_reregistered, c, 0);
        if (r < 0)
                notify_registered(c, r);
}

/* DropNamespace took our served methods there with it: serve them again. */
static int on_namespace_dropped(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        ChClient *c = userdata;
        const char *name;

        if (!client_sender_is_hub(c, m) || sd_bus_message_read(m, "s", &name) < 0)
                return 0;
        (void) requests_reserve_namespace(c, name);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        ChClient *c = userdata;
        const char *name, *old_owner, *new_owner;

        /* From the bus driver only: anyone may send us a signal that looks like this one, and
         * sd-bus matches sender='org.freedesktop.DBus' against any unique name.  The driver's
         * own messages carry exactly that name. */
        if (!streq_ptr(sd_bus_message_get_sender(m), BUS_DRIVER_NAME))
                return 0;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, CH_BUS_NAME))
                return 0;
        (void) set_str(&c->hub_owner, isempty(new_owner) ? NULL : new_owner);
        if (!isempty(old_owner)) {
                /* that hub is gone and with it our registration and its tracking */
                c->registered = false;
                cache_reset_all(c);
                c->register_slot = sd_bus_slot_unref(c->register_slot);
        }
        if (!isempty(new_owner) && !streq_ptr(new_owner, c->registered_owner))
                hub_appeared(c);
        return 0;
}

static int get_hub_owner(ChClient *c, char **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *owner;
        int r;

        r = sd_bus_call_method(c->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetNameOwner", &e, &reply, "s", CH_BUS_NAME);
        sd_bus_error_free(&e);
        if (r < 0) {
                *ret = NULL; /* no owner (NameHasNoOwner) or no answer: unknown */
                return 0;
        }
        r = sd_bus_message_read(reply, "s", &owner);
        if (r < 0)
                return r;
        *ret = strdup(owner);
        return *ret ? 0 : -ENOMEM;
}

/* ---- the private socket: a hub restart closes the connection ----------------------------- */

#define RECONNECT_FIRST_USEC (50 * USEC_PER_MSEC)
#define RECONNECT_MAX_USEC (1000 * USEC_PER_MSEC)
#define RECONNECT_ATTEMPTS_BEFORE_BUS 8 /* about 4.5 s */

static int client_attach(ChClient *c, sd_bus *bus);
static int on_reconnect_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void client_detach(ChClient *c) {
        cache_reset_all(c);
        c->register_slot = sd_bus_slot_unref(c->register_slot);
        c->noc_slot = sd_bus_slot_unref(c->noc_slot);
        c->dropped_slot = sd_bus_slot_unref(c->dropped_slot);
        c->disconnected_slot = sd_bus_slot_unref(c->disconnected_slot);
        if (c->bus) {
                (void) sd_bus_flush(c->bus);
                (void) sd_bus_detach_event(c->bus);
                c->bus = sd_bus_flush_close_unref(c->bus);
        }
}

static int reconnect_schedule(ChClient *c) {
        int r;

        if (c->reconnect_source) {
                r = sd_event_source_set_time_relative(c->reconnect_source, c->reconnect_delay_usec);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(c->reconnect_source, SD_EVENT_ONESHOT);
        }
        return sd_event_add_time_relative(c->event, &c->reconnect_source, CLOCK_MONOTONIC, c->reconnect_delay_usec, 0,
                                          on_reconnect_timer, c);
}

/* Sets up a new connection (attached already) as the old one was: match rules, Handler1, then
 * serve and register once a hub is there. */
static void client_resume(ChClient *c) {
        c->reconnect_error = 0;
        c->reconnect_attempts = 0;
        (void) events_rematch_all(c);
        (void) requests_reattach(c);
        if (c->hub_owner)
                hub_appeared(c);
}

/* auto: the socket stayed away (the hub came back without it, or not yet): follow the hub on the
 * bus from now on, by NameOwnerChanged.  0 when done, < 0 to keep trying the socket. */
static int fall_back_to_bus(ChClient *c) {
        ChClientOptions o = { .bus_type = c->bus_type, .address = c->address, .description = c->description };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        r = transport_connect_bus(&o, &bus, &e);
        if (r < 0) {
                transport_log("%s", e.message ? e.message : strerror(-r));
                sd_bus_error_free(&e);
                return r;
        }
        transport_log("The hub's private socket %s has been away for %u attempts; following the hub on the bus.",
                      c->private_socket, c->reconnect_attempts);
        c->private_socket = mfree(c->private_socket);
        r = client_attach(c, bus);
        if (r < 0) {
                /* neither transport works: as losing the bus */
                transport_log("Cannot set up the connection to the bus: %s", strerror(-r));
                client_detach(c);
                c->bus_lost = true;
                (void) sd_event_exit(c->event, -ECONNRESET);
                return 0;
        }
        client_resume(c);
        return 0;
}

/* Connects again, re-adds the match rules and the Handler1 object, then serves and registers as
 * after NameOwnerChanged on the bus.  Until the hub is back: again after 50 ms, doubling to 1 s;
 * in auto, after RECONNECT_ATTEMPTS_BEFORE_BUS attempts the bus. */
static int on_reconnect_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ChClient *c = userdata;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        /* the old connection's pending calls failed with its Disconnected: close it (the match
         * and object slots still hold it until they are replaced below) */
        client_detach(c);
        r = transport_connect_private(c->private_socket, c->description, &bus, &e);
        if (r >= 0) {
                r = client_attach(c, bus);
                if (r < 0) {
                        (void) sd_bus_error_set_errnof(&e, r, "Cannot set up the connection on %s: %s", c->private_socket,
                                                       strerror(-r));
                        client_detach(c);
                }
        }
        if (r < 0) {
                /* a hub that is restarting is not there for a moment: say nothing of that */
                if (r != c->reconnect_error && r != -ENOENT && r != -ECONNREFUSED)
                        transport_log("%s; trying again.", e.message ? e.message : strerror(-r));
                c->reconnect_error = r;
                sd_bus_error_free(&e);
                if (c->bus_fallback && ++c->reconnect_attempts >= RECONNECT_ATTEMPTS_BEFORE_BUS &&
                    fall_back_to_bus(c) >= 0)
                        return 0;
                c->reconnect_delay_usec = c->reconnect_delay_usec * 2 > RECONNECT_MAX_USEC ? RECONNECT_MAX_USEC
                                                                                           : c->reconnect_delay_usec * 2;
                r = reconnect_schedule(c);
                if (r < 0) {
                        transport_log("Cannot retry connecting to %s: %s", c->private_socket, strerror(-r));
                        (void) sd_event_exit(c->event, r);
                }
                return 0;
        }
        client_resume(c);
        return 0;
}

static void hub_lost_on_socket(ChClient *c) {
        int r;

        c->registered = false;
        cache_reset_all(c);
        c->register_slot = sd_bus_slot_unref(c->register_slot);
        (void) set_str(&c->hub_owner, NULL);
        c->reconnect_delay_usec = RECONNECT_FIRST_USEC;
        r = reconnect_schedule(c);
        if (r < 0) {
                transport_log("Cannot reconnect to %s: %s", c->private_socket, strerror(-r));
                (void) sd_event_exit(c->event, r);
        }
}

/* ---- losing the bus ---------------------------------------------------------------------- */

/* sd-bus synthesizes org.freedesktop.DBus.Local.Disconnected once the connection is gone: the
 * bus daemon exited or closed it.  Nothing works without the bus and this client does not
 * reconnect, so this is a failure of the program: log it, keep it as the last error, and end
 * the loop with -ECONNRESET, which ch_client_run() returns (and a supervisor sees as a failed
 * worker).  The hub going away is not this: NameOwnerChanged handles that above. */
static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        ChClient *c = userdata;
        const char *address = NULL, *description = NULL;

        /* sd-bus's own, never a message from the bus (which refuses this interface anyway) */
        if (c->bus_lost || !streq_ptr(sd_bus_message_get_sender(m), "org.freedesktop.DBus.Local") ||
            sd_bus_message_get_bus(m) != c->bus)
                return 0;
        if (c->private_socket) {
                hub_lost_on_socket(c);
                return 0;
        }
        c->bus_lost = true;
        c->registered = false;
        cache_reset_all(c);
        (void) set_str(&c->hub_owner, NULL);
        (void) sd_bus_get_address(c->bus, &address);
        (void) sd_bus_get_description(c->bus, &description);
        sd_bus_error_free(&c->last_error);
        (void) sd_bus_error_setf(&c->last_error, SD_BUS_ERROR_DISCONNECTED,
                                 "Lost the connection to the bus %s%s%s%s: the bus closed it (its daemon exited, "
                                 "or it dropped this client).",
                                 address ?: "(unknown address)", description ? " (" : "", description ?: "",
                                 description ? ")" : "");
        fprintf(stderr, "libclusterhub: %s\n", c->last_error.message);
        (void) sd_event_exit(c->event, -ECONNRESET);
        return 0;
}

/* ---- the client ------------------------------------------------------------------------- */

/* Attaches BUS (taken, also on failure) to the loop and adds the client's own rules. */
static int client_attach(ChClient *c, sd_bus *bus) {
        int r;

        c->bus = bus;
        r = sd_bus_attach_event(c->bus, c->event, c->event_priority);
        if (r < 0)
                return r;
        /* local: sd-bus delivers it itself, the bus daemon never hears of this rule */
        r = sd_bus_match_signal(c->bus, &c->disconnected_slot, "org.freedesktop.DBus.Local",
                                "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local", "Disconnected",
                                on_disconnected, c);
        if (r < 0)
                return r;
        if (c->private_socket) {
                /* only the hub is on the other end: it is there as long as the connection is */
                r = sd_bus_add_match_async(c->bus, &c->dropped_slot, DROPPED_MATCH, on_namespace_dropped, NULL, c);
                if (r < 0)
                        return r;
                return set_str(&c->hub_owner, CH_BUS_NAME);
        }
        /* first the match, then the question: no restart falls between the two */
        r = sd_bus_add_match(c->bus, &c->noc_slot, NOC_MATCH, on_name_owner_changed, c);
        if (r < 0)
                return r;
        r = sd_bus_add_match_async(c->bus, &c->dropped_slot, DROPPED_MATCH, on_namespace_dropped, NULL, c);
        if (r < 0)
                return r;
        free(c->hub_owner);
        return get_hub_owner(c, &c->hub_owner);
}

_public_ int ch_client_new(ChClient **ret, const ChClientOptions *opts) {
        static const ChClientOptions defaults = { .bus_type = CH_BUS_USER };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        ChClient *c;
        int r;

        if (!ret)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        (void) sd_bus_error_add_map(ch_error_map);

        c = calloc(1, sizeof(ChClient));
        if (!c)
                return -ENOMEM;
        c->request_timeout_ms = opts->request_timeout_ms ? opts->request_timeout_ms : 10000;
        c->local_cookie = 1;
        c->event_priority = opts->event_priority;
        if (opts->description && !(c->description = strdup(opts->description))) {
                r = -ENOMEM;
                goto fail;
        }

        c->bus_type = opts->address ? CH_BUS_ADDRESS : opts->bus_type;
        if (opts->address && !(c->address = strdup(opts->address))) {
                r = -ENOMEM;
                goto fail;
        }
        r = transport_open(opts, &bus, &c->private_socket, &e);
        if (r < 0) {
                if (sd_bus_error_is_set(&e))
                        transport_log("%s", e.message);
                client_set_error(c, &e, r);
                sd_bus_error_free(&e);
                goto fail;
        }
        if (opts->event)
                c->event = sd_event_ref(opts->event);
        else {
                r = sd_event_new(&c->event);
                if (r < 0) {
                        sd_bus_flush_close_unref(bus);
                        goto fail;
                }
        }
        if (c->private_socket) {
                ChTransport t;
                c->bus_fallback = transport_of(opts, &t, NULL) >= 0 && t == CH_TRANSPORT_AUTO;
        }
        r = client_attach(c, bus);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        ch_client_free(c);
        return r;
}

_public_ ChClient *ch_client_free(ChClient *c) {
        if (!c)
                return NULL;
        requests_free_all(c);
        events_free_all(c);
        cache_detach_all(c);
        client_detach(c);
        c->reconnect_source = sd_event_source_disable_unref(c->reconnect_source);
        c->event = sd_event_unref(c->event);
        sd_bus_error_free(&c->last_error);
        free(c->wanted_id);
        free(c->id);
        free(c->hub_owner);
        free(c->registered_owner);
        free(c->last_sender);
        free(c->private_socket);
        free(c->description);
        free(c->address);
        free(c);
        return NULL;
}

_public_ sd_bus *ch_client_get_bus(ChClient *c) {
        return c ? c->bus : NULL;
}

_public_ const char *ch_client_get_private_socket(ChClient *c) {
        return c ? c->private_socket : NULL;
}

_public_ sd_event *ch_client_get_event(ChClient *c) {
        return c ? c->event : NULL;
}

_public_ const char *ch_client_get_unique_name(ChClient *c) {
        const char *u = NULL;
        return c && sd_bus_get_unique_name(c->bus, &u) >= 0 ? u : NULL;
}

_public_ const sd_bus_error *ch_client_get_last_error(ChClient *c) {
        return c ? &c->last_error : NULL;
}

_public_ int ch_client_run(ChClient *c) {
        int r;

        if (!c)
                return -EINVAL;
        if (c->bus_lost)
                return -ECONNRESET;
        r = sd_event_loop(c->event);
        /* a lost bus is a failure even if something else asked the loop to end meanwhile */
        return c->bus_lost ? -ECONNRESET : r;
}

_public_ int ch_client_exit(ChClient *c, int code) {
        if (!c)
                return -EINVAL;
        return sd_event_exit(c->event, code);
}

_public_ int ch_client_process(ChClient *c, uint64_t timeout_usec) {
        int r;

        if (!c)
                return -EINVAL;
        if (c->bus_lost)
                return -ECONNRESET;
        r = sd_event_run(c->event, timeout_usec);
        return c->bus_lost ? -ECONNRESET : r;
}

_public_ int ch_client_flush(ChClient *c) {
        if (!c)
                return -EINVAL;
        return sd_bus_flush(c->bus);
}

/* ---- registration ----------------------------------------------------------------------- */

_public_ int ch_register(ChClient *c, const char *id) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL, *got = NULL, *wanted = NULL, *owner = NULL;
        int r;

        if (!c)
                return -EINVAL;
        wanted = strdup(id ? id : "");
        if (!wanted)
                return -ENOMEM;
        r = ch_hub1_call_register(c->bus, CH_BUS_NAME, CH_HUB_PATH, wanted, NULL, NULL, &path, &e);
        client_set_error(c, &e, r);
        sd_bus_error_free(&e);
        if (r < 0)
                return r;
        r = id_from_path(c, path, &got);
        if (r < 0)
                return client_set_error(c, NULL, r);
        /* which hub answered: a NameOwnerChanged already queued for it must not register again
         * (on the private socket the hub is the one at the other end) */
        r = c->private_socket ? set_str(&owner, CH_BUS_NAME) : get_hub_owner(c, &owner);
        if (r < 0)
                return client_set_error(c, NULL, r);
        free(c->wanted_id);
        c->wanted_id = TAKE_PTR(wanted);
        free(c->id);
        c->id = TAKE_PTR(got);
        free(c->registered_owner);
        c->registered_owner = TAKE_PTR(owner);
        c->want_registered = true;
        c->registered = true;
        notify_registered(c, 0);
        return 0;
}

_public_ int ch_unregister(ChClient *c) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (!c)
                return -EINVAL;
        c->want_registered = false;
        c->register_slot = sd_bus_slot_unref(c->register_slot);
        r = ch_hub1_call_unregister(c->bus, CH_BUS_NAME, CH_HUB_PATH, &e);
        client_set_error(c, &e, r);
        sd_bus_error_free(&e);
        c->registered = false;
        return r;
}

_public_ const char *ch_client_get_id(ChClient *c) {
        return c && c->registered ? c->id : NULL;
}

_public_ void ch_client_set_registered_callback(ChClient *c, ch_registered_fn cb, void *userdata) {
        if (!c)
                return;
        c->registered_cb = cb;
        c->registered_userdata = userdata;
}
