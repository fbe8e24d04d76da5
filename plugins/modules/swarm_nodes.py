#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roles and labels of a Docker Swarm's nodes, from one of its managers (stdlib only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: swarm_nodes
short_description: Set the role and labels of each node of a Docker Swarm, remove nodes that left
version_added: 0.9.0
description:
  - Runs on a manager; talks to its engine over the Unix socket with the Python standard library only.
  - Each node of O(nodes) gets its role (promoted or demoted, one node at a time, so the managers keep
    their quorum) and its labels. Labels whose key starts with O(owned_prefix) and that are not asked
    for are removed; other labels (set by hand or by another tool) are kept.
  - Nodes of O(remove) are removed from the swarm once they have left it (state C(down)); a node
    still up is refused (it must leave first).
  - Leaving the swarm with no manager is refused; the engine itself refuses a demotion that would
    break the quorum of the managers that are up.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    description: Run a second time with the same options, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  nodes:
    description: "Nodes by id: C(id), C(role) (C(manager) or C(worker)), C(labels) (a dict of strings)."
    type: list
    elements: dict
    default: []
  remove:
    description: Ids of nodes that left the swarm, to remove from its list.
    type: list
    elements: str
    default: []
  owned_prefix:
    description: Label keys with this prefix are the module's own; other keys it never removes.
    type: str
    default: nasai.
  owned_keys:
    description: More label keys the module owns (removed when not asked for).
    type: list
    elements: str
    default: []
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nasai.stack.engine
"""

EXAMPLES = r"""
- name: Roles and labels of the NAS in the swarm
  nasai.stack.swarm_nodes:
    nodes:
      - {id: "{{ node_id }}", role: worker, labels: {ai: "true", nasai.cores: "4"}}
"""

RETURN = r"""
updated:
  description: Ids of the nodes whose role or labels changed (or would).
  returned: always
  type: list
  elements: str
removed:
  description: Ids of the nodes removed (or that would be).
  returned: always
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.engine import ENGINE_SOCKET_OPTION, Engine, EngineError


def wanted_spec(spec, role, labels, owned_prefix, owned_keys):
    """The node's new Spec: its role, the labels asked for, the labels of others kept."""
    new = dict(spec)
    new["Role"] = role or spec.get("Role", "worker")
    kept = {k: v for k, v in (spec.get("Labels") or {}).items()
            if not k.startswith(owned_prefix) and k not in owned_keys and k not in labels}
    new["Labels"] = dict(kept, **{k: str(v) for k, v in labels.items()})
    return new


def quorum_refusal(nodes, wanted_roles):
    """Why the new roles would leave the swarm with no manager (a message), or None. The engine
    itself refuses a demotion that would break the quorum of the managers that are up."""
    if not [n for n in nodes if wanted_roles.get(n["ID"], n["Spec"].get("Role")) == "manager"]:
        return "the swarm would have no manager left: keep at least one in cluster_managers"
    return None


def wait_down(engine, node_id, timeout=60):
    """The node as the managers see it once it is down (it just left), or as last seen."""
    deadline = time.monotonic() + timeout
    while True:
        status, node = engine.call("GET", "/nodes/%s" % node_id, ok=(200, 404))
        if status == 404 or node["Status"].get("State") == "down" or time.monotonic() > deadline:
            return None if status == 404 else node
        time.sleep(1)


def main():
    module = AnsibleModule(
        argument_spec={
            "nodes": {"type": "list", "elements": "dict", "default": []},
            "remove": {"type": "list", "elements": "str", "default": []},
            "owned_prefix": {"type": "str", "default": "nasai."},
            "owned_keys": {"type": "list", "elements": "str", "no_log": False, "default": []},
            "socket": dict(ENGINE_SOCKET_OPTION),
        },
        supports_check_mode=True,
    )
    p = module.params
    engine = Engine(p["socket"])
    result = {"changed": False, "updated": [], "removed": [], "diff": {"before": {}, "after": {}}}
    try:
        nodes = engine.call("GET", "/nodes")[1]
        by_id = {n["ID"]: n for n in nodes}
        # (A node of `remove` already gone from the list is fine: it left and was removed before.)
        unknown = [n.get("id") for n in p["nodes"] if n.get("id") not in by_id]
        if unknown:
            module.fail_json(msg="node(s) %s are not in this swarm" % ", ".join(map(str, unknown)))
        why = quorum_refusal([n for n in nodes if n["ID"] not in p["remove"]],
                             {n["id"]: n.get("role") for n in p["nodes"] if n.get("role")})
        if why:
            module.fail_json(msg=why, **result)
        # Promotions first, then label changes, then demotions: the quorum never shrinks on the way.
        order = {"manager": 0, None: 1, "worker": 2}
        for asked in sorted(p["nodes"], key=lambda n: order.get(n.get("role"), 1)):
            node = by_id[asked["id"]]
            new = wanted_spec(node["Spec"], asked.get("role"), asked.get("labels") or {}, p["owned_prefix"],
                              p["owned_keys"])
            if new == node["Spec"]:
                continue
            name = node["Description"].get("Hostname", node["ID"])
            result["diff"]["before"][name] = {"role": node["Spec"].get("Role"), "labels": node["Spec"].get("Labels") or {}}
            result["diff"]["after"][name] = {"role": new["Role"], "labels": new["Labels"]}
            result["updated"].append(node["ID"])
            if not module.check_mode:
                engine.call("POST", "/nodes/%s/update" % node["ID"], query={"version": node["Version"]["Index"]},
                            body=new)
                if new["Role"] != node["Spec"].get("Role"):
                    # The next role change waits until the swarm has taken this one in.
                    time.sleep(2)
        for node_id in p["remove"]:
            node = by_id.get(node_id)
            if node is not None and node["Status"].get("State") != "down" and not module.check_mode:
                node = wait_down(engine, node_id)
            if node is None:
                continue
            if node["Status"].get("State") != "down" and not module.check_mode:
                module.fail_json(msg="node %s (%s) is still up: it must leave the swarm first"
                                 % (node["Description"].get("Hostname"), node_id), **result)
            result["removed"].append(node_id)
            if not module.check_mode:
                engine.call("DELETE", "/nodes/%s" % node_id, ok=(200, 404))
    except EngineError as exc:
        module.fail_json(msg="the engine refused or failed: %s" % exc, **result)
    result["changed"] = bool(result["updated"] or result["removed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
