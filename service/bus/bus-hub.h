/* SPDX-License-Identifier: MIT */
#pragma once

#include "hub.h"

/* Registers every object of the hub on h->bus: /org/clusterhub/Hub1 (Hub1, ObjectManager)
 * and the namespaces below /org/clusterhub/Hub1/ns. */
int bus_hub_register(Hub *h);
