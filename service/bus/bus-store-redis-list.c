/* SPDX-License-Identifier: MIT */
/* Lists, sets and blocking pops of the Redis-backed store (--redis; docs/redis.md "Lists, sets
 * and blocking pops").  A list is a plain Redis list whose elements are values in the encoding
 * of rstore-codec.h; a set is a plain Redis set of the members' bytes.  Each method is one
 * Redis command, or one Lua script where a limit must be checked in the same atomic step.
 * BLPop/BRPop park no Redis connection: the waiters are this hub's (rstore-wait.h), served in
 * rounds of one script per chunk of waiters, when they arrive, when a keyspace notification
 * says a list they wait on may have got elements, and every RETRY_MS. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-store-redis-list.h"
#include "bus-store-redis.h"
#include "bus-store.h"
#include "bus-util.h"
#include "ch-errors.h"
#include "ch-store1-server.h"
#include "deferred.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "peer.h"
#include "redis-link.h"
#include "rstore-codec.h"
#include "rstore-wait.h"
#include "rstore.h"
#include "tracking.h"
#include "variant-codec.h"

/* A chunk of waiters per script: bounds the script's work and its reply. */
#define CHUNK_WAITERS 128
#define CHUNK_KEYS 512
/* The retry of every waiter, because keyspace notifications are at most once. */
#define RETRY_MS 500
/* Indices are clamped to this before they reach Lua, whose numbers are doubles: a list never
 * has 2^50 elements, so the answer is the same. */
#define INDEX_CLAMP ((int64_t) 1 << 50)
/* Values per LPUSH/SADD inside a script: Lua's unpack() is bounded by its C stack. */
#define SCRIPT_BATCH "1000"

/* ---- arguments ----------------------------------------------------------------------------- */

static int64_t clamp_index(int64_t i) {
        return i > INDEX_CLAMP ? INDEX_CLAMP : i < -INDEX_CLAMP ? -INDEX_CLAMP : i;
}

/* The Redis name of KEY in namespace NS (for the waiters, which hold no Namespace). */
static int args_rkey(RsArgs *a, const char *ns, const char *key) {
        char *k = NULL;
        int r = rstore_key(ns, key, &k);
        if (r < 0)
                return r;
        return rs_args_take(a, k, strlen(k));
}

/* Reads an "av" at M's position into encoded arguments; at least one value. */
static int args_values(RsArgs *a, sd_bus_message *m, Namespace *ns, const char *key, sd_bus_error *ret_error) {
        uint64_t max = ns->hub->limits.max_elements;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "v");
        if (r < 0)
                return r;
        for (;;) {
                r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                if (n >= max)
                        return bus_error_errno(ret_error, -ENOBUFS, "More than %llu values in one call (--max-elements).",
                                               (unsigned long long) max);
                r = rs_args_read_value(a, m, ns, key, ret_error);
                if (r < 0)
                        return r;
                n++;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (n == 0)
                return bus_error_errno(ret_error, -EINVAL, "Invalid argument for key '%s'.", key);
        return 0;
}

static int limit_message(RsArgs *a, const char *key, const char *limit, uint64_t value, const char *option) {
        return rs_args_printf(a, "CHERR LimitExceeded Limit exceeded for key '%s': %s; the limit is %llu (%s).", key, limit,
                              (unsigned long long) value, option);
}

static int elements_message(RsArgs *a, Namespace *ns, const char *key) {
        return limit_message(a, key, "elements", ns->hub->limits.max_elements, "--max-elements");
}

/* A script's bound and the error it answers past it: --max-elements for KEY... */
static int args_elements_limit(RsArgs *a, Namespace *ns, const char *key) {
        int r = rs_args_printf(a, "%" PRIu64, ns->hub->limits.max_elements);
        return r < 0 ? r : elements_message(a, ns, key);
}

/* ... and --max-reply-items for the method WHAT. */
static int args_reply_items_limit(RsArgs *a, Namespace *ns, const char *what) {
        int r = rs_args_printf(a, "%" PRIu64, ns->hub->limits.max_reply_items);
        if (r < 0)
                return r;
        return rs_args_printf(a, "CHERR LimitExceeded %s would return more than --max-reply-items=%llu items.", what,
                              (unsigned long long) ns->hub->limits.max_reply_items);
}

/* ---- replies ------------------------------------------------------------------------------- */

static int answered(int r) {
        return r < 0 ? r : 1;
}

/* An element Redis holds that the hub did not write. */
static int junk_error(RStoreCall *c, sd_bus_error *ret_error, bool removed) {
        return bus_error_errno(ret_error, -EMEDIUMTYPE, "List '%s' holds an element that is not a clusterhub value (another client of the Redis wrote it)%s.",
                               rstore_call_key(c), removed ? "; it was removed" : "");
}

/* Decoded values of an array reply. */
typedef struct Decoded {
        RStoreValue *v;
        size_t n;
} Decoded;

static void decoded_done(Decoded *d) {
        for (size_t i = 0; i < d->n; i++)
                rstore_value_done(&d->v[i]);
        free(d->v);
}

/* -EMEDIUMTYPE for an element that is not a clusterhub value, -E2BIG (*RET_LEN its length) for
 * one longer than --max-value-bytes: a list's reply does not leave elements out. */
static int decode_array(RStoreCall *c, const redisReply *reply, Decoded *ret, size_t *ret_len) {
        if (reply->type == REDIS_REPLY_NIL)
                return 0;
        if (reply->type != REDIS_REPLY_ARRAY)
                return -EBADMSG;
        ret->v = calloc(MAX(reply->elements, (size_t) 1), sizeof(RStoreValue));
        if (!ret->v)
                return -ENOMEM;
        for (size_t i = 0; i < reply->elements; i++) {
                const redisReply *e = reply->element[i];
                int r;

                if (e->type != REDIS_REPLY_STRING)
                        return -EBADMSG;
                r = rs_decode(c, e, &ret->v[i]);
                if (r == -E2BIG)
                        *ret_len = e->len;
                if (r < 0)
                        return r == -EBADMSG ? -EMEDIUMTYPE : r;
                ret->n++;
        }
        return 0;
}

