#!/usr/bin/env bash
# Build the observability test image (Debian's Prometheus, Alertmanager, node exporter, mtail) FROM
# the Debian 12 simulated NAS, cached by its recipe (lib.sh), and save it as its own offline bundle,
# cached by the image's id: only the NAS that run the observability role load it.
#   nasai/svc-observability:test → ${NASAI_BUNDLE_DIR:-.cache/bundles}/nasai-observability.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bundle_dir=${NASAI_BUNDLE_DIR:-$here/../../.cache/bundles}
nasai_build_on svc-observability nasai/svc-observability:test nasai/nas:bookworm "$here/observability"
mkdir -p "$bundle_dir"
id=$(docker image inspect -f '{{.Id}}' nasai/svc-observability:test | cut -c8-19)
if [ "$(cat "$bundle_dir/nasai-observability.id" 2>/dev/null)" != "$id" ]; then
  docker save -o "$bundle_dir/nasai-observability.tar.part" nasai/svc-observability:test
  mv "$bundle_dir/nasai-observability.tar.part" "$bundle_dir/nasai-observability.tar"
  echo "$id" > "$bundle_dir/nasai-observability.id"
  echo "saved nasai/svc-observability:test to $bundle_dir/nasai-observability.tar"
fi
