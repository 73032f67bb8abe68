/* SPDX-License-Identifier: MIT */
/*
 * The differential test: one script of Redis commands (commands.txt) runs against a private
 * redis-server (RESP over a unix socket, spoken here) and against the hub over D-Bus, and the
 * two replies are compared command by command.  Where the two legitimately differ, the table
 * `mappings[]` below says why (and docs/store.md "Differences from Redis" says the same); any
 * other difference fails the test.
 *
 * Replies of both sides are turned into one small tree (Reply) and rendered to text:
 *   nil              Redis nil bulk or nil array
 *   42               Redis integer; D-Bus b (1/0), y n q i u x t outside a variant
 *   "text"           Redis bulk string; D-Bus s o g, also inside a variant
 *   OK / string      Redis status; a hub method without out-arguments renders OK
 *   !message         Redis error (its text); hub error (its D-Bus error name)
 *   [a, b]           Redis array; D-Bus array (av, as) or several out-arguments
 *   {"f": v}         Redis HGETALL (pairs) and the hub's a{sv} replies, in the order received
 *                    (small hashes keep insertion order on both sides, so HGETALL, HKEYS and
 *                    HVALS are compared in order)
 *   (x)42 (d)1.5     a typed (non-string) value inside a hub variant
 * The translation of a command to its Store1 call also adapts the reply's shape where the
 * API differs by design (see docs/store.md); that is listed in the same doc section.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>

#include "clusterhub/clusterhub.h"
#include "harness.h"

/* Redis database N is the hub's namespace "diff" (N = 0) or "diffN": SELECT and MOVE. */
#define NS_BASE "diff"
static char ns_path[128] = CH_NAMESPACE_PATH_PREFIX NS_BASE;

static char *db_namespace(const char *db) {
        int64_t n = g_ascii_strtoll(db, NULL, 10);
        return n == 0 ? g_strdup(NS_BASE) : g_strdup_printf(NS_BASE "%" G_GINT64_FORMAT, n);
}

static void select_db(const char *db) {
        g_autofree char *name = db_namespace(db);
        g_snprintf(ns_path, sizeof(ns_path), "%s%s", CH_NAMESPACE_PATH_PREFIX, name);
}
#define IFACE "org.clusterhub.Store1"

/* ---- reply trees ------------------------------------------------------------------------ */

typedef enum { R_NIL, R_INT, R_STR, R_STATUS, R_ERR, R_ARR, R_DICT, R_TYPED } RKind;

typedef struct Reply {
        RKind kind;
        char *s;          /* STR (len bytes), STATUS, ERR, TYPED text */
        size_t len;
        int64_t i;        /* INT */
        char tag[8];      /* TYPED: the D-Bus signature */
        double d;         /* TYPED 'd' */
        GPtrArray *a;     /* ARR: items; DICT: key, value, key, value... */
} Reply;

static void reply_free(Reply *r) {
        if (!r)
                return;
        g_free(r->s);
        if (r->a)
                g_ptr_array_unref(r->a);
        g_free(r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Reply, reply_free)

static Reply *reply_new(RKind kind) {
        Reply *r = g_new0(Reply, 1);
        r->kind = kind;
        if (kind == R_ARR || kind == R_DICT)
                r->a = g_ptr_array_new_with_free_func((GDestroyNotify) reply_free);
        return r;
}

static Reply *reply_str(const char *s, size_t len) {
        Reply *r = reply_new(R_STR);
        r->s = g_malloc(len + 1);
        memcpy(r->s, s, len);
        r->s[len] = 0;
        r->len = len;
        return r;
}

static Reply *reply_text(RKind kind, const char *s) {
        Reply *r = reply_new(kind);
        r->s = g_strdup(s);
        r->len = strlen(s);
        return r;
}

static Reply *reply_int(int64_t i) {
        Reply *r = reply_new(R_INT);
        r->i = i;
        return r;
}

static void render(GString *out, const Reply *r);

static char *render_str(const Reply *r) {
        GString *s = g_string_new(NULL);
        render(s, r);
        return g_string_free(s, FALSE);
}

static void render_bytes(GString *out, const char *s, size_t len) {
        g_string_append_c(out, '"');
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"' || c == '\\')
                        g_string_append_printf(out, "\\%c", c);
                else if (c < 0x20 || c >= 0x7f)
                        g_string_append_printf(out, "\\%03o", c);
                else
                        g_string_append_c(out, (char) c);
        }
        g_string_append_c(out, '"');
}

static void render(GString *out, const Reply *r) {
        switch (r->kind) {
        case R_NIL:
                g_string_append(out, "nil");
                break;
        case R_INT:
                g_string_append_printf(out, "%" G_GINT64_FORMAT, r->i);
                break;
        case R_STR:
                render_bytes(out, r->s, r->len);
                break;
        case R_STATUS:
                g_string_append(out, r->s);
                break;
        case R_ERR:
                g_string_append_printf(out, "!%s", r->s);
                break;
        case R_TYPED:
                g_string_append_printf(out, "(%s)%s", r->tag, r->s);
                break;
        case R_ARR:
                g_string_append_c(out, '[');
                for (guint i = 0; i < r->a->len; i++) {
                        if (i)
                                g_string_append(out, ", ");
                        render(out, r->a->pdata[i]);
                }
                g_string_append_c(out, ']');
                break;
        case R_DICT:
                g_string_append_c(out, '{');
                for (guint i = 0; i + 1 < r->a->len; i += 2) {
                        if (i)
                                g_string_append(out, ", ");
                        render(out, r->a->pdata[i]);
                        g_string_append(out, ": ");
                        render(out, r->a->pdata[i + 1]);
                }
                g_string_append_c(out, '}');
                break;
        }
}

static int cmp_rendered(gconstpointer a, gconstpointer b) {
        g_autofree char *x = render_str(*(Reply **) a), *y = render_str(*(Reply **) b);
        return strcmp(x, y);
}

static void sort_array(Reply *r) {
        if (r->kind == R_ARR)
                g_ptr_array_sort(r->a, cmp_rendered);
}

/* Redis HGETALL's flat [f, v, f, v] becomes a DICT, in the same order. */
static Reply *pairs_to_dict(Reply *r) {
        if (r->kind != R_ARR)
                return r;
        Reply *d = reply_new(R_DICT);
        for (guint i = 0; i < r->a->len; i++)
                g_ptr_array_add(d->a, g_steal_pointer(&r->a->pdata[i]));
        g_ptr_array_set_free_func(r->a, NULL);
        reply_free(r);
        return d;
}

/* ---- the script ------------------------------------------------------------------------- */

