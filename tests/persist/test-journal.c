/* SPDX-License-Identifier: MIT */
/* The store's persistence hooks (journal before notify, loading mode, entry view and walk)
 * and the log codec (round trip, CRC, torn tail versus a bad record in the middle). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "persist-log.h"
#include "store.h"

static GString *trace;

static void on_journal(void *userdata, const char *key, const char *event, const StoreDelta *delta) {
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

/* ---- deltas: what each collection command hands the journal -------------------------- */

static const char *const delta_names[] = { "push", "pop", "hset", "hdel", "sadd", "srem" };

static void value_str(GString *g, const StoreValue *v) {
        if (v->type == 's')
                g_string_append_len(g, v->str.ptr, (gssize) v->str.len);
        else
                g_string_append_printf(g, "%c%" G_GINT64_FORMAT, v->type, v->i);
}

static GString *dtrace;
static Store *replica;   /* the deltas replayed here, as the loader does */

static void replay(const char *key, const StoreDelta *d) {
        switch (d->op) {
        case STORE_DELTA_PUSH:
                g_assert_cmpint(store_push(replica, key, d->left, d->values, d->n, 1, NULL), ==, 0);
                break;
        case STORE_DELTA_POP:
                g_assert_cmpint(store_pop(replica, key, d->left, d->n, 1, NULL, NULL), ==, 0);
                break;
        case STORE_DELTA_HSET:
                g_assert_cmpint(store_hset(replica, key, d->names, d->values, d->n, 1, NULL), ==, 0);
                break;
        case STORE_DELTA_HDEL:
                g_assert_cmpint(store_hdel(replica, key, d->names, d->n, 1, NULL), ==, 0);
                break;
        case STORE_DELTA_SADD:
                g_assert_cmpint(store_sadd(replica, key, d->names, d->n, 1, NULL), ==, 0);
                break;
        case STORE_DELTA_SREM:
                g_assert_cmpint(store_srem(replica, key, d->names, d->n, 1, NULL), ==, 0);
                break;
        }
}

static void on_delta_journal(void *userdata, const char *key, const char *event, const StoreDelta *d) {
        g_string_append_printf(dtrace, "%s:%s", event, key);
        if (d) {
                g_string_append_printf(dtrace, ":%s%s%zu", delta_names[d->op], d->left ? "<" : ">", d->n);
                for (size_t i = 0; i < d->n && d->op != STORE_DELTA_POP; i++) {
                        g_string_append_c(dtrace, i == 0 ? '=' : ',');
                        if (d->names)
                                g_string_append(dtrace, d->names[i]);
                        if (d->names && d->values)
                                g_string_append_c(dtrace, '/');
                        if (d->values)
                                value_str(dtrace, &d->values[i]);
                }
                replay(key, d);
        }
        g_string_append_c(dtrace, ';');
}

static int dump_item(void *userdata, const char *name, const StoreValue *value) {
        GString *g = userdata;

        g_string_append_printf(g, "%s=", name ? name : "");
        if (value)
                value_str(g, value);
        g_string_append_c(g, ',');
        return 0;
}

static void served(void *userdata, void *token, const char *key, StoreValue *value) {
        store_value_clear(value);
}

static int cmp_strp(gconstpointer a, gconstpointer b) {
        return g_strcmp0(*(char *const *) a, *(char *const *) b);
}

/* Every item of key in s as text, sorted for hashes and sets (their order is not part of the
 * state once they are big). */
static char *dump_key(Store *s, const char *key) {
        GString *g = g_string_new(NULL);
        GPtrArray *items = g_ptr_array_new_with_free_func(g_free);
        StoreEntry e;

        if (store_entry_lookup(s, key, &e) < 0)
                return g_string_free(g, FALSE);
        g_assert_cmpint(store_entry_foreach_item(s, &e, dump_item, g), ==, 0);
        if (e.kind != STORE_KIND_LIST) {
                g_auto(GStrv) parts = g_strsplit(g->str, ",", -1);

                for (char **p = parts; *p; p++)
                        g_ptr_array_add(items, g_strdup(*p));
                g_ptr_array_sort(items, cmp_strp);
                g_string_truncate(g, 0);
                for (guint i = 0; i < items->len; i++)
                        g_string_append_printf(g, "%s,", (char *) items->pdata[i]);
        }
        g_ptr_array_unref(items);
        return g_string_free(g, FALSE);
}

