/* SPDX-License-Identifier: MIT */
/* org.clusterhub.Locks1 against the real clusterhubd on private buses (dbus-daemon and
 * dbus-broker): mutual exclusion under load, kill -9 of holders and waiters, tokens, leases,
 * shared locks, timeouts, ListLocks, and `hubctl lock`.  Helper processes are this binary
 * re-executed with --locks-worker. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"
#include <glib/gstdio.h>

#define NS_DEFAULT CH_DEFAULT_NAMESPACE_PATH

static const char *self_path;

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- client helpers -------------------------------------------------------------------- */

typedef struct LockOpts {
        uint64_t timeout_ms;
        uint64_t lease_ms;
        bool shared;
        const char *bogus; /* an unknown option key */
} LockOpts;

static int append_opts(sd_bus_message *m, void *userdata) {
        const LockOpts *o = userdata;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (o && o->timeout_ms)
                r = sd_bus_message_append(m, "{sv}", "timeout_ms", "t", o->timeout_ms);
        if (r >= 0 && o && o->lease_ms)
                r = sd_bus_message_append(m, "{sv}", "lease_ms", "t", o->lease_ms);
        if (r >= 0 && o && o->shared)
                r = sd_bus_message_append(m, "{sv}", "shared", "b", 1);
        if (r >= 0 && o && o->bogus)
                r = sd_bus_message_append(m, "{sv}", o->bogus, "u", 1);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* Lock; returns the token, or 0 with *error_name set (g_free) when the call failed. */
static uint64_t do_lock_ns(sd_bus *bus, const char *path, const char *name, const LockOpts *o, char **error_name,
                           char **error_message) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t token = 0;
        int r;

        r = ch_locks1_call_lock(bus, CH_BUS_NAME, path, name, append_opts, (void *) o, &token, &e);
        if (r < 0) {
                g_assert_true(sd_bus_error_is_set(&e));
                if (error_name)
                        *error_name = g_strdup(e.name);
                if (error_message)
                        *error_message = g_strdup(e.message);
                sd_bus_error_free(&e);
                return 0;
        }
        g_assert_cmpuint(token, >, 0);
        return token;
}

static uint64_t lock_ok(sd_bus *bus, const char *name, const LockOpts *o) {
        g_autofree char *en = NULL, *em = NULL;
        uint64_t t = do_lock_ns(bus, NS_DEFAULT, name, o, &en, &em);
        if (!t)
                g_error("Lock(%s) failed: %s: %s", name, en, em);
        return t;
}

/* Returns 1 acquired, 0 busy. */
static int try_lock(sd_bus *bus, const char *name, const LockOpts *o, uint64_t *ret_token) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t token = 99;
        int acquired = -1, r;

        r = ch_locks1_call_try_lock(bus, CH_BUS_NAME, NS_DEFAULT, name, append_opts, (void *) o, &acquired, &token, &e);
        if (r < 0)
                g_error("TryLock(%s): %s: %s", name, e.name, e.message);
        if (!acquired)
                g_assert_cmpuint(token, ==, 0);
        if (ret_token)
                *ret_token = token;
        return acquired;
}

/* Unlock; returns NULL on success, else the error name (g_free). */
static char *unlock_err(sd_bus *bus, const char *name, uint64_t token, char **message) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *ret = NULL;
        int r;

        r = ch_locks1_call_unlock(bus, CH_BUS_NAME, NS_DEFAULT, name, token, &e);
        if (r < 0) {
                ret = g_strdup(e.name);
                if (message)
                        *message = g_strdup(e.message);
        }
        sd_bus_error_free(&e);
        return ret;
}

static void unlock_ok(sd_bus *bus, const char *name, uint64_t token) {
        g_autofree char *msg = NULL;
        g_autofree char *err = unlock_err(bus, name, token, &msg);
        if (err)
                g_error("Unlock(%s, %" PRIu64 "): %s: %s", name, token, err, msg);
}

/* Refresh; returns NULL on success, else the error name (g_free). */
static char *refresh_err(sd_bus *bus, const char *name, uint64_t token, uint64_t lease_ms, char **message) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *ret = NULL;
        int r;

        r = ch_locks1_call_refresh(bus, CH_BUS_NAME, NS_DEFAULT, name, token, lease_ms, &e);
        if (r < 0) {
                ret = g_strdup(e.name);
                if (message)
                        *message = g_strdup(e.message);
        }
        sd_bus_error_free(&e);
        return ret;
}

static void refresh_ok(sd_bus *bus, const char *name, uint64_t token, uint64_t lease_ms) {
        g_autofree char *msg = NULL;
        g_autofree char *err = refresh_err(bus, name, token, lease_ms, &msg);
        if (err)
                g_error("Refresh(%s, %" PRIu64 ", %" PRIu64 "): %s: %s", name, token, lease_ms, err, msg);
}

/* TryLock; returns NULL when the call succeeded (*ret_acquired set), else the error name. */
static char *try_lock_err(sd_bus *bus, const char *name, const LockOpts *o, int *ret_acquired, char **message) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t token = 0;
        int acquired = 0, r;
        char *ret = NULL;

        r = ch_locks1_call_try_lock(bus, CH_BUS_NAME, NS_DEFAULT, name, append_opts, (void *) o, &acquired, &token, &e);
        if (r < 0) {
                ret = g_strdup(e.name);
                if (message)
                        *message = g_strdup(e.message);
        } else if (ret_acquired)
                *ret_acquired = acquired;
        sd_bus_error_free(&e);
        return ret;
}

typedef struct Row {
        char *name, *holder;
        uint64_t token;
        uint32_t waiters;
        int shared, disconnected;
        bool has_lease;
        uint64_t lease_ms;
} Row;

static void row_clear(Row *r) {
        g_free(r->name);
        g_free(r->holder);
}

/* ListLocks rows (GArray of Row). */
static GArray *list_locks(sd_bus *bus, const char *path) {
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        GArray *rows = g_array_new(false, true, sizeof(Row));
        const char *name, *holder;
        uint64_t token;
        uint32_t waiters;
        int r;

        g_array_set_clear_func(rows, (GDestroyNotify) row_clear);
        r = ch_locks1_call_list_locks(bus, CH_BUS_NAME, path, &reply, &e);
        if (r < 0)
                g_error("ListLocks: %s: %s", e.name, e.message);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(sstua{sv})"), >, 0);
        while ((r = sd_bus_message_enter_container(reply, 'r', "sstua{sv}")) > 0) {
                const char *key;
                g_assert_cmpint(sd_bus_message_read(reply, "sstu", &name, &holder, &token, &waiters), >, 0);
                Row row = { g_strdup(name), g_strdup(holder), token, waiters };
                g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{sv}"), >, 0);
                while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                        g_assert_cmpint(sd_bus_message_read(reply, "s", &key), >, 0);
                        if (g_str_equal(key, "shared"))
                                g_assert_cmpint(sd_bus_message_read(reply, "v", "b", &row.shared), >, 0);
                        else if (g_str_equal(key, "disconnected"))
                                g_assert_cmpint(sd_bus_message_read(reply, "v", "b", &row.disconnected), >, 0);
                        else if (g_str_equal(key, "lease_ms")) {
                                g_assert_cmpint(sd_bus_message_read(reply, "v", "t", &row.lease_ms), >, 0);
                                row.has_lease = true;
                        } else
                                g_error("unknown ListLocks detail '%s'", key);
                        g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                }
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
                g_array_append_val(rows, row);
        }
        g_assert_cmpint(r, ==, 0);
        sd_bus_message_unref(reply);
        return rows;
}

static const Row *find_row(GArray *rows, const char *name) {
        for (guint i = 0; i < rows->len; i++)
                if (g_str_equal(g_array_index(rows, Row, i).name, name))
                        return &g_array_index(rows, Row, i);
        return NULL;
}

