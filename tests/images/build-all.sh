#!/usr/bin/env bash
# Build every test image, each cached by a hash of its recipe: the simulated NAS for each Debian
# suite, then every other tests/images/build-<name>.sh (service and helper images).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# What the harness needs on the machine: debootstrap for the images, btrfs-progs and xfsprogs for
# the test filesystems of the swap scenario (tests/harness/loopfs.sh).
missing=()
for tool in debootstrap:debootstrap mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for suite in ${NAS_SUITES:-bookworm trixie}; do
  "$here/build-nas.sh" "$suite"
done
for script in "$here"/build-*.sh; do
  case "$(basename "$script")" in build-nas.sh|build-all.sh) continue ;; esac
  "$script"
done
