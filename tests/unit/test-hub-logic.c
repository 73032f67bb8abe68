/* SPDX-License-Identifier: MIT */
/* Unit tests of the hub's own logic modules that need no bus: who serves which method
 * (requests.c), worker ids (workers.c), the string map (util/hashmap.c), the limits table. */
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "limits.h"
#include "requests.h"
#include "workers.h"

static void test_serve_round_robin(void) {
        ServeTable *t = NULL;
        ServerRef a = { .server = "a" }, b = { .server = "b" }, c = { .server = "c" };
        unsigned count[3] = {};

        g_assert_cmpint(serve_table_new(&t), ==, 0);
        g_assert_null(serve_table_pick(t, "m"));
        g_assert_cmpint(serve_table_add(t, &a, "m"), ==, 0);
        g_assert_cmpint(serve_table_add(t, &b, "m"), ==, 0);
        g_assert_cmpint(serve_table_add(t, &c, "m"), ==, 0);
        g_assert_cmpint(serve_table_add(t, &b, "m"), ==, -EALREADY);
        g_assert_cmpuint(serve_table_count(t, "m"), ==, 3);
        for (int i = 0; i < 300; i++) {
                const char *s = serve_table_pick(t, "m");
                count[s[0] - 'a']++;
        }
        g_assert_cmpuint(count[0], ==, 100);
        g_assert_cmpuint(count[1], ==, 100);
        g_assert_cmpuint(count[2], ==, 100);

        /* removing the server the cursor points at keeps the rotation going */
        (void) serve_table_pick(t, "m"); /* a */
        g_assert_cmpint(serve_table_remove(t, &b, "m"), ==, 0);
        g_assert_cmpint(serve_table_remove(t, &b, "m"), ==, -ENOENT);
        g_assert_cmpstr(serve_table_pick(t, "m"), ==, "c");
        g_assert_cmpstr(serve_table_pick(t, "m"), ==, "a");
        g_assert_cmpstr(serve_table_pick(t, "m"), ==, "c");
        serve_table_free(t);
}

static void test_serve_server_gone(void) {
        ServeTable *t1 = NULL, *t2 = NULL;
        ServerRef a = { .server = "a" }, b = { .server = "b" };
        void *servers[4];

        g_assert_cmpint(serve_table_new(&t1), ==, 0);
        g_assert_cmpint(serve_table_new(&t2), ==, 0);
        g_assert_cmpint(serve_table_add(t1, &a, "x"), ==, 0);
        g_assert_cmpint(serve_table_add(t1, &a, "y"), ==, 0);
        g_assert_cmpint(serve_table_add(t2, &a, "x"), ==, 0);
        g_assert_cmpint(serve_table_add(t1, &b, "x"), ==, 0);
        g_assert_cmpuint(a.n, ==, 3);
        g_assert_true(serve_table_serves(t2, &a, "x"));

        /* one call withdraws everything the server had, in every table */
        server_ref_clear(&a);
        g_assert_cmpuint(a.n, ==, 0);
        g_assert_false(serve_table_serves(t1, &a, "x"));
        g_assert_cmpuint(serve_table_count(t1, "y"), ==, 0);
        g_assert_cmpuint(serve_table_count(t2, "x"), ==, 0);
        g_assert_cmpuint(serve_table_servers(t1, "x", servers, 4), ==, 1);
        g_assert_cmpstr(servers[0], ==, "b");
        serve_table_free(t1);
        serve_table_free(t2);
        g_assert_cmpuint(b.n, ==, 0);
}

static void test_worker_ids(void) {
        char *id = NULL;

        g_assert_true(worker_id_is_valid("worker_3"));
        g_assert_false(worker_id_is_valid(""));
        g_assert_false(worker_id_is_valid("a-b"));
        g_assert_false(worker_id_is_valid("a/b"));
        g_autofree char *long_id = g_strnfill(WORKER_ID_MAX + 1, 'x');
        g_assert_false(worker_id_is_valid(long_id));

        g_assert_cmpint(worker_id_derive("clusterhub-worker@3.service", ":1.42", &id), ==, 0);
        g_assert_cmpstr(id, ==, "3");
        free(id);
        g_assert_cmpint(worker_id_derive("anything@web_7.service", ":1.42", &id), ==, 0);
        g_assert_cmpstr(id, ==, "web_7");
        free(id);
        /* an instance that is not a valid id, no unit, a plain unit: the unique name */
        g_assert_cmpint(worker_id_derive("worker@a-b.service", ":1.42", &id), ==, 0);
        g_assert_cmpstr(id, ==, "bus_1_42");
        free(id);
        g_assert_cmpint(worker_id_derive(NULL, ":1.7", &id), ==, 0);
        g_assert_cmpstr(id, ==, "bus_1_7");
        free(id);
        g_assert_cmpint(worker_id_derive("session-3.scope", ":1.8", &id), ==, 0);
        g_assert_cmpstr(id, ==, "bus_1_8");
        free(id);
}

