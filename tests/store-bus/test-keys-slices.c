/* SPDX-License-Identifier: MIT */
/*
 * Keys walks the keyspace in slices (issue 16, item 3), on dbus-daemon and dbus-broker:
 *  - while a long Keys runs (200,000 keys, a glob that costs a few hundred steps per key),
 *    another client's Gets are answered: 20 of them before the Keys reply, where the walk
 *    needs a hundred slices or more.  Before, Keys held the loop from start to end and
 *    every Get waited for it;
 *  - the reply holds every matching key exactly once, also when Set and Del run between
 *    the slices (and shrink the table, which would make the cursor revisit buckets);
 *  - a Keys whose namespace is dropped gets NamespaceDropped; one whose caller leaves, or
 *    that is still running when the hub is told to stop, ends cleanly: the hub exits with
 *    status 0 (the ASan build checks for leaks).
 * No timing is asserted: only the order of replies.
 */
#include <signal.h>
#include <sys/wait.h>

#include "keys-common.h"

#define N_KEYS 200000
/* every key below has 60 'a' after its number: each restart of the last star scans the
 * pattern's tail, some 300 steps per key, about 60M for the whole walk */
#define PREFIX "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:"
#define COSTLY "*a*a*aaaaab"

static void test_gets_between_slices(ThFixture *f, gconstpointer data) {
        sd_bus *other = NULL;
        KcKeys k;
        unsigned gets = 0;

        TH_RETURN_IF_SKIPPED(f);
        kc_fill(f->client, PREFIX, N_KEYS);
        g_assert_cmpint(th_connect(&other, f->bus.address), >=, 0);

        kc_keys_async(f->client, COSTLY, &k);
        /* the first Get waits for the walk's first slice at most */
        for (gets = 0; gets < 20; gets++) {
                (void) kc_get(other, PREFIX "7");
                kc_process(f->client);
                if (k.done)
                        break;
        }
        g_test_message("%u Gets answered while Keys(%s) ran", gets, COSTLY);
        g_assert_cmpuint(gets, ==, 20);
        g_assert_false(k.done);
        while (!k.done) {
                g_assert_cmpint(sd_bus_wait(f->client, UINT64_MAX), >=, 0);
                kc_process(f->client);
        }
        g_assert_null(k.error);
        g_assert_cmpuint(g_hash_table_size(k.keys), ==, 0);   /* none ends in b */
        g_hash_table_unref(k.keys);

        /* "*": every key once */
        kc_keys_async(f->client, "*", &k);
        while (!k.done) {
                g_assert_cmpint(sd_bus_wait(f->client, UINT64_MAX), >=, 0);
                kc_process(f->client);
        }
        g_assert_null(k.error);
        g_assert_cmpuint(k.duplicates, ==, 0);
        g_assert_cmpuint(g_hash_table_size(k.keys), ==, N_KEYS);
        g_hash_table_unref(k.keys);
        sd_bus_flush_close_unref(other);
}

