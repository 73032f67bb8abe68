/* SPDX-License-Identifier: MIT */
/* hubctl dump: the keys of one or every namespace as one JSON document, which hubctl restore
 * (cmd-restore.c) writes back: what EventVat's dump() and reconstitute did. This file also
 * holds what both share (dump.h). The format (docs/hubctl.md, "Dump format"):
 *
 *   {"format":"clusterhub-dump","version":1,"namespaces":{
 *   "NS":{
 *   "KEY":{"type":"string","ttl_ms":5000,"value":["s","text"]},
 *   "KEY":{"type":"list","values":[["x",1],["ay","AAE="]]},
 *   "KEY":{"type":"hash","fields":{"FIELD":["d",1.5]}},
 *   "KEY":{"type":"set","members":["a","b"]}
 *   }}}
 *
 * A value is [SIGNATURE, DATA]: the D-Bus type it was stored with and its data, so that restore
 * rebuilds the same variant. DATA: integers as JSON numbers (64-bit exact), d as a number or
 * "NaN"/"Infinity"/"-Infinity", b as true/false, s o g as strings, v as [SIGNATURE, DATA] again,
 * ay as a base64 string, other arrays and structs as JSON arrays, a{KV} as an array of [K, V]
 * pairs (D-Bus dictionaries have ordered keys of any basic type). Keys and set members are
 * sorted, hashes keep the order HGetAll gives (sorted past 128 fields, where it is the table's),
 * lists their order: dumping the same data twice, in one hub or two, writes the same text (but
 * for TTLs). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "json.h"

#define SCAN_COUNT 1000u            /* Scan's count hint */
#define KEYS_PER_BATCH 32           /* keys read together: one MGet, then their TTLs (and the Type
                                     * and reads of collections); 32 values of 1 MiB at most in
                                     * one MGet reply */
#define LIST_SLICE 256              /* LRange elements per call */
#define RETRIES 5                   /* a key that changes type while it is read */

/* --- shared with cmd-restore.c (dump.h) -------------------------------------------------- */

int dump_handle_option(const Option *o, const char *arg, void *userdata) {
        DumpArgs *a = userdata;

        switch (o->id) {
        case DUMP_OPT_HELP:
                a->help();
                return 1;
        case DUMP_OPT_NS:
        case DUMP_OPT_FROM:
                if (!namespace_name_ok(arg)) {
                        fprintf(stderr, "%s: '%s' is not a namespace name: 1 to 255 characters of [A-Za-z0-9_].\n",
                                program, arg);
                        return -EINVAL;
                }
                if (o->id == DUMP_OPT_FROM)
                        a->from = arg;
                else {
                        arg_ns = arg;
                        arg_ns_set = true;
                }
                break;
        case DUMP_OPT_REPLACE:
                a->replace = true;
                break;
        }
        return 0;
}

static bool is_basic(char c) {
        return c && strchr("ybnqiuxtdsog", c);
}

size_t type_len(const char *sig, unsigned depth) {
        size_t l;

        if (depth > NESTING_MAX)
                return 0;
        if (is_basic(sig[0]) || sig[0] == 'v')
                return 1;
        if (sig[0] == 'a' && sig[1] == '{') {
                if (!is_basic(sig[2]))
                        return 0;
                l = type_len(sig + 3, depth + 1);
                return l && sig[3 + l] == '}' ? 4 + l : 0;
        }
        if (sig[0] == 'a') {
                l = type_len(sig + 1, depth + 1);
                return l ? 1 + l : 0;
        }
        if (sig[0] == '(') {
                l = 1;
                while (sig[l] != ')') {
                        size_t m = type_len(sig + l, depth + 1);
                        if (m == 0)
                                return 0;
                        l += m;
                }
                return l > 1 ? l + 1 : 0;
        }
        return 0;
}

bool signature_ok(const char *sig) {
        size_t l = strlen(sig);
        return l > 0 && l <= 255 && type_len(sig, 0) == l;
}

const char *type_of_signature(const char *sig) {
        if (strchr("sog", sig[0]) && !sig[1])
                return "string";
        if (strchr("ynqiuxt", sig[0]) && !sig[1])
                return "int";
        if (streq(sig, "d"))
                return "double";
        if (streq(sig, "b"))
                return "bool";
        return "value";
}

