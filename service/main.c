/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "hub.h"
#include "log.h"
#include "macro.h"
#include "persist.h"
#include "redis-url.h"

enum {
        ARG_VERSION = 0x100,
        ARG_USER,
        ARG_SYSTEM,
        ARG_ADDRESS,
        ARG_DATA_DIR,
        ARG_FSYNC,
        ARG_CHECK_DATA,
        ARG_REPAIR,
        ARG_LISTEN,
        ARG_NO_LISTEN,
        ARG_REDIS,
        ARG_NODE_NAME,
        ARG_LIMIT_FIRST, /* one option per entry of LIMITS_TABLE follows */
};

enum {
#define X(field, option, def, text) LIMIT_##field,
        LIMITS_TABLE(X)
#undef X
        _LIMIT_MAX,
};

static const char *const limit_option[_LIMIT_MAX] = {
#define X(field, option, def, text) [LIMIT_##field] = option,
        LIMITS_TABLE(X)
#undef X
};

static const char *const limit_text[_LIMIT_MAX] = {
#define X(field, option, def, text) [LIMIT_##field] = text,
        LIMITS_TABLE(X)
#undef X
};

static void help(void) {
        printf("clusterhubd [OPTIONS...]\n\n"
               "The clusterhub D-Bus hub: events, requests, a redis-like store and locks for\n"
               "the processes of a cluster, served as %s on a D-Bus bus.\n\n"
               "  -h --help                        Show this help\n"
               "     --version                     Show the version\n"
               "     --user                        Serve on the user (session) bus (default)\n"
               "     --system                      Serve on the system bus\n"
               "     --address=ADDRESS             Serve on the bus at ADDRESS (unix:path=...)\n"
               "\nPrivate socket (the same objects without a bus daemon; README.md):\n"
               "     --listen=PATH                 Listen on PATH; by default the hub listens on\n"
               "                                   $XDG_RUNTIME_DIR/clusterhub/private (--user) or\n"
               "                                   /run/clusterhub/private (--system) when that bus\n"
               "                                   is the standard one, and not with --address=\n"
               "     --no-listen                   Do not listen on a private socket\n"
               "\nDurability (docs/persistence.md):\n"
               "     --data-dir=DIR                Keep the store in DIR (an append-only log);\n"
               "                                   without it the store lives in memory only\n"
               "     --fsync=MODE                  always|everysec|no: when the log is synced\n"
               "                                   to disk (default everysec)\n"
               "     --check-data=DIR              Check the log in DIR and exit\n"
               "     --repair                      With --check-data: cut the log at the first\n"
               "                                   bad record\n"
               "\nSeveral hosts through one Redis or Valkey (docs/redis.md):\n"
               "     --redis=URL                   Share events with the hubs of other hosts through\n"
               "                                   Redis at URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
               "                                   or unix:/PATH; without it the hub is on its own\n"
               "     --node-name=NAME              This hub's name among them (default: the host\n"
               "                                   name); remote origins read ID@NAME\n"
               "\nLimits (past one, a call fails with org.clusterhub.Error.LimitExceeded; sizes take\n"
               "K, M, G or T: --max-memory=8G):\n",
               HUB_BUS_NAME);
#define X(field, option, def, text) printf("     --%-26s %s (default %" PRIu64 ")\n", option "=N", text, (uint64_t) (def));
        LIMITS_TABLE(X)
#undef X
        printf("\nEnvironment: CLUSTERHUB_LOG_LEVEL=debug for debug logging.\n"
               "See README.md and docs/.\n");
}

/* "64M" -> 64 << 20: K, M, G and T (powers of 1024), optionally followed by "B" or "iB".
 * Returns the shift, or -EINVAL. */
static int size_suffix(const char *s) {
        static const char units[] = "KMGT";
        const char *u = *s ? strchr(units, *s) : NULL;

        if (!*s)
                return 0;
        if (!u)
                return -EINVAL;
        s++;
        if (!*s || streq(s, "B") || streq(s, "iB"))
                return 10 * (int) (u - units + 1);
        return -EINVAL;
}

