/* SPDX-License-Identifier: MIT */
/* The private socket: listening, accepting with a credentials check, one sd-bus server connection
 * per peer, signals filtered by each connection's match rules, and back-pressure. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-id128.h>

#include "bus/bus-util.h"
#include "log.h"
#include "macro.h"
#include "match.h"
#include "peer.h"
#include "shim.h"
#include "socket.h"

struct Listener {
        int fd;
        char *path;
        sd_event_source *source;
        sd_event_source *retry;  /* re-enables SOURCE after running out of file descriptors */
        bool bound;             /* the file at PATH is ours, removed at exit */
        bool have_group;
        gid_t group;            /* of HUB_SOCKET_GROUP, whose members may connect */
        uid_t uid;              /* the hub's own euid, which may connect */
        uint64_t next_id;       /* of the next connection's name */
        sd_id128_t server_id;   /* what GetId answers */
        Connection **by_fd;     /* each connection at the index of its file descriptor */
        MatchIndex *matches;    /* every connection's match rules, by what they can match */
        size_t n_by_fd;
        /* The connections are driven without sd_bus_attach_event(), whose prepare callback
         * sd-event would run for every connection on every loop iteration.  A connection's
         * poll events and timeout are recomputed right after it was processed, and for one that
         * had a message sent from elsewhere (TOUCHED) by SERVICE, a defer source enabled only
         * while a list is not empty, which also gives each READY connection another batch. */
        LIST_HEAD(Connection) ready;
        LIST_HEAD(Connection) touched;
        size_t n_ready;
        sd_event_source *service;
};

/* Messages processed on one connection per dispatch, so that a busy one does not starve the
 * others; the rest waits for its next turn on the ready list. */
#define CONNECTION_BATCH 64

static void connection_free(Connection *c, const char *reason);
static int on_connection_time(sd_event_source *s, uint64_t usec, void *userdata);

Connection *socket_connection_of(Hub *h, sd_bus *bus) {
        Listener *l = h->listener;
        Connection *c;
        int fd;

        if (!bus || bus == h->bus || !l)
                return NULL;
        fd = sd_bus_get_fd(bus);
        if (fd < 0 || (size_t) fd >= l->n_by_fd)
                return NULL;
        c = l->by_fd[fd];
        return c && c->bus == bus ? c : NULL;
}

bool socket_is_connection(Hub *h, sd_bus *bus) {
        return socket_connection_of(h, bus) != NULL;
}

const char *socket_path(Hub *h) {
        return h->listener ? h->listener->path : NULL;
}

size_t socket_n_connections(Hub *h) {
        return h->connections ? hashmap_size(h->connections) : 0;
}

uint64_t socket_queued_bytes(Hub *h) {
        uint64_t sum = 0;
        Connection *c;
        size_t i = 0;

        while (h->connections && hashmap_iterate(h->connections, &i, (void **) &c, NULL))
                if (!c->drop_event)
                        sum += c->queued_bytes;
        return sum;
}

/* --- who may connect ---------------------------------------------------------------------- */

static bool peer_in_group(int fd, gid_t group) {
        _cleanup_(freep) gid_t *groups = NULL;
        socklen_t len = 64 * sizeof(gid_t);

        for (int attempt = 0; attempt < 3; attempt++) {
                gid_t *n = realloc(groups, len);

                if (!n)
                        return false;
                groups = n;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) >= 0) {
                        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                                if (groups[i] == group)
                                        return true;
                        return false;
                }
                if (errno != ERANGE)
                        return false;
        }
        return false;
}

/* The bus policy's rule: the hub's own uid, root, or a member of group clusterhub. */
static bool peer_allowed(Listener *l, int fd, struct ucred *ret_cred) {
        struct ucred cred = {};
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
                return false;
        *ret_cred = cred;
        if (cred.uid == 0 || cred.uid == l->uid)
                return true;
        if (!l->have_group)
                return false;
        return cred.gid == l->group || peer_in_group(fd, l->group);
}