static void check_replica(Store *s, const char *key) {
        g_autofree char *a = dump_key(s, key), *b = dump_key(replica, key);

        g_assert_cmpstr(a, ==, b);
}

static void test_deltas(void) {
        Store *s = NULL;
        StoreValue v[] = { { .type = 's', .str = { "a", 1 } }, { .type = 's', .str = { "b", 1 } },
                           { .type = 's', .str = { "c", 1 } }, { .type = 's', .str = { "d", 1 } } };
        const char *f[] = { "f1", "f2", "f3" };
        const char *bkeys[] = { "l" };
        StoreWaiter *w = NULL;
        char **popped = NULL;
        size_t n = 0;
        int64_t iv;

        g_assert_cmpint(store_new(&s, NULL, NULL, NULL, served, NULL), ==, 0);
        g_assert_cmpint(store_new(&replica, NULL, NULL, NULL, NULL, NULL), ==, 0);
        store_set_journal(s, on_delta_journal, NULL);
        dtrace = g_string_new(NULL);

        /* a key the command creates has no delta (its whole state is the record); the replica
         * gets it the same way */
        g_assert_cmpint(store_push(s, "l", false, v, 2, 1, NULL), ==, 0);
        g_assert_cmpint(store_push(replica, "l", false, v, 2, 1, NULL), ==, 0);
        g_assert_cmpint(store_push(s, "l", true, &v[2], 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_pop(s, "l", false, 1, 1, NULL, NULL), ==, 0);
        check_replica(s, "l");
        g_assert_cmpstr(dtrace->str, ==, "rpush:l;lpush:l:push<1=c;rpop:l:pop>1;");

        /* LMove: the pop of src, then the push onto dst; a rotation (src == dst) too */
        g_string_truncate(dtrace, 0);
        g_assert_cmpint(store_push(s, "m", false, v, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_push(replica, "m", false, v, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_lmove(s, "l", "m", true, false, 1, NULL), ==, 0);
        g_assert_cmpint(store_lmove(s, "l", "l", false, true, 1, NULL), ==, 0);
        check_replica(s, "l");
        check_replica(s, "m");
        g_assert_cmpstr(dtrace->str, ==, "rpush:m;lpop:l:pop<1;rpush:m:push>1=c;rpop:l:pop>1;lpush:l:push<1=a;");

        /* a push served to a blocked BLPop: the push, then the waiter's pop */
        g_string_truncate(dtrace, 0);
        g_assert_cmpint(store_pop(s, "l", true, 10, 1, NULL, NULL), ==, 0);
        g_assert_cmpint(store_pop(replica, "l", true, 10, 1, NULL, NULL), ==, 0);
        g_assert_cmpint(store_push(s, "l", false, v, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_push(replica, "l", false, v, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_block(s, bkeys, 1, true, NULL, 1, &w, NULL, NULL), ==, 1); /* served at once */
        g_assert_cmpint(store_pop(replica, "l", true, 1, 1, NULL, NULL), ==, 0);
        g_assert_cmpint(store_block(s, bkeys, 1, true, NULL, 1, &w, NULL, NULL), ==, 0);
        g_assert_cmpint(store_push(s, "l", false, &v[1], 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_push(replica, "l", false, &v[1], 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_pop(replica, "l", true, 1, 1, NULL, NULL), ==, 0);
        check_replica(s, "l");
        g_assert_cmpstr(dtrace->str, ==, "lpop:l:pop<1;del:l;rpush:l;lpop:l:pop<1;del:l;rpush:l;lpop:l:pop<1;del:l;");

        /* hashes: HSet, HDel (all the fields given), HIncrBy (the field's new value) */
        g_string_truncate(dtrace, 0);
        g_assert_cmpint(store_hset(s, "h", f, v, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_hset(replica, "h", f, v, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_hset(s, "h", f, v + 1, 3, 1, NULL), ==, 0);
        g_assert_cmpint(store_hdel(s, "h", f + 1, 2, 1, &n), ==, 0);
        g_assert_cmpint(store_hincr(s, "h", "n", 5, 1, &iv), ==, 0);
        g_assert_cmpint(store_hincr(s, "h", "n", 2, 1, &iv), ==, 0);
        check_replica(s, "h");
        g_assert_cmpstr(dtrace->str, ==, "hset:h;hset:h:hset>3=f1/b,f2/c,f3/d;hdel:h:hdel>2=f2,f3;"
                        "hincrby:h:hset>1=n/x5;hincrby:h:hset>1=n/x7;");

        /* sets: SAdd, SRem (all the members given), SPop (the members it took) */
        g_string_truncate(dtrace, 0);
        g_assert_cmpint(store_sadd(s, "s", f, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_sadd(replica, "s", f, 1, 1, NULL), ==, 0);
        g_assert_cmpint(store_sadd(s, "s", f, 3, 1, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmpint(store_srem(s, "s", f + 2, 1, 1, &n), ==, 0);
        g_assert_cmpint(store_spop(s, "s", 1, 1, &popped, &n), ==, 0);
        g_assert_cmpuint(n, ==, 1);
        check_replica(s, "s");
        g_assert_true(g_str_has_prefix(dtrace->str, "sadd:s;sadd:s:sadd>3=f1,f2,f3;srem:s:srem>1=f3;spop:s:srem>1="));
        store_strv_free(popped, n);

        g_string_free(dtrace, TRUE);
        store_free(replica);
        store_free(s);
}

/* ---- a model: random commands on one store, the journal replayed onto another ----------
 * A delta is replayed with the command it stands for; without one, the key's resulting state
 * is copied, as the log's state records do.  After every command both stores must agree. */

static Store *model_src;
static uint64_t model_deltas;

static int copy_item(void *userdata, const char *name, const StoreValue *value) {
        const char *key = userdata;
        StoreEntry e;

        g_assert_cmpint(store_entry_lookup(model_src, key, &e), ==, 0);
        switch (e.kind) {
        case STORE_KIND_LIST:
                g_assert_cmpint(store_push(replica, key, false, value, 1, 1, NULL), ==, 0);
                break;
        case STORE_KIND_HASH:
                g_assert_cmpint(store_hset(replica, key, &name, value, 1, 1, NULL), ==, 0);
                break;
        default:
                g_assert_cmpint(store_sadd(replica, key, &name, 1, 1, NULL), ==, 0);
        }
        return 0;
}

static void on_model_journal(void *userdata, const char *key, const char *event, const StoreDelta *d) {
        StoreEntry e;

        if (g_str_equal(event, "flush")) {
                g_assert_cmpint(store_flush(replica), ==, 0);
                return;
        }
        if (d) {
                replay(key, d);
                model_deltas++;
                return;
        }
        g_assert_cmpint(store_del(replica, &key, 1, 1, NULL), ==, 0);
        if (g_str_equal(event, "del") || g_str_equal(event, "expired") || store_entry_lookup(model_src, key, &e) < 0)
                return;
        if (e.kind == STORE_KIND_LIST || e.kind == STORE_KIND_HASH || e.kind == STORE_KIND_SET)
                g_assert_cmpint(store_entry_foreach_item(model_src, &e, copy_item, (void *) key), ==, 0);
        else
                g_assert_cmpint(store_set(replica, key, &e.value, 0, 0, 1), ==, 1);
}

static uint32_t rnd_state = 14;
static uint32_t rnd(uint32_t n) {
        rnd_state = rnd_state * 1103515245u + 12345u;
        return (rnd_state >> 8) % n;
}

static void test_model(void) {
        static const char *const keys[] = { "a", "b", "h", "s" };
        static const char *const words[] = { "w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9" };
        Store *s = NULL;

        g_assert_cmpint(store_new(&s, NULL, NULL, NULL, served, NULL), ==, 0);
        g_assert_cmpint(store_new(&replica, NULL, NULL, NULL, NULL, NULL), ==, 0);
        model_src = s;
        store_set_journal(s, on_model_journal, NULL);
        for (int i = 0; i < 10000; i++) {
                const char *l = keys[rnd(2)], *l2 = keys[rnd(2)];
                const char *names[3] = { words[rnd(10)], words[rnd(10)], words[rnd(10)] };
                char buf[3][16];
                StoreValue v[3];
                StoreWaiter *w = NULL;
                char **popped = NULL;
                size_t n = 0;
                int64_t iv;
                double dv;
                int r = 0;

                for (size_t j = 0; j < 3; j++) {
                        /* values: a few distinct ones, for LRem and LInsert to find */
                        snprintf(buf[j], sizeof(buf[j]), "v%u", rnd(30));
                        v[j] = (StoreValue) { .type = 's', .str = { buf[j], strlen(buf[j]) } };
                }
                /* grows more than it shrinks, so that collections get past 64 items */
                switch (rnd(24)) {
                case 0: case 1: case 2: r = store_push(s, l, rnd(2), v, 1 + rnd(3), 1, NULL); break;
                case 3: r = store_pushx(s, l, rnd(2), v, 1 + rnd(3), 1, NULL); break;
                case 4: r = store_pop(s, l, rnd(2), 1 + rnd(2), 1, NULL, NULL); break;
                case 5: r = store_lmove(s, l, l2, rnd(2), rnd(2), 1, NULL); break;
                case 6: r = store_linsert(s, l, rnd(2), &v[0], &v[1], 1, &iv); break;
                case 7: r = store_lrem(s, l, (int64_t) rnd(5) - 2, &v[0], 1, &n); break;
                case 8: r = store_ltrim(s, l, rnd(3), -1 - (int64_t) rnd(3), 1); break;
                case 9: r = store_lset(s, l, (int64_t) rnd(10) - 5, &v[0], 1); break;
                case 10: case 11: case 12: {
                        char f[3][16];
                        const char *fs[3];

                        for (size_t j = 0; j < 3; j++) {
                                snprintf(f[j], sizeof(f[j]), "f%u", rnd(150));
                                fs[j] = f[j];
                        }
                        r = store_hset(s, "h", fs, v, 1 + rnd(3), 1, NULL);
                        break;
                }
                case 13: {
                        char f[16];
                        const char *fs = f;

                        snprintf(f, sizeof(f), "f%u", rnd(150));
                        r = store_hdel(s, "h", &fs, 1, 1, NULL);
                        break;
                }
                case 14: r = store_hincr(s, "h", names[0], (int64_t) rnd(100) - 50, 1, &iv); break;
                case 15: r = store_hincrfloat(s, "h", names[1], 0.5, 1, &dv); break;
                case 16: r = store_hsetnx(s, "h", names[2], &v[0], 1); break;
                case 17: case 18: {
                        char m[3][16];
                        const char *ms[3];

                        for (size_t j = 0; j < 3; j++) {
                                snprintf(m[j], sizeof(m[j]), "m%u", rnd(200));
                                ms[j] = m[j];
                        }
                        r = store_sadd(s, "s", ms, 1 + rnd(3), 1, NULL);
                        break;
                }
                case 19: {
                        char m[16];
                        const char *ms = m;

                        snprintf(m, sizeof(m), "m%u", rnd(200));
                        r = store_srem(s, "s", &ms, 1, 1, NULL);
                        break;
                }
                case 20:
                        r = store_spop(s, "s", rnd(3), 1, &popped, &n);
                        if (r >= 0)
                                store_strv_free(popped, n);
                        break;
                case 21: {
                        const char *bk[] = { l };

                        /* a waiter served at once, or by a later push */
                        r = store_block(s, bk, 1, rnd(2), NULL, 1, &w, NULL, NULL);
                        break;
                }
                case 22: r = rnd(50) == 0 ? store_del(s, &l, 1, 1, NULL) : 0; break;
                case 23: r = rnd(100) == 0 ? store_rename(s, l, l2, 1) : 0; break;
                }
                /* errors (a wrong type, an index out of range, an absent key) change nothing */
                (void) r;
                for (size_t j = 0; j < G_N_ELEMENTS(keys); j++)
                        check_replica(s, keys[j]);
        }
        g_assert_cmpuint(model_deltas, >, 5000);
        for (size_t j = 0; j < G_N_ELEMENTS(keys); j++) {
                StoreEntry e;

                if (store_entry_lookup(s, keys[j], &e) >= 0)
                        g_test_message("%s: %zu items", keys[j], e.n_items);
        }
        store_free(replica);
        store_free(s);
}

/* LOG_DELTA: written by logbuf_delta(), read back field by field */
static void test_delta_codec(void) {
        StoreValue v[] = { { .type = 's', .str = { "ab", 2 } }, { .type = 'u', .u = 7 } };
        const char *names[] = { "f", "g" };
        StoreDelta d = { .op = STORE_DELTA_HSET, .n = 2, .names = names, .values = v };
        LogBuf b = {};
        LogReader r;
        const char *str;
        StoreValue got;
        uint64_t u;
        uint32_t n, len, crc;
        uint8_t op;

        g_assert_cmpint(logbuf_delta(&b, "ns", "key", 1234, &d), ==, 0);
        memcpy(&len, b.data, 4);
        memcpy(&crc, b.data + 4, 4);
        g_assert_cmpuint(le32toh(len), ==, b.len - LOG_RECORD_HEADER);
        g_assert_cmpuint(le32toh(crc), ==, log_crc32(0, b.data + LOG_RECORD_HEADER, b.len - LOG_RECORD_HEADER));
        r = (LogReader) { b.data + LOG_RECORD_HEADER, b.data + b.len };
        g_assert_cmpint(logrd_u8(&r, &op), ==, 0);
        g_assert_cmpint(op, ==, LOG_DELTA);
        g_assert_cmpint(logrd_str(&r, &str, NULL), ==, 0);
        g_assert_cmpstr(str, ==, "ns");
        g_assert_cmpint(logrd_str(&r, &str, NULL), ==, 0);
        g_assert_cmpstr(str, ==, "key");
        g_assert_cmpint(logrd_u64(&r, &u), ==, 0);
        g_assert_cmpuint(u, ==, 1234);
        g_assert_cmpint(logrd_u8(&r, &op), ==, 0);
        g_assert_cmpint(op, ==, LOG_DELTA_HSET);
        g_assert_cmpint(log_delta_kind(op), ==, STORE_KIND_HASH);
        g_assert_cmpint(logrd_u8(&r, &op), ==, 0);
        g_assert_cmpint(op, ==, 0); /* not left */
        g_assert_cmpint(logrd_u32(&r, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        for (size_t i = 0; i < 2; i++) {
                g_assert_cmpint(logrd_str(&r, &str, NULL), ==, 0);
                g_assert_cmpstr(str, ==, names[i]);
                g_assert_cmpint(logrd_value(&r, &got), ==, 0);
                g_assert_true(store_value_equal(&got, &v[i]));
        }
        g_assert_true(r.p == r.end);

        /* a pop is its count alone */
        d = (StoreDelta) { .op = STORE_DELTA_POP, .left = true, .n = 3 };
        g_assert_cmpint(logbuf_delta(&b, "ns", "key", 0, &d), ==, 0);
        g_assert_cmpuint(b.len, ==, LOG_RECORD_HEADER + 1 + (4 + 3) + (4 + 4) + 8 + 1 + 1 + 4);
        g_assert_cmpint(log_delta_kind(LOG_DELTA_POP), ==, STORE_KIND_LIST);
        g_assert_cmpint(log_delta_kind(LOG_DELTA_SREM), ==, STORE_KIND_SET);
        g_assert_cmpint(log_delta_kind(0), ==, 0);
        logbuf_free(&b);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/journal/order", test_journal_order);
        g_test_add_func("/journal/entries", test_entries);
        g_test_add_func("/log/codec", test_codec);
        g_test_add_func("/journal/deltas", test_deltas);
        g_test_add_func("/journal/model", test_model);
        g_test_add_func("/log/delta-codec", test_delta_codec);
        return g_test_run();
}
