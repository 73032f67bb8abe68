#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every examples/recipes/*.sh against a hub on a private bus (TAP).
# usage: test-recipes.sh RECIPES-DIR   (WORKER: the example worker for requests.sh, optional)
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dir=$1
start_bus dbus-daemon
start_hub
for recipe in "$dir"/*.sh; do
        name=$(basename "$recipe")
        if [ "$name" = requests.sh ] && [ ! -x "${WORKER:-}" ]; then
                n=$((n + 1))
                echo "ok $n - $name # SKIP no example worker (WORKER)"
                continue
        fi
        if out=$(timeout 60 bash "$recipe" 2>&1); then
                ok "$name"
        else
                not_ok "$name" "$out"
        fi
        # and in another namespace
        if out=$(NS=recipes timeout 60 bash "$recipe" 2>&1); then
                ok "$name in namespace recipes"
        else
                not_ok "$name in namespace recipes" "$out"
        fi
done
finish
