# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which GPU the AI core gets and how the engine hands it over, from what preflight found.

NVIDIA GPUs reach a container through CDI (the engine reads the device specs the NVIDIA Container
Toolkit writes to /etc/cdi or /var/run/cdi: Docker 25+ with its `cdi` feature, on by default from
28) or, on older engines, through a device request the toolkit's hook serves (`docker run --gpus`).
Intel and AMD GPUs and iGPUs are their DRI render nodes, opened by the group that owns them on the
host; AMD's ROCm (Ollama's image for AMD) needs /dev/kfd too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from ansible_collections.nasai.stack.plugins.filter.services_sizing import as_int

BACKENDS = ("nvidia", "dri", "none")
RUNTIMES = ("auto", "cdi", "device_request")
# The image (a key of services_images) of each AI engine per backend; llama.cpp on an iGPU is Vulkan
# by default, or SYCL (Intel's oneAPI image) with services_ai_dri_backend.
IMAGE_KEYS = {
    "llama_cpp": {"none": "llama_cpp", "nvidia": "llama_cpp_cuda", "dri": "llama_cpp_{dri_backend}"},
    "ollama": {"none": "ollama", "nvidia": "ollama", "dri": "ollama_rocm"},
}


def _indexes(devices: Any) -> list[int]:
    if devices in (None, "", "all"):
        return []
    items = devices if isinstance(devices, (list, tuple)) else [devices]
    return [as_int(item, -1) for item in items]


def _beyond(facts: Mapping[str, Any], chosen: list[int]) -> list[int]:
    """The chosen indexes that are not among the NVIDIA GPUs nvidia-smi listed."""
    found = [gpu.get("index") for gpu in facts.get("nvidia_gpus") or []]
    return [index for index in chosen if index not in found]


def _nvidia(facts: Mapping[str, Any], chosen: list[int], runtime: str, engine_cdi: Optional[bool],
            cdi_kind: str) -> dict[str, Any]:
    """The NVIDIA part of the plan: the runtime path, the device request and the GPUs' memory."""
    found = [gpu.get("index") for gpu in facts.get("nvidia_gpus") or []]
    wanted = [str(index) for index in chosen] or ["all"]
    names = ["%s=%s" % (cdi_kind, name) for name in wanted]
    specs = set(facts.get("cdi_devices") or [])
    hook = bool(facts.get("nvidia_container_hook"))
    errors = []
    if not facts.get("nvidia_driver"):
        errors.append("services_ai_gpu=nvidia: no NVIDIA driver answers on this host (nvidia-smi missing or failing, "
                      "no /proc/driver/nvidia): install the driver, or set services_ai_gpu to auto or none")
    missing = _beyond(facts, chosen)
    if missing:
        errors.append("services_ai_gpu_devices %s: this host has NVIDIA GPUs %s (nvidia-smi)"
                      % (missing, ", ".join(str(index) for index in found) or "none"))
    cdi_ready = all(name in specs for name in names)
    if runtime == "cdi" or (runtime == "auto" and cdi_ready and engine_cdi is not False):
        if not cdi_ready:
            errors.append("services_ai_gpu_runtime=cdi: no CDI spec in /etc/cdi or /var/run/cdi names %s (found: %s); "
                          "the NVIDIA Container Toolkit writes one (docker_nvidia_toolkit: true)"
                          % (", ".join(names), ", ".join(sorted(specs)) or "none"))
        if engine_cdi is False:
            errors.append("services_ai_gpu_runtime=cdi: this Docker engine does not read CDI specs (it needs Docker 25 "
                          "or later with the cdi feature: docker_cdi in the docker role)")
        path, requests = "cdi", [{"driver": "cdi", "device_ids": names}]
    else:
        if not hook:
            errors.append("services_ai_gpu=nvidia: no way for a container to reach the GPU: no CDI spec names %s%s and "
                          "the NVIDIA Container Toolkit's hook (nvidia-container-runtime-hook) is not installed; set "
                          "docker_nvidia_toolkit: true (docker role)"
                          % (", ".join(names), " that this engine reads" if cdi_ready else ""))
        # compute and utility: the driver capabilities CUDA inference needs (NVIDIA_DRIVER_CAPABILITIES).
        request = {"driver": "nvidia", "capabilities": [["gpu", "compute", "utility"]]}
        request.update({"device_ids": wanted} if chosen else {"count": -1})
        path, requests = "device_request", [request]
    by_index = {gpu.get("index"): gpu.get("memory_bytes") for gpu in facts.get("nvidia_gpus") or []}
    memories = [by_index.get(index) for index in (chosen or found)]
    return {"runtime": path, "device_requests": requests, "cdi_devices": names if path == "cdi" else [],
            "memory_bytes": sum(memories) if memories and None not in memories else None, "errors": errors}


