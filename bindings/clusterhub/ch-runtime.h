/* SPDX-License-Identifier: MIT */
#pragma once

/* libclusterhub worker runtime: a hand-written layer over the generated stubs.
 *
 *   ChClient *c;
 *   ch_client_new(&c, NULL);                  // user bus, own sd-event loop
 *   ch_register(c, NULL);                     // id derived by the hub (worker@3.service -> "3")
 *   ch_on(c, NULL, "jobs.done", on_done, NULL, NULL);
 *   ch_serve(c, NULL, "resize", on_resize, NULL);
 *   ch_client_run(c);                         // until ch_client_exit()
 *
 * Conventions: functions return 0 (or a documented positive value) on success and a negative
 * errno on failure, and never touch their ret_* outputs on failure.  A D-Bus error from the hub
 * is mapped to an errno through ch_error_map (registered by ch_client_new()); its name and message
 * stay readable through ch_client_get_last_error() until the next blocking call.  NS arguments
 * are namespace names ([A-Za-z0-9_]+); NULL or "" means "default".
 *
 * Single-threaded: use one ChClient from one thread, the one running its sd-event loop.  Blocking
 * calls (ch_register, ch_serve, ch_request, ch_lock, ...) do not dispatch anything while they
 * wait; incoming events and requests are queued and handled afterwards.
 *
 * Transport: the hub's private socket when it is there and served by the expected user, else
 * the bus (ChClientOptions.transport, $CLUSTERHUB_TRANSPORT).  All hub traffic of a client uses
 * one connection, so replies and events keep their order.
 *
 * Hub restarts: on the bus the client watches NameOwnerChanged of org.clusterhub.Hub1; on the
 * private socket a restart closes the connection and the client connects again (retrying after
 * 50 ms, doubling up to 1 s, until the hub is back; in auto, after about 4.5 s it follows the hub
 * on the bus instead) and adds its match rules again.  Either way,
 * when the new hub is there it registers again (asking for the same id) and serves again every served
 * method.  Locks do not survive a hub restart (the hub's lock table is gone); ch_with_lock()
 * reports that as an unlock error with ChLockOptions.check_unlock.  Client-side caches (ChCache)
 * drop everything and call Track again on the new hub. */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CH_CODEGEN_APPEND_FN
#define CH_CODEGEN_APPEND_FN
/* Writes the trailing arguments of a call into M (for payloads: exactly one variant "v"). */
typedef int (*ch_append_fn)(sd_bus_message *m, void *userdata);
#endif

typedef struct ChClient ChClient;
typedef struct ChRequest ChRequest;

/* ---- client --------------------------------------------------------------------------- */

typedef enum ChBusType {
        CH_BUS_USER = 0,        /* the user (session) bus: $DBUS_SESSION_BUS_ADDRESS */
        CH_BUS_SYSTEM,          /* the system bus */
        CH_BUS_ADDRESS,         /* ChClientOptions.address */
} ChBusType;

/* How the client reaches the hub: through the bus daemon, or directly on the hub's private
 * socket (same objects and interfaces, one kernel hop instead of two). */
typedef enum ChTransport {
        CH_TRANSPORT_DEFAULT = 0,       /* $CLUSTERHUB_TRANSPORT (bus, private, auto), else auto */
        CH_TRANSPORT_AUTO,              /* the private socket if it is there and served by root or
                                         * our uid, else the bus */
        CH_TRANSPORT_BUS,               /* the bus only */
        CH_TRANSPORT_PRIVATE,           /* the private socket only: failing names the path */
} ChTransport;

