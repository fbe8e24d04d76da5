#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""This NAS's membership of a Docker Swarm, through the engine's API socket (stdlib only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: swarm_member
short_description: Read, create, join or leave a Docker Swarm on this NAS's engine
version_added: 0.9.0
description:
  - Talks to the Docker engine over its Unix socket with the Python standard library only, so it
    runs on appliance NAS whose Python has no C(requests) library.
  - O(state=read) changes nothing and says whether the engine is in a swarm, as a manager or not.
  - O(state=present) with O(init=true) creates a swarm when the engine is in none; without it, joins
    the swarm of O(remote_addrs) with O(join_token). An engine already in that swarm is left as it
    is (its role is changed by M(nasai.stack.swarm_nodes) on a manager, not by joining again).
  - An engine in another swarm is refused, never moved, unless O(force_rejoin=true).
  - O(state=absent) leaves the swarm. A manager must be demoted first (the last manager would take
    the swarm's state with it), so it is refused.
  - Join tokens are returned only with O(return_tokens=true) on a manager; run that task with
    C(no_log).
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    description: Run a second time with the same options, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  state:
    description: C(read), C(present) or C(absent).
    type: str
    choices: [read, present, absent]
    default: read
  init:
    description: Create a swarm with this engine as its first manager when it is in none.
    type: bool
    default: false
  advertise_addr:
    description:
      - Address (or interface name) the other nodes reach this one at. Empty picks the interface of
        the default route (the engine refuses to guess on a host with several addresses).
    type: str
    default: ""
  listen_port:
    description: Port of the swarm's management traffic.
    type: int
    default: 2377
  remote_addrs:
    description: Addresses of managers of the swarm to join (C(host) or C(host:port)).
    type: list
    elements: str
    default: []
  join_token:
    description: Worker or manager token of that swarm (it decides the role the node joins with).
    type: str
    default: ""
  force_rejoin:
    description: Leave another swarm this engine is in, to join the one asked for.
    type: bool
    default: false
  return_tokens:
    description: Return the swarm's join tokens (only a manager has them).
    type: bool
    default: false
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nasai.stack.engine
"""

EXAMPLES = r"""
- name: Create the swarm on the first manager
  nasai.stack.swarm_member:
    state: present
    init: true

- name: Join it
  nasai.stack.swarm_member:
    state: present
    remote_addrs: [192.0.2.10]
    join_token: "{{ cluster__tokens.worker }}"
  no_log: true
"""

RETURN = r"""
action:
  description: C(initialised), C(joined), C(rejoined), C(left) or C(none) (what was done, or would be).
  returned: always
  type: str
local_state:
  description: The engine's swarm state before the change (C(inactive), C(pending), C(active), C(error), C(locked)).
  returned: always
  type: str
node_id:
  description: This node's id in the swarm (after the change; empty when in none, or in check mode before joining).
  returned: always
  type: str
node_addr:
  description: The address this node is reached at in the swarm.
  returned: always
  type: str
cluster_id:
  description: The swarm's id (empty when in none).
  returned: always
  type: str
manager:
  description: Whether this node is a manager (after the change).
  returned: always
  type: bool
tokens:
  description: The join tokens C(worker) and C(manager), with O(return_tokens=true) on a manager.
  returned: when asked on a manager
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.engine import ENGINE_SOCKET_OPTION, Engine, EngineError


def default_route_interface(route_table):
    """The interface of the IPv4 default route in /proc/net/route's text, or None."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return fields[0]
    return None


def plan(swarm, state, init, other_swarm, force_rejoin):
    """(action, refusal) from the engine's /info Swarm section and the request; `other_swarm`: the
    engine is active in a swarm none of whose managers is among those asked to join."""
    local = swarm.get("LocalNodeState") or "inactive"
    in_swarm = local in ("active", "pending", "locked", "error")
    if state == "read":
        return "none", None
    if state == "absent":
        if not in_swarm:
            return "none", None
        if swarm.get("ControlAvailable"):
            return None, ("this node is a manager of swarm %s: demote it first (leave it out of cluster_managers "
                          "and run again), so that the managers left keep their quorum"
                          % (swarm.get("Cluster") or {}).get("ID", "?"))
        return "left", None
    if local == "locked":
        return None, "the engine's swarm is locked (autolock): unlock it with `docker swarm unlock` first"
    if not in_swarm:
        return ("initialised" if init else "joined"), None
    current = (swarm.get("Cluster") or {}).get("ID", "")
    if init or not other_swarm or local == "pending":
        return "none", None
    if force_rejoin:
        return "rejoined", None
    return None, ("this engine is in another swarm (%s), not the one asked for: leave it (`docker swarm leave`), "
                  "or set cluster_force_rejoin: true to have it leave and join" % (current or "?"))


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "default": "read", "choices": ["read", "present", "absent"]},
            "init": {"type": "bool", "default": False},
            "advertise_addr": {"type": "str", "default": ""},
            "listen_port": {"type": "int", "default": 2377},
            "remote_addrs": {"type": "list", "elements": "str", "default": []},
            "join_token": {"type": "str", "default": "", "no_log": True},
            "force_rejoin": {"type": "bool", "default": False},
            "return_tokens": {"type": "bool", "default": False},
            "socket": dict(ENGINE_SOCKET_OPTION),
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "present" and not p["init"] and not (p["remote_addrs"] and p["join_token"]):
        module.fail_json(msg="joining a swarm needs remote_addrs and join_token (or init: true)")
    engine = Engine(p["socket"])
    try:
        swarm = engine.call("GET", "/info")[1].get("Swarm") or {}
        # The swarm the join token belongs to is not known before joining; a node in a swarm that
        # lists one of remote_addrs among its managers is in the right one.
        other_swarm = False
        if p["state"] == "present" and not p["init"] and swarm.get("LocalNodeState") == "active":
            managers = {m.get("Addr", "").rsplit(":", 1)[0] for m in swarm.get("RemoteManagers") or []}
            asked = {addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr for addr in p["remote_addrs"]}
            other_swarm = not managers & asked
        action, why = plan(swarm, p["state"], p["init"], other_swarm, p["force_rejoin"])
        result = {"changed": action not in ("none", None), "action": action or "none",
                  "local_state": swarm.get("LocalNodeState") or "inactive"}
        if why:
            module.fail_json(msg=why, **result)
        if result["changed"] and not module.check_mode:
            advertise = p["advertise_addr"]
            if not advertise and action in ("initialised", "joined", "rejoined"):
                with open("/proc/net/route", encoding="utf-8") as routes:
                    advertise = default_route_interface(routes.read()) or ""
            listen = "0.0.0.0:%d" % p["listen_port"]
            if action == "initialised":
                engine.call("POST", "/swarm/init", body={"ListenAddr": listen, "AdvertiseAddr": advertise})
            else:
                if action in ("rejoined", "left"):
                    engine.call("POST", "/swarm/leave", query={"force": "true" if action == "rejoined" else "false"})
                if action != "left":
                    engine.call("POST", "/swarm/join", timeout=120, body={
                        "ListenAddr": listen, "AdvertiseAddr": advertise, "RemoteAddrs": p["remote_addrs"],
                        "JoinToken": p["join_token"]})
            swarm = engine.call("GET", "/info")[1].get("Swarm") or {}
        result.update(node_id=swarm.get("NodeID") or "", node_addr=swarm.get("NodeAddr") or "",
                      cluster_id=(swarm.get("Cluster") or {}).get("ID", ""),
                      manager=bool(swarm.get("ControlAvailable")))
        if p["return_tokens"] and result["manager"]:
            tokens = engine.call("GET", "/swarm")[1].get("JoinTokens") or {}
            result["tokens"] = {"worker": tokens.get("Worker", ""), "manager": tokens.get("Manager", "")}
    except EngineError as exc:
        module.fail_json(msg="the engine refused or failed: %s" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
