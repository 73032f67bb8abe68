#!/bin/sh
# SPDX-License-Identifier: MIT
# The hub's logic links no bus: hub_core_lib (the first argument) calls no sd-bus or sd-event
# function, and the unit test executables (the rest) do not need libsystemd.
set -eu
lib=$1
shift
echo "1..$(($# + 1))"
n=1
if nm -u "$lib" | grep -E ' sd_(bus|event)_' >&2; then
        echo "not ok $n - $(basename "$lib") calls sd-bus"
else
        echo "ok $n - $(basename "$lib") calls no sd-bus"
fi
for exe in "$@"; do
        n=$((n + 1))
        if readelf -d "$exe" | grep -F 'libsystemd' >&2; then
                echo "not ok $n - $(basename "$exe") links libsystemd"
        else
                echo "ok $n - $(basename "$exe") links no libsystemd"
        fi
done
