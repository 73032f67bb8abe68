/* SPDX-License-Identifier: MIT */
/* Store1 on Redis (--redis; docs/redis.md "Store"): keys, strings and hashes.  Each handler
 * validates its arguments as bus-store.c does, then sends one Redis command or Lua script
 * through rstore.h's calls; the reply is built when Redis answers.  Reads and writes that
 * need the local store's exact semantics on a stored value (Append, SetRange, IncrFloat, Incr
 * on anything but a plain int64, GetRange, StrLen) read the value, apply the local store's
 * own function to it in a scratch store, and write the result back with a compare-and-set
 * script: atomic, and no arithmetic in Lua. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-store-redis-list.h"
#include "bus-store-redis.h"
#include "bus-store.h"
#include "bus-util.h"
#include "ch-store1-server.h"
#include "log.h"
#include "namespace.h"
#include "rstore.h"
#include "store.h"
#include "tracking.h"
#include "utf8.h"
#include "variant-codec.h"

/* A compare-and-set that keeps losing to other writers gives up after this many rounds.  Each
 * round some writer of the key wins, so N writers at once are all done within N rounds. */
#define CAS_MAX_ROUNDS 1024

/* ---- arguments --------------------------------------------------------------------------- */


void rs_args_done(RsArgs *a) {
        for (size_t i = 0; i < a->n_owned; i++)
                free(a->owned[i]);
        free(a->owned);
        free(a->v);
        free(a->l);
        *a = (RsArgs) {};
}

int rs_args_add(RsArgs *a, const char *p, size_t len) {
        if (a->n >= a->allocated) {
                int n = MAX(a->allocated * 2, 8);
                const char **v = realloc(a->v, n * sizeof(char *));
                if (!v)
                        return -ENOMEM;
                a->v = v;
                size_t *l = realloc(a->l, n * sizeof(size_t));
                if (!l)
                        return -ENOMEM;
                a->l = l;
                char **o = realloc(a->owned, n * sizeof(char *));
                if (!o)
                        return -ENOMEM;
                a->owned = o;
                a->allocated = n;
        }
        a->v[a->n] = p;
        a->l[a->n] = len;
        a->n++;
        return 0;
}

int rs_args_str(RsArgs *a, const char *s) {
        return rs_args_add(a, s, strlen(s));
}

