/* SPDX-License-Identifier: MIT */
/* The client-side cache (ch_cache_*): Track, GetTracked / HGetTracked, the Invalidate signal and
 * the hub's read-only sequence page, over the client's one connection.  The table, the page and
 * the freshness rule are in cache-table.c; the protocol is docs/caching.md.
 *
 * Why a hit is never stale: the hub bumps the counter of a key's bucket before it answers any
 * write of the key, and a GetTracked reply carries the counter the key was read under.  A hit
 * needs the counter to be unchanged (an acquire load from the shared page), so a read that starts
 * after a write was acknowledged (to anyone, told over any channel) sees the bump and fetches.
 * Invalidate signals only free memory; messages may arrive in any order. */
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cache-table.h"
#include "runtime-internal.h"

#define STORE1 "org.clusterhub.Store1"
#define ERROR_NOT_TRACKING "org.clusterhub.Error.NotTracking"
#define DEFAULT_MAX_ENTRIES 4096u
#define MAX_ENTRIES_LIMIT (1u << 24)
#define DEFAULT_MAX_AGE_USEC (60 * UINT64_C(1000000))
#define MAX_PREFIXES 64
/* How often a hit asks the kernel whether the hub process still lives (a pidfd): the page of a
 * hub that died is never bumped again, and the news of its death waits on the connection until
 * the loop runs. */
#define HUB_CHECK_NS (1000 * UINT64_C(1000))
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
/* Test-only: receive Invalidate signals but act on none, to show that the page alone keeps
 * reads fresh (tests/runtime/test-cache.c). */
#define ENV_TEST_IGNORE_INVALIDATE "CLUSTERHUB_CACHE_TEST_IGNORE_INVALIDATE"

typedef struct Prefetch Prefetch;

struct ChCache {
        ChCache *next, *prev;           /* in the client's list */
        ChClient *client;               /* NULL once the client is freed */
        char *ns;
        char *path;

        CacheTable table;
        uint64_t max_age_ns;            /* UINT64_MAX: no limit */
        bool noloop;
        uint32_t max_keys;
        char **prefixes;                /* NULL: keys mode */
        bool ignore_invalidate;

        /* tracking: the page of the hub on the connection tracked_bus (referenced), the
         * Invalidate match on it; all NULL while not tracked */
        CachePage page;
        sd_bus *tracked_bus;
        sd_bus_slot *match_slot;
        int hub_pidfd;                  /* the tracking hub's process, -1: unknown */
        uint64_t hub_checked_ns;

        CacheFetch *fetches;            /* placeholders of the fetches in flight */
        sd_bus_message *last_reply;     /* keeps the string of a typed getter's fetch valid */
        uint64_t mget_calls;            /* ch_cache_mget() calls so far (CacheEntry.mget_call) */
        Prefetch *prefetches;
        ChCacheStats stats;
};

struct Prefetch {
        CacheFetch fetch;               /* in cache->fetches; fetch.key is this one's key */
        Prefetch *next, *prev;
        ChCache *cache;
        char *field;
        uint64_t hash;
        sd_bus_slot *slot;
        ch_cache_fetched_fn cb;
        void *userdata;
};

static uint64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

static void strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

/* ---- dropping -------------------------------------------------------------------------- */

static void cache_flush(ChCache *cache) {
        if (cache->table.n_entries > 0)
                cache->stats.flushes++;
        (void) cache_table_clear(&cache->table);
        cache_fetches_invalidate(cache->fetches, NULL);
}

/* Forgets the tracking (the hub restarted, the connection was replaced, or the hub says we are
 * not tracked): every entry, the page and the match.  The next read calls Track again. */
static void cache_untrack_local(ChCache *cache) {
        cache_flush(cache);
        cache_page_unmap(&cache->page);
        if (cache->hub_pidfd >= 0)
                (void) close(cache->hub_pidfd);
        cache->hub_pidfd = -1;
        cache->match_slot = sd_bus_slot_unref(cache->match_slot);
        cache->tracked_bus = sd_bus_unref(cache->tracked_bus);
}

