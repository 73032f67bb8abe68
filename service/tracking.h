/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Client-side caching, the hub's half (issue #13; the user's page is docs/caching.md, the wire
 * protocol org.clusterhub.Store1's Track, GetTracked and Invalidate).  Plain C, no D-Bus: the
 * glue (service/bus/bus-store.c) owns one TrackHub, one TrackSpace per namespace and one
 * TrackOwner per peer, calls in for every read it tracks and every change of a key, and sends
 * the Invalidate signals this module reports through TrackOps.
 *
 *   TrackHub    the bounds (--max-tracked-keys-per-peer, --max-tracked-keys), the counters of
 *               GetStats, and every tracked (tracker, key) pair in age order.
 *   TrackSpace  one namespace: its sequence page (a memfd of TRACK_BUCKETS uint64 counters,
 *               mapped writable here, handed out as a read-only fd), its key table (key ->
 *               the trackers that read it) and its trackers.  The page is made at the first
 *               Track and lives as long as the space.
 *   Tracker     one owner tracking in one space: its mode, options and (keys mode) its pairs.
 *   TrackOwner  one client (connection); embedded by the glue, zero-initialised.
 *
 * A change of a key (track_key_changed()) bumps the counter of its bucket, then reports
 * Invalidate([key]) to every keys-mode tracker that read it (forgetting those pairs: one read
 * buys one invalidation) and to every prefix-mode tracker with a matching prefix, except a
 * noloop tracker whose owner made the change.  A flush (track_space_flush()) bumps every
 * counter and reports Invalidate([]) to every tracker of the space.  A full table evicts its
 * oldest pair, reported as a change of that key to that tracker alone.
 *
 * Errors are negative errno: -EINVAL (bad options), -ENOBUFS (a bound), -ENOMEM, or what
 * creating the page returned.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

#define TRACK_BUCKETS ((size_t) 65536)          /* a power of two */
#define TRACK_MAX_PREFIXES ((size_t) 64)

#define TRACK_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define TRACK_FNV_PRIME UINT64_C(0x100000001b3)

/* FNV-1a 64-bit of the LEN bytes at KEY. */
uint64_t track_hash(const char *key, size_t len);
/* The bucket of KEY (NUL-terminated): track_hash() & (TRACK_BUCKETS - 1). */
size_t track_bucket(const char *key);

typedef struct TrackHub TrackHub;
typedef struct TrackSpace TrackSpace;
typedef struct Tracker Tracker;
typedef struct TrackRef TrackRef;

typedef struct TrackOwner {
        /* Private to this module. */
        TrackHub *hub;
        LIST_HEAD(Tracker) trackers;
        LIST_HEAD(TrackRef) refs;       /* its pairs in every space, oldest first */
        size_t n_keys;
} TrackOwner;

typedef struct TrackOps {
        /* Tell OWNER (tracking in the space of SPACE_USERDATA) that KEYS changed; N == 0 means
         * "drop everything you cached from this space".  Called synchronously, during the
         * change: it must not call back into this module. */
        void (*invalidate)(TrackOwner *owner, void *space_userdata, const char *const *keys, size_t n);
        /* Whether OWNER made the change being reported (for noloop); NULL: never. */
        bool (*is_writer)(TrackOwner *owner);
} TrackOps;

typedef struct TrackStats {
        uint64_t owners;                /* owners tracking in at least one space */
        uint64_t keys;                  /* tracked (tracker, key) pairs */
        uint64_t invalidations;         /* Invalidate reports, empty ones included */
        uint64_t overflows;             /* pairs evicted by a bound */
} TrackStats;

typedef enum TrackMode {
        TRACK_MODE_KEYS,
        TRACK_MODE_PREFIX,
} TrackMode;

typedef struct TrackOptions {
        TrackMode mode;
        const char *const *prefixes;    /* prefix mode: 1 to TRACK_MAX_PREFIXES, borrowed */
        size_t n_prefixes;
        bool noloop;
        uint64_t max_keys;              /* keys mode: 0 = the per-peer bound */
} TrackOptions;

/* max_keys_per_peer: pairs of one owner over every space; max_keys: pairs hub-wide. */
int track_hub_new(const TrackOps *ops, uint64_t max_keys_per_peer, uint64_t max_keys, TrackHub **ret);
void track_hub_set_bounds(TrackHub *h, uint64_t max_keys_per_peer, uint64_t max_keys);
/* Every space must be freed first.  NULL-safe. */
TrackHub *track_hub_free(TrackHub *h);
void track_hub_get_stats(const TrackHub *h, TrackStats *ret);

/* USERDATA (the namespace) is handed to ops->invalidate.  No page yet: it comes with the first
 * Track. */
int track_space_new(TrackHub *h, void *userdata, TrackSpace **ret);
/* Bumps every counter and reports Invalidate([]) to each tracker left (the namespace is being
 * dropped), then frees it; a tracker's fd keeps the page alive for its owner.  NULL-safe. */
TrackSpace *track_space_free(TrackSpace *s);
size_t track_space_n_trackers(const TrackSpace *s);

/* Checks O: -EINVAL for prefixes outside prefix mode, none in prefix mode, two of them where one
 * is a prefix of the other (*ret_a, *ret_b their indexes); -ENOBUFS for more than
 * TRACK_MAX_PREFIXES prefixes or max_keys above the per-peer bound. */
int track_options_check(const TrackHub *h, const TrackOptions *o, size_t *ret_a, size_t *ret_b);

/* Starts tracking for OWNER in S with O (checked as above), or re-configures its tracker:
 * then its pairs are forgotten and Invalidate([]) is reported to it.  Makes S's page when it
 * has none.  *ret_fd: a read-only fd of the page (borrowed: S keeps it; the glue sends a
 * copy). */
int track_start(TrackSpace *s, TrackOwner *owner, const TrackOptions *o, int *ret_fd);
/* Stops OWNER's tracking in S, reporting Invalidate([]) to it; 0 when it was not tracking. */
int track_stop(TrackSpace *s, TrackOwner *owner);
/* OWNER's tracker in S, or NULL. */
Tracker *track_find(const TrackSpace *s, const TrackOwner *owner);
/* The owner is gone: frees its trackers and pairs, reporting nothing. */
void track_owner_release_all(TrackOwner *owner);

/* The counter of KEY's bucket now (acquire load); 0 for a space without a page. */
uint64_t track_sequence(const TrackSpace *s, const char *key);
/* T read KEY: in keys mode remember the pair (once), evicting the oldest pair of T, of its
 * owner or of the hub when a bound is reached. */
int track_read(Tracker *t, const char *key);

/* KEY changed in S: bump, report, forget (see the top).  BY_WRITE: a call changed it, so a
 * noloop tracker whose owner made the call is spared; false for expiry, which nobody's noloop
 * hides. */
void track_key_changed(TrackSpace *s, const char *key, bool by_write);
/* Every key of S may have changed (Flush): bump every counter, report Invalidate([]) to every
 * tracker of S and forget their pairs. */
void track_space_flush(TrackSpace *s);

/* How many pairs T may hold: keys mode, its max_keys (0 at Track: the per-peer bound);
 * prefix mode, 0 (it holds none). */
uint64_t tracker_max_keys(const Tracker *t);

/* For tests: the page's writable mapping (TRACK_BUCKETS counters), NULL before the first
 * Track; and the number of pairs T holds. */
const uint64_t *track_space_page(const TrackSpace *s);
size_t tracker_n_keys(const Tracker *t);
