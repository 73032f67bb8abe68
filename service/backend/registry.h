/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "hub.h"
#include "redis-link.h"

/* The worker list of every host (docs/redis.md, "Workers"), on the hub's Redis link.
 *
 * In Redis (one keyspace for all hubs: workers are hub-wide, not per namespace):
 *   clusterhub:nodes            a set of the node names
 *   clusterhub:node:NODE        NODE's heartbeat, with a lease (PX --node-lease-ms) NODE renews
 *   clusterhub:workers:NODE     a hash: worker id -> "UNIQUE_NAME\tPID\tSINCE_MS\tUNIT"
 *   clusterhub:served:NODE      what NODE's workers serve (remote-request.h), opaque here
 * and the channel clusterhub:registry, where a hub publishes "J\tNODE\tID\tVALUE" when a worker
 * joins, "L\tNODE\tID\tREASON" when it leaves, and "S\tNODE" when it wrote its whole registry
 * again (at each connection): the others then read it at once.
 *
 * Every lease/3 (and when the link comes up) a hub runs one script that renews its heartbeat,
 * writes its whole local registry, and returns the workers of every other node whose heartbeat
 * is alive (it removes the nodes whose heartbeat expired).  The hub's view of the others is
 * that answer, kept up to date in between by the channel; a difference is announced as
 * WorkerJoined/WorkerLeft with the qualified id ID@NODE.  While the link is down the view is
 * the last one known; the first answer after the link is back corrects it, except that for a
 * lease after the link came up a node Redis does not know keeps its workers (a Redis that
 * restarted empty: that hub may not have reconnected yet). */

#define REGISTRY_CHANNEL "clusterhub:registry"

typedef struct Registry Registry;

int registry_new(Hub *h, RedisLink *link, Registry **ret);
Registry *registry_free(Registry *r);

/* The link came up: write our registry, read the others', tell them. */
void registry_link_up(Registry *r);
/* A message on REGISTRY_CHANNEL. */
void registry_on_message(Registry *r, const char *data, size_t size);

/* A local worker joined (ID, its unique name, pid, unit or NULL, since_ms) or left. */
void registry_worker_joined(Registry *r, const char *id, const char *unique_name, uint32_t pid, const char *unit,
                            uint64_t since_ms);
void registry_worker_left(Registry *r, const char *id, const char *reason);

/* Appends a ListWorkers row "(ssua{sv})" for every remote worker; details have "unit",
 * "since_ms" and "node". */
int registry_append_workers(Registry *r, sd_bus_message *reply);
/* Appends the ids (ID@NODE, owned by R) of the remote workers to IDS[*N], up to MAX. */
int registry_append_ids(Registry *r, char **ids, size_t max, size_t *n);
/* Whether QID (ID@NODE) is a remote worker in R's view. */
bool registry_has_worker(const Registry *r, const char *qid);

/* What this node serves (a string of requests across hosts, remote-request.h): written to Redis
 * with the heartbeat; a change is written and announced at once. */
int registry_set_served(Registry *r, const char *served);

/* A live node of a sync's answer: its name and what it serves (NULL when it wrote nothing). */
typedef struct RegistryNode {
        const char *node;
        const char *served;
        size_t served_size;
} RegistryNode;
/* After each sync: the live nodes other than this one.  GRACE: within a lease of the link
 * coming up, when a node missing from NODES may be a hub that has not reconnected yet to a
 * Redis that restarted empty. */
typedef void (*registry_nodes_fn)(void *userdata, const RegistryNode *nodes, size_t n, bool grace);
void registry_set_nodes_hook(Registry *r, registry_nodes_fn fn, void *userdata);
size_t registry_count(const Registry *r);
