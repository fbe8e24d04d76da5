#!/usr/bin/env bash
# Build the chat front-end test image (Open WebUI from PyPI: chat/Dockerfile) FROM the Debian 12
# simulated NAS, cached by its recipe (the wheels are fetched only when it changed), and save it as
# its own offline bundle, cached by the image's id: only the NAS that run the chat load it.
#   nasai/svc-openwebui:test → ${NASAI_BUNDLE_DIR:-.cache/bundles}/nasai-chat.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bundle_dir=${NASAI_BUNDLE_DIR:-$here/../../.cache/bundles}
docker image inspect nasai/nas:bookworm >/dev/null 2>&1 || "$here/build-nas.sh" bookworm
tag="nasai/svc-openwebui:$(docker image inspect -f '{{.Id}}' nasai/nas:bookworm | nasai_hash "$0" "$here/chat"/*)"
if ! nasai_cached "$tag" nasai/svc-openwebui:test; then
  start=$(date +%s)
  # The wheels come from PyPI here (containers may not reach it), for the image's Python 3.11.
  context=$(mktemp -d /var/tmp/nasai-chat.XXXXXX)
  trap 'rm -rf "$context"' EXIT
  cp "$here/chat/Dockerfile" "$context/"
  arch=$(uname -m)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11.2 \
    --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux_2_28_$arch" \
    --dest "$context/wheels" -r "$here/chat/wheels.txt"
  docker build -q --build-arg "BASE=nasai/nas:bookworm" -t "$tag" "$context" >/dev/null
  docker tag "$tag" nasai/svc-openwebui:test
  echo "built $tag in $(( $(date +%s) - start ))s"
fi
mkdir -p "$bundle_dir"
id=$(docker image inspect -f '{{.Id}}' nasai/svc-openwebui:test | cut -c8-19)
if [ "$(cat "$bundle_dir/nasai-chat.id" 2>/dev/null)" != "$id" ]; then
  docker save -o "$bundle_dir/nasai-chat.tar.part" nasai/svc-openwebui:test
  mv "$bundle_dir/nasai-chat.tar.part" "$bundle_dir/nasai-chat.tar"
  echo "$id" > "$bundle_dir/nasai-chat.id"
  echo "saved nasai/svc-openwebui:test to $bundle_dir/nasai-chat.tar"
fi
