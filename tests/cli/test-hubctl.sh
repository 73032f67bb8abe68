#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every hubctl subcommand against a real hub on a private bus (TAP).
# usage: test-hubctl.sh dbus-daemon|dbus-broker
# Environment: CLUSTERHUBD, HUBCTL, TH_BROKER, CLUSTERHUB_WORKER, CLUSTERHUB_EXAMPLE_WORKER.
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
H=${HUBCTL:?HUBCTL is not set}

start_bus "${1:-dbus-daemon}"
start_hub --max-queue-age-ms=500

# --- help and usage -----------------------------------------------------------------------------
check "hubctl --version" 0 "hubctl $("$H" --version | cut -d' ' -f2)" "$H" --version
for verb in get set del incr keys ttl store emit send monitor request workers wait-workers stats lock locks; do
        out=$("$H" "$verb" --help 2>&1)
        rc=$?
        if [ $rc = 0 ] && [[ "$out" == "hubctl $verb"* ]]; then ok "$verb --help"; else not_ok "$verb --help" "rc=$rc" "$out"; fi
        "$H" --help | grep -q "^  $verb" && ok "$verb in hubctl --help" || not_ok "$verb in hubctl --help"
done
check_err "unknown command" "unknown command 'frobnicate'" "$H" frobnicate
check_err "unknown option" "unknown option '--bogus'" "$H" get --bogus k
check_err "missing argument" "missing arguments" "$H" get
check_err "too many arguments" "too many arguments" "$H" ttl a b
check_err "bad duration" "Invalid --ttl" "$H" set k v --ttl=5parsecs
check_err "bad namespace" "is not a namespace name" "$H" --ns=a-b get k
check_err "no bus" "Failed to connect" "$H" --address=unix:path="$TMP/nobus" get k

# --- store --------------------------------------------------------------------------------------
check "set" 0 "" "$H" set greeting hello
check "get" 0 "hello" "$H" get greeting
check_err "get missing key: NoSuchKey" "^hubctl: Get: org\.clusterhub\.Error\.NoSuchKey: .*'nope'" "$H" get nope
for v in "x:42" "x:-9223372036854775808" "i:-7" "u:7" "t:18446744073709551615" "n:-3" "q:9" "y:255" \
        "d:1.5" "d:-0.25" "d:3.0" "b:true" "b:false" "o:/a/b" "s:x:42" "s:{not json" "hello world" "" \
        '{"a":1,"b":"x","c":[1,2.5,true],"d":{"e":"f"}}' '[1,"two",false]'; do
        check "typed round trip '$v'" 0 "$v" sh -c '"$1" set rt "$2" && "$1" get rt' - "$H" "$v"
done
check "b:yes reads as b:true" 0 "b:true" sh -c '"$1" set rt b:yes && "$1" get rt' - "$H"
# the types are the D-Bus types busctl sees
check "x: is D-Bus int64" 0 "v x 42" sh -c '"$1" set t x:42 && busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Get s t' - "$H"
check "JSON object is a{sv}" 0 'v a{sv} 2 "a" x 1 "b" d 0.5' sh -c '"$1" set t "{\"a\": 1, \"b\": 0.5}" && busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Get s t' - "$H"
check "bare text is s" 0 'v s "42"' sh -c '"$1" set t 42 && busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Get s t' - "$H"
check_err "bad typed value" "Invalid value 'abc'" "$H" set t x:abc
check_err "x: out of range" "Invalid value" "$H" set t i:4294967296
check_err "bad JSON" "Invalid JSON" "$H" set t '{"a":}'
check_err "JSON null" "null has no D-Bus type" "$H" set t '{"a":null}'
check "get --raw" 0 "42" sh -c '"$1" set t x:42 && "$1" get --raw t' - "$H"
check_py "get --json" 'lines == [{"a": [1, "x"], "b": {"c": 2.5}}]' sh -c '"$1" set t "{\"a\":[1,\"x\"],\"b\":{\"c\":2.5}}" && "$1" get --json t' - "$H"
check_py "get --json string" 'lines == ["a \"quoted\"\ttab"]' sh -c '"$1" set t "a \"quoted\"	tab" && "$1" get --json t' - "$H"
check "negative value after --" 0 "x:-5" sh -c '"$1" set neg -- x:-5 && "$1" get neg' - "$H"
check "negative bare value" 0 "-5" sh -c '"$1" set neg -5 && "$1" get neg' - "$H"