/* Split a line into words; "..." quotes a word (\" and \\ inside), so "" is an empty word. */
static char **split_words(const char *line) {
        GPtrArray *w = g_ptr_array_new();
        const char *p = line;
        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                GString *word = g_string_new(NULL);
                if (*p == '"') {
                        p++;
                        while (*p && *p != '"') {
                                if (*p == '\\' && p[1])
                                        p++;
                                g_string_append_c(word, *p++);
                        }
                        if (*p == '"')
                                p++;
                } else
                        while (*p && *p != ' ' && *p != '\t')
                                g_string_append_c(word, *p++);
                g_ptr_array_add(w, g_string_free(word, FALSE));
        }
        g_ptr_array_add(w, NULL);
        return (char **) g_ptr_array_free(w, FALSE);
}

/* ---- Redis: our own RESP client over the unix socket ---------------------------------------- */

typedef struct Redis {
        ThProc proc;
        char *dir;
        char *sock;
        int fd;
        FILE *in;
} Redis;

static bool redis_start(Redis *rd, char **skip_reason) {
        g_autofree char *bin = g_find_program_in_path("redis-server");
        if (!bin) {
                *skip_reason = g_strdup("redis-server is not installed (Debian package redis-server)");
                return false;
        }
        rd->dir = g_dir_make_tmp("store-diff-XXXXXX", NULL);
        g_assert_nonnull(rd->dir);
        rd->sock = g_build_filename(rd->dir, "s", NULL);
        const char *argv[] = { bin, "--port", "0", "--unixsocket", rd->sock, "--save", "", "--appendonly", "no",
                               "--dir", rd->dir, "--loglevel", "warning", NULL };
        g_assert_cmpint(th_spawn(&rd->proc, argv, NULL, -1, -1), >, 0);
        g_test_message("redis-server pid %d on %s", (int) rd->proc.pid, rd->sock);

        rd->fd = -1;
        for (int i = 0; i < 500 && rd->fd < 0; i++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                g_assert_cmpint(fd, >=, 0);
                g_strlcpy(sa.sun_path, rd->sock, sizeof(sa.sun_path));
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        rd->fd = fd;
                else {
                        close(fd);
                        g_assert_false(th_proc_exited(&rd->proc));
                        g_usleep(10000);
                }
        }
        g_assert_cmpint(rd->fd, >=, 0);
        rd->in = fdopen(dup(rd->fd), "r");
        g_assert_nonnull(rd->in);
        return true;
}

static void redis_stop(Redis *rd) {
        if (rd->in)
                fclose(rd->in);
        if (rd->fd >= 0)
                close(rd->fd);
        if (rd->proc.pid > 0)
                th_proc_stop(&rd->proc, SIGKILL, 5000);    /* by PID */
        th_proc_clear(&rd->proc);
        if (rd->dir) {
                g_autofree char *rdb = g_build_filename(rd->dir, "dump.rdb", NULL);
                unlink(rdb);
                unlink(rd->sock);
                rmdir(rd->dir);
        }
        g_free(rd->sock);
        g_free(rd->dir);
}

static void write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                g_assert_cmpint(k, >, 0);
                p += k;
                n -= (size_t) k;
        }
}

static Reply *resp_read(FILE *in) {
        char line[512];
        g_assert_nonnull(fgets(line, sizeof(line), in));
        size_t n = strlen(line);
        g_assert_true(n >= 3 && line[n - 2] == '\r' && line[n - 1] == '\n');
        line[n - 2] = 0;
        switch (line[0]) {
        case '+':
                return reply_text(R_STATUS, line + 1);
        case '-':
                return reply_text(R_ERR, line + 1);
        case ':':
                return reply_int(g_ascii_strtoll(line + 1, NULL, 10));
        case '$': {
                long len = strtol(line + 1, NULL, 10);
                if (len < 0)
                        return reply_new(R_NIL);
                char *buf = g_malloc((size_t) len + 2);
                g_assert_cmpuint(fread(buf, 1, (size_t) len + 2, in), ==, (size_t) len + 2);
                Reply *r = reply_str(buf, (size_t) len);
                g_free(buf);
                return r;
        }
        case '*': {
                long count = strtol(line + 1, NULL, 10);
                if (count < 0)
                        return reply_new(R_NIL);
                Reply *r = reply_new(R_ARR);
                for (long i = 0; i < count; i++)
                        g_ptr_array_add(r->a, resp_read(in));
                return r;
        }
        }
        g_error("unexpected RESP line '%s'", line);
}

static Reply *redis_cmd(Redis *rd, char *const *argv) {
        GString *s = g_string_new(NULL);
        guint n = g_strv_length((char **) argv);
        g_string_append_printf(s, "*%u\r\n", n);
        for (guint i = 0; i < n; i++) {
                g_string_append_printf(s, "$%zu\r\n", strlen(argv[i]));
                g_string_append(s, argv[i]);
                g_string_append(s, "\r\n");
        }
        write_all(rd->fd, s->str, s->len);
        g_string_free(s, TRUE);
        return resp_read(rd->in);
}

static Reply *redis_cmdv(Redis *rd, ...) {
        GPtrArray *a = g_ptr_array_new();
        va_list ap;
        va_start(ap, rd);
        for (char *s; (s = va_arg(ap, char *));)
                g_ptr_array_add(a, s);
        va_end(ap);
        g_ptr_array_add(a, NULL);
        Reply *r = redis_cmd(rd, (char *const *) a->pdata);
        g_ptr_array_free(a, TRUE);
        return r;
}

/* ---- the hub: Redis command -> Store1 call ------------------------------------------------ */

