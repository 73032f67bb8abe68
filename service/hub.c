/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "bus/bus-events.h"
#include "bus/bus-hub.h"
#include "bus/bus-locks.h"
#include "bus/bus-util.h"
#include "deferred.h"
#include "peer.h"
#include "ch-errors.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "persist.h"
#include "store.h"
#include "tracking.h"
#include "transport/socket.h"
#include "bus/bus-store.h"
#include "ch-events1-common.h"
#include "ch-hub1-common.h"
#include "ch-locks1-common.h"
#include "ch-requests1-common.h"
#include "ch-store1-common.h"

uint64_t hub_now_ms(Hub *h) {
        uint64_t usec = 0;
        sd_event_now(h->event, CLOCK_MONOTONIC, &usec);
        return usec / USEC_PER_MSEC;
}

int hub_new(Hub **ret) {
        _cleanup_(hub_freep) Hub *h = NULL;
        int r;

        h = calloc(1, sizeof(Hub));
        if (!h)
                return -ENOMEM;
        limits_init_default(&h->limits);
        h->namespaces = hashmap_new();
        h->peers = hashmap_new();
        h->workers = hashmap_new();
        h->calls = hashmap_new();
        if (!h->namespaces || !h->peers || !h->workers || !h->calls)
                return -ENOMEM;
        /* its bounds are set again once the options are parsed (hub_connect()) */
        r = track_hub_new(&bus_store_track_ops, h->limits.max_tracked_keys_per_peer, h->limits.max_tracked_keys,
                          &h->track_hub);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(h);
        return 0;
}

Hub *hub_free(Hub *h) {
        Namespace *ns;
        Peer *p;
        size_t i = 0;

        if (!h)
                return NULL;
        bus_events_shutdown(h);
        /* socket connections first: their peers are released like at their death */
        socket_shutdown(h);
        /* peers first: they release their locks and pending calls */
        while (i = 0, hashmap_iterate(h->peers, &i, (void **) &p, NULL))
                peer_free(p, "hub exiting");
        i = 0;
        while (hashmap_iterate(h->namespaces, &i, (void **) &ns, NULL))
                namespace_free(ns);
        h->track_hub = track_hub_free(h->track_hub);
        h->persist = persist_free(h->persist);
        h->backend = backend_free(h->backend);
        bus_locks_shutdown(h);
        namespace_gc_shutdown(h);
        deferred_shutdown(h);
        hashmap_free(h->namespaces);
        hashmap_free(h->peers);
        hashmap_free(h->workers);
        i = 0;
        CallCount *cc;
        while (hashmap_iterate(h->calls, &i, (void **) &cc, NULL))
                free(cc);
        hashmap_free(h->calls);
        sd_bus_flush_close_unref(h->bus);
        sd_event_unref(h->event);
        free(h->address);
        free(h->listen_path);
        free(h->data_dir);
        if (h->redis_url)
                explicit_bzero(h->redis_url, strlen(h->redis_url)); /* it may hold a password */
        free(h->redis_url);
        free(h->node_name);
        free(h);
        return NULL;
}

static int open_bus(Hub *h, sd_bus **ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        switch (h->bus_kind) {
        case BUS_USER:
                return sd_bus_open_user_with_description(ret, "clusterhub");
        case BUS_SYSTEM:
                return sd_bus_open_system_with_description(ret, "clusterhub");
        case BUS_ADDRESS:
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(bus, h->address);
                if (r < 0)
                        return r;
                r = sd_bus_set_bus_client(bus, true);
                if (r < 0)
                        return r;
                r = sd_bus_negotiate_creds(bus, true, SD_BUS_CREDS_PID | SD_BUS_CREDS_UID | SD_BUS_CREDS_UNIQUE_NAME);
                if (r < 0)
                        return r;
                r = sd_bus_start(bus);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(bus);
                return 0;
        }
        return -EINVAL;
}

static const char *bus_description(const Hub *h) {
        switch (h->bus_kind) {
        case BUS_USER:
                return "the user bus";
        case BUS_SYSTEM:
                return "the system bus";
        default:
                return h->address;
        }
}

static int calls_add(Hub *h, const char *iface, const char *member, size_t member_len) {
        _cleanup_(freep) CallCount *cc = NULL;
        int r;

        cc = malloc(sizeof(CallCount) + strlen(iface) + 1 + member_len + 1);
        if (!cc)
                return -ENOMEM;
        cc->n = 0;
        sprintf(cc->name, "%s.%.*s", iface, (int) member_len, member);
        r = hashmap_put(h->calls, cc->name, cc);
        if (r == -EEXIST)
                return 0;
        if (r < 0)
                return r;
        TAKE_PTR(cc);
        return 0;
}

