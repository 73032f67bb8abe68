# shellcheck shell=bash
# SPDX-License-Identifier: MIT
#
# The one list of Debian packages clusterhub needs, and the installer used by
# scripts/run-hub and scripts/run-tests.  Source it; do not run it.

# To build the hub and run it (busctl comes with systemd, dbus-send with dbus-bin).
# shellcheck disable=SC2034
CH_BUILD_DEPS=(
        meson ninja-build gcc pkg-config
        libsystemd-dev libglib2.0-dev libhiredis-dev
        dbus dbus-daemon dbus-bin systemd
)

# Extra for the test suite: the second broker, the store's reference
# implementation, JSON parsing of meson's test log, unshare/setpriv, the
# user bus units the systemd --user test starts, and clang for the libFuzzer
# targets (tests/fuzz), and PyGObject and dbus-python for the Python examples
# (tests/python), and redis-server for tests/redis (--redis), already listed for the store.
# shellcheck disable=SC2034
CH_TEST_DEPS=(
        dbus-broker redis-server python3 util-linux dbus-user-session clang libclang-rt-14-dev
        python3-gi gir1.2-glib-2.0 python3-dbus
)

ch_log() { printf '==> %s\n' "$*" >&2; }

# ch_install_deps PKG...: install those of PKG that are missing, without prompts.
ch_install_deps() {
        local missing=() p sudo=()

        for p in "$@"; do
                if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]]; then
                        missing+=("$p")
                fi
        done
        ((${#missing[@]})) || return 0

        if ((EUID != 0)); then
                if command -v sudo >/dev/null 2>&1; then
                        sudo=(sudo -n)
                else
                        ch_log "missing packages: ${missing[*]} (run as root or install them: apt-get install ${missing[*]})"
                        return 1
                fi
        fi
        ch_log "installing: ${missing[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2 || return 1
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2 || return 1
}

# ch_meson_build DIR [meson setup options...]: configure DIR once (reconfigure
# if its options changed or it is broken), then build it.
ch_meson_build() {
        local dir=$1
        shift
        if [[ -f "$dir/build.ninja" && -f "$dir/meson-private/coredata.dat" ]]; then
                if (($#)); then
                        meson configure "$dir" "$@" >&2 || meson setup --wipe "$dir" "$@" >&2 || return 1
                fi
        else
                rm -rf "$dir"
                meson setup "$dir" "$@" >&2 || return 1
        fi
        ninja -C "$dir" >&2
}
