/* SPDX-License-Identifier: MIT */
/* hiredis 0.14 on sd-event: the adapter, the two connections, timeouts and reconnection. */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "list.h"
#include "log.h"
#include "macro.h"
#include "redis-link.h"

/* --- the sd-event adapter -----------------------------------------------------------------
 * One io source per hiredis context, its mask following the addRead/delRead/addWrite/delWrite
 * hooks.  hiredis calls cleanup when it frees the context, and that may happen inside our own
 * read handler (the server closed the connection, or a reply callback freed the context): the
 * adapter then only marks itself deleted, and the handler frees it once hiredis has returned. */

typedef struct SdAdapter {
        redisAsyncContext *ac;
        sd_event_source *io;
        uint32_t mask;
        bool entered;   /* inside on_io */
        bool deleted;   /* cleanup ran while entered */
} SdAdapter;

static SdAdapter *adapter_free(SdAdapter *a) {
        sd_event_source_disable_unref(a->io);
        free(a);
        return NULL;
}

static void adapter_update(SdAdapter *a, uint32_t mask) {
        if (a->deleted || mask == a->mask)
                return;
        a->mask = mask;
        if (sd_event_source_set_io_events(a->io, mask) < 0 ||
            sd_event_source_set_enabled(a->io, mask ? SD_EVENT_ON : SD_EVENT_OFF) < 0)
                log_warning("Redis link: failed to update the event mask.");
}

static void hook_add_read(void *p) {
        SdAdapter *a = p;
        adapter_update(a, a->mask | EPOLLIN);
}

static void hook_del_read(void *p) {
        SdAdapter *a = p;
        adapter_update(a, a->mask & ~(uint32_t) EPOLLIN);
}

static void hook_add_write(void *p) {
        SdAdapter *a = p;
        adapter_update(a, a->mask | EPOLLOUT);
}

static void hook_del_write(void *p) {
        SdAdapter *a = p;
        adapter_update(a, a->mask & ~(uint32_t) EPOLLOUT);
}

static void hook_cleanup(void *p) {
        SdAdapter *a = p;

        a->ac = NULL;
        if (a->entered) {
                a->deleted = true;
                (void) sd_event_source_set_enabled(a->io, SD_EVENT_OFF);
                return;
        }
        adapter_free(a);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        SdAdapter *a = userdata;

        a->entered = true;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                redisAsyncHandleRead(a->ac);
        /* the read may have freed the context: then a->ac is NULL and a is ours to free */
        if (!a->deleted && a->ac && (revents & EPOLLOUT))
                redisAsyncHandleWrite(a->ac);
        a->entered = false;
        if (a->deleted)
                adapter_free(a);
        return 0;
}

static int adapter_attach(redisAsyncContext *ac, sd_event *e) {
        SdAdapter *a;
        int r;

        if (ac->ev.data)
                return -EEXIST;
        a = calloc(1, sizeof(SdAdapter));
        if (!a)
                return -ENOMEM;
        a->ac = ac;
        r = sd_event_add_io(e, &a->io, ac->c.fd, 0, on_io, a);
        if (r < 0) {
                free(a);
                return r;
        }
        (void) sd_event_source_set_enabled(a->io, SD_EVENT_OFF);
        (void) sd_event_source_set_description(a->io, "redis");
        ac->ev.data = a;
        ac->ev.addRead = hook_add_read;
        ac->ev.delRead = hook_del_read;
        ac->ev.addWrite = hook_add_write;
        ac->ev.delWrite = hook_del_write;
        ac->ev.cleanup = hook_cleanup;
        return 0;
}

/* --- the link ------------------------------------------------------------------------------ */

typedef struct RedisConn {
        RedisLink *link;
        redisAsyncContext *ac;  /* NULL once hiredis freed it (or is freeing it) */
        bool subscriber;
        bool ready;             /* handshake done */
        size_t n_subscribed;
} RedisConn;

/* A command sent: hiredis calls back exactly once (reply, or NULL when the context is freed),
 * so this lives until then even when the timeout answered the caller first.  Replies come in
 * the order of the commands, so one timer serves them all: it is armed for the oldest. */
