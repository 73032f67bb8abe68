/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-events.h"
#include "bus-requests.h"
#include "bus-util.h"
#include "ch-errors.h"
#include "deferred.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "peer.h"
#include "redis-link.h"
#include "registry.h"
#include "remote-request.h"
#include "requests.h"
#include "rrequests.h"
#include "utf8.h"
#include "variant-codec.h"

/* Round-robin cursors kept, at most (they restart when there are more). */
#define RREQ_MAX_CURSORS 4096u

struct RemoteNode {
        char *name;
        uint64_t instance;
        Hashmap *served;                /* "NS\tMETHOD" -> its number of servers there */
        size_t *budget;                 /* while parsing: the lines all nodes may still have */
};

/* A request of this hub out to another (a lone Request with D, or a hub's share of G). */
typedef struct Outgoing {
        RRequests *rr;
        uint64_t id;
        char key[17];
        char *node;
        uint64_t instance;
        char *method;
        Deferred *d;
        Gather *g;
} Outgoing;

/* A request of another hub that this hub runs. */
typedef struct Incoming {
        RRequests *rr;
        char key[32];                   /* the synthetic call, "%p" */
        sd_bus_message *call;
        uint64_t id, reply_to;
        char *node;
} Incoming;

struct RRequests {
        Hub *hub;
        RedisLink *link;
        uint64_t instance;
        char channel[64];
        bool hooked;                    /* the registry's hook is set */
        Hashmap *nodes;                 /* name -> RemoteNode */
        Hashmap *cursors;               /* "NS\tMETHOD" -> round-robin counter */
        Hashmap *outgoing;              /* key -> Outgoing */
        Hashmap *incoming;              /* key -> Incoming */
        uint64_t next_id;
        sd_event_source *served_defer;
        uint64_t sent, received, answered, dropped;
        bool warned_full;               /* the other hubs' lists were over --max-remote-workers */
};

static RRequests *part_of(Hub *h) {
        return backend_part(h, &rrequests_ops);
}

/* --- the other hubs and what they serve ------------------------------------------------------ */

static RemoteNode *remote_node_free(RemoteNode *n) {
        void *v;
        size_t i = 0;
        const char *k;

        if (!n)
                return NULL;
        while (hashmap_iterate(n->served, &i, &v, &k))
                free((char *) k);
        hashmap_free(n->served);
        free(n->name);
        free(n);
        return NULL;
}

static int served_add(const char *ns, const char *method, uint64_t count, void *userdata) {
        RemoteNode *n = userdata;
        char *key = NULL;
        int r;

        if (*n->budget == 0)
                return -ENOSPC;
        if (asprintf(&key, "%s\t%s", ns, method) < 0)
                return -ENOMEM;
        if (hashmap_get(n->served, key)) {
                free(key);
                return -EBADMSG;
        }
        r = hashmap_put(n->served, key, (void *) (uintptr_t) (count > SIZE_MAX ? SIZE_MAX : count));
        if (r < 0)
                free(key);
        else
                (*n->budget)--;
        return r;
}

/* What RN serves, as a RemoteNode taking its lines from *BUDGET: -ENOSPC when they would exceed
 * it (*BUDGET is left as it was). */
static int remote_node_parse(const RegistryNode *rn, size_t *budget, RemoteNode **ret) {
        size_t left = *budget;
        RemoteNode *n;
        int r;

        if (!rn->served)
                return -ENODATA;
        n = calloc(1, sizeof(RemoteNode));
        if (!n)
                return -ENOMEM;
        n->name = strdup(rn->node);
        n->served = hashmap_new();
        if (!n->name || !n->served) {
                remote_node_free(n);
                return -ENOMEM;
        }
        n->budget = &left;
        r = remote_served_parse(rn->served, rn->served_size, &n->instance, served_add, n);
        n->budget = NULL;
        if (r < 0) {
                remote_node_free(n);
                return r;
        }
        *budget = left;
        *ret = n;
        return 0;
}

static size_t remote_serves(const RemoteNode *n, const char *key) {
        return (uintptr_t) hashmap_get(n->served, key);
}

static void outgoing_fail(Outgoing *o, const char *name, const char *fmt, ...) _printf_(3, 4);

/* Every request out to INSTANCE fails with WorkerGone: its hub is gone. */
static void fail_instance(RRequests *rr, uint64_t instance, const char *node, const char *why) {
        Outgoing *o;
        size_t i = 0;

        while (hashmap_iterate(rr->outgoing, &i, (void **) &o, NULL))
                if (o->instance == instance) {
                        outgoing_fail(o, CH_ERROR_WORKER_GONE, "The hub of node '%s' is gone (%s) before answering '%s'.",
                                      node, why, o->method);
                        i = 0; /* the map changed */
                }
}

