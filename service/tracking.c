/* SPDX-License-Identifier: MIT */
/* Client-side caching, the hub's half: sequence pages, key tables, bounds (see tracking.h). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hashmap.h"
#include "macro.h"
#include "tracking.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define PAGE_BYTES (TRACK_BUCKETS * sizeof(uint64_t))

struct TrackHub {
        const TrackOps *ops;
        uint64_t max_keys_per_peer;
        uint64_t max_keys;
        uint64_t n_owners;
        uint64_t n_keys;
        uint64_t invalidations;
        uint64_t overflows;
        LIST_HEAD(TrackRef) refs;       /* every pair, oldest first */
        size_t n_spaces;
};

struct TrackSpace {
        TrackHub *hub;
        void *userdata;
        int fd;                         /* the memfd, -1 before the first Track */
        int ro_fd;                      /* what trackers get */
        uint64_t *seq;                  /* writable mapping of the page */
        Hashmap *keys;                  /* key -> TrackKey, keys mode */
        LIST_HEAD(Tracker) trackers;
        size_t n_trackers;
        LIST_HEAD(Tracker) prefix_trackers; /* those in prefix mode, which every change visits */
};

struct Tracker {
        TrackSpace *space;
        TrackOwner *owner;
        TrackMode mode;
        bool noloop;
        uint64_t max_keys;              /* resolved: never 0 */
        char **prefixes;
        size_t *prefix_lens;
        size_t n_prefixes;
        size_t n_keys;
        LIST_HEAD(TrackRef) refs;       /* oldest first */
        LIST_FIELDS(Tracker, by_space);
        LIST_FIELDS(Tracker, by_prefix);
        LIST_FIELDS(Tracker, by_owner);
};

typedef struct TrackKey {
        LIST_HEAD(TrackRef) refs;
        char key[];
} TrackKey;

/* One (tracker, key) pair. */
struct TrackRef {
        Tracker *tracker;
        TrackKey *key;
        LIST_FIELDS(TrackRef, by_key);
        LIST_FIELDS(TrackRef, by_tracker);
        LIST_FIELDS(TrackRef, by_owner);
        LIST_FIELDS(TrackRef, by_hub);
};

uint64_t track_hash(const char *key, size_t len) {
        uint64_t h = TRACK_FNV_OFFSET;

        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t) key[i];
                h *= TRACK_FNV_PRIME;
        }
        return h;
}

size_t track_bucket(const char *key) {
        return (size_t) (track_hash(key, strlen(key)) & (TRACK_BUCKETS - 1));
}

/* --- the hub ------------------------------------------------------------------------ */

int track_hub_new(const TrackOps *ops, uint64_t max_keys_per_peer, uint64_t max_keys, TrackHub **ret) {
        TrackHub *h;

        if (!ops || !ops->invalidate || !ret)
                return -EINVAL;
        h = calloc(1, sizeof(TrackHub));
        if (!h)
                return -ENOMEM;
        h->ops = ops;
        h->max_keys_per_peer = max_keys_per_peer;
        h->max_keys = max_keys;
        *ret = h;
        return 0;
}

void track_hub_set_bounds(TrackHub *h, uint64_t max_keys_per_peer, uint64_t max_keys) {
        h->max_keys_per_peer = max_keys_per_peer;
        h->max_keys = max_keys;
}

TrackHub *track_hub_free(TrackHub *h) {
        if (!h)
                return NULL;
        assert(h->n_spaces == 0 && h->n_keys == 0);
        free(h);
        return NULL;
}

void track_hub_get_stats(const TrackHub *h, TrackStats *ret) {
        *ret = (TrackStats) {
                .owners = h->n_owners,
                .keys = h->n_keys,
                .invalidations = h->invalidations,
                .overflows = h->overflows,
        };
}

static void report(Tracker *t, const char *const *keys, size_t n) {
        TrackHub *h = t->space->hub;

        h->invalidations++;
        h->ops->invalidate(t->owner, t->space->userdata, keys, n);
}

/* --- pairs --------------------------------------------------------------------------- */

static void key_free(TrackSpace *s, TrackKey *k) {
        hashmap_remove(s->keys, k->key);
        free(k);
}

/* Unlinks REF from everything but its key's list, and frees it. */
static void ref_drop(TrackRef *ref) {
        Tracker *t = ref->tracker;
        TrackOwner *o = t->owner;
        TrackHub *h = t->space->hub;

        LIST_REMOVE(by_tracker, t->refs, ref);
        LIST_REMOVE(by_owner, o->refs, ref);
        LIST_REMOVE(by_hub, h->refs, ref);
        t->n_keys--;
        o->n_keys--;
        h->n_keys--;
        free(ref);
}

