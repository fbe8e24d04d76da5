#!/usr/bin/env bash
# Build the backup role's off-site target FROM the Debian 13 simulated NAS (restic-rest-server is
# in trixie only), cached by its recipe (lib.sh): nasai/offsite:trixie, a restic REST server on
# 8000 and an SFTP server on 22.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
nasai_build_on offsite nasai/offsite:trixie nasai/nas:trixie "$here/offsite"