static void on_nodes(void *userdata, const RegistryNode *nodes, size_t n, bool grace) {
        RRequests *rr = userdata;
        _cleanup_(hashmap_freep) Hashmap *old = rr->nodes;
        /* what other hubs serve is hostile input: at most --max-remote-workers lines in all (a
         * served method has a worker there; each hub's own list is bounded by REMOTE_SERVED_MAX) */
        size_t budget = rr->hub->limits.max_remote_workers;
        RemoteNode *x;
        size_t i = 0;
        int r;

        rr->nodes = hashmap_new();
        if (!rr->nodes) {
                rr->nodes = TAKE_PTR(old);
                log_error("Out of memory.");
                return;
        }
        for (size_t k = 0; k < n; k++) {
                r = remote_node_parse(&nodes[k], &budget, &x);
                if (r == -ENOSPC) {
                        if (!rr->warned_full)
                                log_warning("Other hubs serve more than --max-remote-workers=%" PRIu64 " methods in all: "
                                            "ignoring what node '%s' serves (logged once).",
                                            rr->hub->limits.max_remote_workers, nodes[k].node);
                        rr->warned_full = true;
                        continue;
                }
                if (r < 0) {
                        if (nodes[k].served) /* at each sync: no counter, it would only count syncs */
                                log_debug("Ignoring what node '%s' serves: it does not parse.", nodes[k].node);
                        continue;
                }
                if (hashmap_put(rr->nodes, x->name, x) < 0)
                        remote_node_free(x);
        }
        while (hashmap_iterate(old, &i, (void **) &x, NULL)) {
                RemoteNode *now = hashmap_get(rr->nodes, x->name);

                if (!now && grace && hashmap_put(rr->nodes, x->name, x) >= 0)
                        continue; /* maybe a hub that has not reconnected yet to a Redis that restarted */
                if (!now || now->instance != x->instance)
                        fail_instance(rr, x->instance, x->name, now ? "it restarted" : "its heartbeat expired");
                remote_node_free(x);
        }
}

static RemoteNode *node_by_name(RRequests *rr, const char *name) {
        return hashmap_get(rr->nodes, name);
}

bool rrequests_enabled(Hub *h) {
        return part_of(h) != NULL;
}

int rrequests_target(Hub *h, const char *qid, char **ret_id, RemoteNode **ret_node) {
        RRequests *rr = part_of(h);
        const char *at = strchr(qid, '@');
        RemoteNode *node;
        char *id;

        if (!rr || !at)
                return -ENOENT;
        if (!redis_link_is_up(rr->link))
                return -EHOSTDOWN;
        node = node_by_name(rr, at + 1);
        if (!node || !registry_has_worker(backend_registry(h), qid))
                return -ENOENT;
        id = strndup(qid, at - qid);
        if (!id)
                return -ENOMEM;
        *ret_id = id;
        *ret_node = node;
        return 0;
}

/* --- sending -------------------------------------------------------------------------------- */

typedef struct PublishBox {
        RRequests *rr;
        char key[17];                   /* the Outgoing whose request it was, or "" */
} PublishBox;

static void on_publish_reply(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        _cleanup_(freep) PublishBox *box = userdata;
        Outgoing *o = box->key[0] ? hashmap_get(box->rr->outgoing, box->key) : NULL;

        if (reply && reply->type == REDIS_REPLY_ERROR)
                log_debug("Redis refused PUBLISH: %s", reply->str);
        if (!o)
                return;
        if (!reply)
                outgoing_fail(o, CH_ERROR_BACKEND_UNAVAILABLE, "Redis did not take '%s' to node '%s': %s", o->method,
                              o->node, strerror(-error));
        else if (reply->type == REDIS_REPLY_ERROR)
                outgoing_fail(o, CH_ERROR_BACKEND_UNAVAILABLE, "Redis refused PUBLISH: %s", reply->str);
        else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
                outgoing_fail(o, CH_ERROR_WORKER_GONE, "The hub of node '%s' is gone: nobody listens on its channel.", o->node);
}

/* PUBLISHes M to INSTANCE's channel; KEY names the Outgoing to fail when it cannot. */
static int publish(RRequests *rr, uint64_t instance, const RemoteMsg *m, const char *key) {
        _cleanup_(freep) char *msg = NULL;
        char channel[64];
        PublishBox *box;
        size_t size;
        int r;

        r = remote_msg_encode(m, &msg, &size);
        if (r < 0)
                return r;
        snprintf(channel, sizeof(channel), REMOTE_REQUEST_CHANNEL_PREFIX "%016" PRIx64, instance);
        box = calloc(1, sizeof(PublishBox));
        if (!box)
                return -ENOMEM;
        box->rr = rr;
        if (key)
                snprintf(box->key, sizeof(box->key), "%s", key);
        const char *argv[] = { "PUBLISH", channel, msg };
        const size_t len[] = { strlen("PUBLISH"), strlen(channel), size };
        r = redis_link_command(rr->link, 3, argv, len, on_publish_reply, box);
        if (r < 0) {
                free(box);
                return r == -ENOTCONN || r == -ENOBUFS ? -EHOSTDOWN : r;
        }
        return 0;
}

/* The payload of call M, after N_SKIP strings. */
static int read_payload(sd_bus_message *m, unsigned n_skip, CodecBuf *buf) {
        int r = sd_bus_message_rewind(m, true);

        for (unsigned i = 0; r >= 0 && i < n_skip; i++) {
                const char *skip;
                r = sd_bus_message_read_basic(m, 's', &skip);
        }
        if (r >= 0)
                r = codec_read(m, "v", buf);
        if (r == -EBADF || r == -ELOOP)
                return -EINVAL;
        return r;
}

/* --- requests out ------------------------------------------------------------------------- */

static Outgoing *outgoing_free(Outgoing *o) {
        if (!o)
                return NULL;
        hashmap_remove(o->rr->outgoing, o->key);
        free(o->node);
        free(o->method);
        free(o);
        return NULL;
}

static int outgoing_new(RRequests *rr, RemoteNode *node, const char *method, Outgoing **ret) {
        Outgoing *o = calloc(1, sizeof(Outgoing));
        int r;

        if (!o)
                return -ENOMEM;
        o->rr = rr;
        o->id = ++rr->next_id;
        snprintf(o->key, sizeof(o->key), "%016" PRIx64, o->id);
        o->instance = node->instance;
        o->node = strdup(node->name);
        o->method = strdup(method);
        if (!o->node || !o->method) {
                outgoing_free(o);
                return -ENOMEM;
        }
        r = hashmap_put(rr->outgoing, o->key, o);
        if (r < 0) {
                free(o->node);
                free(o->method);
                free(o);
                return r;
        }
        *ret = o;
        return 0;
}

