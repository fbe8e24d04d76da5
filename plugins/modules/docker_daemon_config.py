#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge settings into the Docker engine's daemon.json, validated before it replaces the file."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge settings into Docker's daemon.json and validate it before writing
version_added: 0.1.0
description:
  - Compares the settings with the current file as parsed JSON, so formatting alone is no change.
  - With O(keep_unmanaged=true), keys of the current file that O(settings) does not name are kept;
    a key whose value is null in O(settings) is removed.
  - The new content is written to a temporary file and checked with C(dockerd --validate) when
    O(dockerd) is given and supports it (Docker 23 and later); otherwise only as JSON. An invalid
    configuration fails the task and leaves the current file untouched.
  - A current file that is not valid JSON is never overwritten; the task fails and says so.
  - The previous file is kept as a timestamped backup when O(backup=true).
  - Restarting the engine is left to the caller (a handler).
attributes:
  check_mode:
    support: full
    details:
      - The new content is still validated in check mode, from a temporary file beside O(path)
        that is removed again.
  diff_mode:
    support: partial
    details:
      - The diff shows the file's text; a change of O(mode) alone comes without one.
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  path:
    description: Path of daemon.json.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description: Settings to set; a null value removes the key.
    type: dict
    required: true
  keep_unmanaged:
    description: Keep keys of the current file that O(settings) does not name.
    type: bool
    default: true
  dockerd:
    description: Path of dockerd, used to validate the new file; omit to check JSON only.
    type: path
  backup:
    description: Keep a timestamped copy of the previous file.
    type: bool
    default: true
  mode:
    description: File mode of daemon.json.
    type: str
    default: "0644"
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Log rotation and live-restore
  nasai.stack.docker_daemon_config:
    settings:
      log-driver: json-file
      log-opts: {max-size: 10m, max-file: "3"}
      live-restore: true
      debug: null   # removed if present
    dockerd: /usr/sbin/dockerd
"""

RETURN = r"""
settings:
  description: The settings the file holds afterwards (or would, in check mode).
  returned: always
  type: dict
previous:
  description: The settings the file held before.
  returned: always
  type: dict
validated_by:
  description: How the new content was checked, C(dockerd), C(json), or null when unchanged.
  returned: always
  type: str
backup_file:
  description: The backup of the previous file, when one was made.
  returned: changed and a previous file existed
  type: str
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


def merge(current, settings, keep_unmanaged):
    merged = dict(current) if keep_unmanaged else {}
    for key, value in settings.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def render(settings):
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def validate_with_dockerd(module, dockerd, candidate):
    """(ok, message, supported): `dockerd --validate` where the engine has it (Docker 23+)."""
    rc, out, err = module.run_command([dockerd, "--validate", "--config-file", candidate])
    text = (out + err).strip()
    if rc != 0 and "unknown flag: --validate" in text:
        return True, text, False
    return rc == 0, text, True


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "settings": {"type": "dict", "required": True},
            "keep_unmanaged": {"type": "bool", "default": True},
            "dockerd": {"type": "path"},
            "backup": {"type": "bool", "default": True},
            "mode": {"type": "str", "default": "0644"},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    before_text = ""
    current = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            before_text = handle.read()
        if before_text.strip():
            try:
                current = json.loads(before_text)
            except ValueError as exc:
                module.fail_json(msg="%s is not valid JSON (%s); fix or move it, this role does not "
                                     "overwrite it" % (path, exc))
            if not isinstance(current, dict):
                module.fail_json(msg="%s does not hold a JSON object; fix or move it" % path)

    settings = merge(current, module.params["settings"], module.params["keep_unmanaged"])
    result = {"changed": False, "settings": settings, "previous": current, "validated_by": None}
    if settings == current and os.path.exists(path):
        changed_attrs = module.set_fs_attributes_if_different(
            module.load_file_common_arguments({"path": path, "mode": module.params["mode"]}), False)
        result["changed"] = changed_attrs
        module.exit_json(**result)

    after_text = render(settings)
    result.update(changed=True, diff={"before": before_text, "after": after_text,
                                      "before_header": path, "after_header": path})
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        if module.check_mode:
            result["validated_by"] = "json"
            module.exit_json(**result)
        os.makedirs(directory, 0o755)
    fd, candidate = tempfile.mkstemp(prefix=".daemon.json.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(after_text)
        result["validated_by"] = "json"
        dockerd = module.params["dockerd"]
        if dockerd and os.path.exists(dockerd):
            ok, message, supported = validate_with_dockerd(module, dockerd, candidate)
            if not ok:
                module.fail_json(msg="dockerd rejects the new %s, left unchanged: %s" % (path, message),
                                 rejected=settings, **{k: v for k, v in result.items() if k != "changed"})
            if supported:
                result["validated_by"] = "dockerd"
        if module.check_mode:
            module.exit_json(**result)
        if module.params["backup"] and before_text:
            result["backup_file"] = module.backup_local(path)
        os.chmod(candidate, int(module.params["mode"], 8))
        module.atomic_move(candidate, path)
    finally:
        if os.path.exists(candidate):
            os.unlink(candidate)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
