/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-workers.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "peer.h"
#include "registry.h"
#include "utf8.h"
#include "workers.h"

#define NODES_KEY "clusterhub:nodes"
#define NODE_KEY_PREFIX "clusterhub:node:"
#define WORKERS_KEY_PREFIX "clusterhub:workers:"
#define SERVED_KEY_PREFIX "clusterhub:served:"
#define NODE_NAME_MAX 64
#define UNIT_MAX 256

/* ARGV: node, heartbeat value, lease in ms, what the node serves (registry_set_served()), then
 * id, value pairs of the node's workers.  Returns node, {id, value, ...}, served (or false) for
 * every other live node. */
static const char sync_script[] =
        "local node = ARGV[1]\n"
        "redis.call('SET', '" NODE_KEY_PREFIX "' .. node, ARGV[2], 'PX', ARGV[3])\n"
        "local mine = '" WORKERS_KEY_PREFIX "' .. node\n"
        "redis.call('DEL', mine)\n"
        "for i = 5, #ARGV - 1, 2 do redis.call('HSET', mine, ARGV[i], ARGV[i + 1]) end\n"
        "redis.call('SET', '" SERVED_KEY_PREFIX "' .. node, ARGV[4])\n"
        "redis.call('SADD', '" NODES_KEY "', node)\n"
        "local out = {}\n"
        "for _, n in ipairs(redis.call('SMEMBERS', '" NODES_KEY "')) do\n"
        "  if n ~= node then\n"
        "    if redis.call('EXISTS', '" NODE_KEY_PREFIX "' .. n) == 1 then\n"
        "      out[#out + 1] = n\n"
        "      out[#out + 1] = redis.call('HGETALL', '" WORKERS_KEY_PREFIX "' .. n)\n"
        "      out[#out + 1] = redis.call('GET', '" SERVED_KEY_PREFIX "' .. n)\n"
        "    else\n"
        "      redis.call('SREM', '" NODES_KEY "', n)\n"
        "      redis.call('DEL', '" WORKERS_KEY_PREFIX "' .. n)\n"
        "      redis.call('DEL', '" SERVED_KEY_PREFIX "' .. n)\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return out\n";

typedef struct RemoteWorker {
        char *qid;              /* ID@NODE, the key */
        char *node;
        char *unique_name;
        char *unit;
        uint32_t pid;
        uint64_t since_ms;
        uint64_t generation;    /* of the last sync that had it */
} RemoteWorker;

struct Registry {
        Hub *hub;
        RedisLink *link;
        Hashmap *remote;        /* qid -> RemoteWorker */
        sd_event_source *tick;
        uint64_t generation;
        bool syncing;           /* a sync script is waiting for its answer */
        bool announce;          /* publish "S" once the sync in flight is done */
        bool warned_full;
        uint64_t up_usec;       /* CLOCK_MONOTONIC: when the link last came up */
        char *served;           /* what this node serves, written with each sync */
        bool served_dirty;      /* changed since the last sync was sent */
        registry_nodes_fn on_nodes;
        void *on_nodes_data;
};

static bool node_name_ok(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > NODE_NAME_MAX)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
                      *s == '_' || *s == '-'))
                        return false;
        return true;
}

static RemoteWorker *remote_worker_free(RemoteWorker *w) {
        if (!w)
                return NULL;
        free(w->qid);
        free(w->node);
        free(w->unique_name);
        free(w->unit);
        free(w);
        return NULL;
}

/* "UNIQUE\tPID\tSINCE\tUNIT" of a local worker */
static char *worker_value(const char *unique_name, uint32_t pid, const char *unit, uint64_t since_ms) {
        char *v = NULL;

        if (asprintf(&v, "%s\t%" PRIu32 "\t%" PRIu64 "\t%s", unique_name ? unique_name : "", pid, since_ms,
                     unit ? unit : "") < 0)
                return NULL;
        return v;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!*s || *s < '0' || *s > '9')
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return false;
        *ret = v;
        return true;
}

/* Parses a remote worker (NODE, ID, VALUE as written by worker_value()); everything read from
 * Redis is checked, since any client of that Redis may write there. */
