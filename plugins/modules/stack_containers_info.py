#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the stack's containers, their health and their quotas, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_containers_info
short_description: Read the state, health and quotas of the stack's containers in one round trip
version_added: 0.2.0
description:
  - Lists the containers that carry a label (by default C(nasai.stack.service), which every
    container of the stack gets) and reads each one's state, health, restart count and the quotas
    the engine gave it, through the engine's API socket with the Python standard library only.
  - One call for the whole stack, where one M(ansible.builtin.uri) per container would cost a round
    trip each. site.yml's summary reads the stack with it.
  - With O(engine), it also says which engine it is and whether it hands CDI devices to containers
    (the services role asks before giving the AI core an NVIDIA GPU).
  - Changes nothing. When the engine does not answer, it does not fail; RV(engine_error) says why
    and RV(containers) is empty.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    description: It only reads.
    support: full
  platform:
    platforms: posix
options:
  label:
    description: The label (C(key) or C(key=value)) the containers must carry.
    type: str
    default: nasai.stack.service
  containers:
    description: Read the containers that carry O(label) (RV(containers)).
    type: bool
    default: true
  engine:
    description: Read the engine's version and whether it reads CDI specs (RV(engine)).
    type: bool
    default: false
  daemon_config:
    description:
      - The engine's C(daemon.json), read for its C(features) when the engine does not report
        whether it reads CDI specs itself (Docker 25-27). Only with O(engine).
    type: path
    default: /etc/docker/daemon.json
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nasai.stack.engine
"""

EXAMPLES = r"""
- name: Read the stack's containers
  nasai.stack.stack_containers_info:
  register: stack

- name: Name the unhealthy ones
  ansible.builtin.debug:
    msg: "{{ stack.containers | rejectattr('health', 'in', ['healthy', '']) | map(attribute='name') }}"
"""

RETURN = r"""
containers:
  description: One entry per container, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The container's name.
      type: str
    service:
      description: Its C(nasai.stack.service) label (empty when it has none).
      type: str
    image:
      description: The image reference it was created from.
      type: str
    state:
      description: The engine's state (C(running), C(exited), C(restarting), ...).
      type: str
    health:
      description: The health check's status (C(healthy), C(unhealthy), C(starting)); empty without one.
      type: str
    restart_count:
      description: How often the engine restarted it since it was created.
      type: int
    memory_bytes:
      description: Memory limit in bytes, 0 for none.
      type: int
    cpus:
      description: CPU quota in CPUs, 0 for none.
      type: float
    cpuset_cpus:
      description: CPUs it may run on, empty for all.
      type: str
    pids_limit:
      description: Maximum number of processes, 0 for none.
      type: int
    security:
      description:
        - What a security audit reads (the CIS Docker Benchmark's container items), C(privileged),
          C(cap_add), C(cap_drop), C(read_only), C(user), C(no_new_privileges), C(network_mode),
          C(pid_mode), C(ipc_mode), C(binds) (host paths mounted), C(binds_writable) (those mounted
          read-write), C(published) (host ports), and
          C(healthcheck) (whether it has one).
      type: dict
engine:
  description:
    - With O(engine), the engine's C(version), C(api_version) and C(cdi), whether it hands CDI devices
      (C(vendor.com/class=name)) to containers; empty without O(engine) or when the engine did not answer.
  returned: always
  type: dict
  sample: {version: "26.1.5+dfsg1", api_version: "1.45", cdi: true}
engine_error:
  description: Why the engine could not be read; empty when it answered.
  returned: always
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nasai.stack.plugins.module_utils.engine import (
    ENGINE_SOCKET_OPTION, Engine, EngineError, engine_cdi)
from ansible_collections.nasai.stack.plugins.module_utils.host import read_text
from ansible_collections.nasai.stack.plugins.module_utils.stack_read import read_stack


def read_engine(engine, daemon_config):
    """The engine's version and whether it reads CDI specs."""
    version = engine.version() or {}
    try:
        settings = json.loads(read_text(daemon_config) or "{}")
    except ValueError:
        settings = {}
    return {"version": version.get("Version", ""), "api_version": version.get("ApiVersion", ""),
            "cdi": engine_cdi(version, engine.info() or {}, settings if isinstance(settings, dict) else {})}


def main():
    module = AnsibleModule(
        argument_spec={
            "label": {"type": "str", "default": "nasai.stack.service"},
            "containers": {"type": "bool", "default": True},
            "engine": {"type": "bool", "default": False},
            "daemon_config": {"type": "path", "default": "/etc/docker/daemon.json"},
            "socket": dict(ENGINE_SOCKET_OPTION),
        },
        supports_check_mode=True,
    )
    engine = Engine(module.params["socket"])
    try:
        containers = read_stack(engine, module.params["label"]) if module.params["containers"] else []
        facts = read_engine(engine, module.params["daemon_config"]) if module.params["engine"] else {}
        error = ""
    except EngineError as exc:
        containers, facts, error = [], {}, str(exc)
    module.exit_json(changed=False, containers=containers, engine=facts, engine_error=error)


if __name__ == "__main__":
    main()