/* --- pipelined calls ------------------------------------------------------------------------- */

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Reply *r = userdata;

        r->pipe->inflight--;
        r->slot = sd_bus_slot_unref(r->slot);
        if (r->done)
                r->done(r, m);
        else
                r->m = sd_bus_message_ref(m);
        return 0;
}

int pipe_send(Pipe *p, Reply *r, sd_bus_message *call) {
        int k;

        k = pipe_wait(p, WINDOW - 1);
        if (k < 0)
                return k;
        r->pipe = p;
        k = sd_bus_call_async(p->bus, &r->slot, call, on_reply, r, 0);
        if (k < 0) {
                log_bus_error(sd_bus_message_get_member(call), NULL, k);
                return k;
        }
        p->inflight++;
        return 0;
}

void reply_clear(Reply *r) {
        if (r->slot) {
                r->slot = sd_bus_slot_unref(r->slot);
                r->pipe->inflight--;
        }
        r->m = sd_bus_message_unref(r->m);
}

int pipe_wait(Pipe *p, unsigned max) {
        while (p->inflight > max) {
                int r = sd_bus_process(p->bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(p->bus, UINT64_MAX);
                if (r < 0) {
                        log_bus_error("hub connection", NULL, r);
                        return r;
                }
        }
        return 0;
}

int new_store_call(sd_bus *bus, sd_bus_message **ret, const char *path, const char *member, const char *key) {
        int r = new_call(bus, ret, path, CH_STORE1_INTERFACE, member);
        if (r >= 0 && key)
                r = sd_bus_message_append_basic(*ret, 's', key);
        return r;
}

const sd_bus_error *reply_error(sd_bus_message *m) {
        return sd_bus_message_is_method_error(m, NULL) ? sd_bus_message_get_error(m) : NULL;
}

/* Reports the failed call of R ("Get of key 'k' in namespace 'n': org...: message"). */
static int report_reply(sd_bus_message *m, const char *member, const char *ns, const char *key) {
        _cleanup_free_ char *what = NULL;

        if (asprintf(&what, "%s of key '%s' in namespace '%s'", member, key, ns) < 0)
                return -ENOMEM;
        log_bus_error(what, reply_error(m), -EIO);
        return -EIO;
}

/* --- D-Bus -> JSON ------------------------------------------------------------------------- */

static void print_double(FILE *f, double d) {
        char buf[40];

        if (isnan(d)) {
                fputs("\"NaN\"", f);
                return;
        }
        if (isinf(d)) {
                fputs(d > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
                return;
        }
        /* the shortest that reads back as the same double */
        for (int precision = 15; precision <= 17; precision++) {
                snprintf(buf, sizeof(buf), "%.*g", precision, d);
                if (strtod(buf, NULL) == d)
                        break;
        }
        if (!strpbrk(buf, ".e"))
                strcat(buf, ".0"); /* reads as a number with a fraction elsewhere too ("-0.0", "2.0") */
        fputs(buf, f);
}

static int print_data(FILE *f, sd_bus_message *m, unsigned depth);

/* The variant at M's cursor as [SIGNATURE, DATA]. */
static int print_typed(FILE *f, sd_bus_message *m, unsigned depth) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0 || type != 'v')
                return r < 0 ? r : -EBADMSG;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        fputc('[', f);
        json_string(f, contents);
        fputc(',', f);
        r = print_data(f, m, depth + 1);
        if (r < 0)
                return r;
        fputc(']', f);
        return sd_bus_message_exit_container(m);
}

static int print_basic(FILE *f, sd_bus_message *m, char type) {
        ValueBasic v;
        int r = sd_bus_message_read_basic(m, type, &v);

        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (type == 's' || type == 'o' || type == 'g')
                json_string(f, v.s);
        else if (type == 'd')
                print_double(f, v.d);
        else if (!value_print_number(f, type, &v))
                return -EBADMSG; /* 'h': the hub stores no file descriptors */
        return 0;
}

