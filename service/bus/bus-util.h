/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

#include "macro.h"

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