int rs_args_strv(RsArgs *a, char **l) {
        for (; l && *l; l++) {
                int r = rs_args_str(a, *l);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Takes P (freed with A, also on failure). */
int rs_args_take(RsArgs *a, char *p, size_t len) {
        int r;

        if (!p)
                return -ENOMEM;
        r = rs_args_add(a, p, len);
        if (r < 0) {
                free(p);
                return r;
        }
        a->owned[a->n_owned++] = p;
        return 0;
}

int rs_args_printf(RsArgs *a, const char *fmt, ...) {
        va_list ap;
        char *s;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        return rs_args_take(a, s, (size_t) n);
}

int rs_args_key(RsArgs *a, Namespace *ns, const char *key) {
        char *k = NULL;
        int r = rstore_key(ns->name, key, &k);
        if (r < 0)
                return r;
        return rs_args_take(a, k, strlen(k));
}

int rs_args_value(RsArgs *a, const StoreValue *v) {
        char *b = NULL;
        size_t len = 0;
        int r = rstore_encode(v, &b, &len);
        if (r < 0)
                return r;
        return rs_args_take(a, b, len);
}

/* Reads the variant at M's position, checks it as the local store does (value_check()), and
 * appends its encoding. */
int rs_args_read_value(RsArgs *a, sd_bus_message *m, Namespace *ns, const char *key, sd_bus_error *ret_error) {
        _cleanup_(codec_value_done) CodecValue v = {};
        int r;

        r = bus_store_read_value(m, &v, ret_error); /* the named errors of a bad value, as bus-store.c */
        if (r < 0)
                return r;
        r = rs_check_value(ns, ret_error, key, &v.value);
        if (r < 0)
                return r;
        r = rs_args_value(a, &v.value);
        if (r == -EINVAL)
                return bus_error_errno(ret_error, r, "Invalid argument for key '%s'.", key);
        return r;
}

/* Sends the command A for call M; 1 (answered now or later) or a negative errno before
 * anything was sent. */
/* The one sender: SCRIPT NULL sends A as a command.  WRITTEN (N_WRITTEN keys) or FLUSH: what
 * the call may change, for client-side caching (rstore_call_set_written()). */
static int send_full(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, const char *script, int nkeys,
                     RsArgs *a, void *data, void (*free_data)(void *), const char *const *written, size_t n_written,
                     bool flush) {
        RStoreCall *c;
        int r;

        r = rstore_call_new(ns, m, key, fn, &c);
        if (r < 0) {
                if (free_data)
                        free_data(data);
                return r;
        }
        rstore_call_set_data(c, data, free_data);
        if (written) {
                r = rstore_call_set_written(c, written, n_written);
                if (r < 0) {
                        rstore_call_abandon(c);
                        return r;
                }
        }
        if (flush)
                rstore_call_set_flush(c);
        if (script)
                (void) rstore_call_eval(c, script, nkeys, a->n, a->v, a->l);
        else
                (void) rstore_call_send(c, a->n, a->v, a->l);
        return 1;
}

int rs_send_call(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, const char *script, int nkeys,
                 RsArgs *a, void *data, void (*free_data)(void *), const char *const *written, size_t n_written) {
        return send_full(ns, m, key, fn, script, nkeys, a, data, free_data, written, n_written, false);
}

int rs_send(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, RsArgs *a, void *data,
            void (*free_data)(void *)) {
        return send_full(ns, m, key, fn, NULL, 0, a, data, free_data, NULL, 0, false);
}

int rs_send_eval(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, const char *script, int nkeys,
                 RsArgs *a, void *data, void (*free_data)(void *)) {
        return send_full(ns, m, key, fn, script, nkeys, a, data, free_data, NULL, 0, false);
}

int rs_send_write(Namespace *ns, sd_bus_message *m, const char *const *keys, size_t n, rstore_reply_fn fn, const char *script,
                  int nkeys, RsArgs *a, void *data, void (*free_data)(void *)) {
        return send_full(ns, m, n > 0 ? keys[0] : NULL, fn, script, nkeys, a, data, free_data, keys, n, false);
}

/* A write of KEY alone. */
static int send_write1(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn fn, const char *script, int nkeys,
                       RsArgs *a) {
        return rs_send_write(ns, m, &key, 1, fn, script, nkeys, a, NULL, NULL);
}

/* ---- validation -------------------------------------------------------------------------- */

int rs_check_key(Namespace *ns, sd_bus_error *ret_error, const char *key) {
        return bus_check_name(ret_error, "key", key, ns->hub->limits.max_key_bytes);
}

static int check_field(Namespace *ns, sd_bus_error *ret_error, const char *field) {
        return bus_check_name(ret_error, "field name", field, ns->hub->limits.max_key_bytes);
}

/* KEY, and FIELD unless NULL (a hash's field). */
static int check_key_field(Namespace *ns, sd_bus_error *ret_error, const char *key, const char *field) {
        int r = rs_check_key(ns, ret_error, key);
        if (r < 0 || !field)
                return r;
        return check_field(ns, ret_error, field);
}

int rs_check_names(Namespace *ns, sd_bus_error *ret_error, const char *const *names, size_t n, const char *what) {
        for (size_t i = 0; i < n; i++) {
                int r = bus_check_name(ret_error, what, names[i], ns->hub->limits.max_key_bytes);
                if (r < 0)
                        return r;
        }
        return 0;
}

size_t rs_strv_length(char **l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

int rs_check_value(Namespace *ns, sd_bus_error *ret_error, const char *key, const StoreValue *v) {
        size_t bytes = store_value_bytes(v);

        if (bytes > ns->hub->limits.max_value_bytes)
                return bus_error_errno(ret_error, -ENOBUFS, "Value of '%s' is %zu bytes; the limit is %llu (--max-value-bytes).", key,
                                       bytes, (unsigned long long) ns->hub->limits.max_value_bytes);
        return 0;
}

int rs_check_values(Namespace *ns, sd_bus_error *ret_error, const BusValues *v, const char *key) {
        for (size_t i = 0; i < v->n; i++) {
                int r = rs_check_value(ns, ret_error, key ? key : v->names[i], &v->values[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- replies ----------------------------------------------------------------------------- */

int rs_not_a_value(RStoreCall *c, sd_bus_error *ret_error) {
        return bus_error_errno(ret_error, -EMEDIUMTYPE,
                               "Key '%s' in namespace '%s' holds bytes that are not a clusterhub value (written to Redis by another client?).",
                               rstore_call_key(c), rstore_call_namespace(c));
}

int rs_no_such_key(RStoreCall *c, sd_bus_error *ret_error) {
        return bus_error_errno(ret_error, -ENOKEY, "Key '%s' does not exist in namespace '%s'.", rstore_call_key(c),
                               rstore_call_namespace(c));
}

/* A blob must not nest deeper than a reply may carry (bytes in Redis are anyone's). */
static int blob_fits(sd_bus_message *call, const StoreValue *v) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *t = NULL;
        int r;

        if (v->type != 'v')
                return 1;
        r = sd_bus_message_new_method_call(sd_bus_message_get_bus(call), &t, NULL, "/", NULL, "Check");
        if (r < 0)
                return r;
        r = codec_append_value(t, v);
        if (r < 0)
                return 0;
        r = sd_bus_message_seal(t, 1, 0);
        if (r < 0)
                return r;
        return codec_message_fits(t, CODEC_VARIANT_DEPTH_MAX);
}

/* Decodes a bulk string reply into *RET for an answer to CALL: -EBADMSG (answered as WrongType
 * by the caller) when it is not a value the hub can send. */
int rs_decode_for(Hub *h, sd_bus_message *call, const redisReply *reply, RStoreValue *ret) {
        RStoreValue v = {};
        int r;

        if (reply->type != REDIS_REPLY_STRING)
                return -EBADMSG;
        /* the hub never writes more (its tag, a blob's NUL): another client did */
        if (reply->len > h->limits.max_value_bytes + 3)
                return -E2BIG;
        r = rstore_decode(reply->str, reply->len, &v);
        if (r < 0)
                return r;
        r = blob_fits(call, &v.value);
        if (r <= 0) {
                rstore_value_done(&v);
                return r < 0 ? r : -EBADMSG;
        }
        *ret = v;
        return 0;
}

int rs_decode(RStoreCall *c, const redisReply *reply, RStoreValue *v) {
        return rs_decode_for(rstore_call_hub(c), rstore_call_message(c), reply, v);
}

int rs_decode_error(RStoreCall *c, int r, size_t len, sd_bus_error *ret_error) {
        if (r == -EBADMSG)
                return rs_not_a_value(c, ret_error);
        if (r == -E2BIG)
                return bus_error_errno(ret_error, -ENOBUFS,
                                       "Key '%s' in namespace '%s' holds %zu bytes, more than --max-value-bytes=%llu (written to Redis by another client?).",
                                       rstore_call_key(c), rstore_call_namespace(c), len,
                                       (unsigned long long) rstore_call_hub(c)->limits.max_value_bytes);
        return r;
}

int rs_append_value_cb(sd_bus_message *reply, void *userdata) {
        return codec_append_value(reply, userdata);
}

bool rs_is_nil(const redisReply *reply) {
        return reply->type == REDIS_REPLY_NIL;
}

static int want_int(const redisReply *reply, long long *ret) {
        if (reply->type != REDIS_REPLY_INTEGER)
                return -EBADMSG;
        *ret = reply->integer;
        return 0;
}

static uint32_t clamp_u32(long long n) {
        return n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : (uint32_t) n;
}

/* A name Redis gave back (a key, a field) that a D-Bus string can carry. */
bool rs_name_ok(const char *s, size_t len) {
        return len > 0 && !memchr(s, 0, len) && utf8_valid(s, len);
}

/* ---- keys -------------------------------------------------------------------------------- */

int rs_on_count(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        long long n;
        int r = want_int(reply, &n);
        if (r < 0)
                return r;
        /* Del, Exists, HDel, HLen: the same "u" reply */
        r = ch_store1_reply_del(rstore_call_message(c), clamp_u32(n));
        return r < 0 ? r : 1;
}

int rs_on_bool(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        long long n;
        int r = want_int(reply, &n);
        if (r < 0)
                return r;
        r = ch_store1_reply_rename_nx(rstore_call_message(c), n > 0);
        return r < 0 ? r : 1;
}

static int keys_command(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *cmd, char **keys) {
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        for (char **k = keys; k && *k; k++) {
                r = rs_check_key(ns, ret_error, *k);
                if (r < 0)
                        return r;
        }
        if (!keys || !keys[0])
                return bus_reply_return(m, "u", (uint32_t) 0) < 0 ? -EIO : 1;
        r = rs_args_str(&a, cmd);
        for (char **k = keys; r >= 0 && *k; k++)
                r = rs_args_key(&a, ns, *k);
        if (r < 0)
                return r;
        if (streq(cmd, "DEL"))
                return rs_send_write(ns, m, (const char *const *) keys, rs_strv_length(keys), rs_on_count, NULL, 0, &a, NULL, NULL);
        return rs_send(ns, m, keys[0], rs_on_count, &a, NULL, NULL);
}

static int method_del(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        return keys_command(m, userdata, ret_error, "DEL", keys);
}

static int method_exists(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        return keys_command(m, userdata, ret_error, "EXISTS", keys);
}

static int keys_walk(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *glob, const char *what,
                     uint64_t max, rstore_reply_fn fn) {
        _cleanup_(rs_args_done) RsArgs a = {};
        char *pattern = NULL;
        int r;

        r = rstore_match_pattern(ns->name, glob, &pattern);
        if (r >= 0)
                r = rs_args_take(&a, pattern, strlen(pattern));
        if (r >= 0)
                r = rs_args_str(&a, what);
        if (r >= 0)
                r = rs_args_printf(&a, "%" PRIu64, max);
        if (r < 0)
                return r;
        return send_full(ns, m, glob, fn, rstore_keys_script, 0, &a, NULL, NULL, NULL, 0, streq(what, "flush"));
}

/* Keys from Redis, without the namespace's prefix; names a D-Bus string cannot carry are left
 * out.  Owned strv. */
static int strip_keys(RStoreCall *c, const redisReply *const *elements, size_t n, char ***ret) {
        _cleanup_(freep) char *prefix = NULL;
        char **keys;
        size_t k = 0, plen;
        int r;

        r = rstore_key_prefix(rstore_call_namespace(c), &prefix);
        if (r < 0)
                return r;
        plen = strlen(prefix);
        keys = calloc(n + 1, sizeof(char *));
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const redisReply *e = elements[i];
                if (e->type != REDIS_REPLY_STRING || e->len <= plen || memcmp(e->str, prefix, plen) != 0 ||
                    !rs_name_ok(e->str + plen, e->len - plen))
                        continue;
                keys[k] = strndup(e->str + plen, e->len - plen);
                if (!keys[k]) {
                        for (size_t j = 0; j < k; j++)
                                free(keys[j]);
                        free(keys);
                        return -ENOMEM;
                }
                k++;
        }
        *ret = keys;
        return 0;
}

static void strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

static int on_keys(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        char **keys = NULL;
        int r;

        if (reply->type != REDIS_REPLY_ARRAY)
                return -EBADMSG;
        r = strip_keys(c, (const redisReply *const *) reply->element, reply->elements, &keys);
        if (r < 0)
                return r;
        r = ch_store1_reply_keys(rstore_call_message(c), keys);
        strv_free(keys);
        return r < 0 ? r : 1;
}

static int method_keys(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *pattern) {
        Namespace *ns = userdata;

        if (!*pattern) /* as the local store: "" matches no key (Scan's "" is every key) */
                return ch_store1_reply_keys(m, NULL) < 0 ? -EIO : 1;
        return keys_walk(m, ns, ret_error, pattern, "keys", ns->hub->limits.max_reply_items, on_keys);
}

static int on_scan(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        char **keys = NULL;
        uint64_t cursor;
        char *end = NULL;
        int r;

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY)
                return -EBADMSG;
        errno = 0;
        cursor = strtoull(reply->element[0]->str, &end, 10);
        if (errno != 0 || !end || *end)
                return -EBADMSG;
        r = strip_keys(c, (const redisReply *const *) reply->element[1]->element, reply->element[1]->elements, &keys);
        if (r < 0)
                return r;
        r = ch_store1_reply_scan(rstore_call_message(c), cursor, keys);
        strv_free(keys);
        return r < 0 ? r : 1;
}

static int method_scan(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint64_t cursor, const char *pattern,
                       uint32_t count) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        char *match = NULL;
        int r;

        r = rstore_match_pattern(ns->name, pattern, &match);
        if (r >= 0)
                r = rs_args_str(&a, "SCAN");
        if (r >= 0)
                r = rs_args_printf(&a, "%" PRIu64, cursor);
        if (r >= 0)
                r = rs_args_str(&a, "MATCH");
        if (r >= 0) {
                r = rs_args_take(&a, match, strlen(match));
                match = NULL;
        }
        if (r >= 0)
                r = rs_args_str(&a, "COUNT");
        if (r >= 0)
                r = rs_args_printf(&a, "%" PRIu64, MAX((uint64_t) 1, MIN((uint64_t) (count ?: 10), ns->hub->limits.max_scan_count)));
        free(match);
        if (r < 0)
                return r;
        return rs_send(ns, m, pattern, on_scan, &a, NULL, NULL);
}

static const char type_script[] =
        "local t = redis.call('TYPE', KEYS[1]).ok\n"
        "if t == 'string' then return {t, redis.call('GET', KEYS[1])} end\n"
        "return {t}\n";

static const char *type_name(const StoreValue *v) {
        switch (v->type) {
        case 's': case 'o': case 'g':
                return "string";
        case 'y': case 'n': case 'q': case 'i': case 'u': case 'x': case 't':
                return "int";
        case 'd':
                return "double";
        case 'b':
                return "bool";
        default:
                return "value";
        }
}

static int on_type(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(rstore_value_done) RStoreValue v = {};
        const char *type;
        int r;

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING)
                return -EBADMSG;
        type = reply->element[0]->str;
        if (streq(type, "string")) {
                if (reply->elements != 2)
                        return -EBADMSG;
                r = rs_decode(c, reply->element[1], &v);
                if (r < 0)
                        return rs_decode_error(c, r, reply->element[1]->len, ret_error);
                type = type_name(&v.value);
        } else if (!streq(type, "hash") && !streq(type, "list") && !streq(type, "set") && !streq(type, "none"))
                type = "value"; /* a zset or stream another client made: no Store1 type of its own */
        r = ch_store1_reply_type(rstore_call_message(c), type);
        return r < 0 ? r : 1;
}

static int method_type(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        r = rs_args_key(&a, ns, key);
        if (r < 0)
                return r;
        return rs_send_eval(ns, m, key, on_type, type_script, 1, &a, NULL, NULL);
}

int rs_on_ok(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        /* Rename, Flush, MSet, LSet...: no out-arguments */
        int r = bus_reply_return(rstore_call_message(c), NULL);
        return r < 0 ? r : 1;
}

static int two_keys(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *cmd, const char *key,
                    const char *new_key, rstore_reply_fn fn) {
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        RS_CHECK_KEY(ns, ret_error, new_key);
        r = rs_args_str(&a, cmd);
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rs_args_key(&a, ns, new_key);
        if (r < 0)
                return r;
        const char *written[] = { key, new_key };
        return rs_send_write(ns, m, written, 2, fn, NULL, 0, &a, NULL, NULL);
}

static int method_rename(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *new_key) {
        return two_keys(m, userdata, ret_error, "RENAME", key, new_key, rs_on_ok);
}

static int method_rename_nx(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *new_key) {
        return two_keys(m, userdata, ret_error, "RENAMENX", key, new_key, rs_on_bool);
}

/* Two namespaces are two hash tags: on one Redis a script may touch both; on a Redis Cluster
 * they are in different slots and Redis refuses (CROSSSLOT: BackendUnavailable). */
static const char move_script[] =
        "if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
        "redis.call('RENAME', KEYS[1], KEYS[2])\n"
        "return 1\n";

/* Moved: the key changed in the target namespace too (its trackers on this hub, before the reply). */
static int on_move(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
                rstore_track_changed(rstore_call_hub(c), rstore_call_data(c), rstore_call_key(c), true);
        return rs_on_bool(c, reply, ret_error);
}

static int method_move(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *namespace) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        char *dst = NULL;
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if (!namespace_name_is_valid(ns->hub, namespace))
                return bus_error_errno(ret_error, -EINVAL, "'%s' is not a namespace name: 1 to %llu characters of [A-Za-z0-9_].",
                                       namespace, (unsigned long long) ns->hub->limits.max_name_bytes);
        if (streq(namespace, ns->name))
                return bus_error_errno(ret_error, -EINVAL, "Key '%s' is already in namespace '%s'.", key, namespace);
        r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rstore_key(namespace, key, &dst);
        if (r >= 0)
                r = rs_args_take(&a, dst, strlen(dst));
        if (r < 0)
                return r;
        char *target = strdup(namespace);
        if (!target)
                return -ENOMEM;
        return send_full(ns, m, key, on_move, move_script, 2, &a, target, free, &key, 1, false);
}

static int method_expire(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint64_t ttl_ms) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if (ttl_ms > INT64_MAX / 2)
                return bus_error_errno(ret_error, -EINVAL, "Invalid argument for key '%s'.", key);
        r = rs_args_str(&a, "PEXPIRE");
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rs_args_printf(&a, "%" PRIu64, ttl_ms);
        if (r < 0)
                return r;
        return send_write1(ns, m, key, rs_on_bool, NULL, 0, &a);
}

