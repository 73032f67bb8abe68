/* SPDX-License-Identifier: MIT */
/* hubctl: typed values on the command line and on output.
 *
 * Input (one argument = one value, for every 'v' of the API):
 *   s:TEXT  x:N  i:N  u:N  t:N  n:N  q:N  y:N  d:FLOAT  b:BOOL  o:PATH  g:SIGNATURE
 *   {"json": "object"}   -> a{sv} (integers x, other numbers d, strings s, booleans b,
 *                           arrays av, objects a{sv})
 *   [1, "two"]           -> av
 *   anything else        -> s (the text as it is)
 * Output (VALUE_TYPED) is the same notation, so what `hubctl get` prints can be given to
 * `hubctl set` again: strings plain unless they would read back as something else (then s:),
 * other basic types with their prefix, containers as JSON. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hubctl.h"
#include "json.h"

#define MAX_DEPTH 32

static const char basic_prefixes[] = "sxiutnqydbog";

static int bad_value(const char *text, const char *why) {
        fprintf(stderr, "%s: Invalid value '%s': %s.\n", program, text, why);
        note_failure(EXIT_USAGE);
        return -EINVAL;
}

/* TEXT for a message, shown safely: invalid bytes as \xNN. */
static void print_escaped(FILE *f, const char *text, size_t len) {
        for (size_t i = 0; i < len; i++) {
                unsigned char c = text[i];
                if (c < 0x20 || c >= 0x7f)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
}

static int bad_utf8(const char *what, const char *text, size_t len, size_t at) {
        fprintf(stderr, "%s: Invalid %s '", program, what);
        print_escaped(stderr, text, len < 64 ? len : 64);
        fprintf(stderr, "%s': %s at byte %zu. D-Bus strings are UTF-8 without NUL;", len < 64 ? "" : "...",
                text[at] == 0 ? "a NUL" : "not UTF-8", at);
        fprintf(stderr, " store other bytes as an 'ay' value with --bytes (and -x to read them from standard input).\n");
        note_failure(EXIT_USAGE);
        return -EINVAL;
}

int value_check_string(const char *what, const char *text) {
        ssize_t at = utf8_invalid_at(text, strlen(text));
        return at >= 0 ? bad_utf8(what, text, strlen(text), at) : 0;
}

int value_append_string(sd_bus_message *m, const char *what, const char *text) {
        int r = value_check_string(what, text);
        if (r < 0)
                return r;
        return sd_bus_message_append_basic(m, 's', text);
}

static bool parse_bool(const char *s, int *ret) {
        static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };
        for (size_t i = 0; i < 4; i++) {
                if (strcmp(s, yes[i]) == 0) {
                        *ret = 1;
                        return true;
                }
                if (strcmp(s, no[i]) == 0) {
                        *ret = 0;
                        return true;
                }
        }
        return false;
}

