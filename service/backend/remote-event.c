/* SPDX-License-Identifier: MIT */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "remote-event.h"

#define MAGIC "CHE1"
#define HEADER_SIZE (4 + 1 + 8)

static char byte_order(void) {
        return __BYTE_ORDER == __LITTLE_ENDIAN ? 'l' : 'B';
}

static char *put_string(char *p, const char *s) {
        uint32_t n = htole32((uint32_t) strlen(s));

        memcpy(p, &n, 4);
        memcpy(p + 4, s, strlen(s) + 1);
        return p + 4 + strlen(s) + 1;
}

int remote_event_encode(const RemoteEvent *e, char **ret, size_t *ret_size) {
        const char *strings[] = { e->node, e->origin, e->event };
        size_t size = HEADER_SIZE + e->payload_size;
        char *buf, *p;

        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                if (!strings[i] || strlen(strings[i]) > (i == 2 ? 65535u : REMOTE_EVENT_NAME_MAX))
                        return -EINVAL;
                size += 4 + strlen(strings[i]) + 1;
        }
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, MAGIC, 4);
        buf[4] = byte_order();
        memcpy(buf + 5, &e->instance, 8);
        p = buf + HEADER_SIZE;
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                p = put_string(p, strings[i]);
        if (e->payload_size > 0)
                memcpy(p, e->payload, e->payload_size);
        *ret = buf;
        *ret_size = size;
        return 0;
}

/* A string at *P with LEFT bytes left: its length, its bytes, its NUL, and no NUL inside. */
static int get_string(const char **p, size_t *left, size_t max, const char **ret) {
        uint32_t n;

        if (*left < 4)
                return -EBADMSG;
        memcpy(&n, *p, 4);
        n = le32toh(n);
        if (n > max || *left - 4 < (size_t) n + 1 || (*p)[4 + n] != 0 || memchr(*p + 4, 0, n))
                return -EBADMSG;
        *ret = *p + 4;
        *p += 4 + n + 1;
        *left -= 4 + (size_t) n + 1;
        return 0;
}

int remote_event_decode(const char *data, size_t size, RemoteEvent *ret) {
        RemoteEvent e = {};
        const char *p = data + HEADER_SIZE;
        size_t left;
        int r;

        if (size < HEADER_SIZE || memcmp(data, MAGIC, 4) != 0 || (data[4] != 'l' && data[4] != 'B'))
                return -EBADMSG;
        left = size - HEADER_SIZE;
        memcpy(&e.instance, data + 5, 8);
        if ((r = get_string(&p, &left, REMOTE_EVENT_NAME_MAX, &e.node)) < 0 ||
            (r = get_string(&p, &left, REMOTE_EVENT_NAME_MAX, &e.origin)) < 0 ||
            (r = get_string(&p, &left, 65535, &e.event)) < 0)
                return r;
        if (data[4] != byte_order())
                return -EPROTONOSUPPORT;
        e.payload = p;
        e.payload_size = left;
        *ret = e;
        return 0;
}

const char *remote_event_channel_namespace(const char *channel) {
        size_t n = strlen(REMOTE_EVENT_CHANNEL_PREFIX);

        if (!channel || !strneq(channel, REMOTE_EVENT_CHANNEL_PREFIX, n) || !channel[n])
                return NULL;
        return channel + n;
}
