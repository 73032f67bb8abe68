/* SPDX-License-Identifier: MIT */
/* Writes the seed corpus of the fuzz targets: fuzz-make-seeds DIR (DIR = tests/fuzz/corpus).
 * Built with the targets (-Dfuzz=true) because the codegen-server seeds address methods by
 * their index in the same vtables, and the codec seeds are codec_read()'s own output.
 * Message bodies are marshalled by GDBus, independently of sd-bus. */

#include <errno.h>
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ch-requests1-server.h"
#include "ch-sample1-server.h"
#include "ch-store1-server.h"
#include "variant-codec.h"

static const char *out_dir;

static void put(const char *target, const char *name, const void *data, size_t size) {
        g_autofree char *dir = g_build_filename(out_dir, target, NULL);
        GString *f = g_string_new(NULL);

        /* type strings as file names: ( and { become r and e, as sd-bus calls those containers */
        for (const char *p = name; *p; p++)
                if (*p == '(' || *p == '{')
                        g_string_append_c(f, *p == '(' ? 'r' : 'e');
                else if (g_ascii_isalnum(*p) || *p == '-')
                        g_string_append_c(f, *p);
        g_autofree char *file = g_string_free(f, FALSE);
        g_autofree char *path = g_build_filename(dir, file, NULL);
        g_autoptr(GError) error = NULL;

        g_mkdir_with_parents(dir, 0755);
        if (!g_file_set_contents(path, data, (gssize) size, &error))
                g_error("%s: %s", path, error->message);
}

/* A value of TYPE with a little content: one element per array, a string for variants. */
static GVariant *sample(const GVariantType *type) {
        const char *t = g_variant_type_peek_string(type);

        switch (t[0]) {
        case 'y': return g_variant_new_byte(7);
        case 'b': return g_variant_new_boolean(TRUE);
        case 'n': return g_variant_new_int16(-7);
        case 'q': return g_variant_new_uint16(7);
        case 'i': return g_variant_new_int32(-7);
        case 'u': return g_variant_new_uint32(7);
        case 'x': return g_variant_new_int64(-7);
        case 't': return g_variant_new_uint64(7);
        case 'd': return g_variant_new_double(0.5);
        case 's': return g_variant_new_string("key");
        case 'o': return g_variant_new_object_path("/a/b");
        case 'g': return g_variant_new_signature("a{sv}");
        case 'h': return g_variant_new_handle(0);
        case 'v': return g_variant_new_variant(g_variant_new_string("value"));
        case 'a': {
                const GVariantType *elem = g_variant_type_element(type);
                GVariantBuilder b;
                g_variant_builder_init(&b, type);
                g_variant_builder_add_value(&b, sample(elem));
                if (g_variant_type_equal(elem, G_VARIANT_TYPE_STRING))
                        g_variant_builder_add_value(&b, g_variant_new_string("other"));
                return g_variant_builder_end(&b);
        }
        case '(': case '{': {
                GVariantBuilder b;
                g_variant_builder_init(&b, type);
                for (const GVariantType *i = g_variant_type_first(type); i; i = g_variant_type_next(i))
                        g_variant_builder_add_value(&b, sample(i));
                return g_variant_builder_end(&b);
        }
        default:
                g_error("no sample for type %s", t);
        }
}

