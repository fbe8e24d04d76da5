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
    archives did not bring. With O(update=true) it pulls every one of O(names), or loads the
    archives, even when none is missing (a newer image under the same tag), and reports which moved.
  - O(pins) keeps references where they were recorded. A reference that now names another image,
    pulled or loaded outside the stack's update, is pointed back at its pinned image as long as the
    engine still holds it.
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
  update:
    description: Pull every image of O(names) (with O(pull)), or load O(load), even when none is missing.
    type: bool
    default: false
  pins:
    description:
      - Reference to image id (C(sha256:...)) it must name; applied before any pull or load, and ignored
        for a pinned image the engine no longer holds.
    type: dict
    default: {}
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
ids:
  description: The image id (C(sha256:...)) each of O(names) names at the end, null for one still missing.
  returned: always
  type: dict
repo_digests:
  description: The registry digests (C(repository@sha256:...)) of each of O(names), empty for a local or loaded image.
  returned: always
  type: dict
moved:
  description: References of O(names) that name another image than when the module started, C(before) and C(after) ids.
  returned: always
  type: dict
repinned:
  description: References pointed back at their pinned image (O(pins)).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.engine import ENGINE_SOCKET_OPTION, Engine, EngineError


def image_id(engine, name):
    """(id, repo digests) of the image `name` names, (None, []) when the engine lacks it."""
    info = engine.image(name)
    return (info.get("Id"), info.get("RepoDigests") or []) if info else (None, [])


def main():
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "pull": {"type": "bool", "default": False},
            "load": {"type": "list", "elements": "path", "default": []},
            "update": {"type": "bool", "default": False},
            "pins": {"type": "dict", "default": {}},
            "socket": dict(ENGINE_SOCKET_OPTION),
        },
        supports_check_mode=True,
    )
    p = module.params
    engine = Engine(p["socket"])
    result = {"changed": False, "missing": [], "pulled": [], "loaded": [], "ids": {}, "repo_digests": {},
              "moved": {}, "repinned": []}
    try:
        before = {name: image_id(engine, name)[0] for name in p["names"]}
        for name, pinned in sorted((p["pins"] or {}).items()):
            if pinned and before.get(name, pinned) not in (pinned, None) and engine.image(pinned) is not None:
                result["repinned"].append(name)
                result["changed"] = True
                if not module.check_mode:
                    engine.tag(pinned, name)
        missing = [name for name in p["names"] if before[name] is None]
        result["missing"] = missing
        wanted = list(p["names"]) if p["update"] else missing
        if wanted and (p["pull"] or p["load"]) and not module.check_mode:
            for archive in p["load"]:
                result["loaded"].extend(engine.load(archive))
            if p["pull"]:
                for name in wanted:
                    result["pulled"].append(engine.pull(name))
            still = [name for name in missing if engine.image(name) is None]
            if still:
                module.fail_json(msg="%s did not bring %s" % (
                    ", ".join(p["load"]) or "pulling", ", ".join(still)), **result)
        elif missing and (p["pull"] or p["load"]):
            result["changed"] = True
        for name in p["names"]:
            result["ids"][name], result["repo_digests"][name] = image_id(engine, name)
            start = (p["pins"] or {}).get(name) if name in result["repinned"] else before[name]
            if result["ids"][name] != start and not module.check_mode:
                result["moved"][name] = {"before": start, "after": result["ids"][name]}
        result["changed"] = result["changed"] or bool(result["moved"])
    except EngineError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