void cache_reset_all(ChClient *c) {
        for (ChCache *cache = c->caches; cache; cache = cache->next)
                cache_untrack_local(cache);
}

static void prefetch_free(Prefetch *p) {
        ChCache *cache = p->cache;

        LIST_REMOVE(cache->fetches, &p->fetch);
        LIST_REMOVE(cache->prefetches, p);
        sd_bus_slot_unref(p->slot);
        free(p->fetch.key);
        free(p->field);
        free(p);
}

void cache_detach_all(ChClient *c) {
        while (c->caches) {
                ChCache *cache = c->caches;
                cache_untrack_local(cache);
                while (cache->prefetches)
                        prefetch_free(cache->prefetches);
                LIST_REMOVE(c->caches, cache);
                cache->client = NULL;
        }
}

/* ---- Invalidate -------------------------------------------------------------------------- */

static int on_invalidate(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        ChCache *cache = userdata;
        const char *key;
        unsigned n = 0;
        int r;

        if (!cache->client || !client_sender_is_hub(cache->client, m) || sd_bus_message_get_bus(m) != cache->tracked_bus)
                return 0;
        cache->stats.invalidations++;
        if (cache->ignore_invalidate)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0) {
                cache_flush(cache); /* not what the protocol says: forget everything, to be safe */
                return 0;
        }
        while ((r = sd_bus_message_read_basic(m, 's', &key)) > 0) {
                n++;
                cache->stats.invalidated += cache_table_remove_key(&cache->table, key, &cache->page);
                cache_fetches_invalidate(cache->fetches, key);
        }
        if (r < 0 || n == 0) {
                /* Invalidate([]): Flush, DropNamespace, the hub's table overflowing, Untrack */
                cache->stats.invalidated += cache->table.n_entries;
                cache_flush(cache);
        }
        return 0;
}

/* ---- Track ------------------------------------------------------------------------------- */

static int append_track_options(ChCache *cache, sd_bus_message *m) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (cache->prefixes) {
                r = sd_bus_message_append(m, "{sv}", "mode", "s", "prefix");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_basic(m, 's', "prefixes");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'v', "as");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_strv(m, cache->prefixes);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        if (cache->noloop && (r = sd_bus_message_append(m, "{sv}", "noloop", "b", 1)) < 0)
                return r;
        if (!cache->prefixes && cache->max_keys > 0 &&
            (r = sd_bus_message_append(m, "{sv}", "max_keys", "u", cache->max_keys)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* A pidfd of the process serving the hub on C's connection: the socket's peer, or the owner of
 * the hub's name on the bus.  -1 when the kernel or the bus cannot say (another pid namespace,
 * no pidfd_open): then only the loop notices a hub that died. */
static int hub_pidfd_open(ChClient *c) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        pid_t pid = 0;

        if (c->private_socket) {
                struct ucred cred = {};
                socklen_t len = sizeof(cred);
                int fd = sd_bus_get_fd(c->bus);
                if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
                        return -1;
                pid = cred.pid;
        } else if (sd_bus_get_name_creds(c->bus, CH_BUS_NAME, SD_BUS_CREDS_PID, &creds) < 0 ||
                   sd_bus_creds_get_pid(creds, &pid) < 0)
                return -1;
        if (pid <= 0)
                return -1;
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        return fd >= 0 ? fd : -1;
}

