/* SPDX-License-Identifier: MIT */
/*
 * clusterhub-worker: a small, complete clusterhub worker.
 *
 *   clusterhub-worker [--user|--system|--address=ADDR] [--listen=EVENT]... [ID]
 *
 * Registers with the hub as worker ID (empty or absent: the hub derives the id
 * from the caller's systemd unit, clusterhub-worker@3.service -> "3"),
 * subscribes to the Event signal of namespace "default" (one bus-side match
 * per --listen=EVENT, arg0 filtering; none: all events) and prints each event
 * as one line on stdout:
 *
 *   EVENT ORIGIN PAYLOAD
 *
 * It follows the hub's name: when the hub restarts (or is started later), the
 * worker registers again.  It prints only events sent by the current owner of
 * the hub's name.  SIGTERM / SIGINT end it with exit status 0; losing the bus
 * (its daemon exited, or it closed the connection) ends it with a line saying
 * so and exit status 1, so that Restart=on-failure starts it again.
 * This is what clusterhub-worker@.service runs; docs/systemd.md shows how to
 * point the template at your own program instead.
 *
 * Built on sd-bus, sd-event and libclusterhub's generated stubs only.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <clusterhub/clusterhub.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

typedef enum BusKind {
        BUS_USER,
        BUS_SYSTEM,
        BUS_ADDRESS,
} BusKind;

typedef struct Worker {
        sd_event *event;
        sd_bus *bus;
        BusKind bus_kind;
        const char *address;
        const char *id;             /* as given ("" = derive from the unit) */
        char **listen;              /* NULL-terminated, may be empty */
        size_t n_listen;
        sd_bus_slot *register_slot; /* pending Register call */
        char *registered_path;      /* our worker object, once registered */
        char *hub_owner;            /* unique name of the hub, NULL while there is none */
        unsigned registrations;
} Worker;

static void help(void) {
        printf("clusterhub-worker [OPTIONS...] [ID]\n\n"
               "A clusterhub worker: registers with the hub (%s) as worker ID and\n"
               "prints the events it receives, one line each: EVENT ORIGIN PAYLOAD.\n"
               "Without ID (or with \"\") the hub derives the id from the systemd unit\n"
               "(clusterhub-worker@3.service -> 3). Registers again when the hub restarts.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --user              Connect to the user (session) bus (default)\n"
               "     --system            Connect to the system bus\n"
               "     --address=ADDRESS   Connect to the bus at ADDRESS\n"
               "     --listen=EVENT      Print only EVENT (repeatable; default: all events)\n",
               CH_BUS_NAME);
}

/* ---- printing payloads -------------------------------------------------- */

static int print_value(FILE *f, sd_bus_message *m);

static int print_basic(FILE *f, sd_bus_message *m, char type) {
        union {
                uint8_t u8;
                int b;
                int16_t i16;
                uint16_t u16;
                int32_t i32;
                uint32_t u32;
                int64_t i64;
                uint64_t u64;
                double d;
                const char *s;
                int fd;
        } v;
        int r = sd_bus_message_read_basic(m, type, &v);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        switch (type) {
        case 'y': fprintf(f, "%u", v.u8); break;
        case 'b': fputs(v.b ? "true" : "false", f); break;
        case 'n': fprintf(f, "%" PRIi16, v.i16); break;
        case 'q': fprintf(f, "%" PRIu16, v.u16); break;
        case 'i': fprintf(f, "%" PRIi32, v.i32); break;
        case 'u': fprintf(f, "%" PRIu32, v.u32); break;
        case 'x': fprintf(f, "%" PRIi64, v.i64); break;
        case 't': fprintf(f, "%" PRIu64, v.u64); break;
        case 'd': fprintf(f, "%g", v.d); break;
        case 'h': fprintf(f, "fd:%d", v.fd); break;
        case 's':
        case 'o':
        case 'g':
                fputc('"', f);
                for (const char *p = v.s; *p; p++)
                        if (*p == '"' || *p == '\\')
                                fprintf(f, "\\%c", *p);
                        else if ((unsigned char) *p < 0x20)
                                fprintf(f, "\\x%02x", (unsigned char) *p);
                        else
                                fputc(*p, f);
                fputc('"', f);
                break;
        default:
                return -EBADMSG;
        }
        return 1;
}