typedef struct RedisCmd {
        RedisLink *link;        /* NULL once answered */
        redis_reply_fn cb;
        void *userdata;
        uint64_t deadline_usec; /* CLOCK_MONOTONIC */
        LIST_FIELDS(struct RedisCmd, cmds);
} RedisCmd;

struct RedisLink {
        sd_event *event;
        RedisUrl url;
        RedisLinkBounds bounds;
        char where[128];
        RedisLinkCallbacks cb;
        void *userdata;
        char **patterns;
        size_t n_patterns;

        RedisConn *cmd, *sub;
        bool up;
        sd_event_source *retry_timer;   /* reconnect after backoff; also the connect timeout */
        sd_event_source *close_event;   /* closes the connections outside hiredis's callbacks */
        unsigned attempt;
        bool closing;                   /* inside link_close() */
        bool close_pending;             /* close_event is armed */
        LIST_HEAD(RedisCmd) cmds;       /* sent, not answered yet, oldest first */
        size_t n_cmds;
        sd_event_source *cmd_timer;     /* the oldest one's deadline */
        RedisLinkStats stats;
};

static void link_schedule_close(RedisLink *l, const char *why);

/* Arms the command timer for the oldest command, or turns it off. */
static void cmd_timer_arm(RedisLink *l) {
        RedisCmd *first = l->cmds.first;

        if (!first) {
                (void) sd_event_source_set_enabled(l->cmd_timer, SD_EVENT_OFF);
                return;
        }
        int r = sd_event_source_set_time(l->cmd_timer, first->deadline_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->cmd_timer, SD_EVENT_ONESHOT);
        /* -ESTALE: the loop is exiting (commands sent on the way out, e.g. releases); no timer
         * fires any more and the link is freed before it could matter */
        if (r < 0 && r != -ESTALE)
                log_warning_errno(r, "Redis link: cannot arm the command timer: %m");
}

static void cmd_answer(RedisCmd *c, const redisReply *reply, int error) {
        RedisLink *l = c->link;
        bool was_first;

        if (!l)
                return;
        was_first = l->cmds.first == c;
        LIST_REMOVE(cmds, l->cmds, c);
        l->n_cmds--;
        c->link = NULL;
        if (!reply || reply->type == REDIS_REPLY_ERROR)
                l->stats.commands_failed++;
        if (was_first)
                cmd_timer_arm(l);
        if (c->cb)
                c->cb(l, reply, error, c->userdata);
}

static void on_cmd_reply(redisAsyncContext *ac, void *r, void *privdata) {
        RedisCmd *c = privdata;

        cmd_answer(c, r, r ? 0 : -ECONNRESET);
        free(c);
}

static int on_cmd_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        RedisLink *l = userdata;

        if (!l->cmds.first)
                return 0;
        cmd_answer(l->cmds.first, NULL, -ETIMEDOUT);  /* hiredis still holds it: on_cmd_reply frees it */
        if (!l->close_pending) {
                log_warning("Redis at %s did not answer a command within %" PRIu64 " ms; reconnecting.", l->where,
                            l->bounds.timeout_ms);
                link_schedule_close(l, "a command timed out");
        }
        return 0;
}

int redis_link_command(RedisLink *l, int argc, const char **argv, const size_t *argvlen, redis_reply_fn cb,
                       void *userdata) {
        uint64_t now;
        RedisCmd *c;
        int r;

        if (!l->up || l->closing || l->close_pending || !l->cmd || !l->cmd->ac)
                return -ENOTCONN;
        if (l->n_cmds >= l->bounds.max_pending) {
                l->stats.commands_failed++;
                return -ENOBUFS;
        }
        c = calloc(1, sizeof(RedisCmd));
        if (!c)
                return -ENOMEM;
        r = sd_event_now(l->event, CLOCK_MONOTONIC, &now);
        if (r < 0) {
                free(c);
                return r;
        }
        *c = (RedisCmd) { .link = l, .cb = cb, .userdata = userdata,
                          .deadline_usec = now + l->bounds.timeout_ms * USEC_PER_MSEC };
        if (redisAsyncCommandArgv(l->cmd->ac, on_cmd_reply, c, argc, argv, argvlen) != REDIS_OK) {
                free(c);
                return -ENOTCONN;
        }
        LIST_APPEND(cmds, l->cmds, c);
        l->n_cmds++;
        if (l->cmds.first == c)
                cmd_timer_arm(l);
        l->stats.commands_sent++;
        return 0;
}