/* The lone Request of O ended without an answer from the other hub. */
static void outgoing_ended(Deferred *d, DeferredEnd why) {
        Outgoing *o = d->userdata;

        if (!o)
                return;
        if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, CH_ERROR_TIMEOUT, "The hub of node '%s' did not answer '%s' within the timeout.",
                                        o->node, o->method);
        o->d = NULL;
        outgoing_free(o);
}

static void gather_error_node(Gather *g, const char *node, const char *name, const char *message) {
        _cleanup_(freep) char *key = NULL, *value = NULL;

        if (asprintf(&key, "@%s", node) < 0 || asprintf(&value, "%s: %s", name, message) < 0)
                return;
        gather_add_error(g, key, value);
}

/* O ends with NAME: a message from FMT. */
static void outgoing_fail(Outgoing *o, const char *name, const char *fmt, ...) {
        _cleanup_(freep) char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (o->d) {
                Deferred *d = o->d;

                (void) bus_reply_errorf(d->call, name, "%s", msg ? msg : name);
                d->userdata = NULL;
                deferred_free(d);
        } else if (o->g) {
                Gather *g = o->g;

                gather_error_node(g, o->node, name, msg ? msg : name);
                outgoing_free(o);
                gather_release(g); /* may finish G */
                return;
        }
        outgoing_free(o);
}

typedef struct Cursor {
        char *key;
        size_t next;
} Cursor;

static void cursors_clear(Hashmap *cursors) {
        Cursor *c;
        size_t i = 0;

        while (hashmap_iterate(cursors, &i, (void **) &c, NULL)) {
                hashmap_remove(cursors, c->key);
                free(c->key);
                free(c);
        }
}

/* The round-robin counter of KEY, made at 0 when new (NULL: out of memory). */
static Cursor *cursor_of(RRequests *rr, const char *key) {
        Cursor *c = hashmap_get(rr->cursors, key);

        if (c)
                return c;
        if (hashmap_size(rr->cursors) >= RREQ_MAX_CURSORS)
                cursors_clear(rr->cursors);
        c = calloc(1, sizeof(Cursor));
        if (!c || !(c->key = strdup(key)) || hashmap_put(rr->cursors, c->key, c) < 0) {
                if (c)
                        free(c->key);
                free(c);
                return NULL;
        }
        return c;
}

int rrequests_pick(Hub *h, const char *ns, const char *method, size_t n_local, RemoteNode **ret) {
        RRequests *rr = part_of(h);
        _cleanup_(freep) char *key = NULL;
        RemoteNode *n;
        size_t n_remote = 0, i = 0, slot;
        Cursor *c;

        if (!rr)
                return n_local > 0 ? 0 : -EBADRQC;
        if (asprintf(&key, "%s\t%s", ns, method) < 0)
                return -ENOMEM;
        while (hashmap_iterate(rr->nodes, &i, (void **) &n, NULL))
                if (remote_serves(n, key) > 0)
                        n_remote++;
        if (n_remote == 0 && n_local == 0)
                return redis_link_is_up(rr->link) ? -EBADRQC : -EHOSTDOWN;
        if (n_remote == 0)
                return 0;
        if (!redis_link_is_up(rr->link))
                return n_local > 0 ? 0 : -EHOSTDOWN;
        c = cursor_of(rr, key);
        slot = c ? c->next++ % (n_local + n_remote) : 0;
        if (slot < n_local)
                return 0;
        slot -= n_local;
        i = 0;
        while (hashmap_iterate(rr->nodes, &i, (void **) &n, NULL))
                if (remote_serves(n, key) > 0 && slot-- == 0) {
                        *ret = n;
                        return 1;
                }
        return 0;
}

/* The timeout the other hub runs a request with: a little shorter than the caller's, so that its
 * own Timeout (naming the worker) arrives before the origin's timer fires. */
static uint64_t remote_timeout_ms(uint64_t timeout_ms) {
        uint64_t margin = timeout_ms / 10;

        if (margin > 1000)
                margin = 1000;
        return timeout_ms > margin ? timeout_ms - margin : timeout_ms;
}

/* Sends the request O, of kind KIND (for worker TARGET, "" for any), with M's payload after
 * N_SKIP strings. */
static int outgoing_send(Outgoing *o, char kind, const char *ns, const char *origin, const char *target,
                         sd_bus_message *m, unsigned n_skip, uint64_t timeout_ms) {
        RRequests *rr = o->rr;
        CodecBuf buf = {};
        int r;

        r = read_payload(m, n_skip, &buf);
        if (r < 0) {
                codec_buf_done(&buf);
                return r;
        }
        const char *strings[] = { rr->hub->node_name, ns, o->method, origin, target };
        const void *blobs[] = { buf.data };
        size_t sizes[] = { buf.size };
        RemoteMsg msg = {
                .kind = kind, .id = o->id, .reply_to = rr->instance, .timeout_ms = remote_timeout_ms(timeout_ms),
                .n_strings = kind == REMOTE_REQUEST ? 5 : 4, .strings = strings, .n_blobs = 1, .blobs = blobs, .blob_sizes = sizes,
        };
        r = publish(rr, o->instance, &msg, o->key);
        codec_buf_done(&buf);
        if (r >= 0)
                rr->sent++;
        return r;
}

