/* SPDX-License-Identifier: MIT */
/* The cost of one RPush onto a large list, one call at a time: fills the list "bench-list" to
 * N elements (deleting it first), then times CALLS RPushes of one 8-byte element and, given
 * the hub's log file, how much it grew per call (docs/persistence.md).
 * usage: bench-rpush ADDRESS [N] [CALLS] [LOGFILE] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>

static const char *path = "/org/clusterhub/Hub1/ns/default";
static const char *key = "bench-list";

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long file_size(const char *f) {
        struct stat st;

        return f && stat(f, &st) == 0 ? (long long) st.st_size : -1;
}

/* RPush of n elements "e<first + i>" */
static int rpush(sd_bus *bus, unsigned long first, unsigned long n) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char v[32];
        int r;

        r = sd_bus_message_new_method_call(bus, &m, "org.clusterhub.Hub1", path, "org.clusterhub.Store1", "RPush");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", key);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "v");
        for (unsigned long i = 0; r >= 0 && i < n; i++) {
                snprintf(v, sizeof(v), "e%07lu", (first + i) % 10000000);
                r = sd_bus_message_append(m, "v", "s", v);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &e, &reply);
        if (r < 0)
                fprintf(stderr, "RPush: %s\n", e.message ? e.message : "failed");
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

int main(int argc, char **argv) {
        unsigned long n = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
        unsigned long calls = argc > 3 ? strtoul(argv[3], NULL, 10) : 200;
        const char *log = argc > 4 ? argv[4] : NULL;
        sd_bus *bus = NULL;
        long long size0, size1;
        double t0, t;
        int r;

        if (argc < 2 || calls == 0) {
                fprintf(stderr, "usage: %s ADDRESS [N] [CALLS] [LOGFILE]\n", argv[0]);
                return 2;
        }
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, argv[1]);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                fprintf(stderr, "cannot connect to %s\n", argv[1]);
                return 1;
        }
        (void) sd_bus_call_method(bus, "org.clusterhub.Hub1", path, "org.clusterhub.Store1", "Del", NULL, NULL,
                                  "as", 1, key);
        for (unsigned long i = 0; i < n; i += 10000)
                if (rpush(bus, i, n - i < 10000 ? n - i : 10000) < 0)
                        return 1;
        size0 = file_size(log);
        t0 = now();
        for (unsigned long i = 0; i < calls; i++)
                if (rpush(bus, n + i, 1) < 0)
                        return 1;
        t = now() - t0;
        size1 = file_size(log);
        printf("RPush of one element onto a %lu-element list: %.1f us per call (%lu calls)", n, t * 1e6 / calls, calls);
        if (log)
                printf(", log +%.1f bytes per call", (double) (size1 - size0) / calls);
        printf("\n");
        sd_bus_unref(bus);
        return 0;
}
