/* SPDX-License-Identifier: MIT */
/*
 * clusterhub-bench: what each hub operation costs, next to the floor the bus sets (a minimal
 * sd-bus service on the same private bus) and next to Redis on a unix socket, in one run.
 *
 * One process drives every client call (sd-bus, async calls: 1 or 64 in flight); subscribers,
 * workers and the baseline service are helper processes (this binary re-executed).  The bus
 * (dbus-daemon, or dbus-broker with --broker) and the hub are started through tests/harness.
 * Prints a table on stdout; --json=FILE writes the same rows as JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

#include "bench.h"

#define CALL_TIMEOUT_USEC (10ULL * 1000 * 1000)
#define MAX_ROWS 160
#define MAX_HELPERS 32
#define MGET_KEYS 100

#define streq(a, b) (strcmp((a), (b)) == 0)
static inline bool streq_ptr(const char *a, const char *b) {
        return a && b ? streq(a, b) : a == b;
}

static const char *NS = CH_DEFAULT_NAMESPACE_PATH;

/* ---- options -------------------------------------------------------------- */

static double arg_seconds = 1.5;
static bool arg_quick = false;
static bool arg_broker = false;
static bool arg_redis = true;
static const char *arg_json = NULL;
static unsigned arg_keys = 1000000;
static unsigned arg_scale_clients = 1000;
static unsigned arg_scale_workers = 100;
static unsigned arg_inflight = 64;
static bool arg_only_get = false;
static bool arg_only_cache = false;
static bool arg_persist = true;
static const char *arg_persist_dir = NULL;
static const char *arg_peers = NULL;
static bool arg_bus = true, arg_socket = true; /* --transport= */
static bool arg_hosts = true;
static bool arg_only_hosts = false;

/* ---- time ------------------------------------------------------------------- */

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* ---- helper processes ------------------------------------------------------------- */

typedef struct Helper {
        pid_t pid;
        int ctl;
        char name[64];
} Helper;

static Helper helpers[MAX_HELPERS];
static unsigned n_helpers;
static char self_exe[4096];

/* Re-execute ourselves with ARGS; wait for its 'r'.  The baseline services run under
 * $CLUSTERHUB_BENCH_BASELINE_WRAPPER when it is set (a program that execs its arguments, e.g. a
 * script running valgrind --tool=callgrind "$@": BENCHMARKS.md, the profile). */
static Helper *helper_start(const char *name, const char *address, const char *const *args) {
        const char *wrapper = strncmp(name, "baseline", 8) == 0 ? getenv("CLUSTERHUB_BENCH_BASELINE_WRAPPER") : NULL;
        int sv[2];
        pid_t parent = getpid();

        Helper *h = NULL;

        /* a stopped helper's slot is free again */
        for (unsigned i = 0; i < n_helpers && !h; i++)
                if (helpers[i].pid <= 0)
                        h = &helpers[i];
        if (!h && n_helpers < MAX_HELPERS)
                h = &helpers[n_helpers++];
        if (!h) {
                fprintf(stderr, "clusterhub-bench: more than %d helpers at once (MAX_HELPERS)\n", MAX_HELPERS);
                return NULL;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return NULL;
        pid_t pid = fork();
        if (pid < 0) {
                close(sv[0]);
                close(sv[1]);
                return NULL;
        }
        if (pid == 0) {
                const char *argv[16];
                size_t n = 0;
                char addr[1024];

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                if (dup2(sv[1], BENCH_CTL_FD) < 0)
                        _exit(1);
                snprintf(addr, sizeof addr, "--address=%s", address);
                if (wrapper && wrapper[0])
                        argv[n++] = wrapper;
                argv[n++] = self_exe;
                argv[n++] = addr;
                for (size_t i = 0; args[i] && n < 15; i++)
                        argv[n++] = args[i];
                argv[n] = NULL;
                unsetenv("DBUS_SESSION_BUS_ADDRESS");
                unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        close(sv[1]);
        h->pid = pid;
        h->ctl = sv[0];
        snprintf(h->name, sizeof h->name, "%s", name);

        struct pollfd p = { .fd = h->ctl, .events = POLLIN };
        char c = 0;
        if (poll(&p, 1, 60000) <= 0 || read(h->ctl, &c, 1) != 1 || c != 'r') {
                fprintf(stderr, "clusterhub-bench: helper %s did not start\n", name);
                return NULL;
        }
        return h;
}

static uint64_t helper_count(Helper *h) {
        uint64_t v = 0;
        char c = 'c';
        if (write(h->ctl, &c, 1) != 1 || read(h->ctl, &v, sizeof v) != (ssize_t) sizeof v)
                return 0;
        return v;
}

static void helper_stop(Helper *h) {
        if (h->pid <= 0)
                return;
        close(h->ctl);
        /* closing the control socket makes it exit; don't wait long */
        for (int i = 0; i < 200; i++) {
                if (waitpid(h->pid, NULL, WNOHANG) == h->pid) {
                        h->pid = -1;
                        return;
                }
                usleep(10000);
        }
        kill(h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0);
        h->pid = -1;
}

static void helpers_stop_all(void) {
        for (unsigned i = 0; i < n_helpers; i++)
                helper_stop(&helpers[i]);
        n_helpers = 0;
}

/* ---- rows -------------------------------------------------------------------- */

typedef struct Row Row;
typedef struct Slot Slot;

typedef int (*start_fn)(Slot *s);

struct Slot {
        Row *row;
        unsigned idx;
        uint64_t t0;
        uint64_t token;
        int pending;
        char key[64];
};

struct Row {
        char name[64];
        char group[16];           /* baseline, hub, redis, persist, peers, scale */
        char transport[8];        /* "bus", "socket", or "" for rows of neither (Redis, Node) */
        unsigned inflight;
        /* results */
        uint64_t ops;
        uint64_t errors;
        double seconds;
        double rate;              /* completed operations per second */
        double p50_us, p99_us;
        double deliveries;        /* per second, counted at the subscribers; 0 when n/a */
        char ratio_to[64];        /* name of the matching baseline row */
        double ratio;             /* rate (or deliveries) / baseline's; NAN when n/a */
        double target;            /* minimum ratio; 0 when none */
        double vs_redis;          /* rate / the Redis row's rate; NAN when n/a */
        bool skipped;
        char note[160];
        /* run state */
        start_fn start;
        sd_bus *bus;
        uint64_t warm_end, deadline, last_end, started;
        unsigned active;
        bool stopping;
        uint64_t *lat;
        size_t n_lat, a_lat;
        uint64_t expect_counter;  /* Incr: last value seen */
};

static Row rows[MAX_ROWS];
static unsigned n_rows;

/* Printed above the persistence and peer rows (and kept in the JSON). */
static char persist_info[1024];
static char peers_info[768];
static char loadavg_start[64], loadavg_end[64];

/* The transport of the rows being made: "bus" (a client of the private bus), "socket" (a client
 * of the hub's private socket, the baseline served peer-to-peer on a socket of its own), or ""
 * (Redis, the Node peers). */
static const char *cur_transport = "";

static Row *row_new(const char *group, const char *name, unsigned inflight) {
        if (n_rows == MAX_ROWS) {
                fprintf(stderr, "clusterhub-bench: more than %d rows (MAX_ROWS)\n", MAX_ROWS);
                abort();
        }
        Row *r = &rows[n_rows++];
        memset(r, 0, sizeof *r);
        snprintf(r->group, sizeof r->group, "%s", group);
        snprintf(r->name, sizeof r->name, "%s", name);
        snprintf(r->transport, sizeof r->transport, "%s", cur_transport);
        r->inflight = inflight;
        r->ratio = NAN;
        r->vs_redis = NAN;
        return r;
}

static Row *row_find_on(const char *name, unsigned inflight, const char *transport) {
        for (unsigned i = 0; i < n_rows; i++)
                if (streq_ptr(rows[i].name, name) && rows[i].inflight == inflight && streq(rows[i].transport, transport) &&
                    !rows[i].skipped && rows[i].ops > 0)
                        return &rows[i];
        return NULL;
}

/* NAME on TRANSPORT, else a row of neither transport (Redis, Node), else on the socket, else on
 * the bus (the rows of neither transport have their baseline on one of them). */
static Row *row_find(const char *name, unsigned inflight, const char *transport) {
        return row_find_on(name, inflight, transport) ?: row_find_on(name, inflight, "")
                                                      ?: row_find_on(name, inflight, "socket")
                                                      ?: row_find_on(name, inflight, "bus");
}

static bool row_find_group(const char *group) {
        for (unsigned i = 0; i < n_rows; i++)
                if (streq(rows[i].group, group))
                        return true;
        return false;
}

static void lat_push(Row *r, uint64_t ns) {
        if (r->n_lat == r->a_lat) {
                size_t a = r->a_lat ? r->a_lat * 2 : 4096;
                uint64_t *p = realloc(r->lat, a * sizeof *p);
                if (!p)
                        return;
                r->lat = p;
                r->a_lat = a;
        }
        r->lat[r->n_lat++] = ns;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void row_finish_stats(Row *r) {
        if (r->n_lat > 0) {
                qsort(r->lat, r->n_lat, sizeof *r->lat, cmp_u64);
                r->p50_us = r->lat[(r->n_lat - 1) / 2] / 1000.0;
                r->p99_us = r->lat[(size_t) ((r->n_lat - 1) * 0.99)] / 1000.0;
        }
        free(r->lat);
        r->lat = NULL;
        r->n_lat = r->a_lat = 0;
}

static void row_error(Row *r, const char *fmt, ...) {
        va_list ap;
        r->errors++;
        r->stopping = true;
        if (r->note[0])
                return;
        va_start(ap, fmt);
        vsnprintf(r->note, sizeof r->note, fmt, ap);
        va_end(ap);
}

/* One operation of slot S finished (successfully unless ERR). */
static int op_done(Slot *s, const sd_bus_error *err, const char *what) {
        Row *r = s->row;
        uint64_t now = now_ns();

        if (err && sd_bus_error_is_set(err)) {
                if (sd_bus_error_has_name(err, CH_ERROR_NOT_SUPPORTED) || sd_bus_error_has_name(err, SD_BUS_ERROR_UNKNOWN_METHOD)) {
                        r->skipped = true;
                        snprintf(r->note, sizeof r->note, "skipped: %s", err->name);
                        r->stopping = true;
                } else
                        row_error(r, "%s: %s: %s", what, err->name, err->message ?: "");
        } else if (what && !err) {
                row_error(r, "%s", what); /* a wrong result */
        } else if (s->t0 >= r->warm_end) {
                lat_push(r, now - s->t0);
                r->ops++;
                r->last_end = now;
        }
        if (!r->stopping && now < r->deadline) {
                s->t0 = now;
                int q = r->start(s);
                if (q < 0) {
                        row_error(r, "starting a call: %s", strerror(-q));
                        r->active--;
                }
        } else
                r->active--;
        return 0;
}

#define OP_OK(s) op_done((s), NULL, NULL)

/* Run R with START at INFLIGHT calls in flight for arg_seconds (plus a short warm-up). */
static void row_run(Row *r, sd_bus *bus, start_fn start, Slot *slots) {
        uint64_t t = now_ns();
        uint64_t warm = (uint64_t) (arg_seconds * 0.1e9);
        if (warm > 300000000ULL)
                warm = 300000000ULL;

        r->bus = bus;
        r->start = start;
        r->started = t;
        r->warm_end = t + warm;
        r->deadline = r->warm_end + (uint64_t) (arg_seconds * 1e9);
        r->active = 0;
        for (unsigned i = 0; i < r->inflight; i++) {
                Slot *s = &slots[i];
                if (!s->row) {
                        s->row = r;
                        s->idx = i;
                }
                s->row = r;
                s->t0 = now_ns();
                s->pending = 0;
                int q = start(s);
                if (q < 0) {
                        row_error(r, "starting a call: %s", strerror(-q));
                        break;
                }
                r->active++;
        }
        while (r->active > 0) {
                int q = sd_bus_process(bus, NULL);
                if (q < 0) {
                        row_error(r, "sd_bus_process: %s", strerror(-q));
                        break;
                }
                if (q > 0)
                        continue;
                q = sd_bus_wait(bus, 1000000);
                if (q < 0 && q != -EINTR) {
                        row_error(r, "sd_bus_wait: %s", strerror(-q));
                        break;
                }
        }
        if (r->last_end > r->warm_end) {
                r->seconds = (r->last_end - r->warm_end) / 1e9;
                r->rate = r->ops / r->seconds;
        }
        row_finish_stats(r);
}

static Row *run(const char *group, const char *name, unsigned inflight, sd_bus *bus, start_fn start) {
        Slot *slots = calloc(inflight, sizeof *slots);
        Row *r = row_new(group, name, inflight);
        if (!slots) {
                row_error(r, "out of memory");
                return r;
        }
        for (unsigned i = 0; i < inflight; i++) {
                slots[i].idx = i;
                slots[i].row = r;
        }
        fprintf(stderr, "  %-30s %-6s x%-3u ...", name, cur_transport, inflight);
        row_run(r, bus, start, slots);
        fprintf(stderr, " %10.0f/s%s%s\n", r->rate, r->note[0] ? "  " : "", r->note);
        free(slots);
        return r;
}

/* ---- baseline ------------------------------------------------------------------ */

static int ping_cb(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Slot *s = userdata;
        const char *v;
        if (sd_bus_message_is_method_error(m, NULL))
                return op_done(s, sd_bus_message_get_error(m), "Ping");
        if (sd_bus_message_read(m, "v", "s", &v) < 0 || !streq_ptr(v, BENCH_VALUE))
                return op_done(s, NULL, "Ping: wrong reply");
        return OP_OK(s);
}

static int start_ping(Slot *s) {
        return sd_bus_call_method_async(s->row->bus, NULL, BENCH_BASE_NAME, BENCH_BASE_PATH, BENCH_BASE_IFACE, "Ping",
                                        ping_cb, s, "s", "bench:get");
}

/* ---- store ----------------------------------------------------------------------- */

static int get_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        const char *v;
        if (error)
                return op_done(s, error, "Get");
        if (sd_bus_message_read(reply, "v", "s", &v) < 0 || !streq_ptr(v, BENCH_VALUE))
                return op_done(s, NULL, "Get: wrong value");
        return OP_OK(s);
}

static int start_get(Slot *s) {
        return ch_store1_call_get_async(s->row->bus, NULL, CH_BUS_NAME, NS, "bench:get", get_cb, s, CALL_TIMEOUT_USEC);
}

static int append_value_and_options(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", BENCH_VALUE);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 0);
}

static int append_empty_options(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "a{sv}", 0);
}

static int set_cb(sd_bus_message *reply, const sd_bus_error *error, int set, void *userdata) {
        Slot *s = userdata;
        if (error)
                return op_done(s, error, "Set");
        if (!set)
                return op_done(s, NULL, "Set: not set");
        return OP_OK(s);
}

static int start_set(Slot *s) {
        snprintf(s->key, sizeof s->key, "bench:set:%u", s->idx);
        return ch_store1_call_set_async(s->row->bus, NULL, CH_BUS_NAME, NS, s->key, append_value_and_options, NULL,
                                        set_cb, s, CALL_TIMEOUT_USEC);
}

static int incr_cb(sd_bus_message *reply, const sd_bus_error *error, int64_t value, void *userdata) {
        Slot *s = userdata;
        if (error)
                return op_done(s, error, "Incr");
        /* one counter, one connection: replies arrive in order, so values increase */
        if (value <= 0 || (uint64_t) value <= s->row->expect_counter)
                return op_done(s, NULL, "Incr: value did not increase");
        s->row->expect_counter = (uint64_t) value;
        return OP_OK(s);
}

static int start_incr(Slot *s) {
        return ch_store1_call_incr_async(s->row->bus, NULL, CH_BUS_NAME, NS, "bench:counter", 1, incr_cb, s, CALL_TIMEOUT_USEC);
}

static char *mget_keys[MGET_KEYS + 1];

static int mget_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        unsigned n = 0;
        int r;
        if (error)
                return op_done(s, error, "MGet");
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_skip(reply, "{sv}")) > 0)
                n++;
        if (n != MGET_KEYS)
                return op_done(s, NULL, "MGet: wrong number of values");
        return OP_OK(s);
}