/* Unlinks and frees REF; its key goes too when nobody else tracks it. */
static void ref_free(TrackRef *ref) {
        TrackSpace *s = ref->tracker->space;
        TrackKey *k = ref->key;

        LIST_REMOVE(by_key, k->refs, ref);
        ref_drop(ref);
        if (LIST_IS_EMPTY(k->refs))
                key_free(s, k);
}

static void tracker_forget_all(Tracker *t) {
        while (t->refs.first)
                ref_free(t->refs.first);
}

/* A bound is reached: REF's key counts as changed for its tracker alone. */
static void evict(TrackRef *ref) {
        Tracker *t = ref->tracker;
        const char *key = ref->key->key;

        t->space->hub->overflows++;
        report(t, &key, 1);
        ref_free(ref);
}

static TrackRef *ref_find(const TrackKey *k, const Tracker *t) {
        TrackRef *ref;

        LIST_FOREACH(by_key, ref, k->refs)
                if (ref->tracker == t)
                        return ref;
        return NULL;
}

int track_read(Tracker *t, const char *key) {
        TrackSpace *s = t->space;
        TrackHub *h = s->hub;
        TrackOwner *o = t->owner;
        _cleanup_(freep) TrackRef *ref = NULL;
        TrackKey *k;
        int r;

        if (t->mode != TRACK_MODE_KEYS)
                return 0;
        k = hashmap_get(s->keys, key);
        if (k && ref_find(k, t))
                return 0;
        if (t->max_keys == 0 || h->max_keys_per_peer == 0 || h->max_keys == 0)
                return -ENOBUFS;
        ref = calloc(1, sizeof(TrackRef));
        if (!ref)
                return -ENOMEM;
        /* make room; evicting may free K (it was the last pair of that key) */
        while (t->n_keys >= t->max_keys)
                evict(t->refs.first);
        while (o->n_keys >= h->max_keys_per_peer)
                evict(o->refs.first);
        while (h->n_keys >= h->max_keys)
                evict(h->refs.first);
        k = hashmap_get(s->keys, key);
        if (!k) {
                size_t len = strlen(key);

                k = calloc(1, sizeof(TrackKey) + len + 1);
                if (!k)
                        return -ENOMEM;
                memcpy(k->key, key, len + 1);
                r = hashmap_put(s->keys, k->key, k);
                if (r < 0) {
                        free(k);
                        return r;
                }
        }
        ref->tracker = t;
        ref->key = k;
        LIST_APPEND(by_key, k->refs, ref);
        LIST_APPEND(by_tracker, t->refs, ref);
        LIST_APPEND(by_owner, o->refs, ref);
        LIST_APPEND(by_hub, h->refs, ref);
        t->n_keys++;
        o->n_keys++;
        h->n_keys++;
        TAKE_PTR(ref);
        return 0;
}

/* --- the page ------------------------------------------------------------------------ */

static void page_bump(TrackSpace *s, size_t bucket) {
        __atomic_fetch_add(&s->seq[bucket], 1, __ATOMIC_RELEASE);
}

static void page_bump_all(TrackSpace *s) {
        if (!s->seq)
                return;
        for (size_t i = 0; i < TRACK_BUCKETS; i++)
                page_bump(s, i);
}

/* A memfd of the page, mapped writable here; trackers get an fd they can only map for reading:
 * a read-only reopen, and the memfd sealed against any new writable mapping or write. */
static int page_new(TrackSpace *s) {
        _cleanup_(closep) int fd = -EBADF, ro_fd = -EBADF;
        char path[64];
        bool sealed;
        void *p;

        fd = memfd_create("clusterhub-track", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) PAGE_BYTES) < 0)
                return -errno;
        p = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        sealed = fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) >= 0;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ro_fd = open(path, O_RDONLY | O_CLOEXEC);
        /* without /proc the seal alone keeps writers out; without either we do not hand it out */
        if (ro_fd < 0 && sealed)
                ro_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (ro_fd < 0) {
                munmap(p, PAGE_BYTES);
                return -EPERM;
        }
        s->seq = p;
        s->fd = TAKE_FD(fd);
        s->ro_fd = TAKE_FD(ro_fd);
        return 0;
}

uint64_t track_sequence(const TrackSpace *s, const char *key) {
        if (!s->seq)
                return 0;
        return __atomic_load_n(&s->seq[track_bucket(key)], __ATOMIC_ACQUIRE);
}