/* Appends TEXT as the basic type TYPE. */
static int append_basic(sd_bus_message *m, char type, const char *text) {
        char *end;
        int r;

        errno = 0;
        switch (type) {
        case 's':
                return value_append_string(m, "string", text);
        case 'o':
                if (!sd_bus_object_path_is_valid(text))
                        return bad_value(text, "not an object path");
                return sd_bus_message_append_basic(m, 'o', text);
        case 'g':
                r = sd_bus_message_append_basic(m, 'g', text);
                return r < 0 ? bad_value(text, "not a D-Bus signature") : r;
        case 'b': {
                int b;
                if (!parse_bool(text, &b))
                        return bad_value(text, "not a boolean (true/false, yes/no, 1/0)");
                return sd_bus_message_append_basic(m, 'b', &b);
        }
        case 'd': {
                double d = strtod(text, &end);
                if (errno || end == text || *end)
                        return bad_value(text, "not a number");
                return sd_bus_message_append_basic(m, 'd', &d);
        }
        case 'x': case 'i': case 'n': {
                long long v = strtoll(text, &end, 10);
                long long lo = type == 'x' ? INT64_MIN : type == 'i' ? INT32_MIN : INT16_MIN;
                long long hi = type == 'x' ? INT64_MAX : type == 'i' ? INT32_MAX : INT16_MAX;
                if (errno || end == text || *end || v < lo || v > hi)
                        return bad_value(text, "not an integer of that type");
                if (type == 'x') {
                        int64_t x = v;
                        return sd_bus_message_append_basic(m, 'x', &x);
                } else if (type == 'i') {
                        int32_t i = v;
                        return sd_bus_message_append_basic(m, 'i', &i);
                } else {
                        int16_t n = v;
                        return sd_bus_message_append_basic(m, 'n', &n);
                }
        }
        case 't': case 'u': case 'q': case 'y': {
                unsigned long long v;
                unsigned long long hi = type == 't' ? UINT64_MAX : type == 'u' ? UINT32_MAX : type == 'q' ? UINT16_MAX : UINT8_MAX;
                if (text[0] == '-')
                        return bad_value(text, "not an unsigned integer");
                v = strtoull(text, &end, 10);
                if (errno || end == text || *end || v > hi)
                        return bad_value(text, "not an unsigned integer of that type");
                if (type == 't') {
                        uint64_t t = v;
                        return sd_bus_message_append_basic(m, 't', &t);
                } else if (type == 'u') {
                        uint32_t u = v;
                        return sd_bus_message_append_basic(m, 'u', &u);
                } else if (type == 'q') {
                        uint16_t q = v;
                        return sd_bus_message_append_basic(m, 'q', &q);
                } else {
                        uint8_t y = v;
                        return sd_bus_message_append_basic(m, 'y', &y);
                }
        }
        default:
                fprintf(stderr, "%s: The type '%c' cannot be given on the command line.\n", program, type);
                note_failure(EXIT_USAGE);
                return -EOPNOTSUPP;
        }
}

/* --- JSON -> D-Bus ------------------------------------------------------------------------- */

typedef struct Json {
        const char *text, *p;
        char *error;
} Json;

static int json_fail(Json *j, const char *why) {
        if (!j->error && asprintf(&j->error, "%s at offset %td", why, j->p - j->text) < 0)
                j->error = NULL;
        return -EINVAL;
}

static void json_ws(Json *j) {
        while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
                j->p++;
}

/* Reads a JSON string at j->p (the opening quote); returns a malloc'd UTF-8 string. */
static int json_string_parse(Json *j, char **ret) {
        const char *p = j->p + 1;
        char *out = malloc(strlen(p) + 1), *o = out; /* escapes never grow the text */
        uint32_t cp = 0;
        int n;

        if (!out)
                return -ENOMEM;
        while (*p != '"') {
                if (*p == 0 || (unsigned char) *p < 0x20) {
                        free(out);
                        j->p = p;
                        return json_fail(j, "unterminated string");
                }
                if (*p != '\\') {
                        *o++ = *p++;
                        continue;
                }
                n = json_unescape(p, SIZE_MAX, &o, &cp);
                if (n < 0) {
                        free(out);
                        /* where the escape's letter is, or after the \\uXXXX it could not take */
                        j->p = n == -EINVAL ? p + 1 : p + 6;
                        return json_fail(j, "bad escape in string");
                }
                p += n;
        }
        *o = 0;
        if (utf8_invalid_at(out, o - out) >= 0) {
                free(out);
                return json_fail(j, "a string that is not UTF-8");
        }
        j->p = p + 1;
        *ret = out;
        return 0;
}

static int json_append_variant(Json *j, sd_bus_message *m, unsigned depth);

