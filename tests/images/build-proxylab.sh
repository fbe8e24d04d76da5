#!/usr/bin/env bash
# Build the proxy role's lab images FROM the simulated NAS, cached by their recipes (lib.sh):
#   nasai/tinyproxy:bookworm   a forward proxy (tinyproxy from Debian; open on 8888, auth on 8889)
#   nasai/httptarget:bookworm  a plain HTTP server on 80 and 443 (python3 -m http.server)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
for name in tinyproxy httptarget; do
  nasai_build_on "$name" "nasai/${name}:bookworm" nasai/nas:bookworm "$here/$name"
done