/* Waiters queued on NAME (-1: no such lock). */
static int n_waiters(sd_bus *bus, const char *name) {
        g_autoptr(GArray) rows = list_locks(bus, NS_DEFAULT);
        const Row *r = find_row(rows, name);
        return r ? (int) r->waiters : -1;
}

static void wait_waiters(sd_bus *bus, const char *name, int want) {
        uint64_t end = now_ms() + 10000;
        int n;

        while ((n = n_waiters(bus, name)) != want) {
                if (now_ms() > end)
                        g_error("Lock %s has %d waiters, expected %d", name, n, want);
                g_usleep(5000);
        }
}

/* Until the hub has seen the holder of NAME (token T, held with a lease) disconnect, it is still
 * that connection's alone: wait for ListLocks to say so. */
static void wait_holder_left(sd_bus *bus, const char *name, uint64_t t) {
        uint64_t end = now_ms() + 10000;

        for (;;) {
                g_autoptr(GArray) rows = list_locks(bus, NS_DEFAULT);
                const Row *r = find_row(rows, name);
                g_assert_nonnull(r);
                g_assert_cmpuint(r->token, ==, t);
                if (r->disconnected)
                        return;
                g_assert_cmpuint(now_ms(), <, end);
                g_usleep(10 * 1000);
        }
}

static const char *unique_name(sd_bus *bus) {
        const char *u = NULL;
        g_assert_cmpint(sd_bus_get_unique_name(bus, &u), >=, 0);
        return u;
}

/* An asynchronous Lock and its outcome. */
typedef struct AsyncLock {
        bool done;
        uint64_t token;
        char *error_name;
        char *error_message;
        uint64_t done_ms;
} AsyncLock;

static int on_lock_reply(sd_bus_message *reply, const sd_bus_error *error, uint64_t token, void *userdata) {
        AsyncLock *a = userdata;

        a->done = true;
        a->done_ms = now_ms();
        a->token = token;
        if (sd_bus_error_is_set(error)) {
                a->error_name = g_strdup(error->name);
                a->error_message = g_strdup(error->message);
        }
        return 0;
}

static void async_lock(sd_bus *bus, const char *name, const LockOpts *o, AsyncLock *a) {
        *a = (AsyncLock) {};
        g_assert_cmpint(ch_locks1_call_lock_async(bus, NULL, CH_BUS_NAME, NS_DEFAULT, name, append_opts, (void *) o,
                                                  on_lock_reply, a, 30 * G_USEC_PER_SEC), >=, 0);
        g_assert_cmpint(sd_bus_flush(bus), >=, 0);
}

static void async_clear(AsyncLock *a) {
        g_free(a->error_name);
        g_free(a->error_message);
        *a = (AsyncLock) {};
}

/* Process BUS until A is done or TIMEOUT_MS passes; returns done. */
static bool pump_until(sd_bus *bus, AsyncLock *a, int timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;

        while (!a->done) {
                int r = sd_bus_process(bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r > 0)
                        continue;
                uint64_t n = now_ms();
                if (n >= end)
                        break;
                r = sd_bus_wait(bus, (end - n) * 1000);
                g_assert_cmpint(r, >=, 0);
        }
        return a->done;
}

/* Dispatch whatever BUS has already received (no waiting). */
static void pump_briefly(sd_bus *bus, int ms) {
        AsyncLock never = {};
        (void) pump_until(bus, &never, ms);
}

static sd_bus *connect_client(ThFixture *f) {
        sd_bus *bus = NULL;
        g_assert_cmpint(th_connect(&bus, f->bus.address), >=, 0);
        return bus;
}

static void hub_still_alive(ThFixture *f) {
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        g_assert_false(th_proc_exited(&f->hub.proc));
        (void) rows;
}

/* ---- helper processes -------------------------------------------------------------------- */

typedef struct Helper {
        ThProc proc;
        int out;          /* read end of its stdout */
        GString *buf;
} Helper;

static void helper_start(Helper *h, const char *const *argv) {
        int p[2];

        g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
        h->proc = (ThProc) TH_PROC_NULL;
        h->buf = g_string_new(NULL);
        g_assert_cmpint(th_spawn(&h->proc, argv, NULL, p[1], -1), >, 0);
        close(p[1]);
        h->out = p[0];
}

/* Next line of its stdout within TIMEOUT_MS (g_free), or NULL. */
static char *helper_read_line(Helper *h, int timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;

        for (;;) {
                char *nl = memchr(h->buf->str, '\n', h->buf->len);
                if (nl) {
                        char *line = g_strndup(h->buf->str, nl - h->buf->str);
                        g_string_erase(h->buf, 0, nl - h->buf->str + 1);
                        return line;
                }
                uint64_t n = now_ms();
                if (n >= end)
                        return NULL;
                struct pollfd pfd = { .fd = h->out, .events = POLLIN };
                int r = poll(&pfd, 1, (int) (end - n));
                if (r <= 0)
                        continue;
                char b[256];
                ssize_t k = read(h->out, b, sizeof(b));
                if (k <= 0)
                        return NULL;
                g_string_append_len(h->buf, b, k);
        }
}

static void helper_stop(Helper *h) {
        if (h->proc.pid > 0 || !h->proc.reaped)
                (void) th_proc_stop(&h->proc, SIGKILL, 5000);
        th_proc_clear(&h->proc);
        if (h->out >= 0)
                close(h->out);
        h->out = -1;
        if (h->buf)
                g_string_free(h->buf, true);
        h->buf = NULL;
}

/* A process holding lock NAME: prints "granted TOKEN" once granted, then waits to be killed. */
static void start_holder(Helper *h, ThFixture *f, const char *name) {
        const char *argv[] = { self_path, "--locks-worker", "hold", f->bus.address, name, NULL };
        helper_start(h, argv);
}

/* ---- worker main (this binary with --locks-worker) ----------------------------------------- */

static int append_x(sd_bus_message *m, void *userdata) {
        int64_t v = *(int64_t *) userdata;
        int r = sd_bus_message_append(m, "v", "x", v);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "a{sv}", 0);
}