static int append_decoded(sd_bus_message *reply, void *userdata) {
        const Decoded *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "v");
        for (size_t i = 0; r >= 0 && i < d->n; i++)
                r = codec_append_value(reply, &d->v[i].value);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* An "av" of the array REPLY (nil: empty).  POPPED: the elements are gone from Redis. */
static int reply_values(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error, bool popped) {
        _cleanup_(decoded_done) Decoded d = {};
        size_t len = 0;
        int r;

        r = decode_array(c, reply, &d, &len);
        if (r == -EMEDIUMTYPE)
                return junk_error(c, ret_error, popped);
        if (r < 0)
                return rs_decode_error(c, r, len, ret_error);
        return answered(ch_store1_reply_l_range(rstore_call_message(c), append_decoded, &d)); /* "av", as LPop's */
}

static int on_popped(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        return reply_values(c, reply, ret_error, true);
}

static int on_values(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        return reply_values(c, reply, ret_error, false);
}

/* One value (LIndex, LMove): nil is NoSuchKey with MESSAGE (the call's data) or the key's. */
static int on_value(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        RStoreValue v = {};
        const char *message = rstore_call_data(c);
        int r;

        if (reply->type == REDIS_REPLY_NIL) {
                if (message)
                        return bus_error_errno(ret_error, -ENOKEY, "%s", message);
                return rs_no_such_key(c, ret_error);
        }
        if (reply->type != REDIS_REPLY_STRING)
                return -EBADMSG;
        r = rs_decode(c, reply, &v);
        if (r == -EBADMSG)
                return junk_error(c, ret_error, false);
        if (r < 0)
                return rs_decode_error(c, r, reply->len, ret_error);
        r = ch_store1_reply_l_index(rstore_call_message(c), rs_append_value_cb, &v.value); /* "v", as LMove's */
        rstore_value_done(&v);
        return answered(r);
}

/* Members as an "as": each must be a D-Bus string (UTF-8 without NUL). */
static int on_members(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        if (reply->type != REDIS_REPLY_ARRAY && reply->type != REDIS_REPLY_NIL)
                return -EBADMSG;
        r = sd_bus_message_new_method_return(rstore_call_message(c), &m);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
                const redisReply *e = reply->element[i];

                if (e->type != REDIS_REPLY_STRING)
                        return -EBADMSG;
                if (!rs_name_ok(e->str, e->len))
                        return bus_error_errno(ret_error, -EMEDIUMTYPE,
                                               "Set '%s' holds a member that is not a string (another client of the Redis wrote it).",
                                               rstore_call_key(c));
                r = sd_bus_message_append_basic(m, 's', e->str);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return answered(bus_send(m));
}

/* ---- lists ---------------------------------------------------------------------------------- */

/* KEYS[1] the list; ARGV: the most elements, the command (LPUSH, RPUSH, LPUSHX, RPUSHX), the
 * LimitExceeded error, the values.  Pushed in batches: one lpush/rpush event per batch. */
static const char PUSH_SCRIPT[] =
        "local n = redis.call('LLEN', KEYS[1])\n"
        "local x = ARGV[2] == 'LPUSHX' or ARGV[2] == 'RPUSHX'\n"
        "if x and n == 0 then return 0 end\n"
        "if n + #ARGV - 3 > tonumber(ARGV[1]) then return redis.error_reply(ARGV[3]) end\n"
        "local cmd = x and string.sub(ARGV[2], 1, 5) or ARGV[2]\n"
        "for i = 4, #ARGV, " SCRIPT_BATCH " do\n"
        "  n = redis.call(cmd, KEYS[1], unpack(ARGV, i, math.min(i + " SCRIPT_BATCH " - 1, #ARGV)))\n"
        "end\n"
        "return n\n";

/* A push (LPush..., LInsert, LMove's destination) done: KEY of namespace NS gained an element
 * (at the LEFT end or not), an event for this hub's blocking pops. */
typedef struct PushDone {
        char *ns, *key;
        bool left;
} PushDone;

static void push_done_free(void *p) {
        PushDone *d = p;

        if (!d)
                return;
        free(d->ns);
        free(d->key);
        free(d);
}

static PushDone *push_done_new(const char *ns, const char *key, bool left) {
        PushDone *d = calloc(1, sizeof(PushDone));

        if (!d || !(d->ns = strdup(ns)) || !(d->key = strdup(key))) {
                push_done_free(d);
                return NULL;
        }
        d->left = left;
        return d;
}

static int on_pushed(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        PushDone *d = rstore_call_data(c);
        int r;

        r = rs_on_count(c, reply, ret_error);
        /* this hub's waiters try at once, without waiting for the notification */
        if (r > 0 && reply->integer > 0 && d)
                bus_store_redis_list_key_event(rstore_call_hub(c), d->ns, d->key, d->left ? "lpush" : "rpush");
        return r;
}

static int push_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, bool left, bool x) {
        _cleanup_(rs_args_done) RsArgs a = {};
        PushDone *d;
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_key(&a, ns, key)) < 0 ||
            (r = rs_args_printf(&a, "%" PRIu64, ns->hub->limits.max_elements)) < 0 ||
            (r = rs_args_str(&a, left ? (x ? "LPUSHX" : "LPUSH") : (x ? "RPUSHX" : "RPUSH"))) < 0 ||
            (r = elements_message(&a, ns, key)) < 0)
                return r;
        r = args_values(&a, m, ns, key, ret_error);
        if (r < 0)
                return r;
        d = push_done_new(ns->name, key, left);
        if (!d)
                return -ENOMEM;
        return rs_send_call(ns, m, key, on_pushed, PUSH_SCRIPT, 1, &a, d, push_done_free, (const char *[]) { key }, 1);
}

