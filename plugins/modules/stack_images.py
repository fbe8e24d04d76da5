#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report, pull or load the images the stack needs, through the engine's API socket (stdlib only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_images
short_description: Make sure the engine has a set of images, from a registry or from offline archives
version_added: 0.2.0
description:
  - Talks to the Docker engine over its Unix socket with the Python standard library only, so it
    runs on appliance NAS whose Python has no C(requests) library.
  - Without O(pull) or O(load) it only reports which of O(names) the engine lacks.
  - With O(pull=true) it pulls the missing ones; with O(load) it loads those C(docker save)
    archives (paths on the host) when any image is missing, then fails naming every image the
    archives did not bring.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  names:
    description: Image references (C(repository:tag)); C(docker.io/library/) prefixes may be left out.
    type: list
    elements: str
    required: true
  pull:
    description: Pull the missing images from their registries.
    type: bool
    default: false
  load:
    description: Archives on the host (C(docker save) output) to load when an image is missing.
    type: list
    elements: path
    default: []
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nasai.stack.engine
"""

EXAMPLES = r"""
- name: Which images are missing
  nasai.stack.stack_images:
    names: [nasai/llama-server:test, nasai/svc-haproxy:test]
  register: images

- name: Load them from the bundle copied to the NAS
  nasai.stack.stack_images:
    names: "{{ images.missing }}"
    load: [/srv/nasai/bundles/nasai-services.tar]
"""

RETURN = r"""
missing:
  description: The images of O(names) the engine lacked when the module started.
  returned: always
  type: list
  elements: str
loaded:
  description: Image names the archives brought (empty when none were loaded).
  returned: always
  type: list
  elements: str
pulled:
  description: Images pulled.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.engine import ENGINE_SOCKET_OPTION, Engine, EngineError


def main():
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "pull": {"type": "bool", "default": False},
            "load": {"type": "list", "elements": "path", "default": []},
            "socket": dict(ENGINE_SOCKET_OPTION),
        },
        supports_check_mode=True,
    )
    p = module.params
    engine = Engine(p["socket"])
    result = {"changed": False, "missing": [], "pulled": [], "loaded": []}
    try:
        missing = [name for name in p["names"] if engine.image(name) is None]
        result["missing"] = missing
        if missing and (p["pull"] or p["load"]):
            result["changed"] = True
            if not module.check_mode:
                for archive in p["load"]:
                    result["loaded"].extend(engine.load(archive))
                if p["pull"]:
                    for name in missing:
                        result["pulled"].append(engine.pull(name))
                still = [name for name in missing if engine.image(name) is None]
                if still:
                    module.fail_json(msg="%s did not bring %s" % (
                        ", ".join(p["load"]) or "pulling", ", ".join(still)), **result)
    except EngineError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