/* incr ADDRESS LOCK KEY N: N read-modify-write increments of KEY (Get, then Set) under LOCK. */
static int worker_incr(const char *address, const char *lock, const char *key, int n) {
        sd_bus *bus = NULL;
        LockOpts o = { .timeout_ms = 120000 };
        int r;

        r = th_connect(&bus, address);
        if (r < 0)
                return 2;
        for (int i = 0; i < n; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint64_t token = 0;
                int64_t v = 0;

                r = ch_locks1_call_lock(bus, CH_BUS_NAME, NS_DEFAULT, lock, append_opts, &o, &token, &e);
                if (r < 0) {
                        fprintf(stderr, "Lock: %s: %s\n", e.name, e.message);
                        return 3;
                }
                r = ch_store1_call_get(bus, CH_BUS_NAME, NS_DEFAULT, key, &reply, &e);
                if (r < 0 && !sd_bus_error_has_name(&e, CH_ERROR_NO_SUCH_KEY)) {
                        fprintf(stderr, "Get: %s: %s\n", e.name, e.message);
                        return 4;
                }
                sd_bus_error_free(&e);
                if (r >= 0) {
                        r = sd_bus_message_read(reply, "v", "x", &v);
                        sd_bus_message_unref(reply);
                        if (r < 0) {
                                fprintf(stderr, "Get: not an x: %s\n", strerror(-r));
                                return 5;
                        }
                }
                v++;
                r = ch_store1_call_set(bus, CH_BUS_NAME, NS_DEFAULT, key, append_x, &v, NULL, &e);
                if (r < 0) {
                        fprintf(stderr, "Set: %s: %s\n", e.name, e.message);
                        return 6;
                }
                r = ch_locks1_call_unlock(bus, CH_BUS_NAME, NS_DEFAULT, lock, token, &e);
                if (r < 0) {
                        fprintf(stderr, "Unlock: %s: %s\n", e.name, e.message);
                        return 7;
                }
        }
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* hold ADDRESS LOCK: Lock (waiting up to 60 s), print "granted TOKEN", wait to be killed. */
static int worker_hold(const char *address, const char *lock) {
        sd_bus *bus = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        LockOpts o = { .timeout_ms = 60000 };
        uint64_t token = 0;
        int r;

        r = th_connect(&bus, address);
        if (r < 0)
                return 2;
        printf("connected %s\n", unique_name(bus));
        fflush(stdout);
        r = ch_locks1_call_lock(bus, CH_BUS_NAME, NS_DEFAULT, lock, append_opts, &o, &token, &e);
        if (r < 0) {
                printf("error %s\n", e.name);
                fflush(stdout);
                return 3;
        }
        printf("granted %" PRIu64 "\n", token);
        fflush(stdout);
        for (;;)
                pause();
}

static int worker_main(int argc, char *argv[]) {
        if (argc >= 7 && g_str_equal(argv[2], "incr"))
                return worker_incr(argv[3], argv[4], argv[5], atoi(argv[6]));
        if (argc >= 5 && g_str_equal(argv[2], "hold"))
                return worker_hold(argv[3], argv[4]);
        fprintf(stderr, "bad worker arguments\n");
        return 1;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_counter(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Helper w[4];
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int64_t v = -1;

        for (int i = 0; i < 4; i++) {
                const char *argv[] = { self_path, "--locks-worker", "incr", f->bus.address, "counter-lock", "counter", "250", NULL };
                helper_start(&w[i], argv);
        }
        for (int i = 0; i < 4; i++) {
                int status = -1;
                g_assert_true(th_proc_wait(&w[i].proc, 120000, &status));
                g_assert_true(WIFEXITED(status));
                g_assert_cmpint(WEXITSTATUS(status), ==, 0);
                helper_stop(&w[i]);
        }
        g_assert_cmpint(ch_store1_call_get(f->client, CH_BUS_NAME, NS_DEFAULT, "counter", &reply, &e), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "v", "x", &v), >, 0);
        sd_bus_message_unref(reply);
        g_assert_cmpint(v, ==, 1000);
        /* 1000 grants, and nothing left behind */
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        g_assert_cmpuint(rows->len, ==, 0);
        g_assert_cmpuint(lock_ok(f->client, "counter-lock", NULL), >=, 1001);
}

static char *expect_line_prefix(Helper *h, const char *prefix, int timeout_ms) {
        char *line = helper_read_line(h, timeout_ms);
        if (!line)
                g_error("no '%s' line from %s within %d ms", prefix, h->proc.name, timeout_ms);
        if (!g_str_has_prefix(line, prefix))
                g_error("expected '%s...', got '%s'", prefix, line);
        return line;
}

static uint64_t token_of(const char *line) {
        return g_ascii_strtoull(line + strlen("granted "), NULL, 10);
}

static void test_kill_holder(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Helper holder, w1, w2;
        g_autofree char *l = NULL, *l1 = NULL, *c1 = NULL, *c2 = NULL, *c = NULL;

        start_holder(&holder, f, "job");
        c = expect_line_prefix(&holder, "connected", 10000);
        l = expect_line_prefix(&holder, "granted ", 10000);
        start_holder(&w1, f, "job");
        c1 = expect_line_prefix(&w1, "connected", 10000);
        wait_waiters(f->client, "job", 1);
        start_holder(&w2, f, "job");
        c2 = expect_line_prefix(&w2, "connected", 10000);
        wait_waiters(f->client, "job", 2);

        uint64_t t0 = now_ms();
        g_assert_cmpint(th_proc_kill(&holder.proc, SIGKILL), ==, 0);
        l1 = expect_line_prefix(&w1, "granted ", 1000);
        g_test_message("first waiter granted %" PRIu64 " ms after kill -9 of the holder", now_ms() - t0);
        g_assert_cmpuint(now_ms() - t0, <, 1000);
        g_assert_cmpuint(token_of(l1), >, token_of(l));
        /* the second waiter still waits, and the list shows the new holder */
        g_assert_null(helper_read_line(&w2, 100));
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        const Row *r = find_row(rows, "job");
        g_assert_nonnull(r);
        g_assert_cmpstr(r->holder, ==, c1 + strlen("connected "));
        g_assert_cmpuint(r->token, ==, token_of(l1));
        g_assert_cmpuint(r->waiters, ==, 1);

        helper_stop(&holder);
        helper_stop(&w1);
        helper_stop(&w2);
        hub_still_alive(f);
}

static void test_kill_middle_waiter(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        Helper h[5];
        char *lines[5] = {};

        /* h[0] holds, h[1..4] queue in that order */
        for (int i = 0; i < 5; i++) {
                start_holder(&h[i], f, "queue");
                g_free(expect_line_prefix(&h[i], "connected", 10000));
                if (i == 0)
                        lines[0] = expect_line_prefix(&h[0], "granted ", 10000);
                else
                        wait_waiters(f->client, "queue", i);
        }
        /* kill -9 a waiter in the middle: the others keep their order */
        g_assert_cmpint(th_proc_kill(&h[2].proc, SIGKILL), ==, 0);
        wait_waiters(f->client, "queue", 3);
        /* release one by one: 1, 3, 4 are granted in that order */
        int order[] = { 1, 3, 4 };
        int prev = 0;
        for (size_t k = 0; k < G_N_ELEMENTS(order); k++) {
                int i = order[k];
                g_assert_cmpint(th_proc_kill(&h[prev].proc, SIGKILL), ==, 0);
                lines[i] = expect_line_prefix(&h[i], "granted ", 2000);
                g_assert_cmpuint(token_of(lines[i]), >, token_of(lines[prev]));
                for (size_t later = k + 1; later < G_N_ELEMENTS(order); later++) {
                        g_autofree char *none = helper_read_line(&h[order[later]], 50);
                        g_assert_null(none);
                }
                prev = i;
        }
        g_assert_null(lines[2]);
        g_assert_cmpint(th_proc_kill(&h[prev].proc, SIGKILL), ==, 0);
        for (int i = 0; i < 5; i++) {
                helper_stop(&h[i]);
                g_free(lines[i]);
        }
        /* nothing hangs: the lock is free again */
        uint64_t end = now_ms() + 5000, t;
        while (!try_lock(f->client, "queue", NULL, &t))
                g_assert_cmpuint(now_ms(), <, end);
        unlock_ok(f->client, "queue", t);
        hub_still_alive(f);
}

static void test_unlock_foreign(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *other = connect_client(f);
        g_autofree char *msg = NULL;
        uint64_t t1, t2, tt;

        t1 = lock_ok(f->client, "res", NULL);
        /* a foreign (made-up) token */
        g_autofree char *err = unlock_err(other, "res", t1 + 1000, &msg);
        g_assert_cmpstr(err, ==, CH_ERROR_NOT_LOCK_OWNER);
        g_assert_nonnull(strstr(msg, "'res'"));
        g_assert_cmpint(try_lock(other, "res", NULL, &tt), ==, 0);
        /* a stale token: from an earlier hold */
        unlock_ok(f->client, "res", t1);
        t2 = lock_ok(f->client, "res", NULL);
        g_assert_cmpuint(t2, >, t1);
        g_autofree char *err2 = unlock_err(f->client, "res", t1, NULL);
        g_assert_cmpstr(err2, ==, CH_ERROR_NOT_LOCK_OWNER);
        /* still held */
        g_assert_cmpint(try_lock(other, "res", NULL, &tt), ==, 0);
        g_autoptr(GArray) rows = list_locks(other, NS_DEFAULT);
        const Row *r = find_row(rows, "res");
        g_assert_nonnull(r);
        g_assert_cmpuint(r->token, ==, t2);
        g_assert_cmpstr(r->holder, ==, unique_name(f->client));
        /* The token alone is no credential (ListLocks shows it to everyone): another connection
         * presenting the holder's token may neither unlock nor shorten the lock. */
        g_autofree char *msg3 = NULL;
        g_autofree char *err3 = unlock_err(other, "res", t2, &msg3);
        g_assert_cmpstr(err3, ==, CH_ERROR_NOT_LOCK_OWNER);
        g_assert_nonnull(strstr(msg3, "'res'"));
        g_autofree char *err4 = refresh_err(other, "res", t2, 1, NULL);
        g_assert_cmpstr(err4, ==, CH_ERROR_NOT_LOCK_OWNER);
        g_usleep(100 * 1000); /* a 1 ms lease, had it been set, would have ended by now */
        g_assert_cmpint(try_lock(other, "res", NULL, &tt), ==, 0);
        g_autoptr(GArray) rows2 = list_locks(other, NS_DEFAULT);
        g_assert_cmpuint(find_row(rows2, "res")->token, ==, t2);
        /* the holder's own Refresh and Unlock work */
        refresh_ok(f->client, "res", t2, 60000);
        refresh_ok(f->client, "res", t2, 0);
        unlock_ok(f->client, "res", t2);
        g_assert_cmpint(try_lock(other, "res", NULL, &tt), ==, 1);
        unlock_ok(other, "res", tt);
        sd_bus_flush_close_unref(other);
}

/* A holder that took a lease and left: a new connection of the same uid (this process) with
 * the token may Refresh and Unlock it, which is what a one-shot busctl script does. While the
 * holder is still connected, the same uid on another connection may not. */
static void test_lease_holder_left(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *a = connect_client(f), *b = connect_client(f);
        uint64_t t, tt;

        t = lock_ok(a, "left", &(LockOpts) { .lease_ms = 60000 });
        g_autofree char *err = unlock_err(b, "left", t, NULL);
        g_assert_cmpstr(err, ==, CH_ERROR_NOT_LOCK_OWNER);
        g_autofree char *err2 = refresh_err(b, "left", t, 1, NULL);
        g_assert_cmpstr(err2, ==, CH_ERROR_NOT_LOCK_OWNER);

        sd_bus_flush_close_unref(a);
        wait_holder_left(b, "left", t);
        g_assert_cmpint(try_lock(b, "left", NULL, &tt), ==, 0);
        refresh_ok(b, "left", t, 30000);
        sd_bus *c = connect_client(f); /* a brand new connection, as busctl makes */
        unlock_ok(c, "left", t);
        g_assert_cmpint(try_lock(b, "left", NULL, &tt), ==, 1);
        unlock_ok(b, "left", tt);
        sd_bus_flush_close_unref(c);
        sd_bus_flush_close_unref(b);
}

static uint64_t realtime_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* Replace the fixture's hub by a new one on the same bus (it remembers nothing). */
static void restart_hub(ThFixture *f, const char *const *args) {
        g_assert_cmpint(th_hub_stop(&f->hub), ==, 0);
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, args), ==, 0);
}

