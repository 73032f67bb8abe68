#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The log is rewritten by a forked child while clients keep writing; nothing acknowledged
# before, during or after the rewrite is lost to kill -9, and the log shrinks (TAP).
# shellcheck source=tests/persist/lib-persist.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-persist.sh"

writer() { # ID ROUNDS: overwrite 20 keys ROUNDS times, logging what was acknowledged
        local id=$1 r k
        for r in $(seq "$2"); do
                for k in $(seq 20); do
                        "$H" set "w$id-$k" "round $r of writer $id, padded to make the log grow quickly" >/dev/null 2>&1 || return
                        echo "w$id-$k round $r of writer $id, padded to make the log grow quickly" >>"$TMP/acked.$id"
                done
        done
}

start_bus dbus-daemon
CLUSTERHUB_REWRITE_MIN_BYTES=30000 hub_up --data-dir="$D" --fsync=everysec
wpids=()
for id in 1 2 3; do writer "$id" 8 & wpids+=($!); done
wait "${wpids[@]}"
wait_for "$TMP/hub.log" "Rewrote .* in the background: .* the loop waited [0-9]+ ms" &&
        ok "the log was rewritten in the background" || not_ok "background rewrite" "$(cat "$TMP/hub.log")"
size=$(stat -c %s "$D/clusterhub.log")
[ "$size" -lt 60000 ] && ok "the log stays bounded ($size bytes after 480 writes of ~150 bytes)" || not_ok "the log stays bounded" "$size bytes"
[ ! -e "$D/clusterhub.log.tmp" ] && ok "no temporary file is left" || not_ok "no temporary file is left"
# Hub1.Save(): the reply comes once the new log is in place
"$H" set saved yes >/dev/null
before=$(grep -c "Rewrote .* in the background" "$TMP/hub.log")
check "Save() answers once the snapshot is in place" 0 "" busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 Save
after=$(grep -c "Rewrote .* in the background" "$TMP/hub.log")
[ "$after" = $((before + 1)) ] && ok "Save() rewrote the log" || not_ok "Save() rewrote the log" "$before -> $after"
hub_kill9
hub_up --data-dir="$D"
check "a key written before Save() is in the saved log" 0 "yes" "$H" get saved
bad=
total=0
for f in "$TMP"/acked.*; do
        declare -A last=()
        while read -r key val; do last[$key]=$val; done <"$f"
        for key in "${!last[@]}"; do
                total=$((total + 1))
                got=$("$H" get "$key" 2>&1)
                [ "$got" = "${last[$key]}" ] || bad+=" $key=$got"
        done
        unset last
done
[ -z "$bad" ] && [ "$total" = 60 ] && ok "every key holds its last acknowledged value after kill -9 ($total keys)" ||
        not_ok "last acknowledged values" "checked $total" "wrong:$bad"
hub_kill9
hub_up
check_err "Save() without --data-dir" "store in memory only \\(no --data-dir\\)" busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 Save
finish_persist
