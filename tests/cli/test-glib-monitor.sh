#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The GDBus example (examples/glib-monitor, generated from our XML) receives the hub's events.
# usage: test-glib-monitor.sh MONITOR-BINARY (TAP)
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
M=$1
H=${HUBCTL:?HUBCTL is not set}
start_bus dbus-daemon
start_hub

# all events, session bus from the environment
spawn "$M" --count=2 >"$TMP/all.out" 2>"$TMP/all.err"
mon=$last_pid
wait_for "$TMP/all.err" "^listening" && ok "monitor subscribed" || not_ok "monitor subscribed" "$(cat "$TMP/all.err")"
"$H" emit hello s:world
"$H" emit jobs.progress '{"done": 40}'
wait "$mon"
rc=$?
[ $rc = 0 ] && ok "exits after --count events" || not_ok "exits after --count events" "rc=$rc"
check "events printed" 0 "$(printf '%s\n' "hello ORIGIN 'world'" "jobs.progress ORIGIN {'done': <int64 40>}")" \
        sed -E 's/^([^ ]+) [^ ]+ /\1 ORIGIN /' "$TMP/all.out"

# a family, --address and --ns
spawn "$M" --address="$DBUS_SESSION_BUS_ADDRESS" --ns=batch --count=2 jobs >"$TMP/fam.out" 2>"$TMP/fam.err"
mon=$last_pid
wait_for "$TMP/fam.err" "^listening" && ok "monitor subscribed (family)" || not_ok "monitor subscribed (family)" "$(cat "$TMP/fam.err")"
"$H" --ns=batch emit other x:1
"$H" emit jobs.a x:1
"$H" --ns=batch emit jobsx x:2
"$H" --ns=batch emit jobs.done x:3
"$H" --ns=batch emit jobs d:1.5
wait "$mon"
check "only the family, only the namespace" 0 "$(printf '%s\n' "jobs.done ORIGIN int64 3" "jobs ORIGIN 1.5")" \
        sed -E 's/^([^ ]+) [^ ]+ /\1 ORIGIN /' "$TMP/fam.out"

check_err "no hub" "No hub|Cannot" env DBUS_SESSION_BUS_ADDRESS=unix:path="$TMP/none" "$M" --count=1
finish