/* Fencing tokens never go backwards, even across a hub restart without any saved state: each
 * run starts above the real-time clock (in microseconds) at its start. */
static void test_tokens_restart(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        uint64_t t1, t2, t3, before;

        t1 = lock_ok(f->client, "fence", NULL);
        for (int i = 0; i < 5; i++) {
                unlock_ok(f->client, "fence", t1);
                t1 = lock_ok(f->client, "fence", NULL);
        }
        before = realtime_us();
        restart_hub(f, NULL);
        /* the old hub's lock is gone with it */
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        g_assert_null(find_row(rows, "fence"));
        t2 = lock_ok(f->client, "fence", NULL);
        g_test_message("token before the restart %" PRIu64 ", after %" PRIu64, t1, t2);
        g_assert_cmpuint(t2, >, t1);
        g_assert_cmpuint(t2, >, before);
        unlock_ok(f->client, "fence", t2);
        t3 = do_lock_ns(f->client, CH_NAMESPACE_PATH_PREFIX "other", "fence", NULL, NULL, NULL);
        g_assert_cmpuint(t3, ==, t2 + 1); /* then one per grant, hub-wide */
}

/* Leases have an upper bound (--max-lease-ms, default 1 h): 16,384 TryLocks with lease_ms =
 * UINT64_MAX must not fill a namespace's lock table for good. The other lock limits and the
 * default Lock timeout are hub options too. */
static void test_lease_limit(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *other = connect_client(f);
        int acquired = -1;
        uint64_t t;

        g_autofree char *m1 = NULL;
        g_autofree char *e1 = try_lock_err(f->client, "forever", &(LockOpts) { .lease_ms = UINT64_MAX }, &acquired, &m1);
        g_assert_cmpstr(e1, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(m1, "--max-lease-ms"));
        g_assert_nonnull(strstr(m1, "'forever'"));
        g_autofree char *e2 = NULL, *m2 = NULL;
        g_assert_cmpuint(do_lock_ns(f->client, NS_DEFAULT, "forever", &(LockOpts) { .lease_ms = 3600001 }, &e2, &m2), ==, 0);
        g_assert_cmpstr(e2, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(m2, "3600000"));
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        g_assert_null(find_row(rows, "forever")); /* nothing was taken */
        t = lock_ok(f->client, "hour", &(LockOpts) { .lease_ms = 3600000 });
        g_autofree char *e3 = refresh_err(f->client, "hour", t, UINT64_MAX, NULL);
        g_assert_cmpstr(e3, ==, CH_ERROR_LIMIT_EXCEEDED);
        refresh_ok(f->client, "hour", t, 3600000);
        unlock_ok(f->client, "hour", t);
        sd_bus_flush_close_unref(other);

        /* the options */
        restart_hub(f, (const char *const[]) { "--max-lease-ms=500", "--lock-timeout-ms=300", "--max-locks=2", NULL });
        other = connect_client(f);
        g_autofree char *e4 = try_lock_err(f->client, "a", &(LockOpts) { .lease_ms = 501 }, &acquired, NULL);
        g_assert_cmpstr(e4, ==, CH_ERROR_LIMIT_EXCEEDED);
        uint64_t ta = lock_ok(f->client, "a", &(LockOpts) { .lease_ms = 500 });
        uint64_t tb = lock_ok(f->client, "b", NULL);
        g_autofree char *e5 = NULL, *m5 = NULL;
        g_assert_cmpuint(do_lock_ns(f->client, NS_DEFAULT, "c", NULL, &e5, &m5), ==, 0);
        g_assert_cmpstr(e5, ==, CH_ERROR_LIMIT_EXCEEDED);
        g_assert_nonnull(strstr(m5, "--max-locks"));
        /* a Lock without timeout_ms waits --lock-timeout-ms */
        g_autofree char *e6 = NULL, *m6 = NULL;
        uint64_t t0 = now_ms();
        g_assert_cmpuint(do_lock_ns(other, NS_DEFAULT, "b", NULL, &e6, &m6), ==, 0);
        g_assert_cmpstr(e6, ==, CH_ERROR_TIMEOUT);
        g_assert_nonnull(strstr(m6, "300 ms"));
        g_assert_cmpuint(now_ms() - t0, >=, 250);
        unlock_ok(f->client, "b", tb);
        g_autofree char *e7 = unlock_err(f->client, "a", ta, NULL); /* may have ended already */
        g_assert_true(e7 == NULL || g_str_equal(e7, CH_ERROR_NOT_LOCKED));
        sd_bus_flush_close_unref(other);
}