static void link_set_up(RedisLink *l, bool up) {
        if (l->up == up)
                return;
        l->up = up;
        l->stats.connected = up;
        if (up) {
                l->stats.connects++;
                l->attempt = 0;
                l->retry_timer = sd_event_source_disable_unref(l->retry_timer);
                log_info("Connected to Redis at %s.", l->where);
        } else
                l->stats.disconnects++;
        if (l->cb.on_state)
                l->cb.on_state(l, up, l->userdata);
}

static void link_check_ready(RedisLink *l) {
        if (l->cmd && l->cmd->ready && l->sub && l->sub->ready && !l->closing && !l->close_pending)
                link_set_up(l, true);
}

static const char *reply_error(const redisReply *reply, const redisAsyncContext *ac) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
                return reply->str;
        if (ac && ac->errstr)
                return ac->errstr;
        return "connection closed";
}

/* A reply to AUTH or SELECT: only an error matters (the link is closed and retried). */
static void on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata) {
        RedisConn *c = privdata;
        redisReply *reply = r;

        if (!c->link || !reply || reply->type == REDIS_REPLY_ERROR) {
                if (c->link && reply)
                        log_error("Redis at %s refused the connection's set-up: %s", c->link->where, reply_error(reply, ac));
                if (c->link)
                        link_schedule_close(c->link, "the set-up failed");
        }
}

/* The PING after AUTH and SELECT: the command connection is ready. */
static void on_ping_reply(redisAsyncContext *ac, void *r, void *privdata) {
        RedisConn *c = privdata;
        redisReply *reply = r;

        if (!c->link)
                return;
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
                link_schedule_close(c->link, "PING failed");
                return;
        }
        c->ready = true;
        link_check_ready(c->link);
}

/* Every reply of the subscriber connection: psubscribe confirmations, then pmessages. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata) {
        RedisConn *c = privdata;
        RedisLink *l = c->link;
        redisReply *reply = r;

        if (!l || !reply)
                return;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING) {
                if (reply->type == REDIS_REPLY_ERROR)
                        log_error("Redis at %s refused PSUBSCRIBE: %s", l->where, reply->str);
                link_schedule_close(l, "unexpected reply on the subscriber connection");
                return;
        }
        if (streq(reply->element[0]->str, "psubscribe")) {
                if (++c->n_subscribed == l->n_patterns) {
                        c->ready = true;
                        link_check_ready(l);
                }
                return;
        }
        if (streq(reply->element[0]->str, "pmessage") && reply->elements == 4 &&
            reply->element[2]->type == REDIS_REPLY_STRING && reply->element[3]->type == REDIS_REPLY_STRING) {
                l->stats.messages_received++;
                if (l->cb.on_message)
                        l->cb.on_message(l, reply->element[2]->str, reply->element[3]->str, reply->element[3]->len,
                                         l->userdata);
        }
}

static void on_connect(const redisAsyncContext *ac, int status) {
        RedisConn *c = ac->data;

        if (status == REDIS_OK || !c)
                return;
        /* hiredis frees AC after this returns */
        c->ac = NULL;
        if (c->link && c->link->attempt <= 1)
                log_warning("Cannot connect to Redis at %s: %s", c->link->where, strempty(ac->errstr));
        if (c->link)
                link_schedule_close(c->link, "connecting failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
        RedisConn *c = ac->data;

        if (!c)
                return;
        c->ac = NULL;
        if (c->link) {
                if (c->link->up)
                        log_warning("Lost the connection to Redis at %s: %s", c->link->where,
                                    status == REDIS_OK ? "closed" : strempty(ac->errstr));
                link_schedule_close(c->link, "disconnected");
        }
}

