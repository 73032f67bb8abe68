/* SPDX-License-Identifier: MIT */
/* The client-side cache of libclusterhub (ch_cache_*) against the real hub: no cached read returns
 * a value older than a write acknowledged before the read began (readers in their own processes,
 * a writer telling them over pipes what it has seen acknowledged, thousands of rounds), also with
 * every Invalidate signal ignored (the sequence page alone); the Redis race staged on purpose (a
 * reply that was on its way while a write was acknowledged); the placeholder; TTLs, absences,
 * hash fields, Flush, prefix mode, a hub restart.
 *
 * meson runs it on the bus (suite cache) and with the caches on the hub's private socket
 * (TH_TRANSPORT=private, suite socket-cache); the writer always uses the bus, so the second run
 * mixes transports. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clusterhub/clusterhub.h"
#include "clusterhub/ch-runtime.h"
#include "harness.h"

#define IGNORE_ENV "CLUSTERHUB_CACHE_TEST_IGNORE_INVALIDATE"
#define ROUNDS 3000
#define READERS 2
#define END_MARK INT64_MAX

static int64_t now_ms(void) {
        return g_get_monotonic_time() / 1000;
}

/* The caches' transport: the suite's (TH_TRANSPORT). */
static ChClient *reader_client_new(const char *address, const char *socket) {
        ChClientOptions o = {
                .address = address,
                .transport = socket ? CH_TRANSPORT_PRIVATE : CH_TRANSPORT_BUS,
                .private_socket = socket,
        };
        ChClient *c = NULL;

        if (ch_client_new(&c, &o) < 0)
                return NULL;
        return c;
}

static ChClient *client_new(ThFixture *f) {
        ChClient *c = reader_client_new(f->bus.address, th_transport_private() ? f->socket_path : NULL);
        g_assert_nonnull(c);
        g_assert_true(!th_transport_private() || ch_client_get_private_socket(c));
        return c;
}

/* The writer: always on the bus. */
static sd_bus *writer_new(ThFixture *f) {
        sd_bus *w = NULL;
        g_assert_cmpint(th_connect(&w, f->bus.address), >=, 0);
        return w;
}

typedef struct SetArgs {
        int64_t v;
        const char *s;
        uint64_t ttl_ms;
} SetArgs;

static int append_set(sd_bus_message *m, void *userdata) {
        const SetArgs *a = userdata;
        int r = a->s ? sd_bus_message_append(m, "v", "s", a->s) : sd_bus_message_append(m, "v", "x", a->v);
        if (r < 0)
                return r;
        return a->ttl_ms ? sd_bus_message_append(m, "a{sv}", 1, "ttl_ms", "t", a->ttl_ms) : sd_bus_message_append(m, "a{sv}", 0);
}

static int set_full(sd_bus *w, const char *key, const SetArgs *a) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int set = 0;
        int r = ch_store1_call_set(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, key, append_set, (void *) a, &set, &e);
        sd_bus_error_free(&e);
        return r;
}

static void set_int(sd_bus *w, const char *key, int64_t v) {
        SetArgs a = { .v = v };
        g_assert_cmpint(set_full(w, key, &a), ==, 0);
}

static void set_str(sd_bus *w, const char *key, const char *s) {
        SetArgs a = { .s = s };
        g_assert_cmpint(set_full(w, key, &a), ==, 0);
}

static int64_t msg_int(sd_bus_message *m) {
        int64_t v = -1;
        g_assert_cmpint(sd_bus_message_read(m, "v", "x", &v), >, 0);
        return v;
}

/* ch_cache_get of a string: its result (1 hit, 0 fetched) and the value in *ret. */
static int get_str(ChCache *cache, const char *key, char **ret) {
        sd_bus_message *m = NULL;
        const char *s;
        int r = ch_cache_get(cache, key, &m);

        *ret = NULL;
        if (r >= 0) {
                g_assert_cmpint(sd_bus_message_read(m, "v", "s", &s), >, 0);
                *ret = g_strdup(s);
                sd_bus_message_unref(m);
        }
        return r;
}

static int64_t get_int(ChCache *cache, const char *key, int *ret_r) {
        sd_bus_message *m = NULL;
        int64_t v = -1;
        int r = ch_cache_get(cache, key, &m);

        if (r >= 0) {
                v = msg_int(m);
                sd_bus_message_unref(m);
        }
        if (ret_r)
                *ret_r = r;
        return v;
}

static ChCacheStats stats(ChCache *cache) {
        ChCacheStats s;
        g_assert_cmpint(ch_cache_get_stats(cache, &s), ==, 0);
        return s;
}

/* Runs C's loop until CACHE has received N Invalidate signals in all (10 s at most). */
static void wait_invalidations(ChClient *c, ChCache *cache, uint64_t n) {
        int64_t deadline = now_ms() + 10000;

        while (stats(cache).invalidations < n && now_ms() < deadline)
                g_assert_cmpint(ch_client_process(c, 50 * 1000), >=, 0);
        g_assert_cmpuint(stats(cache).invalidations, >=, n);
}

