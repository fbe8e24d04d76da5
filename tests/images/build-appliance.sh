#!/usr/bin/env bash
# Build the simulated NAS appliances FROM nasai/nas-engine:bookworm, one target of
# tests/images/appliance/Dockerfile each, cached by a hash of the recipe and base (lib.sh):
#   nasai/appliance:dsm  nasai/appliance:qts  nasai/appliance:scale  nasai/appliance:unraid
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
base=nasai/nas-engine:bookworm
docker image inspect "$base" >/dev/null 2>&1 || "$here/build-nas-engine.sh" bookworm
hash=$(docker image inspect -f '{{.Id}}' "$base" | nasai_hash "$0" "$here/lib.sh" "$here"/appliance/*)
for target in ${NASAI_APPLIANCES:-dsm qts scale unraid}; do
  tag="nasai/appliance:${target}-${hash}"
  nasai_cached "$tag" "nasai/appliance:${target}" && continue
  start=$(date +%s)
  docker build -q --build-arg "BASE=$base" --target "$target" -t "$tag" "$here/appliance" >/dev/null
  docker tag "$tag" "nasai/appliance:${target}"
  echo "built nasai/appliance:${target} ($tag) in $(( $(date +%s) - start ))s"
done