static int one_key_full(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *cmd, const char *key,
                        rstore_reply_fn fn, bool write) {
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        r = rs_args_str(&a, cmd);
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r < 0)
                return r;
        return write ? send_write1(ns, m, key, fn, NULL, 0, &a) : rs_send(ns, m, key, fn, &a, NULL, NULL);
}

int rs_one_key(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *cmd, const char *key,
               rstore_reply_fn fn) {
        return one_key_full(m, ns, ret_error, cmd, key, fn, false);
}

static int method_persist(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return one_key_full(m, userdata, ret_error, "PERSIST", key, rs_on_bool, true);
}

static int on_ttl(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        long long n;
        int r = want_int(reply, &n);
        if (r < 0)
                return r;
        r = ch_store1_reply_ttl(rstore_call_message(c), (int64_t) n);
        return r < 0 ? r : 1;
}

static int method_ttl(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return rs_one_key(m, userdata, ret_error, "PTTL", key, on_ttl);
}

static int on_flush(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        int r = ch_store1_reply_flush(rstore_call_message(c));
        return r < 0 ? r : 1;
}

static int method_flush(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return keys_walk(m, userdata, ret_error, NULL, "flush", 0, on_flush);
}

static int on_db_size(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        long long n;
        int r = want_int(reply, &n);
        if (r < 0)
                return r;
        r = ch_store1_reply_db_size(rstore_call_message(c), n < 0 ? 0 : (uint64_t) n);
        return r < 0 ? r : 1;
}

static int method_db_size(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return keys_walk(m, userdata, ret_error, NULL, "count", 0, on_db_size);
}

static int on_random_key(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(freep) char *prefix = NULL;
        size_t plen;
        int r;

        if (rs_is_nil(reply))
                return bus_error_errno(ret_error, -ENOKEY, "Namespace '%s' has no keys.", rstore_call_namespace(c));
        if (reply->type != REDIS_REPLY_STRING)
                return -EBADMSG;
        r = rstore_key_prefix(rstore_call_namespace(c), &prefix);
        if (r < 0)
                return r;
        plen = strlen(prefix);
        if (reply->len <= plen || memcmp(reply->str, prefix, plen) != 0 || !rs_name_ok(reply->str + plen, reply->len - plen))
                return -EBADMSG;
        r = ch_store1_reply_random_key(rstore_call_message(c), reply->str + plen);
        return r < 0 ? r : 1;
}

