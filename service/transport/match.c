/* SPDX-License-Identifier: MIT */
/* D-Bus match rules as the specification's "Match Rules" section defines them, parsed the way
 * dbus-daemon's bus/signals.c parses them (its quoting, its checks, its equality), and evaluated
 * by the hub for the peers of its private socket. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "macro.h"
#include "match.h"

#define NAME_MAX_LEN 255U               /* bus, interface and member names */

typedef enum ArgKind {
        ARG_STRING,                     /* argN: equal to a STRING argument */
        ARG_PATH,                       /* argNpath: STRING or OBJECT_PATH, path-prefix either way */
        ARG_NAMESPACE,                  /* arg0namespace: STRING in that dotted namespace */
} ArgKind;

typedef struct MatchArg {
        unsigned index;                 /* 0..MATCH_RULE_MAX_ARG */
        ArgKind kind;
        size_t len;
        char *value;
} MatchArg;

struct MatchRule {
        uint8_t type;                   /* SD_BUS_MESSAGE_*, 0 for any */
        bool eavesdrop;
        bool path_is_namespace;
        char *sender;
        char *interface;
        char *member;
        char *path;
        size_t path_len;
        char *destination;
        MatchArg *args;                 /* ascending index, no index twice */
        size_t n_args;
        char *text;                     /* canonical */
        /* in an index: the set it belongs to, its bucket there and its place in the bucket */
        MatchSet *set;
        struct MatchBucket *bucket;
        size_t bucket_pos;
};

struct MatchSet {
        MatchRule **rules;              /* in the order added */
        size_t n;
        size_t allocated;
        MatchIndex *index;              /* NULL, or where its rules are entered */
        void *owner;                    /* what match_index_foreach() hands back for it */
        uint64_t visit;                 /* the last walk of the index that found it */
};

/* The rules of one key, in no order (removal swaps the last one in). */
typedef struct MatchBucket {
        char *key;                      /* "interface\tmember" or "interface\tmember\targ0" */
        MatchRule **rules;
        size_t n;
        size_t allocated;
} MatchBucket;

struct MatchIndex {
        Hashmap *buckets;               /* MatchBucket by key */
        MatchBucket other;              /* rules that name no interface or no member */
        size_t n_rules;
        uint64_t visit;
};

/* ---- names (the specification's rules; dbus-daemon's _dbus_validate_*) ---- */

static bool is_alpha_(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

typedef enum NameKind {
        NAME_INTERFACE,                 /* [A-Za-z_][A-Za-z0-9_]*, two elements or more */
        NAME_WELL_KNOWN,                /* [A-Za-z_-][A-Za-z0-9_-]*, two elements or more */
        NAME_UNIQUE,                    /* after ':', [A-Za-z0-9_-]+, two elements or more */
} NameKind;

static bool name_char_ok(NameKind kind, char c, bool first) {
        if (is_alpha_(c))
                return true;
        if (is_digit(c))
                return kind == NAME_UNIQUE || !first;
        if (c == '-')
                return kind != NAME_INTERFACE;
        return false;
}

/* Dot-separated elements of S[0..LEN), none empty; MIN_ELEMENTS or more of them. */
static bool dotted_valid(const char *s, size_t len, NameKind kind, unsigned min_elements) {
        unsigned elements = 1;
        bool first = true;

        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '.') {
                        if (first)
                                return false;   /* empty element */
                        elements++;
                        first = true;
                        continue;
                }
                if (!name_char_ok(kind, s[i], first))
                        return false;
                first = false;
        }
        return !first && elements >= min_elements;
}

static bool bus_name_valid_full(const char *s, bool is_namespace) {
        size_t len = strlen(s);

        if (len == 0 || len > NAME_MAX_LEN)
                return false;
        if (s[0] == ':')
                return dotted_valid(s + 1, len - 1, NAME_UNIQUE, is_namespace ? 1 : 2);
        return dotted_valid(s, len, NAME_WELL_KNOWN, is_namespace ? 1 : 2);
}

