/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <systemd/sd-bus.h>

#include "store.h"

/* Compact serialization of one D-Bus value, so the store can keep a variant of any type
 * (arrays, dictionaries, structs, nested variants) as opaque bytes and give it back with the
 * same type.  Format: the value's fields in signature order; fixed-size basics in host byte
 * order, strings as u32 length + bytes, arrays as u32 element count + elements, variants as
 * their signature (a string) + value.  File descriptors are refused (-EBADF): a stored fd
 * would outlive the process that sent it. */

typedef struct CodecBuf {
        char *data;
        size_t size;
        size_t allocated;
        unsigned depth;   /* the deepest nesting codec_read() met, in containers (0: basic) */
} CodecBuf;

/* How deep a message may nest, in containers: arrays (empty ones too), structs, dict
 * entries and variants, each counted.  dbus-broker refuses to enter a 64th level and
 * dbus-daemon a 65th (it does not count empty or fixed-size arrays); either drops the
 * connection that sent the message.  Measured: tests/store-bus/test-depth.c. */
#define CODEC_BUS_DEPTH_MAX 63u
/* The hub sends stored values and RequestAll replies back inside an a{sv}, under an array
 * and a dict entry: counting its own variant, such a value may nest this deep. */
#define CODEC_VARIANT_DEPTH_MAX (CODEC_BUS_DEPTH_MAX - 2u)

void codec_buf_done(CodecBuf *b);

/* Reads one complete value of type SIGNATURE at M's read position into B, and raises
 * B->depth to the value's nesting depth.  -ELOOP when deeper than any bus allows. */
int codec_read(sd_bus_message *m, const char *signature, CodecBuf *b);

/* Does every argument of M nest at most MAX containers deep?  1 yes, 0 no, or -errno.
 * Rewinds M before and after.  Values whose type alone shows they fit are skipped whole,
 * so only variants (and types near the bound) are walked.  File descriptors are fine. */
int codec_message_fits(sd_bus_message *m, unsigned max);

/* Appends the value of type SIGNATURE held in DATA/SIZE to M. */
int codec_append(sd_bus_message *m, const char *signature, const void *data, size_t size);

/* A value to store, read from a message: a basic value borrows M's strings; anything else is
 * encoded into BUF, with its signature in SIG. */
typedef struct CodecValue {
        StoreValue value;
        CodecBuf buf;
        char *sig;
} CodecValue;

void codec_value_done(CodecValue *v);
/* Reads the variant at M's position into V.  -EMEDIUMTYPE: not a variant; -EBADF: it holds
 * file descriptors; -ELOOP: deeper than any bus allows; -E2BIG: deeper than a stored value may
 * be (CODEC_VARIANT_DEPTH_MAX, with its own variant: V->buf.depth + 1 says how deep). */
int codec_read_value(sd_bus_message *m, CodecValue *v);
/* Appends the stored value V as a variant (the inverse of codec_read_value()). */
int codec_append_value(sd_bus_message *m, const StoreValue *v);