/* The DATA of the complete value at M's cursor. */
static int print_data(FILE *f, sd_bus_message *m, unsigned depth) {
        const char *contents;
        bool first = true;
        char type;
        int r;

        if (depth > 4 * NESTING_MAX)
                return -ELOOP;
        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (type == 'v')
                return print_typed(f, m, depth);
        if (type == 'a' && streq(contents, "y")) {
                const void *bytes;
                size_t n;
                r = sd_bus_message_read_array(m, 'y', &bytes, &n);
                if (r < 0)
                        return r;
                fputc('"', f);
                base64_write(f, bytes, n);
                fputc('"', f);
                return 0;
        }
        if (!strchr("are", type))
                return print_basic(f, m, type);
        /* arrays, structs and dictionary entries: a JSON array */
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        fputc('[', f);
        while ((r = sd_bus_message_at_end(m, false)) == 0) {
                if (!first)
                        fputc(',', f);
                first = false;
                r = print_data(f, m, depth + 1);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        fputc(']', f);
        return sd_bus_message_exit_container(m);
}

/* --- dump ------------------------------------------------------------------------------------ */

typedef enum Kind { KIND_NONE, KIND_VALUE, KIND_HASH, KIND_LIST, KIND_SET } Kind;

typedef struct Dumper {
        Pipe pipe;
        FILE *f;
        const char *ns;
        char *path;
        bool first; /* no key of this namespace written yet */
} Dumper;

typedef struct KeyRead {
        const char *key;
        Kind kind;
        char type[16];    /* Type()'s answer */
        char *value_json; /* a plain value that MGet gave, printed */
        size_t value_len;
        Reply type_reply, value, ttl;
} KeyRead;

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void strv_free_n(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* Every key of the namespace (Scan in slices, so that the hub stays responsive), sorted, each
 * once. */
static int scan_keys(Dumper *d, char ***ret, size_t *ret_n) {
        char **keys = NULL;
        size_t n = 0, allocated = 0;
        uint64_t cursor = 0;
        int r;

        do {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *k;

                r = sd_bus_call_method(d->pipe.bus, CH_BUS_NAME, d->path, CH_STORE1_INTERFACE, "Scan", &e, &reply, "tsu",
                                       cursor, "*", SCAN_COUNT);
                if (r < 0) {
                        _cleanup_free_ char *what = NULL;
                        if (asprintf(&what, "Scan of namespace '%s'", d->ns) >= 0)
                                log_bus_error(what, &e, r);
                        sd_bus_error_free(&e);
                        strv_free_n(keys, n);
                        return r;
                }
                r = sd_bus_message_read_basic(reply, 't', &cursor);
                if (r > 0)
                        r = sd_bus_message_enter_container(reply, 'a', "s");
                while (r > 0 && (r = sd_bus_message_read_basic(reply, 's', &k)) > 0) {
                        if (n == allocated) {
                                size_t na = allocated ? allocated * 2 : 256;
                                char **grown = reallocarray(keys, na, sizeof(char *));
                                if (!grown) {
                                        r = -ENOMEM;
                                        break;
                                }
                                keys = grown;
                                allocated = na;
                        }
                        if (!(keys[n] = strdup(k))) {
                                r = -ENOMEM;
                                break;
                        }
                        n++;
                }
                sd_bus_message_unref(reply);
                if (r < 0) {
                        fprintf(stderr, "%s: Cannot read the Scan reply: %s\n", program, strerror(-r));
                        strv_free_n(keys, n);
                        return r;
                }
        } while (cursor != 0);

        if (n > 1)
                qsort(keys, n, sizeof(char *), cmp_str);
        /* Scan may return a key twice */
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
                if (w > 0 && streq(keys[w - 1], keys[i]))
                        free(keys[i]);
                else
                        keys[w++] = keys[i];
        *ret = keys;
        *ret_n = w;
        return 0;
}

static int send_read(Dumper *d, Reply *r, const char *member, const char *key, const char *types, ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int k;

        k = new_store_call(d->pipe.bus, &m, d->path, member, key);
        if (k >= 0 && types) {
                va_start(ap, types);
                k = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (k >= 0)
                k = pipe_send(&d->pipe, r, m);
        else
                fprintf(stderr, "%s: Cannot build the %s call: %s\n", program, member, strerror(-k));
        sd_bus_message_unref(m);
        return k;
}

static Kind kind_of(const char *type) {
        if (streq(type, "hash"))
                return KIND_HASH;
        if (streq(type, "list"))
                return KIND_LIST;
        if (streq(type, "set"))
                return KIND_SET;
        if (streq(type, "none"))
                return KIND_NONE;
        return KIND_VALUE;
}

/* Reads K's Type reply and sends the calls that read its value and TTL. */
static int send_value_reads(Dumper *d, KeyRead *k) {
        const char *type;
        int r;

        if (reply_error(k->type_reply.m))
                return report_reply(k->type_reply.m, "Type", d->ns, k->key);
        r = sd_bus_message_read_basic(k->type_reply.m, 's', &type);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        snprintf(k->type, sizeof(k->type), "%s", type);
        k->kind = kind_of(type);
        switch (k->kind) {
        case KIND_NONE:
                return 0; /* deleted since the scan */
        case KIND_VALUE:
                r = send_read(d, &k->value, "Get", k->key, NULL);
                break;
        case KIND_HASH:
                r = send_read(d, &k->value, "HGetAll", k->key, NULL);
                break;
        case KIND_SET:
                r = send_read(d, &k->value, "SMembers", k->key, NULL);
                break;
        case KIND_LIST:
                r = send_read(d, &k->value, "LRange", k->key, "xx", (int64_t) 0, (int64_t) LIST_SLICE - 1);
                break;
        }
        if (r < 0)
                return r;
        return send_read(d, &k->ttl, "TTL", k->key, NULL);
}

/* The set's members, sorted (borrowed from the reply). */
static int print_members(Dumper *d, sd_bus_message *m) {
        const char **v = NULL;
        size_t n = 0, allocated = 0;
        const char *s;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        while (r > 0 && (r = sd_bus_message_read_basic(m, 's', &s)) > 0) {
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 64;
                        const char **grown = reallocarray(v, na, sizeof(char *));
                        if (!grown) {
                                free(v);
                                return -ENOMEM;
                        }
                        v = grown;
                        allocated = na;
                }
                v[n++] = s;
        }
        if (r < 0) {
                free(v);
                return r;
        }
        if (n > 1)
                qsort(v, n, sizeof(char *), cmp_str);
        fputc('[', d->f);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        fputc(',', d->f);
                json_string(d->f, v[i]);
        }
        fputc(']', d->f);
        free(v);
        return 0;
}

typedef struct Field {
        const char *name; /* borrowed from the reply */
        char *json;       /* its value, printed */
        size_t len;
} Field;

static int cmp_field(const void *a, const void *b) {
        return strcmp(((const Field *) a)->name, ((const Field *) b)->name);
}

static void fields_free(Field *f, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(f[i].json);
        free(f);
}

/* The hash's fields as an object: in HGetAll's order, which is insertion order up to 128 fields
 * (docs/store.md); a larger hash has its table's order, which means nothing and need not be the
 * same in another hub, so those are sorted by name. */
static int print_fields(Dumper *d, sd_bus_message *m) {
        Field *fields = NULL;
        size_t n = 0, allocated = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                FILE *mem;
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        Field *grown = reallocarray(fields, na, sizeof(Field));
                        if (!grown) {
                                r = -ENOMEM;
                                break;
                        }
                        fields = grown;
                        allocated = na;
                }
                fields[n] = (Field) {};
                r = sd_bus_message_read_basic(m, 's', &fields[n].name);
                if (r < 0)
                        break;
                mem = open_memstream(&fields[n].json, &fields[n].len);
                if (!mem) {
                        r = -errno;
                        break;
                }
                n++;
                r = print_typed(mem, m, 0);
                if (fclose(mem) != 0 && r >= 0)
                        r = -errno;
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                fields_free(fields, n);
                return r;
        }
        if (n > 128)
                qsort(fields, n, sizeof(Field), cmp_field);
        fputc('{', d->f);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        fputc(',', d->f);
                json_string(d->f, fields[i].name);
                fputc(':', d->f);
                fwrite(fields[i].json, 1, fields[i].len, d->f);
        }
        fputc('}', d->f);
        fields_free(fields, n);
        return 0;
}

