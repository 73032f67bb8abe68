#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Damaged logs: a torn tail is cut off with a warning; a bad record in the middle stops the
# start with the file and offset; --check-data and --repair (TAP).
# shellcheck source=tests/persist/lib-persist.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-persist.sh"
L=$D/clusterhub.log

start_bus dbus-daemon
hub_up --data-dir="$D"
for k in $(seq 20); do "$H" set "k$k" "value number $k" >/dev/null; done
hub_kill9
# the last record is k20's: cut 3 bytes off it
truncate -s -3 "$L"
check_data() { "$CLUSTERHUBD" --check-data="$D" "$@" >"$TMP/stdout" 2>&1; }
check_data
rc=$?
[ $rc = 1 ] && grep -q "torn tail at offset" "$TMP/stdout" && ok "--check-data finds the torn tail" ||
        not_ok "--check-data finds the torn tail" "status $rc" "$(cat "$TMP/stdout")"
: >"$TMP/hub.log"
hub_up --data-dir="$D"
grep -Eq "clusterhub.log ends in a record cut short by a crash at offset [0-9]+.*cutting off" "$TMP/hub.log" &&
        ok "a torn tail is cut off with a warning" || not_ok "torn tail warning" "$(cat "$TMP/hub.log")"
check "the records before the torn one load" 0 "value number 19" "$H" get k19
check_notfound "the torn record is gone" "NoSuchKey" "$H" get k20
check_data && grep -q ": intact, 20 records" "$TMP/stdout" && ok "the log is intact again" || not_ok "the log is intact again" "$(cat "$TMP/stdout")"
"$H" set k20 "written again" >/dev/null
hub_kill9

# flip one byte in the middle: the hub refuses to start, naming the file and the offset
size=$(stat -c %s "$L")
mid=$((size / 2))
printf '\xff' | dd of="$L" bs=1 seek="$mid" conv=notrunc status=none
cp "$L" "$TMP/damaged.log"
check_fail "a bad record in the middle stops the start" 1 "clusterhub.log is damaged at offset [0-9]+ \\(checksum mismatch\\); the hub will not start.*--check-data=$D --repair" \
        "$CLUSTERHUBD" --address="$DBUS_SESSION_BUS_ADDRESS" --data-dir="$D"
offset=$(grep -Eo "damaged at offset [0-9]+" "$TMP/stderr" | grep -Eo "[0-9]+$")
if [ -n "$offset" ] && [ "$offset" -le "$mid" ] && [ "$offset" -gt $((mid - 200)) ]; then ok "the offset is the damaged record's ($offset, byte $mid flipped)"; else
        not_ok "the offset is the damaged record's" "offset $offset, flipped $mid"; fi
cmp -s "$L" "$TMP/damaged.log" && ok "a refused start leaves the log alone" || not_ok "a refused start leaves the log alone"
check_data
rc=$?
[ $rc = 1 ] && grep -q "bad record at offset $offset (checksum mismatch)" "$TMP/stdout" && ok "--check-data names the bad record's offset" ||
        not_ok "--check-data names the bad record's offset" "status $rc" "$(cat "$TMP/stdout")"
good=$(grep -Eo "; [0-9]+ good records" "$TMP/stdout" | grep -Eo "[0-9]+")
check_fail "--repair needs --check-data" 2 "goes with --check-data" "$CLUSTERHUBD" --repair
check_data --repair && grep -q "now ends at offset $offset" "$TMP/stdout" && ok "--repair cuts the log there" || not_ok "--repair cuts the log there" "$(cat "$TMP/stdout")"
check "the cut log is intact" 0 "0" sh -c '"$1" --check-data="$2" >/dev/null; echo $?' - "$CLUSTERHUBD" "$D"
[ "$(stat -c %s "$L")" = "$offset" ] && ok "the log ends where the bad record began" || not_ok "log size" "$(stat -c %s "$L") != $offset"
: >"$TMP/hub.log"
hub_up --data-dir="$D"
# the log was rewritten at the last start: a token record, then one record per key
check "the hub starts on the repaired log with the keys before the cut" 0 "$((good - 1))" sh -c '"$1" keys | wc -l' - "$H"

# not a log at all
hub_kill9
mkdir -p "$TMP/bad"
echo "hello world, this is not a log" >"$TMP/bad/clusterhub.log"
check_fail "a file that is not a log" 1 "damaged at offset 0 \\(not a clusterhub log" \
        "$CLUSTERHUBD" --address="$DBUS_SESSION_BUS_ADDRESS" --data-dir="$TMP/bad"
finish_persist
