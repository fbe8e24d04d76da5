#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create, resize, activate or remove a swap file, on ext4, xfs and btrfs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: swapfile
short_description: Manage a swap file (size, activation, priority) safely on ext4, xfs and btrfs
version_added: 0.1.0
description:
  - Makes the file at O(path) a swap file of O(size) and turns it on, in one idempotent step.
    Same size and active means no change; another size means swapoff, recreate, swapon.
  - On btrfs the file is created with copy-on-write disabled (C(btrfs filesystem mkswapfile) when
    btrfs-progs has it, otherwise C(chattr +C) on an empty file before it is filled), as the kernel
    requires; on ext4 it is allocated with fallocate; elsewhere (xfs, ...) it is written out in full.
  - Refuses to create or grow the file when less than O(min_free) would be left free.
  - Never overwrites or deletes a file that has no swap signature unless O(replace_foreign=true).
  - With O(fstab), the file's line in that fstab is kept as C(PATH none swap OPTS 0 0) (exactly one
    line for the file; the others are left as they are), or removed with O(state=absent), so the
    file is on again after a reboot. Swappiness is left to other modules.
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
    description: Absolute path of the swap file.
    type: path
    required: true
  size:
    description:
      - Size, as bytes or a human-readable size such as C(4G), C(4GiB), C(512M).
      - Rounded down to whole pages. Required when O(state=present).
    type: str
  state:
    description: C(present) makes and turns on the swap file; C(absent) turns it off and removes it.
    type: str
    choices: [present, absent]
    default: present
  active:
    description: Whether the swap file is turned on (C(present) only).
    type: bool
    default: true
  priority:
    description: Swap priority (-1 to 32767); unset leaves the kernel's choice.
    type: int
  min_free:
    description: Bytes (or a human-readable size) that must stay free on the filesystem afterwards.
    type: str
    default: "1G"
  replace_foreign:
    description: Allow replacing or removing a file at O(path) that is not a swap file.
    type: bool
    default: false
  fstab:
    description: The fstab file to keep the swap file's line in (usually C(/etc/fstab)); unset leaves every fstab alone.
    type: path
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: A 4 GiB swap file
  nasai.stack.swapfile:
    path: /swapfile
    size: 4G
"""

RETURN = r"""
size:
  description: Size of the swap file in bytes (0 when absent).
  returned: always
  type: int
active:
  description: Whether the file is in use as swap.
  returned: always
  type: bool
fstype:
  description: Filesystem holding the file.
  returned: always
  type: str
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
"""

import ctypes
import errno
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.host import (
    fstab_entry, fstab_lines, mount_of, read_text, write_in_place)

SWAP_MAGIC = (b"SWAPSPACE2", b"SWAP-SPACE")
UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
CHUNK = 1 << 20
# Filesystems the kernel cannot swap to a file on (zfs: use a zvol; overlay: a container's root).
NO_SWAP_FILESYSTEMS = {"zfs", "tmpfs", "ramfs", "overlay", "nfs", "nfs4", "cifs", "smb3", "fuse", "squashfs"}


def parse_size(text):
    """Bytes from `4G`, `4GiB`, `4 GB`, `512M` or a plain number of bytes; None if not a size.

    Units are binary: a NAS admin writing 4G means 4 GiB, as fallocate and mkswap do.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        return None
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def page_size():
    return os.sysconf("SC_PAGE_SIZE")


def has_swap_signature(path):
    """The swap magic sits in the last 10 bytes of the first page."""
    try:
        with open(path, "rb") as handle:
            handle.seek(page_size() - 10)
            return handle.read(10) in SWAP_MAGIC
    except OSError:
        return False


def active_swaps():
    """{path: [priority, ...]} from /proc/swaps.

    The table is global to the machine and shows each file by the path its own mount namespace
    gave it, so two containers may both list /swapfile: a path here proves nothing alone.
    """
    swaps = {}
    with open("/proc/swaps", encoding="utf-8") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 5:
                swaps.setdefault(fields[0].replace("\\040", " "), []).append(int(fields[4]))
    return swaps


def is_active_swap(path, swaps):
    """Whether this very file is in use as swap.

    The kernel refuses to allocate in an active swap file with ETXTBSY, whatever the namespace;
    fallocate(KEEP_SIZE) over the first, already allocated byte changes nothing otherwise.
    """
    if not os.path.isfile(path):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDWR)
    except (OSError, AttributeError):
        return path in swaps
    try:
        keep_size = 1
        if libc.fallocate(fd, keep_size, ctypes.c_longlong(0), ctypes.c_longlong(1)) == 0:
            return False
        code = ctypes.get_errno()
        return code == errno.ETXTBSY or (code in (errno.EOPNOTSUPP, errno.ENOSYS) and path in swaps)
    finally:
        os.close(fd)