RLIST_HANDLER(l_push, const char *key) {
        return push_common(m, userdata, ret_error, key, true, false);
}

RLIST_HANDLER(r_push, const char *key) {
        return push_common(m, userdata, ret_error, key, false, false);
}

RLIST_HANDLER(l_push_x, const char *key) {
        return push_common(m, userdata, ret_error, key, true, true);
}

RLIST_HANDLER(r_push_x, const char *key) {
        return push_common(m, userdata, ret_error, key, false, true);
}

/* CMD KEY COUNT, always with a count (0 means 1): the reply is an array (LPOP/RPOP: nil when
 * absent; SPOP/SRANDMEMBER: empty, and SRANDMEMBER's members are distinct).  WRITE: it pops. */
static int count_command(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *cmd, const char *key,
                         uint32_t count, rstore_reply_fn on_reply, bool write) {
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_str(&a, cmd)) < 0 || (r = rs_args_key(&a, ns, key)) < 0 ||
            (r = rs_args_printf(&a, "%" PRIu32, count == 0 ? 1 : count)) < 0)
                return r;
        return rs_send_call(ns, m, key, on_reply, NULL, 0, &a, NULL, NULL, write ? (const char *[]) { key } : NULL, 1);
}

static int pop_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, bool left, uint32_t count) {
        return count_command(m, ns, ret_error, left ? "LPOP" : "RPOP", key, count, on_popped, true);
}

RLIST_HANDLER(l_pop, const char *key, uint32_t count) {
        return pop_common(m, userdata, ret_error, key, true, count);
}

RLIST_HANDLER(r_pop, const char *key, uint32_t count) {
        return pop_common(m, userdata, ret_error, key, false, count);
}

/* KEYS[1]; ARGV: start, stop (clamped), the most items, the LimitExceeded error.  The range is
 * normalized as LRANGE does, to refuse a reply past --max-reply-items before it is built. */
static const char LRANGE_SCRIPT[] =
        "local len = redis.call('LLEN', KEYS[1])\n"
        "local s, e = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
        "if s < 0 then s = len + s end\n"
        "if e < 0 then e = len + e end\n"
        "if s < 0 then s = 0 end\n"
        "if e >= len then e = len - 1 end\n"
        "if s <= e and e - s + 1 > tonumber(ARGV[3]) then return redis.error_reply(ARGV[4]) end\n"
        "return redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])\n";

RLIST_HANDLER(l_range, const char *key, int64_t start, int64_t stop) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_key(&a, ns, key)) < 0 || (r = rs_args_printf(&a, "%" PRIi64, clamp_index(start))) < 0 ||
            (r = rs_args_printf(&a, "%" PRIi64, clamp_index(stop))) < 0 ||
            (r = args_reply_items_limit(&a, ns, "LRange")) < 0)
                return r;
        return rs_send_call(ns, m, key, on_values, LRANGE_SCRIPT, 1, &a, NULL, NULL, NULL, 0);
}

RLIST_HANDLER(l_len, const char *key) {
        return rs_one_key(m, userdata, ret_error, "LLEN", key, rs_on_count);
}

RLIST_HANDLER(l_index, const char *key, int64_t index) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        char *message = NULL;
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_str(&a, "LINDEX")) < 0 || (r = rs_args_key(&a, ns, key)) < 0 ||
            (r = rs_args_printf(&a, "%" PRIi64, index)) < 0)
                return r;
        if (asprintf(&message, "List '%s' has no index %lld.", key, (long long) index) < 0)
                return -ENOMEM;
        return rs_send_call(ns, m, key, on_value, NULL, 0, &a, message, free, NULL, 0);
}

/* KEYS[1]; ARGV: index, value, the InvalidArgs error for an index out of range. */
static const char LSET_SCRIPT[] =
        "local r = redis.pcall('LSET', KEYS[1], ARGV[1], ARGV[2])\n"
        "if type(r) == 'table' and r.err and string.find(r.err, 'index out of range', 1, true) then\n"
        "  return redis.error_reply(ARGV[3])\n"
        "end\n"
        "return r\n";

RLIST_HANDLER(l_set, const char *key, int64_t index) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_key(&a, ns, key)) < 0 || (r = rs_args_printf(&a, "%" PRIi64, index)) < 0)
                return r;
        r = rs_args_read_value(&a, m, ns, key, ret_error);
        if (r < 0)
                return r;
        r = rs_args_printf(&a, "CHERR InvalidArgs Index %lld is out of range for list '%s'.", (long long) index, key);
        if (r < 0)
                return r;
        return rs_send_call(ns, m, key, rs_on_ok, LSET_SCRIPT, 1, &a, NULL, NULL, (const char *[]) { key }, 1);
}

RLIST_HANDLER(l_trim, const char *key, int64_t start, int64_t stop) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_str(&a, "LTRIM")) < 0 || (r = rs_args_key(&a, ns, key)) < 0 ||
            (r = rs_args_printf(&a, "%" PRIi64, start)) < 0 || (r = rs_args_printf(&a, "%" PRIi64, stop)) < 0)
                return r;
        return rs_send_call(ns, m, key, rs_on_ok, NULL, 0, &a, NULL, NULL, (const char *[]) { key }, 1); /* LTrim */
}

/* LREM and LINSERT compare the encoded bytes: the encoding is canonical for what the hub
 * writes (docs/redis.md says where it is not). */
