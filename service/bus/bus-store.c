/* SPDX-License-Identifier: MIT */
/* Bus glue of org.clusterhub.Store1: unpack arguments, call the store, pack the reply. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-store.h"
#include "deferred.h"
#include "peer.h"
#include "transport/socket.h"
#include "bus-util.h"
#include "ch-store1-server.h"
#include "log.h"
#include "namespace.h"
#include "store.h"
#include "tracking.h"
#include "variant-codec.h"
#include "ch-errors.h"

/* --- values ------------------------------------------------------------------------- */

typedef CodecValue BusValue;

static void bus_value_done(BusValue *v) {
        codec_value_done(v);
}

/* Reads the variant at M's position (a value to store).  Strings are borrowed from M. */
int bus_store_read_value(sd_bus_message *m, CodecValue *v, sd_bus_error *ret_error) {
        int r = codec_read_value(m, v);

        if (r == -EMEDIUMTYPE)
                return bus_error_errno(ret_error, -EINVAL, "A value (a variant) is required.");
        if (r == -EBADF)
                return bus_error_errno(ret_error, -EINVAL, "File descriptors cannot be stored.");
        /* MGet and HGetAll send values back in a{sv}: deeper, and the bus would drop the hub
         * for that reply */
        if (r == -ELOOP)
                return bus_error_errno(ret_error, -ENOBUFS, "The value nests deeper than any bus allows; the store keeps values of at most %u containers.",
                                       CODEC_VARIANT_DEPTH_MAX);
        if (r == -E2BIG)
                return bus_error_errno(ret_error, -ENOBUFS,
                                       "The value nests %u containers deep, its variant included; the store keeps values of at most %u, so that a{sv} replies (MGet, HGetAll) stay within the bus's %u.",
                                       v->buf.depth + 1, CODEC_VARIANT_DEPTH_MAX, CODEC_BUS_DEPTH_MAX);
        return r;
}

static int append_value(sd_bus_message *reply, const StoreValue *v) {
        return codec_append_value(reply, v);
}

static int append_value_cb(sd_bus_message *reply, void *userdata) {
        return append_value(reply, userdata);
}

/* --- errors --------------------------------------------------------------------------- */

/* The option that sets each limit the store names (store_last_limit()). */
static const char *limit_option(const char *limit, const Limits *l, unsigned long long *ret_value) {
        static const struct {
                const char *limit, *option;
                size_t offset;
        } table[] = {
                { "key-length", "--max-key-bytes", offsetof(Limits, max_key_bytes) },
                { "value-size", "--max-value-bytes", offsetof(Limits, max_value_bytes) },
                { "elements", "--max-elements", offsetof(Limits, max_elements) },
                { "memory", "--max-namespace-memory", offsetof(Limits, max_namespace_memory) },
                { "hub-memory", "--max-memory", offsetof(Limits, max_memory) },
                { "reply-items", "--max-reply-items", offsetof(Limits, max_reply_items) },
        };

        for (size_t i = 0; limit && i < ELEMENTSOF(table); i++)
                if (streq(limit, table[i].limit)) {
                        *ret_value = *(const uint64_t *) ((const char *) l + table[i].offset);
                        return table[i].option;
                }
        return NULL;
}

static int limit_error(sd_bus_error *ret_error, int r, Namespace *ns, const char *key) {
        const char *limit = store_last_limit(ns->store), *option;
        unsigned long long value = 0;

        option = limit_option(limit, &ns->hub->limits, &value);
        if (!option)
                return bus_error_errno(ret_error, r, "Limit exceeded for key '%s': %s.", key, limit ? limit : "unknown");
        if (streq(limit, "value-size"))
                return bus_error_errno(ret_error, r, "Value of '%s' is %llu bytes; the limit is %llu (%s).", key,
                                       (unsigned long long) store_last_limit_wanted(ns->store), value, option);
        return bus_error_errno(ret_error, r, "Limit exceeded for key '%s': %s; the limit is %llu (%s).", key, limit,
                               value, option);
}

static int store_error(sd_bus_error *ret_error, int r, Namespace *ns, const char *key) {
        switch (r) {
        case -ENOKEY:
                return bus_error_errno(ret_error, r, "Key '%s' does not exist in namespace '%s'.", key, ns->name);
        case -EMEDIUMTYPE:
                return bus_error_errno(ret_error, r, "Key '%s' holds a value of another type.", key);
        case -EDOM:
                return bus_error_errno(ret_error, r, "Key '%s' does not hold a number.", key);
        case -ERANGE:
                return bus_error_errno(ret_error, r, "The result for key '%s' does not fit its type.", key);
        case -ENOBUFS:
                return limit_error(ret_error, r, ns, key);
        case -EINVAL:
                return bus_error_errno(ret_error, r, "Invalid argument for key '%s'.", key);
        default:
                return r;
        }
}

static int check_key(Namespace *ns, sd_bus_error *ret_error, const char *key) {
        return bus_check_name(ret_error, "key", key, ns->hub->limits.max_key_bytes);
}

static int check_keys(Namespace *ns, sd_bus_error *ret_error, char **keys) {
        for (char **k = keys; k && *k; k++) {
                int r = check_key(ns, ret_error, *k);
                if (r < 0)
                        return r;
        }
        return 0;
}

