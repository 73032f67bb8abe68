/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* An event as it crosses hosts: the message a hub PUBLISHes on its namespace's channel and
 * every other hub turns back into an Event signal.  Plain logic, no I/O.
 *
 * Channel: "clusterhub:events:" NAMESPACE; every hub PSUBSCRIBEs "clusterhub:events:*".
 * Message: "CHE1", one byte of byte order ('l' or 'B': the payload is the variant codec's,
 * service/bus/variant-codec.h, in the sender's byte order), the sending hub's instance (8
 * bytes, random per start, so that a hub knows its own publications), then NODE, ORIGIN and
 * EVENT, each a little-endian u32 length, the bytes and a NUL, then the payload to the end. */

#define REMOTE_EVENT_CHANNEL_PREFIX "clusterhub:events:"
#define REMOTE_EVENT_PATTERN REMOTE_EVENT_CHANNEL_PREFIX "*"
/* The longest node name and origin a message may carry. */
#define REMOTE_EVENT_NAME_MAX 255u

typedef struct RemoteEvent {
        uint64_t instance;
        const char *node;
        const char *origin;
        const char *event;
        const void *payload;      /* the codec's encoding of one "v" */
        size_t payload_size;
} RemoteEvent;

/* Encodes E into a new buffer (*RET, *RET_SIZE).  -EINVAL for a name over the bounds. */
int remote_event_encode(const RemoteEvent *e, char **ret, size_t *ret_size);
/* Decodes DATA: on success *RET points into DATA (its strings are NUL-terminated there).
 * -EBADMSG when DATA is not such a message; -EPROTONOSUPPORT when its payload is in the other
 * byte order. */
int remote_event_decode(const char *data, size_t size, RemoteEvent *ret);
/* The namespace a channel names, or NULL when CHANNEL is not an event channel. */
const char *remote_event_channel_namespace(const char *channel);
