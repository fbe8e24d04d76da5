# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that size things: Docker sizes in bytes, and the AI core (on its GPU too) with the proxy in front of it.

Also the value coercions the services filters share, which behave as Jinja's and Ansible's `int`,
`float` and `bool` filters do, so that moving an expression from Jinja to Python changes nothing.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

GIB = 1 << 30
# Docker sizes: bytes, or a number with b, k, m or g (docker run --memory), 1024-based.
SIZE_PATTERN = re.compile(r"^([0-9]+)([bkmg]?)$")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_TRUE = frozenset(("yes", "on", "true", "1"))

# The AI core holds at most this many parallel slots when they are derived from its memory.
MAX_DERIVED_SLOTS = 8
# llama-server (cpp-httplib) grows its thread pool by up to this many threads, one per connection.
HTTP_POOL_GROWTH = 1024
# Threads of the AI core beyond its inference and HTTP threads.
PIDS_HEADROOM = 64
# Connections the proxy accepts beyond the queued and in-flight AI requests (429s, other services).
PROXY_CONN_HEADROOM = 1024


def as_int(value: Any, default: int = 0) -> int:
    """`value` as an integer the way Jinja's `int` filter converts it ("42.7" gives 42), or `default`."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return default


def as_float(value: Any, default: float = 0.0) -> float:
    """`value` as a float the way Jinja's `float` filter converts it, or `default`."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def as_bool(value: Any) -> bool:
    """`value` as a boolean the way Ansible's `bool` filter reads it: yes/on/true/1 (any case) are true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)):
        return str(value).lower() in _TRUE
    return value == 1


def docker_size_bytes(value: Any, default: Optional[int] = None) -> Optional[int]:
    """Bytes of a Docker size (a whole number with an optional b, k, m or g unit, any case).

    Returns `default` (None unless given) when `value` is not such a size, so the result also
    answers "is this a Docker size?".
    """
    match = SIZE_PATTERN.match(str(value).lower())
    if not match:
        return default
    return int(match.group(1)) * _UNITS[match.group(2)]


def ai_slots(requested: Any, memory_bytes: int, model_bytes: int, slot_bytes: int) -> int:
    """Parallel slots of the AI core: `requested` when above 0, otherwise as many as fit into its
    memory next to the model (at least 1, at most MAX_DERIVED_SLOTS)."""
    if as_int(requested) > 0:
        return as_int(requested)
    fitting = (memory_bytes - model_bytes) // max(slot_bytes, 1)
    return max(1, min(MAX_DERIVED_SLOTS, fitting))


def ai_gpu_layers(usable_bytes: int, model_bytes: int, model_layers: int, slot_bytes: int, slots: int) -> int:
    """Layers of the model (of `model_layers`) that fit `usable_bytes` of GPU memory: each offloaded
    layer holds its share of the weights and of every slot's KV cache."""
    per_layer = (model_bytes + slots * slot_bytes) / max(model_layers, 1)
    if per_layer <= 0:
        return model_layers
    return max(0, min(model_layers, int(usable_bytes // per_layer)))


def _gpu_sizing(gpu_memory: Any, gpu_reserve: Any, model_layers: Any, gpu_layers: Any, model_bytes: int,
                slot_bytes: int, requested_slots: Any, cpu_slots: int) -> dict[str, Any]:
    """Slots and offloaded layers on a GPU (see ai_sizing), with the refusals of what cannot fit."""
    layers_total = max(as_int(model_layers, 1), 1)
    vram = docker_size_bytes(gpu_memory) if gpu_memory not in (None, "") else None
    usable = max(vram - docker_size_bytes(gpu_reserve, 0), 0) if vram is not None else None
    if as_int(requested_slots) > 0:
        slots = as_int(requested_slots)
    elif usable is not None and usable >= model_bytes + slot_bytes:
        # The whole model on the GPU: as many slots as its memory holds beside it.
        slots = max(1, min(MAX_DERIVED_SLOTS, (usable - model_bytes) // max(slot_bytes, 1)))
    else:
        slots = cpu_slots
    requested = str(gpu_layers).strip().lower()
    if requested not in ("", "auto", "none"):
        layers = as_int(gpu_layers)
    elif usable is None:
        # Memory not known (an iGPU shares the host's): every layer, as llama.cpp's own default would.
        layers = layers_total
    else:
        layers = ai_gpu_layers(usable, model_bytes, layers_total, slot_bytes, slots)
    needed = int(math.ceil(min(layers, layers_total) * (model_bytes + slots * slot_bytes) / layers_total))
    mib = 1 << 20
    errors = []
    if layers > layers_total:
        errors.append("services_ai_gpu_layers (%d) must be at most services_ai_model_layers (%d)" % (layers, layers_total))
    elif usable is not None and needed > usable:
        errors.append("services_ai_gpu_layers (%d of %d) with services_ai_slots (%d) x services_ai_slot_memory need %d MiB "
                      "of GPU memory, the GPU has %d MiB (%d MiB minus services_ai_gpu_reserve): offload fewer layers "
                      "(auto fits them) or lower the slots"
                      % (layers, layers_total, slots, needed // mib, usable // mib, vram // mib))
    elif usable is not None and layers == 0 and requested in ("", "auto", "none"):
        errors.append("the GPU's memory (%d MiB after services_ai_gpu_reserve) holds no layer of the model "
                      "(services_ai_model_memory over services_ai_model_layers (%d), with services_ai_slots (%d) x "
                      "services_ai_slot_memory): set services_ai_gpu: none, or lower the slots"
                      % (usable // mib, layers_total, slots))
    return {"slots": slots, "gpu_layers": layers, "gpu_bytes": vram, "gpu_usable_bytes": usable,
            "gpu_needed_bytes": needed, "gpu_errors": errors}


def ai_sizing(memory: Any, slot_memory: Any = "1g", model_memory: Any = 0, slots: Any = 0, cpus: Any = 1,
              max_inflight: Any = 0, queue_length: Any = 0, replicas: Any = 1, gpu: Any = False,
              gpu_memory: Any = None, gpu_reserve: Any = "512m", model_layers: Any = 32,
              gpu_layers: Any = "auto") -> dict[str, Any]:
    """The AI core and its admission control sized together, from one replica's memory quota.

    Sizes that are not Docker sizes count as 0 (the slot memory as 1 GiB); the role's validation
    reports them. Returns the bytes it read (memory_bytes, slot_bytes, model_bytes) and:
    slots (parallel requests of a replica), threads (inference threads: its CPUs rounded up),
    inflight (requests the proxy sends a replica at once: max_inflight, or 2 x slots),
    threads_http (llama-server's base HTTP pool: 2 x inflight + 2), probe_inflight (the cheap
    read-only requests, such as GET /health, the proxy sends a replica at once besides: the rest of
    that pool, inflight + 2), pids_limit (that pool, the
    pool's growth, the inference threads and some headroom) and proxy_maxconn (connections the
    proxy accepts: the queue, every replica's in-flight requests and headroom).

    With `gpu` (the AI core gets a GPU), slots and layers fit the GPU's memory (`gpu_memory`, a
    Docker size or bytes, less `gpu_reserve` for the runtime's own buffers): without `slots`, as many
    as its memory holds beside the whole model (at most MAX_DERIVED_SLOTS), else the memory-derived
    ones; `gpu_layers` ("auto": as many of the model's `model_layers` as fit, each with its share of
    the weights and of the slots' KV cache; every layer when the GPU's memory is not known, an iGPU).
    Adds gpu_layers (None without a GPU), gpu_bytes, gpu_usable_bytes, gpu_needed_bytes and
    gpu_errors (what cannot fit, naming the variables).
    """
    memory_bytes = docker_size_bytes(memory, 0)
    slot_bytes = docker_size_bytes(slot_memory, GIB)
    model_bytes = docker_size_bytes(model_memory, 0)
    slot_count = ai_slots(slots, memory_bytes, model_bytes, slot_bytes)
    gpu_part = {"gpu_layers": None, "gpu_bytes": None, "gpu_usable_bytes": None, "gpu_needed_bytes": 0, "gpu_errors": []}
    if as_bool(gpu):
        gpu_part = _gpu_sizing(gpu_memory, gpu_reserve, model_layers, gpu_layers, model_bytes, slot_bytes, slots,
                               slot_count)
        slot_count = gpu_part.pop("slots")
    threads = max(int(math.ceil(as_float(cpus))), 1)
    inflight = as_int(max_inflight) if as_int(max_inflight) > 0 else slot_count * 2
    threads_http = inflight * 2 + 2
    return {
        "memory_bytes": memory_bytes,
        "slot_bytes": slot_bytes,
        "model_bytes": model_bytes,
        "slots": slot_count,
        "threads": threads,
        "inflight": inflight,
        "threads_http": threads_http,
        "probe_inflight": threads_http - inflight,
        "pids_limit": threads_http + HTTP_POOL_GROWTH + threads + PIDS_HEADROOM,
        "proxy_maxconn": as_int(queue_length) + PROXY_CONN_HEADROOM + inflight * as_int(replicas),
        **gpu_part,
    }


class FilterModule:
    """nasai.stack's sizing filters."""

    def filters(self) -> dict[str, Any]:
        return {"docker_size_bytes": docker_size_bytes, "ai_sizing": ai_sizing}
