/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "ch-errors.h"
#include "ch-events1-server.h"
#include "ch-handler1-server.h"
#include "ch-hub1-server.h"
#include "ch-locks1-server.h"
#include "ch-requests1-server.h"
#include "ch-store1-server.h"
#include "ch-worker1-server.h"

/* ---- the send gate ---------------------------------------------------------------------- */

static struct {
        bool closed;
        sd_bus_message *held[BUS_GATE_MAX_HELD];
        size_t n_held;
        void (*flush)(void *userdata);
        void *userdata;
        void (*sent)(sd_bus *bus, sd_bus_message *m, void *userdata);
        void *sent_userdata;
} gate;

/* Failed calls whose callers expect no reply (GetStats 'unheard_errors'). */
static uint64_t unheard_errors;

static void count_unheard(sd_bus_message *call, const sd_bus_error *error, int r) {
        (void) call;
        (void) error;
        (void) r;
        unheard_errors++;
}

uint64_t bus_unheard_errors(void) {
        return unheard_errors;
}

void bus_gate_install(void) {
        ch_events1_set_send_hook(bus_send);
        ch_handler1_set_send_hook(bus_send);
        ch_hub1_set_send_hook(bus_send);
        ch_locks1_set_send_hook(bus_send);
        ch_requests1_set_send_hook(bus_send);
        ch_store1_set_send_hook(bus_send);
        ch_worker1_set_send_hook(bus_send);
        ch_events1_set_unheard_hook(count_unheard);
        ch_handler1_set_unheard_hook(count_unheard);
        ch_hub1_set_unheard_hook(count_unheard);
        ch_locks1_set_unheard_hook(count_unheard);
        ch_requests1_set_unheard_hook(count_unheard);
        ch_store1_set_unheard_hook(count_unheard);
        ch_worker1_set_unheard_hook(count_unheard);
}

void bus_gate_set_flush(void (*flush)(void *userdata), void *userdata) {
        gate.flush = flush;
        gate.userdata = userdata;
}

void bus_set_sent_hook(void (*hook)(sd_bus *bus, sd_bus_message *m, void *userdata), void *userdata) {
        gate.sent = hook;
        gate.sent_userdata = userdata;
}

void bus_sent(sd_bus *bus) {
        if (gate.sent && bus)
                gate.sent(bus, NULL, gate.sent_userdata);
}

static void sent_message(sd_bus_message *m) {
        sd_bus *bus = sd_bus_message_get_bus(m);

        if (gate.sent && bus)
                gate.sent(bus, m, gate.sent_userdata);
}

void bus_gate_close(void) {
        gate.closed = true;
}

bool bus_gate_is_closed(void) {
        return gate.closed;
}

size_t bus_gate_open(void) {
        size_t n = gate.n_held;

        /* open first: sending dispatches no callback, but keep the gate sane if one sent */
        gate.closed = false;
        gate.n_held = 0;
        for (size_t i = 0; i < n; i++) {
                /* a peer that is gone just misses its message, as with sd_bus_send() */
                (void) sd_bus_send(NULL, gate.held[i], NULL);
                sent_message(gate.held[i]);
                sd_bus_message_unref(gate.held[i]);
        }
        return n;
}

void bus_gate_flush(void) {
        if (!gate.closed)
                return;
        if (gate.flush)
                gate.flush(gate.userdata);
        else
                (void) bus_gate_open();
}

/* ---- sizes as marshalled -------------------------------------------------------------- */

static uint64_t pad_to(uint64_t n, unsigned alignment) {
        return (n + alignment - 1) & ~((uint64_t) alignment - 1);
}

