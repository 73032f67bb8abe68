/* SPDX-License-Identifier: MIT */
/* The Redis-backed store's backend part: calls in flight, error replies, KeyChanged from
 * keyspace notifications (rstore.h). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-store-redis-list.h"
#include "bus-util.h"
#include "ch-errors.h"
#include "ch-store1-server.h"
#include "deferred.h"
#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "redis-link.h"
#include "rstore.h"
#include "tracking.h"
#include "transport/socket.h"
#include "utf8.h"

struct RStore {
        Hub *hub;
        RedisLink *link;
        unsigned db;
        char *pattern;                  /* __keyspace@DB__:clusterhub:{* */
        char *channel_prefix;           /* __keyspace@DB__: */
        bool config_warned;
        char *policy_warned;            /* the eviction policy last warned about */
        bool version_warned;
        uint64_t calls;                 /* Store1 calls sent to Redis */
        uint64_t calls_failed;          /* answered BackendUnavailable (link down, timeout) */
        uint64_t notifications;         /* KeyChanged emitted from Redis's notifications */
        uint64_t notifications_dropped; /* notifications that did not parse */
};

struct RStoreCall {
        RStore *store;
        sd_bus_message *m;
        char *ns;
        char *key;
        rstore_reply_fn on_reply;
        void *data;
        void (*free_data)(void *);
        unsigned round;
        bool in_reply;                  /* on_reply runs: a failed send is its to return */
        bool want_errors;               /* error replies go to on_reply too */
        char **written;                 /* keys the call may change: their tracking counters grow
                                         * before its reply (NULL-terminated) */
        bool flush;                     /* it may change every key of the namespace */
        Deferred *deferred;             /* among the hub's waiting calls, so that SIGTERM answers it */
        bool answered;                  /* the hub answered it (exiting): Redis's reply is dropped */
};

static const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);
        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* ---- calls ------------------------------------------------------------------------------ */

static RStoreCall *call_free(RStoreCall *c) {
        if (!c)
                return NULL;
        if (c->free_data)
                c->free_data(c->data);
        if (c->deferred)
                deferred_free(c->deferred);
        sd_bus_message_unref(c->m);
        for (char **k = c->written; k && *k; k++)
                free(*k);
        free(c->written);
        free(c->ns);
        free(c->key);
        free(c);
        return NULL;
}

/* The hub is exiting: deferred.c answered ShuttingDown; the call waits for Redis's reply (or the
 * link's end) only to be freed. */
static void on_deferred_end(Deferred *d, DeferredEnd why) {
        RStoreCall *c = d->userdata;

        c->deferred = NULL;
        c->answered = true;
}

int rstore_call_new(Namespace *ns, sd_bus_message *m, const char *key, rstore_reply_fn on_reply, RStoreCall **ret) {
        return rstore_call_new_hub(ns->hub, ns->name, m, key, on_reply, ret);
}

