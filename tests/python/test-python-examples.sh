#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Python examples (examples/python: clusterhub-watch.py on GDBus, clusterhub-watch-dbus.py
# on dbus-python) against the hub on a private bus: each prints exactly the events of its
# arg0namespace family and the KeyChanged signals, ignores signals forged by another connection
# (sent to it directly or broadcast), follows a hub restart, and reads and writes the store.
# usage: test-python-examples.sh dbus-daemon|dbus-broker CLUSTERHUBD EXAMPLES-DIR (TAP)
# Environment: TH_BROKER (dbus-broker), PYTHON (an interpreter with gi and dbus; else probed).
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
KIND=$1
export CLUSTERHUBD=$2
EX=$3
NS_PATH=/org/clusterhub/Hub1/ns/default

# The examples need PyGObject and dbus-python, which Debian installs for /usr/bin/python3; the
# python3 first on PATH may be another one (pyenv, a venv).
PY=
for cand in ${PYTHON:+"$PYTHON"} /usr/bin/python3 python3; do
        if "$cand" -c 'from gi.repository import Gio, GLib; import dbus, dbus.mainloop.glib' 2>/dev/null; then
                PY=$cand
                break
        fi
done
if [ -z "$PY" ]; then
        echo "1..0 # SKIP no python3 with PyGObject and dbus-python (scripts/deps.sh installs python3-gi, python3-dbus)"
        exit 0
fi

start_bus "$KIND"
start_hub
hub_pid=${pids[-1]}

# hub METHOD-ARGS...: one busctl call to the default namespace.
hub() { busctl --user call org.clusterhub.Hub1 "$NS_PATH" "$@"; }
emit() { busctl --user call org.clusterhub.Hub1 "/org/clusterhub/Hub1/ns/$1" org.clusterhub.Events1 Emit sv "${@:2}" >/dev/null; }

# wait_exit PID: waits (at most 60 s) for PID to exit and sets $rc; 124 when it did not.
wait_exit() {
        local i
        for i in $(seq 1200); do
                kill -0 "$1" 2>/dev/null || break
                sleep 0.05
        done
        if kill -0 "$1" 2>/dev/null; then
                kill "$1"
                wait "$1" 2>/dev/null
                rc=124
        else
                wait "$1"
                rc=$?
        fi
}

# stop_hub: SIGTERM to the hub, which must exit 0 without a sanitizer report (the asan build),
# and wait until its name is gone from the bus.
stop_hub() {
        local rc
        kill "$hub_pid"
        wait "$hub_pid"
        rc=$?
        if [ "$rc" = 0 ] && ! grep -Eq "Sanitizer|runtime error" "$TMP/hub.log"; then
                ok "the hub exits cleanly on SIGTERM"
        else
                not_ok "the hub exits cleanly on SIGTERM" "rc=$rc" "$(cat "$TMP/hub.log")"
        fi
        for _ in $(seq 200); do busctl --user status org.clusterhub.Hub1 >/dev/null 2>&1 || break; sleep 0.05; done
}

# check_usage NAME PATTERN CMD...: CMD must exit 2 (argparse's usage error) with PATTERN on stderr.
check_usage() {
        local name=$1 pat=$2 rc
        shift 2
        "$@" >"$TMP/stdout" 2>"$TMP/stderr"
        rc=$?
        if [ "$rc" = 2 ] && grep -Eq -- "$pat" "$TMP/stderr"; then
                ok "$name"
        else
                not_ok "$name" "command: $*" "status: $rc (want 2)" "stderr: $(cat "$TMP/stderr")"
        fi
}

tools=(gdbus:clusterhub-watch.py dbus-python:clusterhub-watch-dbus.py)

# --- watching -------------------------------------------------------------------------------
declare -A watcher unique
for t in "${tools[@]}"; do
        name=${t%%:*}
        spawn "$PY" "$EX/${t#*:}" --count=4 jobs >"$TMP/$name.out" 2>"$TMP/$name.err"
        watcher[$name]=$last_pid
        if wait_for "$TMP/$name.err" "^listening on :"; then
                ok "$name: subscribed"
        else
                not_ok "$name: subscribed" "$(cat "$TMP/$name.err")"
        fi
        unique[$name]=$(sed -nE 's/^listening on ([^ ]+) .*/\1/p' "$TMP/$name.err")
done

# Signals with the hub's path and interfaces from a connection that is not the hub: sent to each
# watcher directly (no match rule stops those) and broadcast. The round trip at the end returns
# once the bus has routed them all, so they reach the watchers before the hub's events below.
"$PY" - "${unique[@]}" <<'PY'
import sys
from gi.repository import Gio, GLib
bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
for dest in sys.argv[1:] + [None]:
    bus.emit_signal(dest, "/org/clusterhub/Hub1/ns/default", "org.clusterhub.Events1", "Event",
                    GLib.Variant("(ssv)", ("jobs.forged", "forger", GLib.Variant("s", "x"))))
    bus.emit_signal(dest, "/org/clusterhub/Hub1/ns/default", "org.clusterhub.Store1", "KeyChanged",
                    GLib.Variant("(ss)", ("forged", "set")))
bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
              None, GLib.VariantType("(s)"), Gio.DBusCallFlags.NONE, -1, None)
PY
[ $? = 0 ] && ok "forged signals sent" || not_ok "forged signals sent"

emit default other.x s hello
emit default jobs.a s hello
emit default jobsx x 1
emit batch jobs.other-namespace x 2
emit default jobs.b.c x 42
hub org.clusterhub.Store1 Set 'sva{sv}' greeting s hi 0 >/dev/null

