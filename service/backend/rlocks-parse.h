/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the lock scripts of rlocks.c leave in Redis and answer, read back: plain logic, no I/O.
 * Redis content is hostile (any client may write it): every function bounds and checks its
 * input and answers -EBADMSG for what does not parse, writing its output only on success. */

#define RLOCKS_HOLDER_MAX 255
#define RLOCKS_NODE_MAX 64

/* A decimal number of at most 19 digits (16 hex digits with HEX), nothing else. */
int rlocks_parse_u64(const char *s, size_t len, bool hex, uint64_t *ret);

/* A token as Redis sends it ("1", at most 19 digits, > 0, < 2^63). */
int rlocks_parse_token(const char *s, size_t len, uint64_t *ret);

/* A holder record "INSTANCE\tNODE\tWAITER\tS|X\tDEADLINE_MS\tHOLDER" (INSTANCE 1 to 16 hex
 * digits, NODE at most 64 bytes, HOLDER at most 255 bytes without a tab, no NUL anywhere). */
typedef struct RLockRecord {
        uint64_t instance;
        char node[RLOCKS_NODE_MAX + 1];
        uint64_t wid;
        bool shared;
        uint64_t deadline_ms;   /* 0: none */
        char holder[RLOCKS_HOLDER_MAX + 1];
} RLockRecord;
int rlocks_parse_record(const char *s, size_t len, RLockRecord *ret);