int rstore_call_new_hub(Hub *h, const char *ns, sd_bus_message *m, const char *key, rstore_reply_fn on_reply, RStoreCall **ret) {
        RStore *s = backend_part(h, &rstore_part_ops);
        RStoreCall *c;
        int r;

        if (!s)
                return -EHOSTDOWN;
        c = calloc(1, sizeof(RStoreCall));
        if (!c)
                return -ENOMEM;
        c->store = s;
        c->on_reply = on_reply;
        c->ns = strdup(ns);
        c->key = key ? strdup(key) : NULL;
        if (!c->ns || (key && !c->key)) {
                call_free(c);
                return -ENOMEM;
        }
        c->m = sd_bus_message_ref(m);
        /* no peer: a caller that leaves is not tracked (its reply finds nobody), and no per-peer
         * bound (--max-redis-pending bounds these calls) */
        r = deferred_new(h, m, NULL, 0, on_deferred_end, c, &c->deferred);
        if (r < 0) {
                call_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

void rstore_call_abandon(RStoreCall *c) {
        call_free(c);
}

sd_bus_message *rstore_call_message(RStoreCall *c) {
        return c->m;
}

Hub *rstore_call_hub(RStoreCall *c) {
        return c->store->hub;
}

const char *rstore_call_namespace(RStoreCall *c) {
        return c->ns;
}

const char *rstore_call_key(RStoreCall *c) {
        return c->key ? c->key : "";
}

void rstore_call_set_data(RStoreCall *c, void *data, void (*free_fn)(void *)) {
        if (c->free_data)
                c->free_data(c->data);
        c->data = data;
        c->free_data = free_fn;
}

void *rstore_call_data(RStoreCall *c) {
        return c->data;
}

int rstore_call_set_written(RStoreCall *c, const char *const *keys, size_t n) {
        char **w = calloc(n + 1, sizeof(char *));

        if (!w)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(w[i] = strdup(keys[i]))) {
                        for (size_t j = 0; j < i; j++)
                                free(w[j]);
                        free(w);
                        return -ENOMEM;
                }
        for (char **k = c->written; k && *k; k++)
                free(*k);
        free(c->written);
        c->written = w;
        return 0;
}

void rstore_call_set_flush(RStoreCall *c) {
        c->flush = true;
}

/* KEY of namespace NS changed (KEY NULL: every key): the counters of this hub's trackers there
 * grow and they hear Invalidate.  Nothing when no tracker is there (no local namespace). */
void rstore_track_changed(Hub *h, const char *ns_name, const char *key, bool by_write) {
        Namespace *ns = NULL;

        if (namespace_get(h, ns_name, false, &ns) < 0 || !ns->tracking || track_space_n_trackers(ns->tracking) == 0)
                return;
        if (key)
                track_key_changed(ns->tracking, key, by_write);
        else
                track_space_flush(ns->tracking);
}

void rstore_call_want_errors(RStoreCall *c, bool want) {
        c->want_errors = want;
}

unsigned rstore_call_round(RStoreCall *c) {
        return c->round;
}

/* Answers C with ERROR (or the errno's name) and frees it. */
static void call_fail(RStoreCall *c, int r, const sd_bus_error *error) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        if (c->answered)
                ;
        else if (error && sd_bus_error_is_set(error))
                (void) bus_reply_error(c->m, error);
        else {
                if (r == -EBADMSG) /* a reply of a shape we did not ask for */
                        (void) bus_error_errno(&e, -EHOSTDOWN, "Redis gave a reply the hub cannot read.");
                else if (r == -EHOSTDOWN)
                        (void) bus_error_errno(&e, r, "Redis cannot be reached (--redis).");
                else
                        (void) sd_bus_error_set_errno(&e, r);
                (void) bus_reply_error(c->m, &e);
        }
        call_free(c);
}

int rstore_redis_error(const char *text, size_t len, const char *ns, const char *key, sd_bus_error *ret_error) {
        _cleanup_(freep) char *t = strndup(text, MIN(len, (size_t) 512));

        if (!t)
                return -ENOMEM;
        /* our scripts: "CHERR Name message" */
        if (startswith(t, "CHERR ")) {
                const char *name = t + 6, *msg = strchr(name, ' ');
                size_t n = msg ? (size_t) (msg - name) : strlen(name);
                char full[128];
                bool ok = n > 0 && n < 64;

                for (size_t i = 0; ok && i < n; i++)
                        ok = (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= 'a' && name[i] <= 'z');
                if (ok) {
                        snprintf(full, sizeof(full), "org.clusterhub.Error.%.*s", (int) n, name);
                        (void) sd_bus_error_setf(ret_error, full, "%s", msg ? msg + 1 : "");
                        return -sd_bus_error_get_errno(ret_error) ?: -EIO;
                }
        }
        if (startswith(t, "WRONGTYPE"))
                return bus_error_errno(ret_error, -EMEDIUMTYPE, "Key '%s' holds a value of another type.", key);
        if (strstr(t, "overflow"))
                return bus_error_errno(ret_error, -ERANGE, "The result for key '%s' does not fit its type.", key);
        if (strstr(t, "not an integer") || strstr(t, "not a valid float"))
                return bus_error_errno(ret_error, -EDOM, "Key '%s' does not hold a number.", key);
        if (strstr(t, "no such key"))
                return bus_error_errno(ret_error, -ENOKEY, "Key '%s' does not exist in namespace '%s'.", key, ns);
        log_debug("Redis refused a Store1 call on '%s' in %s: %s", key, ns, t);
        return bus_error_errno(ret_error, -EHOSTDOWN, "Redis refused the call: %s", t);
}