/* ---- readers and a writer, in processes ------------------------------------------------ */

typedef struct ReaderResult {
        uint64_t reads, hits, misses, stale, invalidations, violations;
        int64_t last, bad_value, bad_floor; /* the first violation */
        int error;
} ReaderResult;

/* A reader process: before each cached read, learns from IN the newest value the writer saw
 * acknowledged; the read must not return less.  Ends at END_MARK with a last read, writes its
 * ReaderResult to OUT.  No GLib assertions here: a failed child must not take the harness's
 * abort path (which stops the hub); everything goes back in the result. */
static int reader_main(const char *address, const char *socket, int in, int out, bool ignore_invalidate, bool typed) {
        ReaderResult res = {};
        ChClient *c = NULL;
        ChCache *cache = NULL;
        int64_t floor = 0;
        bool end = false;
        int r;

        if (ignore_invalidate)
                setenv(IGNORE_ENV, "1", 1);
        c = reader_client_new(address, socket);
        if (!c) {
                res.error = -ENOTCONN;
                goto done;
        }
        r = ch_cache_new(c, NULL, &(ChCacheOptions) { .max_age_usec = UINT64_MAX }, &cache);
        if (r < 0) {
                res.error = r;
                goto done;
        }
        while (!end) {
                int64_t v;
                ssize_t n;
                bool news = false;

                while ((n = read(in, &v, sizeof v)) == sizeof v) {
                        news = true;
                        if (v == END_MARK)
                                end = true;
                        else if (v > floor)
                                floor = v;
                }
                if (typed)
                        r = ch_cache_get_int64(cache, "k", &v);
                else
                        v = get_int(cache, "k", &r);
                if (r < 0 && !(r == -ENOKEY && floor == 0)) {
                        res.error = r;
                        break;
                }
                res.reads++;
                if (r >= 0 && v < floor && res.violations++ == 0) {
                        res.bad_value = v;
                        res.bad_floor = floor;
                }
                res.last = v;
                /* dispatch the Invalidate signals now and then, as a worker's loop would */
                if (res.reads % 8 == 0)
                        (void) ch_client_process(c, 0);
                /* nothing new: give the writer some of the two CPUs */
                if (!news && res.reads % 32 == 0)
                        (void) poll(&(struct pollfd) { .fd = in, .events = POLLIN }, 1, 1);
        }
        ChCacheStats s;
        (void) ch_cache_get_stats(cache, &s);
        res.hits = s.hits;
        res.misses = s.misses;
        res.stale = s.stale;
        res.invalidations = s.invalidations;
done:
        ch_cache_free(cache);
        ch_client_free(c);
        return write(out, &res, sizeof res) == sizeof res ? 0 : 1;
}

typedef struct Reader {
        pid_t pid;
        int to;         /* values to the reader */
        int from;       /* its result */
} Reader;

/* TYPED: the reader reads with ch_cache_get_int64(), else with ch_cache_get() and the message. */
static void reader_start(Reader *rd, ThFixture *f, bool ignore_invalidate, bool typed) {
        int in[2], out[2];
        pid_t parent = getpid();

        g_assert_cmpint(pipe2(in, O_CLOEXEC), ==, 0);
        g_assert_cmpint(pipe2(out, O_CLOEXEC), ==, 0);
        fflush(stdout);
        fflush(stderr);
        rd->pid = fork();
        g_assert_cmpint(rd->pid, >=, 0);
        if (rd->pid == 0) {
                signal(SIGABRT, SIG_DFL);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                close(in[1]);
                close(out[0]);
                (void) fcntl(in[0], F_SETFL, O_NONBLOCK);
                _exit(reader_main(f->bus.address, th_transport_private() ? f->socket_path : NULL, in[0], out[1],
                                  ignore_invalidate, typed));
        }
        close(in[0]);
        close(out[1]);
        rd->to = in[1];
        rd->from = out[0];
}

static void reader_tell(Reader *rd, int64_t v) {
        g_assert_cmpint(write(rd->to, &v, sizeof v), ==, sizeof v);
}

static ReaderResult reader_finish(Reader *rd) {
        ReaderResult res = {};
        struct pollfd p = { .fd = rd->from, .events = POLLIN };
        int status = -1;

        reader_tell(rd, END_MARK);
        g_assert_cmpint(poll(&p, 1, 120000), ==, 1);
        g_assert_cmpint(read(rd->from, &res, sizeof res), ==, sizeof res);
        g_assert_cmpint(waitpid(rd->pid, &status, 0), ==, rd->pid);
        g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(rd->to);
        close(rd->from);
        return res;
}