static int method_random_key(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return keys_walk(m, userdata, ret_error, NULL, "random", 0, on_random_key);
}

/* ---- plain values ------------------------------------------------------------------------ */

/* The value of the call's key (GET's reply): NoSuchKey when there is none, and the errors of
 * rs_decode_error() for bytes that are not one. */
static int decode_present(RStoreCall *c, const redisReply *reply, RStoreValue *v, sd_bus_error *ret_error) {
        int r;

        if (rs_is_nil(reply))
                return rs_no_such_key(c, ret_error);
        r = rs_decode(c, reply, v);
        return r < 0 ? rs_decode_error(c, r, reply->len, ret_error) : 0;
}

static int on_get(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(rstore_value_done) RStoreValue v = {};
        int r;

        r = decode_present(c, reply, &v, ret_error);
        if (r < 0)
                return r;
        r = ch_store1_reply_get(rstore_call_message(c), rs_append_value_cb, &v.value);
        return r < 0 ? r : 1;
}

static int method_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return rs_one_key(m, userdata, ret_error, "GET", key, on_get);
}

static int method_get_del(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key);

static int on_set(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        int r = ch_store1_reply_set(rstore_call_message(c), !rs_is_nil(reply));
        return r < 0 ? r : 1;
}

static int append_old_cb(sd_bus_message *reply, void *userdata) {
        static const StoreValue none = { .type = 's', .str = { "", 0 } };
        const StoreValue *v = userdata;

        return codec_append_value(reply, v->type ? v : &none);
}

static int on_set_get(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(rstore_value_done) RStoreValue v = {};
        int r;

        if (!rs_is_nil(reply)) {
                r = rs_decode(c, reply, &v);
                if (r < 0)
                        return rs_decode_error(c, r, reply->len, ret_error);
        }
        r = ch_store1_reply_set_get(rstore_call_message(c), v.value.type != '\0', append_old_cb, &v.value);
        return r < 0 ? r : 1;
}

static int set_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, bool get) {
        _cleanup_(codec_value_done) CodecValue v = {};
        _cleanup_(rs_args_done) RsArgs a = {};
        SetOptions o = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        r = bus_store_read_value(m, &v, ret_error);
        if (r < 0)
                return r;
        r = bus_store_read_set_options(m, &o, ret_error);
        if (r < 0)
                return r;
        r = rs_check_value(ns, ret_error, key, &v.value);
        if (r < 0)
                return r;
        r = rs_args_str(&a, "SET");
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rs_args_value(&a, &v.value);
        if (r >= 0 && o.ttl_ms > 0) {
                if (o.ttl_ms > INT64_MAX / 2)
                        return bus_error_errno(ret_error, -EINVAL, "Invalid argument for key '%s'.", key);
                r = rs_args_str(&a, "PX");
                if (r >= 0)
                        r = rs_args_printf(&a, "%" PRIu64, o.ttl_ms);
        }
        if (r >= 0 && o.nx)
                r = rs_args_str(&a, "NX");
        if (r >= 0 && o.xx)
                r = rs_args_str(&a, "XX");
        if (r >= 0 && o.keep_ttl)
                r = rs_args_str(&a, "KEEPTTL");
        if (r >= 0 && get)
                r = rs_args_str(&a, "GET");
        if (r < 0)
                return r;
        return send_write1(ns, m, key, get ? on_set_get : on_set, NULL, 0, &a);
}

static int method_set(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return set_common(m, userdata, ret_error, key, false);
}

static int method_set_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return set_common(m, userdata, ret_error, key, true);
}

/* MGet and HMGet: the names asked for, with the values Redis gave (absent ones left out). */
typedef struct Names {
        char **names;
} Names;

static void names_free(void *p) {
        Names *n = p;
        if (!n)
                return;
        strv_free(n->names);
        free(n);
}

static int names_new(char **names, Names **ret) {
        size_t n = rs_strv_length(names);
        Names *x = calloc(1, sizeof(Names));

        if (!x)
                return -ENOMEM;
        x->names = calloc(n + 1, sizeof(char *));
        if (!x->names) {
                free(x);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                if (!(x->names[i] = strdup(names[i]))) {
                        names_free(x);
                        return -ENOMEM;
                }
        *ret = x;
        return 0;
}

/* An a{sv} of NAMES[i] -> decoded ELEMENTS[i]; nil and values that do not decode are left out.
 * PAIRS: ELEMENTS are name, value, name, value (HGETALL); NAMES is NULL then. */
typedef struct DictReply {
        RStoreCall *c;
        char **names;
        const redisReply *const *elements;
        size_t n;
        bool pairs;
} DictReply;

static int append_dict_cb(sd_bus_message *reply, void *userdata) {
        DictReply *d = userdata;
        int r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n; i++) {
                _cleanup_(rstore_value_done) RStoreValue v = {};
                const redisReply *name = d->pairs ? d->elements[2 * i] : NULL;
                const redisReply *value = d->elements[d->pairs ? 2 * i + 1 : i];

                if (name && (name->type != REDIS_REPLY_STRING || !rs_name_ok(name->str, name->len)))
                        continue;
                if (rs_is_nil(value) || rs_decode(d->c, value, &v) < 0)
                        continue;
                r = sd_bus_message_open_container(reply, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', name ? name->str : d->names[i]);
                if (r >= 0)
                        r = codec_append_value(reply, &v.value);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int on_mget(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        Names *n = rstore_call_data(c);
        int r;

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != rs_strv_length(n->names))
                return -EBADMSG;
        DictReply d = { c, n->names, (const redisReply *const *) reply->element, reply->elements, false };
        /* MGet and HMGet: the same "a{sv}" reply */
        r = ch_store1_reply_m_get(rstore_call_message(c), append_dict_cb, &d);
        return r < 0 ? r : 1;
}

static int method_m_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        Names *n = NULL;
        int r;

        r = rs_check_names(ns, ret_error, (const char *const *) keys, rs_strv_length(keys), "key");
        if (r < 0)
                return r;
        if (!keys || !keys[0])
                return ch_store1_reply_m_get(m, append_dict_cb, &(DictReply) {}) < 0 ? -EIO : 1;
        r = rs_args_str(&a, "MGET");
        for (char **k = keys; r >= 0 && *k; k++)
                r = rs_args_key(&a, ns, *k);
        if (r >= 0)
                r = names_new(keys, &n);
        if (r < 0)
                return r;
        return rs_send(ns, m, keys[0], on_mget, &a, n, names_free);
}

static int on_mset(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        int r;

        if (reply->type == REDIS_REPLY_INTEGER)
                r = ch_store1_reply_m_set_nx(rstore_call_message(c), reply->integer > 0);
        else
                r = ch_store1_reply_m_set(rstore_call_message(c));
        return r < 0 ? r : 1;
}

/* MSet's and HSet's "a{sv}": names (WHAT) and values within the limits; KEY names the values in
 * errors (NULL: their own names, the keys). */
static int read_values(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *what, const char *key,
                       BusValues *v) {
        int r;

        r = bus_store_read_values(m, true, v, ns->hub->limits.max_elements, ret_error);
        if (r < 0)
                return r;
        r = rs_check_names(ns, ret_error, v->names, v->n, what);
        if (r < 0)
                return r;
        return rs_check_values(ns, ret_error, v, key);
}

static int m_set_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, bool nx) {
        _cleanup_(bus_values_done) BusValues v = {};
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        r = read_values(m, ns, ret_error, "key", NULL, &v);
        if (r < 0)
                return r;
        if (v.n == 0)
                return (nx ? ch_store1_reply_m_set_nx(m, true) : ch_store1_reply_m_set(m)) < 0 ? -EIO : 1;
        r = rs_args_str(&a, nx ? "MSETNX" : "MSET");
        for (size_t i = 0; r >= 0 && i < v.n; i++) {
                r = rs_args_key(&a, ns, v.names[i]);
                if (r >= 0)
                        r = rs_args_value(&a, &v.values[i]);
        }
        if (r < 0)
                return r;
        return rs_send_write(ns, m, v.names, v.n, on_mset, NULL, 0, &a, NULL, NULL);
}

static int method_m_set(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return m_set_common(m, userdata, ret_error, false);
}

