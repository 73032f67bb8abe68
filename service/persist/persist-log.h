/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The on-disk log of the store: a versioned header, then records, little endian.
 *
 *   header   "CHUBLOG\n" (8 bytes), u32 version (2; 1 is read too: it has no LOG_DELTA), u32 flags (0)
 *   record   u32 payload length, u32 CRC-32 (IEEE, as zlib) of the payload, payload
 *   payload  u8 op, then by op:
 *     LOG_SET     str ns, str key, i64 deadline (wall-clock ms, 0: none), entry
 *     LOG_DEL     str ns, str key
 *     LOG_FLUSH   str ns
 *     LOG_DROPNS  str ns
 *     LOG_TOKEN   u64 lock token floor (every token handed out is below it)
 *     LOG_DELTA   str ns, str key, i64 deadline (the key's, as in LOG_SET; a delta never
 *                 changes it), u8 delta op, u8 left (1) or right (0), u32 n, then by op:
 *                   LOG_DELTA_PUSH  value*n   pushed one by one onto the list's left/right
 *                   LOG_DELTA_POP   nothing   n elements popped off the list's left/right
 *                   LOG_DELTA_HSET  (str field, value)*n   set in this order
 *                   LOG_DELTA_HDEL  str*n     fields deleted from the hash
 *                   LOG_DELTA_SADD  str*n     members added to the set
 *                   LOG_DELTA_SREM  str*n     members removed from the set
 *                 A change to a large collection (more than LOG_DELTA_MIN_ITEMS items after
 *                 it) that the key already held; applies onto the state the log gives the key
 *                 so far (since version 2).
 *   str      u32 length, bytes, NUL
 *   entry    u8 kind: a plain value, or 'H' u32 n (str field, value)*n, 'L' u32 n value*n,
 *            'S' u32 n str*n
 *   value    u8 D-Bus type: 's' 'o' 'g' str; 'v' str signature, u32 length, bytes;
 *            'd' the IEEE bits as u64; others i64/u64
 * LOG_SET holds the resulting state of one key (effects, not commands): replaying it is
 * idempotent and never depends on limits or on the clock of the writer.  LOG_DELTA holds
 * what one change did to a large collection, so that its cost is the size of the change;
 * it is replayed in order onto the state before it.  An older hub (version 1 only) refuses
 * a version 2 log at its header rather than misreading it.
 * No file I/O happens in the codec functions; log_file_* does the files.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define LOG_MAGIC "CHUBLOG\n"
#define LOG_VERSION 2
#define LOG_VERSION_MIN 1
/* A change to a collection of more items than this (after the change) is logged as a delta;
 * smaller ones log their whole state, which is as cheap. */
#define LOG_DELTA_MIN_ITEMS 64
#define LOG_HEADER_SIZE 16
#define LOG_RECORD_HEADER 8
#define LOG_RECORD_MAX ((uint32_t) 1 << 30)

enum {
        LOG_SET = 1,
        LOG_DEL = 2,
        LOG_FLUSH = 3,
        LOG_DROPNS = 4,
        LOG_TOKEN = 5,
        LOG_DELTA = 6,
};

enum {
        LOG_DELTA_PUSH = 1,
        LOG_DELTA_POP = 2,
        LOG_DELTA_HSET = 3,
        LOG_DELTA_HDEL = 4,
        LOG_DELTA_SADD = 5,
        LOG_DELTA_SREM = 6,
};

uint32_t log_crc32(uint32_t crc, const void *data, size_t len);

/* A growing byte buffer holding one record being built. */
typedef struct LogBuf {
        uint8_t *data;
        size_t len, cap;
        bool oom;
} LogBuf;

void logbuf_reset(LogBuf *b);            /* starts a record (room for its header) */
void logbuf_free(LogBuf *b);
void logbuf_u8(LogBuf *b, uint8_t v);
void logbuf_u32(LogBuf *b, uint32_t v);
void logbuf_u64(LogBuf *b, uint64_t v);
void logbuf_str(LogBuf *b, const char *s, size_t len);
void logbuf_value(LogBuf *b, const StoreValue *v);
/* Fills in length and CRC; -ENOMEM when a put failed, -E2BIG past LOG_RECORD_MAX. */
int logbuf_finish(LogBuf *b);
/* The whole record of one entry (LOG_SET), deadline already converted to wall-clock ms. */
int logbuf_entry(LogBuf *b, Store *s, const char *ns, const StoreEntry *e, int64_t deadline_wall_ms);
/* The LOG_DELTA record of one change to KEY (whose deadline, in wall-clock ms, is given). */
int logbuf_delta(LogBuf *b, const char *ns, const char *key, int64_t deadline_wall_ms, const StoreDelta *d);
/* The kind of collection (STORE_KIND_*) a delta op (LOG_DELTA_*) applies to; 0 if none. */
char log_delta_kind(uint8_t op);

/* Reading a payload. */
typedef struct LogReader {
        const uint8_t *p, *end;
} LogReader;

int logrd_u8(LogReader *r, uint8_t *ret);
int logrd_u32(LogReader *r, uint32_t *ret);
int logrd_u64(LogReader *r, uint64_t *ret);
int logrd_str(LogReader *r, const char **ret, size_t *ret_len);
int logrd_value(LogReader *r, StoreValue *ret);

/* Walking a log file: fn gets each good record's payload and its file offset.  A negative
 * return of fn stops the walk with it. */
typedef int (*LogRecordFn)(void *userdata, const uint8_t *payload, size_t len, uint64_t offset);

typedef enum LogDamage {
        LOG_INTACT,
        LOG_TORN_TAIL,   /* the last record is cut short or its CRC fails: a crash mid-write */
        LOG_CORRUPT,     /* a bad record with data after it, or a bad header */
} LogDamage;

typedef struct LogScan {
        uint64_t size;       /* of the file */
        uint64_t good_end;   /* offset after the last good record */
        uint64_t n_records;
        LogDamage damage;
        const char *reason;  /* static, when damaged */
} LogScan;

/* Reads PATH (which must exist); -errno on I/O errors; damage is reported in *ret, not as
 * an error.  progress (may be NULL) is called now and then with the offset reached. */
int log_file_scan(const char *path, LogRecordFn fn, void (*progress)(void *userdata, uint64_t off, uint64_t size),
                  void *userdata, LogScan *ret);
/* Writes the header to a new, empty fd. */
int log_file_write_header(int fd);
/* Sets the version in the header of the log at PATH to LOG_VERSION and syncs it: before
 * appending records of this version to an older log. */
int log_file_upgrade_header(const char *path);
/* write(2) all of it, retrying on EINTR and short writes. */
int log_write_all(int fd, const void *data, size_t len);
