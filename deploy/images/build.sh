#!/bin/bash
# build.sh - builds tlm's container images from the repository root (`make images`).
#
#   deploy/images/build.sh [ingest] [logshipper] [gauth-double]    (default: all three)
#
# Images: ${TLM_IMAGE_PREFIX}tlm-ingest:${TLM_IMAGE_TAG}, ...tlm-logshipper..., ...gauth-double...
# (default localhost/tlm-ingest:dev). Environment:
#   TLM_IMAGE_TOOL    podman (default) or docker. With podman, scripts/podman-setup.sh runs
#                     first (packages, containers.conf, the local debian:bookworm-slim base).
#   TLM_IMAGE_PREFIX  default localhost/      TLM_IMAGE_TAG  default dev
#   TLM_IMAGE_VERSION, TLM_IMAGE_REVISION     labels (default: the tag, git HEAD)
# The build stages of ingest and logshipper are identical, so the C code compiles once.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOL="${TLM_IMAGE_TOOL:-podman}"
PREFIX="${TLM_IMAGE_PREFIX:-localhost/}"
TAG="${TLM_IMAGE_TAG:-dev}"
VERSION="${TLM_IMAGE_VERSION:-$TAG}"
REVISION="${TLM_IMAGE_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

say() { printf 'images: %s\n' "$*" >&2; }

case "$TOOL" in
    podman)
        scripts/podman-setup.sh
        # shellcheck source=/dev/null # written by podman-setup.sh
        . build/podman/env
        ;;
    docker) ;;
    *) say "TLM_IMAGE_TOOL must be podman or docker, not $TOOL"; exit 2 ;;
esac

which=("$@")
[ ${#which[@]} -gt 0 ] || which=(ingest logshipper gauth-double)

for name in "${which[@]}"; do
    case "$name" in
        ingest | logshipper) image="${PREFIX}tlm-$name:$TAG" ;;
        gauth-double) image="${PREFIX}gauth-double:$TAG" ;;
        *) say "unknown image $name (ingest, logshipper, gauth-double)"; exit 2 ;;
    esac
    file="deploy/images/$name.Dockerfile"
    args=(build -f "$file" -t "$image"
          --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED")
    if [ "$TOOL" = podman ]; then
        # podman reads no per-Dockerfile ignore file: name it (docker/BuildKit finds
        # deploy/images/<name>.Dockerfile.dockerignore by itself)
        args+=(--ignorefile "$file.dockerignore" --layers)
    fi
    say "building $image ($file)"
    start=$(date +%s)
    "$TOOL" "${args[@]}" .
    say "built $image in $(( $(date +%s) - start ))s"
done