static int start_mget(Slot *s) {
        return ch_store1_call_m_get_async(s->row->bus, NULL, CH_BUS_NAME, NS, mget_keys, mget_cb, s, CALL_TIMEOUT_USEC);
}

/* RPush + BLPop hand-off: the pop waits first, the push wakes it. */
static int queue_part_done(Slot *s, const sd_bus_error *error, const char *what) {
        if (error)
                return op_done(s, error, what);
        if (--s->pending > 0)
                return 0;
        return OP_OK(s);
}

static int blpop_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        const char *key, *v;
        if (!error && (sd_bus_message_read(reply, "sv", &key, "s", &v) < 0 || !streq_ptr(key, s->key) ||
                       !streq_ptr(v, BENCH_PAYLOAD))) {
                s->pending = 0;
                return op_done(s, NULL, "BLPop: wrong element");
        }
        return queue_part_done(s, error, "BLPop");
}

static int rpush_cb(sd_bus_message *reply, const sd_bus_error *error, uint32_t length, void *userdata) {
        return queue_part_done(userdata, error, "RPush");
}

static int append_one_element(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "av", 1, "s", BENCH_PAYLOAD);
}

static int start_queue(Slot *s) {
        char *keys[2] = { s->key, NULL };
        int r;
        snprintf(s->key, sizeof s->key, "bench:queue:%u", s->idx);
        s->pending = 2;
        r = ch_store1_call_bl_pop_async(s->row->bus, NULL, CH_BUS_NAME, NS, keys, 10000, blpop_cb, s, CALL_TIMEOUT_USEC);
        if (r < 0)
                return r;
        return ch_store1_call_r_push_async(s->row->bus, NULL, CH_BUS_NAME, NS, s->key, append_one_element, NULL,
                                           rpush_cb, s, CALL_TIMEOUT_USEC);
}

/* ---- locks ------------------------------------------------------------------------- */

static int unlock_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        return op_done(userdata, error, error ? "Unlock" : NULL);
}

static int lock_cb(sd_bus_message *reply, const sd_bus_error *error, uint64_t token, void *userdata) {
        Slot *s = userdata;
        int r;
        if (error)
                return op_done(s, error, "Lock");
        if (token <= s->token)
                return op_done(s, NULL, "Lock: token did not increase");
        s->token = token;
        r = ch_locks1_call_unlock_async(s->row->bus, NULL, CH_BUS_NAME, NS, s->key, token, unlock_cb, s, CALL_TIMEOUT_USEC);
        if (r < 0) {
                sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_FAILED, "Unlock could not be sent");
                return op_done(s, &e, "Unlock");
        }
        return 0;
}

static int start_lock(Slot *s) {
        snprintf(s->key, sizeof s->key, "bench.lock.%u", s->idx);
        return ch_locks1_call_lock_async(s->row->bus, NULL, CH_BUS_NAME, NS, s->key, append_empty_options, NULL, lock_cb, s,
                                         CALL_TIMEOUT_USEC);
}

/* ---- requests ------------------------------------------------------------------------- */

static const char *request_method;

static int append_payload_and_options(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "s", BENCH_PAYLOAD);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 0);
}

static int request_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        const char *v;
        if (error)
                return op_done(s, error, "Request");
        if (sd_bus_message_read(reply, "v", "s", &v) < 0 || !streq_ptr(v, BENCH_PAYLOAD))
                return op_done(s, NULL, "Request: wrong reply");
        return OP_OK(s);
}

static int start_request(Slot *s) {
        return ch_requests1_call_request_async(s->row->bus, NULL, CH_BUS_NAME, NS, "", request_method,
                                               append_payload_and_options, NULL, request_cb, s, CALL_TIMEOUT_USEC);
}

/* ---- the manager ------------------------------------------------------------------------ */

static int stats_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        if (error)
                return op_done(s, error, "GetStats");
        if (sd_bus_message_skip(reply, "a{sv}") < 0)
                return op_done(s, NULL, "GetStats: wrong reply");
        return OP_OK(s);
}

static int start_get_stats(Slot *s) {
        return ch_hub1_call_get_stats_async(s->row->bus, NULL, CH_BUS_NAME, CH_HUB_PATH, stats_cb, s, CALL_TIMEOUT_USEC);
}

static unsigned expect_workers;

static int list_workers_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        unsigned n = 0;
        int r;
        if (error)
                return op_done(s, error, "ListWorkers");
        r = sd_bus_message_enter_container(reply, 'a', "(ssua{sv})");
        while (r >= 0 && (r = sd_bus_message_skip(reply, "(ssua{sv})")) > 0)
                n++;
        if (n != expect_workers)
                return op_done(s, NULL, "ListWorkers: wrong number of workers");
        return OP_OK(s);
}

static int start_list_workers(Slot *s) {
        return ch_hub1_call_list_workers_async(s->row->bus, NULL, CH_BUS_NAME, CH_HUB_PATH, list_workers_cb, s,
                                               CALL_TIMEOUT_USEC);
}

/* ---- events ------------------------------------------------------------------------------ */

static char emit_event[64];
static unsigned emit_rotate; /* >0: event "scale.<n % emit_rotate>" */
static uint64_t emits_sent;

static int append_payload(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "s", BENCH_PAYLOAD);
}

static int emit_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        if (!error)
                emits_sent++;
        return op_done(s, error, error ? "Emit" : NULL);
}

/* Fire-and-forget Emit, the way a publisher that wants no acknowledgement sends it
 * (NO_REPLY_EXPECTED): EMIT_BATCH - 1 unacknowledged Emits, then one acknowledged one whose
 * reply paces the row (the bus keeps order per sender, so its reply means the batch is in). */
#define EMIT_BATCH 16

static int emit_batch_cb(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Slot *s = userdata;
        if (!error)
                emits_sent += EMIT_BATCH;
        return op_done(s, error, error ? "Emit" : NULL);
}

static int start_emit_noreply(Slot *s) {
        for (unsigned i = 0; i + 1 < EMIT_BATCH; i++) {
                sd_bus_message *m = NULL;
                int r = sd_bus_message_new_method_call(s->row->bus, &m, CH_BUS_NAME, NS, CH_EVENTS1_INTERFACE, "Emit");
                if (r >= 0)
                        r = sd_bus_message_set_expect_reply(m, 0);
                if (r >= 0)
                        r = sd_bus_message_append(m, "sv", emit_event, "s", BENCH_PAYLOAD);
                if (r >= 0)
                        r = sd_bus_send(s->row->bus, m, NULL);
                sd_bus_message_unref(m);
                if (r < 0)
                        return r;
        }
        return ch_events1_call_emit_async(s->row->bus, NULL, CH_BUS_NAME, NS, emit_event, append_payload, NULL, emit_batch_cb,
                                          s, CALL_TIMEOUT_USEC);
}

static int start_emit(Slot *s) {
        const char *ev = emit_event;
        if (emit_rotate) {
                static unsigned n;
                snprintf(s->key, sizeof s->key, "scale.%u", n++ % emit_rotate);
                ev = s->key;
        }
        return ch_events1_call_emit_async(s->row->bus, NULL, CH_BUS_NAME, NS, ev, append_payload, NULL, emit_cb, s,
                                          CALL_TIMEOUT_USEC);
}

#define BLAST_COUNT 256

static int blast_cb(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Slot *s = userdata;
        if (sd_bus_message_is_method_error(m, NULL))
                return op_done(s, sd_bus_message_get_error(m), "Blast");
        emits_sent += BLAST_COUNT;
        return OP_OK(s);
}

static int start_blast(Slot *s) {
        return sd_bus_call_method_async(s->row->bus, NULL, BENCH_BASE_NAME, BENCH_BASE_PATH, BENCH_BASE_IFACE, "Blast",
                                        blast_cb, s, "su", emit_event, (uint32_t) BLAST_COUNT);
}

static uint64_t count_sum(Helper **subs, unsigned n) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < n; i++)
                sum += helper_count(subs[i]);
        return sum;
}

/* Run a signal row and count deliveries at the subscribers: from the row's start until the
 * last expected delivery arrived (each subscriber gets every signal it subscribed to). */
static Row *run_signal_row(const char *group, const char *name, unsigned inflight, sd_bus *bus, start_fn start,
                           Helper **subs, unsigned n_subs, unsigned per_signal) {
        uint64_t before = count_sum(subs, n_subs), after = before, expect;
        uint64_t t0 = now_ns(), t_end;
        Row *r;

        emits_sent = 0;
        r = run(group, name, inflight, bus, start);
        expect = before + emits_sent * per_signal;
        for (;;) {
                after = count_sum(subs, n_subs);
                t_end = now_ns();
                if (after >= expect || t_end - r->deadline > 10000000000ULL)
                        break;
                usleep(500);
        }
        if (after != expect && !r->note[0])
                snprintf(r->note, sizeof r->note, "delivered %" PRIu64 " of %" PRIu64 " signals",
                         after - before, expect - before);
        if (after != expect)
                r->errors++;
        r->deliveries = (after - before) / ((t_end - t0) / 1e9);
        return r;
}

/* ---- Redis ------------------------------------------------------------------------------------ */

typedef struct Redis {
        int fd;
        char buf[1 << 16];
        size_t len, off;
} Redis;

static int redis_connect(Redis *c, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        c->len = c->off = 0;
        if (c->fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = -errno;
                close(c->fd);
                c->fd = -1;
                return e;
        }
        return 0;
}

static int redis_fill(Redis *c) {
        if (c->off > 0) {
                memmove(c->buf, c->buf + c->off, c->len - c->off);
                c->len -= c->off;
                c->off = 0;
        }
        if (c->len == sizeof c->buf)
                return -ENOBUFS;
        ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (n <= 0)
                return n == 0 ? -ECONNRESET : -errno;
        c->len += (size_t) n;
        return 0;
}

/* Read one line (without CRLF) into LINE. */
static int redis_line(Redis *c, char *line, size_t size) {
        for (;;) {
                char *nl = memmem(c->buf + c->off, c->len - c->off, "\r\n", 2);
                if (nl) {
                        size_t n = (size_t) (nl - (c->buf + c->off));
                        if (n >= size)
                                n = size - 1;
                        memcpy(line, c->buf + c->off, n);
                        line[n] = 0;
                        c->off = (size_t) (nl - c->buf) + 2;
                        return 0;
                }
                int r = redis_fill(c);
                if (r < 0)
                        return r;
        }
}

/* Read one reply.  Returns 0 and *ret_int for ':' replies; bulk strings go to OUT (if any). */
static int redis_reply(Redis *c, long long *ret_int, char *out, size_t out_size) {
        char line[256];
        int r = redis_line(c, line, sizeof line);
        if (r < 0)
                return r;
        switch (line[0]) {
        case '+':
                return 0;
        case '-':
                fprintf(stderr, "redis: %s\n", line);
                return -EIO;
        case ':':
                if (ret_int)
                        *ret_int = strtoll(line + 1, NULL, 10);
                return 0;
        case '$': {
                long long n = strtoll(line + 1, NULL, 10);
                size_t got = 0;
                if (n < 0)
                        return 0;
                while (c->len - c->off < (size_t) n + 2) {
                        /* large bulk (INFO): copy what we have */
                        size_t avail = c->len - c->off;
                        if (out && got + avail < out_size) {
                                memcpy(out + got, c->buf + c->off, avail);
                                got += avail;
                        }
                        n -= (long long) avail;
                        c->off = c->len;
                        if ((r = redis_fill(c)) < 0)
                                return r;
                }
                if (out && got + (size_t) n < out_size) {
                        memcpy(out + got, c->buf + c->off, (size_t) n);
                        out[got + (size_t) n] = 0;
                }
                c->off += (size_t) n + 2;
                return 0;
        }
        case '*': {
                long long n = strtoll(line + 1, NULL, 10);
                for (long long i = 0; i < n; i++)
                        if ((r = redis_reply(c, NULL, NULL, 0)) < 0)
                                return r;
                return 0;
        }
        default:
                return -EBADMSG;
        }
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                n -= (size_t) w;
        }
        return 0;
}

