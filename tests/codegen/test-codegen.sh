#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# clusterhub-codegen: golden output, determinism, and refusal of invalid XML (TAP).
# usage: test-codegen.sh CODEGEN SOURCE_DIR   (UPDATE_GOLDEN=1 rewrites the golden files)
set -u
codegen=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }

gen() {
        mkdir -p "$1"
        "$codegen" --c-namespace ch --interface-prefix org.example. --unsupported-error org.example.Error.NotSupported --limit-error org.example.Error.LimitExceeded \
                --output-dir "$1" "$src/org.example.Sample1.xml"
}

if gen "$tmp/a" && gen "$tmp/b"; then ok "generates"; else not_ok "generates"; fi
if diff -r "$tmp/a" "$tmp/b" >/dev/null; then ok "generated twice is identical"; else not_ok "generated twice is identical"; fi

if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
        rm -rf "$src/golden" && mkdir -p "$src/golden"
        for f in "$tmp/a"/*; do cp "$f" "$src/golden/$(basename "$f").golden"; done
fi
for f in "$tmp/a"/*; do
        name=$(basename "$f")
        if diff -u "$src/golden/$name.golden" "$f" >&2; then ok "golden $name"; else not_ok "golden $name (UPDATE_GOLDEN=1 to accept)"; fi
done
count=$(ls "$src/golden" | wc -l)
if [ "$count" -eq "$(ls "$tmp/a" | wc -l)" ]; then ok "no golden file without output"; else not_ok "golden files: $count"; fi

while IFS='|' read -r file want; do
        out=$("$codegen" --output-dir "$tmp" "$src/invalid/$file.xml" 2>&1)
        rc=$?
        if [ $rc -ne 0 ] && [[ "$out" == *"$want"* ]]; then
                ok "rejects $file: $out"
        else
                not_ok "rejects $file (rc $rc): '$out' lacks '$want'"
        fi
done < "$src/invalid/expected.txt"

out=$("$codegen" --errors "$src/../../introspection/org.clusterhub.Error.xml" --output-dir "$tmp" 2>&1) && [ -s "$tmp/ch-errors.h" ] \
        && ok "error list" || not_ok "error list: $out"
out=$("$codegen" 2>&1); [ $? -eq 2 ] && [[ "$out" == *"no input files"* ]] && ok "usage error" || not_ok "usage error: $out"
"$codegen" --help | grep -q -- "--output-dir" && ok "--help" || not_ok "--help"

echo "1..$n"
[ $fails -eq 0 ]