static bool interface_valid(const char *s) {
        size_t len = strlen(s);

        return len <= NAME_MAX_LEN && dotted_valid(s, len, NAME_INTERFACE, 2);
}

static bool member_valid(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len > NAME_MAX_LEN || is_digit(s[0]))
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_alpha_(s[i]) && !is_digit(s[i]))
                        return false;
        return true;
}

/* "/", or '/'-separated non-empty elements of [A-Za-z0-9_], no trailing '/'. */
static bool object_path_valid(const char *s) {
        bool slash = true;

        if (s[0] != '/')
                return false;
        if (s[1] == '\0')
                return true;
        for (const char *p = s + 1; *p; p++) {
                if (*p == '/') {
                        if (slash)
                                return false;
                        slash = true;
                } else if (is_alpha_(*p) || is_digit(*p))
                        slash = false;
                else
                        return false;
        }
        return !slash;
}

static uint8_t message_type_from_string(const char *s) {
        if (streq(s, "signal"))
                return SD_BUS_MESSAGE_SIGNAL;
        if (streq(s, "method_call"))
                return SD_BUS_MESSAGE_METHOD_CALL;
        if (streq(s, "method_return"))
                return SD_BUS_MESSAGE_METHOD_RETURN;
        if (streq(s, "error"))
                return SD_BUS_MESSAGE_METHOD_ERROR;
        return 0;
}

static const char *message_type_to_string(uint8_t t) {
        switch (t) {
        case SD_BUS_MESSAGE_SIGNAL:
                return "signal";
        case SD_BUS_MESSAGE_METHOD_CALL:
                return "method_call";
        case SD_BUS_MESSAGE_METHOD_RETURN:
                return "method_return";
        case SD_BUS_MESSAGE_METHOD_ERROR:
                return "error";
        default:
                return NULL;
        }
}

/* ---- tokens (dbus-daemon's find_key and find_value) ---- */