/* Derived ids belong to whom they are derived for. */
static void test_worker_id_claims(void) {
        g_assert_cmpint(worker_id_claim("3", "worker@3.service", ":1.9"), ==, WORKER_CLAIM_OWN);
        g_assert_cmpint(worker_id_claim("3", "worker@4.service", ":1.9"), ==, WORKER_CLAIM_NONE);
        g_assert_cmpint(worker_id_claim("3", NULL, ":1.9"), ==, WORKER_CLAIM_NONE);
        g_assert_cmpint(worker_id_claim("web", NULL, ":1.9"), ==, WORKER_CLAIM_NONE);
        g_assert_cmpint(worker_id_claim("bus_1_9", NULL, ":1.9"), ==, WORKER_CLAIM_OWN);
        g_assert_cmpint(worker_id_claim("bus_1_9", "worker@3.service", ":1.9"), ==, WORKER_CLAIM_OWN);
        g_assert_cmpint(worker_id_claim("bus_1_774", NULL, ":1.9"), ==, WORKER_CLAIM_FOREIGN);
        g_assert_cmpint(worker_id_claim("bus_1_774", "worker@bus_1_774.service", ":1.9"), ==, WORKER_CLAIM_OWN);
        /* only the exact shape of a derived unique name is reserved */
        g_assert_cmpint(worker_id_claim("bus_", NULL, ":1.9"), ==, WORKER_CLAIM_NONE);
        g_assert_cmpint(worker_id_claim("bus_station", NULL, ":1.9"), ==, WORKER_CLAIM_NONE);
        g_assert_cmpint(worker_id_claim("bus_1_9x", NULL, ":1.9"), ==, WORKER_CLAIM_NONE);
        /* a private-socket connection's name is reserved the same way */
        g_assert_cmpint(worker_id_claim("bus_p2p_7", NULL, ":p2p.7"), ==, WORKER_CLAIM_OWN);
        g_assert_cmpint(worker_id_claim("bus_p2p_7", NULL, ":1.7"), ==, WORKER_CLAIM_FOREIGN);
        g_assert_cmpint(worker_id_claim("bus_p2p_7", NULL, ":p2p.8"), ==, WORKER_CLAIM_FOREIGN);
        g_assert_cmpint(worker_id_claim("bus_p2p_", NULL, ":p2p.8"), ==, WORKER_CLAIM_NONE);
}

static void test_hashmap(void) {
        Hashmap *h = hashmap_new();
        char keys[2000][16];
        size_t i = 0, seen = 0;
        void *v;

        for (int k = 0; k < 2000; k++) {
                snprintf(keys[k], sizeof keys[k], "key%d", k);
                g_assert_cmpint(hashmap_put(h, keys[k], GINT_TO_POINTER(k + 1)), ==, 0);
        }
        g_assert_cmpint(hashmap_put(h, keys[5], NULL), ==, -EEXIST);
        g_assert_cmpuint(hashmap_size(h), ==, 2000);
        for (int k = 0; k < 2000; k += 2)
                g_assert_cmpint(GPOINTER_TO_INT(hashmap_remove(h, keys[k])), ==, k + 1);
        g_assert_null(hashmap_get(h, "key0"));
        g_assert_cmpint(GPOINTER_TO_INT(hashmap_get(h, "key1999")), ==, 2000);
        /* removing while iterating is allowed */
        while (hashmap_iterate(h, &i, &v, NULL)) {
                seen++;
                if (GPOINTER_TO_INT(v) % 4 == 0)
                        hashmap_remove(h, keys[GPOINTER_TO_INT(v) - 1]);
        }
        g_assert_cmpuint(seen, ==, 1000);
        g_assert_cmpuint(hashmap_size(h), ==, 500);
        hashmap_free(h);
}

/* The lock and store libraries have defaults of their own (LOCK_DEFAULT_*, STORE_DEFAULT_*) that
 * they use for a limit of 0.  The hub passes every one of those limits from its table
 * (bus_locks_table_new(), bus_store_new(), hub.c for max_memory), and --OPTION=0 is refused
 * where the help does not say what 0 means: so those defaults must never be reachable, i.e.
 * every such row has a default above 0 and no "(0:" meaning. */
static void test_limits_reach_the_libraries(void) {
        static const char *const fed[] = {
                "max-name-bytes", "max-locks", "max-lock-holders", "max-lock-waiters", "max-lease-ms",
                "max-key-bytes", "max-value-bytes", "max-elements", "max-namespace-memory", "max-memory",
        };
        Limits l;
        unsigned found = 0;

        limits_init_default(&l);
        for (size_t i = 0; i < G_N_ELEMENTS(fed); i++) {
#define X(field, option, def, help)                                     \
                if (g_str_equal(option, fed[i])) {                      \
                        g_assert_cmpuint(l.field, >, 0);                \
                        g_assert_null(strstr(help, "(0:"));             \
                        found++;                                        \
                }
                LIMITS_TABLE(X)
#undef X
        }
        g_assert_cmpuint(found, ==, G_N_ELEMENTS(fed));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/hub/serve/round-robin", test_serve_round_robin);
        g_test_add_func("/hub/serve/server-gone", test_serve_server_gone);
        g_test_add_func("/hub/workers/ids", test_worker_ids);
        g_test_add_func("/hub/workers/id-claims", test_worker_id_claims);
        g_test_add_func("/hub/util/hashmap", test_hashmap);
        g_test_add_func("/hub/limits/reach-the-libraries", test_limits_reach_the_libraries);
        return g_test_run();
}
