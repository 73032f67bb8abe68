/* SPDX-License-Identifier: MIT */
/*
 * Test harness for bus tests: private buses, the hub, helper processes.
 *
 * Every process the harness starts is tracked by PID and killed (and reaped)
 * by the matching stop call, by th_cleanup_all(), and - if the test aborts on
 * a failed assertion - by a SIGABRT handler; children also get
 * PR_SET_PDEATHSIG so they die with the test process in any case.
 * Nothing here touches the host's buses: buses live in fresh temp dirs and
 * spawned processes get DBUS_SESSION_BUS_ADDRESS / DBUS_SYSTEM_BUS_ADDRESS
 * pointing at the private bus (or unset).
 *
 * Typical GTest use:
 *
 *     static void test_x(ThFixture *f, gconstpointer data) {
 *             ...f->bus.address, f->client (an sd-bus client), f->hub...
 *     }
 *     int main(int argc, char **argv) {
 *             g_test_init(&argc, &argv, NULL);
 *             TH_ADD_BUS_TEST_WITH_HUB("/store/set-get", test_x);  // on both brokers
 *             return g_test_run();
 *     }
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <glib.h>
#include <systemd/sd-bus.h>

G_BEGIN_DECLS

/* ---- processes ---------------------------------------------------------- */

typedef struct ThProc {
        pid_t pid;       /* > 0 while running (not yet reaped) */
        int status;      /* wait status once reaped (see th_proc_wait()) */
        bool reaped;
        char *name;      /* argv[0], for messages */
} ThProc;

#define TH_PROC_NULL { .pid = -1 }

/*
 * Fork + exec argv (argv[0] looked up in PATH if it has no '/').
 * envp: the full environment of the child, or NULL to inherit ours minus
 * DBUS_SESSION_BUS_ADDRESS / DBUS_SYSTEM_BUS_ADDRESS.
 * stdin is /dev/null; stdout_fd / stderr_fd: fd to use, or -1 to inherit
 * (stdout is never inherited as-is: TAP lives there, so -1 sends the child's
 * stdout to our stderr).  The child gets PR_SET_PDEATHSIG(SIGKILL).
 * Returns the pid (> 0) or a negative errno.
 */
pid_t th_spawn(ThProc *proc, const char *const *argv, const char *const *envp,
               int stdout_fd, int stderr_fd);
/* kill(2) the process if it still runs; returns 0 or -errno. */
int th_proc_kill(ThProc *proc, int sig);
/*
 * Wait up to timeout_ms (-1: forever) for the process to exit and reap it.
 * Returns true if it has exited (*status = wait status, may be NULL).
 */
bool th_proc_wait(ThProc *proc, int timeout_ms, int *status);
/* Poll without blocking: true if it exited (and reap it). */
bool th_proc_exited(ThProc *proc);
/*
 * Stop: send sig (SIGTERM if 0), wait up to timeout_ms, then SIGKILL and wait.
 * Returns the wait status.  Safe on a never-started or already reaped proc.
 */
int th_proc_stop(ThProc *proc, int sig, int timeout_ms);
/* Free the name; the process must be stopped/reaped. */
void th_proc_clear(ThProc *proc);

/* Number of spawned processes not yet reaped (for leak checks). */
unsigned th_live_children(void);
/* Kill (SIGKILL) and reap every process the harness started: last resort. */
void th_cleanup_all(void);

/* ---- private buses ------------------------------------------------------ */

typedef enum ThBusKind {
        TH_BUS_DBUS_DAEMON,     /* dbus-daemon, session type, permissive policy */
        TH_BUS_BROKER,          /* dbus-broker driven by tests/harness/th-broker */
        TH_BUS_SYSTEM_LIKE,     /* dbus-daemon, system type, default deny + <include> policy */
        _TH_BUS_KIND_MAX,
} ThBusKind;

typedef struct ThBus {
        ThBusKind kind;
        char *tmpdir;           /* fresh private directory, removed by th_bus_stop() */
        char *address;          /* "unix:path=..." to hand to clients and the hub */
        char *config_path;      /* dbus-daemon config the harness wrote (NULL for broker) */
        char *skip_reason;      /* set when th_bus_start() returns false */
        ThProc proc;            /* dbus-daemon or th-broker */
} ThBus;