/* Appends the JSON object at j->p as a{sv} (not wrapped in a variant). */
static int json_append_object(Json *j, sd_bus_message *m, unsigned depth) {
        int r;

        if (depth > MAX_DEPTH)
                return json_fail(j, "nested too deeply");
        j->p++; /* { */
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        json_ws(j);
        if (*j->p == '}')
                j->p++;
        else
                for (;;) {
                        char *key = NULL;
                        json_ws(j);
                        if (*j->p != '"')
                                return json_fail(j, "expected a string key");
                        r = json_string_parse(j, &key);
                        if (r < 0)
                                return r;
                        json_ws(j);
                        if (*j->p != ':') {
                                free(key);
                                return json_fail(j, "expected ':'");
                        }
                        j->p++;
                        r = sd_bus_message_open_container(m, 'e', "sv");
                        if (r >= 0)
                                r = sd_bus_message_append_basic(m, 's', key);
                        free(key);
                        if (r >= 0)
                                r = json_append_variant(j, m, depth + 1);
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                        if (r < 0)
                                return r;
                        json_ws(j);
                        if (*j->p == ',') {
                                j->p++;
                                continue;
                        }
                        if (*j->p == '}') {
                                j->p++;
                                break;
                        }
                        return json_fail(j, "expected ',' or '}'");
                }
        return sd_bus_message_close_container(m);
}

/* Appends the JSON array at j->p as av (not wrapped in a variant). */
static int json_append_array(Json *j, sd_bus_message *m, unsigned depth) {
        int r;

        if (depth > MAX_DEPTH)
                return json_fail(j, "nested too deeply");
        j->p++; /* [ */
        r = sd_bus_message_open_container(m, 'a', "v");
        if (r < 0)
                return r;
        json_ws(j);
        if (*j->p == ']')
                j->p++;
        else
                for (;;) {
                        r = json_append_variant(j, m, depth + 1);
                        if (r < 0)
                                return r;
                        json_ws(j);
                        if (*j->p == ',') {
                                j->p++;
                                continue;
                        }
                        if (*j->p == ']') {
                                j->p++;
                                break;
                        }
                        return json_fail(j, "expected ',' or ']'");
                }
        return sd_bus_message_close_container(m);
}

