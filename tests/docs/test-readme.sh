#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every "$ command" of the README's ```console blocks against a hub on a private bus and
# compares what it prints with the lines that follow it in the README (TAP).
# usage: test-readme.sh README.md [HUBCTL]   (CLUSTERHUBD names the hub binary)
set -u
readme=$1
# the recipes call hubctl by name, as a user who installed it would
[ -n "${2:-}" ] && PATH=$(dirname "$2"):$PATH
hub=${CLUSTERHUBD:?CLUSTERHUBD is not set}
tmp=$(mktemp -d)
daemon_pid=
hub_pid=
cleanup() {
        [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null
        [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
        wait 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT

cat > "$tmp/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$tmp/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
CONF
daemon_pid=$(dbus-daemon --config-file="$tmp/bus.conf" --fork --print-pid=1 --nosyslog) || { echo "Bail out! no dbus-daemon"; exit 1; }
export DBUS_SESSION_BUS_ADDRESS=unix:path=$tmp/bus
unset DBUS_SYSTEM_BUS_ADDRESS
"$hub" --user 2>"$tmp/hub.log" &
hub_pid=$!
for _ in $(seq 100); do
        busctl --user status org.clusterhub.Hub1 >/dev/null 2>&1 && break
        sleep 0.1
done

# commands and expected outputs, from the console blocks
awk '/^```console/{on=1; next} /^```/{on=0} on' "$readme" > "$tmp/blocks"
n=0
fails=0
run_one() {
        local cmd=$1 expected=$2 got
        n=$((n + 1))
        got=$(bash -c "$cmd" 2>&1)
        if [ "$got" = "$expected" ]; then
                echo "ok $n - $cmd"
        else
                fails=$((fails + 1))
                echo "not ok $n - $cmd"
                printf '#   expected: %s\n#   got:      %s\n' "$expected" "$got"
        fi
}
cmd=
expected=
while IFS= read -r line; do
        if [[ "$line" == '$ '* ]]; then
                [ -n "$cmd" ] && run_one "$cmd" "$expected"
                cmd=${line#\$ }
                expected=
        else
                expected=${expected:+$expected$'\n'}$line
        fi
done < "$tmp/blocks"
[ -n "$cmd" ] && run_one "$cmd" "$expected"
if [ "$n" -eq 0 ]; then
        echo "not ok 1 - no console recipes found in $readme"
        n=1
        fails=1
fi
echo "1..$n"
[ "$fails" -eq 0 ]
