#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converge the stack's containers in one call, through the engine's API socket (stdlib only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_containers
short_description: Run a set of containers as described, in order, and remove the stack's others
version_added: 0.2.0
description:
  - Talks to the Docker engine over its Unix socket with the Python standard library only, so it
    runs on appliance NAS (Synology DSM, QNAP QTS, TrueNAS SCALE, Unraid) whose Python has no
    C(requests) library, which community.docker's modules need on the managed host.
  - Each container of O(containers) is created from its description when missing, recreated when
    its description or its image changed, started when stopped, and left alone otherwise. What it
    was made from is kept as labels (a hash per field), so a rerun compares without reading every
    setting back and a diff names the fields that changed, never their values.
  - Containers are handled in the order given. A container that is replaced (a new image or setting)
    is waited for until its health check passes (O(wait_healthy)) before the next one. Containers
    created anew start without a wait and are waited for together, before the next container to
    replace or start, or at the end; so a first start costs one wait, not one per container. One with
    C(healthy_before_next) (a log collector the others send their first lines to) is waited for,
    with those created before it, before the next container starts.
  - A container to recreate (a new image or setting) is stopped and kept aside as C(<name>-previous)
    until its replacement passes its health check, then removed; a replacement that does not become
    healthy is removed and the previous container is put back and started (a rollback), and the task
    fails saying so. Replicas are handled one at a time, so the others keep serving meanwhile.
  - A container with C(start_first) (a reverse proxy in host mode) is replaced the other way round.
    Its replacement starts beside it as C(<name>-next), both listening on the same ports through
    C(SO_REUSEPORT), and must become healthy. Only then does the running one get its C(stop_signal),
    a graceful stop that finishes its connections for at most O(drain_timeout) seconds, and go; the
    replacement takes its name. So no moment has nothing listening. A replacement that does not
    become healthy beside it (a port held by an older configuration, a broken image) is removed, and
    the container is then replaced the usual way below.
  - One-shot containers (O(oneshots)) run to completion once, before the others, while the path
    they name in C(creates) does not exist on the host.
  - Containers that carry the label O(prune_label) but are not in O(containers) are removed
    (never their volumes or bind-mounted data), except those whose name matches O(prune_keep).
attributes:
  check_mode:
    support: full
    details:
      - A missing image or required volume fails the task only outside check mode.
  diff_mode:
    support: full
    details:
      - The diff names the fields of a container that changed, never their values.
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: partial
    details:
      - A one-shot container of O(oneshots) runs again, and reports a change, on every run unless it
        names a C(creates) path that it makes.
  platform:
    platforms: posix
