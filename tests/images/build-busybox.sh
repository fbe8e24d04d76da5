#!/usr/bin/env bash
# Build nasai/busybox:test, a few-MB image (Debian's static busybox) that scenarios load into the
# engine inside a simulated NAS (no registry there either). Cached by a hash of its recipe.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tag="nasai/busybox:$(nasai_hash "$here/build-busybox.sh" "$here/busybox/make-rootfs.sh" </dev/null)"
nasai_cached "$tag" nasai/busybox:test && exit 0
start=$(date +%s)
out=$(mktemp -d /var/tmp/nasai-busybox.XXXXXX)
trap 'rm -rf "$out"' EXIT
docker run --rm -v "$out:/out" -v "$here/busybox/make-rootfs.sh:/make-rootfs.sh:ro" \
  nasai/nas:bookworm sh /make-rootfs.sh
docker import -c 'CMD ["/bin/sh"]' "$out/rootfs.tar" "$tag" >/dev/null
docker tag "$tag" nasai/busybox:test
echo "built ${tag} in $(( $(date +%s) - start ))s"
