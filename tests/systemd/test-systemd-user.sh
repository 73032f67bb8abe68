#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-systemd-user.sh UNITDIR LIBEXECDIR CLUSTERHUBD WORKER   (TAP)
#
# The real user units under a private `systemd --user` (reference/ecosystem.md
# 5.6), without touching the host's manager or buses:
#   unshare --mount --pid --fork --mount-proc: a tmpfs on /run/systemd with
#   /run/systemd/system (so systemd --user believes the system was booted with
#   systemd) and a fake journal socket (dbus-broker insists on it); a private
#   XDG_RUNTIME_DIR / HOME / XDG_CONFIG_HOME / XDG_DATA_HOME; the configured
#   user units and the session activation file from the build dir, with
#   LIBEXECDIR rewritten to the built binaries.  The PID namespace guarantees
#   that nothing started here outlives the test; the trap also stops the
#   manager and the journal stand-in by PID.
#
# Checks: the manager and the user bus come up; the first call to
# org.clusterhub.Hub1 starts clusterhubd.service (D-Bus activation);
# clusterhub-worker@{1..4} register as 1..4; kill -9 of worker 2 -> systemd
# restarts it and it registers again; `systemctl --user restart clusterhubd`
# and kill -9 of the hub (Restart=on-failure) -> the hub comes back and so do
# the four workers, registered again; the watchdog is armed; stopping
# clusterhub-workers.target stops the workers (WorkerLeft for each, the hub
# stays); starting the target starts the instances wanted by it.
# Every wait is bounded (WAIT seconds).
set -uo pipefail

WAIT=${CH_SYSTEMD_TEST_WAIT:-20}

if [[ ${1:-} != --inside ]]; then
        unitdir=${1:?unit dir}
        hubbin=${3:-}
        workerbin=${4:-}
        skip() { echo "1..0 # SKIP $*"; exit 0; }
        [[ -n $hubbin && -x $hubbin && -n $workerbin && -x $workerbin ]] || skip "clusterhubd or clusterhub-worker is not built"
        [[ $(id -u) == 0 ]] || skip "needs root (unshare --mount, tmpfs on /run/systemd)"
        command -v unshare >/dev/null 2>&1 || skip "unshare (util-linux) is not installed"
        command -v systemctl >/dev/null 2>&1 && command -v busctl >/dev/null 2>&1 || skip "systemctl/busctl (systemd) not installed"
        sd=
        for p in /lib/systemd/systemd /usr/lib/systemd/systemd; do [[ -x $p ]] && sd=$p && break; done
        [[ -n $sd ]] || skip "systemd (the manager binary) is not installed"
        found=
        for d in /usr/lib/systemd/user /lib/systemd/user /etc/systemd/user; do
                [[ -e $d/dbus.socket ]] && found=1
        done
        [[ -n $found ]] || skip "no user bus units (dbus.socket: packages dbus-user-session or dbus-broker)"
        command -v python3 >/dev/null 2>&1 || skip "python3 is needed for the fake journal socket"
        [[ -d /run ]] || skip "no /run"
        mkdir -p /run/systemd 2>/dev/null
        exec unshare --mount --propagation private --pid --fork --kill-child --mount-proc -- "$0" --inside "$sd" "$@"
fi

