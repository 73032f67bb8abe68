#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-hardened.sh UNITDIR LIBEXECDIR CLUSTERHUBD WORKER EXAMPLE_WORKER   (TAP)
#
# The hub under the SYSTEM unit's sandbox, for real (issue 7: "the hub does
# not lose a feature to the hardening").  CI has no PID-1 systemd, so the
# system unit itself cannot run; instead a private `systemd --user` (the
# stage of test-systemd-user.sh: unshare --mount --pid, a fake journal
# socket, private XDG dirs), which runs as root here and so can apply the
# namespacing options, runs clusterhubd.service built from the configured
# system unit UNITDIR/clusterhubd.service at test time (so it cannot drift):
#   - [Unit] as is; [Install] dropped (Alias=dbus-org... is system-bus
#     activation, multi-user.target does not exist in a user manager);
#   - [Service]: User=, Group=, DynamicUser= dropped (a user manager cannot
#     switch users), ExecStart= replaced by "CLUSTERHUBD --user"; Type=dbus,
#     BusName=, Restart=, WatchdogSec= and every hardening line kept, in order.
# The stage lives on a tmpfs over /run in the private mount namespace, not in
# /tmp: the hub's sandbox has PrivateTmp=yes and ProtectHome=yes (which hides
# /run/user), so the user bus, the notify socket and the hub binary (the
# build dir's, bind-mounted read-only) sit where a system service would find
# the system bus: under /run.  The stage also has what PID 1 creates at boot
# and the namespacing options need (/run/systemd/system, /run/systemd/inaccessible).
#
# Checks, through busctl --user against that hub: the sandbox is in effect
# (namespaces, seccomp, no_new_privs, no capabilities); Store1 Set with a TTL,
# Get, TTL, Expire and the key expiring; a hash; a list with a blocked BLPop
# woken by RPush; KeyChanged seen by `busctl monitor`; Events1 Emit seen by a
# monitor and EmitTo to a worker; workers as instances of the user template
# (clusterhub-worker@1 = examples/clusterhub-worker, clusterhub-worker@2 =
# examples/c-worker through a drop-in, registering with an empty id that the
# hub derives from the unit via /proc/PID/cgroup); a Request answered by a
# worker; Locks1 Lock with a lease, ListLocks, Unlock; GetStats; ListWorkers
# with pid and unit; the watchdog (the unit stays active, same PID, pinging,
# for 2x WatchdogSec).
#
# When the hardened hub fails to start or a check fails, the hardening lines
# are bisected to the culprit directives; each is reported in a TAP
# diagnostic as an ENVIRONMENT LIMIT (the manager could not set it up here:
# exec setup status 2xx other than 203/EXEC) or a REAL LOSS (the hub ran under
# it and lost a feature, or could not run: a test failure).  When this user
# manager cannot create namespaces for units at all: 1..0 # SKIP.
# CH_HARDENED_TEST_EXTRA='Directive=value|...' appends lines, to check the
# diagnosis (e.g. InaccessiblePaths=/run/ch-hardened/runtime/bus: a real loss).
# Every process started is stopped by PID (and dies with the PID namespace);
# every wait is bounded (WAIT seconds).
set -uo pipefail

WAIT=${CH_SYSTEMD_TEST_WAIT:-20}

if [[ ${1:-} != --inside ]]; then
        unitdir=${1:?unit dir}
        hubbin=${3:-}
        workerbin=${4:-}
        exworkerbin=${5:-}
        skip() { echo "1..0 # SKIP $*"; exit 0; }
        [[ -n $hubbin && -x $hubbin && -n $workerbin && -x $workerbin ]] || skip "clusterhubd or clusterhub-worker is not built"
        [[ -n $exworkerbin && -x $exworkerbin ]] || skip "examples/c-worker/clusterhub-example-worker is not built"
        [[ -f $unitdir/clusterhubd.service && -f $unitdir/user/clusterhub-worker@.service ]] || skip "no configured units in $unitdir"
        [[ $(id -u) == 0 ]] || skip "needs root (unshare --mount, tmpfs on /run)"
        command -v unshare >/dev/null 2>&1 || skip "unshare (util-linux) is not installed"
        command -v systemctl >/dev/null 2>&1 && command -v busctl >/dev/null 2>&1 || skip "systemctl/busctl (systemd) not installed"
        command -v systemd-run >/dev/null 2>&1 && command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-run/systemd-analyze not installed"
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
        exec unshare --mount --propagation private --pid --fork --kill-child --mount-proc -- "$0" --inside "$sd" "$@"
fi

shift
sd=$1
unitdir=$2
libexecdir=$3
hubbin=$4
workerbin=$5
exworkerbin=$6

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /'; }
bail() { echo "Bail out! $*"; exit 1; }