static bool hub_exited(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

/* Tracks on the client's current connection unless that is done already. */
static int cache_track(ChCache *cache) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        ChClient *c = cache->client;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t buckets;
        int fd, r;

        if (!c)
                return -ENOTCONN;
        if (cache->page.counters && cache->tracked_bus == c->bus)
                return 0;
        cache_untrack_local(cache);
        /* the match first: no Invalidate may come before it is there */
        r = sd_bus_match_signal_async(c->bus, &cache->match_slot, NULL, cache->path, STORE1, "Invalidate",
                                      on_invalidate, NULL, cache);
        if (r < 0)
                return client_set_error(c, NULL, r);
        r = sd_bus_message_new_method_call(c->bus, &m, CH_BUS_NAME, cache->path, STORE1, "Track");
        if (r >= 0)
                r = append_track_options(cache, m);
        if (r < 0)
                goto fail;
        r = sd_bus_call(c->bus, m, 0, &e, &reply);
        client_set_error(c, &e, r);
        sd_bus_error_free(&e);
        if (r < 0)
                goto fail;
        r = sd_bus_message_read(reply, "hu", &fd, &buckets);
        if (r < 0)
                goto fail;
        r = cache_page_map(&cache->page, fd, buckets);
        if (r < 0) {
                (void) sd_bus_error_setf(&c->last_error, SD_BUS_ERROR_INCONSISTENT_MESSAGE,
                                         "Track returned an unusable sequence page (%u buckets): %s", buckets, strerror(-r));
                goto fail;
        }
        cache->tracked_bus = sd_bus_ref(c->bus);
        cache->stats.tracks++;
        /* after Track: the process that gave us the page (a hub dying meanwhile shows as exited) */
        cache->hub_pidfd = hub_pidfd_open(c);
        cache->hub_checked_ns = now_ns();
        return 0;
fail:
        cache->match_slot = sd_bus_slot_unref(cache->match_slot);
        return r;
}

/* ---- reading ------------------------------------------------------------------------------ */

static bool key_wanted(ChCache *cache, const char *key) {
        if (!cache->prefixes)
                return true;
        for (char **p = cache->prefixes; *p; p++)
                if (strncmp(key, *p, strlen(*p)) == 0)
                        return true;
        return false;
}

/* Positions REPLY, a (b v t t), at its v. */
static int position_at_value(sd_bus_message *reply) {
        int found, r;

        r = sd_bus_message_rewind(reply, true);
        if (r < 0)
                return r;
        /* reading the b is cheaper than sd_bus_message_skip(), which parses a signature */
        return sd_bus_message_read_basic(reply, 'b', &found);
}

/* The fresh entry of KEY (FIELD), counted as a hit, or NULL (a stale one is dropped).  FOR_MGET:
 * an absence that MGetTracked reported may be served (it may be a hash, list or set, which a
 * single read must answer with WrongType: for it, that entry is a miss). */
static CacheEntry *cache_lookup(ChCache *cache, uint64_t hash, const char *key, const char *field, bool for_mget) {
        CacheEntry *e;
        uint64_t now;

        if (!cache->page.counters || !cache->client || cache->tracked_bus != cache->client->bus)
                return NULL;
        e = cache_table_lookup(&cache->table, hash, key, field);
        if (!e || (e->any_type && !for_mget))
                return NULL;
        now = now_ns();
        if (cache->hub_pidfd >= 0 && now - cache->hub_checked_ns >= HUB_CHECK_NS) {
                cache->hub_checked_ns = now;
                if (hub_exited(cache->hub_pidfd)) {
                        /* the page will never move again: forget it, Track the next hub */
                        cache->stats.stale++;
                        cache_untrack_local(cache);
                        return NULL;
                }
        }
        if (!cache_entry_fresh(e, &cache->page, now, cache->max_age_ns)) {
                cache->stats.stale++;
                cache_table_remove(&cache->table, e);
                return NULL;
        }
        cache->stats.hits++;
        cache_table_touch(&cache->table, e);
        return e;
}