static void run_readers_writer(ThFixture *f, bool ignore_invalidate) {
        sd_bus *w = writer_new(f);
        Reader rd[READERS];
        uint64_t hits = 0, stale = 0, invalidations = 0;

        for (int i = 0; i < READERS; i++)
                reader_start(&rd[i], f, ignore_invalidate, i % 2 == 1);
        for (int64_t n = 1; n <= ROUNDS; n++) {
                set_int(w, "k", n); /* acknowledged ... */
                for (int i = 0; i < READERS; i++)
                        reader_tell(&rd[i], n); /* ... then told */
                if (n % 4 == 0)
                        g_usleep(100); /* room for hits between writes */
        }
        for (int i = 0; i < READERS; i++) {
                ReaderResult res = reader_finish(&rd[i]);
                g_test_message("reader %d: %" PRIu64 " reads, %" PRIu64 " hits, %" PRIu64 " misses (%" PRIu64
                               " stale by the page or TTL), %" PRIu64 " Invalidate signals",
                               i, res.reads, res.hits, res.misses, res.stale, res.invalidations);
                g_assert_cmpint(res.error, ==, 0);
                if (res.violations)
                        g_error("reader %d read %" PRId64 " after %" PRId64 " was acknowledged (%" PRIu64 " such reads)", i,
                                res.bad_value, res.bad_floor, res.violations);
                g_assert_cmpuint(res.violations, ==, 0);
                g_assert_cmpint(res.last, ==, ROUNDS); /* the last read, after the last write */
                g_assert_cmpuint(res.reads, >, 0);
                hits += res.hits;
                stale += res.stale;
                invalidations += res.invalidations;
        }
        /* the cache served reads, and the hub told the readers of changes */
        g_assert_cmpuint(hits, >, 0);
        g_assert_cmpuint(invalidations, >, 0);
        /* with the signals ignored, only the page turned old entries away */
        if (ignore_invalidate)
                g_assert_cmpuint(stale, >, 0);
        sd_bus_flush_close_unref(w);
}

static void test_readers_writer(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        run_readers_writer(f, false);
}

static void test_readers_writer_no_invalidate(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        run_readers_writer(f, true);
}

/* ---- the staged race ------------------------------------------------------------------- */

typedef struct Fetched {
        unsigned n;
        int error;
        int64_t v;
} Fetched;

static void on_fetched(ChCache *cache, const char *key, const char *field, int error, sd_bus_message *value, void *userdata) {
        Fetched *x = userdata;
        x->n++;
        x->error = error;
        if (error >= 0)
                x->v = msg_int(value);
}

static void wait_readable(ChClient *c) {
        struct pollfd p = { .fd = sd_bus_get_fd(ch_client_get_bus(c)), .events = POLLIN };
        g_assert_cmpint(poll(&p, 1, 10000), ==, 1);
}

/* A reply on its way while a write is acknowledged must not be served afterwards: the Redis
 * race (an invalidation overtaking a reply), made to happen.  IGNORE: with every Invalidate
 * ignored, so that only the page can catch it. */
static void run_staged_race(ThFixture *f, bool ignore) {
        sd_bus *w = writer_new(f);
        ChClient *c = client_new(f);
        ChCache *cache = NULL;
        Fetched x = {};
        int r;

        if (ignore)
                g_assert_cmpint(setenv(IGNORE_ENV, "1", 1), ==, 0);
        g_assert_cmpint(ch_cache_new(c, NULL, NULL, &cache), ==, 0);
        g_assert_cmpint(unsetenv(IGNORE_ENV), ==, 0);
        set_int(w, "k", 1);
        g_assert_cmpint(get_int(cache, "k", &r), ==, 1);
        g_assert_cmpint(r, ==, 0); /* fetched */
        g_assert_cmpint(get_int(cache, "k", &r), ==, 1);
        g_assert_cmpint(r, ==, 1); /* served from the cache */

        /* 1. a write acknowledged to another connection; nothing dispatched here since: the
         * Invalidate waits unread on our connection, and only the page can tell */
        set_int(w, "k", 2);
        g_assert_cmpint(get_int(cache, "k", &r), ==, 2);
        g_assert_cmpint(r, ==, 0);
        wait_invalidations(c, cache, 1); /* nothing else arrives unasked from here on */

        /* 2. the race: our GetTracked is answered (value 2) and the reply waits unread on our
         * connection; then a write of 3 is acknowledged; then we process the reply */
        g_assert_cmpint(get_int(cache, "k", &r), ==, 2);
        g_assert_cmpint(ch_cache_prefetch(cache, "k", NULL, on_fetched, &x), ==, 0);
        g_assert_cmpint(ch_client_flush(c), >=, 0);
        wait_readable(c); /* the reply is here, unread */
        set_int(w, "k", 3);
        while (x.n == 0)
                g_assert_cmpint(ch_client_process(c, 10000 * 1000), >, 0);
        g_assert_cmpint(x.error, ==, 0);
        g_assert_cmpint(x.v, ==, 2); /* the reply held the old value: the race took place */
        wait_invalidations(c, cache, 2);
        g_assert_cmpint(get_int(cache, "k", &r), ==, 3); /* and it is not served as fresh */
        g_assert_cmpint(r, ==, 0);
        /* the same, reading as soon as the late reply is processed (its Invalidate not dispatched) */
        x = (Fetched) {};
        g_assert_cmpint(ch_cache_prefetch(cache, "k", NULL, on_fetched, &x), ==, 0);
        g_assert_cmpint(ch_client_flush(c), >=, 0);
        wait_readable(c);
        set_int(w, "k", 4);
        while (x.n == 0)
                g_assert_cmpint(ch_client_process(c, 10000 * 1000), >, 0);
        g_assert_cmpint(x.v, ==, 3);
        g_assert_cmpint(get_int(cache, "k", &r), ==, 4);
        g_assert_cmpint(r, ==, 0);

        wait_invalidations(c, cache, 3); /* the hub sent them... */
        ChCacheStats s = stats(cache);
        if (ignore)
                g_assert_cmpuint(s.invalidated, ==, 0); /* ... and they were ignored */
        else
                g_assert_cmpuint(s.invalidated, >, 0);
        ch_cache_free(cache);
        ch_client_free(c);
        sd_bus_flush_close_unref(w);
}

