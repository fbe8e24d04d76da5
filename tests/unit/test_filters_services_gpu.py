"""The AI core's GPU: which backend and runtime path the host gives (ai_gpu_plan), and the layers
and slots its memory holds (ai_sizing with a GPU), with the refusals of what cannot be."""

import pytest

from ansible_collections.nasai.stack.plugins.filter.services_gpu import ai_gpu_image, ai_gpu_plan, gpu_device_names
from ansible_collections.nasai.stack.plugins.filter.services_sizing import ai_sizing
from ansible_collections.nasai.stack.plugins.filter.services_validate import ai_memory_errors

GIB = 1 << 30
MIB = 1 << 20
NVIDIA = {"present": True, "nvidia": True, "nvidia_driver": True,
          "nvidia_gpus": [{"index": 0, "name": "RTX", "memory_bytes": 8 * GIB, "uuid": "GPU-a"},
                          {"index": 1, "name": "RTX", "memory_bytes": 12 * GIB, "uuid": "GPU-b"}],
          "memory_bytes": 20 * GIB, "dri": [], "dri_render_nodes": [], "kfd": False,
          "cdi_devices": ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=all"],
          "nvidia_container_hook": None, "nvidia_ctk": "/usr/bin/nvidia-ctk"}
HOOK_ONLY = dict(NVIDIA, cdi_devices=[], nvidia_container_hook="/usr/bin/nvidia-container-runtime-hook")
NO_DRIVER = dict(NVIDIA, nvidia_driver=False, nvidia_gpus=[], memory_bytes=None)
IGPU = {"present": True, "nvidia": False, "nvidia_driver": False, "nvidia_gpus": [], "memory_bytes": None,
        "dri": [{"path": "/dev/dri/renderD128", "gid": 993, "group": "render"},
                {"path": "/dev/dri/renderD129", "gid": 993, "group": "render"}],
        "dri_render_nodes": ["/dev/dri/renderD128", "/dev/dri/renderD129"], "kfd": False, "cdi_devices": [],
        "nvidia_container_hook": None, "nvidia_ctk": None}
NOTHING = {"present": False, "nvidia": False, "nvidia_driver": False, "nvidia_gpus": [], "dri": [],
           "dri_render_nodes": [], "cdi_devices": []}


def test_auto_takes_nvidia_through_cdi_when_a_spec_names_it():
    plan = ai_gpu_plan(NVIDIA)
    assert (plan["backend"], plan["runtime"], plan["errors"]) == ("nvidia", "cdi", [])
    assert plan["device_requests"] == [{"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"]}]
    assert plan["memory_bytes"] == 20 * GIB
    assert plan["image_key"] == "llama_cpp_cuda"
    assert gpu_device_names(plan) == ["nvidia.com/gpu=all"]


def test_chosen_indexes_name_their_cdi_devices_and_their_memory():
    plan = ai_gpu_plan(NVIDIA, "nvidia", [1])
    assert plan["device_requests"] == [{"driver": "cdi", "device_ids": ["nvidia.com/gpu=1"]}]
    assert plan["memory_bytes"] == 12 * GIB


def test_an_engine_without_cdi_uses_the_toolkit_hook_through_a_device_request():
    facts = dict(NVIDIA, nvidia_container_hook="/usr/bin/nvidia-container-runtime-hook")
    plan = ai_gpu_plan(facts, "nvidia", engine_cdi=False)
    assert (plan["runtime"], plan["errors"]) == ("device_request", [])
    assert plan["device_requests"] == [{"driver": "nvidia", "capabilities": [["gpu", "compute", "utility"]], "count": -1}]
    assert ai_gpu_plan(HOOK_ONLY, "nvidia", [0])["device_requests"] == [
        {"driver": "nvidia", "capabilities": [["gpu", "compute", "utility"]], "device_ids": ["0"]}]