options:
  containers:
    description:
      - The containers, in the order to run them. Each is a dict with C(name) and C(image) and
        optionally C(command), C(entrypoint) (lists), C(env) (dict), C(network_mode) (C(host),
        C(none) or a network name), C(networks) (names), C(published_ports)
        (C([ip:]host:container[/proto])), C(volumes) (C(source:target[:ro])), C(healthcheck)
        (C(test), C(interval), C(timeout), C(retries), C(start_period)), C(restart_policy),
        C(labels), C(memory), C(memory_swap), C(memory_reservation) (Docker sizes), C(cpus),
        C(cpuset_cpus), C(pids_limit), C(read_only), C(user), C(tmpfs) (paths), C(security_opts),
        C(cap_drop), C(cap_add), C(log_driver), C(log_options), C(devices)
        (C(host[:container[:permissions]])), C(device_requests) (C(driver), C(count), C(device_ids),
        C(capabilities), C(options) - C(--gpus), or CDI devices with driver C(cdi)), C(group_add),
        and C(healthy_before_next) (bool, the containers after it start only once it is healthy).
    type: list
    elements: dict
    default: []
  oneshots:
    description:
      - Containers that run once to completion before O(containers) while their C(creates) path
        (on the host) does not exist. Same fields as O(containers) plus C(creates); a non-zero exit
        fails the task with the container's output.
    type: list
    elements: dict
    default: []
  networks:
    description: Networks that must exist (C(name), optional C(driver), C(labels)); created when missing.
    type: list
    elements: dict
    default: []
  require_volumes:
    description: Named volumes that must exist already (made by another role); missing ones fail the task.
    type: list
    elements: str
    default: []
  prune_label:
    description: Remove containers carrying this label that are not in O(containers); unset removes none.
    type: str
  prune_keep:
    description: Regular expression of container names O(prune_label) never removes.
    type: str
    default: "^$"
  wait_healthy:
    description: Wait for each container with a health check to report healthy before going on.
    type: bool
    default: true
  healthy_timeout:
    description: Seconds to wait for one container to become healthy.
    type: int
    default: 180
  drain:
    description:
      - Containers (C(name), C(port)) that O(prune_label) removes only once no connection to their port
        is left, up to O(drain_timeout) seconds. So the replica set a reverse proxy just stopped sending
        requests to finishes what it serves (streams included) before it goes. Connections are read from
        the container's network namespace (C(/proc/<pid>/net/tcp), C(tcp6)).
      - First, each container of O(signals) signalled in this run (a reverse proxy told to reload) must have
        no worker process left from before its signal, up to O(drain_timeout) seconds - an old worker may
        still hand a request to the set that goes.
    type: list
    elements: dict
    default: []
  drain_timeout:
    description: Seconds to wait for a container of O(drain) to have no connection left; then it goes anyway.
    type: int
    default: 300
  signals:
    description:
      - Signals to send, after the containers converged, to those of O(containers) named here that this
        call left running as they were (C(name), C(signal) such as C(SIGHUP)); a container just
        created, recreated or started read its files already. For a reload of files a container
        reads again on a signal (a reverse proxy's map of users).
    type: list
    elements: dict
    default: []
  read_back:
    description:
      - Return RV(stack), the containers that carry O(prune_label) (C(nasai.stack.service) without
        one) as they are once the call is done, as M(nasai.stack.stack_containers_info) reads them. A
        caller that wants the stack's state after a change needs no call of its own.
    type: bool
    default: false
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nasai.stack.engine
"""

EXAMPLES = r"""
- name: The stack's containers, the log collector first and the proxy last
  nasai.stack.stack_containers:
    containers:
      - name: nasai-ai
        image: nasai/llama-server:test
        network_mode: host
        command: [--host, 127.0.0.1, --port, "8081", -m, /models/model.gguf]
        volumes: ["/srv/models:/models:ro"]
        healthcheck: {test: [CMD, curl, -fsS, "http://127.0.0.1:8081/health"], interval: 5s}
        memory: 256m
        cpus: 1.5
        restart_policy: always
        labels: {nasai.stack.service: ai}
    prune_label: nasai.stack.service
"""

RETURN = r"""
containers:
  description: >-
    Per container, what was done (C(created), C(recreated), C(started), C(signalled), C(unchanged), C(rolled back))
    and which fields changed.
  returned: always
  type: dict
actions:
  description: Every change made (or that would be made in check mode), in order.
  returned: always
  type: list
  elements: str
removed:
  description: Names of the containers removed (or that would be).
  returned: always
  type: list
  elements: str
outputs:
  description: What each one-shot container of O(oneshots) that ran printed (its last 40 lines), by name.
  returned: always
  type: dict
addresses:
  description: The IPv4 address of each container of O(containers) on its first network (bridge mode); none in host mode.
  returned: always
  type: dict
drained:
  description: Seconds each container of O(drain) waited for its last connection before it was removed.
  returned: always
  type: dict
stack:
  description:
    - With O(read_back), the stack's containers after the call, each as
      M(nasai.stack.stack_containers_info) returns it in its C(containers).
  returned: when O(read_back) is true
  type: list
  elements: dict
"""

import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.engine import (
    ENGINE_SOCKET_OPTION, LABEL_SPEC, LABEL_SPEC_HASH, Engine, EngineError, changed_fields, create_body, fingerprint)
from ansible_collections.nasai.stack.plugins.module_utils.stack_read import read_stack


# A container being replaced waits under this name (stopped) until its replacement is healthy.
PREVIOUS_SUFFIX = "-previous"
# A start-first replacement runs under this name until the container it replaces has gone.
NEXT_SUFFIX = "-next"


def plan_container(spec, current, image_id):
    """(action, body, changed field names) for one container: created, recreated, started or unchanged."""
    body = create_body(spec)
    extra = list(spec.get("networks") or [])[1:]
    fields, digest = fingerprint(body, image_id, extra)
    body["Labels"][LABEL_SPEC] = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    body["Labels"][LABEL_SPEC_HASH] = digest
    if current is None:
        return "created", body, sorted(fields)
    labels = (current.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_SPEC_HASH) != digest or image_id is None:
        try:
            old = json.loads(labels.get(LABEL_SPEC, ""))
        except ValueError:
            old = None
        return "recreated", body, changed_fields(old, fields)
    if not (current.get("State") or {}).get("Running"):
        return "started", body, []
    return "unchanged", body, []


def wait_healthy(engine, name, timeout, sleep=time.sleep):
    """Wait until the container reports healthy; an error that says why when it does not."""
    deadline = time.monotonic() + timeout
    status = None
    while True:
        info = engine.container(name) or {}
        state = info.get("State") or {}
        health = state.get("Health") or {}
        status = health.get("Status")
        if status is None or status == "healthy":
            return None
        if not state.get("Running") and not state.get("Restarting"):
            return "%s stopped (exit code %s) before it became healthy:\n%s" % (
                name, state.get("ExitCode"), engine.logs(name))
        if time.monotonic() >= deadline:
            last = (health.get("Log") or [{}])[-1].get("Output", "").strip()
            return "%s is %s after %ss; last health check said: %s" % (name, status, timeout, last[-500:])
        sleep(0.5)


def run_oneshot(engine, spec):
    """Run a one-shot container to its end: (an error message when it failed else None, its output)."""
    name = spec["name"]
    engine.remove(name)
    engine.create(name, create_body(spec))
    engine.start(name)
    code = engine.wait(name, timeout=600)
    output = engine.logs(name, tail=40)
    engine.remove(name)
    if code != 0:
        return "%s exited with %s:\n%s" % (name, code, output), output
    return None, output


# /proc/net/tcp's state column: 01 is ESTABLISHED.
TCP_ESTABLISHED = "01"


def open_connections(pid, port, proc="/proc"):
    """Established TCP connections whose local port is `port` in the network namespace of `pid`."""
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open("%s/%s/net/%s" % (proc, pid, table)) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TCP_ESTABLISHED and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


# After the signal that makes a proxy read its new upstreams, the old worker may still hand out new
# requests for a moment: a drain first waits this long, then for two quiet looks in a row.
DRAIN_SETTLE = 3.0


def drain(engine, name, port, timeout, sleep=time.sleep, settle=DRAIN_SETTLE):
    """Wait `settle` seconds, then until the container has had no established connection on `port`
    for two looks in a row (or `timeout`); the seconds waited."""
    start = time.monotonic()
    sleep(min(settle, timeout))
    quiet = 0
    while time.monotonic() - start < timeout:
        pid = ((engine.container(name) or {}).get("State") or {}).get("Pid")
        quiet = quiet + 1 if not pid or open_connections(pid, int(port)) == 0 else 0
        if quiet >= 2:
            break
        sleep(0.5)
    return round(time.monotonic() - start, 1)


def clock_ticks(proc="/proc"):
    """Now, in the clock ticks since boot that /proc/<pid>/stat counts a process's start time in."""
    with open("%s/uptime" % proc) as handle:
        return float(handle.read().split()[0]) * os.sysconf("SC_CLK_TCK")


def older_children(pid, since, proc="/proc"):
    """How many child processes of `pid` started before `since` (clock ticks since boot): after a
    reload signal, the proxy's old workers, which may still hand requests to the old upstreams."""
    count = 0
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open("%s/%s/stat" % (proc, entry)) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 19 and int(fields[1]) == pid and int(fields[19]) < since:
            count += 1
    return count


def wait_old_workers(engine, name, since, timeout, sleep=time.sleep, proc="/proc"):
    """Wait until the container `name` (a reverse proxy just signalled to reload) has no worker
    left from before `since`, or `timeout`; the seconds waited. Only then may the upstreams it no
    longer names go: an old worker ends its last request on them first."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        pid = ((engine.container(name) or {}).get("State") or {}).get("Pid")
        if not pid or older_children(pid, since, proc) == 0:
            break
        sleep(0.5)
    return round(time.monotonic() - start, 1)


def wait_exit(engine, name, timeout, sleep=time.sleep):
    """Wait until the container is no longer running (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not ((engine.container(name) or {}).get("State") or {}).get("Running"):
            return
        sleep(0.5)


def replace_start_first(engine, name, body, spec, healthy_timeout, drain_timeout):
    """Start the replacement of a running container beside it, wait until it is healthy, stop the
    running one gracefully, and give the replacement its name; an error message (the running
    container left alone, the replacement removed) when the replacement does not become healthy."""
    following = name + NEXT_SUFFIX
    engine.remove(following)
    # No restarts until it proved healthy: one that cannot start (a port still held) fails at once.
    trial = dict(body, HostConfig=dict(body.get("HostConfig") or {}, RestartPolicy={"Name": "no"}))
    engine.create(following, trial)
    engine.start(following)
    error = wait_healthy(engine, following, healthy_timeout) if body.get("Healthcheck") else None
    if error:
        engine.remove(following)
        return "%s: its replacement did not become healthy beside it: %s" % (name, error)
    engine.set_restart_policy(following, (body.get("HostConfig") or {}).get("RestartPolicy") or {"Name": "no"})
    engine.kill(name, spec.get("stop_signal") or "SIGTERM")
    wait_exit(engine, name, drain_timeout)
    engine.remove(name)
    engine.rename(following, name)
    return None


def address_of(info):
    """The container's IPv4 address on its first network, None in host mode or when it has none."""
    networks = ((info or {}).get("NetworkSettings") or {}).get("Networks") or {}
    for network in networks.values():
        if (network or {}).get("IPAddress"):
            return network["IPAddress"]
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "containers": {"type": "list", "elements": "dict", "default": []},
            "oneshots": {"type": "list", "elements": "dict", "default": []},
            "networks": {"type": "list", "elements": "dict", "default": []},
            "require_volumes": {"type": "list", "elements": "str", "default": []},
            "prune_label": {"type": "str"},
            "prune_keep": {"type": "str", "default": "^$"},
            "wait_healthy": {"type": "bool", "default": True},
            "healthy_timeout": {"type": "int", "default": 180},
            "signals": {"type": "list", "elements": "dict", "default": []},
            "drain": {"type": "list", "elements": "dict", "default": []},
            "drain_timeout": {"type": "int", "default": 300},
            "read_back": {"type": "bool", "default": False},
            "socket": dict(ENGINE_SOCKET_OPTION),
        },
        supports_check_mode=True,
    )
    p = module.params
    for spec in p["containers"] + p["oneshots"]:
        if not spec.get("name") or not spec.get("image"):
            module.fail_json(msg="every container needs a name and an image, got %s" % spec)
    engine = Engine(p["socket"])
    check = module.check_mode
    actions, removed, report, outputs, addresses, drained, signalled = [], [], {}, {}, {}, {}, {}
    drain_ports = {item.get("name"): item.get("port") for item in p["drain"]}
    before, after = {}, {}
    # Containers created in this run, started and not yet waited for (settle() waits).
    pending = []

    def settle():
        for waiting in pending:
            failure = wait_healthy(engine, waiting, p["healthy_timeout"])
            if failure:
                module.fail_json(msg=failure, actions=actions, containers=report)
            addresses[waiting] = address_of(engine.container(waiting))
        del pending[:]
    try:
        for net in p["networks"]:
            if engine.network(net["name"]) is None:
                actions.append("create network %s" % net["name"])
                if not check:
                    engine.create_network(net["name"], net.get("driver") or "bridge", net.get("labels"))

        missing_volumes = [v for v in p["require_volumes"] if engine.volume(v) is None]
        if missing_volumes and not check:
            module.fail_json(msg="Docker volume(s) %s do not exist on the NAS (nfs_models makes the model volume)"
                             % ", ".join(missing_volumes))

        images = {}
        for spec in p["containers"] + p["oneshots"]:
            if spec["image"] not in images:
                info = engine.image(spec["image"])
                images[spec["image"]] = info.get("Id") if info else None
        absent = sorted(name for name, image_id in images.items() if image_id is None)
        if absent and not check:
            module.fail_json(msg="image(s) %s are not on the NAS: load the bundle or pull them first" % ", ".join(absent))

        for spec in p["oneshots"]:
            if spec.get("creates") and os.path.exists(spec["creates"]):
                continue
            actions.append("run once %s" % spec["name"])
            if not check:
                error, outputs[spec["name"]] = run_oneshot(engine, spec)
                if error:
                    module.fail_json(msg=error, actions=actions)

        for spec in p["containers"]:
            name = spec["name"]
            current = engine.container(name)
            action, body, fields = plan_container(spec, current, images.get(spec["image"]))
            report[name] = {"action": action, "changed_fields": fields}
            if action != "unchanged":
                actions.append("%s %s" % (action, name))
                before[name] = None if current is None else {
                    "image": (current.get("Config") or {}).get("Image"),
                    "running": (current.get("State") or {}).get("Running")}
                after[name] = {"image": spec["image"], "running": True, "changed_fields": fields}
            if check:
                continue
            if action in ("recreated", "started"):
                # What runs already is replaced only once what this run created before it is healthy
                # (a proxy whose new configuration names a new replica set).
                settle()
            # Start-first only where both share the host's network stack (SO_REUSEPORT): a running
            # container in bridge mode holds its published ports through the engine instead.
            host_now = ((current or {}).get("HostConfig") or {}).get("NetworkMode") == "host"
            if action == "recreated" and spec.get("start_first") and host_now and spec.get("network_mode") == "host" \
                    and ((current or {}).get("State") or {}).get("Running"):
                error = replace_start_first(engine, name, body, spec, p["healthy_timeout"], p["drain_timeout"])
                if error is None:
                    addresses[name] = address_of(engine.container(name))
                    continue
                # Not beside it (an older configuration without reuseport, a broken image): the
                # usual way, stopped first, kept aside and put back if the new one fails too.
                actions.append("start-first failed, replace %s stopped first (%s)" % (name, error))
            previous = name + PREVIOUS_SUFFIX
            if action == "recreated":
                # Kept aside, stopped, until the replacement is healthy: the way back.
                engine.remove(previous)
                engine.stop(name)
                engine.rename(name, previous)
            if action in ("created", "recreated"):
                engine.create(name, body)
                for extra in list(spec.get("networks") or [])[1:]:
                    engine.connect(extra, name, [name])
            if action != "unchanged" or not (current.get("State") or {}).get("Running"):
                engine.start(name)
            if action == "created" and p["wait_healthy"]:
                # Nothing to roll back to: waited for with the others created in this run.
                pending.append(name)
                if spec.get("healthy_before_next"):
                    settle()
                continue
            error = wait_healthy(engine, name, p["healthy_timeout"]) \
                if p["wait_healthy"] and body.get("Healthcheck") else None
            if error and action == "recreated":
                report[name]["action"] = "rolled back"
                actions.append("roll back %s" % name)
                engine.remove(name)
                engine.rename(previous, name)
                engine.start(name)
                back = wait_healthy(engine, name, p["healthy_timeout"]) if body.get("Healthcheck") else None
                module.fail_json(msg="%s did not become healthy, so the previous container (image %s) was put back%s: %s"
                                 % (name, (before.get(name) or {}).get("image"),
                                    "" if back is None else " but is not healthy either (%s)" % back, error),
                                 actions=actions, containers=report)
            if error:
                module.fail_json(msg=error, actions=actions, containers=report)
            if action == "recreated":
                engine.remove(previous)
            addresses[name] = address_of(engine.container(name))

        settle()

        for item in p["signals"]:
            name = item.get("name")
            if (report.get(name) or {}).get("action") != "unchanged":
                continue
            actions.append("signal %s %s" % (item.get("signal"), name))
            report[name]["action"] = "signalled"
            if not check:
                signalled[name] = clock_ticks()
                engine.kill(name, item.get("signal"))

        if p["prune_label"]:
            wanted = {spec["name"] for spec in p["containers"]}
            keep = re.compile(p["prune_keep"])
            for item in engine.containers(p["prune_label"]):
                name = (item.get("Names") or ["/"])[0].lstrip("/")
                if name in wanted or keep.search(name):
                    continue
                removed.append(name)
                actions.append("remove %s" % name)
                before[name] = {"image": item.get("Image"), "running": item.get("State") == "running"}
                after[name] = None
                if not check:
                    if name in drain_ports:
                        if not drained:
                            # The proxies signalled to reload send the old set nothing more once their
                            # old workers are gone (each ends its requests in flight first).
                            for proxy, since in signalled.items():
                                wait_old_workers(engine, proxy, since, p["drain_timeout"])
                        # The settling wait once: the others of the set drained meanwhile.
                        drained[name] = drain(engine, name, drain_ports[name], p["drain_timeout"],
                                              settle=0 if drained else DRAIN_SETTLE)
                    engine.remove(name)
        stack = read_stack(engine, p["prune_label"] or "nasai.stack.service") if p["read_back"] else None
    except EngineError as exc:
        module.fail_json(msg=str(exc), actions=actions)

    result = {"changed": bool(actions), "actions": actions, "containers": report, "removed": removed,
              "outputs": outputs, "addresses": addresses, "drained": drained}
    if stack is not None:
        result["stack"] = stack
    if module._diff and actions:
        result["diff"] = {"before": json.dumps(before, indent=2, sort_keys=True) + "\n",
                          "after": json.dumps(after, indent=2, sort_keys=True) + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