RLIST_HANDLER(l_rem, const char *key, int64_t count) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_str(&a, "LREM")) < 0 || (r = rs_args_key(&a, ns, key)) < 0 ||
            (r = rs_args_printf(&a, "%" PRIi64, count)) < 0)
                return r;
        r = rs_args_read_value(&a, m, ns, key, ret_error);
        if (r < 0)
                return r;
        return rs_send_call(ns, m, key, rs_on_count, NULL, 0, &a, NULL, NULL, (const char *[]) { key }, 1); /* LRem, SRem */
}

/* KEYS[1]; ARGV: BEFORE/AFTER, pivot, value, the most elements, the LimitExceeded error.  The
 * limit only matters when the pivot is there (as in the local store). */
static const char LINSERT_SCRIPT[] =
        "if redis.call('LLEN', KEYS[1]) + 1 > tonumber(ARGV[4]) and redis.call('LPOS', KEYS[1], ARGV[2]) then\n"
        "  return redis.error_reply(ARGV[5])\n"
        "end\n"
        "return redis.call('LINSERT', KEYS[1], ARGV[1], ARGV[2], ARGV[3])\n";

static int parse_side(sd_bus_error *ret_error, const char *what, const char *value, const char *a, const char *b, bool *ret_a) {
        if (streq(value, a))
                *ret_a = true;
        else if (streq(value, b))
                *ret_a = false;
        else
                return bus_error_errno(ret_error, -EINVAL, "%s must be '%s' or '%s', not '%s'.", what, a, b, value);
        return 0;
}

static int on_inserted(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        PushDone *d = rstore_call_data(c);
        int r;

        if (reply->type != REDIS_REPLY_INTEGER)
                return -EBADMSG;
        r = answered(ch_store1_reply_l_insert(rstore_call_message(c), reply->integer));
        if (r > 0 && reply->integer > 0 && d)
                bus_store_redis_list_key_event(rstore_call_hub(c), d->ns, d->key, "linsert");
        return r;
}

RLIST_HANDLER(l_insert, const char *key, const char *where) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        bool before = false;
        PushDone *d;
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        r = parse_side(ret_error, "where", where, "before", "after", &before);
        if (r < 0)
                return r;
        if ((r = rs_args_key(&a, ns, key)) < 0 || (r = rs_args_str(&a, before ? "BEFORE" : "AFTER")) < 0)
                return r;
        r = rs_args_read_value(&a, m, ns, key, ret_error); /* the pivot */
        if (r < 0)
                return r;
        r = rs_args_read_value(&a, m, ns, key, ret_error);
        if (r < 0)
                return r;
        if ((r = args_elements_limit(&a, ns, key)) < 0)
                return r;
        d = push_done_new(ns->name, key, false);
        if (!d)
                return -ENOMEM;
        return rs_send_call(ns, m, key, on_inserted, LINSERT_SCRIPT, 1, &a, d, push_done_free, (const char *[]) { key }, 1);
}

/* KEYS: source, destination; ARGV: LEFT/RIGHT twice, the most elements, the LimitExceeded
 * error.  The destination's limit only matters when something moves to another list. */
static const char LMOVE_SCRIPT[] =
        "if KEYS[1] ~= KEYS[2] and redis.call('LLEN', KEYS[1]) > 0 and\n"
        "   redis.call('LLEN', KEYS[2]) + 1 > tonumber(ARGV[3]) then\n"
        "  return redis.error_reply(ARGV[4])\n"
        "end\n"
        "return redis.call('LMOVE', KEYS[1], KEYS[2], ARGV[1], ARGV[2])\n";

static int on_moved(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        PushDone *d = rstore_call_data(c); /* the destination */
        RStoreValue v = {};
        int r;

        if (reply->type == REDIS_REPLY_NIL)
                return rs_no_such_key(c, ret_error);
        if (reply->type != REDIS_REPLY_STRING)
                return -EBADMSG;
        /* moved already: a waiter on the destination may take it even when it does not decode */
        bus_store_redis_list_key_event(rstore_call_hub(c), d->ns, d->key, d->left ? "lpush" : "rpush");
        r = rs_decode(c, reply, &v);
        if (r == -EBADMSG)
                return bus_error_errno(ret_error, -EMEDIUMTYPE,
                                       "List '%s' holds an element that is not a clusterhub value (another client of the Redis wrote it); it was moved to '%s'.",
                                       rstore_call_key(c), d->key);
        if (r < 0)
                return rs_decode_error(c, r, reply->len, ret_error);
        r = ch_store1_reply_l_move(rstore_call_message(c), rs_append_value_cb, &v.value);
        rstore_value_done(&v);
        return answered(r);
}

RLIST_HANDLER(l_move, const char *source, const char *destination, const char *where_from, const char *where_to) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        bool from_left = false, to_left = false;
        PushDone *d;
        int r;

        if ((r = rs_check_key(ns, ret_error, source)) < 0 || (r = rs_check_key(ns, ret_error, destination)) < 0)
                return r;
        r = parse_side(ret_error, "where_from", where_from, "left", "right", &from_left);
        if (r < 0)
                return r;
        r = parse_side(ret_error, "where_to", where_to, "left", "right", &to_left);
        if (r < 0)
                return r;
        if ((r = rs_args_key(&a, ns, source)) < 0 || (r = rs_args_key(&a, ns, destination)) < 0 ||
            (r = rs_args_str(&a, from_left ? "LEFT" : "RIGHT")) < 0 || (r = rs_args_str(&a, to_left ? "LEFT" : "RIGHT")) < 0 ||
            (r = args_elements_limit(&a, ns, destination)) < 0)
                return r;
        d = push_done_new(ns->name, destination, to_left);
        if (!d)
                return -ENOMEM;
        return rs_send_call(ns, m, source, on_moved, LMOVE_SCRIPT, 2, &a, d, push_done_free, (const char *[]) { source, destination }, 2);
}