static int method_m_set_nx(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return m_set_common(m, userdata, ret_error, true);
}

/* ---- read-modify-write with the local store's semantics ------------------------------------ */

typedef enum RmwOp {
        RMW_INCR,
        RMW_INCR_FLOAT,
        RMW_APPEND,
        RMW_SET_RANGE,
        RMW_STR_LEN,    /* reads: no write back */
        RMW_GET_RANGE,
        RMW_GET_DEL,    /* deletes only what it could read: bytes that do not decode stay */
} RmwOp;

typedef struct Rmw {
        RmwOp op;
        Hub *hub;
        char *rkey;
        char *field;            /* a hash field, or NULL */
        int64_t by;
        double by_float;
        char *text;
        uint64_t offset;
        int64_t start, end;
        /* the result */
        int64_t i;
        double d;
        size_t len;
        char *range;
        char *old;              /* GetDel: the bytes it deletes */
        size_t old_len;
        uint64_t wanted;        /* a refused result's bytes (limit "value-size") */
        const char *limit;      /* the limit the scratch store named (static string) */
} Rmw;

static void rmw_free(void *p) {
        Rmw *w = p;
        if (!w)
                return;
        free(w->rkey);
        free(w->field);
        free(w->text);
        free(w->range);
        free(w->old);
        free(w);
}

static const char cas_script[] =
        "local v\n"
        "if ARGV[4] then v = redis.call('HGET', KEYS[1], ARGV[4]) else v = redis.call('GET', KEYS[1]) end\n"
        "if ARGV[1] == '1' then if v ~= ARGV[2] then return 0 end elseif v then return 0 end\n"
        "if ARGV[4] then redis.call('HSET', KEYS[1], ARGV[4], ARGV[3]) else redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL') end\n"
        "return 1\n";

static int rmw_error(RStoreCall *c, int r, sd_bus_error *ret_error) {
        const char *key = rstore_call_key(c);

        switch (r) {
        case -EMEDIUMTYPE:
                return bus_error_errno(ret_error, r, "Key '%s' holds a value of another type.", key);
        case -EDOM:
                return bus_error_errno(ret_error, r, "Key '%s' does not hold a number.", key);
        case -ERANGE:
                return bus_error_errno(ret_error, r, "The result for key '%s' does not fit its type.", key);
        case -ENOBUFS: {
                Rmw *w = rstore_call_data(c);
                if (w->limit && streq(w->limit, "value-size"))
                        return bus_error_errno(ret_error, r, "Value of '%s' is %llu bytes; the limit is %llu (--max-value-bytes).", key,
                                               (unsigned long long) w->wanted,
                                               (unsigned long long) rstore_call_hub(c)->limits.max_value_bytes);
                return bus_error_errno(ret_error, r, "Limit exceeded for key '%s': %s.", key, w->limit ? w->limit : "unknown");
        }
        case -EINVAL:
                return bus_error_errno(ret_error, r, "Invalid argument for key '%s'.", key);
        default:
                return r;
        }
}

static int rmw_read(RStoreCall *c) {
        Rmw *w = rstore_call_data(c);
        const char *argv[] = { w->field ? "HGET" : "GET", w->rkey, w->field };
        return rstore_call_send(c, w->field ? 3 : 2, argv, NULL);
}

static int rmw_answer(RStoreCall *c) {
        Rmw *w = rstore_call_data(c);
        sd_bus_message *m = rstore_call_message(c);
        int r;

        switch (w->op) {
        case RMW_INCR:
                r = ch_store1_reply_incr(m, w->i);
                break;
        case RMW_INCR_FLOAT:
                r = ch_store1_reply_incr_float(m, w->d);
                break;
        case RMW_APPEND: case RMW_SET_RANGE: case RMW_STR_LEN:
                r = ch_store1_reply_append(m, (uint32_t) MIN(w->len, (size_t) UINT32_MAX));
                break;
        case RMW_GET_RANGE:
                r = ch_store1_reply_get_range(m, w->range ? w->range : "");
                break;
        case RMW_GET_DEL: {
                _cleanup_(rstore_value_done) RStoreValue v = {};
                r = rstore_decode(w->old, w->old_len, &v);
                if (r >= 0)
                        r = ch_store1_reply_get_del(m, rs_append_value_cb, &v.value);
                break;
        }
        default:
                r = -EINVAL;
        }
        return r < 0 ? r : 1;
}

static int on_cas(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        long long n;
        int r = want_int(reply, &n);
        if (r < 0)
                return r;
        if (n > 0)
                return rmw_answer(c);
        if (rstore_call_round(c) >= 2 * CAS_MAX_ROUNDS)
                return bus_error_errno(ret_error, -EHOSTDOWN, "Key '%s' kept changing under %u attempts to update it; try again.",
                                       rstore_call_key(c), CAS_MAX_ROUNDS);
        return rmw_read(c); /* someone wrote between our read and our write: again */
}

static void store_freep(Store **s) {
        store_free(*s);
}

/* Applies W's op to OLD (NULL: absent) in a scratch store with the hub's limits; *RET_NEW
 * the value to write back (owned), type '\0' when nothing is to be written. */
static int rmw_apply(Rmw *w, const StoreValue *old, StoreValue *ret_new) {
        _cleanup_(store_freep) Store *s = NULL;
        /* the hub's own bounds (a bound of SIZE_MAX would overflow the store's "bound + 1" checks) */
        StoreLimits l = {
                .max_key_len = w->hub->limits.max_key_bytes,
                .max_value_size = w->hub->limits.max_value_bytes,
                .max_elements = w->hub->limits.max_elements,
                .max_memory = w->hub->limits.max_namespace_memory,
        };
        const char *k = "k", *f = w->field;
        StoreValue nv = {};
        int r;

        r = store_new(&s, &l, NULL, NULL, NULL, NULL);
        if (r < 0)
                return r;
        if (old) {
                r = f ? store_hset(s, k, &f, old, 1, 0, NULL) : store_set(s, k, old, 0, 0, 0);
                if (r < 0)
                        return r;
        }
        switch (w->op) {
        case RMW_INCR:
                r = f ? store_hincr(s, k, f, w->by, 0, &w->i) : store_incr(s, k, w->by, 0, &w->i);
                break;
        case RMW_INCR_FLOAT:
                r = f ? store_hincrfloat(s, k, f, w->by_float, 0, &w->d) : store_incrfloat(s, k, w->by_float, 0, &w->d);
                break;
        case RMW_APPEND:
                r = store_append(s, k, w->text, strlen(w->text), 0, &w->len);
                break;
        case RMW_SET_RANGE:
                r = store_setrange(s, k, w->offset, w->text, strlen(w->text), 0, &w->len);
                break;
        case RMW_STR_LEN:
                r = store_strlen(s, k, 0, &w->len);
                break;
        case RMW_GET_RANGE:
                w->range = mfree(w->range);
                r = store_getrange(s, k, w->start, w->end, 0, &w->range, &w->len);
                break;
        default:
                r = -EINVAL;
        }
        if (r == -ENOBUFS) {
                w->limit = store_last_limit(s);
                w->wanted = store_last_limit_wanted(s);
        }
        if (r < 0)
                return r;
        if (w->op == RMW_STR_LEN || w->op == RMW_GET_RANGE) {
                *ret_new = (StoreValue) {};
                return 0;
        }
        r = f ? store_hget(s, k, f, 0, &nv) : store_get(s, k, 0, &nv);
        if (r == -ENOKEY) { /* SetRange of "" on an absent key creates nothing */
                *ret_new = (StoreValue) {};
                return 0;
        }
        if (r < 0)
                return r;
        return store_value_copy(ret_new, &nv);
}

static const char del_if_script[] =
        "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
        "redis.call('DEL', KEYS[1])\n"
        "return 1\n";

static int get_del_step(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(rstore_value_done) RStoreValue v = {};
        Rmw *w = rstore_call_data(c);
        int r;

        r = decode_present(c, reply, &v, ret_error);
        if (r < 0)
                return r;
        free(w->old);
        w->old = malloc(reply->len + 1);
        if (!w->old)
                return -ENOMEM;
        memcpy(w->old, reply->str, reply->len);
        w->old_len = reply->len;
        const char *argv[] = { w->rkey, w->old };
        const size_t len[] = { strlen(w->rkey), w->old_len };
        return rstore_call_eval(c, del_if_script, 1, 2, argv, len);
}