static void test_staged_race(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        run_staged_race(f, false);
}

static void test_staged_race_no_invalidate(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        run_staged_race(f, true);
}

/* An Invalidate of a key dispatched while a fetch of it is in flight keeps the reply out of the
 * cache: Redis's placeholder. */
static void test_placeholder(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *w = writer_new(f);
        ChClient *c = client_new(f);
        ChCache *cache = NULL;
        Fetched x = {};
        int r;

        g_assert_cmpint(ch_cache_new(c, NULL, NULL, &cache), ==, 0);
        set_int(w, "k", 1);
        g_assert_cmpint(get_int(cache, "k", &r), ==, 1); /* tracked: the next change invalidates */
        set_int(w, "k", 2);  /* its Invalidate waits on our connection, ahead of ... */
        g_assert_cmpint(ch_cache_prefetch(cache, "k", NULL, on_fetched, &x), ==, 0); /* ... this reply */
        uint64_t discarded = stats(cache).discarded;
        while (x.n == 0)
                g_assert_cmpint(ch_client_process(c, 10000 * 1000), >, 0);
        g_assert_cmpint(x.v, ==, 2);
        g_assert_cmpuint(stats(cache).discarded, ==, discarded + 1); /* not stored */
        uint64_t misses = stats(cache).misses;
        g_assert_cmpint(get_int(cache, "k", &r), ==, 2);
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpuint(stats(cache).misses, ==, misses + 1);
        /* a prefetch with nothing in between is stored */
        x = (Fetched) {};
        g_assert_cmpint(ch_cache_prefetch(cache, "other", NULL, on_fetched, &x), ==, 0);
        while (x.n == 0)
                g_assert_cmpint(ch_client_process(c, 10000 * 1000), >, 0);
        g_assert_cmpint(x.error, ==, -ENOKEY);
        g_assert_cmpint(ch_cache_get(cache, "other", NULL), ==, -ENOKEY);
        g_assert_cmpuint(stats(cache).misses, ==, misses + 2); /* the absence was served cached */
        ch_cache_free(cache);
        ch_client_free(c);
        sd_bus_flush_close_unref(w);
}

/* ---- semantics ------------------------------------------------------------------------------- */

