/* SPDX-License-Identifier: MIT */
/* Bus glue of membership: Hub1.Register & co, the Worker1 objects, WorkerJoined/Left. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-login.h>

#include "backend/backend.h"
#include "backend/registry.h"
#include "barrier.h"
#include "bus-events.h"
#include "bus-requests.h"
#include "bus-util.h"
#include "bus-workers.h"
#include "ch-errors.h"
#include "ch-hub1-server.h"
#include "ch-worker1-server.h"
#include "deferred.h"
#include "log.h"
#include "peer.h"
#include "transport/socket.h"
#include "workers.h"


static char *worker_path(const char *id) {
        char *p = NULL;
        return asprintf(&p, "%s/%s", HUB_WORKER_PREFIX, id) < 0 ? NULL : p;
}

static uint64_t realtime_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* On the private socket the credentials come from SO_PEERCRED, which has the pid but no unit
 * (sd-bus does not augment a direct connection's owner creds from the cgroup): ask sd-login. */
static char *unit_of_pid(pid_t pid) {
        char *unit = NULL;

        if (sd_pid_get_user_unit(pid, &unit) >= 0 && unit)
                return unit;
        free(unit);
        unit = NULL;
        if (sd_pid_get_unit(pid, &unit) >= 0 && unit && !strneq(unit, "user@", 5))
                return unit;
        free(unit);
        return NULL;
}

/* The caller's unit: its user unit when it runs under a user manager, else its system
 * unit (but not the user manager's own user@UID.service). */
static void read_creds(sd_bus_message *m, Peer *p) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *c = NULL;
        const char *unit = NULL;
        pid_t pid = 0;

        if (peer_query_creds(p->hub, m, SD_BUS_CREDS_PID | SD_BUS_CREDS_UNIT | SD_BUS_CREDS_USER_UNIT | SD_BUS_CREDS_AUGMENT, &c) < 0)
                return;
        if (sd_bus_creds_get_pid(c, &pid) >= 0)
                p->pid = pid;
        if (sd_bus_creds_get_user_unit(c, &unit) < 0 || !unit) {
                unit = NULL;
                if (sd_bus_creds_get_unit(c, &unit) < 0 || (unit && strneq(unit, "user@", 5)))
                        unit = NULL;
        }
        free(p->unit);
        p->unit = unit ? strdup(unit) : NULL;
        if (!p->unit && p->pid > 0)
                p->unit = unit_of_pid(p->pid);
}

/* WorkerJoined(id, unique_name), WorkerLeft(id, reason), and the ObjectManager's announcements of
 * the Worker1 object, on the bus and the private socket. */
typedef struct WorkerSignal {
        const char *id, *arg, *path;
} WorkerSignal;

static int emit_joined_on(sd_bus *bus, void *userdata) {
        const WorkerSignal *w = userdata;
        return ch_hub1_emit_worker_joined(bus, NULL, HUB_PATH, w->id, w->arg);
}

static int emit_left_on(sd_bus *bus, void *userdata) {
        const WorkerSignal *w = userdata;
        return ch_hub1_emit_worker_left(bus, NULL, HUB_PATH, w->id, w->arg);
}

static int emit_added_on(sd_bus *bus, void *userdata) {
        const WorkerSignal *w = userdata;
        return bus_emit_object_added(bus, w->path);
}

static int emit_removed_on(sd_bus *bus, void *userdata) {
        const WorkerSignal *w = userdata;
        return bus_emit_object_removed(bus, w->path);
}

static void broadcast_worker(Hub *h, const char *member, const WorkerSignal *w, socket_emit_fn emit) {
        SignalProbe probe = { HUB_PATH, CH_HUB1_INTERFACE, member, "ss", { w->id, w->arg } };

        if (emit == emit_added_on || emit == emit_removed_on)
                probe = (SignalProbe) { HUB_PATH, "org.freedesktop.DBus.ObjectManager", member, "o", { w->path } };
        (void) hub_broadcast(h, &probe, emit, (void *) w);
}

/* The workers of every host: here, and the others' as the registry sees them (--redis). */
static size_t all_workers_count(Hub *h) {
        return workers_count(h) + registry_count(backend_registry(h));
}

/* Replies to a WaitForWorkers call with the registered ids (ID@NODE for another host's). */
static int reply_ids(sd_bus_message *call, Hub *h) {
        size_t max = all_workers_count(h);
        _cleanup_(freep) char **ids = calloc(max + 1, sizeof(char *));
        size_t n = 0;
        Peer *p;

        if (!ids)
                return -ENOMEM;
        LIST_FOREACH(workers, p, h->worker_list)
                ids[n++] = p->id;
        if (backend_registry(h))
                (void) registry_append_ids(backend_registry(h), ids, max, &n);
        return ch_hub1_reply_wait_for_workers(call, ids);
}

