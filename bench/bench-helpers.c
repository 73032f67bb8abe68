/* SPDX-License-Identifier: MIT */
/*
 * Helper processes of clusterhub-bench.  The benchmark re-executes itself with one of
 *   --baseline-service  the floor: a minimal sd-bus service (Ping method, Event signal)
 *   --subscriber        one connection counting Event signals that match a rule
 *   --worker            one registered worker serving requests with the generated Handler1 skeleton
 *   --scale-clients     N connections, connection i subscribed to event "scale.<i>"
 *   --scale-workers     N connections, each registered as a worker
 *   --p2p-baseline      the floor of the private socket: the baseline's vtable served by sd-bus
 *                       directly on a unix socket (no bus)
 * Every helper talks to the benchmark over fd 3 (a socketpair): it writes 'r' once ready, answers
 * 'c' with its delivery count (uint64_t) and exits when the other end closes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "clusterhub/clusterhub.h"
#include "ch-handler1-server.h"

#include "bench.h"

static uint64_t delivered;

static int ctl_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        char c;
        ssize_t n = read(fd, &c, 1);

        if (n <= 0)
                return sd_event_exit(sd_event_source_get_event(s), 0);
        if (c == 'c') {
                if (write(fd, &delivered, sizeof delivered) != (ssize_t) sizeof delivered)
                        return sd_event_exit(sd_event_source_get_event(s), 0);
        }
        return 0;
}

static int count_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        delivered++;
        return 0;
}

static int ready(void) {
        char c = 'r';
        return write(BENCH_CTL_FD, &c, 1) == 1 ? 0 : -errno;
}

static int connect_bus(sd_bus **ret, const char *address) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

/* Run the loop until the benchmark closes the control socket. */
static int run_loop(sd_event *e) {
        int r = sd_event_add_io(e, NULL, BENCH_CTL_FD, EPOLLIN, ctl_io, NULL);
        if (r < 0)
                return r;
        r = ready();
        if (r < 0)
                return r;
        return sd_event_loop(e);
}

static void raise_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static int fail(const char *what, int r) {
        fprintf(stderr, "clusterhub-bench helper: %s: %s\n", what, strerror(-r));
        return 1;
}

/* ---- the baseline service ------------------------------------------------ */

static int method_ping(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *key;
        int r = sd_bus_message_read(m, "s", &key);
        if (r < 0)
                return r;
        /* the same shape as Store1.Get: a string in, a variant out */
        return sd_bus_reply_method_return(m, "v", "s", BENCH_VALUE);
}

static int method_blast(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *event;
        uint32_t count;
        int r = sd_bus_message_read(m, "su", &event, &count);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < count; i++) {
                /* the same shape as Events1.Event */
                r = sd_bus_emit_signal(bus, BENCH_BASE_PATH, BENCH_BASE_IFACE, "Event", "ssv",
                                       event, ":bench", "s", BENCH_PAYLOAD);
                if (r < 0)
                        return r;
        }
        return sd_bus_reply_method_return(m, NULL);
}

/* UNPRIVILEGED: like the hub's generated vtables.  Without it, sd-bus on a connection opened by
 * address (not "trusted") asks the bus driver for the caller's uid on every call. */
static const sd_bus_vtable baseline_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Ping", "s", "v", method_ping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Blast", "su", "", method_blast, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL("Event", "ssv", 0),
        SD_BUS_VTABLE_END,
};

int helper_baseline_service(const char *address) {
        sd_event *e = NULL;
        sd_bus *bus = NULL;
        int r;

        if ((r = sd_event_default(&e)) < 0)
                return fail("sd_event_default", r);
        if ((r = connect_bus(&bus, address)) < 0)
                return fail("connect", r);
        if ((r = sd_bus_add_object_vtable(bus, NULL, BENCH_BASE_PATH, BENCH_BASE_IFACE, baseline_vtable, NULL)) < 0)
                return fail("add vtable", r);
        if ((r = sd_bus_request_name(bus, BENCH_BASE_NAME, 0)) < 0)
                return fail("request name", r);
        if ((r = sd_bus_attach_event(bus, e, 0)) < 0)
                return fail("attach", r);
        r = run_loop(e);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}

/* ---- subscribers ---------------------------------------------------------- */

