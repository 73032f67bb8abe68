/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdbool.h>

#include "macro.h"
#include "variant-codec.h"

#define CODEC_MAX_DEPTH 64

void codec_buf_done(CodecBuf *b) {
        b->data = mfree(b->data);
        b->size = b->allocated = 0;
}

static int buf_reserve(CodecBuf *b, size_t n) {
        if (b->size + n <= b->allocated)
                return 0;
        size_t a = MAX(b->allocated * 2, b->size + n);
        a = MAX(a, (size_t) 64);
        char *d = realloc(b->data, a);
        if (!d)
                return -ENOMEM;
        b->data = d;
        b->allocated = a;
        return 0;
}

static int buf_put(CodecBuf *b, const void *p, size_t n) {
        int r = buf_reserve(b, n);
        if (r < 0)
                return r;
        memcpy(b->data + b->size, p, n);
        b->size += n;
        return 0;
}

static int buf_put_string(CodecBuf *b, const char *s) {
        uint32_t n = strlen(s);
        int r = buf_put(b, &n, sizeof(n));
        if (r < 0)
                return r;
        return buf_put(b, s, n);
}

static size_t basic_size(char t) {
        switch (t) {
        case 'y': return 1;
        case 'n': case 'q': return 2;
        case 'b': case 'i': case 'u': return 4;
        case 'x': case 't': case 'd': return 8;
        default: return 0;
        }
}

static int read_value(sd_bus_message *m, CodecBuf *b, unsigned depth);

static int read_basic(sd_bus_message *m, char type, CodecBuf *b) {
        union { uint8_t y; int16_t n; uint16_t q; int b; int32_t i; uint32_t u; int64_t x; uint64_t t; double d; const char *s; } v;
        int r;

        if (type == 'h')
                return -EBADF;
        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        if (strchr("sog", type))
                return buf_put_string(b, v.s);
        return buf_put(b, &v, basic_size(type));
}

static int read_container(sd_bus_message *m, char type, const char *contents, CodecBuf *b, unsigned depth) {
        size_t count_at = b->size;
        uint32_t count = 0;
        int r;

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        b->depth = MAX(b->depth, depth + 1);
        if (type == 'a') {
                r = buf_put(b, &count, sizeof(count));
                if (r < 0)
                        return r;
        } else if (type == 'v') {
                r = buf_put_string(b, contents);
                if (r < 0)
                        return r;
        }
        for (;;) {
                r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                r = read_value(m, b, depth + 1);
                if (r < 0)
                        return r;
                count++;
        }
        if (type == 'a')
                memcpy(b->data + count_at, &count, sizeof(count));
        return sd_bus_message_exit_container(m);
}

static int read_value(sd_bus_message *m, CodecBuf *b, unsigned depth) {
        const char *contents = NULL;
        char type;
        int r;

        if (depth > CODEC_MAX_DEPTH)
                return -ELOOP;
        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        if (strchr("arve", type))
                return read_container(m, type, contents, b, depth);
        return read_basic(m, type, b);
}

int codec_read(sd_bus_message *m, const char *signature, CodecBuf *b) {
        size_t old = b->size;
        int r = read_value(m, b, 0);
        if (r < 0)
                b->size = old;
        (void) signature;
        return r;
}

/* --- writing back ------------------------------------------------------------------- */

typedef struct Reader {
        const char *p;
        size_t left;
} Reader;

static int take(Reader *rd, void *out, size_t n) {
        if (rd->left < n)
                return -EBADMSG;
        memcpy(out, rd->p, n);
        rd->p += n;
        rd->left -= n;
        return 0;
}

/* A string in the buffer is not NUL-terminated: copy it out. */
static int take_string(Reader *rd, char **ret) {
        uint32_t n;
        int r = take(rd, &n, sizeof(n));
        if (r < 0)
                return r;
        if (rd->left < n)
                return -EBADMSG;
        char *s = strndup(rd->p, n);
        if (!s)
                return -ENOMEM;
        rd->p += n;
        rd->left -= n;
        *ret = s;
        return 0;
}

/* Length of the complete type at S. */
static size_t type_length(const char *s) {
        if (*s == 'a')
                return 1 + type_length(s + 1);
        if (*s == '(' || *s == '{') {
                size_t n = 1;
                while (s[n] && s[n] != ')' && s[n] != '}')
                        n += type_length(s + n);
                return s[n] ? n + 1 : n;
        }
        return *s ? 1 : 0;
}

