/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "store.h"
#include "bus/bus-events.h"
#include "bus/bus-locks.h"
#include "bus/bus-requests.h"
#include "requests.h"
#include "bus/bus-store.h"

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
        bus_requests_drop(ns);
        bus_events_drop(ns);
        serve_table_free(ns->served);
        bus_store_drop(ns);
        lock_table_free(ns->locks);
        store_free(ns->store);
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
        r = bus_store_new(ns, &ns->store);
        if (r < 0)
                return r;
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
        ns = hashmap_remove(h->namespaces, name);
        if (!ns)
                return -ENXIO;
        namespace_free(ns);
        log_info("Namespace %s dropped.", name);
        if (streq(name, HUB_DEFAULT_NAMESPACE))
                return namespace_get(h, name, true, &ns);
        return 0;
}
