/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-bus.h"

typedef struct Buf {
        uint8_t *data;
        size_t size, allocated;
        char endian;
} Buf;

static void buf_put(Buf *b, const void *p, size_t n) {
        if (n == 0)
                return;
        if (b->size + n > b->allocated) {
                b->allocated = (b->size + n) * 2;
                b->data = realloc(b->data, b->allocated);
                if (!b->data)
                        abort();
        }
        memcpy(b->data + b->size, p, n);
        b->size += n;
}

static void buf_align(Buf *b, size_t a) {
        static const uint8_t zeros[8];
        buf_put(b, zeros, (a - b->size % a) % a);
}

static void buf_u32_at(Buf *b, size_t at, uint32_t v) {
        uint8_t x[4];
        for (int i = 0; i < 4; i++)
                x[i] = b->endian == 'B' ? v >> (24 - 8 * i) : v >> (8 * i);
        memcpy(b->data + at, x, 4);
}

static void buf_u32(Buf *b, uint32_t v) {
        buf_align(b, 4);
        buf_put(b, "\0\0\0\0", 4);
        buf_u32_at(b, b->size - 4, v);
}

/* One header field: struct (code, variant of TYPE with the string S). */
static void header_field(Buf *b, uint8_t code, char type, const char *s) {
        uint8_t sig[3] = { 1, (uint8_t) type, 0 };
        size_t n = strlen(s);

        buf_align(b, 8);
        buf_put(b, &code, 1);
        buf_put(b, sig, sizeof(sig));
        if (type == 'g') {
                uint8_t l = (uint8_t) n;
                buf_put(b, &l, 1);
        } else
                buf_u32(b, (uint32_t) n);
        buf_put(b, s, n + 1);
}

static void marshal(Buf *b, const FuzzCall *c) {
        uint8_t fixed[4] = { (uint8_t) c->endian, 1 /* method call */, c->no_reply ? 1 : 0, 1 /* version */ };
        size_t fields_at;

        buf_put(b, fixed, sizeof(fixed));
        buf_u32(b, (uint32_t) c->body_size);
        buf_u32(b, 1); /* serial */
        buf_u32(b, 0); /* header fields length, set below */
        fields_at = b->size;
        header_field(b, 1, 'o', c->path);
        header_field(b, 2, 's', c->interface);
        header_field(b, 3, 's', c->member);
        if (c->signature && c->signature[0])
                header_field(b, 8, 'g', c->signature);
        buf_u32_at(b, 12, (uint32_t) (b->size - fields_at));
        buf_align(b, 8);
        if (c->body_size > 0)
                buf_put(b, c->body, c->body_size);
}

static int write_all(int fd, const void *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0)
                        return -errno;
                p = (const uint8_t *) p + k;
                n -= (size_t) k;
        }
        return 0;
}

static int handshake(int fd) {
        char uid[32], line[128] = "";
        size_t n;
        int k = snprintf(uid, sizeof(uid), "%u", (unsigned) getuid());

        n = 1 + (size_t) snprintf(line + 1, sizeof(line) - 1, "AUTH EXTERNAL ");
        for (int i = 0; i < k; i++)
                n += (size_t) snprintf(line + n, sizeof(line) - n, "%02x", (unsigned char) uid[i]);
        n += (size_t) snprintf(line + n, sizeof(line) - n, "\r\nBEGIN\r\n");
        return write_all(fd, line, n);
}

/* Bytes the server wrote after its "OK <guid>\r\n" line. */
static size_t answer_size(int fd) {
        char buf[65536];
        size_t after = 0;
        bool seen_ok = false;
        ssize_t k;

        while ((k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
                for (ssize_t i = 0; i < k; i++) {
                        if (seen_ok)
                                after++;
                        else if (buf[i] == '\n')
                                seen_ok = true;
                }
        }
        return after;
}

int fuzz_call_raw(FuzzRegister reg, void *userdata, const FuzzCall *call) {
        sd_bus *server = NULL;
        sd_id128_t id;
        Buf b = { .endian = call->endian };
        int fds[2], r, process = 0;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                return -errno;
        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&server);
        if (r >= 0)
                r = sd_bus_set_fd(server, fds[0], fds[0]);
        if (r >= 0)
                fds[0] = -1;
        if (r >= 0)
                r = sd_bus_set_server(server, 1, id);
        if (r >= 0)
                r = reg(server, userdata);
        if (r >= 0)
                r = sd_bus_start(server);
        if (r >= 0)
                r = handshake(fds[1]);
        if (r >= 0) {
                marshal(&b, call);
                r = write_all(fds[1], b.data, b.size);
                free(b.data);
        }
        /* The handshake, then the call; stop when sd-bus has nothing left to do. */
        while (r >= 0 && (process = sd_bus_process(server, NULL)) > 0)
                ;
        if (r >= 0 && process < 0)
                r = -ECONNRESET;
        if (r >= 0 && sd_bus_flush(server) < 0)
                r = -ECONNRESET;
        if (r >= 0)
                r = answer_size(fds[1]) > 0;
        if (server)
                sd_bus_flush_close_unref(server);
        if (fds[0] >= 0)
                close(fds[0]);
        close(fds[1]);
        return r;
}

sd_bus *fuzz_message_bus(void) {
        static sd_bus *bus;
        int fds[2];

        if (bus)
                return bus;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ||
            sd_bus_new(&bus) < 0 || sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0)
                abort();
        /* fds[1] stays open so that the connection stays up; nothing is ever sent. */
        return bus;
}