static void on_call_reply(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        RStoreCall *c = userdata;
        int r;

        if (c->answered) { /* the hub is exiting and said so */
                call_free(c);
                return;
        }
        if (!reply) {
                c->store->calls_failed++;
                r = bus_error_errno(&e, -EHOSTDOWN, error == -ETIMEDOUT ? "Redis did not answer in time (--redis-timeout-ms)."
                                                                         : "The connection to Redis was lost.");
                call_fail(c, r, &e);
                return;
        }
        if (reply->type == REDIS_REPLY_ERROR && !c->want_errors) {
                r = rstore_redis_error(reply->str, reply->len, c->ns, rstore_call_key(c), &e);
                call_fail(c, r, &e);
                return;
        }
        /* Redis has run it: the writes of this hub are tracked before their reply (the keyspace
         * notification bumps again later, harmlessly) */
        if (reply->type != REDIS_REPLY_ERROR) {
                Hub *h = c->store->hub;
                if (c->flush)
                        rstore_track_changed(h, c->ns, NULL, true);
                for (char **k = c->written; k && *k; k++)
                        rstore_track_changed(h, c->ns, *k, true);
        }
        c->round++;
        c->in_reply = true;
        r = c->on_reply(c, reply, &e);
        c->in_reply = false;
        if (r < 0)
                call_fail(c, r, &e);
        else if (r > 0)
                call_free(c);
        /* 0: the call went on with another command */
}

int rstore_call_send(RStoreCall *c, int argc, const char **argv, const size_t *argvlen) {
        int r;

        r = redis_link_command(c->store->link, argc, argv, argvlen, on_call_reply, c);
        if (r == -ENOTCONN || r == -ENOBUFS)
                r = -EHOSTDOWN;
        if (r < 0) {
                c->store->calls_failed++;
                if (!c->in_reply)
                        call_fail(c, r, NULL);
                return r;
        }
        c->store->calls++;
        return 0;
}

