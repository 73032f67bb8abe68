#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# hubctl dump and restore against real hubs on private buses (TAP): every value type round-trips
# into a fresh hub with the same D-Bus types (checked with busctl on both hubs), TTLs come along,
# restore refuses existing keys unless --replace, --ns and --from pick namespaces, and bad
# documents fail with exit 1 and the line and column.
# usage: test-dump.sh dbus-daemon|dbus-broker
# Environment: CLUSTERHUBD, HUBCTL, TH_BROKER.
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
H=${HUBCTL:?HUBCTL is not set}
kind=${1:-dbus-daemon}

start_bus "$kind"
start_hub
BUS1=$DBUS_SESSION_BUS_ADDRESS

# a second bus of the same kind with a fresh hub on it
if [ "$kind" = dbus-broker ]; then
        "$TH_BROKER" "$TMP/bus2" >"$TMP/broker2.addr" 2>&2 &
        pids+=($!)
        for _ in $(seq 100); do [ -S "$TMP/bus2" ] && [ -s "$TMP/broker2.addr" ] && break; sleep 0.05; done
else
        bus2=$(start_plain_bus "$TMP/bus2") || { echo "Bail out! cannot start a second dbus-daemon"; exit 1; }
        pids+=("$bus2")
fi
BUS2=unix:path=$TMP/bus2
DBUS_SESSION_BUS_ADDRESS=$BUS2 start_hub
h1() { DBUS_SESSION_BUS_ADDRESS=$BUS1 "$H" "$@"; }
h2() { DBUS_SESSION_BUS_ADDRESS=$BUS2 "$H" "$@"; }
# call BUS NS METHOD SIGNATURE ARGS...: a Store1 call with busctl (types hubctl cannot write)
call() {
        local bus=$1 ns=$2
        shift 2
        DBUS_SESSION_BUS_ADDRESS=$bus busctl --user call org.clusterhub.Hub1 "/org/clusterhub/Hub1/ns/$ns" org.clusterhub.Store1 "$@"
}
bset() { # bset NS KEY SIGNATURE VALUE...
        local ns=$1 key=$2
        shift 2
        call "$BUS1" "$ns" Set 'sva{sv}' -- "$key" "$@" 0 >/dev/null || echo "# Set $key failed" >&2
}

# --- help -----------------------------------------------------------------------------------
for verb in dump restore; do
        out=$("$H" "$verb" --help 2>&1)
        rc=$?
        if [ $rc = 0 ] && [[ "$out" == "hubctl $verb"* ]]; then ok "$verb --help"; else not_ok "$verb --help" "rc=$rc" "$out"; fi
        "$H" --help | grep -q "^  $verb" && ok "$verb in hubctl --help" || not_ok "$verb in hubctl --help"
done
check_usage "dump takes no arguments" "too many arguments" h1 dump x
check_usage "restore takes one file" "too many arguments" h1 restore a b
check_usage "restore: bad --from" "is not a namespace name" h1 restore --from=a-b
check_unreachable "dump without a hub" "Cannot connect" "$H" --address=unix:path="$TMP/nobus" dump

