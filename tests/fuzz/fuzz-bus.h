/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the fuzz targets: hand a method call with an arbitrary body to sd-bus the way a
 * peer would, so the body is parsed by the same code that parses the hub's real traffic.
 *
 * The message is marshalled here (D-Bus 1 wire format: a correct header with PATH,
 * INTERFACE, MEMBER and SIGNATURE, then the fuzzer's bytes as the body, in either byte
 * order) and written, after the SASL EXTERNAL handshake, into a socketpair whose other end
 * is a fresh sd-bus server connection.  REGISTER installs the objects on that connection
 * before it starts. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

typedef int (*FuzzRegister)(sd_bus *server, void *userdata);

typedef struct FuzzCall {
        char endian;            /* 'l' or 'B' */
        bool no_reply;          /* NO_REPLY_EXPECTED */
        const char *path, *interface, *member, *signature;
        const void *body;
        size_t body_size;
} FuzzCall;

/* Delivers CALL and lets the server process it.  Returns 1 when the server answered (a
 * method return or an error), 0 when it sent nothing back, -ECONNRESET when sd-bus dropped
 * the connection (for a body it refused to parse), or another negative errno when the test
 * set-up failed. */
int fuzz_call_raw(FuzzRegister reg, void *userdata, const FuzzCall *call);

/* A started client connection that is never read, for building messages in memory. */
sd_bus *fuzz_message_bus(void);
