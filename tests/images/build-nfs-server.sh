#!/usr/bin/env bash
# Build the userspace NFS server image of the nfs_models scenario (nfs-ganesha + VFS + rpcbind),
# FROM the simulated NAS image, cached by a hash of its recipe and of that base image.
#   tests/images/build-nfs-server.sh
# Tags nasai/nfs-server:<hash> (the cache key) and nasai/nfs-server:latest (what tests use).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=nasai/nas:bookworm
docker image inspect "$base" >/dev/null 2>&1 || "$here/build-nas.sh" bookworm
hash=$( { cat "$here/build-nfs-server.sh" "$here"/nfs-server/*; docker image inspect -f '{{.Id}}' "$base"; } \
        | sha256sum | cut -c1-12)
tag="nasai/nfs-server:${hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" nasai/nfs-server:latest
  echo "nasai/nfs-server:latest is current (${tag})"
  exit 0
fi
start=$(date +%s)
docker build -q --build-arg "BASE=$base" -t "$tag" "$here/nfs-server" >/dev/null
docker tag "$tag" nasai/nfs-server:latest
echo "built ${tag} in $(( $(date +%s) - start ))s"