static Reply *bus_read_item(sd_bus_message *m, bool in_variant) {
        char type;
        const char *contents;
        int r = sd_bus_message_peek_type(m, &type, &contents);
        g_assert_cmpint(r, >, 0);
        switch (type) {
        case 's': case 'o': case 'g': {
                const char *s;
                g_assert_cmpint(sd_bus_message_read_basic(m, type, &s), >, 0);
                return reply_str(s, strlen(s));
        }
        case 'b': case 'y': case 'n': case 'q': case 'i': case 'u': case 'x': case 't': {
                union { int b; uint8_t y; int16_t n; uint16_t q; int32_t i; uint32_t u; int64_t x; uint64_t t; } v;
                int64_t i;
                g_assert_cmpint(sd_bus_message_read_basic(m, type, &v), >, 0);
                switch (type) {
                case 'b': i = v.b; break;
                case 'y': i = v.y; break;
                case 'n': i = v.n; break;
                case 'q': i = v.q; break;
                case 'i': i = v.i; break;
                case 'u': i = v.u; break;
                case 'x': i = v.x; break;
                default: i = (int64_t) v.t; break;
                }
                if (!in_variant)
                        return reply_int(i);
                Reply *t = reply_new(R_TYPED);
                t->tag[0] = type;
                t->s = type == 'b' ? g_strdup(i ? "true" : "false") : g_strdup_printf("%" G_GINT64_FORMAT, i);
                return t;
        }
        case 'd': {
                double d;
                g_assert_cmpint(sd_bus_message_read_basic(m, 'd', &d), >, 0);
                Reply *t = reply_new(R_TYPED);
                t->tag[0] = 'd';
                t->d = d;
                t->s = g_strdup_printf("%.17g", d);
                return t;
        }
        case 'v': {
                g_assert_cmpint(sd_bus_message_enter_container(m, 'v', contents), >, 0);
                Reply *inner = bus_read_item(m, true);
                g_assert_cmpint(sd_bus_message_exit_container(m), >, 0);
                return inner;
        }
        case 'a': {
                bool dict = contents[0] == '{';
                Reply *a = reply_new(dict ? R_DICT : R_ARR);
                g_assert_cmpint(sd_bus_message_enter_container(m, 'a', contents), >, 0);
                if (dict) {
                        g_autofree char *entry = g_strndup(contents + 1, strlen(contents) - 2);
                        while (sd_bus_message_enter_container(m, 'e', entry) > 0) {
                                g_ptr_array_add(a->a, bus_read_item(m, in_variant));
                                g_ptr_array_add(a->a, bus_read_item(m, in_variant));
                                g_assert_cmpint(sd_bus_message_exit_container(m), >, 0);
                        }
                } else
                        while (sd_bus_message_at_end(m, false) == 0)
                                g_ptr_array_add(a->a, bus_read_item(m, in_variant));
                g_assert_cmpint(sd_bus_message_exit_container(m), >, 0);
                return a;
        }
        case 'r': {
                Reply *a = reply_new(R_ARR);
                g_assert_cmpint(sd_bus_message_enter_container(m, 'r', contents), >, 0);
                while (sd_bus_message_at_end(m, false) == 0)
                        g_ptr_array_add(a->a, bus_read_item(m, in_variant));
                g_assert_cmpint(sd_bus_message_exit_container(m), >, 0);
                return a;
        }
        }
        g_error("unexpected D-Bus type '%c'", type);
}

static Reply *bus_reply(sd_bus_message *reply) {
        GPtrArray *items = g_ptr_array_new();
        while (sd_bus_message_at_end(reply, true) == 0)
                g_ptr_array_add(items, bus_read_item(reply, false));
        Reply *r;
        if (items->len == 0)
                r = reply_text(R_STATUS, "OK");
        else if (items->len == 1)
                r = items->pdata[0];
        else {
                r = reply_new(R_ARR);
                for (guint i = 0; i < items->len; i++)
                        g_ptr_array_add(r->a, items->pdata[i]);
        }
        g_ptr_array_free(items, TRUE);
        return r;
}

typedef struct Call {
        sd_bus_message *m;
        char **argv;
        guint argc;
} Call;

static void add_str_variant(sd_bus_message *m, const char *s) {
        g_assert_cmpint(sd_bus_message_append(m, "v", "s", s), >=, 0);
}

static void add_strv(sd_bus_message *m, char **v, guint n) {
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "s"), >=, 0);
        for (guint i = 0; i < n; i++)
                g_assert_cmpint(sd_bus_message_append_basic(m, 's', v[i]), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
}

static void add_variantv(sd_bus_message *m, char **v, guint n) {
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "v"), >=, 0);
        for (guint i = 0; i < n; i++)
                add_str_variant(m, v[i]);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
}

static void add_pairs(sd_bus_message *m, char **v, guint n) {
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "{sv}"), >=, 0);
        for (guint i = 0; i + 1 < n; i += 2)
                g_assert_cmpint(sd_bus_message_append(m, "{sv}", v[i], "s", v[i + 1]), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
}

static int64_t num(const char *s) {
        return g_ascii_strtoll(s, NULL, 10);
}

static const char *lower(const char *s) {
        return g_ascii_strcasecmp(s, "left") == 0 ? "left" : g_ascii_strcasecmp(s, "right") == 0 ? "right" :
               g_ascii_strcasecmp(s, "before") == 0 ? "before" : g_ascii_strcasecmp(s, "after") == 0 ? "after" : s;
}

static sd_bus_message *new_call(sd_bus *bus, const char *method) {
        sd_bus_message *m = NULL;
        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, CH_BUS_NAME, ns_path, IFACE, method), >=, 0);
        return m;
}

/* Reply shapes the translation adapts (documented in docs/store.md, "Differences from Redis"). */
typedef enum {
        SHAPE_NONE,
        SHAPE_SORT,         /* unordered collections: sort both sides */
        SHAPE_ONE,          /* LPOP/RPOP/SPOP/SRANDMEMBER without count: av/as of 0 or 1 -> nil or the item */
        SHAPE_POSITIONAL,   /* MGET/HMGET: a{sv} of the present ones -> array by position with nil */
        SHAPE_STATUS,       /* TYPE: the hub's s is Redis's status reply */
        SHAPE_PAIRS,        /* HGETALL: Redis's flat pairs -> dict */
        SHAPE_OLD,          /* SET ... GET, GETSET: SetGet's (had_old, old) -> nil or the old value */
} Shape;

