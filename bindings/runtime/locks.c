/* SPDX-License-Identifier: MIT */
/* Locks: ch_lock / ch_trylock / ch_unlock / ch_with_lock over org.clusterhub.Locks1. */
#include "runtime-internal.h"

#define LOCK_DEFAULT_TIMEOUT_MS UINT64_C(10000)  /* the hub's default */
#define LOCK_BUS_MARGIN_MS UINT64_C(5000)        /* the bus waits longer: the hub's Timeout wins */

static int append_lock_options(sd_bus_message *m, void *userdata) {
        const ChLockOptions *o = userdata;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (o && o->timeout_ms > 0 && (r = sd_bus_message_append(m, "{sv}", "timeout_ms", "t", o->timeout_ms)) < 0)
                return r;
        if (o && o->lease_ms > 0 && (r = sd_bus_message_append(m, "{sv}", "lease_ms", "t", o->lease_ms)) < 0)
                return r;
        if (o && o->shared && (r = sd_bus_message_append(m, "{sv}", "shared", "b", 1)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static uint64_t lock_bus_timeout_usec(const ChLockOptions *o) {
        uint64_t t = o && o->timeout_ms ? o->timeout_ms : LOCK_DEFAULT_TIMEOUT_MS;

        if (t > UINT64_MAX / USEC_PER_MSEC - LOCK_BUS_MARGIN_MS)
                return UINT64_MAX; /* no limit */
        return (t + LOCK_BUS_MARGIN_MS) * USEC_PER_MSEC;
}

static int check_args(ChClient *c, const char *name) {
        return c && !isempty(name) ? 0 : -EINVAL;
}

/* A call of Locks1.MEMBER on lock NAME of namespace NS, its first argument (the name) appended. */
static int new_lock_call(ChClient *c, const char *ns, const char *name, const char *member, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = check_args(c, name);
        if (r < 0)
                return r;
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, CH_BUS_NAME, path, CH_LOCKS1_INTERFACE, member);
        if (r < 0)
                return r;
        r = sd_bus_message_append_basic(m, 's', name);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

_public_ int ch_lock(ChClient *c, const char *ns, const char *name, const ChLockOptions *opts, uint64_t *ret_token) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t token;
        int r;

        /* built here rather than with the generated blocking stub, whose bus timeout (25 s) would
         * cut long or unlimited waits short */
        r = new_lock_call(c, ns, name, "Lock", &m);
        if (r < 0)
                return r;
        r = append_lock_options(m, (void *) opts);
        if (r < 0)
                return r;
        r = sd_bus_call(c->bus, m, lock_bus_timeout_usec(opts), &e, &reply);
        client_set_error(c, &e, r);
        sd_bus_error_free(&e);
        if (r < 0)
                return r;
        r = sd_bus_message_read_basic(reply, 't', &token);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        if (ret_token)
                *ret_token = token;
        return 0;
}

_public_ int ch_trylock(ChClient *c, const char *ns, const char *name, const ChLockOptions *opts, uint64_t *ret_token) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int acquired = 0, r;
        uint64_t token = 0;

        r = check_args(c, name);
        if (r < 0)
                return r;
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        r = ch_locks1_call_try_lock(c->bus, CH_BUS_NAME, path, name, append_lock_options, (void *) opts, &acquired, &token, &e);
        client_set_error(c, &e, r);
        sd_bus_error_free(&e);
        if (r < 0)
                return r;
        if (!acquired)
                return -EBUSY;
        if (ret_token)
                *ret_token = token;
        return 0;
}

_public_ int ch_unlock(ChClient *c, const char *ns, const char *name, uint64_t token) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = check_args(c, name);
        if (r < 0)
                return r;
        r = ch_namespace_path(ns, &path);
        if (r < 0)
                return r;
        r = ch_locks1_call_unlock(c->bus, CH_BUS_NAME, path, name, token, &e);
        client_set_error(c, &e, r);
        sd_bus_error_free(&e);
        return r;
}

_public_ int ch_unlock_noreply(ChClient *c, const char *ns, const char *name, uint64_t token) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_lock_call(c, ns, name, "Unlock", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append_basic(m, 't', &token);
        if (r < 0)
                return r;
        /* the hub processes one connection's messages in order: a later Lock of ours waits
         * behind this Unlock; a failure is counted by the hub ('unheard_errors') */
        r = sd_bus_message_set_expect_reply(m, 0);
        if (r < 0)
                return r;
        r = sd_bus_send(c->bus, m, NULL);
        return r < 0 ? r : 0;
}

_public_ int ch_with_lock(ChClient *c, const char *ns, const char *name, const ChLockOptions *opts,
                          ch_locked_fn fn, void *userdata) {
        uint64_t token;
        int r, q;

        if (!fn)
                return -EINVAL;
        r = ch_lock(c, ns, name, opts, &token);
        if (r < 0)
                return r;
        r = fn(c, token, userdata);
        q = opts && opts->check_unlock ? ch_unlock(c, ns, name, token) : ch_unlock_noreply(c, ns, name, token);
        return r < 0 ? r : q < 0 ? q : r;
}