@pytest.mark.parametrize(("facts", "kwargs", "message"), [
    (NO_DRIVER, {}, "services_ai_gpu=nvidia: no NVIDIA driver answers on this host"),
    (NVIDIA, {"devices": [3]}, "services_ai_gpu_devices [3]: this host has NVIDIA GPUs 0, 1"),
    (dict(NVIDIA, cdi_devices=[]), {}, "the NVIDIA Container Toolkit's hook (nvidia-container-runtime-hook) is not installed"),
    (NVIDIA, {"engine_cdi": False}, "no CDI spec names nvidia.com/gpu=all that this engine reads"),
    (HOOK_ONLY, {"runtime": "cdi"}, "services_ai_gpu_runtime=cdi: no CDI spec in /etc/cdi or /var/run/cdi names"),
    (NVIDIA, {"runtime": "cdi", "engine_cdi": False}, "this Docker engine does not read CDI specs"),
    (NVIDIA, {"devices": [-1]}, "services_ai_gpu_devices must be GPU indexes from 0"),
])
def test_nvidia_refusals_name_the_variable(facts, kwargs, message):
    errors = ai_gpu_plan(facts, "nvidia", **kwargs)["errors"]
    assert any(message in error for error in errors), errors


def test_auto_refuses_indexes_beyond_the_gpus_rather_than_passing_the_gpu_over():
    plan = ai_gpu_plan(NVIDIA, "auto", [3])
    assert plan["backend"] == "nvidia"
    assert any("services_ai_gpu_devices [3]: this host has NVIDIA GPUs 0, 1" in error for error in plan["errors"])


def test_auto_falls_back_and_says_why():
    plan = ai_gpu_plan(dict(NVIDIA, cdi_devices=[]))
    assert (plan["backend"], plan["errors"]) == ("none", [])
    assert "an NVIDIA GPU is here but" in plan["note"] and "nvidia-container-runtime-hook" in plan["note"]
    assert ai_gpu_plan(NO_DRIVER)["note"] == "an NVIDIA GPU is here but its driver does not answer, so the AI core does not use it"
    assert ai_gpu_plan(NOTHING) == dict(ai_gpu_plan(NOTHING), backend="none", runtime="none", errors=[], note="",
                                        device_requests=[], devices=[], group_add=[], image_key="llama_cpp")


def test_render_nodes_with_their_group_and_the_vulkan_image():
    plan = ai_gpu_plan(IGPU)
    assert (plan["backend"], plan["runtime"], plan["errors"]) == ("dri", "devices", [])
    assert plan["devices"] == ["/dev/dri/renderD128:/dev/dri/renderD128:rwm", "/dev/dri/renderD129:/dev/dri/renderD129:rwm"]
    assert plan["group_add"] == ["993"] and plan["device_requests"] == []
    assert plan["image_key"] == "llama_cpp_vulkan"
    assert ai_gpu_plan(IGPU, dri_backend="intel")["image_key"] == "llama_cpp_intel"
    assert ai_gpu_plan(IGPU, "dri", [1])["devices"] == ["/dev/dri/renderD129:/dev/dri/renderD129:rwm"]


@pytest.mark.parametrize(("facts", "requested", "kwargs", "message"), [
    (NOTHING, "dri", {}, "services_ai_gpu=dri: no DRI render node"),
    (IGPU, "dri", {"devices": [2]}, "services_ai_gpu_devices [2]: this host has render nodes /dev/dri/renderD128, "),
    (IGPU, "dri", {"engine": "ollama"}, "services_ai_engine=ollama on services_ai_gpu=dri needs an AMD GPU with ROCm"),
    (NOTHING, "tpu", {}, "services_ai_gpu must be one of auto, nvidia, dri, none"),
])
def test_dri_refusals(facts, requested, kwargs, message):
    errors = ai_gpu_plan(facts, requested, **kwargs)["errors"]
    assert any(message in error for error in errors), errors


def test_ollama_takes_rocm_with_kfd_and_its_own_image_on_nvidia():
    plan = ai_gpu_plan(dict(IGPU, kfd=True), "dri", engine="ollama")
    assert plan["devices"][-1] == "/dev/kfd:/dev/kfd:rwm" and plan["image_key"] == "ollama_rocm"
    assert ai_gpu_plan(NVIDIA, engine="ollama")["image_key"] == "ollama"


def test_an_image_variant_missing_from_the_inventory_falls_back_to_the_engine_s_own():
    assert ai_gpu_image({"llama_cpp": "cpu", "llama_cpp_cuda": "cuda"}, ai_gpu_plan(NVIDIA)) == "cuda"
    assert ai_gpu_image({"llama_cpp": "cpu"}, ai_gpu_plan(NVIDIA)) == "cpu"


