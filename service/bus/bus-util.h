/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* ---- The send gate (docs/persistence.md, "Group commit") ----------------------------------
 * Every reply and signal of the hub leaves through bus_send() (the generated server code too,
 * through its send hook).  While the gate is open it sends at once.  With --fsync=always the
 * log closes it when it writes a record that is not synced yet: from then on messages are held,
 * in order, until the log has synced and opens it again.  So nothing that may reveal a change
 * (its reply, its KeyChanged, a read of it in the same loop pass) leaves before the change is
 * on disk, and one fdatasync serves every change of the pass. */

/* Most messages held: the next one flushes at once (sync, then send them all). */
#define BUS_GATE_MAX_HELD 256

/* Point the generated servers' send hooks at bus_send().  Call before serving. */
void bus_gate_install(void);
/* Calls that failed while their callers expected no reply, since start (GetStats 'unheard_errors'). */
uint64_t bus_unheard_errors(void);
/* FLUSH syncs and then calls bus_gate_open(); the gate calls it when the held queue is full
 * and bus_gate_flush() does.  NULL: no log (bus_gate_flush() only opens the gate). */
void bus_gate_set_flush(void (*flush)(void *userdata), void *userdata);
void bus_gate_close(void);
bool bus_gate_is_closed(void);
/* Send every held message, in order, and open the gate; returns how many were held. */
size_t bus_gate_open(void);
/* If the gate is closed, flush now (sync and send). */
void bus_gate_flush(void);

/* HOOK is called with the connection and the message of every message that leaves through
 * bus_send() (when it is sent, not when it is held), and with the connection bus_sent() names
 * (M NULL): the private socket updates that connection's poll events after the current dispatch
 * and counts the bytes waiting for it (service/transport/socket.c). */
void bus_set_sent_hook(void (*hook)(sd_bus *bus, sd_bus_message *m, void *userdata), void *userdata);
/* Tells the hook of a message sent on BUS without bus_send() (a call of the hub's own). */
void bus_sent(sd_bus *bus);

/* The size of sealed message M as D-Bus marshals it: the fixed header, the header fields the
 * sender sets (path, interface, member, error name, destination, sender, signature, reply serial),
 * and the body with its padding.  Reads M's body and rewinds it. */
uint64_t bus_message_wire_size(sd_bus_message *m);
/* Adds to *AT (an offset in a body) the values from M's read position to the end of the
 * container it is in, with D-Bus's padding (an 'a(y)' costs 8 bytes per element); an array of
 * fixed-size values is read in one step.  0 at the container's end, or a negative errno. */
int bus_message_values_size(sd_bus_message *m, uint64_t *at);

/* Appends the a{sv} entry {KEY: <VALUE>} of the basic TYPE (VALUE points at it; a char * for
 * strings), as GetStats' counters are made. */
int bus_append_stat(sd_bus_message *reply, const char *key, char type, const void *value);

/* Send M (a reply or a signal, on any connection) through the gate: 1 when sent or held,
 * else what sd_bus_send() returned. */
int bus_send(sd_bus_message *m);
/* sd_bus_reply_method_return/_error/_errorf through the gate: 0 without sending when CALL
 * expects no reply. */
int bus_reply_return(sd_bus_message *call, const char *types, ...);
int bus_reply_error(sd_bus_message *call, const sd_bus_error *e);
int bus_reply_errorf(sd_bus_message *call, const char *name, const char *fmt, ...) _printf_(3, 4);
/* sd-bus builds InterfacesAdded/Removed and sends them itself: flush the gate first, so that
 * they keep their place after what is held. */
int bus_emit_object_added(sd_bus *bus, const char *path);
int bus_emit_object_removed(sd_bus *bus, const char *path);

/* Fill RET_ERROR with the org.clusterhub.Error.* name that ERROR (a negative errno of the
 * logic modules) maps to, and a message naming what is wrong; returns a negative errno for
 * the handler to return.  Unknown errnos become org.freedesktop.DBus.Error.Failed. */
int bus_error_errno(sd_bus_error *ret_error, int error, const char *fmt, ...) _printf_(3, 4);

/* Validates a name argument (key, event, method, lock) taken from a message: non-empty and at
 * most MAX bytes (sd-bus has checked its UTF-8).  On failure fills RET_ERROR with InvalidArgs
 * naming WHAT. */
int bus_check_name(sd_bus_error *ret_error, const char *what, const char *value, uint64_t max);


/* An option of a trailing a{sv}.  Integers (every *_ms key) accept t, u, x or i, whichever a
 * client's language sends, and refuse negative values; booleans b.  Unknown keys, wrong types and
 * negative numbers are InvalidArgs naming the key. */
typedef enum BusOptionType {
        BUS_OPTION_UINT64,          /* uint64_t *, from t, u, x or i, >= 0 */
        BUS_OPTION_UINT64_POSITIVE, /* the same, > 0: ttl_ms, as Redis refuses SET PX 0 */
        BUS_OPTION_BOOL,            /* bool *, from b */
} BusOptionType;

typedef struct BusOption {
        const char *name;
        BusOptionType type;
        void *ptr;
} BusOption;

/* Reads the a{sv} at M's position into the options of TABLE (terminated by a NULL name). */
int bus_read_options(sd_bus_message *m, const BusOption *table, sd_bus_error *ret_error);
