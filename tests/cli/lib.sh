# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shared by the tests/cli shell tests: a private bus (dbus-daemon or dbus-broker via the
# harness's th-broker) with the hub on it, and TAP helpers. Source it; never touches the host's
# buses. Environment: CLUSTERHUBD, HUBCTL, TH_BROKER (set by tests/cli/meson.build).
set -u
unset DBUS_SYSTEM_BUS_ADDRESS
TMP=$(mktemp -d)
n=0
fails=0
pids=()
cleanup() {
        local p
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
                p=${pids[i]}
                kill "$p" 2>/dev/null
        done
        wait 2>/dev/null
        rm -rf "$TMP"
}
trap cleanup EXIT

# start_plain_bus SOCKET: a dbus-daemon listening at SOCKET, with no activatable services (so no
# hub installed on the host can start); prints its pid.
start_plain_bus() {
        cat >"$1.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$1</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
CONF
        dbus-daemon --config-file="$1.conf" --fork --print-pid=1 --nosyslog
}

# start_bus dbus-daemon|dbus-broker: exports DBUS_SESSION_BUS_ADDRESS. Exits 77-style skip
# (TAP "1..0 # SKIP") when the broker is not available.
start_bus() {
        case "$1" in
        dbus-daemon)
                local pid
                pid=$(start_plain_bus "$TMP/bus") || { echo "Bail out! cannot start dbus-daemon"; exit 1; }
                pids+=("$pid")
                ;;
        dbus-broker)
                if ! command -v "${TH_DBUS_BROKER:-dbus-broker}" >/dev/null || [ ! -x "${TH_BROKER:-}" ]; then
                        [ "${TH_REQUIRE_BROKER:-0}" = 1 ] && { echo "Bail out! dbus-broker is not available"; exit 1; }
                        echo "1..0 # SKIP dbus-broker is not available"
                        exit 0
                fi
                "$TH_BROKER" "$TMP/bus" >"$TMP/broker.addr" 2>&2 &
                pids+=($!)
                for _ in $(seq 100); do [ -S "$TMP/bus" ] && [ -s "$TMP/broker.addr" ] && break; sleep 0.05; done
                ;;
        esac
        export DBUS_SESSION_BUS_ADDRESS=unix:path=$TMP/bus
        for _ in $(seq 100); do
                busctl --user status org.freedesktop.DBus >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        echo "Bail out! the $1 bus does not answer"
        exit 1
}

# start_hub [clusterhubd options]
start_hub() {
        "${CLUSTERHUBD:?CLUSTERHUBD is not set}" --user "$@" 2>>"$TMP/hub.log" &
        pids+=($!)
        for _ in $(seq 200); do
                busctl --user status org.clusterhub.Hub1 >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        echo "Bail out! the hub did not take org.clusterhub.Hub1"
        cat "$TMP/hub.log" >&2
        exit 1
}

# spawn CMD...: runs CMD in the background, remembered for cleanup; sets $last_pid.
spawn() {
        "$@" &
        last_pid=$!
        pids+=("$last_pid")
}

ok() {
        n=$((n + 1))
        echo "ok $n - $1"
}
not_ok() {
        n=$((n + 1))
        fails=$((fails + 1))
        echo "not ok $n - $1"
        shift
        local l
        for l in "$@"; do printf '#   %s\n' "$l"; done
}

# check NAME EXPECTED_STATUS EXPECTED_STDOUT CMD...: runs CMD, compares exit status and stdout.
check() {
        local name=$1 want_rc=$2 want_out=$3 got rc
        shift 3
        got=$("$@" 2>"$TMP/stderr")
        rc=$?
        if [ "$rc" = "$want_rc" ] && [ "$got" = "$want_out" ]; then
                ok "$name"
        else
                not_ok "$name" "command: $*" "status: $rc (want $want_rc)" "stdout: $got" "want:   $want_out" "stderr: $(cat "$TMP/stderr")"
        fi
}

# check_fail NAME STATUS PATTERN CMD...: CMD must exit STATUS with PATTERN (grep -E) on stderr.
check_fail() {
        local name=$1 want_rc=$2 pat=$3 rc
        shift 3
        "$@" >"$TMP/stdout" 2>"$TMP/stderr"
        rc=$?
        if [ "$rc" = "$want_rc" ] && grep -Eq -- "$pat" "$TMP/stderr"; then
                ok "$name"
        else
                not_ok "$name" "command: $*" "status: $rc (want $want_rc)" "stderr: $(cat "$TMP/stderr")" "want:   $pat"
        fi
}
# check_err NAME PATTERN CMD...: CMD must exit 1 (an error the hub reported) with PATTERN on stderr.
check_err() { local name=$1; shift; check_fail "$name" 1 "$@"; }
# hubctl's exit status for usage errors, things not found, and a hub it cannot reach
check_usage() { local name=$1; shift; check_fail "$name" 2 "$@"; }
check_notfound() { local name=$1; shift; check_fail "$name" 3 "$@"; }
check_unreachable() { local name=$1; shift; check_fail "$name" 4 "$@"; }

# check_py NAME PYTHON-EXPR-OVER-`lines`-and-`text` CMD...: CMD's stdout parsed by python3.
check_py() {
        local name=$1 expr=$2 rc
        shift 2
        "$@" >"$TMP/stdout" 2>"$TMP/stderr"
        rc=$?
        if [ "$rc" = 0 ] && python3 - "$TMP/stdout" "$expr" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
lines = [json.loads(l) for l in text.splitlines() if l.strip()]
ok = eval("(" + sys.argv[2] + ")")
if not ok:
    print("# python check failed on: " + repr(text))
sys.exit(0 if ok else 1)
PY
        then
                ok "$name"
        else
                not_ok "$name" "command: $*" "status: $rc" "stdout: $(cat "$TMP/stdout")" "stderr: $(cat "$TMP/stderr")" "check:  $expr"
        fi
}

# wait_for_file_line FILE PATTERN [TRIES]: polls until FILE has a line matching PATTERN.
wait_for() {
        local file=$1 pat=$2 tries=${3:-200}
        for _ in $(seq "$tries"); do
                grep -Eq -- "$pat" "$file" 2>/dev/null && return 0
                sleep 0.05
        done
        return 1
}

finish() {
        echo "1..$n"
        [ "$fails" -eq 0 ]
        exit $?
}
