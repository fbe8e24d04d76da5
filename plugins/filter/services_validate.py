# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check the services role's input: each returns a list of messages, empty when all
is well. Every message names the variable the user sets (services_definitions.<service>.<field>,
or the role variable) and what it expected."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from ansible_collections.nasai.stack.plugins.filter.services_model import SERVICE_FIELDS
from ansible_collections.nasai.stack.plugins.module_utils.host import unsafe_data_path
from ansible_collections.nasai.stack.plugins.filter.services_sizing import as_float, as_int, docker_size_bytes

_WHOLE = re.compile(r"^[0-9]+$")
_CPUS = re.compile(r"^[0-9]*\.?[0-9]+$")
_CPUSET = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")
_PIDS = re.compile(r"^(-1|[1-9][0-9]*)$")
_MEMORY_FIELDS = ("memory", "memory_swap", "memory_reservation")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
# The role variable that feeds a field of the default services, named first in a message (the user
# set that one, not the field): "services_ai_cpus (services_definitions.ai.cpus) must ...".
ROLE_VARIABLES = {
    ("ai", "port"): "services_ai_port", ("ai", "replicas"): "services_ai_replicas",
    ("ai", "memory"): "services_ai_memory", ("ai", "memory_swap"): "services_ai_memory",
    ("ai", "cpus"): "services_ai_cpus", ("ai", "cpuset_cpus"): "services_ai_cpuset",
    ("files", "port"): "services_files_port", ("files", "memory"): "services_files_memory",
    ("files", "memory_swap"): "services_files_memory", ("logs", "port"): "services_logs_port",
    ("proxy", "port"): "services_https_port",
}


def _given(service: Mapping[str, Any], field: str) -> bool:
    """Whether `field` is set (present and not null)."""
    return service.get(field) is not None


def _unknown_fields(var: str, service: Mapping[str, Any]) -> list[str]:
    unknown = [field for field in service if field not in SERVICE_FIELDS]
    if not unknown:
        return []
    return ["%s has unknown fields %s (allowed: %s)" % (var, ", ".join(unknown), ", ".join(SERVICE_FIELDS))]


def _image(var: str, service: Mapping[str, Any]) -> list[str]:
    image = service.get("image")
    if isinstance(image, str) and image:
        return []
    return ["%s.image must name an image, got %s" % (var, service.get("image", "nothing"))]


def _port(var: str, service: Mapping[str, Any]) -> list[str]:
    port = service.get("port", "")
    if not (_WHOLE.match(str(port)) and 1 <= as_int(port) <= 65535):
        return ["%s.port must be a port number (1-65535), got %s" % (var, service.get("port", "nothing"))]
    replicas = service.get("replicas", 1)
    # Replica N listens on port + N - 1: the last one must still be a port.
    if _WHOLE.match(str(replicas)) and as_int(port) + as_int(replicas) - 1 > 65535:
        return ["%s.port (%s) + %s.replicas (%s) - 1 must stay within 65535: replica N listens on port + N - 1"
                % (var, port, var, replicas)]
    return []


def _replicas(var: str, service: Mapping[str, Any]) -> list[str]:
    replicas = service.get("replicas", 1)
    if _WHOLE.match(str(replicas)) and as_int(replicas) >= 1:
        return []
    return ["%s.replicas must be a whole number >= 1, got %s" % (var, replicas)]


def _memory(var: str, service: Mapping[str, Any]) -> list[str]:
    errors = []
    for field in _MEMORY_FIELDS:
        if not _given(service, field):
            continue
        value = service[field]
        if docker_size_bytes(value) is None and not (field == "memory_swap" and str(value) == "-1"):
            errors.append("%s.%s must be a Docker size such as 512m or 2g%s, got %s" % (
                var, field, " (or -1 for unlimited swap)" if field == "memory_swap" else "", value))
    if _given(service, "memory") and _given(service, "memory_swap"):
        memory, swap = docker_size_bytes(service["memory"]), docker_size_bytes(service["memory_swap"])
        if memory is not None and swap is not None and swap < memory:
            errors.append("%s.memory_swap (memory + swap) must be at least %s.memory (%s), got %s" % (
                var, var, service["memory"], service["memory_swap"]))
    return errors


def _memory_fits(var: str, service: Mapping[str, Any], memory_bytes: int) -> list[str]:
    if not _given(service, "memory") or not memory_bytes:
        return []
    memory = docker_size_bytes(service["memory"])
    if memory is None or memory <= memory_bytes:
        return []
    return ["%s.memory must not exceed the host's memory (%d MiB), got %s" % (var, memory_bytes >> 20, service["memory"])]


def _cpus(var: str, service: Mapping[str, Any], cpu_count: int) -> list[str]:
    if not _given(service, "cpus"):
        return []
    cpus = service["cpus"]
    if not _CPUS.match(str(cpus)) or as_float(cpus) <= 0:
        return ["%s.cpus must be a number of CPUs above 0, got %s" % (var, cpus)]
    if as_float(cpus) > cpu_count:
        return ["%s.cpus must not exceed the host's %s CPUs, got %s" % (var, cpu_count, cpus)]
    return []


