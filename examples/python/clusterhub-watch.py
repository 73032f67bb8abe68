#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""clusterhub-watch: a desktop-style client of the hub on GDBus (PyGObject).

  clusterhub-watch.py [--address ADDR | --system] [--namespace NS] [--count N] [--no-keys] [PREFIX]
  clusterhub-watch.py [...] --get KEY [--get KEY ...]
  clusterhub-watch.py [...] --set KEY VALUE [--ttl-ms MS]

Watching prints one line per signal of namespace NS (default "default"):

  event EVENT ORIGIN PAYLOAD     org.clusterhub.Events1.Event, PAYLOAD as JSON
  key KEY COMMAND                org.clusterhub.Store1.KeyChanged (set, del, expired, hset, ...)

With PREFIX only the events PREFIX and PREFIX.* are asked for: the subscription carries
arg0namespace='PREFIX' (Gio.DBusSignalFlags.MATCH_ARG0_NAMESPACE), so the bus filters them.
Signals count only when they come from the current owner of org.clusterhub.Hub1, followed across
hub restarts: anyone on the bus can send a signal with the hub's path and interface straight to
this connection.

--get reads the store: one KEY prints its value as JSON (Get, or HGetAll for a hash); several
print "KEY VALUE" lines from one MGet (null for a key that is missing or not a plain value).
--set stores VALUE (JSON, or a plain string when it is not JSON) with Set, the TTL passed as
ttl_ms of D-Bus type t.

Needs python3-gi and gir1.2-glib-2.0 (Debian), i.e. PyGObject with Gio.
"""
import argparse
import json
import re
import signal
import sys

try:
    from gi.repository import Gio, GLib
except ImportError as e:  # pragma: no cover - depends on the host
    sys.exit(f"clusterhub-watch: PyGObject is missing ({e}); install python3-gi and gir1.2-glib-2.0")

HUB = "org.clusterhub.Hub1"
HUB_PATH = "/org/clusterhub/Hub1"
EVENTS = "org.clusterhub.Events1"
STORE = "org.clusterhub.Store1"
DBUS = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"

NAMESPACE_RE = re.compile(r"[A-Za-z0-9_]+")
# What the bus accepts in arg0namespace: dot-separated elements that do not start with a digit.
PREFIX_RE = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)*")


class Failure(Exception):
    """An error to print on stderr before exiting 1; name is the D-Bus error's, if any."""

    def __init__(self, text, name=None):
        super().__init__(text)
        self.name = name


def to_json(value):
    """A PyGObject-unpacked GVariant as one line of JSON (byte arrays as lists of numbers)."""
    def plain(v):
        if isinstance(v, (bytes, bytearray)):
            return list(v)
        raise TypeError(f"cannot print {type(v).__name__}")
    return json.dumps(value, default=plain, ensure_ascii=False, separators=(",", ":"))


def to_variant(value):
    """A JSON value as the GVariant the store keeps: s, b, x, d, av or a{sv}."""
    if isinstance(value, bool):
        return GLib.Variant("b", value)
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise Failure(f"{value} does not fit in a 64-bit integer")
        return GLib.Variant("x", value)
    if isinstance(value, float):
        return GLib.Variant("d", value)
    if isinstance(value, str):
        return GLib.Variant("s", value)
    if isinstance(value, list):
        return GLib.Variant("av", [to_variant(v) for v in value])
    if isinstance(value, dict):
        return GLib.Variant("a{sv}", {k: to_variant(v) for k, v in value.items()})
    raise Failure("null has no D-Bus type")


def parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def remote_error(e):
    """'Name: message' for a D-Bus error reply, the plain message for any other GLib.Error."""
    name = Gio.DBusError.get_remote_error(e)
    if name:
        Gio.DBusError.strip_remote_error(e)
        return name, f"{name}: {e.message}"
    return None, e.message