static int rmw_step(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(rstore_value_done) RStoreValue old = {};
        _cleanup_(store_value_clear) StoreValue nv = {};
        _cleanup_(rs_args_done) RsArgs a = {};
        Rmw *w = rstore_call_data(c);
        bool present = !rs_is_nil(reply);
        char *enc = NULL;
        size_t len = 0;
        int r;

        if (w->op == RMW_GET_DEL)
                return get_del_step(c, reply, ret_error);

        if (present) {
                r = rs_decode(c, reply, &old);
                if (r < 0)
                        return rs_decode_error(c, r, reply->len, ret_error);
        }
        r = rmw_apply(w, present ? &old.value : NULL, &nv);
        if (r < 0)
                return rmw_error(c, r, ret_error);
        if (nv.type == '\0')
                return rmw_answer(c);
        r = rstore_encode(&nv, &enc, &len);
        if (r >= 0)
                r = rs_args_str(&a, w->rkey);
        if (r >= 0)
                r = rs_args_str(&a, present ? "1" : "0");
        if (r >= 0)
                r = rs_args_add(&a, present ? reply->str : "", present ? reply->len : 0);
        if (r >= 0)
                r = rs_args_take(&a, enc, len);
        else
                free(enc);
        if (r >= 0 && w->field)
                r = rs_args_str(&a, w->field);
        if (r < 0)
                return r;
        return rstore_call_eval(c, cas_script, 1, a.n, a.v, a.l);
}

/* The reply of a read (GET/HGET) or of the compare-and-set. */
static int on_rmw_read(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        if (reply->type == REDIS_REPLY_INTEGER)
                return on_cas(c, reply, ret_error);
        return rmw_step(c, reply, ret_error);
}

/* The call of W (taken: freed with the call, or here on failure), answered by FN; what it may
 * change, unless W only reads. */
static int rmw_call_new(sd_bus_message *m, Namespace *ns, const char *key, Rmw *w, rstore_reply_fn fn, RStoreCall **ret) {
        RStoreCall *c;
        int r;

        r = rstore_call_new(ns, m, key, fn, &c);
        if (r < 0) {
                rmw_free(w);
                return r;
        }
        rstore_call_set_data(c, w, rmw_free);
        if (w->op != RMW_STR_LEN && w->op != RMW_GET_RANGE && (r = rstore_call_set_written(c, &key, 1)) < 0) {
                rstore_call_abandon(c);
                return r;
        }
        *ret = c;
        return 0;
}

static int rmw_start(sd_bus_message *m, Namespace *ns, const char *key, Rmw *w) {
        RStoreCall *c;
        int r;

        r = rmw_call_new(m, ns, key, w, on_rmw_read, &c);
        if (r < 0)
                return r;
        (void) rmw_read(c);
        return 1;
}

/* An Rmw of OP on KEY in NS (FIELD of the hash KEY unless NULL); NULL when out of memory. */
static Rmw *rmw_new(Namespace *ns, const char *key, RmwOp op, const char *field) {
        Rmw *w = calloc(1, sizeof(Rmw));
        if (!w)
                return NULL;
        w->op = op;
        w->hub = ns->hub;
        if ((field && !(w->field = strdup(field))) || rstore_key(ns->name, key, &w->rkey) < 0) {
                rmw_free(w);
                return NULL;
        }
        return w;
}

/* Incr: Redis's INCRBY (HINCRBY) on a plain int64 (the common case, one command; not through
 * Lua, whose numbers are doubles); when Redis says the value is not an integer (a string holding
 * a number, another integer type, ...) the read-modify-write decides what the local store would
 * have done. */
static int on_incr(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        Rmw *w = rstore_call_data(c);
        int r;

        if (rstore_call_round(c) == 1) {
                rstore_call_want_errors(c, false);
                if (reply->type == REDIS_REPLY_ERROR) {
                        if (strstr(reply->str, "not an integer"))
                                return rmw_read(c);
                        return rstore_redis_error(reply->str, reply->len, rstore_call_namespace(c), rstore_call_key(c), ret_error);
                }
                if (reply->type != REDIS_REPLY_INTEGER)
                        return -EBADMSG;
                if (w->field)
                        r = ch_store1_reply_h_incr(rstore_call_message(c), reply->integer);
                else
                        r = ch_store1_reply_incr(rstore_call_message(c), reply->integer);
                return r < 0 ? r : 1;
        }
        return on_rmw_read(c, reply, ret_error);
}

static int incr_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, const char *field, int64_t by) {
        _cleanup_(rs_args_done) RsArgs a = {};
        RStoreCall *c;
        Rmw *w;
        int r;

        r = check_key_field(ns, ret_error, key, field);
        if (r < 0)
                return r;
        w = rmw_new(ns, key, RMW_INCR, field);
        if (!w)
                return -ENOMEM;
        w->by = by;
        r = rs_args_str(&a, field ? "HINCRBY" : "INCRBY");
        if (r >= 0)
                r = rs_args_str(&a, w->rkey);
        if (r >= 0 && field)
                r = rs_args_str(&a, field);
        if (r >= 0)
                r = rs_args_printf(&a, "%" PRIi64, by);
        if (r < 0) {
                rmw_free(w);
                return r;
        }
        r = rmw_call_new(m, ns, key, w, on_incr, &c);
        if (r < 0)
                return r;
        rstore_call_want_errors(c, true);
        (void) rstore_call_send(c, a.n, a.v, a.l);
        return 1;
}

static int method_incr(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t by) {
        return incr_common(m, userdata, ret_error, key, NULL, by);
}

static int float_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, const char *field, double by) {
        Rmw *w;
        int r;

        r = check_key_field(ns, ret_error, key, field);
        if (r < 0)
                return r;
        w = rmw_new(ns, key, RMW_INCR_FLOAT, field);
        if (!w)
                return -ENOMEM;
        w->by_float = by;
        return rmw_start(m, ns, key, w);
}

static int method_incr_float(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, double by) {
        return float_common(m, userdata, ret_error, key, NULL, by);
}

static int text_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, RmwOp op, const char *text,
                       uint64_t offset) {
        Rmw *w;

        RS_CHECK_KEY(ns, ret_error, key);
        w = rmw_new(ns, key, op, NULL);
        if (!w || (text && !(w->text = strdup(text)))) {
                rmw_free(w);
                return -ENOMEM;
        }
        w->offset = offset;
        return rmw_start(m, ns, key, w);
}

static int method_append(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *text) {
        return text_common(m, userdata, ret_error, key, RMW_APPEND, text, 0);
}

static int method_set_range(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint32_t offset,
                            const char *text) {
        return text_common(m, userdata, ret_error, key, RMW_SET_RANGE, text, offset);
}

static int method_str_len(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return text_common(m, userdata, ret_error, key, RMW_STR_LEN, NULL, 0);
}

static int method_get_del(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return text_common(m, userdata, ret_error, key, RMW_GET_DEL, NULL, 0);
}

static int method_get_range(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t start,
                            int64_t end) {
        Namespace *ns = userdata;
        Rmw *w;

        RS_CHECK_KEY(ns, ret_error, key);
        w = rmw_new(ns, key, RMW_GET_RANGE, NULL);
        if (!w)
                return -ENOMEM;
        w->start = start;
        w->end = end;
        return rmw_start(m, ns, key, w);
}

/* ---- hashes ------------------------------------------------------------------------------ */

/* TYPE's reply for a hash call with no fields: a hash or nothing, else WrongType as HSET's. */
static int want_hash_or_none(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        if (reply->type != REDIS_REPLY_STATUS)
                return -EBADMSG;
        if (!streq(reply->str, "hash") && !streq(reply->str, "none"))
                return bus_error_errno(ret_error, -EMEDIUMTYPE, "Key '%s' holds a value of another type.", rstore_call_key(c));
        return 0;
}

static int on_h_set_empty(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        int r = want_hash_or_none(c, reply, ret_error);
        if (r < 0)
                return r;
        r = ch_store1_reply_h_set(rstore_call_message(c), 0);
        return r < 0 ? r : 1;
}