/* Append one command (RESP array of bulk strings) to BUF. */
static size_t resp_cmd(char *buf, size_t size, int argc, const char *const *argv) {
        size_t n = (size_t) snprintf(buf, size, "*%d\r\n", argc);
        for (int i = 0; i < argc && n < size; i++)
                n += (size_t) snprintf(buf + n, size - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
        return n;
}

static void drain(int fd) {
        char b[65536];
        while (recv(fd, b, sizeof b, MSG_DONTWAIT) > 0)
                ;
}

typedef enum { RCMD_GET, RCMD_SET, RCMD_INCR, RCMD_PUBLISH } RedisCmd;

static Row *redis_row(Redis *c, int sub_fd, RedisCmd cmd, const char *name, unsigned inflight) {
        Row *r = row_new("redis", name, inflight);
        static char out[64 * 256];
        size_t n = 0;
        uint64_t t = now_ns();
        uint64_t warm = (uint64_t) (arg_seconds * 0.1e9);
        long long last_incr = 0, deliveries = 0;
        for (unsigned i = 0; i < inflight; i++) {
                char key[32];
                snprintf(key, sizeof key, "bench:set:%u", i);
                const char *argv_get[] = { "GET", "bench:get" };
                const char *argv_set[] = { "SET", key, BENCH_VALUE };
                const char *argv_incr[] = { "INCR", "bench:counter" };
                const char *argv_pub[] = { "PUBLISH", "bench.emit", BENCH_PAYLOAD };
                switch (cmd) {
                case RCMD_GET: n += resp_cmd(out + n, sizeof out - n, 2, argv_get); break;
                case RCMD_SET: n += resp_cmd(out + n, sizeof out - n, 3, argv_set); break;
                case RCMD_INCR: n += resp_cmd(out + n, sizeof out - n, 2, argv_incr); break;
                case RCMD_PUBLISH: n += resp_cmd(out + n, sizeof out - n, 3, argv_pub); break;
                }
        }
        fprintf(stderr, "  %-30s %-6s x%-3u ...", name, "", inflight);
        r->warm_end = t + warm;
        r->deadline = r->warm_end + (uint64_t) (arg_seconds * 1e9);
        for (;;) {
                uint64_t t0 = now_ns();
                if (t0 >= r->deadline)
                        break;
                if (write_all(c->fd, out, n) < 0) {
                        row_error(r, "redis write failed");
                        break;
                }
                for (unsigned i = 0; i < inflight; i++) {
                        long long v = -1;
                        char val[64] = "";
                        if (redis_reply(c, &v, val, sizeof val) < 0) {
                                row_error(r, "redis read failed");
                                goto out;
                        }
                        if (cmd == RCMD_GET && !streq(val, BENCH_VALUE))
                                row_error(r, "GET: wrong value");
                        if (cmd == RCMD_INCR) {
                                if (v <= last_incr)
                                        row_error(r, "INCR: value did not increase");
                                last_incr = v;
                        }
                        if (cmd == RCMD_PUBLISH) {
                                if (v != 1)
                                        row_error(r, "PUBLISH: not delivered");
                                else if (t0 >= r->warm_end)
                                        deliveries++;
                        }
                }
                if (sub_fd >= 0)
                        drain(sub_fd);
                uint64_t t1 = now_ns();
                if (t0 >= r->warm_end) {
                        lat_push(r, t1 - t0);
                        r->ops += inflight;
                        r->last_end = t1;
                }
                if (r->errors)
                        break;
        }
out:
        if (r->last_end > r->warm_end) {
                r->seconds = (r->last_end - r->warm_end) / 1e9;
                r->rate = r->ops / r->seconds;
                if (cmd == RCMD_PUBLISH)
                        r->deliveries = deliveries / r->seconds;
        }
        row_finish_stats(r);
        fprintf(stderr, " %10.0f/s%s%s\n", r->rate, r->note[0] ? "  " : "", r->note);
        return r;
}

static int redis_simple(Redis *c, int argc, const char *const *argv, long long *ret_int, char *out, size_t out_size) {
        char buf[1024];
        size_t n = resp_cmd(buf, sizeof buf, argc, argv);
        int r = write_all(c->fd, buf, n);
        if (r < 0)
                return r;
        return redis_reply(c, ret_int, out, out_size);
}

static long long redis_used_memory(Redis *c) {
        static char info[65536];
        const char *argv[] = { "INFO", "memory" };
        info[0] = 0;
        if (redis_simple(c, 2, argv, NULL, info, sizeof info) < 0)
                return -1;
        const char *p = strstr(info, "used_memory:");
        return p ? strtoll(p + strlen("used_memory:"), NULL, 10) : -1;
}

typedef struct RedisServer {
        pid_t pid;
        char dir[512];
        char sock[600];
} RedisServer;

static int rm_rf_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (flag == FTW_DP)
                return rmdir(path) < 0 ? -1 : 0;
        return unlink(path) < 0 ? -1 : 0;
}