/* Appends the JSON value at j->p wrapped in a variant. */
static int json_append_variant(Json *j, sd_bus_message *m, unsigned depth) {
        int r;

        json_ws(j);
        switch (*j->p) {
        case '{':
                r = sd_bus_message_open_container(m, 'v', "a{sv}");
                if (r >= 0)
                        r = json_append_object(j, m, depth);
                break;
        case '[':
                r = sd_bus_message_open_container(m, 'v', "av");
                if (r >= 0)
                        r = json_append_array(j, m, depth);
                break;
        case '"': {
                char *s = NULL;
                r = json_string_parse(j, &s);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(m, "v", "s", s);
                free(s);
                return r;
        }
        case 't':
        case 'f': {
                bool b = *j->p == 't';
                const char *word = b ? "true" : "false";
                if (strncmp(j->p, word, strlen(word)) != 0)
                        return json_fail(j, "unexpected character");
                j->p += strlen(word);
                return sd_bus_message_append(m, "v", "b", (int) b);
        }
        case 'n':
                return json_fail(j, "null has no D-Bus type");
        default: {
                const char *start = j->p;
                bool integer = true;
                char *end;

                if (*j->p == '-')
                        j->p++;
                if (!(*j->p >= '0' && *j->p <= '9'))
                        return json_fail(j, "unexpected character");
                while ((*j->p >= '0' && *j->p <= '9') || strchr(".eE+-", *j->p)) {
                        if (strchr(".eE", *j->p))
                                integer = false;
                        j->p++;
                }
                errno = 0;
                if (integer) {
                        long long v = strtoll(start, &end, 10);
                        if (end == j->p && errno == 0)
                                return sd_bus_message_append(m, "v", "x", (int64_t) v);
                        /* too large for x: fall through to d */
                }
                errno = 0;
                double d = strtod(start, &end);
                if (end != j->p || errno)
                        return json_fail(j, "bad number");
                return sd_bus_message_append(m, "v", "d", d);
        }
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* Appends the JSON TEXT: as a variant (type 'v'), or as a{sv} / av directly. */
static int json_append(sd_bus_message *m, const char *text, char type) {
        Json j = { .text = text, .p = text };
        int r;

        json_ws(&j);
        if (type == 'v')
                r = json_append_variant(&j, m, 0);
        else if (type == '{') {
                if (*j.p != '{')
                        r = json_fail(&j, "expected a JSON object");
                else
                        r = json_append_object(&j, m, 0);
        } else {
                if (*j.p != '[')
                        r = json_fail(&j, "expected a JSON array");
                else
                        r = json_append_array(&j, m, 0);
        }
        if (r >= 0) {
                json_ws(&j);
                if (*j.p)
                        r = json_fail(&j, "trailing characters");
        }
        if (r == -EINVAL && j.error) {
                fprintf(stderr, "%s: Invalid JSON '%s': %s (write s:TEXT for a string).\n", program, text, j.error);
                note_failure(EXIT_USAGE);
                r = -EINVAL;
        } else if (r < 0)
                fprintf(stderr, "%s: Cannot build the message: %s\n", program, strerror(-r));
        free(j.error);
        return r;
}

/* --- command line -> D-Bus ----------------------------------------------------------------- */

static bool has_type_prefix(const char *text) {
        return text[0] && text[1] == ':' && strchr(basic_prefixes, text[0]);
}

int value_append_variant(sd_bus_message *m, const char *text) {
        const char *t = text;
        int r;

        if (has_type_prefix(text)) {
                char sig[2] = { text[0], 0 };
                r = sd_bus_message_open_container(m, 'v', sig);
                if (r >= 0)
                        r = append_basic(m, text[0], text + 2);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        while (*t == ' ' || *t == '\t' || *t == '\n')
                t++;
        if (*t == '{' || *t == '[')
                return json_append(m, text, 'v');
        r = sd_bus_message_open_container(m, 'v', "s");
        if (r >= 0)
                r = value_append_string(m, "value", text);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

#define STDIN_MAX (128u * 1024 * 1024) /* sd-bus's largest message */

/* Reads all of standard input; *RET is NUL-terminated (for text) and *RET_LEN its length. */
static int read_stdin(char **ret, size_t *ret_len) {
        size_t len = 0, size = 0;
        char *buf = NULL;

        for (;;) {
                if (size - len < 4096 + 1) {
                        size_t nsize = size ? size * 2 : 65536;
                        char *nbuf;
                        if (nsize > STDIN_MAX + 4096) {
                                free(buf);
                                fprintf(stderr, "%s: Standard input is larger than %u MiB, the largest D-Bus message.\n",
                                        program, STDIN_MAX >> 20);
                                note_failure(EXIT_USAGE);
                                return -EFBIG;
                        }
                        nbuf = realloc(buf, nsize);
                        if (!nbuf) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nbuf;
                        size = nsize;
                }
                size_t n = fread(buf + len, 1, size - len - 1, stdin);
                len += n;
                if (n == 0) {
                        if (ferror(stdin)) {
                                int e = errno;
                                free(buf);
                                fprintf(stderr, "%s: Cannot read standard input: %s\n", program, strerror(e));
                                return -e;
                        }
                        break;
                }
        }
        buf[len] = 0;
        *ret = buf;
        *ret_len = len;
        return 0;
}

int value_append_source(sd_bus_message *m, const ValueSource *src, const char *arg) {
        char *buf = NULL;
        size_t len = 0;
        int r;

        if (!src->from_stdin && !src->bytes)
                return value_append_variant(m, arg);
        if (src->from_stdin) {
                r = read_stdin(&buf, &len);
                if (r < 0)
                        return r;
        } else
                len = strlen(arg);
        const char *data = buf ? buf : arg;
        if (src->bytes) {
                r = sd_bus_message_open_container(m, 'v', "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', data, len);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        } else {
                /* -x: the text as it is, a string (no typed notation) */
                ssize_t at = utf8_invalid_at(data, len);
                if (at >= 0)
                        r = bad_utf8("standard input", data, len, at);
                else
                        r = sd_bus_message_append(m, "v", "s", data);
        }
        free(buf);
        return r;
}

/* Length of the complete type at SIG. */
static size_t type_len(const char *sig) {
        switch (sig[0]) {
        case 'a':
                return 1 + type_len(sig + 1);
        case '(':
        case '{': {
                char open = sig[0], close = open == '(' ? ')' : '}';
                int depth = 0;
                size_t i = 0;
                do {
                        if (sig[i] == open)
                                depth++;
                        else if (sig[i] == close)
                                depth--;
                        i++;
                } while (depth > 0 && sig[i]);
                return i;
        }
        default:
                return sig[0] ? 1 : 0;
        }
}

static int append_one(sd_bus_message *m, const char *type, size_t tlen, const char *text) {
        if (tlen == 1 && type[0] == 'v')
                return value_append_variant(m, text);
        if (tlen == 1)
                return append_basic(m, type[0], text);
        fprintf(stderr, "%s: Arguments of type '%.*s' cannot be given on the command line.\n", program, (int) tlen, type);
        note_failure(EXIT_USAGE);
        return -EOPNOTSUPP;
}

/* Appends the array TYPE (a...) from N arguments. */
static int append_array(sd_bus_message *m, const char *type, size_t tlen, int n, char **args) {
        char contents[64];
        int r;

        if (tlen - 1 >= sizeof(contents))
                return -EOPNOTSUPP;
        memcpy(contents, type + 1, tlen - 1);
        contents[tlen - 1] = 0;

        if (strcmp(contents, "{sv}") == 0 && n == 1 && args[0][strspn(args[0], " \t\n")] == '{')
                return json_append(m, args[0], '{');
        if (strcmp(contents, "v") == 0 && n == 1 && args[0][strspn(args[0], " \t\n")] == '[')
                return json_append(m, args[0], '[');

        r = sd_bus_message_open_container(m, 'a', contents);
        if (r < 0)
                return r;
        if (contents[0] == '{') {
                /* {KV}: KEY VALUE pairs */
                size_t klen = type_len(contents + 1), vlen = type_len(contents + 1 + klen);
                if (n % 2) {
                        fprintf(stderr, "%s: '%s' takes KEY VALUE pairs; the last key has no value.\n", program, type);
                        note_failure(EXIT_USAGE);
                        return -EINVAL;
                }
                for (int i = 0; i < n; i += 2) {
                        char entry[64];
                        snprintf(entry, sizeof(entry), "%.*s", (int) (klen + vlen), contents + 1);
                        r = sd_bus_message_open_container(m, 'e', entry);
                        if (r >= 0)
                                r = append_one(m, contents + 1, klen, args[i]);
                        if (r >= 0)
                                r = append_one(m, contents + 1 + klen, vlen, args[i + 1]);
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                        if (r < 0)
                                return r;
                }
        } else
                for (int i = 0; i < n; i++) {
                        r = append_one(m, contents, strlen(contents), args[i]);
                        if (r < 0)
                                return r;
                }
        return sd_bus_message_close_container(m);
}

int value_append_args(sd_bus_message *m, const char *signature, int argc, char **argv) {
        int fixed = 0, used = 0, r;

        /* arguments that are not arrays take one argument each */
        for (const char *s = signature; *s; s += type_len(s))
                if (*s != 'a')
                        fixed++;
        for (const char *s = signature; *s;) {
                size_t l = type_len(s);
                if (*s == 'a') {
                        int n = argc - used - fixed;
                        if (n < 0)
                                n = 0;
                        r = append_array(m, s, l, n, argv + used);
                        used += n;
                } else {
                        if (used >= argc) {
                                fprintf(stderr, "%s: Too few arguments for the signature '%s'.\n", program, signature);
                                note_failure(EXIT_USAGE);
                                return -EINVAL;
                        }
                        fixed--;
                        r = append_one(m, s, l, argv[used++]);
                }
                if (r < 0) {
                        if (r != -EINVAL && r != -EOPNOTSUPP)
                                fprintf(stderr, "%s: Cannot build the message: %s\n", program, strerror(-r));
                        return r;
                }
                s += l;
        }
        if (used < argc) {
                fprintf(stderr, "%s: Too many arguments for the signature '%s' ('%s' is left over).\n", program,
                        signature, argv[used]);
                note_failure(EXIT_USAGE);
                return -EINVAL;
        }
        return 0;
}

/* --- D-Bus -> text ------------------------------------------------------------------------- */


static void print_double(FILE *f, double d, bool json) {
        char buf[64];

        if (!isfinite(d)) {
                fputs(json ? "null" : isnan(d) ? "nan" : d > 0 ? "inf" : "-inf", f);
                return;
        }
        snprintf(buf, sizeof(buf), "%.15g", d);
        if (strtod(buf, NULL) != d)
                snprintf(buf, sizeof(buf), "%.17g", d);
        if (!strpbrk(buf, ".eEn"))
                strcat(buf, ".0"); /* stays a double when read back */
        fputs(buf, f);
}

bool value_print_number(FILE *f, char type, const ValueBasic *v) {
        switch (type) {
        case 'b': fputs(v->b ? "true" : "false", f); break;
        case 'y': fprintf(f, "%" PRIu8, v->y); break;
        case 'n': fprintf(f, "%" PRIi16, v->n); break;
        case 'q': fprintf(f, "%" PRIu16, v->q); break;
        case 'i': fprintf(f, "%" PRIi32, v->i); break;
        case 'u': fprintf(f, "%" PRIu32, v->u); break;
        case 'x': fprintf(f, "%" PRIi64, v->x); break;
        case 't': fprintf(f, "%" PRIu64, v->t); break;
        default: return false;
        }
        return true;
}

/* Prints a basic value without type prefix (strings as they are, or JSON-quoted). */
static void print_basic(FILE *f, char type, const ValueBasic *v, bool json) {
        switch (type) {
        case 's': case 'o': case 'g':
                if (json)
                        json_string(f, v->s);
                else
                        fputs(v->s, f);
                break;
        case 'h': fprintf(f, "%d", v->h); break;
        case 'd': print_double(f, v->d, json); break;
        default: (void) value_print_number(f, type, v); break;
        }
}

static bool streq_ay(const char *contents) {
        return strcmp(contents, "y") == 0;
}

/* Would this string read back as something other than itself? */
static bool string_ambiguous(const char *s) {
        const char *t = s + strspn(s, " \t\n");
        return has_type_prefix(s) || *t == '{' || *t == '[';
}

static int print_json(FILE *f, sd_bus_message *m, unsigned depth);

/* JSON for a container the cursor is on (TYPE/CONTENTS from peek). */
static int print_json_container(FILE *f, sd_bus_message *m, char type, const char *contents, unsigned depth) {
        bool dict = type == 'a' && contents[0] == '{';
        bool first = true;
        int r;

        if (depth > MAX_DEPTH * 2)
                return -ELOOP;
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        if (type == 'v') {
                r = print_json(f, m, depth + 1);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        }
        fputc(dict ? '{' : '[', f);
        for (;;) {
                char t;
                const char *c;
                r = sd_bus_message_peek_type(m, &t, &c);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (!first)
                        fputc(',', f);
                first = false;
                if (dict) {
                        char kt;
                        ValueBasic k;
                        r = sd_bus_message_enter_container(m, 'e', c);
                        if (r < 0)
                                return r;
                        kt = c[0];
                        r = sd_bus_message_read_basic(m, kt, &k);
                        if (r < 0)
                                return r;
                        if (kt == 's' || kt == 'o' || kt == 'g')
                                json_string(f, k.s);
                        else {
                                fputc('"', f);
                                print_basic(f, kt, &k, false);
                                fputc('"', f);
                        }
                        fputc(':', f);
                        r = print_json(f, m, depth + 1);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(m);
                } else
                        r = print_json(f, m, depth + 1);
                if (r < 0)
                        return r;
        }
        fputc(dict ? '}' : ']', f);
        return sd_bus_message_exit_container(m);
}

static int print_json(FILE *f, sd_bus_message *m, unsigned depth) {
        char type;
        const char *contents;
        ValueBasic v;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (strchr("avr(e{", type))
                return print_json_container(f, m, type, contents, depth);
        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        print_basic(f, type, &v, true);
        return 0;
}

/* IN_VARIANT: the value was wrapped in a variant, so its type is part of the data and
 * VALUE_TYPED shows it; a method argument's type is fixed by the signature and is not shown. */
static int print_value(FILE *f, sd_bus_message *m, ValueFormat format, bool in_variant) {
        char type;
        const char *contents;
        ValueBasic v;
        int r;

        if (format == VALUE_JSON)
                return print_json(f, m, 0);
        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (type == 'v') {
                int q;
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                q = print_value(f, m, format, true);
                if (q < 0)
                        return q;
                r = sd_bus_message_exit_container(m);
                return r < 0 ? r : q;
        }
        if (format == VALUE_RAW && type == 'a' && streq_ay(contents)) {
                const void *bytes;
                size_t n;
                r = sd_bus_message_read_array(m, 'y', &bytes, &n);
                if (r >= 0 && n > 0 && fwrite(bytes, 1, n, f) != n)
                        r = -EIO;
                return r < 0 ? r : 1; /* the bytes as they are: no newline after them */
        }
        if (strchr("ar(e{", type))
                return print_json(f, m, 0);
        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        if (format == VALUE_TYPED && in_variant && (type != 's' || string_ambiguous(v.s)))
                fprintf(f, "%c:", type);
        print_basic(f, type, &v, false);
        return 0;
}

int value_print(FILE *f, sd_bus_message *m, ValueFormat format) {
        return print_value(f, m, format, false);
}

/* One argument of a reply in the plain line format: basic values as they are, variants typed,
 * arrays one element per line, dictionaries KEY<TAB>VALUE. */
static int print_arg_lines(FILE *f, sd_bus_message *m, ValueFormat format) {
        char type;
        const char *contents;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (type == 'a' && (contents[0] == '{' || !strchr("a(", contents[0]))) {
                bool dict = contents[0] == '{';
                r = sd_bus_message_enter_container(m, 'a', contents);
                if (r < 0)
                        return r;
                for (;;) {
                        char t;
                        const char *c;
                        r = sd_bus_message_peek_type(m, &t, &c);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                        if (dict) {
                                r = sd_bus_message_enter_container(m, 'e', c);
                                if (r >= 0)
                                        r = value_print(f, m, VALUE_RAW);
                                fputc('\t', f);
                                if (r >= 0)
                                        r = value_print(f, m, format);
                                if (r >= 0)
                                        r = sd_bus_message_exit_container(m);
                        } else
                                r = value_print(f, m, format);
                        if (r < 0)
                                return r;
                        fputc('\n', f);
                }
                return sd_bus_message_exit_container(m);
        }
        r = value_print(f, m, format);
        if (r == 0)
                fputc('\n', f);
        return r < 0 ? r : 0;
}

int value_print_reply(FILE *f, sd_bus_message *m, ValueFormat format) {
        const char *sig = sd_bus_message_get_signature(m, true);
        size_t n = 0;
        int r;

        for (const char *s = sig; s && *s; s += type_len(s))
                n++;
        if (format == VALUE_JSON) {
                if (n == 0) {
                        fputs("null\n", f); /* a method without a return value: still one JSON document */
                        return 0;
                }
                if (n > 1)
                        fputc('[', f);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                fputc(',', f);
                        r = print_json(f, m, 0);
                        if (r < 0)
                                return r;
                }
                if (n > 1)
                        fputc(']', f);
                fputc('\n', f);
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                r = print_arg_lines(f, m, format);
                if (r < 0)
                        return r;
        }
        return 0;
}
