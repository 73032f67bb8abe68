/* SPDX-License-Identifier: MIT */
#pragma once

#include "hub.h"

/* Registers every object of the hub on h->bus: /org/clusterhub/Hub1 (Hub1, ObjectManager)
 * and the namespaces below /org/clusterhub/Hub1/ns. */
/* Registers the hub's objects on BUS: the bus, or one private-socket connection. */
int bus_hub_add_objects(Hub *h, sd_bus *bus);
/* The objects on the bus, and the default namespace. */
int bus_hub_register(Hub *h);
