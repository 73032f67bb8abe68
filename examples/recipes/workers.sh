#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The hub itself with busctl: workers, the all-ready barrier, namespaces and counters.
set -euo pipefail
hub() { busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 "$@"; }

busctl --user get-property org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 Version
hub ListWorkers
hub WaitForWorkers uu 0 1000 >/dev/null          # 0 workers: passes at once
hub ListNamespaces | grep -q '"default"'
hub GetStats | grep -q uptime_ms
busctl --user tree org.clusterhub.Hub1 >/dev/null
echo "workers recipe: ok"