# --- fill two namespaces with every kind of value ---------------------------------------------
h1 set s hello
h1 set 'ключ 🔑' 'значение ✓'
h1 set "$(printf 'quote"back\\slash\ttab')" 'x'
h1 set ambiguous 's:x:42 {"not json"'
h1 set n x:-9223372036854775808
bset default i i -2147483648
bset default u u 4294967295
bset default t t 18446744073709551615
bset default nn n -32768
bset default q q 65535
bset default y y 255
bset default d d 1.5
bset default dneg0 d -0.0
bset default dbig d 1.7976931348623157e308
bset default dtiny d 2.2250738585072014e-308
bset default dtenth d 0.1
bset default dnan d nan
bset default dinf d -inf
bset default b b false
bset default o o /org/example/Obj_1
bset default g g 'a{sv}(ii)'
printf '\000\001\002\377binary\n' >"$TMP/bytes"
h1 set --bytes -x bytes <"$TMP/bytes"
bset default emptybytes ay 0
bset default aay aay 3 0 1 255 2 1 2
bset default struct '(sa{ix}ayv)' hi 2 1 10 -2 20 3 1 2 255 v v u 7
bset default nested v v v v 'a{sv}' 1 deep v as 2 a b
bset default dict_ix 'a{ix}' 3 5 50 -1 10 0 0
bset default dict_ov 'a{ov}' 1 /a s x
bset default empty_as as 0
bset default structs 'a(sd)' 2 a 1.5 b -2.5
h1 set obj '{"a":[1,"two",{"c":true}],"d":1.5,"e":{}}'
h1 set --ttl=1h with_ttl expiring
h1 store rpush list a x:1 '[1,2]' b:true d:0.25 >/dev/null
call "$BUS1" default RPush sav -- list 2 ay 2 0 255 '(ii)' 1 2 >/dev/null
h1 store rpush list_ttl one two >/dev/null && h1 store expire list_ttl 3600000 >/dev/null
h1 store hset hash f1 v1 f2 x:2 'поле' s:z >/dev/null
call "$BUS1" default HSet 'sa{sv}' -- hash 1 fy y 7 >/dev/null
h1 store sadd set z a m 'é' '"q"' >/dev/null
# big ones: a list longer than one LRange slice, a hash past 128 fields, a 1 MB string
for i in 0 1 2 3; do
        seq $((i * 250 + 1)) $(((i + 1) * 250)) | sed 's/^/x:/' | DBUS_SESSION_BUS_ADDRESS=$BUS1 xargs "$H" store rpush biglist >/dev/null
done
seq 1 300 | awk '{ printf "field%d v%d ", $1, $1 }' | DBUS_SESSION_BUS_ADDRESS=$BUS1 xargs "$H" store hset bighash >/dev/null
seq 1 2000 | DBUS_SESSION_BUS_ADDRESS=$BUS1 xargs "$H" store sadd bigset >/dev/null
head -c 1000000 /dev/zero | tr '\0' 'a' | h1 set -x bigstring
# a second namespace
h1 --ns=second set greeting 'hi there'
h1 --ns=second set counter x:5
h1 --ns=second store rpush q job1 job2 >/dev/null
bset second bytes2 ay 3 1 2 3

# --- dump, restore into a fresh hub, dump again -------------------------------------------------
h1 dump >"$TMP/d1.json"
rc=$?
[ $rc = 0 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/d1.json" && ok "dump writes one JSON document" ||
        not_ok "dump writes one JSON document" "rc=$rc" "$(head -c 2000 "$TMP/d1.json")" "$(cat "$TMP/stderr" 2>/dev/null)"
check "dump: format, version, both namespaces, every key" 0 "clusterhub-dump 1 default:$(h1 store dbsize) second:4" \
        python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["format"], d["version"], " ".join("%s:%d" % (ns, len(keys)) for ns, keys in sorted(d["namespaces"].items())))' "$TMP/d1.json"
check "dump: the types and signatures" 0 \
        '["s", "hello"] int ["t", 18446744073709551615] ["d", -0.0] ["d", 0.1] ["d", "NaN"] ["ay", "AAEC/2JpbmFyeQo="] ["(sa{ix}ayv)", ["hi", [[1, 10], [-2, 20]], "AQL/", ["v", ["v", ["u", 7]]]]] ["s", "x"]' \
        python3 -c '
import json, sys
ns = json.load(open(sys.argv[1]))["namespaces"]["default"]
print(json.dumps(ns["s"]["value"]), ns["nn"]["type"], json.dumps(ns["t"]["value"]), json.dumps(ns["dneg0"]["value"]), json.dumps(ns["dtenth"]["value"]),
      json.dumps(ns["dnan"]["value"]), json.dumps(ns["bytes"]["value"]), json.dumps(ns["struct"]["value"]), json.dumps(ns["dict_ov"]["value"][1][0][1]))' "$TMP/d1.json"
check_py "dump: the TTL is the time left" '0 < lines[0]["with_ttl"]["ttl_ms"] <= 3600000 and 0 < lines[0]["list_ttl"]["ttl_ms"] <= 3600000 and "ttl_ms" not in lines[0]["s"]' \
        python3 -c 'import json,sys; ns = json.load(open(sys.argv[1]))["namespaces"]["default"]; print(json.dumps({k: ns[k] for k in ("with_ttl", "list_ttl", "s")}))' "$TMP/d1.json"
