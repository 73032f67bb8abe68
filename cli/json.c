/* SPDX-License-Identifier: MIT */
/* hubctl: the strict JSON reader and base64 (see json.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

ssize_t utf8_invalid_at(const char *text, size_t len) {
        const unsigned char *s = (const unsigned char *) text;

        for (size_t i = 0; i < len;) {
                unsigned char c = s[i];
                size_t n;
                uint32_t cp, min;

                if (c < 0x80) {
                        if (c == 0)
                                return i; /* D-Bus strings cannot hold NUL */
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0)
                        n = 1, cp = c & 0x1f, min = 0x80;
                else if ((c & 0xf0) == 0xe0)
                        n = 2, cp = c & 0x0f, min = 0x800;
                else if ((c & 0xf8) == 0xf0)
                        n = 3, cp = c & 0x07, min = 0x10000;
                else
                        return i;
                if (len - i <= n)
                        return i;
                for (size_t k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return i;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return i;
                i += n + 1;
        }
        return -1;
}

/* --- the parser ---------------------------------------------------------------------------- */

typedef struct Parser {
        const char *text;
        size_t len, pos;
        unsigned max_depth;
        char *error;
} Parser;

static int fail_at(Parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(Parser *p, size_t pos, const char *fmt, ...) {
        unsigned line, column;
        char *what = NULL;
        va_list ap;

        if (p->error)
                return -EINVAL;
        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        json_position(p->text, pos, &line, &column);
        if (!what || asprintf(&p->error, "line %u, column %u: %s", line, column, what) < 0)
                p->error = NULL;
        free(what);
        return -EINVAL;
}

static int peek(const Parser *p) {
        return p->pos < p->len ? (unsigned char) p->text[p->pos] : -1;
}

static void skip_ws(Parser *p) {
        while (p->pos < p->len && p->text[p->pos] && strchr(" \t\n\r", p->text[p->pos]))
                p->pos++;
}

/* What the parser met, for messages: "'x'", "the end of the input". */
static const char *what_is_here(const Parser *p, char buf[static 16]) {
        int c = peek(p);
        if (c < 0)
                return "the end of the input";
        if (c == 0)
                return "a NUL byte";
        if (c < 0x20 || c >= 0x7f)
                snprintf(buf, 16, "byte 0x%02x", (unsigned) c);
        else
                snprintf(buf, 16, "'%c'", c);
        return buf;
}

static int unexpected(Parser *p, const char *expected) {
        char buf[16];
        return fail_at(p, p->pos, "expected %s, found %s", expected, what_is_here(p, buf));
}

static int hex4(const char *s, size_t avail, uint32_t *ret) {
        uint32_t v = 0;

        if (avail < 4)
                return -EINVAL;
        for (int i = 0; i < 4; i++) {
                char c = s[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= c - '0';
                else if (c >= 'a' && c <= 'f')
                        v |= c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                        v |= c - 'A' + 10;
                else
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

static void utf8_put(char **o, uint32_t c) {
        unsigned char *u = (unsigned char *) *o;

        if (c < 0x80)
                *u++ = c;
        else if (c < 0x800) {
                *u++ = 0xc0 | (c >> 6);
                *u++ = 0x80 | (c & 0x3f);
        } else if (c < 0x10000) {
                *u++ = 0xe0 | (c >> 12);
                *u++ = 0x80 | ((c >> 6) & 0x3f);
                *u++ = 0x80 | (c & 0x3f);
        } else {
                *u++ = 0xf0 | (c >> 18);
                *u++ = 0x80 | ((c >> 12) & 0x3f);
                *u++ = 0x80 | ((c >> 6) & 0x3f);
                *u++ = 0x80 | (c & 0x3f);
        }
        *o = (char *) u;
}

int json_unescape(const char *s, size_t avail, char **o, uint32_t *ret_cp) {
        static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t"; /* escape letter, then what it stands for */
        uint32_t cp, lo;

        if (avail < 2)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(simple) - 1; i += 2)
                if (s[1] == simple[i]) {
                        *(*o)++ = simple[i + 1];
                        return 2;
                }
        if (s[1] != 'u' || hex4(s + 2, avail - 2, &cp) < 0)
                return -EINVAL;
        if (cp >= 0xd800 && cp < 0xdc00) {
                if (avail < 12 || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, avail - 8, &lo) < 0 || lo < 0xdc00 ||
                    lo > 0xdfff) {
                        *ret_cp = cp;
                        return -ERANGE;
                }
                utf8_put(o, 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00));
                return 12;
        }
        if (cp >= 0xdc00 && cp < 0xe000) {
                *ret_cp = cp;
                return -ERANGE;
        }
        if (cp == 0)
                return -EDOM;
        utf8_put(o, cp);
        return 6;
}

/* The string at p->pos (its opening quote). Escapes never make the text longer. */
static int parse_string(Parser *p, char **ret, size_t *ret_len) {
        size_t start = ++p->pos, end = start;
        char *out, *o;
        ssize_t bad;

        while (end < p->len && p->text[end] != '"') {
                if (p->text[end] == '\\' && end + 1 < p->len)
                        end++;
                end++;
        }
        if (end >= p->len)
                return fail_at(p, start - 1, "unterminated string");
        out = o = malloc(end - start + 1);
        if (!out)
                return -ENOMEM;
        while (p->pos < end) {
                unsigned char c = p->text[p->pos];
                uint32_t cp = 0;
                int n;

                if (c < 0x20) {
                        free(out);
                        return fail_at(p, p->pos, c == 0 ? "a NUL byte in a string" :
                                                           "a control character (0x%02x) in a string: escape it", c);
                }
                if (c != '\\') {
                        *o++ = c;
                        p->pos++;
                        continue;
                }
                n = json_unescape(p->text + p->pos, end - p->pos, &o, &cp);
                if (n < 0) {
                        free(out);
                        if (n == -ERANGE)
                                return fail_at(p, p->pos, "a lone surrogate (\\u%04x) in a string", cp);
                        if (n == -EDOM)
                                return fail_at(p, p->pos, "\\u0000 in a string: D-Bus strings cannot hold NUL");
                        return fail_at(p, p->pos, "a bad escape in a string");
                }
                p->pos += n;
        }
        *o = 0;
        bad = utf8_invalid_at(out, o - out);
        if (bad >= 0) {
                free(out);
                return fail_at(p, start - 1, "a string that is not UTF-8");
        }
        p->pos = end + 1;
        *ret = out;
        *ret_len = o - out;
        return 0;
}

static bool is_digit(int c) {
        return c >= '0' && c <= '9';
}

/* A number as RFC 8259 writes it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(Parser *p, JsonValue *v) {
        size_t start = p->pos;

        if (peek(p) == '-')
                p->pos++;
        if (peek(p) == '0')
                p->pos++;
        else if (is_digit(peek(p)))
                while (is_digit(peek(p)))
                        p->pos++;
        else
                return unexpected(p, "a digit");
        if (peek(p) == '.') {
                p->pos++;
                if (!is_digit(peek(p)))
                        return unexpected(p, "a digit after '.'");
                while (is_digit(peek(p)))
                        p->pos++;
        }
        if (peek(p) == 'e' || peek(p) == 'E') {
                p->pos++;
                if (peek(p) == '+' || peek(p) == '-')
                        p->pos++;
                if (!is_digit(peek(p)))
                        return unexpected(p, "a digit in the exponent");
                while (is_digit(peek(p)))
                        p->pos++;
        }
        v->text = strndup(p->text + start, p->pos - start);
        if (!v->text)
                return -ENOMEM;
        v->len = p->pos - start;
        v->type = JSON_NUMBER;
        return 0;
}

static int parse_value(Parser *p, JsonValue *v, unsigned depth);

/* Appends a zeroed item to V (an array or object); returns it. */
static JsonValue *add_item(JsonValue *v, size_t *allocated) {
        if (v->n == *allocated) {
                size_t na = *allocated ? *allocated * 2 : 4;
                JsonValue *items = reallocarray(v->items, na, sizeof(JsonValue));
                if (!items)
                        return NULL;
                v->items = items;
                if (v->type == JSON_OBJECT) {
                        char **keys = reallocarray(v->keys, na, sizeof(char *));
                        if (!keys)
                                return NULL;
                        v->keys = keys;
                }
                *allocated = na;
        }
        memset(&v->items[v->n], 0, sizeof(JsonValue));
        if (v->type == JSON_OBJECT)
                v->keys[v->n] = NULL;
        return &v->items[v->n++];
}

static int cmp_key(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The first key of the object V named twice, or NULL (O(n log n)). */
static const char *duplicate_key(const JsonValue *v, int *ret_errno) {
        const char *dup = NULL;
        char **sorted;

        *ret_errno = 0;
        if (v->n < 2)
                return NULL;
        if (v->n <= 8) {
                for (size_t i = 0; i < v->n; i++)
                        for (size_t k = i + 1; k < v->n; k++)
                                if (strcmp(v->keys[i], v->keys[k]) == 0)
                                        return v->keys[i];
                return NULL;
        }
        sorted = malloc(v->n * sizeof(char *));
        if (!sorted) {
                *ret_errno = -ENOMEM;
                return NULL;
        }
        memcpy(sorted, v->keys, v->n * sizeof(char *));
        qsort(sorted, v->n, sizeof(char *), cmp_key);
        for (size_t i = 1; i < v->n && !dup; i++)
                if (strcmp(sorted[i - 1], sorted[i]) == 0)
                        dup = sorted[i];
        free(sorted);
        return dup;
}

static int parse_container(Parser *p, JsonValue *v, unsigned depth) {
        bool object = peek(p) == '{';
        char close = object ? '}' : ']';
        size_t allocated = 0;
        int r;

        if (depth >= p->max_depth)
                return fail_at(p, p->pos, "nested deeper than %u arrays and objects", p->max_depth);
        v->type = object ? JSON_OBJECT : JSON_ARRAY;
        p->pos++;
        skip_ws(p);
        if (peek(p) == close) {
                p->pos++;
                return 0;
        }
        for (;;) {
                JsonValue *item;
                char *key = NULL;
                size_t klen;

                skip_ws(p);
                if (object) {
                        if (peek(p) != '"')
                                return unexpected(p, "a string (a member name)");
                        r = parse_string(p, &key, &klen);
                        if (r < 0)
                                return r;
                        skip_ws(p);
                        if (peek(p) != ':') {
                                free(key);
                                return unexpected(p, "':'");
                        }
                        p->pos++;
                        skip_ws(p);
                }
                item = add_item(v, &allocated);
                if (!item) {
                        free(key);
                        return -ENOMEM;
                }
                if (object)
                        v->keys[v->n - 1] = key;
                r = parse_value(p, item, depth + 1);
                if (r < 0)
                        return r;
                skip_ws(p);
                if (peek(p) == ',') {
                        p->pos++;
                        continue;
                }
                if (peek(p) == close) {
                        p->pos++;
                        break;
                }
                return unexpected(p, object ? "',' or '}'" : "',' or ']'");
        }
        if (object) {
                const char *dup = duplicate_key(v, &r);
                if (r < 0)
                        return r;
                if (dup)
                        return fail_at(p, v->offset, "the member name \"%s\" appears twice in this object", dup);
        }
        return 0;
}

static int parse_word(Parser *p, const char *word) {
        size_t l = strlen(word);
        if (p->len - p->pos < l || memcmp(p->text + p->pos, word, l) != 0)
                return unexpected(p, "a value");
        p->pos += l;
        return 0;
}

static int parse_value(Parser *p, JsonValue *v, unsigned depth) {
        int c = peek(p);

        v->offset = p->pos;
        switch (c) {
        case '{':
        case '[':
                return parse_container(p, v, depth);
        case '"':
                v->type = JSON_STRING;
                return parse_string(p, &v->text, &v->len);
        case 't':
        case 'f':
                v->type = JSON_BOOL;
                v->boolean = c == 't';
                return parse_word(p, c == 't' ? "true" : "false");
        case 'n':
                v->type = JSON_NULL;
                return parse_word(p, "null");
        default:
                if (c == '-' || is_digit(c))
                        return parse_number(p, v);
                return unexpected(p, "a value");
        }
}

int json_parse(const char *text, size_t len, unsigned max_depth, JsonValue *ret, char **ret_error) {
        Parser p = { .text = text, .len = len, .max_depth = max_depth };
        JsonValue v = {};
        int r;

        skip_ws(&p);
        r = parse_value(&p, &v, 0);
        if (r >= 0) {
                skip_ws(&p);
                if (p.pos < p.len)
                        r = unexpected(&p, "the end of the input after the document");
        }
        if (r < 0) {
                json_value_clear(&v);
                if (ret_error)
                        *ret_error = p.error;
                else
                        free(p.error);
                return r;
        }
        *ret = v;
        return 0;
}

void json_value_clear(JsonValue *v) {
        if (!v)
                return;
        for (size_t i = 0; i < v->n; i++) {
                json_value_clear(&v->items[i]);
                if (v->keys)
                        free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
        free(v->text);
        *v = (JsonValue) {};
}

const JsonValue *json_object_get(const JsonValue *o, const char *key) {
        if (!o || o->type != JSON_OBJECT)
                return NULL;
        for (size_t i = 0; i < o->n; i++)
                if (strcmp(o->keys[i], key) == 0)
                        return &o->items[i];
        return NULL;
}

void json_position(const char *text, size_t offset, unsigned *ret_line, unsigned *ret_column) {
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < offset; i++) {
                if (text[i] == '\n') {
                        line++;
                        column = 1;
                } else if (((unsigned char) text[i] & 0xc0) != 0x80)
                        column++;
        }
        *ret_line = line;
        *ret_column = column;
}

const char *json_type_name(JsonType t) {
        static const char *const names[] = {
                [JSON_NULL] = "null", [JSON_BOOL] = "a boolean", [JSON_NUMBER] = "a number",
                [JSON_STRING] = "a string", [JSON_ARRAY] = "an array", [JSON_OBJECT] = "an object",
        };
        return t <= JSON_OBJECT ? names[t] : "?";
}

/* --- base64 -------------------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_write(FILE *f, const void *data, size_t n) {
        const uint8_t *d = data;
        char out[4];

        for (size_t i = 0; i < n; i += 3) {
                uint32_t w = (uint32_t) d[i] << 16 | (i + 1 < n ? (uint32_t) d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
                out[0] = b64[w >> 18];
                out[1] = b64[(w >> 12) & 63];
                out[2] = i + 1 < n ? b64[(w >> 6) & 63] : '=';
                out[3] = i + 2 < n ? b64[w & 63] : '=';
                fwrite(out, 1, 4, f);
        }
}

static int b64_index(char c) {
        const char *at = c ? strchr(b64, c) : NULL;
        return at ? (int) (at - b64) : -1;
}

int base64_decode(const char *text, size_t len, uint8_t **ret, size_t *ret_n) {
        uint8_t *out;
        size_t n = 0;

        if (len % 4)
                return -EINVAL;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i += 4) {
                int v[4], pad = 0;
                for (int k = 0; k < 4; k++) {
                        if (text[i + k] == '=' && i + 4 == len && k >= 2 && (k == 3 || text[i + 3] == '=')) {
                                v[k] = 0;
                                pad++;
                                continue;
                        }
                        v[k] = b64_index(text[i + k]);
                        if (v[k] < 0) {
                                free(out);
                                return -EINVAL;
                        }
                }
                uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
                /* the bits a padded group leaves over must be zero (one text per byte string) */
                if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) {
                        free(out);
                        return -EINVAL;
                }
                out[n++] = w >> 16;
                if (pad < 2)
                        out[n++] = (w >> 8) & 0xff;
                if (pad < 1)
                        out[n++] = w & 0xff;
        }
        *ret = out;
        *ret_n = n;
        return 0;
}