int helper_subscriber(const char *address, const char *rule) {
        sd_event *e = NULL;
        sd_bus *bus = NULL;
        int r;

        if ((r = sd_event_default(&e)) < 0)
                return fail("sd_event_default", r);
        if ((r = connect_bus(&bus, address)) < 0)
                return fail("connect", r);
        if ((r = sd_bus_add_match(bus, NULL, rule, count_signal, NULL)) < 0)
                return fail("add match", r);
        if ((r = sd_bus_attach_event(bus, e, 0)) < 0)
                return fail("attach", r);
        r = run_loop(e);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}

/* The connections of a scale helper, closed when its loop ends (so that a sanitizer build
 * reports no leak). */
static void close_all(sd_bus **buses, unsigned n, sd_event *e) {
        for (unsigned i = 0; i < n; i++)
                sd_bus_flush_close_unref(buses[i]);
        free(buses);
        sd_event_unref(e);
}

int helper_scale_clients(const char *address, unsigned first, unsigned count) {
        sd_event *e = NULL;
        sd_bus **buses = calloc(count ? count : 1, sizeof *buses);
        unsigned n = 0;
        int r;

        if (!buses)
                return fail("calloc", -ENOMEM);
        raise_nofile();
        if ((r = sd_event_default(&e)) < 0)
                return fail("sd_event_default", r);
        for (unsigned i = 0; i < count; i++) {
                sd_bus *bus = NULL;
                char rule[512];

                if ((r = connect_bus(&bus, address)) < 0)
                        return fail("connect", r);
                buses[n++] = bus;
                snprintf(rule, sizeof rule,
                         "type='signal',path='" CH_DEFAULT_NAMESPACE_PATH "',interface='org.clusterhub.Events1',"
                         "member='Event',arg0='scale.%u'", first + i);
                if ((r = sd_bus_add_match(bus, NULL, rule, count_signal, NULL)) < 0)
                        return fail("add match", r);
                if ((r = sd_bus_attach_event(bus, e, 0)) < 0)
                        return fail("attach", r);
        }
        r = run_loop(e);
        close_all(buses, n, e);
        return r < 0 ? 1 : 0;
}

/* ---- workers ---------------------------------------------------------------- */

static int append_empty_options(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "a{sv}", 0);
}

static int append_copy_payload(sd_bus_message *reply, void *userdata) {
        return sd_bus_message_copy(reply, userdata, false);
}

static int handle(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *namespace,
                  const char *method, const char *origin) {
        delivered++;
        /* echo the payload back unchanged */
        return ch_handler1_reply_handle(m, append_copy_payload, m);
}

static const ChHandler1Handlers handlers = { .handle = handle };

static int register_worker(sd_bus *bus, const char *id) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *path = NULL;
        int r = ch_hub1_call_register(bus, CH_BUS_NAME, CH_HUB_PATH, id, append_empty_options, NULL, &path, &error);
        if (r < 0)
                fprintf(stderr, "clusterhub-bench helper: Register(%s): %s\n", id, error.message ?: strerror(-r));
        free(path);
        sd_bus_error_free(&error);
        return r;
}

int helper_worker(const char *address, const char *id, char **methods) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_event *e = NULL;
        sd_bus *bus = NULL;
        int r;

        if ((r = sd_event_default(&e)) < 0)
                return fail("sd_event_default", r);
        if ((r = connect_bus(&bus, address)) < 0)
                return fail("connect", r);
        if ((r = ch_handler1_add_object(bus, NULL, CH_HANDLER_PATH, &handlers, NULL)) < 0)
                return fail("add Handler1", r);
        if ((r = register_worker(bus, id)) < 0)
                return 1;
        if (methods && methods[0]) {
                r = ch_requests1_call_serve(bus, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, methods, &error);
                if (r < 0) {
                        fprintf(stderr, "clusterhub-bench helper: Serve: %s\n", error.message ?: strerror(-r));
                        return 1;
                }
        }
        if ((r = sd_bus_attach_event(bus, e, 0)) < 0)
                return fail("attach", r);
        r = run_loop(e);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}

int helper_scale_workers(const char *address, unsigned first, unsigned count) {
        sd_event *e = NULL;
        sd_bus **buses = calloc(count ? count : 1, sizeof *buses);
        unsigned n = 0;
        int r;

        if (!buses)
                return fail("calloc", -ENOMEM);
        raise_nofile();
        if ((r = sd_event_default(&e)) < 0)
                return fail("sd_event_default", r);
        for (unsigned i = 0; i < count; i++) {
                sd_bus *bus = NULL;
                char id[64];

                if ((r = connect_bus(&bus, address)) < 0)
                        return fail("connect", r);
                buses[n++] = bus;
                snprintf(id, sizeof id, "scale_w%u", first + i);
                if ((r = register_worker(bus, id)) < 0)
                        return 1;
                if ((r = sd_bus_attach_event(bus, e, 0)) < 0)
                        return fail("attach", r);
        }
        r = run_loop(e);
        close_all(buses, n, e);
        return r < 0 ? 1 : 0;
}