/* Logs the first refusals and then every power of two, so that a client retrying in a loop does
 * not flood the journal; GetStats counts them all. */
static void log_refused(Hub *h, const char *fmt, ...) _printf_(2, 3);
static void log_refused(Hub *h, const char *fmt, ...) {
        uint64_t n = ++h->stats.connections_refused;
        _cleanup_(freep) char *msg = NULL;
        va_list ap;

        if (n > 8 && (n & (n - 1)) != 0)
                return;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        log_warning("Refused a connection on %s: %s (%" PRIu64 " refused so far).", h->listener->path,
                    msg ? msg : "out of memory", n);
}

/* --- driving a connection ---------------------------------------------------------------- */

static void listener_arm(Listener *l) {
        (void) sd_event_source_set_enabled(l->service,
                                           LIST_IS_EMPTY(l->ready) && LIST_IS_EMPTY(l->touched) ? SD_EVENT_OFF : SD_EVENT_ON);
}

static void connection_set_ready(Connection *c, bool ready) {
        Listener *l = c->hub->listener;

        if (c->ready == ready)
                return;
        c->ready = ready;
        if (ready) {
                LIST_APPEND(ready, l->ready, c);
                l->n_ready++;
        } else {
                LIST_REMOVE(ready, l->ready, c);
                l->n_ready--;
        }
        listener_arm(l);
}

/* C was processed or had a message queued: recompute its events at the end of the dispatch. */
static void connection_touch(Connection *c) {
        Listener *l = c->hub->listener;

        if (c->touched || c->drop_event)
                return;
        c->touched = true;
        LIST_APPEND(touched, l->touched, c);
        listener_arm(l);
}

/* --- what waits for a connection to read ---------------------------------------------------
 * sd-bus tells how many messages it holds for a connection, not how many bytes.  The hub sees
 * every message it sends (the send gate's hook), so it keeps the sizes of those that stayed in
 * the queue, oldest first: a message sent while the queue was empty went to the kernel whole
 * (nothing is recorded, nothing is measured: a reader that keeps up costs nothing), and as the
 * queue shrinks its oldest entries leave.  A message queued without the hub seeing it (sd-bus's
 * own replies: Introspect, Peer, Properties) counts 0 bytes. */

static void queued_pop(Connection *c) {
        c->queued_bytes -= c->queued_sizes[c->queued_first];
        c->queued_first = (c->queued_first + 1) % c->queued_allocated;
        c->queued_n--;
}

static int queued_push(Connection *c, uint64_t size) {
        if (c->queued_n == c->queued_allocated) {
                size_t a = MAX(c->queued_allocated * 2, (size_t) 16);
                uint64_t *sizes = malloc(a * sizeof(uint64_t));

                if (!sizes)
                        return -ENOMEM;
                /* unrolled from the ring, oldest first */
                for (size_t i = 0; i < c->queued_n; i++)
                        sizes[i] = c->queued_sizes[(c->queued_first + i) % c->queued_allocated];
                free(c->queued_sizes);
                c->queued_sizes = sizes;
                c->queued_first = 0;
                c->queued_allocated = a;
        }
        c->queued_sizes[(c->queued_first + c->queued_n) % c->queued_allocated] = size;
        c->queued_n++;
        c->queued_bytes += size;
        return 0;
}

/* Forgets the sizes of the messages sd-bus has written since: N are left.  Returns N. */
static uint64_t queued_catch_up(Connection *c) {
        uint64_t n = 0;

        if (sd_bus_get_n_queued_write(c->bus, &n) < 0)
                n = 0;
        while (c->queued_n > n)
                queued_pop(c);
        return n;
}

/* M was just sent on C: when it stayed in the queue, it is the newest there. */
static void queued_sent(Connection *c, sd_bus_message *m) {
        uint64_t n = queued_catch_up(c);

        if (n <= c->queued_n)
                return;
        /* messages queued unseen before it count nothing */
        while (c->queued_n + 1 < n)
                if (queued_push(c, 0) < 0)
                        return;
        if (queued_push(c, bus_message_wire_size(m)) < 0)
                log_debug("Cannot count the bytes queued for connection %s: out of memory.", c->name);
}

