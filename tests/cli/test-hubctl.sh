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
# BLPop with timeout 0 waits without limit (Redis): it is answered at the end of this test, after
# more than the 10 s the hub once put in its place
SECONDS=0
spawn "$H" store blpop forever 0 >"$TMP/blpop0.out" 2>&1
blpop0=$last_pid

# --- help and usage -----------------------------------------------------------------------------
check "hubctl --version" 0 "hubctl $("$H" --version | cut -d' ' -f2)" "$H" --version
for verb in get set del incr keys ttl store emit send monitor request workers wait-workers stats namespaces lock locks unlock; do
        out=$("$H" "$verb" --help 2>&1)
        rc=$?
        if [ $rc = 0 ] && [[ "$out" == "hubctl $verb"* ]]; then ok "$verb --help"; else not_ok "$verb --help" "rc=$rc" "$out"; fi
        "$H" --help | grep -q "^  $verb" && ok "$verb in hubctl --help" || not_ok "$verb in hubctl --help"
done
check "help" 0 "$("$H" --help)" "$H" help
check "help COMMAND" 0 "$("$H" get --help)" "$H" help get
check "help store METHOD: the XML's doc" 0 "ok" sh -c '"$1" help store hget | grep -q "NoSuchKey when the key or the field is absent" && echo ok' - "$H"
check "store METHOD --help" 0 "$("$H" help store lrange)" "$H" store LRange --help
check_usage "help store: unknown method" "is not a method" "$H" help store frob
check_usage "help: unknown command" "unknown command 'frob'" "$H" help frob
check_usage "unknown command" "unknown command 'frobnicate'" "$H" frobnicate
check_usage "unknown option" "unknown option '--bogus'" "$H" get --bogus k
check_usage "missing argument" "missing arguments" "$H" get
check_usage "too many arguments" "too many arguments" "$H" ttl a b
check_usage "bad duration" "Invalid --ttl" "$H" set k v --ttl=5parsecs
check_usage "bad namespace" "is not a namespace name" "$H" --ns=a-b get k
check_unreachable "no bus" "Cannot connect to the bus at unix:path=.*nobus: No such file" "$H" --address=unix:path="$TMP/nobus" get k

# every failure says why, with an exit status a script can tell apart
check_unreachable "no bus: the fix is named" "start a hub there: clusterhubd --address=" "$H" --address=unix:path="$TMP/nobus" get k
check_unreachable "no user bus: the fix is named" "run-hub.*" env DBUS_SESSION_BUS_ADDRESS=unix:path="$TMP/nobus" "$H" get k
check_unreachable "bad address" "'not-an-address' is not a D-Bus address" "$H" --address=not-an-address get k
check_unreachable "bad DBUS_SESSION_BUS_ADDRESS" "'garbage' \(DBUS_SESSION_BUS_ADDRESS\) is not a D-Bus address" \
        env DBUS_SESSION_BUS_ADDRESS=garbage "$H" get k
check_unreachable "no user bus at all" "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set" \
        env -u DBUS_SESSION_BUS_ADDRESS -u XDG_RUNTIME_DIR "$H" get k
bus2=$(start_plain_bus "$TMP/bus2") && pids+=("$bus2")
check_unreachable "a bus without a hub" "No hub on the user bus .*nobody owns org\.clusterhub\.Hub1" \
        env DBUS_SESSION_BUS_ADDRESS="unix:path=$TMP/bus2" "$H" get k
grep -q "run-hub" "$TMP/stderr" && ok "a bus without a hub: the fix is named" || not_ok "a bus without a hub: the fix is named" "$(cat "$TMP/stderr")"
DBUS_SESSION_BUS_ADDRESS="unix:path=$TMP/bus2" spawn "$H" monitor 2>"$TMP/mon0.err"
wait_for "$TMP/mon0.err" "No hub on the bus yet.*run-hub" && ok "monitor on a bus without a hub says it waits for one" ||
        not_ok "monitor on a bus without a hub says it waits for one" "$(cat "$TMP/mon0.err")"