check "set --ttl" 0 "ok" sh -c '"$1" set tk v --ttl=10s && t=$("$1" ttl tk) && [ "$t" -gt 9000 ] && [ "$t" -le 10000 ] && echo ok' - "$H"
check "set --ttl bare seconds" 0 "ok" sh -c '"$1" set tk v --ttl 2 && t=$("$1" ttl tk) && [ "$t" -gt 1000 ] && [ "$t" -le 2000 ] && echo ok' - "$H"
check "ttl expires" 0 "-2" sh -c '"$1" set tk v --ttl=100ms && sleep 0.3 && "$1" ttl tk' - "$H"
check "ttl no TTL" 0 "-1" "$H" ttl greeting
check "ttl no key" 0 "-2" "$H" ttl nope
check "set --keep-ttl" 0 "ok" sh -c '"$1" set tk v --ttl=1min && "$1" set tk w --keep-ttl && [ "$("$1" ttl tk)" -gt 50000 ] && echo ok' - "$H"
check_err "set --nx on an existing key" "was not set: it exists" "$H" set --nx greeting other
check "set --nx on a new key" 0 "fresh" sh -c '"$1" set --nx newkey fresh && "$1" get newkey' - "$H"
check_err "set --xx on a missing key" "does not exist" "$H" set --xx missing v
check_err "--nx and --xx" "exclude each other" "$H" set --nx --xx k v

check "incr new key" 0 "1" "$H" incr counter
check "incr BY" 0 "11" "$H" incr counter 10
check "incr negative BY" 0 "6" "$H" incr counter -5
check "incr keeps x" 0 "x:6" "$H" get counter
check "incr float" 0 "2.0" sh -c '"$1" set fl d:1.5 && "$1" incr fl 0.5' - "$H"
check_err "incr on text: NotANumber" "org\.clusterhub\.Error\.NotANumber" "$H" incr greeting
check_err "incr overflow" "org\.clusterhub\.Error\.Overflow" sh -c '"$1" set big x:9223372036854775807 && "$1" incr big' - "$H"

"$H" store flush
"$H" set user:1 a && "$H" set user:2 b && "$H" set other c
check "keys PATTERN" 0 $'user:1\nuser:2' "$H" keys 'user:*'
check "keys (all)" 0 $'other\nuser:1\nuser:2' "$H" keys
check_py "keys --json" 'lines == ["user:1", "user:2"]' "$H" keys --json 'user:*'
check "keys nothing" 0 "" "$H" keys 'zzz*'
check "del" 0 "2" "$H" del user:1 other nope
check "del leaves the rest" 0 "user:2" "$H" keys

# store: any method
check "store hset" 0 "2" "$H" store hset h f1 one f2 x:2
check "store HGet" 0 "x:2" "$H" store HGet h f2
check_py "store hgetall --json" 'lines == [{"f1": "one", "f2": 2}]' "$H" store --json hgetall h
check "store hset JSON object" 0 "1" "$H" store hset h '{"f3": true}'
check "store hlen" 0 "3" "$H" store hlen h
check "store rpush" 0 "3" "$H" store rpush list a b x:3
check "store lrange negative index" 0 $'a\nb\nx:3' "$H" store lrange list 0 -1
check_py "store lrange --json" 'lines == [["b", 3]]' "$H" store --json lrange list 1 -1
check "store blpop" 0 $'list\na' "$H" store blpop list 100
check_err "store blpop timeout" "org\.clusterhub\.Error\.Timeout" "$H" store blpop emptylist 100
check "store sadd" 0 "2" "$H" store sadd s m1 m2
check "store sismember" 0 "true" "$H" store sismember s m1
check "store type" 0 "hash" "$H" store type h
check_py "store scan --json (several values)" 'lines[0][0] == 0 and sorted(lines[0][1]) == ["h", "list", "s", "user:2"]' "$H" store --json scan 0 '*' 100
check "store dbsize" 0 "4" "$H" store dbsize
check_err "store wrongtype" "org\.clusterhub\.Error\.WrongType" "$H" store lpush h x
check_err "store unknown method" "is not a method of org.clusterhub.Store1" "$H" store frob
check_err "store pairs" "KEY VALUE pairs" "$H" store hset h f1
check_err "store too few" "Too few arguments" "$H" store rename a
check "store --help lists methods" 0 "ok" sh -c '"$1" store --help | grep -q "HGetAll *s *-> a{sv}" && echo ok' - "$H"

