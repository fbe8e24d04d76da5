#!/usr/bin/env bash
# Build every test image, each cached by a hash of its recipe: the simulated NAS for each Debian
# suite, then every other tests/images/build-<name>.sh (service and helper images).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
for suite in ${NAS_SUITES:-bookworm trixie}; do
  "$here/build-nas.sh" "$suite"
done
for script in "$here"/build-*.sh; do
  case "$(basename "$script")" in build-nas.sh|build-all.sh) continue ;; esac
  "$script"
done