kill "$last_pid"
bad=$(printf 'k\377ey')
check_usage "invalid UTF-8 in a key" "Invalid key 'k.xffey': not UTF-8 at byte 1" "$H" set "$bad" v
check_usage "invalid UTF-8 in a value" "Invalid value 'v.xffal': not UTF-8 at byte 1.*--bytes" "$H" set k "$(printf 'v\377al')"
check_usage "invalid UTF-8 in a typed string" "Invalid string" "$H" set k "$(printf 's:\377')"
check_usage "invalid UTF-8 in a JSON string" "not UTF-8" "$H" set k "$(printf '{"a":"\377"}')"
check_usage "invalid UTF-8 in an event payload" "Invalid value" "$H" emit ev "$(printf '\377')"
check_usage "invalid UTF-8 in an event name" "Invalid event name" "$H" emit "$(printf '\377')"
check_usage "invalid UTF-8 in a request payload" "Invalid value" "$H" request m "$(printf '\377')"
check_usage "invalid UTF-8 in store arguments" "Invalid string" "$H" store sadd s "$(printf '\377')"
check_usage "invalid UTF-8 in a keys pattern" "Invalid pattern" "$H" keys "$(printf '\377')"
check_usage "invalid UTF-8 on stdin (-x)" "Invalid standard input .*--bytes" sh -c 'printf "a\377" | "$1" set -x k' - "$H"

# --- store --------------------------------------------------------------------------------------
# raw bytes and standard input
printf 'a\377b\000c\n' >"$TMP/bytes.in"
check "set --bytes -x stores ay" 0 "v ay 6 97 255 98 0 99 10" sh -c '"$1" set --bytes -x raw <"$2" && busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Get s raw' - "$H" "$TMP/bytes.in"
check "get --raw writes the bytes back" 0 "same" sh -c '"$1" get --raw raw >"$2.out" && cmp -s "$2" "$2.out" && echo same' - "$H" "$TMP/bytes.in"
check "set --bytes VALUE" 0 "v ay 2 104 105" sh -c '"$1" set --bytes raw hi && busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Get s raw' - "$H"
check "set -x takes stdin as a string, untyped" 0 'v s "x:42 {\"a\"\n"' sh -c 'printf "x:42 {\"a\"\n" | "$1" set -x sx && busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Get s sx' - "$H"
check_usage "set -x with a VALUE too" "too many arguments" sh -c 'echo v | "$1" set -x k v' - "$H"
check "emit -x" 0 "" sh -c 'echo payload | "$1" emit -x ev' - "$H"
# exit status 3 (not found) apart from 1 (other errors), for `hubctl get k || fallback`
check "get k || fallback: 3 only when missing" 0 "3 1" sh -c '"$1" get nope 2>/dev/null; a=$?; "$1" set wt x:1 && "$1" store lpush wt v 2>/dev/null; echo "$a $?"' - "$H"

check "set" 0 "" "$H" set greeting hello
check "get" 0 "hello" "$H" get greeting
check_notfound "get missing key: NoSuchKey" "^hubctl: Get: org\.clusterhub\.Error\.NoSuchKey: .*'nope'" "$H" get nope
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
check_usage "bad typed value" "Invalid value 'abc'" "$H" set t x:abc
check_usage "x: out of range" "Invalid value" "$H" set t i:4294967296
check_usage "bad JSON" "Invalid JSON" "$H" set t '{"a":}'
check_usage "JSON null" "null has no D-Bus type" "$H" set t '{"a":null}'
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
check_usage "--nx and --xx" "exclude each other" "$H" set --nx --xx k v

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
check_py "keys --json" 'lines == [["user:1", "user:2"]]' "$H" keys --json 'user:*'
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
check "store --json of a method without a return value: null" 0 "null" "$H" store --json mset "{\"mk\": 1}"
check_err "store wrongtype" "org\.clusterhub\.Error\.WrongType" "$H" store lpush h x
check_usage "store unknown method" "is not a method of org.clusterhub.Store1" "$H" store frob
check_usage "store pairs" "KEY VALUE pairs" "$H" store hset h f1
check_usage "store too few" "Too few arguments" "$H" store rename a
check "store --help lists methods" 0 "ok" sh -c '"$1" store --help | grep -q "HGetAll *s *-> a{sv}" && echo ok' - "$H"

