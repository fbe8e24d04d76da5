"""The NVIDIA Container Toolkit from NVIDIA's repository: on the Debian 13 NAS, whose simulated GPU's
driver answers (prepare.yml), docker_nvidia_toolkit installs it from the repository laid out like
NVIDIA's (a signed flat repository on the NAS's loopback, tests/harness/nvidia_toolkit_repo.sh),
writes the GPUs' CDI spec with nvidia-ctk, and the engine, its CDI feature on, gives a container the
GPU by its CDI name. A second run adopts the toolkit: nothing changes. (The Debian 12 NAS has no
driver: test_docker.py's bad input refuses the toolkit there.)"""

import json

import pytest

REPO = "http://127.0.0.1:8766/stable/deb"
SOURCES = "/etc/apt/sources.list.d/nvidia-container-toolkit.sources"


@pytest.fixture(scope="module")
def toolkit(converge, host, nas_name):
    if host.system_info.codename != "trixie":
        pytest.skip("the Debian 13 NAS has the GPU")
    # Where test_docker.py left the engine's data (it moves it), so nothing else changes.
    data_root = host.check_output("docker info --format '{{.DockerRootDir}}'")
    extra = {"docker_nvidia_toolkit": True, "docker_nvidia_toolkit_repo_url": REPO, "docker_data_root": data_root,
             "docker_nvidia_toolkit_gpg_key": host.file("/srv/nvidia-repo/key.asc").content_string}
    first = converge(nas_name, extra)
    second = converge(nas_name, extra)
    return first, second


def test_the_toolkit_comes_from_nvidia_s_repository(host, toolkit):
    first, _second = toolkit
    assert first.rc == 0, first.output[-3000:]
    arch = host.check_output("dpkg --print-architecture")
    sources = host.file(SOURCES).content_string
    assert f"URIs: {REPO}/{arch}" in sources and "Suites: /" in sources
    assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc" in sources
    assert host.file("/etc/apt/keyrings/nvidia-container-toolkit.asc").content_string.startswith(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert host.package("nvidia-container-toolkit").version == "1.17.8-1~nasai1"


def test_the_cdi_spec_is_written_and_the_engine_gives_the_gpu_by_its_name(host, toolkit):
    spec = host.file("/etc/cdi/nvidia.yaml").content_string
    assert "kind: nvidia.com/gpu" in spec and "path: /dev/nvidia0" in spec
    assert json.loads(host.file("/etc/docker/daemon.json").content_string)["features"]["cdi"] is True
    nodes = host.check_output("docker run --rm --network none --device nvidia.com/gpu=all nasai/busybox:test "
                              "ls /dev/nvidia0 /dev/nvidiactl")
    assert nodes.split() == ["/dev/nvidia0", "/dev/nvidiactl"]


def test_a_second_run_adopts_the_toolkit(toolkit, nas_name):
    _first, second = toolkit
    assert second.rc == 0 and second.recap(nas_name)["changed"] == 0, second.output[-3000:]
