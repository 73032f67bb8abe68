#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Group commit with --fsync=always (docs/persistence.md): the changes of one loop pass share one
# fdatasync, counted by GetStats' persist_syncs; and what was acknowledged survives kill -9 (TAP).
# shellcheck source=tests/persist/lib-persist.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-persist.sh"
BURST=${SET_BURST:?SET_BURST is not set}

# figure NAME: one GetStats figure
figure() {
        "$H" stats --json | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"
}

start_bus dbus-daemon
# no time bound: a group ends when the bus has nothing left to dispatch (or 256 are held)
CLUSTERHUB_GROUP_COMMIT_WAIT_USEC=60000000 hub_up --data-dir="$D" --fsync=always

# an MSet of 100 keys: 100 records, one sync
args=()
for i in $(seq 100); do args+=("m$i" s "value $i"); done
syncs0=$(figure persist_syncs) records0=$(figure persist_records)
busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 MSet 'a{sv}' 100 "${args[@]}"
syncs1=$(figure persist_syncs) records1=$(figure persist_records)
if [ $((records1 - records0)) -eq 100 ] && [ $((syncs1 - syncs0)) -eq 1 ]; then
        ok "MSet of 100 keys: 100 records, 1 sync"
else
        not_ok "MSet of 100 keys: 100 records, 1 sync" "records $records0 -> $records1, syncs $syncs0 -> $syncs1"
fi
check_py "GetStats: the MSet reply and its 100 KeyChanged were held for their sync" \
        "lines[0]['persist_group_max'] >= 101 and lines[0]['persist_held_messages'] >= 101" "$H" stats --json

# past 256 held messages the gate does not wait for the loop: the 256th flushes at once
args=()
for i in $(seq 300); do args+=("n$i" s "value $i"); done
syncs0=$(figure persist_syncs)
busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 MSet 'a{sv}' 300 "${args[@]}"
check_py "MSet of 300 keys: 2 syncs (at 256 held messages, then at the end), groups of at most 256" \
        "lines[0]['persist_syncs'] == $syncs0 + 2 and lines[0]['persist_group_max'] == 256" "$H" stats --json

# 64 Sets in flight at once: they queue up at the stopped hub, which then handles them in a row
syncs0=$(figure persist_syncs)
kill -STOP "$hub_pid"
"$BURST" 64 >"$TMP/burst.out" 2>"$TMP/burst.err" &
burst_pid=$!
for _ in $(seq 400); do grep -q routed "$TMP/burst.out" && break; sleep 0.05; done
kill -CONT "$hub_pid"
if wait "$burst_pid"; then ok "64 concurrent Sets succeed"; else not_ok "64 concurrent Sets succeed" "$(cat "$TMP/burst.err")"; fi
syncs1=$(figure persist_syncs)
if [ $((syncs1 - syncs0)) -ge 1 ] && [ $((syncs1 - syncs0)) -lt 64 ]; then
        ok "64 concurrent Sets: $((syncs1 - syncs0)) syncs"
else
        not_ok "64 concurrent Sets: fewer than 64 syncs" "syncs $syncs0 -> $syncs1"
fi

# everything acknowledged is in the log
hub_kill9
hub_up --data-dir="$D" --fsync=always
check "after kill -9: the MSet's last key" 0 "value 100" "$H" get --raw m100
check "after kill -9: the last Set of the burst" 0 "u:63" "$H" get burst-63
hub_kill9

# the other modes keep their counters
hub_up --data-dir="$D" --fsync=everysec
"$H" set e 1 >/dev/null
check_py "everysec: nothing is held (persist_held_messages)" \
        "lines[0]['persist_held_messages'] == 0" "$H" stats --json
synced=
for _ in $(seq 100); do [ "$(figure persist_syncs)" -ge 1 ] && { synced=1; break; }; sleep 0.1; done
if [ -n "$synced" ]; then ok "everysec: persist_syncs counts the timer's sync"; else not_ok "everysec: persist_syncs counts the timer's sync"; fi
hub_kill9
finish_persist
