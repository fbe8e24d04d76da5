#!/usr/bin/env bash
# Build nasai/busybox:test, a few-MB image (Debian's static busybox) that scenarios load into the
# engine inside a simulated NAS (no registry there either). Cached by a hash of its recipe.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/build-busybox.sh" "$here/busybox/make-rootfs.sh" | sha256sum | cut -c1-12)
tag="nasai/busybox:${hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" nasai/busybox:test
  echo "nasai/busybox:test is current (${tag})"
  exit 0
fi
start=$(date +%s)
out=$(mktemp -d /var/tmp/nasai-busybox.XXXXXX)
trap 'rm -rf "$out"' EXIT
docker run --rm -v "$out:/out" -v "$here/busybox/make-rootfs.sh:/make-rootfs.sh:ro" \
  nasai/nas:bookworm sh /make-rootfs.sh
docker import -c 'CMD ["/bin/sh"]' "$out/rootfs.tar" "$tag" >/dev/null
docker tag "$tag" nasai/busybox:test
echo "built ${tag} in $(( $(date +%s) - start ))s"
