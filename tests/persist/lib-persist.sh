# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shared by the tests/persist shell tests: tests/cli/lib.sh (private bus, TAP helpers) plus
# starting the hub on a data dir and killing it with SIGKILL.
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
H=${HUBCTL:?HUBCTL is not set}
D=$TMP/data
hub_pid=

# hub_up [clusterhubd options]: start the hub (remembering its pid) and wait for its name
hub_up() {
        start_hub "$@"
        hub_pid=${pids[-1]}
}
# hub_kill9: SIGKILL, then wait until the name is gone
hub_kill9() {
        kill -9 "$hub_pid" 2>/dev/null
        wait "$hub_pid" 2>/dev/null
        for _ in $(seq 200); do
                busctl --user status org.clusterhub.Hub1 >/dev/null 2>&1 || return 0
                sleep 0.05
        done
}
# finish, after checking that no hub of this test reported a sanitizer error
finish_persist() {
        if grep -Eq "runtime error|Sanitizer" "$TMP/hub.log"; then
                not_ok "the hub reported no sanitizer error" "$(grep -E -A3 "runtime error|Sanitizer" "$TMP/hub.log" | head -20)"
        else
                ok "the hub reported no sanitizer error"
        fi
        finish
}