static size_t strv_length(char **l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

/* --- options ------------------------------------------------------------------------ */

int bus_store_read_set_options(sd_bus_message *m, SetOptions *o, sd_bus_error *ret_error) {
        const BusOption table[] = {
                { "ttl_ms", BUS_OPTION_UINT64_POSITIVE, &o->ttl_ms },
                { "nx", BUS_OPTION_BOOL, &o->nx },
                { "xx", BUS_OPTION_BOOL, &o->xx },
                { "keep_ttl", BUS_OPTION_BOOL, &o->keep_ttl },
                {}
        };
        int r;

        r = bus_read_options(m, table, ret_error);
        if (r < 0)
                return r;
        if (o->nx && o->xx)
                return bus_error_errno(ret_error, -EINVAL, "Options 'nx' and 'xx' exclude each other.");
        if (o->keep_ttl && o->ttl_ms > 0)
                return bus_error_errno(ret_error, -EINVAL, "Options 'keep_ttl' and 'ttl_ms' exclude each other.");
        return 0;
}

/* --- methods -------------------------------------------------------------------------- */

static uint64_t now_ms(Namespace *ns) {
        return hub_now_ms(ns->hub);
}

/* After every call that may have changed deadlines. */
static void rearm(Namespace *ns) {
        bus_store_rearm(ns);
}

static int reply_strings(sd_bus_message *m, const char *const *strings, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = sd_bus_message_append_basic(reply, 's', strings[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return bus_send(reply);
}

static int append_values(sd_bus_message *reply, const StoreValue *values, size_t n) {
        int r = sd_bus_message_open_container(reply, 'a', "v");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = append_value(reply, values + i);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

typedef struct ValuesReply {
        const StoreValue *values;
        size_t n;
} ValuesReply;

static int append_values_cb(sd_bus_message *reply, void *userdata) {
        ValuesReply *v = userdata;
        return append_values(reply, v->values, v->n);
}

/* An a{sv} of (name, value) pairs, leaving out absent values. */
typedef struct DictReply {
        const char *const *names;
        size_t name_stride;         /* bytes between names (StoreField arrays) */
        const StoreValue *values;
        size_t value_stride;
        size_t n;
} DictReply;

static int append_dict_cb(sd_bus_message *reply, void *userdata) {
        DictReply *d = userdata;
        int r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n; i++) {
                const char *name = *(const char *const *) ((const char *) d->names + i * d->name_stride);
                const StoreValue *v = (const StoreValue *) ((const char *) d->values + i * d->value_stride);
                if (v->type == '\0')
                        continue;
                r = sd_bus_message_open_container(reply, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_basic(reply, 's', name);
                if (r < 0)
                        return r;
                r = append_value(reply, v);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

void bus_values_done(BusValues *v) {
        for (size_t i = 0; i < v->n; i++)
                bus_value_done(v->items + i);
        free(v->items);
        free(v->values);
        free(v->names);
}

static int bus_values_grow(BusValues *v, size_t *allocated) {
        if (v->n < *allocated)
                return 0;
        size_t a = MAX(*allocated * 2, (size_t) 8);
        BusValue *items = realloc(v->items, a * sizeof(BusValue));
        if (!items)
                return -ENOMEM;
        v->items = items;
        const char **names = realloc(v->names, a * sizeof(char *));
        if (!names)
                return -ENOMEM;
        v->names = names;
        *allocated = a;
        return 0;
}

/* Reads "av" (dict false) or "a{sv}" (dict true) at M's position. */
int bus_store_read_values(sd_bus_message *m, bool dict, BusValues *v, uint64_t max, sd_bus_error *ret_error) {
        size_t allocated = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', dict ? "{sv}" : "v");
        if (r < 0)
                return r;
        for (;;) {
                if (dict) {
                        r = sd_bus_message_enter_container(m, 'e', "sv");
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                } else {
                        r = sd_bus_message_at_end(m, false);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                break;
                }
                if (v->n >= max)
                        return bus_error_errno(ret_error, -ENOBUFS, "More than %llu values in one call (--max-elements).",
                                               (unsigned long long) max);
                r = bus_values_grow(v, &allocated);
                if (r < 0)
                        return r;
                v->items[v->n] = (BusValue) {};
                v->names[v->n] = NULL;
                if (dict) {
                        r = sd_bus_message_read_basic(m, 's', &v->names[v->n]);
                        if (r < 0)
                                return r;
                }
                v->n++;
                r = bus_store_read_value(m, v->items + v->n - 1, ret_error);
                if (r < 0)
                        return r;
                if (dict) {
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                }
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        v->values = calloc(MAX(v->n, (size_t) 1), sizeof(StoreValue));
        if (!v->values)
                return -ENOMEM;
        for (size_t i = 0; i < v->n; i++)
                v->values[i] = v->items[i].value;
        return 0;
}

#define CHECK_KEY(ns, e, key)                           \
        do {                                            \
                int _r_ = check_key((ns), (e), (key));  \
                if (_r_ < 0)                            \
                        return _r_;                     \
        } while (0)

/* The many "KEY -> count" and "KEY, NAME -> bool" commands share one shape each. */
typedef int (*store_count_fn)(Store *s, const char *key, uint64_t now_ms, size_t *ret);
typedef int (*store_test_fn)(Store *s, const char *key, const char *name, uint64_t now_ms);

static int reply_count(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, store_count_fn fn) {
        size_t n = 0;
        uint32_t u;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = fn(ns->store, key, now_ms(ns), &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        u = (uint32_t) MIN(n, (size_t) UINT32_MAX);
        return bus_reply_return(m, "u", u);
}

static int reply_test(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, const char *what,
                      const char *name, store_test_fn fn) {
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = bus_check_name(ret_error, what, name, ns->hub->limits.max_key_bytes);
        if (r < 0)
                return r;
        r = fn(ns->store, key, name, now_ms(ns));
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return bus_reply_return(m, "b", r > 0);
}

/* keys */

static int method_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        StoreValue v;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_get(ns->store, key, now_ms(ns), &v);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_get(m, append_value_cb, &v);
}

static unsigned set_flags(const SetOptions *o) {
        return (o->nx ? STORE_SET_NX : 0) | (o->xx ? STORE_SET_XX : 0) | (o->keep_ttl ? STORE_SET_KEEP_TTL : 0);
}

static int method_set(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(bus_value_done) BusValue v = {};
        SetOptions o = {};
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = bus_store_read_value(m, &v, ret_error);
        if (r < 0)
                return r;
        r = bus_store_read_set_options(m, &o, ret_error);
        if (r < 0)
                return r;
        r = store_set(ns->store, key, &v.value, o.ttl_ms,
                      set_flags(&o), now_ms(ns));
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_set(m, r > 0);
}

static int append_old_cb(sd_bus_message *reply, void *userdata) {
        static const StoreValue none = { .type = 's', .str = { "", 0 } };
        const StoreValue *v = userdata;

        return append_value(reply, v->type ? v : &none);
}

static int method_set_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(bus_value_done) BusValue v = {};
        _cleanup_(store_value_clear) StoreValue old = {};
        SetOptions o = {};
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = bus_store_read_value(m, &v, ret_error);
        if (r < 0)
                return r;
        r = bus_store_read_set_options(m, &o, ret_error);
        if (r < 0)
                return r;
        r = store_setget(ns->store, key, &v.value, o.ttl_ms,
                         set_flags(&o),
                         now_ms(ns), &old);
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_set_get(m, old.type != '\0', append_old_cb, &old);
}

static int method_del(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        Namespace *ns = userdata;
        size_t count = 0;
        int r;

        r = check_keys(ns, ret_error, keys);
        if (r < 0)
                return r;
        r = store_del(ns->store, (const char *const *) keys, strv_length(keys), now_ms(ns), &count);
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, keys[0]);
        return ch_store1_reply_del(m, count);
}

static int method_exists(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        Namespace *ns = userdata;
        size_t count = 0;
        int r;

        r = check_keys(ns, ret_error, keys);
        if (r < 0)
                return r;
        r = store_exists(ns->store, (const char *const *) keys, strv_length(keys), now_ms(ns), &count);
        if (r < 0)
                return store_error(ret_error, r, ns, keys[0]);
        return ch_store1_reply_exists(m, count);
}

static int check_reply_size(Namespace *ns, sd_bus_error *ret_error, size_t n, const char *what) {
        if (n > ns->hub->limits.max_reply_items)
                return bus_error_errno(ret_error, -ENOBUFS, "%s would return %zu items, more than --max-reply-items=%llu.",
                                       what, n, (unsigned long long) ns->hub->limits.max_reply_items);
        return 0;
}

/* Keys walks the keyspace in slices of STORE_SLICE_WORK from an event source, so that a
 * large store or a costly glob never holds the loop for longer than one slice; the reply is
 * built as keys are found, and sent when the walk is done.  A walk that does not finish in
 * its first slice is a Deferred in the namespace's list (beside the blocking pops), so that
 * the caller leaving or the namespace going ends it. */

typedef struct KeysJob {
        Namespace *ns;
        StoreKeys *walk;
        sd_bus_message *reply;
        sd_event_source *slice;
} KeysJob;

static KeysJob *keys_job_free(KeysJob *j) {
        if (!j)
                return NULL;
        sd_event_source_disable_unref(j->slice);
        store_keys_free(j->walk);
        sd_bus_message_unref(j->reply);
        free(j);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(KeysJob *, keys_job_free);

static int keys_found(void *userdata, const char *key, size_t len) {
        return sd_bus_message_append_basic(userdata, 's', key);
}

/* One slice: 0 more to do, 1 done and answered, or -errno with ret_error set. */
static int keys_slice(KeysJob *j, sd_bus_error *ret_error) {
        Namespace *ns = j->ns;
        int r;

        r = store_keys_step(j->walk, now_ms(ns), STORE_SLICE_WORK, keys_found, j->reply);
        if (r == -ENOBUFS)
                return bus_error_errno(ret_error, r, "Keys would return more than --max-reply-items=%llu items.",
                                       (unsigned long long) ns->hub->limits.max_reply_items);
        if (r <= 0)
                return r;
        r = sd_bus_message_close_container(j->reply);
        if (r >= 0)
                r = bus_send(j->reply);
        return r < 0 ? r : 1;
}

/* The next slice runs once the loop has looked at everything else that is pending.  A
 * timer that has already elapsed, not a defer source: sd-event keeps a defer source pending
 * with the iteration it was first enabled in, so it would win over every bus message until
 * the walk ends; an elapsed timer is pending anew each time, after what waited before it. */
static int keys_schedule(KeysJob *j) {
        int r = sd_event_source_set_time(j->slice, 1);
        return r < 0 ? r : sd_event_source_set_enabled(j->slice, SD_EVENT_ONESHOT);
}

static void keys_ended(Deferred *d, DeferredEnd why) {
        KeysJob *j = d->userdata;

        /* no deadline: the caller left */
        LIST_REMOVE(by_kind, j->ns->pops, d);
        keys_job_free(j);
}

static int on_keys_slice(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Deferred *d = userdata;
        KeysJob *j = d->userdata;
        int r;

        r = keys_slice(j, &error);
        if (r == 0) {
                r = keys_schedule(j);
                if (r >= 0)
                        return 0;
        }
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        sd_bus_error_set_errno(&error, r);
                (void) bus_reply_error(d->call, &error);
        }
        LIST_REMOVE(by_kind, j->ns->pops, d);
        namespace_check_unused(j->ns);
        keys_job_free(j);
        deferred_free(d);
        return 0;
}

static int method_keys(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *pattern) {
        _cleanup_(keys_job_freep) KeysJob *j = NULL;
        Namespace *ns = userdata;
        Deferred *d;
        Peer *p;
        int r;

        j = calloc(1, sizeof(KeysJob));
        if (!j)
                return -ENOMEM;
        j->ns = ns;
        r = store_keys_begin(ns->store, pattern, ns->hub->limits.max_reply_items, &j->walk);
        if (r < 0)
                return store_error(ret_error, r, ns, pattern);
        r = sd_bus_message_new_method_return(m, &j->reply);
        if (r >= 0)
                r = sd_bus_message_open_container(j->reply, 'a', "s");
        if (r < 0)
                return r;
        /* a small store is answered at once */
        r = keys_slice(j, ret_error);
        if (r != 0)
                return r;
        r = peer_get_or_new(ns->hub, m, &p);
        if (r < 0)
                return r;
        r = peer_check_pending(p, ret_error);
        if (r < 0)
                return r;
        r = deferred_new(ns->hub, m, p, 0, keys_ended, j, &d);
        if (r < 0)
                return r;
        r = sd_event_add_time(ns->hub->event, &j->slice, CLOCK_MONOTONIC, 1, 1, on_keys_slice, d);
        if (r >= 0)
                r = keys_schedule(j);
        if (r < 0) {
                deferred_free(d);
                return r;
        }
        LIST_APPEND(by_kind, ns->pops, d);
        TAKE_PTR(j);
        return 1;
}

static int method_scan(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint64_t cursor, const char *pattern, uint32_t count) {
        Namespace *ns = userdata;
        _cleanup_(freep) const char **keys = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t next = 0;
        size_t n = 0;
        int r;

        r = store_scan(ns->store, cursor, pattern, MIN((uint64_t) count, ns->hub->limits.max_scan_count), now_ms(ns), &next, &keys, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, pattern);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_basic(reply, 't', &next);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append_basic(reply, 's', keys[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return bus_send(reply);
}

static int method_type(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        const char *type = NULL;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_type(ns->store, key, now_ms(ns), &type);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_type(m, type);
}

static int method_rename(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *new_key) {
        Namespace *ns = userdata;
        int r;

        CHECK_KEY(ns, ret_error, key);
        CHECK_KEY(ns, ret_error, new_key);
        r = store_rename(ns->store, key, new_key, now_ms(ns));
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_rename(m);
}

static int method_rename_nx(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *new_key) {
        Namespace *ns = userdata;
        int r;

        CHECK_KEY(ns, ret_error, key);
        CHECK_KEY(ns, ret_error, new_key);
        r = store_renamenx(ns->store, key, new_key, now_ms(ns));
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_rename_nx(m, r > 0);
}

static int method_move(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *namespace) {
        Namespace *ns = userdata, *dst = NULL;
        size_t exists = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        if (!namespace_name_is_valid(ns->hub, namespace))
                return bus_error_errno(ret_error, -EINVAL, "'%s' is not a namespace name: 1 to %llu characters of [A-Za-z0-9_].",
                                       namespace, (unsigned long long) ns->hub->limits.max_name_bytes);
        if (streq(namespace, ns->name))
                return bus_error_errno(ret_error, -EINVAL, "Key '%s' is already in namespace '%s'.", key, namespace);
        /* a key that is not here moves nowhere, and creates no namespace */
        r = store_exists(ns->store, &key, 1, now_ms(ns), &exists);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        if (exists == 0)
                return ch_store1_reply_move(m, false);
        r = namespace_get(ns->hub, namespace, true, &dst);
        if (r == -ENOBUFS)
                return bus_error_errno(ret_error, r, "Cannot create namespace '%s': the hub has %llu (--max-namespaces).",
                                       namespace, (unsigned long long) ns->hub->limits.max_namespaces);
        if (r < 0)
                return r;
        r = store_move(ns->store, key, dst->store, now_ms(ns));
        rearm(ns);
        bus_store_rearm(dst);
        /* a move refused by the target's limits leaves it as it was, maybe empty and new */
        namespace_check_unused(dst);
        if (r == -ENOBUFS && store_last_limit(ns->store) && streq(store_last_limit(ns->store), "memory"))
                return bus_error_errno(ret_error, r, "Key '%s' does not fit into namespace '%s': it has %llu of %llu bytes (--max-namespace-memory).",
                                       key, namespace, (unsigned long long) store_memory(dst->store),
                                       (unsigned long long) ns->hub->limits.max_namespace_memory);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_move(m, r > 0);
}

static int method_expire(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint64_t ttl_ms) {
        Namespace *ns = userdata;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_expire(ns->store, key, ttl_ms, now_ms(ns));
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_expire(m, r > 0);
}

static int method_persist(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_persist(ns->store, key, now_ms(ns));
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_persist(m, r > 0);
}

static int method_ttl(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        int64_t ttl = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_ttl(ns->store, key, now_ms(ns), &ttl);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_ttl(m, ttl);
}

static int method_flush(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Namespace *ns = userdata;
        int r;

        r = store_flush(ns->store);
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, "");
        return ch_store1_reply_flush(m);
}

static int method_db_size(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Namespace *ns = userdata;
        return ch_store1_reply_db_size(m, store_dbsize(ns->store));
}

static int method_random_key(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Namespace *ns = userdata;
        const char *key = NULL;
        int r;

        r = store_randomkey(ns->store, now_ms(ns), &key);
        if (r == -ENOKEY)
                return bus_error_errno(ret_error, r, "Namespace '%s' has no keys.", ns->name);
        if (r < 0)
                return store_error(ret_error, r, ns, "");
        return ch_store1_reply_random_key(m, key);
}

/* plain values */

static int method_get_del(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        StoreValue v = {};
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_getdel(ns->store, key, now_ms(ns), &v);
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        r = ch_store1_reply_get_del(m, append_value_cb, &v);
        store_value_clear(&v);
        return r;
}

static int method_m_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        Namespace *ns = userdata;
        _cleanup_(freep) StoreValue *values = NULL;
        size_t n = strv_length(keys);
        int r;

        r = check_keys(ns, ret_error, keys);
        if (r < 0)
                return r;
        r = store_mget(ns->store, (const char *const *) keys, n, now_ms(ns), &values);
        if (r < 0)
                return store_error(ret_error, r, ns, keys[0]);
        DictReply d = { (const char *const *) keys, sizeof(char *), values, sizeof(StoreValue), n };
        return ch_store1_reply_m_get(m, append_dict_cb, &d);
}

static int check_names(Namespace *ns, sd_bus_error *ret_error, const char *const *names, size_t n, const char *what) {
        for (size_t i = 0; i < n; i++) {
                int r = bus_check_name(ret_error, what, names[i], ns->hub->limits.max_key_bytes);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The key to name in an error: the first whose value is past --max-value-bytes, else the first. */
static size_t first_big_value(Namespace *ns, const BusValues *v) {
        for (size_t i = 0; i < v->n; i++)
                if (store_value_bytes(&v->values[i]) > ns->hub->limits.max_value_bytes)
                        return i;
        return 0;
}

static int method_m_set_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, bool nx) {
        _cleanup_(bus_values_done) BusValues v = {};
        int r;

        r = bus_store_read_values(m, true, &v, ns->hub->limits.max_elements, ret_error);
        if (r < 0)
                return r;
        r = check_names(ns, ret_error, v.names, v.n, "key");
        if (r < 0)
                return r;
        if (nx)
                r = store_msetnx(ns->store, v.names, v.values, v.n, now_ms(ns));
        else
                r = store_mset(ns->store, v.names, v.values, v.n, now_ms(ns));
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, v.n ? v.names[first_big_value(ns, &v)] : "");
        return nx ? ch_store1_reply_m_set_nx(m, r > 0) : ch_store1_reply_m_set(m);
}

static int method_m_set(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return method_m_set_common(m, userdata, ret_error, false);
}

static int method_m_set_nx(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return method_m_set_common(m, userdata, ret_error, true);
}

static int method_incr(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t by) {
        Namespace *ns = userdata;
        int64_t v = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_incr(ns->store, key, by, now_ms(ns), &v);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_incr(m, v);
}

static int method_incr_float(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, double by) {
        Namespace *ns = userdata;
        double v = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_incrfloat(ns->store, key, by, now_ms(ns), &v);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_incr_float(m, v);
}

static int method_append(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *text) {
        Namespace *ns = userdata;
        size_t len = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_append(ns->store, key, text, strlen(text), now_ms(ns), &len);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_append(m, (uint32_t) MIN(len, (size_t) UINT32_MAX));
}

static int method_str_len(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return reply_count(m, userdata, ret_error, key, store_strlen);
}

static int method_get_range(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t start, int64_t end) {
        Namespace *ns = userdata;
        _cleanup_(freep) char *text = NULL;
        size_t len = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_getrange(ns->store, key, start, end, now_ms(ns), &text, &len);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_get_range(m, text);
}

static int method_set_range(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint32_t offset, const char *text) {
        Namespace *ns = userdata;
        size_t len = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_setrange(ns->store, key, offset, text, strlen(text), now_ms(ns), &len);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_set_range(m, (uint32_t) MIN(len, (size_t) UINT32_MAX));
}

/* hashes */

static int check_field(Namespace *ns, sd_bus_error *ret_error, const char *field) {
        return bus_check_name(ret_error, "field name", field, ns->hub->limits.max_key_bytes);
}

static int method_h_set(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(bus_values_done) BusValues v = {};
        size_t added = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = bus_store_read_values(m, true, &v, ns->hub->limits.max_elements, ret_error);
        if (r < 0)
                return r;
        r = check_names(ns, ret_error, v.names, v.n, "field name");
        if (r < 0)
                return r;
        r = store_hset(ns->store, key, v.names, v.values, v.n, now_ms(ns), &added);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_h_set(m, (uint32_t) added);
}

static int method_h_set_nx(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        Namespace *ns = userdata;
        _cleanup_(bus_value_done) BusValue v = {};
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = check_field(ns, ret_error, field);
        if (r < 0)
                return r;
        r = bus_store_read_value(m, &v, ret_error);
        if (r < 0)
                return r;
        r = store_hsetnx(ns->store, key, field, &v.value, now_ms(ns));
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_h_set_nx(m, r > 0);
}

static int method_h_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        Namespace *ns = userdata;
        StoreValue v;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_hget(ns->store, key, field, now_ms(ns), &v);
        if (r == -ENOKEY)
                return bus_error_errno(ret_error, r, "Hash '%s' has no field '%s' in namespace '%s'.", key, field, ns->name);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_h_get(m, append_value_cb, &v);
}

static int method_h_m_get(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, char **fields) {
        Namespace *ns = userdata;
        _cleanup_(freep) StoreValue *values = NULL;
        size_t n = strv_length(fields);
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_hmget(ns->store, key, (const char *const *) fields, n, now_ms(ns), &values);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        DictReply d = { (const char *const *) fields, sizeof(char *), values, sizeof(StoreValue), n };
        return ch_store1_reply_hm_get(m, append_dict_cb, &d);
}

static int method_h_get_all(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(freep) StoreField *fields = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_hgetall(ns->store, key, now_ms(ns), &fields, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        r = check_reply_size(ns, ret_error, n, "HGetAll");
        if (r < 0)
                return r;
        DictReply d = { fields ? &fields[0].name : NULL, sizeof(StoreField), fields ? &fields[0].value : NULL, sizeof(StoreField), n };
        return ch_store1_reply_h_get_all(m, append_dict_cb, &d);
}

static int method_h_del(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, char **fields) {
        Namespace *ns = userdata;
        size_t count = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_hdel(ns->store, key, (const char *const *) fields, strv_length(fields), now_ms(ns), &count);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_h_del(m, (uint32_t) count);
}

static int method_h_exists(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        return reply_test(m, userdata, ret_error, key, "field name", field, store_hexists);
}

static int method_h_len(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return reply_count(m, userdata, ret_error, key, store_hlen);
}

static int method_h_keys(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(freep) const char **fields = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_hkeys(ns->store, key, now_ms(ns), &fields, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return reply_strings(m, fields, n);
}

static int method_h_vals(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(freep) StoreValue *values = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_hvals(ns->store, key, now_ms(ns), &values, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        ValuesReply v = { values, n };
        return ch_store1_reply_h_vals(m, append_values_cb, &v);
}

static int method_h_incr(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field, int64_t by) {
        Namespace *ns = userdata;
        int64_t v = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = check_field(ns, ret_error, field);
        if (r < 0)
                return r;
        r = store_hincr(ns->store, key, field, by, now_ms(ns), &v);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_h_incr(m, v);
}

static int method_h_incr_float(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field, double by) {
        Namespace *ns = userdata;
        double v = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = check_field(ns, ret_error, field);
        if (r < 0)
                return r;
        r = store_hincrfloat(ns->store, key, field, by, now_ms(ns), &v);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_h_incr_float(m, v);
}

/* lists */

static int push_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, bool left, bool x) {
        _cleanup_(bus_values_done) BusValues v = {};
        size_t len = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = bus_store_read_values(m, false, &v, ns->hub->limits.max_elements, ret_error);
        if (r < 0)
                return r;
        if (x)
                r = store_pushx(ns->store, key, left, v.values, v.n, now_ms(ns), &len);
        else
                r = store_push(ns->store, key, left, v.values, v.n, now_ms(ns), &len);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_l_push(m, (uint32_t) len); /* same reply shape for all four */
}

static int method_l_push(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return push_common(m, userdata, ret_error, key, true, false);
}

static int method_r_push(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return push_common(m, userdata, ret_error, key, false, false);
}

static int method_l_push_x(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return push_common(m, userdata, ret_error, key, true, true);
}

static int method_r_push_x(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return push_common(m, userdata, ret_error, key, false, true);
}

static int pop_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key, bool left, uint32_t count) {
        StoreValue *values = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_pop(ns->store, key, left, count, now_ms(ns), &values, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        ValuesReply v = { values, n };
        r = ch_store1_reply_l_pop(m, append_values_cb, &v);
        store_values_free(values, n);
        return r;
}

static int method_l_pop(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint32_t count) {
        return pop_common(m, userdata, ret_error, key, true, count);
}

static int method_r_pop(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint32_t count) {
        return pop_common(m, userdata, ret_error, key, false, count);
}

static int method_l_range(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t start, int64_t stop) {
        Namespace *ns = userdata;
        _cleanup_(freep) StoreValue *values = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_lrange(ns->store, key, start, stop, now_ms(ns), &values, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        r = check_reply_size(ns, ret_error, n, "LRange");
        if (r < 0)
                return r;
        ValuesReply v = { values, n };
        return ch_store1_reply_l_range(m, append_values_cb, &v);
}

static int method_l_len(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return reply_count(m, userdata, ret_error, key, store_llen);
}

static int method_l_index(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t index) {
        Namespace *ns = userdata;
        StoreValue v;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_lindex(ns->store, key, index, now_ms(ns), &v);
        if (r == -ENOKEY)
                return bus_error_errno(ret_error, r, "List '%s' has no index %lld.", key, (long long) index);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_l_index(m, append_value_cb, &v);
}

static int method_l_set(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t index) {
        Namespace *ns = userdata;
        _cleanup_(bus_value_done) BusValue v = {};
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = bus_store_read_value(m, &v, ret_error);
        if (r < 0)
                return r;
        r = store_lset(ns->store, key, index, &v.value, now_ms(ns));
        if (r == -EINVAL)
                return bus_error_errno(ret_error, r, "Index %lld is out of range for list '%s'.", (long long) index, key);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_l_set(m);
}

static int method_l_trim(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t start, int64_t stop) {
        Namespace *ns = userdata;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_ltrim(ns->store, key, start, stop, now_ms(ns));
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_l_trim(m);
}

static int method_l_rem(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, int64_t count) {
        Namespace *ns = userdata;
        _cleanup_(bus_value_done) BusValue v = {};
        size_t removed = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = bus_store_read_value(m, &v, ret_error);
        if (r < 0)
                return r;
        r = store_lrem(ns->store, key, count, &v.value, now_ms(ns), &removed);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_l_rem(m, (uint32_t) removed);
}

static int parse_side(sd_bus_error *ret_error, const char *what, const char *value, const char *a, const char *b, bool *ret_a) {
        if (streq(value, a))
                *ret_a = true;
        else if (streq(value, b))
                *ret_a = false;
        else
                return bus_error_errno(ret_error, -EINVAL, "%s must be '%s' or '%s', not '%s'.", what, a, b, value);
        return 0;
}

static int method_l_insert(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *where) {
        Namespace *ns = userdata;
        _cleanup_(bus_value_done) BusValue pivot = {}, v = {};
        int64_t len = 0;
        bool before = false;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = parse_side(ret_error, "where", where, "before", "after", &before);
        if (r < 0)
                return r;
        r = bus_store_read_value(m, &pivot, ret_error);
        if (r < 0)
                return r;
        r = bus_store_read_value(m, &v, ret_error);
        if (r < 0)
                return r;
        r = store_linsert(ns->store, key, before, &pivot.value, &v.value, now_ms(ns), &len);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_l_insert(m, len);
}

static int method_l_move(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *source, const char *destination,
                         const char *where_from, const char *where_to) {
        Namespace *ns = userdata;
        StoreValue v = {};
        bool from_left = false, to_left = false;
        int r;

        CHECK_KEY(ns, ret_error, source);
        CHECK_KEY(ns, ret_error, destination);
        r = parse_side(ret_error, "where_from", where_from, "left", "right", &from_left);
        if (r < 0)
                return r;
        r = parse_side(ret_error, "where_to", where_to, "left", "right", &to_left);
        if (r < 0)
                return r;
        r = store_lmove(ns->store, source, destination, from_left, to_left, now_ms(ns), &v);
        if (r < 0)
                return store_error(ret_error, r, ns, source);
        r = ch_store1_reply_l_move(m, append_value_cb, &v);
        store_value_clear(&v);
        return r;
}

/* blocking pops: a Deferred per waiting call, in the namespace's list so that dropping the
 * namespace can fail them */


static void pop_reply(sd_bus_message *call, const char *key, StoreValue *v) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_append_basic(reply, 's', key);
        if (r >= 0)
                r = append_value(reply, v);
        if (r >= 0)
                r = bus_send(reply);
        if (r < 0)
                log_warning_errno(r, "Failed to answer a blocking pop on %s: %m", key);
}

typedef struct PopWait {
        Namespace *ns;
        StoreWaiter *waiter;
} PopWait;

static void on_served(void *userdata, void *token, const char *key, StoreValue *value) {
        Deferred *d = token;
        PopWait *w = d->userdata;

        LIST_REMOVE(by_kind, w->ns->pops, d);
        pop_reply(d->call, key, value);
        store_value_clear(value);
        free(w);
        deferred_free(d);
}

static void pop_ended(Deferred *d, DeferredEnd why) {
        PopWait *w = d->userdata;

        LIST_REMOVE(by_kind, w->ns->pops, d);
        store_waiter_cancel(w->waiter);
        free(w);
        if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, "org.clusterhub.Error.Timeout",
                                        "Nothing was pushed to the lists within the timeout.");
}

static int block_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, char **keys, uint32_t timeout_ms, bool left) {
        _cleanup_(freep) char *key = NULL;
        StoreValue v = {};
        PopWait *w;
        Deferred *d;
        Peer *p;
        int r;

        if (!keys || !keys[0])
                return bus_error_errno(ret_error, -EINVAL, "At least one key is needed.");
        r = check_keys(ns, ret_error, keys);
        if (r < 0)
                return r;
        r = peer_get_or_new(ns->hub, m, &p);
        if (r < 0)
                return r;
        r = peer_check_pending(p, ret_error);
        if (r < 0)
                return r;
        w = calloc(1, sizeof(PopWait));
        if (!w)
                return -ENOMEM;
        w->ns = ns;
        /* timeout 0 waits without limit, as in Redis (deferred_new: 0 is no deadline) */
        r = deferred_new(ns->hub, m, p, timeout_ms, pop_ended, w, &d);
        if (r < 0) {
                free(w);
                return r;
        }
        r = store_block(ns->store, (const char *const *) keys, strv_length(keys), left, d, now_ms(ns), &w->waiter, &key, &v);
        if (r != 0) {
                /* popped at once, or failed: no wait */
                deferred_free(d);
                free(w);
                if (r < 0)
                        return store_error(ret_error, r, ns, keys[0]);
                pop_reply(m, key, &v);
                store_value_clear(&v);
                return 1;
        }
        LIST_APPEND(by_kind, ns->pops, d);
        return 1;
}

static int method_bl_pop(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys, uint32_t timeout_ms) {
        return block_common(m, userdata, ret_error, keys, timeout_ms, true);
}

static int method_br_pop(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys, uint32_t timeout_ms) {
        return block_common(m, userdata, ret_error, keys, timeout_ms, false);
}

/* sets */

static int method_s_add(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, char **members) {
        Namespace *ns = userdata;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = check_names(ns, ret_error, (const char *const *) members, strv_length(members), "member");
        if (r < 0)
                return r;
        r = store_sadd(ns->store, key, (const char *const *) members, strv_length(members), now_ms(ns), &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_s_add(m, (uint32_t) n);
}

static int method_s_rem(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, char **members) {
        Namespace *ns = userdata;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_srem(ns->store, key, (const char *const *) members, strv_length(members), now_ms(ns), &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return ch_store1_reply_s_rem(m, (uint32_t) n);
}

static int method_s_members(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        Namespace *ns = userdata;
        _cleanup_(freep) const char **members = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_smembers(ns->store, key, now_ms(ns), &members, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        r = check_reply_size(ns, ret_error, n, "SMembers");
        if (r < 0)
                return r;
        return reply_strings(m, members, n);
}

static int method_s_is_member(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *member) {
        return reply_test(m, userdata, ret_error, key, "member", member, store_sismember);
}

static int method_s_card(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return reply_count(m, userdata, ret_error, key, store_scard);
}

static int method_s_pop(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint32_t count) {
        Namespace *ns = userdata;
        char **members = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_spop(ns->store, key, count, now_ms(ns), &members, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        r = reply_strings(m, (const char *const *) members, n);
        store_strv_free(members, n);
        return r;
}

static int method_s_rand_member(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, uint32_t count) {
        Namespace *ns = userdata;
        _cleanup_(freep) const char **members = NULL;
        size_t n = 0;
        int r;

        CHECK_KEY(ns, ret_error, key);
        r = store_srandmember(ns->store, key, count, now_ms(ns), &members, &n);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return reply_strings(m, members, n);
}

/* --- client-side caching (tracking.c; docs/caching.md) ------------------------------------ */

static Peer *peer_of_owner(TrackOwner *o) {
        return container_of(o, Peer, track_owner);
}

/* Invalidate(keys), unicast: on the bus addressed to the tracker's unique name, on the private
 * socket on its own connection.  Through bus_send() like the replies, so that it leaves before
 * the reply of the call that changed the keys. */
static void on_track_invalidate(TrackOwner *owner, void *space_userdata, const char *const *keys, size_t n) {
        Peer *p = peer_of_owner(owner);
        Namespace *ns = space_userdata;
        _cleanup_(freep) char **strv = NULL;
        int r;

        strv = calloc(n + 1, sizeof(char *));
        if (!strv) {
                log_warning("Out of memory for Invalidate to %s in %s.", p->unique_name, ns->name);
                return;
        }
        for (size_t i = 0; i < n; i++)
                strv[i] = (char *) keys[i];
        r = ch_store1_emit_invalidate(p->bus, p->conn ? NULL : p->unique_name, ns->path, strv);
        if (r < 0)
                log_warning_errno(r, "Failed to send Invalidate to %s in %s: %m", p->unique_name, ns->name);
}

/* Whether the call being dispatched came from OWNER's connection: sd-bus knows the message it
 * is dispatching on each connection, and a tracker's peer lives on one. */
static bool on_track_is_writer(TrackOwner *owner) {
        Peer *p = peer_of_owner(owner);
        sd_bus_message *m = sd_bus_get_current_message(p->bus);
        const char *name;

        if (!m || !sd_bus_message_is_method_call(m, NULL, NULL))
                return false;
        name = peer_name_of(p->hub, m);
        return name && streq(name, p->unique_name);
}

const TrackOps bus_store_track_ops = {
        .invalidate = on_track_invalidate,
        .is_writer = on_track_is_writer,
};

typedef struct TrackArgs {
        TrackOptions o;
        const char *prefixes[TRACK_MAX_PREFIXES];
} TrackArgs;

static int option_type_error(sd_bus_error *ret_error, const char *name, const char *want, const char *got) {
        return bus_error_errno(ret_error, -EINVAL, "Option '%s' must be %s, not '%s'.", name, want, got);
}

static int read_prefixes(sd_bus_message *m, Namespace *ns, TrackArgs *a, sd_bus_error *ret_error) {
        const char *p;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        a->o.n_prefixes = 0;
        while ((r = sd_bus_message_read_basic(m, 's', &p)) > 0) {
                if (a->o.n_prefixes >= TRACK_MAX_PREFIXES)
                        return bus_error_errno(ret_error, -ENOBUFS, "More than %zu prefixes; a tracker takes at most %zu.",
                                               TRACK_MAX_PREFIXES, TRACK_MAX_PREFIXES);
                if (strlen(p) > ns->hub->limits.max_key_bytes)
                        return bus_error_errno(ret_error, -EINVAL, "Prefix %zu is %zu bytes long; keys have at most %llu (--max-key-bytes).",
                                               a->o.n_prefixes, strlen(p), (unsigned long long) ns->hub->limits.max_key_bytes);
                a->prefixes[a->o.n_prefixes++] = p;
        }
        if (r < 0)
                return r;
        a->o.prefixes = a->prefixes;
        return sd_bus_message_exit_container(m);
}

static int read_max_keys(sd_bus_message *m, const char *contents, uint64_t *ret, sd_bus_error *ret_error) {
        union {
                uint32_t u;
                uint64_t t;
                int32_t i;
                int64_t x;
        } v;
        int r;

        if (!contents[0] || contents[1] || !strchr("utix", contents[0]))
                return option_type_error(ret_error, "max_keys", "a number (u, t, i or x)", contents);
        r = sd_bus_message_read_basic(m, contents[0], &v);
        if (r < 0)
                return r;
        switch (contents[0]) {
        case 'u':
                *ret = v.u;
                return 0;
        case 't':
                *ret = v.t;
                return 0;
        case 'i':
                v.x = v.i;
                break;
        }
        if (v.x < 0)
                return bus_error_errno(ret_error, -EINVAL, "Option 'max_keys' must not be negative.");
        *ret = (uint64_t) v.x;
        return 0;
}

static int read_track_option(sd_bus_message *m, Namespace *ns, const char *name, TrackArgs *a, sd_bus_error *ret_error) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        if (streq(name, "mode")) {
                const char *mode;

                if (!streq(contents, "s"))
                        return option_type_error(ret_error, name, "a string (s)", contents);
                r = sd_bus_message_read_basic(m, 's', &mode);
                if (r < 0)
                        return r;
                if (streq(mode, "keys"))
                        a->o.mode = TRACK_MODE_KEYS;
                else if (streq(mode, "prefix"))
                        a->o.mode = TRACK_MODE_PREFIX;
                else
                        return bus_error_errno(ret_error, -EINVAL, "Option 'mode' is 'keys' or 'prefix', not '%s'.", mode);
        } else if (streq(name, "prefixes")) {
                if (!streq(contents, "as"))
                        return option_type_error(ret_error, name, "an array of strings (as)", contents);
                r = read_prefixes(m, ns, a, ret_error);
        } else if (streq(name, "noloop")) {
                int b;

                if (!streq(contents, "b"))
                        return option_type_error(ret_error, name, "a boolean (b)", contents);
                r = sd_bus_message_read_basic(m, 'b', &b);
                a->o.noloop = b;
        } else if (streq(name, "max_keys"))
                r = read_max_keys(m, contents, &a->o.max_keys, ret_error);
        else
                return bus_error_errno(ret_error, -EINVAL, "Unknown option '%s' (Track takes mode, prefixes, noloop, max_keys).", name);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_track_options(sd_bus_message *m, Namespace *ns, TrackArgs *a, sd_bus_error *ret_error) {
        const TrackHub *th = ns->hub->track_hub;
        size_t i = 0, j = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r >= 0)
                        r = read_track_option(m, ns, name, a, ret_error);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        r = track_options_check(th, &a->o, &i, &j);
        if (r == -ENOBUFS && a->o.mode == TRACK_MODE_KEYS)
                return bus_error_errno(ret_error, r, "Option 'max_keys' %llu is above --max-tracked-keys-per-peer=%llu.",
                                       (unsigned long long) a->o.max_keys,
                                       (unsigned long long) ns->hub->limits.max_tracked_keys_per_peer);
        if (r == -EINVAL && a->o.mode == TRACK_MODE_KEYS)
                return bus_error_errno(ret_error, r, "Option 'prefixes' needs mode 'prefix'.");
        if (r == -EINVAL && a->o.n_prefixes == 0)
                return bus_error_errno(ret_error, r, "Mode 'prefix' needs option 'prefixes' with 1 to %zu prefixes.", TRACK_MAX_PREFIXES);
        if (r == -EINVAL)
                return bus_error_errno(ret_error, r, "Prefixes '%s' and '%s' overlap (one starts the other); a key may match one prefix only.",
                                       a->o.prefixes[i], a->o.prefixes[j]);
        return r;
}

static int method_track(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Namespace *ns = userdata;
        TrackArgs a = { .o.mode = TRACK_MODE_KEYS };
        Peer *p;
        int fd = -EBADF, r;

        r = read_track_options(m, ns, &a, ret_error);
        if (r < 0)
                return r;
        /* the page is a file descriptor: a connection that did not negotiate them cannot track */
        if (sd_bus_can_send(sd_bus_message_get_bus(m), SD_BUS_TYPE_UNIX_FD) <= 0)
                return sd_bus_error_setf(ret_error, CH_ERROR_NOT_SUPPORTED,
                                         "Track hands out a file descriptor, and this connection does not pass them.");
        r = peer_get_or_new(ns->hub, m, &p);
        if (r < 0)
                return r;
        r = track_start(ns->tracking, &p->track_owner, &a.o, &fd);
        if (r < 0)
                return r;
        return ch_store1_reply_track(m, fd, (uint32_t) TRACK_BUCKETS);
}

static int method_untrack(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Namespace *ns = userdata;
        Peer *p = peer_of(ns->hub, m);

        if (p && track_stop(ns->tracking, &p->track_owner) > 0)
                namespace_check_unused(ns);
        return ch_store1_reply_untrack(m);
}

static Tracker *tracker_of(Namespace *ns, sd_bus_message *m, sd_bus_error *ret_error) {
        Peer *p = peer_of(ns->hub, m);
        Tracker *t = p ? track_find(ns->tracking, &p->track_owner) : NULL;

        if (!t)
                (void) sd_bus_error_setf(ret_error, CH_ERROR_NOT_TRACKING,
                                         "%s has not called Track in namespace '%s' (or called Untrack).",
                                         peer_name_of(ns->hub, m) ?: "the caller", ns->name);
        return t;
}

/* One tracked read's result: found, value (a view), the bucket's counter, the TTL's end. */
typedef struct TrackedValue {
        StoreValue value;       /* type '\0': not found */
        uint64_t sequence;
        uint64_t deadline_ns;   /* CLOCK_MONOTONIC, 0: no TTL */
} TrackedValue;

static int append_tracked_rest(sd_bus_message *reply, const TrackedValue *v) {
        static const StoreValue none = { .type = 's', .str = { "", 0 } };
        int r;

        r = append_value(reply, v->value.type ? &v->value : &none);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "tt", v->sequence, v->deadline_ns);
}

static int append_tracked_cb(sd_bus_message *reply, void *userdata) {
        return append_tracked_rest(reply, userdata);
}

/* KEY's TTL as an absolute CLOCK_MONOTONIC deadline in ns (0: none or absent), read before the
 * value so that no view is held across it.  A deadline past what ns can count (TTLs of more than
 * five centuries are accepted) is UINT64_MAX: a wrapped product would be an earlier, arbitrary
 * time, and such a key would never be served from a cache. */
static int tracked_deadline(Namespace *ns, const char *key, uint64_t now, uint64_t *ret) {
        int64_t ttl = -2;
        uint64_t end;
        int r;

        r = store_ttl(ns->store, key, now, &ttl);
        if (r < 0)
                return r;
        if (ttl < 0) {
                *ret = 0;
                return 0;
        }
        end = now + (uint64_t) ttl;
        *ret = end < now || end > UINT64_MAX / UINT64_C(1000000) ? UINT64_MAX : end * UINT64_C(1000000);
        return 0;
}

/* Reads KEY (FIELD of it when not NULL) for tracker T: the pair is remembered after the read. */
static int tracked_read(Namespace *ns, Tracker *t, const char *key, const char *field, bool wrong_type_is_absent,
                        TrackedValue *ret) {
        uint64_t now = now_ms(ns);
        TrackedValue v = {};
        int r;

        r = tracked_deadline(ns, key, now, &v.deadline_ns);
        if (r < 0)
                return r;
        r = field ? store_hget(ns->store, key, field, now, &v.value) : store_get(ns->store, key, now, &v.value);
        if (r == -ENOKEY || (r == -EMEDIUMTYPE && wrong_type_is_absent))
                v = (TrackedValue) {};
        else if (r < 0)
                return r;
        /* a read may have expired KEY lazily: the counter is read after it */
        v.sequence = track_sequence(ns->tracking, key);
        r = track_read(t, key);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

static int method_get_tracked_common(sd_bus_message *m, Namespace *ns, sd_bus_error *ret_error, const char *key,
                                     const char *field) {
        TrackedValue v;
        Tracker *t;
        int r;

        CHECK_KEY(ns, ret_error, key);
        if (field) {
                r = check_field(ns, ret_error, field);
                if (r < 0)
                        return r;
        }
        t = tracker_of(ns, m, ret_error);
        if (!t)
                return -ENOTCONN;
        r = tracked_read(ns, t, key, field, false, &v);
        rearm(ns);
        if (r < 0)
                return store_error(ret_error, r, ns, key);
        return field ? ch_store1_reply_h_get_tracked(m, v.value.type != '\0', append_tracked_cb, &v)
                     : ch_store1_reply_get_tracked(m, v.value.type != '\0', append_tracked_cb, &v);
}

static int method_get_tracked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        return method_get_tracked_common(m, userdata, ret_error, key, NULL);
}

static int method_h_get_tracked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, const char *field) {
        return method_get_tracked_common(m, userdata, ret_error, key, field);
}

typedef struct TrackedReply {
        Namespace *ns;
        Tracker *tracker;
        char **keys;
} TrackedReply;

/* Each key is read as it is appended: values are views, valid until the next read that may
 * expire a key, so none is held across another key's read. */
static int append_tracked_values_cb(sd_bus_message *reply, void *userdata) {
        TrackedReply *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(bvtt)");
        if (r < 0)
                return r;
        for (char **k = d->keys; k && *k; k++) {
                TrackedValue v;

                r = tracked_read(d->ns, d->tracker, *k, NULL, true, &v);
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(reply, 'r', "bvtt");
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 'b', &(int) { v.value.type != '\0' });
                if (r >= 0)
                        r = append_tracked_rest(reply, &v);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int method_m_get_tracked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        Namespace *ns = userdata;
        TrackedReply d = { ns, NULL, keys };
        size_t n;
        int r;

        r = check_keys(ns, ret_error, keys);
        if (r < 0)
                return r;
        r = check_reply_size(ns, ret_error, strv_length(keys), "MGetTracked");
        if (r < 0)
                return r;
        d.tracker = tracker_of(ns, m, ret_error);
        if (!d.tracker)
                return -ENOTCONN;
        /* more keys than its table holds would only evict each other, one Invalidate each */
        n = strv_length(keys);
        if (tracker_max_keys(d.tracker) > 0 && n > tracker_max_keys(d.tracker))
                return bus_error_errno(ret_error, -ENOBUFS,
                                       "MGetTracked of %zu keys; this tracker's table holds %llu (max_keys, --max-tracked-keys-per-peer).",
                                       n, (unsigned long long) tracker_max_keys(d.tracker));
        r = ch_store1_reply_m_get_tracked(m, append_tracked_values_cb, &d);
        rearm(ns);
        return r;
}

/* Shared with the Redis-backed store (bus-store-redis.c): tracking is the hub's own there too. */
int bus_store_track(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return method_track(m, userdata, ret_error);
}

int bus_store_untrack(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return method_untrack(m, userdata, ret_error);
}

Tracker *bus_store_tracker_of(Namespace *ns, sd_bus_message *m, sd_bus_error *ret_error) {
        return tracker_of(ns, m, ret_error);
}

const ChStore1Handlers bus_store_handlers = {
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
        .l_push = method_l_push,
        .r_push = method_r_push,
        .l_push_x = method_l_push_x,
        .r_push_x = method_r_push_x,
        .l_pop = method_l_pop,
        .r_pop = method_r_pop,
        .bl_pop = method_bl_pop,
        .br_pop = method_br_pop,
        .l_range = method_l_range,
        .l_len = method_l_len,
        .l_index = method_l_index,
        .l_set = method_l_set,
        .l_trim = method_l_trim,
        .l_rem = method_l_rem,
        .l_insert = method_l_insert,
        .l_move = method_l_move,
        .s_add = method_s_add,
        .s_rem = method_s_rem,
        .s_members = method_s_members,
        .s_is_member = method_s_is_member,
        .s_card = method_s_card,
        .s_pop = method_s_pop,
        .s_rand_member = method_s_rand_member,
        .track = method_track,
        .untrack = method_untrack,
        .get_tracked = method_get_tracked,
        .h_get_tracked = method_h_get_tracked,
        .m_get_tracked = method_m_get_tracked,
};

/* --- construction ----------------------------------------------------------------- */

typedef struct KeyChange {
        const char *path, *key, *event;
} KeyChange;

static int emit_key_changed_on(sd_bus *bus, void *userdata) {
        const KeyChange *k = userdata;
        return ch_store1_emit_key_changed(bus, NULL, k->path, k->key, k->event);
}

static void on_key_changed(void *userdata, const char *key, const char *event) {
        Namespace *ns = userdata;
        KeyChange k = { ns->path, key, event };
        SignalProbe probe = { ns->path, CH_STORE1_INTERFACE, "KeyChanged", "ss", { key, event } };
        int r;

        /* the counter and the Invalidate signals before the reply of the call that changed it */
        if (streq(event, "flush"))
                track_space_flush(ns->tracking);
        else
                track_key_changed(ns->tracking, key, !streq(event, "expired"));
        ns->hub->stats.keyspace_events++;
        r = hub_broadcast(ns->hub, &probe, emit_key_changed_on, &k);
        if (r < 0)
                log_warning_errno(r, "Failed to emit KeyChanged(%s, %s) in %s: %m", key, event, ns->name);
}

static int on_expire_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Namespace *ns = userdata;

        /* bounded per turn, so a mass expiry does not stall the bus */
        (void) store_expire_due(ns->store, hub_now_ms(ns->hub), 1000);
        bus_store_rearm(ns);
        namespace_check_unused(ns);
        return 0;
}

void bus_store_rearm(Namespace *ns) {
        uint64_t next = store_next_deadline(ns->store), current = 0;
        int r;

        /* UINT64_MAX: no TTL; a deadline the timer cannot express is left to lazy expiry */
        if (next >= UINT64_MAX / USEC_PER_MSEC) {
                if (ns->expire_timer)
                        (void) sd_event_source_set_enabled(ns->expire_timer, SD_EVENT_OFF);
                return;
        }
        if (!ns->expire_timer) {
                r = sd_event_add_time(ns->hub->event, &ns->expire_timer, CLOCK_MONOTONIC, next * USEC_PER_MSEC,
                                      USEC_PER_MSEC, on_expire_timer, ns);
                if (r < 0)
                        log_warning_errno(r, "Failed to arm the expiry timer of %s: %m", ns->name);
                return;
        }
        if (sd_event_source_get_time(ns->expire_timer, &current) >= 0 && current == next * USEC_PER_MSEC &&
            sd_event_source_get_enabled(ns->expire_timer, NULL) > 0)
                return;
        r = sd_event_source_set_time(ns->expire_timer, next * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(ns->expire_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the expiry timer of %s: %m", ns->name);
}

void bus_store_drop(Namespace *ns) {
        while (ns->pops.first) {
                Deferred *d = ns->pops.first;

                LIST_REMOVE(by_kind, ns->pops, d);
                if (d->on_end == keys_ended)
                        keys_job_free(d->userdata);
                else {
                        PopWait *w = d->userdata;
                        store_waiter_cancel(w->waiter);
                        free(w);
                }
                (void) bus_reply_errorf(d->call, "org.clusterhub.Error.NamespaceDropped",
                                        "Namespace '%s' was dropped.", ns->name);
                deferred_free(d);
        }
        ns->expire_timer = sd_event_source_disable_unref(ns->expire_timer);
}

int bus_store_new(Namespace *ns, Store **ret) {
        StoreLimits l = {
                .max_key_len = ns->hub->limits.max_key_bytes,
                .max_value_size = ns->hub->limits.max_value_bytes,
                .max_elements = ns->hub->limits.max_elements,
                .max_memory = ns->hub->limits.max_namespace_memory,
        };
        return store_new(ret, &l, &ns->hub->store_account, on_key_changed, on_served, ns);
}
