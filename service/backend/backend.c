/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "backend.h"
#include "bus-store-redis-list.h"
#include "bus-util.h"
#include "ch-events1-server.h"
#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "redis-link.h"
#include "registry.h"
#include "remote-event.h"
#include "rlocks.h"
#include "rrequests.h"
#include "rstore.h"
#include "transport/socket.h"
#include "variant-codec.h"

struct Backend {
        Hub *hub;
        RedisLink *link;
        Registry *registry;             /* the workers of every host */
        uint64_t instance;              /* random per start: our own publications */
        uint64_t events_published;
        uint64_t events_received;       /* delivered here from other hubs */
        uint64_t events_malformed;      /* messages on our channels we could not read or deliver */
        void **parts;                   /* the state of each of backend_parts[] */
};

/* The parts, in the order they are made and asked for messages: add a line for a new part. */
const BackendPartOps *const backend_parts[] = {
        &rlocks_ops,
        &rrequests_ops,
        &rstore_part_ops,
        &rlist_part_ops, /* BLPop/BRPop waiters (bus-store-redis-list.c) */
        NULL
};

static size_t n_parts(void) {
        size_t n = 0;
        while (backend_parts[n])
                n++;
        return n;
}

void *backend_part(Hub *h, const BackendPartOps *ops) {
        if (!h->backend)
                return NULL;
        for (size_t i = 0; backend_parts[i]; i++)
                if (backend_parts[i] == ops)
                        return h->backend->parts[i];
        return NULL;
}

RedisLink *backend_link(Hub *h) {
        return h->backend ? h->backend->link : NULL;
}

bool backend_is_up(Hub *h) {
        return h->backend && redis_link_is_up(h->backend->link);
}

Registry *backend_registry(Hub *h) {
        return h->backend ? h->backend->registry : NULL;
}

uint64_t backend_instance(Hub *h) {
        return h->backend ? h->backend->instance : 0;
}

int backend_value_message(Hub *h, const void *data, size_t size, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *v = NULL;
        int r;

        r = sd_bus_message_new_method_call(h->bus, &v, NULL, "/", "org.clusterhub.Remote", "Value");
        if (r >= 0)
                r = codec_append(v, "v", data, size);
        if (r >= 0)
                r = sd_bus_message_seal(v, 1, 0);
        if (r >= 0)
                r = sd_bus_message_rewind(v, true);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

int backend_value_fits(Hub *h, const void *data, size_t size, unsigned max) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *v = NULL;
        int r;

        r = backend_value_message(h, data, size, &v);
        if (r < 0)
                return r;
        return codec_message_fits(v, max);
}

/* A remote event, sent as Event(EVENT, ORIGIN@NODE, PAYLOAD) on any connection. */
typedef struct RemoteSend {
        const char *path, *event, *origin;
        const RemoteEvent *e;
} RemoteSend;

static int append_payload(sd_bus_message *signal, void *userdata) {
        const RemoteSend *s = userdata;
        return codec_append(signal, "v", s->e->payload, s->e->payload_size);
}

static int emit_remote_on(sd_bus *bus, void *userdata) {
        RemoteSend *s = userdata;
        return ch_events1_emit_event(bus, NULL, s->path, s->event, s->origin, append_payload, s);
}

static void deliver(Backend *b, const char *ns, const RemoteEvent *e) {
        Hub *h = b->hub;
        _cleanup_(freep) char *path = NULL, *origin = NULL;
        int r;

        if (!namespace_name_is_valid(h, ns) || strlen(e->event) == 0 || strlen(e->event) > h->limits.max_name_bytes) {
                b->events_malformed++;
                return;
        }
        /* Event(s, s, v): the payload's variant sits at the top, so it may nest as deep as the bus
         * takes; deeper would make the bus drop this hub */
        if (backend_value_fits(h, e->payload, e->payload_size, CODEC_BUS_DEPTH_MAX) <= 0) {
                b->events_malformed++;
                log_debug("Dropping event '%s' from %s@%s: its payload does not read or nests too deep for the bus.",
                          e->event, e->origin, e->node);
                return;
        }
        if (asprintf(&path, "%s/%s", HUB_NS_PREFIX, ns) < 0 || asprintf(&origin, "%s@%s", e->origin, e->node) < 0) {
                log_error("Out of memory.");
                return;
        }
        RemoteSend s = { .path = path, .event = e->event, .origin = origin, .e = e };
        SignalProbe probe = { path, CH_EVENTS1_INTERFACE, "Event", "ss", { e->event, origin } };
        r = hub_broadcast(h, &probe, emit_remote_on, &s);
        if (r < 0) {
                b->events_malformed++;
                log_debug_errno(r, "Cannot deliver event '%s' from %s: %m", e->event, origin);
                return;
        }
        b->events_received++;
        h->stats.events_emitted++;
}

