/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus-locks.h"
#include "bus/bus-requests.h"
#include "bus/bus-util.h"
#include "bus/bus-workers.h"
#include "deferred.h"
#include "log.h"
#include "namespace.h"
#include "peer.h"
#include "transport/socket.h"
#include "workers.h"

const char *peer_origin(const Peer *p) {
        return p->id ? p->id : p->unique_name;
}

Peer *peer_find(Hub *h, const char *unique_name) {
        return unique_name ? hashmap_get(h->peers, unique_name) : NULL;
}

const char *peer_name_of(Hub *h, sd_bus_message *m) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        Connection *c;

        if (!bus || bus == h->bus)
                return sd_bus_message_get_sender(m);
        c = socket_connection_of(h, bus);
        return c ? c->name : NULL;
}

Peer *peer_of(Hub *h, sd_bus_message *m) {
        return peer_find(h, peer_name_of(h, m));
}

int peer_query_creds(Hub *h, sd_bus_message *m, uint64_t mask, sd_bus_creds **ret) {
        sd_bus *bus = sd_bus_message_get_bus(m);

        if (!bus || bus == h->bus)
                return sd_bus_query_sender_creds(m, mask, ret);
        if (!socket_connection_of(h, bus))
                return -ENXIO;
        return sd_bus_get_owner_creds(bus, mask, ret);
}

static int on_track_empty(sd_bus_track *track, void *userdata) {
        Peer *p = userdata;

        log_debug("Peer %s disconnected.", p->unique_name);
        peer_free(p, "disconnected");
        return 0;
}

int peer_check_pending(Peer *p, sd_bus_error *ret_error) {
        if (p->n_deferred >= p->hub->limits.max_pending_per_peer)
                return bus_error_errno(ret_error, -ENOBUFS, "%s already has %zu calls waiting (--max-pending-per-peer).",
                                       p->unique_name, p->n_deferred);
        return 0;
}

void peer_free(Peer *p, const char *reason) {
        if (!p)
                return;
        /* calls it is waiting on can no longer be answered */
        while (p->deferred.first)
                deferred_end(p->deferred.first, DEFERRED_CALLER_GONE);
        bus_requests_peer_gone(p);
        if (p->id)
                bus_workers_left(p, reason);
        bus_locks_peer_gone(p);
        lock_owner_release_all(&p->lock_owner);
        track_owner_release_all(&p->track_owner);
        bus_locks_rearm(p->hub);
        hashmap_remove(p->hub->peers, p->unique_name);
        if (p->conn)
                p->conn->peer = NULL;
        namespace_check_all_unused(p->hub);
        sd_bus_track_unref(p->track);
        free(p->unit);
        free(p->id);
        free(p->unique_name);
        free(p);
}

int peer_get_or_new(Hub *h, sd_bus_message *m, Peer **ret) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        Connection *c = bus && bus != h->bus ? socket_connection_of(h, bus) : NULL;
        const char *sender = c ? c->name : sd_bus_message_get_sender(m);
        Peer *p;
        int r;

        if (!sender || (bus != h->bus && !c))
                return -ENXIO;
        p = peer_find(h, sender);
        if (p) {
                *ret = p;
                return 0;
        }
        p = calloc(1, sizeof(Peer));
        if (!p)
                return -ENOMEM;
        p->hub = h;
        p->unique_name = strdup(sender);
        if (!p->unique_name) {
                free(p);
                return -ENOMEM;
        }
        lock_owner_init(&p->lock_owner, p->unique_name);
        p->server.server = p;
        p->bus = c ? c->bus : h->bus;
        p->conn = c;
        r = 0;
        /* on the socket the connection's Disconnected releases it (socket.c) */
        if (!c) {
                r = sd_bus_track_new(h->bus, &p->track, on_track_empty, p);
                if (r >= 0)
                        r = sd_bus_track_add_sender(p->track, m);
        }
        if (r >= 0)
                r = hashmap_put(h->peers, p->unique_name, p);
        if (r < 0) {
                sd_bus_track_unref(p->track);
                free(p->unique_name);
                free(p);
                return r;
        }
        if (c)
                c->peer = p;
        *ret = p;
        return 0;
}