# A new hub, with a new unique name: the watchers follow the owner of org.clusterhub.Hub1.
stop_hub
start_hub
hub_pid=${pids[-1]}
emit default jobs.after v b true

want=$(printf '%s\n' 'event jobs.a ORIGIN "hello"' 'event jobs.b.c ORIGIN 42' 'key greeting set' \
        'event jobs.after ORIGIN true')
for t in "${tools[@]}"; do
        name=${t%%:*}
        wait_exit "${watcher[$name]}"
        [ "$rc" = 0 ] && ok "$name: exits after --count lines" ||
                not_ok "$name: exits after --count lines" "rc=$rc" "$(cat "$TMP/$name.err")"
        check "$name: exactly the jobs family and the key change, nothing forged" 0 "$want" \
                sed -E 's/^event ([^ ]+) [^ ]+ /event \1 ORIGIN /' "$TMP/$name.out"
        grep -q "^hub is now :" "$TMP/$name.err" && ok "$name: follows the restarted hub" ||
                not_ok "$name: follows the restarted hub" "$(cat "$TMP/$name.err")"
        # What the bus must have filtered never reached the example (it reports what it drops).
        if grep -Eq "other\.x|jobsx|jobs\.other-namespace" "$TMP/$name.err"; then
                not_ok "$name: the bus filtered by arg0namespace and path" "$(cat "$TMP/$name.err")"
        else
                ok "$name: the bus filtered by arg0namespace and path"
        fi
done
# dbus-python's message filter sees the forged signals sent to it by name, and drops them; the
# forged broadcasts never arrive: the match rules carry sender='org.clusterhub.Hub1'.
check "dbus-python: dropped the forged signals sent to it, was sent no forged broadcast" 0 \
        "$(printf '%s\n' "ignored Event jobs.forged from :: not the hub" "ignored KeyChanged forged from :: not the hub")" \
        sed -nE 's/^(ignored [^ ]+ [^ ]+ from :)[0-9.]+(: not the hub).*/\1\2/p' "$TMP/dbus-python.err"

# --- reading and writing the store ----------------------------------------------------------
hub org.clusterhub.Store1 Set 'sva{sv}' greeting s hi 0 >/dev/null
hub org.clusterhub.Store1 Set 'sva{sv}' n x 42 0 >/dev/null
hub org.clusterhub.Store1 HSet 'sa{sv}' user:1 1 name s ada >/dev/null
hub org.clusterhub.Store1 RPush sav queue 1 s job >/dev/null
busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/batch org.clusterhub.Store1 Set 'sva{sv}' k s batched 0 >/dev/null

for t in "${tools[@]}"; do
        name=${t%%:*}
        W=$EX/${t#*:}
        check "$name: --get a string" 0 '"hi"' "$PY" "$W" --get greeting
        check "$name: --get an integer" 0 '42' "$PY" "$W" --get n
        check "$name: --get a hash (HGetAll)" 0 '{"name":"ada"}' "$PY" "$W" --get user:1
        check "$name: several --get (MGet)" 0 "$(printf '%s\n' 'greeting "hi"' 'nope null' 'n 42' 'user:1 null')" \
                "$PY" "$W" --get greeting --get nope --get n --get user:1
        check "$name: --get with --address and --namespace" 0 '"batched"' \
                "$PY" "$W" --address="$DBUS_SESSION_BUS_ADDRESS" --namespace=batch --get k
        check_err "$name: --get of a missing key" "^No such key: nope" "$PY" "$W" --get nope
        check_err "$name: --get of a list" "queue holds a list" "$PY" "$W" --get queue

        # Integers go out as int64 (x), ttl_ms as uint64 (t): the hub keeps the types and the TTL.
        check "$name: --set with --ttl-ms" 0 OK "$PY" "$W" --set "$name.v" '{"a":[1,true,"s",2.5]}' --ttl-ms 600000
        check "$name: --set sent D-Bus types" 0 'v a{sv} 1 "a" av 4 x 1 b true s "s" d 2.5' \
                hub org.clusterhub.Store1 Get s "$name.v"
        ttl=$(hub org.clusterhub.Store1 TTL s "$name.v" | awk '{print $2}')
        [ "${ttl:-0}" -gt 0 ] && [ "$ttl" -le 600000 ] && ok "$name: the TTL is set ($ttl ms)" ||
                not_ok "$name: the TTL is set" "TTL: $ttl"
        check "$name: --set of a plain string" 0 OK "$PY" "$W" --set "$name.s" 'not json'
        check "$name: reads back what it set" 0 '"not json"' "$PY" "$W" --get "$name.s"

        check_usage "$name: an invalid PREFIX" "invalid PREFIX" "$PY" "$W" '3jobs'
        check_usage "$name: an invalid namespace" "invalid namespace" "$PY" "$W" --namespace=a/b --get k
        check_err "$name: no bus" "Cannot connect to the bus" \
                env DBUS_SESSION_BUS_ADDRESS=unix:path="$TMP/none" "$PY" "$W" --get greeting
done

stop_hub
for t in "${tools[@]}"; do
        name=${t%%:*}
        check_err "$name: no hub (--get)" "^No hub \(org.clusterhub.Hub1\)" "$PY" "$EX/${t#*:}" --get greeting
        check_err "$name: no hub (watching)" "^No hub \(org.clusterhub.Hub1\)" "$PY" "$EX/${t#*:}" jobs
done
finish
