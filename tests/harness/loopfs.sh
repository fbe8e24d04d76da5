#!/usr/bin/env bash
# Make (up) or remove (down) a small filesystem of a given type on a loop device of the machine,
# so a simulated NAS can bind-mount it: how the swap scenario gets btrfs and xfs next to ext4.
#   loopfs.sh up DIR FSTYPE SIZE    -> DIR/FSTYPE mounted, from DIR/FSTYPE.img
#   loopfs.sh down DIR FSTYPE       -> unmounted and deleted
set -euo pipefail
action=${1:?usage: loopfs.sh up|down DIR FSTYPE [SIZE]}
dir=${2:?}
fstype=${3:?}
mnt="$dir/$fstype"
img="$dir/$fstype.img"
case "$action" in
  up)
    size=${4:?SIZE}
    if mountpoint -q "$mnt"; then exit 0; fi
    mkdir -p "$mnt"
    truncate -s "$size" "$img"
    "mkfs.$fstype" -q "$img" >/dev/null
    mount -o loop "$img" "$mnt"
    echo "mounted $fstype at $mnt"
    ;;
  down)
    if mountpoint -q "$mnt"; then umount "$mnt"; echo "unmounted $mnt"; fi
    rm -f "$img"
    rmdir "$mnt" 2>/dev/null || true
    ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
