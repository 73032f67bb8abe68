/* SPDX-License-Identifier: MIT */
/* N Set calls in flight at once from one connection, for the group-commit test: sends them
 * all, then a call to the bus itself; its reply means the bus has routed every Set (it handles
 * a connection's messages in order), and "routed" is printed.  Then waits for the N replies.
 * usage: set-burst N   (on $DBUS_SESSION_BUS_ADDRESS; exit 0 when every Set succeeded) */
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-bus.h>

static unsigned done_calls, failed;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        if (sd_bus_message_is_method_error(m, NULL)) {
                fprintf(stderr, "Set failed: %s\n", sd_bus_message_get_error(m)->message);
                failed++;
        }
        done_calls++;
        return 0;
}

int main(int argc, char **argv) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        unsigned n;
        int r;

        if (argc != 2 || (n = (unsigned) atoi(argv[1])) == 0) {
                fprintf(stderr, "usage: set-burst N\n");
                return 2;
        }
        r = sd_bus_open_user(&bus);
        if (r < 0) {
                fprintf(stderr, "cannot connect to the bus\n");
                return 1;
        }
        for (unsigned i = 0; i < n; i++) {
                char key[32];

                snprintf(key, sizeof(key), "burst-%u", i);
                r = sd_bus_call_method_async(bus, NULL, "org.clusterhub.Hub1", "/org/clusterhub/Hub1/ns/default",
                                             "org.clusterhub.Store1", "Set", on_reply, NULL, "sva{sv}", key, "u", i, 0);
                if (r < 0) {
                        fprintf(stderr, "cannot send Set %u\n", i);
                        return 1;
                }
        }
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
                               &e, NULL, "");
        if (r < 0) {
                fprintf(stderr, "GetId failed: %s\n", e.message);
                return 1;
        }
        printf("routed\n");
        fflush(stdout);
        while (done_calls < n) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 1;
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return 1;
        }
        sd_bus_flush_close_unref(bus);
        return failed > 0;
}