/* Remove DIR and what is in it (our own temp dirs only). */
static int rm_rf(const char *dir) {
        if (!dir || !dir[0])
                return 0;
        return nftw(dir, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

/* Start redis-server in a fresh directory under PARENT_DIR, on a unix socket only.  APPENDFSYNC:
 * NULL for no persistence at all (as the main Redis rows), else "always" or "everysec" with
 * appendonly yes (and no RDB snapshots, so the AOF is the only thing written). */
static int redis_start(RedisServer *rs, const char *parent_dir, const char *appendfsync) {
        char *path = NULL;
        if (access("/usr/bin/redis-server", X_OK) == 0)
                path = "/usr/bin/redis-server";
        else if (access("/usr/local/bin/redis-server", X_OK) == 0)
                path = "/usr/local/bin/redis-server";
        if (!path)
                return -ENOENT;
        snprintf(rs->dir, sizeof rs->dir, "%s/clusterhub-bench-redis-XXXXXX", parent_dir);
        if (!mkdtemp(rs->dir)) {
                rs->dir[0] = 0;
                return -errno;
        }
        snprintf(rs->sock, sizeof rs->sock, "%s/redis.sock", rs->dir);
        if (strlen(rs->sock) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return -ENAMETOOLONG;
        pid_t parent = getpid();
        rs->pid = fork();
        if (rs->pid < 0)
                return -errno;
        if (rs->pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                int devnull = open("/dev/null", O_RDWR);
                if (devnull >= 0) {
                        dup2(devnull, 0);
                        dup2(devnull, 1);
                }
                if (appendfsync)
                        execl(path, path, "--port", "0", "--unixsocket", rs->sock, "--save", "", "--appendonly", "yes",
                              "--appendfsync", appendfsync, "--dir", rs->dir, "--daemonize", "no", (char *) NULL);
                else
                        execl(path, path, "--port", "0", "--unixsocket", rs->sock, "--save", "", "--appendonly", "no",
                              "--dir", rs->dir, "--daemonize", "no", (char *) NULL);
                _exit(127);
        }
        for (int i = 0; i < 500; i++) {
                Redis c;
                if (redis_connect(&c, rs->sock) == 0) {
                        close(c.fd);
                        return 0;
                }
                if (waitpid(rs->pid, NULL, WNOHANG) == rs->pid) {
                        rs->pid = -1;
                        return -ECHILD;
                }
                usleep(10000);
        }
        return -ETIMEDOUT;
}

static void redis_stop(RedisServer *rs) {
        if (rs->pid > 0) {
                kill(rs->pid, SIGTERM);
                for (int i = 0; i < 500 && waitpid(rs->pid, NULL, WNOHANG) != rs->pid; i++)
                        usleep(10000);
                if (kill(rs->pid, 0) == 0) {
                        kill(rs->pid, SIGKILL);
                        waitpid(rs->pid, NULL, 0);
                }
                rs->pid = -1;
        }
        if (rs->dir[0]) {
                (void) rm_rf(rs->dir);
                rs->dir[0] = 0;
        }
}

/* ---- memory --------------------------------------------------------------------------------- */

typedef struct MemResult {
        bool done;
        unsigned keys;
        double hub_store_bytes_per_key;
        double hub_rss_bytes_per_key;
        double redis_bytes_per_key;
        double redis_rss_bytes_per_key;
        char note[160];
} MemResult;

static MemResult mem;

static long long proc_rss_bytes(pid_t pid) {
        char path[64], line[256];
        long long kb = -1;
        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (strncmp(line, "VmRSS:", 6) == 0)
                        kb = strtoll(line + 6, NULL, 10);
        fclose(f);
        return kb < 0 ? -1 : kb * 1024;
}

static long long hub_stat(sd_bus *bus, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        long long v = -1;
        int r = ch_hub1_call_get_stats(bus, CH_BUS_NAME, CH_HUB_PATH, &reply, &error);
        if (r < 0) {
                fprintf(stderr, "GetStats: %s\n", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                return -1;
        }
        if (sd_bus_message_enter_container(reply, 'a', "{sv}") > 0) {
                const char *k;
                while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                        if (sd_bus_message_read(reply, "s", &k) < 0)
                                break;
                        if (streq(k, name)) {
                                uint64_t t;
                                if (sd_bus_message_read(reply, "v", "t", &t) >= 0)
                                        v = (long long) t;
                        } else
                                sd_bus_message_skip(reply, "v");
                        sd_bus_message_exit_container(reply);
                }
        }
        sd_bus_message_unref(reply);
        return v;
}

#define MEM_BATCH 1000

typedef struct MSetBatch {
        unsigned first, count;
} MSetBatch;

static int append_mset(sd_bus_message *m, void *userdata) {
        MSetBatch *b = userdata;
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (unsigned i = 0; r >= 0 && i < b->count; i++) {
                char k[32], v[32];
                snprintf(k, sizeof k, "mem:%08u", b->first + i);
                snprintf(v, sizeof v, "v%08u", b->first + i);
                r = sd_bus_message_append(m, "{sv}", k, "s", v);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static void measure_memory(sd_bus *bus, pid_t hub_pid, Redis *rc) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        long long sb0, sb1, rss0, rss1;
        uint64_t t0 = now_ns();

        mem.keys = arg_keys;
        fprintf(stderr, "  memory: %u keys ...", arg_keys);
        sb0 = hub_stat(bus, "store_bytes");
        rss0 = proc_rss_bytes(hub_pid);
        for (unsigned i = 0; i < arg_keys; i += MEM_BATCH) {
                MSetBatch b = { i, arg_keys - i < MEM_BATCH ? arg_keys - i : MEM_BATCH };
                int r = ch_store1_call_m_set(bus, CH_BUS_NAME, NS, append_mset, &b, &error);
                if (r < 0) {
                        snprintf(mem.note, sizeof mem.note, "hub MSet: %s", error.message ?: strerror(-r));
                        sd_bus_error_free(&error);
                        fprintf(stderr, " %s\n", mem.note);
                        return;
                }
        }
        sb1 = hub_stat(bus, "store_bytes");
        rss1 = proc_rss_bytes(hub_pid);
        mem.hub_store_bytes_per_key = (double) (sb1 - sb0) / arg_keys;
        mem.hub_rss_bytes_per_key = (double) (rss1 - rss0) / arg_keys;
        mem.redis_bytes_per_key = NAN;
        mem.redis_rss_bytes_per_key = NAN;
        if (rc) {
                long long u0 = redis_used_memory(rc), u1;
                static char buf[MEM_BATCH * 64];
                for (unsigned i = 0; i < arg_keys; i += MEM_BATCH) {
                        unsigned cnt = arg_keys - i < MEM_BATCH ? arg_keys - i : MEM_BATCH;
                        size_t n = (size_t) snprintf(buf, sizeof buf, "*%u\r\n$4\r\nMSET\r\n", 1 + 2 * cnt);
                        for (unsigned j = 0; j < cnt; j++)
                                n += (size_t) snprintf(buf + n, sizeof buf - n, "$12\r\nmem:%08u\r\n$9\r\nv%08u\r\n",
                                                       i + j, i + j);
                        if (write_all(rc->fd, buf, n) < 0 || redis_reply(rc, NULL, NULL, 0) < 0) {
                                snprintf(mem.note, sizeof mem.note, "redis MSET failed");
                                break;
                        }
                }
                u1 = redis_used_memory(rc);
                if (u0 >= 0 && u1 >= 0)
                        mem.redis_bytes_per_key = (double) (u1 - u0) / arg_keys;
        }
        mem.done = true;
        fprintf(stderr, " %.1f s\n", (now_ns() - t0) / 1e9);
}

/* ---- output ------------------------------------------------------------------------------------ */

/* The ratio of R over BASE_NAME on R's transport (else over a row of neither, Redis or Node). */
static void set_ratio(Row *r, const char *base_name, unsigned base_inflight, bool by_deliveries, double target) {
        Row *b = row_find(base_name, base_inflight, r->transport);
        r->target = target;
        if (!b || r->skipped || r->ops == 0)
                return;
        if (b->transport[0] && !streq(b->transport, r->transport))
                snprintf(r->ratio_to, sizeof r->ratio_to, "%s x%u (%s)", base_name, base_inflight, b->transport);
        else
                snprintf(r->ratio_to, sizeof r->ratio_to, "%s x%u", base_name, base_inflight);
        if (by_deliveries)
                r->ratio = b->deliveries > 0 ? r->deliveries / b->deliveries : NAN;
        else
                r->ratio = b->rate > 0 ? r->rate / b->rate : NAN;
}

static void set_vs_redis(Row *r, const char *redis_name, bool by_deliveries) {
        Row *b = row_find_on(redis_name, r->inflight, "");
        if (!b || r->ops == 0)
                return;
        r->vs_redis = by_deliveries ? (b->deliveries > 0 ? r->deliveries / b->deliveries : NAN) : r->rate / b->rate;
}

static const char *verdict(const Row *r) {
        if (r->target <= 0)
                return "";
        if (isnan(r->ratio))
                return "n/a";
        return r->ratio >= r->target ? "met" : "MISSED";
}

static void fmt_num(char *buf, size_t size, double v, const char *prefix, int decimals) {
        if (isnan(v) || v == 0)
                snprintf(buf, size, "-");
        else
                snprintf(buf, size, "%s%.*f", prefix, decimals, v);
}

static void print_table(FILE *f) {
        fprintf(f, "%-30s %-6s %4s %11s %9s %9s %11s %7s %-34s %6s %-7s %8s\n", "row", "via", "infl", "ops/s", "p50_us", "p99_us",
                "deliv/s", "ratio", "baseline", "target", "verdict", "vs_redis");
        for (unsigned i = 0; i < n_rows; i++) {
                const Row *r = &rows[i];
                char rate[32], p50[32], p99[32], del[32], ratio[32], target[32], vr[32];
                if (i == 0 || !streq(rows[i - 1].group, r->group)) {
                        if (streq(r->group, "persist") && persist_info[0])
                                fprintf(f, "\n%s\n", persist_info);
                        else if (streq(r->group, "peers") && peers_info[0])
                                fprintf(f, "\n%s\n", peers_info);
                        else if (i > 0 && (streq(rows[i - 1].group, "persist") || streq(rows[i - 1].group, "peers")))
                                fprintf(f, "\n");
                }
                fmt_num(rate, sizeof rate, r->rate, "", 0);
                fmt_num(p50, sizeof p50, r->inflight == 1 ? r->p50_us : NAN, "", 1);
                fmt_num(p99, sizeof p99, r->inflight == 1 ? r->p99_us : NAN, "", 1);
                fmt_num(del, sizeof del, r->deliveries, "", 0);
                fmt_num(ratio, sizeof ratio, r->ratio, "", 2);
                fmt_num(target, sizeof target, r->target, ">=", 2);
                fmt_num(vr, sizeof vr, r->vs_redis, "", 2);
                fprintf(f, "%-30s %-6s %4u %11s %9s %9s %11s %7s %-34s %6s %-7s %8s%s%s\n", r->name,
                        r->transport[0] ? r->transport : "-", r->inflight, rate, p50, p99,
                        del, ratio, r->ratio_to[0] ? r->ratio_to : "-", target, verdict(r), vr, r->note[0] ? "  # " : "",
                        r->note);
        }
        if (mem.done) {
                fprintf(f, "\nmemory, %u small keys (key 12 bytes, value 9 bytes):\n", mem.keys);
                fprintf(f, "  hub store_bytes/key %.1f   hub RSS/key %.1f   redis used_memory/key %.1f   target hub <= redis: %s\n",
                        mem.hub_store_bytes_per_key, mem.hub_rss_bytes_per_key, mem.redis_bytes_per_key,
                        isnan(mem.redis_bytes_per_key) ? "n/a"
                        : fmax(mem.hub_store_bytes_per_key, mem.hub_rss_bytes_per_key) <= mem.redis_bytes_per_key ? "met"
                        : "MISSED");
        } else if (mem.note[0])
                fprintf(f, "\nmemory: %s\n", mem.note);
        /* a skipped section says so (its rows are not in the table) */
        if (peers_info[0] && !row_find_group("peers"))
                fprintf(f, "\n%s\n", peers_info);
}

static void json_str(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fprintf(f, "\\%c", *s);
                else if ((unsigned char) *s < 0x20)
                        fprintf(f, "\\u%04x", *s);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

static void json_num(FILE *f, double v) {
        if (isnan(v) || isinf(v))
                fprintf(f, "null");
        else
                fprintf(f, "%.6g", v);
}

static int write_json(const char *path, const char *bus_kind) {
        FILE *f = fopen(path, "we");
        struct utsname u;
        char cpu[256] = "";
        FILE *ci = fopen("/proc/cpuinfo", "re");
        if (!f)
                return -errno;
        if (ci) {
                char line[512];
                while (fgets(line, sizeof line, ci))
                        if (strncmp(line, "model name", 10) == 0) {
                                char *p = strchr(line, ':');
                                if (p) {
                                        snprintf(cpu, sizeof cpu, "%s", p + 2);
                                        cpu[strcspn(cpu, "\n")] = 0;
                                }
                                break;
                        }
                fclose(ci);
        }
        uname(&u);
        time_t t = time(NULL);
        char date[64];
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        fprintf(f, "{\n  \"date\": \"%s\",\n  \"bus\": ", date);
        json_str(f, bus_kind);
        fprintf(f, ",\n  \"machine\": {\"nproc\": %ld, \"cpu\": ", sysconf(_SC_NPROCESSORS_ONLN));
        json_str(f, cpu);
        fprintf(f, ", \"kernel\": ");
        json_str(f, u.release);
        fprintf(f, "},\n  \"loadavg_start\": ");
        json_str(f, loadavg_start);
        fprintf(f, ",\n  \"loadavg_end\": ");
        json_str(f, loadavg_end);
        fprintf(f, ",\n  \"persist\": ");
        json_str(f, persist_info);
        fprintf(f, ",\n  \"peers\": ");
        json_str(f, peers_info);
        fprintf(f, ",\n  \"seconds_per_row\": %g,\n  \"quick\": %s,\n  \"rows\": [\n", arg_seconds, arg_quick ? "true" : "false");
        for (unsigned i = 0; i < n_rows; i++) {
                const Row *r = &rows[i];
                fprintf(f, "    {\"name\": ");
                json_str(f, r->name);
                fprintf(f, ", \"group\": ");
                json_str(f, r->group);
                fprintf(f, ", \"transport\": ");
                json_str(f, r->transport);
                fprintf(f, ", \"inflight\": %u, \"ops\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"seconds\": ", r->inflight,
                        r->ops, r->errors);
                json_num(f, r->seconds);
                fprintf(f, ", \"ops_per_sec\": ");
                json_num(f, r->rate);
                fprintf(f, ", \"p50_us\": ");
                json_num(f, r->p50_us);
                fprintf(f, ", \"p99_us\": ");
                json_num(f, r->p99_us);
                fprintf(f, ", \"deliveries_per_sec\": ");
                json_num(f, r->deliveries > 0 ? r->deliveries : NAN);
                fprintf(f, ", \"ratio\": ");
                json_num(f, r->ratio);
                fprintf(f, ", \"ratio_to\": ");
                json_str(f, r->ratio_to);
                fprintf(f, ", \"target\": ");
                json_num(f, r->target > 0 ? r->target : NAN);
                fprintf(f, ", \"verdict\": ");
                json_str(f, verdict(r));
                fprintf(f, ", \"vs_redis\": ");
                json_num(f, r->vs_redis);
                fprintf(f, ", \"skipped\": %s, \"note\": ", r->skipped ? "true" : "false");
                json_str(f, r->note);
                fprintf(f, "}%s\n", i + 1 < n_rows ? "," : "");
        }
        fprintf(f, "  ],\n  \"memory\": ");
        if (mem.done) {
                fprintf(f, "{\"keys\": %u, \"hub_store_bytes_per_key\": ", mem.keys);
                json_num(f, mem.hub_store_bytes_per_key);
                fprintf(f, ", \"hub_rss_bytes_per_key\": ");
                json_num(f, mem.hub_rss_bytes_per_key);
                fprintf(f, ", \"redis_used_memory_per_key\": ");
                json_num(f, mem.redis_bytes_per_key);
                fprintf(f, "}\n");
        } else
                fprintf(f, "null\n");
        fprintf(f, "}\n");
        return fclose(f) == 0 ? 0 : -errno;
}


/* ---- main ------------------------------------------------------------------------------------------ */

static void help(void) {
        printf("clusterhub-bench [OPTIONS]\n\n"
               "Measure every hub operation against a minimal sd-bus service on the same private bus (and,\n"
               "over the hub's private socket, against the same service served peer-to-peer on a socket)\n"
               "and against Redis on a unix socket, in one run.\n\n"
               "  -h --help              Show this help\n"
               "     --seconds=N         Measured seconds per row (default %g)\n"
               "     --quick             A few rows, small memory and scale parts (CI smoke test)\n"
               "     --broker            Use dbus-broker instead of dbus-daemon\n"
               "     --no-redis          Skip the Redis rows\n"
               "     --json=FILE         Write the results as JSON to FILE\n"
               "     --keys=N            Keys for the memory comparison (default %u)\n"
               "     --scale-clients=N   Subscribed clients for the scale rows (default %u)\n"
               "     --scale-workers=N   Registered workers for the scale rows (default %u)\n"
               "     --inflight=N        Calls in flight for the throughput rows (default %u)\n"
               "     --only-get          Baseline Ping and hub Get rows only, on each --transport (to profile the hub)\n"
               "     --only-cache        Redis GET and the cached Get rows (libclusterhub's ChCache) only\n"
               "     --no-persist        Skip the persistence rows (Set/Incr with --data-dir in each --fsync mode,\n"
               "                         Redis SET/INCR with appendonly yes)\n"
               "     --no-hosts          Skip the rows across hosts (two hubs on two buses sharing one Redis)\n"
               "     --only-hosts        The Redis rows and the rows across hosts only\n"
               "     --persist-dir=DIR   Make the data dirs of those rows under DIR (default /var/tmp); use a disk\n"
               "     --peers=DIR         Also run the Node peers in DIR (bench/peers, after npm ci) next to the\n"
               "                         matching hub rows; skipped with a line when node is missing\n"
               "     --transport=WHICH   bus, socket or both (default): the hub rows as clients of the private\n"
               "                         bus, of the hub's private socket (--listen=PATH), or both\n\n"
               "The hub binary is $CLUSTERHUBD, else $MESON_BUILD_ROOT/service/clusterhubd; node is $NODE, else\n"
               "the first in $PATH. $CLUSTERHUB_BENCH_BASELINE_WRAPPER, when set, runs the baseline services\n"
               "under it (a program that execs its arguments: valgrind for a profile, see BENCHMARKS.md).\n",
               arg_seconds, arg_keys, arg_scale_clients, arg_scale_workers, arg_inflight);
}

enum {
        ARG_SECONDS = 0x100, ARG_QUICK, ARG_BROKER, ARG_NO_REDIS, ARG_JSON, ARG_KEYS, ARG_SCALE_CLIENTS,
        ARG_SCALE_WORKERS, ARG_INFLIGHT, ARG_ONLY_GET, ARG_NO_PERSIST, ARG_PERSIST_DIR, ARG_PEERS,
        ARG_ADDRESS, ARG_BASELINE, ARG_SUBSCRIBER, ARG_WORKER, ARG_SCALE_CLIENTS_HELPER, ARG_SCALE_WORKERS_HELPER,
        ARG_FIRST, ARG_P2P_BASELINE, ARG_TRANSPORT, ARG_PACED_WRITER, ARG_KEY, ARG_ONLY_CACHE, ARG_NO_HOSTS, ARG_ONLY_HOSTS,
};

static int helper_main(int argc, char **argv) {
        static const struct option options[] = {
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "baseline-service", no_argument, NULL, ARG_BASELINE },
                { "subscriber", required_argument, NULL, ARG_SUBSCRIBER },
                { "worker", required_argument, NULL, ARG_WORKER },
                { "scale-clients-helper", required_argument, NULL, ARG_SCALE_CLIENTS_HELPER },
                { "scale-workers-helper", required_argument, NULL, ARG_SCALE_WORKERS_HELPER },
                { "first", required_argument, NULL, ARG_FIRST },
                { "p2p-baseline", no_argument, NULL, ARG_P2P_BASELINE },
                { "paced-writer", required_argument, NULL, ARG_PACED_WRITER },
                { "key", required_argument, NULL, ARG_KEY },
                {}
        };
        const char *address = NULL, *arg = NULL, *key = NULL;
        int mode = 0, c;
        unsigned first = 0;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_ADDRESS:
                        address = optarg;
                        break;
                case ARG_FIRST:
                        first = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_KEY:
                        key = optarg;
                        break;
                case '?':
                        return 2;
                default:
                        mode = c;
                        arg = optarg;
                }
        if (!address)
                return 2;
        switch (mode) {
        case ARG_BASELINE:
                return helper_baseline_service(address);
        case ARG_P2P_BASELINE:
                /* --address=PATH: the socket to listen on */
                return helper_p2p_baseline(address);
        case ARG_SUBSCRIBER:
                return helper_subscriber(address, arg);
        case ARG_WORKER: {
                /* --worker=ID methods... */
                return helper_worker(address, arg, argv + optind);
        }
        case ARG_SCALE_CLIENTS_HELPER:
                return helper_scale_clients(address, first, (unsigned) strtoul(arg, NULL, 10));
        case ARG_SCALE_WORKERS_HELPER:
                return helper_scale_workers(address, first, (unsigned) strtoul(arg, NULL, 10));
        case ARG_PACED_WRITER:
                /* --paced-writer=RATE --key=KEY */
                return key ? helper_paced_writer(address, key, (unsigned) strtoul(arg, NULL, 10)) : 2;
        }
        return 2;
}

static int parse_args(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "seconds", required_argument, NULL, ARG_SECONDS },
                { "quick", no_argument, NULL, ARG_QUICK },
                { "broker", no_argument, NULL, ARG_BROKER },
                { "no-redis", no_argument, NULL, ARG_NO_REDIS },
                { "json", required_argument, NULL, ARG_JSON },
                { "keys", required_argument, NULL, ARG_KEYS },
                { "scale-clients", required_argument, NULL, ARG_SCALE_CLIENTS },
                { "scale-workers", required_argument, NULL, ARG_SCALE_WORKERS },
                { "inflight", required_argument, NULL, ARG_INFLIGHT },
                { "only-get", no_argument, NULL, ARG_ONLY_GET },
                { "only-cache", no_argument, NULL, ARG_ONLY_CACHE },
                { "no-persist", no_argument, NULL, ARG_NO_PERSIST },
                { "no-hosts", no_argument, NULL, ARG_NO_HOSTS },
                { "only-hosts", no_argument, NULL, ARG_ONLY_HOSTS },
                { "persist-dir", required_argument, NULL, ARG_PERSIST_DIR },
                { "peers", required_argument, NULL, ARG_PEERS },
                { "transport", required_argument, NULL, ARG_TRANSPORT },
                {}
        };
        bool keys_set = false, clients_set = false, workers_set = false;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        exit(0);
                case ARG_SECONDS:
                        arg_seconds = strtod(optarg, NULL);
                        if (!(arg_seconds > 0) || arg_seconds > 3600) {
                                fprintf(stderr, "--seconds: need a number of seconds > 0\n");
                                return -EINVAL;
                        }
                        break;
                case ARG_QUICK:
                        arg_quick = true;
                        break;
                case ARG_BROKER:
                        arg_broker = true;
                        break;
                case ARG_NO_REDIS:
                        arg_redis = false;
                        break;
                case ARG_JSON:
                        arg_json = optarg;
                        break;
                case ARG_KEYS:
                        arg_keys = (unsigned) strtoul(optarg, NULL, 10);
                        keys_set = true;
                        break;
                case ARG_SCALE_CLIENTS:
                        arg_scale_clients = (unsigned) strtoul(optarg, NULL, 10);
                        clients_set = true;
                        break;
                case ARG_SCALE_WORKERS:
                        arg_scale_workers = (unsigned) strtoul(optarg, NULL, 10);
                        workers_set = true;
                        break;
                case ARG_ONLY_GET:
                        arg_only_get = true;
                        break;
                case ARG_ONLY_CACHE:
                        arg_only_cache = true;
                        break;
                case ARG_NO_PERSIST:
                        arg_persist = false;
                        break;
                case ARG_NO_HOSTS:
                        arg_hosts = false;
                        break;
                case ARG_ONLY_HOSTS:
                        arg_only_hosts = true;
                        break;
                case ARG_PERSIST_DIR:
                        if (access(optarg, W_OK) < 0) {
                                fprintf(stderr, "--persist-dir=%s: %s\n", optarg, strerror(errno));
                                return -EINVAL;
                        }
                        arg_persist_dir = optarg;
                        break;
                case ARG_PEERS:
                        if (access(optarg, R_OK) < 0) {
                                fprintf(stderr, "--peers=%s: %s\n", optarg, strerror(errno));
                                return -EINVAL;
                        }
                        arg_peers = optarg;
                        break;
                case ARG_TRANSPORT:
                        if (streq(optarg, "bus") || streq(optarg, "socket") || streq(optarg, "both")) {
                                arg_bus = !streq(optarg, "socket");
                                arg_socket = !streq(optarg, "bus");
                        } else {
                                fprintf(stderr, "--transport: bus, socket or both\n");
                                return -EINVAL;
                        }
                        break;
                case ARG_INFLIGHT:
                        arg_inflight = (unsigned) strtoul(optarg, NULL, 10);
                        if (arg_inflight < 1 || arg_inflight > 4096) {
                                fprintf(stderr, "--inflight: 1..4096\n");
                                return -EINVAL;
                        }
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (arg_quick) {
                if (!keys_set)
                        arg_keys = 10000;
                if (!clients_set)
                        arg_scale_clients = 20;
                if (!workers_set)
                        arg_scale_workers = 5;
        }
        return 0;
}

static int setup_store(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int set = 0, r;

        r = ch_store1_call_set(bus, CH_BUS_NAME, NS, "bench:get", append_value_and_options, NULL, &set, &error);
        for (unsigned i = 0; r >= 0 && i < MGET_KEYS; i++) {
                char key[32];
                snprintf(key, sizeof key, "bench:m:%u", i);
                if (!mget_keys[i]) /* the rows across hosts prepare a second store */
                        mget_keys[i] = strdup(key);
                r = ch_store1_call_set(bus, CH_BUS_NAME, NS, key, append_value_and_options, NULL, &set, &error);
        }
        if (r < 0)
                fprintf(stderr, "clusterhub-bench: preparing the store: %s\n", error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        return r;
}

/* Subscriber 0 matches arg0namespace='bench.emit' (events "bench.emit" and "bench.emit.one"), the
 * others arg0='bench.emit': "bench.emit.one" reaches one subscriber, "bench.emit" all of them. */
#define EVENT_ONE "bench.emit.one"
#define EVENT_ALL "bench.emit"

static const char *subscriber_rule(char *buf, size_t size, bool hub, unsigned idx) {
        snprintf(buf, size, "type='signal',path='%s',interface='%s',member='Event',%s='" EVENT_ALL "'",
                 hub ? CH_DEFAULT_NAMESPACE_PATH : BENCH_BASE_PATH, hub ? "org.clusterhub.Events1" : BENCH_BASE_IFACE,
                 idx == 0 ? "arg0namespace" : "arg0");
        return buf;
}

static Helper *start_subscriber(const char *address, bool hub, unsigned idx) {
        char rule[512], arg[600];
        subscriber_rule(rule, sizeof rule, hub, idx);
        snprintf(arg, sizeof arg, "--subscriber=%s", rule);
        const char *args[] = { arg, NULL };
        return helper_start(hub ? "hub subscriber" : "baseline subscriber", address, args);
}

/* ---- persistence: Set and Incr with --data-dir in each --fsync mode, next to Redis's AOF ---------- */

static const char *persist_parent(void) {
        if (arg_persist_dir)
                return arg_persist_dir;
        /* /tmp is a tmpfs on many systems, where a sync costs nothing: /var/tmp is on a disk */
        return access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
}

/* "ext4 on /dev/vda": the file system that holds PATH, the longest mount point that is a prefix
 * of its real path (what findmnt --target says). */
static void describe_fs(const char *path, char *buf, size_t size, bool *ret_in_memory) {
        char real[PATH_MAX], line[2 * PATH_MAX];
        size_t best = 0;
        FILE *f;

        snprintf(buf, size, "unknown file system");
        *ret_in_memory = false;
        if (!realpath(path, real))
                return;
        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return;
        /* id parent major:minor root mount-point options [optional fields] - fstype source options */
        while (fgets(line, sizeof line, f)) {
                char mnt[PATH_MAX], fstype[48], source[200];
                const char *sep = strstr(line, " - ");
                size_t n;
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 || !sep ||
                    sscanf(sep + 3, "%47s %199s", fstype, source) != 2)
                        continue;
                n = strlen(mnt);
                if (!streq(mnt, "/") && (strncmp(real, mnt, n) != 0 || (real[n] != '/' && real[n] != 0)))
                        continue;
                if (n < best)
                        continue; /* equal: a later mount on the same point hides the earlier one */
                best = n;
                snprintf(buf, size, "%s on %s", fstype, source);
                *ret_in_memory = streq(fstype, "tmpfs") || streq(fstype, "ramfs");
        }
        fclose(f);
}

/* The modes, in the order they run; NULL = the same hub without --data-dir. */
static const char *const persist_modes[] = { NULL, "no", "everysec", "always" };
static const char *const redis_aof_modes[] = { "everysec", "always" };

static void persist_row_name(char *buf, size_t size, const char *op, const char *mode) {
        if (mode)
                snprintf(buf, size, "%s, fsync=%s", op, mode);
        else
                snprintf(buf, size, "%s, no data dir", op);
}

static void redis_aof_row_name(char *buf, size_t size, const char *op, const char *appendfsync) {
        snprintf(buf, size, "redis %s aof %s", op, appendfsync);
}

/* One hub with --fsync=MODE on a fresh data dir under PARENT (or without --data-dir): Set and
 * Incr at each concurrency, then a clean stop. */
static int persist_hub_rows(const char *address, const char *parent, const char *mode, const unsigned conc[2]) {
        char dir[PATH_MAX] = "", a_dir[PATH_MAX + 16], a_fsync[32], set_name[64], incr_name[64];
        const char *args[] = { a_dir, a_fsync, NULL };
        ThHub hub = { .proc = TH_PROC_NULL };
        sd_bus *bus = NULL;
        int r;

        persist_row_name(set_name, sizeof set_name, "Set", mode);
        persist_row_name(incr_name, sizeof incr_name, "Incr", mode);
        if (mode) {
                snprintf(dir, sizeof dir, "%s/clusterhub-bench-data-XXXXXX", parent);
                if (!mkdtemp(dir)) {
                        r = -errno;
                        fprintf(stderr, "clusterhub-bench: cannot make a data dir under %s: %s\n", parent, strerror(-r));
                        return r;
                }
                snprintf(a_dir, sizeof a_dir, "--data-dir=%s", dir);
                snprintf(a_fsync, sizeof a_fsync, "--fsync=%s", mode);
        }
        cur_transport = "bus";
        r = th_hub_spawn(&hub, address, mode ? args : NULL);
        if (r >= 0)
                r = th_connect(&bus, address);
        if (r >= 0)
                for (unsigned k = 0; k < 2; k++) {
                        run("persist", set_name, conc[k], bus, start_set);
                        run("persist", incr_name, conc[k], bus, start_incr);
                }
        else
                fprintf(stderr, "clusterhub-bench: cannot start clusterhubd %s%s: %s\n", mode ? a_dir : "", mode ? a_fsync : "",
                        strerror(-r));
        sd_bus_flush_close_unref(bus);
        if (hub.proc.pid > 0) {
                int st = th_hub_stop(&hub);
                if (st != 0) {
                        fprintf(stderr, "clusterhub-bench: the hub with %s did not exit cleanly (status %d)\n",
                                mode ? a_fsync : "no data dir", st);
                        r = -EIO;
                }
        }
        th_hub_clear(&hub);
        if (dir[0])
                (void) rm_rf(dir);
        return r < 0 ? r : 0;
}

/* One redis-server with appendonly yes and APPENDFSYNC, its dir under PARENT. */
static void persist_redis_rows(const char *parent, const char *appendfsync, const unsigned conc[2]) {
        RedisServer rs = { .pid = -1 };
        Redis c = { .fd = -1 };
        char set_name[64], incr_name[64];
        int r;

        cur_transport = "";
        r = redis_start(&rs, parent, appendfsync);
        if (r >= 0)
                r = redis_connect(&c, rs.sock);
        if (r < 0)
                fprintf(stderr, "redis-server with appendonly yes, appendfsync %s not available (%s): its rows skipped\n",
                        appendfsync, strerror(-r));
        else {
                redis_aof_row_name(set_name, sizeof set_name, "SET", appendfsync);
                redis_aof_row_name(incr_name, sizeof incr_name, "INCR", appendfsync);
                for (unsigned k = 0; k < 2; k++) {
                        redis_row(&c, -1, RCMD_SET, set_name, conc[k]);
                        redis_row(&c, -1, RCMD_INCR, incr_name, conc[k]);
                }
        }
        if (c.fd >= 0)
                close(c.fd);
        redis_stop(&rs);
}

/* Each hub gets its own private bus of the same kind (the main hub keeps the main bus's name). */
static int persist_section(ThBusKind kind, const unsigned conc[2]) {
        static const char *const ops[][2] = { { "Set", "SET" }, { "Incr", "INCR" } };
        const char *parent = persist_parent();
        ThBus pbus = { 0 };
        char fs[320];
        bool in_memory;
        int failed = 0;

        describe_fs(parent, fs, sizeof fs, &in_memory);
        snprintf(persist_info, sizeof persist_info,
                 "persistence: a hub per mode on a second private bus, fresh data dirs under %.200s (%s)%s; Redis appendonly yes "
                 "in a dir there too.\nratio: over the same hub without --data-dir; vs_redis: over Redis with the same "
                 "appendfsync (no data dir: over Redis without AOF)",
                 parent, fs, in_memory ? ", IN MEMORY: a sync costs nothing here, use --persist-dir on a disk" : ", a disk");
        fprintf(stderr, "%s\n", persist_info);
        if (!th_bus_start(&pbus, kind)) {
                fprintf(stderr, "clusterhub-bench: cannot start a second bus: %s\n", pbus.skip_reason);
                return -1;
        }
        for (size_t m = 0; m < sizeof persist_modes / sizeof *persist_modes; m++)
                if (persist_hub_rows(pbus.address, parent, persist_modes[m], conc) < 0)
                        failed = 1;
        th_bus_stop(&pbus);
        if (arg_redis)
                for (size_t m = 0; m < sizeof redis_aof_modes / sizeof *redis_aof_modes; m++)
                        persist_redis_rows(parent, redis_aof_modes[m], conc);

        for (size_t o = 0; o < 2; o++)
                for (unsigned k = 0; k < 2; k++) {
                        char off[64], name[64], redis_name[64];
                        Row *r;
                        persist_row_name(off, sizeof off, ops[o][0], NULL);
                        if ((r = row_find_on(off, conc[k], "bus"))) {
                                snprintf(redis_name, sizeof redis_name, "redis %s", ops[o][1]);
                                set_vs_redis(r, redis_name, false);
                        }
                        for (size_t m = 1; m < sizeof persist_modes / sizeof *persist_modes; m++) {
                                persist_row_name(name, sizeof name, ops[o][0], persist_modes[m]);
                                if (!(r = row_find_on(name, conc[k], "bus")))
                                        continue;
                                set_ratio(r, off, conc[k], false, 0);
                                redis_aof_row_name(redis_name, sizeof redis_name, ops[o][1], persist_modes[m]);
                                set_vs_redis(r, redis_name, false);
                        }
                }
        return failed ? -1 : 0;
}

/* ---- transports: the private bus and the hub's private socket --------------------------------------- */

/* Where the bench's clients and helpers connect.  On the bus the hub and the baseline service
 * are two names on one bus; on the socket the hub listens on --listen=PATH and the baseline is
 * served peer-to-peer on a socket of its own (helper_p2p_baseline), both reached the same way
 * (sd_bus_set_bus_client, Hello first, then AddMatch for each match). */
typedef struct Transport {
        const char *name;          /* "bus" or "socket": the rows' transport */
        char address[PATH_MAX + 16];      /* the hub, for helpers */
        char base_address[PATH_MAX + 16]; /* the baseline service, for helpers */
        sd_bus *hub;               /* the bench's connection to the hub */
        sd_bus *base;              /* ... and to the baseline service */
        bool owned;                /* hub and base are this transport's own connections */
} Transport;

/* Poll (synchronous ListWorkers) until the hub lists N workers: a helper's connection closing on
 * the socket is another connection than the bench's, so the hub may see it after our next call. */
static int wait_workers(sd_bus *bus, unsigned n) {
        for (int i = 0; i < 1000; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                unsigned have = 0;
                int r = ch_hub1_call_list_workers(bus, CH_BUS_NAME, CH_HUB_PATH, &reply, &error);
                sd_bus_error_free(&error);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(reply, 'a', "(ssua{sv})");
                while (r >= 0 && (r = sd_bus_message_skip(reply, "(ssua{sv})")) > 0)
                        have++;
                sd_bus_message_unref(reply);
                if (have == n)
                        return 0;
                usleep(10000);
        }
        fprintf(stderr, "clusterhub-bench: the hub still lists other than %u workers after 10 s\n", n);
        return -ETIMEDOUT;
}

/* ---- the Node peers (bench/peers, issue #12) ------------------------------------------------------- */

static char node_path[PATH_MAX];
static char peer_versions[3][72]; /* "clusterhub 1.1.0", ... in the order first seen */
static char node_version[32];

static bool find_node(void) {
        const char *env = getenv("NODE"), *path = getenv("PATH");
        if (env && env[0]) {
                snprintf(node_path, sizeof node_path, "%s", env);
                return access(node_path, X_OK) == 0;
        }
        for (const char *p = path ?: "/usr/local/bin:/usr/bin:/bin"; p && *p;) {
                const char *e = strchr(p, ':');
                size_t n = e ? (size_t) (e - p) : strlen(p);
                if (n > 0 && n < sizeof node_path - 6) {
                        snprintf(node_path, sizeof node_path, "%.*s/node", (int) n, p);
                        if (access(node_path, X_OK) == 0)
                                return true;
                }
                p = e ? e + 1 : NULL;
        }
        node_path[0] = 0;
        return false;
}

/* A number (or NAN for null or a missing key) from the peer scripts' flat JSON line. */
static double json_get_num(const char *json, const char *key) {
        char pat[64], *end;
        const char *p;
        double v;
        snprintf(pat, sizeof pat, "\"%s\":", key);
        if (!(p = strstr(json, pat)))
                return NAN;
        p += strlen(pat);
        v = strtod(p, &end);
        return end == p ? NAN : v;
}

static void json_get_str(const char *json, const char *key, char *buf, size_t size) {
        char pat[64];
        const char *p, *e;
        buf[0] = 0;
        snprintf(pat, sizeof pat, "\"%s\":\"", key);
        if (!(p = strstr(json, pat)))
                return;
        p += strlen(pat);
        for (e = p; *e && *e != '"'; e++)
                if (*e == '\\' && e[1])
                        e++;
        snprintf(buf, size, "%.*s", (int) (e - p), p);
}

static void note_peer_version(const char *peer, const char *version) {
        char v[72];
        snprintf(v, sizeof v, "%.31s %.31s", peer, version);
        for (size_t i = 0; i < 3; i++) {
                if (streq(peer_versions[i], v))
                        return;
                if (!peer_versions[i][0]) {
                        snprintf(peer_versions[i], sizeof peer_versions[i], "%s", v);
                        return;
                }
        }
}

/* Run `node DIR/SCRIPT OP INFLIGHT SECONDS` (a cluster master and its workers) and make its
 * JSON line a row of group "peers". */
static Row *peer_row(const char *script, const char *op, const char *name, unsigned inflight) {
        Row *r = row_new("peers", name, inflight);
        char path[PATH_MAX], a_infl[16], a_secs[32], out[4096], peer[32], version[32];
        const char *argv[] = { node_path, path, op, a_infl, a_secs, NULL };
        ThProc proc = TH_PROC_NULL;
        size_t len = 0;
        int pfd[2], status = 0;
        uint64_t deadline;

        snprintf(path, sizeof path, "%s/%s", arg_peers, script);
        snprintf(a_infl, sizeof a_infl, "%u", inflight);
        snprintf(a_secs, sizeof a_secs, "%g", arg_seconds);
        fprintf(stderr, "  %-30s %-6s x%-3u ...", name, "", inflight);
        if (pipe2(pfd, O_CLOEXEC) < 0) {
                row_error(r, "pipe: %s", strerror(errno));
                goto done;
        }
        pid_t pid = th_spawn(&proc, argv, NULL, pfd[1], -1);
        close(pfd[1]);
        if (pid < 0) {
                close(pfd[0]);
                th_proc_clear(&proc);
                row_error(r, "cannot run %s %s: %s", node_path, path, strerror((int) -pid));
                goto done;
        }
        deadline = now_ns() + (uint64_t) ((arg_seconds + 90) * 1e9);
        for (;;) {
                struct pollfd p = { .fd = pfd[0], .events = POLLIN };
                uint64_t now = now_ns();
                if (now >= deadline || poll(&p, 1, (int) ((deadline - now) / 1000000) + 1) <= 0)
                        break;
                ssize_t n = read(pfd[0], out + len, sizeof out - 1 - len);
                if (n <= 0)
                        break;
                len += (size_t) n;
                if (len == sizeof out - 1)
                        break;
        }
        out[len] = 0;
        close(pfd[0]);
        if (!th_proc_wait(&proc, 10000, &status))
                status = th_proc_stop(&proc, SIGKILL, 5000);
        th_proc_clear(&proc);
        status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);

        r->ops = (uint64_t) fmax(0, json_get_num(out, "ops"));
        r->rate = json_get_num(out, "ops_per_sec");
        r->seconds = json_get_num(out, "seconds");
        r->p50_us = json_get_num(out, "p50_us");
        r->p99_us = json_get_num(out, "p99_us");
        r->deliveries = json_get_num(out, "deliveries_per_sec");
        double errors = json_get_num(out, "errors");
        if (isnan(r->rate) || isnan(r->seconds) || isnan(errors)) {
                r->rate = r->seconds = 0;
                row_error(r, "no result from %s %s (exit status %d)", script, op, status);
        } else if (errors > 0 || status != 0) {
                char note[128];
                json_get_str(out, "note", note, sizeof note);
                row_error(r, "%s %s: %s (exit status %d)", script, op, note[0] ? note : "failed", status);
        }
        /* null (no latency for the emit window, no deliveries elsewhere) prints as "-" */
        r->p50_us = isnan(r->p50_us) ? 0 : r->p50_us;
        r->p99_us = isnan(r->p99_us) ? 0 : r->p99_us;
        r->deliveries = isnan(r->deliveries) ? 0 : r->deliveries;
        json_get_str(out, "peer", peer, sizeof peer);
        json_get_str(out, "version", version, sizeof version);
        if (peer[0] && version[0])
                note_peer_version(peer, version);
        if (!node_version[0])
                json_get_str(out, "node", node_version, sizeof node_version);
done:
        fprintf(stderr, " %10.0f/s%s%s\n", r->rate, r->note[0] ? "  " : "", r->note);
        return r;
}

