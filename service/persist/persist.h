/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Durability of the store (docs/persistence.md): DIR/clusterhub.log holds one record per
 * change, written with write(2) from the store's journal hook, i.e. before the reply or
 * signal that reveals the change is sent.  With --fsync=always those are held (the send gate,
 * bus-util.h) until one fdatasync has covered every change of the loop pass (group commit).  At start the log is loaded (before the hub takes
 * its bus name) and rewritten compactly (the "snapshot"): a temporary file, fdatasync,
 * rename.  When the log grows past a few times that size it is rewritten the same way by a
 * forked child (copy-on-write memory), while the hub goes on serving.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct Hub Hub;
typedef struct Persist Persist;

typedef enum PersistFsync {
        PERSIST_FSYNC_EVERYSEC,
        PERSIST_FSYNC_ALWAYS,
        PERSIST_FSYNC_NO,
        _PERSIST_FSYNC_MAX,
        _PERSIST_FSYNC_INVALID = -EINVAL,
} PersistFsync;

const char *persist_fsync_to_string(PersistFsync m);
PersistFsync persist_fsync_from_string(const char *s);

#define PERSIST_LOG_NAME "clusterhub.log"

/* Figures for GetStats and the logs. */
typedef struct PersistStats {
        uint64_t log_bytes;
        uint64_t base_bytes;         /* size right after the last rewrite */
        uint64_t records;            /* appended since start */
        uint64_t rewrites;
        uint64_t last_rewrite_usec;  /* how long the last rewrite stalled the loop */
        uint64_t last_rewrite_realtime_usec;
        int last_error;              /* errno of the last failed write or sync, 0 none */
        uint64_t syncs;              /* fdatasyncs of the log (group commits, the everysec timer) */
        uint64_t held_messages;      /* replies and signals held for a group commit (always) */
        uint64_t group_max;          /* most messages one group commit sent */
} PersistStats;

/* Load DIR into the hub's namespaces (creating DIR when absent), rewrite it compactly and
 * open it for appending; arms the sync timer and the token reservation.  Call after the
 * event loop and the lock hub exist, before taking the bus name.  -EBADMSG when the log is
 * damaged in the middle (logged with file and offset). */
int persist_open(Hub *h, const char *dir, PersistFsync mode);
Persist *persist_free(Persist *p);

/* The store's journal hook; userdata is the Namespace. */
void persist_journal(void *userdata, const char *key, const char *event, const StoreDelta *delta);
/* DropNamespace. */
void persist_drop_namespace(Hub *h, const char *name);
/* The disk is full: store writes are refused (org.clusterhub.Error.Storage). */
bool persist_refuses_writes(const Persist *p);
void persist_get_stats(const Persist *p, PersistStats *ret);
/* GetStats entries ({sv}): "persistence" (off, always, everysec, no), and with a data dir
 * persist_log_bytes, _records, _rewrites, _syncs, _held_messages, _group_max,
 * _last_rewrite_ms (the loop's wait), _last_rewrite_usec_realtime, _last_error ("" or the
 * message), _refusing_writes. */
typedef struct sd_bus_message sd_bus_message;
int persist_append_stats(Hub *h, sd_bus_message *reply);
const char *persist_mode_string(const Persist *p);
/* Rewrite the log now (synchronously). */
int persist_rewrite(Persist *p);
/* Rewrite it in a forked child; the loop waits only for the final append and rename.
 * -EBUSY while one runs. */
int persist_rewrite_background(Persist *p);

/* Hub1.Save(): start a background rewrite (or join the one running) and answer CALL when
 * it is done (an empty reply, or org.clusterhub.Error.Storage).  -errno when it cannot start. */
int persist_save(Persist *p, sd_bus_message *call);

/* clusterhubd --check-data=DIR [--repair]: 0 intact (or repaired), 1 damaged, <0 error. */
int persist_check(const char *dir, bool repair);
