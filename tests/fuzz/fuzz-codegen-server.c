/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the argument readers of the generated server skeletons.
 *
 * The skeletons of org.example.Sample1 (tests/codegen: every argument shape the generator
 * handles) and of the hub's Store1 and Requests1 (every "as" argument the hub takes) serve
 * on a fresh sd-bus server connection.  Each input is one method call, delivered as raw
 * bytes over a socketpair (fuzz-bus.c), with a correct header and the fuzzer's bytes as
 * the body:
 *   byte 0  which method (of all methods in the three vtables)
 *   byte 1  bit 0: big-endian; bit 1: NO_REPLY_EXPECTED; bits 2-3: the array bound
 *           (0, 1, 2 elements, or the default)
 *   rest    the body
 * The handlers check what the readers promise: arrays are NULL-terminated lists (never
 * NULL) within the bound, strings are present.  And every call that expects a reply gets
 * one, unless sd-bus itself refused the message and dropped the connection. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ch-requests1-server.h"
#include "ch-sample1-server.h"
#include "ch-store1-server.h"
#include "fuzz-bus.h"

#define SAMPLE_PATH "/org/example/Sample1"
#define HUB_PATH "/org/clusterhub/ns/default"

static uint64_t bound;

static void check_strv(char **l) {
        size_t n = 0;

        if (!l)
                abort();
        while (l[n])
                n++;
        if (n > bound)
                abort();
}

static void check_str(const char *s) {
        if (!s)
                abort();
}

static int reply_empty(sd_bus_message *m) {
        return sd_bus_reply_method_return(m, NULL);
}

/* Sample1 */

static int h_echo(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *text) {
        check_str(text);
        return ch_sample1_reply_echo(m, text);
}

static int h_all_basic(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint8_t y, int b, int16_t n,
                       uint16_t q, int32_t i, uint32_t u, int64_t x, uint64_t t, double d, const char *o, const char *g) {
        check_str(o);
        check_str(g);
        if (b != 0 && b != 1)
                abort();
        if (!sd_bus_object_path_is_valid(o))
                abort();
        return ch_sample1_reply_all_basic(m, g, x);
}

static int h_reverse(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **items) {
        check_strv(items);
        return ch_sample1_reply_reverse(m, items);
}

static int h_count_paths(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **paths, const char *tag) {
        uint32_t n = 0;

        check_strv(paths);
        check_str(tag);
        for (; paths[n]; n++)
                if (!sd_bus_object_path_is_valid(paths[n]))
                        abort();
        return ch_sample1_reply_count_paths(m, n);
}

static int h_wrap(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key) {
        int r;

        check_str(key);
        /* the rest stays in the message: the skeleton positioned it at the variant */
        r = sd_bus_message_skip(m, "va{sv}");
        if (r < 0)
                return r;
        return ch_sample1_reply_wrap(m, 0, NULL, NULL);
}

static int h_fail(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *name) {
        check_str(name);
        return sd_bus_error_set(ret_error, "org.example.Error.Failed", name);
}

static int h_later(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, uint32_t value) {
        return ch_sample1_reply_later(m, value * 2);
}

static int h_fire(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *event) {
        check_str(event);
        return ch_sample1_reply_fire(m);
}

static const ChSample1Handlers sample1_handlers = {
        .echo = h_echo,
        .all_basic = h_all_basic,
        .reverse = h_reverse,
        .count_paths = h_count_paths,
        .wrap = h_wrap,
        .fail = h_fail,
        .later = h_later,
        .fire = h_fire,
};

/* Store1 and Requests1: the methods whose skeletons read arrays */

static int h_keys(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys) {
        check_strv(keys);
        return reply_empty(m);
}

static int h_key_fields(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, const char *key, char **fields) {
        check_str(key);
        check_strv(fields);
        return reply_empty(m);
}

static int h_keys_timeout(sd_bus_message *m, void *userdata, sd_bus_error *ret_error, char **keys, uint32_t timeout_ms) {
        check_strv(keys);
        return reply_empty(m);
}

static const ChStore1Handlers store1_handlers = {
        .del = h_keys,
        .exists = h_keys,
        .m_get = h_keys,
        .hm_get = h_key_fields,
        .h_del = h_key_fields,
        .s_add = h_key_fields,
        .s_rem = h_key_fields,
        .bl_pop = h_keys_timeout,
        .br_pop = h_keys_timeout,
};

static const ChRequests1Handlers requests1_handlers = {
        .serve = h_keys,
        .unserve = h_keys,
};

static int register_objects(sd_bus *server, void *userdata) {
        int r = ch_sample1_add_object(server, NULL, SAMPLE_PATH, &sample1_handlers, NULL);
        if (r < 0)
                return r;
        r = ch_store1_add_object(server, NULL, HUB_PATH, &store1_handlers, NULL);
        if (r < 0)
                return r;
        return ch_requests1_add_object(server, NULL, HUB_PATH, &requests1_handlers, NULL);
}

typedef struct Method {
        const char *path, *interface, *member, *signature;
} Method;

static Method methods[256];
static size_t n_methods;

static void add_methods(const char *path, const char *interface, const sd_bus_vtable *v) {
        for (; v->type != _SD_BUS_VTABLE_END; v++)
                if (v->type == _SD_BUS_VTABLE_METHOD && n_methods < sizeof(methods) / sizeof(methods[0]))
                        methods[n_methods++] = (Method) { path, interface, v->x.method.member, v->x.method.signature };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint64_t bounds[4] = { 0, 1, 2, CH_SAMPLE1_MAX_STRV_DEFAULT };
        int r;

        if (n_methods == 0) {
                add_methods(SAMPLE_PATH, CH_SAMPLE1_INTERFACE, ch_sample1_vtable);
                add_methods(HUB_PATH, CH_STORE1_INTERFACE, ch_store1_vtable);
                add_methods(HUB_PATH, CH_REQUESTS1_INTERFACE, ch_requests1_vtable);
        }
        if (size < 2)
                return 0;

        const Method *mt = &methods[data[0] % n_methods];
        FuzzCall call = {
                .endian = data[1] & 1 ? 'B' : 'l',
                .no_reply = data[1] & 2,
                .path = mt->path,
                .interface = mt->interface,
                .member = mt->member,
                .signature = mt->signature,
                .body = data + 2,
                .body_size = size - 2,
        };

        bound = bounds[(data[1] >> 2) & 3];
        ch_sample1_set_max_strv(bound);
        ch_store1_set_max_strv(bound);
        ch_requests1_set_max_strv(bound);

        r = fuzz_call_raw(register_objects, NULL, &call);
        if (r == -ECONNRESET)
                return 0; /* sd-bus refused the message itself */
        if (r < 0)
                abort();
        if (r == 0 && !call.no_reply)
                abort(); /* a call went unanswered */
        return 0;
}