static bool is_white(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Reads "key=" at *POS into KEY (NUL-terminated).  0 with an empty KEY at the end of the text
 * (trailing whitespace is fine); -EINVAL for a key without '=' or an '=' without a key. */
static int next_key(const char *text, size_t *pos, char *key) {
        const char *p = text + *pos, *start, *end;

        while (*p && is_white(*p))
                p++;
        start = p;
        while (*p && *p != '=' && !is_white(*p))
                p++;
        end = p;
        while (*p && is_white(*p))
                p++;
        if (start == end) {
                if (*p)
                        return -EINVAL;         /* "='x'" */
                key[0] = '\0';
                *pos = p - text;
                return 0;
        }
        if (*p != '=')
                return -EINVAL;
        memcpy(key, start, end - start);
        key[end - start] = '\0';
        *pos = p + 1 - text;
        return 0;
}

/* Reads a value at *POS into VALUE up to an unquoted ',' (consumed) or the end.  Inside '...'
 * every byte is literal; outside, \' is an apostrophe and any other backslash is itself. */
static int next_value(const char *text, size_t *pos, char *value) {
        const char *p = text + *pos;
        char quote = '\0';
        size_t n = 0;

        for (; *p; p++) {
                if (quote == '\0') {
                        if (*p == '\'')
                                quote = '\'';
                        else if (*p == ',') {
                                p++;
                                break;
                        } else if (*p == '\\')
                                quote = '\\';
                        else
                                value[n++] = *p;
                } else if (quote == '\\') {
                        if (*p != '\'')
                                value[n++] = '\\';
                        value[n++] = *p;
                        quote = '\0';
                } else if (*p == '\'')
                        quote = '\0';
                else
                        value[n++] = *p;
        }
        if (quote == '\\')
                value[n++] = '\\';
        else if (quote == '\'')
                return -EINVAL;                 /* unbalanced quotes */
        value[n] = '\0';
        *pos = p - text;
        return 0;
}

/* ---- rules ---- */

MatchRule *match_rule_free(MatchRule *r) {
        if (!r)
                return NULL;
        free(r->sender);
        free(r->interface);
        free(r->member);
        free(r->path);
        free(r->destination);
        for (size_t i = 0; i < r->n_args; i++)
                free(r->args[i].value);
        free(r->args);
        free(r->text);
        return mfree(r);
}

const char *match_rule_text(const MatchRule *r) {
        assert(r);
        return r->text;
}

static int set_string(char **field, const char *value) {
        if (*field)
                return -EINVAL;                 /* the key twice */
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

/* "argN", "argNpath" (N in 0..63, decimal digits only) or "arg0namespace". */
static int parse_arg_key(const char *key, unsigned *ret_index, ArgKind *ret_kind) {
        const char *p = key + 3;
        unsigned index = 0;
        size_t digits = 0;

        if (streq(key, "arg0namespace")) {
                *ret_index = 0;
                *ret_kind = ARG_NAMESPACE;
                return 0;
        }
        while (is_digit(*p) && digits < 3) {
                index = index * 10 + (unsigned) (*p - '0');
                digits++;
                p++;
        }
        if (digits == 0 || index > MATCH_RULE_MAX_ARG)
                return -EINVAL;
        if (*p == '\0')
                *ret_kind = ARG_STRING;
        else if (streq(p, "path"))
                *ret_kind = ARG_PATH;
        else
                return -EINVAL;
        *ret_index = index;
        return 0;
}

static int add_arg(MatchArg *slots, uint64_t *seen, const char *key, const char *value) {
        unsigned index;
        ArgKind kind;
        int r;

        r = parse_arg_key(key, &index, &kind);
        if (r < 0)
                return r;
        if (*seen & (UINT64_C(1) << index))
                return -EINVAL;                 /* argN, argNpath or arg0namespace twice for one N */
        if (kind == ARG_NAMESPACE && !bus_name_valid_full(value, true))
                return -EINVAL;
        slots[index].value = strdup(value);
        if (!slots[index].value)
                return -ENOMEM;
        slots[index].index = index;
        slots[index].kind = kind;
        slots[index].len = strlen(value);
        *seen |= UINT64_C(1) << index;
        return 0;
}

static int apply_key(MatchRule *r, MatchArg *slots, uint64_t *seen, const char *key, const char *value) {
        if (streq(key, "type")) {
                if (r->type != 0)
                        return -EINVAL;
                r->type = message_type_from_string(value);
                return r->type != 0 ? 0 : -EINVAL;
        }
        if (streq(key, "sender"))
                return bus_name_valid_full(value, false) ? set_string(&r->sender, value) : -EINVAL;
        if (streq(key, "interface"))
                return interface_valid(value) ? set_string(&r->interface, value) : -EINVAL;
        if (streq(key, "member"))
                return member_valid(value) ? set_string(&r->member, value) : -EINVAL;
        if (streq(key, "path") || streq(key, "path_namespace")) {
                /* path and path_namespace share one slot */
                if (r->path || !object_path_valid(value))
                        return -EINVAL;
                r->path_is_namespace = streq(key, "path_namespace");
                return set_string(&r->path, value);
        }
        if (streq(key, "destination"))
                return bus_name_valid_full(value, false) ? set_string(&r->destination, value) : -EINVAL;
        if (streq(key, "eavesdrop")) {
                /* As in dbus-daemon, it may come twice (the last one counts). */
                if (streq(value, "true"))
                        r->eavesdrop = true;
                else if (streq(value, "false"))
                        r->eavesdrop = false;
                else
                        return -EINVAL;
                return 0;
        }
        if (strneq(key, "arg", 3))
                return add_arg(slots, seen, key, value);
        return -EINVAL;
}

/* Appends KEY='VALUE' at P (the buffer sized by the caller; a ',' first unless P is START),
 * quoting VALUE so that it parses back the same: an apostrophe closes the quotes, goes as \'
 * and reopens them. */
static char *append_pair(char *start, char *p, const char *key, const char *value) {
        if (p != start)
                *p++ = ',';
        p = stpcpy(p, key);
        *p++ = '=';
        *p++ = '\'';
        for (const char *v = value; *v; v++) {
                if (*v == '\'') {
                        p = stpcpy(p, "'\\''");
                        continue;
                }
                *p++ = *v;
        }
        *p++ = '\'';
        *p = '\0';
        return p;
}

static size_t pair_size(const char *key, const char *value) {
        size_t n = strlen(key) + 4;     /* ",key=''" */

        for (const char *v = value; *v; v++)
                n += *v == '\'' ? 4 : 1;
        return n;
}

/* The keys in a fixed order, eavesdrop only when true: two rules dbus-daemon calls equal get
 * the same text. */
static int build_text(MatchRule *r) {
        const char *keys[] = { "type", "sender", "interface", "member",
                               r->path_is_namespace ? "path_namespace" : "path", "destination" };
        const char *values[] = { message_type_to_string(r->type), r->sender, r->interface,
                                 r->member, r->path, r->destination };
        char key[sizeof("arg63namespace")];
        size_t size = 1 + sizeof(",eavesdrop='true'");
        char *buf, *p;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (values[i])
                        size += pair_size(keys[i], values[i]);
        for (size_t i = 0; i < r->n_args; i++)
                size += pair_size("arg63namespace", r->args[i].value);

        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        p = buf;
        *p = '\0';
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (values[i])
                        p = append_pair(buf, p, keys[i], values[i]);
        for (size_t i = 0; i < r->n_args; i++) {
                const MatchArg *a = &r->args[i];

                snprintf(key, sizeof(key), "arg%u%s", a->index,
                         a->kind == ARG_PATH ? "path" : a->kind == ARG_NAMESPACE ? "namespace" : "");
                p = append_pair(buf, p, key, a->value);
        }
        if (r->eavesdrop)
                p = append_pair(buf, p, "eavesdrop", "true");
        r->text = buf;
        return 0;
}

/* Moves the filled SLOTS into R->args, in index order. */
static int take_args(MatchRule *r, MatchArg *slots, uint64_t seen) {
        size_t n = (size_t) __builtin_popcountll(seen);

        if (n == 0)
                return 0;
        r->args = calloc(n, sizeof(MatchArg));
        if (!r->args)
                return -ENOMEM;
        for (unsigned i = 0; i <= MATCH_RULE_MAX_ARG; i++)
                if (seen & (UINT64_C(1) << i)) {
                        r->args[r->n_args++] = slots[i];
                        slots[i].value = NULL;
                }
        return 0;
}

static int parse_into(MatchRule *r, const char *text, size_t len) {
        _cleanup_(freep) char *key = malloc(len + 1), *value = malloc(len + 1);
        MatchArg slots[MATCH_RULE_MAX_ARG + 1] = {};
        uint64_t seen = 0;
        size_t pos = 0;
        int ret = 0;

        if (!key || !value)
                return -ENOMEM;
        while (pos < len) {
                ret = next_key(text, &pos, key);
                if (ret < 0 || key[0] == '\0')
                        break;
                ret = next_value(text, &pos, value);
                if (ret < 0)
                        break;
                ret = apply_key(r, slots, &seen, key, value);
                if (ret < 0)
                        break;
        }
        if (ret >= 0)
                ret = take_args(r, slots, seen);
        for (unsigned i = 0; i <= MATCH_RULE_MAX_ARG; i++)
                free(slots[i].value);
        if (ret >= 0 && r->path)
                r->path_len = strlen(r->path);
        return ret < 0 ? ret : build_text(r);
}

int match_rule_parse(const char *text, MatchRule **ret) {
        _cleanup_(match_rule_freep) MatchRule *r = NULL;
        size_t len;
        int k;

        assert(text);
        assert(ret);

        len = strnlen(text, MATCH_RULE_MAX_LEN + 1);
        if (len > MATCH_RULE_MAX_LEN)
                return -E2BIG;
        r = calloc(1, sizeof(MatchRule));
        if (!r)
                return -ENOMEM;
        k = parse_into(r, text, len);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

/* ---- matching ---- */

/* One message as the rules see it: header fields once, body arguments read lazily, each at
 * most once, then the read position put back (match_message_done). */
typedef struct MatchMessage {
        sd_bus_message *m;
        uint8_t type;
        const char *sender;
        const char *interface;
        const char *member;
        const char *path;
        const char *destination;
        unsigned n_read;                /* arguments looked at */
        bool end;                       /* no more: end of the body, or it could not be read */
        bool moved;                     /* the read position moved: rewind when done */
        char arg_type[MATCH_RULE_MAX_ARG + 1];
        const char *arg[MATCH_RULE_MAX_ARG + 1];
} MatchMessage;

static void match_message_init(MatchMessage *mm, sd_bus_message *m, const char *sender) {
        uint8_t type = 0;

        (void) sd_bus_message_get_type(m, &type);
        *mm = (MatchMessage) {
                .m = m,
                .type = type,
                .sender = sender ? sender : sd_bus_message_get_sender(m),
                .interface = sd_bus_message_get_interface(m),
                .member = sd_bus_message_get_member(m),
                .path = sd_bus_message_get_path(m),
                .destination = sd_bus_message_get_destination(m),
        };
}

static void match_message_done(MatchMessage *mm) {
        if (mm->moved)
                (void) sd_bus_message_rewind(mm->m, true);
}

static void read_one_arg(MatchMessage *mm) {
        unsigned i = mm->n_read;
        const char *s = NULL;
        char type = 0;
        int r;

        if (!mm->moved) {
                mm->moved = true;
                if (sd_bus_message_rewind(mm->m, true) < 0) {
                        mm->end = true;         /* not sealed: nothing to read */
                        return;
                }
        }
        r = sd_bus_message_peek_type(mm->m, &type, NULL);
        if (r <= 0) {
                mm->end = true;
                return;
        }
        if (type == SD_BUS_TYPE_STRING || type == SD_BUS_TYPE_OBJECT_PATH)
                r = sd_bus_message_read_basic(mm->m, type, &s);
        else
                r = sd_bus_message_skip(mm->m, NULL);
        if (r <= 0) {
                mm->end = true;
                return;
        }
        mm->arg_type[i] = type;
        mm->arg[i] = s;
        mm->n_read++;
}

/* The type of argument INDEX (0 when the body has no such argument) and, for a STRING or an
 * OBJECT_PATH, its value. */
static char message_arg(MatchMessage *mm, unsigned index, const char **ret) {
        while (mm->n_read <= index && !mm->end)
                read_one_arg(mm);
        if (index >= mm->n_read)
                return 0;
        *ret = mm->arg[index];
        return mm->arg_type[index];
}

/* argNpath: equal, or the shorter of the two ends with '/' and starts the other. */
static bool path_prefix_either_way(const char *expected, size_t elen, const char *actual) {
        size_t alen = strlen(actual);

        if (alen < elen && (alen == 0 || actual[alen - 1] != '/'))
                return false;
        if (elen < alen && (elen == 0 || expected[elen - 1] != '/'))
                return false;
        return memcmp(actual, expected, MIN(alen, elen)) == 0;
}

/* arg0namespace: equal, or starts with the namespace followed by '.'. */
static bool in_namespace(const char *ns, size_t nlen, const char *actual) {
        return strncmp(actual, ns, nlen) == 0 && (actual[nlen] == '\0' || actual[nlen] == '.');
}

static bool arg_matches(const MatchArg *a, MatchMessage *mm) {
        const char *actual = NULL;
        char type = message_arg(mm, a->index, &actual);

        switch (a->kind) {
        case ARG_STRING:
                return type == SD_BUS_TYPE_STRING && streq(actual, a->value);
        case ARG_PATH:
                return (type == SD_BUS_TYPE_STRING || type == SD_BUS_TYPE_OBJECT_PATH) &&
                        path_prefix_either_way(a->value, a->len, actual);
        case ARG_NAMESPACE:
                return type == SD_BUS_TYPE_STRING && in_namespace(a->value, a->len, actual);
        }
        return false;
}

static bool equal_or_unset(const char *want, const char *have) {
        return !want || (have && streq(want, have));
}

static bool path_matches(const MatchRule *r, const char *path) {
        if (!r->path)
                return true;
        if (!path)
                return false;
        if (!r->path_is_namespace)
                return streq(r->path, path);
        /* path_namespace='/' is the whole tree; else a prefix ending at an element boundary */
        return strncmp(path, r->path, r->path_len) == 0 &&
                (r->path_len == 1 || path[r->path_len] == '\0' || path[r->path_len] == '/');
}

static bool rule_matches(const MatchRule *r, MatchMessage *mm) {
        if (r->type != 0 && r->type != mm->type)
                return false;
        if (!equal_or_unset(r->interface, mm->interface) ||
            !equal_or_unset(r->member, mm->member) ||
            !path_matches(r, mm->path) ||
            !equal_or_unset(r->sender, mm->sender) ||
            !equal_or_unset(r->destination, mm->destination))
                return false;
        for (size_t i = 0; i < r->n_args; i++)
                if (!arg_matches(&r->args[i], mm))
                        return false;
        return true;
}

bool match_rule_matches(const MatchRule *r, sd_bus_message *m, const char *sender) {
        MatchMessage mm;
        bool b;

        assert(r);
        assert(m);

        match_message_init(&mm, m, sender);
        b = rule_matches(r, &mm);
        match_message_done(&mm);
        return b;
}

/* ---- the index ---- */

/* Where R goes in an index: "interface\tmember", with "\targ0" when its argument 0 must equal a
 * string (neither name can hold a tab); NULL (and 0) for the side list. */
static int rule_key(const MatchRule *r, char **ret) {
        bool arg0 = r->n_args > 0 && r->args[0].index == 0 && r->args[0].kind == ARG_STRING;

        *ret = NULL;
        if (!r->interface || !r->member)
                return 0;
        if (asprintf(ret, "%s\t%s%s%s", r->interface, r->member, arg0 ? "\t" : "", arg0 ? r->args[0].value : "") < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

static MatchBucket *bucket_free(MatchBucket *b) {
        if (!b)
                return NULL;
        free(b->rules);
        free(b->key);
        return mfree(b);
}

static int bucket_append(MatchBucket *b, MatchRule *r) {
        if (b->n == b->allocated) {
                size_t a = MAX(b->allocated * 2, (size_t) 4);
                MatchRule **rules = reallocarray(b->rules, a, sizeof(MatchRule *));

                if (!rules)
                        return -ENOMEM;
                b->rules = rules;
                b->allocated = a;
        }
        r->bucket = b;
        r->bucket_pos = b->n;
        b->rules[b->n++] = r;
        return 0;
}

/* The bucket of KEY, made when missing (KEY is taken either way). */
static int index_bucket(MatchIndex *x, char *key, MatchBucket **ret) {
        MatchBucket *b;
        int r;

        if (!key) {
                *ret = &x->other;
                return 0;
        }
        b = hashmap_get(x->buckets, key);
        if (b) {
                free(key);
                *ret = b;
                return 0;
        }
        b = calloc(1, sizeof(MatchBucket));
        if (!b) {
                free(key);
                return -ENOMEM;
        }
        b->key = key;
        r = hashmap_put(x->buckets, b->key, b);
        if (r < 0)
                return bucket_free(b), r;
        *ret = b;
        return 0;
}

static void index_remove(MatchIndex *x, MatchRule *r) {
        MatchBucket *b = r->bucket;

        if (!b)
                return;
        b->rules[r->bucket_pos] = b->rules[--b->n];
        b->rules[r->bucket_pos]->bucket_pos = r->bucket_pos;
        r->bucket = NULL;
        x->n_rules--;
        if (b->n == 0 && b != &x->other)
                bucket_free(hashmap_remove(x->buckets, b->key));
}

static int index_add(MatchIndex *x, MatchSet *s, MatchRule *r) {
        _cleanup_(freep) char *key = NULL;
        MatchBucket *b;
        int k;

        k = rule_key(r, &key);
        if (k < 0)
                return k;
        k = index_bucket(x, TAKE_PTR(key), &b);
        if (k < 0)
                return k;
        k = bucket_append(b, r);
        if (k < 0) {
                if (b->n == 0 && b != &x->other)
                        bucket_free(hashmap_remove(x->buckets, b->key));
                return k;
        }
        r->set = s;
        x->n_rules++;
        return 0;
}

size_t match_index_size(const MatchIndex *x) {
        assert(x);
        return x->n_rules;
}

int match_index_new(MatchIndex **ret) {
        MatchIndex *x;

        assert(ret);
        x = calloc(1, sizeof(MatchIndex));
        if (!x)
                return -ENOMEM;
        x->buckets = hashmap_new();
        if (!x->buckets)
                return free(x), -ENOMEM;
        *ret = x;
        return 0;
}

MatchIndex *match_index_free(MatchIndex *x) {
        MatchBucket *b;
        size_t i = 0;

        if (!x)
                return NULL;
        /* its sets are freed first: what is left are empty buckets, if any */
        while (hashmap_iterate(x->buckets, &i, (void **) &b, NULL))
                bucket_free(b);
        hashmap_free(x->buckets);
        free(x->other.rules);
        return mfree(x);
}

/* Visits the rules of BUCKET for MM: OWNER of each set not yet found in this walk whose rule
 * matches goes to FN. */
static size_t bucket_visit(MatchIndex *x, const MatchBucket *b, MatchMessage *mm, match_index_fn fn, void *userdata) {
        size_t n = 0;

        for (size_t i = 0; b && i < b->n; i++) {
                MatchRule *r = b->rules[i];

                if (r->set->visit == x->visit || !rule_matches(r, mm))
                        continue;
                r->set->visit = x->visit;
                fn(r->set->owner, userdata);
                n++;
        }
        return n;
}

/* The bucket of MM's interface and member, with ARG0 when not NULL: 1 and *RET, 0 when there
 * is none, -ENOMEM. */
static int index_lookup(const MatchIndex *x, MatchMessage *mm, const char *arg0, const MatchBucket **ret) {
        char buf[512], *key = buf;
        size_t n;

        if (hashmap_size(x->buckets) == 0)
                return 0;
        n = strlen(mm->interface) + strlen(mm->member) + (arg0 ? strlen(arg0) + 1 : 0) + 2;
        if (n > sizeof(buf)) {
                key = malloc(n);
                if (!key)
                        return -ENOMEM;
        }
        snprintf(key, n, "%s\t%s%s%s", mm->interface, mm->member, arg0 ? "\t" : "", arg0 ? arg0 : "");
        *ret = hashmap_get(x->buckets, key);
        if (key != buf)
                free(key);
        return *ret ? 1 : 0;
}

/* The keyed buckets that can hold rules matching MM; every one of them when out of memory. */
static size_t index_visit_keyed(MatchIndex *x, MatchMessage *mm, match_index_fn fn, void *userdata) {
        const MatchBucket *b = NULL;
        const char *arg0 = NULL;
        size_t n = 0, i = 0;
        int r;

        if (!mm->interface || !mm->member)
                return 0;
        r = index_lookup(x, mm, NULL, &b);
        if (r > 0)
                n += bucket_visit(x, b, mm, fn, userdata);
        if (r >= 0 && message_arg(mm, 0, &arg0) == SD_BUS_TYPE_STRING) {
                r = index_lookup(x, mm, arg0, &b);
                if (r > 0)
                        n += bucket_visit(x, b, mm, fn, userdata);
        }
        if (r >= 0)
                return n;
        while (hashmap_iterate(x->buckets, &i, (void **) &b, NULL))
                n += bucket_visit(x, b, mm, fn, userdata);
        return n;
}

size_t match_index_foreach(MatchIndex *x, sd_bus_message *m, const char *sender, match_index_fn fn, void *userdata) {
        MatchMessage mm;
        size_t n;

        assert(x);
        assert(m);
        assert(fn);

        x->visit++;
        match_message_init(&mm, m, sender);
        n = index_visit_keyed(x, &mm, fn, userdata);
        n += bucket_visit(x, &x->other, &mm, fn, userdata);
        match_message_done(&mm);
        return n;
}

/* ---- sets ---- */

int match_set_new(MatchSet **ret) {
        return match_set_new_indexed(NULL, NULL, ret);
}

int match_set_new_indexed(MatchIndex *x, void *owner, MatchSet **ret) {
        MatchSet *s;

        assert(ret);
        s = calloc(1, sizeof(MatchSet));
        if (!s)
                return -ENOMEM;
        s->index = x;
        s->owner = owner;
        *ret = s;
        return 0;
}

/* Takes R out of S (and of its index) and frees it. */
static void set_drop_rule(MatchSet *s, MatchRule *r) {
        if (s->index)
                index_remove(s->index, r);
        match_rule_free(r);
}

MatchSet *match_set_free(MatchSet *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                set_drop_rule(s, s->rules[i]);
        free(s->rules);
        return mfree(s);
}

int match_set_add(MatchSet *s, const char *text) {
        _cleanup_(match_rule_freep) MatchRule *r = NULL;
        int k;

        assert(s);
        k = match_rule_parse(text, &r);
        if (k < 0)
                return k;
        if (s->n >= MATCH_SET_MAX_RULES)
                return -ENOBUFS;
        if (s->n == s->allocated) {
                size_t a = MIN(MAX(s->allocated * 2, (size_t) 8), (size_t) MATCH_SET_MAX_RULES);
                MatchRule **rules = realloc(s->rules, a * sizeof(MatchRule *));

                if (!rules)
                        return -ENOMEM;
                s->rules = rules;
                s->allocated = a;
        }
        if (s->index) {
                k = index_add(s->index, s, r);
                if (k < 0)
                        return k;
        }
        s->rules[s->n++] = TAKE_PTR(r);
        return 0;
}

int match_set_remove(MatchSet *s, const char *text) {
        _cleanup_(match_rule_freep) MatchRule *r = NULL;
        int k;

        assert(s);
        k = match_rule_parse(text, &r);
        if (k < 0)
                return k;
        /* the most recent equal rule, as dbus-daemon does */
        for (size_t i = s->n; i > 0; i--)
                if (streq(s->rules[i - 1]->text, r->text)) {
                        set_drop_rule(s, s->rules[i - 1]);
                        memmove(s->rules + i - 1, s->rules + i, (s->n - i) * sizeof(MatchRule *));
                        s->n--;
                        return 0;
                }
        return -ENOENT;
}

size_t match_set_size(const MatchSet *s) {
        assert(s);
        return s->n;
}

bool match_set_matches(const MatchSet *s, sd_bus_message *m, const char *sender) {
        MatchMessage mm;
        bool b = false;

        assert(s);
        assert(m);

        if (s->n == 0)
                return false;
        match_message_init(&mm, m, sender);
        for (size_t i = 0; i < s->n && !b; i++)
                b = rule_matches(s->rules[i], &mm);
        match_message_done(&mm);
        return b;
}
