"""What the collection would give the AI core on this host's GPU, and how fast it is with it.

Runs on the host itself, with or without Ansible installed (a machine with a GPU may have neither
Ansible nor Docker): preflight's GPU detection (nas_facts: nvidia-smi, render nodes, CDI specs, the
NVIDIA Container Toolkit), then the services role's decision (filters ai_gpu_plan and ai_sizing) for
the model and quotas given in the environment, and prints both. Where llama.cpp's `llama-bench` is
at hand (LLAMA_BENCH, or on the PATH) and a GGUF model is given (MODEL), it measures tokens/s with
every layer on the GPU and with none, and prints the ratio.

    python3 benchmarks/gpu-probe.py
    MODEL=/models/qwen2.5-7b-q4_k_m.gguf MODEL_MEMORY=5g MODEL_LAYERS=28 python3 benchmarks/gpu-probe.py

Environment: SERVICES_AI_GPU (auto), MODEL_MEMORY (2g), MODEL_LAYERS (32), SLOT_MEMORY (512m),
SLOTS (0: derived), AI_MEMORY (half the host's memory), GPU_RESERVE (512m), ENGINE (llama_cpp).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))


def _stub_ansible():
    """nas_facts imports AnsibleModule at its top; without Ansible a stand-in lets it load (only its
    detection functions are called here)."""
    try:
        import ansible.module_utils.basic  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        for name in ("ansible", "ansible.module_utils", "ansible.module_utils.basic"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["ansible.module_utils.basic"].AnsibleModule = object


class Runner:
    """The one method of AnsibleModule that the detection calls."""

    @staticmethod
    def run_command(args):
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 1, "", str(exc)
        return done.returncode, done.stdout, done.stderr


def engine_cdi():
    """Whether a Docker engine here reads CDI specs; None without an engine."""
    from ansible_collections.nasai.stack.plugins.module_utils import engine  # pylint: disable=import-outside-toplevel
    if not os.path.exists("/var/run/docker.sock"):
        return None
    try:
        client = engine.Engine()
        settings = json.loads(Path("/etc/docker/daemon.json").read_text(encoding="utf-8")) \
            if Path("/etc/docker/daemon.json").exists() else {}
        return engine.engine_cdi(client.version() or {}, client.info() or {}, settings)
    except (engine.EngineError, OSError, ValueError):
        return None


def bench(binary, model, layers):
    """llama-bench's tokens/s (prompt processing, generation) with `layers` on the GPU."""
    args = [binary, "-m", model, "-ngl", str(layers), "-p", "512", "-n", "128", "-r", "3", "-o", "json"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1:] or ["failed"]
    rows = json.loads(done.stdout)
    speeds = {("prompt" if row.get("n_prompt") else "generation"): row.get("avg_ts") for row in rows}
    return speeds, None


def main():
    _stub_ansible()
    from ansible_collections.nasai.stack.plugins.modules import nas_facts  # pylint: disable=import-outside-toplevel
    from ansible_collections.nasai.stack.plugins.filter.services_gpu import (  # pylint: disable=import-outside-toplevel
        ai_gpu_image, ai_gpu_plan, gpu_device_names)
    from ansible_collections.nasai.stack.plugins.filter.services_sizing import ai_sizing  # pylint: disable=import-outside-toplevel

    env = os.environ.get
    facts = nas_facts.detect_gpu(Runner())
    print("preflight GPU facts (nasai_nas.gpu):")
    print(json.dumps(facts, indent=2))

    cdi = engine_cdi()
    engine_name = env("ENGINE", "llama_cpp")
    plan = ai_gpu_plan(facts, env("SERVICES_AI_GPU", "auto"), [], "auto", engine_cdi=cdi, engine=engine_name)
    assumed = ""
    if plan["backend"] == "none" and facts["nvidia_driver"] and not facts["cdi_devices"]:
        # The driver answers, the toolkit is missing: what docker_nvidia_toolkit: true would lead to.
        assumed = " (once docker_nvidia_toolkit: true has written its CDI spec, on Docker 25+)"
        facts = dict(facts, cdi_devices=["nvidia.com/gpu=%d" % gpu["index"] for gpu in facts["nvidia_gpus"]]
                     + ["nvidia.com/gpu=all"])
        plan = ai_gpu_plan(facts, env("SERVICES_AI_GPU", "auto"), [], "auto", engine_cdi=True, engine=engine_name)
    memory = env("AI_MEMORY") or "%dm" % (nas_facts.memory_bytes() // 2 // 1048576)
    sizing = ai_sizing(memory, env("SLOT_MEMORY", "512m"), env("MODEL_MEMORY", "2g"), slots=env("SLOTS", "0"),
                       cpus=max(nas_facts.cpu_count() - 1, 1), gpu=plan["backend"] != "none",
                       gpu_memory=plan["memory_bytes"], gpu_reserve=env("GPU_RESERVE", "512m"),
                       model_layers=env("MODEL_LAYERS", "32"))
    defaults = {"llama_cpp": "ghcr.io/ggml-org/llama.cpp:server-b6715",
                "llama_cpp_cuda": "ghcr.io/ggml-org/llama.cpp:server-cuda-b6715",
                "llama_cpp_vulkan": "ghcr.io/ggml-org/llama.cpp:server-vulkan-b6715",
                "ollama": "docker.io/ollama/ollama:0.12.6", "ollama_rocm": "docker.io/ollama/ollama:0.12.6-rocm"}
    print("\nthe services role would give the AI core%s:" % assumed)
    print("  engine reads CDI specs: %s" % ("no engine here" if cdi is None else cdi))
    print("  backend: %s, runtime: %s, devices: %s" % (plan["backend"], plan["runtime"],
                                                       ", ".join(gpu_device_names(plan)) or "none"))
    print("  device requests: %s" % json.dumps(plan["device_requests"]))
    print("  device nodes: %s, groups: %s" % (plan["devices"] or "none", plan["group_add"] or "none"))
    print("  image: %s" % ai_gpu_image(defaults, plan, engine_name))
    print("  slots: %d, layers on the GPU: %s of %s (GPU memory %s, usable %s, needed %s bytes)"
          % (sizing["slots"], sizing["gpu_layers"], env("MODEL_LAYERS", "32"), sizing["gpu_bytes"],
             sizing["gpu_usable_bytes"], sizing["gpu_needed_bytes"]))
    for line in plan["errors"] + sizing["gpu_errors"] + ([plan["note"]] if plan["note"] else []):
        print("  ! %s" % line)

    binary = env("LLAMA_BENCH") or shutil.which("llama-bench")
    model = env("MODEL")
    if not binary or not model:
        print("\ntokens/s: not measured (needs llama-bench: LLAMA_BENCH or PATH, and a GGUF model: MODEL)")
        return 0
    print("\ntokens/s with llama-bench (%s), prompt 512 / generation 128 tokens, 3 runs:" % model)
    results = {}
    for label, layers in (("GPU (all layers)", 999), ("CPU only", 0)):
        speeds, error = bench(binary, model, layers)
        results[label] = speeds
        print("  %-17s %s" % (label, speeds if speeds else "failed: %s" % error))
    gpu, cpu = results.get("GPU (all layers)"), results.get("CPU only")
    if gpu and cpu and cpu.get("generation"):
        print("  generation speed-up: %.1fx" % (gpu["generation"] / cpu["generation"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
