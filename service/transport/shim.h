/* SPDX-License-Identifier: MIT */
#pragma once

/* A minimal org.freedesktop.DBus on each private-socket connection, so that a bus client
 * (busctl --address, gdbus --address, sd-bus in bus-client mode) works against the hub without a
 * broker: Hello, AddMatch, RemoveMatch, GetNameOwner, NameHasOwner, ListNames, GetId, with
 * dbus-daemon's error names.  AddMatch rules decide which broadcast signals the connection gets
 * (socket_broadcast()). */

#include "socket.h"

#define DBUS_SERVICE_NAME "org.freedesktop.DBus"
#define DBUS_PATH "/org/freedesktop/DBus"
#define DBUS_INTERFACE "org.freedesktop.DBus"

int shim_add(Connection *c);
