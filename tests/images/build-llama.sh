#!/usr/bin/env bash
# Build the llama-server test image (Debian sid's llama.cpp-tools + a tiny random GGUF model),
# cached by a hash of its recipe. Tags nasai/llama-server:<hash> and nasai/llama-server:test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
mirror=${NASAI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
GGUF_VERSION=0.17.1
tag="nasai/llama-server:$(nasai_hash "$here/build-llama.sh" "$here"/llama/* </dev/null)"
nasai_cached "$tag" nasai/llama-server:test && exit 0
start=$(date +%s)
# The sid root filesystem is keyed by how it is made only, so recipe edits do not redo it.
base="nasai/rootfs:sid-$(echo "minbase sid $mirror" | sha256sum | cut -c1-12)"
if ! docker image inspect "$base" >/dev/null 2>&1; then
  root=$(mktemp -d /var/tmp/nasai-rootfs.XXXXXX)
  debootstrap --variant=minbase sid "$root" "$mirror" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$base" >/dev/null
fi
# The build context: the recipe plus the gguf wheel, downloaded here (containers may not reach PyPI).
context=$(mktemp -d /var/tmp/nasai-llama.XXXXXX)
trap 'rm -rf "$context" ${root:+"$root"}' EXIT
cp "$here"/llama/* "$context/"
pip download --quiet --no-deps --only-binary=:all: --dest "$context" "gguf==${GGUF_VERSION}"
docker build -q --build-arg "BASE=$base" -t "$tag" "$context" >/dev/null
docker tag "$tag" nasai/llama-server:test
echo "built ${tag} in $(( $(date +%s) - start ))s"