int rrequests_send(Hub *h, RemoteNode *node, const char *target, const char *ns, const char *method,
                   const char *origin, sd_bus_message *m, Peer *caller, uint64_t timeout_ms) {
        RRequests *rr = part_of(h);
        Outgoing *o;
        Deferred *d;
        int r;

        if (!rr)
                return -EHOSTDOWN;
        r = outgoing_new(rr, node, method, &o);
        if (r < 0)
                return r;
        r = deferred_new(h, m, caller, timeout_ms, outgoing_ended, o, &d);
        if (r < 0) {
                outgoing_free(o);
                return r;
        }
        o->d = d;
        r = outgoing_send(o, REMOTE_REQUEST, ns, origin, target ? target : "", m, 2, timeout_ms);
        if (r < 0) {
                /* not sent: the caller gets the error from the glue */
                d->userdata = NULL;
                deferred_free(d);
                outgoing_free(o);
                return r;
        }
        return 1;
}

size_t rrequests_count_hubs(Hub *h, const char *ns, const char *method) {
        RRequests *rr = part_of(h);
        _cleanup_(freep) char *key = NULL;
        RemoteNode *n;
        size_t i = 0, count = 0;

        if (!rr || !redis_link_is_up(rr->link) || asprintf(&key, "%s\t%s", ns, method) < 0)
                return 0;
        while (hashmap_iterate(rr->nodes, &i, (void **) &n, NULL))
                if (remote_serves(n, key) > 0)
                        count++;
        return count;
}

void rrequests_gather(Hub *h, Gather *g, const char *ns, const char *method, const char *origin, sd_bus_message *m,
                      uint64_t timeout_ms) {
        RRequests *rr = part_of(h);
        _cleanup_(freep) char *key = NULL;
        RemoteNode *n;
        size_t i = 0;

        if (!rr || !redis_link_is_up(rr->link) || asprintf(&key, "%s\t%s", ns, method) < 0)
                return;
        while (hashmap_iterate(rr->nodes, &i, (void **) &n, NULL)) {
                Outgoing *o;
                int r;

                if (remote_serves(n, key) == 0)
                        continue;
                r = outgoing_new(rr, n, method, &o);
                if (r >= 0) {
                        r = outgoing_send(o, REMOTE_REQUEST_ALL, ns, origin, "", m, 1, timeout_ms);
                        if (r < 0)
                                outgoing_free(o);
                }
                if (r < 0) {
                        gather_error_node(g, n->name,
                                          r == -EINVAL ? CH_ERROR_INVALID_ARGS : CH_ERROR_BACKEND_UNAVAILABLE,
                                          r == -EINVAL ? "File descriptors cannot cross hosts." : strerror(-r));
                        continue;
                }
                o->g = g;
                gather_hold(g);
        }
}

void rrequests_gather_end(Hub *h, Gather *g, bool timeout) {
        RRequests *rr = part_of(h);
        Outgoing *o;
        size_t i = 0;

        if (!rr)
                return;
        while (hashmap_iterate(rr->outgoing, &i, (void **) &o, NULL)) {
                if (o->g != g)
                        continue;
                if (timeout)
                        gather_error_node(g, o->node, CH_ERROR_TIMEOUT, "the hub did not answer within the timeout");
                outgoing_free(o);
                i = 0;
        }
}

/* A D-Bus error name: two or more elements of [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes. */
static bool error_name_ok(const char *s) {
        size_t n = strlen(s), elements = 1;
        bool start = true;

        if (n == 0 || n > 255)
                return false;
        for (; *s; s++) {
                bool letter = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_';
                if (*s == '.') {
                        if (start)
                                return false;
                        start = true;
                        elements++;
                } else if (letter || (!start && *s >= '0' && *s <= '9'))
                        start = false;
                else
                        return false;
        }
        return !start && elements >= 2;
}

/* A sealed message holding one "v" (the codec's DATA), read from its start: how a reply of
 * another host sits in a gather, like a handler's reply. */
/* KEY of a row of NODE as this host names it: "KEY@NODE" (a worker id, or a unique name). */
static const char *qualified(const char *key, const char *node, char *buf, size_t size) {
        snprintf(buf, size, "%s@%s", key, node);
        return buf;
}