def connect(args):
    try:
        if args.address:
            flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
                     Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
            return Gio.DBusConnection.new_for_address_sync(args.address, flags, None, None)
        return Gio.bus_get_sync(Gio.BusType.SYSTEM if args.system else Gio.BusType.SESSION, None)
    except GLib.Error as e:
        hint = "" if args.address or args.system else " (is DBUS_SESSION_BUS_ADDRESS set?)"
        raise Failure(f"Cannot connect to the bus: {e.message}{hint}") from None


def call(bus, path, interface, method, params, reply_type):
    try:
        return bus.call_sync(HUB if path != DBUS_PATH else DBUS, path, interface, method, params,
                             GLib.VariantType(reply_type), Gio.DBusCallFlags.NONE, -1, None).unpack()
    except GLib.Error as e:
        name, text = remote_error(e)
        if name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
            raise Failure(f"No hub ({HUB}) on this bus: start it with 'clusterhubd --user' "
                          "or scripts/run-hub") from None
        raise Failure(text, name) from None


def hub_owner(bus):
    """The unique name that owns org.clusterhub.Hub1 now."""
    return call(bus, DBUS_PATH, DBUS, "GetNameOwner", GLib.Variant("(s)", (HUB,)), "(s)")[0]


def get(bus, path, keys):
    if len(keys) == 1:
        key = keys[0]
        try:
            value, = call(bus, path, STORE, "Get", GLib.Variant("(s)", (key,)), "(v)")
        except Failure as e:
            if e.name == "org.clusterhub.Error.NoSuchKey":
                raise Failure(f"No such key: {key}") from None
            if e.name != "org.clusterhub.Error.WrongType":
                raise
            kind, = call(bus, path, STORE, "Type", GLib.Variant("(s)", (key,)), "(s)")
            if kind != "hash":
                raise Failure(f"{key} holds a {kind}; --get reads plain values and hashes")
            value, = call(bus, path, STORE, "HGetAll", GLib.Variant("(s)", (key,)), "(a{sv})")
        print(to_json(value))
        return
    values, = call(bus, path, STORE, "MGet", GLib.Variant("(as)", (keys,)), "(a{sv})")
    for key in keys:
        print(key, to_json(values.get(key)))


def set_(bus, path, key, text, ttl_ms):
    options = {}
    if ttl_ms is not None:
        # *_ms options are unsigned: t (or u). A bare Python int would not say which.
        options["ttl_ms"] = GLib.Variant("t", ttl_ms)
    stored, = call(bus, path, STORE, "Set",
                   GLib.Variant("(sva{sv})", (key, to_variant(parse_value(text)), options)), "(b)")
    print("OK" if stored else "not set")