static void test_not_locked(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *msg = NULL;
        g_autofree char *e1 = unlock_err(f->client, "nothing", 1, &msg);
        g_assert_cmpstr(e1, ==, CH_ERROR_NOT_LOCKED);
        g_assert_nonnull(strstr(msg, "'nothing'"));
        uint64_t t = lock_ok(f->client, "twice", NULL);
        unlock_ok(f->client, "twice", t);
        g_autofree char *e2 = unlock_err(f->client, "twice", t, NULL);
        g_assert_cmpstr(e2, ==, CH_ERROR_NOT_LOCKED);

        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_assert_cmpint(ch_locks1_call_refresh(f->client, CH_BUS_NAME, NS_DEFAULT, "twice", t, 1000, &e), <, 0);
        g_assert_cmpstr(e.name, ==, CH_ERROR_NOT_LOCKED);
        sd_bus_error_free(&e);
}

static void test_try_lock(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *other = connect_client(f);
        uint64_t t1 = 0, t2 = 0;

        g_assert_cmpint(try_lock(f->client, "t", NULL, &t1), ==, 1);
        g_assert_cmpuint(t1, >, 0);
        g_assert_cmpint(try_lock(other, "t", NULL, &t2), ==, 0);
        /* a queued waiter also makes TryLock fail (FIFO), even once the lock is free */
        AsyncLock a;
        async_lock(other, "t", NULL, &a);
        wait_waiters(f->client, "t", 1);
        sd_bus *third = connect_client(f);
        g_assert_cmpint(try_lock(third, "t", NULL, &t2), ==, 0);
        unlock_ok(f->client, "t", t1);
        g_assert_true(pump_until(other, &a, 5000));
        g_assert_null(a.error_name);
        g_assert_cmpuint(a.token, >, t1);
        unlock_ok(other, "t", a.token);
        g_assert_cmpint(try_lock(third, "t", NULL, &t2), ==, 1);
        g_assert_cmpuint(t2, >, a.token);
        /* the holder's connection closes: released at once */
        sd_bus_flush_close_unref(third);
        uint64_t end = now_ms() + 5000;
        while (!try_lock(f->client, "t", NULL, &t1))
                g_assert_cmpuint(now_ms(), <, end);
        async_clear(&a);
        sd_bus_flush_close_unref(other);
}

static void test_lease(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *a = connect_client(f);
        g_autofree char *a_name = g_strdup(unique_name(a));
        LockOpts lease = { .lease_ms = 600 };
        uint64_t t, t2;

        t = lock_ok(a, "lease", &lease);
        sd_bus_flush_close_unref(a);
        /* survives its caller */
        g_usleep(150 * 1000);
        g_assert_cmpint(try_lock(f->client, "lease", NULL, &t2), ==, 0);
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        const Row *r = find_row(rows, "lease");
        g_assert_nonnull(r);
        g_assert_cmpuint(r->token, ==, t);
        g_assert_cmpstr(r->holder, ==, a_name);
        g_assert_true(r->disconnected);
        g_assert_false(r->shared);
        g_assert_true(r->has_lease);
        g_assert_cmpuint(r->lease_ms, >, 0);
        g_assert_cmpuint(r->lease_ms, <=, lease.lease_ms);
        /* a waiter gets it when the lease ends */
        uint64_t t0 = now_ms();
        t2 = lock_ok(f->client, "lease", &(LockOpts) { .timeout_ms = 5000 });
        g_assert_cmpuint(t2, >, t);
        g_assert_cmpuint(now_ms() - t0, <, 2000);
        unlock_ok(f->client, "lease", t2);

        /* Refresh extends a lease; Unlock by token ends it early */
        sd_bus *b = connect_client(f);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        t = lock_ok(b, "lease2", &(LockOpts) { .lease_ms = 1000 });
        sd_bus_flush_close_unref(b);
        wait_holder_left(f->client, "lease2", t);
        g_assert_cmpint(ch_locks1_call_refresh(f->client, CH_BUS_NAME, NS_DEFAULT, "lease2", t, 60000, &e), >=, 0);
        g_usleep(1300 * 1000); /* past the first lease */
        g_assert_cmpint(try_lock(f->client, "lease2", NULL, &t2), ==, 0);
        /* a lease of 0 for a disconnected holder would never end */
        g_assert_cmpint(ch_locks1_call_refresh(f->client, CH_BUS_NAME, NS_DEFAULT, "lease2", t, 0, &e), <, 0);
        g_assert_cmpstr(e.name, ==, CH_ERROR_INVALID_ARGS);
        g_assert_nonnull(strstr(e.message, "'lease2'"));
        sd_bus_error_free(&e);
        unlock_ok(f->client, "lease2", t);
        g_assert_cmpint(try_lock(f->client, "lease2", NULL, &t2), ==, 1);
        unlock_ok(f->client, "lease2", t2);

        /* a lease without disconnect also ends */
        t = lock_ok(f->client, "lease3", &(LockOpts) { .lease_ms = 200 });
        g_usleep(500 * 1000);
        g_autofree char *err = unlock_err(f->client, "lease3", t, NULL);
        g_assert_cmpstr(err, ==, CH_ERROR_NOT_LOCKED);
}

static void test_shared(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *a = connect_client(f), *b = connect_client(f), *c = connect_client(f), *d = connect_client(f);
        LockOpts sh = { .shared = true };
        uint64_t ta, tb, td;
        AsyncLock wc, wd;

        g_assert_cmpint(try_lock(a, "rw", &sh, &ta), ==, 1);
        tb = lock_ok(b, "rw", &sh);
        g_assert_cmpuint(tb, >, ta);
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        g_assert_cmpuint(rows->len, ==, 2);
        /* an exclusive request waits; a reader arriving after it queues behind it */
        async_lock(c, "rw", NULL, &wc);
        wait_waiters(f->client, "rw", 1);
        g_assert_cmpint(try_lock(d, "rw", &sh, &td), ==, 0);
        async_lock(d, "rw", &sh, &wd);
        wait_waiters(f->client, "rw", 2);
        unlock_ok(a, "rw", ta);
        pump_briefly(c, 100);
        g_assert_false(wc.done);
        unlock_ok(b, "rw", tb);
        g_assert_true(pump_until(c, &wc, 5000));
        g_assert_null(wc.error_name);
        pump_briefly(d, 100);
        g_assert_false(wd.done);
        /* the holder asking again would wait for itself */
        g_autofree char *en = NULL, *em = NULL;
        g_assert_cmpuint(do_lock_ns(c, NS_DEFAULT, "rw", NULL, &en, &em), ==, 0);
        g_assert_cmpstr(en, ==, "org.clusterhub.Error.Deadlock");
        g_assert_nonnull(strstr(em, "'rw'"));
        unlock_ok(c, "rw", wc.token);
        g_assert_true(pump_until(d, &wd, 5000));
        g_assert_null(wd.error_name);
        g_assert_cmpuint(wd.token, >, wc.token);
        unlock_ok(d, "rw", wd.token);
        async_clear(&wc);
        async_clear(&wd);
        sd_bus_flush_close_unref(a);
        sd_bus_flush_close_unref(b);
        sd_bus_flush_close_unref(c);
        sd_bus_flush_close_unref(d);
}