/* Run NAME on each transport into H[] (the hub rows of a comparison). */
static void run_each(Transport *ts, unsigned n_ts, Row **h, const char *name, unsigned c, start_fn start) {
        for (unsigned t = 0; t < n_ts; t++) {
                cur_transport = ts[t].name;
                h[t] = run("peers", name, c, ts[t].hub, start);
        }
        cur_transport = "";
}

static void ratios_each(Row **h, unsigned n_ts, const char *base, unsigned c, bool by_deliveries, double target) {
        for (unsigned t = 0; t < n_ts; t++)
                set_ratio(h[t], base, c, by_deliveries, target);
}

/* Request rows on each transport, each with a worker on that transport only (a request goes to
 * any worker serving the method: one on the other transport would mix the two). */
static int run_each_request(Transport *ts, unsigned n_ts, Row **h, unsigned c) {
        for (unsigned t = 0; t < n_ts; t++) {
                Helper *w = helper_start("worker bench_w1", ts[t].address,
                                         (const char *[]) { "--worker=bench_w1", "echo1", NULL });
                if (!w)
                        return -1;
                request_method = "echo1";
                cur_transport = ts[t].name;
                h[t] = run("peers", "hub Request 1 worker", c, ts[t].hub, start_request);
                cur_transport = "";
                helper_stop(w);
                if (wait_workers(ts[t].hub, 0) < 0)
                        return -1;
        }
        return 0;
}

