# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that size things: Docker sizes in bytes, and the AI core with the proxy in front of it.

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


def ai_sizing(memory: Any, slot_memory: Any = "1g", model_memory: Any = 0, slots: Any = 0, cpus: Any = 1,
              max_inflight: Any = 0, queue_length: Any = 0, replicas: Any = 1) -> dict[str, int]:
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
    """
    memory_bytes = docker_size_bytes(memory, 0)
    slot_bytes = docker_size_bytes(slot_memory, GIB)
    model_bytes = docker_size_bytes(model_memory, 0)
    slot_count = ai_slots(slots, memory_bytes, model_bytes, slot_bytes)
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
    }


class FilterModule:
    """nasai.stack's sizing filters."""

    def filters(self) -> dict[str, Any]:
        return {"docker_size_bytes": docker_size_bytes, "ai_sizing": ai_sizing}