def _cpuset(var: str, service: Mapping[str, Any], cpu_count: int) -> list[str]:
    if not _given(service, "cpuset_cpus"):
        return []
    cpuset = service["cpuset_cpus"]
    if not _CPUSET.match(str(cpuset)):
        return ["%s.cpuset_cpus must be a cpuset such as 0-2 or 1,3, got %s" % (var, cpuset)]
    if max(int(cpu) for cpu in re.findall(r"[0-9]+", str(cpuset))) >= cpu_count:
        return ["%s.cpuset_cpus must stay within the host's CPUs 0-%s, got %s" % (var, cpu_count - 1, cpuset)]
    return []


def _pids_limit(var: str, service: Mapping[str, Any]) -> list[str]:
    if not _given(service, "pids_limit") or _PIDS.match(str(service["pids_limit"])):
        return []
    return ["%s.pids_limit must be a whole number above 0 (or -1), got %s" % (var, service["pids_limit"])]


# Checks of one service's fields, in the order their messages appear.
_FIELD_CHECKS: tuple[Callable[[str, Mapping[str, Any]], list[str]], ...] = (
    _unknown_fields, _image, _port, _replicas, _memory)
_HOST_CHECKS: tuple[Callable[[str, Mapping[str, Any], int], list[str]], ...] = (_cpus, _cpuset)


def _named(message: str, name: str) -> str:
    """The message with the role variable that feeds its field named first, where there is one."""
    match = re.match(r"^services_definitions\.%s\.([a-z_]+)" % re.escape(name), message)
    variable = ROLE_VARIABLES.get((name, match.group(1))) if match else None
    return "%s (%s" % (variable, message.replace(" ", ") ", 1)) if variable else message


def service_errors(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str], cpu_count: Any,
                   memory_bytes: Any = 0) -> list[str]:
    """What is wrong with the fields of each enabled service in `names`: its name, unknown fields,
    image, port (and the last replica's), replicas, memory sizes (memory_swap at least memory,
    memory within the host's `memory_bytes`), cpus and cpuset_cpus within the host's `cpu_count`
    CPUs, pids_limit. A message names the role variable that feeds the field, where there is one."""
    cpu_count = as_int(cpu_count)
    errors: list[str] = []
    for name in names:
        if not _NAME.match(str(name)):
            errors.append("services_definitions and services_overrides keys must be service names (a lower-case "
                          "letter, then up to 30 of a-z 0-9 _ -), got %r" % name)
            continue
        service = definitions[name]
        var = "services_definitions." + name
        found: list[str] = []
        for check in _FIELD_CHECKS:
            found.extend(check(var, service))
        for host_check in _HOST_CHECKS:
            found.extend(host_check(var, service, cpu_count))
        found.extend(_memory_fits(var, service, as_int(memory_bytes)))
        found.extend(_pids_limit(var, service))
        errors.extend(_named(message, name) for message in found)
    return errors


def path_errors(path: Any, variable: str) -> list[str]:
    """Why `path` cannot be a directory the role creates and hands to a service: relative, with a
    `..` part, the root or a system directory; the message names `variable`."""
    why = unsafe_data_path(str(path))
    return ["%s %s, got %r" % (variable, why, str(path))] if why else []


def port_conflicts(ports: Sequence[Mapping[str, Any]], network_mode: str = "host") -> list[str]:
    """One message per host port ("port/proto") that more than one container takes in `ports`
    (host_ports), in port order, naming the containers."""
    def key(item: Mapping[str, Any]) -> Any:
        port = item["port"]
        return port.lower() if isinstance(port, str) else port

    errors = []
    for _key, group in itertools.groupby(sorted(ports, key=key), key=key):
        taken = list(group)
        if len(taken) > 1:
            errors.append("port %s is used by more than one container (%s) in services_network_mode=%s: change the "
                          "ports in services_definitions/services_overrides or services_https_port/services_http_port"
                          % (taken[0]["port"], ", ".join(str(item["container"]) for item in taken), network_mode))
    return errors


def ai_memory_errors(memory: Any, slot_memory: Any, model_memory: Any, slots: Any, gpu_layers: Any = None,
                     model_layers: Any = 1) -> list[str]:
    """A message when the AI core's `slots` x `slot_memory` + `model_memory` exceed its `memory`
    quota (services_definitions.ai.memory); nothing when one of them is not a Docker size (other
    checks report that) or the memory is not set. With `gpu_layers` of the model's `model_layers`
    offloaded to a GPU, only the share of the layers left on the CPU counts."""
    sizes = [docker_size_bytes(value) for value in (memory, slot_memory, model_memory)]
    if memory is None or None in sizes:
        return []
    memory_bytes, slot_bytes, model_bytes = sizes
    on_cpu = 1.0
    if gpu_layers is not None:
        total = max(as_int(model_layers, 1), 1)
        on_cpu = 1.0 - min(max(as_int(gpu_layers), 0), total) / total
    if (as_int(slots) * slot_bytes + model_bytes) * on_cpu <= memory_bytes:
        return []
    return ["services_ai_slots (%s) x services_ai_slot_memory (%s) + services_ai_model_memory (%s)%s exceed the AI core "
            "memory (%s): lower the slots or raise services_ai_memory"
            % (slots, slot_memory, model_memory, "" if on_cpu == 1.0 else " (the %d%% of the layers left on the CPU)"
               % round(on_cpu * 100), memory)]


class FilterModule:
    """nasai.stack's validation filters of the services role."""

    def filters(self) -> dict[str, Any]:
        return {"service_errors": service_errors, "port_conflicts": port_conflicts, "ai_memory_errors": ai_memory_errors,
                "path_errors": path_errors}
