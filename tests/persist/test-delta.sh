#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Large collections log per-element (delta) records: one push, set or add onto a 200k-element
# list, hash or set costs a small record, and kill -9 then restart gives back the exact
# collection; random mixed ops on large collections, a background rewrite meanwhile, a TTL
# kept and a TTL run out while the hub was down (TAP).
# shellcheck source=tests/persist/lib-persist.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-persist.sh"
N=200000
CHUNK=20000
LOG=$D/clusterhub.log

start_bus dbus-daemon
hub_up --data-dir="$D" --fsync=everysec

# fill: list L (e0..e199999 in order), hash Hh (f<i> = v<i>), set S (m<i>)
for ((i = 0; i < N; i += CHUNK)); do
        seq -f "e%.0f" "$i" $((i + CHUNK - 1)) | xargs -n 5000 "$H" store rpush L >/dev/null
        seq -f "%.0f" "$i" $((i + CHUNK - 1)) | sed 's/.*/f& v&/' | xargs -n 5000 "$H" store hset Hh >/dev/null
        seq -f "m%.0f" "$i" $((i + CHUNK - 1)) | xargs -n 5000 "$H" store sadd S >/dev/null
done
check "the list has $N elements" 0 "$N" "$H" store llen L
check "the hash has $N fields" 0 "$N" "$H" store hlen Hh
check "the set has $N members" 0 "$N" "$H" store scard S

# one write each: the log grows by about the size of the change (the whole collection would
# be megabytes)
size() { stat -c %s "$LOG"; }
grows_by_little() {
        local what=$1 before after
        shift
        before=$(size)
        "$@" >/dev/null
        after=$(size)
        if [ $((after - before)) -gt 0 ] && [ $((after - before)) -lt 200 ]; then
                ok "$what: the log grows by $((after - before)) bytes"
        else
                not_ok "$what: the log grows by a small record" "before $before after $after"
        fi
}
grows_by_little "RPush onto a $N-element list" "$H" store rpush L tail1
grows_by_little "LPush onto a $N-element list" "$H" store lpush L head1
grows_by_little "HSet of one field in a $N-field hash" "$H" store hset Hh newfield newvalue
grows_by_little "SAdd of one member to a $N-member set" "$H" store sadd S newmember
grows_by_little "RPop off a $N-element list" "$H" store rpop L 1
grows_by_little "HDel of one field" "$H" store hdel Hh f5
grows_by_little "SRem of one member" "$H" store srem S m5

dump() {
        "$H" store lrange L 0 -1 >"$1.L"
        "$H" store lrange L2 0 -1 >"$1.L2"
        "$H" store hgetall Hh | sort >"$1.H"
        "$H" store smembers S | sort >"$1.S"
}
compare() {
        local what
        for what in L L2 H S; do
                if cmp -s "$1.$what" "$2.$what"; then
                        ok "$3: $what is exact ($(wc -l <"$2.$what") items)"
                else
                        not_ok "$3: $what is exact" "$(diff "$1.$what" "$2.$what" | head -5)"
                fi
        done
}

dump "$TMP/before1"
hub_kill9
hub_up --data-dir="$D" --fsync=everysec
dump "$TMP/after1"
compare "$TMP/before1" "$TMP/after1" "one write each, kill -9, restart"
check "the list starts and ends as pushed" 0 "$(printf 'head1\ne0')" sh -c '"$1" store lrange L 0 1' - "$H"

# random mixed ops on the large collections (seeded: reproducible), with a background rewrite
# (Save) started in the middle: the records written while the child runs reach the new log
"$H" store rpush L2 $(seq -f "x%.0f" 1 100) >/dev/null
RANDOM=14
ops=0
failed=0
op() {
        "$@" >/dev/null 2>>"$TMP/op-errors" || failed=$((failed + 1))
        ops=$((ops + 1))
}
for ((k = 0; k < 300; k++)); do
        r=$((RANDOM % 14))
        v=$RANDOM
        case $r in
        0) op "$H" store rpush L "r$v" "s$v" ;;
        1) op "$H" store lpush L "l$v" ;;
        2) op "$H" store lpop L $((v % 3 + 1)) ;;
        3) op "$H" store rpop L 1 ;;
        4) op "$H" store lmove L L2 left right ;;
        5) op "$H" store lmove L2 L right left ;;
        6) op "$H" store lmove L L right left ;;
        7) op "$H" store hset Hh "f$((v % 1000))" "w$v" "g$v" "y$v" ;;
        8) op "$H" store hdel Hh "f$((v % 1000))" "g$((v % 7))" ;;
        9) op "$H" store hincr Hh "c$((v % 5))" "$((v % 100 - 50))" ;;
        10) op "$H" store sadd S "m$((v % 2000))" "n$v" ;;
        11) op "$H" store srem S "m$((v % 2000))" "n$((v - 1))" ;;
        12) op "$H" store spop S 2 ;;
        13) op "$H" store ltrim L2 0 150 ;;
        esac
        if [ "$k" = 100 ]; then
                "$H" save >/dev/null &
                save_pid=$!
        fi
