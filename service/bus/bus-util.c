/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "ch-errors.h"

int bus_error_errno(sd_bus_error *ret_error, int error, const char *fmt, ...) {
        _cleanup_(freep) char *msg = NULL;
        const char *name = ch_error_name_from_errno(error);
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (!name)
                name = SD_BUS_ERROR_FAILED;
        sd_bus_error_set(ret_error, name, msg);
        return error < 0 ? error : -error;
}

int bus_check_name(sd_bus_error *ret_error, const char *what, const char *value, uint64_t max) {
        size_t n = strlen(value);

        if (n == 0)
                return bus_error_errno(ret_error, -EINVAL, "The %s must not be empty.", what);
        if (n > max)
                return bus_error_errno(ret_error, -EINVAL, "The %s is %zu bytes long; the limit is %llu (see clusterhubd --help).",
                                       what, n, (unsigned long long) max);
        /* No UTF-8 check here: sd-bus refuses a message whose 's' is not valid UTF-8 before any
         * handler runs, and the logic modules check what they store. */
        return 0;
}

/* Reads an integer option of any of the types a client's language sends for a number: python-dbus
 * sends i, GLib's and hubctl's JSON x, busctl users write t or u.  Negative values are refused. */
static int read_uint64_option(sd_bus_message *m, const BusOption *o, const char *contents, sd_bus_error *ret_error) {
        int64_t v;
        int r;

        switch (contents[0] && !contents[1] ? contents[0] : 0) {
        case 't':
                return sd_bus_message_read_basic(m, 't', o->ptr);
        case 'u': {
                uint32_t u;
                r = sd_bus_message_read_basic(m, 'u', &u);
                if (r >= 0)
                        *(uint64_t *) o->ptr = u;
                return r;
        }
        case 'i': {
                int32_t i;
                r = sd_bus_message_read_basic(m, 'i', &i);
                v = i;
                break;
        }
        case 'x':
                r = sd_bus_message_read_basic(m, 'x', &v);
                break;
        default:
                return bus_error_errno(ret_error, -EINVAL, "Option '%s' must be an integer (t, u, x or i), not %s.", o->name,
                                       contents);
        }
        if (r < 0)
                return r;
        if (v < 0)
                return bus_error_errno(ret_error, -EINVAL, "Option '%s' must not be negative (it is %lld).", o->name,
                                       (long long) v);
        *(uint64_t *) o->ptr = (uint64_t) v;
        return 0;
}

static int read_option_value(sd_bus_message *m, const BusOption *o, const char *contents, sd_bus_error *ret_error) {
        int r;

        switch (o->type) {
        case BUS_OPTION_UINT64:
                return read_uint64_option(m, o, contents, ret_error);
        case BUS_OPTION_UINT64_POSITIVE:
                r = read_uint64_option(m, o, contents, ret_error);
                if (r >= 0 && *(uint64_t *) o->ptr == 0)
                        return bus_error_errno(ret_error, -EINVAL, "Option '%s' must be more than 0 (leave it out for none).",
                                               o->name);
                return r;
        case BUS_OPTION_BOOL:
                if (streq(contents, "b")) {
                        int b;
                        r = sd_bus_message_read_basic(m, 'b', &b);
                        if (r >= 0)
                                *(bool *) o->ptr = b;
                        return r;
                }
                return bus_error_errno(ret_error, -EINVAL, "Option '%s' must be of type b, not %s.", o->name, contents);
        }
        return -EINVAL;
}

static int unknown_option(const BusOption *table, const char *key, sd_bus_error *ret_error) {
        char known[256] = "";
        size_t n = 0;

        for (const BusOption *o = table; o->name && n < sizeof(known); o++)
                n += snprintf(known + n, sizeof(known) - n, "%s%s", n ? ", " : "", o->name);
        if (!table->name)
                return bus_error_errno(ret_error, -EINVAL, "Unknown option '%s': this call takes no options.", key);
        return bus_error_errno(ret_error, -EINVAL, "Unknown option '%s' (known: %s).", key, known);
}

int bus_read_options(sd_bus_message *m, const BusOption *table, sd_bus_error *ret_error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const BusOption *o;
                const char *key, *contents;
                char type;

                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                for (o = table; o->name && !streq(o->name, key); o++)
                        ;
                if (!o->name)
                        return unknown_option(table, key, ret_error);
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = read_option_value(m, o, contents, ret_error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}
