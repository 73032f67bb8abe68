/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "backend.h"
#include "hub.h"
#include "rstore-codec.h"

/*
 * The Redis-backed store (--redis, docs/redis.md "Store"): every namespace's Store1 is executed
 * by Redis, so the hubs of every host see one store.  This is the backend part (rstore_part_ops
 * in backend_parts[]): the key names, the calls in flight, and KeyChanged from Redis's keyspace
 * notifications.  The values' encoding is rstore-codec.h; the Store1 handlers are
 * service/bus/bus-store-redis.c (strings, hashes, keys) and bus-store-redis-list.c (lists, sets).
 *
 * Keys: the value of KEY in namespace NS is the Redis key "clusterhub:{NS}:k:KEY".  The hash tag
 * {NS} keeps a namespace on one Redis Cluster slot.
 *
 * How to add a method (in the glue, e.g. bus-store-redis-list.c; bus-store-redis.h has helpers
 * for each step: rs_check_*, RsArgs, rs_send/rs_send_eval, rs_decode, rs_on_count...):
 *   1. Validate every argument as bus-store.c does (keys, sizes, counts) and encode the values
 *      (rstore_encode()), before anything is sent.
 *   2. RStoreCall *c; rstore_call_new(ns, m, key, on_reply, &c): C holds a reference to the call
 *      M and copies of the namespace's name and KEY (for error messages); it never points at
 *      the Namespace, which may be dropped while Redis answers.  On failure return its error.
 *   3. rstore_call_send(c, argc, argv, argvlen) for one command, or rstore_call_eval(c, script,
 *      nkeys, argc, argv, argvlen) for a Lua script (EVAL: argv are KEYS then ARGV).  Build key
 *      names with rstore_key().  From the handler: on failure the call was answered
 *      (BackendUnavailable when the link is down or behind) and freed; return 1 from the
 *      handler either way (the reply is sent or will be).  From ON_REPLY: return what the send
 *      returned (0, or an error the framework answers with).
 *   4. ON_REPLY(c, reply, ret_error) runs when Redis answers with anything but an error reply
 *      (those are mapped by rstore_redis_error(): WRONGTYPE -> WrongType, "not an integer" and
 *      "not a valid float" -> NotANumber, "overflow" -> Overflow, "no such key" -> NoSuchKey, a
 *      script's "CHERR Name message" -> org.clusterhub.Error.Name, anything else ->
 *      BackendUnavailable with Redis's text).  It returns:
 *        > 0  it answered the call (e.g. with ch_store1_reply_*(rstore_call_message(c), ...));
 *        0    it sent the next command of the same call (rstore_call_send/eval again);
 *        < 0  an error: the call is answered with RET_ERROR when set, else with the errno's
 *             org.clusterhub.Error (BackendUnavailable for a reply that does not parse).
 *      The framework frees C after > 0 and < 0.  rstore_call_set_data() attaches state that
 *      is freed with the call.  A link failure (-ETIMEDOUT, -ECONNRESET) answers
 *      BackendUnavailable without calling ON_REPLY.
 *   5. Every reply leaves through bus_send() (the generated ch_store1_reply_* and the
 *      bus_reply_* helpers do), so the private socket is told (bus_sent()).
 */

typedef struct RStore RStore;
typedef struct RStoreCall RStoreCall;
struct redisReply;
typedef struct Namespace Namespace;

extern const BackendPartOps rstore_part_ops;

typedef int (*rstore_reply_fn)(RStoreCall *c, const struct redisReply *reply, sd_bus_error *ret_error);

/* A Store1 call M on namespace NS executed by Redis (see the steps above).  KEY (may be NULL)
 * names the key in error messages.  -EHOSTDOWN when the hub has no Redis store. */
int rstore_call_new(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn on_reply, RStoreCall **ret);
/* The same for a call on namespace NS that has no Namespace here (DropNamespace). */
int rstore_call_new_hub(Hub *h, const char *ns, sd_bus_message *m, const char *key, rstore_reply_fn on_reply, RStoreCall **ret);
int rstore_call_send(RStoreCall *c, int argc, const char **argv, const size_t *argvlen);
int rstore_call_eval(RStoreCall *c, const char *script, int nkeys, int argc, const char **argv, const size_t *argvlen);
/* Drops a call that was never sent (an error before the first send: answer it yourself). */
void rstore_call_abandon(RStoreCall *c);

sd_bus_message *rstore_call_message(RStoreCall *c);
Hub *rstore_call_hub(RStoreCall *c);
const char *rstore_call_namespace(RStoreCall *c);
const char *rstore_call_key(RStoreCall *c);
/* Attaches DATA, freed with FREE_FN (may be NULL) when the call ends. */
void rstore_call_set_data(RStoreCall *c, void *data, void (*free_fn)(void *));
void *rstore_call_data(RStoreCall *c);
/* Client-side caching: the keys the call may change (copied), or every key of the namespace;
 * after Redis has run it, and before ON_REPLY (so before the reply), the tracking counters of
 * those keys grow and this hub's trackers hear Invalidate.  Set it on every write. */
int rstore_call_set_written(RStoreCall *c, const char *const *keys, size_t n);
void rstore_call_set_flush(RStoreCall *c);
/* KEY (NULL: every key) of namespace NS_NAME changed: this hub's trackers there see their
 * counters grow and hear Invalidate (nothing without a tracker there).  BY_WRITE as
 * track_key_changed()'s. */
void rstore_track_changed(Hub *h, const char *ns_name, const char *key, bool by_write);
/* WANT: Redis's error replies go to ON_REPLY as they are (it may try something else, or map
 * them itself with rstore_redis_error()) until it is turned off again. */
void rstore_call_want_errors(RStoreCall *c, bool want);
/* How many times ON_REPLY ran for C (a retry loop bounds itself with it). */
unsigned rstore_call_round(RStoreCall *c);

/* Maps Redis's error text to a negative errno and fills RET_ERROR with the named error. */
int rstore_redis_error(const char *text, size_t len, const char *ns, const char *key, sd_bus_error *ret_error);

/* The keys of a namespace: EVAL with no KEYS and ARGV = the MATCH pattern
 * (rstore_match_pattern()), what ("keys": the names, "count": how many, "random": one of
 * them or nil, "flush": delete them and say how many), and a bound on the names (0: none;
 * past it the script fails with LimitExceeded).  One script walking SCAN: atomic, and its
 * time grows with the whole database. */
extern const char rstore_keys_script[];
