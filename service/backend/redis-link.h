/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "redis-url.h"

/* The hub's link to Redis (or Valkey): hiredis 0.14's async API on the hub's sd-event loop.
 * Two connections: one for commands (pipelined, in order) and one subscriber (PSUBSCRIBE).
 * The link is up when both are connected, authenticated (AUTH), on their database (SELECT)
 * and subscribed to every pattern; it reports each change through on_state.  When either
 * connection fails, both are closed, every pending command fails, and the link reconnects
 * with backoff (100 ms doubling to 5 s) and subscribes again.  hiredis 0.14 has no timeouts:
 * each command and each connection attempt has an sd-event timer, and a command that times
 * out closes the link (a server that does not answer one command answers none after it). */

typedef struct RedisLink RedisLink;
struct redisReply;

/* The reconnect backoff, in ms. */
#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000

/* The bounds of a link, from the limits table (--redis-timeout-ms, --max-redis-pending). */
typedef struct RedisLinkBounds {
        uint64_t timeout_ms;    /* a command's reply, a connection attempt */
        uint64_t max_pending;   /* commands sent and not answered yet: past it a command is
                                 * refused (-ENOBUFS) rather than queued until its timeout */
} RedisLinkBounds;

typedef struct RedisLinkStats {
        bool connected;
        uint64_t connects;          /* times the link came up */
        uint64_t disconnects;       /* times it went down after being up */
        uint64_t commands_sent;
        uint64_t commands_failed;   /* error reply, timeout, or the link closed before the reply */
        uint64_t messages_received; /* on the subscriber connection */
} RedisLinkStats;

typedef struct RedisLinkCallbacks {
        /* The link came up (UP true) or went down. */
        void (*on_state)(RedisLink *l, bool up, void *userdata);
        /* A message published on CHANNEL, matched by one of the patterns. */
        void (*on_message)(RedisLink *l, const char *channel, const char *data, size_t size, void *userdata);
} RedisLinkCallbacks;

/* A command's outcome: REPLY (hiredis's, valid during the call; may be an error reply), or
 * NULL with ERROR: -ETIMEDOUT (no reply within its timeout), -ECONNRESET (the link closed). */
typedef void (*redis_reply_fn)(RedisLink *l, const struct redisReply *reply, int error, void *userdata);

int redis_link_new(sd_event *e, const RedisUrl *url, const RedisLinkBounds *bounds, const RedisLinkCallbacks *cb,
                   void *userdata, RedisLink **ret);
/* Adds PATTERN to what the subscriber connection PSUBSCRIBEs to (before redis_link_start()). */
int redis_link_psubscribe(RedisLink *l, const char *pattern);
/* Starts connecting; the link keeps trying until freed. */
int redis_link_start(RedisLink *l);
/* Whether the link is up: a command sent now goes to a connected, authenticated server. */
bool redis_link_is_up(const RedisLink *l);
/* Sends a command (ARGC binary-safe arguments) on the command connection.  CB (may be NULL)
 * hears its outcome exactly once, never from inside this call.  -ENOTCONN when the link is not
 * up, -ENOBUFS when REDIS_MAX_PENDING_COMMANDS wait for their reply; nothing is sent then. */
int redis_link_command(RedisLink *l, int argc, const char **argv, const size_t *argvlen, redis_reply_fn cb,
                       void *userdata);
void redis_link_get_stats(const RedisLink *l, RedisLinkStats *ret);
/* Where the link goes ("host:port" or the socket's path), for messages. */
const char *redis_link_where(const RedisLink *l);
/* Closes both connections; pending commands hear -ECONNRESET (on_state is not called). */
RedisLink *redis_link_free(RedisLink *l);