/* The number of workers grew: answer the WaitForWorkers calls it satisfies. */
static void wait_reply_ready(Hub *h) {
        BarrierWait *w;

        while ((w = barrier_take_ready(&h->worker_barrier, all_workers_count(h)))) {
                Deferred *d = w->userdata;

                barrier_wait_free(w);
                (void) reply_ids(d->call, h);
                deferred_free(d);
        }
}

static void wait_ended(Deferred *d, DeferredEnd why) {
        BarrierWait *w = d->userdata;

        if (why == DEFERRED_TIMEOUT)
                (void) bus_reply_errorf(d->call, CH_ERROR_TIMEOUT,
                                        "%zu of %zu workers registered before the timeout.",
                                        all_workers_count(d->hub), w->count);
        barrier_wait_free(w);
}

int bus_workers_register_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *id) {
        static const BusOption no_options[] = { {} };
        Hub *h = userdata;
        _cleanup_(freep) char *derived = NULL, *path = NULL;
        Peer *p, *squatter = NULL;
        int r;

        r = bus_read_options(m, no_options, ret_error);
        if (r < 0)
                return r;
        if (*id && !worker_id_is_valid(id))
                return bus_error_errno(ret_error, -EINVAL, "'%s' is not a worker id: 1 to %d characters of [A-Za-z0-9_].",
                                       id, WORKER_ID_MAX);
        r = peer_get_or_new(h, m, &p);
        if (r < 0)
                return r;
        read_creds(m, p);
        if (!*id) {
                r = worker_id_derive(p->unit, p->unique_name, &derived);
                if (r < 0)
                        return bus_error_errno(ret_error, r, "Cannot derive a worker id for %s.", p->unique_name);
                id = derived;
        }
        path = worker_path(id);
        if (!path)
                return -ENOMEM;
        if (p->id && !streq(p->id, id))
                return bus_error_errno(ret_error, -EINVAL, "This connection is already worker '%s'; Unregister first.", p->id);
        r = workers_check_claim(h, p, id, &squatter);
        if (r == -EALREADY)
                return ch_hub1_reply_register(m, path);
        if (r == -EPERM) {
                _cleanup_(freep) char *own = NULL;

                /* its own: ":1.42" -> bus_1_42, ":p2p.7" -> bus_p2p_7 */
                if (worker_id_derive(NULL, p->unique_name, &own) < 0)
                        own = NULL;
                return bus_error_errno(ret_error, -EADDRINUSE,
                                       "Worker id '%s' is reserved for the connection it is derived from; %s may use its own, %s, or an id of another form.",
                                       id, p->unique_name, own ? own : "bus_<its unique name>");
        }
        if (r == -EADDRINUSE)
                return bus_error_errno(ret_error, r, "Worker id '%s' is in use by %s (pid %u).",
                                       id, workers_find(h, id)->unique_name, (unsigned) workers_find(h, id)->pid);
        if (r < 0)
                return r;
        if (r > 0) {
                /* the id is derived from the caller's own unit: whoever took it first gives way */
                log_warning("Worker id '%s' was held by %s (pid %u), which has no claim on it; %s (%s) takes it.",
                            id, squatter->unique_name, (unsigned) squatter->pid, p->unique_name, p->unit);
                bus_workers_left(squatter, "displaced by the worker whose unit the id belongs to");
        }
        r = workers_add(h, p, id);
        if (r < 0)
                return r;
        p->since_ms = realtime_ms();
        p->lock_owner.description = p->id;

        log_info("Worker %s joined (%s, pid %u%s%s).", id, p->unique_name, (unsigned) p->pid,
                 p->unit ? ", " : "", p->unit ? p->unit : "");
        r = ch_hub1_reply_register(m, path);
        WorkerSignal w = { id, p->unique_name, path };
        broadcast_worker(h, "WorkerJoined", &w, emit_joined_on);
        broadcast_worker(h, "InterfacesAdded", &w, emit_added_on);
        backend_worker_joined(h, id, p->unique_name, p->pid, p->unit, p->since_ms);
        bus_events_worker_joined(p);
        bus_requests_worker_ready(p);
        wait_reply_ready(h);
        return r;
}

void bus_workers_left(Peer *p, const char *reason) {
        Hub *h = p->hub;
        _cleanup_(freep) char *path = worker_path(p->id), *id = strdup(p->id);

        /* out of memory only skips the announcements, never the removal */
        if (path)
                broadcast_worker(h, "InterfacesRemoved", &(WorkerSignal) { .path = path }, emit_removed_on);
        workers_remove(h, p);
        p->lock_owner.description = p->unique_name;
        if (!id)
                return;
        log_info("Worker %s left (%s).", id, reason);
        broadcast_worker(h, "WorkerLeft", &(WorkerSignal) { id, reason, NULL }, emit_left_on);
        backend_worker_left(h, id, reason);
}

