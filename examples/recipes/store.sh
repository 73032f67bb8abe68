#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The store with busctl: set with a TTL, read, count, a hash, a job queue.
# Runs against the hub on the user bus ($DBUS_SESSION_BUS_ADDRESS); exits non-zero on a surprise.
set -euo pipefail
ns=/org/clusterhub/Hub1/ns/${NS:-default}
store() { busctl --user call org.clusterhub.Hub1 "$ns" org.clusterhub.Store1 "$@"; }

store Del as 4 recipe:greeting recipe:visits recipe:user recipe:jobs >/dev/null   # start clean

store Set 'sva{sv}' recipe:greeting s hello 1 ttl_ms t 60000      # -> b true
test "$(store Get s recipe:greeting)" = 'v s "hello"'
ttl=$(store TTL s recipe:greeting | cut -d' ' -f2)                # "x 59998"
test "$ttl" -gt 0

store Incr sx recipe:visits 5 >/dev/null
test "$(store Incr sx recipe:visits 1)" = "x 6"

store HSet 'sa{sv}' recipe:user 2 name s alice age x 42 >/dev/null
test "$(store HGet ss recipe:user age)" = "v x 42"

store RPush sav recipe:jobs 2 s one s two >/dev/null
test "$(store BLPop asu 1 recipe:jobs 1000)" = 'sv "recipe:jobs" s "one"'

# a missing key is a named error (busctl exits 1 and prints the message)
if store Get s recipe:nope 2>/dev/null; then exit 1; fi

store Del as 4 recipe:greeting recipe:visits recipe:user recipe:jobs
echo "store recipe: ok"
