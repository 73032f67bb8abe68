/* SPDX-License-Identifier: MIT */
/* Set and Incr rates against a running hub, one client: one call at a time (the round trip a
 * synchronous caller sees) and with INFLIGHT calls in flight (what group commit would serve).
 * usage: bench-persist ADDRESS [SECONDS] [INFLIGHT] [VALUE-BYTES]   (prints one line per row) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

static const char *path = "/org/clusterhub/Hub1/ns/default";
static unsigned long done_calls, sent_calls, errors;
static char *value;

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        if (sd_bus_message_is_method_error(m, NULL))
                errors++;
        done_calls++;
        return 0;
}

static int send_one(sd_bus *bus, bool incr, bool async) {
        char key[32];
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        snprintf(key, sizeof(key), "k%lu", sent_calls % 100000);
        sent_calls++;
        if (async) {
                if (incr)
                        return sd_bus_call_method_async(bus, NULL, "org.clusterhub.Hub1", path, "org.clusterhub.Store1",
                                                        "Incr", on_reply, NULL, "sx", "counter", (int64_t) 1);
                return sd_bus_call_method_async(bus, NULL, "org.clusterhub.Hub1", path, "org.clusterhub.Store1", "Set",
                                                on_reply, NULL, "sva{sv}", key, "s", value, 0);
        }
        if (incr)
                r = sd_bus_call_method(bus, "org.clusterhub.Hub1", path, "org.clusterhub.Store1", "Incr", &e, &reply,
                                       "sx", "counter", (int64_t) 1);
        else
                r = sd_bus_call_method(bus, "org.clusterhub.Hub1", path, "org.clusterhub.Store1", "Set", &e, &reply,
                                       "sva{sv}", key, "s", value, 0);
        if (r < 0)
                errors++;
        done_calls++;
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
        return 0;
}

static void row(sd_bus *bus, const char *name, bool incr, unsigned inflight, double seconds) {
        double t0 = now(), t;
        int r;

        done_calls = sent_calls = errors = 0;
        if (inflight <= 1) {
                while (now() - t0 < seconds)
                        send_one(bus, incr, false);
        } else {
                while ((t = now()) - t0 < seconds || done_calls < sent_calls) {
                        while (sent_calls - done_calls < inflight && t - t0 < seconds)
                                if (send_one(bus, incr, true) < 0)
                                        exit(1);
                        r = sd_bus_process(bus, NULL);
                        if (r < 0)
                                exit(1);
                        if (r == 0)
                                sd_bus_wait(bus, 100000);
                }
        }
        t = now() - t0;
        printf("%-6s inflight %-3u %9.0f calls/s  (%lu calls, %lu errors, %.1f us each)\n", name, inflight,
               done_calls / t, done_calls, errors, t * 1e6 / done_calls);
}

int main(int argc, char **argv) {
        sd_bus *bus = NULL;
        double seconds = argc > 2 ? atof(argv[2]) : 2;
        unsigned inflight = argc > 3 ? (unsigned) atoi(argv[3]) : 64;
        size_t vlen = argc > 4 ? (size_t) atoi(argv[4]) : 100;

        if (argc < 2) {
                fprintf(stderr, "usage: bench-persist ADDRESS [SECONDS] [INFLIGHT] [VALUE-BYTES]\n");
                return 2;
        }
        value = malloc(vlen + 1);
        memset(value, 'v', vlen);
        value[vlen] = 0;
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, argv[1]) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
            sd_bus_start(bus) < 0) {
                fprintf(stderr, "cannot connect to %s\n", argv[1]);
                return 1;
        }
        row(bus, "Set", false, 1, seconds);
        row(bus, "Set", false, inflight, seconds);
        row(bus, "Incr", true, 1, seconds);
        row(bus, "Incr", true, inflight, seconds);
        sd_bus_flush_close_unref(bus);
        free(value);
        return 0;
}