const uint64_t *track_space_page(const TrackSpace *s) {
        return s->seq;
}

/* --- spaces and trackers --------------------------------------------------------------- */

int track_space_new(TrackHub *h, void *userdata, TrackSpace **ret) {
        TrackSpace *s;

        s = calloc(1, sizeof(TrackSpace));
        if (!s)
                return -ENOMEM;
        s->keys = hashmap_new();
        if (!s->keys) {
                free(s);
                return -ENOMEM;
        }
        s->hub = h;
        s->userdata = userdata;
        s->fd = s->ro_fd = -EBADF;
        h->n_spaces++;
        *ret = s;
        return 0;
}

static void tracker_free(Tracker *t) {
        TrackSpace *s = t->space;
        TrackOwner *o = t->owner;

        tracker_forget_all(t);
        LIST_REMOVE(by_space, s->trackers, t);
        s->n_trackers--;
        if (t->mode == TRACK_MODE_PREFIX)
                LIST_REMOVE(by_prefix, s->prefix_trackers, t);
        LIST_REMOVE(by_owner, o->trackers, t);
        if (LIST_IS_EMPTY(o->trackers))
                s->hub->n_owners--;
        for (size_t i = 0; i < t->n_prefixes; i++)
                free(t->prefixes[i]);
        free(t->prefixes);
        free(t->prefix_lens);
        free(t);
}

TrackSpace *track_space_free(TrackSpace *s) {
        if (!s)
                return NULL;
        page_bump_all(s);
        while (s->trackers.first) {
                Tracker *t = s->trackers.first;

                report(t, NULL, 0);
                tracker_free(t);
        }
        hashmap_free(s->keys);
        if (s->seq)
                munmap(s->seq, PAGE_BYTES);
        if (s->fd >= 0)
                close(s->fd);
        if (s->ro_fd >= 0)
                close(s->ro_fd);
        s->hub->n_spaces--;
        free(s);
        return NULL;
}

size_t track_space_n_trackers(const TrackSpace *s) {
        return s ? s->n_trackers : 0;
}

uint64_t tracker_max_keys(const Tracker *t) {
        return t->mode == TRACK_MODE_KEYS ? t->max_keys : 0;
}

size_t tracker_n_keys(const Tracker *t) {
        return t->n_keys;
}

Tracker *track_find(const TrackSpace *s, const TrackOwner *owner) {
        Tracker *t;

        LIST_FOREACH(by_owner, t, owner->trackers)
                if (t->space == s)
                        return t;
        return NULL;
}

int track_options_check(const TrackHub *h, const TrackOptions *o, size_t *ret_a, size_t *ret_b) {
        if (o->mode != TRACK_MODE_KEYS && o->mode != TRACK_MODE_PREFIX)
                return -EINVAL;
        if (o->mode == TRACK_MODE_KEYS) {
                if (o->n_prefixes > 0)
                        return -EINVAL;
                if (o->max_keys > h->max_keys_per_peer)
                        return -ENOBUFS;
                return 0;
        }
        if (o->n_prefixes == 0)
                return -EINVAL;
        if (o->n_prefixes > TRACK_MAX_PREFIXES)
                return -ENOBUFS;
        for (size_t i = 0; i < o->n_prefixes; i++)
                for (size_t j = i + 1; j < o->n_prefixes; j++) {
                        size_t a = strlen(o->prefixes[i]), b = strlen(o->prefixes[j]);

                        if (strncmp(o->prefixes[i], o->prefixes[j], MIN(a, b)) == 0) {
                                if (ret_a)
                                        *ret_a = i;
                                if (ret_b)
                                        *ret_b = j;
                                return -EINVAL;
                        }
                }
        return 0;
}

/* The options as a tracker keeps them, built apart so that a failure changes nothing. */
typedef struct TrackConfig {
        char **prefixes;
        size_t *prefix_lens;
        size_t n;
} TrackConfig;

static void track_config_done(TrackConfig *c) {
        for (size_t i = 0; c->prefixes && i < c->n; i++)
                free(c->prefixes[i]);
        free(c->prefixes);
        free(c->prefix_lens);
}

static int track_config_build(const TrackOptions *o, TrackConfig *ret) {
        _cleanup_(track_config_done) TrackConfig c = {};

        if (o->mode != TRACK_MODE_PREFIX) {
                *ret = c;
                return 0;
        }
        c.prefixes = calloc(o->n_prefixes, sizeof(char *));
        c.prefix_lens = calloc(o->n_prefixes, sizeof(size_t));
        if (!c.prefixes || !c.prefix_lens)
                return -ENOMEM;
        for (; c.n < o->n_prefixes; c.n++) {
                c.prefixes[c.n] = strdup(o->prefixes[c.n]);
                if (!c.prefixes[c.n])
                        return -ENOMEM;
                c.prefix_lens[c.n] = strlen(o->prefixes[c.n]);
        }
        *ret = c;
        c = (TrackConfig) {};
        return 0;
}