/* The hub rows (on each transport), then the peer row they are compared with, right after them
 * (same minute, same load).  Each peer runs as it is used: a Node cluster master and a worker
 * that calls it. */
static int peers_section(Transport *ts, unsigned n_ts, unsigned N) {
        char nm[PATH_MAX];
        const unsigned kv[2] = { 1, 100 }, conc[2] = { 1, N };
        Row *h[2], *ack[2];

        if (!find_node()) {
                snprintf(peers_info, sizeof peers_info, "Node peers: skipped, node not found (%s)",
                         getenv("NODE") ? "$NODE is not executable" : "not in $PATH, $NODE unset");
                fprintf(stderr, "%s\n", peers_info);
                return 0;
        }
        snprintf(nm, sizeof nm, "%s/node_modules", arg_peers);
        if (access(nm, R_OK) < 0) {
                snprintf(peers_info, sizeof peers_info,
                         "Node peers: skipped, %.300s is missing (./scripts/run-bench --peers installs it with npm ci)", nm);
                fprintf(stderr, "%s\n", peers_info);
                return 0;
        }
        fprintf(stderr, "peers: %s with %s\n", node_path, arg_peers);

        for (unsigned k = 0; k < 2; k++) {
                unsigned c = kv[k];
                run_each(ts, n_ts, h, "hub Get", c, start_get);
                peer_row("clusterhub.js", "get", "node clusterhub get", c);
                ratios_each(h, n_ts, "node clusterhub get", c, false, c == 1 ? 1.1 : 1.0);
                run_each(ts, n_ts, h, "hub Set", c, start_set);
                peer_row("clusterhub.js", "set", "node clusterhub set", c);
                ratios_each(h, n_ts, "node clusterhub set", c, false, c == 1 ? 1.1 : 1.0);
        }

        /* clusterhub's emit has no acknowledgement: the fair hub row is the fire-and-forget one
         * (16 batches of EMIT_BATCH, as many emits in flight as the peer's window); the
         * acknowledged Emit at N in flight is shown next to it without a target */
        snprintf(emit_event, sizeof emit_event, EVENT_ONE);
        for (unsigned t = 0; t < n_ts; t++) {
                Helper *sub = start_subscriber(ts[t].address, true, 0);
                if (!sub)
                        return -1;
                cur_transport = ts[t].name;
                ack[t] = run_signal_row("peers", "hub Emit 1 sub", N, ts[t].hub, start_emit, &sub, 1, 1);
                h[t] = run_signal_row("peers", "hub Emit 1 sub no-reply", 16, ts[t].hub, start_emit_noreply, &sub, 1, 1);
                cur_transport = "";
                helper_stop(sub);
        }
        peer_row("clusterhub.js", "emit", "node clusterhub emit 1 sub", 16 * EMIT_BATCH);
        ratios_each(ack, n_ts, "node clusterhub emit 1 sub", 16 * EMIT_BATCH, true, 0);
        ratios_each(h, n_ts, "node clusterhub emit 1 sub", 16 * EMIT_BATCH, true, 1.0);

        for (unsigned k = 0; k < 2; k++) {
                unsigned c = conc[k];
                if (run_each_request(ts, n_ts, h, c) < 0)
                        return -1;
                peer_row("cluster-hub.js", "request", "node cluster-hub requestMaster", c);
                ratios_each(h, n_ts, "node cluster-hub requestMaster", c, false, 1.0);
                if (run_each_request(ts, n_ts, h, c) < 0)
                        return -1;
                peer_row("clusterphone.js", "send", "node clusterphone ack send", c);
                ratios_each(h, n_ts, "node clusterphone ack send", c, false, 1.0);
        }

        for (unsigned k = 0; k < 2; k++) {
                unsigned c = conc[k];
                run_each(ts, n_ts, h, "hub Lock+Unlock", c, start_lock);
                peer_row("cluster-hub.js", "lock", "node cluster-hub lock+unlock", c);
                ratios_each(h, n_ts, "node cluster-hub lock+unlock", c, false, 1.5);
        }

        char versions[3 * 72 + 8] = "";
        for (size_t i = 0; i < 3 && peer_versions[i][0]; i++)
                snprintf(versions + strlen(versions), sizeof versions - strlen(versions), ", %s", peer_versions[i]);
        snprintf(peers_info, sizeof peers_info,
                 "Node peers (%.200s): node %s%s; each a Node cluster master + worker (emit: + a subscriber worker).\n"
                 "ratio: the hub row over the Node row under it, run right after it",
                 arg_peers, node_version[0] ? node_version : "?", versions);
        return 0;
}

/* The baseline rows and every hub row on transport T. */
static int transport_rows(Transport *t, unsigned N) {
        Helper *bsubs[4], *hsubs[4];
        unsigned max_subs = arg_quick ? 1 : 4;
        unsigned conc[2] = { 1, N };

        cur_transport = t->name;
        /* baseline: method calls and signals */
        fprintf(stderr, "baseline (%s)\n", t->name);
        run("baseline", "baseline Ping", 1, t->base, start_ping);
        run("baseline", "baseline Ping", N, t->base, start_ping);
        for (unsigned i = 0; i < max_subs && !arg_only_get; i++)
                if (!(bsubs[i] = start_subscriber(t->base_address, false, i)))
                        return -1;
        if (!arg_only_get) {
                snprintf(emit_event, sizeof emit_event, EVENT_ONE);
                run_signal_row("baseline", "baseline signal 1 sub", 2, t->base, start_blast, bsubs, 1, 1);
                snprintf(emit_event, sizeof emit_event, EVENT_ALL);
                if (!arg_quick)
                        run_signal_row("baseline", "baseline signal 4 subs", 2, t->base, start_blast, bsubs, 4, 4);
                for (unsigned i = 0; i < max_subs; i++)
                        helper_stop(bsubs[i]);
        }

        /* the hub */
        fprintf(stderr, "hub (%s)\n", t->name);
        if (arg_only_get) {
                /* for profiling the hub (callgrind): Get rows only */
                for (unsigned k = 0; k < 2; k++)
                        set_ratio(run("hub", "Get", conc[k], t->hub, start_get), "baseline Ping", conc[k], false, 0.85);
                cur_transport = "";
                return 0;
        }
        for (unsigned k = 0; k < 2; k++) {
                unsigned c = conc[k];
                set_ratio(run("hub", "Get", c, t->hub, start_get), "baseline Ping", c, false, 0.85);
                set_ratio(run("hub", "Set", c, t->hub, start_set), "baseline Ping", c, false, 0.85);
                rows[n_rows - 1].expect_counter = 0;
                set_ratio(run("hub", "Incr", c, t->hub, start_incr), "baseline Ping", c, false, 0.85);
                if (!arg_quick)
                        set_ratio(run("hub", "MGet 100 keys", c, t->hub, start_mget), "baseline Ping", c, false, 0);
        }
        for (unsigned i = 0; i < max_subs; i++)
                if (!(hsubs[i] = start_subscriber(t->address, true, i)))
                        return -1;
        for (unsigned k = 0; k < 2; k++) {
                unsigned c = conc[k];
                snprintf(emit_event, sizeof emit_event, EVENT_ONE);
                set_ratio(run_signal_row("hub", "Emit 1 sub", c, t->hub, start_emit, hsubs, 1, 1), "baseline signal 1 sub", 2,
                          true, c == 1 ? 0 : 0.5);
                snprintf(emit_event, sizeof emit_event, EVENT_ALL);
                if (!arg_quick)
                        set_ratio(run_signal_row("hub", "Emit 4 subs", c, t->hub, start_emit, hsubs, 4, 4),
                                  "baseline signal 4 subs", 2, true, c == 1 ? 0 : 0.5);
        }
        /* the same without acknowledgements: the fair comparison with a bare signal */
        snprintf(emit_event, sizeof emit_event, EVENT_ONE);
        set_ratio(run_signal_row("hub", "Emit 1 sub no-reply", 16, t->hub, start_emit_noreply, hsubs, 1, 1),
                  "baseline signal 1 sub", 2, true, 0.5);
        if (!arg_quick) {
                snprintf(emit_event, sizeof emit_event, EVENT_ALL);
                set_ratio(run_signal_row("hub", "Emit 4 subs no-reply", 16, t->hub, start_emit_noreply, hsubs, 4, 4),
                          "baseline signal 4 subs", 2, true, 0.5);
        }
        for (unsigned i = 0; i < max_subs; i++)
                helper_stop(hsubs[i]);

        Helper *w1 = helper_start("worker bench_w1", t->address,
                                  (const char *[]) { "--worker=bench_w1", "echo1", "echo2", NULL });
        Helper *w2 = arg_quick || !w1 ? w1 : helper_start("worker bench_w2", t->address,
                                                          (const char *[]) { "--worker=bench_w2", "echo2", NULL });
        if (!w1 || !w2)
                return -1;
        for (unsigned k = 0; k < 2; k++) {
                unsigned c = conc[k];
                request_method = "echo1";
                set_ratio(run("hub", "Request 1 worker", c, t->hub, start_request), "baseline Ping", c, false, 0.45);
                if (!arg_quick) {
                        request_method = "echo2";
                        set_ratio(run("hub", "Request 2 workers", c, t->hub, start_request), "baseline Ping", c, false, 0.45);
                }
        }
        helper_stop(w1);
        if (w2 != w1)
                helper_stop(w2);
        if (wait_workers(t->hub, 0) < 0)
                return -1;
        for (unsigned k = 0; k < 2; k++)
                set_ratio(run("hub", "Lock+Unlock", conc[k], t->hub, start_lock), "baseline Ping", conc[k], false, 0.45);
        for (unsigned k = 0; k < 2; k++)
                set_ratio(run("hub", "RPush+BLPop hand-off", conc[k], t->hub, start_queue), "baseline Ping", conc[k], false, 0);
        cur_transport = "";
        return 0;
}

