"""Parsing and data-root helpers of nasai.stack.docker_engine_info, on fake trees."""

import pytest

from ansible_collections.nasai.stack.plugins.modules import docker_engine_info as info


def test_dpkg_query_keeps_only_installed_packages():
    out = "docker.io\tii \t20.10.24+dfsg1-1\ndocker-ce\tun \t\ndocker-cli\trc \t26.1.5\n"
    assert info.parse_dpkg_query(out) == {"docker.io": "20.10.24+dfsg1-1"}


def test_exec_start_is_read_from_the_unit_file_with_continuations():
    unit = ("[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// \\\n"
            "   --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\nExecReload=/bin/kill -s HUP $MAINPID\n")
    assert info.exec_start_of(unit) == "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"
    assert info.exec_start_of(None) is None


def test_an_empty_skeleton_is_not_data(tmp_path):
    for sub in ("containers", "image/overlay2/imagedb/content/sha256", "volumes", "overlay2"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "volumes" / "metadata.db").write_bytes(b"x")
    assert not info.has_docker_data(str(tmp_path))
    assert not info.has_docker_data(str(tmp_path / "missing"))


@pytest.mark.parametrize("rel", ["image/overlay2/imagedb/content/sha256/abc", "containers/abc", "volumes/models"])
def test_images_containers_or_volumes_are_data(tmp_path, rel):
    (tmp_path / rel).mkdir(parents=True)
    assert info.has_docker_data(str(tmp_path))


MOUNTS = ("overlay / overlay rw 0 0\n/dev/sdb1 /srv/pool btrfs rw 0 0\n"
          "tank /srv/pool/zfs zfs rw 0 0\n/dev/sdc1 /srv/pool2 ext4 rw 0 0\n")


@pytest.mark.parametrize(("path", "existing", "fstype"), [
    ("/srv/pool/docker", {"/srv/pool"}, "btrfs"),
    ("/srv/pool/zfs/docker/new", {"/srv/pool", "/srv/pool/zfs"}, "zfs"),
    ("/srv/pool2/docker", {"/srv/pool2", "/srv/pool2/docker"}, "ext4"),
    ("/srv/pool2x/docker", set(), "overlay"),
])
def test_fstype_is_that_of_the_nearest_existing_parent(path, existing, fstype):
    assert info.fstype_of(path, MOUNTS, exists=existing.__contains__, realpath=lambda p: p) == fstype


def test_daemon_config_that_is_not_json_is_reported(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{ not json")
    assert info.read_config(str(path))["valid"] is False
    path.write_text("")
    assert info.read_config(str(path)) == {"exists": True, "valid": True, "settings": {}, "error": None}
    assert info.read_config(str(tmp_path / "none"))["exists"] is False


def test_dropins_are_read_by_name(tmp_path):
    (tmp_path / "http-proxy.conf").write_text("[Service]\n")
    (tmp_path / "notes.txt").write_text("x")
    assert info.read_dropins(str(tmp_path)) == {"http-proxy.conf": "[Service]\n"}
    assert info.read_dropins(str(tmp_path / "missing")) is None


class FakeModule:
    def __init__(self, rc=0, out="amd64\n"):
        self.calls = []
        self.result = (rc, out, "")

    def run_command(self, argv):
        self.calls.append(argv)
        return self.result


def test_architecture_comes_from_dpkg_when_it_runs():
    module = FakeModule(out="arm64\n")
    assert info.deb_architecture(module, "/usr/bin/dpkg") == "arm64"


@pytest.mark.parametrize(("machine", "arch"), [("x86_64", "amd64"), ("aarch64", "arm64"), ("mips", "mips")])
def test_architecture_falls_back_to_the_machine_without_a_runnable_dpkg(monkeypatch, machine, arch):
    monkeypatch.setattr(info.platform, "machine", lambda: machine)
    module = FakeModule()
    assert info.deb_architecture(module, None) == arch
    assert module.calls == []
    assert info.deb_architecture(FakeModule(rc=2, out=""), "/usr/bin/dpkg") == arch


def test_a_tool_without_its_x_bit_is_not_run(tmp_path, monkeypatch):
    """TrueNAS SCALE keeps dpkg but removes its x bit: running it failed with rc 13."""
    dpkg = tmp_path / "dpkg"
    dpkg.write_text("#!/bin/sh\necho amd64\n")
    dpkg.chmod(0o644)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert info.executable("dpkg") is None
    dpkg.chmod(0o755)
    assert info.executable("dpkg") == str(dpkg)
