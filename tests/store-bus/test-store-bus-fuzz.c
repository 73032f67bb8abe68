/* SPDX-License-Identifier: MIT */
/*
 * A bus fuzzer for org.clusterhub.Store1: random calls of every method (taken from the
 * introspection XML the bindings are generated from) with random and hostile arguments: empty,
 * 512/513/600-byte and 2 MB strings, huge and negative counts and indices, NaN and infinities,
 * values of every D-Bus type, variants nested 30 deep, arrays of 20,000 elements, and calls
 * with the wrong signature.  Every call must get a reply or an org.clusterhub.Error.* /
 * org.freedesktop.DBus.Error.InvalidArgs error, the hub must stay up, GetStats must work at
 * the end, and the hub must then exit cleanly (under ASan/LSan: no error, no leak).
 *
 * CH_FUZZ_SEED=N repeats a run (the seed is printed), CH_FUZZ_SECONDS=N sets its length (4).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <gio/gio.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"
#include "redis-variant.h"

#define IFACE "org.clusterhub.Store1"
#define IN_FLIGHT 16

typedef struct Method {
        const char *name;
        char *sig;
} Method;

static void method_free(Method *m) {
        g_free(m->sig);
        g_free(m);
}

typedef struct Fuzz {
        GRand *rand;
        GPtrArray *methods;       /* Method* */
        unsigned sent, replied, ok, unsendable, bad;
        GHashTable *errors;       /* name -> count */
        char *big;                /* 2 MB */
        char *k512, *k513, *k600;
        unsigned big_budget;      /* 2 MB strings left for the message being built */
} Fuzz;

static Fuzz fz;

static guint rnd(guint n) {
        return n ? (guint) g_rand_int_range(fz.rand, 0, (gint32) n) : 0;
}

static bool chance(guint percent) {
        return rnd(100) < percent;
}

/* Pointer past one complete type at sig. */
static const char *skip_type(const char *sig) {
        switch (*sig) {
        case 'a':
                return skip_type(sig + 1);
        case '(':
        case '{': {
                char close = *sig == '(' ? ')' : '}';
                sig++;
                while (*sig != close)
                        sig = skip_type(sig);
                return sig + 1;
        }
        default:
                return sig + 1;
        }
}

static const char *random_string(void) {
        static const char *const pool[] = {
                "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "list", "hash", "set", "0", "1", "-1", "3.5",
                "9223372036854775807", "-9223372036854775808", "1e308", "nan", "inf", "abc", " 5", "left", "right",
                "before", "after", "LEFT", "*", "k*", "[", "[^", "\\", "?", "é", "ü✓", "ttl_ms", "nx", "xx", "keep_ttl",
                "bogus", "",
        };
        guint p = rnd(1000);
        if (p < 4 && fz.big_budget > 0) {
                fz.big_budget--;            /* one per message: bus limits are not what this tests */
                return fz.big;              /* 2 MB */
        }
        if (p < 24)
                return fz.k600;
        if (p < 44)
                return fz.k512;
        if (p < 64)
                return fz.k513;
        return pool[rnd(G_N_ELEMENTS(pool))];
}

static int gen(sd_bus_message *m, const char *type, int depth);

