#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A file system's line in fstab, and whether it is mounted, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fstab_mount
short_description: Keep a file system's fstab line and mount it (or unmount it, or remove the line)
version_added: 0.2.0
description:
  - Keeps exactly one line for O(path) in O(fstab), C(SRC PATH FSTYPE OPTS DUMP PASSNO); every other
    line, comments included, is left as it is, and an equal line (whatever its spacing) is not rewritten.
  - Mounts with C(mount PATH) when O(state=mounted) and it is not mounted yet; a line whose options
    changed while mounted is applied with C(mount -o remount PATH).
  - Unmounts with C(umount PATH) for O(state=unmounted) and O(state=absent); the mount point
    directory is never removed.
  - The collection's own replacement for the parts of M(ansible.posix.mount) the roles use, without
    the deprecation warning that module prints on every call with ansible-core 2.19.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  path:
    description: The mount point (absolute).
    type: path
    required: true
  src:
    description: What to mount (a device, C(host:/export), ...). Required unless O(state) is C(unmounted) or C(absent).
    type: str
  fstype:
    description: The file system type. Required unless O(state) is C(unmounted) or C(absent).
    type: str
  opts:
    description: Mount options.
    type: str
    default: defaults
  dump:
    description: The dump field.
    type: str
    default: "0"
  passno:
    description: The fsck pass field.
    type: str
    default: "0"
  state:
    description:
      - C(mounted) writes the line and mounts; C(present) writes the line only (no mount);
        C(unmounted) unmounts and leaves the line; C(absent) unmounts and removes the line.
    type: str
    choices: [mounted, present, unmounted, absent]
    default: mounted
  fstab:
    description: The fstab file.
    type: path
    default: /etc/fstab
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Model files from the NAS's NFS server, read-only
  nasai.stack.fstab_mount:
    src: nas.lan:/srv/models
    path: /srv/models
    fstype: nfs
    opts: vers=4.2,ro,hard,_netdev,nofail
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: str
mounted:
  description: Whether O(path) is a mount point after the call (as it would be, in check mode).
  returned: always
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nasai.stack.plugins.module_utils.host import (
    fstab_entry, fstab_lines, mount_of, read_text, write_in_place)


def is_mounted(path, mounts_text):
    """Whether `path` is itself a mount point in /proc/mounts' text."""
    return mount_of(path, mounts_text)[0] == path


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "src": {"type": "str"},
            "fstype": {"type": "str"},
            "opts": {"type": "str", "default": "defaults"},
            "dump": {"type": "str", "default": "0"},
            "passno": {"type": "str", "default": "0", "no_log": False},
            "state": {"type": "str", "default": "mounted", "choices": ["mounted", "present", "unmounted", "absent"]},
            "fstab": {"type": "path", "default": "/etc/fstab"},
        },
        required_if=[("state", "mounted", ("src", "fstype")), ("state", "present", ("src", "fstype"))],
        supports_check_mode=True,
    )
    p = module.params
    path = os.path.normpath(p["path"])
    if not os.path.isabs(path):
        module.fail_json(msg="path must be absolute, got %r" % p["path"])
    # fstab writes a space in a path as \\040.
    key = path.replace(" ", "\\040")
    actions = []

    def act(description, func, *args):
        actions.append(description)
        if not module.check_mode:
            func(*args)

    def run(*args):
        rc, out, err = module.run_command(list(args))
        if rc != 0:
            module.fail_json(msg="%s failed: %s" % (" ".join(args), (err or out).strip()), actions=actions)

    mounted = is_mounted(path, read_text("/proc/mounts", ""))
    if p["state"] in ("unmounted", "absent") and mounted:
        act("umount %s" % path, run, "umount", path)
        mounted = False

    current = read_text(p["fstab"], "")
    fields = None
    if p["state"] in ("mounted", "present"):
        fields = [p["src"].replace(" ", "\\040"), key, p["fstype"], p["opts"], p["dump"], p["passno"]]
    wanted = current if p["state"] == "unmounted" else fstab_entry(current, fields, 1, key)
    line_changed = wanted != current
    if line_changed:
        act("%s the line of %s in %s" % ("write" if fields else "remove", path, p["fstab"]),
            write_in_place, p["fstab"], wanted)

    if p["state"] == "mounted":
        if not mounted:
            if not os.path.isdir(path):
                module.fail_json(msg="mount point %s is not a directory" % path, actions=actions)
            act("mount %s" % path, run, "mount", path)
            mounted = True
        elif line_changed:
            act("remount %s" % path, run, "mount", "-o", "remount", path)

    module.exit_json(changed=bool(actions), actions=actions, mounted=mounted,
                     diff={"before": "\n".join(fstab_lines(current, 1, key)) + "\n",
                           "after": "\n".join(fstab_lines(wanted, 1, key)) + "\n"})


if __name__ == "__main__":
    main()