/* One counter per method of our interfaces, read from their introspection XML, so that the
 * counters are exactly our methods: a call to a member that does not exist counts nowhere. */
static int calls_init(Hub *h) {
        static const struct {
                const char *iface;
                const char *xml;
        } ifaces[] = {
                { "Hub1", ch_hub1_introspection_xml },
                { "Events1", ch_events1_introspection_xml },
                { "Requests1", ch_requests1_introspection_xml },
                { "Store1", ch_store1_introspection_xml },
                { "Locks1", ch_locks1_introspection_xml },
        };
        static const char tag[] = "<method name=\"";

        for (size_t i = 0; i < ELEMENTSOF(ifaces); i++)
                for (const char *p = strstr(ifaces[i].xml, tag); p; p = strstr(p, tag)) {
                        const char *name = p + strlen(tag), *end = strchr(name, '"');
                        int r;

                        if (!end)
                                break;
                        r = calls_add(h, ifaces[i].iface, name, end - name);
                        if (r < 0)
                                return r;
                        p = end;
                }
        return 0;
}

/* Store1 methods that only read (everything else there writes), for refusing writes while
 * the log's disk is full. */
static bool is_store_write(const char *iface, const char *member) {
        static const char *const reads[] = {
                "Exists", "Keys", "Scan", "Type", "TTL", "DBSize", "RandomKey", "Get", "MGet",
                "StrLen", "GetRange", "HGet", "HMGet", "HGetAll", "HExists", "HLen", "HKeys", "HVals",
                "LRange", "LLen", "LIndex", "SMembers", "SIsMember", "SCard", "SRandMember",
                "Track", "Untrack", "GetTracked", "HGetTracked", "MGetTracked",
        };

        if (streq(iface, "Hub1"))
                return streq(member, "DropNamespace");
        if (!streq(iface, "Store1"))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(reads); i++)
                if (streq(member, reads[i]))
                        return false;
        return true;
}

/* Counts every call to our interfaces by "Interface.Member" (without "org.clusterhub."), for
 * GetStats; runs before dispatch, one hash lookup per call. */
static int count_call(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Hub *h = userdata;
        const char *iface, *member;
        char key[128];
        CallCount *cc;

        if (!sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        iface = sd_bus_message_get_interface(m);
        member = sd_bus_message_get_member(m);
        if (!iface || !member || !strneq(iface, "org.clusterhub.", strlen("org.clusterhub.")))
                return 0;
        if (persist_refuses_writes(h->persist) && is_store_write(iface + strlen("org.clusterhub."), member)) {
                (void) bus_reply_errorf(m, CH_ERROR_STORAGE,
                                        "The disk holding %s is full: %s is refused until there is room; reads still work.",
                                        h->data_dir, member);
                return 1;
        }
        if (snprintf(key, sizeof(key), "%s.%s", iface + strlen("org.clusterhub."), member) >= (int) sizeof(key))
                return 0;
        cc = hashmap_get(h->calls, key);
        if (cc)
                cc->n++;
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Hub *h = userdata;

        const char *sig = si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT";
        size_t n = deferred_pending(h);

        log_info("Received %s, exiting%s.", sig, n > 0 ? "; answering the calls still waiting" : "");
        (void) sd_notify(false, "STOPPING=1");
        /* every waiting caller hears why, instead of a NoReply after its own timeout */
        deferred_fail_all(h, CH_ERROR_SHUTTING_DOWN, sig);
        if (n > 0)
                log_info("Answered %zu waiting calls with %s.", n, CH_ERROR_SHUTTING_DOWN);
        return sd_event_exit(h->event, 0);
}

/* Before the name is ours: a SIGTERM right after it appears (systemd stopping a unit that just
 * started) must take the clean way out, not the default action that kills the process. */
static int setup_signals(Hub *h) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "Failed to block signals: %m");
        r = sd_event_add_signal(h->event, NULL, SIGTERM, on_signal, h);
        if (r >= 0)
                r = sd_event_add_signal(h->event, NULL, SIGINT, on_signal, h);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        return 0;
}