static int method_h_set(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(bus_values_done) BusValues v = {};
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        r = read_values(m, ns, ret_error, "field name", key, &v);
        if (r < 0)
                return r;
        if (v.n == 0)
                return rs_one_key(m, ns, ret_error, "TYPE", key, on_h_set_empty);
        r = rs_args_str(&a, "HSET");
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        for (size_t i = 0; r >= 0 && i < v.n; i++) {
                r = rs_args_str(&a, v.names[i]);
                if (r >= 0)
                        r = rs_args_value(&a, &v.values[i]);
        }
        if (r < 0)
                return r;
        return send_write1(ns, m, key, rs_on_count, NULL, 0, &a);
}

static int method_h_set_nx(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        r = check_key_field(ns, ret_error, key, field);
        if (r < 0)
                return r;
        r = rs_args_str(&a, "HSETNX");
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rs_args_str(&a, field);
        if (r >= 0)
                r = rs_args_read_value(&a, m, ns, key, ret_error);
        if (r < 0)
                return r;
        return send_write1(ns, m, key, rs_on_bool, NULL, 0, &a);
}

static int key_field(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *cmd, const char *key,
                     const char *field, rstore_reply_fn fn, void *data, void (*free_data)(void *)) {
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        r = rs_args_str(&a, cmd);
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rs_args_str(&a, field);
        if (r < 0) {
                if (free_data)
                        free_data(data);
                return r;
        }
        return rs_send(ns, m, key, fn, &a, data, free_data);
}

static int on_h_get(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(rstore_value_done) RStoreValue v = {};
        Names *n = rstore_call_data(c);
        int r;

        if (rs_is_nil(reply))
                return bus_error_errno(ret_error, -ENOKEY, "Hash '%s' has no field '%s' in namespace '%s'.", rstore_call_key(c),
                                       n->names[0], rstore_call_namespace(c));
        r = rs_decode(c, reply, &v);
        if (r < 0)
                return rs_decode_error(c, r, reply->len, ret_error);
        r = ch_store1_reply_h_get(rstore_call_message(c), rs_append_value_cb, &v.value);
        return r < 0 ? r : 1;
}

static int method_h_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        Namespace *ns = userdata;
        char *fields[] = { (char *) field, NULL };
        Names *n = NULL;
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        r = names_new(fields, &n);
        if (r < 0)
                return r;
        return key_field(m, ns, ret_error, "HGET", key, field, on_h_get, n, names_free);
}

static int on_h_m_get_empty(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        int r = want_hash_or_none(c, reply, ret_error);
        if (r < 0)
                return r;
        r = ch_store1_reply_hm_get(rstore_call_message(c), append_dict_cb, &(DictReply) {});
        return r < 0 ? r : 1;
}

static int method_h_m_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, char **fields) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        Names *n = NULL;
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if (!fields || !fields[0])
                return rs_one_key(m, ns, ret_error, "TYPE", key, on_h_m_get_empty);
        r = rs_args_str(&a, "HMGET");
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rs_args_strv(&a, fields);
        if (r >= 0)
                r = names_new(fields, &n);
        if (r < 0)
                return r;
        return rs_send(ns, m, key, on_mget, &a, n, names_free);
}

static int on_h_get_all(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        Hub *h = rstore_call_hub(c);
        int r;

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
                return -EBADMSG;
        if (reply->elements / 2 > h->limits.max_reply_items)
                return bus_error_errno(ret_error, -ENOBUFS, "HGetAll would return %zu items, more than --max-reply-items=%llu.",
                                       reply->elements / 2, (unsigned long long) h->limits.max_reply_items);
        DictReply d = { c, NULL, (const redisReply *const *) reply->element, reply->elements / 2, true };
        r = ch_store1_reply_h_get_all(rstore_call_message(c), append_dict_cb, &d);
        return r < 0 ? r : 1;
}

static int method_h_get_all(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return rs_one_key(m, userdata, ret_error, "HGETALL", key, on_h_get_all);
}

static int method_h_del(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, char **fields) {
        Namespace *ns = userdata;
        _cleanup_(rs_args_done) RsArgs a = {};
        int r;

        RS_CHECK_KEY(ns, ret_error, key);
        if (!fields || !fields[0])
                return rs_one_key(m, ns, ret_error, "TYPE", key, on_h_set_empty);
        r = rs_args_str(&a, "HDEL");
        if (r >= 0)
                r = rs_args_key(&a, ns, key);
        if (r >= 0)
                r = rs_args_strv(&a, fields);
        if (r < 0)
                return r;
        return send_write1(ns, m, key, rs_on_count, NULL, 0, &a);
}

static int method_h_exists(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        Namespace *ns = userdata;
        int r;

        r = check_key_field(ns, ret_error, key, field);
        if (r < 0)
                return r;
        return key_field(m, ns, ret_error, "HEXISTS", key, field, rs_on_bool, NULL, NULL);
}

static int method_h_len(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return rs_one_key(m, userdata, ret_error, "HLEN", key, rs_on_count);
}

static int on_h_keys(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(freep) char **keys = NULL;
        size_t n = 0;
        int r;

        if (reply->type != REDIS_REPLY_ARRAY)
                return -EBADMSG;
        keys = calloc(reply->elements + 1, sizeof(char *));
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < reply->elements; i++)
                if (reply->element[i]->type == REDIS_REPLY_STRING && rs_name_ok(reply->element[i]->str, reply->element[i]->len))
                        keys[n++] = reply->element[i]->str; /* views: the reply outlives this call */
        r = ch_store1_reply_h_keys(rstore_call_message(c), keys);
        return r < 0 ? r : 1;
}

static int method_h_keys(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return rs_one_key(m, userdata, ret_error, "HKEYS", key, on_h_keys);
}

typedef struct ValuesReply {
        RStoreCall *c;
        const redisReply *reply;
} ValuesReply;

