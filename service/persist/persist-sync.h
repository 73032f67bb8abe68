/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The background sync of --fsync=everysec: one thread that runs fdatasync(2) on request, so the
 * event loop never waits for the disk (Redis's bio thread does the same for appendfsync
 * everysec).  It syncs its own duplicate of the log's descriptor, so the loop may switch the log
 * to a new file at any time.  Plain threads, no bus, no store.
 */

#include <stdint.h>

typedef struct Syncer Syncer;

int syncer_new(Syncer **ret);
/* Waits for a sync in progress, then stops the thread. */
Syncer *syncer_free(Syncer *s);
/* Ask for an fdatasync of FD.  -EBUSY while the previous one is still running (the caller asks
 * again a second later, as Redis skips a second), -errno if FD cannot be duplicated. */
int syncer_request(Syncer *s, int fd);
/* Syncs finished since the last call (0 or more), and the errno of the last one that failed
 * since then (0 when none did). */
void syncer_collect(Syncer *s, uint64_t *ret_done, int *ret_error);
