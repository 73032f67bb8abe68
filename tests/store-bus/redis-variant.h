/* SPDX-License-Identifier: MIT */
#pragma once
/* The Redis variant of a store-bus test program (STORE_REDIS=1 in its environment, set by its
 * meson test in the 'redis' suite): a redis-server of the program's own on a Unix socket in a
 * temp dir, and every hub the harness starts gets --redis=unix:SOCKET (TH_HUB_ARGS), so the
 * program's Store1 calls are executed by Redis (docs/redis.md "Store").  Without redis-server
 * the program's tests are skipped with the reason. */
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

typedef struct RedisVariant {
        ThProc proc;
        char *dir, *sock;
} RedisVariant;

static inline bool redis_variant_wanted(void) {
        return g_strcmp0(g_getenv("STORE_REDIS"), "1") == 0;
}

/* Starts redis-server and sets TH_HUB_ARGS: true, or false with *SKIP (owned) saying why not. */
static inline bool redis_variant_start(RedisVariant *rv, char **skip) {
        g_autofree char *bin = g_find_program_in_path("redis-server"), *args = NULL;

        rv->proc = (ThProc) TH_PROC_NULL;
        if (!bin) {
                *skip = g_strdup("redis-server is not installed (Debian package redis-server)");
                return false;
        }
        rv->dir = g_dir_make_tmp("store-redis-XXXXXX", NULL);
        g_assert_nonnull(rv->dir);
        rv->sock = g_build_filename(rv->dir, "s", NULL);
        const char *argv[] = { bin, "--port", "0", "--unixsocket", rv->sock, "--save", "", "--appendonly", "no",
                               "--dir", rv->dir, "--loglevel", "warning", NULL };
        g_assert_cmpint(th_spawn(&rv->proc, argv, NULL, -1, -1), >, 0);
        for (int i = 0;; i++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                g_strlcpy(sa.sun_path, rv->sock, sizeof(sa.sun_path));
                bool up = connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
                close(fd);
                if (up)
                        break;
                g_assert_false(th_proc_exited(&rv->proc));
                g_assert_cmpint(i, <, 3000); /* 30 s */
                g_usleep(10 * 1000);
        }
        args = g_strdup_printf("--redis=unix:%s --node-name=storetest", rv->sock);
        g_setenv("TH_HUB_ARGS", args, TRUE);
        return true;
}

static inline void redis_variant_stop(RedisVariant *rv) {
        if (rv->proc.pid > 0)
                (void) th_proc_stop(&rv->proc, SIGKILL, 5000);
        th_proc_clear(&rv->proc);
        if (rv->sock)
                (void) g_unlink(rv->sock);
        if (rv->dir)
                (void) g_rmdir(rv->dir);
        g_free(rv->sock);
        g_free(rv->dir);
}

static inline void redis_variant_skip(gconstpointer reason) {
        g_test_skip(reason);
}
