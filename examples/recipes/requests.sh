#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Requests with busctl: call a method some worker serves. Needs a worker serving "upper", e.g.
# examples/c-worker (clusterhub-example-worker); set WORKER=/path/to/it to have this recipe start
# one, else it uses the workers already running.
set -euo pipefail
ns=/org/clusterhub/Hub1/ns/default # the example worker serves in "default"
hub() { busctl --user call org.clusterhub.Hub1 "$@"; }

if [ -n "${WORKER:-}" ]; then
        "$WORKER" recipe_worker >/dev/null 2>&1 &
        worker=$!
        trap 'kill "$worker"' EXIT
        hub /org/clusterhub/Hub1 org.clusterhub.Hub1 WaitForWorkers uu 1 5000 >/dev/null
fi
# the worker may still be serving its methods: retry NoHandler briefly
for _ in $(seq 50); do
        reply=$(hub "$ns" org.clusterhub.Requests1 Request 'ssva{sv}' '' upper s hello 1 timeout_ms u 5000 2>/dev/null) && break
        sleep 0.1
done
test "$reply" = 'v s "HELLO"'

# a method nobody serves is a named error
if err=$(hub "$ns" org.clusterhub.Requests1 Request 'ssva{sv}' '' no-such-method s x 0 2>&1); then exit 1; fi
echo "$err" | grep -q "Nobody serves"
echo "requests recipe: ok"
