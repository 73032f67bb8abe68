/* SPDX-License-Identifier: MIT */
/* hubctl restore: writes the keys of a hubctl dump (cmd-dump.c) back. The whole document is
 * read (json.c), checked and turned into messages before anything is written; without
 * --replace, keys that exist already stop it before any write. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "json.h"

#define EXISTS_CHUNK 512               /* keys per Exists call */
#define CHUNK_ITEMS 1024               /* elements per RPush, HSet, SAdd */
#define CHUNK_BYTES ((size_t) 8 << 20) /* about this much data per call */
#define JSON_DEPTH 512                 /* a value nests at most 61 D-Bus containers, each 1-2 JSON levels */

/* Is S one of the NULL-terminated LIST? */
static bool in_list(const char *s, const char *const *list) {
        for (; *list; list++)
                if (streq(s, *list))
                        return true;
        return false;
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
                { "help", 'h', false, DUMP_OPT_HELP },
                { "ns", 0, true, DUMP_OPT_NS },
                { "from", 0, true, DUMP_OPT_FROM },
                { "replace", 0, false, DUMP_OPT_REPLACE },
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

        npos = parse_args(argc, argv, options, &a, dump_handle_option);
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