def _dri(facts: Mapping[str, Any], chosen: list[int], engine: str) -> dict[str, Any]:
    """The render nodes (all, or those of `chosen` by their order), their groups and /dev/kfd."""
    nodes = list(facts.get("dri") or [])
    errors = []
    if not nodes:
        errors.append("services_ai_gpu=dri: no DRI render node (/dev/dri/renderD*) on this host")
    missing = [index for index in chosen if not 0 <= index < len(nodes)]
    if chosen and missing:
        errors.append("services_ai_gpu_devices %s: this host has render nodes %s (by index from 0)"
                      % (missing, ", ".join(node["path"] for node in nodes) or "none"))
    picked = [nodes[index] for index in chosen if 0 <= index < len(nodes)] if chosen else nodes
    devices = ["%s:%s:rwm" % (node["path"], node["path"]) for node in picked]
    if engine == "ollama":
        if facts.get("kfd"):
            devices.append("/dev/kfd:/dev/kfd:rwm")
        elif nodes:
            errors.append("services_ai_engine=ollama on services_ai_gpu=dri needs an AMD GPU with ROCm (/dev/kfd), "
                          "not found: use services_ai_engine=llama_cpp (Vulkan) for this GPU")
    groups = sorted({str(node["gid"]) for node in picked if node.get("gid") not in (None, 0)})
    return {"runtime": "devices", "devices": devices, "group_add": groups, "errors": errors}


def ai_gpu_plan(facts: Optional[Mapping[str, Any]], requested: str = "auto", devices: Any = None, runtime: str = "auto",
                engine_cdi: Optional[bool] = None, cdi_kind: str = "nvidia.com/gpu", engine: str = "llama_cpp",
                dri_backend: str = "vulkan") -> dict[str, Any]:
    """The AI core's GPU: `requested` (services_ai_gpu: auto, nvidia, dri or none) against preflight's
    `facts` (nasai_nas.gpu), the GPUs chosen by index (`devices`, empty for all), the NVIDIA runtime
    path (`runtime`: auto, cdi or device_request) and whether the engine reads CDI specs
    (`engine_cdi`: None while not known yet, before the engine is installed).

    auto picks NVIDIA when its driver answers and a container can reach it (a CDI spec or the
    toolkit's hook), else the render nodes, else none; `note` says why. Returns backend, runtime
    (cdi, device_request, devices or none), device_requests, devices (host:container:perms),
    group_add (gids), cdi_devices, memory_bytes (the chosen NVIDIA GPUs' memory, null when not
    known), image_key (the services_images entry of the engine on that backend), note and errors
    (the refusals, naming the variables, of what the host cannot give).
    """
    facts = facts or {}
    chosen = _indexes(devices)
    note = ""
    backend = requested
    nvidia = None
    if requested == "auto":
        nvidia = _nvidia(facts, chosen, runtime, engine_cdi, cdi_kind) if facts.get("nvidia_driver") else None
        # GPUs chosen by index that are not there are refused, not passed over.
        if nvidia is not None and (_beyond(facts, chosen) or not nvidia["errors"]):
            backend = "nvidia"
        elif facts.get("dri"):
            backend = "dri"
        else:
            backend = "none"
        if facts.get("nvidia") and backend != "nvidia":
            note = ("an NVIDIA GPU is here but %s, so the AI core does not use it"
                    % ("its driver does not answer" if nvidia is None else "; ".join(nvidia["errors"])))
    plan: dict[str, Any] = {"backend": backend, "runtime": "none", "device_requests": [], "devices": [], "group_add": [],
                            "cdi_devices": [], "memory_bytes": None, "note": note, "errors": []}
    if backend not in BACKENDS:
        plan["errors"] = ["services_ai_gpu must be one of auto, %s; got %s" % (", ".join(BACKENDS), requested)]
        return plan
    if runtime not in RUNTIMES:
        plan["errors"] = ["services_ai_gpu_runtime must be one of %s; got %s" % (", ".join(RUNTIMES), runtime)]
        return plan
    if any(index < 0 for index in chosen):
        plan["errors"] = ["services_ai_gpu_devices must be GPU indexes from 0 (empty: all), got %s" % (devices,)]
        return plan
    if backend == "nvidia":
        plan.update(nvidia or _nvidia(facts, chosen, runtime, engine_cdi, cdi_kind))
    elif backend == "dri":
        plan.update(_dri(facts, chosen, engine))
    keys = IMAGE_KEYS.get(engine, IMAGE_KEYS["llama_cpp"])
    plan["image_key"] = keys[backend].format(dri_backend=dri_backend)
    return plan


def ai_gpu_image(images: Mapping[str, Any], plan: Mapping[str, Any], engine: str = "llama_cpp") -> Any:
    """The AI core's image: services_images[plan.image_key], else the engine's own entry (an
    inventory that names no GPU variant runs its one image on the GPU too)."""
    key = plan.get("image_key") or engine
    return images.get(key) or images.get(engine)


def gpu_device_names(plan: Mapping[str, Any]) -> Sequence[str]:
    """What the AI core is given, in words, for the run's summary."""
    if plan.get("runtime") == "cdi":
        return list(plan.get("cdi_devices") or [])
    if plan.get("runtime") == "device_request":
        return ["nvidia %s" % ",".join(request.get("device_ids") or ["all"]) for request in plan.get("device_requests") or []]
    return [device.split(":")[0] for device in plan.get("devices") or []]


class FilterModule:
    """nasai.stack's GPU filters of the services role."""

    def filters(self) -> dict[str, Any]:
        return {"ai_gpu_plan": ai_gpu_plan, "ai_gpu_image": ai_gpu_image, "gpu_device_names": gpu_device_names}