/* Build the Store1 call for one Redis command; NULL when the command is unknown. */
static sd_bus_message *translate(sd_bus *bus, char **w, guint n, Shape *shape, const char **names_from) {
        const char *c = w[0];
        sd_bus_message *m = NULL;
        *shape = SHAPE_NONE;
        *names_from = NULL;
#define IS(x) (g_ascii_strcasecmp(c, x) == 0)
        if (IS("SET") || IS("SETNX") || IS("SETEX") || IS("PSETEX") || IS("GETSET")) {
                const char *key = w[1], *val = IS("SET") || IS("SETNX") || IS("GETSET") ? w[2] : w[3];
                bool get = IS("GETSET");
                for (guint i = 3; IS("SET") && i < n; i++)
                        if (g_ascii_strcasecmp(w[i], "GET") == 0)
                                get = true;
                m = new_call(bus, get ? "SetGet" : "Set");
                if (get)
                        *shape = SHAPE_OLD;
                g_assert_cmpint(sd_bus_message_append(m, "s", key), >=, 0);
                add_str_variant(m, val);
                g_assert_cmpint(sd_bus_message_open_container(m, 'a', "{sv}"), >=, 0);
                if (IS("SETNX"))
                        g_assert_cmpint(sd_bus_message_append(m, "{sv}", "nx", "b", 1), >=, 0);
                if (IS("SETEX"))
                        g_assert_cmpint(sd_bus_message_append(m, "{sv}", "ttl_ms", "t", (uint64_t) num(w[2]) * 1000), >=, 0);
                if (IS("PSETEX"))
                        g_assert_cmpint(sd_bus_message_append(m, "{sv}", "ttl_ms", "t", (uint64_t) num(w[2])), >=, 0);
                for (guint i = 3; IS("SET") && i < n; i++) {
                        if (g_ascii_strcasecmp(w[i], "PX") == 0 && i + 1 < n)
                                g_assert_cmpint(sd_bus_message_append(m, "{sv}", "ttl_ms", "t", (uint64_t) num(w[++i])), >=, 0);
                        else if (g_ascii_strcasecmp(w[i], "EX") == 0 && i + 1 < n)
                                g_assert_cmpint(sd_bus_message_append(m, "{sv}", "ttl_ms", "t", (uint64_t) num(w[++i]) * 1000), >=, 0);
                        else if (g_ascii_strcasecmp(w[i], "NX") == 0)
                                g_assert_cmpint(sd_bus_message_append(m, "{sv}", "nx", "b", 1), >=, 0);
                        else if (g_ascii_strcasecmp(w[i], "XX") == 0)
                                g_assert_cmpint(sd_bus_message_append(m, "{sv}", "xx", "b", 1), >=, 0);
                        else if (g_ascii_strcasecmp(w[i], "KEEPTTL") == 0)
                                g_assert_cmpint(sd_bus_message_append(m, "{sv}", "keep_ttl", "b", 1), >=, 0);
                        else if (g_ascii_strcasecmp(w[i], "GET") == 0)
                                ;   /* the method */
                        else
                                g_error("SET option %s is not translated", w[i]);
                }
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        } else if (IS("GET") || IS("GETDEL") || IS("TYPE") || IS("PERSIST") || IS("PTTL") || IS("STRLEN") ||
                   IS("HGETALL") || IS("HLEN") || IS("HKEYS") || IS("HVALS") || IS("LLEN") || IS("SMEMBERS") || IS("SCARD")) {
                static const char *const map[][2] = {
                        { "GET", "Get" }, { "GETDEL", "GetDel" }, { "TYPE", "Type" }, { "PERSIST", "Persist" },
                        { "PTTL", "TTL" }, { "STRLEN", "StrLen" }, { "HGETALL", "HGetAll" }, { "HLEN", "HLen" },
                        { "HKEYS", "HKeys" }, { "HVALS", "HVals" }, { "LLEN", "LLen" }, { "SMEMBERS", "SMembers" },
                        { "SCARD", "SCard" },
                };
                for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
                        if (IS(map[i][0]))
                                m = new_call(bus, map[i][1]);
                g_assert_cmpint(sd_bus_message_append(m, "s", w[1]), >=, 0);
                if (IS("TYPE"))
                        *shape = SHAPE_STATUS;
                if (IS("SMEMBERS"))
                        *shape = SHAPE_SORT;   /* small hashes keep insertion order: HKEYS, HVALS in order */
                if (IS("HGETALL"))
                        *shape = SHAPE_PAIRS;
        } else if (IS("DEL") || IS("EXISTS") || IS("MGET")) {
                m = new_call(bus, IS("DEL") ? "Del" : IS("EXISTS") ? "Exists" : "MGet");
                add_strv(m, w + 1, n - 1);
                if (IS("MGET")) {
                        *shape = SHAPE_POSITIONAL;
                        *names_from = "1";
                }
        } else if (IS("MSET") || IS("MSETNX")) {
                m = new_call(bus, IS("MSET") ? "MSet" : "MSetNX");
                add_pairs(m, w + 1, n - 1);
        } else if (IS("INCR") || IS("DECR") || IS("INCRBY") || IS("DECRBY")) {
                int64_t by = IS("INCR") ? 1 : IS("DECR") ? -1 : IS("INCRBY") ? num(w[2]) : -num(w[2]);
                m = new_call(bus, "Incr");
                g_assert_cmpint(sd_bus_message_append(m, "sx", w[1], by), >=, 0);
        } else if (IS("INCRBYFLOAT")) {
                m = new_call(bus, "IncrFloat");
                g_assert_cmpint(sd_bus_message_append(m, "sd", w[1], g_ascii_strtod(w[2], NULL)), >=, 0);
        } else if (IS("APPEND")) {
                m = new_call(bus, "Append");
                g_assert_cmpint(sd_bus_message_append(m, "ss", w[1], w[2]), >=, 0);
        } else if (IS("GETRANGE")) {
                m = new_call(bus, "GetRange");
                g_assert_cmpint(sd_bus_message_append(m, "sxx", w[1], num(w[2]), num(w[3])), >=, 0);
        } else if (IS("SETRANGE")) {
                m = new_call(bus, "SetRange");
                g_assert_cmpint(sd_bus_message_append(m, "sus", w[1], (uint32_t) num(w[2]), w[3]), >=, 0);
        } else if (IS("KEYS")) {
                m = new_call(bus, "Keys");
                g_assert_cmpint(sd_bus_message_append(m, "s", w[1]), >=, 0);
                *shape = SHAPE_SORT;
        } else if (IS("RENAME") || IS("RENAMENX")) {
                m = new_call(bus, IS("RENAME") ? "Rename" : "RenameNX");
                g_assert_cmpint(sd_bus_message_append(m, "ss", w[1], w[2]), >=, 0);
        } else if (IS("MOVE")) {
                g_autofree char *target = db_namespace(w[2]);
                m = new_call(bus, "Move");
                g_assert_cmpint(sd_bus_message_append(m, "ss", w[1], target), >=, 0);
        } else if (IS("PEXPIRE") || IS("EXPIRE")) {
                m = new_call(bus, "Expire");
                g_assert_cmpint(sd_bus_message_append(m, "st", w[1], (uint64_t) num(w[2]) * (IS("EXPIRE") ? 1000 : 1)), >=, 0);
        } else if (IS("FLUSHDB")) {
                m = new_call(bus, "Flush");
        } else if (IS("DBSIZE")) {
                m = new_call(bus, "DBSize");
        } else if (IS("RANDOMKEY")) {
                m = new_call(bus, "RandomKey");
        } else if (IS("HSET")) {
                m = new_call(bus, "HSet");
                g_assert_cmpint(sd_bus_message_append(m, "s", w[1]), >=, 0);
                add_pairs(m, w + 2, n - 2);
        } else if (IS("HSETNX")) {
                m = new_call(bus, "HSetNX");
                g_assert_cmpint(sd_bus_message_append(m, "ss", w[1], w[2]), >=, 0);
                add_str_variant(m, w[3]);
        } else if (IS("HGET") || IS("HEXISTS")) {
                m = new_call(bus, IS("HGET") ? "HGet" : "HExists");
                g_assert_cmpint(sd_bus_message_append(m, "ss", w[1], w[2]), >=, 0);
        } else if (IS("HMGET") || IS("HDEL")) {
                m = new_call(bus, IS("HMGET") ? "HMGet" : "HDel");
                g_assert_cmpint(sd_bus_message_append(m, "s", w[1]), >=, 0);
                add_strv(m, w + 2, n - 2);
                if (IS("HMGET")) {
                        *shape = SHAPE_POSITIONAL;
                        *names_from = "2";
                }
        } else if (IS("HINCRBY")) {
                m = new_call(bus, "HIncr");
                g_assert_cmpint(sd_bus_message_append(m, "ssx", w[1], w[2], num(w[3])), >=, 0);
        } else if (IS("HINCRBYFLOAT")) {
                m = new_call(bus, "HIncrFloat");
                g_assert_cmpint(sd_bus_message_append(m, "ssd", w[1], w[2], g_ascii_strtod(w[3], NULL)), >=, 0);
        } else if (IS("LPUSH") || IS("RPUSH") || IS("LPUSHX") || IS("RPUSHX")) {
                m = new_call(bus, IS("LPUSH") ? "LPush" : IS("RPUSH") ? "RPush" : IS("LPUSHX") ? "LPushX" : "RPushX");
                g_assert_cmpint(sd_bus_message_append(m, "s", w[1]), >=, 0);
                add_variantv(m, w + 2, n - 2);
        } else if (IS("LPOP") || IS("RPOP") || IS("SPOP") || IS("SRANDMEMBER")) {
                m = new_call(bus, IS("LPOP") ? "LPop" : IS("RPOP") ? "RPop" : IS("SPOP") ? "SPop" : "SRandMember");
                g_assert_cmpint(sd_bus_message_append(m, "su", w[1], (uint32_t) (n > 2 ? num(w[2]) : 1)), >=, 0);
                if (n <= 2)
                        *shape = SHAPE_ONE;
                else if (IS("SPOP") || IS("SRANDMEMBER"))
                        *shape = SHAPE_SORT;
        } else if (IS("BLPOP") || IS("BRPOP")) {
                m = new_call(bus, IS("BLPOP") ? "BLPop" : "BRPop");
                add_strv(m, w + 1, n - 2);
                g_assert_cmpint(sd_bus_message_append(m, "u", (uint32_t) (g_ascii_strtod(w[n - 1], NULL) * 1000)), >=, 0);
        } else if (IS("LRANGE") || IS("LTRIM")) {
                m = new_call(bus, IS("LRANGE") ? "LRange" : "LTrim");
                g_assert_cmpint(sd_bus_message_append(m, "sxx", w[1], num(w[2]), num(w[3])), >=, 0);
        } else if (IS("LINDEX")) {
                m = new_call(bus, "LIndex");
                g_assert_cmpint(sd_bus_message_append(m, "sx", w[1], num(w[2])), >=, 0);
        } else if (IS("LSET") || IS("LREM")) {
                m = new_call(bus, IS("LSET") ? "LSet" : "LRem");
                g_assert_cmpint(sd_bus_message_append(m, "sx", w[1], num(w[2])), >=, 0);
                add_str_variant(m, w[3]);
        } else if (IS("LINSERT")) {
                m = new_call(bus, "LInsert");
                g_assert_cmpint(sd_bus_message_append(m, "ss", w[1], lower(w[2])), >=, 0);
                add_str_variant(m, w[3]);
                add_str_variant(m, w[4]);
        } else if (IS("LMOVE")) {
                m = new_call(bus, "LMove");
                g_assert_cmpint(sd_bus_message_append(m, "ssss", w[1], w[2], lower(w[3]), lower(w[4])), >=, 0);
        } else if (IS("SADD") || IS("SREM")) {
                m = new_call(bus, IS("SADD") ? "SAdd" : "SRem");
                g_assert_cmpint(sd_bus_message_append(m, "s", w[1]), >=, 0);
                add_strv(m, w + 2, n - 2);
        } else if (IS("SISMEMBER")) {
                m = new_call(bus, "SIsMember");
                g_assert_cmpint(sd_bus_message_append(m, "ss", w[1], w[2]), >=, 0);
        }
#undef IS
        return m;
}