# namespaces
check "--ns keeps keys apart" 0 "there" sh -c '"$1" --ns=other set k there && "$1" --ns=other get k' - "$H"
check_notfound "--ns: not in default" "NoSuchKey" "$H" get k

# *_ms options take the integer type a client's language sends (i, u, x, t), never a negative one
S() { busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 "$@" 2>&1; }
for t in i u x t; do
        check "Set ttl_ms as $t" 0 "ok" sh -c 'busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Set "sva{sv}" ot s v 1 ttl_ms "$2" 60000 >/dev/null && t=$("$1" ttl ot) && [ "$t" -gt 50000 ] && echo ok' - "$H" "$t"
done
check "Set ttl_ms as i, negative: InvalidArgs naming it" 1 "Call failed: Option 'ttl_ms' must not be negative (it is -5)." S Set 'sva{sv}' ot s v 1 ttl_ms i -- -5
check "Set ttl_ms as x, negative" 1 "Call failed: Option 'ttl_ms' must not be negative (it is -1)." S Set 'sva{sv}' ot s v 1 ttl_ms x -- -1
check "Set ttl_ms as s: refused" 1 "Call failed: Option 'ttl_ms' must be an integer (t, u, x or i), not s." S Set 'sva{sv}' ot s v 1 ttl_ms s 5
check "Set ttl_ms = 0: refused as Redis's SET PX 0" 1 "Call failed: Option 'ttl_ms' must be more than 0 (leave it out for none)." S Set 'sva{sv}' ot s v 1 ttl_ms t 0
check "Expire(k, 0) deletes, as Redis's EXPIRE k 0" 0 $'b true\nv x -2' sh -c 'busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 Expire st ot 0; busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 TTL s ot | sed "s/^x/v x/"'
check_usage "hubctl set --ttl=0 is refused too" "must be more than 0" "$H" set ot v --ttl=0
check "hubctl's JSON options (x) are accepted" 0 "ok" sh -c '"$1" store set oj v "{\"ttl_ms\": 60000}" >/dev/null && [ "$("$1" ttl oj)" -gt 50000 ] && echo ok' - "$H"
# (in namespace "other", whose lock list nobody checks)
check "Lock timeout_ms as i, lease_ms as x" 0 "ok" sh -c 'busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/other org.clusterhub.Locks1 TryLock "sa{sv}" oi 2 timeout_ms i 1000 lease_ms x 1000 | grep -q "^bt true" && echo ok'
check_err "Lock lease_ms negative: InvalidArgs naming it" "Option 'lease_ms' must not be negative \(it is -1000\)" \
        busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/other org.clusterhub.Locks1 TryLock 'sa{sv}' oj 1 lease_ms i -- -1000
check "Request timeout_ms as i" 0 "ok" sh -c 'busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Requests1 Request "ssva{sv}" "" nobody s x 1 timeout_ms i 500 2>&1 | grep -q "Nobody serves" && echo ok'

