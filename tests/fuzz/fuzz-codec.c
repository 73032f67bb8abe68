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

typedef struct Val {
        StoreValue value;
        char sig[256];
        CodecBuf buf;
} Val;

static void val_done(Val *v) {
        codec_buf_done(&v->buf);
        *v = (Val) {};
}

static bool is_basic(const char *sig) {
        return sig[0] && !sig[1] && strchr("ybnqiuxtdsog", sig[0]);
}

/* Reads a variant at M's position into V, like service/bus/bus-store.c does. */
static int read_variant(sd_bus_message *m, Val *v) {
        const char *contents = NULL;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0 || type != 'v')
                return -EINVAL;
        if (strlen(contents) >= sizeof(v->sig))
                abort(); /* sd-bus caps signatures at 255 */
        strcpy(v->sig, contents);
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        if (is_basic(contents)) {
                union { uint8_t y; int16_t n; uint16_t q; int b; int32_t i; uint32_t u; int64_t x; uint64_t t; double d; const char *s; } b;
                r = sd_bus_message_read_basic(m, contents[0], &b);
                if (r <= 0)
                        return r < 0 ? r : -EBADMSG;
                v->value.type = contents[0];
                switch (contents[0]) {
                case 'y': v->value.i = b.y; break;
                case 'b': v->value.i = !!b.b; break;
                case 'n': v->value.i = b.n; break;
                case 'i': v->value.i = b.i; break;
                case 'x': v->value.i = b.x; break;
                case 'q': v->value.u = b.q; break;
                case 'u': v->value.u = b.u; break;
                case 't': v->value.u = b.t; break;
                case 'd': v->value.d = b.d; break;
                default:
                        v->value.str.ptr = b.s;
                        v->value.str.len = strlen(b.s);
                }
        } else {
                r = codec_read(m, contents, &v->buf);
                if (r < 0)
                        return r;
                v->value.type = 'v';
                v->value.blob.sig = v->sig;
                v->value.blob.data = v->buf.data;
                v->value.blob.len = v->buf.size;
        }
        return sd_bus_message_exit_container(m);
}

/* Writes V as a variant, like service/bus/bus-store.c does. */
static int append_variant(sd_bus_message *m, const StoreValue *v) {
        char sig[2] = { v->type, 0 };
        union { uint8_t y; int16_t n; uint16_t q; int b; int32_t i; uint32_t u; } x;
        char *s = NULL;
        int r;

        r = sd_bus_message_open_container(m, 'v', v->type == 'v' ? v->blob.sig : sig);
        if (r < 0)
                return r;
        switch (v->type) {
        case 'v': r = codec_append(m, v->blob.sig, v->blob.data, v->blob.len); break;
        case 's': case 'o': case 'g':
                s = strndup(v->str.ptr, v->str.len);
                if (!s)
                        return -ENOMEM;
                r = sd_bus_message_append_basic(m, v->type, s);
                free(s);
                break;
        case 'y': x.y = v->i; r = sd_bus_message_append_basic(m, 'y', &x.y); break;
        case 'b': x.b = !!v->i; r = sd_bus_message_append_basic(m, 'b', &x.b); break;
        case 'n': x.n = v->i; r = sd_bus_message_append_basic(m, 'n', &x.n); break;
        case 'i': x.i = v->i; r = sd_bus_message_append_basic(m, 'i', &x.i); break;
        case 'q': x.q = v->u; r = sd_bus_message_append_basic(m, 'q', &x.q); break;
        case 'u': x.u = v->u; r = sd_bus_message_append_basic(m, 'u', &x.u); break;
        case 'x': r = sd_bus_message_append_basic(m, 'x', &v->i); break;
        case 't': r = sd_bus_message_append_basic(m, 't', &v->u); break;
        case 'd': r = sd_bus_message_append_basic(m, 'd', &v->d); break;
        default: return -EBADMSG;
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

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
        Val again = {};
        int r;

        if (!store && store_new(&store, NULL, NULL, NULL, NULL, NULL) < 0)
                abort();
        r = store_set(store, "k", v, 0, 0, 0);
        if (r != 1)
                abort();
        if (store_get(store, "k", 0, &got) < 0 || !store_value_equal(&got, v))
                abort();
        if (append_variant(m, &got) < 0)
                abort();
        seal(m);
        if (read_variant(m, &again) < 0 || !store_value_equal(&again.value, v))
                abort();
        val_done(&again);
        sd_bus_message_unref(m);
}

static void from_stored_bytes(const uint8_t *data, size_t size) {
        const uint8_t *nul = memchr(data, 0, size);
        sd_bus_message *m;
        Val v = {};
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
                /* what codec_append() wrote, codec_read() reads */
                if (read_variant(m, &v) < 0)
                        abort();
                check_value(&v.value);
                val_done(&v);
        }
        sd_bus_message_unref(m);
}

static int method_value(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sd_bus_message *reply = NULL;
        Val v = {};
        int r;

        r = read_variant(m, &v);
        if (r >= 0) {
                check_value(&v.value);
                r = sd_bus_message_new_method_return(m, &reply);
                if (r >= 0)
                        r = append_variant(reply, &v.value);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                sd_bus_message_unref(reply);
        }
        val_done(&v);
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
