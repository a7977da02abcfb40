#!/bin/sh
# deps.sh - installs the Debian packages a step needs when they are missing.
# Usage: scripts/deps.sh build [test] [bench] [images] ...  (root installs; others get a hint)
set -eu
pkgs_build="build-essential pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev libjansson-dev libcurl4-openssl-dev zlib1g-dev libpcre2-dev libsystemd-dev"
pkgs_test="curl python3 python3-requests python3-websockets python3-pytest python3-yaml valgrind clang libclang-rt-14-dev prometheus nodejs npm chromium shellcheck strace"
pkgs_bench="python3 wrk nginx-light gnuplot-nox util-linux linux-perf"
pkgs_images="podman buildah debootstrap runc catatonit"

want=""
for step in "$@"; do
    eval "want=\"\$want \$pkgs_$step\""
done
missing=""
for p in $want; do
    case "$p" in   # node and npm may come from elsewhere than Debian: a working command is enough
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run as root, or: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends $missing >/dev/null
