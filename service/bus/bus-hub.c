/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Hub1 and of the namespace objects. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "bus-events.h"
#include "bus-hub.h"
#include "bus-locks.h"
#include "bus-requests.h"
#include "bus-workers.h"
#include "bus-store.h"
#include "bus-store-redis.h"
#include "rstore.h"
#include "bus-util.h"
#include "ch-events1-server.h"
#include "ch-hub1-server.h"
#include "ch-locks1-server.h"
#include "ch-requests1-server.h"
#include "ch-store1-server.h"
#include "config.h"
#include "log.h"
#include "namespace.h"
#include "ch-errors.h"
#include "persist.h"
#include "locks.h"
#include "store.h"
#include "transport/socket.h"

/* --- Hub1 ----------------------------------------------------------------------------- */

static int method_list_namespaces(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Hub *h = userdata;
        _cleanup_(freep) char **names = NULL;
        const char *name;
        size_t i = 0, n = 0;

        names = calloc(hashmap_size(h->namespaces) + 1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        while (hashmap_iterate(h->namespaces, &i, NULL, &name))
                names[n++] = (char *) name;
        return ch_hub1_reply_list_namespaces(m, names);
}

static int emit_namespace_dropped_on(sd_bus *bus, void *userdata) {
        return ch_hub1_emit_namespace_dropped(bus, NULL, HUB_PATH, userdata);
}

/* --redis: the namespace's keys are in Redis, whether or not this hub has objects for it now.
 * They are deleted first; the local part (locks, served methods) goes when Redis has answered,
 * and the reply after that, so that a call made after the reply, on any host, sees no key. */
static int on_drop_namespace_redis(RStoreCall *c, const struct redisReply *reply, sd_bus_error *ret_error) {
        Hub *h = rstore_call_hub(c);
        const char *name = rstore_call_namespace(c);
        int r;

        r = namespace_drop(h, name);
        if (r < 0 && r != -ENXIO)
                return bus_error_errno(ret_error, r, "Failed to drop namespace '%s': %s", name, strerror(-r));
        r = ch_hub1_reply_drop_namespace(rstore_call_message(c));
        SignalProbe probe = { HUB_PATH, CH_HUB1_INTERFACE, "NamespaceDropped", "s", { name } };
        (void) hub_broadcast(h, &probe, emit_namespace_dropped_on, (void *) name);
        return r < 0 ? r : 1;
}

static int drop_namespace_redis(sd_bus_message *m, Hub *h, sd_bus_error *ret_error, const char *name) {
        _cleanup_(freep) char *pattern = NULL;
        RStoreCall *c;
        int r;

        r = rstore_match_pattern(name, NULL, &pattern);
        if (r < 0)
                return r;
        r = rstore_call_new_hub(h, name, m, NULL, on_drop_namespace_redis, &c);
        if (r < 0)
                return bus_error_errno(ret_error, r, "Cannot delete the keys of namespace '%s': Redis cannot be reached (--redis).", name);
        const char *argv[] = { pattern, "flush", "0" };
        (void) rstore_call_eval(c, rstore_keys_script, 0, 3, argv, NULL);
        return 1;
}

static int method_drop_namespace(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *name) {
        Hub *h = userdata;
        int r;

        if (!namespace_name_is_valid(h, name))
                return bus_error_errno(ret_error, -EINVAL,
                                       "'%s' is not a namespace name: 1 to %llu characters of [A-Za-z0-9_].",
                                       name, (unsigned long long) h->limits.max_name_bytes);
        if (h->redis_url)
                return drop_namespace_redis(m, h, ret_error, name);
        r = namespace_drop(h, name);
        if (r == -ENXIO)
                return bus_error_errno(ret_error, r, "Namespace '%s' does not exist.", name);
        if (r < 0)
                return bus_error_errno(ret_error, r, "Failed to drop namespace '%s': %s", name, strerror(-r));
        r = ch_hub1_reply_drop_namespace(m);
        /* after the reply: whoever served there hears it and may serve again */
        SignalProbe probe = { HUB_PATH, CH_HUB1_INTERFACE, "NamespaceDropped", "s", { name } };
        (void) hub_broadcast(h, &probe, emit_namespace_dropped_on, (void *) name);
        return r;
}

static int append_call_counts(sd_bus_message *reply, Hub *h) {
        CallCount *cc;
        size_t i = 0;
        int r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append_basic(reply, 's', "calls");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'v', "a{st}");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        while (hashmap_iterate(h->calls, &i, (void **) &cc, NULL)) {
                if (cc->n == 0)
                        continue;
                r = sd_bus_message_append(reply, "{st}", cc->name, cc->n);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int append_stats(sd_bus_message *reply, void *userdata) {
        Hub *h = userdata;
        uint64_t now = 0, uptime, keys = 0, bytes = 0, nss = hashmap_size(h->namespaces);
        uint64_t workers = hashmap_size(h->workers), pending = h->n_deferred, locks = 0, waiters = 0;
        uint64_t connections = socket_n_connections(h), queued = socket_queued_bytes(h);
        uint64_t unheard = bus_unheard_errors();
        TrackStats track;
        uint32_t tracking_peers;
        Namespace *ns;
        size_t i = 0;
        int r;

        (void) sd_event_now(h->event, CLOCK_MONOTONIC, &now);
        uptime = (now - h->started_usec) / USEC_PER_MSEC;
        while (hashmap_iterate(h->namespaces, &i, (void **) &ns, NULL)) {
                keys += store_dbsize(ns->store);
                bytes += store_memory(ns->store);
                LockTableStats ls;
                lock_table_get_stats(ns->locks, &ls);
                locks += ls.n_locks;
                waiters += ls.n_waiters;
        }
        track_hub_get_stats(h->track_hub, &track);
        tracking_peers = (uint32_t) MIN(track.owners, (uint64_t) UINT32_MAX);
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = bus_append_stat(reply, "uptime_ms", 't', &uptime)) < 0 ||
            (r = bus_append_stat(reply, "namespaces", 't', &nss)) < 0 ||
            (r = bus_append_stat(reply, "keys", 't', &keys)) < 0 ||
            (r = bus_append_stat(reply, "store_bytes", 't', &bytes)) < 0 ||
            (r = bus_append_stat(reply, "workers", 't', &workers)) < 0 ||
            (r = bus_append_stat(reply, "pending_calls", 't', &pending)) < 0 ||
            (r = bus_append_stat(reply, "workers_joined", 't', &h->stats.workers_joined)) < 0 ||
            (r = bus_append_stat(reply, "workers_left", 't', &h->stats.workers_left)) < 0 ||
            (r = bus_append_stat(reply, "events_emitted", 't', &h->stats.events_emitted)) < 0 ||
            (r = bus_append_stat(reply, "events_queued", 't', &h->stats.events_queued)) < 0 ||
            (r = bus_append_stat(reply, "events_dropped", 't', &h->stats.events_dropped)) < 0 ||
            (r = bus_append_stat(reply, "events_refused", 't', &h->stats.events_refused)) < 0 ||
            (r = bus_append_stat(reply, "keyspace_events", 't', &h->stats.keyspace_events)) < 0 ||
            (r = bus_append_stat(reply, "requests_forwarded", 't', &h->stats.requests_forwarded)) < 0 ||
            (r = bus_append_stat(reply, "requests_backlogged", 't', &h->stats.requests_backlogged)) < 0 ||
            (r = bus_append_stat(reply, "requests_refused_busy", 't', &h->stats.requests_refused_busy)) < 0 ||
            (r = bus_append_stat(reply, "locks", 't', &locks)) < 0 ||
            (r = bus_append_stat(reply, "lock_waiters", 't', &waiters)) < 0 ||
            (r = bus_append_stat(reply, "connections", 't', &connections)) < 0 ||
            (r = bus_append_stat(reply, "connections_accepted", 't', &h->stats.connections_accepted)) < 0 ||
            (r = bus_append_stat(reply, "connections_refused", 't', &h->stats.connections_refused)) < 0 ||
            (r = bus_append_stat(reply, "connections_dropped_slow", 't', &h->stats.connections_dropped_slow)) < 0 ||
            (r = bus_append_stat(reply, "connections_queued_bytes", 't', &queued)) < 0 ||
            (r = bus_append_stat(reply, "unheard_errors", 't', &unheard)) < 0 ||
            (r = bus_append_stat(reply, "tracking_peers", 'u', &tracking_peers)) < 0 ||
            (r = bus_append_stat(reply, "tracked_keys", 't', &track.keys)) < 0 ||
            (r = bus_append_stat(reply, "invalidations_sent", 't', &track.invalidations)) < 0 ||
            (r = bus_append_stat(reply, "tracking_overflows", 't', &track.overflows)) < 0 ||
            (r = persist_append_stats(h, reply)) < 0 ||
            (r = backend_append_stats(h, reply)) < 0 ||
            (r = append_call_counts(reply, h)) < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int method_get_stats(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return ch_hub1_reply_get_stats(m, append_stats, userdata);
}

static int method_save(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Hub *h = userdata;
        int r;

        if (!h->persist)
                return sd_bus_error_setf(ret_error, CH_ERROR_NOT_SUPPORTED, "The hub keeps its store in memory only (no --data-dir).");
        r = persist_save(h->persist, m);
        if (r < 0)
                return sd_bus_error_setf(ret_error, CH_ERROR_STORAGE, "Cannot start a snapshot: %s", strerror(-r));
        return 1;
}

static int property_version(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append_basic(reply, 's', PACKAGE_VERSION);
}

static const ChHub1Handlers hub1_handlers = {
        .register_ = bus_workers_register_method,
        .unregister = bus_workers_unregister_method,
        .list_workers = bus_workers_list_method,
        .wait_for_workers = bus_workers_wait_method,
        .list_namespaces = method_list_namespaces,
        .drop_namespace = method_drop_namespace,
        .get_stats = method_get_stats,
        .save = method_save,
        .prop_version = property_version,
};

/* --- namespaces ----------------------------------------------------------------------- */

static int namespace_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                          sd_bus_error *ret_error) {
        Hub *h = userdata;
        const char *name;
        Namespace *ns;
        int r;

        if (!strneq(path, HUB_NS_PREFIX "/", strlen(HUB_NS_PREFIX "/")))
                return 0;
        name = path + strlen(HUB_NS_PREFIX "/");
        if (strchr(name, '/'))
                return 0;
        /* any call finds its namespace, a read or an introspection too; one that leaves it
         * holding nothing (or never put anything in) has it removed after the call */
        r = namespace_get(h, name, true, &ns);
        if (r == -EINVAL)
                return bus_error_errno(ret_error, r, "'%s' is not a namespace name: 1 to %llu characters of [A-Za-z0-9_].",
                                       name, (unsigned long long) h->limits.max_name_bytes);
        if (r == -ENOBUFS)
                return bus_error_errno(ret_error, r, "Cannot create namespace '%s': the hub has %llu (--max-namespaces).",
                                       name, (unsigned long long) h->limits.max_namespaces);
        if (r < 0)
                return r;
        namespace_check_unused(ns);
        *found = ns;
        return 1;
}

static int namespace_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                               sd_bus_error *ret_error) {
        Hub *h = userdata;
        char **nodes;
        Namespace *ns;
        size_t i = 0, n = 0;

        nodes = calloc(hashmap_size(h->namespaces) + 1, sizeof(char *));
        if (!nodes)
                return -ENOMEM;
        while (hashmap_iterate(h->namespaces, &i, (void **) &ns, NULL)) {
                nodes[n] = strdup(ns->path);
                if (!nodes[n]) {
                        for (size_t k = 0; k < n; k++)
                                free(nodes[k]);
                        free(nodes);
                        return -ENOMEM;
                }
                n++;
        }
        *ret_nodes = nodes;
        return 0;
}


