"""What the collection would give the AI core on this host's GPU, and how fast it is with it.

Runs on the host itself, with or without Ansible installed (a machine with a GPU may have neither
Ansible nor Docker): preflight's GPU detection (nas_facts: nvidia-smi, render nodes, CDI specs, the
NVIDIA Container Toolkit), then the services role's decision (filters ai_gpu_plan and ai_sizing) for
the model and quotas given in the environment, and prints both. Given a GGUF model (MODEL), it then
runs llama-server twice, with every layer on the GPU and with none, and prints the tokens/s of each
(prompt and generation, from llama-server's own timings, the best of 3 completions) and the ratio:
in a container of LLAMA_IMAGE (default: the CUDA, Vulkan or CPU image the role would choose) given
the GPU the way the role would (CDI, --gpus or the render nodes) where Docker is here, else the
llama-server binary (LLAMA_SERVER, or on the PATH).

    python3 benchmarks/gpu-probe.py
    MODEL=/models/qwen2.5-7b-q4_k_m.gguf MODEL_MEMORY=5g MODEL_LAYERS=28 python3 benchmarks/gpu-probe.py

Environment: SERVICES_AI_GPU (auto), MODEL_MEMORY (2g), MODEL_LAYERS (32), SLOT_MEMORY (512m),
SLOTS (0: derived), AI_MEMORY (half the host's memory), GPU_RESERVE (512m), ENGINE (llama_cpp),
N_PREDICT (128 tokens per completion).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import types
import urllib.request
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


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def docker_gpu_args(plan):
    """`docker run` options that give a container the GPU the way the services role would."""
    if plan["runtime"] == "cdi":
        return [arg for name in plan["cdi_devices"] for arg in ("--device", name)]
    if plan["runtime"] == "device_request":
        ids = plan["device_requests"][0].get("device_ids") if plan["device_requests"] else None
        return ["--gpus", "device=%s" % ",".join(ids) if ids else "all"]
    args = [arg for device in plan["devices"] for arg in ("--device", device)]
    return args + [arg for group in plan["group_add"] for arg in ("--group-add", group)]


def completion_speeds(port, n_predict):
    """The best prompt and generation tokens/s of 3 completions (llama-server's own timings)."""
    body = json.dumps({"prompt": "Write a short story about a NAS that learned to think. " * 2,
                       "n_predict": n_predict, "cache_prompt": False, "ignore_eos": True}).encode()
    best = {"prompt": 0.0, "generation": 0.0}
    for _run in range(3):
        request = urllib.request.Request("http://127.0.0.1:%d/completion" % port, data=body,
                                         headers={"Content-Type": "application/json"})
        timings = json.loads(urllib.request.urlopen(request, timeout=600).read())["timings"]
        best["prompt"] = max(best["prompt"], timings.get("prompt_per_second") or 0.0)
        best["generation"] = max(best["generation"], timings.get("predicted_per_second") or 0.0)
    return best


def serve(model, layers, plan, image, binary, n_predict):
    """Start llama-server with `layers` on the GPU, measure, stop it: ({prompt, generation}, error)."""
    port = free_port()
    args = ["--port", str(port), "-ngl", str(layers), "-c", "4096"]
    if image:
        gpu = docker_gpu_args(plan) if layers else []
        started = subprocess.run(["docker", "run", "-d", "--rm", "--network", "host", *gpu, "-v",
                                  "%s:/models/model.gguf:ro" % os.path.abspath(model), image, "--host", "127.0.0.1",
                                  "-m", "/models/model.gguf", *args], capture_output=True, text=True, check=False)
        if started.returncode != 0:
            return None, started.stderr.strip()
        stop = ["docker", "rm", "-f", started.stdout.strip()]
        process = None
    else:
        process = subprocess.Popen([binary, "--host", "127.0.0.1", "-m", model, *args],  # pylint: disable=consider-using-with
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = None
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5).read()
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline or (process is not None and process.poll() is not None):
                    return None, "llama-server did not become healthy"
                time.sleep(1)
        return completion_speeds(port, n_predict), None
    finally:
        if stop:
            subprocess.run(stop, capture_output=True, check=False)
        if process is not None:
            process.terminate()
            process.wait(timeout=60)


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

    model = env("MODEL")
    docker_here = shutil.which("docker") and os.path.exists("/var/run/docker.sock")
    image = env("LLAMA_IMAGE") or (ai_gpu_image(defaults, plan, engine_name) if docker_here else None)
    binary = None if image else env("LLAMA_SERVER") or shutil.which("llama-server")
    if not model or not (image or binary):
        print("\ntokens/s: not measured (needs a GGUF model, MODEL, and Docker or llama-server: LLAMA_SERVER or PATH)")
        return 0
    print("\ntokens/s of llama-server (%s, %s), best of 3 completions of %s tokens:"
          % (model, ("image " + image) if image else binary, env("N_PREDICT", "128")))
    results = {}
    for label, layers in (("GPU (all layers)", 999 if plan["backend"] != "none" else None), ("CPU only", 0)):
        if layers is None:
            print("  %-17s skipped: no GPU the AI core would get" % label)
            continue
        if layers and image and assumed:
            print("  %-17s skipped: a container reaches the GPU only once the toolkit is in (docker_nvidia_toolkit)" % label)
            continue
        speeds, error = serve(model, layers, plan, image, binary, int(env("N_PREDICT", "128")))
        results[label] = speeds
        print("  %-17s %s" % (label, ("prompt %.1f, generation %.1f" % (speeds["prompt"], speeds["generation"]))
                              if speeds else "failed: %s" % error))
    gpu, cpu = results.get("GPU (all layers)"), results.get("CPU only")
    if gpu and cpu and cpu["generation"]:
        print("  generation speed-up on the GPU: %.1fx" % (gpu["generation"] / cpu["generation"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
