/* SPDX-License-Identifier: MIT */
/*
 * How long can Keys hold the hub's loop?  A measurement, not a test (it asserts no timing):
 *
 *   build/tests/store-bus/bench-keys-stall [N_KEYS] [dbus-daemon|dbus-broker] [nobig]
 *
 * starts a private bus and the hub ($CLUSTERHUBD, else the one built here), fills the
 * default namespace with N_KEYS keys (default 1,000,000: "key:<n>" and one 500-byte key of
 * 'a', which "nobig" leaves out, for a hub whose glob would never finish on it), then for
 * each pattern runs one
 * Keys on one connection while another connection does Get in a loop, and prints the
 * slowest Get (the worst stall another client saw), the mean Get and how long Keys took.
 * A baseline row runs the Gets with no Keys.  Before Keys ran in slices, the worst stall
 * was the whole Keys time.
 */
#include <stdlib.h>

#include "keys-common.h"

static void measure(sd_bus *a, sd_bus *b, const char *pattern) {
        KcKeys k = {};
        gint64 worst = 0, total = 0, t0 = g_get_monotonic_time();
        unsigned n = 0;

        if (pattern)
                kc_keys_async(a, pattern, &k);
        do {
                gint64 us = kc_get(b, "key:1");
                worst = MAX(worst, us);
                total += us;
                n++;
                if (pattern)
                        kc_process(a);
        } while (pattern ? !k.done : n < 2000);
        printf("%-24s keys %8u  Keys %8.1f ms  Gets %6u  worst Get %7.2f ms  mean Get %6.3f ms%s%s\n",
               pattern ? pattern : "(no Keys)", k.keys ? g_hash_table_size(k.keys) : 0,
               pattern ? (k.finished_us - t0) / 1000.0 : 0.0, n, worst / 1000.0, (double) total / n / 1000.0,
               k.error ? "  " : "", k.error ? k.error : "");
        fflush(stdout);
        if (k.keys)
                g_hash_table_unref(k.keys);
        g_free(k.error);
}

int main(int argc, char *argv[]) {
        unsigned n_keys = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 1000000;
        ThBusKind kind = argc > 2 && g_str_equal(argv[2], "dbus-broker") ? TH_BUS_BROKER : TH_BUS_DBUS_DAEMON;
        bool with_big = !(argc > 3 && g_str_equal(argv[3], "nobig"));
        ThBus bus = {};
        ThHub hub = {};
        sd_bus *a = NULL, *b = NULL;
        char big[501];

        if (!th_bus_start(&bus, kind)) {
                fprintf(stderr, "no bus: %s\n", bus.skip_reason);
                return 77;
        }
        if (th_hub_spawn(&hub, bus.address, NULL) < 0) {
                fprintf(stderr, "no hub\n");
                return 1;
        }
        g_assert_cmpint(th_connect(&a, bus.address), >=, 0);
        g_assert_cmpint(th_connect(&b, bus.address), >=, 0);
        kc_fill(a, "key:", with_big ? n_keys - 1 : n_keys);
        memset(big, 'a', 500);
        big[500] = 0;
        if (with_big)
                g_assert_cmpint(sd_bus_call_method(a, CH_BUS_NAME, KC_NS, KC_IFACE, "Set", NULL, NULL, "sva{sv}", big, "s", "v", 0), >=, 0);
        printf("%s, %u keys%s\n", th_bus_kind_to_string(kind), n_keys, with_big ? " (one of them 500 bytes)" : "");

        measure(a, b, NULL);
        measure(a, b, "*");
        measure(a, b, "key:1*");
        measure(a, b, "*a*a*a*ab");
        measure(a, b, "*a*a*a*a*a*a*a*ab");

        sd_bus_flush_close_unref(a);
        sd_bus_flush_close_unref(b);
        th_hub_stop(&hub);
        th_hub_clear(&hub);
        th_bus_stop(&bus);
        return 0;
}
