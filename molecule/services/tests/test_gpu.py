"""The AI core gets the NAS's NVIDIA GPU through a device request on an engine without CDI (Docker
20.10): nvidia-smi reports a 64 MiB GPU and the NVIDIA Container Toolkit's hook is installed
(prepare.yml, both simulated: tests/harness/simulated_gpu.yml). The engine ran the hook for each
replica and gave it the GPU's environment; the offload is sized to the GPU's memory; the replicas
keep their quotas and hardening; no other service gets the GPU."""

import json

AI = ["nasai-ai-1", "nasai-ai-2"]
OTHERS = ["nasai-files", "nasai-logs", "nasai-proxy"]
HOOK_LOG = "/run/nasai-test-gpu-hook.log"


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def process_env(host, pid):
    raw = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def test_each_replica_has_the_gpu_through_the_toolkit_s_hook(host):
    calls = host.file(HOOK_LOG).content_string.splitlines()
    for name in AI:
        config = inspect(host, name)
        assert config["HostConfig"]["DeviceRequests"] == [
            {"Driver": "nvidia", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu", "compute", "utility"]],
             "Options": {}}], name
        # The engine ran the hook when it started this container (its state on stdin names its id) ...
        assert any(line.startswith("prestart ") and config["Id"] in line for line in calls), (name, calls[-3:])
        # ... and gave the process the GPU's environment, which the toolkit reads.
        env = process_env(host, config["State"]["Pid"])
        assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
        assert sorted(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) == ["compute", "utility"]


def test_the_offload_fits_the_gpu_s_memory_and_llama_server_reads_it(host):
    # 64 MiB, no reserve: the 32 MiB model and 2 slots x 32 MiB over 2 layers leave room for 1 layer.
    for name in AI:
        config = inspect(host, name)
        assert "LLAMA_ARG_N_GPU_LAYERS=1" in config["Config"]["Env"]
        # This test build of llama-server has no GPU backend: it says it ignores the layers it was given.
        logs = host.check_output(f"docker logs {name} 2>&1 | head -50")
        assert "--gpu-layers option will be ignored" in logs


def test_the_gpu_replicas_keep_their_quotas_and_hardening(host):
    for name in AI:
        config = inspect(host, name)
        host_config = config["HostConfig"]
        assert config["Config"]["User"] == "65534:65534"
        assert host_config["ReadonlyRootfs"] is True and host_config["CapDrop"] == ["ALL"]
        assert host_config["Memory"] == 256 << 20 and host_config["NanoCpus"] == 1_500_000_000
        assert "NoNewPrivs:\t1" in host.file(f"/proc/{config['State']['Pid']}/status").content_string


def test_no_other_service_gets_the_gpu(host):
    for name in OTHERS:
        host_config = inspect(host, name)["HostConfig"]
        assert not host_config.get("DeviceRequests") and not host_config.get("Devices"), name


def stack_state(host):
    out = host.check_output("docker ps -a --filter label=nasai.stack.service --format '{{.Names}} {{.ID}} {{.Status}}'")
    return sorted(line.split(" ", 2)[:2] for line in out.splitlines())


def test_nvidia_without_a_driver_is_refused_before_any_change(converge, host, nas_name):
    before = stack_state(host), host.file("/container/data/services/config/proxy/haproxy.cfg").md5sum
    host.check_output("mv /usr/local/bin/nvidia-smi /root/nvidia-smi.away")
    try:
        run = converge(nas_name, {"services_ai_gpu": "nvidia"})
    finally:
        host.check_output("mv /root/nvidia-smi.away /usr/local/bin/nvidia-smi")
    assert run.rc != 0
    assert "services_ai_gpu=nvidia: no NVIDIA driver answers on this host" in run.said, run.output[-2000:]
    assert (stack_state(host), host.file("/container/data/services/config/proxy/haproxy.cfg").md5sum) == before