const char *th_bus_kind_to_string(ThBusKind kind);

/*
 * Start a private bus.  Returns true on success (bus->address is set).
 * On failure returns false with bus->skip_reason set (e.g. dbus-broker not
 * installed); the test decides whether that is a skip or a failure, see
 * TH_BUS_START_OR_SKIP().  For TH_BUS_SYSTEM_LIKE use th_bus_start_full().
 */
bool th_bus_start(ThBus *bus, ThBusKind kind);
/*
 * policy_file: for TH_BUS_SYSTEM_LIKE, a bus policy file (e.g. the project's
 * systemd/org.clusterhub.Hub1.conf) <include>d after a system.conf-like
 * default policy (allow connect, deny own and method calls, allow signals,
 * replies and the bus driver).  May be NULL.  Ignored for other kinds.
 * The temp dir is world-accessible for this kind so that tests can connect
 * as another user (setpriv --reuid=65534 ...).
 */
bool th_bus_start_full(ThBus *bus, ThBusKind kind, const char *policy_file);
/* Kill the bus by PID, wait for it, remove the temp dir.  Idempotent. */
void th_bus_stop(ThBus *bus);

/* g_test_skip() and return from the calling test function if the bus can't start. */
#define TH_BUS_START_OR_SKIP(bus, kind) G_STMT_START {                    \
                if (!th_bus_start((bus), (kind))) {                       \
                        g_test_skip((bus)->skip_reason);                  \
                        return;                                           \
                }                                                         \
        } G_STMT_END

/* ---- sd-bus clients ----------------------------------------------------- */

/* sd_bus_new + set_address + set_bus_client + start (Hello done).  0 or -errno. */
int th_connect(sd_bus **ret, const char *address);
/* th_connect() to the hub's private socket at PATH ("unix:path=PATH"; Hello goes to the hub's
 * org.freedesktop.DBus shim). */
int th_connect_socket(sd_bus **ret, const char *path);
/* Has `name` an owner on the bus of `bus`?  1 / 0 / -errno. */
int th_name_has_owner(sd_bus *bus, const char *name);
/* The pid of NAME's owner, -ENXIO when it has none, or another -errno. */
int th_name_owner_pid(sd_bus *bus, const char *name);
/* The counter KEY (a 't') of the hub's Hub1.GetStats, called on BUS.  0, -ENOENT when the reply
 * has no such counter, -errno. */
int th_get_stat(sd_bus *bus, const char *key, uint64_t *ret);
/* Poll until `name` has an owner (want_owner) or none (!want_owner).  0, -ETIMEDOUT, -errno. */
int th_wait_for_name(sd_bus *bus, const char *name, bool want_owner, int timeout_ms);

/* ---- the hub ------------------------------------------------------------ */

#define TH_HUB_NAME "org.clusterhub.Hub1"
#define TH_HUB_PATH "/org/clusterhub/Hub1"

typedef struct ThHub {
        ThProc proc;
        char *address;
        char *binary;
} ThHub;

/*
 * The hub binary: $CLUSTERHUBD, else $MESON_BUILD_ROOT/service/clusterhubd.
 * Returns a newly allocated path, or NULL if none exists (g_free()).
 */
char *th_hub_binary(void);

/*
 * Spawn the hub with --address=ADDRESS plus extra_args (NULL-terminated, may
 * be NULL), its stdout+stderr going to our stderr (the test log), and wait up
 * to 10 s for org.clusterhub.Hub1 to get an owner.  Returns 0, -ENOENT (no
 * binary: hub->proc.pid stays -1), -ETIMEDOUT, -ECHILD (hub exited early:
 * hub->proc.status holds its wait status) or another -errno.
 * The hub's environment has DBUS_SESSION_BUS_ADDRESS and
 * DBUS_SYSTEM_BUS_ADDRESS set to ADDRESS.
 */
int th_hub_spawn(ThHub *hub, const char *address, const char *const *extra_args);
/* Like th_hub_spawn() but don't wait for the name. */
int th_hub_spawn_nowait(ThHub *hub, const char *address, const char *const *extra_args);
/* The private socket a test's hub listens on: "hub.sock" in BUS's temp dir (g_free()). */
char *th_hub_socket_path(const ThBus *bus);
/* th_hub_spawn() on BUS with --listen=th_hub_socket_path(BUS) before EXTRA_ARGS; the socket
 * exists once it returns 0.  *RET_PATH (may be NULL) gets the path (g_free()). */
