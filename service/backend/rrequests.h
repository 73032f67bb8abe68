/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "backend.h"
#include "hub.h"

/* Requests and EmitTo across hosts (docs/redis.md, "Requests"), the backend part of
 * remote-request.h's messages.  Each hub writes what it serves with its heartbeat (registry.h)
 * and learns what the others serve from each sync; a Request goes to another hub that serves its
 * method on that hub's own channel, runs there through the local request machine, and its answer
 * comes back on the origin's channel (pub/sub: at most once; the origin's timer covers a lost
 * message).  The origin answers its caller. */

typedef struct RRequests RRequests;
typedef struct RemoteNode RemoteNode;
typedef struct Deferred Deferred;
typedef struct Gather Gather;
typedef struct Peer Peer;

extern const BackendPartOps rrequests_ops;

/* Where a Request of METHOD in NS without target goes, round-robin over its N_LOCAL servers on
 * this hub and the other hubs that serve it (one slot each): 0 here, 1 to another hub (*RET),
 * -EBADRQC when nobody serves it, -EHOSTDOWN when only another hub could and Redis cannot be
 * reached.  0 without --redis. */
int rrequests_pick(Hub *h, const char *ns, const char *method, size_t n_local, RemoteNode **ret);
/* Sends the Request call M (target, method, payload, options) of CALLER (origin ORIGIN) to NODE,
 * for its worker TARGET (NULL: any server there),
 * answered within TIMEOUT_MS: 1 when its answer will come, or -EINVAL (the payload carries file
 * descriptors), -EHOSTDOWN, -ENOBUFS (the caller has too many calls waiting), -errno. */
int rrequests_send(Hub *h, RemoteNode *node, const char *target, const char *ns, const char *method,
                   const char *origin, sd_bus_message *m, Peer *caller, uint64_t timeout_ms);
/* The worker QID ("ID@NODE") of another hub, as listed: its plain id (*RET_ID, to free) and its
 * hub; -ENOENT when no such worker is listed, -EHOSTDOWN while Redis cannot be reached. */
int rrequests_target(Hub *h, const char *qid, char **ret_id, RemoteNode **ret_node);
/* Whether requests cross hosts here (--redis). */
bool rrequests_enabled(Hub *h);
/* How many other hubs serve METHOD in NS (0 while Redis cannot be reached). */
size_t rrequests_count_hubs(Hub *h, const char *ns, const char *method);
/* Adds to G the share of every other hub that serves METHOD in NS: the RequestAll call M (method,
 * payload, options) is sent to each; its rows join G when they come.  A hub that cannot be asked
 * is recorded in G as an error under "@NODE". */
void rrequests_gather(Hub *h, Gather *g, const char *ns, const char *method, const char *origin, sd_bus_message *m,
                      uint64_t timeout_ms);
/* G ends before every hub answered (TIMEOUT: its deadline passed, and each hub still out is
 * recorded as a Timeout error under "@NODE"; else its caller left). */
void rrequests_gather_end(Hub *h, Gather *g, bool timeout);

/* The hub side of a request from another hub: when D is one, its answer (an error NAME:
 * MESSAGE, the handler's REPLY, or G's rows) goes back to that hub and true is returned. */
bool rrequests_answer_error(Deferred *d, const char *name, const char *message);
bool rrequests_answer_reply(Deferred *d, sd_bus_message *reply);
bool rrequests_answer_gather(Deferred *d, Gather *g);

/* What this hub serves changed: the other hubs learn it (coalesced, once per event loop turn). */
void rrequests_served_changed(Hub *h);

/* EmitTo QID ("ID@NODE", a worker of another hub) from ORIGIN in NS: the call M's payload
 * follows N_SKIP strings.  0 when published (delivered at most once, not confirmed), -ENOENT
 * when no such worker is listed, -EINVAL for file descriptors, -EHOSTDOWN. */
int rrequests_emit_to(Hub *h, const char *ns, const char *qid, const char *event, const char *origin,
                      sd_bus_message *m, unsigned n_skip);
