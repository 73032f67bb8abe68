/* SPDX-License-Identifier: MIT */
/* hubctl dump, restore: the keys of one or every namespace as one JSON document, and back (what
 * EventVat's dump() and reconstitute did). The format (docs/hubctl.md, "Dump format"):
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

#include "hubctl.h"
#include "json.h"

#define DUMP_FORMAT "clusterhub-dump"
#define DUMP_VERSION 1
#define SCAN_COUNT 1000u            /* Scan's count hint */
#define KEYS_PER_BATCH 32           /* keys read together: one MGet, then their TTLs (and the Type
                                     * and reads of collections); 32 values of 1 MiB at most in
                                     * one MGet reply */
#define WINDOW 64                   /* calls in flight at most: dbus-daemon's default
                                     * max_replies_per_connection is 128 */
#define LIST_SLICE 256              /* LRange elements per call */
#define RETRIES 5                   /* a key that changes type while it is read */
#define EXISTS_CHUNK 512            /* restore: keys per Exists call */
#define CHUNK_ITEMS 1024            /* restore: elements per RPush, HSet, SAdd */
#define CHUNK_BYTES ((size_t) 8 << 20) /* restore: about this much data per call */
#define JSON_DEPTH 512              /* a value nests at most 61 D-Bus containers, each 1-2 JSON levels */
#define NESTING_MAX 64              /* signatures: D-Bus allows 32 arrays and 32 structs */

enum { OPT_HELP, OPT_NS, OPT_REPLACE, OPT_FROM };

typedef struct DumpArgs {
        void (*help)(void);
        bool replace;
        const char *from;
} DumpArgs;

static int handle_option(const Option *o, const char *arg, void *userdata) {
        DumpArgs *a = userdata;

        switch (o->id) {
        case OPT_HELP:
                a->help();
                return 1;
        case OPT_NS:
        case OPT_FROM:
                if (!namespace_name_ok(arg)) {
                        fprintf(stderr, "%s: '%s' is not a namespace name: 1 to 255 characters of [A-Za-z0-9_].\n",
                                program, arg);
                        return -EINVAL;
                }
                if (o->id == OPT_FROM)
                        a->from = arg;
                else {
                        arg_ns = arg;
                        arg_ns_set = true;
                }
                break;
        case OPT_REPLACE:
                a->replace = true;
                break;
        }
        return 0;
}

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

/* Is S one of the NULL-terminated LIST? */
static bool in_list(const char *s, const char *const *list) {
        for (; *list; list++)
                if (streq(s, *list))
                        return true;
        return false;
}

static bool is_basic(char c) {
        return c && strchr("ybnqiuxtdsog", c);
}

/* Length of the single complete type at SIG, or 0 when SIG does not start with one that a
 * stored value may hold (every D-Bus type but 'h': the hub refuses file descriptors). */