static int remote_worker_parse(const char *node, const char *id, const char *value, size_t size, RemoteWorker **ret) {
        _cleanup_(freep) char *copy = NULL;
        char *rest, *unique, *pid, *since, *unit;
        uint64_t pid_v, since_v;
        RemoteWorker *w;

        if (!node_name_ok(node) || !worker_id_is_valid(id) || size > 1024 || memchr(value, 0, size) ||
            !utf8_valid(value, size))
                return -EBADMSG;
        copy = strndup(value, size);
        if (!copy)
                return -ENOMEM;
        rest = copy;
        unique = strsep(&rest, "\t");
        pid = strsep(&rest, "\t");
        since = strsep(&rest, "\t");
        unit = rest;
        if (!pid || !since || !unit || strchr(unit, '\t') || strlen(unit) > UNIT_MAX || strlen(unique) > 255 ||
            !parse_u64(pid, UINT32_MAX, &pid_v) || !parse_u64(since, UINT64_MAX, &since_v))
                return -EBADMSG;
        w = calloc(1, sizeof(RemoteWorker));
        if (!w)
                return -ENOMEM;
        w->pid = (uint32_t) pid_v;
        w->since_ms = since_v;
        if (asprintf(&w->qid, "%s@%s", id, node) < 0)
                w->qid = NULL;
        w->node = strdup(node);
        w->unique_name = strdup(unique);
        w->unit = strdup(unit);
        if (!w->qid || !w->node || !w->unique_name || !w->unit) {
                remote_worker_free(w);
                return -ENOMEM;
        }
        *ret = w;
        return 0;
}

/* Puts W into the view (taking it), as seen by sync GENERATION: a new one is announced; a
 * known one is updated. */
static void view_put(Registry *r, RemoteWorker *w, uint64_t generation) {
        RemoteWorker *old = hashmap_get(r->remote, w->qid);

        w->generation = generation;
        if (old) {
                hashmap_remove(r->remote, old->qid);
                remote_worker_free(old);
        } else if (hashmap_size(r->remote) >= r->hub->limits.max_remote_workers) {
                if (!r->warned_full)
                        log_warning("More than --max-remote-workers=%" PRIu64 " workers on other hosts: ignoring %s "
                                    "and the next ones.", r->hub->limits.max_remote_workers, w->qid);
                r->warned_full = true;
                remote_worker_free(w);
                return;
        }
        if (hashmap_put(r->remote, w->qid, w) < 0) {
                log_error("Out of memory.");
                remote_worker_free(w);
                return;
        }
        if (!old)
                bus_workers_remote(r->hub, true, w->qid, w->unique_name);
}

static void view_drop(Registry *r, RemoteWorker *w, const char *reason) {
        hashmap_remove(r->remote, w->qid);
        bus_workers_remote(r->hub, false, w->qid, reason);
        remote_worker_free(w);
}

/* --- the sync ------------------------------------------------------------------------------ */

static bool str_reply(const redisReply *x) {
        return x && (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS);
}

/* Tells the hook the live nodes of the sync's answer REPLY and what each serves. */
static void report_nodes(Registry *r, const redisReply *reply, bool grace) {
        _cleanup_(freep) RegistryNode *nodes = NULL;
        size_t n = 0;

        if (!r->on_nodes)
                return;
        nodes = calloc(reply->elements / 3 + 1, sizeof(RegistryNode));
        if (!nodes) {
                log_error("Out of memory.");
                return;
        }
        for (size_t k = 0; k + 2 < reply->elements; k += 3) {
                const redisReply *node = reply->element[k], *served = reply->element[k + 2];

                if (!str_reply(node) || strlen(node->str) != node->len || !node_name_ok(node->str))
                        continue;
                nodes[n++] = (RegistryNode) {
                        .node = node->str,
                        .served = str_reply(served) ? served->str : NULL,
                        .served_size = str_reply(served) ? served->len : 0,
                };
        }
        r->on_nodes(r->on_nodes_data, nodes, n, grace);
}

