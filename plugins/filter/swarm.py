# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services model as a Docker Swarm stack, and the placement checks a stack cannot make itself
(a constraint no node meets, replicas whose reservations do not fit the nodes)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Optional

# The Kubernetes rendering's substitution of {port}, and the services' reading of a Docker size.
from ansible_collections.nasai.stack.plugins.filter.k8s_manifests import _with_port
from ansible_collections.nasai.stack.plugins.filter.services_sizing import docker_size_bytes

CONSTRAINT = re.compile(r"^\s*node\.(labels\.([A-Za-z0-9._-]+)|hostname|role)\s*(==|!=)\s*(\S+)\s*$")
# The node label of the NAS that may run AI core replicas (the cluster role's cluster_ai_node).
AI_LABEL = "ai"


def _volume(spec: str) -> dict[str, Any]:
    source, _sep, rest = str(spec).partition(":")
    target, _sep, mode = rest.partition(":")
    kind = "bind" if source.startswith("/") else "volume"
    return {"type": kind, "source": source, "target": target, "read_only": mode == "ro"}


def swarm_stack(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str], replicas: Optional[int] = None,
                constraints: Iterable[str] = (), network: str = "nasai",
                proxy: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """A compose file (version 3.8) for `docker stack deploy`: the AI core of the services model,
    replicated over the nodes labelled ai=true (spread), with its quotas as limits and its memory
    reserved, its health check, start-first rolling updates with rollback, DNS round robin (no
    virtual IP: this needs no IPVS) on an overlay network."""
    if "ai" not in set(names):
        return {"version": "3.8", "services": {}}
    ai = definitions["ai"]
    port = ai.get("port")
    service: dict[str, Any] = {"image": str(ai["image"])}
    if ai.get("entrypoint"):
        service["entrypoint"] = [_with_port(w, port) for w in ai["entrypoint"]]
    if ai.get("command"):
        service["command"] = [_with_port(w, port) for w in ai["command"]]
    if ai.get("env"):
        service["environment"] = {str(k): _with_port(v, port) for k, v in sorted(ai["env"].items())}
    if ai.get("user"):
        service["user"] = str(ai["user"])
    service["read_only"] = bool(ai.get("read_only", False))
    service["cap_drop"] = list(ai.get("cap_drop") or ["ALL"])
    if ai.get("cap_add"):
        service["cap_add"] = list(ai["cap_add"])
    check = ai.get("healthcheck")
    if check:
        service["healthcheck"] = {k: ([_with_port(w, port) for w in v] if k == "test" else v)
                                  for k, v in check.items()}
    volumes = [_volume(spec) for spec in ai.get("volumes") or []]
    volumes += [{"type": "tmpfs", "target": str(path)} for path in ai.get("tmpfs") or []]
    if volumes:
        service["volumes"] = volumes
    service["networks"] = [network]
    limits: dict[str, Any] = {}
    reservations: dict[str, Any] = {}
    if ai.get("cpus"):
        limits["cpus"] = str(ai["cpus"])
    if ai.get("memory"):
        # The model and every slot's context live in memory: a replica needs all of its quota, so the
        # quota is reserved (the scheduler places a replica only where it fits).
        limits["memory"] = str(ai["memory"])
        reservations["memory"] = str(ai["memory"])
    service["deploy"] = {
        "mode": "replicated",
        "replicas": int(replicas if replicas is not None else ai.get("replicas", 1) or 1),
        "endpoint_mode": "dnsrr",
        "placement": {"constraints": ["node.labels.%s == true" % AI_LABEL] + list(constraints),
                      "preferences": [{"spread": "node.id"}]},
        "resources": {"limits": limits, "reservations": reservations},
        "restart_policy": {"condition": "any", "delay": "5s"},
        # The new replica is healthy before the old one stops: an update keeps serving.
        "update_config": {"order": "start-first", "parallelism": 1, "failure_action": "rollback", "monitor": "20s"},
        "rollback_config": {"order": "start-first", "parallelism": 1},
        "labels": {"nasai.stack.service": "ai"},
    }
    stack: dict[str, Any] = {"version": "3.8", "services": {"ai": service},
                             "networks": {network: {"driver": "overlay", "labels": {"nasai.stack.network": "true"}}}}
    if proxy:
        stack["services"]["proxy"] = _proxy(proxy, network)
        # Swarm secrets and configs cannot change: each content gets its own name (a hash in it).
        stack["secrets"] = {key: {"file": str(proxy[key]["file"]), "name": str(proxy[key]["name"])}
                            for key in ("tls", "users")}
        stack["configs"] = {"haproxy": {"file": str(proxy["config"]["file"]), "name": str(proxy["config"]["name"])}}
    return stack


