#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-units.sh UNITDIR LIBEXECDIR CLUSTERHUBD WORKER   (TAP)
#
# The configured units (UNITDIR = <build>/systemd, with user/ and session/
# below it) as meson installs them, except that LIBEXECDIR (their
# configured @libexecdir@) points at a temp dir holding the built binaries,
# so that ExecStart= can be checked:
#   - no @placeholder@ left unsubstituted;
#   - `systemd-analyze verify` (system and --user) prints nothing and exits 0
#     (unknown keys, bad values, missing binaries, dependency loops);
#   - `systemd-analyze security --offline=true` rates the system units
#     clusterhubd.service and clusterhub-worker@.service at 1.0 or lower
#     (displayed 0-10 scale; --threshold= is 0-100, so 10 = 1.0);
#   - the user units' scores are reported (diagnostic, not gated: an
#     unprivileged user manager cannot apply the mount-namespace options);
#   - the activation files name the unit and the bus name the unit owns;
#   - the sysusers.d entry parses (systemd-sysusers --dry-run) and the
#     bus policy is well-formed XML naming the user and group of sysusers.d.
set -uo pipefail

unitdir=${1:?unit dir}
libexecdir=${2:?configured libexecdir}
hubbin=${3:-}
workerbin=${4:-}
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n - $* # SKIP"; }
diag() { sed 's/^/# /'; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
        echo "1..0 # SKIP systemd-analyze is not installed (package systemd)"
        exit 0
fi
if [[ -z $hubbin || ! -x $hubbin || -z $workerbin || ! -x $workerbin ]]; then
        echo "1..0 # SKIP clusterhubd or clusterhub-worker is not built"
        exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ch-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/libexec" "$tmp/system" "$tmp/user" "$tmp/runtime"
chmod 0700 "$tmp/runtime"
ln -s "$hubbin" "$tmp/libexec/clusterhubd"
ln -s "$workerbin" "$tmp/libexec/clusterhub-worker"

units=(clusterhubd.service clusterhub-worker@.service clusterhub-workers.target)
for u in "${units[@]}"; do
        for m in system user; do
                src=$unitdir/$u
                [[ $m == user ]] && src=$unitdir/user/$u
                if [[ ! -f $src ]]; then
                        not_ok "$m unit $u exists in the build dir"
                        continue
                fi
                sed "s|$libexecdir/|$tmp/libexec/|g" "$src" >"$tmp/$m/$u"
        done
done

# 1. placeholders
left=$(grep -l '@[A-Za-z_]*@' "$unitdir"/*.service "$unitdir"/*.target "$unitdir"/user/* "$unitdir"/session/* 2>/dev/null)
if [[ -z $left ]]; then ok "no unsubstituted @placeholders@"; else not_ok "unsubstituted placeholders in: $left"; fi

# 2. verify
verify() { # verify MODE
        local mode=$1 out rc args=()
        [[ $mode == user ]] && args=(--user)
        out=$(cd "$tmp/$mode" && XDG_RUNTIME_DIR=$tmp/runtime systemd-analyze "${args[@]}" verify \
                ./clusterhubd.service ./clusterhub-workers.target ./clusterhub-worker@1.service 2>&1)
        rc=$?
        if ((rc == 0)) && [[ -z $out ]]; then
                ok "systemd-analyze ${args[*]} verify: $mode units are clean"
        else
                not_ok "systemd-analyze ${args[*]} verify: $mode units (rc $rc)"
                diag <<<"$out"
        fi
}
verify system
verify user

# 3. security scores
score() { # score MODE UNIT GATE(yes/no)
        local mode=$1 unit=$2 gate=$3 out rc value args=()
        [[ $mode == user ]] && args=(--user)
        out=$(cd "$tmp/$mode" && XDG_RUNTIME_DIR=$tmp/runtime systemd-analyze "${args[@]}" security \
                --offline=true --threshold=10 --no-pager "./$unit" 2>&1)
        rc=$?
        value=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
        if [[ $gate == no ]]; then
                ok "$mode $unit: exposure ${value:-?} (reported, not gated)"
                return
        fi
        if [[ -n $value ]] && awk -v v="$value" 'BEGIN { exit !(v <= 1.0) }' && ((rc == 0)); then
                ok "$mode $unit: exposure $value <= 1.0"
        else
                not_ok "$mode $unit: exposure ${value:-unknown} > 1.0 (rc $rc)"
                diag <<<"$out"
        fi
}
score system clusterhubd.service yes
score system clusterhub-worker@1.service yes
score user clusterhubd.service no
score user clusterhub-worker@1.service no

# 4. activation files
act_sys=$unitdir/org.clusterhub.Hub1.service
act_ses=$unitdir/session/org.clusterhub.Hub1.service
if grep -qx 'Name=org.clusterhub.Hub1' "$act_sys" && grep -qx 'SystemdService=clusterhubd.service' "$act_sys" &&
   grep -qx 'User=clusterhub' "$act_sys"; then
        ok "system activation file: Name=, SystemdService=clusterhubd.service, User=clusterhub"
else
        not_ok "system activation file" && diag <"$act_sys"
fi
if grep -qx 'Name=org.clusterhub.Hub1' "$act_ses" && grep -qx 'SystemdService=clusterhubd.service' "$act_ses" &&
   grep -qx "Exec=$libexecdir/clusterhubd --user" "$act_ses"; then
        ok "session activation file: Name=, SystemdService=, Exec= --user"
else
        not_ok "session activation file" && diag <"$act_ses"
fi
for m in system user; do
        if grep -qx 'BusName=org.clusterhub.Hub1' "$tmp/$m/clusterhubd.service" &&
           grep -qx 'Type=dbus' "$tmp/$m/clusterhubd.service"; then
                ok "$m clusterhubd.service is Type=dbus with BusName=org.clusterhub.Hub1"
        else
                not_ok "$m clusterhubd.service Type=dbus/BusName="
        fi
        # PartOf/Requires/After, never BindsTo (ecosystem.md 4.3)
        w=$tmp/$m/clusterhub-worker@.service
        if grep -qx 'Requires=clusterhubd.service' "$w" && grep -qx 'After=clusterhubd.service' "$w" &&
           grep -qx 'PartOf=clusterhubd.service clusterhub-workers.target' "$w" && ! grep -q '^BindsTo=' "$w" &&
           grep -qx 'Restart=on-failure' "$w"; then
                ok "$m worker template: Requires=/After=/PartOf= the hub and the target, Restart=, no BindsTo="
        else
                not_ok "$m worker template dependencies"
        fi
done
if grep -qx 'User=clusterhub' "$tmp/system/clusterhubd.service" && ! grep -q '^DynamicUser=' "$tmp/system/clusterhubd.service"; then
        ok "system hub runs as the static user clusterhub (no DynamicUser=)"
else
        not_ok "system hub user"
fi

# 5. sysusers.d and the policy
sysusers=$srcdir/systemd/clusterhub.sysusers
if command -v systemd-sysusers >/dev/null 2>&1; then
        out=$(systemd-sysusers --dry-run --root="$tmp/root" "$sysusers" 2>&1)
        rc=$?
        if ((rc == 0)) && grep -q "clusterhub" <<<"$out" && ! grep -qi 'warn\|error\|fail' <<<"$out"; then
                ok "sysusers.d entry parses (systemd-sysusers --dry-run)"
        else
                not_ok "sysusers.d entry (rc $rc)"
                diag <<<"$out"
        fi
else
        skip "systemd-sysusers not installed"
fi
policy=$srcdir/systemd/org.clusterhub.Hub1.conf
if command -v python3 >/dev/null 2>&1; then
        if python3 - "$policy" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "busconfig"
pol = {(p.get("user"), p.get("group"), p.get("context")): p for p in root.findall("policy")}
own = [(k, a.get("own")) for k, p in pol.items() for a in p.findall("allow") if a.get("own")]
assert own == [(("clusterhub", None, None), "org.clusterhub.Hub1")], own
assert ("clusterhub", None, None) in pol and (None, "clusterhub", None) in pol
EOF
        then ok "bus policy: well-formed, only user clusterhub owns the name, group clusterhub has a policy"
        else not_ok "bus policy XML"
        fi
else
        skip "python3 not installed (policy XML check)"
fi

echo "1..$n"
((failed == 0))