static void on_message(RedisLink *l, const char *channel, const char *data, size_t size, void *userdata) {
        Backend *b = userdata;
        const char *ns = remote_event_channel_namespace(channel);
        RemoteEvent e;
        int r;

        if (streq(channel, REGISTRY_CHANNEL)) {
                registry_on_message(b->registry, data, size);
                return;
        }
        for (size_t i = 0; backend_parts[i]; i++)
                if (backend_parts[i]->on_message && backend_parts[i]->on_message(b->parts[i], channel, data, size) > 0)
                        return;
        if (!ns)
                return;
        r = remote_event_decode(data, size, &e);
        if (r < 0) {
                b->events_malformed++;
                log_debug("Ignoring a malformed event on %s: %s", channel, strerror(-r));
                return;
        }
        if (e.instance == b->instance)
                return; /* ours: delivered here before it was published */
        deliver(b, ns, &e);
}

static void on_state(RedisLink *l, bool up, void *userdata) {
        Backend *b = userdata;

        for (size_t i = 0; backend_parts[i]; i++)
                if (backend_parts[i]->link_state)
                        backend_parts[i]->link_state(b->parts[i], up);
        if (up)
                registry_link_up(b->registry);
        else
                log_warning("Redis at %s is unreachable: calls that need it fail with BackendUnavailable until it is back.",
                            redis_link_where(l));
}

static void on_publish_reply(RedisLink *l, const redisReply *reply, int error, void *userdata) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
                log_warning("Redis refused PUBLISH: %s", reply->str);
}

int backend_publish_event(Hub *h, const char *ns, const char *event, const char *origin, sd_bus_message *m,
                          unsigned n_skip) {
        Backend *b = h->backend;
        _cleanup_(freep) char *msg = NULL, *channel = NULL;
        CodecBuf buf = {};
        size_t size;
        int r;

        if (!b)
                return 0;
        if (!redis_link_is_up(b->link))
                return -EHOSTDOWN;
        r = sd_bus_message_rewind(m, true);
        for (unsigned i = 0; r >= 0 && i < n_skip; i++) {
                const char *skip;
                r = sd_bus_message_read_basic(m, 's', &skip);
        }
        if (r >= 0)
                r = codec_read(m, "v", &buf);
        if (r < 0) {
                codec_buf_done(&buf);
                return r == -EBADF || r == -ELOOP ? -EINVAL : r;
        }
        RemoteEvent e = { .instance = b->instance, .node = h->node_name, .origin = origin, .event = event,
                          .payload = buf.data, .payload_size = buf.size };
        r = remote_event_encode(&e, &msg, &size);
        codec_buf_done(&buf);
        if (r < 0)
                return r;
        if (asprintf(&channel, "%s%s", REMOTE_EVENT_CHANNEL_PREFIX, ns) < 0)
                return -ENOMEM;
        const char *argv[] = { "PUBLISH", channel, msg };
        const size_t len[] = { strlen("PUBLISH"), strlen(channel), size };
        r = redis_link_command(b->link, 3, argv, len, on_publish_reply, b);
        if (r == -ENOTCONN || r == -ENOBUFS) /* down, or too far behind to be waited for */
                return -EHOSTDOWN;
        if (r < 0)
                return r;
        b->events_published++;
        return 0;
}

