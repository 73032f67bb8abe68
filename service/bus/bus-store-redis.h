/* SPDX-License-Identifier: MIT */
#pragma once

#include "ch-store1-server.h"

/* The Store1 handlers of the Redis-backed store (--redis; docs/redis.md "Store"); their
 * userdata is the Namespace, as bus_store_handlers'.  Keys, strings and hashes are in
 * bus-store-redis.c, lists, sets and blocking pops in bus-store-redis-list.c; each method is
 * one or a few Redis commands or Lua scripts sent through the framework of
 * service/backend/rstore.h (read it for how to add one).  Entries left NULL answer
 * NotSupported. */
extern const ChStore1Handlers bus_store_redis_handlers;