/* Prints the elements of one LRange reply (after a ',' unless FIRST); *RET_N: how many. */
static int print_list_slice(Dumper *d, sd_bus_message *m, bool first, size_t *ret_n) {
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "v");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_at_end(m, false)) == 0) {
                if (!first || n > 0)
                        fputc(',', d->f);
                r = print_typed(d->f, m, 0);
                if (r < 0)
                        return r;
                n++;
        }
        if (r < 0)
                return r;
        *ret_n = n;
        return sd_bus_message_exit_container(m);
}

/* The rest of a list longer than one slice: LRange slices one after the other (not atomic). */
static int print_list_rest(Dumper *d, const char *key, size_t start) {
        for (;;) {
                sd_bus_message *reply = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;
                size_t n = 0;
                int r;

                r = sd_bus_call_method(d->pipe.bus, CH_BUS_NAME, d->path, CH_STORE1_INTERFACE, "LRange", &e, &reply, "sxx",
                                       key, (int64_t) start, (int64_t) (start + LIST_SLICE - 1));
                if (r < 0) {
                        _cleanup_free_ char *what = NULL;
                        if (asprintf(&what, "LRange of key '%s' in namespace '%s'", key, d->ns) >= 0)
                                log_bus_error(what, &e, r);
                        sd_bus_error_free(&e);
                        return r;
                }
                r = print_list_slice(d, reply, false, &n);
                sd_bus_message_unref(reply);
                if (r < 0)
                        return r;
                if (n < LIST_SLICE)
                        return 0;
                start += n;
        }
}