int backend_new(Hub *h, Backend **ret) {
        _cleanup_(redis_url_done) RedisUrl url = {};
        Backend *b;
        int r;

        *ret = NULL;
        if (!h->redis_url)
                return 0;
        r = redis_url_parse(h->redis_url, &url);
        if (r < 0)
                return r;
        b = calloc(1, sizeof(Backend));
        if (!b)
                return -ENOMEM;
        b->hub = h;
        if (getrandom(&b->instance, sizeof(b->instance), 0) != sizeof(b->instance)) {
                free(b);
                return -errno ?: -EIO;
        }
        static const RedisLinkCallbacks cb = { .on_state = on_state, .on_message = on_message };
        const RedisLinkBounds bounds = {
                .timeout_ms = h->limits.redis_timeout_ms,
                .max_pending = h->limits.max_redis_pending,
        };
        r = redis_link_new(h->event, &url, &bounds, &cb, b, &b->link);
        if (r >= 0)
                r = registry_new(h, b->link, &b->registry);
        if (r >= 0)
                r = redis_link_psubscribe(b->link, REMOTE_EVENT_PATTERN);
        if (r >= 0)
                r = redis_link_psubscribe(b->link, REGISTRY_CHANNEL);
        if (r >= 0) {
                b->parts = calloc(n_parts() + 1, sizeof(void *));
                if (!b->parts)
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && backend_parts[i]; i++) {
                r = backend_parts[i]->new(h, b->link, b->instance, &b->parts[i]);
                for (const char *const *p = backend_parts[i]->patterns; r >= 0 && p && *p; p++)
                        r = redis_link_psubscribe(b->link, *p);
                if (r < 0)
                        log_error_errno(r, "Cannot set up %s across hosts: %m", backend_parts[i]->name);
        }
        if (r >= 0)
                r = redis_link_start(b->link);
        if (r < 0) {
                backend_free(b);
                return r;
        }
        log_info("Node '%s': the store, events and the worker list cross hosts through Redis at %s.", h->node_name, redis_link_where(b->link));
        *ret = b;
        return 0;
}

Backend *backend_free(Backend *b) {
        if (!b)
                return NULL;
        /* the link first: the commands still waiting call back into the registry */
        b->link = redis_link_free(b->link);
        for (size_t i = 0; b->parts && backend_parts[i]; i++)
                if (b->parts[i])
                        backend_parts[i]->free(b->parts[i]);
        free(b->parts);
        registry_free(b->registry);
        free(b);
        return NULL;
}

int backend_append_stats(Hub *h, sd_bus_message *reply) {
        const Backend *b = h->backend;
        RedisLinkStats s;
        uint64_t reconnects;
        int connected, r;

        if (!b)
                return bus_append_stat(reply, "backend", 's', "none");
        redis_link_get_stats(b->link, &s);
        connected = s.connected;
        reconnects = s.connects > 0 ? s.connects - 1 : 0;
        if ((r = bus_append_stat(reply, "backend", 's', "redis")) < 0 ||
            (r = bus_append_stat(reply, "backend_connected", 'b', &connected)) < 0 ||
            (r = bus_append_stat(reply, "backend_reconnects", 't', &reconnects)) < 0 ||
            (r = bus_append_stat(reply, "backend_commands_failed", 't', &s.commands_failed)) < 0 ||
            (r = bus_append_stat(reply, "backend_events_published", 't', &b->events_published)) < 0 ||
            (r = bus_append_stat(reply, "backend_events_received", 't', &b->events_received)) < 0 ||
            (r = bus_append_stat(reply, "backend_events_dropped", 't', &b->events_malformed)) < 0 ||
            (r = bus_append_stat(reply, "backend_remote_workers", 't', &(uint64_t) { registry_count(b->registry) })) < 0)
                return r;
        for (size_t i = 0; backend_parts[i]; i++)
                if (backend_parts[i]->append_stats && (r = backend_parts[i]->append_stats(b->parts[i], reply)) < 0)
                        return r;
        return 0;
}

void backend_worker_joined(Hub *h, const char *id, const char *unique_name, uint32_t pid, const char *unit,
                           uint64_t since_ms) {
        if (h->backend)
                registry_worker_joined(h->backend->registry, id, unique_name, pid, unit, since_ms);
}

void backend_worker_left(Hub *h, const char *id, const char *reason) {
        if (h->backend)
                registry_worker_left(h->backend->registry, id, reason);
}

int backend_append_workers(Hub *h, sd_bus_message *reply) {
        if (!h->backend)
                return 0;
        return registry_append_workers(h->backend->registry, reply);
}