check_py "dump: lists keep their order, sets are sorted, big hashes sorted" \
        'lines[0]["biglist"] == [["x", i] for i in range(1, 1001)] and lines[0]["set"] == sorted(lines[0]["set"]) and len(lines[0]["bigset"]) == 2000 and list(lines[0]["bighash"]) == sorted(lines[0]["bighash"]) and len(lines[0]["bighash"]) == 300 and list(lines[0]["hash"])[:2] == ["f1", "f2"]' \
        python3 -c '
import json, sys
ns = json.load(open(sys.argv[1]))["namespaces"]["default"]
print(json.dumps({"biglist": ns["biglist"]["values"], "set": ns["set"]["members"], "bigset": ns["bigset"]["members"],
                  "bighash": ns["bighash"]["fields"], "hash": ns["hash"]["fields"]}))' "$TMP/d1.json"

check "restore into a fresh hub" 0 "" h2 restore "$TMP/d1.json"
h2 dump >"$TMP/d2.json"
same_but_ttl() { # same_but_ttl A B: equal apart from ttl_ms, and B's TTLs no longer than A's
        python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
def strip(d, out):
    for ns, keys in d["namespaces"].items():
        for k, e in keys.items():
            if "ttl_ms" in e:
                out[(ns, k)] = e.pop("ttl_ms")
ta, tb = {}, {}
strip(a, ta); strip(b, tb)
ok = a == b and ta.keys() == tb.keys() and all(0 < tb[k] <= ta[k] for k in ta)
if not ok:
    print("# differ: ttl %r vs %r" % (ta, tb))
sys.exit(0 if ok else 1)
PY
}
same_but_ttl "$TMP/d1.json" "$TMP/d2.json" && ok "the fresh hub dumps the same document (TTLs no longer)" ||
        not_ok "the fresh hub dumps the same document (TTLs no longer)" "$(diff "$TMP/d1.json" "$TMP/d2.json" | head -c 3000)"
# the same text, but for TTLs: keys sorted, order kept
diff <(sed 's/"ttl_ms":[0-9]*,//' "$TMP/d1.json") <(sed 's/"ttl_ms":[0-9]*,//' "$TMP/d2.json") >"$TMP/diff" &&
        ok "the same text but for TTLs" || not_ok "the same text but for TTLs" "$(head -c 2000 "$TMP/diff")"

