#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the build to a DESTDIR and uses it as a user of the installed package would (TAP):
# - the headers and clusterhub.pc are enough to compile examples/c-worker/worker.c and the
#   example of docs/bindings.md with `cc FILE $(pkg-config --cflags --libs clusterhub)`;
# - both run against the installed clusterhubd on a private bus and answer requests;
# - the system bus policy lands in a directory the system bus reads.
# usage: test-install.sh SOURCE-ROOT BUILD-ROOT MESON
src=$1
build=$2
meson=$3
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"
dest=$TMP/dest

if ! "$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$TMP/install.log" 2>&1; then
        echo "Bail out! meson install failed: $(tail -5 "$TMP/install.log" | tr '\n' ' ')"
        exit 1
fi
ok "meson install --destdir"

prefix=$("$meson" introspect --buildoptions "$build" | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
pc=$(find "$dest" -name clusterhub.pc | head -1)
if [ -n "$pc" ]; then ok "clusterhub.pc installed"; else not_ok "clusterhub.pc installed"; finish; fi
for h in clusterhub.h ch-runtime.h ch-errors.h ch-store1-client.h; do
        [ -f "$dest$prefix/include/clusterhub/$h" ] && ok "header $h installed" || not_ok "header $h installed" "$(find "$dest" -name '*.h')"
done

# pkg-config alone: the .pc file of the DESTDIR, its paths rebased into it
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR=$dest
cflags=$(pkg-config --cflags clusterhub) && libs=$(pkg-config --libs clusterhub)
# <clusterhub/clusterhub.h> needs -I$includedir, not -I$includedir/clusterhub
check "pkg-config Cflags name the include root" 0 "-I$dest$prefix/include" sh -c 'echo "$1" | tr " " "\n" | grep -- "^-I$2"' - "$cflags" "$dest$prefix/include"
libdir=$(pkg-config --variable=libdir clusterhub)
libdir=$dest${libdir#"$dest"} # some pkgconf versions apply the sysroot to variables, some do not

# docs/bindings.md: the first ```c block, compiled as the page says
awk '/^```c$/ { on = 1; next } /^```/ { if (on) exit } on' "$src/docs/bindings.md" >"$TMP/doc-example.c"
grep -q 'int main' "$TMP/doc-example.c" && ok "docs/bindings.md has a C example" || not_ok "docs/bindings.md has a C example"
# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
for f in "$src/examples/c-worker/worker.c:c-worker" "$TMP/doc-example.c:doc-example"; do
        file=${f%%:*}
        out=$TMP/${f##*:}
        if (cd "$TMP" && cc -o "$out" "$file" $cflags $libs) >"$TMP/cc.log" 2>&1; then
                ok "compile ${f##*:} with pkg-config only"
        else
                not_ok "compile ${f##*:} with pkg-config only" "$(cat "$TMP/cc.log")"
        fi
done
# nothing installed points back into the build tree (debug info aside)
if grep -qs "$build" "$pc" || readelf -d "$libdir"/libclusterhub.so.* | grep -E 'R(UN)?PATH' | grep -q "$build"; then
        not_ok "no build-tree paths in clusterhub.pc and the library's RUNPATH"
else
        ok "no build-tree paths in clusterhub.pc and the library's RUNPATH"
fi

# run them against the installed hub
export LD_LIBRARY_PATH=$libdir # meson test pointed it at the build tree
# a sanitizer build: the examples are not instrumented, the library they load is
if ldd "$libdir/libclusterhub.so.0" 2>/dev/null | grep -q libasan; then
        export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
fi
for b in c-worker doc-example; do
        [ -x "$TMP/$b" ] || continue
        check "$b links the installed libclusterhub" 0 "$libdir/libclusterhub.so.0" \
                sh -c 'ldd "$1" | sed -n "s/.*libclusterhub.so.0 => \([^ ]*\) .*/\1/p"' - "$TMP/$b"
done
hub=$(find "$dest" -type f -name clusterhubd | head -1)
[ -x "$hub" ] && ok "clusterhubd installed" || { not_ok "clusterhubd installed"; finish; }
CLUSTERHUBD=$hub
start_bus dbus-daemon
start_hub

request() { # request METHOD PAYLOAD: the hub's reply, as busctl prints it
        busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default org.clusterhub.Requests1 \
                Request 'ssva{sv}' '' "$1" s "$2" 0 2>&1
}
retry_request() { # retry_request METHOD PAYLOAD WANT: until the worker serves it
        local got
        for _ in $(seq 200); do
                got=$(request "$1" "$2")
                [ "$got" = "$3" ] && break
                sleep 0.05
        done
        echo "$got"
}

if [ -x "$TMP/c-worker" ]; then
        spawn "$TMP/c-worker" cw >"$TMP/c-worker.log" 2>&1
        check "examples/c-worker serves upper" 0 'v s "HELLO"' retry_request upper hello 'v s "HELLO"'
fi
if [ -x "$TMP/doc-example" ]; then
        spawn stdbuf -oL "$TMP/doc-example" >"$TMP/doc-example.log" 2>&1
        check "the docs/bindings.md example serves resize" 0 'v s "resized"' retry_request resize a.png 'v s "resized"'
        wait_for "$TMP/doc-example.log" "finished setup" && ok "the docs/bindings.md example heard its own jobs.done" ||
                not_ok "the docs/bindings.md example heard its own jobs.done" "$(cat "$TMP/doc-example.log")"
fi

# the system bus policy: in a directory the installed system bus reads
conf=$(find "$dest" -name org.clusterhub.Hub1.conf -path '*system.d*' | head -1)
if [ -f /usr/share/dbus-1/system.conf ]; then
        dirs=$(sed -n 's|.*<includedir>\(.*\)</includedir>.*|\1|p' /usr/share/dbus-1/system.conf |
                sed 's|^\([^/]\)|/usr/share/dbus-1/\1|')
        found=no
        for d in $dirs; do [ "$conf" = "$dest$d/org.clusterhub.Hub1.conf" ] && found=yes; done
        check "the bus policy is where the system bus reads it" 0 yes echo "$found"
        [ "$found" = yes ] || echo "#   installed at ${conf#"$dest"}; the bus reads: $dirs"
else
        ok "the bus policy location # SKIP no /usr/share/dbus-1/system.conf"
fi
finish