/* Decodes the value of REPLY (positioned at its v, and left there) for the typed getters. */
static int decode_value(sd_bus_message *reply, char *ret_type, const char **ret_str, int64_t *ret_int) {
        const char *contents = NULL, *str = NULL;
        union {
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                int b;
        } v = {};
        char type, vtype = 0;
        int64_t i = 0;
        int r;

        r = sd_bus_message_peek_type(reply, &type, &contents);
        if (r < 0)
                return r;
        if (type != 'v' || !contents || strlen(contents) != 1)
                goto done;
        r = sd_bus_message_enter_container(reply, 'v', contents);
        if (r < 0)
                return r;
        switch (contents[0]) {
        case 's': case 'o': case 'g':
                r = sd_bus_message_read_basic(reply, contents[0], &str);
                vtype = 's';
                break;
        case 'y': case 'n': case 'q': case 'i': case 'u': case 'x': case 't': case 'b':
                r = sd_bus_message_read_basic(reply, contents[0], &v);
                vtype = 'x';
                switch (contents[0]) {
                case 'y': i = v.y; break;
                case 'n': i = v.n; break;
                case 'q': i = v.q; break;
                case 'i': i = v.i; break;
                case 'u': i = v.u; break;
                case 'x': i = v.x; break;
                case 'b': i = !!v.b; break;
                default:
                        if (v.t > INT64_MAX)
                                vtype = 'T';
                        else
                                i = (int64_t) v.t;
                }
                break;
        default:
                break;
        }
        if (r < 0)
                return r;
        r = position_at_value(reply);
        if (r < 0)
                return r;
done:
        *ret_type = vtype;
        *ret_str = str;
        *ret_int = i;
        return 0;
}

/* Stores the (b v t t) REPLY of KEY (FIELD) unless INVALIDATED in flight or already stale, and
 * positions it at its value.  1 when found, 0 when absent. */
static int cache_store(ChCache *cache, uint64_t hash, const char *key, const char *field, sd_bus_message *reply,
                       sd_bus *bus, bool invalidated, bool from_mget) {
        uint64_t seq, deadline, now;
        int found, r;

        r = sd_bus_message_read_basic(reply, 'b', &found);
        if (r < 0)
                return r;
        r = sd_bus_message_skip(reply, "v");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "tt", &seq, &deadline);
        if (r < 0)
                return r;
        r = position_at_value(reply);
        if (r < 0)
                return r;
        now = now_ns();
        if (invalidated || bus != cache->tracked_bus || !cache->page.counters || cache_page_load(&cache->page, hash) != seq ||
            (deadline != 0 && now >= deadline))
                cache->stats.discarded++;
        else if (key_wanted(cache, key)) {
                CacheEntry *e;
                r = cache_table_put(&cache->table, hash, key, field, found, reply, seq, deadline, now);
                if (r < 0)
                        return r;
                cache->stats.evictions += r;
                e = cache_table_lookup(&cache->table, hash, key, field);
                if (e && !found)
                        e->any_type = from_mget;
                if (e && found && (r = decode_value(reply, &e->vtype, &e->vstr, &e->vint)) < 0) {
                        cache_table_remove(&cache->table, e);
                        return r;
                }
        }
        return found ? 1 : 0;
}

static int new_tracked_call(ChCache *cache, const char *key, const char *field, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(cache->client->bus, &m, CH_BUS_NAME, cache->path, STORE1,
                                           field ? "HGetTracked" : "GetTracked");
        if (r < 0)
                return r;
        r = field ? sd_bus_message_append(m, "ss", key, field) : sd_bus_message_append_basic(m, 's', key);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* GetTracked / HGetTracked, blocking; stores the reply.  A hub that says we are not tracked (it
 * restarted, or Untrack or DropNamespace ended it) is tracked again, once. */
static int cache_fetch(ChCache *cache, uint64_t hash, const char *key, const char *field, sd_bus_message **ret_value) {
        ChClient *c = cache->client;

        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;
                CacheFetch f = { .key = (char *) key };
                int r;

                r = cache_track(cache);
                if (r < 0)
                        return r;
                r = new_tracked_call(cache, key, field, &m);
                if (r < 0)
                        return client_set_error(c, NULL, r);
                LIST_PREPEND(cache->fetches, &f);
                r = sd_bus_call(c->bus, m, 0, &e, &reply);
                LIST_REMOVE(cache->fetches, &f);
                if (r < 0 && sd_bus_error_has_name(&e, ERROR_NOT_TRACKING) && attempt == 0) {
                        sd_bus_error_free(&e);
                        cache_untrack_local(cache);
                        continue;
                }
                client_set_error(c, &e, r);
                sd_bus_error_free(&e);
                if (r < 0)
                        return r;
                cache->stats.misses++;
                r = cache_store(cache, hash, key, field, reply, c->bus, f.invalidated, false);
                if (r < 0)
                        return client_set_error(c, NULL, r);
                if (r == 0)
                        return -ENOKEY;
                if (ret_value)
                        *ret_value = TAKE_PTR(reply);
                return 0;
        }
}

