# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the services model into what the collection's modules take: containers and
first-start steps for nasai.stack.stack_containers, files for nasai.stack.stack_files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

# Fields of an instance that stack_containers takes as they are.
_PASSED = ("name", "image", "command", "entrypoint", "env", "volumes", "healthcheck", "restart_policy",
           "memory", "memory_swap", "memory_reservation", "cpus", "cpuset_cpus", "pids_limit", "read_only",
           "user", "tmpfs", "security_opts", "cap_drop", "cap_add", "log_driver", "log_options", "start_first",
           "stop_signal", "devices", "device_requests", "group_add", "healthy_before_next")


def container_specs(instances: Sequence[Mapping[str, Any]], network_mode: str, network_name: str,
                    fingerprints: Optional[Mapping[str, str]] = None) -> list[dict[str, Any]]:
    """stack_containers' description of each instance (service_instances): its fields, the network
    (the bridge `network_name` in bridge mode, the host's otherwise), published ports in bridge mode
    only, and the label nasai.stack.config holding its service's configuration fingerprint."""
    fingerprints = fingerprints or {}
    specs = []
    for item in instances:
        spec = {key: item.get(key) for key in _PASSED}
        bridge = network_mode == "bridge"
        spec["network_mode"] = network_name if bridge else "host"
        spec["networks"] = list(item.get("networks") or [network_name]) if bridge else []
        spec["published_ports"] = list(item.get("ports") or []) if bridge else []
        labels = dict(item.get("labels") or {})
        labels["nasai.stack.config"] = fingerprints.get(item.get("service"), "")
        spec["labels"] = labels
        specs.append(spec)
    return specs


def init_specs(instances: Sequence[Mapping[str, Any]], definitions: Mapping[str, Mapping[str, Any]],
               project_dir: str) -> list[dict[str, Any]]:
    """One-shot first-start containers: one per service with an `init` step, run with the
    volumes of its first instance and no network, while data/<service>/<init.creates> is missing."""
    specs = []
    seen = set()
    for item in instances:
        name = item.get("service")
        init = (definitions.get(name) or {}).get("init")
        if not init or name in seen:
            continue
        seen.add(name)
        definition = definitions[name]
        specs.append({
            "name": "nasai-%s-init" % name,
            "image": item["image"],
            "entrypoint": definition.get("entrypoint"),
            "command": init["command"],
            "user": definition.get("user"),
            "volumes": item.get("volumes") or [],
            "network_mode": "none",
            "labels": {"nasai.stack.init": name},
            "creates": "%s/data/%s/%s" % (project_dir, name, init["creates"]),
        })
    return specs


def present_contents(paths: Mapping[str, str], contents: Mapping[str, Optional[str]]) -> dict[str, str]:
    """{key: text} of the files of `paths` ({key: path}) that `contents` ({path: text or None}) holds."""
    return {key: contents[path] for key, path in paths.items() if contents.get(path) is not None}


def config_fingerprints(checksums: Mapping[str, str], config_dir: str, names: Iterable[str]) -> dict[str, str]:
    """{service: SHA-1 over the checksums of the files under config_dir/<service>/, by path}."""
    out = {}
    for name in names:
        prefix = "%s/%s/" % (config_dir.rstrip("/"), name)
        sums = ",".join(checksums[path] for path in sorted(checksums) if path.startswith(prefix))
        out[name] = hashlib.sha1(sums.encode("utf-8")).hexdigest()
    return out


def tls_writes(content: Mapping[str, str], paths: Mapping[str, str]) -> list[dict[str, Any]]:
    """stack_files entries of the TLS material ({key: PEM}) at `paths` ({key: path}): private keys
    0600 and secret, certificates 0644, all owned by root."""
    out = []
    for key in sorted(content):
        secret = "key" in key
        out.append({"path": paths[key], "content": content[key], "owner": "root", "group": "root",
                    "mode": "0600" if secret else "0644", "secret": secret})
    return out


class FilterModule:
    """nasai.stack's filters for the collection's modules."""

    def filters(self) -> dict[str, Any]:
        return {"container_specs": container_specs, "init_specs": init_specs, "present_contents": present_contents,
                "config_fingerprints": config_fingerprints, "tls_writes": tls_writes}