S=/run/ch-hardened
manager_pid=
journal_pid=
bg_pids=()
cleanup() {
        local p
        for p in "${bg_pids[@]}" $manager_pid $journal_pid; do
                kill -TERM "$p" 2>/dev/null
        done
        for _ in $(seq 50); do
                kill -0 $manager_pid 2>/dev/null || break
                sleep 0.2
        done
        for p in "${bg_pids[@]}" $manager_pid $journal_pid; do
                kill -KILL "$p" 2>/dev/null
                wait "$p" 2>/dev/null
        done
        # Anything else (units' processes) dies with this PID namespace; the
        # mounts die with the mount namespace.  PrivateTmp= directories the
        # manager had no chance to remove:
        for p in /tmp/systemd-private-*-clusterhubd.service-* /var/tmp/systemd-private-*-clusterhubd.service-*; do
                [[ -e $p && " $private_before " != *" $p "* ]] && rm -rf "$p"
        done
        umount -l /run 2>/dev/null
}
private_before=$(echo /tmp/systemd-private-*-clusterhubd.service-* /var/tmp/systemd-private-*-clusterhubd.service-*)
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the stage ----------------------------------------------------------------
mount -t tmpfs -o mode=0755 none /run || bail "cannot mount a tmpfs on /run"
mkdir -p /run/systemd/system /run/systemd/journal "$S"/{home,config,data,runtime,libexec,log} || bail "mkdir"
# What PID 1 creates at boot and the namespacing options bind-mount over
# what they hide (ProtectHome=, InaccessiblePaths=, PrivateDevices=): without
# /run/systemd/inaccessible every such unit fails with 226/NAMESPACE.
inacc=/run/systemd/inaccessible
mkdir -p $inacc && mkdir -m 0000 $inacc/dir && install -m 0000 /dev/null $inacc/reg &&
        mknod -m 0000 $inacc/chr c 0 0 && mknod -m 0000 $inacc/blk b 0 0 && mkfifo -m 0000 $inacc/fifo &&
        python3 -c 'import socket, os, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1]); os.chmod(sys.argv[1], 0)' $inacc/sock ||
        bail "cannot create $inacc"
chmod 0700 "$S/runtime"
# The fake journal keeps the MESSAGE= of what it gets (the manager logs
# there, the exec setup errors of the units too): the diagnostics.
python3 -c '
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
os.write(1, b"ready\n")
log = open(sys.argv[1], "ab", buffering=0)
while True:
    d = s.recv(1 << 20)
    f = dict(l.split(b"=", 1) for l in d.split(b"\n") if b"=" in l)
    log.write(f.get(b"UNIT", f.get(b"USER_UNIT", b"-")) + b": " + f.get(b"MESSAGE", b"?") + b"\n")
' "$S/log/journal.log" >"$S/log/journal.ready" 2>/dev/null &
journal_pid=$!

export HOME=$S/home XDG_CONFIG_HOME=$S/config XDG_DATA_HOME=$S/data XDG_RUNTIME_DIR=$S/runtime
export XDG_DATA_DIRS=/usr/local/share:/usr/share
unset DBUS_SESSION_BUS_ADDRESS DBUS_SYSTEM_BUS_ADDRESS DBUS_STARTER_ADDRESS DBUS_STARTER_BUS_TYPE
unset NOTIFY_SOCKET INVOCATION_ID LISTEN_FDS LISTEN_PID MANAGERPID
# Sanitizer builds: leak checks ptrace (blocked by SystemCallFilter=).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
unitd=$XDG_RUNTIME_DIR/systemd/user
mkdir -p "$unitd"

# The build dir's hub binary, where the sandbox can see it.
: >"$S/libexec/clusterhubd"
mount --bind -o ro "$hubbin" "$S/libexec/clusterhubd" 2>/dev/null ||
        { rm -f "$S/libexec/clusterhubd"; cp "$hubbin" "$S/libexec/clusterhubd"; } || bail "cannot stage $hubbin"
ln -s "$workerbin" "$S/libexec/clusterhub-worker"

# --- the hardened unit, from the configured system unit ------------------------
sysunit=$unitdir/clusterhubd.service
unit_lines=()    # [Unit] section, as is
service_lines=() # Type=, BusName=, Restart*=, WatchdogSec=, ...: kept, not bisected
hardening=()     # every other [Service] line: the sandbox, bisected on failure
dropped=()
section=
while IFS= read -r line || [[ -n $line ]]; do
        while [[ $line == *\\ ]]; do # continuation lines
                IFS= read -r more || break
                line="${line%\\} $more"
        done
        [[ $line =~ ^[[:space:]]*([#\;]|$) ]] && continue
        if [[ $line =~ ^\[(.*)\]$ ]]; then
                section=${BASH_REMATCH[1]}
                continue
        fi
        key=${line%%=*}
        case $section in
        Unit) unit_lines+=("$line") ;;
        Service)
                case $key in
                User | Group | DynamicUser | SupplementaryGroups) dropped+=("$line") ;;
                ExecStart) dropped+=("$line (replaced)") ;;
                Type | BusName | Restart | RestartSec | WatchdogSec | TimeoutStartSec | TimeoutStopSec | ExecReload | ExecStop)
                        service_lines+=("$line") ;;
                *) hardening+=("$line") ;;
                esac
                ;;
        *) dropped+=("[$section] $line") ;;
        esac
