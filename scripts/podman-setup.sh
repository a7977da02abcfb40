#!/bin/bash
# podman-setup.sh - makes podman usable for tlm's images and the podman pod proof, from
# nothing, on a Debian 12 machine where we are root and no image registry is reachable.
# Idempotent: each step runs only when its result is missing. Safe to run concurrently
# (one lock).
#
#   1. Debian packages: podman buildah debootstrap runc catatonit (the pod infra process),
#      installed when missing, with their recommends (netavark, iptables, uidmap).
#   2. $TLM_PODMAN_DIR/containers.conf (default build/podman): the runc runtime (crun
#      refuses hybrid cgroups), cgroupfs, file events, and default ulimits read from this
#      shell's hard limits at run time (podman would otherwise ask for more than root may
#      have here: "setrlimit RLIMIT_NOFILE: Operation not permitted").
#   3. $TLM_PODMAN_DIR/env: a file to source, exporting CONTAINERS_CONF.
#   4. The base image docker.io/library/debian:bookworm-slim, made locally with debootstrap
#      (minbase) from the mirror that apt uses, when no such image is present.
#
# Usage:  scripts/podman-setup.sh && . build/podman/env && podman build ...
# Environment: TLM_PODMAN_DIR, TLM_DEBIAN_MIRROR (overrides the mirror found in apt's sources),
#              TLM_BASE_IMAGE (default docker.io/library/debian:bookworm-slim).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
DIR="${TLM_PODMAN_DIR:-$REPO/build/podman}"
case "$DIR" in /*) ;; *) DIR="$REPO/$DIR" ;; esac
BASE_IMAGE="${TLM_BASE_IMAGE:-docker.io/library/debian:bookworm-slim}"
SUITE=bookworm

say() { printf 'podman-setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock -w 900 9 || die "another podman-setup holds $DIR/.lock"

# 1. packages ---------------------------------------------------------------------------
missing=""
for p in podman buildah debootstrap runc catatonit; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "missing Debian packages:$missing (run as root, or: sudo apt-get install -y$missing)"
    say "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # with recommends: catatonit (pod infra), netavark, iptables, uidmap come with them
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    apt-get install -y -qq $missing >/dev/null
fi

# 2. containers.conf (limits read now, never hard-coded) ------------------------------------
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
[ "$nofile" = unlimited ] && nofile=1048576
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then
    nproc=32768
fi
conf="$DIR/containers.conf"
cat >"$conf.tmp" <<EOF
# written by scripts/podman-setup.sh; limits are this machine's hard limits at setup time
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv -f "$conf.tmp" "$conf"

# 3. env file ------------------------------------------------------------------------------
cat >"$DIR/env.tmp" <<EOF
# source me: . $DIR/env
export CONTAINERS_CONF="$conf"
EOF
mv -f "$DIR/env.tmp" "$DIR/env"
export CONTAINERS_CONF="$conf"

# 4. base image ----------------------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
    say "ready ($BASE_IMAGE present; CONTAINERS_CONF=$conf)"
    exit 0
fi

# The mirror apt uses: deb822 sources first, then the one-line format.
find_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri="$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")"
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' "$f")"
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    echo "http://deb.debian.org/debian"
}
mirror="${TLM_DEBIAN_MIRROR:-$(find_mirror)}"

rootfs="$DIR/rootfs.$$"
cleanup() { rm -rf "$rootfs"; }
trap cleanup EXIT
say "making $BASE_IMAGE with debootstrap --variant=minbase $SUITE from $mirror (once per machine)"
if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$DIR/debootstrap.log" 2>&1; then
    tail -20 "$DIR/debootstrap.log" >&2
    die "debootstrap failed (log: $DIR/debootstrap.log)"
fi

# The image's apt sources: the host's, when it is the same Debian release (updates and
# security come with them); else the mirror debootstrap used.
if grep -qs "$SUITE" /etc/apt/sources.list.d/debian.sources; then
    rm -f "$rootfs/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
else
    printf 'deb %s %s main\n' "$mirror" "$SUITE" >"$rootfs/etc/apt/sources.list"
fi
# Slim like the official image: no docs, man pages or locales from later installs, no caches.
mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d" "$rootfs/etc/apt/apt.conf.d"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/locale/"* \
    "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"* "$rootfs/var/log/"*.log \
    "$rootfs/debootstrap"

tar --numeric-owner -C "$rootfs" -c . |
    podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase $SUITE $mirror (scripts/podman-setup.sh)" \
        - "$BASE_IMAGE" >/dev/null
say "ready ($BASE_IMAGE made; CONTAINERS_CONF=$conf)"