static Reply *hub_cmd(sd_bus *bus, char **w, guint n) {
        Shape shape;
        const char *names_from;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus_message *m = translate(bus, w, n, &shape, &names_from);
        if (!m)
                g_error("no Store1 translation for '%s'", w[0]);
        int r = sd_bus_call(bus, m, 30 * G_USEC_PER_SEC, &e, &reply);
        sd_bus_message_unref(m);
        if (r < 0) {
                Reply *err = reply_text(R_ERR, e.name ? e.name : "(no error name)");
                sd_bus_error_free(&e);
                return err;
        }
        Reply *out = bus_reply(reply);
        sd_bus_message_unref(reply);
        switch (shape) {
        case SHAPE_NONE:
        case SHAPE_PAIRS:
                break;
        case SHAPE_SORT:
                sort_array(out);
                break;
        case SHAPE_STATUS:
                if (out->kind == R_STR)
                        out->kind = R_STATUS;
                break;
        case SHAPE_OLD:
                if (out->kind == R_ARR && out->a->len == 2) {
                        Reply *had = out->a->pdata[0];
                        Reply *one = had->i ? g_ptr_array_steal_index(out->a, 1) : reply_new(R_NIL);
                        reply_free(out);
                        out = one;
                }
                break;
        case SHAPE_ONE:
                if (out->kind == R_ARR && out->a->len <= 1) {
                        Reply *one = out->a->len ? g_ptr_array_steal_index(out->a, 0) : reply_new(R_NIL);
                        reply_free(out);
                        out = one;
                }
                break;
        case SHAPE_POSITIONAL: {
                g_assert_cmpint(out->kind, ==, R_DICT);
                Reply *arr = reply_new(R_ARR);
                for (guint i = (guint) atoi(names_from); i < n; i++) {
                        Reply *v = NULL;
                        for (guint j = 0; j + 1 < out->a->len && !v; j += 2) {
                                Reply *k = out->a->pdata[j];
                                if (strcmp(k->s, w[i]) == 0)
                                        v = out->a->pdata[j + 1];
                        }
                        if (!v)
                                g_ptr_array_add(arr->a, reply_new(R_NIL));
                        else {
                                /* copy by re-rendering is not possible; steal and leave a NIL behind */
                                for (guint j = 0; j < out->a->len; j++)
                                        if (out->a->pdata[j] == v)
                                                out->a->pdata[j] = reply_new(R_NIL);
                                g_ptr_array_add(arr->a, v);
                        }
                }
                reply_free(out);
                out = arr;
                break;
        }
        }
        return out;
}