/* Options of sizes (bytes, memory) take a suffix; 0 is refused where it would make the hub
 * refuse everything, allowed where the help text says what it means ("(0: ..."). */
static int parse_limit(const char *option, const char *text, const char *value, uint64_t *ret) {
        bool sized = strstr(option, "bytes") || strstr(option, "memory");
        char *end = NULL;
        unsigned long long v;
        int shift = 0;

        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno == 0 && end && end != value && value[0] != '-' && sized)
                shift = size_suffix(end);
        else if (end && *end)
                shift = -EINVAL;
        if (errno != 0 || !end || end == value || value[0] == '-' || shift < 0) {
                log_error("Invalid value for --%s: '%s' (a whole number is needed%s).", option, value,
                          sized ? ", optionally with K, M, G or T: 64M" : "");
                return -EINVAL;
        }
        if (shift > 0 && v > (UINT64_MAX >> shift)) {
                log_error("Invalid value for --%s: '%s' is too large.", option, value);
                return -ERANGE;
        }
        if (v == 0 && !strstr(text, "(0:")) {
                log_error("Invalid value for --%s: 0 (at least 1 is needed).", option);
                return -EINVAL;
        }
        *ret = (uint64_t) v << shift;
        return 0;
}

#define NODE_NAME_MAX 64

/* A node name ends every remote origin ("ID@NODE"): a host name's characters, no '@'. */
static bool node_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > NODE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      strchr("._-", s[i])))
                        return false;
        return true;
}

static char *arg_check_data = NULL;
static bool arg_repair = false;

static int parse_argv(Hub *h, int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "user", no_argument, NULL, ARG_USER },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "data-dir", required_argument, NULL, ARG_DATA_DIR },
                { "fsync", required_argument, NULL, ARG_FSYNC },
                { "check-data", required_argument, NULL, ARG_CHECK_DATA },
                { "repair", no_argument, NULL, ARG_REPAIR },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "no-listen", no_argument, NULL, ARG_NO_LISTEN },
                { "redis", required_argument, NULL, ARG_REDIS },
                { "node-name", required_argument, NULL, ARG_NODE_NAME },
#define X(field, option, def, text) { option, required_argument, NULL, ARG_LIMIT_FIRST + LIMIT_##field },
                LIMITS_TABLE(X)
