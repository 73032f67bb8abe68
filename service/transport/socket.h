/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The hub's private socket: a SOCK_STREAM unix socket where processes talk to the hub without a
 * bus daemon in between (systemd's /run/systemd/private, src/core/dbus.c, is the model).  Each
 * accepted connection is an sd-bus server connection serving the same objects as the bus, plus a
 * minimal org.freedesktop.DBus (Hello, AddMatch, RemoveMatch, GetNameOwner, NameHasOwner, GetId,
 * ListNames) so that bus clients (busctl --address, gdbus --address, libclusterhub) work unchanged.
 *
 * Identity on a connection comes from the connection, never from a message's sender field (which a
 * direct peer writes itself): each connection gets a never-reused name ":p2p.N" at accept, and
 * its credentials (SO_PEERCRED) are checked then: the hub's own uid, root, or a member of group
 * "clusterhub" (the rule of the bus policy).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "hub.h"
#include "list.h"

#define CONNECTION_NAME_PREFIX ":p2p."
#define HUB_SOCKET_GROUP "clusterhub"

struct Peer;
typedef struct MatchSet MatchSet;

typedef struct Connection {
        Hub *hub;
        sd_bus *bus;
        char *name;                  /* ":p2p.N", never reused while the hub runs */
        uid_t uid;
        pid_t pid;
        MatchSet *matches;           /* its AddMatch rules: which broadcast signals it gets */
        struct Peer *peer;           /* set while it holds state (peer.c) */
        int fd;                      /* of BUS, the key of socket_connection_of() */
        sd_event_source *io_event;   /* BUS's socket, events as sd_bus_get_events() last said */
        sd_event_source *time_event; /* enabled while sd_bus_get_timeout() is finite */
        sd_event_source *start_event;/* until authenticated: see on_started() */
        sd_event_source *drop_event; /* set once it is being dropped */
        const char *drop_reason;     /* a literal: why */
        /* What waits in BUS's write queue, oldest first: the size of each message as marshalled
         * (0 for one the hub did not see sent), as far as sd_bus_get_n_queued_write() says
         * they are still there (socket_connection_check_queue() catches up). */
        uint64_t *queued_sizes;      /* a ring */
        size_t queued_first, queued_n, queued_allocated;
        uint64_t queued_bytes;       /* their sum */
        bool hello;                  /* has called Hello */
        bool ready;                  /* in the listener's ready list: input left to process */
        bool touched;                /* in the listener's touched list: events to recompute */
        LIST_FIELDS(struct Connection, ready);
        LIST_FIELDS(struct Connection, touched);
} Connection;

/* Starts listening as H->listen_mode says (the path from --listen=, or the standard one on the
 * user or system bus).  0 when not listening, 1 when listening, negative errno on failure. */
int socket_listen(Hub *h);
/* Closes every connection (releasing its peer) and the listening socket, removing its file. */
void socket_shutdown(Hub *h);

/* The connection BUS is, or NULL when BUS is not a private-socket connection. */
Connection *socket_connection_of(Hub *h, sd_bus *bus);
/* Whether M arrived on (or was built for) a private-socket connection. */
bool socket_is_connection(Hub *h, sd_bus *bus);

/* A broadcast signal, as match rules see it: its header and its leading string (or object path)
 * arguments, the only arguments a rule can test. */
typedef struct SignalProbe {
        const char *path;
        const char *interface;
        const char *member;
        const char *types;           /* of ARGS: 's' or 'o' each, at most 3 */
        const char *args[3];
} SignalProbe;

/* Builds and sends one signal on BUS (a generated ch_*_emit_*() call); 0 or negative errno. */
typedef int (*socket_emit_fn)(sd_bus *bus, void *userdata);

/* The one broadcast helper: EMIT sends the signal on the bus (the broker filters), then on each
 * private-socket connection whose match rules match PROBE; an index of every connection's rules
 * (match.h) visits only those that can.  Returns what the bus send returned. */
int hub_broadcast(Hub *h, const SignalProbe *probe, socket_emit_fn emit, void *userdata);

/* Closes C later (from the event loop, after the current dispatch): its peer is released, as at
 * its death.  REASON (a string literal) goes to the log. */
void socket_connection_drop(Connection *c, const char *reason);
/* Drops C when its unsent output passed --max-queued-per-connection messages or
 * --max-queued-bytes-per-connection bytes; true when it did. */
bool socket_connection_check_queue(Connection *c);
/* The listening path, or NULL. */
const char *socket_path(Hub *h);
size_t socket_n_connections(Hub *h);
/* The bytes waiting for every connection to read them (GetStats 'connections_queued_bytes'). */
uint64_t socket_queued_bytes(Hub *h);