static void on_sent(sd_bus *bus, sd_bus_message *m, void *userdata) {
        Connection *c = socket_connection_of(userdata, bus);

        if (!c)
                return;
        connection_touch(c);
        if (m && !c->drop_event)
                queued_sent(c, m);
}

/* What sd_bus_attach_event()'s prepare callback does, for this connection only. */
static void connection_update(Connection *c) {
        uint64_t until = UINT64_MAX;
        int events, r;

        if (c->drop_event)
                return;
        /* Whatever was queued for it since the last look: the hub's replies, and what other
         * connections' calls make it send there (EmitTo deliveries, Handle calls, Invalidate),
         * which a peer that neither reads nor sends would otherwise let grow without bound. */
        if (socket_connection_check_queue(c))
                return;
        events = sd_bus_get_events(c->bus);
        /* closing (an error): nothing to poll for, the timeout below is 0 */
        (void) sd_event_source_set_io_events(c->io_event, events > 0 ? (uint32_t) events : 0);
        r = sd_bus_get_timeout(c->bus, &until);
        if (r < 0) {
                log_debug_errno(r, "Connection %s failed: %m", c->name);
                socket_connection_drop(c, "failed");
                return;
        }
        if (until == 0) {
                /* messages already read, or the Disconnected message to deliver */
                connection_set_ready(c, true);
                return;
        }
        if (until == UINT64_MAX) {
                if (c->time_event)
                        (void) sd_event_source_set_enabled(c->time_event, SD_EVENT_OFF);
                return;
        }
        if (!c->time_event) {
                r = sd_event_add_time(c->hub->event, &c->time_event, CLOCK_MONOTONIC, until, 0, on_connection_time, c);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_description(c->time_event, "private-socket-timeout");
                return;
        }
        r = sd_event_source_set_time(c->time_event, until);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->time_event, SD_EVENT_ONESHOT);
        if (r >= 0)
                return;
fail:
        log_warning_errno(r, "Cannot arm the timeout of connection %s, closing it: %m", c->name);
        socket_connection_drop(c, "out of resources");
}

/* Processes up to CONNECTION_BATCH messages, keeping C on the ready list when more may wait. */
static void connection_run(Connection *c) {
        int r = 0;

        for (unsigned i = 0; i < CONNECTION_BATCH && !c->drop_event; i++) {
                r = sd_bus_process(c->bus, NULL);
                if (r <= 0)
                        break;
        }
        if (c->drop_event)
                return;
        if (r < 0) {
                /* what sd-bus does attached to a loop: close (sd-bus delivers Disconnected
                 * itself for the errors of a closed socket) */
                log_debug_errno(r, "Connection %s failed: %m", c->name);
                socket_connection_drop(c, "failed");
                return;
        }
        connection_set_ready(c, r > 0);
        /* its events now rather than in another loop iteration (its replies touched it) */
        if (c->touched) {
                LIST_REMOVE(touched, c->hub->listener->touched, c);
                c->touched = false;
                listener_arm(c->hub->listener);
        }
        connection_update(c);
}

static int on_connection_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        connection_run(userdata);
        return 0;
}

static int on_connection_time(sd_event_source *s, uint64_t usec, void *userdata) {
        connection_run(userdata);
        return 0;
}

static int on_service(sd_event_source *s, void *userdata) {
        Listener *l = userdata;
        size_t n = l->n_ready;
        Connection *c;

        /* one batch each for those that were ready, in turn (they rejoin at the end) */
        for (size_t i = 0; i < n && (c = l->ready.first); i++) {
                connection_set_ready(c, false);
                connection_run(c);
        }
        while ((c = l->touched.first)) {
                LIST_REMOVE(touched, l->touched, c);
                c->touched = false;
                connection_update(c);
        }
        listener_arm(l);
        return 0;
}