/* SCANALL PATTERN COUNT: the whole Scan loop on each side; the keys seen, sorted and unique. */
static Reply *uniq_sorted(GPtrArray *keys) {
        Reply *r = reply_new(R_ARR);
        g_ptr_array_sort(keys, (GCompareFunc) cmp_rendered);
        for (guint i = 0; i < keys->len; i++) {
                Reply *k = keys->pdata[i];
                if (r->a->len && strcmp(((Reply *) r->a->pdata[r->a->len - 1])->s, k->s) == 0)
                        continue;
                g_ptr_array_add(r->a, reply_str(k->s, k->len));
        }
        return r;
}

static Reply *redis_scanall(Redis *rd, const char *pattern, const char *count) {
        g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func((GDestroyNotify) reply_free);
        g_autofree char *cursor = g_strdup("0");
        unsigned rounds = 0;
        do {
                g_autoptr(Reply) r = redis_cmdv(rd, "SCAN", cursor, "MATCH", pattern, "COUNT", count, NULL);
                g_assert_cmpint(r->kind, ==, R_ARR);
                g_free(cursor);
                cursor = g_strdup(((Reply *) r->a->pdata[0])->s);
                Reply *list = r->a->pdata[1];
                for (guint i = 0; i < list->a->len; i++) {
                        Reply *k = list->a->pdata[i];
                        g_ptr_array_add(keys, reply_str(k->s, k->len));
                }
                g_assert_cmpuint(++rounds, <, 100000);
        } while (strcmp(cursor, "0") != 0);
        return uniq_sorted(keys);
}

static Reply *hub_scanall(sd_bus *bus, const char *pattern, const char *count, unsigned *rounds_out) {
        g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func((GDestroyNotify) reply_free);
        uint64_t cursor = 0;
        unsigned rounds = 0;
        do {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                int r = sd_bus_call_method(bus, CH_BUS_NAME, ns_path, IFACE, "Scan", &e, &reply, "tsu", cursor, pattern,
                                           (uint32_t) num(count));
                if (r < 0) {
                        Reply *err = reply_text(R_ERR, e.name);
                        sd_bus_error_free(&e);
                        return err;
                }
                g_assert_cmpint(sd_bus_message_read(reply, "t", &cursor), >, 0);
                Reply *list = bus_read_item(reply, false);
                for (guint i = 0; i < list->a->len; i++)
                        g_ptr_array_add(keys, g_ptr_array_steal_index(list->a, 0)), i--;
                reply_free(list);
                sd_bus_message_unref(reply);
                g_assert_cmpuint(++rounds, <, 100000);
        } while (cursor != 0);
        *rounds_out = rounds;
        return uniq_sorted(keys);
}

/* ---- the mapping: every legitimate difference, in one place ------------------------------ */

typedef enum {
        M_PATTERN,    /* both rendered replies match the globs */
        M_TYPED,      /* equal once the hub's typed values (x)N, (d)D are read as Redis's strings "N", "D" */
        M_NUL_SPACE,  /* equal once Redis's NUL bytes read as spaces */
        M_TTL_NEAR,   /* both remaining times >= 0 and within TTL_SLACK_MS (the two calls are not simultaneous) */
} MappingKind;

typedef struct Mapping {
        const char *command;  /* glob over the script line */
        const char *redis;    /* glob over the rendered Redis reply (M_PATTERN) */
        const char *hub;      /* glob over the rendered hub reply (M_PATTERN) */
        MappingKind kind;
        const char *why;
} Mapping;

#define TTL_SLACK_MS 250

