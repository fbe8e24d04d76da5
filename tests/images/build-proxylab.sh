#!/usr/bin/env bash
# Build the proxy role's lab images FROM the simulated NAS (nasai/nas:bookworm), cached by a hash
# of their recipe and of the base image:
#   nasai/tinyproxy:bookworm   a forward proxy (tinyproxy from Debian; open on 8888, auth on 8889)
#   nasai/httptarget:bookworm  a plain HTTP server on 80 and 443 (python3 -m http.server)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=nasai/nas:bookworm
docker image inspect "$base" >/dev/null 2>&1 || "$here/build-nas.sh" bookworm
base_id=$(docker image inspect -f '{{.Id}}' "$base")
for name in tinyproxy httptarget; do
  hash=$( { cat "$here/build-proxylab.sh"; cat "$here/$name"/*; echo "$base_id"; } | sha256sum | cut -c1-12)
  tag="nasai/${name}:bookworm-${hash}"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "nasai/${name}:bookworm is current (${tag})"
  else
    start=$(date +%s)
    docker build -q --build-arg "BASE=$base" -t "$tag" "$here/$name" >/dev/null
    echo "built ${tag} in $(( $(date +%s) - start ))s"
  fi
  docker tag "$tag" "nasai/${name}:bookworm"
done
