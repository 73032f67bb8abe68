#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ./scripts/run-hub as the README uses it (TAP): it builds only the hub and hubctl, starts the
# hub on the session bus it finds, and its banner's `export` lines are enough for the README's
# `hubctl` recipes in a shell that has no hubctl on its PATH.
# usage: test-run-hub.sh SOURCE-ROOT BUILD-ROOT
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
src=$1
build=$2
start_bus dbus-daemon

# a ninja that records what it is asked to build (the build tree is already built)
mkdir "$TMP/bin"
cat >"$TMP/bin/ninja" <<SH
#!/bin/sh
echo "\$*" >>"$TMP/ninja.args"
SH
chmod +x "$TMP/bin/ninja"

spawn env -u CLUSTERHUBD -u HUBCTL PATH="$TMP/bin:$PATH" CH_BUILD_DIR="$build" XDG_STATE_HOME="$TMP/state" "$src/scripts/run-hub" 2>"$TMP/run-hub.err"
run_hub=$last_pid
for _ in $(seq 200); do
        busctl --user status org.clusterhub.Hub1 >/dev/null 2>&1 && break
        sleep 0.05
done
busctl --user status org.clusterhub.Hub1 >/dev/null 2>&1 && ok "run-hub starts the hub on the session bus" ||
        not_ok "run-hub starts the hub on the session bus" "$(cat "$TMP/run-hub.err")"
grep -q "keeping its data in" "$TMP/run-hub.err" && [ -f "$TMP/state/clusterhub/clusterhub.log" ] &&
        ok "run-hub keeps the data in \$XDG_STATE_HOME/clusterhub and says so" || not_ok "run-hub's data dir" "$(cat "$TMP/run-hub.err")"
check "run-hub builds only the hub and hubctl" 0 "-C $build service/clusterhubd cli/hubctl" cat "$TMP/ninja.args"

# the banner's export lines, pasted into a shell without hubctl
wait_for "$TMP/run-hub.err" "Ctrl-C stops the hub"
grep -E '^ +export ' "$TMP/run-hub.err" | sed 's/^ *//' >"$TMP/exports"
grep -q '^export PATH=' "$TMP/exports" && ok "the banner puts hubctl on the PATH" ||
        not_ok "the banner puts hubctl on the PATH" "$(cat "$TMP/run-hub.err")"
check "the README's hubctl recipe works after the banner's exports" 0 "hello" \
        env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c '. "$1" && hubctl set motd hello --ttl=10min && hubctl get motd' - "$TMP/exports"
check "without them hubctl is not found (the recipe needs the line)" 127 "" \
        env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c 'hubctl get motd'

kill -TERM "$run_hub"
wait "$run_hub"
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 143 ] && ok "run-hub stops on SIGTERM" || not_ok "run-hub stops on SIGTERM" "rc=$rc"
gone=no
for _ in $(seq 100); do
        busctl --user status org.clusterhub.Hub1 >/dev/null 2>&1 || { gone=yes; break; }
        sleep 0.05
done
check "the hub is gone with run-hub" 0 yes echo "$gone"
finish