/* ---- the baseline served peer-to-peer ---------------------------------------------------- */

/* The floor of the private socket: the same Ping/Blast vtable served by sd-bus directly on a
 * unix socket (accept, sd_bus_set_server), with no bus in between.  Clients connect the way they
 * connect to the hub's socket (bus_client, so Hello first): a minimal org.freedesktop.DBus
 * answers Hello, AddMatch and RemoveMatch.  Blast sends each Event to the connections whose
 * AddMatch rule's arg0 (equal) or arg0namespace (prefix) matches the event name, as the hub does
 * on its socket, so that subscribers get only what they asked for. */

#define P2P_MAX_CONNS 64

typedef struct P2pConn {
        sd_bus *bus;
        char arg0[128];
        bool namespace, subscribed;
} P2pConn;

static P2pConn p2p_conns[P2P_MAX_CONNS];
static unsigned p2p_n, p2p_next_id = 1;

static P2pConn *p2p_conn_of(sd_bus *bus) {
        for (unsigned i = 0; i < p2p_n; i++)
                if (p2p_conns[i].bus == bus)
                        return &p2p_conns[i];
        return NULL;
}

static int shim_hello(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        char name[32];
        snprintf(name, sizeof name, ":p2p.%u", p2p_next_id++);
        return sd_bus_reply_method_return(m, "s", name);
}

/* Keep arg0='X' or arg0namespace='X' of the rule: the only keys the bench's subscribers use to
 * pick events. */
static int shim_add_match(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        P2pConn *c = p2p_conn_of(sd_bus_message_get_bus(m));
        const char *rule, *p;
        int r = sd_bus_message_read(m, "s", &rule);
        if (r < 0)
                return r;
        if (c) {
                bool ns = false;
                if ((p = strstr(rule, "arg0namespace='")))
                        p += strlen("arg0namespace='"), ns = true;
                else if ((p = strstr(rule, "arg0='")))
                        p += strlen("arg0='");
                c->namespace = ns;
                c->arg0[0] = 0;
                if (p)
                        snprintf(c->arg0, sizeof c->arg0, "%.*s", (int) strcspn(p, "'"), p);
                c->subscribed = true;
        }
        return sd_bus_reply_method_return(m, NULL);
}

static int shim_remove_match(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        P2pConn *c = p2p_conn_of(sd_bus_message_get_bus(m));
        if (c)
                c->subscribed = false;
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable shim_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Hello", "", "s", shim_hello, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("AddMatch", "s", "", shim_add_match, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RemoveMatch", "s", "", shim_remove_match, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static bool p2p_wants(const P2pConn *c, const char *event) {
        size_t n = strlen(c->arg0);
        if (!c->subscribed || !c->bus)
                return false;
        if (!c->namespace)
                return strcmp(c->arg0, event) == 0;
        return strncmp(c->arg0, event, n) == 0 && (event[n] == 0 || event[n] == '.');
}

static int p2p_blast(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *event;
        uint32_t count;
        int r = sd_bus_message_read(m, "su", &event, &count);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < count; i++)
                for (unsigned j = 0; j < p2p_n; j++) {
                        if (!p2p_wants(&p2p_conns[j], event))
                                continue;
                        r = sd_bus_emit_signal(p2p_conns[j].bus, BENCH_BASE_PATH, BENCH_BASE_IFACE, "Event", "ssv", event,
                                               ":bench", "s", BENCH_PAYLOAD);
                        if (r < 0 && r != -ENOTCONN && r != -ECONNRESET)
                                return r;
                }
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable p2p_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Ping", "s", "v", method_ping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Blast", "su", "", p2p_blast, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL("Event", "ssv", 0),
        SD_BUS_VTABLE_END,
};

static int p2p_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        P2pConn *c = userdata;
        c->subscribed = false;
        return 0;
}

