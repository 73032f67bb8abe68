/* SPDX-License-Identifier: MIT */

/* Durability: the hub side of the log (see persist.h and docs/persistence.md). */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "bus-util.h"
#include "ch-errors.h"
#include "hub.h"
#include "locks.h"
#include "log.h"
#include "macro.h"
#include "namespace.h"
#include "persist-log.h"
#include "persist-sync.h"
#include "persist.h"
#include "store.h"


/* Lock tokens are reserved in blocks: the log always holds a floor above every token handed
 * out, renewed once half of the block is used. */
#define TOKEN_BLOCK ((uint64_t) 1 << 24)
/* Disk kept allocated ahead of the log, so that the records of one loop pass never meet a
 * full disk; when it cannot be allocated, store writes are refused until it can. */
#define RESERVE_BYTES ((uint64_t) 256 * 1024)
/* Rewrite when the log is this many times the size it had after the last rewrite ... */
#define REWRITE_FACTOR 4
/* ... and at least this big. */
#define REWRITE_MIN_BYTES ((uint64_t) 64 * 1024 * 1024)
/* --fsync=always: the longest a reply waits for its group commit while the bus keeps the loop
 * busy (the queue bound is BUS_GATE_MAX_HELD). */
#define GROUP_MAX_WAIT_USEC ((uint64_t) 1000)

struct Persist {
        Hub *hub;
        char *dir, *path, *tmp_path;
        int fd, dir_fd;
        PersistFsync mode;
        LogBuf buf;
        bool dirty;              /* written, not yet synced (always: the send gate is closed) */
        bool full;               /* the reserve could not be allocated: refuse writes */
        bool no_reserve;         /* the file system cannot preallocate */
        bool loading;
        uint64_t size, reserved_end;
        uint64_t token_floor;    /* highest floor read or written */
        sd_event_source *post, *timer;
        Syncer *syncer;          /* everysec: fdatasync in a thread of its own */
        sd_event_source *flush_defer, *flush_timer;   /* group commit (always) */
        uint64_t group_wait_usec;
        PersistStats stats;
        /* a rewrite in a child process */
        pid_t child;
        int child_pipe;
        sd_event_source *child_io;
        uint8_t *child_buf;      /* records appended since the fork */
        size_t child_len, child_cap;
        bool child_oom;
        uint64_t child_floor, child_started, child_fork_usec;
        uint64_t rewrite_min;
        sd_bus_message **save_calls;   /* Save() calls waiting for the rewrite in progress */
        size_t n_save_calls;
        double rewrite_factor;
        /* loading */
        uint64_t n_keys, n_expired, n_applied;
        uint64_t load_started;
};

static const char *const fsync_names[_PERSIST_FSYNC_MAX] = {
        [PERSIST_FSYNC_EVERYSEC] = "everysec",
        [PERSIST_FSYNC_ALWAYS] = "always",
        [PERSIST_FSYNC_NO] = "no",
};

const char *persist_fsync_to_string(PersistFsync m) {
        return m >= 0 && m < _PERSIST_FSYNC_MAX ? fsync_names[m] : NULL;
}

PersistFsync persist_fsync_from_string(const char *s) {
        for (int i = 0; i < _PERSIST_FSYNC_MAX; i++)
                if (s && streq(s, fsync_names[i]))
                        return i;
        return _PERSIST_FSYNC_INVALID;
}

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* The loop's cached clocks in ms: the store's deadlines are in the monotonic one. */
static void clocks_ms(Hub *h, uint64_t *ret_mono, int64_t *ret_wall) {
        uint64_t rt = 0;

        *ret_mono = hub_now_ms(h);
        if (sd_event_now(h->event, CLOCK_REALTIME, &rt) < 0)
                rt = now_usec(CLOCK_REALTIME);
        *ret_wall = (int64_t) (rt / USEC_PER_MSEC);
}

static int64_t deadline_to_wall(uint64_t deadline, uint64_t mono, int64_t wall) {
        if (deadline == UINT64_MAX)
                return 0;
        if (deadline <= mono)
                return wall > 1 ? wall - 1 : 1; /* already due: gone at load */
        return wall + (int64_t) (deadline - mono);
}

/* Nothing may be acknowledged that is not in the log: when a record cannot be written (the
 * reserve did not cover it) or a sync fails in "always" mode, the change is already in
 * memory and its reply about to leave, so the hub exits before it does.  systemd restarts
 * it from the log, which holds every acknowledged write. */
static _Noreturn void fatal(Persist *p, int error, const char *what) {
        log_error_errno(error, "%s %s failed: %m. Exiting so that no change the log does not hold is acknowledged.",
                        what, p->path);
        (void) sd_notifyf(false, "STATUS=%s %s failed: %s\nERRNO=%i", what, p->path, strerror(-error), -error);
        _exit(EXIT_FAILURE);
}

static void child_buf_add(Persist *p, const void *data, size_t len);

/* ---- group commit (--fsync=always) ---------------------------------------------------
 * A record written and not yet synced closes the send gate (bus-util.h): every reply and
 * signal from then on is held.  One fdatasync, then every held message goes out in order:
 * when the loop has nothing of higher priority left (flush_defer, below the bus's priority:
 * sd-bus dispatches one message per loop iteration, so this runs once the bus is drained),
 * when BUS_GATE_MAX_HELD messages are held (bus_send() calls group_commit()), or after
 * GROUP_MAX_WAIT_USEC (flush_timer, above the bus's priority; CLUSTERHUB_GROUP_COMMIT_WAIT_USEC
 * changes it, for the tests and measurements), whichever comes first. */

