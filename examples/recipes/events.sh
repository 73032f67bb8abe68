#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Events with busctl: watch a family with `busctl monitor` (the bus filters on arg0namespace),
# emit into it, and see only what was asked for.
set -euo pipefail
ns=/org/clusterhub/Hub1/ns/${NS:-default}
out=$(mktemp)
trap 'kill "$mon" 2>/dev/null; rm -f "$out"' EXIT

busctl --user monitor --json=short \
        --match "type='signal',sender='org.clusterhub.Hub1',path='$ns',interface='org.clusterhub.Events1',member='Event',arg0namespace='recipe'" \
        >"$out" 2>/dev/null &
mon=$!
sleep 1 # busctl monitor has no "ready" signal

emit() { busctl --user call org.clusterhub.Hub1 "$ns" org.clusterhub.Events1 Emit sv "$@"; }
emit other.thing s ignored
emit recipe.done s report-42
emit recipe.progress x 40

for _ in $(seq 50); do [ "$(grep -c '"member":"Event"' "$out")" -ge 2 ] && break; sleep 0.1; done
grep -q '"recipe.done"' "$out"
grep -q '"recipe.progress"' "$out"
! grep -q '"other.thing"' "$out"
echo "events recipe: ok"
