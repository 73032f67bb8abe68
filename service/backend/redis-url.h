/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/* Where the hub's Redis (or Valkey) is: --redis=URL.  Plain logic, no I/O.
 *   redis://[[user]:password@]host[:port][/db]   (port 6379 by default, db 0; host may be [v6])
 *   unix:/path                                   (a Unix socket, db 0, no AUTH)
 * User and password may hold %XX escapes (an '@' or ':' in a password). */
typedef struct RedisUrl {
        char *host;       /* NULL for a Unix socket */
        uint16_t port;
        char *path;       /* the Unix socket, or NULL */
        char *user;       /* NULL: AUTH with the password only (the default user) */
        char *password;   /* NULL: no AUTH */
        unsigned db;      /* SELECT db when not 0 */
} RedisUrl;

/* Parses S into *RET; -EINVAL when S is not such a URL (nothing is allocated then). */
int redis_url_parse(const char *s, RedisUrl *ret);
void redis_url_done(RedisUrl *u);
/* "host:port" or the socket's path, for messages (never the password); static buffer not kept. */
const char *redis_url_where(const RedisUrl *u, char *buf, size_t size);