static void group_commit(void *userdata) {
        Persist *p = userdata;
        size_t n;

        if (p->dirty) {
                if (fdatasync(p->fd) < 0) {
                        int r = -errno;

                        /* the held messages never leave: fatal() exits */
                        p->stats.last_error = -r;
                        fatal(p, r, "Syncing");
                }
                p->dirty = false;
                p->stats.syncs++;
        }
        n = bus_gate_open();
        p->stats.held_messages += n;
        p->stats.group_max = MAX(p->stats.group_max, (uint64_t) n);
        (void) sd_event_source_set_enabled(p->flush_defer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(p->flush_timer, SD_EVENT_OFF);
}

static int on_group_commit(sd_event_source *s, void *userdata) {
        group_commit(userdata);
        return 0;
}

static int on_group_commit_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        group_commit(userdata);
        return 0;
}

/* The record just written is not synced: hold what the hub sends until it is. */
static void hold_sends(Persist *p) {
        uint64_t now = 0;
        int r;

        if (bus_gate_is_closed())
                return;
        bus_gate_close();
        if (sd_event_now(p->hub->event, CLOCK_MONOTONIC, &now) < 0)
                now = now_usec(CLOCK_MONOTONIC);
        r = sd_event_source_set_enabled(p->flush_defer, SD_EVENT_ONESHOT);
        if (r >= 0)
                r = sd_event_source_set_time(p->flush_timer, now + p->group_wait_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->flush_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                group_commit(p); /* cannot wait for the loop: sync this record now */
}

static int group_commit_setup(Persist *p) {
        sd_event *e = p->hub->event;
        int r;

        r = sd_event_add_defer(e, &p->flush_defer, on_group_commit, p);
        if (r >= 0)
                r = sd_event_source_set_priority(p->flush_defer, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->flush_defer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time(e, &p->flush_timer, CLOCK_MONOTONIC, 0, 1, on_group_commit_timer, p);
        if (r >= 0)
                r = sd_event_source_set_priority(p->flush_timer, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->flush_timer, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to set up group commit: %m");
        bus_gate_set_flush(group_commit, p);
        return 0;
}

static void append(Persist *p) {
        int r;

        r = logbuf_finish(&p->buf);
        if (r < 0)
                fatal(p, r, "Encoding a record for");
        r = log_write_all(p->fd, p->buf.data, p->buf.len);
        if (r < 0) {
                /* cut a partial record back off, so the log stays loadable */
                (void) ftruncate(p->fd, (off_t) p->size);
                p->stats.last_error = -r;
                fatal(p, r, "Appending to");
        }
        p->size += p->buf.len;
        p->stats.records++;
        if (p->child > 0)
                child_buf_add(p, p->buf.data, p->buf.len);
        p->dirty = true;
        if (p->mode == PERSIST_FSYNC_ALWAYS)
                hold_sends(p);
}

/* Does the change have a delta record worth writing?  Only for a large collection of the
 * delta's kind: a small one logs its whole state, as cheap, and keeps it exact. */
static bool delta_wanted(const StoreDelta *d, const StoreEntry *e) {
        static const char kinds[] = {
                [STORE_DELTA_PUSH] = STORE_KIND_LIST,
                [STORE_DELTA_POP] = STORE_KIND_LIST,
                [STORE_DELTA_HSET] = STORE_KIND_HASH,
                [STORE_DELTA_HDEL] = STORE_KIND_HASH,
                [STORE_DELTA_SADD] = STORE_KIND_SET,
                [STORE_DELTA_SREM] = STORE_KIND_SET,
        };

        return d && (size_t) d->op < sizeof(kinds) && kinds[d->op] == e->kind && e->n_items > LOG_DELTA_MIN_ITEMS;
}

void persist_journal(void *userdata, const char *key, const char *event, const StoreDelta *delta) {
        Namespace *ns = userdata;
        Persist *p = ns->hub->persist;
        StoreEntry e;
        uint64_t mono;
        int64_t wall;

        if (!p || p->loading)
                return;
        if (streq(event, "flush")) {
                logbuf_reset(&p->buf);
                logbuf_u8(&p->buf, LOG_FLUSH);
                logbuf_str(&p->buf, ns->name, strlen(ns->name));
        } else if (streq(event, "del") || streq(event, "expired") ||
                   store_entry_lookup(ns->store, key, &e) < 0) {
                logbuf_reset(&p->buf);
                logbuf_u8(&p->buf, LOG_DEL);
                logbuf_str(&p->buf, ns->name, strlen(ns->name));
                logbuf_str(&p->buf, key, strlen(key));
        } else {
                int r;

                clocks_ms(ns->hub, &mono, &wall);
                if (delta_wanted(delta, &e))
                        r = logbuf_delta(&p->buf, ns->name, key, deadline_to_wall(e.deadline_ms, mono, wall), delta);
                else
                        r = logbuf_entry(&p->buf, ns->store, ns->name, &e, deadline_to_wall(e.deadline_ms, mono, wall));
                if (r < 0)
                        fatal(p, r, "Encoding a record for");
        }
        append(p);
}

void persist_drop_namespace(Hub *h, const char *name) {
        Persist *p = h->persist;

        if (!p || p->loading)
                return;
        logbuf_reset(&p->buf);
        logbuf_u8(&p->buf, LOG_DROPNS);
        logbuf_str(&p->buf, name, strlen(name));
        append(p);
}

static void token_record(Persist *p, uint64_t floor) {
        logbuf_reset(&p->buf);
        logbuf_u8(&p->buf, LOG_TOKEN);
        logbuf_u64(&p->buf, floor);
}

/* ---- loading ------------------------------------------------------------------------ */

typedef struct Chunk {
        const char *names[1024];
        StoreValue values[1024];
        size_t n;
} Chunk;

static int chunk_flush(Store *s, const char *key, char kind, Chunk *c, uint64_t now) {
        size_t done = 0;
        int r = 0;

        if (c->n == 0)
                return 0;
        if (kind == STORE_KIND_HASH)
                r = store_hset(s, key, c->names, c->values, c->n, now, &done);
        else if (kind == STORE_KIND_LIST)
                r = store_push(s, key, false, c->values, c->n, now, &done);
        else
                r = store_sadd(s, key, c->names, c->n, now, &done);
        c->n = 0;
        return r;
}

/* Decode the entry of a LOG_SET record; with s NULL only check that it decodes. */
static int entry_apply(LogReader *rd, Store *s, const char *key, uint64_t ttl, uint64_t now) {
        _cleanup_(freep) Chunk *c = NULL;
        StoreValue v;
        uint8_t kind;
        uint32_t n;
        int r;

        if (rd->p >= rd->end)
                return -EBADMSG;
        kind = *rd->p;
        if (kind != STORE_KIND_HASH && kind != STORE_KIND_LIST && kind != STORE_KIND_SET) {
                r = logrd_value(rd, &v);
                if (r < 0)
                        return r;
                if (rd->p != rd->end)
                        return -EBADMSG;
                return s ? store_set(s, key, &v, ttl, 0, now) : 0;
        }
        rd->p++;
        r = logrd_u32(rd, &n);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(Chunk));
        if (!c)
                return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
                if (kind != STORE_KIND_LIST) {
                        r = logrd_str(rd, &c->names[c->n], NULL);
                        if (r < 0)
                                return r;
                }
                if (kind != STORE_KIND_SET) {
                        r = logrd_value(rd, &c->values[c->n]);
                        if (r < 0)
                                return r;
                }
                c->n++;
                if (c->n == ELEMENTSOF(c->names)) {
                        if (s) {
                                r = chunk_flush(s, key, kind, c, now);
                                if (r < 0)
                                        return r;
                        }
                        c->n = 0;
                }
        }
        if (rd->p != rd->end)
                return -EBADMSG;
        if (!s)
                return 0;
        r = chunk_flush(s, key, kind, c, now);
        if (r < 0)
                return r;
        if (ttl > 0 && n > 0) {
                r = store_expire(s, key, ttl, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int delta_chunk_flush(Store *s, const char *key, uint8_t op, bool left, Chunk *c, uint64_t now) {
        int r;

        if (c->n == 0)
                return 0;
        switch (op) {
        case LOG_DELTA_PUSH:
                r = store_push(s, key, left, c->values, c->n, now, NULL);
                break;
        case LOG_DELTA_HSET:
                r = store_hset(s, key, c->names, c->values, c->n, now, NULL);
                break;
        case LOG_DELTA_HDEL:
                r = store_hdel(s, key, c->names, c->n, now, NULL);
                break;
        case LOG_DELTA_SADD:
                r = store_sadd(s, key, c->names, c->n, now, NULL);
                break;
        case LOG_DELTA_SREM:
                r = store_srem(s, key, c->names, c->n, now, NULL);
                break;
        default:
                r = -EBADMSG;
        }
        c->n = 0;
        return r;
}

/* Decode the rest of a LOG_DELTA record (after the deadline) and apply it to KEY, which holds
 * a collection of the delta's kind; with s NULL only check that it decodes. */
static int delta_apply(LogReader *rd, Store *s, const char *key, uint64_t now) {
        _cleanup_(freep) Chunk *c = NULL;
        uint8_t op, left;
        uint32_t n;
        int r;

        r = logrd_u8(rd, &op);
        if (r >= 0)
                r = logrd_u8(rd, &left);
        if (r >= 0)
                r = logrd_u32(rd, &n);
        if (r < 0)
                return r;
        if (log_delta_kind(op) == 0 || left > 1 || n == 0)
                return -EBADMSG;
        if (op == LOG_DELTA_POP) {
                if (rd->p != rd->end)
                        return -EBADMSG;
                return s ? store_pop(s, key, left, n, now, NULL, NULL) : 0;
        }
        c = malloc(sizeof(Chunk)); /* no calloc: a delta is often one item */
        if (!c)
                return -ENOMEM;
        c->n = 0;
        for (uint32_t i = 0; i < n; i++) {
                if (op != LOG_DELTA_PUSH) {
                        r = logrd_str(rd, &c->names[c->n], NULL);
                        if (r < 0)
                                return r;
                }
                if (op == LOG_DELTA_PUSH || op == LOG_DELTA_HSET) {
                        r = logrd_value(rd, &c->values[c->n]);
                        if (r < 0)
                                return r;
                }
                c->n++;
                if (c->n == ELEMENTSOF(c->names)) {
                        r = s ? delta_chunk_flush(s, key, op, left, c, now) : 0;
                        if (r < 0)
                                return r;
                        c->n = 0;
                }
        }
        if (rd->p != rd->end)
                return -EBADMSG;
        return s ? delta_chunk_flush(s, key, op, left, c, now) : 0;
}

/* A LOG_DELTA record: the change applies to the key's state so far.  A key that expired
 * (its deadline, which the delta repeats, has passed) is deleted and the change skipped;
 * a key that is absent without a deadline, or holds another kind, means the log is not what
 * this hub wrote: refuse it. */
static int load_delta(Persist *p, LogReader *rd, Namespace *ns, const char *key, uint64_t offset) {
        LogReader check;
        StoreEntry e = {};
        uint64_t u, mono;
        int64_t wall;
        uint8_t op;
        char kind;
        int r;

        r = logrd_u64(rd, &u);
        if (r < 0)
                return r;
        check = *rd;
        r = delta_apply(&check, NULL, key, 0);
        if (r < 0)
                return r;
        op = *rd->p;
        kind = log_delta_kind(op);
        clocks_ms(p->hub, &mono, &wall);
        if (u != 0 && (int64_t) u <= wall)
                return store_del(ns->store, &key, 1, mono, NULL);
        r = store_entry_lookup(ns->store, key, &e);
        if (r >= 0 && e.deadline_ms != UINT64_MAX && e.deadline_ms <= mono)
                /* it expired during this load: the command would not have created it anew */
                return store_del(ns->store, &key, 1, mono, NULL);
        if (r < 0 && u != 0)
                return 0; /* it expired earlier in this load */
        if (r < 0 || e.kind != kind)
                /* the records decode, so --check-data --repair would not cut here: say how */
                return log_error_errno(-EUCLEAN,
                                       "%s is damaged at offset %" PRIu64 " (a change to the %s '%s' of namespace %s, which the log %s); "
                                       "the hub will not start. 'truncate -s %" PRIu64 " %s' cuts the log there, losing what follows.",
                                       p->path, offset, kind == STORE_KIND_LIST ? "list" : kind == STORE_KIND_HASH ? "hash" : "set",
                                       key, ns->name, e.kind ? "holds as another type" : "does not hold", offset, p->path);
        r = delta_apply(rd, ns->store, key, mono);
        if (r < 0 && r != -EBADMSG) {
                const char *limit = r == -ENOBUFS ? store_last_limit(ns->store) : NULL;

                return log_error_errno(r, "Cannot load key '%s' of namespace %s (record at offset %" PRIu64 " of %s): %m%s%s%s",
                                       key, ns->name, offset, p->path, limit ? " (limit " : "",
                                       strempty(limit), limit ? "; raise it to load this data)" : "");
        }
        return r;
}

static int load_ns(Persist *p, const char *name, Namespace **ret) {
        Namespace *ns;
        int r;

        r = namespace_get(p->hub, name, true, &ns);
        if (r < 0)
                return r;
        store_set_loading(ns->store, true);
        *ret = ns;
        return 0;
}

static int load_record(void *userdata, const uint8_t *payload, size_t len, uint64_t offset) {
        Persist *p = userdata;
        LogReader rd = { payload, payload + len };
        const char *ns_name, *key;
        uint64_t u, mono;
        int64_t wall;
        Namespace *ns;
        uint8_t op;
        int r;

        r = logrd_u8(&rd, &op);
        if (r < 0)
                return r;
        if (op == LOG_TOKEN) {
                r = logrd_u64(&rd, &u);
                if (r < 0 || rd.p != rd.end)
                        return -EBADMSG;
                p->token_floor = MAX(p->token_floor, u);
                return 0;
        }
        r = logrd_str(&rd, &ns_name, NULL);
        if (r < 0)
                return r;
        if (!namespace_name_is_valid(p->hub, ns_name))
                return -EBADMSG;
        switch (op) {
        case LOG_DROPNS:
                if (rd.p != rd.end)
                        return -EBADMSG;
                r = namespace_drop(p->hub, ns_name);
                if (r == -ENXIO)
                        r = 0;
                if (r >= 0 && streq(ns_name, HUB_DEFAULT_NAMESPACE))
                        r = load_ns(p, ns_name, &ns);
                return r;
        case LOG_FLUSH:
                if (rd.p != rd.end)
                        return -EBADMSG;
                r = load_ns(p, ns_name, &ns);
                return r < 0 ? r : store_flush(ns->store);
        case LOG_DEL:
        case LOG_SET:
        case LOG_DELTA: {
                LogReader check;
                uint64_t ttl = 0;
                bool expired = false;

                r = logrd_str(&rd, &key, NULL);
                if (r < 0 || key[0] == 0)
                        return -EBADMSG;
                if (op == LOG_DEL && rd.p != rd.end)
                        return -EBADMSG;
                r = load_ns(p, ns_name, &ns);
                if (r < 0)
                        return r;
                if (op == LOG_DELTA)
                        return load_delta(p, &rd, ns, key, offset);
                clocks_ms(p->hub, &mono, &wall);
                if (op == LOG_SET) {
                        r = logrd_u64(&rd, &u);
                        if (r < 0)
                                return r;
                        /* check the whole record before changing anything */
                        check = rd;
                        r = entry_apply(&check, NULL, key, 0, 0);
                        if (r < 0)
                                return r;
                        if (u != 0) {
                                expired = (int64_t) u <= wall;
                                ttl = expired ? 0 : (uint64_t) ((int64_t) u - wall);
                        }
                }
                r = store_del(ns->store, &key, 1, mono, NULL);
                if (r < 0)
                        return r;
                if (op == LOG_DEL || expired)
                        return 0;
                r = entry_apply(&rd, ns->store, key, ttl, mono);
                if (r < 0) {
                        const char *limit = r == -ENOBUFS ? store_last_limit(ns->store) : NULL;

                        return log_error_errno(r, "Cannot load key '%s' of namespace %s (record at offset %" PRIu64 " of %s): %m%s%s%s",
                                               key, ns_name, offset, p->path, limit ? " (limit " : "",
                                               strempty(limit), limit ? "; raise it to load this data)" : "");
                }
                return 0;
        }
        default:
                return -EBADMSG;
        }
}

static void load_progress(void *userdata, uint64_t off, uint64_t size) {
        Persist *p = userdata;

        (void) sd_notifyf(false, "STATUS=Loading %s: %" PRIu64 "%% (%" PRIu64 " of %" PRIu64 " MiB)", p->path,
                          size ? off * 100 / size : 100, off >> 20, size >> 20);
}

static int load(Persist *p) {
        LogScan sc = {};
        Namespace *ns;
        size_t i = 0;
        uint64_t keys = 0;
        int r;

        p->load_started = now_usec(CLOCK_MONOTONIC);
        p->loading = true;
        r = log_file_scan(p->path, load_record, load_progress, p, &sc);
        p->loading = false;
        while (hashmap_iterate(p->hub->namespaces, &i, (void **) &ns, NULL)) {
                store_set_loading(ns->store, false);
                keys += store_dbsize(ns->store);
        }
        if (r == -EUCLEAN)
                return r; /* load_delta() said where and how */
        if (r < 0)
                return log_error_errno(r, "Failed to load %s: %m", p->path);
        switch (sc.damage) {
        case LOG_CORRUPT:
                return log_error_errno(-EBADMSG, "%s is damaged at offset %" PRIu64 " (%s); the hub will not start. "
                                       "'clusterhubd --check-data=%s --repair' cuts the log there, losing what follows.",
                                       p->path, sc.good_end, sc.reason, p->dir);
        case LOG_TORN_TAIL:
                log_warning("%s ends in a record cut short by a crash at offset %" PRIu64 " (%s): cutting off its last %" PRIu64 " bytes.",
                            p->path, sc.good_end, sc.reason, sc.size - sc.good_end);
                break;
        case LOG_INTACT:
                break;
        }
        log_info("Loaded %" PRIu64 " keys in %zu namespaces from %s (%" PRIu64 " records, %" PRIu64 " MiB) in %" PRIu64 " ms.",
                 keys, hashmap_size(p->hub->namespaces), p->path, sc.n_records, sc.size >> 20,
                 (now_usec(CLOCK_MONOTONIC) - p->load_started) / USEC_PER_MSEC);
        namespace_check_all_unused(p->hub);
        return 0;
}

/* ---- rewrite ------------------------------------------------------------------------ */

typedef struct RewriteCtx {
        Persist *p;
        Namespace *ns;
        int fd;
        uint8_t *out;
        size_t out_len, out_cap;
        uint64_t written, mono;
        int64_t wall;
} RewriteCtx;

static int out_flush(RewriteCtx *c) {
        int r = log_write_all(c->fd, c->out, c->out_len);

        c->written += c->out_len;
        c->out_len = 0;
        return r;
}

static int out_record(RewriteCtx *c) {
        LogBuf *b = &c->p->buf;
        int r;

        r = logbuf_finish(b);
        if (r < 0)
                return r;
        if (c->out_len + b->len > c->out_cap) {
                r = out_flush(c);
                if (r < 0)
                        return r;
        }
        if (b->len > c->out_cap) {
                c->written += b->len;
                return log_write_all(c->fd, b->data, b->len);
        }
        memcpy(c->out + c->out_len, b->data, b->len);
        c->out_len += b->len;
        return 0;
}

static int rewrite_entry(void *userdata, const StoreEntry *e) {
        RewriteCtx *c = userdata;
        int r;

        if (e->deadline_ms != UINT64_MAX && e->deadline_ms <= c->mono)
                return 0;
        r = logbuf_entry(&c->p->buf, c->ns->store, c->ns->name, e, deadline_to_wall(e->deadline_ms, c->mono, c->wall));
        if (r < 0)
                return r;
        return out_record(c);
}

static void reserve(Persist *p);

/* Write the whole store to the temporary file and sync it; *ret_fd is open for appending. */
static int snapshot_write(Persist *p, uint64_t floor, int *ret_fd, uint64_t *ret_size) {
        RewriteCtx c = { .p = p, .fd = -1, .out_cap = 1 << 20 };
        size_t i = 0;
        int r;

        c.out = malloc(c.out_cap);
        if (!c.out)
                return -ENOMEM;
        clocks_ms(p->hub, &c.mono, &c.wall);
        c.fd = open(p->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (c.fd < 0) {
                r = -errno;
                goto fail;
        }
        r = log_file_write_header(c.fd);
        if (r < 0)
                goto fail;
        c.written = LOG_HEADER_SIZE;
        token_record(p, floor);
        r = out_record(&c);
        if (r < 0)
                goto fail;
        while (hashmap_iterate(p->hub->namespaces, &i, (void **) &c.ns, NULL)) {
                r = store_foreach_entry(c.ns->store, rewrite_entry, &c);
                if (r < 0)
                        goto fail;
        }
        r = out_flush(&c);
        if (r < 0)
                goto fail;
        if (fdatasync(c.fd) < 0) {
                r = -errno;
                goto fail;
        }
        free(c.out);
        *ret_fd = c.fd;
        *ret_size = c.written;
        return 0;
fail:
        free(c.out);
        if (c.fd >= 0)
                close(c.fd);
        return r;
}

/* The synced temporary file becomes the log (rename: atomic). */
static int snapshot_switch(Persist *p, int fd, uint64_t size, uint64_t floor, uint64_t started) {
        if (rename(p->tmp_path, p->path) < 0 || fsync(p->dir_fd) < 0)
                return -errno;
        if (p->fd >= 0)
                close(p->fd);
        p->fd = fd;
        p->size = size;
        p->reserved_end = 0;
        p->dirty = false;
        p->token_floor = MAX(p->token_floor, floor);
        p->stats.base_bytes = size;
        p->stats.rewrites++;
        p->stats.last_rewrite_usec = now_usec(CLOCK_MONOTONIC) - started;
        p->stats.last_rewrite_realtime_usec = now_usec(CLOCK_REALTIME);
        reserve(p);
        return 0;
}

static uint64_t next_floor(Persist *p) {
        return MAX(p->token_floor, lock_hub_last_token(p->hub->lock_hub) + TOKEN_BLOCK);
}

int persist_rewrite(Persist *p) {
        uint64_t started = now_usec(CLOCK_MONOTONIC), floor = next_floor(p), size = 0;
        int fd = -1, r;

        r = snapshot_write(p, floor, &fd, &size);
        if (r >= 0) {
                r = snapshot_switch(p, fd, size, floor, started);
                if (r < 0)
                        close(fd);
        }
        if (r < 0) {
                (void) unlink(p->tmp_path);
                p->stats.last_error = -r;
                return log_warning_errno(r, "Failed to rewrite %s (keeping the current log): %m", p->path);
        }
        log_info("Rewrote %s: %" PRIu64 " MiB in %" PRIu64 " ms (the loop waited meanwhile).", p->path, size >> 20,
                 p->stats.last_rewrite_usec / USEC_PER_MSEC);
        return 0;
}

/* ---- rewrite in a child ---------------------------------------------------------------
 * Like Redis's BGREWRITEAOF: fork(); the child writes the snapshot of its copy-on-write
 * memory to the temporary file, syncs it and reports through a pipe; the parent goes on
 * appending to the current log and keeps a copy of every record written since the fork.
 * When the child is done, the parent appends that copy to the snapshot, syncs, and renames
 * it over the log.  The loop waits only for that last step. */

static void child_buf_add(Persist *p, const void *data, size_t len) {
        if (p->child_oom)
                return;
        if (p->child_len + len > p->child_cap) {
                size_t cap = MAX(p->child_cap * 2, p->child_len + len);
                uint8_t *d = realloc(p->child_buf, cap);

                if (!d) {
                        p->child_oom = true;
                        return;
                }
                p->child_buf = d;
                p->child_cap = cap;
        }
        memcpy(p->child_buf + p->child_len, data, len);
        p->child_len += len;
}

static void child_reap(Persist *p) {
        p->child_io = sd_event_source_disable_unref(p->child_io);
        if (p->child_pipe >= 0)
                close(p->child_pipe);
        p->child_pipe = -1;
        if (p->child > 0)
                (void) waitpid(p->child, NULL, 0);
        p->child = 0;
        free(p->child_buf);
        p->child_buf = NULL;
        p->child_len = p->child_cap = 0;
        p->child_oom = false;
}

static void answer_save_calls(Persist *p, int error) {
        for (size_t i = 0; i < p->n_save_calls; i++) {
                sd_bus_message *m = p->save_calls[i];

                if (error < 0)
                        (void) bus_reply_errorf(m, CH_ERROR_STORAGE, "Could not write a snapshot of the store to %s: %s",
                                                p->tmp_path, strerror(-error));
                else
                        (void) bus_reply_return(m, NULL);
                sd_bus_message_unref(m);
        }
        free(p->save_calls);
        p->save_calls = NULL;
        p->n_save_calls = 0;
}

int persist_save(Persist *p, sd_bus_message *call) {
        sd_bus_message **a;
        int r;

        a = reallocarray(p->save_calls, p->n_save_calls + 1, sizeof(sd_bus_message *));
        if (!a)
                return -ENOMEM;
        p->save_calls = a;
        if (p->child == 0) {
                r = persist_rewrite_background(p);
                if (r < 0)
                        return r;
        }
        p->save_calls[p->n_save_calls++] = sd_bus_message_ref(call);
        return 0;
}

static int on_child_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Persist *p = userdata;
        uint64_t started = now_usec(CLOCK_MONOTONIC), size;
        int32_t status = -EIO;
        int r, nfd = -1;
        struct stat st;

        if (read(fd, &status, sizeof(status)) != sizeof(status))
                status = -EIO;
        r = status;
        if (r >= 0 && p->child_oom)
                r = -ENOMEM;
        if (r >= 0) {
                nfd = open(p->tmp_path, O_WRONLY | O_APPEND | O_CLOEXEC);
                if (nfd < 0)
                        r = -errno;
        }
        if (r >= 0)
                r = log_write_all(nfd, p->child_buf, p->child_len);
        if (r >= 0 && (fdatasync(nfd) < 0 || fstat(nfd, &st) < 0))
                r = -errno;
        if (r >= 0) {
                size = (uint64_t) st.st_size;
                r = snapshot_switch(p, nfd, size, p->child_floor, started);
        }
        if (r < 0) {
                if (nfd >= 0)
                        close(nfd);
                (void) unlink(p->tmp_path);
                p->stats.last_error = -r;
                log_warning_errno(r, "Failed to rewrite %s in the background (keeping the current log): %m", p->path);
        } else
                log_info("Rewrote %s in the background: %" PRIu64 " MiB in %" PRIu64 " ms, the loop waited %" PRIu64 " ms "
                         "(fork %" PRIu64 " ms, final append and rename %" PRIu64 " ms).",
                         p->path, p->size >> 20, (now_usec(CLOCK_MONOTONIC) - p->child_started) / USEC_PER_MSEC,
                         (p->child_fork_usec + p->stats.last_rewrite_usec) / USEC_PER_MSEC,
                         p->child_fork_usec / USEC_PER_MSEC, p->stats.last_rewrite_usec / USEC_PER_MSEC);
        child_reap(p);
        answer_save_calls(p, r);
        return 0;
}

int persist_rewrite_background(Persist *p) {
        uint64_t floor = next_floor(p);
        int fds[2], r;
        pid_t pid;

        if (p->child > 0)
                return -EBUSY;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        p->child_started = now_usec(CLOCK_MONOTONIC);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(fds[0]);
                close(fds[1]);
                return log_warning_errno(r, "Cannot fork to rewrite %s: %m", p->path);
        }
        if (pid == 0) {
                /* the child: its copy of the store, the file, nothing else (no bus, no loop) */
                int32_t status;
                uint64_t size;
                int fd = -1;

                close(fds[0]);
                status = snapshot_write(p, floor, &fd, &size);
                (void) !write(fds[1], &status, sizeof(status));
                _exit(status < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        close(fds[1]);
        p->child = pid;
        p->child_pipe = fds[0];
        p->child_floor = floor;
        p->child_fork_usec = now_usec(CLOCK_MONOTONIC) - p->child_started;
        /* the floor is in the snapshot: keep it in the current log too */
        if (floor > p->token_floor) {
                token_record(p, floor);
                append(p);
                p->token_floor = floor;
        }
        r = sd_event_add_io(p->hub->event, &p->child_io, fds[0], EPOLLIN, on_child_done, p);
        if (r < 0) {
                kill(pid, SIGKILL);
                child_reap(p);
                (void) unlink(p->tmp_path);
                return log_warning_errno(r, "Cannot watch the rewriting child: %m");
        }
        log_debug("Rewriting %s in child %i.", p->path, (int) pid);
        return 0;
}

/* ---- the loop: reserve, tokens, rewrite, sync ---------------------------------------- */

static void reserve(Persist *p) {
        if (p->no_reserve || p->reserved_end >= p->size + RESERVE_BYTES / 2)
                return;
        if (fallocate(p->fd, FALLOC_FL_KEEP_SIZE, (off_t) p->size, (off_t) RESERVE_BYTES) < 0) {
                if (errno == EOPNOTSUPP) {
                        log_warning("The file system of %s cannot preallocate: a full disk will stop the hub instead of refusing writes.",
                                    p->dir);
                        p->no_reserve = true;
                        return;
                }
                if (!p->full)
                        log_error_errno(-errno, "Cannot keep room ahead of %s: %m. Refusing store writes until there is.",
                                        p->path);
                p->full = true;
                p->stats.last_error = errno;
                return;
        }
        if (p->full)
                log_info("There is room for %s again: accepting store writes.", p->path);
        p->full = false;
        p->reserved_end = p->size + RESERVE_BYTES;
}

static int on_post(sd_event_source *s, void *userdata) {
        Persist *p = userdata;
        uint64_t last = lock_hub_last_token(p->hub->lock_hub);

        if (last + TOKEN_BLOCK / 2 > p->token_floor) {
                uint64_t floor = last + TOKEN_BLOCK;

                token_record(p, floor);
                append(p);
                p->token_floor = floor;
        }
        reserve(p);
        if (p->child == 0 && p->size > p->rewrite_min && p->size > p->rewrite_factor * (double) p->stats.base_bytes)
                (void) persist_rewrite_background(p);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Persist *p = userdata;

        if (p->syncer) {
                uint64_t done;
                int error;

                /* what the thread did since the last tick; a failed sync is tried again */
                syncer_collect(p->syncer, &done, &error);
                p->stats.syncs += done;
                if (error) {
                        if (p->stats.last_error != error)
                                log_error_errno(-error, "Syncing %s failed: %m", p->path);
                        p->stats.last_error = error;
                        p->dirty = true;
                }
                /* busy: the disk is slower than a second; ask again at the next tick */
                if (p->dirty && syncer_request(p->syncer, p->fd) >= 0)
                        p->dirty = false;
        }
        if (p->full)
                reserve(p);
        (void) sd_event_source_set_time_relative(s, USEC_PER_SEC);
        return 0;
}

/* ---- open, check ---------------------------------------------------------------------- */

int persist_open(Hub *h, const char *dir, PersistFsync mode) {
        Persist *p;
        int r;

        p = calloc(1, sizeof(Persist));
        if (!p)
                return log_error_errno(-ENOMEM, "Out of memory.");
        p->hub = h;
        p->fd = p->dir_fd = p->child_pipe = -1;
        p->mode = mode;
        p->rewrite_min = REWRITE_MIN_BYTES;
        /* for tests: rewrite a small log too */
        p->rewrite_factor = REWRITE_FACTOR;
        p->group_wait_usec = GROUP_MAX_WAIT_USEC;
        if (getenv("CLUSTERHUB_REWRITE_MIN_BYTES"))
                p->rewrite_min = strtoull(getenv("CLUSTERHUB_REWRITE_MIN_BYTES"), NULL, 10);
        if (getenv("CLUSTERHUB_REWRITE_FACTOR"))
                p->rewrite_factor = strtod(getenv("CLUSTERHUB_REWRITE_FACTOR"), NULL);
        if (getenv("CLUSTERHUB_GROUP_COMMIT_WAIT_USEC"))
                p->group_wait_usec = strtoull(getenv("CLUSTERHUB_GROUP_COMMIT_WAIT_USEC"), NULL, 10);
        h->persist = p; /* freed with the hub */
        if (mode == PERSIST_FSYNC_ALWAYS) {
                r = group_commit_setup(p);
                if (r < 0)
                        return r;
        }
        p->dir = strdup(dir);
        if (!p->dir || asprintf(&p->path, "%s/%s", dir, PERSIST_LOG_NAME) < 0 ||
            asprintf(&p->tmp_path, "%s/%s.tmp", dir, PERSIST_LOG_NAME) < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Cannot create the data directory %s: %m", dir);
        p->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (p->dir_fd < 0)
                return log_error_errno(-errno, "Cannot open the data directory %s: %m", dir);
        (void) unlink(p->tmp_path); /* a rewrite cut short by a crash */

        if (access(p->path, F_OK) == 0) {
                r = load(p);
                if (r < 0)
                        return r;
        } else if (errno != ENOENT)
                return log_error_errno(-errno, "Cannot access %s: %m", p->path);
        else
                log_info("No log in %s yet: starting empty.", dir);

        if (p->token_floor > 0) {
                r = lock_hub_raise_token_floor(h->lock_hub, p->token_floor);
                if (r < 0)
                        return log_error_errno(r, "Failed to raise the lock token floor: %m");
        }
        /* the snapshot: the loaded state, compactly, as the new log */
        r = persist_rewrite(p);
        if (r < 0) {
                /* keep appending to the old log, cut at its last good record */
                LogScan sc = {};

                if (access(p->path, F_OK) < 0)
                        return log_error_errno(r, "Cannot create %s: %m", p->path);
                r = log_file_scan(p->path, NULL, NULL, NULL, &sc);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", p->path);
                p->fd = open(p->path, O_WRONLY | O_APPEND | O_CLOEXEC);
                if (p->fd < 0 || ftruncate(p->fd, (off_t) sc.good_end) < 0)
                        return log_error_errno(-errno, "Cannot open %s for appending: %m", p->path);
                /* a version 1 log gets delta records now: an older hub must refuse it */
                if (sc.good_end >= LOG_HEADER_SIZE) {
                        r = log_file_upgrade_header(p->path);
                        if (r < 0)
                                return log_error_errno(r, "Cannot update the header of %s: %m", p->path);
                }
                p->size = p->stats.base_bytes = sc.good_end;
                p->token_floor = MAX(p->token_floor, lock_hub_last_token(h->lock_hub) + TOKEN_BLOCK);
                token_record(p, p->token_floor);
                append(p);
                reserve(p);
        }
        r = sd_event_add_post(h->event, &p->post, on_post, p);
        if (r >= 0)
                r = sd_event_add_time_relative(h->event, &p->timer, CLOCK_MONOTONIC, USEC_PER_SEC, 0, on_timer, p);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->timer, SD_EVENT_ON);
        if (r >= 0 && mode == PERSIST_FSYNC_EVERYSEC)
                r = syncer_new(&p->syncer);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the log's event sources and sync thread: %m");
        log_info("Keeping data in %s (fsync %s).", p->path, fsync_names[mode]);
        return 0;
}

Persist *persist_free(Persist *p) {
        if (!p)
                return NULL;
        /* what is held goes out, synced, before anything said while exiting */
        bus_gate_flush();
        bus_gate_set_flush(NULL, NULL);
        if (p->child > 0) {
                kill(p->child, SIGKILL);
                child_reap(p);
                (void) unlink(p->tmp_path);
        }
        for (size_t i = 0; i < p->n_save_calls; i++) {
                (void) bus_reply_errorf(p->save_calls[i], CH_ERROR_SHUTTING_DOWN, "The hub is exiting.");
                sd_bus_message_unref(p->save_calls[i]);
        }
        free(p->save_calls);
        sd_event_source_disable_unref(p->post);
        sd_event_source_disable_unref(p->timer);
        p->syncer = syncer_free(p->syncer);
        sd_event_source_disable_unref(p->flush_defer);
        sd_event_source_disable_unref(p->flush_timer);
        if (p->fd >= 0) {
                if (p->dirty && p->mode != PERSIST_FSYNC_NO)
                        (void) fdatasync(p->fd);
                close(p->fd);
        }
        if (p->dir_fd >= 0)
                close(p->dir_fd);
        logbuf_free(&p->buf);
        free(p->dir);
        free(p->path);
        free(p->tmp_path);
        free(p);
        return NULL;
}

bool persist_refuses_writes(const Persist *p) {
        return p && p->full;
}

void persist_get_stats(const Persist *p, PersistStats *ret) {
        *ret = p->stats;
        ret->log_bytes = p->size;
}

int persist_append_stats(Hub *h, sd_bus_message *reply) {
        const Persist *p = h->persist;
        uint64_t ms;
        int full, r;

        if (!p)
                return bus_append_stat(reply, "persistence", 's', "off");
        ms = p->stats.last_rewrite_usec / USEC_PER_MSEC;
        full = p->full;
        if ((r = bus_append_stat(reply, "persistence", 's', fsync_names[p->mode])) < 0 ||
            (r = bus_append_stat(reply, "persist_log_bytes", 't', &p->size)) < 0 ||
            (r = bus_append_stat(reply, "persist_records", 't', &p->stats.records)) < 0 ||
            (r = bus_append_stat(reply, "persist_rewrites", 't', &p->stats.rewrites)) < 0 ||
            (r = bus_append_stat(reply, "persist_syncs", 't', &p->stats.syncs)) < 0 ||
            (r = bus_append_stat(reply, "persist_held_messages", 't', &p->stats.held_messages)) < 0 ||
            (r = bus_append_stat(reply, "persist_group_max", 't', &p->stats.group_max)) < 0 ||
            (r = bus_append_stat(reply, "persist_last_rewrite_ms", 't', &ms)) < 0 ||
            (r = bus_append_stat(reply, "persist_last_rewrite_usec_realtime", 't', &p->stats.last_rewrite_realtime_usec)) < 0 ||
            (r = bus_append_stat(reply, "persist_last_error", 's', p->stats.last_error ? strerror(p->stats.last_error) : "")) < 0 ||
            (r = bus_append_stat(reply, "persist_refusing_writes", 'b', &full)) < 0)
                return r;
        return 0;
}

const char *persist_mode_string(const Persist *p) {
        return fsync_names[p->mode];
}

static int check_record(void *userdata, const uint8_t *payload, size_t len, uint64_t offset) {
        LogReader rd = { payload, payload + len };
        const char *s;
        uint64_t u;
        uint8_t op;
        int r;

        r = logrd_u8(&rd, &op);
        if (r < 0)
                return r;
        if (op == LOG_TOKEN)
                r = logrd_u64(&rd, &u);
        else if ((op >= LOG_SET && op <= LOG_DROPNS) || op == LOG_DELTA) {
                r = logrd_str(&rd, &s, NULL);
                if (r >= 0 && (op == LOG_SET || op == LOG_DEL || op == LOG_DELTA))
                        r = logrd_str(&rd, &s, NULL);
                if (r >= 0 && (op == LOG_SET || op == LOG_DELTA)) {
                        r = logrd_u64(&rd, &u);
                        if (r >= 0)
                                r = op == LOG_SET ? entry_apply(&rd, NULL, s, 0, 0) : delta_apply(&rd, NULL, s, 0);
                }
        } else
                r = -EBADMSG;
        if (r >= 0 && rd.p != rd.end)
                r = -EBADMSG;
        return r;
}

int persist_check(const char *dir, bool repair) {
        _cleanup_(freep) char *path = NULL;
        LogScan sc = {};
        int r, fd;

        if (asprintf(&path, "%s/%s", dir, PERSIST_LOG_NAME) < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        r = log_file_scan(path, check_record, NULL, NULL, &sc);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", path);
        if (sc.damage == LOG_INTACT) {
                printf("%s: intact, %" PRIu64 " records, %" PRIu64 " bytes.\n", path, sc.n_records, sc.size);
                return 0;
        }
        printf("%s: %s at offset %" PRIu64 " (%s); %" PRIu64 " good records before it, %" PRIu64 " bytes after it.\n",
               path, sc.damage == LOG_TORN_TAIL ? "torn tail" : "bad record", sc.good_end, sc.reason,
               sc.n_records, sc.size - sc.good_end);
        if (!repair) {
                printf("Run with --repair to cut the log at offset %" PRIu64 ".\n", sc.good_end);
                return 1;
        }
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open %s: %m", path);
        if (sc.good_end < LOG_HEADER_SIZE)
                r = ftruncate(fd, 0) < 0 || log_file_write_header(fd) < 0 ? -errno : 0;
        else
                r = ftruncate(fd, (off_t) sc.good_end) < 0 ? -errno : 0;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r < 0)
                return log_error_errno(r, "Cannot truncate %s: %m", path);
        printf("Repaired: %s now ends at offset %" PRIu64 " after %" PRIu64 " records.\n", path,
               MAX(sc.good_end, (uint64_t) LOG_HEADER_SIZE), sc.n_records);
        return 0;
}