/* Print the contents of the container we are in, separated by sep. */
static int print_items(FILE *f, sd_bus_message *m, const char *sep) {
        for (bool first = true;; first = false) {
                int r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        return 1;
                if (!first)
                        fputs(sep, f);
                r = print_value(f, m);
                if (r < 0)
                        return r;
        }
}

static int print_value(FILE *f, sd_bus_message *m) {
        const char *contents = NULL;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (!contents)
                return print_basic(f, m, type);

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        switch (type) {
        case 'v':
                fprintf(f, "<%s ", contents);
                r = print_items(f, m, " ");
                fputc('>', f);
                break;
        case 'a':
                fputc(contents[0] == '{' ? '{' : '[', f);
                r = print_items(f, m, ", ");
                fputc(contents[0] == '{' ? '}' : ']', f);
                break;
        case 'e':
                r = print_items(f, m, ": ");
                break;
        default: /* 'r' */
                fputc('(', f);
                r = print_items(f, m, ", ");
                fputc(')', f);
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* ---- events ------------------------------------------------------------- */

static int on_event(sd_bus_message *m, void *userdata, const char *event, const char *origin) {
        Worker *w = userdata;
        const char *sender = sd_bus_message_get_sender(m);
        int r;

        /* The match's sender= keeps other clients' broadcasts away, but a signal sent to us
         * directly arrives anyway, and sd-bus matches a well-known sender= against any
         * unique name: only the current owner of the hub's name is the hub. */
        if (!w->hub_owner || !sender || strcmp(sender, w->hub_owner) != 0)
                return 0;

        printf("%s %s ", event, origin);
        r = print_value(stdout, m); /* the payload variant */
        if (r < 0)
                printf("(unreadable payload: %s)", strerror(-r));
        putchar('\n');
        fflush(stdout);
        return 0;
}

static int subscribe_events(Worker *w) {
        int r;

        /* sender = the hub's name: the bus delivers only the hub's signals, so
         * origin can be trusted.  One match per event: the bus filters on arg0. */
        if (w->n_listen == 0) {
                r = ch_events1_match_event_async(w->bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH,
                                                 NULL, NULL, on_event, w);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < w->n_listen; i++) {
                r = ch_events1_match_event_async(w->bus, NULL, CH_BUS_NAME, CH_DEFAULT_NAMESPACE_PATH,
                                                 w->listen[i], NULL, on_event, w);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- registration ------------------------------------------------------- */

static int append_no_options(sd_bus_message *m, void *userdata) {
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int start_register(Worker *w);

static int on_registered(sd_bus_message *reply, const sd_bus_error *error, const char *path, void *userdata) {
        Worker *w = userdata;

        w->register_slot = sd_bus_slot_unref(w->register_slot);
        if (error) {
                /* The hub is not there (yet): NameOwnerChanged brings us back. */
                if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                           SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED)) {
                        fprintf(stderr, "clusterhub-worker: hub not available (%s), waiting for it.\n",
                                error->message ?: error->name);
                        (void) sd_notify(false, "STATUS=Waiting for the hub");
                        return 0;
                }
                /* IdInUse, AccessDenied, InvalidArgs...: fatal, let the supervisor decide. */
                fprintf(stderr, "clusterhub-worker: Register failed: %s: %s\n", error->name,
                        error->message ?: "");
                (void) sd_event_exit(w->event, EXIT_FAILURE);
                return 0;
        }

        free(w->registered_path);
        w->registered_path = strdup(path);
        w->registrations++;
        fprintf(stderr, "clusterhub-worker: registered as %s%s\n", path,
                w->registrations > 1 ? " (again, after a hub restart)" : "");
        (void) sd_notifyf(false, "READY=1\nSTATUS=Registered as %s", path);
        return 0;
}

static int start_register(Worker *w) {
        int r;

        w->register_slot = sd_bus_slot_unref(w->register_slot);
        r = ch_hub1_call_register_async(w->bus, &w->register_slot, CH_BUS_NAME, CH_HUB_PATH, w->id,
                                        append_no_options, NULL, on_registered, w, 0);
        if (r < 0)
                fprintf(stderr, "clusterhub-worker: cannot call Register: %s\n", strerror(-r));
        return r;
}

static int set_hub_owner(Worker *w, const char *owner) {
        char *copy = NULL;

        if (owner && *owner && !(copy = strdup(owner)))
                return -ENOMEM;
        free(w->hub_owner);
        w->hub_owner = copy;
        return 0;
}

static int on_hub_owner(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Worker *w = userdata;
        const char *owner = NULL;

        /* an error (NameHasNoOwner): no hub yet, NameOwnerChanged will tell */
        if (sd_bus_message_is_method_error(m, NULL) || sd_bus_message_read(m, "s", &owner) < 0)
                return 0;
        if (set_hub_owner(w, owner) < 0)
                return sd_event_exit(w->event, EXIT_FAILURE);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Worker *w = userdata;
        const char *name, *old_owner, *new_owner, *sender = sd_bus_message_get_sender(m);
        int r;

        /* from the bus driver only: anyone may send us a look-alike */
        if (!sender || strcmp(sender, "org.freedesktop.DBus") != 0)
                return 0;
        r = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner);
        if (r < 0)
                return 0;
        if (strcmp(name, CH_BUS_NAME) != 0)
                return 0;
        if (set_hub_owner(w, new_owner) < 0)
                return sd_event_exit(w->event, EXIT_FAILURE);
        if (*old_owner) {
                fprintf(stderr, "clusterhub-worker: the hub went away.\n");
                free(w->registered_path);
                w->registered_path = NULL;
        }
        if (*new_owner) {
                fprintf(stderr, "clusterhub-worker: the hub is back (%s), registering again.\n", new_owner);
                r = start_register(w);
                if (r < 0)
                        (void) sd_event_exit(w->event, EXIT_FAILURE);
        }
        return 0;
}

/* ---- setup -------------------------------------------------------------- */

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Worker *w = userdata;
        return sd_event_exit(w->event, EXIT_SUCCESS);
}

/* sd-bus's own signal once the connection is gone.  A hub restart is not this (the worker
 * registers again); without the bus nothing works, so end with a failure and say why. */
static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Worker *w = userdata;
        const char *address = NULL;

        (void) sd_bus_get_address(w->bus, &address);
        fprintf(stderr, "clusterhub-worker: lost the connection to the bus %s: the bus closed it "
                "(its daemon exited, or it dropped this worker); exiting.\n", address ?: "(unknown address)");
        (void) sd_notify(false, "STATUS=Lost the bus");
        return sd_event_exit(w->event, EXIT_FAILURE);
}