/* ---- sets ----------------------------------------------------------------------------------- */

/* KEYS[1]; ARGV: the most members, the LimitExceeded error, the members.  New members are
 * counted only when the set could overflow (each listed one counts, as in the local store). */
static const char SADD_SCRIPT[] =
        "local n = redis.call('SCARD', KEYS[1])\n"
        "if n + #ARGV - 2 > tonumber(ARGV[1]) then\n"
        "  for i = 3, #ARGV do\n"
        "    if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then n = n + 1 end\n"
        "  end\n"
        "  if n > tonumber(ARGV[1]) then return redis.error_reply(ARGV[2]) end\n"
        "end\n"
        "local added = 0\n"
        "for i = 3, #ARGV, " SCRIPT_BATCH " do\n"
        "  added = added + redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + " SCRIPT_BATCH " - 1, #ARGV)))\n"
        "end\n"
        "return added\n";

RLIST_HANDLER(s_add, const char *key, char **members) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        if ((r = rs_check_key(ns, ret_error, key)) < 0 ||
            (r = rs_check_names(ns, ret_error, (const char *const *) members, rs_strv_length(members), "member")) < 0)
                return r;
        if (!members || !members[0])
                return bus_error_errno(ret_error, -EINVAL, "Invalid argument for key '%s'.", key);
        if ((r = rs_args_key(&a, ns, key)) < 0 || (r = args_elements_limit(&a, ns, key)) < 0 ||
            (r = rs_args_strv(&a, members)) < 0)
                return r;
        return rs_send_call(ns, m, key, rs_on_count, SADD_SCRIPT, 1, &a, NULL, NULL, (const char *[]) { key }, 1);
}

RLIST_HANDLER(s_rem, const char *key, char **members) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        if ((r = rs_check_key(ns, ret_error, key)) < 0 ||
            (r = rs_check_names(ns, ret_error, (const char *const *) members, rs_strv_length(members), "member")) < 0)
                return r;
        if (!members || !members[0]) {
                /* nothing to remove (SREM wants a member): 0, or WrongType, as the local store */
                if ((r = rs_args_key(&a, ns, key)) < 0)
                        return r;
                return rs_send_call(ns, m, key, rs_on_count, "redis.call('SCARD', KEYS[1]) return 0", 1, &a, NULL, NULL, NULL, 0);
        }
        if ((r = rs_args_str(&a, "SREM")) < 0 || (r = rs_args_key(&a, ns, key)) < 0 || (r = rs_args_strv(&a, members)) < 0)
                return r;
        return rs_send_call(ns, m, key, rs_on_count, NULL, 0, &a, NULL, NULL, (const char *[]) { key }, 1); /* LRem, SRem */
}

/* KEYS[1]; ARGV: the most items, the LimitExceeded error. */
static const char SMEMBERS_SCRIPT[] =
        "if redis.call('SCARD', KEYS[1]) > tonumber(ARGV[1]) then return redis.error_reply(ARGV[2]) end\n"
        "return redis.call('SMEMBERS', KEYS[1])\n";

RLIST_HANDLER(s_members, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if ((r = rs_args_key(&a, ns, key)) < 0 || (r = args_reply_items_limit(&a, ns, "SMembers")) < 0)
                return r;
        return rs_send_call(ns, m, key, on_members, SMEMBERS_SCRIPT, 1, &a, NULL, NULL, NULL, 0);
}

RLIST_HANDLER(s_is_member, const char *key, const char *member) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        if ((r = rs_check_key(ns, ret_error, key)) < 0 ||
            (r = bus_check_name(ret_error, "member", member, ns->hub->limits.max_key_bytes)) < 0)
                return r;
        if ((r = rs_args_str(&a, "SISMEMBER")) < 0 || (r = rs_args_key(&a, ns, key)) < 0 || (r = rs_args_str(&a, member)) < 0)
                return r;
        return rs_send_call(ns, m, key, rs_on_bool, NULL, 0, &a, NULL, NULL, NULL, 0);
}

RLIST_HANDLER(s_card, const char *key) {
        return rs_one_key(m, userdata, ret_error, "SCARD", key, rs_on_count);
}

RLIST_HANDLER(s_pop, const char *key, uint32_t count) {
        return count_command(m, userdata, ret_error, "SPOP", key, count, on_members, true);
}

RLIST_HANDLER(s_rand_member, const char *key, uint32_t count) {
        return count_command(m, userdata, ret_error, "SRANDMEMBER", key, count, on_members, false);
}

/* ---- blocking pops -------------------------------------------------------------------------- */

typedef struct RList {
        Hub *hub;
        RedisLink *link;
        Hashmap *spaces;                /* namespace name -> Space, while it has waiters or chunks */
        sd_event_source *retry;
        uint64_t rounds;                /* chunks sent */
        uint64_t pushed_back;           /* values popped for callers gone meanwhile, pushed back */
        uint64_t lost;                  /* ... that could not be pushed back */
} RList;

/* The waiters of one namespace. */
typedef struct Space {
        RList *part;
        char *name;
        RWaitQueue *queue;
        /* the namespace was dropped: out of the map (a new wait there is a new Space), alive
         * until its chunks come back.  DropNamespace deleted the keys in Redis before it ended
         * the waiters, so those chunks ran after the deletion: what they pop for a caller gone
         * was pushed after the drop, and goes back as usual. */
        bool dropped;
} Space;

/* A chunk sent to Redis. */
typedef struct ChunkCall {
        Space *space;
        RWaitChunk *chunk;
} ChunkCall;

static void space_kick(Space *s);

