/* SPDX-License-Identifier: MIT */
/* The store's persistence hooks (journal before notify, loading mode, entry view and walk)
 * and the log codec (round trip, CRC, torn tail versus a bad record in the middle). */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "persist-log.h"
#include "store.h"

static GString *trace;

static void on_journal(void *userdata, const char *key, const char *event) {
        Store *s = userdata;
        StoreEntry e;

        /* the change is already applied when the journal hears of it (except "expired") */
        if (store_entry_lookup(s, key, &e) >= 0)
                g_string_append_printf(trace, "J:%s:%s:%c;", event, key, e.kind);
        else
                g_string_append_printf(trace, "J:%s:%s:-;", event, key);
}

static void on_notify(void *userdata, const char *key, const char *event) {
        g_string_append_printf(trace, "N:%s:%s;", event, key);
}

static Store *new_store(void) {
        Store *s = NULL;

        g_assert_cmpint(store_new(&s, NULL, NULL, on_notify, NULL, NULL), ==, 0);
        store_set_journal(s, on_journal, s);
        return s;
}

static void test_journal_order(void) {
        Store *s = new_store();
        StoreValue v = { .type = 's', .str = { "x", 1 } };
        const char *keys[] = { "a" };

        trace = g_string_new(NULL);
        g_assert_cmpint(store_set(s, "a", &v, 0, 0, 1), ==, 1);
        g_assert_cmpint(store_push(s, "l", false, &v, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_del(s, keys, 1, 1, NULL), ==, 0);
        g_assert_cmpstr(trace->str, ==, "J:set:a:s;N:set:a;J:rpush:l:L;N:rpush:l;J:del:a:-;N:del:a;");

        /* loading mode: neither hook hears anything */
        g_string_truncate(trace, 0);
        store_set_loading(s, true);
        g_assert_cmpint(store_set(s, "b", &v, 0, 0, 1), ==, 1);
        g_assert_cmpint(store_flush(s), ==, 0);
        store_set_loading(s, false);
        g_assert_cmpstr(trace->str, ==, "");
        g_string_free(trace, TRUE);
        store_free(s);
}

static int count_item(void *userdata, const char *name, const StoreValue *value) {
        GString *g = userdata;

        g_string_append_printf(g, "%s=%s,", name ? name : "", value ? value->str.ptr : "");
        return 0;
}

static int count_entry(void *userdata, const StoreEntry *e) {
        (*(int *) userdata)++;
        return 0;
}

static void test_entries(void) {
        Store *s = new_store();
        StoreValue v[] = { { .type = 's', .str = { "p", 1 } }, { .type = 's', .str = { "q", 1 } } };
        const char *f[] = { "f1", "f2" };
        g_autoptr(GString) items = g_string_new(NULL);
        StoreEntry e;
        int n = 0;

        trace = g_string_new(NULL);
        g_assert_cmpint(store_set(s, "k", &v[0], 5000, 0, 1000), ==, 1);
        g_assert_cmpint(store_push(s, "l", false, v, 2, 1000, NULL), ==, 0);
        g_assert_cmpint(store_hset(s, "h", f, v, 2, 1000, NULL), ==, 0);
        g_assert_cmpint(store_entry_lookup(s, "k", &e), ==, 0);
        g_assert_cmpint(e.kind, ==, 's');
        g_assert_cmpuint(e.deadline_ms, ==, 6000);
        g_assert_cmpstr(e.value.str.ptr, ==, "p");
        g_assert_cmpint(store_entry_lookup(s, "l", &e), ==, 0);
        g_assert_cmpint(e.kind, ==, STORE_KIND_LIST);
        g_assert_cmpuint(e.n_items, ==, 2);
        g_assert_cmpuint(e.deadline_ms, ==, UINT64_MAX);
        g_assert_cmpint(store_entry_foreach_item(s, &e, count_item, items), ==, 0);
        g_assert_cmpstr(items->str, ==, "=p,=q,");
        g_assert_cmpint(store_entry_lookup(s, "nope", &e), ==, -ENOKEY);
        g_assert_cmpint(store_foreach_entry(s, count_entry, &n), ==, 0);
        g_assert_cmpint(n, ==, 3);
        g_string_free(trace, TRUE);
        store_free(s);
}

/* a log of three records written with the codec */
static char *write_log(const char *dir, size_t *ret_offsets) {
        char *path = g_build_filename(dir, "clusterhub.log", NULL);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        LogBuf b = {};
        size_t off = LOG_HEADER_SIZE;

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(log_file_write_header(fd), ==, 0);
        for (int i = 0; i < 3; i++) {
                StoreValue v = { .type = 'x', .i = -i };

                logbuf_reset(&b);
                logbuf_u8(&b, LOG_SET);
                logbuf_str(&b, "ns", 2);
                logbuf_str(&b, "key", 3);
                logbuf_u64(&b, 0);
                logbuf_value(&b, &v);
                g_assert_cmpint(logbuf_finish(&b), ==, 0);
                ret_offsets[i] = off;
                off += b.len;
                g_assert_cmpint(log_write_all(fd, b.data, b.len), ==, 0);
        }
        ret_offsets[3] = off;
        logbuf_free(&b);
        close(fd);
        return path;
}

static int decode(void *userdata, const uint8_t *payload, size_t len, uint64_t offset) {
        LogReader r = { payload, payload + len };
        const char *s;
        uint8_t op;
        uint64_t u;
        StoreValue v;

        g_assert_cmpint(logrd_u8(&r, &op), ==, 0);
        g_assert_cmpint(op, ==, LOG_SET);
        g_assert_cmpint(logrd_str(&r, &s, NULL), ==, 0);
        g_assert_cmpstr(s, ==, "ns");
        g_assert_cmpint(logrd_str(&r, &s, NULL), ==, 0);
        g_assert_cmpstr(s, ==, "key");
        g_assert_cmpint(logrd_u64(&r, &u), ==, 0);
        g_assert_cmpint(logrd_value(&r, &v), ==, 0);
        g_assert_cmpint(v.type, ==, 'x');
        (*(int *) userdata)++;
        g_assert_cmpint(v.i, ==, 1 - *(int *) userdata);
        return 0;
}

static void flip(const char *path, size_t off) {
        int fd = open(path, O_RDWR);
        uint8_t c;

        g_assert_cmpint(pread(fd, &c, 1, (off_t) off), ==, 1);
        c ^= 0x40;
        g_assert_cmpint(pwrite(fd, &c, 1, (off_t) off), ==, 1);
        close(fd);
}

static void test_codec(void) {
        g_autofree char *dir = g_dir_make_tmp("persist-XXXXXX", NULL);
        size_t off[4];
        g_autofree char *path = write_log(dir, off);
        LogScan sc;
        int n = 0;

        g_assert_cmpuint(log_crc32(0, "123456789", 9), ==, 0xcbf43926u); /* the CRC-32 check value */
        g_assert_cmpint(log_file_scan(path, decode, NULL, &n, &sc), ==, 0);
        g_assert_cmpint(sc.damage, ==, LOG_INTACT);
        g_assert_cmpint(n, ==, 3);
        g_assert_cmpuint(sc.good_end, ==, off[3]);

        /* cut into the last record: a torn tail at its start */
        g_assert_cmpint(truncate(path, (off_t) off[3] - 2), ==, 0);
        g_assert_cmpint(log_file_scan(path, NULL, NULL, NULL, &sc), ==, 0);
        g_assert_cmpint(sc.damage, ==, LOG_TORN_TAIL);
        g_assert_cmpuint(sc.good_end, ==, off[2]);
        g_assert_cmpuint(sc.n_records, ==, 2);

        /* a flipped byte in the last whole record: torn tail; in the middle: corrupt */
        g_assert_cmpint(truncate(path, (off_t) off[2]), ==, 0);
        flip(path, off[1] + 10);
        g_assert_cmpint(log_file_scan(path, NULL, NULL, NULL, &sc), ==, 0);
        g_assert_cmpint(sc.damage, ==, LOG_TORN_TAIL);
        g_free(write_log(dir, off));
        flip(path, off[1] + 10);
        g_assert_cmpint(log_file_scan(path, NULL, NULL, NULL, &sc), ==, 0);
        g_assert_cmpint(sc.damage, ==, LOG_CORRUPT);
        g_assert_cmpuint(sc.good_end, ==, off[1]);
        g_assert_cmpstr(sc.reason, ==, "checksum mismatch");

        g_unlink(path);
        g_rmdir(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/journal/order", test_journal_order);
        g_test_add_func("/journal/entries", test_entries);
        g_test_add_func("/log/codec", test_codec);
        return g_test_run();
}