# --- workers, events, requests ------------------------------------------------------------------
check "workers (none)" 0 "No workers." "$H" workers
check "workers --json (none)" 0 "[]" "$H" workers --json
check "keys --json (none)" 0 "[]" "$H" keys --json 'zzz*'
check "locks --json (none)" 0 "[]" "$H" locks --json
check "del --json" 0 "0" "$H" del --json nothing
check "ttl --json" 0 "-2" "$H" ttl --json nothing
check_py "namespaces --json" 'lines == [["default", "other"]]' "$H" namespaces --json
check "namespaces" 0 $'default\nother' "$H" namespaces
# --json on the verbs that print nothing otherwise: the method's answer, always valid JSON
check "set --json" 0 "true" "$H" set jk v --json
check "set --nx --json: false, exit 1" 1 "false" "$H" set jk v --nx --json
check "emit --json" 0 "null" "$H" emit jobs.json --json
check "send --no-wait --json" 0 "null" "$H" send nobody jobs.json --no-wait --json
check "unlock --json" 0 "null" sh -c 't=$("$1" lock --lease=10s jl) && "$1" unlock --json jl "$t"' - "$H"
"$H" del jk >/dev/null
if [ -x "${CLUSTERHUB_WORKER:-}" ]; then
        spawn "$CLUSTERHUB_WORKER" w1 >"$TMP/w1.log" 2>&1
        check "wait-workers" 0 "w1" "$H" wait-workers 1 --timeout=5s
        check_py "workers --json" 'len(lines[0]) == 1 and lines[0][0]["id"] == "w1" and lines[0][0]["pid"] > 0 and lines[0][0]["unique_name"].startswith(":")' "$H" workers --json
        check_py "wait-workers --json" 'lines == [["w1"]]' "$H" wait-workers --json 1
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
# a signal sent to the monitor directly by someone other than the hub is not the hub's
monname=$(busctl --user list --unique --no-legend 2>/dev/null | awk -v p="$mon" '$2 == p { print $1; exit }')
if [ -n "$monname" ] && busctl --user emit --destination="$monname" /org/clusterhub/Hub1/ns/default \
        org.clusterhub.Events1 Event ssv jobs.forged nobody s evil 2>"$TMP/forge.err"; then
        ok "a forged Event was sent to the monitor ($monname) directly"
else
        not_ok "a forged Event was sent to the monitor directly" "name '$monname': $(cat "$TMP/forge.err" 2>/dev/null)"
fi
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
check_py "locks --json" 'len(lines[0]) == 1 and lines[0][0]["name"] == "l2" and lines[0][0]["token"] >= 1' "$H" locks --json
check_err "lock --nonblock busy" "is busy" "$H" lock --nonblock l2 -- true
check_fail "lock -E: flock's conflict exit code" 75 "is busy" "$H" lock -n -E 75 l2 -- true
check_fail "lock -E on a timeout" 75 "Timeout" "$H" lock -w 200ms -E 75 l2 -- true
check "lock -E keeps the command's status" 3 "" "$H" lock -E 75 l9 -- sh -c 'exit 3'
check "lock -c" 0 "in sh" "$H" lock -c 'echo "in $0"' l3
check_usage "lock -c with a command too" "left over" "$H" lock -c true l3 extra
check_usage "lock without a command or lease" "give --lease=DURATION" "$H" lock l4
check_usage "lock: bad -E" "Invalid --conflict-exit-code" "$H" lock -E 300 l4 -- true
# a lock for a script of several steps: taken with a lease, held after hubctl exits, unlocked by token
tok=$("$H" lock --lease=1min l5)
case "$tok" in [0-9]*) ok "lock --lease without a command prints the token" ;; *) not_ok "lock --lease without a command prints the token" "$tok" ;; esac
check_fail "the lease lock is held after hubctl exits" 1 "is busy" "$H" lock -n l5 -- true
check_err "unlock with a wrong token" "NotLockOwner" "$H" unlock l5 999999
check "unlock with the token" 0 "" "$H" unlock l5 "$tok"
check "the lock is free again" 0 "free" "$H" lock -n l5 -- echo free
check_err "unlock twice" "NotLocked" "$H" unlock l5 "$tok"
check_usage "unlock: a token is a number" "is not a lock token" "$H" unlock l5 abc

while [ "$SECONDS" -le 11 ]; do sleep 1; done
kill -0 "$blpop0" 2>/dev/null && ok "BLPop 0 still waits after 11 s" || not_ok "BLPop 0 still waits after 11 s" "$(cat "$TMP/blpop0.out")"
"$H" store rpush forever last >/dev/null
wait "$blpop0"
rc=$?
check "BLPop 0 gets the push" 0 $'forever\nlast' sh -c 'cat "$1"; exit "$2"' - "$TMP/blpop0.out" "$rc"

finish