static int append_value(sd_bus_message *m, const char *sig, Reader *rd, unsigned depth);

static int append_container(sd_bus_message *m, const char *sig, size_t len, Reader *rd, unsigned depth) {
        _cleanup_(freep) char *contents = NULL;
        int r;

        if (sig[0] == 'a') {
                uint32_t count;
                contents = strndup(sig + 1, len - 1);
                if (!contents)
                        return -ENOMEM;
                r = take(rd, &count, sizeof(count));
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'a', contents);
                if (r < 0)
                        return r;
                for (uint32_t i = 0; i < count; i++) {
                        r = append_value(m, contents, rd, depth + 1);
                        if (r < 0)
                                return r;
                }
                return sd_bus_message_close_container(m);
        }
        if (sig[0] == 'v') {
                r = take_string(rd, &contents);
                if (r < 0)
                        return r;
                if (type_length(contents) != strlen(contents) || !*contents)
                        return -EBADMSG;
                r = sd_bus_message_open_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = append_value(m, contents, rd, depth + 1);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        /* struct or dict entry */
        contents = strndup(sig + 1, len - 2);
        if (!contents)
                return -ENOMEM;
        r = sd_bus_message_open_container(m, sig[0] == '(' ? 'r' : 'e', contents);
        if (r < 0)
                return r;
        for (const char *p = contents; *p; p += type_length(p)) {
                r = append_value(m, p, rd, depth + 1);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

static int append_value(sd_bus_message *m, const char *sig, Reader *rd, unsigned depth) {
        size_t len = type_length(sig);
        int r;

        if (depth > CODEC_MAX_DEPTH || len == 0)
                return -EBADMSG;
        if (strchr("av({", sig[0]))
                return append_container(m, sig, len, rd, depth);
        if (strchr("sog", sig[0])) {
                _cleanup_(freep) char *s = NULL;
                r = take_string(rd, &s);
                if (r < 0)
                        return r;
                return sd_bus_message_append_basic(m, sig[0], s);
        }
        size_t n = basic_size(sig[0]);
        if (n == 0)
                return -EBADMSG;
        uint64_t v = 0;
        r = take(rd, &v, n);
        if (r < 0)
                return r;
        return sd_bus_message_append_basic(m, sig[0], &v);
}

int codec_append(sd_bus_message *m, const char *signature, const void *data, size_t size) {
        Reader rd = { data, size };
        int r = append_value(m, signature, &rd, 0);
        if (r < 0)
                return r;
        return rd.left == 0 ? 0 : -EBADMSG;
}

/* --- depth ----------------------------------------------------------------------------- */

/* "only the data tells": the type holds a variant */
#define DEPTH_DYNAMIC ((unsigned) -1)

static unsigned type_depth(const char *s);

/* The deepest of the complete types in S (a list, as a struct's contents). */
static unsigned types_depth(const char *s) {
        unsigned m = 0;

        for (size_t n = 0; s[n] && s[n] != ')' && s[n] != '}'; n += type_length(s + n)) {
                unsigned d = type_depth(s + n);
                if (d == DEPTH_DYNAMIC)
                        return d;
                m = MAX(m, d);
        }
        return m;
}

/* Nesting depth of any value of the complete type at S, DEPTH_DYNAMIC when it holds a
 * variant.  An upper bound: empty arrays nest less. */
static unsigned type_depth(const char *s) {
        unsigned d;

        switch (*s) {
        case 'v':
                return DEPTH_DYNAMIC;
        case 'a':
                d = type_depth(s + 1);
                break;
        case '(': case '{':
                d = types_depth(s + 1);
                break;
        default:
                return 0;
        }
        return d == DEPTH_DYNAMIC ? d : d + 1;
}

static int skip(sd_bus_message *m, const char *sig) {
        int r = sd_bus_message_skip(m, sig);
        return r < 0 ? r : r == 0 ? -EBADMSG : 1;
}

/* 1 when the value at M's read position nests at most MAX deep, 0 when deeper. */
static int value_fits(sd_bus_message *m, unsigned max) {
        const char *contents = NULL;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (!strchr("arve", type))
                return skip(m, (char[]) { type, 0 });
        if (max == 0)
                return 0;
        if (type != 'e') {
                unsigned d = type == 'v' ? DEPTH_DYNAMIC : types_depth(contents);
                if (d != DEPTH_DYNAMIC && d + 1 <= max) {
                        _cleanup_(freep) char *sig = NULL;
                        if (asprintf(&sig, "%s%s%s", type == 'a' ? "a" : "(", contents, type == 'a' ? "" : ")") < 0)
                                return -ENOMEM;
                        return skip(m, sig);
                }
        }
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        for (;;) {
                r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                r = value_fits(m, max - 1);
                if (r <= 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 1;
}

int codec_message_fits(sd_bus_message *m, unsigned max) {
        int r, fits = 1;

        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        for (;;) {
                r = sd_bus_message_at_end(m, true);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                r = value_fits(m, max);
                if (r <= 0) {
                        fits = r;
                        break;
                }
        }
        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        return fits;
}

void codec_value_done(CodecValue *v) {
        codec_buf_done(&v->buf);
        v->sig = mfree(v->sig);
}

static bool is_basic_type(const char *sig) {
        return sig[0] && !sig[1] && strchr("ybnqiuxtdsog", sig[0]);
}

int codec_read_value(sd_bus_message *m, CodecValue *v) {
        const char *contents = NULL;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0 || type != 'v')
                return -EMEDIUMTYPE;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        if (is_basic_type(contents)) {
                union { uint8_t y; int16_t n; uint16_t q; int b; int32_t i; uint32_t u; int64_t x; uint64_t t; double d; const char *s; } b;
                r = sd_bus_message_read_basic(m, contents[0], &b);
                if (r <= 0)
                        return r < 0 ? r : -EBADMSG;
                v->value.type = contents[0];
                switch (contents[0]) {
                case 'y': v->value.i = b.y; break;
                case 'b': v->value.i = !!b.b; break;
                case 'n': v->value.i = b.n; break;
                case 'i': v->value.i = b.i; break;
                case 'x': v->value.i = b.x; break;
                case 'q': v->value.u = b.q; break;
                case 'u': v->value.u = b.u; break;
                case 't': v->value.u = b.t; break;
                case 'd': v->value.d = b.d; break;
                default:
                        v->value.str.ptr = b.s;
                        v->value.str.len = strlen(b.s);
                }
        } else {
                v->sig = strdup(contents);
                if (!v->sig)
                        return -ENOMEM;
                r = codec_read(m, contents, &v->buf);
                if (r < 0)
                        return r;
                if (v->buf.depth + 1 > CODEC_VARIANT_DEPTH_MAX)
                        return -E2BIG;
                v->value.type = 'v';
                v->value.blob.sig = v->sig;
                v->value.blob.data = v->buf.data;
                v->value.blob.len = v->buf.size;
        }
        return sd_bus_message_exit_container(m);
}

int codec_append_value(sd_bus_message *m, const StoreValue *v) {
        char sig[2] = { v->type, 0 };
        int r;

        r = sd_bus_message_open_container(m, 'v', v->type == 'v' ? v->blob.sig : sig);
        if (r < 0)
                return r;
        switch (v->type) {
        case 'v':
                r = codec_append(m, v->blob.sig, v->blob.data, v->blob.len);
                break;
        case 's': case 'o': case 'g': {
                /* written in place: no copy to get a NUL terminator */
                char *space = NULL;
                if (v->type != 's') {
                        _cleanup_(freep) char *s = strndup(v->str.ptr, v->str.len);
                        if (!s)
                                return -ENOMEM;
                        r = sd_bus_message_append_basic(m, v->type, s);
                        break;
                }
                r = sd_bus_message_append_string_space(m, v->str.len, &space);
                if (r >= 0)
                        memcpy(space, v->str.ptr, v->str.len);
                break;
        }
        case 'y': { uint8_t x = v->i; r = sd_bus_message_append_basic(m, 'y', &x); break; }
        case 'b': { int x = !!v->i; r = sd_bus_message_append_basic(m, 'b', &x); break; }
        case 'n': { int16_t x = v->i; r = sd_bus_message_append_basic(m, 'n', &x); break; }
        case 'i': { int32_t x = v->i; r = sd_bus_message_append_basic(m, 'i', &x); break; }
        case 'x': r = sd_bus_message_append_basic(m, 'x', &v->i); break;
        case 'q': { uint16_t x = v->u; r = sd_bus_message_append_basic(m, 'q', &x); break; }
        case 'u': { uint32_t x = v->u; r = sd_bus_message_append_basic(m, 'u', &x); break; }
        case 't': r = sd_bus_message_append_basic(m, 't', &v->u); break;
        case 'd': r = sd_bus_message_append_basic(m, 'd', &v->d); break;
        default:
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}