int th_hub_spawn_listening(ThHub *hub, const ThBus *bus, const char *const *extra_args, char **ret_path);
int th_hub_kill(ThHub *hub, int sig);
/* Wait up to 10 s for the hub to exit; true if it did (*status = wait status). */
bool th_hub_wait_exit(ThHub *hub, int *status);
/* SIGTERM, wait 10 s, then SIGKILL; returns the wait status (0 for a clean exit). */
int th_hub_stop(ThHub *hub);
void th_hub_clear(ThHub *hub);

/* ---- GTest fixture ------------------------------------------------------ */

typedef struct ThFixture {
        ThBus bus;
        ThHub hub;
        sd_bus *client;         /* connected to bus.address; with TH_TRANSPORT=private to the
                                 * hub's private socket (socket_path) */
        char *socket_path;      /* with TH_TRANSPORT=private: where the hub listens */
        bool with_hub;
        bool ready;             /* setup completed (else it skipped or failed) */
} ThFixture;

/* user_data: GINT_TO_POINTER(ThBusKind).  Skips if the bus can't start. */
void th_fixture_setup(ThFixture *f, gconstpointer user_data);
/* Same, plus the hub started and owning its name (skips if no hub binary).  With the environment
 * TH_TRANSPORT=private the hub also listens on th_hub_socket_path() and f->client is connected
 * there instead of to the bus: the bus suites then run their client side over the socket. */
void th_fixture_setup_hub(ThFixture *f, gconstpointer user_data);
/* true when the environment has TH_TRANSPORT=private (the _WITH_HUB fixtures' client on the
 * hub's socket). */
bool th_transport_private(void);
/*
 * After a test stopped and cleared f->hub: spawn it again on f->bus with EXTRA_ARGS (NULL-
 * terminated, may be NULL), in private mode listening on f->socket_path again, then
 * th_fixture_reconnect().  0 or -errno as th_hub_spawn().
 */
int th_fixture_spawn_hub(ThFixture *f, const char *const *extra_args);
/*
 * In private mode, replace f->client (a direct connection ends with the hub that served it) by a
 * new connection to the hub's socket; on the bus a no-op, the client's bus connection survives a
 * hub restart.  On failure f->client is left as it was.  0 or -errno.
 */
int th_fixture_reconnect(ThFixture *f);
/* Stops everything by PID; runs even when the test failed. */
void th_fixture_teardown(ThFixture *f, gconstpointer user_data);
/*
 * true if setup did not complete (skipped or failed).  GLib 2.74 runs the test
 * function even after setup called g_test_skip(), so test functions start with
 * TH_RETURN_IF_SKIPPED(f).
 */
bool th_fixture_skipped(ThFixture *f);
#define TH_RETURN_IF_SKIPPED(f) G_STMT_START { if (th_fixture_skipped(f)) return; } G_STMT_END

/* Register `func` once per bus kind, as "/dbus-daemon<path>" and "/dbus-broker<path>". */
#define TH_ADD_BUS_TEST(path, func)                                             \
        G_STMT_START {                                                         \
                g_test_add("/dbus-daemon" path, ThFixture,                     \
                           GINT_TO_POINTER(TH_BUS_DBUS_DAEMON),                \
                           th_fixture_setup, func, th_fixture_teardown);       \
                g_test_add("/dbus-broker" path, ThFixture,                     \
                           GINT_TO_POINTER(TH_BUS_BROKER),                     \
                           th_fixture_setup, func, th_fixture_teardown);       \
        } G_STMT_END
#define TH_ADD_BUS_TEST_WITH_HUB(path, func)                                    \
        G_STMT_START {                                                         \
                g_test_add("/dbus-daemon" path, ThFixture,                     \
                           GINT_TO_POINTER(TH_BUS_DBUS_DAEMON),                \
                           th_fixture_setup_hub, func, th_fixture_teardown);   \
                g_test_add("/dbus-broker" path, ThFixture,                     \
                           GINT_TO_POINTER(TH_BUS_BROKER),                     \
                           th_fixture_setup_hub, func, th_fixture_teardown);   \
        } G_STMT_END

G_END_DECLS