typedef struct ChClientOptions {
        ChBusType bus_type;
        const char *address;            /* for CH_BUS_ADDRESS; a non-NULL address implies it */
        sd_event *event;                /* run on this loop (the caller's; referenced); NULL: own loop */
        int64_t event_priority;         /* sd-event priority of the bus source */
        uint64_t request_timeout_ms;    /* default of ch_request*() timeout_ms; 0: 10000 */
        const char *description;        /* connection description for debugging; may be NULL */
        ChTransport transport;          /* CH_TRANSPORT_DEFAULT: $CLUSTERHUB_TRANSPORT, else auto */
        /* The hub's private socket.  NULL: $CLUSTERHUB_PRIVATE_SOCKET, else the standard one of
         * the bus: $XDG_RUNTIME_DIR/clusterhub/private for the user bus, /run/clusterhub/private
         * for the system bus, and only when that bus is the standard one (the hub of another bus
         * does not listen there).  An explicit address (CH_BUS_ADDRESS) has no standard socket:
         * such a client stays on its bus unless a socket is named here or in the environment. */
        const char *private_socket;
} ChClientOptions;

/* Parses "auto", "bus", "private".  0 or -EINVAL. */
int ch_transport_from_string(const char *s, ChTransport *ret);
/* "auto", "bus", "private", or NULL for anything else. */
const char *ch_transport_to_string(ChTransport t);

/* Opens a started connection to the hub as ch_client_new() would (opts NULL: the user bus):
 * returns 1 on the private socket, 0 on the bus.  On failure *ret_error (may be NULL) names
 * what failed (the socket's path, the bus).  For tools that use the generated stubs without a
 * ChClient (hubctl).  With auto, a socket that is missing, refuses the connection or may not be
 * opened (ENOENT, ECONNREFUSED, EACCES) falls back to the bus silently; any other failure, a
 * server of another uid among them, falls back with one line on stderr. */
int ch_bus_open(sd_bus **ret, const ChClientOptions *opts, sd_bus_error *ret_error);

/* Connects (opts NULL: the user bus, own loop) as ch_bus_open() does.  Does not register: call
 * ch_register().  A failure is also written to stderr (one line naming the socket or the bus). */
int ch_client_new(ChClient **ret, const ChClientOptions *opts);
/* Flushes queued messages, drops every subscription, handler and pending call, closes the
 * connection.  Requests still held by the program get a "Failed" error.  NULL-safe; returns NULL. */
ChClient *ch_client_free(ChClient *c);

/* The connection in use.  On the private socket it is replaced when the hub restarts (a new
 * connection, a new unique name): fetch it again rather than keeping it, e.g. in the registered
 * callback.  On the bus it stays the same for the client's life. */
sd_bus *ch_client_get_bus(ChClient *c);
/* The private socket's path while the client uses it, NULL on the bus. */
const char *ch_client_get_private_socket(ChClient *c);
sd_event *ch_client_get_event(ChClient *c);
/* The unique bus name of the connection. */
const char *ch_client_get_unique_name(ChClient *c);
/* The error of the last failed blocking call (name and message), or an unset error. */
const sd_bus_error *ch_client_get_last_error(ChClient *c);

/* Runs the loop until ch_client_exit(); returns the exit code given there (or a negative errno).
 *
 * Losing the bus (its daemon exited, or it closed this connection) is not a hub restart: the
 * client cannot go on.  The runtime then logs one line naming the bus on stderr, sets the last
 * error to org.freedesktop.DBus.Error.Disconnected, and ends the loop (also a loop passed in
 * ChClientOptions.event) with -ECONNRESET: ch_client_run() and ch_client_process() return
 * -ECONNRESET from then on.  Exit non-zero on it, so that Restart=on-failure starts the worker
 * again. */
int ch_client_run(ChClient *c);
/* Makes ch_client_run() (sd_event_loop) return CODE. */
int ch_client_exit(ChClient *c, int code);
/* One loop iteration: waits up to timeout_usec (UINT64_MAX: forever) and dispatches.
 * Returns > 0 if something was dispatched, 0 on timeout, or a negative errno (-ECONNRESET once
 * the bus is lost). */
int ch_client_process(ChClient *c, uint64_t timeout_usec);
/* Writes every queued outgoing message (emits are sent without waiting for an answer). */
int ch_client_flush(ChClient *c);

/* ---- registration --------------------------------------------------------------------- */

