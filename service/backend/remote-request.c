/* SPDX-License-Identifier: MIT */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "remote-request.h"

#define MAGIC "CHR1"
#define HEADER_SIZE (4 + 1 + 1 + 8 + 8 + 8)

static char byte_order(void) {
        return __BYTE_ORDER == __LITTLE_ENDIAN ? 'l' : 'B';
}

/* How many strings (exactly, or at least when GATHERED) and blobs a kind carries; false for a
 * kind that does not exist. */
static bool kind_shape(char kind, size_t *n_strings, size_t *n_blobs) {
        switch (kind) {
        case REMOTE_REQUEST:
                *n_strings = 5;
                *n_blobs = 1;
                return true;
        case REMOTE_REQUEST_ALL:
        case REMOTE_EMIT_TO:
                *n_strings = 4;
                *n_blobs = 1;
                return true;
        case REMOTE_REPLY:
                *n_strings = 0;
                *n_blobs = 1;
                return true;
        case REMOTE_ERROR:
                *n_strings = 2;
                *n_blobs = 0;
                return true;
        case REMOTE_GATHERED:
                *n_strings = SIZE_MAX; /* checked against the blobs */
                *n_blobs = SIZE_MAX;
                return true;
        default:
                return false;
        }
}

static bool shape_ok(char kind, size_t n_strings, size_t n_blobs) {
        size_t s, b;

        if (!kind_shape(kind, &s, &b) || n_strings > REMOTE_MSG_MAX_ITEMS || n_blobs > REMOTE_MSG_MAX_ITEMS)
                return false;
        if (kind == REMOTE_GATHERED) /* a key per blob, then pairs */
                return n_strings >= n_blobs && (n_strings - n_blobs) % 2 == 0;
        return n_strings == s && n_blobs == b;
}

static void put_u32(char **p, uint32_t v) {
        v = htole32(v);
        memcpy(*p, &v, 4);
        *p += 4;
}

static void put_u64(char **p, uint64_t v) {
        memcpy(*p, &v, 8);
        *p += 8;
}

int remote_msg_encode(const RemoteMsg *m, char **ret, size_t *ret_size) {
        size_t size = HEADER_SIZE + 4 + 4;
        char *buf, *p;

        if (!shape_ok(m->kind, m->n_strings, m->n_blobs))
                return -EINVAL;
        for (size_t i = 0; i < m->n_strings; i++) {
                if (!m->strings[i] || strlen(m->strings[i]) > REMOTE_MSG_STRING_MAX)
                        return -EINVAL;
                size += 4 + strlen(m->strings[i]) + 1;
        }
        for (size_t i = 0; i < m->n_blobs; i++) {
                if (m->blob_sizes[i] > UINT32_MAX || (m->blob_sizes[i] > 0 && !m->blobs[i]))
                        return -EINVAL;
                size += 4 + m->blob_sizes[i];
        }
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, MAGIC, 4);
        buf[4] = byte_order();
        buf[5] = m->kind;
        p = buf + 6;
        put_u64(&p, m->id);
        put_u64(&p, m->reply_to);
        put_u64(&p, htole64(m->timeout_ms));
        put_u32(&p, (uint32_t) m->n_strings);
        for (size_t i = 0; i < m->n_strings; i++) {
                size_t n = strlen(m->strings[i]);
                put_u32(&p, (uint32_t) n);
                memcpy(p, m->strings[i], n + 1);
                p += n + 1;
        }
        put_u32(&p, (uint32_t) m->n_blobs);
        for (size_t i = 0; i < m->n_blobs; i++) {
                put_u32(&p, (uint32_t) m->blob_sizes[i]);
                if (m->blob_sizes[i] > 0)
                        memcpy(p, m->blobs[i], m->blob_sizes[i]);
                p += m->blob_sizes[i];
        }
        *ret = buf;
        *ret_size = size;
        return 0;
}

static int get_u32(const char **p, size_t *left, uint32_t *ret) {
        uint32_t v;

        if (*left < 4)
                return -EBADMSG;
        memcpy(&v, *p, 4);
        *p += 4;
        *left -= 4;
        *ret = le32toh(v);
        return 0;
}

void remote_msg_done(RemoteMsg *m) {
        free(m->strings);
        free(m->blobs);
        free(m->blob_sizes);
        m->strings = NULL;
        m->blobs = NULL;
        m->blob_sizes = NULL;
        m->n_strings = m->n_blobs = 0;
}

