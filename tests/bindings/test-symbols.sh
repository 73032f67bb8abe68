#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# libclusterhub exports only ch_* symbols (TAP).  usage: test-symbols.sh LIBRARY
set -u
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}')
n=$(printf '%s\n' "$syms" | grep -c .)
# ASan builds add an __odr_asan.NAME twin of each exported variable: not ours to judge
bad=$(printf '%s\n' "$syms" | grep -v -e '^ch_' -e '^__odr_asan\.ch_' || true)
if [ "$n" -gt 0 ]; then echo "ok 1 - $n exported symbols"; else echo "not ok 1 - no exported symbols"; fi
if [ -z "$bad" ]; then echo "ok 2 - all start with ch_"; else echo "not ok 2 - foreign symbols: $(echo $bad)"; fi
echo "1..2"
[ "$n" -gt 0 ] && [ -z "$bad" ]
