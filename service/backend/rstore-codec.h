/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * How a Store1 value is kept in Redis (the Redis-backed store, docs/redis.md "Store"): plain
 * logic, no Redis, no bus.
 *
 *   'x' (int64)     its canonical decimal form ("-12", "0"): Redis's INCRBY/HINCRBY work on it
 *                   natively and check overflow.
 *   's' (string)    its raw bytes, unless they would read back as something else: a canonical
 *                   int64 ("42") or a first byte 0xFF; those get the tag: 0xFF 's' + bytes.
 *   anything else   0xFF + the D-Bus type letter + payload:
 *                     'o' 'g'                 the text
 *                     'y' 'n' 'i' 'q' 'u' 't' 'b'  the decimal number
 *                     'd'                     "%.17g" (round-trips; Lua's tonumber() reads it),
 *                                             "inf", "-inf", "nan"
 *                     'v' (a blob)            the signature, a NUL, the variant-codec.h bytes
 *   0xFF can never start valid UTF-8, so no string a client sets raw starts with it.
 *
 * Reading: untagged bytes that are a canonical int64 are 'x'; other untagged bytes are a
 * string when they are valid UTF-8 without NUL.  Anything else (bytes another client of the
 * Redis wrote that are not UTF-8, a tag with an unknown letter, a payload that does not parse)
 * is refused: -EBADMSG, which the glue answers as org.clusterhub.Error.WrongType naming the
 * key ("does not hold a clusterhub value").
 */

#define RSTORE_TAG ((char) 0xFF)

/* Whether S (LEN bytes) is the canonical decimal form of an int64 (no sign on 0, no leading
 * zeros, no '+', in range), and the number. */
bool rstore_is_canonical_int(const char *s, size_t len, int64_t *ret);

/* The bytes of V in Redis (owned, *RET_LEN bytes; NUL-terminated for convenience).
 * -EINVAL for an invalid value (type letter), -ENOMEM. */
int rstore_encode(const StoreValue *v, char **ret, size_t *ret_len);

/* A decoded value: strings and blobs are views into the bytes decoded (valid while they are),
 * except that a string is copied when it needs a NUL terminator (held in OWNED). */
typedef struct RStoreValue {
        StoreValue value;
        char *owned;
} RStoreValue;

void rstore_value_done(RStoreValue *v);
/* Decodes DATA (LEN bytes, as Redis gave them).  -EBADMSG when it is not a value the hub
 * wrote (see above); -ENOMEM. */
int rstore_decode(const char *data, size_t len, RStoreValue *ret);

/* ---- key names ------------------------------------------------------------------------- */

/* The Redis key of KEY in namespace NS (owned): "clusterhub:{NS}:k:KEY".  -ENOMEM. */
int rstore_key(const char *ns, const char *key, char **ret);
/* "clusterhub:{NS}:k:" (owned): the prefix of every key of NS. */
int rstore_key_prefix(const char *ns, char **ret);
/* The namespace and the key of a Redis key made by rstore_key(), as views into REDIS_KEY:
 * *RET_NS of *RET_NS_LEN bytes ([A-Za-z0-9_]+), *RET_KEY to the end.  -EINVAL for any other
 * name. */
int rstore_key_parse(const char *redis_key, size_t len, const char **ret_ns, size_t *ret_ns_len, const char **ret_key);
/* A Redis MATCH pattern for the Store1 glob GLOB in namespace NS (owned): the prefix with
 * every glob character escaped, then GLOB ("*" for NULL or ""), whose own escapes stay; a
 * trailing lone backslash of GLOB is escaped, so that the pattern never reaches past NS. */
int rstore_match_pattern(const char *ns, const char *glob, char **ret);

/* ---- keyspace notifications -------------------------------------------------------------- */

/* The notify-keyspace-events flags the hub needs: K (keyspace channel), g (generic), $
 * (strings), l (lists), s (sets), h (hashes), x (expired), e (evicted). */
#define RSTORE_NOTIFY_FLAGS "Kg$lshxe"
/* The union of Redis's current notify-keyspace-events value CURRENT and RSTORE_NOTIFY_FLAGS
 * (owned) in *RET: 1 when it differs from CURRENT (CONFIG SET needed), 0 when CURRENT has
 * every flag already.  -ENOMEM. */
int rstore_notify_flags_merge(const char *current, char **ret);
/* Whether EVENT (LEN bytes) is an event name the hub passes on as KeyChanged: 1-32 bytes of
 * [a-z0-9_]. */
bool rstore_event_name_is_valid(const char *event, size_t len);