/* Writes K, when its replies say it still exists. -EAGAIN: it changed type since Type (nothing
 * was written; read it again). */
static int print_key(Dumper *d, KeyRead *k) {
        const sd_bus_error *e;
        int64_t ttl;
        size_t n = 0;
        int r;

        if (k->kind == KIND_NONE)
                return 0;
        if (reply_error(k->ttl.m))
                return report_reply(k->ttl.m, "TTL", d->ns, k->key);
        r = sd_bus_message_read_basic(k->ttl.m, 'x', &ttl);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        e = k->value_json ? NULL : reply_error(k->value.m);
        if (e && sd_bus_error_has_name(e, CH_ERROR_WRONG_TYPE))
                return -EAGAIN;
        if (e && sd_bus_error_has_name(e, CH_ERROR_NO_SUCH_KEY))
                return ttl == -2 ? 0 : -EAGAIN;
        if (e)
                return report_reply(k->value.m, sd_bus_message_get_member(k->value.m) ?: "read", d->ns, k->key);
        if (ttl == -2)
                return 0; /* deleted (or expired) since it was read */
        if (k->kind != KIND_VALUE) {
                /* an empty collection does not exist: the key went away and came back */
                r = sd_bus_message_enter_container(k->value.m, 'a', NULL);
                if (r < 0)
                        return r;
                r = sd_bus_message_at_end(k->value.m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        return -EAGAIN;
                r = sd_bus_message_rewind(k->value.m, true);
                if (r < 0)
                        return r;
        }

        fputs(d->first ? "\n" : ",\n", d->f);
        d->first = false;
        json_string(d->f, k->key);
        fputs(":{\"type\":", d->f);
        json_string(d->f, k->type);
        if (ttl >= 0)
                fprintf(d->f, ",\"ttl_ms\":%" PRIi64, ttl > 0 ? ttl : 1);
        switch (k->kind) {
        case KIND_VALUE:
                fputs(",\"value\":", d->f);
                if (k->value_json)
                        fwrite(k->value_json, 1, k->value_len, d->f);
                else
                        r = print_typed(d->f, k->value.m, 0);
                break;
        case KIND_HASH:
                fputs(",\"fields\":", d->f);
                r = print_fields(d, k->value.m);
                break;
        case KIND_SET:
                fputs(",\"members\":", d->f);
                r = print_members(d, k->value.m);
                break;
        case KIND_LIST:
                fputs(",\"values\":[", d->f);
                r = print_list_slice(d, k->value.m, true, &n);
                if (r >= 0 && n == LIST_SLICE)
                        r = print_list_rest(d, k->key, n);
                if (r >= 0)
                        fputc(']', d->f);
                break;
        default:
                r = -EBADMSG;
        }
        if (r < 0) {
                if (r != -EIO)
                        fprintf(stderr, "%s: Cannot read the value of key '%s' in namespace '%s': %s\n", program, k->key,
                                d->ns, strerror(-r));
                return r;
        }
        fputc('}', d->f);
        return 0;
}

static void key_reads_free(KeyRead *k, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(k[i].value_json);
                reply_clear(&k[i].type_reply);
                reply_clear(&k[i].value);
                reply_clear(&k[i].ttl);
        }
        free(k);
}

