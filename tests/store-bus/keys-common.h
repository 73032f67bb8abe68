/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by test-keys-slices.c and bench-keys-stall.c: fill the default namespace with many
 * keys, run Keys asynchronously, and time Gets on another connection meanwhile. */

#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

#define KC_IFACE "org.clusterhub.Store1"
#define KC_NS CH_DEFAULT_NAMESPACE_PATH

/* Keys PREFIX0 .. PREFIX(n-1) in the namespace at PATH, set with MSet in batches of 10,000. */
static inline void kc_fill_ns(sd_bus *bus, const char *path, const char *prefix, unsigned n) {
        for (unsigned first = 0; first < n; first += 10000) {
                sd_bus_message *m = NULL, *reply = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;
                char key[600];

                g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, path, KC_IFACE, "MSet"), >=, 0);
                g_assert_cmpint(sd_bus_message_open_container(m, 'a', "{sv}"), >=, 0);
                for (unsigned i = first; i < n && i < first + 10000; i++) {
                        snprintf(key, sizeof(key), "%s%u", prefix, i);
                        g_assert_cmpint(sd_bus_message_append(m, "{sv}", key, "u", i), >=, 0);
                }
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
                if (sd_bus_call(bus, m, 60 * G_USEC_PER_SEC, &e, &reply) < 0)
                        g_error("MSet: %s: %s", e.name, e.message);
                sd_bus_message_unref(m);
                sd_bus_message_unref(reply);
        }
}

static inline void kc_fill(sd_bus *bus, const char *prefix, unsigned n) {
        kc_fill_ns(bus, KC_NS, prefix, n);
}

typedef struct KcKeys {
        bool done;
        char *error;
        GHashTable *keys;     /* the reply, as a set */
        unsigned duplicates;
        gint64 finished_us;
} KcKeys;

static inline int kc_keys_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        KcKeys *k = userdata;
        const char *key;

        k->done = true;
        k->finished_us = g_get_monotonic_time();
        if (sd_bus_message_is_method_error(m, NULL)) {
                k->error = g_strdup_printf("%s: %s", sd_bus_message_get_error(m)->name, sd_bus_message_get_error(m)->message);
                return 0;
        }
        k->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_assert_cmpint(sd_bus_message_enter_container(m, 'a', "s"), >, 0);
        while (sd_bus_message_read_basic(m, 's', &key) > 0)
                if (!g_hash_table_add(k->keys, g_strdup(key)))
                        k->duplicates++;
        return 0;
}

/* Sends Keys(PATTERN) to the namespace at PATH on BUS; the reply lands in *K when BUS is
 * processed. */
static inline void kc_keys_async_ns(sd_bus *bus, const char *path, const char *pattern, KcKeys *k) {
        sd_bus_message *m = NULL;

        memset(k, 0, sizeof(*k));
        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, path, KC_IFACE, "Keys"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "s", pattern), >=, 0);
        g_assert_cmpint(sd_bus_call_async(bus, NULL, m, kc_keys_reply, k, 600 * G_USEC_PER_SEC), >=, 0);
        g_assert_cmpint(sd_bus_flush(bus), >=, 0);
        sd_bus_message_unref(m);
}

static inline void kc_keys_async(sd_bus *bus, const char *pattern, KcKeys *k) {
        kc_keys_async_ns(bus, KC_NS, pattern, k);
}

static inline void kc_process(sd_bus *bus) {
        int r;
        while ((r = sd_bus_process(bus, NULL)) > 0)
                ;
        g_assert_cmpint(r, >=, 0);
}

/* One Get on BUS; its latency in µs. */
static inline gint64 kc_get(sd_bus *bus, const char *key) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        gint64 t0 = g_get_monotonic_time();

        if (sd_bus_call_method(bus, CH_BUS_NAME, KC_NS, KC_IFACE, "Get", &e, &reply, "s", key) < 0)
                g_error("Get(%s): %s: %s", key, e.name, e.message);
        sd_bus_message_unref(reply);
        return g_get_monotonic_time() - t0;
}
