#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Say which filesystem (medium) each path is on, and how much room it has: the backup role proves
with it that its local repository sits on another medium than the data it backs up."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: path_media
short_description: The filesystem each path is on, with its mount point, type and free space
version_added: 0.4.0
description:
  - For each path of O(paths), finds the path itself or, when it does not exist yet, its nearest
    existing parent, and reports the filesystem that holds it (device number, mount point, type,
    source, the space free and in all).
  - Two paths on the same device number are on the same filesystem, however they are named (bind
    mounts, symbolic links).
  - Only reads; changes nothing.
attributes:
  check_mode:
    support: full
    details:
      - It only reads, so check mode runs it as usual.
  diff_mode:
    support: none
  idempotent:
    description: It changes nothing.
    support: full
  platform:
    platforms: posix
options:
  paths:
    description: Absolute paths.
    type: list
    elements: path
    required: true
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Where the data and the backup repository live
  nasai.stack.path_media:
    paths: [/srv/data/container, /srv/backup/restic]
  register: media
"""

RETURN = r"""
media:
  description: One entry per path, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path asked about.
      type: str
      returned: always
    exists:
      description: Whether the path itself exists.
      type: bool
      returned: always
    anchor:
      description: The path or its nearest existing parent, with links resolved.
      type: str
      returned: always
    device:
      description: Device number of the filesystem (st_dev).
      type: int
      returned: always
    mount_point:
      description: Where that filesystem is mounted.
      type: str
      returned: always
    fstype:
      description: Its type, such as ext4, btrfs or nfs4.
      type: str
      returned: always
    source:
      description: What is mounted there, a device or a share.
      type: str
      returned: always
    free_bytes:
      description: Space free for an unprivileged user.
      type: int
      returned: always
    size_bytes:
      description: Size of the filesystem.
      type: int
      returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.host import mount_entry, nearest_existing, read_text


def describe(path, mounts_text):
    """The filesystem holding `path`, or its nearest existing parent (links resolved), from
    /proc/mounts' text."""
    anchor = os.path.realpath(nearest_existing(os.path.abspath(path)))
    stat = os.stat(anchor)
    vfs = os.statvfs(anchor)
    point, fstype, source = mount_entry(anchor, mounts_text)
    return {
        "path": path,
        "exists": os.path.exists(path),
        "anchor": anchor,
        "device": stat.st_dev,
        "mount_point": point,
        "fstype": fstype,
        "source": source,
        "free_bytes": vfs.f_bavail * vfs.f_frsize,
        "size_bytes": vfs.f_blocks * vfs.f_frsize,
    }


def main():
    module = AnsibleModule(argument_spec={"paths": {"type": "list", "elements": "path", "required": True}},
                           supports_check_mode=True)
    bad = [p for p in module.params["paths"] if not os.path.isabs(p)]
    if bad:
        module.fail_json(msg="path_media needs absolute paths, got: %s" % ", ".join(bad))
    mounts = read_text("/proc/mounts", "")
    module.exit_json(changed=False, media=[describe(p, mounts) for p in module.params["paths"]])


if __name__ == "__main__":
    main()