/* Registers this connection as worker ID (NULL or "": derived by the hub).  Blocking.  From now on
 * the client registers again whenever the hub restarts.  Calling it again with another id
 * re-registers under that id. */
int ch_register(ChClient *c, const char *id);
/* Unregisters (blocking) and stops re-registering on hub restarts. */
int ch_unregister(ChClient *c);
/* The registered worker id, or NULL when not registered (yet, or while the hub is away). */
const char *ch_client_get_id(ChClient *c);

/* Called after every successful (re-)registration; error < 0 when a re-registration after a hub
 * restart failed (id NULL then).  One callback per client; NULL removes it. */
typedef void (*ch_registered_fn)(ChClient *c, const char *id, int error, void *userdata);
void ch_client_set_registered_callback(ChClient *c, ch_registered_fn cb, void *userdata);

/* ---- events --------------------------------------------------------------------------- */

/* A listener.  PAYLOAD is positioned at the payload variant: read it with
 * sd_bus_message_read(payload, "v", "s", &str) and the like.  It is only valid during the call
 * (take a reference with sd_bus_message_ref() to keep it).  ORIGIN is the emitter's worker id or
 * unique bus name, as filled in by the hub; for local emits it is this client's own.
 * Remote events reach listeners only if the current owner of org.clusterhub.Hub1 sent them (none
 * while no hub is on the bus): another client cannot forge one.  The return value is ignored. */
typedef int (*ch_event_fn)(const char *event, const char *origin, sd_bus_message *payload, void *userdata);

/* Listens to EVENT in namespace NS.  The first listener of an (ns, event) adds the bus match
 * (arg0=EVENT, so the bus only sends what is listened for); later ones share it (refcounted).
 * ret_id (may be NULL) identifies the listener for ch_off().  Listeners run in registration
 * order; one added while an event is being dispatched sees the next event first. */
int ch_on(ChClient *c, const char *ns, const char *event, ch_event_fn cb, void *userdata, uint64_t *ret_id);
/* As ch_on(), removed after its first call. */
int ch_once(ChClient *c, const char *ns, const char *event, ch_event_fn cb, void *userdata, uint64_t *ret_id);
/* As ch_on(), removed after its COUNT-th call (count >= 1). */
int ch_many(ChClient *c, const char *ns, const char *event, unsigned count, ch_event_fn cb, void *userdata, uint64_t *ret_id);
/* Listens to PREFIX and to every event below it in the dotted hierarchy ("jobs" gets "jobs",
 * "jobs.done", "jobs.a.b" but not "jobsx"): the bus's arg0namespace. */
int ch_on_prefix(ChClient *c, const char *ns, const char *prefix, ch_event_fn cb, void *userdata, uint64_t *ret_id);
/* Removes a listener; the last one of its (ns, event) removes the bus match.  Safe inside a
 * listener (also its own).  -ENOENT for an unknown or already removed id. */
int ch_off(ChClient *c, uint64_t id);

/* Payload writers (APPEND) write one variant "v"; NULL sends the empty string.  EVENT is
 * checked locally (non-empty, valid UTF-8, at most 255 bytes): -EINVAL.
 * ch_emit: this process's listeners synchronously (in registration order, before it returns),
 * then every other process through the hub.  Returns the number of local listeners called. */
int ch_emit(ChClient *c, const char *ns, const char *event, ch_append_fn append, void *userdata);
/* Only this process's listeners, synchronously.  Returns the number called. */
int ch_emit_local(ChClient *c, const char *ns, const char *event, ch_append_fn append, void *userdata);
/* Only other processes: sent through the hub (Emit, no reply expected, order kept per sender);
 * the hub's broadcast of it is not delivered to this client's own listeners. */
int ch_emit_remote(ChClient *c, const char *ns, const char *event, ch_append_fn append, void *userdata);
/* Unicast to worker WORKER (queued by the hub if it is not registered yet); no reply expected. */
int ch_emit_to(ChClient *c, const char *ns, const char *worker, const char *event, ch_append_fn append, void *userdata);

