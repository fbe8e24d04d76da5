#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tell whether this kernel can mount NFS, serve NFS, and whether SELinux is on, without loading
anything."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nfs_support
short_description: Tell whether the running kernel has an NFS client, an NFS server and SELinux
version_added: 0.1.0
description:
  - Reads, without changing anything (no C(modprobe)), whether the running kernel can mount NFS
    and run nfsd, so a role can render a mount or an export it cannot activate and say why.
  - A filesystem counts as available when C(/proc/filesystems) lists it (built in or already
    loaded) or when the kernel's module tree (C(/lib/modules/<release>)) holds its module,
    which the kernel loads on first use.
  - SELinux is reported from C(/sys/fs/selinux), systemd from C(/run/systemd/system).
attributes:
  check_mode:
    support: full
    details:
      - It only reads, so check mode runs it as usual.
  diff_mode:
    support: N/A
    details:
      - It changes nothing.
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  mount_path:
    description:
      - A path to report the mount of (the mount point holding it and its filesystem type), such as
        where a share is to be mounted.
    type: path
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Can this kernel mount NFS?
  nasai.stack.nfs_support:
  register: nfs

- name: Say so
  ansible.builtin.debug:
    msg: "{{ nfs.client.reason }}"
  when: not nfs.client.supported
"""

RETURN = r"""
kernel_release:
  description: C(uname -r) of the running kernel.
  returned: always
  type: str
  sample: 6.1.0-18-amd64
client:
  description: Whether the kernel can mount NFS, and how that was told.
  returned: always
  type: dict
  sample: {supported: false, filesystems: [], modules: [],
           reason: "kernel 6.1.0 has no NFS client: ..."}
server:
  description: Whether the kernel can run nfsd, and how that was told.
  returned: always
  type: dict
  sample: {supported: true, filesystems: [nfsd], modules: [], reason: "nfsd in /proc/filesystems"}
selinux:
  description: Whether SELinux is enabled and enforcing.
  returned: always
  type: dict
  sample: {enabled: false, enforcing: false}
systemd:
  description: Whether systemd runs the host (it then reads fstab through its generator).
  returned: always
  type: bool
  sample: true
mount:
  description: The mount holding O(mount_path) (C(point), C(fstype)), from C(/proc/mounts).
  returned: when O(mount_path) is given
  type: dict
  sample: {point: /srv/dev-disk-by-label-data, fstype: ext4}
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.host import mount_of
from ansible_collections.nasai.stack.plugins.module_utils.host import read_text as host_read_text

# Filesystem names and module paths (relative to /lib/modules/<release>/kernel) of each side.
CLIENT = {"filesystems": ("nfs", "nfs4"), "module": "fs/nfs/nfs.ko"}
SERVER = {"filesystems": ("nfsd",), "module": "fs/nfsd/nfsd.ko"}


def read_text(path):
    return host_read_text(path, "")


def proc_filesystems(root="/"):
    """Names of the filesystems the kernel knows now (the last field of each line)."""
    return {line.split()[-1] for line in read_text(os.path.join(root, "proc/filesystems")).splitlines()
            if line.strip()}


def module_files(release, root="/"):
    """Module paths (kernel/...) built in or loadable for this kernel, from modules.builtin/.dep."""
    base = os.path.join(root, "lib/modules", release)
    found = set()
    for name in ("modules.builtin", "modules.dep"):
        for line in read_text(os.path.join(base, name)).splitlines():
            path = line.split(":", 1)[0].strip()
            if path:
                # nfs.ko, nfs.ko.xz, nfs.ko.zst all count as the same module.
                found.add(re.sub(r"\.ko(\.\w+)?$", ".ko", path))
    return found


def side(spec, release, filesystems, modules, what):
    listed = sorted(set(spec["filesystems"]) & filesystems)
    module = "kernel/" + spec["module"]
    loadable = sorted(m for m in modules if m == module)
    if listed:
        reason = f"{', '.join(listed)} in /proc/filesystems"
    elif loadable:
        reason = f"module {module} available in /lib/modules/{release}"
    else:
        reason = (f"kernel {release} has no {what}: {' or '.join(spec['filesystems'])} is not in "
                  f"/proc/filesystems and /lib/modules/{release} has no {module}")
    return {"supported": bool(listed or loadable), "filesystems": listed, "modules": loadable,
            "reason": reason}


def selinux_state(root="/"):
    base = os.path.join(root, "sys/fs/selinux")
    enforce = read_text(os.path.join(base, "enforce")).strip()
    return {"enabled": os.path.isdir(base) and enforce != "", "enforcing": enforce == "1"}


def support(root="/", release=None):
    release = release or os.uname().release
    filesystems = proc_filesystems(root)
    modules = module_files(release, root)
    return {
        "kernel_release": release,
        "client": side(CLIENT, release, filesystems, modules, "NFS client"),
        "server": side(SERVER, release, filesystems, modules, "NFS server (nfsd)"),
        "selinux": selinux_state(root),
        "systemd": os.path.isdir(os.path.join(root, "run/systemd/system")),
    }


def main():
    module = AnsibleModule(argument_spec={"mount_path": {"type": "path"}}, supports_check_mode=True)
    result = support()
    if module.params["mount_path"]:
        point, fstype = mount_of(os.path.normpath(module.params["mount_path"]), host_read_text("/proc/mounts") or "")
        result["mount"] = {"point": point, "fstype": fstype}
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
