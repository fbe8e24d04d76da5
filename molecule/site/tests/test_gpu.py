"""The AI core uses the NAS's GPU: nas-site-trixie's NVIDIA GPU through CDI (engine 26.1, its cdi
feature turned on by the docker role), nas-site-omv's iGPU render node with the group that owns it
(both simulated: tests/harness/simulated_gpu.yml). Each AI core sees exactly the device nodes and the
environment the CDI spec or the host give, can open them (ENXIO: no driver is behind the simulated
nodes; a refused open says EPERM or EACCES), keeps its quotas and hardening, and serves."""

import json

import pytest
import testinfra

OMV, TRIXIE = "nas-site-omv", "nas-site-trixie"


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def char_devices(host, name):
    """The character devices under the container's /dev (read through its root from the NAS)."""
    pid = inspect(host, name)["State"]["Pid"]
    out = host.check_output(f"cd /proc/{pid}/root && find dev -type c")
    return {"/" + line for line in out.split()}


def process_env(host, name):
    pid = inspect(host, name)["State"]["Pid"]
    raw = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def open_error(host, name, path):
    """What opening `path` for reading says inside the container, as its own user."""
    return host.run(f"docker exec {name} head -c1 {path}").stderr


def test_preflight_found_each_gpu_and_how_a_container_reaches_it(omv, trixie):
    nvidia = json.loads(trixie.file("/etc/ansible/facts.d/nasai_preflight.fact").content_string)["gpu"]
    assert nvidia["nvidia"] and nvidia["nvidia_driver"]
    assert nvidia["nvidia_gpus"] == [{"index": 0, "name": "NASAI Test GPU", "memory_bytes": 4096 << 20,
                                      "uuid": "GPU-nasai-test-0"}]
    assert nvidia["memory_bytes"] == 4096 << 20
    assert nvidia["cdi_devices"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=all"] and nvidia["dri"] == []
    igpu = json.loads(omv.file("/etc/ansible/facts.d/nasai_preflight.fact").content_string)["gpu"]
    render_gid = int(omv.check_output("getent group render").split(":")[2])
    assert igpu["dri"] == [{"path": "/dev/dri/renderD128", "gid": render_gid, "group": "render"}]
    assert not igpu["nvidia"] and igpu["memory_bytes"] is None and igpu["cdi_devices"] == []


def test_the_engine_reads_cdi_specs_where_there_is_a_gpu(omv, trixie):
    assert json.loads(trixie.file("/etc/docker/daemon.json").content_string)["features"] == {"cdi": True}
    assert json.loads(trixie.check_output("docker info --format '{{json .CDISpecDirs}}'")) == ["/etc/cdi", "/var/run/cdi"]
    # No NVIDIA GPU and no CDI spec on nas-site-omv: its engine settings stay as they were.
    assert "features" not in json.loads(omv.file("/etc/docker/daemon.json").content_string)


def test_the_nvidia_gpu_reaches_the_ai_core_through_cdi(trixie):
    config = inspect(trixie, "nasai-ai")
    assert config["HostConfig"]["DeviceRequests"] == [
        {"Driver": "cdi", "Count": 0, "DeviceIDs": ["nvidia.com/gpu=all"], "Capabilities": [], "Options": {}}]
    # Exactly the spec's nodes on top of what any container of the stack has.
    assert char_devices(trixie, "nasai-ai") - char_devices(trixie, "nasai-files") == {"/dev/nvidia0", "/dev/nvidiactl"}
    env = process_env(trixie, "nasai-ai")
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void" and env["NASAI_TEST_CDI"] == "nvidia.yaml"
    for node in ("/dev/nvidia0", "/dev/nvidiactl"):
        assert "No such device or address" in open_error(trixie, "nasai-ai", node), node
    # 4096 MiB hold the whole tiny model (2 layers) with its slots.
    assert "LLAMA_ARG_N_GPU_LAYERS=2" in config["Config"]["Env"]


def test_the_igpu_render_node_reaches_the_ai_core_with_its_group(omv):
    config = inspect(omv, "nasai-ai")
    render_gid = omv.check_output("getent group render").split(":")[2]
    assert config["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/dri/renderD128", "PathInContainer": "/dev/dri/renderD128", "CgroupPermissions": "rwm"}]
    assert config["HostConfig"]["GroupAdd"] == [render_gid] and not config["HostConfig"]["DeviceRequests"]
    assert char_devices(omv, "nasai-ai") - char_devices(omv, "nasai-files") == {"/dev/dri/renderD128"}
    groups = omv.check_output("docker exec nasai-ai id -G").split()
    assert render_gid in groups
    # Mode 0660 root:render: the group lets the AI core's user open it.
    assert omv.file("/dev/dri/renderD128").mode == 0o660
    assert "No such device or address" in open_error(omv, "nasai-ai", "/dev/dri/renderD128")
    assert "LLAMA_ARG_N_GPU_LAYERS=2" in config["Config"]["Env"]


@pytest.mark.parametrize("nas", [OMV, TRIXIE])
def test_the_gpu_ai_core_keeps_its_quotas_and_hardening_and_serves(nas):
    host = testinfra.get_host(f"docker://{nas}")
    config = inspect(host, "nasai-ai")
    assert config["State"]["Health"]["Status"] == "healthy"
    assert config["Config"]["User"] == "65534:65534"
    assert config["HostConfig"]["ReadonlyRootfs"] is True and config["HostConfig"]["CapDrop"] == ["ALL"]
    assert config["HostConfig"]["Memory"] == 256 << 20 and config["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert "NoNewPrivs:\t1" in host.file(f"/proc/{config['State']['Pid']}/status").content_string
    # This test build of llama-server has no GPU backend: it says it ignores the layers it was given.
    assert "--gpu-layers option will be ignored" in host.check_output("docker logs nasai-ai 2>&1 | head -50")