# independent of hubctl: busctl sees the same D-Bus values in both hubs
mismatch=""
for ns in default second; do
        while IFS= read -r key; do
                type=$(call "$BUS1" "$ns" Type s "$key")
                case "$type" in
                *hash*) m=(HGetAll s) ;;
                *list*) m=(LRange sxx) ;;
                *set*) m=(SCard s) ;;
                *) m=(Get s) ;;
                esac
                extra=()
                [ "${m[0]}" = LRange ] && extra=(0 -1)
                a=$(call "$BUS1" "$ns" "${m[@]}" "$key" "${extra[@]}" 2>&1)
                b=$(call "$BUS2" "$ns" "${m[@]}" "$key" "${extra[@]}" 2>&1)
                [ "${m[0]}" = HGetAll ] && [ ${#a} -gt 3000 ] && { a=$(echo "$a" | wc -c); b=$(echo "$b" | wc -c); }
                [ "$a" = "$b" ] && [ "$(call "$BUS2" "$ns" Type s "$key")" = "$type" ] || mismatch+="$ns/$key: $a | $b; "
        done < <(h1 --ns=$ns keys)
done
[ -z "$mismatch" ] && ok "busctl reads the same typed values from both hubs" || not_ok "busctl reads the same typed values from both hubs" "${mismatch:0:3000}"
check "sets have the same members" 0 "$(h1 store smembers set | sort)" sh -c 'DBUS_SESSION_BUS_ADDRESS=$1 "$2" store smembers set | sort' - "$BUS2" "$H"
check_py "the TTL came along" '0 < lines[0] <= 3600000' h2 ttl --json with_ttl
check_py "the list's TTL came along" '0 < lines[0] <= 3600000' h2 ttl --json list_ttl
check "a key without TTL has none" 0 "-1" h2 ttl s

# --- existing keys ------------------------------------------------------------------------------
h2 del s >/dev/null
check_err "restore onto existing keys fails and names them" "exist in namespace 'default' already: \"aay\", .* and [0-9]+ more\..*" h2 restore "$TMP/d1.json"
grep -q "Nothing was written" "$TMP/stderr" && ok "... and says nothing was written" || not_ok "... and says nothing was written" "$(cat "$TMP/stderr")"
check_notfound "... and nothing was written" "NoSuchKey" h2 get s
h2 set hash now-a-string
h2 store rpush biglist extra >/dev/null
h2 --ns=second set counter x:99
check "restore --replace" 0 "" h2 restore --replace - <"$TMP/d1.json"
h2 dump >"$TMP/d3.json"
same_but_ttl "$TMP/d1.json" "$TMP/d3.json" && ok "--replace: the hub holds the dump again (no merging)" ||
        not_ok "--replace: the hub holds the dump again (no merging)" "$(diff "$TMP/d1.json" "$TMP/d3.json" | head -c 2000)"
check "restore --replace twice" 0 "" h2 restore --replace "$TMP/d1.json"
h2 dump >"$TMP/d4.json"
same_but_ttl "$TMP/d1.json" "$TMP/d4.json" && cmp -s <(sed 's/"ttl_ms":[0-9]*,//' "$TMP/d3.json") <(sed 's/"ttl_ms":[0-9]*,//' "$TMP/d4.json") && ok "restoring twice gives the same store" || not_ok "restoring twice gives the same store" "$(diff "$TMP/d3.json" "$TMP/d4.json" | head -c 2000)"

# --- one namespace: --ns, --from ----------------------------------------------------------------
h1 dump --ns=second >"$TMP/second.json"
check_py "dump --ns: only that namespace" 'list(lines[0]["namespaces"]) == ["second"] and len(lines[0]["namespaces"]["second"]) == 4' \
        python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$TMP/second.json"
check "the global --ns works the same" 0 "$(cat "$TMP/second.json")" h1 --ns=second dump
check "dump of an empty namespace" 0 '{"format":"clusterhub-dump","version":1,"namespaces":{
"nothing_here":{
}
}}' h1 dump --ns=nothing_here
check "restore --ns: the dump's only namespace into another" 0 "" h1 restore --ns=third "$TMP/second.json"
check "... holds the same keys" 0 "$(sed 's/"second"/"third"/' "$TMP/second.json")" h1 dump --ns=third
check "restore --from --ns: one namespace of a full dump" 0 "" h2 restore --from=second --ns=fourth "$TMP/d1.json"
check "... holds the same keys" 0 "$(sed 's/"second"/"fourth"/' "$TMP/second.json")" h2 dump --ns=fourth
h2 del d >/dev/null
h2 --ns=second del greeting >/dev/null
check "restore --ns picks that namespace of a full dump" 0 "" h2 --ns=second restore --replace "$TMP/d1.json"
check "... restores it" 0 "hi there" h2 --ns=second get greeting
check_notfound "... and no other" "NoSuchKey" h2 get d
check_notfound "restore --from a namespace the dump lacks" "holds no namespace 'nope' \(it holds 'default', 'second'\)" h2 restore --from=nope "$TMP/d1.json"
check_notfound "restore --ns=X of a dump of several, without X" "holds no namespace 'zzz' .*--from" h2 restore --ns=zzz "$TMP/d1.json"

# --- many keys: more calls than dbus-daemon lets one connection have pending (128) ------------------
python3 -c '
import json
keys = {"k%04d" % i: {"type": "int", "value": ["u", i]} for i in range(2000)}
keys.update({"t%04d" % i: {"type": "string", "ttl_ms": 3600000, "value": ["s", "v%d" % i]} for i in range(500)})
keys.update({"l%04d" % i: {"type": "list", "values": [["s", "a"], ["x", i]]} for i in range(500)})
print(json.dumps({"format": "clusterhub-dump", "version": 1, "namespaces": {"many": keys}}, indent=1))' >"$TMP/many.json"
check "restore of 3,000 keys" 0 "" h1 restore "$TMP/many.json"
check "... all there" 0 "3000" h1 --ns=many store dbsize
h1 dump --ns=many >"$TMP/many2.json"
python3 - "$TMP/many.json" "$TMP/many2.json" <<'PY' && ok "... and dumped back the same" || not_ok "... and dumped back the same"
import json, sys
a, b = (json.load(open(f))["namespaces"]["many"] for f in sys.argv[1:3])
ttls = [b[k].pop("ttl_ms", 0) for k in b if k.startswith("t")]
for k in a:
    a[k].pop("ttl_ms", None)
