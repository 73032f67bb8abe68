#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kill -9 of the hub at a random point under writes from several clients, each logging what
# the hub acknowledged; after the restart every acknowledged write is there.  Three rounds,
# one per fsync mode (TAP).
# shellcheck source=tests/persist/lib-persist.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-persist.sh"

# writer ID: Set w<ID>-<n> to n and Incr c<ID>, logging each acknowledged reply
writer() {
        local id=$1 j=0 v
        while :; do
                j=$((j + 1))
                "$H" set "w$id-$j" "x:$j" >/dev/null 2>&1 || break
                echo "set w$id-$j $j" >>"$TMP/acked.$id"
                v=$("$H" incr "c$id" 2>/dev/null) || break
                echo "incr c$id ${v#x:}" >>"$TMP/acked.$id"
        done
}

start_bus dbus-daemon
round=0
for mode in always everysec no; do
        round=$((round + 1))
        rm -f "$TMP"/acked.*
        hub_up --data-dir="$D" --fsync="$mode"
        wpids=()
        for id in 1 2 3 4; do writer "$round$id" & wpids+=($!); done
        sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.5 + rand() * 2 }')"
        hub_kill9
        wait "${wpids[@]}" 2>/dev/null
        hub_up --data-dir="$D" --fsync="$mode"
        total=0 bad=
        for f in "$TMP"/acked.*; do
                while read -r op key val; do
                        total=$((total + 1))
                        got=$("$H" get --raw "$key" 2>/dev/null)
                        case $op in
                        set) [ "$got" = "$val" ] || bad+=" $key=$got(want $val)" ;;
                        incr) [ -n "$got" ] && [ "$got" -ge "$val" ] || bad+=" $key=$got(want >= $val)" ;;
                        esac
                done < <(sort -u "$f")
        done
        if [ -z "$bad" ] && [ "$total" -gt 0 ]; then ok "fsync=$mode: all $total acknowledged writes of 4 clients survive kill -9"; else
                not_ok "fsync=$mode: acknowledged writes survive kill -9" "checked $total" "wrong:$bad"; fi
        hub_kill9
done
finish_persist