class Watch:
    def __init__(self, bus, path, prefix, keys, count):
        self.bus, self.prefix, self.count, self.seen, self.failed = bus, prefix, count, 0, False
        self.loop = GLib.MainLoop()
        self.owner = None
        # Follow the hub's owner first, then ask for it: no window where a restart goes unseen.
        bus.signal_subscribe(DBUS, DBUS, "NameOwnerChanged", DBUS_PATH, HUB,
                             Gio.DBusSignalFlags.NONE, self.on_owner_changed)
        # sender=HUB: the bus delivers only the owner's broadcasts, and GLib (2.80.1 and the
        # CVE-2024-34397 backports) drops other senders' unicast signals. We check again in
        # on_signal for older GLib.
        bus.signal_subscribe(HUB, EVENTS, "Event", path, prefix,
                             Gio.DBusSignalFlags.MATCH_ARG0_NAMESPACE if prefix else Gio.DBusSignalFlags.NONE,
                             self.on_signal)
        if keys:
            bus.signal_subscribe(HUB, STORE, "KeyChanged", path, None, Gio.DBusSignalFlags.NONE,
                                 self.on_signal)
        # A round trip to the bus after the AddMatch calls: they are in place once it returns.
        self.owner = hub_owner(bus)
        bus.set_exit_on_close(False)
        bus.connect("closed", self.on_closed)

    def on_owner_changed(self, bus, sender, path, interface, member, params):
        name, old, new = params.unpack()
        self.owner = new or None
        print(f"hub {'is now ' + new if new else 'is gone'}", file=sys.stderr, flush=True)

    def on_signal(self, bus, sender, path, interface, member, params):
        want = "(ssv)" if member == "Event" else "(ss)"
        args = params.unpack() if params.get_type_string() == want else ()
        if sender != self.owner or not args or (
                member == "Event" and self.prefix and args[0] != self.prefix
                and not args[0].startswith(self.prefix + ".")):
            # GLib and the bus filter all of this already; older GLib let other senders through.
            print(f"ignored {member} {args[0] if args else params.get_type_string()} from {sender}",
                  file=sys.stderr, flush=True)
            return
        if member == "Event":
            event, origin, payload = args
            line = f"event {event} {origin} {to_json(payload)}"
        else:
            key, command = args
            line = f"key {key} {command}"
        print(line, flush=True)
        self.seen += 1
        if self.count and self.seen >= self.count:
            self.loop.quit()

    def on_closed(self, bus, remote_peer_vanished, error):
        print("The bus connection closed", file=sys.stderr, flush=True)
        self.failed = True
        self.loop.quit()

    def run(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self.loop.quit)
        self.loop.run()
        return 1 if self.failed else 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="clusterhub-watch.py",
                                description="Print the hub's events and key changes, or read and write its store (GDBus).")
    bus = p.add_mutually_exclusive_group()
    bus.add_argument("--address", metavar="ADDR", help="the bus at ADDR (default: the session bus, $DBUS_SESSION_BUS_ADDRESS)")
    bus.add_argument("--system", action="store_true", help="the system bus")
    p.add_argument("--namespace", "--ns", default="default", metavar="NS", help="namespace (default: default)")
    p.add_argument("--count", type=int, default=0, metavar="N", help="exit after N lines")
    p.add_argument("--no-keys", dest="keys", action="store_false", help="leave out KeyChanged")
    p.add_argument("--get", action="append", metavar="KEY", help="print KEY's value and exit (repeatable)")
    p.add_argument("--set", nargs=2, metavar=("KEY", "VALUE"), help="store VALUE at KEY and exit")
    p.add_argument("--ttl-ms", type=int, metavar="MS", help="with --set: expire after MS milliseconds")
    p.add_argument("prefix", nargs="?", metavar="PREFIX", help="only events PREFIX and PREFIX.*")
    args = p.parse_args(argv)
    if not NAMESPACE_RE.fullmatch(args.namespace):
        p.error(f"invalid namespace {args.namespace!r}: letters, digits and _ only")
    if args.prefix is not None and (len(args.prefix) > 255 or not PREFIX_RE.fullmatch(args.prefix)):
        p.error(f"invalid PREFIX {args.prefix!r}: dot-separated names that do not start with a digit")
    if args.get and args.set:
        p.error("--get and --set do not go together")
    if (args.get or args.set) and args.prefix is not None:
        p.error("PREFIX is for watching")
    if args.ttl_ms is not None and (not args.set or not 0 < args.ttl_ms < 2**64):
        p.error("--ttl-ms takes a positive number and goes with --set")
    if args.count < 0:
        p.error("--count must not be negative")
    return args


def main(argv):
    args = parse_args(argv)
    path = f"{HUB_PATH}/ns/{args.namespace}"
    try:
        bus = connect(args)
        if args.get:
            get(bus, path, args.get)
            return 0
        if args.set:
            set_(bus, path, args.set[0], args.set[1], args.ttl_ms)
            return 0
        watch = Watch(bus, path, args.prefix, args.keys, args.count)
        print(f"listening on {bus.get_unique_name()} to {args.prefix + '.*' if args.prefix else 'all events'} "
              f"of namespace {args.namespace} (hub {watch.owner})", file=sys.stderr, flush=True)
        return watch.run()
    except Failure as e:
        print(e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
