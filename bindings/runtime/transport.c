/* SPDX-License-Identifier: MIT */
/* Choosing the transport: the hub's private socket or the bus (ch_bus_open()).
 *
 * The choice, in order: ChClientOptions.transport, else $CLUSTERHUB_TRANSPORT, else auto.  The
 * socket: ChClientOptions.private_socket, else $CLUSTERHUB_PRIVATE_SOCKET, else the standard one
 * of the bus the client would use (the hub listens there only when its bus is the standard one,
 * so a client on another bus never reaches another bus's hub).  An explicit bus address has no
 * standard socket: such a client stays on its bus unless a socket is named.  After connecting, the
 * server must be root or our own uid (systemd's bus_check_peercred()): anyone else could have put
 * a socket there. */
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime-internal.h"

#define USER_SOCKET_SUFFIX "/clusterhub/private"
#define SYSTEM_SOCKET "/run/clusterhub/private"
#define SYSTEM_BUS_SOCKET "/run/dbus/system_bus_socket"
#define SYSTEM_BUS_SOCKET_OLD "/var/run/dbus/system_bus_socket"

static const char *const transport_names[] = {
        [CH_TRANSPORT_AUTO] = "auto",
        [CH_TRANSPORT_BUS] = "bus",
        [CH_TRANSPORT_PRIVATE] = "private",
};

_public_ int ch_transport_from_string(const char *s, ChTransport *ret) {
        if (!s || !ret)
                return -EINVAL;
        for (ChTransport t = CH_TRANSPORT_AUTO; t <= CH_TRANSPORT_PRIVATE; t++)
                if (streq(s, transport_names[t])) {
                        *ret = t;
                        return 0;
                }
        return -EINVAL;
}

_public_ const char *ch_transport_to_string(ChTransport t) {
        return t >= CH_TRANSPORT_AUTO && t <= CH_TRANSPORT_PRIVATE ? transport_names[t] : NULL;
}

int transport_of(const ChClientOptions *o, ChTransport *ret, sd_bus_error *error) {
        const char *e;

        if (o->transport != CH_TRANSPORT_DEFAULT) {
                if (!ch_transport_to_string(o->transport))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown transport %d.", (int) o->transport);
                *ret = o->transport;
                return 0;
        }
        e = getenv("CLUSTERHUB_TRANSPORT");
        if (isempty(e)) {
                *ret = CH_TRANSPORT_AUTO;
                return 0;
        }
        if (ch_transport_from_string(e, ret) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "CLUSTERHUB_TRANSPORT='%s' is not one of bus, private, auto.", e);
        return 0;
}

/* Is the bus in $VAR the standard one at PATH (unset: sd-bus uses that one)?  The hub's rule
 * (service/transport/socket.c), so that both sides agree on where the socket is. */
static bool bus_is_standard(const char *var, const char *path) {
        const char *e = getenv(var);
        size_t n;

        if (isempty(e))
                return true;
        if (strncmp(e, "unix:path=", strlen("unix:path=")) != 0)
                return false;
        e += strlen("unix:path=");
        n = strcspn(e, ",;");
        return n == strlen(path) && strncmp(e, path, n) == 0;
}

/* The standard socket of the hub of the bus in O, if that bus is the standard one: *ret NULL
 * when there is none. */
