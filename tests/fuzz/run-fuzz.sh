#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-fuzz.sh TARGET SEED_CORPUS WORK_DIR: run one libFuzzer target for FUZZ_SECONDS (20).
# New inputs go to WORK_DIR/corpus (the seed corpus in the tree is only read), crash
# inputs to WORK_DIR/crash-*.  Fails when the target finds a crash, a leak, undefined
# behaviour or an input slower than FUZZ_UNIT_TIMEOUT seconds (10).
set -eu
target=$1 seeds=$2 work=$3
mkdir -p "$work/corpus"
cd "$work"
# The sanitizer settings of the environment (run-tests exports its own) do not apply here:
# libFuzzer needs to see the report.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# libFuzzer's own failure status is 77, which meson would count as a skip.
exec "$target" -max_total_time="${FUZZ_SECONDS:-20}" -timeout="${FUZZ_UNIT_TIMEOUT:-10}" \
        -error_exitcode=1 -timeout_exitcode=1 \
        -max_len=16384 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" \
        "$work/corpus" "$seeds"