/* The D-Bus body of a call whose arguments are the tuple BODY, in byte order ORDER. */
static GBytes *marshal_body(GVariant *body, GDBusMessageByteOrder order) {
        g_autoptr(GDBusMessage) msg = g_dbus_message_new_method_call(NULL, "/", "a.b", "C");
        g_autoptr(GError) error = NULL;
        gsize size;
        guint32 body_size;

        g_dbus_message_set_byte_order(msg, order);
        g_dbus_message_set_body(msg, body);
        g_autofree guchar *blob = g_dbus_message_to_blob(msg, &size, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
        if (!blob)
                g_error("marshal: %s", error->message);
        memcpy(&body_size, blob + 4, 4);
        if (order == G_DBUS_MESSAGE_BYTE_ORDER_BIG_ENDIAN)
                body_size = GUINT32_FROM_BE(body_size);
        else
                body_size = GUINT32_FROM_LE(body_size);
        return g_bytes_new(blob + size - body_size, body_size);
}

static void put_call(const char *target, const char *name, const guint8 *prefix, size_t n_prefix, GBytes *body) {
        gsize size;
        const guint8 *b = g_bytes_get_data(body, &size);
        g_autofree guint8 *data = g_malloc(n_prefix + size + 1);

        memcpy(data, prefix, n_prefix);
        if (size)
                memcpy(data + n_prefix, b, size);
        put(target, name, data, n_prefix + size);
}

/* codegen-server: one seed per method with sample arguments; for methods taking arrays also
 * one over a bound of 1 element, and one big-endian. */
static void seeds_codegen_server(void) {
        const sd_bus_vtable *tables[] = { ch_sample1_vtable, ch_store1_vtable, ch_requests1_vtable };
        unsigned index = 0;

        for (size_t k = 0; k < G_N_ELEMENTS(tables); k++)
                for (const sd_bus_vtable *v = tables[k]; v->type != _SD_BUS_VTABLE_END; v++) {
                        if (v->type != _SD_BUS_VTABLE_METHOD)
                                continue;
                        const char *sig = v->x.method.signature ? v->x.method.signature : "";
                        g_autofree char *tuple = g_strdup_printf("(%s)", sig);
                        g_autoptr(GVariant) body = g_variant_ref_sink(sample(G_VARIANT_TYPE(tuple)));
                        g_autoptr(GBytes) le = marshal_body(body, G_DBUS_MESSAGE_BYTE_ORDER_LITTLE_ENDIAN);
                        g_autofree char *name = g_strdup_printf("%s", v->x.method.member);
                        guint8 prefix[2] = { (guint8) index, 0x0c /* default bound */ };

                        put_call("codegen-server", name, prefix, 2, le);
                        if (strstr(sig, "as") || strstr(sig, "ao")) {
                                g_autoptr(GBytes) be = marshal_body(body, G_DBUS_MESSAGE_BYTE_ORDER_BIG_ENDIAN);
                                g_autofree char *over = g_strdup_printf("%s-over-bound", v->x.method.member);
                                g_autofree char *big = g_strdup_printf("%s-big-endian", v->x.method.member);
                                guint8 p_over[2] = { (guint8) index, 0x04 /* bound 1 */ };
                                guint8 p_big[2] = { (guint8) index, 0x0d };
                                put_call("codegen-server", over, p_over, 2, le);
                                put_call("codegen-server", big, p_big, 2, be);
                        }
                        index++;
                }
}

/* Appends the GVariant V to M with sd-bus. */
static int append_gvariant(sd_bus_message *m, GVariant *v) {
        const char *t = g_variant_get_type_string(v);
        int r;

        if (g_variant_is_container(v)) {
                char type = t[0] == 'a' ? 'a' : t[0] == 'v' ? 'v' : t[0] == '(' ? 'r' : 'e';
                g_autofree char *contents = NULL;
                GVariantIter it;
                GVariant *child;

                if (type == 'a')
                        contents = g_strdup(t + 1);
                else if (type == 'v') {
                        g_autoptr(GVariant) inner = g_variant_get_variant(v);
                        contents = g_strdup(g_variant_get_type_string(inner));
                } else
                        contents = g_strndup(t + 1, strlen(t) - 2);
                r = sd_bus_message_open_container(m, type, contents);
                if (r < 0)
                        return r;
                g_variant_iter_init(&it, v);
                while ((child = g_variant_iter_next_value(&it))) {
                        r = append_gvariant(m, child);
                        g_variant_unref(child);
                        if (r < 0)
                                return r;
                }
                return sd_bus_message_close_container(m);
        }
        switch (t[0]) {
        case 'y': { uint8_t x = g_variant_get_byte(v); return sd_bus_message_append_basic(m, 'y', &x); }
        case 'b': { int x = g_variant_get_boolean(v); return sd_bus_message_append_basic(m, 'b', &x); }
        case 'n': { int16_t x = g_variant_get_int16(v); return sd_bus_message_append_basic(m, 'n', &x); }
        case 'q': { uint16_t x = g_variant_get_uint16(v); return sd_bus_message_append_basic(m, 'q', &x); }
        case 'i': { int32_t x = g_variant_get_int32(v); return sd_bus_message_append_basic(m, 'i', &x); }
        case 'u': { uint32_t x = g_variant_get_uint32(v); return sd_bus_message_append_basic(m, 'u', &x); }
        case 'x': { int64_t x = g_variant_get_int64(v); return sd_bus_message_append_basic(m, 'x', &x); }
        case 't': { uint64_t x = g_variant_get_uint64(v); return sd_bus_message_append_basic(m, 't', &x); }
        case 'd': { double x = g_variant_get_double(v); return sd_bus_message_append_basic(m, 'd', &x); }
        default: return sd_bus_message_append_basic(m, t[0], g_variant_get_string(v, NULL));
        }
}

/* codec: message bodies (odd first byte) and stored bytes (even first byte), for the same
 * values; the stored bytes are what codec_read() makes of them. */
static void seeds_codec(void) {
        static const char *const types[] = { "s", "u", "b", "d", "as", "ao", "ai", "aay", "a{sv}", "a{ss}", "(ibd)", "v", "av",
                                             "a(sv)", "(yxtqn)", "g", "aas" };
        sd_bus *bus = NULL;
        int fds[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ||
            sd_bus_new(&bus) < 0 || sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0)
                g_error("bus");
        for (size_t k = 0; k < G_N_ELEMENTS(types); k++) {
                g_autoptr(GVariant) value = g_variant_ref_sink(sample(G_VARIANT_TYPE(types[k])));
                g_autoptr(GVariant) body = g_variant_ref_sink(g_variant_new("(v)", value));
                g_autoptr(GBytes) le = marshal_body(body, G_DBUS_MESSAGE_BYTE_ORDER_LITTLE_ENDIAN);
                g_autoptr(GBytes) be = marshal_body(body, G_DBUS_MESSAGE_BYTE_ORDER_BIG_ENDIAN);
                g_autofree char *n_msg = g_strdup_printf("message-%s", types[k]);
                g_autofree char *n_be = g_strdup_printf("message-be-%s", types[k]);
                g_autofree char *n_stored = g_strdup_printf("stored-%s", types[k]);
                guint8 p_le = 1, p_be = 3;
                sd_bus_message *m = NULL;
                CodecBuf buf = {};

                put_call("codec", n_msg, &p_le, 1, le);
                put_call("codec", n_be, &p_be, 1, be);

                /* the same value through sd-bus and codec_read(), as the hub stores it */
                if (sd_bus_message_new_method_call(bus, &m, NULL, "/", "a.b", "C") < 0)
                        g_error("message");
                GString *seed = g_string_new_len("\0", 1);
                g_string_append_len(seed, types[k], (gssize) strlen(types[k]) + 1);
                if (sd_bus_message_open_container(m, 'v', types[k]) < 0 || append_gvariant(m, value) < 0 ||
                    sd_bus_message_close_container(m) < 0 || sd_bus_message_seal(m, 1, 0) < 0 ||
                    sd_bus_message_rewind(m, 1) < 0 || sd_bus_message_enter_container(m, 'v', types[k]) <= 0 ||
                    codec_read(m, types[k], &buf) < 0)
                        g_error("codec_read of %s failed", types[k]);
                g_string_append_len(seed, buf.data, (gssize) buf.size);
                put("codec", n_stored, seed->str, seed->len);
                g_string_free(seed, TRUE);
                codec_buf_done(&buf);
                sd_bus_message_unref(m);
        }
        sd_bus_flush_close_unref(bus);
        close(fds[1]);
}

static void glob_seed(const char *name, const char *pattern, const char *string) {
        size_t pl = strlen(pattern), sl = strlen(string);
        g_autofree char *data = g_malloc(1 + pl + sl);

        data[0] = (char) pl;
        memcpy(data + 1, pattern, pl);
        memcpy(data + 1 + pl, string, sl);
        put("glob", name, data, 1 + pl + sl);
}

static void seeds_glob(void) {
        glob_seed("star", "*", "abc");
        glob_seed("question", "a*b?c", "axxbyc");
        glob_seed("class-range", "[a-c]x", "bx");
        glob_seed("class-negated", "[^abc]*", "zzz");
        glob_seed("class-reversed-range", "[z-a]", "m");
        glob_seed("class-escape", "[\\]]", "]");
        glob_seed("class-unterminated", "[a-", "b");
        glob_seed("escape", "\\*x", "*x");
        glob_seed("trailing-backslash", "ab\\", "ab\\");
        glob_seed("trailing-stars", "a**", "a");
        glob_seed("many-stars", "*a*a*a*ab", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac");
        glob_seed("hello", "h[^e]llo", "hallo");
}

int main(int argc, char *argv[]) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
                return 2;
        }
        out_dir = argv[1];
        seeds_glob();
        seeds_codec();
        seeds_codegen_server();
        return 0;
}