static int on_bus_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Hub *h = userdata;

        log_error("Lost the connection to %s (the bus daemon exited or closed the connection); exiting with failure.",
                  bus_description(h));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Lost the bus connection");
        return sd_event_exit(h->event, -ECONNRESET);
}

int hub_serve_connection(Hub *h, sd_bus *bus) {
        int r;

        r = sd_bus_add_filter(bus, NULL, count_call, h);
        if (r < 0)
                return r;
        return bus_hub_add_objects(h, bus);
}

int hub_connect(Hub *h) {
        int r;

        r = sd_event_default(&h->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        (void) sd_event_set_watchdog(h->event, true);
        r = setup_signals(h);
        if (r < 0)
                return r;
        h->started_usec = 0;
        (void) sd_event_now(h->event, CLOCK_MONOTONIC, &h->started_usec);

        h->store_account.limit = h->limits.max_memory;
        track_hub_set_bounds(h->track_hub, h->limits.max_tracked_keys_per_peer, h->limits.max_tracked_keys);
        r = deferred_setup(h);
        if (r < 0)
                return log_error_errno(r, "Failed to set up deadlines: %m");
        r = namespace_gc_setup(h);
        if (r < 0)
                return log_error_errno(r, "Failed to set up namespace clean-up: %m");
        r = bus_locks_setup(h);
        if (r < 0)
                return log_error_errno(r, "Failed to set up locks: %m");

        /* load before taking the name, so that no client ever sees an empty store */
        if (h->data_dir) {
                r = persist_open(h, h->data_dir, h->fsync_mode);
                if (r < 0)
                        return r;
                /* a namespace whose keys all expired while the hub was down holds nothing */
                namespace_check_all_unused(h);
        } else if (!h->redis_url) /* with --redis the store is Redis's */
                log_info("No --data-dir: the store is kept in memory only and is lost when the hub exits.");

        r = open_bus(h, &h->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to %s: %m%s", bus_description(h),
                                       h->bus_kind == BUS_USER ? " (no session bus? start one, or use --address=)" : "");
        r = sd_bus_error_add_map(ch_error_map);
        if (r < 0)
                return log_error_errno(r, "Failed to register the error map: %m");
        r = sd_bus_attach_event(h->bus, h->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        /* Losing the bus loses every worker, lock and pending call: that is a failure, so that
         * Restart=on-failure brings the hub back (sd-bus's exit-on-disconnect would exit 0). */
        r = sd_bus_match_signal(h->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_bus_disconnected, h);
        if (r < 0)
                return log_error_errno(r, "Failed to watch for the bus disconnecting: %m");

        /* before the name: an Emit may come as soon as clients see it */
        r = backend_new(h, &h->backend);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Redis link (--redis): %m");

        r = calls_init(h);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the call counters: %m");
        bus_gate_install();
        r = bus_hub_register(h);
        if (r < 0)
                return log_error_errno(r, "Failed to register the objects: %m");
        /* before the name: whoever sees the name may find the socket too (a socket file there
         * that nobody answers on is a dead hub's, and is replaced) */
        r = socket_listen(h);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on the private socket: %m");

        /* A hub restarted by systemd may start while the bus has not yet noticed that the
         * previous one closed its connection: give the name a moment before giving up. */
        for (unsigned attempt = 0;; attempt++) {
                r = sd_bus_request_name(h->bus, HUB_BUS_NAME, 0);
                if (r != -EEXIST || attempt >= 20)
                        break;
                (void) usleep(100 * USEC_PER_MSEC);
        }
        if (r == -EEXIST)
                return log_error_errno(r, "The name %s is already owned on %s: another hub is running there.",
                                       HUB_BUS_NAME, bus_description(h));
        if (r < 0)
                return log_error_errno(r, "Failed to own the name %s on %s: %m", HUB_BUS_NAME, bus_description(h));
        return 0;
}

int hub_run(Hub *h) {
        int r;

        log_info("clusterhubd %s serving %s on %s%s%s.", PACKAGE_VERSION, HUB_BUS_NAME, bus_description(h),
                 socket_path(h) ? " and " : "", strempty(socket_path(h)));
        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving %s on %s%s%s", HUB_BUS_NAME, bus_description(h),
                          socket_path(h) ? " and " : "", strempty(socket_path(h)));

        /* the loop's result is what on_signal (0) or on_bus_disconnected (-ECONNRESET) set */
        r = sd_event_loop(h->event);
        if (r < 0 && r != -ECONNRESET)
                return log_error_errno(r, "Event loop failed: %m");
        return r;
}