# namespaces
check "--ns keeps keys apart" 0 "there" sh -c '"$1" --ns=other set k there && "$1" --ns=other get k' - "$H"
check_err "--ns: not in default" "NoSuchKey" "$H" get k

# --- workers, events, requests ------------------------------------------------------------------
check "workers (none)" 0 "No workers." "$H" workers
check "workers --json (none)" 0 "" "$H" workers --json
if [ -x "${CLUSTERHUB_WORKER:-}" ]; then
        spawn "$CLUSTERHUB_WORKER" w1 >"$TMP/w1.log" 2>&1
        check "wait-workers" 0 "w1" "$H" wait-workers 1 --timeout=5s
        check_py "workers --json" 'len(lines) == 1 and lines[0]["id"] == "w1" and lines[0]["pid"] > 0 and lines[0]["unique_name"].startswith(":")' "$H" workers --json
        check "workers table" 0 "ok" sh -c '"$1" workers | grep -Eq "^w1 +:[0-9.]+ +[0-9]+ " && echo ok' - "$H"
        check "send to a worker" 0 "" "$H" send w1 ping s:hello
        if wait_for "$TMP/w1.log" "ping"; then ok "the worker got the event"; else not_ok "the worker got the event" "$(cat "$TMP/w1.log")"; fi
else
        echo "# CLUSTERHUB_WORKER not set: skipping worker tests"
fi
check_err "wait-workers timeout" "org\.clusterhub\.Error\.Timeout" "$H" wait-workers 5 --timeout=300ms
check_err "send to an unknown worker" "org\.clusterhub\.Error\.WorkerUnavailable" "$H" send ghost ping
check "send --no-wait" 0 "" "$H" send --no-wait ghost ping
check "emit" 0 "" "$H" emit jobs.done x:1
check "emit without value" 0 "" "$H" emit jobs.done
check "emit --no-wait" 0 "" "$H" emit --no-wait jobs.done

# monitor: everything, as JSON
spawn "$H" monitor --json --count=5 >"$TMP/mon.json" 2>"$TMP/mon.err"
mon=$last_pid
wait_for "$TMP/mon.err" "^Monitoring" || not_ok "monitor started" "$(cat "$TMP/mon.err")"
"$H" emit jobs.done '{"n":1}'
"$H" set watched v
"$H" emit other s:plain
if [ -x "${CLUSTERHUB_WORKER:-}" ]; then
        spawn "$CLUSTERHUB_WORKER" w2 >/dev/null 2>&1
        w2=$last_pid
        "$H" wait-workers 2 >/dev/null
        kill "$w2"
else
        "$H" emit filler && "$H" emit filler
fi
wait "$mon"
rc=$?
[ $rc = 0 ] && ok "monitor --count exits 0" || not_ok "monitor --count exits 0" "rc=$rc" "$(cat "$TMP/mon.err")"
check_py "monitor --json lines" '
lines[0] == {"type": "event", "namespace": "default", "event": "jobs.done", "origin": lines[0]["origin"], "value": {"n": 1}} and
lines[1] == {"type": "key", "namespace": "default", "key": "watched", "command": "set"} and
lines[2]["event"] == "other" and lines[2]["value"] == "plain" and
(lines[3] == {"type": "joined", "worker": "w2", "unique_name": lines[3]["unique_name"]} or lines[3]["event"] == "filler") and
(lines[4] == {"type": "left", "worker": "w2", "reason": "disconnected"} or lines[4]["event"] == "filler")' cat "$TMP/mon.json"