static void test_timeout(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *other = connect_client(f);
        g_autofree char *en = NULL, *em = NULL;
        uint64_t t = lock_ok(f->client, "slow", NULL), t0, el;

        t0 = now_ms();
        g_assert_cmpuint(do_lock_ns(other, NS_DEFAULT, "slow", &(LockOpts) { .timeout_ms = 300 }, &en, &em), ==, 0);
        el = now_ms() - t0;
        g_assert_cmpstr(en, ==, CH_ERROR_TIMEOUT);
        g_assert_nonnull(strstr(em, "'slow'"));
        g_assert_cmpuint(el, >=, 290);
        g_assert_cmpuint(el, <, 3000);
        /* the timed-out request left the queue */
        g_assert_cmpint(n_waiters(f->client, "slow"), ==, 0);
        unlock_ok(f->client, "slow", t);
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        g_assert_cmpuint(rows->len, ==, 0);
        sd_bus_flush_close_unref(other);
}

static void test_tokens(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        uint64_t last = 0;

        for (int i = 0; i < 20; i++) {
                g_autofree char *name = g_strdup_printf("tok%d", i % 3);
                const char *path = i % 2 ? NS_DEFAULT : CH_NAMESPACE_PATH_PREFIX "other";
                uint64_t t = do_lock_ns(f->client, path, name, NULL, NULL, NULL);
                sd_bus_error e = SD_BUS_ERROR_NULL;
                g_assert_cmpuint(t, >, last);
                last = t;
                g_assert_cmpint(ch_locks1_call_unlock(f->client, CH_BUS_NAME, path, name, t, &e), >=, 0);
        }
}

static void test_list(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *w1 = connect_client(f), *w2 = connect_client(f);
        AsyncLock a1, a2;
        uint64_t ta = lock_ok(f->client, "alpha", NULL);
        uint64_t tb = lock_ok(f->client, "beta", &(LockOpts) { .lease_ms = 60000 });

        async_lock(w1, "alpha", NULL, &a1);
        wait_waiters(f->client, "alpha", 1);
        async_lock(w2, "alpha", NULL, &a2);
        wait_waiters(f->client, "alpha", 2);

        g_autoptr(GArray) rows = list_locks(w1, NS_DEFAULT);
        g_assert_cmpuint(rows->len, ==, 2);
        const Row *r = &g_array_index(rows, Row, 0); /* in creation order */
        g_assert_cmpstr(r->name, ==, "alpha");
        g_assert_cmpstr(r->holder, ==, unique_name(f->client));
        g_assert_cmpuint(r->token, ==, ta);
        g_assert_cmpuint(r->waiters, ==, 2);
        r = &g_array_index(rows, Row, 1);
        g_assert_cmpstr(r->name, ==, "beta");
        g_assert_cmpuint(r->token, ==, tb);
        g_assert_cmpuint(r->waiters, ==, 0);
        /* another namespace has its own (empty) list */
        g_autoptr(GArray) other = list_locks(f->client, CH_NAMESPACE_PATH_PREFIX "elsewhere");
        g_assert_cmpuint(other->len, ==, 0);

        /* the first waiter's connection closes: it leaves the queue */
        sd_bus_flush_close_unref(w1);
        wait_waiters(f->client, "alpha", 1);
        unlock_ok(f->client, "alpha", ta);
        g_assert_true(pump_until(w2, &a2, 5000));
        g_assert_null(a2.error_name);
        g_assert_cmpuint(a2.token, >, tb);
        unlock_ok(w2, "alpha", a2.token);
        unlock_ok(f->client, "beta", tb);
        async_clear(&a1);
        async_clear(&a2);
        sd_bus_flush_close_unref(w2);
}

static void test_invalid(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *e1 = NULL, *m1 = NULL, *e2 = NULL, *m2 = NULL, *e3 = NULL, *m3 = NULL;
        g_autofree char *longname = g_strnfill(300, 'x');

        g_assert_cmpuint(do_lock_ns(f->client, NS_DEFAULT, "opt", &(LockOpts) { .bogus = "color" }, &e1, &m1), ==, 0);
        g_assert_cmpstr(e1, ==, CH_ERROR_INVALID_ARGS);
        g_assert_nonnull(strstr(m1, "'opt'"));
        g_assert_nonnull(strstr(m1, "color"));
        g_assert_cmpuint(do_lock_ns(f->client, NS_DEFAULT, "", NULL, &e2, &m2), ==, 0);
        g_assert_cmpstr(e2, ==, CH_ERROR_INVALID_ARGS);
        g_assert_cmpuint(do_lock_ns(f->client, NS_DEFAULT, longname, NULL, &e3, &m3), ==, 0);
        g_assert_cmpstr(e3, ==, CH_ERROR_INVALID_ARGS);

        /* the errno map knows the new error */
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_error_set(&e, "org.clusterhub.Error.Deadlock", "x");
        g_assert_cmpint(sd_bus_error_get_errno(&e), ==, EDEADLK);
        sd_bus_error_free(&e);
}

static void test_drop_namespace(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *other = connect_client(f);
        const char *path = CH_NAMESPACE_PATH_PREFIX "doomed";
        sd_bus_error e = SD_BUS_ERROR_NULL;
        AsyncLock a = {};
        uint64_t t = do_lock_ns(f->client, path, "d", NULL, NULL, NULL);

        g_assert_cmpuint(t, >, 0);
        g_assert_cmpint(ch_locks1_call_lock_async(other, NULL, CH_BUS_NAME, path, "d", append_opts, NULL, on_lock_reply, &a,
                                                  30 * G_USEC_PER_SEC), >=, 0);
        g_assert_cmpint(sd_bus_flush(other), >=, 0);
        uint64_t end = now_ms() + 5000;
        for (;;) {
                g_autoptr(GArray) rows = list_locks(f->client, path);
                if (rows->len == 1 && g_array_index(rows, Row, 0).waiters == 1)
                        break;
                g_assert_cmpuint(now_ms(), <, end);
                g_usleep(5000);
        }
        g_assert_cmpint(ch_hub1_call_drop_namespace(f->client, CH_BUS_NAME, CH_HUB_PATH, "doomed", &e), >=, 0);
        g_assert_true(pump_until(other, &a, 5000));
        g_assert_cmpstr(a.error_name, ==, CH_ERROR_NAMESPACE_DROPPED);
        g_assert_nonnull(strstr(a.error_message, "'d'"));
        async_clear(&a);
        sd_bus_flush_close_unref(other);
        hub_still_alive(f);
}

/* ---- hubctl --------------------------------------------------------------------------------- */

#ifdef HUBCTL_PATH
static void run_hubctl(ThProc *p, ThFixture *f, const char *const *args) {
        GPtrArray *argv = g_ptr_array_new();
        g_autofree char *addr = g_strdup_printf("--address=%s", f->bus.address);

        g_ptr_array_add(argv, (char *) HUBCTL_PATH);
        g_ptr_array_add(argv, addr);
        for (const char *const *a = args; *a; a++)
                g_ptr_array_add(argv, (char *) *a);
        g_ptr_array_add(argv, NULL);
        *p = (ThProc) TH_PROC_NULL;
        g_assert_cmpint(th_spawn(p, (const char *const *) argv->pdata, NULL, -1, -1), >, 0);
        g_ptr_array_free(argv, true);
}