static void space_free_if_idle(Space *s) {
        if (s->queue->n_waiters > 0 || s->queue->n_chunks > 0)
                return;
        if (!s->dropped)
                hashmap_remove(s->part->spaces, s->name);
        rwait_queue_drop(s->queue);
        free(s->name);
        free(s);
}

static int space_get(RList *p, const char *ns, bool create, Space **ret) {
        Space *s = hashmap_get(p->spaces, ns);
        int r;

        if (!s && create) {
                s = calloc(1, sizeof(Space));
                if (!s)
                        return -ENOMEM;
                s->part = p;
                s->name = strdup(ns);
                s->queue = rwait_queue_new();
                if (!s->name || !s->queue) {
                        free(s->name);
                        free(s->queue);
                        free(s);
                        return -ENOMEM;
                }
                s->queue->userdata = s;
                r = hashmap_put(p->spaces, s->name, s);
                if (r < 0) {
                        rwait_queue_drop(s->queue);
                        free(s->name);
                        free(s);
                        return r;
                }
        }
        *ret = s;
        return s ? 0 : -ENOENT;
}

static void retry_arm(RList *p) {
        uint64_t now;
        int r;

        if (hashmap_size(p->spaces) == 0) {
                (void) sd_event_source_set_enabled(p->retry, SD_EVENT_OFF);
                return;
        }
        if (sd_event_source_get_enabled(p->retry, NULL) > 0)
                return;
        r = sd_event_now(p->hub->event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_source_set_time(p->retry, now + RETRY_MS * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->retry, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Cannot arm the retry of blocking pops: %m");
}

/* The waiting call of W, answered: its Deferred goes, W goes. */
static Deferred *waiter_call(RWaiter *w) {
        return w->token;
}

static void waiter_fail(RWaiter *w, const char *name, const char *message) {
        Deferred *d = waiter_call(w);

        if (d) {
                (void) bus_reply_errorf(d->call, name, "%s", message);
                deferred_free(d);
                w->token = NULL;
        }
}

static void waiter_serve(Hub *h, RWaiter *w, const char *key, const redisReply *value) {
        Deferred *d = waiter_call(w);
        RStoreValue v = {};
        int r;

        r = rs_decode_for(h, d->call, value, &v);
        if (r == -EBADMSG)
                (void) bus_reply_errorf(d->call, CH_ERROR_WRONG_TYPE,
                                        "List '%s' holds an element that is not a clusterhub value (another client of the Redis wrote it); it was removed.",
                                        key);
        else if (r == -E2BIG)
                (void) bus_reply_errorf(d->call, CH_ERROR_LIMIT_EXCEEDED,
                                        "List '%s' held %zu bytes, more than --max-value-bytes=%llu (another client of the Redis wrote them); they were removed.",
                                        key, value->len, (unsigned long long) h->limits.max_value_bytes);
        else if (r < 0)
                (void) bus_reply_errorf(d->call, CH_ERROR_BACKEND_UNAVAILABLE, "Out of memory while answering a blocking pop.");
        else {
                r = ch_store1_reply_bl_pop(d->call, key, rs_append_value_cb, &v.value); /* BRPop's reply is the same */
                if (r < 0)
                        log_warning_errno(r, "Failed to answer a blocking pop on %s: %m", key);
        }
        rstore_value_done(&v);
        deferred_free(d);
        w->token = NULL;
}

/* Client-side caching: a pop changed KEY; this hub's trackers hear it before the caller's reply
 * (every hub's hear it again from the notification). */
static void track_popped(Space *s, const char *key) {
        Namespace *ns;

        if (namespace_get(s->part->hub, s->name, false, &ns) >= 0 && ns->tracking)
                track_key_changed(ns->tracking, key, true);
}

static void on_pushed_back(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        RList *p = userdata;

        if (!reply || reply->type == REDIS_REPLY_ERROR) {
                p->lost++;
                p->pushed_back--;
                log_warning("A value popped for a blocking pop whose caller left could not be pushed back: %s",
                            reply ? reply->str : strerror(-error));
        }
}

/* W's caller left after the round took VALUE from KEY for it: back where it came from. */
static void waiter_push_back(Space *s, RWaiter *w, const char *key, const char *data, size_t len) {
        _cleanup_(freep) char *rkey = NULL;
        const char *cmd = w->left ? "LPUSH" : "RPUSH";
        int r;

        r = rstore_key(s->name, key, &rkey);
        if (r >= 0) {
                const char *argv[] = { cmd, rkey, data };
                const size_t len_[] = { 5, strlen(rkey), len };
                r = redis_link_command(s->part->link, 3, argv, len_, on_pushed_back, s->part);
        }
        if (r < 0) {
                s->part->lost++;
                log_warning_errno(r, "A value popped from '%s' in %s for a blocking pop whose caller left is lost: %m", key, s->name);
                return;
        }
        s->part->pushed_back++;
}

static void chunk_fail(ChunkCall *cc, const char *message) {
        RWaitChunk *c = cc->chunk;

        for (size_t i = 0; i < c->n_waiters; i++)
                if (c->waiters[i] && c->waiters[i]->token) {
                        waiter_fail(c->waiters[i], CH_ERROR_BACKEND_UNAVAILABLE, message);
                        rwait_chunk_done(c, i);
                }
}

/* One waiter's element of the script's reply. */
static void chunk_one(ChunkCall *cc, size_t i, const redisReply *e) {
        RWaitChunk *c = cc->chunk;
        RWaiter *w = c->waiters[i];
        const char *key = NULL;
        long long place;

        if (e->type == REDIS_REPLY_INTEGER && e->integer == 0)
                return; /* it waits on */
        if (e->type == REDIS_REPLY_INTEGER && e->integer == -1) {
                if (w->token) {
                        _cleanup_(freep) char *msg = NULL;
                        /* as the local store: it names the first key */
                        if (asprintf(&msg, "Key '%s' holds a value of another type.", w->keys[0]) < 0)
                                msg = NULL;
                        waiter_fail(w, CH_ERROR_WRONG_TYPE, msg ? msg : "A key holds a value of another type.");
                }
                rwait_chunk_done(c, i);
                return;
        }
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_STRING || (place = e->element[0]->integer) < 1 ||
            !(key = rwait_chunk_key(c, i, (size_t) place - 1))) {
                if (w->token)
                        waiter_fail(w, CH_ERROR_BACKEND_UNAVAILABLE, "Redis gave a reply the hub cannot read.");
                rwait_chunk_done(c, i);
                return;
        }
        if (w->token) {
                track_popped(cc->space, key);
                waiter_serve(cc->space->part->hub, w, key, e->element[1]);
        } else
                waiter_push_back(cc->space, w, key, e->element[1]->str, e->element[1]->len);
        rwait_chunk_done(c, i);
}

static void on_chunk_reply(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        ChunkCall *cc = userdata;
        Space *s = cc->space;
        RWaitChunk *c = cc->chunk;

        if (!reply)
                chunk_fail(cc, error == -ETIMEDOUT ? "Redis did not answer in time (--redis-timeout-ms)." : "The connection to Redis was lost.");
        else if (reply->type == REDIS_REPLY_ERROR) {
                log_debug("Redis refused the script of blocking pops in %s: %s", s->name, reply->str);
                chunk_fail(cc, "Redis refused the script of blocking pops.");
        } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != c->n_waiters)
                chunk_fail(cc, "Redis gave a reply the hub cannot read.");
        else
                for (size_t i = 0; i < c->n_waiters; i++)
                        chunk_one(cc, i, reply->element[i]);
        free(cc);
        /* no namespace_check_all_unused() here: waiters hold no Namespace, and this also runs
         * from redis_link_free() while the hub exits, after its namespaces are gone */
        if (rwait_chunk_end(c)) {
                space_kick(s);
                space_free_if_idle(s);
        }
}

