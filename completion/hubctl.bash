# SPDX-License-Identifier: MIT
# bash completion for hubctl(1)
_hubctl() {
        local cur prev words cword
        if declare -F _init_completion >/dev/null; then
                _init_completion -n = || return
        else
                cur=${COMP_WORDS[COMP_CWORD]}
                prev=${COMP_WORDS[COMP_CWORD - 1]}
                words=("${COMP_WORDS[@]}")
                cword=$COMP_CWORD
        fi

        local global_opts="--user --system --address= --transport= --ns= --help --version"
        local commands="get set del incr keys ttl store emit send monitor request workers wait-workers stats namespaces save dump restore lock locks unlock help"
        local -A opts=(
                [get]="--json --raw --help"
                [set]="--ttl= --nx --xx --keep-ttl --stdin --bytes --help"
                [del]="--json --help"
                [incr]="--json --help"
                [keys]="--json --help"
                [ttl]="--json --help"
                [store]="--json --raw --help"
                [emit]="--no-wait --stdin --bytes --help"
                [send]="--timeout= --no-wait --stdin --bytes --help"
                [monitor]="--json --count= --no-events --no-keys --no-workers --help"
                [request]="--to= --timeout= --json --raw --stdin --bytes --help"
                [workers]="--json --help"
                [wait-workers]="--timeout= --json --help"
                [stats]="--json --help"
                [namespaces]="--json --help"
                [save]="--json --help"
                [dump]="--ns= --help"
                [restore]="--replace --ns= --from= --help"
                [lock]="--timeout= --shared --nonblock --conflict-exit-code= --command= --lease= --help"
                [locks]="--json --help"
                [unlock]="--help"
                [help]=""
        )
        local store_methods="Del Exists Keys Scan Type Rename RenameNX Move Expire Persist TTL Flush DBSize RandomKey
                Get Set SetGet GetDel MGet MSet MSetNX Incr IncrFloat Append StrLen GetRange SetRange
                HSet HSetNX HGet HMGet HGetAll HDel HExists HLen HKeys HVals HIncr HIncrFloat
                LPush RPush LPushX RPushX LPop RPop BLPop BRPop LRange LLen LIndex LSet LTrim LRem LInsert LMove
                SAdd SRem SMembers SIsMember SCard SPop SRandMember
                Track Untrack GetTracked HGetTracked MGetTracked"

        # find the command: the first word that is not a global option
        local i cmd="" cmd_index=0
        for ((i = 1; i < cword; i++)); do
                case "${words[i]}" in
                --address | --ns) ((i++)) ;;
                -*) ;;
                *)
                        cmd=${words[i]}
                        cmd_index=$i
                        break
                        ;;
                esac
        done

        # values of options
        case "$cur" in
        --ttl=* | --timeout=* | --lease=*)
                local v=${cur#*=}
                COMPREPLY=($(compgen -P "${cur%%=*}=" -W "500ms 1s 10s 30s 1min 5min 1h infinity" -- "$v"))
                return
                ;;
        --transport=*)
                COMPREPLY=($(compgen -P "--transport=" -W "auto bus private" -- "${cur#*=}"))
                return
                ;;
        --address=*)
                COMPREPLY=($(compgen -P "--address=" -W "unix:path=" -- "${cur#*=}"))
                compopt -o nospace 2>/dev/null
                return
                ;;
        esac

        if [ -z "$cmd" ]; then
                if [[ "$cur" == -* ]]; then
                        COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
                        [[ "${COMPREPLY[0]:-}" == *= ]] && compopt -o nospace 2>/dev/null
                else
                        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
                fi
                return
        fi

        # after "lock NAME --" complete the command to run
        if [ "$cmd" = lock ]; then
                for ((i = cmd_index + 1; i < cword; i++)); do
                        if [ "${words[i]}" = -- ]; then
                                if declare -F _command_offset >/dev/null; then
                                        _command_offset $((i + 1))
                                else
                                        COMPREPLY=($(compgen -c -- "$cur"))
                                fi
                                return
                        fi
                done
        fi

        if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "${opts[$cmd]:-}" -- "$cur"))
                [[ "${COMPREPLY[0]:-}" == *= ]] && compopt -o nospace 2>/dev/null
                return
        fi

        # the first argument of "store" is a Store1 method
        if [ "$cmd" = store ]; then
                local nargs=0
                for ((i = cmd_index + 1; i < cword; i++)); do
                        [[ "${words[i]}" == -* ]] || ((nargs++))
                done
                if [ "$nargs" = 0 ]; then
                        local m
                        COMPREPLY=()
                        for m in $store_methods; do
                                [[ "${m,,}" == "${cur,,}"* ]] && COMPREPLY+=("$m") # any case, as hubctl takes it
                        done
                        return
                fi
        fi
        # restore reads a file
        if [ "$cmd" = restore ]; then
                COMPREPLY=($(compgen -f -- "$cur"))
                compopt -o filenames 2>/dev/null
                return
        fi
        COMPREPLY=()
}
complete -F _hubctl hubctl