/* The plain values among the keys of K, with one MGet: then only their TTL is left to read, a
 * call per key instead of three (Type, Get, TTL). Keys MGet leaves out hold collections, or are
 * gone. When MGet fails (a reply too large for the bus), every key takes the longer way. */
static int mget_values(Dumper *d, KeyRead *k, size_t n) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *key, *sig;
        int r;

        r = new_store_call(d->pipe.bus, &m, d->path, "MGet", NULL);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "s");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append_basic(m, 's', k[i].key);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0 && sd_bus_call(d->pipe.bus, m, 0, NULL, &reply) < 0)
                goto finish; /* the longer way */
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                KeyRead *found = NULL;
                FILE *mem;

                r = sd_bus_message_read_basic(reply, 's', &key);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, NULL, &sig);
                if (r < 0)
                        break;
                /* K is sorted by key */
                for (size_t lo = 0, hi = n; lo < hi && !found;) {
                        size_t mid = (lo + hi) / 2;
                        int c = strcmp(key, k[mid].key);
                        if (c == 0)
                                found = &k[mid];
                        else if (c < 0)
                                hi = mid;
                        else
                                lo = mid + 1;
                }
                if (!found || found->value_json) {
                        r = -EBADMSG;
                        break;
                }
                mem = open_memstream(&found->value_json, &found->value_len);
                if (!mem) {
                        r = -errno;
                        break;
                }
                r = print_typed(mem, reply, 0);
                if (fclose(mem) != 0 && r >= 0)
                        r = -errno;
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                found->kind = KIND_VALUE;
                snprintf(found->type, sizeof(found->type), "%s", type_of_signature(sig));
        }
        if (r < 0)
                fprintf(stderr, "%s: Cannot read the MGet reply in namespace '%s': %s\n", program, d->ns, strerror(-r));
finish:
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r < 0 ? r : 0;
}

/* Reads and writes KEYS[0..N) (sorted): MGet, then in flight the TTLs of the plain values and
 * the Type of the others, then in flight the reads and TTLs of those. */
static int dump_batch(Dumper *d, char **keys, size_t n, unsigned attempt) {
        KeyRead *k = calloc(n, sizeof(KeyRead));
        int r;

        if (!k)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                k[i].key = keys[i];
        r = mget_values(d, k, n);
        for (size_t i = 0; i < n && r >= 0; i++)
                if (k[i].value_json)
                        r = send_read(d, &k[i].ttl, "TTL", keys[i], NULL);
                else
                        r = send_read(d, &k[i].type_reply, "Type", keys[i], NULL);
        if (r >= 0)
                r = pipe_wait(&d->pipe, 0);
        for (size_t i = 0; i < n && r >= 0; i++)
                if (!k[i].value_json)
                        r = send_value_reads(d, &k[i]);
        if (r >= 0)
                r = pipe_wait(&d->pipe, 0);
        for (size_t i = 0; i < n && r >= 0; i++) {
                r = print_key(d, &k[i]);
                if (r != -EAGAIN)
                        continue;
                if (attempt >= RETRIES) {
                        fprintf(stderr, "%s: Key '%s' in namespace '%s' changed type %u times while it was read.\n",
                                program, k[i].key, d->ns, RETRIES);
                        break;
                }
                r = dump_batch(d, &keys[i], 1, attempt + 1);
        }
        key_reads_free(k, n);
        return r;
}

