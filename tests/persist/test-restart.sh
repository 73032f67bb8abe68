#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every acknowledged write survives kill -9 of the hub: keys of every type, TTLs, two
# namespaces, Flush, DropNamespace, lock tokens (TAP).
# usage: test-restart.sh always|everysec|no
# shellcheck source=tests/persist/lib-persist.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-persist.sh"
mode=${1:-everysec}

start_bus dbus-daemon
check_fail "--fsync checks its value" 2 "Invalid value for --fsync" "$CLUSTERHUBD" --fsync=sometimes
hub_up
grep -q "No --data-dir: the store is kept in memory only" "$TMP/hub.log" && ok "without --data-dir the hub says the store is in memory only" ||
        not_ok "in-memory notice" "$(cat "$TMP/hub.log")"
check_py "GetStats: persistence off" "lines[0]['persistence'] == 'off'" "$H" stats --json
check_fail "hubctl save without --data-dir: NotSupported" 1 "NotSupported" "$H" save
hub_kill9
hub_up --data-dir="$D" --fsync="$mode"
grep -q "Keeping data in $D/clusterhub.log (fsync $mode)" "$TMP/hub.log" && ok "the hub says where it keeps data" ||
        not_ok "the hub says where it keeps data" "$(cat "$TMP/hub.log")"

# every type, in two namespaces
"$H" set s hello >/dev/null
"$H" set i x:-42 >/dev/null
"$H" set u t:18446744073709551615 >/dev/null
"$H" set d d:1.5 >/dev/null
"$H" set b b:true >/dev/null
"$H" set o o:/a/b >/dev/null
"$H" set j '{"a":1,"b":["x","y"]}' >/dev/null
"$H" set long "$(head -c 3000 /dev/zero | tr '\0' 'z')" >/dev/null
"$H" set ttl keeps --ttl=300s >/dev/null
"$H" set short goes --ttl=1s >/dev/null
"$H" set cleared x:1 --ttl=300s >/dev/null
"$H" store persist cleared >/dev/null
"$H" incr counter 7 >/dev/null
"$H" incr counter >/dev/null
"$H" store hset h f1 v1 f2 x:2 >/dev/null
"$H" store hdel h f1 >/dev/null
"$H" store rpush l a b c d >/dev/null
"$H" store lpop l 1 >/dev/null
"$H" store lpush l z >/dev/null
"$H" store sadd set m1 m2 m3 >/dev/null
"$H" store srem set m2 >/dev/null
"$H" store expire set 300000 >/dev/null
"$H" del s >/dev/null
"$H" set s again >/dev/null
"$H" store rename o o2 >/dev/null
"$H" --ns=second set k v2 >/dev/null
"$H" --ns=second store rpush q 1 2 3 >/dev/null
"$H" --ns=flushed set gone 1 >/dev/null
"$H" --ns=flushed store flush >/dev/null
"$H" --ns=flushed set after 1 >/dev/null
"$H" --ns=dropped set gone 1 >/dev/null
busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 DropNamespace s dropped >/dev/null
# a small hash keeps its insertion order; Move writes two namespaces; SetGet is a write
"$H" store hset ord c 1 a 2 b 3 >/dev/null
"$H" set mv moving >/dev/null
"$H" store move mv second >/dev/null
"$H" store setget sg first >/dev/null
"$H" store setget sg second >/dev/null
token1=$("$H" lock --lease=60s tok)
before=$("$H" stats)
sleep 1.2 # "short" expires while the hub is down

hub_kill9
hub_up --data-dir="$D" --fsync="$mode"
check "string" 0 "again" "$H" get s
check "int64" 0 "x:-42" "$H" get i
check "uint64" 0 "t:18446744073709551615" "$H" get u
check "double" 0 "d:1.5" "$H" get d
check "bool" 0 "b:true" "$H" get b
check "renamed object path" 0 "o:/a/b" "$H" get o2
check_notfound "rename removed the source" "NoSuchKey" "$H" get o
check "container value" 0 '{"a":1,"b":["x","y"]}' "$H" get --json j
check "long string" 0 "3000" sh -c '"$1" get long | tr -d "\n" | wc -c' - "$H"
check "counter" 0 "x:8" "$H" get counter
check "hash" 0 "$(printf 'f2\tx:2')" "$H" store hgetall h
check "list" 0 "$(printf 'z\nb\nc\nd')" "$H" store lrange l 0 -1
check "set" 0 "$(printf 'm1\nm3')" sh -c '"$1" store smembers set | sort' - "$H"
check_py "TTL kept as a deadline" "100000 < int(text.strip()) <= 300000" "$H" ttl ttl
check_py "TTL on a collection kept" "100000 < int(text.strip()) <= 300000" "$H" ttl set
check "persist cleared the TTL" 0 "-1" "$H" ttl cleared
check_notfound "a key that expired while the hub was down is gone" "NoSuchKey" "$H" get short
check "second namespace" 0 "v2" "$H" --ns=second get k
check "second namespace list" 0 "$(printf '1\n2\n3')" "$H" --ns=second store lrange q 0 -1
check "flush, then a write" 0 "after" "$H" --ns=flushed keys
check "a small hash's insertion order" 0 "$(printf 'c\na\nb')" "$H" store hkeys ord
check "Move: the key is in the target" 0 "moving" "$H" --ns=second get mv
check_notfound "Move: and not in the source" "NoSuchKey" "$H" get mv
check "SetGet's write" 0 "second" "$H" get sg
check "DropNamespace" 0 "gone" sh -c '"$1" namespaces | grep -qx dropped || echo gone' - "$H"
token2=$("$H" lock --lease=60s tok2)
if [ -n "$token1" ] && [ -n "$token2" ] && [ "$token2" -gt "$token1" ]; then ok "lock tokens never go backwards ($token1 < $token2)"; else
        not_ok "lock tokens never go backwards" "before: $token1" "after: $token2"; fi
check_py "GetStats shows the persistence figures" "lines[0]['persistence'] == '$mode' and lines[0]['persist_log_bytes'] > 16 and lines[0]['persist_rewrites'] == 1 and lines[0]['persist_last_error'] == '' and lines[0]['persist_refusing_writes'] is False" "$H" stats --json
grep -Eq "Loaded [0-9]+ keys in [0-9]+ namespaces from $D/clusterhub.log .* in [0-9]+ ms" "$TMP/hub.log" &&
        ok "the load is logged with keys and time" || not_ok "the load is logged" "$(cat "$TMP/hub.log")"

# a second crash right after the restart's rewrite loses nothing either
"$H" set after-restart 1 >/dev/null
hub_kill9
hub_up --data-dir="$D" --fsync="$mode"
check "after a second kill -9" 0 "1" "$H" get --raw after-restart
check "and the first data still" 0 "again" "$H" get s
check "hubctl save --json" 0 "null" "$H" save --json
hub_kill9
hub_up --data-dir="$D" --fsync="$mode"
check "after hubctl save and kill -9" 0 "again" "$H" get s

# the rewrite at start keeps the log near the size of the data
for k in $(seq 300); do "$H" set same "value $k" >/dev/null; done
hub_kill9
size1=$(stat -c %s "$D/clusterhub.log")
hub_up --data-dir="$D" --fsync="$mode"
size2=$(stat -c %s "$D/clusterhub.log")
if [ "$size2" -lt "$size1" ]; then ok "the log is rewritten compactly at start ($size1 -> $size2 bytes)"; else not_ok "rewrite at start" "$size1 -> $size2"; fi
check "the last of 300 overwrites" 0 "value 300" "$H" get same
finish_persist