static void apply_sync(Registry *r, const redisReply *reply) {
        _cleanup_(freep) RemoteWorker **gone = NULL;
        size_t n_gone = 0, i = 0;
        RemoteWorker *w;

        r->generation++;
        for (size_t k = 0; k + 2 < reply->elements; k += 3) {
                const redisReply *node = reply->element[k], *hash = reply->element[k + 1];

                if (!str_reply(node) || !hash || hash->type != REDIS_REPLY_ARRAY || strlen(node->str) != node->len)
                        continue;
                for (size_t j = 0; j + 1 < hash->elements; j += 2) {
                        const redisReply *id = hash->element[j], *value = hash->element[j + 1];

                        if (!str_reply(id) || !str_reply(value) || strlen(id->str) != id->len)
                                continue;
                        if (remote_worker_parse(node->str, id->str, value->str, value->len, &w) < 0) {
                                log_debug("Ignoring a malformed worker '%s' of node '%s' in Redis.", id->str, node->str);
                                continue;
                        }
                        view_put(r, w, r->generation);
                }
        }
        /* whoever the answer did not have is gone */
        gone = calloc(hashmap_size(r->remote) + 1, sizeof(RemoteWorker *));
        if (!gone) {
                log_error("Out of memory.");
                return;
        }
        while (hashmap_iterate(r->remote, &i, (void **) &w, NULL))
                if (w->generation != r->generation)
                        gone[n_gone++] = w;
        /* Within a lease of our link coming up, a node that Redis does not know may be a live
         * hub that has not reconnected yet to a Redis that restarted empty: keep its workers
         * until a lease has passed (a live hub reconnects within the 5 s backoff and renews). */
        uint64_t now = 0;
        bool grace = sd_event_now(r->hub->event, CLOCK_MONOTONIC, &now) >= 0 &&
                     now < r->up_usec + r->hub->limits.node_lease_ms * 1000;
        for (size_t k = 0; k < n_gone; k++) {
                bool node_alive = false;

                for (size_t j = 0; j + 2 < reply->elements; j += 3)
                        if (str_reply(reply->element[j]) && streq(reply->element[j]->str, gone[k]->node))
                                node_alive = true;
                if (!node_alive && grace)
                        continue;
                view_drop(r, gone[k], node_alive ? "unregistered" : "its hub is gone (heartbeat expired)");
        }
        report_nodes(r, reply, grace);
}

static void on_announce_reply(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
                log_warning("Redis refused a registry command: %s", reply->str);
}

static void publish(Registry *r, const char *msg) {
        const char *argv[] = { "PUBLISH", REGISTRY_CHANNEL, msg };
        const size_t len[] = { strlen("PUBLISH"), strlen(REGISTRY_CHANNEL), strlen(msg) };

        (void) redis_link_command(r->link, 3, argv, len, on_announce_reply, r);
}

static int sync_now(Registry *r, bool announce);