sys.exit(0 if a == b and len(ttls) == 500 and all(0 < t <= 3600000 for t in ttls) else 1)
PY

# --- bad documents: exit 1, where and what ------------------------------------------------------
bad() { # bad NAME PATTERN DOCUMENT
        printf '%s' "$3" >"$TMP/bad.json"
        check_err "$1" "$2" h2 restore --ns=bad "$TMP/bad.json"
}
pre='{"format":"clusterhub-dump","version":1,"namespaces":{"bad":'
bad "bad JSON: line and column" "is not valid JSON: line 3, column 11: expected ':', found '1'" $'{"format":\n"clusterhub-dump",\n"version" 1}'
bad "truncated" "line 1, column [0-9]+: .*the end of the input" '{"format":"clusterhub-dump","version":1,"namespaces":{"x":{'
bad "not a dump" "not a hubctl dump" '{"format":"other","version":1,"namespaces":{}}'
bad "a newer version" "version 2: this hubctl reads version 1" '{"format":"clusterhub-dump","version":2,"namespaces":{}}'
bad "duplicate keys" "\"k\" appears twice" "$pre"'{"k":{"type":"string","value":["s","a"]},"k":{"type":"string","value":["s","b"]}}}}'
bad "NUL in a string" "NUL" "$pre"'{"k":{"type":"string","value":["s","a\u0000b"]}}}}'
bad "not UTF-8" "not UTF-8" "$pre"$'{"k":{"type":"string","value":["s","\xff"]}}}}'
bad "a bad signature" "key \"k\" of namespace 'bad': \"a\{vs\}\" is not the D-Bus signature" "$pre"'{"k":{"type":"value","value":["a{vs}",[]]}}}}'
bad "file descriptors" "file descriptors" "$pre"'{"k":{"type":"value","value":["h",1]}}}}'
bad "out of range" "key \"y\" of namespace 'bad': 256 does not fit the type 'y'" "$pre"'{"y":{"type":"int","value":["y",256]}}}}'
bad "a fraction for an integer" "'x' wants an integer" "$pre"'{"k":{"type":"int","value":["x",1.5]}}}}'
bad "type and signature disagree" "the type \"int\" does not go with the signature 's'" "$pre"'{"k":{"type":"int","value":["s","1"]}}}}'
bad "bad base64" "wants base64" "$pre"'{"k":{"type":"value","value":["ay","AB="]}}}}'
bad "a struct of the wrong size" "wants 2 elements, not 1" "$pre"'{"k":{"type":"value","value":["(ii)",[1]]}}}}'
bad "unknown type" "unknown type \"zset\"" "$pre"'{"k":{"type":"zset","members":[]}}}}'
bad "unknown member" "unknown member \"valeu\"" "$pre"'{"k":{"type":"string","valeu":["s","a"]}}}}'
bad "empty list" "an empty list" "$pre"'{"k":{"type":"list","values":[]}}}}'
bad "ttl 0" "ttl_ms\" is more than 0" "$pre"'{"k":{"type":"string","ttl_ms":0,"value":["s","a"]}}}}'
bad "a set member that is not a string" "set members are strings" "$pre"'{"k":{"type":"set","members":["a",1]}}}}'
bad "bad namespace name" "\"a-b\" is not a namespace name" '{"format":"clusterhub-dump","version":1,"namespaces":{"a-b":{}}}'
bad "an error late in the document writes nothing" "key \"z\" of namespace 'bad'" "$pre"'{"a":{"type":"string","value":["s","a"]},"z":{"type":"int","value":["x","1"]}}}}'
check "... nothing" 0 "" h2 --ns=bad keys
deep=$(python3 -c 'print("[" * 100000 + "]" * 100000)')
bad "nesting is bounded" "nested deeper than 512" "$deep"
check_err "a missing file" "Cannot open $TMP/nofile" h2 restore "$TMP/nofile"

# --- the hub's limits -----------------------------------------------------------------------------
python3 -c 'import json; print(json.dumps({"format":"clusterhub-dump","version":1,"namespaces":{"lim":{"huge":{"type":"string","value":["s","a"*1100000]}}}}))' >"$TMP/huge.json"
check_err "a value past the hub's limit: the key and the limit are named" "Set of key 'huge' in namespace 'lim': org.clusterhub.Error.LimitExceeded" h2 restore "$TMP/huge.json"

finish