void bus_workers_remote(Hub *h, bool joined, const char *qid, const char *arg) {
        WorkerSignal w = { qid, arg, NULL };

        log_debug("Worker %s %s (%s).", qid, joined ? "joined on its host" : "left", arg);
        broadcast_worker(h, joined ? "WorkerJoined" : "WorkerLeft", &w, joined ? emit_joined_on : emit_left_on);
        if (joined)
                wait_reply_ready(h);
}

int bus_workers_unregister_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Hub *h = userdata;
        Peer *p = peer_of(h, m);

        if (!p || !p->id)
                return bus_error_errno(ret_error, -ENOLINK, "%s is not a registered worker.", strempty(peer_name_of(h, m)));
        bus_workers_left(p, "unregistered");
        return ch_hub1_reply_unregister(m);
}

static int append_worker_row(sd_bus_message *reply, Peer *p) {
        uint32_t pid = p->pid;
        int r;

        r = sd_bus_message_open_container(reply, 'r', "ssua{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ssu", p->id, p->unique_name, pid);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "a{sv}", 2, "unit", "s", p->unit ? p->unit : "", "since_ms", "t", p->since_ms);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int append_workers(sd_bus_message *reply, void *userdata) {
        Hub *h = userdata;
        Peer *p;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ssua{sv})");
        if (r < 0)
                return r;
        LIST_FOREACH(workers, p, h->worker_list) {
                r = append_worker_row(reply, p);
                if (r < 0)
                        return r;
        }
        /* then those of the other hosts (--redis), as ID@NODE */
        r = backend_append_workers(h, reply);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

int bus_workers_list_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return ch_hub1_reply_list_workers(m, append_workers, userdata);
}

int bus_workers_wait_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint32_t count, uint32_t timeout_ms) {
        Hub *h = userdata;
        BarrierWait *w;
        Deferred *d;
        Peer *p;
        int r;

        if (barrier_reached(count, all_workers_count(h)))
                return reply_ids(m, h);
        r = peer_get_or_new(h, m, &p);
        if (r < 0)
                return r;
        r = peer_check_pending(p, ret_error);
        if (r < 0)
                return r;
        r = barrier_wait_new(&h->worker_barrier, count, NULL, &w);
        if (r < 0)
                return r;
        r = deferred_new(h, m, p, timeout_ms ? timeout_ms : h->limits.wait_timeout_ms, wait_ended, w, &d);
        if (r < 0) {
                barrier_wait_free(w);
                return r;
        }
        w->userdata = d;
        return 1;
}

/* --- Worker1 objects -------------------------------------------------------------------- */

static int worker_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *ret_error) {
        Hub *h = userdata;
        const char *id;
        Peer *p;

        if (!strneq(path, HUB_WORKER_PREFIX "/", strlen(HUB_WORKER_PREFIX "/")))
                return 0;
        id = path + strlen(HUB_WORKER_PREFIX "/");
        p = workers_find(h, id);
        if (!p)
                return 0;
        *found = p;
        return 1;
}

static int worker_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes, sd_bus_error *ret_error) {
        Hub *h = userdata;
        char **nodes = calloc(workers_count(h) + 1, sizeof(char *));
        size_t n = 0;
        Peer *p;

        if (!nodes)
                return -ENOMEM;
        LIST_FOREACH(workers, p, h->worker_list) {
                nodes[n] = worker_path(p->id);
                if (!nodes[n]) {
                        while (n > 0)
                                free(nodes[--n]);
                        free(nodes);
                        return -ENOMEM;
                }
                n++;
        }
        *ret_nodes = nodes;
        return 0;
}

static int prop_id(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Peer *p = userdata;
        return sd_bus_message_append_basic(reply, 's', p->id);
}

static int prop_unique_name(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Peer *p = userdata;
        return sd_bus_message_append_basic(reply, 's', p->unique_name);
}

static int prop_pid(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Peer *p = userdata;
        uint32_t pid = p->pid;
        return sd_bus_message_append_basic(reply, 'u', &pid);
}

static int prop_unit(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Peer *p = userdata;
        return sd_bus_message_append_basic(reply, 's', p->unit ? p->unit : "");
}

static int prop_since(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Peer *p = userdata;
        return sd_bus_message_append_basic(reply, 't', &p->since_ms);
}

static const ChWorker1Handlers worker1_handlers = {
        .prop_id = prop_id,
        .prop_unique_name = prop_unique_name,
        .prop_pid = prop_pid,
        .prop_unit = prop_unit,
        .prop_since = prop_since,
};

int bus_workers_setup(Hub *h, sd_bus *bus) {
        int r;

        r = ch_worker1_add_fallback(bus, NULL, HUB_WORKER_PREFIX, &worker1_handlers, worker_find, h);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, HUB_WORKER_PREFIX, worker_enumerate, h);
}