static const Mapping mappings[] = {
        /* errors: Redis error text -> D-Bus error name */
        { "*", "!WRONGTYPE *", "!org.clusterhub.Error.WrongType", M_PATTERN, "error name" },
        { "*", "!ERR no such key", "!org.clusterhub.Error.NoSuchKey", M_PATTERN, "error name" },
        { "*", "!ERR index out of range", "!org.clusterhub.Error.InvalidArgs", M_PATTERN, "error name (LSET)" },
        { "*", "!ERR value is not an integer or out of range", "!org.clusterhub.Error.NotANumber", M_PATTERN, "error name" },
        { "*", "!ERR hash value is not an integer", "!org.clusterhub.Error.NotANumber", M_PATTERN, "error name" },
        { "*", "!ERR value is not a valid float", "!org.clusterhub.Error.NotANumber", M_PATTERN, "error name" },
        { "*", "!ERR hash value is not a float", "!org.clusterhub.Error.NotANumber", M_PATTERN, "error name" },
        { "*", "!ERR increment or decrement would overflow", "!org.clusterhub.Error.Overflow", M_PATTERN, "error name" },
        { "*", "!ERR increment would produce NaN or Infinity", "!org.clusterhub.Error.Overflow", M_PATTERN, "error name" },
        /* names must be non-empty on the hub (keys, hash fields, set members) */
        { "HSET * \"\" *", "1", "!org.clusterhub.Error.InvalidArgs", M_PATTERN, "empty hash field" },
        { "SADD * \"\"", "1", "!org.clusterhub.Error.InvalidArgs", M_PATTERN, "empty set member" },
        /* Redis nil -> a named error or an empty reply */
        { "GET *", "nil", "!org.clusterhub.Error.NoSuchKey", M_PATTERN, "nil -> NoSuchKey" },
        { "GETDEL *", "nil", "!org.clusterhub.Error.NoSuchKey", M_PATTERN, "nil -> NoSuchKey" },
        { "HGET *", "nil", "!org.clusterhub.Error.NoSuchKey", M_PATTERN, "nil -> NoSuchKey" },
        { "LINDEX *", "nil", "!org.clusterhub.Error.NoSuchKey", M_PATTERN, "nil -> NoSuchKey" },
        { "LMOVE *", "nil", "!org.clusterhub.Error.NoSuchKey", M_PATTERN, "nil -> NoSuchKey" },
        { "RANDOMKEY", "nil", "!org.clusterhub.Error.NoSuchKey", M_PATTERN, "nil -> NoSuchKey" },
        { "BLPOP *", "nil", "!org.clusterhub.Error.Timeout", M_PATTERN, "nil -> Timeout" },
        { "BRPOP *", "nil", "!org.clusterhub.Error.Timeout", M_PATTERN, "nil -> Timeout" },
        { "LPOP * *", "nil", "[]", M_PATTERN, "pop with count of an absent key: empty array" },
        { "RPOP * *", "nil", "[]", M_PATTERN, "pop with count of an absent key: empty array" },
        /* Set returns b */
        { "SET *", "OK", "1", M_PATTERN, "Set -> true" },
        { "SET *", "nil", "0", M_PATTERN, "Set refused by nx/xx -> false" },
        { "SETEX *", "OK", "1", M_PATTERN, "Set -> true" },
        { "PSETEX *", "OK", "1", M_PATTERN, "Set -> true" },
        /* SetGet: SET ... GET on a value Incr / IncrFloat created hands back the typed value */
        { "SET n:* * GET", NULL, NULL, M_TYPED, "typed value (x) where Redis has a string" },
        { "GETSET f:* *", NULL, NULL, M_TYPED, "typed value (d) where Redis has a string" },
        /* Move */
        { "MOVE *", "!ERR source and destination objects are the same", "!org.clusterhub.Error.InvalidArgs", M_PATTERN,
          "Move into its own namespace" },
        /* byte ranges must stay valid UTF-8 on the hub */
        { "GETRANGE u8:*", "\"*\"", "!org.clusterhub.Error.InvalidArgs", M_PATTERN, "a byte range that cuts a UTF-8 character" },
        { "SETRANGE u8:*", "*", "!org.clusterhub.Error.InvalidArgs", M_PATTERN, "a SetRange whose result is not UTF-8" },
        /* typed values */
        { "INCRBYFLOAT *", NULL, NULL, M_TYPED, "IncrFloat replies d" },
        { "HINCRBYFLOAT *", NULL, NULL, M_TYPED, "HIncrFloat replies d" },
        { "GET n:*", NULL, NULL, M_TYPED, "typed value (x) where Redis has a string" },
        { "GET f:*", NULL, NULL, M_TYPED, "typed value (d) where Redis has a string" },
        { "HGET * n:*", NULL, NULL, M_TYPED, "typed value (x) where Redis has a string" },
        { "HGETALL *", NULL, NULL, M_TYPED, "typed values (x, d) in a hash where Redis has strings" },
        { "HVALS *", NULL, NULL, M_TYPED, "typed values (x, d) in a hash where Redis has strings" },
        { "HMGET *", NULL, NULL, M_TYPED, "typed values (x, d) in a hash where Redis has strings" },
        { "TYPE n:*", "string", "int", M_PATTERN, "integer created by Incr is 'x': Type int" },
        { "TYPE f:*", "string", "double", M_PATTERN, "number created by IncrFloat is 'd': Type double" },
        { "APPEND n:*", "*", "!org.clusterhub.Error.WrongType", M_PATTERN, "Append on an 'x' integer" },
        { "STRLEN n:*", "*", "!org.clusterhub.Error.WrongType", M_PATTERN, "StrLen on an 'x' integer" },
        { "GETRANGE n:*", "*", "!org.clusterhub.Error.WrongType", M_PATTERN, "GetRange on an 'x' integer" },
        { "SETRANGE n:*", "*", "!org.clusterhub.Error.WrongType", M_PATTERN, "SetRange on an 'x' integer" },
        { "GETRANGE f:*", "*", "!org.clusterhub.Error.WrongType", M_PATTERN, "GetRange on a 'd' double" },
        { "SETRANGE f:*", "*", "!org.clusterhub.Error.WrongType", M_PATTERN, "SetRange on a 'd' double" },
        { "INCRBYFLOAT n:*", "*", "!org.clusterhub.Error.NotANumber", M_PATTERN, "non-integral IncrFloat on an 'x' integer" },
        { "INCRBYFLOAT fbig *", "\"*\"", "!org.clusterhub.Error.Overflow", M_PATTERN, "result beyond the range of a double" },
        { "INCR* f:*", "*", "!org.clusterhub.Error.NotANumber", M_PATTERN, "Incr on a 'd' double" },
        /* strings */
        { "GET *", NULL, NULL, M_NUL_SPACE, "SetRange pads with spaces, not NUL" },
        { "GETRANGE *", NULL, NULL, M_NUL_SPACE, "SetRange pads with spaces, not NUL" },
        /* time */
        { "PTTL *", NULL, NULL, M_TTL_NEAR, "remaining time, measured a moment apart" },
};

static bool typed_equal(const Reply *rd, const Reply *hub) {
        if (hub->kind == R_TYPED && rd->kind == R_STR) {
                if (hub->tag[0] == 'd') {
                        char *end;
                        double d = g_ascii_strtod(rd->s, &end);
                        return *end == 0 && isfinite(d) && isfinite(hub->d) && (d == hub->d || fabs(d - hub->d) <= 1e-12 * fabs(hub->d));
                }
                return strcmp(rd->s, hub->s) == 0;
        }
        if (rd->kind != hub->kind)
                return false;
        if (rd->kind == R_ARR || rd->kind == R_DICT) {
                if (rd->a->len != hub->a->len)
                        return false;
                for (guint i = 0; i < rd->a->len; i++)
                        if (!typed_equal(rd->a->pdata[i], hub->a->pdata[i]))
                                return false;
                return true;
        }
        g_autofree char *a = render_str(rd), *b = render_str(hub);
        return strcmp(a, b) == 0;
}

static const Mapping *find_mapping(const char *line, const Reply *rd, const char *rds, const Reply *hub, const char *hubs) {
        for (size_t i = 0; i < G_N_ELEMENTS(mappings); i++) {
                const Mapping *mp = &mappings[i];
                g_autofree char *upper = g_ascii_strup(line, -1);
                g_autofree char *cmd_up = g_ascii_strup(mp->command, -1);
                if (!g_pattern_match_simple(cmd_up, upper))
                        continue;
                switch (mp->kind) {
                case M_PATTERN:
                        if (g_pattern_match_simple(mp->redis, rds) && g_pattern_match_simple(mp->hub, hubs))
                                return mp;
                        break;
                case M_TYPED:
                        if (typed_equal(rd, hub))
                                return mp;
                        break;
                case M_NUL_SPACE:
                        if (rd->kind == R_STR && hub->kind == R_STR && rd->len == hub->len) {
                                g_autofree char *s = g_memdup2(rd->s, rd->len + 1);
                                for (size_t k = 0; k < rd->len; k++)
                                        if (s[k] == 0)
                                                s[k] = ' ';
                                if (memcmp(s, hub->s, rd->len) == 0)
                                        return mp;
                        }
                        break;
                case M_TTL_NEAR:
                        if (rd->kind == R_INT && hub->kind == R_INT && rd->i >= 0 && hub->i >= 0 &&
                            ABS(rd->i - hub->i) <= TTL_SLACK_MS)
                                return mp;
                        break;
                }
        }
        return NULL;
}

/* ---- the Redis-backed store (--redis) ---------------------------------------------------------- */

/* STORE_DIFF_REDIS=1 (the meson test store-diff-redis): the hub runs with --redis on a second
 * redis-server of the test's own, so its Store1 is executed by Redis (docs/redis.md "Store").
 * Its replies must match the same script and mappings, plus redis_mappings[] below. */
static Redis hub_redis = { .proc = TH_PROC_NULL, .fd = -1 };
static bool redis_variant;