static void test_writes_between_slices(ThFixture *f, gconstpointer data) {
        sd_bus *other = NULL;
        KcKeys k;

        TH_RETURN_IF_SKIPPED(f);
        kc_fill(f->client, "stay:", 50000);
        kc_fill(f->client, PREFIX, 100000);
        g_assert_cmpint(th_connect(&other, f->bus.address), >=, 0);

        /* the costly glob makes the walk long; Dels empty the table under it */
        kc_keys_async(f->client, "*", &k);
        for (unsigned round = 0; !k.done; round++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *m = NULL, *reply = NULL;
                char key[128];

                g_assert_cmpint(sd_bus_message_new_method_call(other, &m, CH_BUS_NAME, KC_NS, KC_IFACE, "Del"), >=, 0);
                g_assert_cmpint(sd_bus_message_open_container(m, 'a', "s"), >=, 0);
                for (unsigned i = round * 5000; i < (round + 1) * 5000 && i < 100000; i++) {
                        snprintf(key, sizeof(key), PREFIX "%u", i);
                        g_assert_cmpint(sd_bus_message_append_basic(m, 's', key), >=, 0);
                }
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
                if (sd_bus_call(other, m, 60 * G_USEC_PER_SEC, &e, &reply) < 0)
                        g_error("Del: %s", e.message);
                sd_bus_message_unref(m);
                sd_bus_message_unref(reply);
                kc_process(f->client);
                if (round > 100 && !k.done) {
                        g_assert_cmpint(sd_bus_wait(f->client, UINT64_MAX), >=, 0);
                        kc_process(f->client);
                }
        }
        g_assert_null(k.error);
        g_assert_cmpuint(k.duplicates, ==, 0);
        for (unsigned i = 0; i < 50000; i++) {
                char key[32];
                snprintf(key, sizeof(key), "stay:%u", i);
                if (!g_hash_table_contains(k.keys, key))
                        g_error("'%s' was present throughout but not returned", key);
        }
        g_test_message("Keys returned %u keys", g_hash_table_size(k.keys));
        g_hash_table_unref(k.keys);
        sd_bus_flush_close_unref(other);
}

static void test_caller_leaves_and_hub_stops(ThFixture *f, gconstpointer data) {
        sd_bus *leaver = NULL, *stays = NULL;
        KcKeys k1, k2;
        int status;

        TH_RETURN_IF_SKIPPED(f);
        kc_fill(f->client, PREFIX, N_KEYS);
        g_assert_cmpint(th_connect(&leaver, f->bus.address), >=, 0);
        g_assert_cmpint(th_connect(&stays, f->bus.address), >=, 0);
        kc_keys_async(leaver, COSTLY, &k1);
        kc_keys_async(stays, COSTLY, &k2);
        (void) kc_get(f->client, PREFIX "1");   /* both Keys are running now */
        sd_bus_flush_close_unref(leaver);
        (void) kc_get(f->client, PREFIX "2");
        g_assert_false(k2.done);
        status = th_hub_stop(&f->hub);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        sd_bus_flush_close_unref(stays);
}

static void test_namespace_dropped(ThFixture *f, gconstpointer data) {
        const char *path = CH_HUB_PATH "/ns/walk";
        sd_bus *other = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        KcKeys k;

        TH_RETURN_IF_SKIPPED(f);
        kc_fill_ns(f->client, path, PREFIX, N_KEYS);
        kc_fill(f->client, PREFIX, 10);        /* for the Get below, in "default" */
        g_assert_cmpint(th_connect(&other, f->bus.address), >=, 0);
        kc_keys_async_ns(f->client, path, COSTLY, &k);
        (void) kc_get(other, PREFIX "1");   /* the walk is running */
        if (sd_bus_call_method(other, CH_BUS_NAME, CH_HUB_PATH, "org.clusterhub.Hub1", "DropNamespace", &e, NULL, "s", "walk") < 0)
                g_error("DropNamespace: %s", e.message);
        while (!k.done) {
                g_assert_cmpint(sd_bus_wait(f->client, UINT64_MAX), >=, 0);
                kc_process(f->client);
        }
        g_assert_nonnull(k.error);
        g_test_message("Keys: %s", k.error);
        g_assert_true(g_str_has_prefix(k.error, "org.clusterhub.Error.NamespaceDropped: "));
        g_free(k.error);
        sd_bus_flush_close_unref(other);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        TH_ADD_BUS_TEST_WITH_HUB("/store-keys/gets-between-slices", test_gets_between_slices);
        TH_ADD_BUS_TEST_WITH_HUB("/store-keys/writes-between-slices", test_writes_between_slices);
        TH_ADD_BUS_TEST_WITH_HUB("/store-keys/namespace-dropped", test_namespace_dropped);
        TH_ADD_BUS_TEST_WITH_HUB("/store-keys/caller-leaves-hub-stops", test_caller_leaves_and_hub_stops);
        return g_test_run();
}