int bus_hub_add_objects(Hub *h, sd_bus *bus) {
        int r;

        r = ch_hub1_add_object(bus, NULL, HUB_PATH, &hub1_handlers, h);
        if (r < 0)
                return r;
        r = sd_bus_add_object_manager(bus, NULL, HUB_PATH);
        if (r < 0)
                return r;
        r = bus_workers_setup(h, bus);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(bus, NULL, HUB_NS_PREFIX, namespace_enumerate, h);
        if (r < 0)
                return r;
        r = ch_events1_add_fallback(bus, NULL, HUB_NS_PREFIX, &bus_events_handlers, namespace_find, h);
        if (r < 0)
                return r;
        ch_requests1_set_max_strv(h->limits.max_elements);
        r = ch_requests1_add_fallback(bus, NULL, HUB_NS_PREFIX, &bus_requests_handlers, namespace_find, h);
        if (r < 0)
                return r;
        ch_store1_set_max_strv(h->limits.max_elements);
        /* --redis: the store is Redis's (bus-store-redis.c), shared by the hubs of every host */
        r = ch_store1_add_fallback(bus, NULL, HUB_NS_PREFIX, h->redis_url ? &bus_store_redis_handlers : &bus_store_handlers,
                                   namespace_find, h);
        if (r < 0)
                return r;
        return ch_locks1_add_fallback(bus, NULL, HUB_NS_PREFIX, &bus_locks_handlers, namespace_find, h);
}

int bus_hub_register(Hub *h) {
        Namespace *ns;
        int r;

        r = hub_serve_connection(h, h->bus);
        if (r < 0)
                return r;
        return namespace_get(h, HUB_DEFAULT_NAMESPACE, true, &ns);
}