static size_t type_len(const char *sig, unsigned depth) {
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

static bool signature_ok(const char *sig) {
        size_t l = strlen(sig);
        return l > 0 && l <= 255 && type_len(sig, 0) == l;
}

/* What Store1.Type answers for a plain value of signature SIG. */
static const char *type_of_signature(const char *sig) {
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

/* Calls in flight on one connection: the hub answers them in order, so a client that waits for
 * each reply before the next call spends its time on round trips. */
typedef struct Pipe {
        sd_bus *bus;
        unsigned inflight;
} Pipe;

typedef struct Reply Reply;
struct Reply {
        Pipe *pipe;
        sd_bus_slot *slot;
        sd_bus_message *m; /* the reply or the error, once it came (done == NULL) */
        /* restore: called with the reply instead of keeping it; it may free the Reply */
        void (*done)(Reply *r, sd_bus_message *m);
};

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

static int pipe_wait(Pipe *p, unsigned max);

/* Sends CALL (after waiting for a place in the window); its reply lands in R. */
static int pipe_send(Pipe *p, Reply *r, sd_bus_message *call) {
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

/* Forgets R: its reply, or (still in flight) the call's callback. */
static void reply_clear(Reply *r) {
        if (r->slot) {
                r->slot = sd_bus_slot_unref(r->slot);
                r->pipe->inflight--;
        }
        r->m = sd_bus_message_unref(r->m);
}

/* Runs the connection until at most MAX calls are in flight. */
static int pipe_wait(Pipe *p, unsigned max) {
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

static int new_store_call(sd_bus *bus, sd_bus_message **ret, const char *path, const char *member, const char *key) {
        int r = new_call(bus, ret, path, CH_STORE1_INTERFACE, member);
        if (r >= 0 && key)
                r = sd_bus_message_append_basic(*ret, 's', key);
        return r;
}

/* The error of an error reply M, or NULL. */
static const sd_bus_error *reply_error(sd_bus_message *m) {
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
        union {
                const char *s;
                int b;
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
        } v;
        int r = sd_bus_message_read_basic(m, type, &v);

        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        switch (type) {
        case 's': case 'o': case 'g': json_string(f, v.s); break;
        case 'b': fputs(v.b ? "true" : "false", f); break;
        case 'y': fprintf(f, "%" PRIu8, v.y); break;
        case 'n': fprintf(f, "%" PRIi16, v.n); break;
        case 'q': fprintf(f, "%" PRIu16, v.q); break;
        case 'i': fprintf(f, "%" PRIi32, v.i); break;
        case 'u': fprintf(f, "%" PRIu32, v.u); break;
        case 'x': fprintf(f, "%" PRIi64, v.x); break;
        case 't': fprintf(f, "%" PRIu64, v.t); break;
        case 'd': print_double(f, v.d); break;
        default: return -EBADMSG; /* 'h': the hub stores no file descriptors */
        }
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
                { "help", 'h', false, OPT_HELP },
                { "ns", 0, true, OPT_NS },
                {}
        };
        DumpArgs a = { .help = help_dump };
        Dumper d = { .f = stdout };
        char **names = NULL;
        size_t n = 0;
        int npos, r, ret = EXIT_FAILURE;

        npos = parse_args(argc, argv, options, &a, handle_option);
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

/* --- JSON -> D-Bus ------------------------------------------------------------------------- */

typedef struct Restorer {
        Pipe pipe;
        const char *text; /* the document, for line and column */
        const char *file; /* its name in messages */
        bool replace;
        bool check_only;  /* the first pass: build every message, send nothing */
        int status;       /* the first failed write, reported */
        const char *ns, *path, *key;
} Restorer;

static int bad_at(Restorer *r, const JsonValue *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad_at(Restorer *r, const JsonValue *at, const char *fmt, ...) {
        unsigned line, column;
        va_list ap;

        json_position(r->text, at->offset, &line, &column);
        fprintf(stderr, "%s restore: %s, line %u, column %u: ", program, r->file, line, column);
        if (r->key) {
                fputs("key ", stderr);
                json_string(stderr, r->key);
                fprintf(stderr, " of namespace '%s': ", r->ns);
        }
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(".\n", stderr);
        note_failure(EXIT_FAILURE);
        return -EINVAL;
}

/* A JSON integer (no fraction, no exponent) in [MIN, MAX] (signed) or [0, UMAX]. */
static int json_int(Restorer *r, const JsonValue *j, char type, int64_t *ret_i, uint64_t *ret_u) {
        static const struct {
                char type;
                int64_t min, max;
                uint64_t umax;
        } ranges[] = {
                { 'y', 0, 0, UINT8_MAX }, { 'q', 0, 0, UINT16_MAX }, { 'u', 0, 0, UINT32_MAX }, { 't', 0, 0, UINT64_MAX },
                { 'n', INT16_MIN, INT16_MAX, 0 }, { 'i', INT32_MIN, INT32_MAX, 0 }, { 'x', INT64_MIN, INT64_MAX, 0 },
        };
        char *end;

        for (size_t k = 0; k < sizeof(ranges) / sizeof(ranges[0]); k++) {
                if (ranges[k].type != type)
                        continue;
                if (j->type != JSON_NUMBER || strpbrk(j->text, ".eE"))
                        return bad_at(r, j, "'%c' wants an integer, not %s", type, json_type_name(j->type));
                errno = 0;
                if (ranges[k].umax) {
                        uint64_t u = j->text[0] == '-' ? 0 : strtoull(j->text, &end, 10);
                        if (j->text[0] == '-' || errno || *end || u > ranges[k].umax)
                                return bad_at(r, j, "%s does not fit the type '%c' (0 to %" PRIu64 ")", j->text, type,
                                              ranges[k].umax);
                        *ret_u = u;
                } else {
                        int64_t i = strtoll(j->text, &end, 10);
                        if (errno || *end || i < ranges[k].min || i > ranges[k].max)
                                return bad_at(r, j, "%s does not fit the type '%c' (%" PRIi64 " to %" PRIi64 ")", j->text,
                                              type, ranges[k].min, ranges[k].max);
                        *ret_i = i;
                }
                return 0;
        }
        return -EINVAL;
}

static int append_basic_json(Restorer *r, sd_bus_message *m, char type, const JsonValue *j) {
        int64_t i = 0;
        uint64_t u = 0;
        int k;

        switch (type) {
        case 's': case 'o': case 'g':
                if (j->type != JSON_STRING)
                        return bad_at(r, j, "'%c' wants a string, not %s", type, json_type_name(j->type));
                if (type == 'o' && !sd_bus_object_path_is_valid(j->text))
                        return bad_at(r, j, "\"%s\" is not an object path", j->text);
                k = sd_bus_message_append_basic(m, type, j->text);
                return k == -EINVAL && type == 'g' ? bad_at(r, j, "\"%s\" is not a D-Bus signature", j->text) : k;
        case 'b': {
                int b;
                if (j->type != JSON_BOOL)
                        return bad_at(r, j, "'b' wants true or false, not %s", json_type_name(j->type));
                b = j->boolean;
                return sd_bus_message_append_basic(m, 'b', &b);
        }
        case 'd': {
                double d;
                char *end;
                if (j->type == JSON_STRING && streq(j->text, "NaN"))
                        d = NAN;
                else if (j->type == JSON_STRING && (streq(j->text, "Infinity") || streq(j->text, "-Infinity")))
                        d = j->text[0] == '-' ? -INFINITY : INFINITY;
                else if (j->type == JSON_NUMBER) {
                        d = strtod(j->text, &end);
                        if (*end || isinf(d))
                                return bad_at(r, j, "%s does not fit a double", j->text);
                } else
                        return bad_at(r, j, "'d' wants a number, \"NaN\", \"Infinity\" or \"-Infinity\", not %s",
                                      json_type_name(j->type));
                return sd_bus_message_append_basic(m, 'd', &d);
        }
        }
        k = json_int(r, j, type, &i, &u);
        if (k < 0)
                return k;
        switch (type) {
        case 'y': { uint8_t v = u; return sd_bus_message_append_basic(m, 'y', &v); }
        case 'q': { uint16_t v = u; return sd_bus_message_append_basic(m, 'q', &v); }
        case 'u': { uint32_t v = u; return sd_bus_message_append_basic(m, 'u', &v); }
        case 't': return sd_bus_message_append_basic(m, 't', &u);
        case 'n': { int16_t v = i; return sd_bus_message_append_basic(m, 'n', &v); }
        case 'i': { int32_t v = i; return sd_bus_message_append_basic(m, 'i', &v); }
        default: return sd_bus_message_append_basic(m, 'x', &i);
        }
}

static int append_typed(Restorer *r, sd_bus_message *m, const JsonValue *j, unsigned depth);

/* Appends J as the complete type of LEN characters at SIG. */
static int append_data(Restorer *r, sd_bus_message *m, const char *sig, size_t len, const JsonValue *j, unsigned depth) {
        char contents[256];
        size_t want = 0;
        int k;

        if (sig[0] == 'v')
                return append_typed(r, m, j, depth);
        if (len == 1)
                return append_basic_json(r, m, sig[0], j);
        if (sig[0] == 'a' && sig[1] == 'y') {
                _cleanup_free_ uint8_t *bytes = NULL;
                size_t n;
                if (j->type != JSON_STRING)
                        return bad_at(r, j, "'ay' wants a base64 string, not %s", json_type_name(j->type));
                k = base64_decode(j->text, j->len, &bytes, &n);
                if (k == -EINVAL)
                        return bad_at(r, j, "'ay' wants base64 (RFC 4648, padded)");
                if (k < 0)
                        return k;
                return sd_bus_message_append_array(m, 'y', bytes, n);
        }
        if (j->type != JSON_ARRAY)
                return bad_at(r, j, "'%.*s' wants an array, not %s", (int) len, sig, json_type_name(j->type));
        if (sig[0] == '(') {
                /* a struct: as many elements as members */
                for (size_t at = 1; sig[at] != ')'; at += type_len(sig + at, 0))
                        want++;
                if (j->n != want)
                        return bad_at(r, j, "the struct '%.*s' wants %zu elements, not %zu", (int) len, sig, want, j->n);
                snprintf(contents, sizeof(contents), "%.*s", (int) len - 2, sig + 1);
                k = sd_bus_message_open_container(m, 'r', contents);
                for (size_t i = 0, at = 1; k >= 0 && i < j->n; i++) {
                        size_t l = type_len(sig + at, 0);
                        k = append_data(r, m, sig + at, l, &j->items[i], depth + 1);
                        at += l;
                }
                return k < 0 ? k : sd_bus_message_close_container(m);
        }
        /* an array */
        snprintf(contents, sizeof(contents), "%.*s", (int) len - 1, sig + 1);
        k = sd_bus_message_open_container(m, 'a', contents);
        for (size_t i = 0; k >= 0 && i < j->n; i++) {
                const JsonValue *e = &j->items[i];
                if (contents[0] != '{') {
                        k = append_data(r, m, contents, len - 1, e, depth + 1);
                        continue;
                }
                /* a dictionary: [KEY, VALUE] pairs */
                if (e->type != JSON_ARRAY || e->n != 2)
                        return bad_at(r, e, "an entry of '%.*s' is a [key, value] pair", (int) len, sig);
                char entry[256];
                snprintf(entry, sizeof(entry), "%.*s", (int) len - 3, sig + 2);
                k = sd_bus_message_open_container(m, 'e', entry);
                if (k >= 0)
                        k = append_basic_json(r, m, entry[0], &e->items[0]);
                if (k >= 0)
                        k = append_data(r, m, entry + 1, len - 4, &e->items[1], depth + 1);
                if (k >= 0)
                        k = sd_bus_message_close_container(m);
        }
        return k < 0 ? k : sd_bus_message_close_container(m);
}

/* The signature of a [SIGNATURE, DATA] value, or NULL (reported). */
static const char *typed_signature(Restorer *r, const JsonValue *j) {
        if (j->type != JSON_ARRAY || j->n != 2 || j->items[0].type != JSON_STRING) {
                bad_at(r, j, "a value is [SIGNATURE, DATA], e.g. [\"s\",\"text\"] or [\"x\",42]");
                return NULL;
        }
        if (!signature_ok(j->items[0].text)) {
                bad_at(r, &j->items[0], "\"%s\" is not the D-Bus signature of one complete type%s", j->items[0].text,
                       strchr(j->items[0].text, 'h') ? " (file descriptors, 'h', cannot be stored)" : "");
                return NULL;
        }
        return j->items[0].text;
}

/* Appends the [SIGNATURE, DATA] at J as a variant. */
static int append_typed(Restorer *r, sd_bus_message *m, const JsonValue *j, unsigned depth) {
        const char *sig;
        int k;

        if (depth > 4 * NESTING_MAX)
                return bad_at(r, j, "nested too deeply");
        sig = typed_signature(r, j);
        if (!sig)
                return -EINVAL;
        k = sd_bus_message_open_container(m, 'v', sig);
        if (k >= 0)
                k = append_data(r, m, sig, strlen(sig), &j->items[1], depth + 1);
        if (k >= 0)
                k = sd_bus_message_close_container(m);
        return k;
}

/* --- restore --------------------------------------------------------------------------------- */

typedef struct Write {
        Reply reply; /* first: the callback gets &reply */
        Restorer *restorer;
        bool want_true; /* Set with nx: false means the key exists */
        char what[];    /* "Set of key 'k' in namespace 'n'" */
} Write;

static void on_write(Reply *reply, sd_bus_message *m) {
        Write *w = (Write *) reply;
        Restorer *r = w->restorer;
        const sd_bus_error *e = reply_error(m);
        int b = 1;

        if (e) {
                if (r->status == 0)
                        r->status = log_bus_error(w->what, e, -EIO);
        } else if (w->want_true && (sd_bus_message_read_basic(m, 'b', &b) < 0 || !b)) {
                if (r->status == 0) {
                        fprintf(stderr, "%s restore: %s: the key exists (written meanwhile; --replace overwrites it).\n",
                                program, w->what);
                        r->status = EXIT_FAILURE;
                }
        }
        free(w);
}

/* Sends M (in the checking pass: only drops it). Stops at the first failed write. */
static int send_write(Restorer *r, sd_bus_message *m, bool want_true) {
        const char *member = sd_bus_message_get_member(m);
        Write *w;
        int k;

        if (r->check_only)
                return 0;
        k = pipe_wait(&r->pipe, WINDOW - 1);
        if (k < 0)
                return k;
        if (r->status)
                return -ECANCELED;
        w = calloc(1, sizeof(Write) + strlen(member) + strlen(r->key) + strlen(r->ns) + 40);
        if (!w)
                return -ENOMEM;
        sprintf(w->what, "%s of key '%s' in namespace '%s'", member, r->key, r->ns);
        w->restorer = r;
        w->want_true = want_true;
        w->reply.done = on_write;
        k = pipe_send(&r->pipe, &w->reply, m);
        if (k < 0)
                free(w);
        return k;
}

static int write_call(Restorer *r, sd_bus_message **ret, const char *member) {
        return new_store_call(r->pipe.bus, ret, r->path, member, r->key);
}

/* A call on the key with more arguments: Expire. */
static int send_simple(Restorer *r, const char *member, const char *types, ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int k;

        k = write_call(r, &m, member);
        if (k >= 0 && types) {
                va_start(ap, types);
                k = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (k >= 0)
                k = send_write(r, m, false);
        sd_bus_message_unref(m);
        return k;
}

/* Bytes a JSON value will take in a message, about: for cutting collections into calls. */
static size_t json_size(const JsonValue *j) {
        size_t s = 8 + j->len;
        for (size_t i = 0; i < j->n; i++)
                s += json_size(&j->items[i]) + (j->keys ? strlen(j->keys[i]) + 8 : 0);
        return s;
}

typedef enum Collection { COLL_LIST, COLL_HASH, COLL_SET } Collection;

/* RPush, HSet or SAdd of the elements of ITEMS, in calls of at most CHUNK_ITEMS / about
 * CHUNK_BYTES each. */
static int write_collection(Restorer *r, Collection c, const JsonValue *items) {
        static const char *const member[] = { "RPush", "HSet", "SAdd" };
        static const char *const contents[] = { "v", "{sv}", "s" };
        size_t i = 0;
        int k = 0;

        while (i < items->n && k >= 0) {
                sd_bus_message *m = NULL;
                size_t count = 0, bytes = 0;

                k = write_call(r, &m, member[c]);
                if (k >= 0)
                        k = sd_bus_message_open_container(m, 'a', contents[c]);
                for (; k >= 0 && i < items->n && count < CHUNK_ITEMS && bytes < CHUNK_BYTES; i++, count++) {
                        const JsonValue *e = &items->items[i];
                        bytes += json_size(e);
                        switch (c) {
                        case COLL_LIST:
                                k = append_typed(r, m, e, 0);
                                break;
                        case COLL_HASH:
                                k = sd_bus_message_open_container(m, 'e', "sv");
                                if (k >= 0)
                                        k = sd_bus_message_append_basic(m, 's', items->keys[i]);
                                if (k >= 0)
                                        k = append_typed(r, m, e, 0);
                                if (k >= 0)
                                        k = sd_bus_message_close_container(m);
                                break;
                        case COLL_SET:
                                if (e->type != JSON_STRING)
                                        k = bad_at(r, e, "set members are strings, not %s", json_type_name(e->type));
                                else
                                        k = sd_bus_message_append_basic(m, 's', e->text);
                                break;
                        }
                }
                if (k >= 0)
                        k = sd_bus_message_close_container(m);
                if (k >= 0)
                        k = send_write(r, m, false);
                sd_bus_message_unref(m);
        }
        return k;
}

/* Store1.Set of a plain value, with its TTL; without --replace only where the key is absent. */
static int write_value(Restorer *r, const char *type, const JsonValue *value, uint64_t ttl_ms) {
        sd_bus_message *m = NULL;
        const char *sig = typed_signature(r, value);
        int k;

        if (!sig)
                return -EINVAL;
        if (!streq(type, type_of_signature(sig)))
                return bad_at(r, value, "the type \"%s\" does not go with the signature '%s' (its type is \"%s\")", type,
                              sig, type_of_signature(sig));
        k = write_call(r, &m, "Set");
        if (k >= 0)
                k = append_typed(r, m, value, 0);
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'a', "{sv}");
        if (k >= 0 && ttl_ms)
                k = sd_bus_message_append(m, "{sv}", "ttl_ms", "t", ttl_ms);
        if (k >= 0 && !r->replace)
                k = sd_bus_message_append(m, "{sv}", "nx", "b", 1);
        if (k >= 0)
                k = sd_bus_message_close_container(m);
        if (k >= 0)
                k = send_write(r, m, !r->replace);
        sd_bus_message_unref(m);
        return k;
}

/* One key of the dump: {"type":..., "ttl_ms":..., "value"|"values"|"fields"|"members":...}. */
static int restore_key(Restorer *r, const char *key, const JsonValue *e) {
        static const struct {
                const char *type, *member;
                JsonType json;
        } kinds[] = {
                { "list", "values", JSON_ARRAY }, { "hash", "fields", JSON_OBJECT }, { "set", "members", JSON_ARRAY },
        };
        const JsonValue *type, *ttl, *data = NULL;
        const char *data_name = "value";
        uint64_t ttl_ms = 0;
        int c = -1, k;

        r->key = key;
        if (e->type != JSON_OBJECT)
                return bad_at(r, e, "a key is an object {\"type\":..., \"value\":...}, not %s", json_type_name(e->type));
        if (!*key || utf8_invalid_at(key, strlen(key)) >= 0)
                return bad_at(r, e, "a key is a non-empty string");
        type = json_object_get(e, "type");
        if (!type || type->type != JSON_STRING)
                return bad_at(r, type ? type : e, "\"type\" (a string) is missing");
        for (size_t i = 0; i < 3; i++)
                if (streq(type->text, kinds[i].type)) {
                        c = i;
                        data_name = kinds[i].member;
                }
        if (c < 0 && !in_list(type->text, (const char *const[]) { "string", "int", "double", "bool", "value", NULL }))
                return bad_at(r, type, "unknown type \"%s\" (string, int, double, bool, value, list, hash or set)", type->text);
        for (size_t i = 0; i < e->n; i++) {
                const char *name = e->keys[i];
                if (streq(name, data_name))
                        data = &e->items[i];
                else if (!streq(name, "type") && !streq(name, "ttl_ms"))
                        return bad_at(r, &e->items[i], "unknown member \"%s\" for the type \"%s\" (type, ttl_ms, %s)", name,
                                      type->text, data_name);
        }
        if (!data)
                return bad_at(r, e, "\"%s\" is missing", data_name);
        ttl = json_object_get(e, "ttl_ms");
        if (ttl) {
                int64_t unused;
                k = json_int(r, ttl, 't', &unused, &ttl_ms);
                if (k < 0)
                        return k;
                if (ttl_ms == 0)
                        return bad_at(r, ttl, "\"ttl_ms\" is more than 0 (leave it out for no TTL)");
        }
        if (c < 0)
                return write_value(r, type->text, data, ttl_ms);
        if (data->type != kinds[c].json)
                return bad_at(r, data, "\"%s\" is %s, not %s", data_name, kinds[c].json == JSON_ARRAY ? "an array" : "an object",
                              json_type_name(data->type));
        if (data->n == 0)
                return bad_at(r, data, "an empty %s: the store holds none (an emptied one is deleted)", type->text);
        if (r->replace) {
                sd_bus_message *m = NULL;
                k = new_store_call(r->pipe.bus, &m, r->path, "Del", NULL);
                if (k >= 0)
                        k = sd_bus_message_append(m, "as", 1, key);
                if (k >= 0)
                        k = send_write(r, m, false);
                sd_bus_message_unref(m);
                if (k < 0)
                        return k;
        }
        k = write_collection(r, (Collection) c, data);
        if (k >= 0 && ttl_ms)
                k = send_simple(r, "Expire", "t", ttl_ms);
        return k;
}

/* Which namespace of the dump goes where. */
typedef struct Target {
        const char *from, *to;
        const JsonValue *keys;
} Target;

static void print_names(FILE *f, const JsonValue *namespaces) {
        for (size_t i = 0; i < namespaces->n && i < 10; i++)
                fprintf(f, "%s'%s'", i ? ", " : "", namespaces->keys[i]);
        if (namespaces->n > 10)
                fprintf(f, " and %zu more", namespaces->n - 10);
        if (namespaces->n == 0)
                fputs("none", f);
}

/* --from=NAME: that one (into --ns, or its own name). --ns=NAME: the dump's NAME, or the only
 * namespace of the dump, into NAME. Neither: every namespace into its own name. */
static int select_targets(Restorer *r, const JsonValue *namespaces, const char *from, Target **ret, size_t *ret_n) {
        Target *t;
        size_t n = 0;

        for (size_t i = 0; i < namespaces->n; i++) {
                if (!namespace_name_ok(namespaces->keys[i]))
                        return bad_at(r, &namespaces->items[i], "\"%s\" is not a namespace name", namespaces->keys[i]);
                if (namespaces->items[i].type != JSON_OBJECT)
                        return bad_at(r, &namespaces->items[i], "a namespace is an object of keys, not %s",
                                      json_type_name(namespaces->items[i].type));
        }
        t = calloc(namespaces->n + 1, sizeof(Target));
        if (!t)
                return -ENOMEM;
        if (!from && arg_ns_set && !json_object_get(namespaces, arg_ns) && namespaces->n == 1)
                from = namespaces->keys[0];
        else if (!from && arg_ns_set)
                from = arg_ns;
        for (size_t i = 0; i < namespaces->n; i++)
                if (!from || streq(from, namespaces->keys[i]))
                        t[n++] = (Target) {
                                .from = namespaces->keys[i],
                                .to = from && arg_ns_set ? arg_ns : namespaces->keys[i],
                                .keys = &namespaces->items[i],
                        };
        if (from && n == 0) {
                fprintf(stderr, "%s restore: %s holds no namespace '%s' (it holds ", program, r->file, from);
                print_names(stderr, namespaces);
                fputs(")", stderr);
                if (arg_ns_set && namespaces->n > 1)
                        fprintf(stderr, "; choose one with --from=NAME");
                fputs(".\n", stderr);
                free(t);
                note_failure(EXIT_NOT_FOUND);
                return -ENOENT;
        }
        *ret = t;
        *ret_n = n;
        return 0;
}

/* Without --replace: fails, naming them, when keys of the dump exist already. */
static int check_absent(Restorer *r, const Target *t) {
        size_t existing = 0;
        int k = 0;

        for (size_t i = 0; i < t->keys->n && k >= 0; i += EXISTS_CHUNK) {
                size_t n = t->keys->n - i < EXISTS_CHUNK ? t->keys->n - i : EXISTS_CHUNK;
                sd_bus_message *m = NULL, *reply = NULL;
                uint32_t count = 0;

                k = new_store_call(r->pipe.bus, &m, r->path, "Exists", NULL);
                if (k >= 0)
                        k = sd_bus_message_open_container(m, 'a', "s");
                for (size_t x = i; k >= 0 && x < i + n; x++)
                        k = sd_bus_message_append_basic(m, 's', t->keys->keys[x]);
                if (k >= 0)
                        k = sd_bus_message_close_container(m);
                if (k >= 0)
                        k = call_and_report(r->pipe.bus, m, 0, &reply);
                if (k >= 0)
                        k = sd_bus_message_read_basic(reply, 'u', &count);
                sd_bus_message_unref(reply);
                sd_bus_message_unref(m);
                /* name them (rare: one call per key of this chunk) */
                for (size_t x = i; k >= 0 && count > 0 && x < i + n; x++) {
                        sd_bus_error e = SD_BUS_ERROR_NULL;
                        uint32_t one = 0;
                        reply = NULL;
                        k = sd_bus_call_method(r->pipe.bus, CH_BUS_NAME, r->path, CH_STORE1_INTERFACE, "Exists", &e, &reply,
                                               "as", 1, t->keys->keys[x]);
                        if (k < 0)
                                log_bus_error("Exists", &e, k);
                        else
                                k = sd_bus_message_read_basic(reply, 'u', &one);
                        sd_bus_error_free(&e);
                        sd_bus_message_unref(reply);
                        if (k < 0 || !one)
                                continue;
                        if (existing == 0)
                                fprintf(stderr, "%s restore: keys of %s exist in namespace '%s' already: ", program, r->file,
                                        t->to);
                        if (existing < 10) {
                                fputs(existing ? ", " : "", stderr);
                                json_string(stderr, t->keys->keys[x]);
                        }
                        existing++;
                }
        }
        if (k < 0)
                return k;
        if (existing == 0)
                return 0;
        if (existing > 10)
                fprintf(stderr, " and %zu more", existing - 10);
        fprintf(stderr, ".\n");
        note_failure(EXIT_FAILURE);
        return -EEXIST;
}

static int set_target(Restorer *r, const Target *t, char **path) {
        free(*path);
        if (asprintf(path, "%s%s", CH_NAMESPACE_PATH_PREFIX, t->to) < 0) {
                *path = NULL;
                return -ENOMEM;
        }
        r->ns = t->to;
        r->path = *path;
        r->key = NULL;
        return 0;
}

/* Both passes over the selected namespaces: CHECK_ONLY builds every message, then (after the
 * existence check) the second pass sends them. */
static int restore_pass(Restorer *r, const Target *t, size_t n, bool check_only) {
        _cleanup_free_ char *path = NULL;
        int k = 0;

        r->check_only = check_only;
        for (size_t i = 0; i < n && k >= 0; i++) {
                k = set_target(r, &t[i], &path);
                for (size_t x = 0; k >= 0 && x < t[i].keys->n; x++)
                        k = restore_key(r, t[i].keys->keys[x], &t[i].keys->items[x]);
        }
        if (!check_only) {
                int w = pipe_wait(&r->pipe, 0);
                if (k >= 0)
                        k = w;
        }
        r->key = NULL;
        return k == -ECANCELED || r->status ? -EIO : k;
}

/* Reads FILE ("-": standard input) whole. */
static int read_input(const char *file, char **ret, size_t *ret_len) {
        FILE *f = streq(file, "-") ? stdin : fopen(file, "re");
        char *buf = NULL;
        size_t len = 0, size = 0;

        if (!f) {
                fprintf(stderr, "%s restore: Cannot open %s: %s\n", program, file, strerror(errno));
                return -errno;
        }
        for (;;) {
                if (size - len < 65536) {
                        size_t ns = size ? size * 2 : 1 << 20;
                        char *nb = realloc(buf, ns);
                        if (!nb) {
                                free(buf);
                                if (f != stdin)
                                        fclose(f);
                                return -ENOMEM;
                        }
                        buf = nb;
                        size = ns;
                }
                size_t got = fread(buf + len, 1, size - len - 1, f);
                len += got;
                if (got == 0)
                        break;
        }
        if (ferror(f)) {
                int e = errno;
                fprintf(stderr, "%s restore: Cannot read %s: %s\n", program, streq(file, "-") ? "standard input" : file,
                        strerror(e));
                free(buf);
                if (f != stdin)
                        fclose(f);
                return -e;
        }
        if (f != stdin)
                fclose(f);
        buf[len] = 0;
        *ret = buf;
        *ret_len = len;
        return 0;
}

/* The document's header: {"format":"clusterhub-dump","version":1,"namespaces":{...}}. */
static int check_header(Restorer *r, const JsonValue *doc, const JsonValue **ret_namespaces) {
        const JsonValue *format = json_object_get(doc, "format"), *version = json_object_get(doc, "version"),
                        *namespaces = json_object_get(doc, "namespaces");

        if (doc->type != JSON_OBJECT)
                return bad_at(r, doc, "a dump is an object {\"format\":\"" DUMP_FORMAT "\", ...}, not %s",
                              json_type_name(doc->type));
        if (!format || format->type != JSON_STRING || !streq(format->text, DUMP_FORMAT))
                return bad_at(r, format ? format : doc, "not a hubctl dump (\"format\" is not \"" DUMP_FORMAT "\")");
        if (!version || version->type != JSON_NUMBER)
                return bad_at(r, version ? version : doc, "\"version\" (a number) is missing");
        if (!streq(version->text, "1"))
                return bad_at(r, version, "version %s: this hubctl reads version %d (a newer hubctl wrote it?)",
                              version->text, DUMP_VERSION);
        if (!namespaces || namespaces->type != JSON_OBJECT)
                return bad_at(r, namespaces ? namespaces : doc, "\"namespaces\" (an object) is missing");
        for (size_t i = 0; i < doc->n; i++)
                if (!in_list(doc->keys[i], (const char *const[]) { "format", "version", "namespaces", NULL }))
                        return bad_at(r, &doc->items[i], "unknown member \"%s\" (format, version, namespaces)", doc->keys[i]);
        *ret_namespaces = namespaces;
        return 0;
}

static void help_restore(void) {
        printf("%s restore [OPTIONS...] [FILE|-]\n\n"
               "Write the keys of a '%s dump' (FILE, or standard input) back into the hub: Set for\n"
               "values (with their D-Bus type), RPush, HSet and SAdd for collections, and the TTL\n"
               "each had left when it was dumped. The whole document is checked before anything is\n"
               "written (a bad document exits 1 naming its line and column), and without --replace\n"
               "restore writes nothing when a key of the dump exists already, and names it. Each\n"
               "key is written in one or more calls: other clients may see a collection half restored.\n\n"
               "Options:\n"
               "     --replace     Overwrite keys that exist (delete them first: no merging)\n"
               "     --ns=NAME     Restore into NAME: the dump's namespace NAME, or its only namespace\n"
               "     --from=NAME   Restore only the dump's namespace NAME (into --ns, or into NAME)\n"
               "  -h --help        Show this help\n\n"
               "Exit status 3 when the dump holds no namespace --from (or --ns) names.\n",
               program, program);
}

int verb_restore(int argc, char *argv[]) {
        static const Option options[] = {
                { "help", 'h', false, OPT_HELP },
                { "ns", 0, true, OPT_NS },
                { "from", 0, true, OPT_FROM },
                { "replace", 0, false, OPT_REPLACE },
                {}
        };
        DumpArgs a = { .help = help_restore };
        Restorer r = {};
        _cleanup_free_ char *text = NULL, *error = NULL;
        _cleanup_free_ Target *targets = NULL;
        const JsonValue *namespaces = NULL;
        JsonValue doc = {};
        size_t len = 0, n = 0;
        int npos, k, ret = EXIT_FAILURE;

        npos = parse_args(argc, argv, options, &a, handle_option);
        if (npos < 0)
                return npos == PARSE_DONE ? EXIT_SUCCESS : EXIT_USAGE;
        if (check_positional("restore", npos, 0, 1, "[--replace] [--ns=NAME] [--from=NAME] [FILE|-]") < 0)
                return EXIT_USAGE;
        r.file = npos && !streq(argv[1], "-") ? argv[1] : "standard input";
        r.replace = a.replace;
        if (read_input(npos ? argv[1] : "-", &text, &len) < 0)
                return EXIT_FAILURE;
        r.text = text;
        k = json_parse(text, len, JSON_DEPTH, &doc, &error);
        if (k < 0) {
                fprintf(stderr, "%s restore: %s is not valid JSON: %s.\n", program, r.file,
                        error ? error : strerror(-k));
                return EXIT_FAILURE;
        }
        if (check_header(&r, &doc, &namespaces) < 0 || select_targets(&r, namespaces, a.from, &targets, &n) < 0)
                goto finish;
        if (connect_bus(&r.pipe.bus) < 0) {
                ret = EXIT_UNREACHABLE;
                goto finish;
        }
        if (restore_pass(&r, targets, n, true) < 0)
                goto finish;
        if (!r.replace) {
                _cleanup_free_ char *path = NULL;
                bool exist = false;
                for (size_t i = 0; i < n; i++) {
                        if (set_target(&r, &targets[i], &path) < 0)
                                goto finish;
                        k = check_absent(&r, &targets[i]);
                        if (k == -EEXIST)
                                exist = true;
                        else if (k < 0)
                                goto finish;
                }
                if (exist) {
                        fprintf(stderr, "%s restore: Nothing was written (--replace overwrites existing keys).\n", program);
                        goto finish;
                }
        }
        if (restore_pass(&r, targets, n, false) < 0)
                goto finish;
        ret = EXIT_SUCCESS;
finish:
        json_value_clear(&doc);
        sd_bus_flush_close_unref(r.pipe.bus);
        return ret;
}
