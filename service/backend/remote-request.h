/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Requests and EmitTo across hosts (docs/redis.md, "Requests"): the messages hubs send each
 * other and the list of methods a hub serves.  Plain logic, no I/O.
 *
 * Every hub PSUBSCRIBEs its own channel "clusterhub:req:" INSTANCE (16 hex digits, its random
 * id per start); a request goes to the target hub's channel, its answer to the origin's.
 *
 * Message: "CHR1", one byte of byte order ('l' or 'B': payloads are the variant codec's,
 * service/bus/variant-codec.h, in the sender's byte order), one byte of kind (RemoteKind), the
 * request id (8 bytes, the origin's), the origin's instance (8 bytes: where the answer goes),
 * the timeout in ms (u64), then a u32 count of strings, each a u32 length, the bytes and a NUL,
 * then a u32 count of blobs, each a u32 length and the bytes.  Integers are little-endian
 * (the id and the instance are opaque).  Nothing may follow. */

#define REMOTE_REQUEST_CHANNEL_PREFIX "clusterhub:req:"
/* The most strings and blobs a message may carry (a RequestAll answer: a key and a value or
 * blob per worker of the answering hub). */
#define REMOTE_MSG_MAX_ITEMS 16384u
/* The longest string (names, origins, error messages). */
#define REMOTE_MSG_STRING_MAX 65535u

typedef enum RemoteKind {
        REMOTE_REQUEST = 'Q',           /* strings: node, namespace, method, origin, target worker id
                                         * ("": any server); blob: payload */
        REMOTE_REQUEST_ALL = 'A',       /* the same, for a RequestAll */
        REMOTE_REPLY = 'R',             /* blob: the reply (one "v") */
        REMOTE_ERROR = 'X',             /* strings: error name, message */
        REMOTE_GATHERED = 'G',          /* strings: n reply keys, then error key, value pairs;
                                         * blobs: the n replies, in order */
        REMOTE_EMIT_TO = 'E',           /* strings: namespace, event, worker id, origin (ID@NODE);
                                         * blob: payload.  Nobody answers it. */
} RemoteKind;

typedef struct RemoteMsg {
        char kind;
        uint64_t id;
        uint64_t reply_to;
        uint64_t timeout_ms;
        size_t n_strings;
        const char **strings;           /* decoded: pointing into the data */
        size_t n_blobs;
        const void **blobs;
        size_t *blob_sizes;
} RemoteMsg;

/* Encodes M into a new buffer.  -EINVAL for a kind or string count that is not right, or a
 * string or count over the bounds. */
int remote_msg_encode(const RemoteMsg *m, char **ret, size_t *ret_size);
/* Decodes DATA into *RET, whose strings and blobs point into DATA; free its arrays with
 * remote_msg_done().  -EBADMSG when DATA is not such a message (the counts of strings and blobs
 * are checked against its kind), -EPROTONOSUPPORT when its payloads are in the other byte
 * order. */
int remote_msg_decode(const char *data, size_t size, RemoteMsg *ret);
void remote_msg_done(RemoteMsg *m);

/* The instance a channel names, or -EINVAL. */
int remote_request_channel_instance(const char *channel, uint64_t *ret);

/* What a hub serves, as kept in Redis with its heartbeat: "CHS1 INSTANCE\n" (16 hex digits)
 * then one line per served method, "NAMESPACE\tMETHOD\tCOUNT\n" (COUNT: its servers there).
 * Bounded: at most REMOTE_SERVED_MAX lines, names of 1 to 255 bytes without tab, newline or
 * NUL. */
#define REMOTE_SERVED_MAX 4096u

typedef int (*remote_served_fn)(const char *ns, const char *method, uint64_t count, void *userdata);
/* Parses DATA: *RET_INSTANCE, then FN for every line (its strings live during the call).
 * -EBADMSG when DATA does not parse (FN may have been called for the lines before). */
int remote_served_parse(const char *data, size_t size, uint64_t *ret_instance, remote_served_fn fn, void *userdata);
/* Whether NAME can stand in a served line. */
bool remote_served_name_ok(const char *name);
