/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "bus-util.h"
#include "macro.h"
#include "match.h"
#include "shim.h"

static int method_hello(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Connection *c = userdata;

        /* dbus-daemon's answer to a second Hello */
        if (c->hello)
                return sd_bus_error_set(ret_error, SD_BUS_ERROR_FAILED, "Already handled an Hello message");
        c->hello = true;
        return bus_reply_return(m, "s", c->name);
}

static int match_error(sd_bus_error *ret_error, int r, const char *rule) {
        switch (r) {
        case -EINVAL:
        case -E2BIG:
                return sd_bus_error_setf(ret_error, SD_BUS_ERROR_MATCH_RULE_INVALID,
                                         "Invalid match rule '%.*s' (at most %u bytes).", 256, rule, MATCH_RULE_MAX_LEN);
        case -ENOBUFS:
                return sd_bus_error_setf(ret_error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "This connection has %u match rules already.", MATCH_SET_MAX_RULES);
        case -ENOENT:
                return sd_bus_error_setf(ret_error, SD_BUS_ERROR_MATCH_RULE_NOT_FOUND,
                                         "The given match rule wasn't found and can't be removed");
        default:
                return r;
        }
}

/* AddMatch and RemoveMatch: OP applied to the connection's rules. */
static int change_match(sd_bus_message *m, Connection *c, int (*op)(MatchSet *s, const char *text), sd_bus_error *ret_error) {
        const char *rule;
        int r;

        r = sd_bus_message_read(m, "s", &rule);
        if (r < 0)
                return r;
        r = op(c->matches, rule);
        if (r < 0)
                return match_error(ret_error, r, rule);
        return bus_reply_return(m, NULL);
}

static int method_add_match(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return change_match(m, userdata, match_set_add, ret_error);
}

static int method_remove_match(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return change_match(m, userdata, match_set_remove, ret_error);
}

/* The names on this "bus": the driver, the hub, and the connection itself. */
static bool name_has_owner(Connection *c, const char *name) {
        return streq(name, DBUS_SERVICE_NAME) || streq(name, HUB_BUS_NAME) || streq(name, c->name);
}

static int method_get_name_owner(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Connection *c = userdata;
        const char *name;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        if (!name_has_owner(c, name))
                return sd_bus_error_setf(ret_error, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                         "Could not get owner of name '%s': no such name", name);
        return bus_reply_return(m, "s", name);
}

static int method_name_has_owner(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Connection *c = userdata;
        const char *name;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        return bus_reply_return(m, "b", name_has_owner(c, name));
}

static int method_list_names(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Connection *c = userdata;

        return bus_reply_return(m, "as", 3, DBUS_SERVICE_NAME, HUB_BUS_NAME, c->name);
}

static int method_get_id(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Connection *c = userdata;
        char s[SD_ID128_STRING_MAX];
        sd_id128_t id;
        int r;

        r = sd_bus_get_bus_id(c->bus, &id);
        if (r < 0)
                return r;
        return bus_reply_return(m, "s", sd_id128_to_string(id, s));
}

static const sd_bus_vtable shim_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Hello", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", unique_name), method_hello,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddMatch", SD_BUS_ARGS("s", rule), SD_BUS_NO_RESULT, method_add_match,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveMatch", SD_BUS_ARGS("s", rule), SD_BUS_NO_RESULT, method_remove_match,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetNameOwner", SD_BUS_ARGS("s", name), SD_BUS_RESULT("s", unique_name),
                                method_get_name_owner, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("NameHasOwner", SD_BUS_ARGS("s", name), SD_BUS_RESULT("b", has_owner),
                                method_name_has_owner, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListNames", SD_BUS_NO_ARGS, SD_BUS_RESULT("as", names), method_list_names,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetId", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", id), method_get_id,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int shim_add(Connection *c) {
        return sd_bus_add_object_vtable(c->bus, NULL, DBUS_PATH, DBUS_INTERFACE, shim_vtable, c);
}