static void test_basics(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *w = writer_new(f);
        ChClient *c = client_new(f);
        ChCache *cache = NULL, *other = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        g_autofree char *s = NULL;
        const char *str;

        g_assert_cmpint(ch_cache_new(NULL, NULL, NULL, &cache), ==, -EINVAL);
        g_assert_cmpint(ch_cache_new(c, "bad/ns", NULL, &cache), ==, -EINVAL);
        g_assert_cmpint(ch_cache_new(c, NULL, &(ChCacheOptions) { .prefixes = (const char *[]) { NULL } }, &cache), ==, -EINVAL);
        g_assert_cmpint(ch_cache_new(c, NULL, NULL, &cache), ==, 0);
        g_assert_cmpint(ch_cache_new(c, "default", NULL, &other), ==, -EBUSY);
        g_assert_cmpint(ch_cache_new(c, "other", NULL, &other), ==, 0);

        /* an absence is cached */
        g_assert_cmpint(ch_cache_get(cache, "nope", NULL), ==, -ENOKEY);
        g_assert_cmpint(ch_cache_get(cache, "nope", NULL), ==, -ENOKEY);
        ChCacheStats st = stats(cache);
        g_assert_cmpuint(st.misses, ==, 1);
        g_assert_cmpuint(st.hits, ==, 1);
        set_str(w, "nope", "now");
        g_assert_cmpint(get_str(cache, "nope", &s), ==, 0);
        g_assert_cmpstr(s, ==, "now");
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(get_str(cache, "nope", &s), ==, 1);
        g_assert_cmpstr(s, ==, "now");
        g_clear_pointer(&s, g_free);

        /* the typed getters: the value decoded once */
        const char *cs = NULL;
        int64_t iv = 0;
        set_int(w, "n", 42);
        g_assert_cmpint(ch_cache_get_int64(cache, "n", &iv), ==, 0);
        g_assert_cmpint(iv, ==, 42);
        g_assert_cmpint(ch_cache_get_int64(cache, "n", &iv), ==, 1);
        g_assert_cmpint(iv, ==, 42);
        g_assert_cmpint(ch_cache_get_string(cache, "n", &cs), ==, -EMEDIUMTYPE);
        g_assert_cmpint(ch_cache_get_string(cache, "nope", &cs), ==, 1);
        g_assert_cmpstr(cs, ==, "now");
        g_assert_cmpint(ch_cache_get_int64(cache, "nope", &iv), ==, -EMEDIUMTYPE);
        g_assert_cmpint(ch_cache_get_int64(cache, "nothere", &iv), ==, -ENOKEY);
        g_assert_cmpint(ch_cache_get_int64(cache, "nothere", &iv), ==, -ENOKEY);
        set_int(w, "n", 43);
        g_assert_cmpint(ch_cache_get_int64(cache, "n", &iv), ==, 0);
        g_assert_cmpint(iv, ==, 43);
        g_assert_cmpint(sd_bus_call_method(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "org.clusterhub.Store1", "Set", &e, NULL,
                                           "sva{sv}", "big", "t", UINT64_MAX, 0), >=, 0);
        g_assert_cmpint(ch_cache_get_int64(cache, "big", &iv), ==, -ERANGE);
        g_assert_cmpint(sd_bus_call_method(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "org.clusterhub.Store1", "Set", &e, NULL,
                                           "sva{sv}", "small", "y", 7, 0), >=, 0);
        g_assert_cmpint(ch_cache_get_int64(cache, "small", &iv), ==, 0);
        g_assert_cmpint(iv, ==, 7);
        /* the string stays valid while the loop dispatches an Invalidate of its key */
        g_assert_cmpint(ch_cache_get_string(cache, "nope", &cs), ==, 1);
        uint64_t n_inval = stats(cache).invalidations;
        set_str(w, "nope", "changed");
        wait_invalidations(c, cache, n_inval + 1);
        g_assert_cmpstr(cs, ==, "now");
        g_assert_cmpint(ch_cache_get_string(cache, "nope", &cs), ==, 0);
        g_assert_cmpstr(cs, ==, "changed");

        /* MGet: the hits from the cache, the misses in one MGetTracked, stored */
        {
                const char *keys[] = { "n", "m1", "absent", "m2", "h" };
                sd_bus_message *vals[5];
                int64_t v1 = 0;
                set_int(w, "m1", 1);
                set_str(w, "m2", "two");
                g_assert_cmpint(sd_bus_call_method(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "org.clusterhub.Store1", "HSet",
                                                   &e, NULL, "sa{sv}", "h", 1, "f", "s", "one"), >=, 0);
                uint64_t misses0 = stats(cache).misses;
                g_assert_cmpint(ch_cache_mget(cache, keys, 5, vals), ==, 1); /* "n" is cached */
                g_assert_cmpuint(stats(cache).misses, ==, misses0 + 4);
                g_assert_cmpint(msg_int(vals[0]), ==, 43);
                g_assert_cmpint(msg_int(vals[1]), ==, 1);
                g_assert_null(vals[2]);
                g_assert_cmpint(sd_bus_message_read(vals[3], "v", "s", &str), >, 0);
                g_assert_cmpstr(str, ==, "two");
                g_assert_null(vals[4]); /* a hash: left out, as MGet does */
                for (int i = 0; i < 5; i++)
                        sd_bus_message_unref(vals[i]);
                /* all cached now, and the typed getters see them */
                g_assert_cmpint(ch_cache_mget(cache, keys, 5, vals), ==, 5);
                g_assert_cmpuint(stats(cache).misses, ==, misses0 + 4);
                for (int i = 0; i < 5; i++)
                        sd_bus_message_unref(vals[i]);
                /* the hash's "absent" came from MGetTracked: a single read still says WrongType,
                 * as it does uncached, and mget still serves it from the cache */
                g_assert_cmpint(ch_cache_get(cache, "h", NULL), ==, -EMEDIUMTYPE);
                g_assert_cmpint(ch_cache_get_string(cache, "h", &cs), ==, -EMEDIUMTYPE);
                g_assert_cmpint(ch_cache_mget(cache, keys, 5, vals), ==, 5);
                g_assert_null(vals[4]);
                for (int i = 0; i < 5; i++)
                        sd_bus_message_unref(vals[i]);
                /* a key given twice, both hits: each value reads on its own */
                {
                        const char *twice[] = { "m2", "m1", "m2" };
                        sd_bus_message *tv[3];
                        g_assert_cmpint(ch_cache_mget(cache, twice, 3, tv), ==, 3);
                        for (int i = 0; i < 3; i += 2) {
                                g_assert_cmpint(sd_bus_message_read(tv[i], "v", "s", &str), >, 0);
                                g_assert_cmpstr(str, ==, "two");
                        }
                        g_assert_cmpint(msg_int(tv[1]), ==, 1);
                        for (int i = 0; i < 3; i++)
                                sd_bus_message_unref(tv[i]);
                }
                g_assert_cmpint(ch_cache_get_int64(cache, "m1", &v1), ==, 1);
                g_assert_cmpint(v1, ==, 1);
                g_assert_cmpint(ch_cache_get_string(cache, "m2", &cs), ==, 1);
                g_assert_cmpstr(cs, ==, "two");
                /* a write: that key misses again */
                set_int(w, "m1", 2);
                g_assert_cmpint(ch_cache_mget(cache, keys, 5, vals), ==, 4);
                g_assert_cmpint(msg_int(vals[1]), ==, 2);
                for (int i = 0; i < 5; i++)
                        sd_bus_message_unref(vals[i]);
                g_assert_cmpint(ch_cache_mget(cache, NULL, 0, vals), ==, 0);
                g_assert_cmpint(ch_store1_call_del(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, (char *[]) { (char *) "h", NULL },
                                                   NULL, &e), >=, 0);
        }

        /* hash fields: any change of the hash */
        g_assert_cmpint(sd_bus_call_method(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "org.clusterhub.Store1", "HSet",
                                           &e, NULL, "sa{sv}", "h", 2, "f", "s", "one", "g", "s", "x"), >=, 0);
        g_assert_cmpint(ch_cache_hget(cache, "h", "f", &m), ==, 0);
        g_assert_cmpint(sd_bus_message_read(m, "v", "s", &str), >, 0);
        g_assert_cmpstr(str, ==, "one");
        sd_bus_message_unref(m);
        g_assert_cmpint(ch_cache_hget(cache, "h", "f", NULL), ==, 1);
        g_assert_cmpint(ch_cache_hget(cache, "h", "nofield", NULL), ==, -ENOKEY);
        g_assert_cmpint(ch_cache_hget(cache, "h", "nofield", NULL), ==, -ENOKEY);
        g_assert_cmpint(sd_bus_call_method(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, "org.clusterhub.Store1", "HSet",
                                           &e, NULL, "sa{sv}", "h", 1, "g", "s", "y"), >=, 0);
        g_assert_cmpint(ch_cache_hget(cache, "h", "f", NULL), ==, 0); /* another field changed: fetched */
        g_assert_cmpint(ch_cache_hget(cache, "h", "f", NULL), ==, 1);
        g_assert_cmpint(ch_cache_hget_string(cache, "h", "f", &cs), ==, 1);
        g_assert_cmpstr(cs, ==, "one");
        g_assert_cmpint(ch_cache_hget_int64(cache, "h", "f", &iv), ==, -EMEDIUMTYPE);
        g_assert_cmpint(ch_cache_hget_string(cache, "h", "g", &cs), ==, 0);
        g_assert_cmpstr(cs, ==, "y");
        /* WrongType is not cached */
        g_assert_cmpint(ch_cache_get(cache, "h", NULL), ==, -EMEDIUMTYPE);
        g_assert_cmpstr(ch_client_get_last_error(c)->name, ==, CH_ERROR_WRONG_TYPE);

        /* namespaces are apart */
        set_str(w, "x", "default");
        g_assert_cmpint(ch_cache_get(other, "x", NULL), ==, -ENOKEY);
        g_assert_cmpint(get_str(cache, "x", &s), ==, 0);
        g_assert_cmpstr(s, ==, "default");
        g_clear_pointer(&s, g_free);

        /* Flush: everything goes (the page says so at once, Invalidate([]) frees it) */
        g_assert_cmpint(get_str(cache, "x", &s), ==, 1);
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(ch_store1_call_flush(w, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH, &e), >=, 0);
        g_assert_cmpint(ch_cache_get(cache, "x", NULL), ==, -ENOKEY);
        g_assert_cmpint(ch_cache_get(cache, "x", NULL), ==, -ENOKEY); /* cached absence */
        int64_t deadline = now_ms() + 10000;
        while (stats(cache).entries > 0 && now_ms() < deadline)
                g_assert_cmpint(ch_client_process(c, 50000), >=, 0);
        g_assert_cmpuint(stats(cache).entries, ==, 0);
        g_assert_cmpuint(stats(cache).flushes, >, 0);

        /* DropNamespace ends the tracking there: the cache tracks the new namespace, once */
        g_assert_cmpint(sd_bus_call_method(w, CH_BUS_NAME, CH_NAMESPACE_PATH_PREFIX "other", "org.clusterhub.Store1", "Set",
                                           &e, NULL, "sva{sv}", "x", "s", "other", 0), >=, 0);
        g_assert_cmpint(get_str(other, "x", &s), ==, 0);
        g_assert_cmpstr(s, ==, "other");
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(get_str(other, "x", &s), ==, 1);
        g_clear_pointer(&s, g_free);
        g_assert_cmpuint(stats(other).tracks, ==, 1);
        g_assert_cmpint(ch_hub1_call_drop_namespace(w, CH_BUS_NAME, CH_HUB_PATH, "other", &e), >=, 0);
        g_assert_cmpint(ch_cache_get(other, "x", NULL), ==, -ENOKEY); /* not the dropped value */
        g_assert_cmpuint(stats(other).tracks, ==, 2);
        g_assert_cmpint(ch_cache_get(other, "x", NULL), ==, -ENOKEY);
        g_assert_cmpint(sd_bus_call_method(w, CH_BUS_NAME, CH_NAMESPACE_PATH_PREFIX "other", "org.clusterhub.Store1", "Set",
                                           &e, NULL, "sva{sv}", "x", "s", "again", 0), >=, 0);
        g_assert_cmpint(get_str(other, "x", &s), ==, 0);
        g_assert_cmpstr(s, ==, "again");
        g_clear_pointer(&s, g_free);

        /* bounded */
        ch_cache_free(other);
        g_assert_cmpint(ch_cache_new(c, "other", &(ChCacheOptions) { .max_entries = 3 }, &other), ==, 0);
        for (int i = 0; i < 10; i++) {
                g_autofree char *k = g_strdup_printf("b%d", i);
                g_assert_cmpint(ch_cache_get(other, k, NULL), ==, -ENOKEY);
                g_assert_cmpuint(stats(other).entries, <=, 3);
        }
        g_assert_cmpuint(stats(other).evictions, ==, 7);
        ch_cache_clear(other);
        g_assert_cmpuint(stats(other).entries, ==, 0);

        ch_cache_free(other);
        ch_cache_free(cache);
        ch_client_free(c);
        sd_bus_flush_close_unref(w);
}