static int connect_bus(Worker *w) {
        int r;

        switch (w->bus_kind) {
        case BUS_SYSTEM:
                r = sd_bus_open_system_with_description(&w->bus, "clusterhub-worker");
                break;
        case BUS_ADDRESS:
                r = sd_bus_new(&w->bus);
                if (r < 0)
                        break;
                (void) sd_bus_set_description(w->bus, "clusterhub-worker");
                r = sd_bus_set_address(w->bus, w->address);
                if (r < 0)
                        break;
                r = sd_bus_set_bus_client(w->bus, true);
                if (r < 0)
                        break;
                r = sd_bus_start(w->bus);
                break;
        default:
                r = sd_bus_open_user_with_description(&w->bus, "clusterhub-worker");
        }
        if (r < 0) {
                fprintf(stderr, "clusterhub-worker: cannot connect to the bus: %s\n", strerror(-r));
                return r;
        }
        (void) sd_bus_error_add_map(ch_error_map);
        /* The hub's errors are ours to handle; a bus that goes away ends us (a local rule:
         * sd-bus delivers it, the bus never sees it). */
        r = sd_bus_match_signal(w->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, w);
        if (r < 0)
                return r;
        return sd_bus_attach_event(w->bus, w->event, SD_EVENT_PRIORITY_NORMAL);
}

