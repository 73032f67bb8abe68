/* SPDX-License-Identifier: MIT */
#pragma once

/* libclusterhub: client bindings for the clusterhub D-Bus hub (pkg-config clusterhub).
 *
 * Every function is generated from the interface XML in introspection/ by
 * clusterhub-codegen: ch_<interface>_call_<method>() (blocking) and _async(),
 * ch_<interface>_match_<signal>() (bus-side arg0 filtering), ch_<interface>_get_<property>().
 * Errors are negative errno values; register ch_error_map with sd_bus_error_add_map() to get
 * the errno that each org.clusterhub.Error.* name maps to.
 *
 * On top of the stubs, the worker runtime (ch-runtime.h, docs/bindings.md): ch_client_new,
 * ch_register (re-registers after a hub restart), ch_on/ch_emit, ch_serve/ch_request,
 * ch_lock/ch_with_lock, ch_cache_new/ch_cache_get (client-side caching). */

#include <systemd/sd-bus.h>

#include "ch-errors.h"
#include "ch-events1-client.h"
#include "ch-handler1-client.h"
#include "ch-hub1-client.h"
#include "ch-locks1-client.h"
#include "ch-requests1-client.h"
#include "ch-store1-client.h"
#include "ch-worker1-client.h"
#include "ch-runtime.h"

#define CH_BUS_NAME "org.clusterhub.Hub1"
#define CH_HUB_PATH "/org/clusterhub/Hub1"
#define CH_NAMESPACE_PATH_PREFIX "/org/clusterhub/Hub1/ns/"
#define CH_DEFAULT_NAMESPACE_PATH "/org/clusterhub/Hub1/ns/default"
#define CH_HANDLER_PATH "/org/clusterhub/Handler1"