shift
sd=$1
unitdir=$2
libexecdir=$3
hubbin=$4
workerbin=$5

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /'; }
bail() { echo "Bail out! $*"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ch-systemd-user.XXXXXX") || bail "mktemp"
manager_pid=
journal_pid=
cleanup() {
        local p
        for p in $manager_pid $journal_pid; do
                kill -TERM "$p" 2>/dev/null
        done
        for _ in $(seq 50); do
                kill -0 $manager_pid 2>/dev/null || break
                sleep 0.2
        done
        for p in $manager_pid $journal_pid; do
                kill -KILL "$p" 2>/dev/null
                wait "$p" 2>/dev/null
        done
        # Anything else (units' processes) dies with this PID namespace.
        umount -l /run/systemd 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the stage ----------------------------------------------------------------
mount -t tmpfs -o mode=0755 none /run/systemd || bail "cannot mount a tmpfs on /run/systemd"
mkdir -p /run/systemd/system /run/systemd/journal
python3 -c '
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
os.write(1, b"ready\n")
while True:
    s.recv(1 << 20)
' >"$tmp/journal.ready" 2>/dev/null &
journal_pid=$!

export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/data XDG_RUNTIME_DIR=$tmp/runtime
export XDG_DATA_DIRS=/usr/local/share:/usr/share
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME/dbus-1/services" "$XDG_RUNTIME_DIR/systemd/user" "$tmp/libexec"
chmod 0700 "$XDG_RUNTIME_DIR"
unset DBUS_SESSION_BUS_ADDRESS DBUS_SYSTEM_BUS_ADDRESS DBUS_STARTER_ADDRESS DBUS_STARTER_BUS_TYPE
unset NOTIFY_SOCKET INVOCATION_ID LISTEN_FDS LISTEN_PID MANAGERPID
# Sanitizer builds: leak checks ptrace (blocked by SystemCallFilter=); the
# other test suites check leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

ln -s "$hubbin" "$tmp/libexec/clusterhubd"
ln -s "$workerbin" "$tmp/libexec/clusterhub-worker"
for u in clusterhubd.service clusterhub-worker@.service clusterhub-workers.target; do
        sed "s|$libexecdir/|$tmp/libexec/|g" "$unitdir/user/$u" >"$XDG_RUNTIME_DIR/systemd/user/$u" || bail "no $u"
done
# The units' output to files (there is no journal here), through drop-ins,
# the way a user customises the template (docs/systemd.md).
mkdir -p "$XDG_RUNTIME_DIR/systemd/user/clusterhub-worker@.service.d" "$XDG_RUNTIME_DIR/systemd/user/clusterhubd.service.d"
printf '[Service]\nStandardOutput=append:%s/worker-%%i.log\nStandardError=inherit\n' "$tmp" \
        >"$XDG_RUNTIME_DIR/systemd/user/clusterhub-worker@.service.d/50-test-log.conf"
printf '[Service]\nStandardOutput=append:%s/hub.log\nStandardError=inherit\n' "$tmp" \
        >"$XDG_RUNTIME_DIR/systemd/user/clusterhubd.service.d/50-test-log.conf"
sed "s|$libexecdir/|$tmp/libexec/|g" "$unitdir/session/org.clusterhub.Hub1.service" \
        >"$XDG_DATA_HOME/dbus-1/services/org.clusterhub.Hub1.service" || bail "no activation file"

for _ in $(seq $((WAIT * 5))); do
        [[ -s $tmp/journal.ready ]] && break
        sleep 0.2
done
[[ -S /run/systemd/journal/socket ]] || bail "fake journal socket did not come up"

"$sd" --user --log-target=console --log-level=notice </dev/null >"$tmp/manager.log" 2>&1 &
manager_pid=$!

# --- helpers ------------------------------------------------------------------
sc() { timeout "$WAIT" systemctl --user --no-pager "$@"; }
hubcall() { timeout "$WAIT" busctl --user --timeout="$WAIT" call org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 "$@"; }
main_pid() { sc show -P MainPID "$1" 2>/dev/null; }
# wait_for DESCRIPTION COMMAND...: retry COMMAND until it succeeds or WAIT s pass
wait_for() {
        local end=$((SECONDS + WAIT))
        shift
        while ((SECONDS < end)); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.2
        done
        "$@" >/dev/null 2>&1
}
# worker ids registered with the hub, sorted, one line: "1 2 3 4"
worker_ids() {
        hubcall ListWorkers --json=short 2>/dev/null |
                python3 -c 'import json,sys; print(" ".join(sorted(w[0] for w in json.load(sys.stdin)["data"][0])))'
}
worker_pid() { # the pid the hub reports for worker $1
        hubcall ListWorkers --json=short 2>/dev/null |
                python3 -c 'import json,sys; print(next((w[2] for w in json.load(sys.stdin)["data"][0] if w[0] == sys.argv[1]), ""))' "$1"
}
ids_are() { [[ $(worker_ids) == "$*" ]]; }
all_registered_with_unit_pids() { # every worker 1..4 is registered with the unit's current MainPID
        local i
        ids_are 1 2 3 4 || return 1
        for i in 1 2 3 4; do
                [[ $(worker_pid $i) == "$(main_pid clusterhub-worker@$i.service)" ]] || return 1
        done
}
dump_state() {
        {
                echo "--- manager log"
                tail -n 40 "$tmp/manager.log"
                echo "--- units"
                sc list-units --all 'clusterhub*' 2>&1
                for f in "$tmp"/hub.log "$tmp"/worker-*.log; do
                        [[ -f $f ]] || continue
                        echo "--- $(basename "$f")"
                        tail -n 15 "$f"
                done
                echo "--- ListWorkers"
                hubcall ListWorkers 2>&1
        } | diag
}
check() { # check DESCRIPTION COMMAND...
        local desc=$1
        if wait_for "$@"; then
                ok "$desc"
        else
                not_ok "$desc"
                dump_state
        fi
}

# --- 1. the manager and the user bus ------------------------------------------
if wait_for "manager" sc is-system-running --wait; then
        ok "systemd --user is running"
else
        state=$(sc is-system-running 2>&1)
        if [[ $state == degraded ]]; then
                ok "systemd --user is running (degraded: $(sc list-units --failed --plain --no-legend 2>&1 | tr '\n' ' '))"
        else
                not_ok "systemd --user is running (state: $state)"
                diag <"$tmp/manager.log"
                echo "1..$n"
                exit 1
        fi
fi
check "the user bus answers" busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId

# --- 2. D-Bus activation -------------------------------------------------------
if [[ $(sc is-active clusterhubd.service) != active ]]; then
        ok "clusterhubd.service is not running before the first call"
else
        not_ok "clusterhubd.service is not running before the first call"
fi
out=$(hubcall ListNamespaces 2>&1)
if [[ $? == 0 ]]; then ok "the first call to org.clusterhub.Hub1 succeeds: $out"; else not_ok "first call: $out"; fi
check "the call started clusterhubd.service (activation through systemd)" \
        test "$(sc is-active clusterhubd.service)" = active
if [[ $(sc show -P WatchdogUSec clusterhubd.service) != 0 && $(sc show -P WatchdogUSec clusterhubd.service) != infinity ]]; then
        ok "the hub runs with a watchdog (WatchdogUSec=$(sc show -P WatchdogUSec clusterhubd.service))"
else
        not_ok "watchdog armed"
fi

# --- 3. four template instances -------------------------------------------------
out=$(sc start clusterhub-worker@{1..4}.service 2>&1)
if [[ $? == 0 ]]; then ok "systemctl --user start clusterhub-worker@{1..4}.service"; else not_ok "start workers: $out"; fi
check "workers 1..4 are registered, each with its unit's PID" all_registered_with_unit_pids

# --- 4. a worker crashes ----------------------------------------------------------
old=$(main_pid clusterhub-worker@2.service)
kill -KILL "$old"
restarted() { local p; p=$(main_pid clusterhub-worker@2.service); [[ -n $p && $p != 0 && $p != "$old" ]]; }
check "kill -9 of worker 2: systemd restarts it (Restart=on-failure)" restarted
check "the restarted worker 2 registers again (with its new PID)" all_registered_with_unit_pids

# --- 5. the hub restarts ------------------------------------------------------------
# the user unit keeps the store in %S/clusterhub: a restart and a crash keep it
nscall() { timeout "$WAIT" busctl --user --timeout="$WAIT" call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Store1 "$@"; }
out=$(nscall Set 'sva{sv}' kept s "across restarts" 0 2>&1)
if [[ $out == "b true" ]]; then ok "Set a key before the restarts"; else not_ok "Set before the restarts: $out"; fi
kept() { [[ $(nscall Get s kept 2>&1) == 'v s "across restarts"' ]]; }
hub_old=$(main_pid clusterhubd.service)
w1_old=$(main_pid clusterhub-worker@1.service)
out=$(sc restart clusterhubd.service 2>&1)
if [[ $? == 0 ]]; then ok "systemctl --user restart clusterhubd.service"; else not_ok "restart hub: $out"; fi
check "the hub has a new PID" test "$(main_pid clusterhubd.service)" != "$hub_old"
check "after the restart workers 1..4 are registered again" all_registered_with_unit_pids
w1_new=$(main_pid clusterhub-worker@1.service)
if [[ $w1_new != "$w1_old" ]]; then ok "the workers were restarted with the hub (PartOf=)"; else not_ok "workers restarted with the hub (PID $w1_old unchanged)"; fi
check "the store survived systemctl restart (--data-dir=%S/clusterhub)" kept
statelog=$(find "$HOME" "$XDG_CONFIG_HOME" -path '*/clusterhub/clusterhub.log' -size +0 2>/dev/null | head -n 1)
[[ -n $statelog ]] && ok "the log is in the user's state directory ($statelog)" || not_ok "no clusterhub/clusterhub.log under $HOME or $XDG_CONFIG_HOME"

# --- 6. the hub crashes -------------------------------------------------------------
hub_old=$(main_pid clusterhubd.service)
kill -KILL "$hub_old"
hub_back() { local p; p=$(main_pid clusterhubd.service); [[ -n $p && $p != 0 && $p != "$hub_old" ]] && [[ $(sc is-active clusterhubd.service) == active ]]; }
check "kill -9 of the hub: systemd restarts it (Restart=on-failure)" hub_back
check "after the crash workers 1..4 are registered again (Requires=+PartOf=, not BindsTo=)" all_registered_with_unit_pids
check "the store survived kill -9 of the hub" kept

# --- 7. the target stops the group ---------------------------------------------------
busctl --user monitor --json=short \
        --match="type='signal',sender='org.clusterhub.Hub1',interface='org.clusterhub.Hub1',member='WorkerLeft'" \
        >"$tmp/left.json" 2>"$tmp/left.err" &
monitor_pid=$!
sleep 0.5
out=$(sc start clusterhub-workers.target 2>&1 && sc stop clusterhub-workers.target 2>&1)
if [[ $? == 0 ]]; then ok "systemctl --user stop clusterhub-workers.target"; else not_ok "stop target: $out"; fi
no_workers_active() { local i; for i in 1 2 3 4; do [[ $(sc is-active clusterhub-worker@$i.service) != active ]] || return 1; done; }
check "all four worker units stopped (PartOf=clusterhub-workers.target)" no_workers_active
check "no worker is registered any more" ids_are ""
four_left() { [[ $(grep -c '"WorkerLeft"' "$tmp/left.json") -ge 4 ]]; }
check "the hub signalled WorkerLeft for each" four_left
kill -TERM "$monitor_pid" 2>/dev/null
wait "$monitor_pid" 2>/dev/null
if [[ $(sc is-active clusterhubd.service) == active ]]; then ok "the hub keeps running"; else not_ok "the hub keeps running"; fi

# --- 8. the target starts the group ----------------------------------------------------
sc add-wants --runtime clusterhub-workers.target clusterhub-worker@{1..4}.service >/dev/null 2>&1 &&
        sc daemon-reload >/dev/null 2>&1
out=$(sc start clusterhub-workers.target 2>&1)
if [[ $? == 0 ]]; then ok "systemctl --user start clusterhub-workers.target"; else not_ok "start target: $out"; fi
check "the target started workers 1..4 and they registered" all_registered_with_unit_pids

# --- 9. an empty id is derived from the caller's unit ------------------------------------
# The hub reads the caller's (user) unit from its credentials: "derived@7.service" -> "7".
ids_include() { [[ " $(worker_ids) " == *" $1 "* ]]; }
out=$(systemd-run --user --quiet --unit=derived@7.service "$workerbin" "" 2>&1)
if [[ $? == 0 ]]; then ok "systemd-run --user --unit=derived@7.service clusterhub-worker ''"; else not_ok "systemd-run: $out"; fi
check "the worker that asked for no id is worker 7 (its unit's instance)" wait_for x ids_include 7
sc stop derived@7.service >/dev/null 2>&1

# --- 9b. an id derived from a unit cannot be squatted -------------------------------------
# A process outside that unit takes id 8 first; when derived@8 registers, the id is its own.
worker_unit() { # the Unit property of worker $1
        timeout "$WAIT" busctl --user get-property org.clusterhub.Hub1 /org/clusterhub/Hub1/worker/"$1" org.clusterhub.Worker1 Unit 2>/dev/null
}
unit_of_8_is() { [[ $(worker_unit 8) == "s \"$1\"" ]]; }
out=$(systemd-run --user --quiet --unit=squatter.service "$workerbin" 8 2>&1)
if [[ $? == 0 ]]; then ok "systemd-run --user --unit=squatter.service clusterhub-worker 8"; else not_ok "systemd-run: $out"; fi
check "the squatter holds id 8 first" wait_for x unit_of_8_is squatter.service
out=$(systemd-run --user --quiet --unit=derived@8.service "$workerbin" "" 2>&1)
if [[ $? == 0 ]]; then ok "systemd-run --user --unit=derived@8.service clusterhub-worker ''"; else not_ok "systemd-run: $out"; fi
check "worker 8 is now derived@8.service: the squatter gave way" wait_for x unit_of_8_is derived@8.service
check "derived@8.service is still running (its Register did not fail)" sc is-active derived@8.service
sc stop derived@8.service squatter.service >/dev/null 2>&1

# --- teardown -------------------------------------------------------------------------
out=$(sc stop clusterhub-workers.target clusterhubd.service 2>&1)
if [[ $? == 0 ]]; then ok "everything stops cleanly"; else not_ok "stop: $out"; fi
failed_units=$(sc list-units --failed --plain --no-legend 'clusterhub*' 2>&1)
if [[ -z $failed_units ]]; then ok "no clusterhub unit failed"; else not_ok "failed units: $failed_units"; fi

echo "1..$n"
((failed == 0))