/* The answer M (of kind REPLY, ERROR or GATHERED) to our request O. */
static void outgoing_answered(Outgoing *o, const RemoteMsg *m) {
        if (m->kind == REMOTE_ERROR) {
                const char *name = m->strings[0];

                if (!error_name_ok(name))
                        name = SD_BUS_ERROR_FAILED;
                outgoing_fail(o, name, "%s", m->strings[1]);
                return;
        }
        if (o->d && m->kind == REMOTE_REPLY) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
                Deferred *d = o->d;
                int r;

                r = backend_value_fits(o->rr->hub, m->blobs[0], m->blob_sizes[0], CODEC_BUS_DEPTH_MAX);
                if (r == 0) /* the bus would drop the hub for such a reply */
                        (void) bus_reply_errorf(d->call, CH_ERROR_LIMIT_EXCEEDED,
                                                "The reply from node '%s' nests deeper than %u containers, more than a bus carries.",
                                                o->node, CODEC_BUS_DEPTH_MAX);
                if (r > 0)
                        r = sd_bus_message_new_method_return(d->call, &out);
                if (r >= 0 && out)
                        r = codec_append(out, "v", m->blobs[0], m->blob_sizes[0]);
                if (r >= 0 && out)
                        r = bus_send(out);
                if (r < 0)
                        (void) bus_reply_errorf(d->call, SD_BUS_ERROR_FAILED, "Cannot pass on the reply from node '%s': %s",
                                                o->node, strerror(-r));
                d->userdata = NULL;
                deferred_free(d);
                outgoing_free(o);
                return;
        }
        if (o->g && m->kind == REMOTE_GATHERED) {
                Gather *g = o->g;
                size_t n_replies = m->n_blobs;
                char qkey[512];

                for (size_t k = 0; k < n_replies; k++) {
                        sd_bus_message *v = NULL;
                        int r = backend_value_message(o->rr->hub, m->blobs[k], m->blob_sizes[k], &v);

                        if (r >= 0 && codec_message_fits(v, CODEC_VARIANT_DEPTH_MAX) <= 0) {
                                /* it could not sit inside the a{sv} of replies: the bus would drop the hub */
                                sd_bus_message_unref(v);
                                gather_add_error(g, qualified(m->strings[k], o->node, qkey, sizeof(qkey)),
                                                 CH_ERROR_LIMIT_EXCEEDED ": its reply from another host nests deeper than a RequestAll reply can carry");
                                continue;
                        }
                        if (r < 0) {
                                gather_add_error(g, qualified(m->strings[k], o->node, qkey, sizeof(qkey)),
                                                 SD_BUS_ERROR_FAILED ": cannot read its reply from another host");
                                continue;
                        }
                        gather_add_reply(g, qualified(m->strings[k], o->node, qkey, sizeof(qkey)), v);
                }
                for (size_t k = n_replies; k + 1 < m->n_strings; k += 2)
                        gather_add_error(g, qualified(m->strings[k], o->node, qkey, sizeof(qkey)), m->strings[k + 1]);
                outgoing_free(o);
                gather_release(g);
                return;
        }
        outgoing_fail(o, SD_BUS_ERROR_FAILED, "Node '%s' answered with a message of the wrong kind.", o->node);
}

/* --- requests in ---------------------------------------------------------------------------- */

static Incoming *incoming_free(Incoming *in) {
        if (!in)
                return NULL;
        hashmap_remove(in->rr->incoming, in->key);
        sd_bus_message_unref(in->call);
        free(in->node);
        free(in);
        return NULL;
}

static Incoming *incoming_of(Deferred *d) {
        RRequests *rr = part_of(d->hub);
        char key[32];

        if (!rr || d->peer)
                return NULL;
        snprintf(key, sizeof(key), "%p", (void *) d->call);
        return hashmap_get(rr->incoming, key);
}

/* S cut to at most REMOTE_MSG_STRING_MAX bytes, on a UTF-8 character's boundary: a copy in BUF
 * (of REMOTE_MSG_STRING_MAX + 1 bytes) when it is longer. */
static const char *cut_string(const char *s, char *buf) {
        size_t n = strlen(s);

        if (n <= REMOTE_MSG_STRING_MAX)
                return s;
        n = REMOTE_MSG_STRING_MAX;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        memcpy(buf, s, n);
        buf[n] = 0;
        return buf;
}

/* Sends the answer M to IN's origin and ends IN.  An answer that cannot be sent as it is (too
 * many rows, a string too long) is answered with an error instead, so that the origin's caller
 * hears why rather than its Timeout. */
static void incoming_answer(Incoming *in, RemoteMsg *m) {
        int r;

        m->id = in->id;
        m->reply_to = in->rr->instance;
        r = publish(in->rr, in->reply_to, m, NULL);
        if (r == -EINVAL && m->kind != REMOTE_ERROR) {
                const char *strings[] = { SD_BUS_ERROR_FAILED, "The answer cannot cross hosts (a string longer than 65,535 bytes, or too many rows)." };
                RemoteMsg e = { .kind = REMOTE_ERROR, .id = in->id, .reply_to = in->rr->instance, .n_strings = 2, .strings = strings };

                r = publish(in->rr, in->reply_to, &e, NULL);
        }
        if (r < 0)
                log_debug_errno(r, "Cannot answer a request of node '%s': %m", in->node);
        else
                in->rr->answered++;
        incoming_free(in);
}

static void incoming_error(Incoming *in, const char *name, const char *message) {
        _cleanup_(freep) char *buf = strlen(message) > REMOTE_MSG_STRING_MAX ? malloc(REMOTE_MSG_STRING_MAX + 1) : NULL;
        const char *strings[] = { name, buf ? cut_string(message, buf) : message };
        RemoteMsg m = { .kind = REMOTE_ERROR, .n_strings = 2, .strings = strings };

        if (strlen(message) > REMOTE_MSG_STRING_MAX && !buf)
                strings[1] = "out of memory";
        incoming_answer(in, &m);
}

bool rrequests_answer_error(Deferred *d, const char *name, const char *message) {
        Incoming *in = incoming_of(d);

        if (!in)
                return false;
        incoming_error(in, name, message);
        return true;
}

/* The "v" of REPLY, a reply message. */
static int read_reply_value(sd_bus_message *reply, CodecBuf *buf) {
        int r = sd_bus_message_rewind(reply, true);

        if (r >= 0)
                r = codec_read(reply, "v", buf);
        return r;
}

bool rrequests_answer_reply(Deferred *d, sd_bus_message *reply) {
        Incoming *in = incoming_of(d);
        CodecBuf buf = {};
        int r;

        if (!in)
                return false;
        r = read_reply_value(reply, &buf);
        if (r < 0) {
                codec_buf_done(&buf);
                incoming_error(in, r == -EBADF ? CH_ERROR_INVALID_ARGS : SD_BUS_ERROR_FAILED,
                               r == -EBADF ? "The handler's reply carries file descriptors, which cannot cross hosts."
                                           : "Cannot read the handler's reply.");
                return true;
        }
        const void *blobs[] = { buf.data };
        size_t sizes[] = { buf.size };
        RemoteMsg m = { .kind = REMOTE_REPLY, .n_blobs = 1, .blobs = blobs, .blob_sizes = sizes };
        incoming_answer(in, &m);
        codec_buf_done(&buf);
        return true;
}