static int cache_read(ChCache *cache, const char *key, const char *field, sd_bus_message **ret_value) {
        CacheEntry *e;
        uint64_t hash;
        int r;

        if (!cache || !key)
                return -EINVAL;
        hash = cache_fnv1a(key, strlen(key));
        e = cache_lookup(cache, hash, key, field, false);
        if (!e)
                return cache_fetch(cache, hash, key, field, ret_value);
        if (!e->found)
                return -ENOKEY;
        if (ret_value) {
                r = position_at_value(e->reply);
                if (r < 0)
                        return r;
                *ret_value = sd_bus_message_ref(e->reply);
        }
        return 1;
}

/* One (b v t t) message of its own for an element of MGetTracked's a(bvtt), REPLY positioned
 * inside the struct after its b: entries keep a reply each, shaped as GetTracked's. */
static int split_element(ChCache *cache, sd_bus_message *reply, int found, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(cache->client->bus, &m, cache->path, STORE1, "Value");
        if (r < 0)
                return r;
        r = sd_bus_message_append_basic(m, 'b', &found);
        if (r < 0)
                return r;
        r = sd_bus_message_copy(m, reply, true); /* v t t: the rest of the struct */
        if (r < 0)
                return r;
        r = sd_bus_message_seal(m, 1, 0);
        if (r < 0)
                return r;
        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* MGetTracked of the N KEYS (blocking; tracked again once on NotTracking), each stored as a
 * GetTracked reply would be; VALUES[IDX[j]] gets the j-th found value positioned at its v. */
static int cache_fetch_many(ChCache *cache, const char **keys, size_t n, const size_t *idx, sd_bus_message **values) {
        ChClient *c = cache->client;
        _cleanup_free_ CacheFetch *f = NULL;
        int r;

        f = calloc(n, sizeof(CacheFetch));
        if (!f)
                return -ENOMEM;
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;

                r = cache_track(cache);
                if (r < 0)
                        return r;
                r = sd_bus_message_new_method_call(c->bus, &m, CH_BUS_NAME, cache->path, STORE1, "MGetTracked");
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, (char **) keys);
                if (r < 0)
                        return client_set_error(c, NULL, r);
                for (size_t j = 0; j < n; j++) {
                        f[j] = (CacheFetch) { .key = (char *) keys[j] };
                        LIST_PREPEND(cache->fetches, &f[j]);
                }
                r = sd_bus_call(c->bus, m, 0, &e, &reply);
                for (size_t j = 0; j < n; j++)
                        LIST_REMOVE(cache->fetches, &f[j]);
                if (r < 0 && sd_bus_error_has_name(&e, ERROR_NOT_TRACKING) && attempt == 0) {
                        sd_bus_error_free(&e);
                        cache_untrack_local(cache);
                        continue;
                }
                client_set_error(c, &e, r);
                sd_bus_error_free(&e);
                if (r < 0)
                        return r;
                cache->stats.misses += n;
                r = sd_bus_message_enter_container(reply, 'a', "(bvtt)");
                for (size_t j = 0; r >= 0 && j < n; j++) {
                        _cleanup_(sd_bus_message_unrefp) sd_bus_message *one = NULL;
                        int found;

                        r = sd_bus_message_enter_container(reply, 'r', "bvtt");
                        if (r == 0)
                                r = -EBADMSG; /* fewer values than keys */
                        if (r >= 0)
                                r = sd_bus_message_read_basic(reply, 'b', &found);
                        if (r >= 0)
                                r = split_element(cache, reply, found, &one);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        if (r >= 0)
                                r = cache_store(cache, cache_fnv1a(keys[j], strlen(keys[j])), keys[j], NULL, one, c->bus,
                                                f[j].invalidated, true);
                        if (r > 0)
                                values[idx[j]] = TAKE_PTR(one);
                }
                return r < 0 ? client_set_error(c, NULL, r) : 0;
        }
}