int rstore_call_eval(RStoreCall *c, const char *script, int nkeys, int argc, const char **argv, const size_t *argvlen) {
        _cleanup_(freep) const char **a = NULL;
        _cleanup_(freep) size_t *l = NULL;
        char n[16];

        a = calloc((size_t) argc + 3, sizeof(char *));
        l = calloc((size_t) argc + 3, sizeof(size_t));
        if (!a || !l) {
                if (!c->in_reply)
                        call_fail(c, -ENOMEM, NULL);
                return -ENOMEM;
        }
        snprintf(n, sizeof(n), "%d", nkeys);
        a[0] = "EVAL";
        l[0] = 4;
        a[1] = script;
        l[1] = strlen(script);
        a[2] = n;
        l[2] = strlen(n);
        for (int i = 0; i < argc; i++) {
                a[3 + i] = argv[i];
                l[3 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
        }
        return rstore_call_send(c, argc + 3, a, l);
}

/* ---- the keys of a namespace -------------------------------------------------------------------- */

/* The keys of a namespace, for Keys, DBSize, Flush and RandomKey: one script that walks SCAN
 * (atomic: Redis runs nothing else meanwhile; its time grows with the whole database). */
const char rstore_keys_script[] =
        "local c, seen, out, max = '0', {}, {}, tonumber(ARGV[3])\n"
        "repeat\n"
        "  local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000)\n"
        "  c = r[1]\n"
        "  for _, k in ipairs(r[2]) do\n"
        "    if not seen[k] then\n"
        "      seen[k] = true\n"
        "      out[#out + 1] = k\n"
        "      if max > 0 and #out > max then\n"
        "        return redis.error_reply('CHERR LimitExceeded Keys would return more than --max-reply-items=' .. ARGV[3] .. ' items.')\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "until c == '0'\n"
        "if ARGV[2] == 'keys' then return out end\n"
        "if ARGV[2] == 'count' then return #out end\n"
        "if ARGV[2] == 'random' then if #out == 0 then return false end return out[math.random(#out)] end\n"
        "for _, k in ipairs(out) do redis.call('DEL', k) end\n"
        "return #out\n";

/* ---- KeyChanged from keyspace notifications ------------------------------------------------ */

typedef struct KeyChange {
        const char *path, *key, *event;
} KeyChange;

static int emit_key_changed_on(sd_bus *bus, void *userdata) {
        const KeyChange *k = userdata;
        return ch_store1_emit_key_changed(bus, NULL, k->path, k->key, k->event);
}

/* h-rlist: this hub's BLPop/BRPop waiters hear of the lists that may have got elements. */
static void tell_pop_waiters(RStore *s, const char *ns, const char *key, const char *event) {
        bus_store_redis_list_key_event(s->hub, ns, key, event);
}

static int on_message(void *part, const char *channel, const char *data, size_t size) {
        RStore *s = part;
        _cleanup_(freep) char *ns = NULL, *key = NULL, *event = NULL, *path = NULL;
        const char *rest, *ns_view, *key_view;
        size_t ns_len;
        int r;

        rest = startswith(channel, s->channel_prefix);
        if (!rest)
                return 0;
        if (rstore_key_parse(rest, strlen(rest), &ns_view, &ns_len, &key_view) < 0)
                return 0; /* clusterhub:{NS}:lock:... and others: not ours */
        ns = strndup(ns_view, ns_len);
        key = strdup(key_view);
        event = strndup(data, size);
        if (!ns || !key || !event) {
                log_error("Out of memory.");
                return 1;
        }
        if (!namespace_name_is_valid(s->hub, ns) || !*key || strlen(key) > s->hub->limits.max_key_bytes ||
            !utf8_valid(key, strlen(key)) || !rstore_event_name_is_valid(data, size) || strlen(event) != size) {
                s->notifications_dropped++;
                return 1;
        }
        if (asprintf(&path, "%s/%s", HUB_NS_PREFIX, ns) < 0) {
                log_error("Out of memory.");
                return 1;
        }
        /* the counter and Invalidate before the signal, as the local store does */
        rstore_track_changed(s->hub, ns, key, !streq(event, "expired") && !streq(event, "evicted"));
        KeyChange k = { path, key, event };
        SignalProbe probe = { path, CH_STORE1_INTERFACE, "KeyChanged", "ss", { key, event } };
        r = hub_broadcast(s->hub, &probe, emit_key_changed_on, &k);
        if (r < 0)
                log_warning_errno(r, "Failed to emit KeyChanged(%s, %s) in %s: %m", key, event, ns);
        s->notifications++;
        s->hub->stats.keyspace_events++;
        tell_pop_waiters(s, ns, key, event);
        return 1;
}

static void on_config_set(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        RStore *s = userdata;

        if (reply && reply->type == REDIS_REPLY_ERROR && !s->config_warned) {
                s->config_warned = true;
                log_warning("Redis refused CONFIG notify-keyspace-events (%s): KeyChanged needs notify-keyspace-events to hold "
                            "the flags '%s' (set it in redis.conf); until it does, no KeyChanged fires for the store.",
                            reply->str, RSTORE_NOTIFY_FLAGS);
        }
}

static void on_config_get(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        RStore *s = userdata;
        _cleanup_(freep) char *flags = NULL;
        const char *current = "";
        int r;

        if (!reply)
                return; /* the link went down: the next link-up asks again */
        if (reply->type == REDIS_REPLY_ERROR) {
                on_config_set(l, reply, 0, s);
                return;
        }
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_STRING)
                current = reply->element[1]->str;
        r = rstore_notify_flags_merge(current, &flags);
        if (r <= 0)
                return;
        const char *argv[] = { "CONFIG", "SET", "notify-keyspace-events", flags };
        const size_t len[] = { 6, 3, strlen(argv[2]), strlen(flags) };
        (void) redis_link_command(s->link, 4, argv, len, on_config_set, s);
}

/* A Redis that evicts keys under memory pressure would drop store keys, lock records and the
 * worker list without a trace: say so, once per policy (docs/redis.md "Settings"). */
