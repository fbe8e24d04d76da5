#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, and create or update, many small files and directories in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_files
short_description: Read, create and update a set of directories and small files in one round trip
version_added: 0.2.0
description:
  - The stack's project directory holds a few dozen small files and directories (configuration
    rendered on the controller, certificates, generated secrets). One call per file costs a round
    trip each on every rerun; this module handles them all in one, with the same guarantees as
    M(ansible.builtin.file) and M(ansible.builtin.copy) for what it covers.
  - Directories are created (with their parents) and get the owner, group and mode given; their
    contents are never touched.
  - Files are written atomically (a temporary file in the same directory, then a rename) when
    their content differs, and get the owner, group and mode given. C(force=false) writes a file
    only when it does not exist (a generated secret is never replaced).
  - O(read) returns the text of files (null for missing ones) without changing anything.
  - Paths may start with C(~user/), the home directory of a user on the host; a user the host does
    not have fails the module, naming the user.
  - Returns the SHA-1 of every file of O(files), as it is after the call.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - For O(secrets) the diff gives the size of the content, never the content.
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  directories:
    description:
      - Directories, each C(path) with optional C(owner), C(group) (names or numbers) and C(mode) (octal string).
      - One created for an C(owner) without a C(group) gets the owner's primary group.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory (C(~user/) for a user's home).
        type: path
        required: true
      owner:
        description: Owner (name or number); unset leaves it.
        type: str
      group:
        description: Group (name or number); unset leaves it.
        type: str
      mode:
        description: Mode as an octal string such as C("0755"); unset leaves it.
        type: str
  files:
    description: Files whose content may show in a diff.
    type: list
    elements: dict
    default: []
    suboptions: &file_options
      path:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The file's text.
        type: str
        default: ""
      owner:
        description: Owner (name or number); unset leaves it.
        type: str
      group:
        description: Group (name or number); unset leaves it (a new file with an O(files[].owner) gets the owner's primary group).
        type: str
      mode:
        description: Mode as an octal string such as C("0640"); unset leaves it (new files get 0600).
        type: str
      force:
        description: Replace the content of an existing file; false only creates missing files.
        type: bool
        default: true
  secrets:
    description:
      - Files whose content is secret (keys, passwords, configuration holding them), with the same
        fields as O(files). Their content never shows in a diff or a log; the diff gives the size.
    type: list
    elements: dict
    default: []
    suboptions: *file_options
  read:
    description: Files whose text to return in RV(contents); RV(exists) tells which of them exist (directories too).
    type: list
    elements: path
    default: []
  absent:
    description:
      - Paths to remove, after the directories and files above are handled. A file or link is
        removed; a directory only when it is empty, unless C(recurse) is true (for directories the
        caller owns entirely).
      - Missing paths are fine. A non-empty directory without C(recurse) is left and named in RV(kept).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      recurse:
        description: Remove a directory with everything in it.
        type: bool
        default: false
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: The project's directories and configuration, in one call
  nasai.stack.stack_files:
    directories:
      - {path: /srv/nasai/services/config, owner: root, group: root, mode: "0755"}
    files:
      - path: /srv/nasai/services/config/proxy/haproxy.cfg
        content: "{{ lookup('ansible.builtin.template', 'haproxy.cfg.j2') }}"
        mode: "0644"
"""

RETURN = r"""
contents:
  description: The text of each file of O(read), null where it does not exist.
  returned: always
  type: dict
checksums:
  description: SHA-1 of each file of O(files) and O(secrets) after the call (of the content it would have, in check mode).
  returned: always
  type: dict
exists:
  description: For each path of O(read), whether it exists (as a file, directory or link), before any change.
  returned: always
  type: dict
owners:
  description: For each path of O(read) that exists, its numeric C(uid:gid) before any change (a link's own).
  returned: always
  type: dict
  sample: {/srv/data/files: "1000:1000"}
kept:
  description: Directories of O(absent) left because they are not empty.
  returned: always
  type: list
  elements: str
changed_paths:
  description: The directories and files created, changed or removed (or that would be).
  returned: always
  type: list
  elements: str
"""

import grp
import hashlib
import os
import pwd
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nasai.stack.plugins.module_utils.host import apply_attrs, write_atomic


def resolve_id(value, lookup, kind):
    """Numeric id of a user or group given by name or number; None when not given."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return lookup(text)
    except KeyError:
        raise ValueError("no %s named %s on the host" % (kind, text))


def wanted_attrs(item, new=False):
    """(uid, gid, mode) wanted for a path; a `new` one with an owner but no group gets the owner's primary group."""
    uid = resolve_id(item.get("owner"), lambda n: pwd.getpwnam(n).pw_uid, "user")
    gid = resolve_id(item.get("group"), lambda n: grp.getgrnam(n).gr_gid, "group")
    if new and gid is None and uid is not None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = None
    mode = int(str(item["mode"]), 8) if item.get("mode") is not None else None
    return uid, gid, mode


def attrs_differ(st, uid, gid, mode):
    """Which of owner, group and mode differ from a stat result."""
    out = []
    if uid is not None and st.st_uid != uid:
        out.append("owner")
    if gid is not None and st.st_gid != gid:
        out.append("group")
    if mode is not None and (st.st_mode & 0o7777) != mode:
        out.append("mode")
    return out


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


def remove(path, recurse, check):
    """Remove a file, link or (empty, or with `recurse` any) directory: 'removed', 'kept' (a
    directory not empty) or '' (nothing there)."""
    if not os.path.lexists(path):
        return ""
    if os.path.isdir(path) and not os.path.islink(path):
        if not recurse and os.listdir(path):
            return "kept"
        if not check:
            if recurse:
                shutil.rmtree(path)
            else:
                os.rmdir(path)
        return "removed"
    if not check:
        os.unlink(path)
    return "removed"


def _file_options(secret):
    return {
        "path": {"type": "path", "required": True},
        "content": {"type": "str", "default": "", "no_log": secret},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "str"},
        "force": {"type": "bool", "default": True},
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [],
                            "options": {"path": {"type": "path", "required": True}, "owner": {"type": "str"},
                                        "group": {"type": "str"}, "mode": {"type": "str"}}},
            "files": {"type": "list", "elements": "dict", "default": [], "options": _file_options(False)},
            # Not secret itself (paths and modes show in results); each entry's content is no_log.
            "secrets": {"type": "list", "elements": "dict", "default": [], "no_log": False,
                        "options": _file_options(True)},
            "read": {"type": "list", "elements": "path", "default": []},
            "absent": {"type": "list", "elements": "dict", "default": [],
                       "options": {"path": {"type": "path", "required": True},
                                   "recurse": {"type": "bool", "default": False}}},
        },
        supports_check_mode=True,
    )
    p = module.params
    check = module.check_mode
    # A ~user path that did not expand names a user the host does not have.
    for path in p["read"] + [i["path"] for key in ("directories", "files", "secrets", "absent") for i in p[key]]:
        if str(path).startswith("~"):
            module.fail_json(msg="no user named %s on the host (path %s)" % (str(path)[1:].split("/", maxsplit=1)[0], path))
    changed, before, after = [], [], []
    contents, exists, owners, kept = {}, {}, {}, []
    for path in p["read"]:
        data = read_bytes(path)
        contents[path] = None if data is None else data.decode("utf-8", errors="replace")
        exists[path] = os.path.lexists(path)
        if exists[path]:
            st = os.lstat(path)
            owners[path] = "%d:%d" % (st.st_uid, st.st_gid)

    try:
        for item in p["directories"]:
            path = item["path"]
            uid, gid, mode = wanted_attrs(item, new=not os.path.isdir(path))
            if not os.path.isdir(path):
                if os.path.lexists(path):
                    module.fail_json(msg="%s exists and is not a directory" % path)
                changed.append(path)
                before.append("%s: absent" % path)
                after.append("%s: directory" % path)
                if not check:
                    os.makedirs(path)
                    apply_attrs(path, uid, gid, mode)
                continue
            differ = attrs_differ(os.stat(path), uid, gid, mode)
            if differ:
                changed.append(path)
                st = os.stat(path)
                before.append("%s: %s:%s %o" % (path, st.st_uid, st.st_gid, st.st_mode & 0o7777))
                after.append("%s: %s:%s %s" % (path, uid, gid, item.get("mode")))
                if not check:
                    apply_attrs(path, uid, gid, mode)

        checksums = {}
        for secret, item in [(False, f) for f in p["files"]] + [(True, f) for f in p["secrets"]]:
            path = item["path"]
            data = (item.get("content") or "").encode("utf-8")
            current = read_bytes(path)
            uid, gid, mode = wanted_attrs(item, new=current is None)
            if current is not None and item.get("force") is False:
                data = current
            checksums[path] = hashlib.sha1(data).hexdigest()
            if current is None or current != data:
                changed.append(path)
                old = "" if current is None else current.decode("utf-8", errors="replace")
                new = data.decode("utf-8", errors="replace")
                if secret:
                    old = "" if current is None else "(secret, %d bytes)\n" % len(current)
                    new = "(secret, %d bytes)\n" % len(data)
                before.append("# %s\n%s" % (path, old))
                after.append("# %s\n%s" % (path, new))
                if not check:
                    if not os.path.isdir(os.path.dirname(path)):
                        os.makedirs(os.path.dirname(path))
                    write_atomic(path, data, uid, gid, mode)
                continue
            differ = attrs_differ(os.stat(path), uid, gid, mode)
            if differ:
                changed.append(path)
                before.append("# %s: %s" % (path, ", ".join(differ)))
                after.append("# %s: %s:%s %s" % (path, uid, gid, item.get("mode")))
                if not check:
                    apply_attrs(path, uid, gid, mode)
        for item in p["absent"]:
            done = remove(item["path"], item["recurse"], check)
            if done == "removed":
                changed.append(item["path"])
                before.append("%s: present" % item["path"])
                after.append("%s: absent" % item["path"])
            elif done == "kept":
                kept.append(item["path"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc), changed_paths=changed)

    result = {"changed": bool(changed), "contents": contents, "exists": exists, "owners": owners, "kept": kept,
              "checksums": checksums, "changed_paths": changed}
    if module._diff and changed:
        result["diff"] = {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
