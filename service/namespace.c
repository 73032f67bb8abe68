/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "persist.h"
#include "store.h"
#include "tracking.h"
#include "bus/bus-events.h"
#include "bus/bus-locks.h"
#include "bus/bus-requests.h"
#include "requests.h"
#include "bus/bus-store.h"
#include "bus/bus-store-redis-list.h"

bool namespace_name_is_valid(const Hub *h, const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > h->limits.max_name_bytes)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

Namespace *namespace_free(Namespace *ns) {
        if (!ns)
                return NULL;
        /* first: its trackers hear Invalidate([]) from its path, and every counter moves */
        track_space_free(ns->tracking);
        bus_requests_drop(ns);
        bus_events_drop(ns);
        serve_table_free(ns->served);
        bus_store_drop(ns);
        lock_table_free(ns->locks);
        store_free(ns->store);
        /* last: dropping what it held may have queued it for a disuse check */
        if (ns->gc_queued)
                LIST_REMOVE(gc, ns->hub->gc_queue, ns);
        free(ns->path);
        free(ns->name);
        free(ns);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Namespace *, namespace_free);

static int namespace_new(Hub *h, const char *name, Namespace **ret) {
        _cleanup_(namespace_freep) Namespace *ns = NULL;
        int r;

        ns = calloc(1, sizeof(Namespace));
        if (!ns)
                return -ENOMEM;
        ns->hub = h;
        ns->name = strdup(name);
        if (!ns->name || asprintf(&ns->path, "%s/%s", HUB_NS_PREFIX, name) < 0)
                return -ENOMEM;
        r = track_space_new(h->track_hub, ns, &ns->tracking);
        if (r < 0)
                return r;
        r = bus_store_new(ns, &ns->store);
        if (r < 0)
                return r;
        store_set_journal(ns->store, persist_journal, ns);
        r = bus_locks_table_new(ns, &ns->locks);
        if (r < 0)
                return r;
        r = serve_table_new(&ns->served);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ns);
        return 0;
}

int namespace_get(Hub *h, const char *name, bool create, Namespace **ret) {
        Namespace *ns;
        int r;

        if (!namespace_name_is_valid(h, name))
                return -EINVAL;
        ns = hashmap_get(h->namespaces, name);
        if (!ns) {
                if (!create)
                        return -ENXIO;
                if (hashmap_size(h->namespaces) >= h->limits.max_namespaces)
                        return -ENOBUFS;
                r = namespace_new(h, name, &ns);
                if (r < 0)
                        return r;
                r = hashmap_put(h->namespaces, ns->name, ns);
                if (r < 0) {
                        namespace_free(ns);
                        return r;
                }
                log_debug("Namespace %s created.", name);
        }
        *ret = ns;
        return 0;
}

int namespace_drop(Hub *h, const char *name) {
        Namespace *ns;

        if (!namespace_name_is_valid(h, name))
                return -EINVAL;
        /* --redis: its BLPop/BRPop waiters here, also when the Namespace went away on disuse */
        bus_store_redis_list_drop(h, name);
        ns = hashmap_remove(h->namespaces, name);
        if (!ns)
                return -ENXIO;
        persist_drop_namespace(h, name);
        namespace_free(ns);
        log_info("Namespace %s dropped.", name);
        if (streq(name, HUB_DEFAULT_NAMESPACE))
                return namespace_get(h, name, true, &ns);
        return 0;
}

bool namespace_is_unused(const Namespace *ns) {
        LockTableStats locks = {};

        if (streq(ns->name, HUB_DEFAULT_NAMESPACE))
                return false;
        if (store_dbsize(ns->store) > 0 || !LIST_IS_EMPTY(ns->pops) || ns->waiting.n > 0 ||
            ns->n_queued_events > 0 || ns->n_forwards > 0 || !serve_table_is_empty(ns->served) ||
            track_space_n_trackers(ns->tracking) > 0)
                return false;
        lock_table_get_stats(ns->locks, &locks);
        return locks.n_locks == 0 && locks.n_holders == 0 && locks.n_waiters == 0;
}

void namespace_check_unused(Namespace *ns) {
        Hub *h = ns->hub;

        if (ns->gc_queued || streq(ns->name, HUB_DEFAULT_NAMESPACE) || !h->gc_event)
                return;
        ns->gc_queued = true;
        LIST_APPEND(gc, h->gc_queue, ns);
        (void) sd_event_source_set_enabled(h->gc_event, SD_EVENT_ONESHOT);
}

void namespace_check_all_unused(Hub *h) {
        Namespace *ns;
        size_t i = 0;

        while (hashmap_iterate(h->namespaces, &i, (void **) &ns, NULL))
                namespace_check_unused(ns);
}

static int on_gc(sd_event_source *s, void *userdata) {
        Hub *h = userdata;
        Namespace *ns;

        while ((ns = h->gc_queue.first)) {
                LIST_REMOVE(gc, h->gc_queue, ns);
                ns->gc_queued = false;
                if (!namespace_is_unused(ns))
                        continue;
                log_debug("Namespace %s is unused, removing it.", ns->name);
                hashmap_remove(h->namespaces, ns->name);
                namespace_free(ns);
        }
        return 0;
}

int namespace_gc_setup(Hub *h) {
        int r;

        /* the bus's own priority: it runs after what was already pending, and is not starved
         * by a steady stream of calls (then new names would run into --max-namespaces) */
        r = sd_event_add_defer(h->event, &h->gc_event, on_gc, h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->gc_event, "namespace-gc");
        return sd_event_source_set_enabled(h->gc_event, SD_EVENT_OFF);
}

void namespace_gc_shutdown(Hub *h) {
        while (h->gc_queue.first) {
                h->gc_queue.first->gc_queued = false;
                LIST_REMOVE(gc, h->gc_queue, h->gc_queue.first);
        }
        h->gc_event = sd_event_source_disable_unref(h->gc_event);
}
