/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Every limit of the hub, in one place: the defaults, the command-line option that changes
 * each, and its help text come from LIMITS_TABLE, so --help and the README cannot drift. */

typedef struct Limits {
        uint64_t max_key_bytes;
        uint64_t max_value_bytes;
        uint64_t max_elements;
        uint64_t max_namespace_memory;
        uint64_t max_memory;
        uint64_t max_namespaces;
        uint64_t max_name_bytes;
        uint64_t max_reply_items;
        uint64_t max_queued_per_worker;
        uint64_t max_queue_age_ms;
        uint64_t max_pending_per_peer;
        uint64_t max_served_per_peer;
        uint64_t max_queued_bytes;
        uint64_t max_locks;
        uint64_t max_lock_holders;
        uint64_t max_lock_waiters;
        uint64_t max_lease_ms;
        uint64_t lock_timeout_ms;
        uint64_t request_timeout_ms;
        uint64_t wait_timeout_ms;
        uint64_t max_handling_per_worker;
        uint64_t max_backlog_per_worker;
        uint64_t max_event_bytes;
        uint64_t max_emit_bytes_per_sec;
        uint64_t max_connections;
        uint64_t max_queued_per_connection;
        uint64_t max_queued_bytes_per_connection;
        uint64_t max_tracked_keys_per_peer;
        uint64_t max_tracked_keys;
        uint64_t node_lease_ms;
        uint64_t redis_timeout_ms;
        uint64_t max_redis_pending;
        uint64_t max_remote_workers;
        uint64_t max_remote_requests;
        uint64_t max_scan_count;
} Limits;

/* X(field, option, default, help) */
#define LIMITS_TABLE(X)                                                                                     \
        X(max_key_bytes, "max-key-bytes", 512, "longest key, hash field or set member, in bytes")          \
        X(max_value_bytes, "max-value-bytes", 1024 * 1024, "largest stored value, in bytes")               \
        X(max_elements, "max-elements", 1000000, "most elements in one hash, list or set")                 \
        X(max_namespace_memory, "max-namespace-memory", UINT64_C(1) << 30, "store bytes per namespace")    \
        X(max_memory, "max-memory", UINT64_C(4) << 30, "store bytes of the whole hub")                     \
        X(max_namespaces, "max-namespaces", 1024, "most namespaces")                                       \
        X(max_name_bytes, "max-name-bytes", 255, "longest event, method, lock or namespace name")          \
        X(max_reply_items, "max-reply-items", 1000000, "most items in one reply (Keys, LRange, ...)")            \
        X(max_queued_per_worker, "max-queued-per-worker", 256, "EmitTo messages queued for one absent worker")   \
        X(max_queue_age_ms, "max-queue-age-ms", 30000, "how long EmitTo waits for an absent worker, ms")     \
        X(max_pending_per_peer, "max-pending-per-peer", 4096, "calls one connection may have waiting")        \
        X(max_served_per_peer, "max-served-per-peer", 1024, "methods one connection may serve")            \
        X(max_queued_bytes, "max-queued-bytes", 64 * 1024 * 1024, "memory of EmitTo calls queued for absent workers, hub-wide") \
        X(max_locks, "max-locks", 16384, "distinct locks alive in one namespace")                          \
        X(max_lock_holders, "max-lock-holders", 65536, "lock holders in one namespace (shared ones count)")     \
        X(max_lock_waiters, "max-lock-waiters", 65536, "queued Lock calls in one namespace")                \
        X(max_lease_ms, "max-lease-ms", 3600000, "longest lock lease (lease_ms of Lock, TryLock, Refresh), ms") \
        X(lock_timeout_ms, "lock-timeout-ms", 10000, "how long Lock waits when the call gives no timeout_ms") \
        X(request_timeout_ms, "request-timeout-ms", 10000, "how long Request and RequestAll wait when the call gives no timeout_ms") \
        X(wait_timeout_ms, "wait-timeout-ms", 10000, "how long WaitForWorkers waits when its timeout_ms is 0") \
        X(max_handling_per_worker, "max-handling-per-worker", 32, "Handle calls one worker has in flight; more wait (0: no cap)") \
        X(max_backlog_per_worker, "max-backlog-per-worker", 1024, "requests waiting for a busy worker") \
        X(max_event_bytes, "max-event-bytes", 64 * 1024, "largest event payload (Emit, EmitTo), bytes on the bus") \
        X(max_emit_bytes_per_sec, "max-emit-bytes-per-sec", 16 * 1024 * 1024, "event bytes one connection may emit per second (0: no limit)") \
        X(max_connections, "max-connections", 4096, "connections on the private socket (--listen); more are refused") \
        X(max_queued_per_connection, "max-queued-per-connection", 16384, "messages queued for a private-socket connection that does not read; past it the hub closes it") \
        X(max_queued_bytes_per_connection, "max-queued-bytes-per-connection", 64 * 1024 * 1024, "bytes of the messages queued for a private-socket connection that does not read, as marshalled; past it the hub closes it") \
        X(max_tracked_keys_per_peer, "max-tracked-keys-per-peer", 65536, "keys one connection may track for its cache (GetTracked), over all namespaces; past it the oldest is invalidated") \
        X(max_tracked_keys, "max-tracked-keys", 1000000, "tracked (connection, key) pairs of the whole hub; past it the oldest is invalidated") \
        X(node_lease_ms, "node-lease-ms", 15000, "with --redis: how long other hubs keep this hub's workers and locks after its last heartbeat (sent every third of it), ms") \
        X(redis_timeout_ms, "redis-timeout-ms", 5000, "with --redis: how long a command or a connection attempt may take; past it the hub closes the link and reconnects, ms") \
        X(max_redis_pending, "max-redis-pending", 65536, "with --redis: commands waiting for Redis's answer; past it calls that need Redis answer BackendUnavailable") \
        X(max_remote_workers, "max-remote-workers", 65536, "with --redis: workers of other hosts this hub keeps in its view; more are ignored, with a log line") \
        X(max_remote_requests, "max-remote-requests", 4096, "with --redis: requests of other hosts this hub runs at once; past it they answer LimitExceeded") \
        X(max_scan_count, "max-scan-count", 100000, "most keys one Scan call walks; a larger COUNT is cut to it")

void limits_init_default(Limits *l);