static int exit_status(ThProc *p, int timeout_ms) {
        int status = -1;
        g_assert_true(th_proc_wait(p, timeout_ms, &status));
        th_proc_clear(p);
        g_assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static void test_hubctl_lock(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *dir = g_dir_make_tmp("hubctl-lock-XXXXXX", NULL);
        g_autofree char *log = g_build_filename(dir, "log", NULL);
        g_autofree char *s1 = g_strdup_printf("echo start 1 $(date +%%s%%N) >> %s; sleep 0.7; echo end 1 $(date +%%s%%N) >> %s; exit 3", log, log);
        g_autofree char *s2 = g_strdup_printf("echo start 2 $(date +%%s%%N) >> %s; sleep 0.1; echo end 2 $(date +%%s%%N) >> %s; exit 5", log, log);
        const char *a1[] = { "lock", "L", "--", "sh", "-c", s1, NULL };
        const char *a2[] = { "lock", "--timeout=20s", "L", "--", "sh", "-c", s2, NULL };
        ThProc p1, p2;

        run_hubctl(&p1, f, a1);
        /* wait until the first holds the lock */
        uint64_t end = now_ms() + 10000;
        while (n_waiters(f->client, "L") < 0) {
                g_assert_cmpuint(now_ms(), <, end);
                g_usleep(5000);
        }
        run_hubctl(&p2, f, a2);
        g_assert_cmpint(exit_status(&p1, 20000), ==, 3);
        g_assert_cmpint(exit_status(&p2, 20000), ==, 5);

        g_autofree char *content = NULL;
        g_assert_true(g_file_get_contents(log, &content, NULL, NULL));
        g_auto(GStrv) lines = g_strsplit(g_strstrip(content), "\n", -1);
        g_assert_cmpuint(g_strv_length(lines), ==, 4);
        const char *want[] = { "start 1 ", "end 1 ", "start 2 ", "end 2 " };
        uint64_t ts[4];
        for (int i = 0; i < 4; i++) {
                g_assert_true(g_str_has_prefix(lines[i], want[i]));
                ts[i] = g_ascii_strtoull(lines[i] + strlen(want[i]), NULL, 10);
                if (i > 0)
                        g_assert_cmpuint(ts[i], >=, ts[i - 1]);
        }
        g_assert_cmpuint(ts[2], >=, ts[1]); /* the second started only after the first ended */

        /* the lock is free again */
        g_autoptr(GArray) rows = list_locks(f->client, NS_DEFAULT);
        g_assert_cmpuint(rows->len, ==, 0);
        g_unlink(log);
        g_rmdir(dir);
}

static void test_hubctl_status(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ThProc p;

        /* killed by a signal: 128 + signal, like a shell */
        run_hubctl(&p, f, (const char *[]) { "lock", "S", "--", "sh", "-c", "kill -TERM $$", NULL });
        g_assert_cmpint(exit_status(&p, 10000), ==, 128 + SIGTERM);
        run_hubctl(&p, f, (const char *[]) { "lock", "S", "--", "true", NULL });
        g_assert_cmpint(exit_status(&p, 10000), ==, 0);
        /* a command that does not exist */
        run_hubctl(&p, f, (const char *[]) { "lock", "S", "--", "/nonexistent/cmd", NULL });
        g_assert_cmpint(exit_status(&p, 10000), ==, 127);

        /* --nonblock when busy: exit 1 without running the command; --timeout gives up */
        uint64_t t = lock_ok(f->client, "S", NULL);
        run_hubctl(&p, f, (const char *[]) { "lock", "--nonblock", "S", "--", "sh", "-c", "exit 7", NULL });
        g_assert_cmpint(exit_status(&p, 10000), ==, 1);
        uint64_t t0 = now_ms();
        run_hubctl(&p, f, (const char *[]) { "lock", "--timeout=300ms", "S", "--", "sh", "-c", "exit 7", NULL });
        g_assert_cmpint(exit_status(&p, 10000), ==, 1);
        g_assert_cmpuint(now_ms() - t0, >=, 290);
        unlock_ok(f->client, "S", t);

        /* kill -9 of hubctl releases the lock */
        run_hubctl(&p, f, (const char *[]) { "lock", "K", "--", "sleep", "30", NULL });
        uint64_t end = now_ms() + 10000;
        while (n_waiters(f->client, "K") < 0) {
                g_assert_cmpuint(now_ms(), <, end);
                g_usleep(5000);
        }
        g_assert_cmpint(th_proc_kill(&p, SIGKILL), ==, 0);
        (void) th_proc_wait(&p, 5000, NULL);
        th_proc_clear(&p);
        t = lock_ok(f->client, "K", &(LockOpts) { .timeout_ms = 2000 });
        unlock_ok(f->client, "K", t);

        /* hubctl locks: a table and JSON lines */
        t = lock_ok(f->client, "shown", NULL);
        int pfd[2];
        g_assert_cmpint(pipe2(pfd, O_CLOEXEC), ==, 0);
        g_autofree char *addr = g_strdup_printf("--address=%s", f->bus.address);
        const char *argv[] = { HUBCTL_PATH, addr, "locks", "--json", NULL };
        p = (ThProc) TH_PROC_NULL;
        g_assert_cmpint(th_spawn(&p, argv, NULL, pfd[1], -1), >, 0);
        close(pfd[1]);
        GString *out = g_string_new(NULL);
        char buf[512];
        ssize_t k;
        while ((k = read(pfd[0], buf, sizeof(buf))) > 0)
                g_string_append_len(out, buf, k);
        close(pfd[0]);
        g_assert_cmpint(exit_status(&p, 10000), ==, 0);
        g_autofree char *want = g_strdup_printf("[{\"name\":\"shown\",\"holder\":\"%s\",\"token\":%" PRIu64 ",\"waiters\":0,"
                                                "\"shared\":false,\"disconnected\":false,\"lease_ms\":null}]\n",
                                                unique_name(f->client), t);
        g_assert_cmpstr(out->str, ==, want);
        g_string_free(out, true);
        unlock_ok(f->client, "shown", t);
}
#endif

/* ---- another uid: a system-like bus with the shipped policy --------------------------------- */

/* The hub and this process run as root. As in tests/systemd/test-policy.c, the bus includes a
 * copy of systemd/org.clusterhub.Hub1.conf with user="clusterhub" -> "root" and
 * group="clusterhub" -> the group of the system user "daemon", so that "daemon" is a member
 * allowed to call Locks1 under a uid other than the lock holder's. Its calls are made from a
 * forked child that drops to that uid before connecting (the bus takes the uid from the socket). */
typedef struct UidFixture {
        ThBus bus;
        ThHub hub;
        char *tmpdir;
        uid_t member_uid;
        gid_t member_gid;
        bool ready;
} UidFixture;

static char *uid_policy_copy(const char *dir, gid_t member_gid) {
        g_autofree char *src = g_build_filename(g_getenv("MESON_SOURCE_ROOT") ?: ".", "systemd", "org.clusterhub.Hub1.conf", NULL);
        g_autofree char *text = NULL;
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_get_contents(src, &text, NULL, &error));
        g_autofree char *member_group = g_strdup_printf("group=\"%s\"", getgrgid(member_gid)->gr_name);
        g_auto(GStrv) a = g_strsplit(text, "user=\"clusterhub\"", -1);
        g_autofree char *t1 = g_strjoinv("user=\"root\"", a);
        g_auto(GStrv) b = g_strsplit(t1, "group=\"clusterhub\"", -1);
        g_autofree char *t2 = g_strjoinv(member_group, b);
        char *path = g_build_filename(dir, "org.clusterhub.Hub1.conf", NULL);
        g_assert_true(g_file_set_contents(path, t2, -1, &error));
        return path;
}