static int connection_register(Connection *c, int fd) {
        Listener *l = c->hub->listener;
        int r;

        if ((size_t) fd >= l->n_by_fd) {
                size_t n = MAX((size_t) fd + 1, l->n_by_fd * 2);
                Connection **a = realloc(l->by_fd, n * sizeof(Connection *));

                if (!a)
                        return -ENOMEM;
                memset(a + l->n_by_fd, 0, (n - l->n_by_fd) * sizeof(Connection *));
                l->by_fd = a;
                l->n_by_fd = n;
        }
        r = sd_event_add_io(c->hub->event, &c->io_event, fd, EPOLLIN, on_connection_io, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->io_event, "private-socket-connection");
        c->fd = fd;
        l->by_fd[fd] = c;
        return 0;
}

/* --- connections ------------------------------------------------------------------------- */

static int on_connection_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Connection *c = userdata;

        log_debug("Connection %s (pid %u) closed.", c->name, (unsigned) c->pid);
        socket_connection_drop(c, "disconnected");
        return 0;
}

static int on_drop(sd_event_source *s, void *userdata) {
        Connection *c = userdata;

        connection_free(c, c->drop_reason);
        return 0;
}

void socket_connection_drop(Connection *c, const char *reason) {
        int r;

        if (c->drop_event)
                return;
        r = sd_event_add_defer(c->hub->event, &c->drop_event, on_drop, c);
        if (r >= 0) {
                c->drop_reason = reason;
                /* a closed socket stays readable: do not wake the loop until it is gone */
                if (c->io_event)
                        (void) sd_event_source_set_enabled(c->io_event, SD_EVENT_OFF);
                if (c->time_event)
                        (void) sd_event_source_set_enabled(c->time_event, SD_EVENT_OFF);
                /* before the bus: its other messages are not worth reading now */
                (void) sd_event_source_set_priority(c->drop_event, SD_EVENT_PRIORITY_NORMAL - 1);
                return;
        }
        log_error_errno(r, "Cannot schedule closing connection %s, closing it now: %m", c->name);
        connection_free(c, reason);
}

bool socket_connection_check_queue(Connection *c) {
        const Limits *limits = &c->hub->limits;
        uint64_t n;

        if (c->drop_event)
                return true;
        n = queued_catch_up(c);
        if (n > limits->max_queued_per_connection) {
                log_warning("Closing connection %s (pid %u, uid %u): %" PRIu64 " messages wait for it to read, more than "
                            "--max-queued-per-connection=%" PRIu64 ".", c->name, (unsigned) c->pid, (unsigned) c->uid, n,
                            limits->max_queued_per_connection);
                socket_connection_drop(c, "not reading its messages (--max-queued-per-connection)");
        } else if (c->queued_bytes > limits->max_queued_bytes_per_connection) {
                log_warning("Closing connection %s (pid %u, uid %u): %" PRIu64 " bytes in %" PRIu64 " messages wait for it "
                            "to read, more than --max-queued-bytes-per-connection=%" PRIu64 ".", c->name, (unsigned) c->pid,
                            (unsigned) c->uid, c->queued_bytes, n, limits->max_queued_bytes_per_connection);
                socket_connection_drop(c, "not reading its messages (--max-queued-bytes-per-connection)");
        } else
                return false;
        c->hub->stats.connections_dropped_slow++;
        return true;
}

/* Every incoming message: the replies of a peer that sends calls but does not read them pile up
 * like signals do. */
static int on_connection_message(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Connection *c = userdata;

        if (c->drop_event)
                return 1; /* being dropped: nothing more is served */
        (void) socket_connection_check_queue(c);
        return 0;
}

/* After every turn of the loop until the connection is authenticated, then once.  A client that
 * sends its first message right behind the authentication's BEGIN (GDBus does) may have it read
 * together with BEGIN; sd-bus (252) finishes the authentication and leaves those bytes in its
 * buffer until more arrive on the socket, which for a client waiting for Hello's reply is never.
 * Process them here. */
static int on_started(sd_event_source *s, void *userdata) {
        Connection *c = userdata;

        if (c->drop_event || sd_bus_is_ready(c->bus) <= 0)
                return 0;
        c->start_event = sd_event_source_disable_unref(c->start_event);
        connection_run(c);
        return 0;
}