static void test_ttl(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *w = writer_new(f);
        ChClient *c = client_new(f);
        ChCache *cache = NULL;
        g_autofree char *s = NULL;
        SetArgs a = { .s = "short", .ttl_ms = 3000 }; /* room for a loaded machine */

        g_assert_cmpint(ch_cache_new(c, NULL, &(ChCacheOptions) { .noloop = true }, &cache), ==, 0);
        g_assert_cmpint(set_full(w, "t", &a), ==, 0);
        g_assert_cmpint(get_str(cache, "t", &s), ==, 0);
        g_assert_cmpstr(s, ==, "short");
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(get_str(cache, "t", &s), ==, 1);
        g_clear_pointer(&s, g_free);
        /* past the deadline: fetched again, and gone */
        int64_t deadline = now_ms() + 20000;
        int r;
        while ((r = get_str(cache, "t", &s)) >= 0 && now_ms() < deadline) {
                g_clear_pointer(&s, g_free);
                g_usleep(20000);
        }
        g_assert_cmpint(r, ==, -ENOKEY);
        g_assert_cmpuint(stats(cache).stale, >, 0);

        /* a TTL of 2^62 ms ends past what a ns deadline can hold: still cached */
        a = (SetArgs) { .s = "far", .ttl_ms = UINT64_C(1) << 62 };
        g_assert_cmpint(set_full(w, "far", &a), ==, 0);
        g_assert_cmpint(get_str(cache, "far", &s), ==, 0);
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(get_str(cache, "far", &s), ==, 1);
        g_assert_cmpstr(s, ==, "far");
        g_clear_pointer(&s, g_free);
        ch_cache_free(cache);
        ch_client_free(c);
        sd_bus_flush_close_unref(w);
}

