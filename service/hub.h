/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "barrier.h"
#include "events.h"
#include "hashmap.h"
#include "list.h"
#include "limits.h"
#include "requests.h"
#include "store.h"

#define HUB_BUS_NAME "org.clusterhub.Hub1"
#define HUB_PATH "/org/clusterhub/Hub1"
#define HUB_NS_PREFIX "/org/clusterhub/Hub1/ns"
#define HUB_WORKER_PREFIX "/org/clusterhub/Hub1/worker"
#define HUB_DEFAULT_NAMESPACE "default"

typedef struct Namespace Namespace;
struct Deferred;
struct Peer;

typedef enum BusKind {
        BUS_USER,
        BUS_SYSTEM,
        BUS_ADDRESS,
} BusKind;

/* The private socket (service/transport/socket.c): where it is, and whether it is served. */
typedef enum ListenMode {
        LISTEN_DEFAULT,   /* on --user/--system: the standard path; on --address: none */
        LISTEN_NO,        /* --no-listen */
        LISTEN_PATH,      /* --listen=PATH */
} ListenMode;

typedef struct HubStats {
        uint64_t keyspace_events;
        uint64_t events_emitted;
        uint64_t events_queued;
        uint64_t events_dropped;
        uint64_t workers_joined;
        uint64_t workers_left;
        uint64_t requests_forwarded;
        uint64_t events_refused;          /* over --max-event-bytes or --max-emit-bytes-per-sec */
        uint64_t requests_backlogged;     /* waited for a busy worker (--max-handling-per-worker) */
        uint64_t requests_refused_busy;   /* refused: that worker's backlog was full too */
        uint64_t connections_accepted;    /* private socket: every accepted connection */
        uint64_t connections_refused;     /* private socket: credentials or --max-connections */
        uint64_t connections_dropped_slow;/* private socket: over --max-queued-per-connection */
} HubStats;

typedef struct CallCount {
        uint64_t n;
        char name[];
} CallCount;

typedef struct LockHub LockHub;
typedef struct Listener Listener;
typedef struct Persist Persist;

/* The one context of the daemon. */
typedef struct Hub {
        sd_event *event;
        sd_bus *bus;
        BusKind bus_kind;
        char *address;

        Limits limits;
        Hashmap *namespaces;      /* name -> Namespace */
        Hashmap *peers;           /* unique name -> Peer (callers holding state) */
        /* the private socket: NULL when not listening */
        ListenMode listen_mode;
        char *listen_path;        /* --listen=PATH */
        Listener *listener;
        Hashmap *connections;     /* ":p2p.N" -> Connection, every live socket connection */
        Hashmap *workers;         /* worker id -> Peer */
        LIST_HEAD(struct Peer) worker_list; /* the same, in order of registration */
        EventQueues event_queues; /* EmitTo calls queued for an id not registered yet (events.c) */
        sd_event_source *event_queue_timer; /* their next deadline (bus-events.c) */
        Hashmap *emit_buckets;    /* unique name -> what it may still emit (bus-events.c) */
        size_t emit_buckets_swept; /* their number after the last sweep */
        RequestMachine requests;  /* every Request's forwarding, backlog and gathering (requests.c) */
        StoreAccount store_account; /* store memory of every namespace together */
        struct TrackHub *track_hub; /* client-side caching: bounds and counters (tracking.h) */
        LockHub *lock_hub;        /* lock tokens and lease deadlines of every namespace */
        LIST_HEAD(Namespace) gc_queue; /* namespaces to check for disuse (namespace.c) */
        sd_event_source *gc_event;
        sd_event_source *lock_timer;

        void *deferred_heap;      /* every pending call's deadline (deferred.c) */
        size_t n_deferred;
        Barrier worker_barrier;   /* WaitForWorkers calls (barrier.c) */

        Hashmap *calls;           /* "Store1.Get" -> CallCount, for GetStats */
        uint64_t started_usec;    /* CLOCK_MONOTONIC */
        HubStats stats;

        /* durability (service/persist/): NULL without --data-dir */
        char *data_dir;
        int fsync_mode;           /* PersistFsync */
        Persist *persist;
} Hub;

int hub_new(Hub **ret);
Hub *hub_free(Hub *h);
int hub_connect(Hub *h);
int hub_run(Hub *h);
/* Serves the hub's objects (and counts their calls) on BUS: the bus, or one private-socket
 * connection. */
int hub_serve_connection(Hub *h, sd_bus *bus);
uint64_t hub_now_ms(Hub *h);

static inline void hub_freep(Hub **h) {
        if (*h)
                hub_free(*h);
}
