/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "backend.h"
#include "hub.h"

/* Lists, sets and blocking pops of the Redis-backed store (--redis, docs/redis.md "Lists, sets
 * and blocking pops"): the Store1 handlers that bus_store_redis_handlers lists, and the backend
 * part that keeps this hub's BLPop/BRPop waiters (rlist_part_ops in backend_parts[]). */

extern const BackendPartOps rlist_part_ops;

/* KEY of namespace NS changed with EVENT (a Redis keyspace notification, or a push this hub
 * made): a BLPop/BRPop waiter on KEY gets a try when EVENT may have added elements. */
void bus_store_redis_list_key_event(Hub *h, const char *ns, const char *key, const char *event);
/* Namespace NS is dropped: its waiters here are answered NamespaceDropped. */
void bus_store_redis_list_drop(Hub *h, const char *ns);

#define RLIST_HANDLER(name, ...) int bus_store_redis_##name(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, ##__VA_ARGS__)

RLIST_HANDLER(l_push, const char *key);
RLIST_HANDLER(r_push, const char *key);
RLIST_HANDLER(l_push_x, const char *key);
RLIST_HANDLER(r_push_x, const char *key);
RLIST_HANDLER(l_pop, const char *key, uint32_t count);
RLIST_HANDLER(r_pop, const char *key, uint32_t count);
RLIST_HANDLER(bl_pop, char **keys, uint32_t timeout_ms);
RLIST_HANDLER(br_pop, char **keys, uint32_t timeout_ms);
RLIST_HANDLER(l_range, const char *key, int64_t start, int64_t stop);
RLIST_HANDLER(l_len, const char *key);
RLIST_HANDLER(l_index, const char *key, int64_t index);
RLIST_HANDLER(l_set, const char *key, int64_t index);
RLIST_HANDLER(l_trim, const char *key, int64_t start, int64_t stop);
RLIST_HANDLER(l_rem, const char *key, int64_t count);
RLIST_HANDLER(l_insert, const char *key, const char *where);
RLIST_HANDLER(l_move, const char *source, const char *destination, const char *where_from, const char *where_to);
RLIST_HANDLER(s_add, const char *key, char **members);
RLIST_HANDLER(s_rem, const char *key, char **members);
RLIST_HANDLER(s_members, const char *key);
RLIST_HANDLER(s_is_member, const char *key, const char *member);
RLIST_HANDLER(s_card, const char *key);
RLIST_HANDLER(s_pop, const char *key, uint32_t count);
RLIST_HANDLER(s_rand_member, const char *key, uint32_t count);

/* The entries of bus_store_redis_handlers (bus-store-redis.c) for the above. */
#define BUS_STORE_REDIS_LIST_HANDLERS                   \
        .l_push = bus_store_redis_l_push,               \
        .r_push = bus_store_redis_r_push,               \
        .l_push_x = bus_store_redis_l_push_x,           \
        .r_push_x = bus_store_redis_r_push_x,           \
        .l_pop = bus_store_redis_l_pop,                 \
        .r_pop = bus_store_redis_r_pop,                 \
        .bl_pop = bus_store_redis_bl_pop,               \
        .br_pop = bus_store_redis_br_pop,               \
        .l_range = bus_store_redis_l_range,             \
        .l_len = bus_store_redis_l_len,                 \
        .l_index = bus_store_redis_l_index,             \
        .l_set = bus_store_redis_l_set,                 \
        .l_trim = bus_store_redis_l_trim,               \
        .l_rem = bus_store_redis_l_rem,                 \
        .l_insert = bus_store_redis_l_insert,           \
        .l_move = bus_store_redis_l_move,               \
        .s_add = bus_store_redis_s_add,                 \
        .s_rem = bus_store_redis_s_rem,                 \
        .s_members = bus_store_redis_s_members,         \
        .s_is_member = bus_store_redis_s_is_member,     \
        .s_card = bus_store_redis_s_card,               \
        .s_pop = bus_store_redis_s_pop,                 \
        .s_rand_member = bus_store_redis_s_rand_member,