bool rrequests_answer_gather(Deferred *d, Gather *g) {
        Incoming *in = incoming_of(d);
        size_t n_rep = 0, n_str = 0;
        const char **strings = NULL;
        const void **blobs = NULL;
        size_t *sizes = NULL;
        CodecBuf *bufs = NULL;
        char **cut = NULL;
        size_t n_cut = 0;

        if (!in)
                return false;
        strings = calloc(g->n_replies + 2 * g->n_errors + 2 * g->n_replies + 1, sizeof(char *));
        blobs = calloc(g->n_replies + 1, sizeof(void *));
        sizes = calloc(g->n_replies + 1, sizeof(size_t));
        bufs = calloc(g->n_replies + 1, sizeof(CodecBuf));
        if (!strings || !blobs || !sizes || !bufs) {
                incoming_error(in, SD_BUS_ERROR_NO_MEMORY, "out of memory");
                goto finish;
        }
        for (size_t k = 0; k < g->n_replies; k++) {
                if (read_reply_value(g->replies[k], &bufs[n_rep]) < 0) {
                        codec_buf_done(&bufs[n_rep]);
                        continue; /* listed below as an error */
                }
                strings[n_str++] = g->reply_keys[k] ? g->reply_keys[k] : "";
                blobs[n_rep] = bufs[n_rep].data;
                sizes[n_rep] = bufs[n_rep].size;
                n_rep++;
        }
        for (size_t k = 0; k < g->n_errors; k++) {
                const char *value = g->error_values[k] ? g->error_values[k] : "";

                if (strlen(value) > REMOTE_MSG_STRING_MAX) { /* a worker's error message: cut */
                        char **more = realloc(cut, (n_cut + 1) * sizeof(char *));

                        if (more)
                                cut = more;
                        if (more && (cut[n_cut] = malloc(REMOTE_MSG_STRING_MAX + 1)))
                                value = cut_string(value, cut[n_cut++]);
                }
                strings[n_str++] = g->error_keys[k] ? g->error_keys[k] : "";
                strings[n_str++] = value;
        }
        if (n_rep < g->n_replies) /* replies that cannot cross: file descriptors */
                for (size_t k = 0, j = 0; k < g->n_replies; k++) {
                        const char *key = g->reply_keys[k] ? g->reply_keys[k] : "";
                        if (j < n_rep && strings[j] == key) {
                                j++;
                                continue;
                        }
                        strings[n_str++] = key;
                        strings[n_str++] = CH_ERROR_INVALID_ARGS ": its reply carries file descriptors, which cannot cross hosts";
                }
        {
                RemoteMsg m = { .kind = REMOTE_GATHERED, .n_strings = n_str, .strings = strings, .n_blobs = n_rep,
                                .blobs = blobs, .blob_sizes = sizes };
                if (n_str > REMOTE_MSG_MAX_ITEMS || n_rep > REMOTE_MSG_MAX_ITEMS)
                        incoming_error(in, CH_ERROR_LIMIT_EXCEEDED, "Too many rows to send back across hosts.");
                else
                        incoming_answer(in, &m);
        }
finish:
        for (size_t k = 0; k < n_cut; k++)
                free(cut[k]);
        free(cut);
        for (size_t k = 0; bufs && k < g->n_replies; k++)
                codec_buf_done(&bufs[k]);
        free(bufs);
        free(strings);
        free(blobs);
        free(sizes);
        return true;
}

/* A request M of another hub: run it here like a local one. */
static void handle_request(RRequests *rr, const RemoteMsg *m) {
        Hub *h = rr->hub;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        const char *node = m->strings[0], *ns = m->strings[1], *method = m->strings[2], *origin = m->strings[3];
        bool all = m->kind == REMOTE_REQUEST_ALL;
        const char *target = all ? "" : m->strings[4];
        _cleanup_(freep) char *qorigin = NULL;
        Incoming *in;
        int r;

        in = calloc(1, sizeof(Incoming));
        if (!in)
                return;
        in->rr = rr;
        in->id = m->id;
        in->reply_to = m->reply_to;
        in->node = strdup(node);
        if (!in->node) {
                free(in);
                return;
        }
        if (hashmap_size(rr->incoming) >= h->limits.max_remote_requests) {
                incoming_error(in, CH_ERROR_LIMIT_EXCEEDED,
                               "The hub runs as many requests of other hosts as it may at once (--max-remote-requests).");
                return;
        }
        if (strlen(method) == 0 || strlen(method) > h->limits.max_name_bytes || strlen(origin) > 255 || strlen(node) > 64 ||
            strlen(target) > 255 ||
            m->timeout_ms == 0 || asprintf(&qorigin, "%s@%s", origin, node) < 0) {
                incoming_error(in, CH_ERROR_INVALID_ARGS, "Malformed request.");
                return;
        }
        /* the call the request machine takes its payload from: never sent, nor answered on the
         * bus (no reply expected); its answers come back here (rrequests_answer_*()) */
        r = sd_bus_message_new_method_call(h->bus, &call, NULL, "/", "org.clusterhub.Remote", all ? "RequestAll" : "Request");
        if (r >= 0 && !all)
                r = sd_bus_message_append(call, "s", "");
        if (r >= 0)
                r = sd_bus_message_append(call, "s", method);
        if (r >= 0)
                r = codec_append(call, "v", m->blobs[0], m->blob_sizes[0]);
        if (r >= 0)
                r = sd_bus_message_set_expect_reply(call, false);
        if (r >= 0)
                r = sd_bus_message_seal(call, m->id ? m->id : 1, 0);
        if (r < 0) {
                incoming_error(in, CH_ERROR_INVALID_ARGS, "Cannot read the request's payload.");
                return;
        }
        if (codec_message_fits(call, CODEC_BUS_DEPTH_MAX) <= 0) {
                /* the worker's Handle call would carry it: the bus would drop the hub */
                rr->dropped++;
                incoming_error(in, CH_ERROR_LIMIT_EXCEEDED, "The request's payload nests deeper than a bus carries.");
                return;
        }
        in->call = sd_bus_message_ref(call);
        snprintf(in->key, sizeof(in->key), "%p", (void *) call);
        if (hashmap_put(rr->incoming, in->key, in) < 0) {
                in->key[0] = 0;
                incoming_error(in, SD_BUS_ERROR_NO_MEMORY, "out of memory");
                return;
        }
        r = bus_requests_serve_remote(h, all, target, ns, method, qorigin, call, m->timeout_ms, &error);
        if (r < 0)
                incoming_error(in, error.name ? error.name : SD_BUS_ERROR_FAILED, error.message ? error.message : strerror(-r));
}