/* A message of its own with the (b v t t) of SRC, positioned at its v: for a key that one
 * ch_cache_mget() call hands out twice (each value is read from its own position). */
static int reply_dup(ChCache *cache, sd_bus_message *src, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(cache->client->bus, &m, cache->path, STORE1, "Value");
        if (r >= 0)
                r = sd_bus_message_rewind(src, true);
        if (r >= 0)
                r = sd_bus_message_copy(m, src, true);
        if (r >= 0)
                r = position_at_value(src); /* where the value handed out before expects it */
        if (r >= 0)
                r = sd_bus_message_seal(m, 1, 0);
        if (r >= 0)
                r = position_at_value(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

_public_ int ch_cache_mget(ChCache *cache, const char *const *keys, size_t n, sd_bus_message **ret_values) {
        _cleanup_free_ sd_bus_message **values = NULL;
        _cleanup_free_ const char **miss = NULL;
        _cleanup_free_ size_t *idx = NULL;
        size_t n_miss = 0;
        int hits = 0, r;

        if (!cache || (!keys && n > 0) || !ret_values || n > INT_MAX)
                return -EINVAL;
        values = calloc(n + 1, sizeof(sd_bus_message *));
        miss = calloc(n + 1, sizeof(char *));
        idx = calloc(n + 1, sizeof(size_t));
        if (!values || !miss || !idx)
                return -ENOMEM;
        cache->mget_calls++;
        for (size_t i = 0; i < n; i++) {
                CacheEntry *e;

                if (!keys[i]) {
                        r = -EINVAL;
                        goto fail;
                }
                e = cache_lookup(cache, cache_fnv1a(keys[i], strlen(keys[i])), keys[i], NULL, true);
                if (!e) {
                        idx[n_miss] = i;
                        miss[n_miss++] = keys[i];
                        continue;
                }
                hits++;
                if (!e->found)
                        continue;
                if (e->mget_call == cache->mget_calls) {
                        /* the same key again: the caller reads each value from its own position */
                        r = reply_dup(cache, e->reply, &values[i]);
                        if (r < 0)
                                goto fail;
                        continue;
                }
                r = position_at_value(e->reply);
                if (r < 0)
                        goto fail;
                values[i] = sd_bus_message_ref(e->reply);
                e->mget_call = cache->mget_calls;
        }
        if (n_miss > 0 && (r = cache_fetch_many(cache, miss, n_miss, idx, values)) < 0)
                goto fail;
        memcpy(ret_values, values, n * sizeof(sd_bus_message *));
        return hits;
fail:
        for (size_t i = 0; i < n; i++)
                sd_bus_message_unref(values[i]);
        return r;
}

/* WANT 's' or 'x' of a decoded value. */
static int typed_result(char vtype, const char *vstr, int64_t vint, char want, const char **ret_str, int64_t *ret_int) {
        if (vtype == 'T' && want == 'x')
                return -ERANGE;
        if (vtype != want)
                return -EMEDIUMTYPE;
        if (want == 's' && ret_str)
                *ret_str = vstr;
        if (want == 'x' && ret_int)
                *ret_int = vint;
        return 0;
}

/* The typed getters: a hit reads the value decoded when it was stored, no message is parsed. */
static int cache_read_typed(ChCache *cache, const char *key, const char *field, char want, const char **ret_str,
                            int64_t *ret_int) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *str;
        CacheEntry *e;
        uint64_t hash;
        int64_t i;
        char vtype;
        int r;

        if (!cache || !key)
                return -EINVAL;
        cache->last_reply = sd_bus_message_unref(cache->last_reply);
        hash = cache_fnv1a(key, strlen(key));
        e = cache_lookup(cache, hash, key, field, false);
        if (e) {
                if (!e->found)
                        return -ENOKEY;
                r = typed_result(e->vtype, e->vstr, e->vint, want, ret_str, ret_int);
                if (r < 0)
                        return r;
                /* an Invalidate dispatched before the caller is done must not free the string */
                if (want == 's')
                        cache->last_reply = sd_bus_message_ref(e->reply);
                return 1;
        }
        r = cache_fetch(cache, hash, key, field, &reply);
        if (r < 0)
                return r;
        r = decode_value(reply, &vtype, &str, &i);
        if (r < 0)
                return r;
        r = typed_result(vtype, str, i, want, ret_str, ret_int);
        if (r < 0)
                return r;
        cache->last_reply = TAKE_PTR(reply); /* the string points into it */
        return 0;
}

_public_ int ch_cache_get_string(ChCache *cache, const char *key, const char **ret) {
        return cache_read_typed(cache, key, NULL, 's', ret, NULL);
}

_public_ int ch_cache_get_int64(ChCache *cache, const char *key, int64_t *ret) {
        return cache_read_typed(cache, key, NULL, 'x', NULL, ret);
}

_public_ int ch_cache_hget_string(ChCache *cache, const char *key, const char *field, const char **ret) {
        if (!field)
                return -EINVAL;
        return cache_read_typed(cache, key, field, 's', ret, NULL);
}

_public_ int ch_cache_hget_int64(ChCache *cache, const char *key, const char *field, int64_t *ret) {
        if (!field)
                return -EINVAL;
        return cache_read_typed(cache, key, field, 'x', NULL, ret);
}

_public_ int ch_cache_get(ChCache *cache, const char *key, sd_bus_message **ret_value) {
        return cache_read(cache, key, NULL, ret_value);
}

_public_ int ch_cache_hget(ChCache *cache, const char *key, const char *field, sd_bus_message **ret_value) {
        if (!field)
                return -EINVAL;
        return cache_read(cache, key, field, ret_value);
}

/* ---- prefetch ------------------------------------------------------------------------------ */

static int on_prefetch_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Prefetch *p = userdata;
        ChCache *cache = p->cache;
        int r;

        /* out of the cache's lists first: CB may free the cache */
        LIST_REMOVE(cache->fetches, &p->fetch);
        LIST_REMOVE(cache->prefetches, p);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                if (sd_bus_error_has_name(e, ERROR_NOT_TRACKING))
                        cache_untrack_local(cache);
                r = -sd_bus_error_get_errno(e);
                if (r >= 0)
                        r = -EIO;
        } else {
                cache->stats.misses++;
                r = cache_store(cache, p->hash, p->fetch.key, p->field, reply, sd_bus_message_get_bus(reply),
                                p->fetch.invalidated, false);
                r = r < 0 ? r : r == 0 ? -ENOKEY : 0;
        }
        if (p->cb)
                p->cb(cache, p->fetch.key, p->field, r, r >= 0 ? reply : NULL, p->userdata);
        sd_bus_slot_unref(p->slot);
        free(p->fetch.key);
        free(p->field);
        free(p);
        return 0;
}