static int chunk_send(Space *s, RWaitChunk *c) {
        _cleanup_(rs_args_done) RsArgs a = {};
        ChunkCall *cc;
        int r;

        if ((r = rs_args_str(&a, "EVAL")) < 0 || (r = rs_args_str(&a, RWAIT_SCRIPT)) < 0 ||
            (r = rs_args_printf(&a, "%zu", c->n_keys)) < 0)
                return r;
        for (size_t i = 0; i < c->n_keys; i++)
                if ((r = args_rkey(&a, s->name, c->keys[i])) < 0)
                        return r;
        for (size_t i = 0; i < c->n_waiters; i++) {
                RWaiter *w = c->waiters[i];

                if ((r = rs_args_str(&a, w->left ? "l" : "r")) < 0 || (r = rs_args_str(&a, w->fresh ? "1" : "0")) < 0 ||
                    (r = rs_args_printf(&a, "%zu", w->n_keys)) < 0)
                        return r;
                for (size_t j = c->off[i]; j < c->off[i + 1]; j++)
                        if ((r = rs_args_printf(&a, "%zu", c->index[j] + 1)) < 0)
                                return r;
        }
        cc = calloc(1, sizeof(ChunkCall));
        if (!cc)
                return -ENOMEM;
        *cc = (ChunkCall) { .space = s, .chunk = c };
        r = redis_link_command(s->part->link, a.n, a.v, a.l, on_chunk_reply, cc);
        if (r < 0) {
                free(cc);
                return r;
        }
        s->part->rounds++;
        return 0;
}

/* Runs a round when one is wanted and none is in flight. */
static void space_kick(Space *s) {
        RWaitChunk *c;
        int r;

        if (!rwait_round_begin(s->queue))
                return;
        for (;;) {
                r = rwait_chunk_next(s->queue, CHUNK_WAITERS, CHUNK_KEYS, &c);
                if (r < 0) {
                        log_warning_errno(r, "Cannot serve the blocking pops of %s now: %m", s->name);
                        rwait_want(s->queue); /* the retry tries again */
                        return;
                }
                if (!c)
                        return;
                r = chunk_send(s, c);
                if (r < 0) {
                        ChunkCall cc = { .space = s, .chunk = c };
                        chunk_fail(&cc, r == -ENOMEM ? "Out of memory." : "Redis cannot be reached (--redis).");
                        rwait_chunk_end(c); /* the queue has waiters or chunks: not freed here */
                }
        }
}

static int on_retry(sd_event_source *es, uint64_t usec, void *userdata) {
        RList *p = userdata;
        Space *s;
        size_t i = 0;

        while (hashmap_iterate(p->spaces, &i, (void **) &s, NULL)) {
                rwait_want(s->queue);
                space_kick(s);
        }
        retry_arm(p);
        return 0;
}

void bus_store_redis_list_key_event(Hub *h, const char *ns, const char *key, const char *event) {
        RList *p = backend_part(h, &rlist_part_ops);
        Space *s;

        if (!p || space_get(p, ns, false, &s) < 0)
                return;
        if (rwait_key_event(s->queue, key, event)) {
                space_kick(s);
                space_free_if_idle(s);
        }
}

/* Ends every waiter of S that is not in a round with NAME; those in a round become orphans. */
static void space_fail_all(Space *s, const char *name, const char *message) {
        RWaiter *w, *next;

        for (w = s->queue->waiters.first; w; w = next) {
                next = w->waiters_next;
                if (!w->token)
                        continue;
                waiter_fail(w, name, message);
                rwait_cancel(w);
        }
}

