#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man pages agree with the programs (TAP):
# - clusterhubd.8 documents exactly the options of `clusterhubd --help`;
# - hubctl.1 and the bash completion know every command of `hubctl --help`;
# - both pages render without troff warnings.
# usage: test-man.sh SOURCE-ROOT
set -u
src=$1
hub=${CLUSTERHUBD:?CLUSTERHUBD is not set}
H=${HUBCTL:?HUBCTL is not set}
n=0
fails=0
result() { # result NAME OK [DETAILS]
        n=$((n + 1))
        if [ "$2" = 0 ]; then echo "ok $n - $1"; else fails=$((fails + 1)); echo "not ok $n - $1"; [ -n "${3:-}" ] && printf '# %s\n' "$3"; fi
}
options_of_help() { grep -oE -- '--[a-z][a-z-]*' | sort -u; }
# troff writes "\-\-max\-key\-bytes" for --max-key-bytes
options_of_man() { sed 's/\\-/-/g' "$1" | grep -oE -- '--[a-z][a-z-]*' | sort -u; }

want=$("$hub" --help | options_of_help)
have=$(options_of_man "$src/man/clusterhubd.8")
d=$(diff <(echo "$want") <(echo "$have"))
result "clusterhubd.8 options = clusterhubd --help options" $? "$(echo "$d" | tr '\n' ' ')"
d=$(diff <(echo "$want") <(grep -E '^\.B.? *\\-' "$src/man/clusterhubd.8" | sed 's/\\-/-/g' | grep -oE -- '--[a-z][a-z-]*' | sort -u))
result "every clusterhubd option has its own entry" $? "$(echo "$d" | tr '\n' ' ')"

commands=$("$H" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p; s/^  \([a-z][a-z-]*\)$/\1/p' | sort -u)
[ "$(echo "$commands" | wc -l)" -ge 16 ]
result "hubctl --help lists the commands" $? "$commands"
for c in $commands; do
        sed 's/\\-/-/g' "$src/man/hubctl.1" | grep -Eq "^\.(B|BR|BI) \"?$c\b"
        result "hubctl.1 documents '$c'" $?
        grep -q "### \`hubctl $c" "$src/docs/hubctl.md" || grep -q "## \`hubctl $c" "$src/docs/hubctl.md"
        result "docs/hubctl.md documents '$c'" $?
        grep -Eq "commands=\".*\b$c\b" "$src/completion/hubctl.bash"
        result "completion knows '$c'" $?
done
for opt in $("$H" --help | options_of_help); do
        sed 's/\\-/-/g' "$src/man/hubctl.1" | grep -q -- "$opt"
        result "hubctl.1 documents $opt" $?
done

# the completion itself: simulate bash's calls
complete_words() { # complete_words WORD... (the last one is being completed)
        bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _hubctl; printf "%s\n" "${COMPREPLY[@]}"' - "$src/completion/hubctl.bash" "$@" 2>&1
}
[ "$(complete_words hubctl wai)" = wait-workers ]
result "completion: command" $? "$(complete_words hubctl wai)"
[ "$(complete_words hubctl --ns=x se | tr '\n' ' ')" = "set send " ]
result "completion: command after a global option" $? "$(complete_words hubctl --ns=x se)"
[ "$(complete_words hubctl set --k)" = --keep-ttl ]
result "completion: option of a command" $? "$(complete_words hubctl set --k)"
[ "$(complete_words hubctl store hget | tr '\n' ' ')" = "HGet HGetAll HGetTracked " ]
result "completion: store methods" $? "$(complete_words hubctl store hget)"
d=$(diff <("$H" store --help | sed -n 's/^  \([A-Z][A-Za-z]*\) .*/\1/p' | sort) \
        <(sed -n '/store_methods=/,/"$/p' "$src/completion/hubctl.bash" | tr -d '"' | sed 's/.*=//' | tr ' ' '\n' | grep -E '^[A-Z]' | sort))
result "completion: store methods = hubctl store --help" $? "$(echo "$d" | tr '\n' ' ')"

for page in hubctl.1 clusterhubd.8; do
        if command -v groff >/dev/null; then
                w=$(groff -man -Tutf8 -ww -z "$src/man/$page" 2>&1)
                [ -z "$w" ]
                result "$page renders without warnings" $? "$w"
        else
                n=$((n + 1)); echo "ok $n - $page renders # SKIP no groff"
        fi
done
echo "1..$n"
[ "$fails" -eq 0 ]
