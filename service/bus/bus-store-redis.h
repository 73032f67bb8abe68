/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "bus-store.h"
#include "ch-store1-server.h"
#include "macro.h"
#include "rstore.h"

/* The Store1 handlers of the Redis-backed store (--redis; docs/redis.md "Store"); their
 * userdata is the Namespace, as bus_store_handlers'.  Keys, strings and hashes are in
 * bus-store-redis.c, lists, sets and blocking pops in bus-store-redis-list.c; each method is
 * one or a few Redis commands or Lua scripts sent through the framework of
 * service/backend/rstore.h (read it for how to add one).  Entries left NULL answer
 * NotSupported. */
extern const ChStore1Handlers bus_store_redis_handlers;

/* ---- helpers for the handlers of both files (bus-store-redis.c) ------------------------------
 * A handler: validate (rs_check_*), build the command (RsArgs), send it (rs_send/rs_send_eval:
 * 1 when the call is answered now or later, a negative errno only before anything was sent),
 * and answer from its reply function (see rstore.h for what it returns). */

/* A command's arguments, binary-safe; the strings given to rs_args_take() are freed with it. */
typedef struct RsArgs {
        const char **v;
        size_t *l;
        char **owned;
        int n, allocated;
        size_t n_owned;
} RsArgs;
void rs_args_done(RsArgs *a);
/* Borrowed P of LEN bytes (must outlive the send). */
int rs_args_add(RsArgs *a, const char *p, size_t len);
int rs_args_str(RsArgs *a, const char *s);
/* Each string of L (NULL-terminated; NULL: none). */
int rs_args_strv(RsArgs *a, char **l);
/* Takes P (freed with A, also on failure; NULL: -ENOMEM). */
int rs_args_take(RsArgs *a, char *p, size_t len);
int rs_args_printf(RsArgs *a, const char *fmt, ...) _printf_(2, 3);
/* The Redis key of KEY in NS (rstore_key()). */
int rs_args_key(RsArgs *a, Namespace *ns, const char *key);
/* V encoded (rstore_encode()). */
int rs_args_value(RsArgs *a, const StoreValue *v);
/* Reads the variant at M's position, checks it as the local store does (bus_store_read_value(),
 * rs_check_value(); KEY names it in errors) and appends its encoding. */
int rs_args_read_value(RsArgs *a, sd_bus_message *m, Namespace *ns, const char *key, sd_bus_error *ret_error);

/* Sends A (or the script with NKEYS of A's arguments as KEYS) for call M on NS; DATA is freed
 * with FREE_DATA when the call ends (also on failure). */
int rs_send(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, RsArgs *a, void *data,
            void (*free_data)(void *));
int rs_send_eval(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, const char *script, int nkeys,
                 RsArgs *a, void *data, void (*free_data)(void *));
/* A write: the same, and KEYS (N of them; the first names the call's key in errors) are what
 * it may change, for client-side caching (rstore_call_set_written()).  SCRIPT NULL: A is a
 * command. */
int rs_send_write(Namespace *ns, sd_bus_message *m, const char *const *keys, size_t n, rstore_reply_fn fn, const char *script,
                  int nkeys, RsArgs *a, void *data, void (*free_data)(void *));
/* All of those in one: SCRIPT NULL sends A as a command; WRITTEN NULL is a read, else its
 * N_WRITTEN keys (the first is KEY) are what the call may change. */
int rs_send_call(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, const char *script, int nkeys,
                 RsArgs *a, void *data, void (*free_data)(void *), const char *const *written, size_t n_written);
/* Sends CMD KEY (a read) and answers with FN. */
int rs_one_key(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *cmd, const char *key,
               rstore_reply_fn fn);

/* The checks of bus-store.c: a key (or NAMES, each WHAT: "member", "field name") within
 * --max-key-bytes, a value within --max-value-bytes. */
int rs_check_key(Namespace *ns, sd_bus_error *ret_error, const char *key);
/* rs_check_key() that returns its error from the handler. */
#define RS_CHECK_KEY(ns, e, key)                                \
        do {                                                    \
                int _r_ = rs_check_key((ns), (e), (key));       \
                if (_r_ < 0)                                    \
                        return _r_;                             \
        } while (0)
int rs_check_names(Namespace *ns, sd_bus_error *ret_error, const char *const *names, size_t n, const char *what);
int rs_check_value(Namespace *ns, sd_bus_error *ret_error, const char *key, const StoreValue *v);
/* Each of V's values; KEY names them in the error (NULL: V's names). */
int rs_check_values(Namespace *ns, sd_bus_error *ret_error, const BusValues *v, const char *key);
size_t rs_strv_length(char **l);

/* Decodes a bulk string reply into V (rstore_decode(), and a blob must fit a reply's depth):
 * -EBADMSG for bytes that are not a clusterhub value, -E2BIG for more than --max-value-bytes
 * (another client wrote them): rs_decode_error() answers those (WrongType, LimitExceeded; LEN
 * the reply's) and passes other errors on.  Where several values are answered at once, such
 * values are left out. */
int rs_decode(RStoreCall *c, const struct redisReply *reply, RStoreValue *v);
/* The same for CALL when there is no RStoreCall (a blocking pop's waiter); H's limits. */
int rs_decode_for(Hub *h, sd_bus_message *call, const struct redisReply *reply, RStoreValue *v);
int rs_decode_error(RStoreCall *c, int r, size_t len, sd_bus_error *ret_error);
int rs_not_a_value(RStoreCall *c, sd_bus_error *ret_error);
/* NoSuchKey for the call's key. */
int rs_no_such_key(RStoreCall *c, sd_bus_error *ret_error);
/* A ch_append_fn appending the StoreValue USERDATA as a variant. */
int rs_append_value_cb(sd_bus_message *reply, void *userdata);
bool rs_is_nil(const struct redisReply *reply);
/* Whether a name Redis gave back (a key, a field, a member) can be a D-Bus string. */
bool rs_name_ok(const char *s, size_t len);

/* Reply functions for the common shapes: an integer reply answered as one "u" (Del, HLen, LLen,
 * SAdd...), as one "b" (> 0), and no out-arguments. */
int rs_on_count(RStoreCall *c, const struct redisReply *reply, sd_bus_error *ret_error);
int rs_on_bool(RStoreCall *c, const struct redisReply *reply, sd_bus_error *ret_error);
int rs_on_ok(RStoreCall *c, const struct redisReply *reply, sd_bus_error *ret_error);