/* ---- requests ------------------------------------------------------------------------- */

/* Serves one request.  Reply with ch_request_reply() / ch_request_fail*() exactly once, now or
 * later: to reply later, keep REQ with ch_request_ref() and drop it with ch_request_unref() after
 * replying.  Returning a negative errno without having replied answers that errno as a D-Bus
 * error.  A request whose last reference goes without a reply is answered
 * org.freedesktop.DBus.Error.Failed ("handler did not reply"). */
typedef int (*ch_request_handler_fn)(ChRequest *req, void *userdata);

/* Serves METHOD in NS: exports org.clusterhub.Handler1 at /org/clusterhub/Handler1 (once per
 * client) and calls Requests1.Serve (blocking).  -EEXIST if already served by this client. */
int ch_serve(ChClient *c, const char *ns, const char *method, ch_request_handler_fn handler, void *userdata);
/* Withdraws METHOD (Requests1.Unserve, blocking).  -ENOENT if not served. */
int ch_unserve(ChClient *c, const char *ns, const char *method);

ChRequest *ch_request_ref(ChRequest *req);
ChRequest *ch_request_unref(ChRequest *req);
ChClient *ch_request_get_client(ChRequest *req);
const char *ch_request_get_namespace(ChRequest *req);
const char *ch_request_get_method(ChRequest *req);
/* The caller's worker id or unique bus name, as given by the hub. */
const char *ch_request_get_origin(ChRequest *req);
/* The Handle call, positioned at the payload variant (read it with "v"). */
sd_bus_message *ch_request_get_payload(ChRequest *req);
/* true once replied or failed. */
bool ch_request_is_answered(ChRequest *req);
/* APPEND writes the reply variant "v" (NULL: the empty string).  -EALREADY if already answered. */
int ch_request_reply(ChRequest *req, ch_append_fn append, void *userdata);
/* A D-Bus error NAME (e.g. "com.example.Error.BadImage") and MESSAGE reach the caller unchanged.
 * -EALREADY if already answered; -EINVAL for an invalid error name. */
int ch_request_fail(ChRequest *req, const char *name, const char *message);
/* The error name of ERRNO (clusterhub's table, else sd-bus's). */
int ch_request_fail_errno(ChRequest *req, int error, const char *message);

/* Sends a request to TARGET (NULL or "": any worker serving METHOD, round-robin) and waits for
 * the reply.  timeout_ms 0: the client default.  On success *ret_reply (may be NULL) is the
 * method return, positioned at the start: read the reply with "v".  A handler's own error arrives
 * in ret_error unchanged; hub errors are org.clusterhub.Error.{NoHandler,Timeout,WorkerGone,...}.
 * Blocking: a request served by this very client needs ch_request_async(). */
int ch_request(ChClient *c, const char *ns, const char *target, const char *method,
               ch_append_fn append, void *userdata, uint64_t timeout_ms,
               sd_bus_message **ret_reply, sd_bus_error *ret_error);

/* ERROR is NULL on success; REPLY is the method return (read "v") or the error message.
 * Called exactly once, from the loop, unless the client is freed first. */
typedef void (*ch_reply_fn)(ChClient *c, sd_bus_message *reply, const sd_bus_error *error, void *userdata);
int ch_request_async(ChClient *c, const char *ns, const char *target, const char *method,
                     ch_append_fn append, void *append_userdata, uint64_t timeout_ms,
                     ch_reply_fn callback, void *userdata);

/* ---- locks ---------------------------------------------------------------------------- */

typedef struct ChLockOptions {
        uint64_t timeout_ms;    /* how long ch_lock waits: 0 the hub's default (10 s), UINT64_MAX forever */
        uint64_t lease_ms;      /* 0: held until unlocked or this connection closes */
        bool shared;            /* reader lock */
        bool check_unlock;      /* ch_with_lock(): wait for Unlock's answer (see there) */
} ChLockOptions;