void bus_store_redis_list_drop(Hub *h, const char *ns) {
        RList *p = backend_part(h, &rlist_part_ops);
        _cleanup_(freep) char *msg = NULL;
        Space *s;

        if (!p || space_get(p, ns, false, &s) < 0)
                return;
        if (asprintf(&msg, "Namespace '%s' was dropped.", ns) < 0)
                msg = NULL;
        space_fail_all(s, CH_ERROR_NAMESPACE_DROPPED, msg ? msg : "The namespace was dropped.");
        /* a BLPop there from now on is a new wait, in a new Space */
        hashmap_remove(p->spaces, s->name);
        s->dropped = true;
        space_free_if_idle(s);
}

static void pop_ended(Deferred *d, DeferredEnd why) {
        RWaiter *w = d->userdata;
        Space *s = w->queue->userdata;
        RList *p = s->part;

        w->token = NULL;
        rwait_cancel(w); /* in a round: what it pops for W goes back */
        space_free_if_idle(s);
        retry_arm(p);
        if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, CH_ERROR_TIMEOUT, "Nothing was pushed to the lists within the timeout.");
}

static int block_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, char **keys, uint32_t timeout_ms, bool left) {
        RList *p = backend_part(ns->hub, &rlist_part_ops);
        size_t n = 0;
        RWaiter *w;
        Deferred *d;
        Space *s;
        Peer *peer;
        int r;

        if (!keys || !keys[0])
                return bus_error_errno(ret_error, -EINVAL, "At least one key is needed.");
        for (char **k = keys; *k; k++, n++) {
                r = rs_check_key(ns, ret_error, *k);
                if (r < 0)
                        return r;
        }
        if (!p || !backend_is_up(ns->hub))
                return bus_error_errno(ret_error, -EHOSTDOWN, "Redis cannot be reached (--redis).");
        r = peer_get_or_new(ns->hub, m, &peer);
        if (r < 0)
                return r;
        r = peer_check_pending(peer, ret_error);
        if (r < 0)
                return r;
        r = space_get(p, ns->name, true, &s);
        if (r < 0)
                return r;
        /* timeout 0 waits without limit, as in Redis and the local store */
        r = deferred_new(ns->hub, m, peer, timeout_ms, pop_ended, NULL, &d);
        if (r < 0) {
                space_free_if_idle(s);
                return r;
        }
        r = rwait_add(s->queue, (const char *const *) keys, n, left, d, &w);
        if (r < 0) {
                deferred_free(d);
                space_free_if_idle(s);
                return r;
        }
        d->userdata = w;
        space_kick(s); /* its first try, in a round behind the older waiters */
        space_free_if_idle(s);
        retry_arm(p);
        return 1;
}

RLIST_HANDLER(bl_pop, char **keys, uint32_t timeout_ms) {
        return block_common(m, userdata, ret_error, keys, timeout_ms, true);
}

RLIST_HANDLER(br_pop, char **keys, uint32_t timeout_ms) {
        return block_common(m, userdata, ret_error, keys, timeout_ms, false);
}

/* ---- the part ------------------------------------------------------------------------------- */

static void part_link_state(void *part, bool up) {
        RList *p = part;
        Space *s;
        size_t i = 0;

        if (up)
                return;
        /* every chunk in flight has failed by now: the rest of the waiters fail too */
        while (hashmap_iterate(p->spaces, &i, (void **) &s, NULL)) {
                space_fail_all(s, CH_ERROR_BACKEND_UNAVAILABLE, "The connection to Redis was lost.");
                space_free_if_idle(s);
        }
        retry_arm(p);
}

static void part_free(void *part) {
        RList *p = part;
        Space *s;
        size_t i = 0;

        if (!p)
                return;
        /* the link is gone, and with it every chunk; the callers left before */
        while (hashmap_iterate(p->spaces, &i, (void **) &s, NULL)) {
                space_fail_all(s, CH_ERROR_SHUTTING_DOWN, "The hub is exiting.");
                hashmap_remove(p->spaces, s->name);
                rwait_queue_drop(s->queue);
                free(s->name);
                free(s);
        }
        hashmap_free(p->spaces);
        sd_event_source_disable_unref(p->retry);
        free(p);
}

static int part_new(Hub *h, RedisLink *link, uint64_t instance, void **ret) {
        RList *p;
        int r;

        p = calloc(1, sizeof(RList));
        if (!p)
                return -ENOMEM;
        p->hub = h;
        p->link = link;
        p->spaces = hashmap_new();
        if (!p->spaces) {
                part_free(p);
                return -ENOMEM;
        }
        r = sd_event_add_time(h->event, &p->retry, CLOCK_MONOTONIC, UINT64_MAX, 10 * USEC_PER_MSEC, on_retry, p);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->retry, SD_EVENT_OFF);
        if (r < 0) {
                part_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

static int part_append_stats(void *part, sd_bus_message *reply) {
        RList *p = part;
        uint64_t waiters = 0;
        Space *s;
        size_t i = 0;
        int r;

        /* callers still waiting (not the orphans of a round in flight) */
        while (hashmap_iterate(p->spaces, &i, (void **) &s, NULL))
                for (RWaiter *w = s->queue->waiters.first; w; w = w->waiters_next)
                        waiters += w->token != NULL;
        if ((r = bus_append_stat(reply, "backend_pop_waiters", 't', &waiters)) < 0 ||
            (r = bus_append_stat(reply, "backend_pop_rounds", 't', &p->rounds)) < 0 ||
            (r = bus_append_stat(reply, "backend_pops_pushed_back", 't', &p->pushed_back)) < 0)
                return r;
        return bus_append_stat(reply, "backend_pops_lost", 't', &p->lost);
}

const BackendPartOps rlist_part_ops = {
        .name = "blocking pops",
        .new = part_new,
        .free = part_free,
        .link_state = part_link_state,
        .append_stats = part_append_stats,
};