static void uid_setup(UidFixture *f, gconstpointer data) {
        g_autoptr(GError) error = NULL;
        struct passwd *pw = getpwnam("daemon");
        g_autofree char *dbus_daemon = g_find_program_in_path("dbus-daemon");
        int r;

        *f = (UidFixture) { .bus.proc = TH_PROC_NULL, .hub.proc = TH_PROC_NULL };
        if (geteuid() != 0) {
                g_test_skip("needs root (to run a client as another uid)");
                return;
        }
        if (!dbus_daemon) {
                g_test_skip("dbus-daemon not installed");
                return;
        }
        if (!pw || pw->pw_uid == 0 || !getgrgid(pw->pw_gid)) {
                g_test_skip("no system user 'daemon' to play the second uid");
                return;
        }
        f->member_uid = pw->pw_uid;
        f->member_gid = pw->pw_gid;
        f->tmpdir = g_dir_make_tmp("ch-locks-uid-XXXXXX", &error);
        g_assert_no_error(error);
        g_autofree char *policy = uid_policy_copy(f->tmpdir, f->member_gid);
        if (!th_bus_start_full(&f->bus, TH_BUS_SYSTEM_LIKE, policy)) {
                g_test_skip(f->bus.skip_reason);
                return;
        }
        r = th_hub_spawn(&f->hub, f->bus.address, NULL);
        if (r == -ENOENT) {
                g_test_skip("clusterhubd is not built");
                return;
        }
        g_assert_cmpint(r, ==, 0);
        f->ready = true;
}

static void uid_teardown(UidFixture *f, gconstpointer data) {
        if (f->hub.proc.pid > 0 || f->hub.binary)
                (void) th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        th_bus_stop(&f->bus);
        if (f->tmpdir) {
                g_autofree char *p = g_build_filename(f->tmpdir, "org.clusterhub.Hub1.conf", NULL);
                (void) g_unlink(p);
                (void) g_rmdir(f->tmpdir);
                g_free(f->tmpdir);
        }
}

typedef enum MemberOp {
        MEMBER_LOCK,    /* Lock with a lease, write the token to the pipe, exit (one-shot) */
        MEMBER_UNLOCK,  /* Unlock; exit 0 if the outcome is `expect` (NULL: success) */
        MEMBER_REFRESH, /* Refresh(lease 1 ms); likewise */
} MemberOp;

/* Runs in the child, as the member uid: no GLib assertions, the exit status says it all. */
static int member_child(UidFixture *f, MemberOp op, const char *name, uint64_t token, const char *expect, int out) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        if (setgroups(0, NULL) < 0 || setresgid(f->member_gid, f->member_gid, f->member_gid) < 0 ||
            setresuid(f->member_uid, f->member_uid, f->member_uid) < 0)
                return 10;
        if (th_connect(&bus, f->bus.address) < 0)
                return 11;
        switch (op) {
        case MEMBER_LOCK: {
                LockOpts o = { .lease_ms = 60000 };
                uint64_t t = 0;
                r = ch_locks1_call_lock(bus, CH_BUS_NAME, NS_DEFAULT, name, append_opts, &o, &t, &e);
                if (r < 0) {
                        fprintf(stderr, "member: Lock: %s: %s\n", e.name, e.message);
                        return 12;
                }
                return dprintf(out, "%" PRIu64 "\n", t) > 0 ? 0 : 13;
        }
        case MEMBER_UNLOCK:
                r = ch_locks1_call_unlock(bus, CH_BUS_NAME, NS_DEFAULT, name, token, &e);
                break;
        case MEMBER_REFRESH:
                r = ch_locks1_call_refresh(bus, CH_BUS_NAME, NS_DEFAULT, name, token, 1, &e);
                break;
        default:
                return 14;
        }
        if (r < 0)
                fprintf(stderr, "member: %s: %s\n", e.name, e.message);
        if (expect ? (r >= 0 || !sd_bus_error_has_name(&e, expect)) : r < 0)
                return 15;
        sd_bus_error_free(&e);
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* Fork a child that does OP as the member uid; returns its exit status, the token for LOCK. */
static int as_member(UidFixture *f, MemberOp op, const char *name, uint64_t token, const char *expect, uint64_t *ret_token) {
        int p[2], status = 0;
        pid_t pid;

        g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
        fflush(NULL);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                close(p[0]);
                _exit(member_child(f, op, name, token, expect, p[1]));
        }
        close(p[1]);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        if (ret_token) {
                char buf[64] = "";
                ssize_t n = read(p[0], buf, sizeof buf - 1);
                *ret_token = n > 0 ? g_ascii_strtoull(buf, NULL, 10) : 0;
        }
        close(p[0]);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Only the same uid takes over a lease whose holder left: another uid with the right token is
 * refused both ways (root is no exception), and the holder's own uid succeeds. */
static void test_other_uid(UidFixture *f, gconstpointer data) {
        sd_bus *a = NULL, *root = NULL;
        uint64_t t, tm = 0, tt;

        if (!f->ready)
                return;
        g_assert_cmpint(th_connect(&root, f->bus.address), >=, 0);

        /* root's lease lock, holder gone: the member's Unlock and Refresh are refused */
        g_assert_cmpint(th_connect(&a, f->bus.address), >=, 0);
        t = lock_ok(a, "r", &(LockOpts) { .lease_ms = 60000 });
        sd_bus_flush_close_unref(a);
        wait_holder_left(root, "r", t);
        g_assert_cmpint(as_member(f, MEMBER_UNLOCK, "r", t, CH_ERROR_NOT_LOCK_OWNER, NULL), ==, 0);
        g_assert_cmpint(as_member(f, MEMBER_REFRESH, "r", t, CH_ERROR_NOT_LOCK_OWNER, NULL), ==, 0);
        g_usleep(100 * 1000); /* a 1 ms lease, had it been set, would have ended by now */
        g_assert_cmpint(try_lock(root, "r", NULL, &tt), ==, 0);
        unlock_ok(root, "r", t); /* the holder's uid, from a new connection */

        /* the member's one-shot lease lock: root may not end it, a later call of the member may */
        g_assert_cmpint(as_member(f, MEMBER_LOCK, "m", 0, NULL, &tm), ==, 0);
        g_assert_cmpuint(tm, >, t);
        wait_holder_left(root, "m", tm);
        g_autofree char *err = unlock_err(root, "m", tm, NULL);
        g_assert_cmpstr(err, ==, CH_ERROR_NOT_LOCK_OWNER);
        g_autofree char *err2 = refresh_err(root, "m", tm, 1, NULL);
        g_assert_cmpstr(err2, ==, CH_ERROR_NOT_LOCK_OWNER);
        g_assert_cmpint(as_member(f, MEMBER_UNLOCK, "m", tm, NULL, NULL), ==, 0);
        g_assert_cmpint(try_lock(root, "m", NULL, &tt), ==, 1);
        unlock_ok(root, "m", tt);
        sd_bus_flush_close_unref(root);
}

int main(int argc, char **argv) {
        self_path = argv[0];
        if (argc > 1 && g_str_equal(argv[1], "--locks-worker"))
                return worker_main(argc, argv);
        self_path = g_file_read_link("/proc/self/exe", NULL);

        g_test_init(&argc, &argv, NULL);
        g_assert_cmpint(sd_bus_error_add_map(ch_error_map), >=, 0);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/counter", test_counter);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/kill-holder", test_kill_holder);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/kill-middle-waiter", test_kill_middle_waiter);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/unlock-foreign", test_unlock_foreign);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/lease-holder-left", test_lease_holder_left);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/tokens-after-restart", test_tokens_restart);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/lease-limit", test_lease_limit);
        g_test_add("/system-like/locks/other-uid", UidFixture, NULL, uid_setup, test_other_uid, uid_teardown);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/not-locked", test_not_locked);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/try-lock", test_try_lock);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/lease", test_lease);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/shared", test_shared);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/timeout", test_timeout);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/tokens", test_tokens);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/list", test_list);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/invalid", test_invalid);
        TH_ADD_BUS_TEST_WITH_HUB("/locks/drop-namespace", test_drop_namespace);
#ifdef HUBCTL_PATH
        TH_ADD_BUS_TEST_WITH_HUB("/hubctl/lock-serializes", test_hubctl_lock);
        TH_ADD_BUS_TEST_WITH_HUB("/hubctl/status", test_hubctl_status);
#endif
        return g_test_run();
}