static void test_prefix(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *w = writer_new(f);
        ChClient *c = client_new(f);
        ChCache *cache = NULL;
        const char *prefixes[] = { "cfg.", NULL };
        int r;

        g_assert_cmpint(ch_cache_new(c, NULL, &(ChCacheOptions) { .prefixes = (const char *[]) { "a", "ab", NULL } }, &cache),
                        ==, -EINVAL); /* overlapping: the hub refuses */
        g_assert_cmpint(ch_cache_new(c, NULL, &(ChCacheOptions) { .prefixes = prefixes }, &cache), ==, 0);
        set_int(w, "cfg.a", 1);
        set_int(w, "other", 1);
        g_assert_cmpint(get_int(cache, "cfg.a", &r), ==, 1);
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpint(get_int(cache, "cfg.a", &r), ==, 1);
        g_assert_cmpint(r, ==, 1);
        g_assert_cmpint(get_int(cache, "other", &r), ==, 1);
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpint(get_int(cache, "other", &r), ==, 1);
        g_assert_cmpint(r, ==, 0); /* outside the prefixes: not kept */
        set_int(w, "cfg.a", 2);
        g_assert_cmpint(get_int(cache, "cfg.a", &r), ==, 2);
        wait_invalidations(c, cache, 1);
        ch_cache_free(cache);
        ch_client_free(c);
        sd_bus_flush_close_unref(w);
}

