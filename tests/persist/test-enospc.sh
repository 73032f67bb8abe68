#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A full disk: store writes fail with org.clusterhub.Error.Storage, reads go on, nothing
# acknowledged is lost, and writes resume once there is room (TAP).  Needs root for a small
# tmpfs in a private mount namespace; skips otherwise.
if [ -z "${CH_IN_MOUNT_NS:-}" ]; then
        if [ "$(id -u)" != 0 ] || ! unshare --mount true 2>/dev/null; then
                echo "1..0 # SKIP needs root and unshare --mount for a small tmpfs"
                exit 0
        fi
        CH_IN_MOUNT_NS=1 exec unshare --mount "$0" "$@"
fi
# shellcheck source=tests/persist/lib-persist.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-persist.sh"
mkdir -p "$TMP/small"
if ! mount -t tmpfs -o size=2m tmpfs "$TMP/small"; then
        echo "1..0 # SKIP cannot mount a tmpfs"
        exit 0
fi
trap 'umount -l "$TMP/small"; cleanup' EXIT
D=$TMP/small/data
start_bus dbus-daemon
hub_up --data-dir="$D"
# room to give back later
head -c $((600 * 1024)) /dev/zero >"$TMP/small/filler"
big=$(head -c 20000 /dev/zero | tr '\0' 'v')
acked=()
refused=
for k in $(seq 200); do
        if "$H" set "k$k" "$big" >/dev/null 2>"$TMP/err"; then
                acked+=("k$k")
        else
                refused=$(cat "$TMP/err")
                break
        fi
done
[[ "$refused" == *"org.clusterhub.Error.Storage"*"full"* ]] && ok "a write on a full disk fails with Error.Storage (after ${#acked[@]} writes)" ||
        not_ok "a write on a full disk fails with Error.Storage" "acked ${#acked[@]}" "error: $refused"
check "reads still work" 0 "20000" sh -c '"$1" get k1 | tr -d "\n" | wc -c' - "$H"
check_err "a delete is refused too" "org.clusterhub.Error.Storage" "$H" del k1
check "the refused write changed nothing" 0 "-2" "$H" ttl "k$(( ${#acked[@]} + 1 ))"
grep -q "Refusing store writes until there is" "$TMP/hub.log" && ok "the hub logs why" || not_ok "the hub logs why" "$(cat "$TMP/hub.log")"

rm -f "$TMP/small/filler"
for _ in $(seq 100); do "$H" set again x >/dev/null 2>&1 && break; sleep 0.1; done
check "writes resume once there is room" 0 "x" "$H" get again
acked+=(again)

hub_kill9
: >"$TMP/hub.log"
hub_up --data-dir="$D"
missing=
for k in "${acked[@]}"; do "$H" get "$k" >/dev/null 2>&1 || missing+=" $k"; done
[ -z "$missing" ] && ok "every acknowledged write is there after kill -9 (${#acked[@]} keys)" || not_ok "acknowledged writes lost:$missing"

# a record larger than the reserve on a disk that is full: the hub cannot undo the change in
# memory, so it cuts the partial record and exits before the reply leaves
avail=$(df --output=avail -B1 "$TMP/small" | tail -1)
head -c $((avail - 400 * 1024)) /dev/zero >"$TMP/small/filler" 2>/dev/null
for _ in $(seq 100); do "$H" set small x >/dev/null 2>&1 && break; sleep 0.1; done
check "a small write fits the reserve" 0 "x" "$H" get small
head -c 900000 /dev/zero | tr '\0' 'b' >"$TMP/big"
"$H" set -x big <"$TMP/big" >/dev/null 2>"$TMP/err"
rc=$?
wait "$hub_pid"
hub_rc=$?
[ $rc != 0 ] && [ $hub_rc = 1 ] && grep -q "Appending to $D/clusterhub.log failed: No space left on device. Exiting so that no change the log does not hold is acknowledged" "$TMP/hub.log" &&
        ok "a record the disk cannot take: the hub exits 1 before acknowledging it" ||
        not_ok "the hub exits before acknowledging" "hubctl $rc: $(cat "$TMP/err")" "hub $hub_rc" "$(tail -3 "$TMP/hub.log")"
"$CLUSTERHUBD" --check-data="$D" >"$TMP/stdout" && ok "the log is intact (the partial record was cut)" || not_ok "the log is intact" "$(cat "$TMP/stdout")"
rm -f "$TMP/small/filler"
hub_up --data-dir="$D"
check_notfound "the unacknowledged write is not there" "NoSuchKey" "$H" get big
check "the acknowledged ones are" 0 "x" "$H" get small

# a version 1 log on a full disk: the rewrite at start fails, so the hub appends to the old log;
# it first sets the header's version to 2 (it may append delta records, which a hub before
# version 2 must refuse rather than misread)
hub_kill9
rm -rf "$D"
mkdir -p "$TMP/small/v1"
python3 - "$TMP/small/v1/clusterhub.log" <<'PY'
import struct, sys, zlib
def s(b): return struct.pack('<I', len(b)) + b + b'\0'
p = b'\x01' + s(b'default') + s(b'k') + struct.pack('<q', 0) + b'L' + struct.pack('<I', 100) + b''.join(b's' + s(b'%d' % i) for i in range(100))
open(sys.argv[1], 'wb').write(b'CHUBLOG\n' + struct.pack('<II', 1, 0) + struct.pack('<II', len(p), zlib.crc32(p)) + p)
PY
head -c 4M /dev/zero >"$TMP/small/filler" 2>/dev/null # fills the disk: no page for a new file
: >"$TMP/hub.log"
hub_up --data-dir="$TMP/small/v1"
grep -q "Failed to rewrite $TMP/small/v1/clusterhub.log (keeping the current log)" "$TMP/hub.log" &&
        ok "a full disk: the rewrite at start fails, the hub keeps the old log" || not_ok "the rewrite at start fails" "$(cat "$TMP/hub.log")"
check "the version 1 log loaded" 0 "100" "$H" store llen k
check "its header now says version 2" 0 "2" python3 -c 'import struct,sys; print(struct.unpack("<I", open(sys.argv[1],"rb").read()[8:12])[0])' "$TMP/small/v1/clusterhub.log"
finish_persist
