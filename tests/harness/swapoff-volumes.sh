#!/usr/bin/env bash
# Turn off, from the machine, every active swap file stored on CONTAINER's Docker volumes and on
# the test filesystems bind-mounted from /var/lib/nasai-test (tests/harness/loopfs.sh).
# /proc/swaps shows such files by their path inside the container, so match by file instead:
# swapoff on the volume's host path releases the same inode. Prints each file it turned off.
set -u
container=${1:?usage: swapoff-volumes.sh CONTAINER}
[ "$(wc -l < /proc/swaps)" -gt 1 ] || exit 0
docker inspect -f '{{range .Mounts}}{{println .Type .Source}}{{end}}' "$container" 2>/dev/null |
  while read -r type src; do
  case "$type:$src" in volume:*|bind:/var/lib/nasai-test/*) ;; *) continue ;; esac
  [ -d "$src" ] || continue
  find "$src" -xdev -maxdepth 3 -type f -size +39k -print0 | while IFS= read -r -d '' f; do
    swapoff "$f" 2>/dev/null && echo "swapoff $f"
  done
done
exit 0
