/* SPDX-License-Identifier: MIT */
#pragma once
/* The fixture of the Redis suites (tests/redis): a redis-server of the test's own on a Unix
 * socket in a temp dir, two private buses, and a hub on each (--node-name=a, --node-name=b,
 * --node-lease-ms=1500) linked to that Redis.  Each side has an emitter connection and a listener
 * that records Event, WorkerJoined and WorkerLeft signals (Seen).  Skipped, with the reason, only
 * when redis-server is not installed: tests begin with `if (f->skipped) return;`. */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "harness.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

#define NS_PATH "/org/clusterhub/Hub1/ns/default"
#define HUB_PATH "/org/clusterhub/Hub1"
#define HUB_IFACE "org.clusterhub.Hub1"
#define EVENTS_IFACE "org.clusterhub.Events1"
#define BACKEND_UNAVAILABLE "org.clusterhub.Error.BackendUnavailable"
/* generous: CI may be loaded; no assertion is about time */
#define WAIT_MS 30000

/* fixture flags */
#define REDIS_LATER 1u     /* the hubs start before Redis does */
#define VIA_SOCKET 2u      /* the listeners subscribe on the hubs' private sockets, not on the bus */

typedef struct Seen {
        char *event, *origin, *payload;
} Seen;

typedef struct Side {
        ThBus bus;
        ThHub hub;
        sd_bus *emitter;     /* emits */
        sd_bus *listener;    /* subscribes to Event on the default namespace */
        GPtrArray *seen;     /* Seen */
        const char *node;
} Side;

typedef struct Fixture {
        char *dir;
        char *sock;
        ThProc redis;
        Side a, b;
        bool skipped;
        /* more options for both hubs (NULL-terminated, at most 8), set before fixture_setup() by
         * a test's own setup function */
        const char *hub_args[9];
} Fixture;

guint count_seen(Side *side, const char *event);

Seen *find_seen(Side *side, const char *event);

/* Processes both listeners until SIDE has seen EVENT N times; false after WAIT_MS. */
bool wait_seen(Fixture *f, Side *side, const char *event, guint n);

/* Emit(EVENT, <s PAYLOAD>) through SIDE's hub: 0, or the error's errno (ERR gets its name). */
int emit(Side *side, const char *event, const char *payload, sd_bus_error *err);

char *expected_origin(Side *side);

/* The GetStats entry KEY of SIDE's hub, as a bool ('b') or a number ('t'). */
uint64_t stat_of(Side *side, const char *key);

/* Waits until the GetStats number KEY of SIDE's hub is at least N; false after WAIT_MS. */
bool wait_stat_at_least(Side *side, const char *key, uint64_t n);

/* Waits until SIDE's hub says its link to Redis is WANT (up or down). */
bool wait_connected(Side *side, bool want);

/* Whether the redis-server on SOCK answers PING. */
bool redis_ping(const char *sock);

/* Starts F's redis-server (again) and waits until it answers. */
void redis_start(Fixture *f);

/* Starts SIDE: its bus, its hub (with F->hub_args), its emitter and its listener. */
void side_start(Fixture *f, Side *side, const char *node, unsigned flags);

/* Stops SIDE (its hub must exit cleanly). */
void side_stop(Side *side);

/* DATA: the fixture flags (REDIS_LATER, VIA_SOCKET) as a pointer. */
void fixture_setup(Fixture *f, gconstpointer data);

void fixture_teardown(Fixture *f, gconstpointer data);