static void test_hub_restart(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        sd_bus *w = writer_new(f);
        ChClient *c = client_new(f);
        ChCache *cache = NULL;
        g_autofree char *s = NULL;

        g_assert_cmpint(ch_cache_new(c, NULL, NULL, &cache), ==, 0);
        set_str(w, "k", "before");
        g_assert_cmpint(get_str(cache, "k", &s), ==, 0);
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(get_str(cache, "k", &s), ==, 1);
        g_clear_pointer(&s, g_free);
        g_assert_cmpuint(stats(cache).tracks, ==, 1);

        th_hub_stop(&f->hub);
        th_hub_clear(&f->hub);
        /* the client learns of it (NameOwnerChanged; the socket closing) and drops everything */
        int64_t deadline = now_ms() + 10000;
        while (stats(cache).entries > 0 && now_ms() < deadline)
                g_assert_cmpint(ch_client_process(c, 50000), >=, 0);
        g_assert_cmpuint(stats(cache).entries, ==, 0);
        g_assert_cmpint(th_fixture_spawn_hub(f, NULL), ==, 0);
        set_str(w, "k", "after");

        /* tracked again on the new hub (on the socket once reconnected) */
        int r;
        deadline = now_ms() + 10000;
        while ((r = get_str(cache, "k", &s)) < 0 && now_ms() < deadline) {
                g_assert_cmpint(ch_client_process(c, 50000), >=, 0);
        }
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpstr(s, ==, "after");
        g_clear_pointer(&s, g_free);
        g_assert_cmpuint(stats(cache).tracks, ==, 2);
        g_assert_cmpint(get_str(cache, "k", &s), ==, 1);
        g_assert_cmpstr(s, ==, "after");
        set_str(w, "k", "again");
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(get_str(cache, "k", &s), ==, 0);
        g_assert_cmpstr(s, ==, "again");
        g_clear_pointer(&s, g_free);
        g_assert_cmpint(get_str(cache, "k", &s), ==, 1);
        g_clear_pointer(&s, g_free);

        /* the hub dies hard and another one is written to before our loop ran: the old page is
         * never bumped again, and the news waits unread on our connection; the cache learns it
         * from the kernel (a pidfd of the hub) and does not serve "again" */
        g_assert_cmpint(th_hub_kill(&f->hub, SIGKILL), ==, 0);
        g_assert_true(th_hub_wait_exit(&f->hub, NULL));
        th_hub_clear(&f->hub);
        g_assert_cmpint(th_fixture_spawn_hub(f, NULL), ==, 0);
        set_str(w, "k", "reborn");
        r = get_str(cache, "k", &s);
        if (th_transport_private())
                g_assert_cmpint(r, <, 0); /* the old connection is closed: an error, not a value */
        else {
                g_assert_cmpint(r, ==, 0);
                g_assert_cmpstr(s, ==, "reborn");
        }
        ch_cache_free(cache);
        ch_client_free(c);
        sd_bus_flush_close_unref(w);
}

/* A cache outliving its client only frees. */
static void test_client_freed_first(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        ChClient *c = client_new(f);
        ChCache *cache = NULL;

        g_assert_cmpint(ch_cache_new(c, NULL, NULL, &cache), ==, 0);
        g_assert_cmpint(ch_cache_get(cache, "k", NULL), ==, -ENOKEY);
        g_assert_cmpint(ch_cache_prefetch(cache, "k", NULL, NULL, NULL), ==, 0);
        ch_client_free(c);
        g_assert_cmpint(ch_cache_get(cache, "k", NULL), ==, -ENOTCONN);
        ch_cache_free(cache);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/basics", test_basics);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/readers-writer", test_readers_writer);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/readers-writer-no-invalidate", test_readers_writer_no_invalidate);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/staged-race", test_staged_race);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/staged-race-no-invalidate", test_staged_race_no_invalidate);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/placeholder", test_placeholder);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/ttl", test_ttl);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/prefix", test_prefix);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/hub-restart", test_hub_restart);
        TH_ADD_BUS_TEST_WITH_HUB("/cache/client-freed-first", test_client_freed_first);
        return g_test_run();
}