static void connection_free(Connection *c, const char *reason) {
        Hub *h = c->hub;
        Listener *l = h->listener;

        hashmap_remove(h->connections, c->name);
        connection_set_ready(c, false);
        if (c->touched) {
                LIST_REMOVE(touched, l->touched, c);
                c->touched = false;
        }
        if (c->io_event && l->by_fd[c->fd] == c)
                l->by_fd[c->fd] = NULL;
        if (c->peer)
                peer_free(c->peer, reason); /* clears c->peer */
        c->drop_event = sd_event_source_disable_unref(c->drop_event);
        c->start_event = sd_event_source_disable_unref(c->start_event);
        /* its sources go before its socket does */
        c->io_event = sd_event_source_disable_unref(c->io_event);
        c->time_event = sd_event_source_disable_unref(c->time_event);
        /* no flush: a peer that does not read would block the hub */
        sd_bus_close_unref(c->bus);
        match_set_free(c->matches);
        free(c->queued_sizes);
        free(c->name);
        free(c);
}

static int connection_start(Hub *h, int fd, const struct ucred *cred) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(freep) Connection *c = NULL;
        int r;

        c = calloc(1, sizeof(Connection));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->hub = h;
        c->uid = cred->uid;
        c->pid = cred->pid;
        if (asprintf(&c->name, CONNECTION_NAME_PREFIX "%" PRIu64, h->listener->next_id++) < 0) {
                c->name = NULL;
                close(fd);
                return -ENOMEM;
        }
        r = sd_bus_new(&bus);
        if (r < 0) {
                close(fd);
                goto fail;
        }
        r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0) {
                close(fd);
                goto fail;
        }
        if ((r = sd_bus_set_server(bus, 1, h->listener->server_id)) < 0 ||
            (r = sd_bus_set_description(bus, c->name)) < 0 ||
            /* replies and signals name the hub, so that clients' sender= matches work */
            (r = sd_bus_set_sender(bus, HUB_BUS_NAME)) < 0 ||
            (r = sd_bus_negotiate_creds(bus, true, SD_BUS_CREDS_PID | SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID |
                                                           SD_BUS_CREDS_EFFECTIVE_CAPS | SD_BUS_CREDS_COMM)) < 0 ||
            (r = sd_bus_start(bus)) < 0 ||
            (r = match_set_new_indexed(h->listener->matches, c, &c->matches)) < 0)
                goto fail;
        c->bus = bus;
        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_connection_disconnected, c);
        if (r >= 0)
                r = sd_bus_add_filter(bus, NULL, on_connection_message, c);
        if (r >= 0)
                r = hub_serve_connection(h, bus);
        if (r >= 0)
                r = shim_add(c);
        if (r >= 0)
                r = sd_event_add_post(h->event, &c->start_event, on_started, c);
        if (r >= 0)
                r = connection_register(c, fd);
        if (r >= 0)
                r = hashmap_put(h->connections, c->name, c);
        if (r < 0) {
                c->start_event = sd_event_source_disable_unref(c->start_event);
                if (c->io_event)
                        h->listener->by_fd[fd] = NULL;
                c->io_event = sd_event_source_disable_unref(c->io_event);
                goto fail;
        }
        TAKE_PTR(bus);
        connection_touch(c); /* its first events and the authentication's timeout */
        h->stats.connections_accepted++;
        log_debug("Accepted connection %s (pid %u, uid %u).", c->name, (unsigned) c->pid, (unsigned) c->uid);
        TAKE_PTR(c);
        return 0;
fail:
        match_set_free(c->matches);
        free(c->name);
        return log_warning_errno(r, "Cannot set up a connection on %s (pid %u): %m", h->listener->path, (unsigned) cred->pid);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Hub *h = userdata;

        h->listener->retry = sd_event_source_unref(h->listener->retry);
        (void) sd_event_source_set_enabled(h->listener->source, SD_EVENT_ON);
        return 0;
}

