/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "redis-url.h"

void redis_url_done(RedisUrl *u) {
        free(u->host);
        free(u->path);
        free(u->user);
        if (u->password)
                explicit_bzero(u->password, strlen(u->password));
        free(u->password);
        *u = (RedisUrl) {};
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* A copy of S[0..N) with %XX decoded; NULL on a bad escape, a NUL byte, or no memory. */
static char *decode(const char *s, size_t n) {
        char *d = malloc(n + 1), *o = d;

        if (!d)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '%') {
                        *o++ = s[i];
                        continue;
                }
                int hi = i + 2 < n ? unhex(s[i + 1]) : -1;
                int lo = i + 2 < n ? unhex(s[i + 2]) : -1;
                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                        free(d);
                        return NULL;
                }
                *o++ = (char) (hi * 16 + lo);
                i += 2;
        }
        *o = 0;
        return d;
}

static int parse_number(const char *s, size_t n, unsigned long max, unsigned long *ret) {
        unsigned long v = 0;

        if (n == 0 || n > 10)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        if (v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* "[user:password@]" at S up to AT (exclusive), into U. */
static int parse_userinfo(const char *s, const char *at, RedisUrl *u) {
        const char *colon = memchr(s, ':', at - s);

        if (!colon) /* redis://password@host: the password alone, as redis-cli -u reads it */
                return (u->password = decode(s, at - s)) ? 0 : -EINVAL;
        if (colon > s && !(u->user = decode(s, colon - s)))
                return -EINVAL;
        if (!(u->password = decode(colon + 1, at - colon - 1)))
                return -EINVAL;
        return 0;
}

/* "host[:port]" or "[v6][:port]" at S, N bytes, into U. */
static int parse_hostport(const char *s, size_t n, RedisUrl *u) {
        const char *end = s + n, *host = s, *host_end, *port = NULL;
        unsigned long v = 6379;

        if (n > 0 && s[0] == '[') {
                host = s + 1;
                host_end = memchr(s, ']', n);
                if (!host_end)
                        return -EINVAL;
                if (host_end + 1 < end) {
                        if (host_end[1] != ':')
                                return -EINVAL;
                        port = host_end + 2;
                }
        } else {
                host_end = memchr(s, ':', n);
                if (host_end)
                        port = host_end + 1;
                else
                        host_end = end;
        }
        if (host_end == host)
                return -EINVAL;
        for (const char *p = host; p < host_end; p++)
                if (*p <= ' ' || *p == '/' || *p == '@' || *p == '%' || (s[0] != '[' && *p == ':'))
                        return -EINVAL;
        if (port && (parse_number(port, end - port, 65535, &v) < 0 || v == 0))
                return -EINVAL;
        u->host = strndup(host, host_end - host);
        if (!u->host)
                return -ENOMEM;
        u->port = (uint16_t) v;
        return 0;
}

static int parse_tcp(const char *s, RedisUrl *u) {
        const char *slash = strchr(s, '/'), *end = slash ?: s + strlen(s), *at = NULL;
        unsigned long db = 0;
        int r;

        for (const char *p = s; p < end; p++)
                if (*p == '@')
                        at = p; /* the last one: a password may hold an unescaped '@' */
        if (at) {
                r = parse_userinfo(s, at, u);
                if (r < 0)
                        return r;
                s = at + 1;
        }
        r = parse_hostport(s, end - s, u);
        if (r < 0)
                return r;
        if (slash && slash[1]) {
                r = parse_number(slash + 1, strlen(slash + 1), 1u << 20, &db);
                if (r < 0)
                        return r;
        }
        u->db = (unsigned) db;
        return 0;
}

int redis_url_parse(const char *s, RedisUrl *ret) {
        RedisUrl u = {};
        int r;

        if (!s)
                return -EINVAL;
        if (strneq(s, "unix:", 5)) {
                const char *path = s + 5;
                if (path[0] != '/' || strlen(path) >= 108) /* sun_path */
                        return -EINVAL;
                u.path = strdup(path);
                if (!u.path)
                        return -ENOMEM;
                *ret = u;
                return 0;
        }
        if (!strneq(s, "redis://", 8))
                return -EINVAL;
        r = parse_tcp(s + 8, &u);
        if (r < 0) {
                redis_url_done(&u);
                return r == -ENOMEM ? r : -EINVAL;
        }
        *ret = u;
        return 0;
}

const char *redis_url_where(const RedisUrl *u, char *buf, size_t size) {
        if (u->path)
                snprintf(buf, size, "%s", u->path);
        else if (strchr(u->host, ':'))
                snprintf(buf, size, "[%s]:%u", u->host, u->port);
        else
                snprintf(buf, size, "%s:%u", u->host, u->port);
        return buf;
}