#undef X
                {}
        };
        uint64_t *limit_fields[_LIMIT_MAX] = {
#define X(field, option, def, text) [LIMIT_##field] = &h->limits.field,
                LIMITS_TABLE(X)
#undef X
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("clusterhubd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_USER:
                        h->bus_kind = BUS_USER;
                        break;
                case ARG_SYSTEM:
                        h->bus_kind = BUS_SYSTEM;
                        break;
                case ARG_ADDRESS:
                        free(h->address);
                        h->address = strdup(optarg);
                        if (!h->address)
                                return log_error_errno(-ENOMEM, "Out of memory.");
                        h->bus_kind = BUS_ADDRESS;
                        break;
                case ARG_DATA_DIR:
                        if (!optarg || !optarg[0]) {
                                log_error("--data-dir= needs a directory.");
                                return -EINVAL;
                        }
                        free(h->data_dir);
                        h->data_dir = strdup(optarg);
                        if (!h->data_dir)
                                return log_error_errno(-ENOMEM, "Out of memory.");
                        break;
                case ARG_FSYNC: {
                        PersistFsync m = persist_fsync_from_string(optarg);

                        if (m < 0) {
                                log_error("Invalid value for --fsync: '%s' (always, everysec or no).", optarg);
                                return -EINVAL;
                        }
                        h->fsync_mode = m;
                        break;
                }
                case ARG_CHECK_DATA:
                        free(arg_check_data);
                        arg_check_data = strdup(optarg);
                        if (!arg_check_data)
                                return log_error_errno(-ENOMEM, "Out of memory.");
                        break;
                case ARG_REPAIR:
                        arg_repair = true;
                        break;
                case ARG_LISTEN:
                        if (!optarg || optarg[0] != '/') {
                                log_error("--listen= needs an absolute path, not '%s'.", strempty(optarg));
                                return -EINVAL;
                        }
                        free(h->listen_path);
                        h->listen_path = strdup(optarg);
                        if (!h->listen_path)
                                return log_error_errno(-ENOMEM, "Out of memory.");
                        h->listen_mode = LISTEN_PATH;
                        break;
                case ARG_NO_LISTEN:
                        h->listen_mode = LISTEN_NO;
                        break;
                case ARG_REDIS: {
                        RedisUrl url = {};

                        if (redis_url_parse(optarg, &url) < 0) {
                                log_error("Invalid value for --redis: not redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
                                          "or unix:/PATH.");
                                return -EINVAL;
                        }
                        redis_url_done(&url);
                        free(h->redis_url);
                        h->redis_url = strdup(optarg);
                        if (!h->redis_url)
                                return log_error_errno(-ENOMEM, "Out of memory.");
                        /* the password stays out of /proc/PID/cmdline */
                        explicit_bzero(optarg, strlen(optarg));
                        break;
                }
                case ARG_NODE_NAME:
                        if (!node_name_is_valid(optarg)) {
                                log_error("Invalid value for --node-name: '%s' (1 to %d characters of [A-Za-z0-9._-]).",
                                          optarg, NODE_NAME_MAX);
                                return -EINVAL;
                        }
                        free(h->node_name);
                        h->node_name = strdup(optarg);
                        if (!h->node_name)
                                return log_error_errno(-ENOMEM, "Out of memory.");
                        break;
                case '?':
                        return -EINVAL;
                default: {
                        int i = c - ARG_LIMIT_FIRST;
                        if (i < 0 || i >= _LIMIT_MAX)
                                return -EINVAL;
                        if (parse_limit(limit_option[i], limit_text[i], optarg, limit_fields[i]) < 0)
                                return -EINVAL;
                }
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'; see --help.", argv[optind]);
                return -EINVAL;
        }
        if (arg_repair && !arg_check_data) {
                log_error("--repair goes with --check-data=DIR.");
                return -EINVAL;
        }
        if (h->redis_url && h->data_dir) {
                log_error("--data-dir= and --redis= exclude each other: with --redis the store lives in Redis, "
                          "whose own persistence (RDB, AOF) keeps it.");
                return -EINVAL;
        }
        if (h->node_name && !h->redis_url) {
                log_error("--node-name= goes with --redis=URL.");
                return -EINVAL;
        }
        if (h->redis_url && !h->node_name) {
                char host[256] = {};

                if (gethostname(host, sizeof(host) - 1) < 0 || !node_name_is_valid(host)) {
                        log_error("The host name '%s' is not a node name (1 to %d characters of [A-Za-z0-9._-]): "
                                  "give one with --node-name=.", host, NODE_NAME_MAX);
                        return -EINVAL;
                }
                h->node_name = strdup(host);
                if (!h->node_name)
                        return log_error_errno(-ENOMEM, "Out of memory.");
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(hub_freep) Hub *h = NULL;
        int r;

        log_setup();
        r = hub_new(&h);
        if (r < 0) {
                log_error_errno(r, "Out of memory.");
                return EXIT_FAILURE;
        }
        r = parse_argv(h, argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : EXIT_SUCCESS;
        if (arg_check_data) {
                r = persist_check(arg_check_data, arg_repair);
                free(arg_check_data);
                return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }
        r = hub_connect(h);
        if (r < 0)
                return EXIT_FAILURE;
        r = hub_run(h);
        return r != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