/* Waits for lock NAME in NS (opts NULL: defaults) and stores its fencing token.  Blocking.
 * -ETIMEDOUT (Timeout), -EDEADLK (this client already holds it), ... */
int ch_lock(ChClient *c, const char *ns, const char *name, const ChLockOptions *opts, uint64_t *ret_token);
/* Never waits: 0 with the token if acquired, -EBUSY if someone else holds it. */
int ch_trylock(ChClient *c, const char *ns, const char *name, const ChLockOptions *opts, uint64_t *ret_token);
/* -EPERM (NotLockOwner) for a token that is not the holder's, -ENOLCK (NotLocked) if free. */
int ch_unlock(ChClient *c, const char *ns, const char *name, uint64_t token);
/* Unlock without waiting for the answer (NO_REPLY_EXPECTED): one message instead of a round trip.
 * The hub handles it before anything this client sends later, so a following ch_lock() of the
 * same name queues behind it; nobody hears a failure (the lock was lost meanwhile: lease expired,
 * hub restarted), the hub counts it in GetStats' 'unheard_errors'.  0 once queued (flushed by
 * the next blocking call, the loop, or ch_client_flush()), or a local -errno. */
int ch_unlock_noreply(ChClient *c, const char *ns, const char *name, uint64_t token);

typedef int (*ch_locked_fn)(ChClient *c, uint64_t token, void *userdata);
/* Takes the lock, runs FN, always unlocks.  Returns the ch_lock() error if the lock was not
 * taken; else FN's result.  The unlock is one-way (ch_unlock_noreply()) unless
 * opts->check_unlock: then it waits for the answer, and when FN succeeded (>= 0) and unlocking
 * failed (the lock was lost: lease expired, hub restarted) the unlock error is returned. */
int ch_with_lock(ChClient *c, const char *ns, const char *name, const ChLockOptions *opts,
                 ch_locked_fn fn, void *userdata);

/* ---- client-side cache (issue #13, docs/bindings.md, docs/caching.md) ------------------ */

/* A cache of Get and HGet results of one namespace, kept fresh by the hub's tracking: the hub
 * passes a read-only shared-memory page of counters (one per key-hash bucket, bumped before any
 * write is answered) and sends Invalidate signals on this client's connection.  A hit is served
 * only while its bucket's counter is the one the hub read the key under, so a cached read is never
 * older than a write acknowledged before it began, on either transport, whatever order messages
 * arrive in.  Invalidate signals free memory (dispatched by the client's loop: run it); the page
 * alone decides freshness.  Everything is dropped on Invalidate([]) (Flush, DropNamespace, the
 * hub's table overflowing), on a hub restart and when the connection is replaced; the next read
 * calls Track again.  One cache per (client, namespace). */
typedef struct ChCache ChCache;

typedef struct ChCacheOptions {
        unsigned max_entries;           /* entries kept (LRU beyond); 0: 4096 */
        uint64_t max_age_usec;          /* an entry older than this is fetched again; 0: 60 s;
                                         * UINT64_MAX: no limit (the page keeps it fresh) */
        bool noloop;                    /* no Invalidate for this connection's own writes (the page
                                         * still turns them into misses) */
        uint32_t max_keys;              /* keys mode: the hub's bound of our tracked keys in this
                                         * namespace (Track's max_keys); 0: the hub's limit */
        /* non-NULL (NULL-terminated, non-empty): prefix mode (Redis BCAST): the hub keeps no
         * per-key table and invalidates every change under these prefixes ("" = every key);
         * only keys under them are kept. */
        const char *const *prefixes;
} ChCacheOptions;

