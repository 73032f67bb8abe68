#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""clusterhub-watch-dbus: clusterhub-watch.py again, on dbus-python instead of GDBus.

  clusterhub-watch-dbus.py [--address ADDR | --system] [--namespace NS] [--count N] [--no-keys] [PREFIX]
  clusterhub-watch-dbus.py [...] --get KEY [--get KEY ...]
  clusterhub-watch-dbus.py [...] --set KEY VALUE [--ttl-ms MS]

Same options, same output (see clusterhub-watch.py). What dbus-python makes you do by hand:

- arg0namespace: add_signal_receiver() knows arg0='...' but not arg0namespace, and the match
  rule it adds would have the bus send every Event of the namespace. So the rule is written out
  and added with add_match_string(), and the signals are taken from add_message_filter(), which
  sees every message the connection receives (the filter re-checks path, interface, member,
  signature and the prefix, and reports what it drops on stderr: "ignored Event NAME from
  SENDER: REASON").
- the sender: a message filter gets signals from anyone, including signals another client sends
  straight to this connection with the hub's path and interface. Only those from the current
  owner of org.clusterhub.Hub1 count: GetNameOwner once, then NameOwnerChanged through
  watch_name_owner(), which follows hub restarts.
- integer types: a Python int goes out as int32 'i'. Values are wrapped as dbus.Int64 and the
  ttl_ms option as dbus.UInt64 ('t'), the type *_ms options take.

Needs python3-dbus and python3-gi (the GLib main loop), Debian package names.
"""
import argparse
import json
import re
import signal
import sys

try:
    import dbus
    import dbus.lowlevel
    import dbus.mainloop.glib
    from gi.repository import GLib
except ImportError as e:  # pragma: no cover - depends on the host
    sys.exit(f"clusterhub-watch-dbus: {e}; install python3-dbus and python3-gi")

HUB = "org.clusterhub.Hub1"
HUB_PATH = "/org/clusterhub/Hub1"
EVENTS = "org.clusterhub.Events1"
STORE = "org.clusterhub.Store1"

NAMESPACE_RE = re.compile(r"[A-Za-z0-9_]+")
# What the bus accepts in arg0namespace: dot-separated elements that do not start with a digit.
PREFIX_RE = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)*")
NOT_YET_HANDLED = dbus.lowlevel.HANDLER_RESULT_NOT_YET_HANDLED


class Failure(Exception):
    """An error to print on stderr before exiting 1; name is the D-Bus error's, if any."""

    def __init__(self, text, name=None):
        super().__init__(text)
        self.name = name


def plain(value):
    """dbus-python's types as plain Python, for json (dbus.Boolean is an int subclass)."""
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.Dictionary, dict)):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (dbus.Array, dbus.Struct, list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dbus.types.UnixFd):
        return "fd"
    raise Failure(f"cannot print {type(value).__name__}")


def to_json(value):
    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))


def to_dbus(value):
    """A JSON value as the D-Bus value the store keeps, with explicit types: s, b, x, d, av, a{sv}."""
    if isinstance(value, bool):
        return dbus.Boolean(value)
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise Failure(f"{value} does not fit in a 64-bit integer")
        return dbus.Int64(value)  # a bare int would be sent as int32
    if isinstance(value, float):
        return dbus.Double(value)
    if isinstance(value, str):
        return dbus.String(value)
    if isinstance(value, list):
        return dbus.Array([to_dbus(v) for v in value], signature="v")
    if isinstance(value, dict):
        return dbus.Dictionary({k: to_dbus(v) for k, v in value.items()}, signature="sv")
    raise Failure("null has no D-Bus type")


def parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def connect(args):
    try:
        if args.address:
            return dbus.bus.BusConnection(args.address)
        return dbus.SystemBus() if args.system else dbus.SessionBus()
    except dbus.exceptions.DBusException as e:
        hint = "" if args.address or args.system else " (is DBUS_SESSION_BUS_ADDRESS set?)"
        raise Failure(f"Cannot connect to the bus: {e.get_dbus_message()}{hint}") from None


def call(bus, path, interface, method, signature, args):
    try:
        return bus.call_blocking(HUB, path, interface, method, signature, args)
    except dbus.exceptions.DBusException as e:
        name = e.get_dbus_name()
        if name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
            raise Failure(f"No hub ({HUB}) on this bus: start it with 'clusterhubd --user' "
                          "or scripts/run-hub") from None
        raise Failure(f"{name}: {e.get_dbus_message()}", name) from None


def hub_owner(bus):
    """The unique name that owns org.clusterhub.Hub1 now."""
    try:
        return str(bus.get_name_owner(HUB))
    except dbus.exceptions.DBusException:
        raise Failure(f"No hub ({HUB}) on this bus: start it with 'clusterhubd --user' "
                      "or scripts/run-hub") from None


