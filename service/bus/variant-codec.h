/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <systemd/sd-bus.h>

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
} CodecBuf;

void codec_buf_done(CodecBuf *b);

/* Reads one complete value of type SIGNATURE at M's read position into B. */
int codec_read(sd_bus_message *m, const char *signature, CodecBuf *b);

/* Appends the value of type SIGNATURE held in DATA/SIZE to M. */
int codec_append(sd_bus_message *m, const char *signature, const void *data, size_t size);