_public_ int ch_cache_prefetch(ChCache *cache, const char *key, const char *field, ch_cache_fetched_fn cb, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Prefetch *p;
        int r;

        if (!cache || !key)
                return -EINVAL;
        r = cache_track(cache);
        if (r < 0)
                return r;
        r = new_tracked_call(cache, key, field, &m);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(Prefetch));
        if (!p)
                return -ENOMEM;
        p->cache = cache;
        p->hash = cache_fnv1a(key, strlen(key));
        p->cb = cb;
        p->userdata = userdata;
        p->fetch.key = strdup(key);
        p->field = field ? strdup(field) : NULL;
        LIST_PREPEND(cache->fetches, &p->fetch);
        LIST_PREPEND(cache->prefetches, p);
        if (!p->fetch.key || (field && !p->field)) {
                prefetch_free(p);
                return -ENOMEM;
        }
        r = sd_bus_call_async(cache->client->bus, &p->slot, m, on_prefetch_reply, p, 0);
        if (r < 0) {
                prefetch_free(p);
                return r;
        }
        return 0;
}

/* ---- the cache ------------------------------------------------------------------------------ */

static int copy_prefixes(const char *const *prefixes, char ***ret) {
        size_t n = 0;
        char **l;

        while (prefixes[n])
                n++;
        if (n == 0 || n > MAX_PREFIXES)
                return -EINVAL;
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(l[i] = strdup(prefixes[i]))) {
                        strv_free(l);
                        return -ENOMEM;
                }
        *ret = l;
        return 0;
}

