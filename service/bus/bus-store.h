/* SPDX-License-Identifier: MIT */
#pragma once

#include "ch-store1-server.h"
#include "hub.h"
#include "tracking.h"
#include "variant-codec.h"

typedef struct Store Store;

/* The Store1 handlers; their userdata is the Namespace. */
extern const ChStore1Handlers bus_store_handlers;

/* Creates the store of namespace NS, wired to emit KeyChanged from its path. */
int bus_store_new(Namespace *ns, Store **ret);

/* Re-arms NS's expiry timer at the store's next deadline. */
void bus_store_rearm(Namespace *ns);

/* NS is being dropped: fail its waiting BLPop/BRPop calls, stop its timer. */
void bus_store_drop(Namespace *ns);

/* How tracking.c's invalidations reach the trackers: the unicast Invalidate signal. */
extern const TrackOps bus_store_track_ops;

/* Argument readers shared with the Redis-backed store (bus-store-redis.c), so that both
 * validate and bound their input alike. */

/* Reads the variant at M's position (a value to store; strings borrowed from M), with the
 * named errors of a bad value. */
int bus_store_read_value(sd_bus_message *m, CodecValue *v, sd_bus_error *ret_error);

/* A list of values read from an "av" or the values of an "a{sv}". */
typedef struct BusValues {
        CodecValue *items;
        StoreValue *values;  /* flat copies of items[i].value, for the store */
        const char **names;  /* for a{sv} */
        size_t n;
} BusValues;
void bus_values_done(BusValues *v);
/* Reads "av" (DICT false) or "a{sv}" (DICT true) at M's position: at most MAX values. */
int bus_store_read_values(sd_bus_message *m, bool dict, BusValues *v, uint64_t max, sd_bus_error *ret_error);

/* Set's and SetGet's options. */
typedef struct SetOptions {
        uint64_t ttl_ms;
        bool nx, xx, keep_ttl;
} SetOptions;
int bus_store_read_set_options(sd_bus_message *m, SetOptions *o, sd_bus_error *ret_error);

/* Track and Untrack (client-side caching, docs/caching.md), and the caller's tracker in NS (NULL
 * with NotTracking in RET_ERROR), for the Redis-backed store, whose tracking is the hub's own. */
int bus_store_track(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);
int bus_store_untrack(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);
Tracker *bus_store_tracker_of(Namespace *ns, sd_bus_message *m, sd_bus_error *ret_error);