def fstab_with(text, path, opts):
    """`text` (an fstab) with exactly one swap line for `path` (opts `opts`), or none when `opts`
    is None; every other line, comments included, stays as it is."""
    return fstab_entry(text, None if opts is None else [path, "none", "swap", opts, "0", "0"], 0, path, "swap")


def filesystem_type(path):
    """Type of the filesystem holding path."""
    return mount_of(os.path.realpath(path), read_text("/proc/mounts", ""))[1]


class SwapFile:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.path = self.params["path"]
        self.actions = []

    def run(self, *args):
        rc, out, err = self.module.run_command(list(args))
        if rc != 0:
            self.module.fail_json(msg="%s failed: %s" % (" ".join(args), (err or out).strip()),
                                  actions=self.actions)
        return out

    def act(self, description, func, *args):
        self.actions.append(description)
        if not self.module.check_mode:
            func(*args)

    def swapoff(self):
        # Fails when memory cannot take back what is swapped out; the message says so.
        self.run("swapoff", self.path)

    def swapon(self):
        args = ["swapon"]
        if self.params["priority"] is not None:
            args += ["--priority", str(self.params["priority"])]
        self.run(*(args + [self.path]))

    def remove(self):
        os.unlink(self.path)

    def create(self, size, fstype):
        """Make the swap file under a temporary name, then rename it into place.

        mkswap refuses a path that /proc/swaps lists, and that table is global: a container's
        neighbour may list the very same path for its own file.
        """
        directory, name = os.path.split(self.path)
        staging = os.path.join(directory, ".%s.nasai-new" % name)
        if os.path.lexists(staging):
            os.unlink(staging)
        try:
            if fstype == "btrfs" and self.btrfs_has_mkswapfile():
                self.run("btrfs", "filesystem", "mkswapfile", "--size", "%dk" % (size // 1024), staging)
            else:
                self.allocate(staging, size, fstype)
                self.run("mkswap", staging)
            os.chmod(staging, 0o600)
            os.rename(staging, self.path)
        except OSError as exc:
            self.module.fail_json(msg="cannot write %s in %s: %s" % (self.path, directory, exc))
        finally:
            if os.path.lexists(staging):
                os.unlink(staging)

    def allocate(self, path, size, fstype):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if fstype == "btrfs":
                # No copy-on-write: must be set while the file is still empty.
                self.run("chattr", "+C", path)
            if fstype == "ext4":
                os.posix_fallocate(fd, 0, size)
            else:
                # xfs and others: fallocate'd extents are "unwritten" and swapon may reject them.
                zeros = bytes(CHUNK)
                left = size
                while left > 0:
                    left -= os.write(fd, zeros[:min(CHUNK, left)])
            os.fsync(fd)
        finally:
            os.close(fd)

    def btrfs_has_mkswapfile(self):
        """btrfs-progs 6.1 and later make a correct swap file themselves."""
        btrfs = self.module.get_bin_path("btrfs")
        if btrfs is None:
            return False
        rc, out, err = self.module.run_command([btrfs, "filesystem", "mkswapfile", "--help"])
        return rc == 0 and "mkswapfile" in (out + err)

    def present(self):
        size = parse_size(self.params["size"])
        if size is None or size <= 0:
            self.module.fail_json(msg="size must be a size such as 4G or 512M, got %r" % self.params["size"])
        size -= size % page_size()
        min_free = parse_size(self.params["min_free"])
        if min_free is None:
            self.module.fail_json(msg="min_free must be a size such as 1G, got %r" % self.params["min_free"])
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            self.module.fail_json(msg="directory %s of the swap file does not exist" % directory)

        exists = os.path.lexists(self.path)
        if exists and not os.path.isfile(self.path):
            self.module.fail_json(msg="%s exists and is not a regular file" % self.path)
        current = os.path.getsize(self.path) if exists else 0
        is_swap = exists and has_swap_signature(self.path)
        if exists and not is_swap and not self.params["replace_foreign"]:
            self.module.fail_json(
                msg="%s exists and is not a swap file; refusing to overwrite it "
                    "(set replace_foreign / swap_file_replace_foreign to allow)" % self.path)
        swaps = active_swaps()
        active = is_swap and is_active_swap(self.path, swaps)
        fstype = filesystem_type(directory)
        if fstype in NO_SWAP_FILESYSTEMS and not (is_swap and active):
            self.module.fail_json(
                msg="%s is on %s, where the kernel cannot use a swap file; choose swap_file_path "
                    "on ext4, xfs or btrfs" % (self.path, fstype))
        before = {"size": current if is_swap else 0, "active": active}

        if not (is_swap and current == size):
            stats = os.statvfs(directory)
            free_after = stats.f_bavail * stats.f_frsize + current - size
            if free_after < min_free:
                self.module.fail_json(
                    msg="not enough space for a %d MiB swap file at %s: %d MiB free now, %d MiB would "
                        "be left and at least %d MiB must stay free (swap_min_free)"
                        % (size >> 20, self.path, (stats.f_bavail * stats.f_frsize) >> 20,
                           max(free_after, 0) >> 20, min_free >> 20))
            if active:
                self.act("swapoff %s" % self.path, self.swapoff)
                active = False
            if exists:
                self.act("remove %s (%d bytes)" % (self.path, current), self.remove)
            self.act("create %s (%d bytes, %s)" % (self.path, size, fstype), self.create, size, fstype)
        elif exists:
            mode = os.stat(self.path).st_mode & 0o7777
            if mode != 0o600:
                self.act("chmod 0600 %s" % self.path, os.chmod, self.path, 0o600)

        wanted_priority = self.params["priority"]
        if active and self.params["active"] and wanted_priority is not None \
                and wanted_priority not in swaps.get(self.path, []):
            self.act("swapoff %s (priority -> %s)" % (self.path, wanted_priority), self.swapoff)
            active = False
        if self.params["active"] and not active:
            self.act("swapon %s" % self.path, self.swapon)
        elif not self.params["active"] and active:
            self.act("swapoff %s" % self.path, self.swapoff)
        after = {"size": size, "active": self.params["active"]}
        return before, after, fstype

    def absent(self):
        exists = os.path.lexists(self.path)
        is_swap = exists and has_swap_signature(self.path)
        # Only a swap-signed file is probed: it has its first page allocated.
        before = {"size": os.path.getsize(self.path) if exists else 0,
                  "active": is_swap and is_active_swap(self.path, active_swaps())}
        if exists and not is_swap and not self.params["replace_foreign"]:
            self.module.fail_json(
                msg="%s is not a swap file; refusing to delete it "
                    "(set replace_foreign / swap_file_replace_foreign to allow)" % self.path)
        if before["active"]:
            self.act("swapoff %s" % self.path, self.swapoff)
        if exists:
            self.act("remove %s" % self.path, self.remove)
        fstype = filesystem_type(os.path.dirname(self.path)) if os.path.isdir(os.path.dirname(self.path)) \
            else "unknown"
        return before, {"size": 0, "active": False}, fstype


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "size": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "active": {"type": "bool", "default": True},
            "priority": {"type": "int"},
            "min_free": {"type": "str", "default": "1G"},
            "replace_foreign": {"type": "bool", "default": False},
            "fstab": {"type": "path"},
        },
        required_if=[("state", "present", ("size",))],
        supports_check_mode=True,
    )
    if not os.path.isabs(module.params["path"]):
        module.fail_json(msg="path must be absolute, got %r" % module.params["path"])
    priority = module.params["priority"]
    if priority is not None and not -1 <= priority <= 32767:
        module.fail_json(msg="priority must be between -1 and 32767, got %d" % priority)

    swap = SwapFile(module)
    if module.params["state"] == "present":
        before, after, fstype = swap.present()
    else:
        before, after, fstype = swap.absent()
    fstab = module.params["fstab"]
    if fstab:
        current = read_text(fstab, "")
        opts = None
        if module.params["state"] == "present":
            opts = "sw" if priority is None else "sw,pri=%d" % priority
        wanted = fstab_with(current, swap.path, opts)
        before["fstab"] = fstab_lines(current, 0, swap.path, "swap")
        after["fstab"] = fstab_lines(wanted, 0, swap.path, "swap")
        if wanted != current:
            swap.act("%s the line of %s in %s" % ("write" if opts else "remove", swap.path, fstab),
                     write_in_place, fstab, wanted)
    module.exit_json(
        changed=bool(swap.actions), actions=swap.actions, size=after["size"], active=after["active"],
        fstype=fstype, diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()
