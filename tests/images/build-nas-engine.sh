#!/usr/bin/env bash
# Build the simulated NAS with its own Docker engine, FROM nasai/nas:SUITE, cached by a hash of
# its recipe and of the base image. Tags nasai/nas-engine:<suite>-<hash> and nasai/nas-engine:<suite>.
#   tests/images/build-nas-engine.sh [bookworm|trixie]   (default bookworm)
set -euo pipefail
suite=${1:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)
docker image inspect "nasai/nas:${suite}" >/dev/null 2>&1 || "$here/build-nas.sh" "$suite"
base_id=$(docker image inspect -f '{{.Id}}' "nasai/nas:${suite}")
hash=$( { cat "$here/build-nas-engine.sh" "$here"/nas-engine/*; echo "$base_id"; } | sha256sum | cut -c1-12)
tag="nasai/nas-engine:${suite}-${hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "nasai/nas-engine:${suite}"
  echo "nasai/nas-engine:${suite} is current (${tag})"
  exit 0
fi
start=$(date +%s)
docker build -q --build-arg "BASE=nasai/nas:${suite}" -t "$tag" "$here/nas-engine" >/dev/null
docker tag "$tag" "nasai/nas-engine:${suite}"
echo "built ${tag} in $(( $(date +%s) - start ))s"
