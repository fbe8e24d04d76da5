#!/usr/bin/env bash
# Build the service test images the `services` scenario deploys inside a simulated NAS, each
# cached by a hash of its recipe and base image, then save them all in one offline bundle
# (`docker save`, shared layers stored once), cached by the images' ids:
#   nasai/llama-server:test  (build-llama.sh)   nasai/svc-nginx:test   nasai/svc-copyparty:test
#   nasai/svc-rsyslog:test   → ${NASAI_BUNDLE_DIR:-.cache/bundles}/nasai-services.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bundle_dir=${NASAI_BUNDLE_DIR:-$here/../../.cache/bundles}
"$here/build-llama.sh"
docker image inspect nasai/nas:bookworm >/dev/null 2>&1 || "$here/build-nas.sh" bookworm
base_id=$(docker image inspect -f '{{.Id}}' nasai/nas:bookworm)
images=(nasai/llama-server:test)
for dir in "$here"/services/*/; do
  name=$(basename "$dir")
  tag="nasai/svc-${name}:$(echo "$base_id" | nasai_hash "$here/build-services.sh" "$dir"*)"
  if ! nasai_cached "$tag" "nasai/svc-${name}:test"; then
    start=$(date +%s)
    # Python packages come as wheels fetched here (containers may not reach PyPI): wheels.txt.
    context=$(mktemp -d /var/tmp/nasai-svc.XXXXXX)
    cp "$dir"* "$context/"
    if [ -f "$dir/wheels.txt" ]; then
      pip download --quiet --no-deps --only-binary=:all: --dest "$context" -r "$dir/wheels.txt"
    fi
    docker build -q --build-arg "BASE=nasai/nas:bookworm" -t "$tag" "$context" >/dev/null
    rm -rf "$context"
    docker tag "$tag" "nasai/svc-${name}:test"
    echo "built ${tag} in $(( $(date +%s) - start ))s"
  fi
  images+=("nasai/svc-${name}:test")
done
mkdir -p "$bundle_dir"
ids=$(for image in "${images[@]}"; do docker image inspect -f '{{.Id}}' "$image"; done | sha256sum | cut -c1-12)
if [ "$(cat "$bundle_dir/nasai-services.id" 2>/dev/null)" != "$ids" ]; then
  docker save -o "$bundle_dir/nasai-services.tar.part" "${images[@]}"
  mv "$bundle_dir/nasai-services.tar.part" "$bundle_dir/nasai-services.tar"
  echo "$ids" > "$bundle_dir/nasai-services.id"
  echo "saved ${images[*]} to $bundle_dir/nasai-services.tar"
fi