int track_start(TrackSpace *s, TrackOwner *owner, const TrackOptions *o, int *ret_fd) {
        TrackHub *h = s->hub;
        _cleanup_(track_config_done) TrackConfig c = {};
        _cleanup_(freep) Tracker *fresh = NULL;
        Tracker *t;
        int r;

        r = track_options_check(h, o, NULL, NULL);
        if (r < 0)
                return r;
        r = track_config_build(o, &c);
        if (r < 0)
                return r;
        t = track_find(s, owner);
        if (!t) {
                fresh = calloc(1, sizeof(Tracker));
                if (!fresh)
                        return -ENOMEM;
        }
        if (!s->seq) {
                r = page_new(s);
                if (r < 0)
                        return r;
        }
        if (t) {
                /* re-configured: what it read under the old options is forgotten */
                tracker_forget_all(t);
                report(t, NULL, 0);
                for (size_t i = 0; i < t->n_prefixes; i++)
                        free(t->prefixes[i]);
                free(t->prefixes);
                free(t->prefix_lens);
                if (t->mode == TRACK_MODE_PREFIX)
                        LIST_REMOVE(by_prefix, s->prefix_trackers, t);
        } else {
                t = TAKE_PTR(fresh);
                t->space = s;
                t->owner = owner;
                owner->hub = h;
                if (LIST_IS_EMPTY(owner->trackers))
                        h->n_owners++;
                LIST_APPEND(by_space, s->trackers, t);
                s->n_trackers++;
                LIST_APPEND(by_owner, owner->trackers, t);
        }
        t->mode = o->mode;
        if (t->mode == TRACK_MODE_PREFIX)
                LIST_APPEND(by_prefix, s->prefix_trackers, t);
        t->noloop = o->noloop;
        t->max_keys = o->max_keys > 0 ? o->max_keys : h->max_keys_per_peer;
        t->prefixes = c.prefixes;
        t->prefix_lens = c.prefix_lens;
        t->n_prefixes = c.n;
        c = (TrackConfig) {};
        *ret_fd = s->ro_fd;
        return 0;
}

int track_stop(TrackSpace *s, TrackOwner *owner) {
        Tracker *t = track_find(s, owner);

        if (!t)
                return 0;
        tracker_forget_all(t);
        report(t, NULL, 0);
        tracker_free(t);
        return 1;
}

void track_owner_release_all(TrackOwner *owner) {
        while (owner->trackers.first)
                tracker_free(owner->trackers.first);
}

/* --- changes -------------------------------------------------------------------------- */

static bool spared(const Tracker *t, bool by_write) {
        TrackHub *h = t->space->hub;

        return by_write && t->noloop && h->ops->is_writer && h->ops->is_writer(t->owner);
}

static bool prefix_matches(const Tracker *t, const char *key) {
        for (size_t i = 0; i < t->n_prefixes; i++)
                if (strncmp(key, t->prefixes[i], t->prefix_lens[i]) == 0)
                        return true;
        return false;
}

void track_key_changed(TrackSpace *s, const char *key, bool by_write) {
        TrackKey *k;
        Tracker *t;

        if (!s->seq)
                return;         /* nobody ever tracked here */
        page_bump(s, track_bucket(key));
        k = hashmap_get(s->keys, key);
        if (k) {
                /* one read bought one invalidation: every pair of KEY goes */
                hashmap_remove(s->keys, key);
                while (k->refs.first) {
                        TrackRef *ref = k->refs.first;
                        Tracker *rt = ref->tracker;
                        bool quiet = spared(rt, by_write);

                        LIST_REMOVE(by_key, k->refs, ref);
                        ref_drop(ref);
                        if (!quiet)
                                report(rt, &key, 1);
                }
                free(k);
        }
        LIST_FOREACH(by_prefix, t, s->prefix_trackers)
                if (prefix_matches(t, key) && !spared(t, by_write))
                        report(t, &key, 1);
}

void track_space_flush(TrackSpace *s) {
        Tracker *t;

        if (!s->seq)
                return;
        page_bump_all(s);
        LIST_FOREACH(by_space, t, s->trackers) {
                tracker_forget_all(t);
                report(t, NULL, 0);
        }
}