def _proxy(proxy: Mapping[str, Any], network: str) -> dict[str, Any]:
    """The TLS proxy on every node: HAProxy with its port published on the node itself (host mode:
    no routing mesh, no IPVS), balancing over every AI replica of the swarm."""
    return {
        "image": str(proxy["image"]),
        "command": ["haproxy", "-W", "-db", "-f", "/etc/nasai/haproxy.cfg"],
        "user": "65534:65534",
        "read_only": True,
        "cap_drop": ["ALL"],
        "ports": [{"target": int(proxy["port"]), "published": int(proxy["port"]), "protocol": "tcp", "mode": "host"}],
        "configs": [{"source": "haproxy", "target": "/etc/nasai/haproxy.cfg", "mode": 0o444}],
        "secrets": [{"source": "tls", "target": "tls.pem", "mode": 0o400, "uid": "65534", "gid": "65534"},
                    {"source": "users", "target": "users.map", "mode": 0o400, "uid": "65534", "gid": "65534"}],
        "healthcheck": {"test": ["CMD", "curl", "-fsk", "https://127.0.0.1:%d/healthz" % int(proxy["port"])],
                        "interval": "5s", "timeout": "3s", "retries": 3},
        "networks": [network],
        "deploy": {
            "mode": "global",
            "resources": {"limits": {"cpus": str(proxy.get("cpus", 1)), "memory": str(proxy.get("memory", "128m"))}},
            "restart_policy": {"condition": "any", "delay": "2s"},
            # The port is the node's: the old task must free it before the new one binds.
            "update_config": {"order": "stop-first", "parallelism": 1, "failure_action": "rollback"},
            "labels": {"nasai.stack.service": "proxy"},
        },
    }


def _meets(node: Mapping[str, Any], constraint: str) -> bool:
    match = CONSTRAINT.match(constraint)
    field, label, op, value = match.group(1), match.group(2), match.group(3), match.group(4)
    if label:
        have = (node.get("labels") or {}).get(label)
    elif field == "hostname":
        have = node.get("name")
    else:
        have = node.get("role")
    return (str(have) == value) if op == "==" else (str(have) != value)


def swarm_placement_errors(nodes: Iterable[Mapping[str, Any]], replicas: int, memory: Any,
                           constraints: Iterable[str] = ()) -> list[str]:
    """Why the AI core's replicas cannot be placed on these nodes ({name, role, labels, memory_bytes}),
    as messages naming the variables; empty when they can."""
    constraints = list(constraints)
    bad = [c for c in constraints if not CONSTRAINT.match(str(c))]
    if bad:
        return ["cluster_stack_constraints must be 'node.labels.<key> == <value>' (or !=, or node.hostname, "
                "node.role), got %s" % ", ".join(map(str, bad))]
    nodes = list(nodes)
    every = ["node.labels.%s == true" % AI_LABEL] + constraints
    fit = [n for n in nodes if all(_meets(n, c) for c in every)]
    if not fit:
        return ["no NAS meets the AI core's placement (%s): set cluster_ai_node true on at least one, or "
                "change cluster_stack_constraints" % " and ".join(every)]
    need = docker_size_bytes(memory)
    if need:
        room = sum(int(n.get("memory_bytes") or 0) // need for n in fit)
        if int(replicas) > room:
            return ["cluster_stack_ai_replicas (%s) x services_ai_memory (%s) does not fit the NAS the AI core "
                    "may run on (%s): room for %d replica(s)"
                    % (replicas, memory, ", ".join("%s %d MiB" % (n.get("name"), int(n.get("memory_bytes") or 0) >> 20)
                                                   for n in fit), room)]
    return []


def swarm_secret_refs(contents: Mapping[str, str], directory: str, stack: str) -> dict[str, dict[str, str]]:
    """For each content by key, the file it is written to on the manager and its Swarm name, both
    with a hash of the content in them: Swarm secrets and configs cannot change, a new content is a
    new one (and the service using it is updated)."""
    refs = {}
    for key, text in sorted(contents.items()):
        digest = hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:12]
        refs[key] = {"file": "%s/%s-%s" % (directory.rstrip("/"), key, digest), "name": "%s_%s_%s" % (stack, key, digest)}
    return refs


class FilterModule:
    """nasai.stack's Docker Swarm rendering of the services model."""

    def filters(self) -> dict[str, Any]:
        return {"swarm_stack": swarm_stack, "swarm_placement_errors": swarm_placement_errors,
                "swarm_secret_refs": swarm_secret_refs}