def get(bus, path, keys):
    if len(keys) == 1:
        key = keys[0]
        try:
            value = call(bus, path, STORE, "Get", "s", (key,))
        except Failure as e:
            if e.name == "org.clusterhub.Error.NoSuchKey":
                raise Failure(f"No such key: {key}") from None
            if e.name != "org.clusterhub.Error.WrongType":
                raise
            kind = call(bus, path, STORE, "Type", "s", (key,))
            if kind != "hash":
                raise Failure(f"{key} holds a {kind}; --get reads plain values and hashes")
            value = call(bus, path, STORE, "HGetAll", "s", (key,))
        print(to_json(value))
        return
    values = call(bus, path, STORE, "MGet", "as", (keys,))
    for key in keys:
        print(key, to_json(values[key]) if key in values else "null")


def set_(bus, path, key, text, ttl_ms):
    options = dbus.Dictionary(signature="sv")
    if ttl_ms is not None:
        options["ttl_ms"] = dbus.UInt64(ttl_ms)  # *_ms options are unsigned; an int would be 'i'
    stored = call(bus, path, STORE, "Set", "sva{sv}", (key, to_dbus(parse_value(text)), options))
    print("OK" if stored else "not set")


class Watch:
    def __init__(self, bus, path, prefix, keys, count):
        self.bus, self.path, self.prefix, self.keys, self.count = bus, path, prefix, keys, count
        self.seen, self.failed, self.owner = 0, False, None
        self.loop = GLib.MainLoop()
        # The bus filters: only the hub's broadcasts (sender=), only the family (arg0namespace=).
        event_rule = f"type='signal',sender='{HUB}',interface='{EVENTS}',member='Event',path='{path}'"
        if prefix:
            event_rule += f",arg0namespace='{prefix}'"
        rules = [event_rule]
        if keys:
            rules.append(f"type='signal',sender='{HUB}',interface='{STORE}',member='KeyChanged',path='{path}'")
        for rule in rules:
            bus.add_match_string(rule)  # blocks until the bus has it
        bus.add_message_filter(self.on_message)
        # Follow the owner (NameOwnerChanged), and know it now: the watch only learns it later.
        self.owner = hub_owner(bus)
        self.watch = bus.watch_name_owner(HUB, self.on_owner_changed)
        bus.call_on_disconnection(self.on_closed)

    def on_owner_changed(self, owner):
        owner = str(owner) or None
        if owner != self.owner:
            print(f"hub {'is now ' + owner if owner else 'is gone'}", file=sys.stderr, flush=True)
        self.owner = owner

    def on_message(self, bus, msg):
        if msg.get_type() != dbus.lowlevel.MESSAGE_TYPE_SIGNAL:
            return NOT_YET_HANDLED
        interface, member, signature = msg.get_interface(), msg.get_member(), msg.get_signature()
        if (interface, member) == (EVENTS, "Event"):
            want = "ssv"
        elif (interface, member) == (STORE, "KeyChanged") and self.keys:
            want = "ss"
        else:
            return NOT_YET_HANDLED  # not ours: the name owner watch, for one
        # The bus applied our match rules to broadcasts; a signal sent to this connection by
        # name skips them. Say what is dropped, on stderr: a forged signal is worth a line.
        args = msg.get_args_list(byte_arrays=True) if signature == want else []
        what = f"{member} {args[0] if args else '(' + signature + ')'} from {msg.get_sender()}"
        if msg.get_sender() != self.owner:
            reason = f"not the hub ({self.owner or 'gone'})"
        elif msg.get_path() != self.path or not args:
            reason = f"path {msg.get_path()}, signature {signature!r}"
        elif member == "Event" and self.prefix and args[0] != self.prefix and not args[0].startswith(self.prefix + "."):
            reason = f"not in {self.prefix}.*"
        else:
            reason = None
        if reason:
            print(f"ignored {what}: {reason}", file=sys.stderr, flush=True)
            return NOT_YET_HANDLED
        if member == "Event":
            event, origin, payload = args
            print(f"event {event} {origin} {to_json(payload)}", flush=True)
        else:
            key, command = args
            print(f"key {key} {command}", flush=True)
        self.seen += 1
        if self.count and self.seen >= self.count:
            self.loop.quit()
        return NOT_YET_HANDLED

    def on_closed(self, bus):
        print("The bus connection closed", file=sys.stderr, flush=True)
        self.failed = True
        self.loop.quit()

    def run(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self.loop.quit)
        self.loop.run()
        return 1 if self.failed else 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="clusterhub-watch-dbus.py",
                                description="Print the hub's events and key changes, or read and write its store (dbus-python).")
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
    # dbus-python dispatches signals only with a main loop; this one is GLib's.
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
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