done
wait "$save_pid" && ok "Save during the ops succeeded" || not_ok "Save during the ops succeeded"
# only LMove off an emptied L2 may fail
[ "$failed" -lt 10 ] && ok "the random ops succeeded ($failed of $ops failed)" ||
        not_ok "the random ops succeeded" "$failed of $ops failed: $(sort "$TMP/op-errors" | uniq -c | head -5)"
dump "$TMP/before2"
hub_kill9
hub_up --data-dir="$D" --fsync=everysec
dump "$TMP/after2"
compare "$TMP/before2" "$TMP/after2" "$ops random mixed ops, a rewrite meanwhile, kill -9, restart"

# and once more from the rewritten log plus the records after it
"$H" store rpush L after-restart >/dev/null
"$H" store hset Hh after restart >/dev/null
dump "$TMP/before3"
hub_kill9
check "--check-data reads the delta records as intact" 0 "intact" sh -c '"$1" --check-data="$2" | grep -o intact' - "$CLUSTERHUBD" "$D"
hub_up --data-dir="$D" --fsync=always
dump "$TMP/after3"
compare "$TMP/before3" "$TMP/after3" "restarted twice"

# TTLs: a delta keeps the key's deadline; a key whose TTL ran out while the hub was down stays
# gone, its later deltas with it
"$H" store expire L 300000 >/dev/null
"$H" store rpush L with-ttl >/dev/null
"$H" store rpush Short $(seq -f "t%.0f" 1 100) >/dev/null
"$H" store expire Short 1500 >/dev/null
grows_by_little "RPush onto a list with a TTL" "$H" store rpush Short more
sleep 2
hub_kill9
hub_up --data-dir="$D" --fsync=everysec
check_py "the TTL of the large list is kept" "100000 < int(text.strip()) <= 300000" "$H" ttl L
check "the push onto it is there" 0 "with-ttl" "$H" store lindex L -1
check_notfound "a large list whose TTL ran out while the hub was down is gone" "NoSuchKey" "$H" get Short
check "  its key does not come back from its delta" 0 "0" "$H" store llen Short
grep -q "damaged\|Cannot load" "$TMP/hub.log" && not_ok "no load error" "$(grep "damaged\|Cannot load" "$TMP/hub.log")" ||
        ok "no load error"

# logs written by hand: a delta for a key the log does not hold is refused (naming the file
# and the offset, and how to cut it); a newer version is refused at its header (as a hub
# before version 2 refuses a version 2 log); a version 1 log still loads
hub_kill9
mklog() { # mklog DIR VERSION RECORD-KIND...: set (a 100-element list k), delta (push onto k), orphan (push onto nokey)
        python3 - "$@" <<'PY'
import os, struct, sys, zlib
d, version, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def s(b): return struct.pack('<I', len(b)) + b + b'\0'
def val(b): return b's' + s(b)
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, 'clusterhub.log'), 'wb') as f:
    f.write(b'CHUBLOG\n' + struct.pack('<II', version, 0))
    for k in kinds:
        if k == 'set':
            p = b'\x01' + s(b'default') + s(b'k') + struct.pack('<q', 0) + b'L' + struct.pack('<I', 100) + b''.join(val(b'%d' % i) for i in range(100))
        else:
            p = b'\x06' + s(b'default') + s(b'k' if k == 'delta' else b'nokey') + struct.pack('<q', 0) + bytes([1, 0]) + struct.pack('<I', 1) + val(b'pushed')
        f.write(struct.pack('<II', len(p), zlib.crc32(p)) + p)
PY
}
mklog "$TMP/orphan" 2 set delta orphan
off=$(python3 -c 'import os,sys; print(os.path.getsize(sys.argv[1]) - 8 - (1 + 12 + 10 + 8 + 2 + 4 + 12))' "$TMP/orphan/clusterhub.log")
check_fail "a delta for a key the log does not hold stops the start" 1 \
        "clusterhub.log is damaged at offset $off \\(a change to the list 'nokey' of namespace default, which the log does not hold\\); the hub will not start. 'truncate -s $off " \
        "$CLUSTERHUBD" --address="$DBUS_SESSION_BUS_ADDRESS" --data-dir="$TMP/orphan"
truncate -s "$off" "$TMP/orphan/clusterhub.log"
: >"$TMP/hub.log"
hub_up --data-dir="$TMP/orphan"
check "cut there, the log loads, the delta before the cut applied" 0 "$(printf '98\n99\npushed')" "$H" store lrange k -3 -1
hub_kill9
mklog "$TMP/newer" 3 set
check_fail "a log of a newer version is refused at its header" 1 "damaged at offset 0 \\(unknown log version" \
        "$CLUSTERHUBD" --address="$DBUS_SESSION_BUS_ADDRESS" --data-dir="$TMP/newer"
mklog "$TMP/v1" 1 set
hub_up --data-dir="$TMP/v1"
check "a version 1 log loads" 0 "100" "$H" store llen k
check_py "its rewrite is version 2" "lines[0] == 2" python3 -c 'import struct,sys; print(struct.unpack("<I", open(sys.argv[1],"rb").read()[8:12])[0])' "$TMP/v1/clusterhub.log"

finish_persist