int remote_msg_decode(const char *data, size_t size, RemoteMsg *ret) {
        RemoteMsg m = {};
        const char *p = data + HEADER_SIZE;
        size_t left, s, b;
        uint32_t n;
        uint64_t timeout;
        int r = -EBADMSG;

        if (size < HEADER_SIZE || memcmp(data, MAGIC, 4) != 0 || (data[4] != 'l' && data[4] != 'B') ||
            !kind_shape(data[5], &s, &b))
                return -EBADMSG;
        m.kind = data[5];
        memcpy(&m.id, data + 6, 8);
        memcpy(&m.reply_to, data + 14, 8);
        memcpy(&timeout, data + 22, 8);
        m.timeout_ms = le64toh(timeout);
        left = size - HEADER_SIZE;
        if (get_u32(&p, &left, &n) < 0 || n > REMOTE_MSG_MAX_ITEMS || (size_t) n * 5 > left)
                return -EBADMSG;
        m.strings = calloc(n + 1, sizeof(char *));
        if (!m.strings)
                return -ENOMEM;
        for (m.n_strings = 0; m.n_strings < n; m.n_strings++) {
                uint32_t len;

                if (get_u32(&p, &left, &len) < 0 || len > REMOTE_MSG_STRING_MAX || left < (size_t) len + 1 ||
                    p[len] != 0 || memchr(p, 0, len))
                        goto fail;
                m.strings[m.n_strings] = p;
                p += len + 1;
                left -= len + 1;
        }
        if (get_u32(&p, &left, &n) < 0 || n > REMOTE_MSG_MAX_ITEMS || (size_t) n * 4 > left)
                goto fail;
        m.blobs = calloc(n + 1, sizeof(void *));
        m.blob_sizes = calloc(n + 1, sizeof(size_t));
        if (!m.blobs || !m.blob_sizes) {
                r = -ENOMEM;
                goto fail;
        }
        for (m.n_blobs = 0; m.n_blobs < n; m.n_blobs++) {
                uint32_t len;

                if (get_u32(&p, &left, &len) < 0 || left < len)
                        goto fail;
                m.blobs[m.n_blobs] = p;
                m.blob_sizes[m.n_blobs] = len;
                p += len;
                left -= len;
        }
        if (left != 0 || !shape_ok(m.kind, m.n_strings, m.n_blobs))
                goto fail;
        if (data[4] != byte_order() && m.n_blobs > 0) {
                r = -EPROTONOSUPPORT;
                goto fail;
        }
        *ret = m;
        return 0;
fail:
        remote_msg_done(&m);
        return r;
}

static int parse_hex64(const char *s, size_t n, uint64_t *ret) {
        uint64_t v = 0;

        if (n != 16)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                unsigned d;

                if (c >= '0' && c <= '9')
                        d = c - '0';
                else if (c >= 'a' && c <= 'f')
                        d = c - 'a' + 10;
                else
                        return -EINVAL;
                v = v << 4 | d;
        }
        *ret = v;
        return 0;
}

int remote_request_channel_instance(const char *channel, uint64_t *ret) {
        size_t n = strlen(REMOTE_REQUEST_CHANNEL_PREFIX);

        if (!channel || !strneq(channel, REMOTE_REQUEST_CHANNEL_PREFIX, n))
                return -EINVAL;
        return parse_hex64(channel + n, strlen(channel + n), ret);
}

bool remote_served_name_ok(const char *name) {
        size_t n = strlen(name);

        return n > 0 && n <= 255 && !strpbrk(name, "\t\n");
}

int remote_served_parse(const char *data, size_t size, uint64_t *ret_instance, remote_served_fn fn, void *userdata) {
        const char *p = data, *end = data + size, *nl;
        char line[4 + 1 + 255 + 1 + 255 + 1 + 21 + 2];
        uint64_t instance;
        unsigned n = 0;
        int r;

        if (memchr(data, 0, size))
                return -EBADMSG;
        nl = memchr(p, '\n', end - p);
        if (!nl || nl - p != 4 + 1 + 16 || memcmp(p, "CHS1 ", 5) != 0 || parse_hex64(p + 5, 16, &instance) < 0)
                return -EBADMSG;
        *ret_instance = instance;
        for (p = nl + 1; p < end; p = nl + 1) {
                char *ns, *method, *count, *rest, *e;
                unsigned long long c;

                nl = memchr(p, '\n', end - p);
                if (!nl || (size_t) (nl - p) >= sizeof(line) || ++n > REMOTE_SERVED_MAX)
                        return -EBADMSG;
                memcpy(line, p, nl - p);
                line[nl - p] = 0;
                rest = line;
                ns = strsep(&rest, "\t");
                method = strsep(&rest, "\t");
                count = rest;
                if (!method || !count || !remote_served_name_ok(ns) || !remote_served_name_ok(method) || !*count ||
                    *count < '0' || *count > '9')
                        return -EBADMSG;
                errno = 0;
                c = strtoull(count, &e, 10);
                if (errno || *e || c == 0)
                        return -EBADMSG;
                r = fn(ns, method, c, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}
