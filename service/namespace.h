/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "hub.h"
#include "list.h"

typedef struct Store Store;
typedef struct LockTable LockTable;
typedef struct ServeTable ServeTable;

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
        LIST_HEAD(struct Deferred) waiting; /* Requests waiting for their target worker */
};

/* NAME is a D-Bus object path element: [A-Za-z0-9_]+, at most max_name_bytes. */
bool namespace_name_is_valid(const Hub *h, const char *name);

/* Find NAME; with CREATE make it when absent.  -EINVAL bad name, -ENOBUFS too many
 * namespaces, -ENXIO absent and !CREATE. */
int namespace_get(Hub *h, const char *name, bool create, Namespace **ret);

/* Destroys the namespace and everything in it ("default" is emptied and recreated). */
int namespace_drop(Hub *h, const char *name);

Namespace *namespace_free(Namespace *ns);