# monitor: patterns, text
spawn "$H" monitor --count=3 --no-workers 'jobs.*' exact >"$TMP/mon.txt" 2>"$TMP/mon.err"
mon=$last_pid
wait_for "$TMP/mon.err" "^Monitoring" || not_ok "monitor started" "$(cat "$TMP/mon.err")"
"$H" emit other x:1
"$H" emit jobs.a x:2
"$H" emit jobsx x:3
"$H" emit exactly x:4
"$H" set other v
"$H" set exact v
"$H" emit jobs.b.c 'd:2.5'
wait "$mon"
check "monitor PATTERN filters on the bus" 0 "$(printf '%s\n' 'event jobs.a ORIGIN x:2' 'key exact set' 'event jobs.b.c ORIGIN d:2.5')" \
        sed -E 's/^event ([^ ]+) [^ ]+ /event \1 ORIGIN /' "$TMP/mon.txt"

spawn "$H" monitor >/dev/null 2>"$TMP/mon.err"
mon=$last_pid
wait_for "$TMP/mon.err" "^Monitoring"
kill -INT "$mon"
wait "$mon"
rc=$?
[ $rc = 0 ] && ok "monitor exits 0 on Ctrl-C" || not_ok "monitor exits 0 on Ctrl-C" "rc=$rc"

# requests
check_err "request: nobody serves it" "org\.clusterhub\.Error\.NoHandler: .*'nothing'" "$H" request nothing
check_err "request --to an unknown worker times out" "org\.clusterhub\.Error\.(WorkerUnavailable|Timeout): .*'ghost'" "$H" request --to=ghost --timeout=300ms upper x
if [ -x "${CLUSTERHUB_EXAMPLE_WORKER:-}" ]; then
        spawn "$CLUSTERHUB_EXAMPLE_WORKER" up1 >"$TMP/up1.log" 2>&1
        for _ in $(seq 100); do "$H" request upper x >/dev/null 2>&1 && break; sleep 0.05; done
        check "request" 0 "HELLO" "$H" request upper hello
        check "request --to" 0 "HELLO" "$H" request --to=up1 --timeout=5s upper hello
        check_py "request --json" 'lines == ["HI"]' "$H" request --json upper hi
        check_err "request: the handler's own error" "org\.clusterhub\.Example\.Error\.BadPayload" "$H" request upper x:1
else
        echo "# CLUSTERHUB_EXAMPLE_WORKER not set: skipping request replies"
fi

# --- stats, locks -------------------------------------------------------------------------------
check "stats table" 0 "ok" sh -c '"$1" stats >"$2" && head -1 "$2" | grep -Eq "^NAME +VALUE" && grep -Eq "^keys +[0-9]+" "$2" && grep -Eq "^calls\.Store1\.Get +[0-9]+" "$2" && echo ok' - "$H" "$TMP/stats"
check_py "stats --json" 'lines[0]["keys"] >= 1 and lines[0]["calls"]["Store1.Get"] >= 1 and "uptime_ms" in lines[0]' "$H" stats --json
check "lock" 0 "inside" "$H" lock l1 -- echo inside
check "locks (none)" 0 "No locks in namespace 'default'." "$H" locks
spawn "$H" lock l2 -- sleep 30
for _ in $(seq 100); do "$H" locks --json | grep -q l2 && break; sleep 0.05; done
check_py "locks --json" 'len(lines) == 1 and lines[0]["name"] == "l2" and lines[0]["token"] >= 1' "$H" locks --json
check_err "lock --nonblock busy" "is busy" "$H" lock --nonblock l2 -- true

finish