static int gen_variant(sd_bus_message *m, int depth) {
        static const char *const sigs[] = { "s", "x", "i", "y", "n", "q", "u", "t", "b", "d", "o", "g", "ay", "as", "av",
                                            "a{sv}", "a{is}", "(si)", "(a{sv}ay)", "aai", "v" };
        if (chance(2)) {
                /* a chain of variants, up to 30 deep (within the D-Bus limit of 64 in all) */
                int n = 1 + (int) rnd((guint) MAX(1, 30 - 2 * depth)), r;
                for (int i = 0; i < n; i++)
                        if ((r = sd_bus_message_open_container(m, 'v', "v")) < 0)
                                return r;
                r = sd_bus_message_append(m, "v", "s", "deep");
                for (int i = 0; i < n && r >= 0; i++)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        const char *sig = depth > 6 ? "s" : sigs[rnd(G_N_ELEMENTS(sigs))];
        int r = sd_bus_message_open_container(m, 'v', sig);
        if (r < 0)
                return r;
        r = gen(m, sig, depth + 1);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* Append one value of the complete type at `type`. */
static int gen(sd_bus_message *m, const char *type, int depth) {
        switch (*type) {
        case 's': case 'o': case 'g': {
                const char *s = *type == 's' ? random_string() : *type == 'o' ? (chance(50) ? "/" : "/a/b_c") : (chance(50) ? "s" : "a{sv}");
                return sd_bus_message_append_basic(m, *type, s);
        }
        case 'b': {
                int b = (int) rnd(2);
                return sd_bus_message_append_basic(m, 'b', &b);
        }
        case 'y': case 'n': case 'q': case 'i': case 'u': case 'x': case 't': {
                static const int64_t xs[] = { 0, 1, -1, 2, -2, 3, 5, 10, 100, 1000, INT64_MAX, INT64_MIN, INT64_MAX - 1,
                                              INT32_MAX, INT32_MIN, UINT32_MAX, 255, 256, -129 };
                int64_t v = chance(70) ? xs[rnd(G_N_ELEMENTS(xs))] : (int64_t) g_rand_int(fz.rand) - (int64_t) g_rand_int(fz.rand);
                if (*type == 't' && chance(10))
                        v = (int64_t) UINT64_MAX;
                union { uint8_t y; int16_t n; uint16_t q; int32_t i; uint32_t u; int64_t x; uint64_t t; } u;
                switch (*type) {
                case 'y': u.y = (uint8_t) v; break;
                case 'n': u.n = (int16_t) v; break;
                case 'q': u.q = (uint16_t) v; break;
                case 'i': u.i = (int32_t) v; break;
                case 'u': u.u = (uint32_t) v; break;
                case 'x': u.x = v; break;
                default: u.t = (uint64_t) v; break;
                }
                return sd_bus_message_append_basic(m, *type, &u);
        }
        case 'd': {
                static const double ds[] = { 0, -0.0, 1, 1.5, -2.5, 0.1, 1e308, -1e308, DBL_MIN, DBL_MAX, 9.2e18 };
                double d = chance(10) ? NAN : chance(10) ? (chance(50) ? INFINITY : -INFINITY) :
                           chance(80) ? ds[rnd(G_N_ELEMENTS(ds))] : g_rand_double_range(fz.rand, -1e6, 1e6);
                return sd_bus_message_append_basic(m, 'd', &d);
        }
        case 'v':
                return gen_variant(m, depth);
        case 'a': {
                const char *elem = type + 1;
                g_autofree char *esig = g_strndup(elem, (gsize) (skip_type(elem) - elem));
                guint n = chance(2) && depth == 0 ? 1000 + rnd(19000) : rnd(5);
                int r = sd_bus_message_open_container(m, 'a', esig);
                if (r < 0)
                        return r;
                for (guint i = 0; i < n && r >= 0; i++) {
                        if (esig[0] == '{') {
                                g_autofree char *inner = g_strndup(esig + 1, strlen(esig) - 2);
                                r = sd_bus_message_open_container(m, 'e', inner);
                                if (r >= 0)
                                        r = gen(m, inner, depth + 1);
                                if (r >= 0)
                                        r = gen(m, skip_type(inner), depth + 1);
                                if (r >= 0)
                                        r = sd_bus_message_close_container(m);
                        } else
                                r = gen(m, esig, depth + 1);
                }
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        case '(': {
                const char *end = skip_type(type);
                g_autofree char *inner = g_strndup(type + 1, (gsize) (end - type - 2));
                int r = sd_bus_message_open_container(m, 'r', inner);
                for (const char *p = inner; *p && r >= 0; p = skip_type(p))
                        r = gen(m, p, depth + 1);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        }
        g_error("type '%c' not generated", *type);
}

static bool allowed_error(const char *name) {
        return g_str_has_prefix(name, "org.clusterhub.Error.") || g_str_equal(name, SD_BUS_ERROR_INVALID_ARGS);
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *method = userdata;
        fz.replied++;
        if (!sd_bus_message_is_method_error(m, NULL)) {
                fz.ok++;
                return 0;
        }
        const sd_bus_error *e = sd_bus_message_get_error(m);
        g_hash_table_insert(fz.errors, g_strdup(e->name),
                            GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(fz.errors, e->name)) + 1));
        if (!allowed_error(e->name)) {
                fz.bad++;
                g_test_message("%s: unexpected error %s: %s", method, e->name, e->message);
                fprintf(stderr, "# %s: unexpected error %s: %s\n", method, e->name, e->message);
        }
        return 0;
}

static void send_one(sd_bus *bus) {
        Method *meth = fz.methods->pdata[rnd(fz.methods->len)];
        const char *sig = meth->sig;
        const char *path = chance(90) ? CH_NAMESPACE_PATH_PREFIX "fuzz" : CH_NAMESPACE_PATH_PREFIX "fuzz2";
        sd_bus_message *m = NULL;
        int r;

        fz.big_budget = 1;
        if (chance(5))      /* arguments of another method: wrong signature */
                sig = ((Method *) fz.methods->pdata[rnd(fz.methods->len)])->sig;
        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, path, IFACE, meth->name), >=, 0);
        bool blocking = g_str_equal(meth->name, "BLPop") || g_str_equal(meth->name, "BRPop");
        r = 0;
        for (const char *p = sig; *p && r >= 0; p = skip_type(p)) {
                if (blocking && *p == 'u') {       /* a short wait: every call must be answered */
                        uint32_t ms = 1 + rnd(100);
                        r = sd_bus_message_append_basic(m, 'u', &ms);
                } else
                        r = gen(m, p, 0);
        }
        if (r < 0) {
                fz.unsendable++;
                sd_bus_message_unref(m);
                return;
        }
        r = sd_bus_call_async(bus, NULL, m, on_reply, (void *) meth->name, 60 * G_USEC_PER_SEC);
        sd_bus_message_unref(m);
        if (r < 0) {
                fz.unsendable++;
                return;
        }
        fz.sent++;
}