/* Out of file descriptors, the pending connection stays in the backlog and the socket stays
 * readable: pause accepting for a moment instead of spinning. */
static void pause_accepting(Hub *h) {
        Listener *l = h->listener;

        if (l->retry)
                return;
        if (sd_event_add_time_relative(h->event, &l->retry, CLOCK_MONOTONIC, 100 * USEC_PER_MSEC, 0, on_retry, h) >= 0)
                (void) sd_event_source_set_enabled(l->source, SD_EVENT_OFF);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Hub *h = userdata;
        Listener *l = h->listener;

        /* a few per wakeup: a burst of connections does not starve the rest of the loop */
        for (int i = 0; i < 64; i++) {
                struct ucred cred = {};
                int nfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (nfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE) {
                                log_refused(h, "out of file descriptors (raise LimitNOFILE=)");
                                pause_accepting(h);
                                return 0;
                        }
                        return log_error_errno(-errno, "accept() on %s failed: %m", l->path), 0;
                }
                if (!peer_allowed(l, nfd, &cred)) {
                        log_refused(h, "pid %u runs as uid %u, gid %u: only uid %u, root and group %s may connect",
                                    (unsigned) cred.pid, (unsigned) cred.uid, (unsigned) cred.gid, (unsigned) l->uid,
                                    HUB_SOCKET_GROUP);
                        close(nfd);
                        continue;
                }
                if (hashmap_size(h->connections) >= h->limits.max_connections) {
                        log_refused(h, "pid %u: the hub has %" PRIu64 " connections (--max-connections)",
                                    (unsigned) cred.pid, h->limits.max_connections);
                        close(nfd);
                        continue;
                }
                (void) connection_start(h, nfd, &cred);
        }
        return 0;
}

/* --- the listening socket ---------------------------------------------------------------- */

static int mkdir_private(const char *dir, mode_t mode) {
        struct stat st;

        if (mkdir(dir, mode) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Cannot create %s: %m", dir);
        if (stat(dir, &st) < 0)
                return log_error_errno(-errno, "Cannot stat %s: %m", dir);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "%s is not a directory.", dir);
        return 0;
}

/* Whether the bus in $VAR is the standard one at DEFAULT_PATH (unset: sd-bus uses that one).  A
 * hub on another session bus (a test's, a dbus-launch session's) does not put a socket in the
 * standard place: that one belongs to the hub of the standard bus. */
static bool bus_is_standard(const char *var, const char *default_path) {
        const char *e = getenv(var);
        size_t n;

        if (!e || !*e)
                return true;
        if (!strneq(e, "unix:path=", strlen("unix:path=")))
                return false;
        e += strlen("unix:path=");
        n = strcspn(e, ",;");
        return n == strlen(default_path) && strneq(e, default_path, n);
}

/* The path to listen on: --listen=, else the standard one of the user or system bus; NULL (and 0)
 * when not listening. */
