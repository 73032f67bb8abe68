/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the value codec (service/bus/variant-codec.c) and the store's values
 * (service/store/value.c, through store_set()/store_get()).
 *
 * Byte 0 picks the direction:
 *   even  stored bytes to a message.  The rest is "SIGNATURE\0BYTES": codec_append() decodes
 *         BYTES as a stored value of that type into a variant, as the hub does when it
 *         replies with a stored value.  Whatever it accepts must read back.
 *   odd   a message to stored bytes.  The rest is the raw body of a call with signature "v",
 *         delivered over a socketpair (fuzz-bus.c) to a handler that reads the variant as
 *         the hub does (basic types as they are, anything else through codec_read()).
 * Either way the value read is then stored and fetched again (equal), written back into a
 * message and read once more: the same value (the codec's output is a fixed point). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-bus.h"
#include "store.h"
#include "variant-codec.h"

static sd_bus_message *new_message(void) {
        sd_bus_message *m = NULL;
        if (sd_bus_message_new_method_call(fuzz_message_bus(), &m, NULL, "/", "org.example.Fuzz", "Value") < 0)
                abort();
        return m;
}

static void seal(sd_bus_message *m) {
        if (sd_bus_message_seal(m, 1, 0) < 0 || sd_bus_message_rewind(m, 1) < 0)
                abort();
}

/* V was read from a message: it must survive the store, and a second trip through a message. */
static void check_value(const StoreValue *v) {
        static Store *store;
        sd_bus_message *m = new_message();
        StoreValue got;
        CodecValue again = {};
        int r;

        if (!store && store_new(&store, NULL, NULL, NULL, NULL, NULL) < 0)
                abort();
        r = store_set(store, "k", v, 0, 0, 0);
        if (r != 1)
                abort();
        if (store_get(store, "k", 0, &got) < 0 || !store_value_equal(&got, v))
                abort();
        if (codec_append_value(m, &got) < 0)
                abort();
        seal(m);
        if (codec_read_value(m, &again) < 0 || !store_value_equal(&again.value, v))
                abort();
        codec_value_done(&again);
        sd_bus_message_unref(m);
}

static void from_stored_bytes(const uint8_t *data, size_t size) {
        const uint8_t *nul = memchr(data, 0, size);
        sd_bus_message *m;
        CodecValue v = {};
        int r;

        if (!nul)
                return;
        const char *sig = (const char *) data;
        m = new_message();
        r = sd_bus_message_open_container(m, 'v', sig);
        if (r >= 0)
                r = codec_append(m, sig, nul + 1, size - (size_t) (nul + 1 - data));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0) {
                seal(m);
                /* what codec_append() wrote, codec_read() reads (the hub stores less deep values
                 * than a bus can carry: -E2BIG is its refusal, not a codec fault) */
                r = codec_read_value(m, &v);
                if (r < 0 && r != -E2BIG)
                        abort();
                if (r >= 0)
                        check_value(&v.value);
                codec_value_done(&v);
        }
        sd_bus_message_unref(m);
}

static int method_value(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sd_bus_message *reply = NULL;
        CodecValue v = {};
        int r;

        r = codec_read_value(m, &v);
        if (r >= 0) {
                check_value(&v.value);
                r = sd_bus_message_new_method_return(m, &reply);
                if (r >= 0)
                        r = codec_append_value(reply, &v.value);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                sd_bus_message_unref(reply);
        }
        codec_value_done(&v);
        return r;
}

static const sd_bus_vtable vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Value", "v", "v", method_value, 0),
        SD_BUS_VTABLE_END
};

static int register_object(sd_bus *server, void *userdata) {
        return sd_bus_add_object_vtable(server, NULL, "/f", "org.example.Fuzz", vtable, NULL);
}

static void from_message(const uint8_t *data, size_t size, char endian) {
        FuzzCall call = {
                .endian = endian,
                .path = "/f",
                .interface = "org.example.Fuzz",
                .member = "Value",
                .signature = "v",
                .body = data,
                .body_size = size,
        };
        int r = fuzz_call_raw(register_object, NULL, &call);

        if (r < 0 && r != -ECONNRESET)
                abort();
        if (r == 0)
                abort(); /* unanswered */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 1)
                from_message(data + 1, size - 1, data[0] & 2 ? 'B' : 'l');
        else
                from_stored_bytes(data + 1, size - 1);
        return 0;
}