static int append_values_cb(sd_bus_message *reply, void *userdata) {
        ValuesReply *v = userdata;
        int r = sd_bus_message_open_container(reply, 'a', "v");
        if (r < 0)
                return r;
        for (size_t i = 0; i < v->reply->elements; i++) {
                _cleanup_(rstore_value_done) RStoreValue x = {};
                if (rs_decode(v->c, v->reply->element[i], &x) < 0)
                        continue; /* not a clusterhub value: left out, as MGet and HGetAll do */
                r = codec_append_value(reply, &x.value);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int on_h_vals(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        int r;

        if (reply->type != REDIS_REPLY_ARRAY)
                return -EBADMSG;
        ValuesReply v = { c, reply };
        r = ch_store1_reply_h_vals(rstore_call_message(c), append_values_cb, &v);
        return r < 0 ? r : 1;
}

static int method_h_vals(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return rs_one_key(m, userdata, ret_error, "HVALS", key, on_h_vals);
}

static int method_h_incr(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field,
                         int64_t by) {
        return incr_common(m, userdata, ret_error, key, field, by);
}

static int method_h_incr_float(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field,
                               double by) {
        return float_common(m, userdata, ret_error, key, field, by);
}

/* ---- client-side caching (docs/caching.md) -------------------------------------------------
 * Track and Untrack are the hub's own (bus-store.c).  A tracked read takes each key's counter
 * and remembers the pair before it sends its read: a change Redis runs after the read bumps the
 * counter later (this hub's writes before their reply, every host's through the keyspace
 * notification), so a cached pair goes stale, never wrong.  The TTL's end is counted from the
 * moment the read is sent, so it is never later than Redis's. */

typedef struct Tracked {
        char *field;            /* HGetTracked */
        bool many;              /* MGetTracked */
        uint64_t sent_ms;
        size_t n;
        uint64_t seq[];
} Tracked;

static void tracked_free(void *p) {
        Tracked *t = p;
        if (!t)
                return;
        free(t->field);
        free(t);
}

/* KEYS[i]: PTTL, then the value (GET, or HGET of ARGV[1] when not empty); a key of another type
 * is absent when ARGV[2] is "1" (MGetTracked), else its error. */
static const char tracked_script[] =
        "local out = {}\n"
        "for _, k in ipairs(KEYS) do\n"
        "  local v\n"
        "  if ARGV[1] ~= '' then v = redis.pcall('HGET', k, ARGV[1]) else v = redis.pcall('GET', k) end\n"
        "  if type(v) == 'table' and v.err then\n"
        "    if ARGV[2] == '1' then v = false else return v end\n"
        "  end\n"
        "  out[#out + 1] = redis.call('PTTL', k)\n"
        "  out[#out + 1] = v\n"
        "end\n"
        "return out\n";

typedef struct TrackedItem {
        const Tracked *t;
        size_t i;
        const redisReply *ttl, *value;
        const StoreValue *v;    /* NULL: not found */
} TrackedItem;

static uint64_t tracked_deadline_ns(const Tracked *t, const redisReply *ttl) {
        uint64_t end;

        if (ttl->type != REDIS_REPLY_INTEGER || ttl->integer < 0)
                return 0;
        end = t->sent_ms + (uint64_t) ttl->integer;
        return end < t->sent_ms || end > UINT64_MAX / UINT64_C(1000000) ? UINT64_MAX : end * UINT64_C(1000000);
}

static int append_tracked_rest(sd_bus_message *reply, const TrackedItem *it) {
        static const StoreValue none = { .type = 's', .str = { "", 0 } };
        int r;

        r = codec_append_value(reply, it->v ? it->v : &none);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "tt", it->t->seq[it->i], it->v ? tracked_deadline_ns(it->t, it->ttl) : UINT64_C(0));
}

static int append_tracked_cb(sd_bus_message *reply, void *userdata) {
        return append_tracked_rest(reply, userdata);
}

typedef struct TrackedMany {
        RStoreCall *c;
        const Tracked *t;
        const redisReply *reply;
} TrackedMany;

static int append_tracked_many_cb(sd_bus_message *reply, void *userdata) {
        TrackedMany *d = userdata;
        int r = sd_bus_message_open_container(reply, 'a', "(bvtt)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->t->n; i++) {
                _cleanup_(rstore_value_done) RStoreValue v = {};
                TrackedItem it = { d->t, i, d->reply->element[2 * i], d->reply->element[2 * i + 1], NULL };

                if (!rs_is_nil(it.value) && rs_decode(d->c, it.value, &v) >= 0)
                        it.v = &v.value; /* bytes that are not a clusterhub value: absent, as MGet */
                r = sd_bus_message_open_container(reply, 'r', "bvtt");
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 'b', &(int) { it.v != NULL });
                if (r >= 0)
                        r = append_tracked_rest(reply, &it);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int on_tracked(RStoreCall *c, const redisReply *reply, sd_bus_error *ret_error) {
        _cleanup_(rstore_value_done) RStoreValue v = {};
        Tracked *t = rstore_call_data(c);
        sd_bus_message *m = rstore_call_message(c);
        int r;

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 * t->n)
                return -EBADMSG;
        if (t->many) {
                TrackedMany d = { c, t, reply };
                r = ch_store1_reply_m_get_tracked(m, append_tracked_many_cb, &d);
                return r < 0 ? r : 1;
        }
        TrackedItem it = { t, 0, reply->element[0], reply->element[1], NULL };
        if (!rs_is_nil(it.value)) {
                r = rs_decode(c, it.value, &v);
                if (r < 0)
                        return rs_decode_error(c, r, it.value->len, ret_error);
                it.v = &v.value;
        }
        r = t->field ? ch_store1_reply_h_get_tracked(m, it.v != NULL, append_tracked_cb, &it)
                     : ch_store1_reply_get_tracked(m, it.v != NULL, append_tracked_cb, &it);
        return r < 0 ? r : 1;
}

static int tracked_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, char **keys, const char *field, bool many) {
        _cleanup_(rs_args_done) RsArgs a = {};
        size_t n = rs_strv_length(keys);
        Tracker *tracker;
        Tracked *t;
        int r;

        r = rs_check_names(ns, ret_error, (const char *const *) keys, n, "key");
        if (r < 0)
                return r;
        if (field) {
                r = check_field(ns, ret_error, field);
                if (r < 0)
                        return r;
        }
        if (n > ns->hub->limits.max_reply_items)
                return bus_error_errno(ret_error, -ENOBUFS, "MGetTracked would return %zu items, more than --max-reply-items=%llu.", n,
                                       (unsigned long long) ns->hub->limits.max_reply_items);
        tracker = bus_store_tracker_of(ns, m, ret_error);
        if (!tracker)
                return -ENOTCONN;
        if (many && tracker_max_keys(tracker) > 0 && n > tracker_max_keys(tracker))
                return bus_error_errno(ret_error, -ENOBUFS,
                                       "MGetTracked of %zu keys; this tracker's table holds %llu (max_keys, --max-tracked-keys-per-peer).",
                                       n, (unsigned long long) tracker_max_keys(tracker));
        if (n == 0)
                return ch_store1_reply_m_get_tracked(m, append_tracked_many_cb,
                                                     &(TrackedMany) { NULL, &(Tracked) {}, NULL }) < 0 ? -EIO : 1;
        t = calloc(1, sizeof(Tracked) + n * sizeof(uint64_t));
        if (!t)
                return -ENOMEM;
        t->many = many;
        t->n = n;
        t->sent_ms = hub_now_ms(ns->hub);
        if (field && !(t->field = strdup(field))) {
                tracked_free(t);
                return -ENOMEM;
        }
        /* the counters and the pairs before the read */
        for (size_t i = 0; i < n; i++) {
                t->seq[i] = track_sequence(ns->tracking, keys[i]);
                r = track_read(tracker, keys[i]);
                if (r < 0) {
                        tracked_free(t);
                        return r;
                }
        }
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = rs_args_key(&a, ns, keys[i]);
        if (r >= 0)
                r = rs_args_str(&a, field ? field : "");
        if (r >= 0)
                r = rs_args_str(&a, many ? "1" : "0");
        if (r < 0) {
                tracked_free(t);
                return r;
        }
        return rs_send_eval(ns, m, keys[0], on_tracked, tracked_script, (int) n, &a, t, tracked_free);
}

static int method_get_tracked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        char *keys[] = { (char *) key, NULL };
        return tracked_common(m, userdata, ret_error, keys, NULL, false);
}

static int method_h_get_tracked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        char *keys[] = { (char *) key, NULL };
        return tracked_common(m, userdata, ret_error, keys, field, false);
}

static int method_m_get_tracked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        return tracked_common(m, userdata, ret_error, keys, NULL, true);
}

const ChStore1Handlers bus_store_redis_handlers = {
        .del = method_del,
        .exists = method_exists,
        .keys = method_keys,
        .scan = method_scan,
        .type = method_type,
        .rename = method_rename,
        .rename_nx = method_rename_nx,
        .move = method_move,
        .expire = method_expire,
        .persist = method_persist,
        .ttl = method_ttl,
        .flush = method_flush,
        .db_size = method_db_size,
        .random_key = method_random_key,
        .get = method_get,
        .set = method_set,
        .set_get = method_set_get,
        .get_del = method_get_del,
        .m_get = method_m_get,
        .m_set = method_m_set,
        .m_set_nx = method_m_set_nx,
        .incr = method_incr,
        .incr_float = method_incr_float,
        .append_ = method_append,
        .str_len = method_str_len,
        .get_range = method_get_range,
        .set_range = method_set_range,
        .h_set = method_h_set,
        .h_set_nx = method_h_set_nx,
        .h_get = method_h_get,
        .hm_get = method_h_m_get,
        .h_get_all = method_h_get_all,
        .h_del = method_h_del,
        .h_exists = method_h_exists,
        .h_len = method_h_len,
        .h_keys = method_h_keys,
        .h_vals = method_h_vals,
        .h_incr = method_h_incr,
        .h_incr_float = method_h_incr_float,
        .track = bus_store_track,
        .untrack = bus_store_untrack,
        .get_tracked = method_get_tracked,
        .h_get_tracked = method_h_get_tracked,
        .m_get_tracked = method_m_get_tracked,
        /* lists and sets: bus-store-redis-list.c (h-rlist adds its entries below this line) */
        BUS_STORE_REDIS_LIST_HANDLERS
};