static int parse_argv(Worker *w, int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_USER, ARG_SYSTEM, ARG_ADDRESS, ARG_LISTEN };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "user", no_argument, NULL, ARG_USER },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "listen", required_argument, NULL, ARG_LISTEN },
                {}
        };
        int c;

        w->listen = calloc((size_t) argc + 1, sizeof(char *));
        if (!w->listen)
                return -ENOMEM;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("clusterhub-worker %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_USER:
                        w->bus_kind = BUS_USER;
                        break;
                case ARG_SYSTEM:
                        w->bus_kind = BUS_SYSTEM;
                        break;
                case ARG_ADDRESS:
                        w->bus_kind = BUS_ADDRESS;
                        w->address = optarg;
                        break;
                case ARG_LISTEN:
                        if (!*optarg) {
                                fprintf(stderr, "clusterhub-worker: --listen= needs an event name.\n");
                                return -EINVAL;
                        }
                        w->listen[w->n_listen++] = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                w->id = argv[optind++];
        if (optind < argc) {
                fprintf(stderr, "clusterhub-worker: unexpected argument '%s'; see --help.\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        Worker w = { .id = "" };
        sigset_t mask;
        int r, ret = EXIT_FAILURE;

        setvbuf(stdout, NULL, _IOLBF, 0);
        r = parse_argv(&w, argc, argv);
        if (r <= 0) {
                free(w.listen);
                return r < 0 ? 2 : EXIT_SUCCESS;
        }

        r = sd_event_default(&w.event);
        if (r < 0) {
                fprintf(stderr, "clusterhub-worker: %s\n", strerror(-r));
                goto finish;
        }
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
            sd_event_add_signal(w.event, NULL, SIGTERM, on_signal, &w) < 0 ||
            sd_event_add_signal(w.event, NULL, SIGINT, on_signal, &w) < 0) {
                fprintf(stderr, "clusterhub-worker: cannot handle signals.\n");
                goto finish;
        }
        (void) sd_event_set_watchdog(w.event, true);

        if (connect_bus(&w) < 0)
                goto finish;

        /* Follow the hub first, so that no restart between the calls below goes unseen. */
        r = sd_bus_add_match_async(w.bus, NULL,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                   "arg0='" CH_BUS_NAME "'",
                                   on_name_owner_changed, NULL, &w);
        if (r < 0) {
                fprintf(stderr, "clusterhub-worker: cannot watch the hub: %s\n", strerror(-r));
                goto finish;
        }
        r = sd_bus_call_method_async(w.bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "GetNameOwner", on_hub_owner, &w, "s", CH_BUS_NAME);
        if (r < 0) {
                fprintf(stderr, "clusterhub-worker: cannot ask for the hub: %s\n", strerror(-r));
                goto finish;
        }
        r = subscribe_events(&w);
        if (r < 0) {
                fprintf(stderr, "clusterhub-worker: cannot subscribe to events: %s\n", strerror(-r));
                goto finish;
        }
        if (start_register(&w) < 0)
                goto finish;

        r = sd_event_loop(w.event);
        if (r < 0)
                fprintf(stderr, "clusterhub-worker: event loop failed: %s\n", strerror(-r));
        else
                ret = r;
        (void) sd_notify(false, "STOPPING=1");

finish:
        sd_bus_slot_unref(w.register_slot);
        sd_bus_flush_close_unref(w.bus);
        sd_event_unref(w.event);
        free(w.registered_path);
        free(w.hub_owner);
        free(w.listen);
        return ret;
}