/* Many subscribed clients and registered workers connected on transport T, then Emit to one of
 * them, Get, GetStats and ListWorkers. */
static int scale_rows(Transport *t, unsigned N) {
        unsigned conc[2] = { 1, N };
        Helper *sc[4], *workers = NULL;
        unsigned n_sc = 0, per = (arg_scale_clients + 3) / 4;
        bool ok = true;
        int r;

        fprintf(stderr, "scale (%s): %u subscribed clients, %u workers\n", t->name, arg_scale_clients, arg_scale_workers);
        cur_transport = t->name;
        for (unsigned first = 0; first < arg_scale_clients && ok; first += per) {
                char a1[64], a2[64];
                unsigned cnt = arg_scale_clients - first < per ? arg_scale_clients - first : per;
                snprintf(a1, sizeof a1, "--scale-clients-helper=%u", cnt);
                snprintf(a2, sizeof a2, "--first=%u", first);
                sc[n_sc] = helper_start("scale clients", t->address, (const char *[]) { a1, a2, NULL });
                ok = sc[n_sc++] != NULL;
        }
        if (ok && arg_scale_workers > 0) {
                char a1[64];
                snprintf(a1, sizeof a1, "--scale-workers-helper=%u", arg_scale_workers);
                workers = helper_start("scale workers", t->address, (const char *[]) { a1, "--first=0", NULL });
                ok = workers != NULL;
        }
        if (!ok) {
                for (unsigned i = 0; i < n_sc; i++)
                        if (sc[i])
                                helper_stop(sc[i]);
                return -1;
        }
        expect_workers = arg_scale_workers;
        emit_rotate = arg_scale_clients;
        if (emit_rotate > 0)
                for (unsigned k = 0; k < 2; k++) {
                        char name[64];
                        snprintf(name, sizeof name, "scale Emit (1 of %u subs)", arg_scale_clients);
                        set_ratio(run_signal_row("scale", name, conc[k], t->hub, start_emit, sc, n_sc, 1), "Emit 1 sub",
                                  conc[k], true, 0);
                }
        emit_rotate = 0;
        for (unsigned k = 0; k < 2; k++) {
                set_ratio(run("scale", "scale Get", conc[k], t->hub, start_get), "Get", conc[k], false, 0);
                set_ratio(run("scale", "scale GetStats", conc[k], t->hub, start_get_stats), "baseline Ping", conc[k], false, 0);
                set_ratio(run("scale", "scale ListWorkers", conc[k], t->hub, start_list_workers), "baseline Ping", conc[k],
                          false, 0);
        }
        /* its own helpers only: the other transport's baseline service keeps running */
        for (unsigned i = 0; i < n_sc; i++)
                helper_stop(sc[i]);
        if (workers)
                helper_stop(workers);
        cur_transport = "";
        /* the next transport's ListWorkers expects its own workers only */
        r = wait_workers(t->hub, 0);
        return r < 0 ? r : 0;
}

/* ---- the client-side cache (issue #13) --------------------------------------------------- */

#define CACHE_WRITER_RATE 1000 /* writes per second, the target's */
#define CACHE_WRITTEN_KEY "bench:cached"

static int append_int_and_options(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_append(m, "v", "x", *(int64_t *) userdata);
        return r < 0 ? r : sd_bus_message_append(m, "a{sv}", 0);
}

typedef enum CacheRead {
        CACHE_READ_STRING,              /* ch_cache_get_string() */
        CACHE_READ_MESSAGE,             /* ch_cache_get() and sd_bus_message_read(m, "v", "s", ...) */
        CACHE_READ_INT64,               /* ch_cache_get_int64(): the paced writer's integers */
} CacheRead;

static int cache_read_one(ChCache *cache, const char *key, CacheRead how, const char **ret_str, int64_t *ret_int) {
        sd_bus_message *m = NULL;
        int q;

        switch (how) {
        case CACHE_READ_STRING:
                return ch_cache_get_string(cache, key, ret_str);
        case CACHE_READ_INT64:
                return ch_cache_get_int64(cache, key, ret_int);
        default:
                q = ch_cache_get(cache, key, &m);
                if (q >= 0)
                        q = sd_bus_message_read(m, "v", "s", ret_str);
                sd_bus_message_unref(m);
                return q;
        }
}

/* Cached Gets of KEY in a loop, 1 in flight, through libclusterhub's ChCache; the client's loop
 * runs every 256 reads (dispatching the Invalidate signals).  With the paced writer's integers
 * (CACHE_READ_INT64), a value must never go back. */
static Row *cache_row(const char *name, ChCache *cache, ChClient *c, const char *key, CacheRead how, Helper *writer) {
        Row *r = row_new("cache", name, 1);
        ChCacheStats s0 = {}, s1;
        uint64_t w0 = 0, t0, end = 0, warm, next_lat = 0;
        int64_t last = INT64_MIN;

        fprintf(stderr, "  %-30s %-6s x%-3u ...", name, cur_transport, 1u);
        warm = (uint64_t) (arg_seconds * 0.1e9);
        t0 = now_ns();
        for (bool warming = true;;) {
                uint64_t now = now_ns();
                if (warming && now >= t0 + warm) {
                        warming = false;
                        (void) ch_cache_get_stats(cache, &s0);
                        w0 = writer ? helper_count(writer) : 0;
                        r->ops = 0;
                        t0 = now;
                        end = now + (uint64_t) (arg_seconds * 1e9);
                } else if (!warming && now >= end)
                        break;
                for (unsigned i = 0; i < 256; i++) {
                        bool sample = !warming && r->ops == next_lat;
                        uint64_t a = sample ? now_ns() : 0;
                        const char *str = NULL;
                        int64_t v = 0;
                        int q = cache_read_one(cache, key, how, &str, &v);
                        if (sample) {
                                lat_push(r, now_ns() - a);
                                next_lat += 61;
                        }
                        if (q < 0) {
                                row_error(r, "cached Get: %s", strerror(-q));
                                goto done;
                        }
                        if (how == CACHE_READ_INT64 ? v < last : !streq(str, BENCH_VALUE)) {
                                row_error(r, "cached Get returned %" PRId64 " after %" PRId64, v, last);
                                goto done;
                        }
                        last = v;
                        r->ops++;
                }
                if (ch_client_process(c, 0) < 0) {
                        row_error(r, "the client's loop failed");
                        goto done;
                }
        }
        r->seconds = (now_ns() - t0) / 1e9;
        r->rate = r->ops / r->seconds;
        (void) ch_cache_get_stats(cache, &s1);
        {
                uint64_t hits = s1.hits - s0.hits, misses = s1.misses - s0.misses;
                double writes = writer ? (helper_count(writer) - w0) / r->seconds : 0;
                int n = snprintf(r->note, sizeof r->note, "hit ratio %.4f (%" PRIu64 " misses)",
                                 hits + misses ? (double) hits / (hits + misses) : 0.0, misses);
                if (writer && n > 0)
                        snprintf(r->note + n, sizeof r->note - n, ", writer %.0f writes/s acknowledged", writes);
        }
done:
        row_finish_stats(r);
        fprintf(stderr, " %10.0f/s  %s\n", r->rate, r->note);
        return r;
}

/* The cached Get rows of transport T: the key alone, then with a paced writer of it on another
 * connection.  Compared with Redis GET at 1 in flight (which runs first). */
static int cache_rows(Transport *t, const char *bus_address, const char *hub_socket) {
        ChClientOptions o = {
                .address = bus_address,
                .transport = streq(t->name, "socket") ? CH_TRANSPORT_PRIVATE : CH_TRANSPORT_BUS,
                .private_socket = streq(t->name, "socket") ? hub_socket : NULL,
        };
        ChClient *c = NULL;
        ChCache *cache = NULL;
        Helper *writer;
        char rate[32];
        Row *r;
        int q;

        cur_transport = t->name;
        q = ch_client_new(&c, &o);
        if (q >= 0)
                q = ch_cache_new(c, NULL, &(ChCacheOptions) { .max_age_usec = UINT64_MAX }, &cache);
        if (q < 0) {
                r = row_new("cache", "cached Get", 1);
                if (q == -EOPNOTSUPP || q == -EBADR) {
                        r->skipped = true;
                        snprintf(r->note, sizeof r->note, "skipped: the hub does not track (%s)", strerror(-q));
                } else
                        row_error(r, "ch_cache_new: %s", strerror(-q));
                ch_client_free(c);
                cur_transport = "";
                return r->skipped ? 0 : -1;
        }
        r = cache_row("cached Get", cache, c, "bench:get", CACHE_READ_STRING, NULL);
        set_ratio(r, "redis GET", 1, false, 100);
        set_vs_redis(r, "redis GET", false);
        r = cache_row("cached Get (message)", cache, c, "bench:get", CACHE_READ_MESSAGE, NULL);
        set_ratio(r, "redis GET", 1, false, 0);
        set_vs_redis(r, "redis GET", false);

        /* the writer's key holds 0 until its first write */
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                int64_t zero = 0;
                int set = 0;
                q = ch_store1_call_set(t->hub, CH_BUS_NAME, NS, CACHE_WRITTEN_KEY, append_int_and_options, &zero, &set, &e);
                sd_bus_error_free(&e);
                if (q < 0) {
                        row_error(row_new("cache", "cached Get, writer 1000/s", 1), "Set: %s", strerror(-q));
                        ch_cache_free(cache);
                        ch_client_free(c);
                        cur_transport = "";
                        return -1;
                }
        }
        snprintf(rate, sizeof rate, "--paced-writer=%u", CACHE_WRITER_RATE);
        writer = helper_start("paced writer", t->address, (const char *[]) { rate, "--key=" CACHE_WRITTEN_KEY, NULL });
        if (!writer) {
                ch_cache_free(cache);
                ch_client_free(c);
                cur_transport = "";
                return -1;
        }
        r = cache_row("cached Get, writer 1000/s", cache, c, CACHE_WRITTEN_KEY, CACHE_READ_INT64, writer);
        set_ratio(r, "redis GET", 1, false, 20);
        set_vs_redis(r, "redis GET", false);
        helper_stop(writer);
        ch_cache_free(cache);
        ch_client_free(c);
        cur_transport = "";
        return 0;
}

/* ---- across hosts: two hubs on two private buses sharing one Redis (issue #15) ---------------------- */

/* One "host": a private bus and a hub on it with --redis, and the bench's connection to it. */
typedef struct HostSide {
        ThBus bus;
        ThHub hub;
        sd_bus *conn;
} HostSide;

static int host_start(HostSide *s, ThBusKind kind, const char *redis_sock, const char *node) {
        char a_redis[PATH_MAX + 16], a_node[64];
        const char *args[] = { a_redis, a_node, "--no-listen", NULL };
        int r;

        snprintf(a_redis, sizeof a_redis, "--redis=unix:%s", redis_sock);
        snprintf(a_node, sizeof a_node, "--node-name=%s", node);
        if (!th_bus_start(&s->bus, kind)) {
                fprintf(stderr, "clusterhub-bench: cannot start a bus for host %s: %s\n", node, s->bus.skip_reason);
                return -EIO;
        }
        r = th_hub_spawn(&s->hub, s->bus.address, args);
        if (r >= 0)
                r = th_connect(&s->conn, s->bus.address);
        if (r < 0)
                fprintf(stderr, "clusterhub-bench: cannot start the hub of host %s: %s\n", node, strerror(-r));
        return r;
}

static int host_stop(HostSide *s) {
        int r = 0;

        s->conn = sd_bus_flush_close_unref(s->conn);
        if (s->hub.proc.pid > 0 && th_hub_stop(&s->hub) != 0) {
                fprintf(stderr, "clusterhub-bench: a hub with --redis did not exit cleanly\n");
                r = -EIO;
        }
        th_hub_clear(&s->hub);
        th_bus_stop(&s->bus);
        return r;
}

/* Retries CALL (a synchronous call on BUS that returns < 0 while the hubs are still linking up:
 * BackendUnavailable, NoHandler, ...) for up to 20 s. */
static int host_wait(const char *what, int (*call)(sd_bus *bus), sd_bus *bus) {
        uint64_t end = now_ns() + 20 * 1000000000ULL;
        int r;

        while ((r = call(bus)) < 0) {
                if (now_ns() > end) {
                        fprintf(stderr, "clusterhub-bench: %s never worked across hosts: %s\n", what, strerror(-r));
                        return r;
                }
                usleep(20 * 1000);
        }
        return 0;
}

static int host_get_ok(sd_bus *bus) {
        sd_bus_message *reply = NULL;
        const char *v = NULL;
        int r = sd_bus_call_method(bus, CH_BUS_NAME, NS, "org.clusterhub.Store1", "Get", NULL, &reply, "s", "bench:get");
        if (r >= 0)
                r = sd_bus_message_read(reply, "v", "s", &v);
        if (r >= 0)
                r = streq_ptr(v, BENCH_VALUE) ? 0 : -ENOKEY;
        sd_bus_message_unref(reply);
        return r;
}