static int p2p_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        sd_id128_t *id = userdata;
        int nfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        sd_bus *bus = NULL;
        P2pConn *c;
        int r;

        if (nfd < 0)
                return 0;
        if (p2p_n == P2P_MAX_CONNS) {
                close(nfd);
                return 0;
        }
        c = &p2p_conns[p2p_n];
        memset(c, 0, sizeof *c);
        if ((r = sd_bus_new(&bus)) < 0) {
                close(nfd);
                return fail("sd_bus_new", r), 0;
        }
        if ((r = sd_bus_set_fd(bus, nfd, nfd)) < 0) {
                close(nfd);
                sd_bus_unref(bus);
                return fail("sd_bus_set_fd", r), 0;
        }
        if ((r = sd_bus_set_server(bus, 1, *id)) < 0 ||
            (r = sd_bus_add_object_vtable(bus, NULL, BENCH_BASE_PATH, BENCH_BASE_IFACE, p2p_vtable, NULL)) < 0 ||
            (r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/DBus", "org.freedesktop.DBus", shim_vtable, NULL)) < 0 ||
            (r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                     "org.freedesktop.DBus.Local", "Disconnected", p2p_disconnected, c)) < 0 ||
            (r = sd_bus_start(bus)) < 0 ||
            (r = sd_bus_attach_event(bus, sd_event_source_get_event(s), 0)) < 0) {
                sd_bus_unref(bus);
                return fail("serving a connection", r), 0;
        }
        c->bus = bus;
        p2p_n++;
        return 0;
}

int helper_p2p_baseline(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        sd_id128_t id;
        sd_event *e = NULL;
        int fd, r;

        if (strlen(path) >= sizeof sa.sun_path)
                return fail("socket path", -ENAMETOOLONG);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if ((r = sd_id128_randomize(&id)) < 0)
                return fail("sd_id128_randomize", r);
        if ((r = sd_event_default(&e)) < 0)
                return fail("sd_event_default", r);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 64) < 0)
                return fail("listen", -errno);
        if ((r = sd_event_add_io(e, NULL, fd, EPOLLIN, p2p_accept, &id)) < 0)
                return fail("sd_event_add_io", r);
        r = run_loop(e);
        for (unsigned i = 0; i < p2p_n; i++)
                sd_bus_flush_close_unref(p2p_conns[i].bus);
        close(fd);
        (void) unlink(path);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}

/* ---- the paced writer of the cached-Get rows ------------------------------------------ */

typedef struct PacedWriter {
        sd_bus *bus;
        const char *key;
        unsigned rate;                  /* writes per second */
        uint64_t start_usec;
        uint64_t sent;
        int64_t value;
} PacedWriter;

static int paced_set_cb(sd_bus_message *reply, const sd_bus_error *error, int set, void *userdata) {
        if (!error)
                delivered++; /* acknowledged writes */
        return 0;
}

static int append_paced_value(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "x", *(int64_t *) userdata);
        return r < 0 ? r : sd_bus_message_append(m, "a{sv}", 0);
}

/* Every millisecond: as many Sets as the rate asks for by now (a late timer catches up, at most
 * 16 at once), increasing integers, one connection. */
static int paced_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        PacedWriter *w = userdata;
        uint64_t due = (usec - w->start_usec) * w->rate / 1000000;

        for (unsigned i = 0; w->sent < due && i < 16; i++, w->sent++) {
                w->value++;
                int r = ch_store1_call_set_async(w->bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, w->key,
                                                 append_paced_value, &w->value, paced_set_cb, NULL, 0);
                if (r < 0)
                        return fail("Set", r);
        }
        if (w->sent < due)
                w->sent = due; /* too far behind: skip, do not burst */
        (void) sd_event_source_set_time(s, usec + 1000);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

int helper_paced_writer(const char *address, const char *key, unsigned rate) {
        PacedWriter w = { .key = key, .rate = rate };
        sd_event *e = NULL;
        int r;

        r = connect_bus(&w.bus, address);
        if (r < 0)
                return fail("connect", r);
        r = sd_event_default(&e);
        if (r < 0)
                return fail("sd_event_default", r);
        r = sd_bus_attach_event(w.bus, e, 0);
        if (r < 0)
                return fail("attach", r);
        (void) sd_event_now(e, CLOCK_MONOTONIC, &w.start_usec);
        /* accuracy 1 us: sd-event's default (250 ms) would coalesce the ticks into bursts */
        r = sd_event_add_time(e, NULL, CLOCK_MONOTONIC, w.start_usec + 1000, 1, paced_tick, &w);
        if (r < 0)
                return fail("timer", r);
        r = run_loop(e);
        sd_bus_flush_close_unref(w.bus);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}