typedef struct ChCacheStats {
        uint64_t hits;                  /* served from the cache */
        uint64_t misses;                /* fetched from the hub (GetTracked / HGetTracked) */
        uint64_t stale;                 /* of the misses: an entry was there but not fresh
                                         * (counter moved, TTL ended, too old) */
        uint64_t invalidations;         /* Invalidate signals received */
        uint64_t invalidated;           /* entries they dropped */
        uint64_t flushes;               /* everything dropped (Invalidate([]), hub restart, ...) */
        uint64_t evictions;             /* entries dropped to stay within max_entries */
        uint64_t discarded;             /* replies not stored: invalidated while in flight, or
                                         * already stale when they arrived */
        uint64_t tracks;                /* Track calls (1 + one per hub restart or reset) */
        uint64_t entries;               /* entries now */
} ChCacheStats;

/* Creates the cache of NS for C (opts NULL: defaults) and calls Track (blocking).  -EBUSY if C
 * has a cache of NS already; a refused Track: its errno (InvalidArgs -EINVAL, LimitExceeded,
 * or a hub without tracking: UnknownMethod), with the error in ch_client_get_last_error(). */
int ch_cache_new(ChClient *c, const char *ns, const ChCacheOptions *opts, ChCache **ret);
/* Untracks (without waiting) and frees.  NULL-safe; returns NULL.  A cache outliving its client
 * only frees. */
ChCache *ch_cache_free(ChCache *cache);

/* The value of KEY: 1 served from the cache, 0 fetched from the hub (blocking; stored for the
 * next reads), -ENOKEY when KEY is absent (an absence is cached too), or the error of the fetch
 * (WrongType: -EMEDIUMTYPE, ...).  *ret_value (may be NULL) is a new reference to the reply,
 * positioned at the value variant: read it with "v" before the next call into this cache (a hit
 * hands out the same message again, rewound), then unref it. */
int ch_cache_get(ChCache *cache, const char *key, sd_bus_message **ret_value);
/* The same for FIELD of the hash at KEY; any change of KEY invalidates every field of it. */
int ch_cache_hget(ChCache *cache, const char *key, const char *field, sd_bus_message **ret_value);

/* The values of the N KEYS: the hits from the cache, all misses with one MGetTracked (blocking),
 * stored for the next reads.  ret_values[i]: a new reference positioned at key i's value variant
 * (as ch_cache_get's), or NULL when key i is absent or holds a hash, list or set (as MGet leaves
 * it out).  Returns the number of hits, or a negative errno (ret_values untouched). */
int ch_cache_mget(ChCache *cache, const char *const *keys, size_t n, sd_bus_message **ret_values);

/* Typed getters, the fastest hits (no message is parsed: the value was decoded when stored):
 * 1 hit, 0 fetched, -ENOKEY absent, -EMEDIUMTYPE for a value of another D-Bus type, or the
 * fetch's error.  _string: types s, o, g; *ret points into the cache, valid until the next call
 * into this cache.  _int64: y n q i u x t b (t above INT64_MAX: -ERANGE). */
int ch_cache_get_string(ChCache *cache, const char *key, const char **ret);
int ch_cache_get_int64(ChCache *cache, const char *key, int64_t *ret);
int ch_cache_hget_string(ChCache *cache, const char *key, const char *field, const char **ret);
int ch_cache_hget_int64(ChCache *cache, const char *key, const char *field, int64_t *ret);

/* ERROR < 0 when the fetch failed (-ENOKEY: absent); VALUE (error 0) is positioned at the value
 * variant, valid during the call. */
typedef void (*ch_cache_fetched_fn)(ChCache *cache, const char *key, const char *field, int error,
                                    sd_bus_message *value, void *userdata);
/* Fetches KEY (FIELD NULL: Get, else HGet) without blocking and stores the reply when it comes
 * (from the client's loop), then calls CB (may be NULL).  The reply is stored only if no
 * invalidation of KEY was dispatched while it was in flight (Redis's placeholder).  For warming a
 * cache from an event loop. */
int ch_cache_prefetch(ChCache *cache, const char *key, const char *field, ch_cache_fetched_fn cb, void *userdata);

/* Drops every entry (the hub keeps tracking). */
void ch_cache_clear(ChCache *cache);
int ch_cache_get_stats(ChCache *cache, ChCacheStats *ret);

#ifdef __cplusplus
}
#endif
