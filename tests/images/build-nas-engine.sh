#!/usr/bin/env bash
# Build the simulated NAS with its own Docker engine FROM nasai/nas:SUITE, cached by its recipe
# (lib.sh): nasai/nas-engine:<suite>.
#   tests/images/build-nas-engine.sh [bookworm|trixie]   (default bookworm)
set -euo pipefail
suite=${1:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
nasai_build_on nas-engine "nasai/nas-engine:${suite}" "nasai/nas:${suite}" "$here/nas-engine"
