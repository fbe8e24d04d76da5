#!/usr/bin/env bash
# Build the userspace NFS server image of the nfs_models scenario (nfs-ganesha + VFS + rpcbind)
# FROM the simulated NAS, cached by its recipe (tests/images/lib.sh): nasai/nfs-server:latest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
nasai_build_on nfs-server nasai/nfs-server:latest nasai/nas:bookworm "$here/nfs-server"