static int dump_namespace(Dumper *d, const char *ns) {
        char **keys = NULL;
        size_t n = 0;
        int r;

        free(d->path);
        if (asprintf(&d->path, "%s%s", CH_NAMESPACE_PATH_PREFIX, ns) < 0) {
                d->path = NULL;
                return -ENOMEM;
        }
        d->ns = ns;
        d->first = true;
        r = scan_keys(d, &keys, &n);
        if (r < 0)
                return r;
        json_string(d->f, ns);
        fputs(":{", d->f);
        for (size_t i = 0; i < n && r >= 0; i += KEYS_PER_BATCH)
                r = dump_batch(d, keys + i, n - i < KEYS_PER_BATCH ? n - i : KEYS_PER_BATCH, 1);
        strv_free_n(keys, n);
        if (r >= 0)
                fputs("\n}", d->f);
        return r;
}

/* The namespaces to dump: --ns, or every one (Hub1.ListNamespaces), sorted. */
static int list_namespaces(sd_bus *bus, char ***ret, size_t *ret_n) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char **names = NULL;
        size_t n = 0;
        int r;

        if (arg_ns_set) {
                names = calloc(1, sizeof(char *));
                if (!names || !(names[0] = strdup(arg_ns))) {
                        free(names);
                        return -ENOMEM;
                }
                *ret = names;
                *ret_n = 1;
                return 0;
        }
        r = sd_bus_call_method(bus, CH_BUS_NAME, CH_HUB_PATH, CH_HUB1_INTERFACE, "ListNamespaces", &e, &reply, NULL);
        if (r < 0) {
                log_bus_error("ListNamespaces", &e, r);
                sd_bus_error_free(&e);
                return r;
        }
        r = sd_bus_message_read_strv(reply, &names);
        sd_bus_message_unref(reply);
        if (r < 0) {
                fprintf(stderr, "%s: Bad ListNamespaces reply: %s\n", program, strerror(-r));
                return r;
        }
        while (names && names[n])
                n++;
        if (n > 1)
                qsort(names, n, sizeof(char *), cmp_str);
        *ret = names;
        *ret_n = n;
        return 0;
}

static void help_dump(void) {
        printf("%s dump [--ns=NAME]\n\n"
               "Write every key of the namespace NAME, or of every namespace, with its type, value and\n"
               "TTL, as one JSON document on standard output; '%s restore' reads it back. Values keep\n"
               "their D-Bus type (the signature is in the dump). Keys are walked with Scan and read\n"
               "with the calls of their type (lists of more than 256 elements in slices); keys written\n"
               "while the dump runs may or may not be in it. TTLs are the milliseconds left. The\n"
               "format is in hubctl(1) (DUMP FORMAT) and docs/hubctl.md.\n\n"
               "Options:\n"
               "     --ns=NAME  Only the namespace NAME (as the global --ns)\n"
               "  -h --help     Show this help\n",
               program, program);
}

int verb_dump(int argc, char *argv[]) {
        static const Option options[] = {
                { "help", 'h', false, DUMP_OPT_HELP },
                { "ns", 0, true, DUMP_OPT_NS },
                {}
        };
        DumpArgs a = { .help = help_dump };
        Dumper d = { .f = stdout };
        char **names = NULL;
        size_t n = 0;
        int npos, r, ret = EXIT_FAILURE;

        npos = parse_args(argc, argv, options, &a, dump_handle_option);
        if (npos < 0)
                return npos == PARSE_DONE ? EXIT_SUCCESS : EXIT_USAGE;
        if (check_positional("dump", npos, 0, 0, "[--ns=NAME]") < 0)
                return EXIT_USAGE;
        if (connect_bus(&d.pipe.bus) < 0)
                return EXIT_UNREACHABLE;
        r = list_namespaces(d.pipe.bus, &names, &n);
        if (r < 0)
                goto finish;
        printf("{\"format\":\"%s\",\"version\":%d,\"namespaces\":{", DUMP_FORMAT, DUMP_VERSION);
        for (size_t i = 0; i < n && r >= 0; i++) {
                fputs(i ? ",\n" : "\n", stdout);
                r = dump_namespace(&d, names[i]);
        }
        if (r < 0)
                goto finish;
        fputs("\n}}\n", stdout);
        ret = finish_output();
finish:
        strv_free_n(names, n);
        free(d.path);
        sd_bus_flush_close_unref(d.pipe.bus);
        return ret;
}
