#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# hubctl monitor on the hub's private socket follows the hub across a restart, as it does on the
# bus: the socket closes with the hub, the monitor says so, connects again with backoff, adds its
# matches again and shows the new hub's signals (TAP).
# usage: test-monitor-restart.sh dbus-daemon|dbus-broker
# Environment: CLUSTERHUBD, HUBCTL, TH_BROKER.
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
H=${HUBCTL:?HUBCTL is not set}

start_bus "${1:-dbus-daemon}"
export CLUSTERHUB_PRIVATE_SOCKET=$TMP/hub.sock
start_hub --listen="$CLUSTERHUB_PRIVATE_SOCKET"
hub=${pids[-1]}

# the hub's connections on its socket now (hubctl stats is one of them)
connections() { "$H" --transport=private stats | awk '$1 == "connections" { print $2 }'; }
# connections_are N: polls until the hub has N (the hub sees a closed one go a moment later)
connections_are() {
        for _ in $(seq 200); do
                [ "$(connections)" = "$1" ] && return 0
                sleep 0.05
        done
        return 1
}

# wait_count FILE PATTERN N: polls until FILE has N lines matching PATTERN (20 s at most).
wait_count() {
        for _ in $(seq 400); do
                [ "$(grep -Ec -- "$2" "$1")" -ge "$3" ] && return 0
                sleep 0.05
        done
        return 1
}

# restart_hub: stop the hub, leave it stopped for a moment (a few reconnection attempts fail),
# start it again on the same socket
restart_hub() {
        kill "$hub"
        wait "$hub" 2>/dev/null
        sleep 0.3
        start_hub --listen="$CLUSTERHUB_PRIVATE_SOCKET"
        hub=${pids[-1]}
}

for transport in auto private; do
        spawn "$H" --transport="$transport" monitor --no-workers >"$TMP/mon.$transport" 2>"$TMP/mon.$transport.err"
        mon=$last_pid
        wait_for "$TMP/mon.$transport.err" "^Monitoring" || not_ok "$transport: monitor started" "$(sed "s/^/# /" "$TMP/mon.$transport.err")"
        connections_are 2 && ok "$transport: the monitor is on the private socket" ||
                not_ok "$transport: the monitor is on the private socket" "connections: $(connections)"
        "$H" --transport=private emit before x:1
        wait_for "$TMP/mon.$transport" "^event before " && ok "$transport: an event before the restart" ||
                not_ok "$transport: an event before the restart" "$(sed "s/^/# /" "$TMP/mon.$transport" "$TMP/mon.$transport.err")"

        for round in 1 2; do
                restart_hub
                wait_count "$TMP/mon.$transport.err" "monitor: The hub went away \(unix:path=$TMP/hub.sock: .*\); reconnecting" "$round" &&
                        ok "$transport, restart $round: the monitor says the hub went away" ||
                        not_ok "$transport, restart $round: the monitor says the hub went away" "$(sed "s/^/# /" "$TMP/mon.$transport.err")"
                wait_count "$TMP/mon.$transport.err" "The hub is back on unix:path=$TMP/hub.sock; monitoring again" "$round" &&
                        ok "$transport, restart $round: the monitor says the hub is back" ||
                        not_ok "$transport, restart $round: the monitor says the hub is back" "$(sed "s/^/# /" "$TMP/mon.$transport.err")"
                kill -0 "$mon" 2>/dev/null && ok "$transport, restart $round: the monitor runs on" ||
                        not_ok "$transport, restart $round: the monitor runs on" "$(sed "s/^/# /" "$TMP/mon.$transport.err")"
                # its matches are the new hub's: an event, a key change, and a filtered-out nothing
                connections_are 2 && ok "$transport, restart $round: on the new hub's socket" ||
                        not_ok "$transport, restart $round: on the new hub's socket" "connections: $(connections)"
                "$H" --transport=private emit "after$round" s:x
                "$H" --transport=private set "k$round" v >/dev/null
                wait_for "$TMP/mon.$transport" "^key k$round set$" &&
                        grep -q "^event after$round .* x$" "$TMP/mon.$transport" &&
                        ok "$transport, restart $round: the new hub's signals are shown" ||
                        not_ok "$transport, restart $round: the new hub's signals are shown" "$(sed "s/^/# /" "$TMP/mon.$transport" "$TMP/mon.$transport.err")"
        done
        # the bus is never used: the library would only fall back to it after 8 failed attempts
        grep -q "instead" "$TMP/mon.$transport.err" &&
                not_ok "$transport: stays on the socket" "$(sed "s/^/# /" "$TMP/mon.$transport.err")" || ok "$transport: stays on the socket"

        kill -INT "$mon"
        wait "$mon"
        rc=$?
        [ $rc = 0 ] && ok "$transport: monitor exits 0 on Ctrl-C" || not_ok "$transport: monitor exits 0 on Ctrl-C" "rc=$rc"
done

# Ctrl-C while it waits for the hub to come back: it stops, status 0
spawn "$H" --transport=private monitor >"$TMP/mon.down" 2>"$TMP/mon.down.err"
mon=$last_pid
wait_for "$TMP/mon.down.err" "^Monitoring"
kill "$hub"
wait "$hub" 2>/dev/null
wait_for "$TMP/mon.down.err" "The hub went away" && ok "hub stopped: the monitor waits for it" ||
        not_ok "hub stopped: the monitor waits for it" "$(sed "s/^/# /" "$TMP/mon.down.err")"
sleep 0.3
kill -0 "$mon" 2>/dev/null && ok "the monitor keeps trying while no hub is there" || not_ok "the monitor keeps trying while no hub is there"
kill -INT "$mon"
wait "$mon"
rc=$?
[ $rc = 0 ] && ok "Ctrl-C while reconnecting exits 0" || not_ok "Ctrl-C while reconnecting exits 0" "rc=$rc" "$(sed "s/^/# /" "$TMP/mon.down.err")"

finish