static int standard_socket(const ChClientOptions *o, char **ret) {
        _cleanup_free_ char *bus = NULL;
        const char *runtime;
        char *p = NULL;

        if (o->bus_type == CH_BUS_SYSTEM) {
                if (bus_is_standard("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_SOCKET) ||
                    bus_is_standard("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_SOCKET_OLD))
                        if (!(p = strdup(SYSTEM_SOCKET)))
                                return -ENOMEM;
        } else if (o->bus_type == CH_BUS_USER) {
                runtime = getenv("XDG_RUNTIME_DIR");
                if (runtime && runtime[0] == '/') {
                        if (asprintf(&bus, "%s/bus", runtime) < 0)
                                return -ENOMEM;
                        if (bus_is_standard("DBUS_SESSION_BUS_ADDRESS", bus) &&
                            asprintf(&p, "%s" USER_SOCKET_SUFFIX, runtime) < 0)
                                return -ENOMEM;
                }
        }
        *ret = p;
        return 0;
}

/* The socket to try for O: *ret NULL when there is none. */
static int socket_path_of(const ChClientOptions *o, char **ret) {
        const char *e;
        char *p;

        e = !isempty(o->private_socket) ? o->private_socket : getenv("CLUSTERHUB_PRIVATE_SOCKET");
        if (isempty(e)) {
                if (o->address || o->bus_type == CH_BUS_ADDRESS) {
                        *ret = NULL; /* an explicit bus: its hub's socket is not known */
                        return 0;
                }
                return standard_socket(o, ret);
        }
        p = strdup(e);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int transport_connect_bus(const ChClientOptions *o, sd_bus **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        const char *what;
        int r;

        if (o->address || o->bus_type == CH_BUS_ADDRESS) {
                what = o->address;
                if (isempty(o->address))
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "CH_BUS_ADDRESS without an address.");
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                if (o->description && (r = sd_bus_set_description(bus, o->description)) < 0)
                        return r;
                r = sd_bus_set_address(bus, o->address);
                if (r < 0)
                        goto fail;
                r = sd_bus_set_bus_client(bus, 1);
                if (r < 0)
                        return r;
                r = sd_bus_negotiate_fds(bus, 1);
                if (r < 0)
                        return r;
                r = sd_bus_start(bus);
        } else if (o->bus_type == CH_BUS_USER) {
                what = "the user bus";
                r = o->description ? sd_bus_open_user_with_description(&bus, o->description) : sd_bus_open_user(&bus);
        } else if (o->bus_type == CH_BUS_SYSTEM) {
                what = "the system bus";
                r = o->description ? sd_bus_open_system_with_description(&bus, o->description) : sd_bus_open_system(&bus);
        } else
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown bus type %d.", (int) o->bus_type);
        if (r < 0)
                goto fail;
        *ret = TAKE_PTR(bus);
        return 0;
fail:
        return sd_bus_error_set_errnof(error, r, "Cannot connect to %s: %s", what, strerror(-r));
}

/* The uid of the process serving BUS's socket: root or us, else -EPERM. */
static int check_server_uid(sd_bus *bus, uid_t *ret_uid) {
        struct ucred cred = {};
        socklen_t len = sizeof(cred);
        int fd;

        fd = sd_bus_get_fd(bus);
        if (fd < 0)
                return fd;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        if (len != sizeof(cred))
                return -EIO;
        *ret_uid = cred.uid;
        return cred.uid == 0 || cred.uid == geteuid() ? 0 : -EPERM;
}

int transport_connect_private(const char *path, const char *description, sd_bus **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *address = NULL;
        const char *unique;
        uid_t uid = (uid_t) -1;
        int r;

        if (isempty(path) || path[0] != '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The private socket '%s' is not an absolute path", path ? path : "");
        if (asprintf(&address, "unix:path=%s", path) < 0)
                return -ENOMEM;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        if (description && (r = sd_bus_set_description(bus, description)) < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot use the private socket %s: %s", path, strerror(-r));
        /* Hello goes to the hub's org.freedesktop.DBus shim, and sd_bus_add_match() sends AddMatch
         * to the hub, which then sends us only what we listen for */
        r = sd_bus_set_bus_client(bus, 1);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, 1);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot connect to the private socket %s: %s", path, strerror(-r));
        /* before anything but the authentication is written */
        r = check_server_uid(bus, &uid);
        if (r == -EPERM)
                return sd_bus_error_set_errnof(error, r,
                                               "The private socket %s is served by uid %u, neither root nor us (uid %u)",
                                               path, (unsigned) uid, (unsigned) geteuid());
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot check who serves the private socket %s: %s", path, strerror(-r));
        /* waits for the authentication and the answer to Hello: a hub that refuses us closes here */
        r = sd_bus_get_unique_name(bus, &unique);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "The hub on the private socket %s did not let us in: %s", path,
                                               strerror(-r));
        *ret = TAKE_PTR(bus);
        return 0;
}

static bool is_quiet_fallback(int r) {
        return r == -ENOENT || r == -ECONNREFUSED || r == -EACCES;
}

void transport_log(const char *fmt, ...) {
        va_list ap;

        fputs("libclusterhub: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

int transport_open(const ChClientOptions *o, sd_bus **ret, char **ret_socket, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        ChTransport t;
        int r;

        r = transport_of(o, &t, error);
        if (r < 0)
                return r;
        if (t != CH_TRANSPORT_BUS) {
                r = socket_path_of(o, &path);
                if (r < 0)
                        return r;
        }
        if (t == CH_TRANSPORT_PRIVATE && !path)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        o->address || o->bus_type == CH_BUS_ADDRESS
                                                ? "The private transport was asked for, but the hub's socket on an explicit bus "
                                                  "address is not known: set CLUSTERHUB_PRIVATE_SOCKET=PATH."
                                                : "The private transport was asked for, but this bus has no standard private "
                                                  "socket (no $XDG_RUNTIME_DIR, or a non-standard bus address): set "
                                                  "CLUSTERHUB_PRIVATE_SOCKET=PATH.");
        if (path) {
                r = transport_connect_private(path, o->description, ret, &e);
                if (r >= 0) {
                        *ret_socket = TAKE_PTR(path);
                        return 1;
                }
                if (t == CH_TRANSPORT_PRIVATE) {
                        sd_bus_error_move(error, &e);
                        return r;
                }
                /* auto: the bus then; say why unless the socket is simply not there (no hub
                 * listening, or not ours to use) */
                if (!is_quiet_fallback(r))
                        transport_log("%s; using the bus instead.", e.message ? e.message : strerror(-r));
                sd_bus_error_free(&e);
        }
        r = transport_connect_bus(o, ret, error);
        if (r < 0)
                return r;
        *ret_socket = NULL;
        return 0;
}

_public_ int ch_bus_open(sd_bus **ret, const ChClientOptions *opts, sd_bus_error *ret_error) {
        static const ChClientOptions defaults = { .bus_type = CH_BUS_USER };
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = transport_open(opts ? opts : &defaults, ret, &path, &e);
        if (r < 0 && !sd_bus_error_is_set(&e))
                (void) sd_bus_error_set_errno(&e, r);
        if (ret_error)
                sd_bus_error_move(ret_error, &e);
        else
                sd_bus_error_free(&e);
        return r;
}
