/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "hub.h"
#include "list.h"

typedef struct Store Store;
typedef struct LockTable LockTable;
typedef struct ServeTable ServeTable;
typedef struct TrackSpace TrackSpace;

/* One isolated namespace: its store (and, as they are built, its served methods, locks and
 * subscriptions).  Lives at /org/clusterhub/Hub1/ns/NAME. */
struct Namespace {
        Hub *hub;
        char *name;
        char *path;
        Store *store;
        LockTable *locks;
        sd_event_source *expire_timer;   /* the store's next TTL deadline */
        LIST_HEAD(struct Deferred) pops; /* BLPop/BRPop calls waiting here */
        ServeTable *served;              /* who serves which method */
        TrackSpace *tracking;            /* client-side caching: page and trackers (tracking.h) */
        RequestWaits waiting;            /* Requests waiting for their target worker */
        size_t n_queued_events;          /* EmitTo calls of this namespace queued for absent workers */
        size_t n_forwards;               /* Requests of this namespace at or queued for a handler */
        bool gc_queued;                  /* in hub->gc_queue, to be checked for disuse */
        LIST_FIELDS(Namespace, gc);
};

/* NAME is a D-Bus object path element: [A-Za-z0-9_]+, at most max_name_bytes. */
bool namespace_name_is_valid(const Hub *h, const char *name);

/* Find NAME; with CREATE make it when absent.  -EINVAL bad name, -ENOBUFS too many
 * namespaces, -ENXIO absent and !CREATE. */
int namespace_get(Hub *h, const char *name, bool create, Namespace **ret);

/* Destroys the namespace and everything in it ("default" is emptied and recreated). */
int namespace_drop(Hub *h, const char *name);

Namespace *namespace_free(Namespace *ns);

/* A namespace that holds nothing (no keys, locks, served methods, waiting or queued calls) and
 * is not "default" goes away, so that reads, introspection and typos leave nothing behind.
 * Whatever may have emptied NS (a call on it, an expiry) queues it for a check, which runs
 * once the loop has nothing else to do. */
bool namespace_is_unused(const Namespace *ns);
void namespace_check_unused(Namespace *ns);
/* The same for every namespace (a peer that held state in any of them is gone). */
void namespace_check_all_unused(Hub *h);
int namespace_gc_setup(Hub *h);
void namespace_gc_shutdown(Hub *h);
