#!/usr/bin/env bash
# Build the simulated NAS image for one Debian suite, cached by a hash of its recipe.
#   tests/images/build-nas.sh bookworm|trixie
# Tags nasai/nas:<suite>-<hash> (the cache key) and nasai/nas:<suite> (what tests use).
# NASAI_NAS_BASE=<image> starts from that image instead of a debootstrap import
# (for CI that can pull, e.g. debian:bookworm).
set -euo pipefail
suite=${1:?usage: build-nas.sh SUITE}
here=$(cd "$(dirname "$0")" && pwd)
mirror=${NASAI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=${NASAI_NAS_BASE:-}
packages=python3,systemd,systemd-sysv,sudo,iproute2,procps,ca-certificates,netbase

hash=$( { cat "$here/build-nas.sh" "$here/nas/Dockerfile"; echo "$suite $base $packages"; } \
        | sha256sum | cut -c1-12)
tag="nasai/nas:${suite}-${hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "nasai/nas:${suite}"
  echo "nasai/nas:${suite} is current (${tag})"
  exit 0
fi

start=$(date +%s)
if [ -z "$base" ]; then
  base="nasai/rootfs:${suite}-${hash}"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    root=$(mktemp -d /var/tmp/nasai-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/dev/null
    # Apt inside the image must reach the same mirror and hold no cache.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$base" >/dev/null
  fi
fi
docker build -q --build-arg "BASE=$base" -t "$tag" "$here/nas" >/dev/null
docker tag "$tag" "nasai/nas:${suite}"
echo "built ${tag} in $(( $(date +%s) - start ))s"