/* A basic type's alignment and size on the wire; the size is 0 for the strings (s, o, g). */
static unsigned basic_layout(char type, unsigned *ret_size) {
        static const struct { char type; unsigned alignment, size; } layout[] = {
                { 'y', 1, 1 }, { 'n', 2, 2 }, { 'q', 2, 2 }, { 'b', 4, 4 }, { 'i', 4, 4 }, { 'u', 4, 4 },
                { 'h', 4, 4 }, { 'x', 8, 8 }, { 't', 8, 8 }, { 'd', 8, 8 }, { 's', 4, 0 }, { 'o', 4, 0 },
                { 'g', 1, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(layout); i++)
                if (layout[i].type == type) {
                        *ret_size = layout[i].size;
                        return layout[i].alignment;
                }
        *ret_size = 0;
        /* containers: arrays align their length to 4, structs and dict entries to 8, variants to 1 */
        return type == 'a' ? 4 : type == 'v' ? 1 : 8;
}

int bus_message_values_size(sd_bus_message *m, uint64_t *at) {
        const char *contents;
        unsigned size;
        char type;
        int r;

        while ((r = sd_bus_message_peek_type(m, &type, &contents)) > 0) {
                *at = pad_to(*at, basic_layout(type, &size));
                if (size > 0) {
                        uint64_t scratch;

                        *at += size;
                        r = sd_bus_message_read_basic(m, type, &scratch);
                } else if (strchr("sog", type)) {
                        const char *v = NULL;

                        r = sd_bus_message_read_basic(m, type, &v);
                        *at += (type == 'g' ? 2 : 5) + (v ? strlen(v) : 0);
                } else if (type == 'a' && basic_layout(contents[0], &size) && size > 0 && !contents[1]) {
                        const void *p;
                        size_t n = 0;

                        *at = pad_to(*at + 4, basic_layout(contents[0], &size));
                        r = sd_bus_message_read_array(m, contents[0], &p, &n);
                        *at += n;
                } else {
                        if (type == 'a')
                                *at = pad_to(*at + 4, basic_layout(contents[0], &size));
                        else if (type == 'v')
                                *at += strlen(contents) + 2;
                        r = sd_bus_message_enter_container(m, type, contents);
                        if (r >= 0)
                                r = bus_message_values_size(m, at);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                }
                if (r < 0)
                        return r;
        }
        return r;
}

/* A header field: its code and signature (4 bytes), then a string's length, text and NUL. */
static uint64_t header_string(uint64_t at, const char *s) {
        return s ? pad_to(at, 8) + 4 + 4 + strlen(s) + 1 : at;
}

int bus_append_stat(sd_bus_message *reply, const char *key, char type, const void *value) {
        char sig[2] = { type, 0 };
        int r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append_basic(reply, 's', key);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', sig);
        if (r >= 0)
                r = sd_bus_message_append_basic(reply, type, value);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

uint64_t bus_message_wire_size(sd_bus_message *m) {
        const char *signature = sd_bus_message_get_signature(m, true);
        uint64_t header = 16, body = 0, cookie;

        header = header_string(header, sd_bus_message_get_path(m));
        header = header_string(header, sd_bus_message_get_interface(m));
        header = header_string(header, sd_bus_message_get_member(m));
        header = header_string(header, sd_bus_message_get_destination(m));
        header = header_string(header, sd_bus_message_get_sender(m));
        if (sd_bus_message_get_error(m))
                header = header_string(header, sd_bus_message_get_error(m)->name);
        if (sd_bus_message_get_reply_cookie(m, &cookie) >= 0)
                header = pad_to(header, 8) + 8;
        if (signature && *signature)
                header = pad_to(header, 8) + 4 + strlen(signature) + 2;
        if (sd_bus_message_rewind(m, true) >= 0) {
                (void) bus_message_values_size(m, &body);
                (void) sd_bus_message_rewind(m, true);
        }
        return pad_to(header, 8) + body;
}

int bus_send(sd_bus_message *m) {
        int r;

        if (!gate.closed) {
                r = sd_bus_send(NULL, m, NULL);
                sent_message(m);
                return r;
        }
        gate.held[gate.n_held++] = sd_bus_message_ref(m);
        if (gate.n_held == BUS_GATE_MAX_HELD)
                bus_gate_flush();
        return 1;
}

int bus_reply_return(sd_bus_message *call, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        va_list ap;
        int r;

        if (!sd_bus_message_get_expect_reply(call))
                return 0;
        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        if (types && *types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(reply, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        return bus_send(reply);
}

int bus_reply_error(sd_bus_message *call, const sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!sd_bus_message_get_expect_reply(call)) {
                unheard_errors++; /* a waiting call of a caller that wants no answer failed */
                return 0;
        }
        r = sd_bus_message_new_method_error(call, &reply, e);
        if (r < 0)
                return r;
        return bus_send(reply);
}

int bus_reply_errorf(sd_bus_message *call, const char *name, const char *fmt, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;

        if (!sd_bus_message_get_expect_reply(call)) {
                unheard_errors++;
                return 0;
        }
        va_start(ap, fmt);
        (void) sd_bus_error_setfv(&e, name, fmt, ap);
        va_end(ap);
        return bus_reply_error(call, &e);
}

int bus_emit_object_added(sd_bus *bus, const char *path) {
        bus_gate_flush();
        return sd_bus_emit_object_added(bus, path);
}

int bus_emit_object_removed(sd_bus *bus, const char *path) {
        bus_gate_flush();
        return sd_bus_emit_object_removed(bus, path);
}

/* ---- errors, names, options ------------------------------------------------------------- */

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
