#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Locks with busctl: a one-shot busctl call cannot keep its connection open, so take the lock
# with a lease (held for lease_ms even after busctl exits), work, then Unlock with the token.
set -euo pipefail
ns=/org/clusterhub/Hub1/ns/${NS:-default}
locks() { busctl --user call org.clusterhub.Hub1 "$ns" org.clusterhub.Locks1 "$@"; }

token=$(locks Lock 'sa{sv}' recipe-lock 2 lease_ms t 30000 timeout_ms t 5000 | cut -d' ' -f2)   # "t 7"
echo "holding recipe-lock with fencing token $token"

# while we hold it, nobody else gets it
test "$(locks TryLock 'sa{sv}' recipe-lock 0)" = "bt false 0"
locks ListLocks | grep -q '"recipe-lock"'

# ... the protected work goes here; keep the lease alive if it takes long:
locks Refresh stt recipe-lock "$token" 30000

locks Unlock st recipe-lock "$token"
acquired=$(locks TryLock 'sa{sv}' recipe-lock 1 lease_ms t 1000)
test "${acquired%% *}" = "bt" && test "$(echo "$acquired" | cut -d' ' -f2)" = true
locks Unlock st recipe-lock "$(echo "$acquired" | cut -d' ' -f3)"
echo "locks recipe: ok"