static void test_fuzz(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autoptr(GError) error = NULL;
        const char *env_seed = g_getenv("CH_FUZZ_SEED"), *env_secs = g_getenv("CH_FUZZ_SECONDS");
        guint32 seed = env_seed ? (guint32) g_ascii_strtoull(env_seed, NULL, 10) : (guint32) g_get_real_time();
        double seconds = env_secs ? g_ascii_strtod(env_secs, NULL) : 4;
        sd_bus *bus = f->client;

        g_test_message("seed %u (CH_FUZZ_SEED=%u to repeat), %.1f s", seed, seed, seconds);
        fprintf(stderr, "# fuzz seed %u\n", seed);
        memset(&fz, 0, sizeof(fz));
        fz.rand = g_rand_new_with_seed(seed);
        fz.errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        fz.big = g_strnfill(2 * 1024 * 1024, 'B');
        fz.k512 = g_strnfill(512, 'k');
        fz.k513 = g_strnfill(513, 'k');
        fz.k600 = g_strnfill(600, 'k');
        fz.methods = g_ptr_array_new_with_free_func((GDestroyNotify) method_free);

        GDBusNodeInfo *node = g_dbus_node_info_new_for_xml(ch_store1_introspection_xml, &error);
        g_assert_no_error(error);
        GDBusInterfaceInfo *iface = g_dbus_node_info_lookup_interface(node, IFACE);
        g_assert_nonnull(iface);
        for (guint i = 0; iface->methods[i]; i++) {
                GDBusMethodInfo *mi = iface->methods[i];
                GString *sig = g_string_new(NULL);
                for (guint j = 0; mi->in_args && mi->in_args[j]; j++)
                        g_string_append(sig, mi->in_args[j]->signature);
                Method *meth = g_new0(Method, 1);
                meth->name = mi->name;
                meth->sig = g_string_free(sig, FALSE);
                g_ptr_array_add(fz.methods, meth);
        }
        g_test_message("%u Store1 methods", fz.methods->len);
        g_assert_cmpuint(fz.methods->len, >=, 60);

        uint64_t end = (uint64_t) g_get_monotonic_time() + (uint64_t) (seconds * G_USEC_PER_SEC);
        while ((uint64_t) g_get_monotonic_time() < end) {
                while (fz.sent - fz.replied < IN_FLIGHT)
                        send_one(bus);
                int r = sd_bus_process(bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        g_assert_cmpint(sd_bus_wait(bus, 100000), >=, 0);
                g_assert_false(th_proc_exited(&f->hub.proc));
        }
        while (fz.replied < fz.sent) {        /* every call is answered */
                int r = sd_bus_process(bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        g_assert_cmpint(sd_bus_wait(bus, 100000), >=, 0);
        }

        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, fz.errors);
        while (g_hash_table_iter_next(&it, &k, &v))
                g_test_message("%6u x %s", GPOINTER_TO_UINT(v), (const char *) k);
        g_test_message("fuzz: %u calls, %u replies (%u ok, %u errors, %u unexpected), %u not sendable",
                       fz.sent, fz.replied, fz.ok, fz.replied - fz.ok, fz.bad, fz.unsendable);
        fprintf(stderr, "# fuzz seed %u: %u calls, %u ok, %u errors, %u unexpected, %u not sendable\n",
                seed, fz.sent, fz.ok, fz.replied - fz.ok, fz.bad, fz.unsendable);
        g_assert_false(th_proc_exited(&f->hub.proc));
        g_assert_cmpuint(fz.bad, ==, 0);

        /* GetStats still works */
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        g_assert_cmpint(sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "GetStats", &e, &reply, ""), >=, 0);
        sd_bus_message_unref(reply);

        /* the hub exits cleanly (an ASan/LSan build reports errors and leaks through its exit status) */
        int status = th_hub_stop(&f->hub);
        g_test_message("hub exit status 0x%x", status);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);

        g_dbus_node_info_unref(node);
        g_ptr_array_unref(fz.methods);
        g_hash_table_unref(fz.errors);
        g_free(fz.big);
        g_free(fz.k512);
        g_free(fz.k513);
        g_free(fz.k600);
        g_rand_free(fz.rand);
}

int main(int argc, char *argv[]) {
        RedisVariant rv = {};
        g_autofree char *skip = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        /* STORE_REDIS=1 (store-bus-fuzz-redis): the same fuzzing with the store in Redis */
        if (redis_variant_wanted() && !redis_variant_start(&rv, &skip)) {
                g_test_add_data_func("/store-bus/fuzz-redis", skip, redis_variant_skip);
                return g_test_run();
        }
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/fuzz", test_fuzz);
        r = g_test_run();
        redis_variant_stop(&rv);
        return r;
}