/* Commands whose Store1 methods the Redis-backed store does not implement yet: skipped on both
 * sides in the Redis variant only.  Empty: lists, sets and blocking pops are in
 * service/bus/bus-store-redis-list.c. */
static const char *const redis_not_yet[] = {
        NULL,
};

/* The words (keys, and whatever else) of the lines skipped since the last FLUSHDB/FLUSHALL:
 * a later line naming one of them is skipped too, as its key is not what the script made it. */
static GHashTable *redis_tainted;

static bool redis_skipped(char **w) {
        bool skip = false;

        if (!redis_variant)
                return false;
        if (!redis_tainted)
                redis_tainted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        if (g_ascii_strcasecmp(w[0], "FLUSHDB") == 0 || g_ascii_strcasecmp(w[0], "FLUSHALL") == 0) {
                g_hash_table_remove_all(redis_tainted);
                return false;
        }
        for (size_t i = 0; redis_not_yet[i]; i++)
                if (g_ascii_strcasecmp(w[0], redis_not_yet[i]) == 0)
                        skip = true;
        for (size_t i = 1; !skip && w[i]; i++)
                if (g_hash_table_contains(redis_tainted, w[i]))
                        skip = true;
        if (skip)
                for (size_t i = 1; w[i]; i++)
                        g_hash_table_add(redis_tainted, g_strdup(w[i]));
        return skip;
}

/* ---- the test ---------------------------------------------------------------------------- */

static void skip_all(gconstpointer data) {
        g_test_skip(data);
}

static void test_differential(ThFixture *f, gconstpointer data) {
        TH_RETURN_IF_SKIPPED(f);
        g_autofree char *skip = NULL;
        g_autofree char *text = NULL;
        g_autoptr(GError) error = NULL;
        Redis rd = { .proc = TH_PROC_NULL, .fd = -1 };
        unsigned total = 0, identical = 0, mapped = 0, different = 0;
        GHashTable *why = g_hash_table_new(g_str_hash, g_str_equal);

        if (!redis_start(&rd, &skip)) {
                g_test_skip(skip);
                return;
        }
        g_assert_true(g_file_get_contents(COMMANDS_TXT, &text, NULL, &error));
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

        g_autoptr(Reply) fl = redis_cmdv(&rd, "FLUSHALL", NULL);
        g_assert_cmpint(fl->kind, ==, R_STATUS);
        if (redis_variant) { /* the hub's store: empty for each run (one per bus kind) */
                g_autoptr(Reply) hfl = redis_cmdv(&hub_redis, "FLUSHALL", NULL);
                g_assert_cmpint(hfl->kind, ==, R_STATUS);
                if (redis_tainted)
                        g_hash_table_remove_all(redis_tainted);
        }
        select_db("0");

        for (guint ln = 0; lines[ln]; ln++) {
                const char *line = g_strstrip(lines[ln]);
                if (!*line || line[0] == '#')
                        continue;
                g_auto(GStrv) w = split_words(line);
                guint n = g_strv_length(w);
                g_autoptr(Reply) a = NULL, b = NULL;

                if (redis_skipped(w))
                        continue;
                if (g_ascii_strcasecmp(w[0], "SLEEP") == 0) {     /* pseudo command: SLEEP ms */
                        g_usleep((gulong) num(w[1]) * 1000);
                        continue;
                }
                if (g_ascii_strcasecmp(w[0], "SELECT") == 0) {    /* the hub has no connection state: a path */
                        a = redis_cmd(&rd, w);
                        b = reply_text(R_STATUS, "OK");
                        select_db(w[1]);
                } else if (g_ascii_strcasecmp(w[0], "SCANALL") == 0) {   /* pseudo command: SCANALL pattern count */
                        unsigned rounds = 0;
                        a = redis_scanall(&rd, w[1], w[2]);
                        b = hub_scanall(f->client, w[1], w[2], &rounds);
                        g_test_message("line %u: hub Scan took %u rounds", ln + 1, rounds);
                } else {
                        a = redis_cmd(&rd, w);
                        b = hub_cmd(f->client, w, n);
                }
                if (g_ascii_strcasecmp(w[0], "HGETALL") == 0)
                        a = pairs_to_dict(g_steal_pointer(&a));
                if (g_ascii_strcasecmp(w[0], "KEYS") == 0 || g_ascii_strcasecmp(w[0], "SMEMBERS") == 0 ||
                    ((g_ascii_strcasecmp(w[0], "SPOP") == 0 || g_ascii_strcasecmp(w[0], "SRANDMEMBER") == 0) && n > 2))
                        sort_array(a);

                g_autofree char *as = render_str(a), *bs = render_str(b);
                total++;
                if (strcmp(as, bs) == 0) {
                        identical++;
                        continue;
                }
                const Mapping *mp = find_mapping(line, a, as, b, bs);
                if (mp) {
                        mapped++;
                        g_hash_table_insert(why, (gpointer) mp->why,
                                            GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(why, mp->why)) + 1));
                        g_test_message("line %u: %s: mapped (%s): redis %s, hub %s", ln + 1, line, mp->why, as, bs);
                        continue;
                }
                different++;
                g_test_message("line %u: %s: DIFFERENT: redis %s, hub %s", ln + 1, line, as, bs);
                fprintf(stderr, "# DIFFERENT line %u: %s\n#   redis: %s\n#   hub:   %s\n", ln + 1, line, as, bs);
        }

        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, why);
        while (g_hash_table_iter_next(&it, &k, &v))
                g_test_message("mapped %3u x %s", GPOINTER_TO_UINT(v), (const char *) k);
        g_hash_table_unref(why);
        g_test_message("differential: %u commands, %u identical, %u mapped, %u different", total, identical, mapped, different);
        fprintf(stderr, "# differential: %u commands, %u identical, %u mapped, %u different\n", total, identical, mapped, different);
        redis_stop(&rd);
        g_assert_false(th_proc_exited(&f->hub.proc));
        g_assert_cmpuint(total, >=, 300);
        g_assert_cmpuint(different, ==, 0);
}

int main(int argc, char *argv[]) {
        g_autofree char *skip = NULL, *hub_args = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        redis_variant = g_strcmp0(g_getenv("STORE_DIFF_REDIS"), "1") == 0;
        if (redis_variant) {
                if (!redis_start(&hub_redis, &skip)) {
                        g_test_add_data_func("/store-bus/differential-redis", skip, skip_all);
                        return g_test_run();
                }
                hub_args = g_strdup_printf("--redis=unix:%s --node-name=diff", hub_redis.sock);
                g_setenv("TH_HUB_ARGS", hub_args, TRUE);
        }
        TH_ADD_BUS_TEST_WITH_HUB("/store-bus/differential", test_differential);
        r = g_test_run();
        if (redis_variant)
                redis_stop(&hub_redis);
        return r;
}
