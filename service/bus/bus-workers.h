/* SPDX-License-Identifier: MIT */
#pragma once

#include "ch-hub1-server.h"
#include "hub.h"

typedef struct Peer Peer;

/* Hub1 membership methods (Register, Unregister, ListWorkers, WaitForWorkers); userdata Hub. */
int bus_workers_register_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *id);
int bus_workers_unregister_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);
int bus_workers_list_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);
int bus_workers_wait_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint32_t count, uint32_t timeout_ms);

/* Worker objects below /org/clusterhub/Hub1/worker. */
int bus_workers_setup(Hub *h, sd_bus *bus);

/* P (a worker) is gone: announce it and remove it. */
void bus_workers_left(Peer *p, const char *reason);

/* A worker of another hub (QID is ID@NODE, docs/redis.md) joined (ARG: its unique name on its
 * own bus) or left (ARG: the reason): WorkerJoined/WorkerLeft here. */
void bus_workers_remote(Hub *h, bool joined, const char *qid, const char *arg);