static void on_sync_reply(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        Registry *r = userdata;
        bool announce = r->announce;

        r->syncing = false;
        r->announce = false;
        if (!reply) {
                log_debug("The registry sync got no answer: %s", strerror(-error));
                return;
        }
        if (reply->type != REDIS_REPLY_ARRAY) {
                log_warning("Redis refused the registry sync: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : "not an array");
                return;
        }
        apply_sync(r, reply);
        if (r->served_dirty) /* what we serve changed while this sync was out */
                (void) sync_now(r, true);
        if (announce) {
                _cleanup_(freep) char *msg = NULL;

                if (asprintf(&msg, "S\t%s", r->hub->node_name) >= 0)
                        publish(r, msg);
        }
}

/* Sends the sync script: our heartbeat and workers in, the others' out. */
static int sync_now(Registry *r, bool announce) {
        Hub *h = r->hub;
        size_t n = 7 + 2 * workers_count(h), i = 0; /* EVAL, the script, 0 keys, node, beat, lease, served */
        _cleanup_(freep) const char **argv = calloc(n + 1, sizeof(char *));
        _cleanup_(freep) size_t *len = calloc(n + 1, sizeof(size_t));
        _cleanup_(freep) char **values = calloc(workers_count(h) + 1, sizeof(char *));
        char lease[32], beat[32];
        size_t n_values = 0;
        Peer *p;
        int ret;

        if (r->syncing) {
                r->announce = r->announce || announce;
                return 0;
        }
        if (!redis_link_is_up(r->link))
                return -ENOTCONN;
        if (!argv || !len || !values)
                return -ENOMEM;
        snprintf(lease, sizeof(lease), "%" PRIu64, h->limits.node_lease_ms);
        snprintf(beat, sizeof(beat), "%d", (int) getpid());
        argv[i++] = "EVAL";
        argv[i++] = sync_script;
        argv[i++] = "0";
        argv[i++] = h->node_name;
        argv[i++] = beat;
        argv[i++] = lease;
        argv[i++] = r->served ? r->served : "";
        LIST_FOREACH(workers, p, h->worker_list) {
                char *v = worker_value(p->unique_name, p->pid, p->unit, p->since_ms);
                if (!v) {
                        ret = -ENOMEM;
                        goto finish;
                }
                values[n_values++] = v;
                argv[i++] = p->id;
                argv[i++] = v;
        }
        for (size_t k = 0; k < i; k++)
                len[k] = strlen(argv[k]);
        ret = redis_link_command(r->link, (int) i, argv, len, on_sync_reply, r);
        if (ret >= 0) {
                r->syncing = true;
                r->announce = announce;
                r->served_dirty = false;
        }
finish:
        for (size_t k = 0; k < n_values; k++)
                free(values[k]);
        return ret;
}

/* The heartbeat's period: a third of the lease, so that two renewals may be lost before it
 * expires; at least 1 ms. */
static uint64_t tick_usec(const Registry *r) {
        uint64_t usec = r->hub->limits.node_lease_ms * 1000 / 3;
        return usec < 1000 ? 1000 : usec;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Registry *r = userdata;

        (void) sync_now(r, false);
        (void) sd_event_source_set_time_relative(s, tick_usec(r));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

void registry_link_up(Registry *r) {
        int ret;

        (void) sd_event_now(r->hub->event, CLOCK_MONOTONIC, &r->up_usec);
        ret = sync_now(r, true);

        if (ret < 0)
                log_warning_errno(ret, "Cannot send the registry to Redis: %m");
}

/* --- messages ------------------------------------------------------------------------------ */

void registry_on_message(Registry *r, const char *data, size_t size) {
        _cleanup_(freep) char *copy = NULL;
        char *rest, *kind, *node, *id;
        RemoteWorker *w;

        if (size > 2048 || memchr(data, 0, size) || !utf8_valid(data, size))
                return;
        copy = strndup(data, size);
        if (!copy)
                return;
        rest = copy;
        kind = strsep(&rest, "\t");
        node = strsep(&rest, "\t");
        if (!node || !node_name_ok(node) || streq(node, r->hub->node_name))
                return; /* ours, or not ours to read */
        if (streq(kind, "S")) {
                (void) sync_now(r, false);
                return;
        }
        id = strsep(&rest, "\t");
        if (!id || !rest || !worker_id_is_valid(id))
                return;
        if (streq(kind, "J")) {
                /* a join announced while a sync is on its way may be newer than the sync's
                 * answer: count it as seen by that answer, which then cannot drop it */
                if (remote_worker_parse(node, id, rest, strlen(rest), &w) >= 0)
                        view_put(r, w, r->generation + (r->syncing ? 1 : 0));
        } else if (streq(kind, "L")) {
                _cleanup_(freep) char *qid = NULL;

                if (strlen(rest) > 255 || asprintf(&qid, "%s@%s", id, node) < 0)
                        return;
                w = hashmap_get(r->remote, qid);
                if (w)
                        view_drop(r, w, rest);
        }
}

/* --- local changes ------------------------------------------------------------------------- */

static void send_and_publish(Registry *r, int argc, const char **argv, const char *msg) {
        size_t len[4];

        if (!redis_link_is_up(r->link))
                return; /* the sync when the link is back writes everything */
        for (int k = 0; k < argc; k++)
                len[k] = strlen(argv[k]);
        if (redis_link_command(r->link, argc, argv, len, on_announce_reply, r) >= 0)
                publish(r, msg);
}

void registry_worker_joined(Registry *r, const char *id, const char *unique_name, uint32_t pid, const char *unit,
                            uint64_t since_ms) {
        _cleanup_(freep) char *value = worker_value(unique_name, pid, unit, since_ms), *key = NULL, *msg = NULL;

        if (!value || asprintf(&key, WORKERS_KEY_PREFIX "%s", r->hub->node_name) < 0 ||
            asprintf(&msg, "J\t%s\t%s\t%s", r->hub->node_name, id, value) < 0) {
                log_error("Out of memory.");
                return;
        }
        send_and_publish(r, 4, (const char *[]) { "HSET", key, id, value }, msg);
}

void registry_worker_left(Registry *r, const char *id, const char *reason) {
        _cleanup_(freep) char *key = NULL, *msg = NULL;

        if (asprintf(&key, WORKERS_KEY_PREFIX "%s", r->hub->node_name) < 0 ||
            asprintf(&msg, "L\t%s\t%s\t%s", r->hub->node_name, id, reason) < 0) {
                log_error("Out of memory.");
                return;
        }
        send_and_publish(r, 3, (const char *[]) { "HDEL", key, id }, msg);
}

/* --- listing and lifetime ------------------------------------------------------------------ */

int registry_append_workers(Registry *r, sd_bus_message *reply) {
        RemoteWorker *w;
        size_t i = 0;
        int ret;

        while (hashmap_iterate(r->remote, &i, (void **) &w, NULL)) {
                ret = sd_bus_message_append(reply, "(ssua{sv})", w->qid, w->unique_name, w->pid, 3, "unit", "s", w->unit,
                                            "since_ms", "t", w->since_ms, "node", "s", w->node);
                if (ret < 0)
                        return ret;
        }
        return 0;
}

int registry_append_ids(Registry *r, char **ids, size_t max, size_t *n) {
        RemoteWorker *w;
        size_t i = 0;

        while (*n < max && hashmap_iterate(r->remote, &i, (void **) &w, NULL))
                ids[(*n)++] = w->qid;
        return 0;
}

bool registry_has_worker(const Registry *r, const char *qid) {
        return r && hashmap_get(r->remote, qid);
}

void registry_set_nodes_hook(Registry *r, registry_nodes_fn fn, void *userdata) {
        r->on_nodes = fn;
        r->on_nodes_data = userdata;
}

int registry_set_served(Registry *r, const char *served) {
        char *copy;

        if (r->served && streq(r->served, served))
                return 0;
        copy = strdup(served);
        if (!copy)
                return -ENOMEM;
        free(r->served);
        r->served = copy;
        r->served_dirty = true;
        if (!redis_link_is_up(r->link))
                return 0; /* the sync when the link is back writes it */
        return sync_now(r, true);
}

size_t registry_count(const Registry *r) {
        return r ? hashmap_size(r->remote) : 0;
}

int registry_new(Hub *h, RedisLink *link, Registry **ret) {
        Registry *r;
        int ret_;

        r = calloc(1, sizeof(Registry));
        if (!r)
                return -ENOMEM;
        r->hub = h;
        r->link = link;
        r->remote = hashmap_new();
        if (!r->remote) {
                free(r);
                return -ENOMEM;
        }
        ret_ = sd_event_add_time_relative(h->event, &r->tick, CLOCK_MONOTONIC, tick_usec(r), 1000 /* 1 ms: sd-event would allow 250 */,
                                          on_tick, r);
        if (ret_ < 0) {
                registry_free(r);
                return ret_;
        }
        (void) sd_event_source_set_description(r->tick, "registry-heartbeat");
        *ret = r;
        return 0;
}

Registry *registry_free(Registry *r) {
        RemoteWorker *w;
        size_t i = 0;

        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->tick);
        while (hashmap_iterate(r->remote, &i, (void **) &w, NULL)) {
                hashmap_remove(r->remote, w->qid);
                remote_worker_free(w);
        }
        hashmap_free(r->remote);
        free(r->served);
        free(r);
        return NULL;
}