/* Sends AUTH and SELECT as the URL asks; the first commands on C. */
static int conn_handshake(RedisLink *l, RedisConn *c) {
        char db[16];
        int r = REDIS_OK;

        if (l->url.password) {
                const char *argv[3] = { "AUTH" };
                int argc = 1;
                if (l->url.user)
                        argv[argc++] = l->url.user;
                argv[argc++] = l->url.password;
                r = redisAsyncCommandArgv(c->ac, on_handshake_reply, c, argc, argv, NULL);
        }
        if (r == REDIS_OK && l->url.db > 0 && !c->subscriber) {
                snprintf(db, sizeof(db), "%u", l->url.db);
                r = redisAsyncCommandArgv(c->ac, on_handshake_reply, c, 2, (const char *[]) { "SELECT", db }, NULL);
        }
        if (r == REDIS_OK && !c->subscriber)
                r = redisAsyncCommand(c->ac, on_ping_reply, c, "PING");
        for (size_t i = 0; r == REDIS_OK && c->subscriber && i < l->n_patterns; i++)
                r = redisAsyncCommandArgv(c->ac, on_sub_reply, c, 2, (const char *[]) { "PSUBSCRIBE", l->patterns[i] }, NULL);
        return r == REDIS_OK ? 0 : -EIO;
}

static int conn_open(RedisLink *l, bool subscriber, RedisConn **ret) {
        RedisConn *c;
        int r;

        c = calloc(1, sizeof(RedisConn));
        if (!c)
                return -ENOMEM;
        c->link = l;
        c->subscriber = subscriber;
        *ret = c; /* from here on, link_close() frees it */
        c->ac = l->url.path ? redisAsyncConnectUnix(l->url.path) : redisAsyncConnect(l->url.host, l->url.port);
        if (!c->ac)
                return -ENOMEM;
        if (c->ac->err) {
                if (l->attempt <= 1)
                        log_warning("Cannot connect to Redis at %s: %s", l->where, c->ac->errstr);
                redisAsyncFree(c->ac);
                c->ac = NULL;
                return -ECONNREFUSED;
        }
        c->ac->data = c;
        r = adapter_attach(c->ac, l->event);
        if (r < 0) {
                redisAsyncFree(c->ac);
                c->ac = NULL;
                return r;
        }
        (void) redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
        (void) redisAsyncSetConnectCallback(c->ac, on_connect);
        return conn_handshake(l, c);
}

static RedisConn *conn_close(RedisConn *c) {
        if (!c)
                return NULL;
        c->link = NULL;
        if (c->ac) {
                redisAsyncContext *ac = c->ac;
                c->ac = NULL;
                redisAsyncFree(ac); /* runs the pending callbacks with NULL: they see no link */
        }
        free(c);
        return NULL;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata);

static unsigned backoff_ms(unsigned attempt) {
        unsigned ms = REDIS_BACKOFF_MIN_MS;

        for (unsigned i = 1; i < attempt && ms < REDIS_BACKOFF_MAX_MS; i++)
                ms *= 2;
        return MIN(ms, (unsigned) REDIS_BACKOFF_MAX_MS);
}

static void link_arm_retry(RedisLink *l, uint64_t ms) {
        int r;

        l->retry_timer = sd_event_source_disable_unref(l->retry_timer);
        r = sd_event_add_time_relative(l->event, &l->retry_timer, CLOCK_MONOTONIC, ms * USEC_PER_MSEC,
                                       10 * USEC_PER_MSEC, on_retry, l);
        if (r < 0)
                log_error_errno(r, "Redis link: cannot arm its timer: %m");
}

/* Closes both connections and fails every pending command; the link then retries. */
static void link_close(RedisLink *l) {
        RedisCmd *c;

        l->closing = true;
        l->cmd = conn_close(l->cmd);
        l->sub = conn_close(l->sub);
        /* the commands hiredis held were answered when their context was freed */
        while ((c = l->cmds.first))
                cmd_answer(c, NULL, -ECONNRESET);
        l->closing = false;
        link_set_up(l, false);
}

static void link_connect(RedisLink *l) {
        int r;

        l->attempt++;
        r = conn_open(l, false, &l->cmd);
        if (r >= 0)
                r = conn_open(l, true, &l->sub);
        if (r < 0) {
                link_close(l);
                link_arm_retry(l, backoff_ms(l->attempt));
                return;
        }
        /* the connect timeout: if the link is not up by then, close and retry */
        link_arm_retry(l, l->bounds.timeout_ms);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        RedisLink *l = userdata;

        if (l->cmd || l->sub) { /* a connection attempt that did not finish in time */
                log_warning("Redis at %s did not answer within %" PRIu64 " ms; retrying.", l->where, l->bounds.timeout_ms);
                link_close(l);
                link_arm_retry(l, backoff_ms(l->attempt));
                return 0;
        }
        link_connect(l);
        return 0;
}