def gpu_sizing(vram, model="4g", layers=32, slot="512m", slots=0, gpu_layers="auto", reserve="512m", memory="8g"):
    return ai_sizing(memory, slot, model, slots=slots, cpus=4, gpu=True, gpu_memory=vram, gpu_reserve=reserve,
                     model_layers=layers, gpu_layers=gpu_layers)


# (VRAM, model, layers, slot memory, slots asked) -> (slots, layers offloaded)
@pytest.mark.parametrize(("vram", "model", "layers", "slot", "slots", "expected"), [
    # 8 GiB, a 4 GiB model: 3.5 GiB left beside it holds 7 slots of 512 MiB, every layer offloaded.
    ("8g", "4g", 32, "512m", 0, (7, 32)),
    # 24 GiB: the slots stop at 8 (MAX_DERIVED_SLOTS).
    ("24g", "4g", 32, "512m", 0, (8, 32)),
    # 4 GiB with a 4 GiB model: the memory quota's slots (8 GiB: 8), and the layers that fit with them.
    ("4g", "4g", 32, "512m", 0, (8, 14)),
    # Two slots asked for on 6 GiB: all fit (4 + 1 <= 5.5).
    ("6g", "4g", 32, "512m", 2, (2, 32)),
    # Eight asked for on 6 GiB: 8 GiB of weights and KV over 32 layers, 5.5 GiB hold 22 of them.
    ("6g", "4g", 32, "512m", 8, (8, 22)),
    # A 70B model on a 24 GiB card: 40 GiB + 2 slots of 1 GiB over 80 layers, 23.5 GiB hold 44.
    ("24g", "40g", 80, "1g", 2, (2, 44)),
    # Bytes from nvidia-smi (143771 MiB, an H200): everything.
    (143771 * MIB, "40g", 80, "1g", 0, (8, 80)),
])
def test_layers_and_slots_fit_the_gpu(vram, model, layers, slot, slots, expected):
    sized = gpu_sizing(vram, model, layers, slot, slots)
    assert (sized["slots"], sized["gpu_layers"]) == expected
    assert sized["gpu_errors"] == []
    assert sized["gpu_needed_bytes"] <= sized["gpu_usable_bytes"]


def test_an_igpu_of_unknown_memory_takes_every_layer_and_the_memory_quota_s_slots():
    sized = gpu_sizing(None)
    assert (sized["slots"], sized["gpu_layers"], sized["gpu_errors"]) == (8, 32, [])


def test_without_a_gpu_nothing_changes():
    plain = ai_sizing("8g", "512m", "4g", cpus=4)
    assert plain["gpu_layers"] is None and plain["slots"] == 8 and plain["gpu_errors"] == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"vram": "6g", "gpu_layers": 32, "slots": 8},
     "services_ai_gpu_layers (32 of 32) with services_ai_slots (8) x services_ai_slot_memory need 8192 MiB of GPU memory, "
     "the GPU has 5632 MiB (6144 MiB minus services_ai_gpu_reserve)"),
    ({"vram": "1g", "model": "40g", "layers": 80, "slot": "1g"}, "the GPU's memory (512 MiB after services_ai_gpu_reserve) "
     "holds no layer of the model"),
    ({"vram": "8g", "gpu_layers": 40}, "services_ai_gpu_layers (40) must be at most services_ai_model_layers (32)"),
])
def test_what_cannot_fit_is_refused(kwargs, message):
    errors = gpu_sizing(**kwargs)["gpu_errors"]
    assert any(message in error for error in errors), errors


def test_the_host_memory_check_counts_only_the_layers_left_on_the_cpu():
    # 8 slots x 512m + 4g = 8 GiB: too much for a 4 GiB quota on the CPU, fine with 24 of 32 layers on the GPU.
    assert ai_memory_errors("4g", "512m", "4g", 8)
    assert ai_memory_errors("4g", "512m", "4g", 8, gpu_layers=24, model_layers=32) == []
    errors = ai_memory_errors("1g", "512m", "4g", 8, gpu_layers=24, model_layers=32)
    assert "(the 25% of the layers left on the CPU)" in errors[0]