static int host_request_ok(sd_bus *bus) {
        return sd_bus_call_method(bus, CH_BUS_NAME, NS, "org.clusterhub.Requests1", "Request", NULL, NULL, "ssva{sv}", "",
                                  "echo1", "s", BENCH_PAYLOAD, 0);
}

/* Rows "hosts ...": every call on hub a, what it needs on host b.  Get and Set go to Redis
 * through hub a (the value was written through hub b); Emit on a reaches a subscriber on b's
 * bus; Request on a is served by a worker on b's bus.  ratio: over the same row on one hub (bus);
 * vs_redis: over the direct Redis row of the same run. */
static int hosts_section(ThBusKind kind, const unsigned conc[2]) {
        RedisServer rs = { .pid = -1 };
        HostSide a = { .hub.proc = TH_PROC_NULL }, b = { .hub.proc = TH_PROC_NULL };
        Helper *sub = NULL, *worker = NULL;
        int r;

        fprintf(stderr, "hosts (two hubs, two buses, one Redis)\n");
        r = redis_start(&rs, "/tmp", NULL);
        if (r < 0) {
                fprintf(stderr, "redis-server not available (%s): the rows across hosts skipped\n", strerror(-r));
                return 0;
        }
        if ((r = host_start(&a, kind, rs.sock, "a")) < 0 || (r = host_start(&b, kind, rs.sock, "b")) < 0)
                goto finish;
        /* the value written through b, read through a: the store crosses */
        if ((r = host_wait("Set", setup_store, b.conn)) < 0 || (r = host_wait("Get", host_get_ok, a.conn)) < 0)
                goto finish;
        cur_transport = "bus";
        for (unsigned k = 0; k < 2; k++) {
                set_ratio(run("hosts", "hosts Get", conc[k], a.conn, start_get), "Get", conc[k], false, 0);
                set_vs_redis(&rows[n_rows - 1], "redis GET", false);
                set_ratio(run("hosts", "hosts Set", conc[k], a.conn, start_set), "Set", conc[k], false, 0);
                set_vs_redis(&rows[n_rows - 1], "redis SET", false);
        }
        if (!(sub = start_subscriber(b.bus.address, true, 0))) {
                r = -EIO;
                goto finish;
        }
        snprintf(emit_event, sizeof emit_event, EVENT_ONE);
        for (unsigned k = 0; k < 2; k++) {
                Row *row = run_signal_row("hosts", "hosts Emit 1 sub", conc[k], a.conn, start_emit, &sub, 1, 1);
                set_ratio(row, "Emit 1 sub", conc[k], true, 0);
                set_vs_redis(row, "redis PUBLISH 1 sub", true);
        }
        helper_stop(sub);
        sub = NULL;
        if (!(worker = helper_start("worker bench_w1 on host b", b.bus.address,
                                    (const char *[]) { "--worker=bench_w1", "echo1", NULL }))) {
                r = -EIO;
                goto finish;
        }
        if ((r = host_wait("Request", host_request_ok, a.conn)) < 0)
                goto finish;
        request_method = "echo1";
        for (unsigned k = 0; k < 2; k++)
                set_ratio(run("hosts", "hosts Request 1 worker", conc[k], a.conn, start_request), "Request 1 worker", conc[k],
                          false, 0);
finish:
        cur_transport = "";
        if (sub)
                helper_stop(sub);
        if (worker)
                helper_stop(worker);
        if (host_stop(&a) < 0 || host_stop(&b) < 0)
                r = -EIO;
        redis_stop(&rs);
        return r < 0 ? r : 0;
}

static void read_loadavg(char *buf, size_t size) {
        FILE *f = fopen("/proc/loadavg", "re");
        double a = 0, b = 0, c = 0;
        if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
                snprintf(buf, size, "%.2f %.2f %.2f", a, b, c);
        else
                snprintf(buf, size, "?");
        if (f)
                fclose(f);
}

int main(int argc, char **argv) {
        ThBus busd = { 0 };
        ThHub hub = { .proc = TH_PROC_NULL };
        RedisServer rs = { .pid = -1 };
        Redis rc = { .fd = -1 }, rsub = { .fd = -1 };
        sd_bus *bus = NULL;
        Transport ts[2] = {};
        unsigned N, n_ts = 0;
        char sock_dir[] = "/tmp/clusterhub-bench-sock-XXXXXX", hub_sock[PATH_MAX], base_sock[PATH_MAX];
        char listen_arg[PATH_MAX + 16];
        const char *hub_args[] = { listen_arg, NULL };
        int r, failed = 0;

        for (int i = 1; i < argc; i++)
                if (strncmp(argv[i], "--address=", 10) == 0)
                        return helper_main(argc, argv);

        if (parse_args(argc, argv) < 0)
                return 2;
        N = arg_inflight;
        ssize_t l = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
        if (l <= 0)
                return 1;
        self_exe[l] = 0;
        signal(SIGPIPE, SIG_IGN);
        setvbuf(stderr, NULL, _IONBF, 0);
        read_loadavg(loadavg_start, sizeof loadavg_start);

        if (!th_bus_start(&busd, arg_broker ? TH_BUS_BROKER : TH_BUS_DBUS_DAEMON)) {
                fprintf(stderr, "clusterhub-bench: cannot start the bus: %s\n", busd.skip_reason);
                return 1;
        }
        /* the hub listens on a private socket too (the socket rows): --listen=<tempdir>/private */
        if (arg_socket) {
                if (!mkdtemp(sock_dir)) {
                        fprintf(stderr, "clusterhub-bench: mkdtemp: %s\n", strerror(errno));
                        sock_dir[0] = 0;
                        failed = 1;
                        goto finish;
                }
                snprintf(hub_sock, sizeof hub_sock, "%s/private", sock_dir);
                snprintf(base_sock, sizeof base_sock, "%s/baseline", sock_dir);
                snprintf(listen_arg, sizeof listen_arg, "--listen=%s", hub_sock);
        } else
                sock_dir[0] = 0;
        r = th_hub_spawn(&hub, busd.address, arg_socket ? hub_args : NULL);
        if (r < 0) {
                fprintf(stderr, "clusterhub-bench: cannot start clusterhubd: %s\n", strerror(-r));
                failed = 1;
                goto finish;
        }
        fprintf(stderr, "clusterhub-bench: %s at %s, hub pid %d, %g s per row\n",
                th_bus_kind_to_string(busd.kind), busd.address, (int) hub.proc.pid, arg_seconds);
        if ((r = th_connect(&bus, busd.address)) < 0) {
                fprintf(stderr, "clusterhub-bench: connect: %s\n", strerror(-r));
                failed = 1;
                goto finish;
        }
        sd_bus_error_add_map(ch_error_map);
        if (setup_store(bus) < 0) {
                failed = 1;
                goto finish;
        }
        if (arg_bus) {
                Transport *t = &ts[n_ts++];
                t->name = "bus";
                snprintf(t->address, sizeof t->address, "%s", busd.address);
                snprintf(t->base_address, sizeof t->base_address, "%s", busd.address);
                t->hub = t->base = bus;
                if (!helper_start("baseline service", busd.address, (const char *[]) { "--baseline-service", NULL })) {
                        failed = 1;
                        goto finish;
                }
        }
        if (arg_socket) {
                Transport *t = &ts[n_ts++];
                t->name = "socket";
                t->owned = true;
                snprintf(t->address, sizeof t->address, "unix:path=%s", hub_sock);
                snprintf(t->base_address, sizeof t->base_address, "unix:path=%s", base_sock);
                if (!helper_start("baseline service (peer-to-peer)", base_sock, (const char *[]) { "--p2p-baseline", NULL }) ||
                    (r = th_connect_socket(&t->hub, hub_sock)) < 0 || (r = th_connect_socket(&t->base, base_sock)) < 0) {
                        fprintf(stderr, "clusterhub-bench: connecting to the sockets failed\n");
                        failed = 1;
                        goto finish;
                }
                fprintf(stderr, "clusterhub-bench: the hub's socket at %s, the baseline's at %s\n", hub_sock, base_sock);
        }

        const unsigned conc[2] = { 1, N };
        for (unsigned t = 0; t < n_ts && !arg_only_cache && !arg_only_hosts; t++)
                if (transport_rows(&ts[t], N) < 0) {
                        failed = 1;
                        goto finish;
                }
        if (arg_only_get)
                goto finish;

        /* the Node peers, each right after the hub row it is compared with */
        if (arg_peers && !arg_only_cache && !arg_only_hosts && peers_section(ts, n_ts, N) < 0) {
                failed = 1;
                goto finish;
        }

        /* Redis */
        if (arg_redis) {
                r = redis_start(&rs, "/tmp", NULL);
                if (r < 0)
                        fprintf(stderr, "redis-server not available (%s): Redis rows skipped\n", strerror(-r));
                else if (redis_connect(&rc, rs.sock) < 0 || redis_connect(&rsub, rs.sock) < 0) {
                        fprintf(stderr, "cannot connect to redis\n");
                        failed = 1;
                } else {
                        const char *set_argv[] = { "SET", "bench:get", BENCH_VALUE };
                        const char *sub_argv[] = { "SUBSCRIBE", "bench.emit" };
                        fprintf(stderr, "redis\n");
                        if (redis_simple(&rc, 3, set_argv, NULL, NULL, 0) < 0 ||
                            redis_simple(&rsub, 2, sub_argv, NULL, NULL, 0) < 0)
                                failed = 1;
                        for (unsigned k = 0; k < (arg_only_cache ? 1 : 2); k++) {
                                unsigned c = conc[k];
                                set_ratio(redis_row(&rc, -1, RCMD_GET, "redis GET", c), "baseline Ping", c, false, 0);
                                if (arg_only_cache)
                                        continue;
                                set_ratio(redis_row(&rc, -1, RCMD_SET, "redis SET", c), "baseline Ping", c, false, 0);
                                set_ratio(redis_row(&rc, -1, RCMD_INCR, "redis INCR", c), "baseline Ping", c, false, 0);
                                set_ratio(redis_row(&rc, rsub.fd, RCMD_PUBLISH, "redis PUBLISH 1 sub", c),
                                          "baseline Ping", c, false, 0);
                        }
                        for (unsigned i = 0; i < n_rows; i++) {
                                Row *h = &rows[i];
                                if (streq(h->name, "Get"))
                                        set_vs_redis(h, "redis GET", false);
                                else if (streq(h->name, "Set"))
                                        set_vs_redis(h, "redis SET", false);
                                else if (streq(h->name, "Incr"))
                                        set_vs_redis(h, "redis INCR", false);
                                else if (streq(h->name, "Emit 1 sub"))
                                        set_vs_redis(h, "redis PUBLISH 1 sub", true);
                        }
                }
        }

        /* across hosts: Get, Set, Emit and Request through two hubs sharing one Redis (issue #15),
         * next to the Redis rows above */
        if ((arg_hosts || arg_only_hosts) && arg_redis && !arg_only_cache && hosts_section(busd.kind, conc) < 0)
                failed = 1;
        if (arg_only_hosts)
                goto finish;

        /* the client-side cache, next to Redis GET (issue #13) */
        fprintf(stderr, "cache\n");
        for (unsigned t = 0; t < n_ts; t++)
                if (cache_rows(&ts[t], busd.address, hub_sock) < 0)
                        failed = 1;

        if (arg_only_cache)
                goto finish;

        /* persistence: Set and Incr with --data-dir in each --fsync mode, then Redis with its AOF */
        if (arg_persist) {
                fprintf(stderr, "persistence\n");
                if (persist_section(busd.kind, conc) < 0)
                        failed = 1;
        }

        /* scale: many subscribed clients and registered workers connected */
        /* (--quick: on the last transport only, the socket by default, to stay quick) */
        for (unsigned t = arg_quick && n_ts > 0 ? n_ts - 1 : 0; t < n_ts && arg_scale_clients + arg_scale_workers > 0; t++)
                if (scale_rows(&ts[t], N) < 0) {
                        failed = 1;
                        goto finish;
                }

        /* memory */
        if (arg_keys > 0)
                measure_memory(bus, hub.proc.pid, rc.fd >= 0 ? &rc : NULL);

finish:
        helpers_stop_all();
        if (rc.fd >= 0)
                close(rc.fd);
        if (rsub.fd >= 0)
                close(rsub.fd);
        redis_stop(&rs);
        for (unsigned t = 0; t < n_ts; t++)
                if (ts[t].owned) {
                        sd_bus_flush_close_unref(ts[t].hub);
                        sd_bus_flush_close_unref(ts[t].base);
                }
        sd_bus_flush_close_unref(bus);
        if (hub.proc.pid > 0) {
                int st = th_hub_stop(&hub);
                if (st != 0) {
                        fprintf(stderr, "clusterhub-bench: the hub did not exit cleanly (status %d)\n", st);
                        failed = 1;
                }
        }
        th_hub_clear(&hub);
        th_bus_stop(&busd);
        if (sock_dir[0])
                (void) rm_rf(sock_dir);

        read_loadavg(loadavg_end, sizeof loadavg_end);
        printf("clusterhub-bench on %s, %g s per row (ratio: ops/s, or deliveries/s for signal rows, over the baseline row)\n",
               th_bus_kind_to_string(busd.kind), arg_seconds);
        printf("load average (1, 5, 15 min): %s at the start, %s at the end; %ld CPUs\n\n", loadavg_start, loadavg_end,
               sysconf(_SC_NPROCESSORS_ONLN));
        print_table(stdout);
        if (arg_json) {
                r = write_json(arg_json, th_bus_kind_to_string(busd.kind));
                if (r < 0) {
                        fprintf(stderr, "writing %s: %s\n", arg_json, strerror(-r));
                        failed = 1;
                }
        }
        /* a row that ran no operation, or returned a wrong result, fails the run (never a timing) */
        for (unsigned i = 0; i < n_rows; i++)
                if (!rows[i].skipped && (rows[i].ops == 0 || rows[i].errors > 0)) {
                        fprintf(stderr, "clusterhub-bench: row '%s' x%u failed: %s\n", rows[i].name, rows[i].inflight,
                                rows[i].note[0] ? rows[i].note : "no operations completed");
                        failed = 1;
                }
        if (mem.note[0])
                failed = 1;
        return failed;
}