static int on_close_event(sd_event_source *s, void *userdata) {
        RedisLink *l = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        l->close_pending = false;
        link_close(l);
        link_arm_retry(l, backoff_ms(l->attempt));
        return 0;
}

/* From inside hiredis's callbacks nothing may be freed: closing waits for the loop. */
static void link_schedule_close(RedisLink *l, const char *why) {
        if (l->closing || l->close_pending)
                return;
        log_debug("Redis link to %s: closing (%s).", l->where, why);
        l->close_pending = true;
        /* nothing more is sent on a link that is going away */
        link_set_up(l, false);
        (void) sd_event_source_set_enabled(l->close_event, SD_EVENT_ONESHOT);
}

int redis_link_new(sd_event *e, const RedisUrl *url, const RedisLinkBounds *bounds, const RedisLinkCallbacks *cb,
                   void *userdata, RedisLink **ret) {
        RedisLink *l;
        int r;

        l = calloc(1, sizeof(RedisLink));
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(e);
        l->bounds = *bounds;
        l->cb = *cb;
        l->userdata = userdata;
        l->url = (RedisUrl) { .port = url->port, .db = url->db };
        if ((url->host && !(l->url.host = strdup(url->host))) || (url->path && !(l->url.path = strdup(url->path))) ||
            (url->user && !(l->url.user = strdup(url->user))) ||
            (url->password && !(l->url.password = strdup(url->password)))) {
                redis_link_free(l);
                return -ENOMEM;
        }
        redis_url_where(&l->url, l->where, sizeof(l->where));
        r = sd_event_add_defer(e, &l->close_event, on_close_event, l);
        if (r >= 0)
                r = sd_event_add_time(e, &l->cmd_timer, CLOCK_MONOTONIC, UINT64_MAX, 10 * USEC_PER_MSEC, on_cmd_timeout, l);
        if (r < 0) {
                redis_link_free(l);
                return r;
        }
        (void) sd_event_source_set_enabled(l->close_event, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(l->cmd_timer, SD_EVENT_OFF);
        *ret = l;
        return 0;
}

int redis_link_psubscribe(RedisLink *l, const char *pattern) {
        char **p;

        if (l->cmd || l->sub)
                return -EBUSY;
        p = reallocarray(l->patterns, l->n_patterns + 1, sizeof(char *));
        if (!p)
                return -ENOMEM;
        l->patterns = p;
        p[l->n_patterns] = strdup(pattern);
        if (!p[l->n_patterns])
                return -ENOMEM;
        l->n_patterns++;
        return 0;
}

int redis_link_start(RedisLink *l) {
        if (l->n_patterns == 0)
                return -EINVAL; /* the subscriber connection would never be ready */
        link_connect(l);
        return 0;
}

bool redis_link_is_up(const RedisLink *l) {
        return l && l->up;
}

void redis_link_get_stats(const RedisLink *l, RedisLinkStats *ret) {
        *ret = l->stats;
}

const char *redis_link_where(const RedisLink *l) {
        return l->where;
}

RedisLink *redis_link_free(RedisLink *l) {
        if (!l)
                return NULL;
        l->cb = (RedisLinkCallbacks) {};
        l->closing = true;
        l->cmd = conn_close(l->cmd);
        l->sub = conn_close(l->sub);
        while (l->cmds.first)
                cmd_answer(l->cmds.first, NULL, -ECONNRESET);
        sd_event_source_disable_unref(l->retry_timer);
        sd_event_source_disable_unref(l->close_event);
        sd_event_source_disable_unref(l->cmd_timer);
        for (size_t i = 0; i < l->n_patterns; i++)
                free(l->patterns[i]);
        free(l->patterns);
        redis_url_done(&l->url);
        sd_event_unref(l->event);
        free(l);
        return NULL;
}
