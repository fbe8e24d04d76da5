#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A named Docker volume with given driver options, through the engine's API socket (stdlib only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_volume
short_description: Keep a named Docker volume with the given driver options, never one that holds data
version_added: 0.2.0
description:
  - Talks to the Docker engine over its Unix socket with the Python standard library only, so it
    runs on appliance NAS whose Python has no C(requests) library.
  - Creates the volume when missing. A volume whose driver or options differ is recreated, since
    options cannot change in place, but only when no container (running or not) uses it, and
    only when it is one of ours (driver C(local) with a C(type) option in O(owned_types)) or
    O(replace_foreign=true); anything else may hold data and is refused with the reason.
  - The same rules hold for O(state=absent). O(check_only=true) applies the refusals without
    changing anything, so a role can refuse before it changes other things.
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
  name:
    description: Volume name.
    type: str
    required: true
  driver:
    description: Volume driver.
    type: str
    default: local
  driver_options:
    description: Driver options (for an NFS volume of the local driver C(type), C(o), C(device)).
    type: dict
    default: {}
  state:
    description: C(present) or C(absent).
    type: str
    choices: [present, absent]
    default: present
  owned_types:
    description: Values of the C(type) option of a local-driver volume that mark it as one this module may replace.
    type: list
    elements: str
    default: [nfs, nfs4]
  replace_foreign:
    description: Allow replacing or removing a volume that is not one of ours (its data is lost).
    type: bool
    default: false
  var_prefix:
    description:
      - Prefix of the user's variables that set O(state) and O(replace_foreign) (such as
        C(nfs_models_docker_volume_)), so a refusal names the variables the user set.
    type: str
    default: ""
  check_only:
    description: Refuse what would be refused, change nothing, and say what would change.
    type: bool
    default: false
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nasai.stack.engine
"""

EXAMPLES = r"""
- name: The model share as a Docker volume
  nasai.stack.stack_volume:
    name: nasai-models
    driver_options: {type: nfs, o: "addr=192.0.2.10,vers=4.2,ro", device: ":/srv/models"}
"""

RETURN = r"""
action:
  description: C(created), C(recreated), C(removed) or C(none) (what was done, or would be).
  returned: always
  type: str
volume:
  description: The volume as the engine describes it before the change, null when it did not exist.
  returned: always
  type: dict
users:
  description: Containers that use the volume.
  returned: always
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.engine import ENGINE_SOCKET_OPTION, Engine, EngineError


def plan(current, state, driver, options):
    """created, recreated, removed or none."""
    if state == "absent":
        return "removed" if current is not None else "none"
    if current is None:
        return "created"
    if current.get("Driver") != driver or (current.get("Options") or {}) != options:
        return "recreated"
    return "none"


def refusal(name, current, action, users, owned_types, replace_foreign, options, prefix=""):
    """Why the action must not happen (a message), or None."""
    if action not in ("recreated", "removed"):
        return None
    opts = current.get("Options") or {}
    foreign = current.get("Driver") != "local" or opts.get("type", "") not in owned_types
    if foreign and not replace_foreign:
        return ("Docker volume %s exists and is not an NFS volume (driver %s, options %s): it may hold "
                "data. Choose another volume name, or set %sreplace_foreign: true to delete it"
                % (name, current.get("Driver"), opts, prefix))
    if users:
        what = ("remove it (%sstate: absent)" % prefix if action == "removed" else
                "recreate it with the NFS options %s (it has %s)" % (json.dumps(options, sort_keys=True),
                                                                     json.dumps(opts, sort_keys=True)))
        return ("Docker volume %s is used by %s, and the settings ask to %s. Stop and remove those "
                "containers (the services role recreates them), then run again; the volume was left unchanged"
                % (name, ", ".join(users), what))
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "driver": {"type": "str", "default": "local"},
            "driver_options": {"type": "dict", "default": {}},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "owned_types": {"type": "list", "elements": "str", "default": ["nfs", "nfs4"]},
            "replace_foreign": {"type": "bool", "default": False},
            "var_prefix": {"type": "str", "default": ""},
            "check_only": {"type": "bool", "default": False},
            "socket": dict(ENGINE_SOCKET_OPTION),
        },
        supports_check_mode=True,
    )
    p = module.params
    options = {k: str(v) for k, v in p["driver_options"].items()}
    engine = Engine(p["socket"])
    try:
        current = engine.volume(p["name"])
        action = plan(current, p["state"], p["driver"], options)
        users = engine.volume_users(p["name"]) if current is not None else []
        why = refusal(p["name"], current, action, users, p["owned_types"], p["replace_foreign"], options,
                      p["var_prefix"])
        if why:
            module.fail_json(msg=why, action=action, volume=current, users=users)
        changed = action != "none" and not p["check_only"]
        if changed and not module.check_mode:
            if action in ("recreated", "removed"):
                engine.remove_volume(p["name"])
            if action in ("created", "recreated"):
                engine.create_volume(p["name"], p["driver"], options)
    except EngineError as exc:
        if exc.status == 0 and p["state"] == "absent":
            # No engine, so no volume to remove.
            module.exit_json(changed=False, action="none", volume=None, users=[], msg=str(exc))
        module.fail_json(msg="%s: no Docker engine answers; run nasai.stack.docker first (or manage no "
                             "volume here)" % exc)
    result = {"changed": changed, "action": action, "volume": current, "users": users}
    if module._diff and changed:
        result["diff"] = {
            "before": json.dumps(None if current is None else {"driver": current.get("Driver"),
                                                               "options": current.get("Options")}, indent=2) + "\n",
            "after": json.dumps(None if action == "removed" else {"driver": p["driver"], "options": options},
                                indent=2) + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