static void handle_emit_to(RRequests *rr, const RemoteMsg *m) {
        const char *ns = m->strings[0], *event = m->strings[1], *worker = m->strings[2], *origin = m->strings[3];
        int r;

        r = backend_value_fits(rr->hub, m->blobs[0], m->blob_sizes[0], CODEC_BUS_DEPTH_MAX);
        if (r <= 0) { /* the Event signal would carry it: a bus drops the hub for one too deep */
                rr->dropped++;
                log_debug("Dropping event '%s' from %s to worker '%s': its payload does not read or nests too deep.",
                          event, origin, worker);
                return;
        }
        r = bus_events_deliver_remote(rr->hub, ns, worker, event, origin, m->blobs[0], m->blob_sizes[0]);
        if (r < 0) {
                rr->dropped++;
                log_debug_errno(r, "Cannot deliver event '%s' from %s to worker '%s': %m", event, origin, worker);
        }
}

static int on_message(void *part, const char *channel, const char *data, size_t size) {
        RRequests *rr = part;
        RemoteMsg m;
        Outgoing *o;
        char key[17];
        int r;

        if (!streq(channel, rr->channel))
                return 0;
        r = remote_msg_decode(data, size, &m);
        for (size_t k = 0; r >= 0 && k < m.n_strings; k++)
                if (!utf8_valid(m.strings[k], strlen(m.strings[k]))) {
                        /* D-Bus strings are UTF-8: such a name or message could not be passed on */
                        remote_msg_done(&m);
                        r = -EBADMSG;
                }
        if (r < 0) {
                rr->dropped++;
                log_debug("Ignoring a malformed message on %s: %s", channel, strerror(-r));
                return 1;
        }
        rr->received++;
        switch (m.kind) {
        case REMOTE_REQUEST:
        case REMOTE_REQUEST_ALL:
                handle_request(rr, &m);
                break;
        case REMOTE_EMIT_TO:
                handle_emit_to(rr, &m);
                break;
        default:
                snprintf(key, sizeof(key), "%016" PRIx64, m.id);
                o = hashmap_get(rr->outgoing, key);
                if (o && o->instance == m.reply_to)
                        outgoing_answered(o, &m);
                /* else: an answer that came too late (its caller had one already) */
                break;
        }
        remote_msg_done(&m);
        return 1;
}

/* --- EmitTo ---------------------------------------------------------------------------------- */

int rrequests_emit_to(Hub *h, const char *ns, const char *qid, const char *event, const char *origin,
                      sd_bus_message *m, unsigned n_skip) {
        RRequests *rr = part_of(h);
        _cleanup_(freep) char *id = NULL, *qorigin = NULL;
        const char *at = strchr(qid, '@');
        RemoteNode *node;
        CodecBuf buf = {};
        int r;

        if (!rr || !at)
                return -ENOENT;
        if (!redis_link_is_up(rr->link))
                return -EHOSTDOWN;
        node = node_by_name(rr, at + 1);
        if (!node || !registry_has_worker(backend_registry(h), qid))
                return -ENOENT;
        id = strndup(qid, at - qid);
        if (!id || asprintf(&qorigin, "%s@%s", origin, h->node_name) < 0)
                return -ENOMEM;
        r = read_payload(m, n_skip, &buf);
        if (r < 0) {
                codec_buf_done(&buf);
                return r;
        }
        const char *strings[] = { ns, event, id, qorigin };
        const void *blobs[] = { buf.data };
        size_t sizes[] = { buf.size };
        RemoteMsg msg = { .kind = REMOTE_EMIT_TO, .reply_to = rr->instance, .n_strings = 4, .strings = strings,
                          .n_blobs = 1, .blobs = blobs, .blob_sizes = sizes };
        r = publish(rr, node->instance, &msg, NULL);
        codec_buf_done(&buf);
        if (r >= 0)
                rr->sent++;
        return r;
}

/* --- what this hub serves -------------------------------------------------------------------- */