static void on_policy_get(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        RStore *s = userdata;
        const char *policy;

        if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[1]->type != REDIS_REPLY_STRING)
                return; /* refused (ACL, managed Redis) or gone: nothing to tell */
        policy = reply->element[1]->str;
        if (streq(policy, "noeviction") || (s->policy_warned && streq(s->policy_warned, policy)))
                return;
        free(s->policy_warned);
        s->policy_warned = strdup(policy);
        log_warning("Redis at %s has maxmemory-policy %s: when it reaches maxmemory it deletes keys, and the store's keys, "
                    "the locks and the worker list of every hub can vanish. Set maxmemory-policy noeviction (writes then "
                    "fail with BackendUnavailable instead).", redis_link_where(l), policy);
}

/* The store needs Redis 6.2 (GETDEL, LMOVE, SET ... GET); say it at once rather than at each
 * call that an older one refuses. */
static void on_info_server(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        RStore *s = userdata;
        const char *v;
        unsigned major = 0, minor = 0;

        if (!reply || reply->type != REDIS_REPLY_STRING || s->version_warned)
                return;
        v = strstr(reply->str, "redis_version:");
        if (!v || sscanf(v, "redis_version:%u.%u", &major, &minor) != 2)
                return;
        if (major > 6 || (major == 6 && minor >= 2))
                return;
        s->version_warned = true;
        log_warning("Redis at %s is version %u.%u: the store needs 6.2 or later (GETDEL, LMOVE); calls that use what it "
                    "lacks answer BackendUnavailable.", redis_link_where(l), major, minor);
}

static void link_state(void *part, bool up) {
        RStore *s = part;

        if (!up)
                return;
        const char *argv[] = { "CONFIG", "GET", "notify-keyspace-events" };
        const size_t len[] = { 6, 3, strlen(argv[2]) };
        (void) redis_link_command(s->link, 3, argv, len, on_config_get, s);
        const char *policy_argv[] = { "CONFIG", "GET", "maxmemory-policy" };
        const size_t policy_len[] = { 6, 3, strlen(policy_argv[2]) };
        (void) redis_link_command(s->link, 3, policy_argv, policy_len, on_policy_get, s);
        const char *info_argv[] = { "INFO", "server" };
        const size_t info_len[] = { 4, 6 };
        (void) redis_link_command(s->link, 2, info_argv, info_len, on_info_server, s);
}

/* ---- the part ------------------------------------------------------------------------------ */

static void part_free(void *part) {
        RStore *s = part;

        if (!s)
                return;
        free(s->pattern);
        free(s->channel_prefix);
        free(s->policy_warned);
        free(s);
}

static int part_new(Hub *h, RedisLink *link, uint64_t instance, void **ret) {
        _cleanup_(redis_url_done) RedisUrl url = {};
        RStore *s;
        int r;

        r = redis_url_parse(h->redis_url, &url);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(RStore));
        if (!s)
                return -ENOMEM;
        s->hub = h;
        s->link = link;
        s->db = url.db;
        if (asprintf(&s->channel_prefix, "__keyspace@%u__:", url.db) < 0 ||
            asprintf(&s->pattern, "__keyspace@%u__:clusterhub:{*", url.db) < 0) {
                part_free(s);
                return -ENOMEM;
        }
        r = redis_link_psubscribe(link, s->pattern);
        if (r < 0) {
                part_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int append_stats(void *part, sd_bus_message *reply) {
        RStore *s = part;
        int r;

        if ((r = bus_append_stat(reply, "backend_store_calls", 't', &s->calls)) < 0 ||
            (r = bus_append_stat(reply, "backend_store_calls_unavailable", 't', &s->calls_failed)) < 0 ||
            (r = bus_append_stat(reply, "backend_store_notifications", 't', &s->notifications)) < 0)
                return r;
        return bus_append_stat(reply, "backend_store_notifications_dropped", 't', &s->notifications_dropped);
}

const BackendPartOps rstore_part_ops = {
        .name = "the store",
        .patterns = NULL, /* its pattern names the database: subscribed in part_new() */
        .new = part_new,
        .free = part_free,
        .link_state = link_state,
        .on_message = on_message,
        .append_stats = append_stats,
};