_public_ int ch_cache_new(ChClient *c, const char *ns, const ChCacheOptions *opts, ChCache **ret) {
        static const ChCacheOptions defaults = {};
        ChCache *cache;
        int r;

        if (!c || !ret)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (opts->max_entries > MAX_ENTRIES_LIMIT)
                return -EINVAL;
        ns = ch_namespace_or_default(ns);
        if (!ch_namespace_is_valid(ns))
                return -EINVAL;
        for (ChCache *i = c->caches; i; i = i->next)
                if (streq(i->ns, ns))
                        return -EBUSY;

        cache = calloc(1, sizeof(ChCache));
        if (!cache)
                return -ENOMEM;
        cache->hub_pidfd = -1;
        cache->noloop = opts->noloop;
        cache->max_keys = opts->max_keys;
        cache->max_age_ns = opts->max_age_usec == UINT64_MAX       ? UINT64_MAX
                            : opts->max_age_usec == 0                ? DEFAULT_MAX_AGE_USEC * 1000
                            : opts->max_age_usec > UINT64_MAX / 1000 ? UINT64_MAX
                                                                     : opts->max_age_usec * 1000;
        const char *t = getenv(ENV_TEST_IGNORE_INVALIDATE);
        cache->ignore_invalidate = t && streq(t, "1");
        cache->ns = strdup(ns);
        if (!cache->ns) {
                r = -ENOMEM;
                goto fail;
        }
        r = ch_namespace_path(ns, &cache->path);
        if (r < 0)
                goto fail;
        if (opts->prefixes && (r = copy_prefixes(opts->prefixes, &cache->prefixes)) < 0)
                goto fail;
        r = cache_table_init(&cache->table, opts->max_entries ? opts->max_entries : DEFAULT_MAX_ENTRIES);
        if (r < 0)
                goto fail;
        /* in the client's list from here on (ch_cache_free() takes it out again) */
        cache->client = c;
        LIST_PREPEND(c->caches, cache);
        r = cache_track(cache);
        if (r < 0)
                goto fail;
        *ret = cache;
        return 0;
fail:
        ch_cache_free(cache);
        return r;
}

_public_ ChCache *ch_cache_free(ChCache *cache) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        ChClient *c;

        if (!cache)
                return NULL;
        c = cache->client;
        if (c) {
                /* stop the hub's tracking; nobody waits for the answer */
                if (cache->tracked_bus == c->bus &&
                    sd_bus_message_new_method_call(c->bus, &m, CH_BUS_NAME, cache->path, STORE1, "Untrack") >= 0 &&
                    sd_bus_message_set_expect_reply(m, 0) >= 0)
                        (void) sd_bus_send(c->bus, m, NULL);
                LIST_REMOVE(c->caches, cache);
        }
        cache_untrack_local(cache);
        while (cache->prefetches)
                prefetch_free(cache->prefetches);
        sd_bus_message_unref(cache->last_reply);
        cache_table_done(&cache->table);
        strv_free(cache->prefixes);
        free(cache->path);
        free(cache->ns);
        free(cache);
        return NULL;
}

_public_ void ch_cache_clear(ChCache *cache) {
        if (cache)
                cache_flush(cache);
}

_public_ int ch_cache_get_stats(ChCache *cache, ChCacheStats *ret) {
        if (!cache || !ret)
                return -EINVAL;
        *ret = cache->stats;
        ret->entries = cache->table.n_entries;
        return 0;
}