/* "CHS1 INSTANCE\n" and a line per method served here (remote-request.h). */
static char *served_string(RRequests *rr) {
        Hub *h = rr->hub;
        _cleanup_(freep) const char **names = calloc(REMOTE_SERVED_MAX, sizeof(char *));
        _cleanup_(freep) size_t *counts = calloc(REMOTE_SERVED_MAX, sizeof(size_t));
        char *buf = NULL;
        size_t size = 0, i = 0, lines = 0;
        Namespace *ns;
        FILE *f;

        if (!names || !counts)
                return NULL;
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fprintf(f, "CHS1 %016" PRIx64 "\n", rr->instance);
        while (hashmap_iterate(h->namespaces, &i, (void **) &ns, NULL)) {
                size_t got = serve_table_methods(ns->served, names, counts, REMOTE_SERVED_MAX);
                for (size_t k = 0; k < got && lines < REMOTE_SERVED_MAX; k++) {
                        if (!remote_served_name_ok(names[k]) || !remote_served_name_ok(ns->name))
                                continue; /* a method name with a tab or a newline: served here only */
                        fprintf(f, "%s\t%s\t%zu\n", ns->name, names[k], counts[k]);
                        lines++;
                }
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static int on_served_defer(sd_event_source *s, void *userdata) {
        RRequests *rr = userdata;
        _cleanup_(freep) char *served = served_string(rr);
        Registry *reg = backend_registry(rr->hub);
        int r;

        if (!served || !reg) {
                log_error("Out of memory.");
                return 0;
        }
        r = registry_set_served(reg, served);
        if (r < 0)
                log_debug_errno(r, "Cannot write what this hub serves to Redis now: %m");
        return 0;
}

void rrequests_served_changed(Hub *h) {
        RRequests *rr = part_of(h);

        if (rr)
                (void) sd_event_source_set_enabled(rr->served_defer, SD_EVENT_ONESHOT);
}

/* --- the part -------------------------------------------------------------------------------- */

static void link_state(void *part, bool up) {
        RRequests *rr = part;
        Registry *reg = backend_registry(rr->hub);
        Outgoing *o;
        size_t i = 0;

        if (up) {
                if (!rr->hooked && reg) {
                        registry_set_nodes_hook(reg, on_nodes, rr);
                        rr->hooked = true;
                }
                /* what we serve goes with the sync that follows */
                on_served_defer(NULL, rr);
                return;
        }
        /* the subscription is gone with the link: no answer can come */
        while (hashmap_iterate(rr->outgoing, &i, (void **) &o, NULL)) {
                outgoing_fail(o, CH_ERROR_BACKEND_UNAVAILABLE, "Redis became unreachable before node '%s' answered '%s'.",
                              o->node, o->method);
                i = 0;
        }
}

static int part_new(Hub *h, RedisLink *link, uint64_t instance, void **ret) {
        RRequests *rr = calloc(1, sizeof(RRequests));
        int r;

        if (!rr)
                return -ENOMEM;
        rr->hub = h;
        rr->link = link;
        rr->instance = instance;
        snprintf(rr->channel, sizeof(rr->channel), REMOTE_REQUEST_CHANNEL_PREFIX "%016" PRIx64, instance);
        rr->nodes = hashmap_new();
        rr->cursors = hashmap_new();
        rr->outgoing = hashmap_new();
        rr->incoming = hashmap_new();
        r = !rr->nodes || !rr->cursors || !rr->outgoing || !rr->incoming ? -ENOMEM : 0;
        if (r >= 0)
                r = sd_event_add_defer(h->event, &rr->served_defer, on_served_defer, rr);
        if (r >= 0)
                r = sd_event_source_set_enabled(rr->served_defer, SD_EVENT_OFF);
        if (r >= 0)
                r = redis_link_psubscribe(link, rr->channel);
        if (r < 0) {
                rrequests_ops.free(rr);
                return r;
        }
        *ret = rr;
        return 0;
}

static void part_free(void *part) {
        RRequests *rr = part;
        RemoteNode *n;
        Outgoing *o;
        Incoming *in;
        size_t i = 0;

        if (!rr)
                return;
        sd_event_source_disable_unref(rr->served_defer);
        while (hashmap_iterate(rr->outgoing, &i, (void **) &o, NULL)) {
                if (o->d)
                        o->d->userdata = NULL; /* the hub's exit answers it */
                outgoing_free(o);
                i = 0;
        }
        i = 0;
        while (hashmap_iterate(rr->incoming, &i, (void **) &in, NULL)) {
                incoming_free(in);
                i = 0;
        }
        i = 0;
        while (hashmap_iterate(rr->nodes, &i, (void **) &n, NULL)) {
                hashmap_remove(rr->nodes, n->name);
                remote_node_free(n);
                i = 0;
        }
        cursors_clear(rr->cursors);
        hashmap_free(rr->nodes);
        hashmap_free(rr->cursors);
        hashmap_free(rr->outgoing);
        hashmap_free(rr->incoming);
        free(rr);
}

static int append_stats(void *part, sd_bus_message *reply) {
        RRequests *rr = part;
        int r;

        if ((r = bus_append_stat(reply, "backend_requests_sent", 't', &rr->sent)) < 0 ||
            (r = bus_append_stat(reply, "backend_requests_received", 't', &rr->received)) < 0 ||
            (r = bus_append_stat(reply, "backend_requests_answered", 't', &rr->answered)) < 0 ||
            (r = bus_append_stat(reply, "backend_requests_dropped", 't', &rr->dropped)) < 0)
                return r;
        return 0;
}

const BackendPartOps rrequests_ops = {
        .name = "requests",
        .new = part_new,
        .free = part_free,
        .link_state = link_state,
        .on_message = on_message,
        .append_stats = append_stats,
};
