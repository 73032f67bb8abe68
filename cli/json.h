/* SPDX-License-Identifier: MIT */
/* hubctl: a small strict JSON reader (RFC 8259) for `hubctl restore`, and the base64 both
 * directions of a dump use. No D-Bus here: tests/cli/test-json.c tests it alone.
 *
 * Strict: one document, no comments, no trailing commas, no duplicate object keys, strings of
 * valid UTF-8 (escaped surrogates must pair), and no NUL anywhere (D-Bus strings cannot hold
 * one, and every string read here goes to D-Bus). Nesting is bounded (MAX_DEPTH). Numbers keep
 * the text they were written with, so that a 64-bit integer is never rounded through a
 * double; the caller converts them to the type it expects. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef enum JsonType {
        JSON_NULL,
        JSON_BOOL,
        JSON_NUMBER,
        JSON_STRING,
        JSON_ARRAY,
        JSON_OBJECT,
} JsonType;

typedef struct JsonValue JsonValue;
struct JsonValue {
        JsonType type;
        bool boolean;      /* JSON_BOOL */
        size_t offset;     /* where the value starts in the text, for messages (json_position()) */
        char *text;        /* JSON_STRING: the decoded string (UTF-8, NUL-terminated, no NUL
                            * inside); JSON_NUMBER: the number as written */
        size_t len;        /* strlen(text) */
        size_t n;          /* JSON_ARRAY, JSON_OBJECT: number of items */
        JsonValue *items;  /* the elements, or the members' values */
        char **keys;       /* JSON_OBJECT: the members' names, in document order */
};

/* Parses the LEN bytes at TEXT as one JSON document nested at most MAX_DEPTH arrays and objects
 * deep. On success fills *RET (free with json_value_clear()); on failure returns -EINVAL and, in
 * *RET_ERROR (malloc'd; may be NULL on ENOMEM), "line L, column C: WHAT", or -ENOMEM. */
int json_parse(const char *text, size_t len, unsigned max_depth, JsonValue *ret, char **ret_error);
void json_value_clear(JsonValue *v);
/* The member KEY of the object O, or NULL (also when O is not an object). */
const JsonValue *json_object_get(const JsonValue *o, const char *key);
/* Line and column (both from 1; columns count characters, not bytes) of OFFSET in TEXT. */
void json_position(const char *text, size_t offset, unsigned *ret_line, unsigned *ret_column);
const char *json_type_name(JsonType t);

/* Decodes the JSON escape at S (its backslash; AVAIL bytes may be read from S, or up to a NUL)
 * into *O, which it moves on (UTF-8, never longer than the escape): returns the bytes it took
 * (2, 6, or 12 for a surrogate pair), -EINVAL for a bad escape, -ERANGE for a lone surrogate (in
 * *RET_CP), -EDOM for \u0000 (D-Bus strings cannot hold NUL). */
int json_unescape(const char *s, size_t avail, char **o, uint32_t *ret_cp);

/* Strict UTF-8 as D-Bus wants it (no overlong forms, no surrogates, at most U+10FFFF, no NUL):
 * the offset of the first bad byte, or -1. */
ssize_t utf8_invalid_at(const char *text, size_t len);

/* RFC 4648 base64 with padding, written to F. */
void base64_write(FILE *f, const void *data, size_t n);
/* Decodes TEXT (RFC 4648, padded, no whitespace) into a malloc'd buffer. -EINVAL when it is not
 * base64, -ENOMEM. */
int base64_decode(const char *text, size_t len, uint8_t **ret, size_t *ret_n);
