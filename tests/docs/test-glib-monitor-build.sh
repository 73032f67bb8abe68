#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The out-of-tree build of examples/glib-monitor/README.md, run as written against a
# `meson install --destdir` of this build, then the monitor it built against a hub (TAP, through
# tests/cli/test-glib-monitor.sh).  The installed clusterhub.pc is used with its prefix moved
# into the DESTDIR, as for any relocated install; every other package is the system's.
# usage: test-glib-monitor-build.sh SOURCE-ROOT BUILD-ROOT MESON
set -u
src=$1
build=$2
meson=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bail() {
        echo "Bail out! $1"
        [ -f "$tmp/log" ] && sed 's/^/# /' "$tmp/log"
        exit 1
}
"$meson" install -C "$build" --no-rebuild --quiet --destdir "$tmp/dest" >"$tmp/log" 2>&1 || bail "meson install failed"
pc=$(find "$tmp/dest" -name clusterhub.pc | head -1)
[ -n "$pc" ] || bail "no clusterhub.pc in the DESTDIR"
prefix=$(sed -n 's/^prefix=//p' "$pc")
mkdir "$tmp/pc" "$tmp/work"
sed "s|^prefix=.*|prefix=$tmp/dest$prefix|" "$pc" >"$tmp/pc/clusterhub.pc"
export PKG_CONFIG_PATH=$tmp/pc

# the ```sh block after "Build outside this tree", as a user would paste it
awk '/^Build outside this tree/ { want = 1; next } want && /^```sh$/ { on = 1; next } on && /^```/ { exit } on' \
        "$src/examples/glib-monitor/README.md" >"$tmp/work/build.sh"
grep -q gdbus-codegen "$tmp/work/build.sh" || bail "no build commands found in examples/glib-monitor/README.md"
cp "$src/examples/glib-monitor/glib-monitor.c" "$tmp/work/"
(cd "$tmp/work" && bash -e build.sh) >"$tmp/log" 2>&1 || bail "the README's build commands failed"
[ -x "$tmp/work/clusterhub-glib-monitor" ] || bail "the README's build commands made no clusterhub-glib-monitor"
"$src/tests/cli/test-glib-monitor.sh" "$tmp/work/clusterhub-glib-monitor"