done <"$sysunit"
((${#hardening[@]} > 0)) || bail "no hardening lines found in $sysunit"
# For checking the diagnosis: extra lines ("|"-separated) appended to the
# system unit's, e.g. CH_HARDENED_TEST_EXTRA='RestrictAddressFamilies=AF_INET'.
if [[ -n ${CH_HARDENED_TEST_EXTRA:-} ]]; then
        IFS='|' read -r -a extra <<<"$CH_HARDENED_TEST_EXTRA"
        hardening+=("${extra[@]}")
fi

write_hub_unit() { # the hardening lines to use as arguments
        {
                echo "# generated by test-hardened.sh from $sysunit"
                echo "[Unit]"
                printf '%s\n' "${unit_lines[@]}"
                echo
                echo "[Service]"
                printf '%s\n' "${service_lines[@]}"
                echo "ExecStart=$S/libexec/clusterhubd --user"
                printf '%s\n' "$@"
        } >"$unitd/clusterhubd.service"
}
write_hub_unit "${hardening[@]}"

# Test plumbing only, in drop-ins: output to files (no journal here) and a
# start timeout within the test's bounds.
mkdir -p "$unitd/clusterhubd.service.d" "$unitd/clusterhub-worker@.service.d" "$unitd/clusterhub-worker@2.service.d"
printf '[Service]\nStandardOutput=append:%s/hub.log\nStandardError=inherit\nTimeoutStartSec=%ss\n' "$S/log" "$((WAIT - 5))" \
        >"$unitd/clusterhubd.service.d/50-test.conf"
printf '[Service]\nStandardOutput=append:%s/worker-%%i.log\nStandardError=inherit\n' "$S/log" \
        >"$unitd/clusterhub-worker@.service.d/50-test-log.conf"
# Worker 2: the libclusterhub example worker (serves "upper") through the
# documented drop-in; no id: the hub derives "2" from the unit.
printf '[Service]\nExecStart=\nExecStart=%s\n' "$exworkerbin" >"$unitd/clusterhub-worker@2.service.d/override.conf"
sed "s|$libexecdir/|$S/libexec/|g" "$unitdir/user/clusterhub-worker@.service" >"$unitd/clusterhub-worker@.service" ||
        bail "no user worker template"

for _ in $(seq $((WAIT * 5))); do
        [[ -s $S/log/journal.ready ]] && break
        sleep 0.2
done
[[ -S /run/systemd/journal/socket ]] || bail "fake journal socket did not come up"

# The manager logs to the (fake) journal: the console target of a manager
# started like this writes nowhere useful.
"$sd" --user --log-target=journal --log-level=info </dev/null >"$S/log/manager.log" 2>&1 &
manager_pid=$!

# --- helpers ------------------------------------------------------------------
NS=/org/clusterhub/Hub1/ns/default
sc() { timeout "$WAIT" systemctl --user --no-pager "$@"; }
bc() { timeout "$WAIT" busctl --user --timeout="$WAIT" "$@"; }
# "--": arguments such as -1 are not options
hubcall() { bc call org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 -- "$@"; }
hubjson() { bc --json=short call org.clusterhub.Hub1 /org/clusterhub/Hub1 org.clusterhub.Hub1 -- "$@"; }
nscall() { local iface=$1; shift; bc call org.clusterhub.Hub1 $NS org.clusterhub.$iface -- "$@"; }
main_pid() { sc show -P MainPID "$1" 2>/dev/null; }
wait_for() { # wait_for COMMAND...: retry until it succeeds or WAIT s pass
        local end=$((SECONDS + WAIT))
        while ((SECONDS < end)); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.2
        done
        "$@" >/dev/null 2>&1
}
workers_json() { hubjson ListWorkers 2>/dev/null; }
# "ID PID UNIT" per registered worker, sorted by id
workers_table() {
        workers_json | python3 -c '
import json, sys
for w in sorted(json.load(sys.stdin)["data"][0]):
    print(w[0], w[2], w[3].get("unit", {}).get("data", "-"))'
}
workers_ok() { # workers 1 and 2 registered, each with its unit's MainPID and its unit
        local want
        want=$(printf '1 %s clusterhub-worker@1.service\n2 %s clusterhub-worker@2.service' \
                "$(main_pid clusterhub-worker@1.service)" "$(main_pid clusterhub-worker@2.service)")
        [[ $(workers_table) == "$want" ]]
}
bg() { "$@" & bg_pids+=($!); }
stop_pid() { # stop a background process started with bg, by PID
        local p=$1 i
        kill -TERM "$p" 2>/dev/null
        for i in $(seq 25); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
        local keep=() q
        for q in "${bg_pids[@]}"; do [[ $q == "$p" ]] || keep+=("$q"); done
        bg_pids=("${keep[@]}")
}

# --- the capability probes ------------------------------------------------------
# Each probe prints what it saw (on failure: why) and returns non-zero on
# failure.  probe() records the results of a trial; report_trial prints them.
probe_failed=() # short names of the failed probes of the last trial
r_ok=() r_name=() r_out=()
probe() { # probe SHORT DESCRIPTION COMMAND...
        local short=$1 name=$2 out rc
        shift 2
        out=$("$@" 2>&1)
        rc=$?
        r_ok+=("$rc") r_name+=("$name") r_out+=("$out")
        ((rc == 0)) || probe_failed+=("$short")
        return $rc
}
report_trial() {
        local i
        for i in "${!r_ok[@]}"; do
                if ((r_ok[i] == 0)); then
                        ok "${r_name[i]}${r_out[i]:+: ${r_out[i]}}"
                else
                        not_ok "${r_name[i]}"
                        printf '%s\n' "${r_out[i]}" | tail -n 20 | diag
                fi
        done
}
expect() { # expect WANT-GLOB COMMAND...: the output of COMMAND matches
        local want=$1 out
        shift
        out=$("$@" 2>&1) || { echo "$* -> $out"; return 1; }
        [[ $out == $want ]] || { echo "$* -> '$out', expected '$want'"; return 1; }
}

has() { # has PATTERN LINES...: one of the hardening lines matches the glob
        local pat=$1 l
        shift
        for l in "$@"; do [[ $l == $pat ]] && return 0; done
        return 1
}
p_sandbox() { # p_sandbox LINES...: what those lines promise is in effect on the hub's process
        local pid st bad=() seen=() ns
        pid=$(main_pid clusterhubd.service)
        [[ -n $pid && $pid != 0 ]] || { echo "no MainPID"; return 1; }
        st=$(cat /proc/$pid/status) || return 1
        if has 'SystemCall*' "$@" || has 'RestrictAddressFamilies=*' "$@" || has 'MemoryDenyWriteExecute=yes' "$@"; then
                grep -q '^Seccomp:[[:space:]]*2' <<<"$st" && seen+=(seccomp) || bad+=("no seccomp filter")
        fi
        if has 'NoNewPrivileges=yes' "$@"; then
                grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$st" && seen+=(no_new_privs) || bad+=("no no_new_privs")
        fi
        if has 'CapabilityBoundingSet=' "$@"; then
                grep -q '^CapBnd:[[:space:]]*0*$' <<<"$st" && grep -q '^CapEff:[[:space:]]*0*$' <<<"$st" &&
                        seen+=("no capabilities") || bad+=("capabilities left: $(grep -E '^Cap(Eff|Bnd)' <<<"$st" | tr '\n\t' '  ')")
        fi
        for ns in net:PrivateNetwork=yes user:PrivateUsers=yes uts:ProtectHostname=yes mnt:PrivateMounts=yes mnt:PrivateTmp=yes mnt:ProtectSystem=*; do
                has "${ns#*:}" "$@" || continue
                ns=${ns%%:*}
                [[ " ${seen[*]} " == *" $ns-ns "* ]] && continue
                [[ $(readlink /proc/$pid/ns/$ns) != "$(readlink /proc/self/ns/$ns)" ]] && seen+=("$ns-ns") || bad+=("not in its own $ns namespace")
        done
        mnt() { findmnt --task "$pid" -n -o "$2" --target "$1" 2>/dev/null; }
        if has 'ProtectSystem=strict' "$@"; then
                [[ $(mnt / OPTIONS) == ro* && $(mnt /etc OPTIONS) == ro* ]] && seen+=("/ read-only") || bad+=("/ is not read-only: $(mnt / OPTIONS)")
        fi
        if has 'PrivateTmp=yes' "$@"; then
                [[ $(mnt /tmp TARGET) == /tmp ]] && seen+=("private /tmp") || bad+=("/tmp is not private")
        fi
        if has 'ProtectHome=yes' "$@"; then
                [[ $(mnt /root TARGET) == /root ]] && seen+=("/root hidden") || bad+=("/root is not hidden")
        fi
        if has 'PrivateDevices=yes' "$@"; then
                [[ $(mnt /dev FSTYPE) == tmpfs && ! -e /proc/$pid/root/dev/vda && ! -e /proc/$pid/root/dev/mem ]] &&
                        seen+=("private /dev") || bad+=("/dev is not private")
        fi
        if has 'ProcSubset=pid' "$@"; then
                [[ ! -e /proc/$pid/root/proc/sys/kernel ]] && seen+=("/proc: pids only") || bad+=("/proc/sys is visible")
        fi
        ((${#bad[@]} == 0)) || { printf '%s\n' "${bad[@]}"; return 1; }
        local IFS=,
        echo "${seen[*]}"
}

p_store_ttl() {
        expect 'b true' nscall Store1 Set 'sva{sv}' hd:ttl s alive 1 ttl_ms t 60000 || return 1
        expect 'v s "alive"' nscall Store1 Get s hd:ttl || return 1
        local ttl
        ttl=$(nscall Store1 TTL s hd:ttl) || return 1
        [[ $ttl =~ ^x\ ([0-9]+)$ ]] && ((BASH_REMATCH[1] > 0 && BASH_REMATCH[1] <= 60000)) ||
                { echo "TTL -> $ttl"; return 1; }
        expect 'b true' nscall Store1 Expire st hd:ttl 200 || return 1
        gone() { ! nscall Store1 Get s hd:ttl >/dev/null 2>&1 && [[ $(nscall Store1 Exists as 1 hd:ttl) == 'u 0' ]]; }
        wait_for gone || { echo "hd:ttl did not expire after Expire 200 ms"; return 1; }
        echo "Set ttl_ms=60000, Get, TTL=${ttl#x }, Expire 200 ms -> expired"
}
p_hash() {
        expect 'u 2' nscall Store1 HSet 'sa{sv}' hd:hash 2 name s hub port u 7 || return 1
        expect 'v s "hub"' nscall Store1 HGet ss hd:hash name || return 1
        expect 'x 8' nscall Store1 HIncr ssx hd:hash port 1 || return 1
        expect 'u 2' nscall Store1 HLen s hd:hash || return 1
        echo "HSet, HGet, HIncr, HLen"
}
p_list() {
        local out=$S/log/blpop.out pid
        rm -f "$out"
        nscall Store1 Del as 1 hd:queue >/dev/null
        bg nscall Store1 BLPop asu 1 hd:queue $((WAIT * 1000 - 2000)) >"$out" 2>&1
        pid=$!
        # the pop is pending in the hub before the push
        pending() { [[ $(hubjson GetStats | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["pending_calls"]["data"])') -ge 1 ]]; }
        wait_for pending || { echo "BLPop is not pending in the hub"; stop_pid $pid; return 1; }
        expect 'u 2' nscall Store1 RPush sav hd:queue 2 s job1 s job2 || { stop_pid $pid; return 1; }
        wait_for eval "! kill -0 $pid" || { echo "BLPop did not return after RPush"; stop_pid $pid; return 1; }
        stop_pid $pid
        [[ $(cat "$out") == 'sv "hd:queue" s "job1"' ]] || { echo "BLPop -> $(cat "$out")"; return 1; }
        expect 'av 1 s "job2"' nscall Store1 LRange sxx hd:queue 0 -1 || return 1
        echo "blocked BLPop woken by RPush: job1; LRange: job2"
}
p_keychanged() { # the monitor started before the store probes saw their KeyChanged
        local f=$S/log/monitor.json ev missing=()
        for ev in hd:ttl/set hd:ttl/expire hd:ttl/expired hd:hash/hset hd:queue/rpush hd:queue/lpop; do
                seen() { python3 - "$f" "${ev%/*}" "${ev#*/}" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("member") == "KeyChanged" and [a["data"] if isinstance(a, dict) else a for a in m["payload"]["data"]] == sys.argv[2:4]:
        sys.exit(0)
sys.exit(1)
EOF
                }
                wait_for seen || missing+=("$ev")
        done
        ((${#missing[@]} == 0)) || { echo "KeyChanged not seen: ${missing[*]}"; tail -n 5 "$f"; return 1; }
        echo "set, expire, expired, hset, rpush, lpop"
}
p_emit() {
        local f=$S/log/monitor.json
        nscall Events1 Emit sv hd.broadcast s to-all >/dev/null || return 1
        seen() { grep '"Event"' "$f" | grep -q 'hd.broadcast'; }
        wait_for seen || { echo "the monitor did not see Event hd.broadcast"; return 1; }
        seen1() { grep -q '^hd.broadcast ' "$S/log/worker-1.log"; }
        wait_for seen1 || { echo "worker 1 did not print hd.broadcast"; return 1; }
        echo "Event hd.broadcast seen by the monitor and by worker 1"
}
p_emitto() {
        nscall Events1 EmitTo ssv 1 hd.direct s just-you >/dev/null || return 1
        seen() { grep -q '^hd.direct ' "$S/log/worker-1.log"; }
        wait_for seen || { echo "worker 1 did not get hd.direct"; tail -n 5 "$S/log/worker-1.log"; return 1; }
        echo "worker 1: $(grep '^hd.direct ' "$S/log/worker-1.log" | tail -n 1)"
}
p_workers() {
        wait_for workers_ok || { echo "ListWorkers:"; workers_table; echo "MainPIDs: $(main_pid clusterhub-worker@1.service) $(main_pid clusterhub-worker@2.service)"; return 1; }
        workers_table | tr '\n' ';'
}
p_request() {
        expect 'v s "HELLO"' nscall Requests1 Request 'ssva{sv}' 2 upper s hello 1 timeout_ms u $((WAIT * 500)) || return 1
        expect 'v s "ANY"' nscall Requests1 Request 'ssva{sv}' '' upper s any 1 timeout_ms u $((WAIT * 500)) || return 1
        echo "worker 2 answered upper(hello) = HELLO (by id and round-robin)"
}
p_locks() {
        local out tok
        out=$(nscall Locks1 Lock 'sa{sv}' hd-lock 2 lease_ms t 10000 timeout_ms u 5000) || { echo "Lock -> $out"; return 1; }
        [[ $out =~ ^t\ ([0-9]+)$ ]] || { echo "Lock -> $out"; return 1; }
        tok=${BASH_REMATCH[1]}
        out=$(nscall Locks1 ListLocks) || return 1
        [[ $out == *'"hd-lock"'* ]] || { echo "ListLocks -> $out"; return 1; }
        expect 'bt false *' nscall Locks1 TryLock 'sa{sv}' hd-lock 0 || return 1
        nscall Locks1 Unlock st hd-lock "$tok" || return 1
        out=$(nscall Locks1 ListLocks) || return 1
        [[ $out != *'"hd-lock"'* ]] || { echo "after Unlock, ListLocks -> $out"; return 1; }
        echo "Lock (lease 10 s) token $tok, held, Unlock"
}
p_stats() {
        hubjson GetStats | python3 -c '
import json, sys
s = json.load(sys.stdin)["data"][0]
need = ["uptime_ms", "keys", "workers", "events_emitted", "keyspace_events", "requests_forwarded", "locks", "calls"]
miss = [k for k in need if k not in s]
calls = s["calls"]["data"]
miss += [c for c in ("Store1.Set", "Store1.BLPop", "Events1.EmitTo", "Requests1.Request", "Locks1.Lock") if calls.get(c, 0) < 1]
if miss or s["workers"]["data"] != 2:
    print("missing or zero:", miss, "workers:", s["workers"]["data"]); sys.exit(1)
print("workers=%d keys=%d events_emitted=%d requests_forwarded=%d calls[Store1.Set]=%d" % (
    s["workers"]["data"], s["keys"]["data"], s["events_emitted"]["data"],
    s["requests_forwarded"]["data"], calls["Store1.Set"]))'
}


# run_trial HARDENING-LINES...: the hub under those lines, the two workers,
# every probe.  Sets trial (ok | start | probes), trial_detail, trial_status.
monitor_pid=
run_trial() {
        local mark
        probe_failed=() r_ok=() r_name=() r_out=()
        trial_detail="" trial_status=""
        [[ -n $monitor_pid ]] && stop_pid "$monitor_pid"
        monitor_pid=
        sc stop clusterhub-worker@1.service clusterhub-worker@2.service clusterhubd.service >/dev/null 2>&1
        write_hub_unit "$@"
        rm -f "$S"/log/hub.log "$S"/log/worker-*.log
        sc daemon-reload >/dev/null 2>&1
        sc reset-failed >/dev/null 2>&1
        mark=$(wc -l <"$S/log/journal.log")
        if ! sc start clusterhubd.service >"$S/log/start.out" 2>&1 ||
                [[ $(sc is-active clusterhubd.service) != active ]]; then
                trial=start
                trial_status=$(sc show -P ExecMainStatus clusterhubd.service)
                trial_detail="Result=$(sc show -P Result clusterhubd.service), ExecMainStatus=$trial_status; $(
                        tail -n +$((mark + 1)) "$S/log/journal.log" | grep -E '^clusterhubd.service: .*(Failed|failed)' | grep -vE 'Failed to start|Failed with result' |
                                sed 's/^clusterhubd.service: //' | sort -u | head -n 3 | tr '\n' ' ')"
                [[ -s $S/log/hub.log ]] && trial_detail+="; hub: $(tail -n 2 "$S/log/hub.log" | tr '\n' ' ')"
                sc stop clusterhubd.service >/dev/null 2>&1
                return
        fi
        probe sandbox "the sandbox is in effect on the hub" p_sandbox "$@"
        bg busctl --user monitor --json=short \
                --match="type='signal',sender='org.clusterhub.Hub1',interface='org.clusterhub.Store1',member='KeyChanged'" \
                --match="type='signal',sender='org.clusterhub.Hub1',interface='org.clusterhub.Events1',member='Event'" \
                >"$S/log/monitor.json" 2>"$S/log/monitor.err"
        monitor_pid=$!
        sc start clusterhub-worker@1.service clusterhub-worker@2.service >/dev/null 2>&1
        # the monitor has attached once the bus shows it; then a bounded moment
        wait_for bc call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId
        sleep 0.5
        probe workers "ListWorkers: workers 1 and 2 with their pid and unit (2 derived from clusterhub-worker@2.service)" p_workers
        probe store "Store1: Set with a TTL, Get, TTL, Expire, expiry" p_store_ttl
        probe hash "Store1: a hash" p_hash
        probe list "Store1: a list, BLPop blocked then woken by RPush" p_list
        probe keychanged "Store1: KeyChanged seen by busctl monitor" p_keychanged
        probe emit "Events1: Emit seen by a monitor and a worker" p_emit
        probe emitto "Events1: EmitTo worker 1" p_emitto
        probe request "Requests1: a Request answered by worker 2 (examples/c-worker, upper)" p_request
        probe locks "Locks1: Lock with a lease, ListLocks, TryLock refused, Unlock" p_locks
        probe stats "Hub1: GetStats" p_stats
        if ((${#probe_failed[@]} == 0)); then trial=ok; else trial=probes; trial_detail="${probe_failed[*]}"; fi
}

dump_state() {
        {
                echo "--- manager log (clusterhub)"
                grep -i 'clusterhub' "$S/log/journal.log" | tail -n 25
                echo "--- units"
                sc list-units --all 'clusterhub*' 2>&1
                for f in "$S"/log/hub.log "$S"/log/worker-*.log; do
                        [[ -f $f ]] || continue
                        echo "--- $(basename "$f")"
                        tail -n 15 "$f"
                done
        } | diag
}

# --- 1. the manager and the user bus ------------------------------------------
if wait_for sc is-system-running --wait || [[ $(sc is-system-running 2>&1) == degraded ]]; then
        ok "systemd --user is running (as root, in a private mount+PID namespace)"
else
        not_ok "systemd --user is running (state: $(sc is-system-running 2>&1))"
        diag <"$S/log/journal.log"
        echo "1..$n"
        exit 1
fi
if wait_for busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId; then
        ok "the user bus answers"
else
        not_ok "the user bus answers"
        echo "1..$n"
        exit 1
fi

# Can this manager sandbox units at all?  A mount namespace is the least of it.
out=$(timeout "$WAIT" systemd-run --user --quiet --wait --pipe -p PrivateMounts=yes -p PrivateTmp=yes -- \
        readlink /proc/self/ns/mnt 2>&1)
if [[ $? != 0 || $out == "$(readlink /proc/self/ns/mnt)" ]]; then
        echo "1..0 # SKIP this user manager cannot create a mount namespace for a unit (PrivateMounts=yes PrivateTmp=yes: $(tr '\n' ' ' <<<"$out")$(grep -iE 'namespac' "$S/log/journal.log" | tail -n 1))"
        exit 0
fi

{
        echo "hardened unit from $sysunit; dropped for the user manager:"
        printf '  %s\n' "${dropped[@]}"
        echo "kept: ${service_lines[*]}; ExecStart=$S/libexec/clusterhubd --user ($hubbin, bind-mounted: PrivateTmp= hides /tmp)"
        echo "${#hardening[@]} hardening lines: ${hardening[*]}"
} | diag

# --- 2. the full sandbox; on failure, bisect the hardening lines -------------------
# passes: the hub started and nothing failed that also fails without any
# hardening (that would be no loss to the hardening, and is reported anyway).
baseline=()
passes() {
        local f
        [[ $trial == start ]] && return 1
        for f in "${probe_failed[@]}"; do
                [[ " ${baseline[*]} " == *" $f "* ]] || return 1
        done
}
run_trial "${hardening[@]}"
final=("${hardening[@]}")
real_losses=0
if [[ $trial != ok ]]; then
        echo "# the full sandbox: $trial ($trial_detail); bisecting the hardening lines"
        run_trial
        if [[ $trial == start ]]; then
                not_ok "the hub starts without any hardening line ($trial_detail)"
                dump_state
                echo "1..$n"
                exit 1
        fi
        baseline=("${probe_failed[@]}")
        ((${#baseline[@]} == 0)) || echo "# failing even without any hardening (not the sandbox's doing): ${baseline[*]}"
        # Find the shortest failing prefix of the remaining lines: its last
        # line is a culprit.  Drop it and repeat until the rest passes.
        rest=("${hardening[@]}")
        for _round in "${hardening[@]}"; do
                run_trial "${rest[@]}"
                passes && break
                lo=0 hi=$((${#rest[@]} - 1))
                f_trial=$trial f_status=$trial_status f_detail=$trial_detail f_out=${r_out[0]:-}
                while ((lo < hi)); do
                        mid=$(((lo + hi) / 2))
                        run_trial "${rest[@]:0:mid+1}"
                        if passes; then
                                lo=$((mid + 1))
                        else
                                hi=$mid f_trial=$trial f_status=$trial_status f_detail=$trial_detail f_out=${r_out[0]:-}
                        fi
                done
                culprit=${rest[lo]}
                if [[ $f_trial == start ]]; then
                        if [[ $f_status =~ ^[0-9]+$ ]] && ((f_status >= 200 && f_status != 203)); then
                                echo "# ENVIRONMENT LIMIT: $culprit: this manager cannot set it up, the unit fails before the hub runs ($f_detail); PID-1 systemd applies it on a real host"
                        else
                                echo "# REAL LOSS: $culprit: the hub does not run under it ($f_detail)"
                                not_ok "the hub runs under $culprit"
                                real_losses=$((real_losses + 1))
                        fi
                elif [[ $f_detail == sandbox ]]; then
                        echo "# ENVIRONMENT LIMIT: $culprit: accepted but not in effect under this manager ($f_out); nothing else failed"
                else
                        echo "# REAL LOSS: $culprit: the hub runs under it but loses: $f_detail"
                        not_ok "the hub loses no feature to $culprit (lost: $f_detail)"
                        real_losses=$((real_losses + 1))
                fi
                rest=("${rest[@]:0:lo}" "${rest[@]:lo+1}")
        done
        final=("${rest[@]}")
        echo "# the checks below run under the remaining ${#final[@]} of ${#hardening[@]} hardening lines"
        run_trial "${final[@]}"
fi

# --- 3. every capability, reported --------------------------------------------------
if [[ $trial == start ]]; then
        not_ok "the hardened clusterhubd.service starts ($trial_detail)"
        dump_state
else
        ok "clusterhubd.service under the system unit's sandbox is active (MainPID $(main_pid clusterhubd.service); $((${#hardening[@]} - ${#final[@]})) hardening line(s) dropped)"
        report_trial
        [[ $trial == ok ]] || dump_state
fi

# --- 4. the watchdog ----------------------------------------------------------------
if [[ $trial != start ]]; then
        wd=$(sc show -P WatchdogUSec clusterhubd.service)
        wd_us=$(systemd-analyze timespan "$wd" 2>/dev/null | awk '/μs:/ { print $2 }')
        if [[ $wd_us =~ ^[0-9]+$ ]] && ((wd_us > 0)); then
                ok "WatchdogSec kept from the system unit: $wd"
                pid0=$(main_pid clusterhubd.service)
                nr0=$(sc show -P NRestarts clusterhubd.service)
                declare -A pings=()
                stayed=1
                end=$((SECONDS + 2 * wd_us / 1000000 + 1))
                while ((SECONDS < end)); do
                        # Under load systemctl itself may time out ($WAIT s) and print
                        # nothing: that says nothing about the hub, so only a definite
                        # answer (another state, another PID) ends the check.
                        state=$(sc is-active clusterhubd.service) pid=$(main_pid clusterhubd.service)
                        if [[ -n $state && $state != active ]] || [[ -n $pid && $pid != "$pid0" ]]; then
                                stayed=0
                                break
                        fi
                        ts=$(sc show -P WatchdogTimestampMonotonic clusterhubd.service)
                        [[ -n $ts ]] && pings[$ts]=1
                        sleep 1
                done
                if ((stayed)) && [[ $(sc show -P NRestarts clusterhubd.service) == "$nr0" ]]; then
                        ok "the hub stayed active for 2x WatchdogSec ($((2 * wd_us / 1000000)) s) with the same PID $pid0"
                else
                        not_ok "the hub stayed active for 2x WatchdogSec (now $(sc is-active clusterhubd.service), MainPID $(main_pid clusterhubd.service), was $pid0; Result=$(sc show -P Result clusterhubd.service), NRestarts $(sc show -P NRestarts clusterhubd.service), was $nr0)"
                        # the hub says why it left: "Received SIGTERM" (the manager stopped it),
                        # "Lost the connection to ..." (the bus dropped it), or nothing (killed)
                        dump_state
                        { echo "--- manager log about the hub and the bus"; grep -iE 'clusterhubd|dbus' "$S/log/journal.log" | tail -n 40; } | diag
                fi
                if ((${#pings[@]} >= 3)); then
                        ok "systemd got WATCHDOG=1 from the sandboxed hub ($((${#pings[@]} - 1)) new watchdog timestamps in 2x WatchdogSec)"
                else
                        not_ok "WATCHDOG=1 pings reach systemd (distinct WatchdogTimestamp values: ${!pings[*]})"
                fi
        else
                not_ok "WatchdogSec kept (WatchdogUSec=$wd)"
        fi
        out=$(nscall Requests1 Request 'ssva{sv}' '' upper s still 0 2>&1)
        if [[ $out == 'v s "STILL"' ]]; then ok "the hub still serves after the watchdog period"; else not_ok "the hub still serves: $out"; fi
fi

# --- teardown -------------------------------------------------------------------------
[[ -n $monitor_pid ]] && stop_pid "$monitor_pid"
out=$(sc stop clusterhub-worker@1.service clusterhub-worker@2.service clusterhubd.service 2>&1)
if [[ $? == 0 ]]; then ok "everything stops cleanly"; else not_ok "stop: $out"; fi
# What the manager says it accepted but does not enforce here, if anything
# (IPAddressDeny= and DevicePolicy= are cgroup-based and never fail a start;
# PrivateNetwork=yes and PrivateDevices=yes, checked in effect above, cover
# the same ground).
warn=$(grep -iE '^clusterhubd\.service: .*(not support|unsupported|ignoring|cannot)|bpf|firewall|device (policy|access)' "$S/log/journal.log" | sort -u | head -n 10)
[[ -n $warn ]] && { echo "the manager on what it does not enforce here:"; echo "$warn"; } | diag

echo "1..$n"
((failed == 0))