static int listen_path(Hub *h, char **ret) {
        _cleanup_(freep) char *dir = NULL;
        const char *e;
        int r;

        switch (h->listen_mode) {
        case LISTEN_NO:
                return 0;
        case LISTEN_PATH:
                *ret = strdup(h->listen_path);
                return *ret ? 1 : -ENOMEM;
        case LISTEN_DEFAULT:
                break;
        }
        switch (h->bus_kind) {
        case BUS_ADDRESS:
                return 0;
        case BUS_USER:
                e = getenv("XDG_RUNTIME_DIR");
                if (!e || e[0] != '/') {
                        log_notice("No $XDG_RUNTIME_DIR: not listening on a private socket (use --listen=PATH).");
                        return 0;
                }
                if (asprintf(&dir, "%s/bus", e) < 0)
                        return -ENOMEM;
                if (!bus_is_standard("DBUS_SESSION_BUS_ADDRESS", dir)) {
                        log_info("The session bus is not %s: not listening on a private socket (use --listen=PATH).", dir);
                        return 0;
                }
                free(dir);
                if (asprintf(&dir, "%s/clusterhub", e) < 0)
                        return -ENOMEM;
                r = mkdir_private(dir, 0700);
                break;
        case BUS_SYSTEM:
                if (!bus_is_standard("DBUS_SYSTEM_BUS_ADDRESS", "/run/dbus/system_bus_socket") &&
                    !bus_is_standard("DBUS_SYSTEM_BUS_ADDRESS", "/var/run/dbus/system_bus_socket")) {
                        log_info("The system bus is not the standard one: not listening on a private socket (use --listen=PATH).");
                        return 0;
                }
                /* RuntimeDirectory=clusterhub sets $RUNTIME_DIRECTORY (maybe a list) */
                e = getenv("RUNTIME_DIRECTORY");
                dir = e && e[0] == '/' ? strndup(e, strcspn(e, ":")) : strdup("/run/clusterhub");
                if (!dir)
                        return -ENOMEM;
                r = mkdir_private(dir, 0750);
                break;
        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;
        if (asprintf(ret, "%s/private", dir) < 0)
                return -ENOMEM;
        return 1;
}

/* A socket file left by a hub that crashed is removed; one that a live hub answers on is not. */
static int remove_stale(const char *path, const struct sockaddr_un *sa, socklen_t salen) {
        struct stat st;
        int fd, r;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return log_error_errno(-EEXIST, "%s exists and is not a socket; not replacing it.", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        r = connect(fd, (const struct sockaddr *) sa, salen);
        close(fd);
        if (r >= 0)
                return log_error_errno(-EADDRINUSE, "Another process listens on %s.", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(-errno, "Cannot remove the stale socket %s: %m", path);
        return 0;
}

static void listener_init_policy(Listener *l) {
        struct group grp, *res = NULL;
        char buf[4096];

        l->uid = geteuid();
        if (sd_id128_randomize(&l->server_id) < 0)
                l->server_id = SD_ID128_MAKE(c1,05,7e,4b,2f,3a,44,8d,9b,61,0a,5e,77,d2,c8,13);
        if (getgrnam_r(HUB_SOCKET_GROUP, &grp, buf, sizeof(buf), &res) == 0 && res) {
                l->have_group = true;
                l->group = res->gr_gid;
        }
}

/* Each connection is a file descriptor: make room for --max-connections where the hard limit
 * allows (the hub polls with epoll, never select()).  The system unit sets LimitNOFILE= as its
 * seccomp filter refuses setrlimit(). */
static void raise_fd_limit(Hub *h) {
        struct rlimit rl;
        rlim_t want = (rlim_t) MIN(h->limits.max_connections, (uint64_t) 1 << 20) + 256;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
                return;
        rl.rlim_cur = MIN(want, rl.rlim_max);
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(-errno, "Cannot raise RLIMIT_NOFILE: %m");
        if (rl.rlim_cur < want)
                log_notice("Up to %" PRIu64 " connections (--max-connections) need %llu file descriptors; the limit is %llu.",
                           h->limits.max_connections, (unsigned long long) want, (unsigned long long) rl.rlim_cur);
}

int socket_listen(Hub *h) {
        _cleanup_(freep) char *path = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;
        Listener *l;
        mode_t old;
        int fd, r;

        r = listen_path(h, &path);
        if (r <= 0)
                return r;
        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "The socket path %s is longer than %zu bytes.", path,
                                       sizeof(sa.sun_path) - 1);
        memcpy(sa.sun_path, path, strlen(path));
        salen = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
        h->connections = hashmap_new();
        l = calloc(1, sizeof(Listener));
        if (!h->connections || !l || match_index_new(&l->matches) < 0) {
                free(l);
                return -ENOMEM;
        }
        l->fd = -EBADF;
        l->path = TAKE_PTR(path);
        h->listener = l;
        listener_init_policy(l);
        raise_fd_limit(h);

        r = remove_stale(l->path, &sa, salen);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot create a socket: %m");
        l->fd = fd;
        /* never, even for an instant, a socket others may open before its mode is set */
        old = umask(0077);
        r = bind(fd, (const struct sockaddr *) &sa, salen);
        umask(old);
        if (r < 0)
                return log_error_errno(-errno, "Cannot bind to %s: %m", l->path);
        l->bound = true;
        /* the group of the hub (clusterhub under the system unit) may connect too */
        if (chmod(l->path, 0660) < 0)
                return log_error_errno(-errno, "Cannot set the mode of %s: %m", l->path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(-errno, "Cannot listen on %s: %m", l->path);
        r = sd_event_add_io(h->event, &l->source, fd, EPOLLIN, on_accept, h);
        if (r < 0)
                return log_error_errno(r, "Cannot watch %s: %m", l->path);
        (void) sd_event_source_set_description(l->source, "private-socket");
        r = sd_event_add_defer(h->event, &l->service, on_service, l);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the private socket's connections: %m");
        (void) sd_event_source_set_enabled(l->service, SD_EVENT_OFF);
        (void) sd_event_source_set_description(l->service, "private-socket-connections");
        bus_set_sent_hook(on_sent, h);
        log_info("Listening on %s (uid %u, root%s%s may connect).", l->path, (unsigned) l->uid,
                 l->have_group ? " and group " : "", l->have_group ? HUB_SOCKET_GROUP : "");
        return 1;
}

void socket_shutdown(Hub *h) {
        Listener *l = h->listener;
        Connection *c;
        size_t i = 0;

        while (hashmap_iterate(h->connections, &i, (void **) &c, NULL)) {
                connection_free(c, "hub exiting");
                i = 0;
        }
        h->connections = hashmap_free(h->connections);
        if (!l)
                return;
        bus_set_sent_hook(NULL, NULL);
        match_index_free(l->matches);
        l->service = sd_event_source_disable_unref(l->service);
        free(l->by_fd);
        l->source = sd_event_source_disable_unref(l->source);
        l->retry = sd_event_source_disable_unref(l->retry);
        if (l->fd >= 0)
                close(l->fd);
        if (l->bound)
                (void) unlink(l->path);
        free(l->path);
        free(l);
        h->listener = NULL;
}

/* --- signals ----------------------------------------------------------------------------- */

static int probe_message(Hub *h, const SignalProbe *probe, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(h->bus, &m, probe->path, probe->interface, probe->member);
        if (r < 0)
                return r;
        for (size_t i = 0; probe->types && probe->types[i] && i < ELEMENTSOF(probe->args); i++) {
                r = sd_bus_message_append_basic(m, probe->types[i], probe->args[i]);
                if (r < 0)
                        return r;
        }
        /* sealed to be read by the rules; never sent */
        r = sd_bus_message_seal(m, 1, 0);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

typedef struct Broadcast {
        const SignalProbe *probe;
        socket_emit_fn emit;
        void *userdata;
} Broadcast;

/* A connection whose rules match the broadcast signal: its copy. */
static void broadcast_to(void *owner, void *userdata) {
        const Broadcast *b = userdata;
        Connection *c = owner;
        int r;

        if (c->drop_event)
                return;
        r = b->emit(c->bus, b->userdata);
        if (r == -ENOBUFS) {
                c->hub->stats.connections_dropped_slow++;
                socket_connection_drop(c, "not reading its messages (queue full)");
        } else if (r < 0)
                log_debug_errno(r, "Cannot pass signal %s to %s: %m", b->probe->member, c->name);
        else
                (void) socket_connection_check_queue(c);
}

int hub_broadcast(Hub *h, const SignalProbe *probe, socket_emit_fn emit, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Broadcast b = { probe, emit, userdata };
        int ret, r;

        ret = emit(h->bus, userdata);
        if (!h->listener || match_index_size(h->listener->matches) == 0)
                return ret;
        r = probe_message(h, probe, &m);
        if (r < 0) {
                log_warning_errno(r, "Cannot pass signal %s to the private socket: %m", probe->member);
                return ret;
        }
        /* only the connections with a rule that can match it are visited */
        (void) match_index_foreach(h->listener->matches, m, HUB_BUS_NAME, broadcast_to, &b);
        return ret;
}
