"""Platform detection and data-path helpers of nasai.stack.nas_facts, on fake root trees."""

import pytest

from ansible_collections.nasai.stack.plugins.module_utils.host import nearest_existing, unsafe_data_path
from ansible_collections.nasai.stack.plugins.modules import nas_facts

MARKERS = {
    "synology_dsm": {"etc.defaults/VERSION": 'majorversion="7"\nproductversion="7.2.1"\n'},
    "qnap_qts": {"etc/config/uLinux.conf": "[System]\nModel = TS-453D\nVersion = 5.1.3\n"},
    "unraid": {"etc/unraid-version": 'version="6.12.10"\n'},
    "truenas_scale": {"usr/bin/midclt": "", "etc/version": "24.10.2\n"},
    "openmediavault": {
        "etc/openmediavault/config.xml": "<config/>",
        "var/lib/dpkg/status": "Package: openmediavault\nStatus: install ok\nVersion: 7.4.17-1\n\n",
    },
}
EXPECTED = {"synology_dsm": "7.2.1", "qnap_qts": "5.1.3", "unraid": "6.12.10",
            "truenas_scale": "24.10.2", "openmediavault": "7.4.17-1"}


def make_tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("platform", sorted(MARKERS))
def test_each_nas_platform_is_told_from_its_markers(tmp_path, platform):
    make_tree(tmp_path, dict(MARKERS[platform], **{"etc/os-release": 'ID=debian\nVERSION_ID="12"\n'}))
    found = nas_facts.detect_platform(str(tmp_path))
    assert found["name"] == platform
    assert found["version"] == EXPECTED[platform]
    assert found["appliance"] is (platform != "openmediavault")


@pytest.mark.parametrize(("os_release", "name", "version"), [
    ('ID=debian\nVERSION_ID="13"\n', "debian", "13"),
    ('NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\n', "ubuntu", "24.04"),
    ("ID=alpine\nVERSION_ID=3.20.0\n", "linux", "3.20.0"),
])
def test_plain_distributions_fall_back_to_os_release(tmp_path, os_release, name, version):
    make_tree(tmp_path, {"etc/os-release": os_release})
    found = nas_facts.detect_platform(str(tmp_path))
    assert (found["name"], found["version"], found["appliance"]) == (name, version, False)


def test_mount_of_picks_the_longest_mount_point():
    mounts = ("overlay / overlay rw 0 0\n/dev/sdb1 /srv/dev-disk-by-label-data btrfs rw 0 0\n"
              "/dev/sdc1 /srv/dev-disk-by-label-data2 xfs rw 0 0\n")
    assert nas_facts.mount_of("/srv/dev-disk-by-label-data/container", mounts) == \
        ("/srv/dev-disk-by-label-data", "btrfs")
    assert nas_facts.mount_of("/srv/dev-disk-by-label-data2", mounts) == ("/srv/dev-disk-by-label-data2", "xfs")
    assert nas_facts.mount_of("/container/data", mounts) == ("/", "overlay")


def test_memory_is_lowered_to_the_cgroup_limit(tmp_path):
    make_tree(tmp_path, {
        "proc/meminfo": "MemTotal:       24000000 kB\n",
        "proc/self/cgroup": "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
    })
    assert nas_facts.memory_bytes(str(tmp_path)) == 2147483648


def test_unlimited_cgroup_keeps_memtotal(tmp_path):
    make_tree(tmp_path, {
        "proc/meminfo": "MemTotal:       8000000 kB\n",
        "proc/self/cgroup": "0::/\n",
        "sys/fs/cgroup/memory.max": "max\n",
    })
    assert nas_facts.memory_bytes(str(tmp_path)) == 8000000 * 1024


def test_data_path_that_does_not_exist_is_measured_on_its_parent(tmp_path):
    facts = nas_facts.data_path_facts(str(tmp_path / "not" / "yet"))
    assert facts["exists"] is False and facts["probed"] == str(tmp_path)
    assert facts["size_available"] > 0


def test_package_manager_is_usable_only_when_its_tools_run(tmp_path):
    assert nas_facts.package_manager(str(tmp_path)) == {
        "name": None, "usable": False, "tools": {"apt-get": "missing", "dpkg": "missing"}}
    for name in ("apt-get", "dpkg"):
        make_tree(tmp_path, {"usr/bin/" + name: "#!/bin/sh\n"})
        (tmp_path / "usr/bin" / name).chmod(0o755)
    assert nas_facts.package_manager(str(tmp_path))["usable"] is True
    # TrueNAS SCALE: the tools are there without their x bit.
    (tmp_path / "usr/bin/dpkg").chmod(0o644)
    found = nas_facts.package_manager(str(tmp_path))
    assert found["usable"] is False and found["name"] == "apt"
    assert found["tools"]["dpkg"] == "not executable"


MNT = ("boot-pool/ROOT/24.10.2 / zfs rw 0 0\n/dev/sdb1 /mnt/backup ext4 rw 0 0\n"
       "tank /mnt/tank zfs rw 0 0\ntank/ix-apps /mnt/.ix-apps zfs rw 0 0\n"
       "tank/media /mnt/tank/media zfs rw 0 0\n")


def test_scale_pools_are_the_file_systems_right_under_mnt_zfs_first():
    assert nas_facts.pools(MNT) == ["tank", "backup"]
    assert nas_facts.pools("overlay / overlay rw 0 0\n") == []


@pytest.mark.parametrize(("platform", "pools", "path"), [
    ("synology_dsm", [], "/volume1/nasai"),
    ("qnap_qts", [], "/share/CACHEDEV1_DATA/nasai"),
    ("truenas_scale", ["tank", "backup"], "/mnt/tank/nasai"),
    ("truenas_scale", [], None),
    ("unraid", [], "/mnt/user/appdata/nasai"),
    ("openmediavault", [], None),
    ("debian", [], None),
])
def test_platform_data_path(platform, pools, path):
    assert nas_facts.platform_data_path(platform, pools) == path


def test_python_facts_say_whether_requests_is_there():
    found = nas_facts.python_facts()
    assert found["version"].startswith("3.") and isinstance(found["requests"], bool)


@pytest.mark.parametrize(("path", "exists", "expected"), [
    ("/srv/a/b", {"/srv"}, "/srv"), ("/srv/a", set(), "/"), ("container/data", set(), "."),
    ("container/data", {"container"}, "container")])
def test_nearest_existing_ends_for_relative_paths_too(path, exists, expected):
    # A relative path whose parents do not exist used to loop forever.
    assert nearest_existing(path, exists=lambda p: p in exists) == expected


@pytest.mark.parametrize(("path", "why"), [
    ("container/data", "absolute"), ("/srv/nasai/../../etc", "'..'"), ("/", "system directory"),
    ("/etc", "system directory"), ("/usr/local/nasai", "system directory"), ("/var", "system directory"),
    ("/srv/dev-disk-by-label-data/nasai", ""), ("/volume1/docker/nasai", ""), ("/mnt/tank/apps/nasai", ""),
    ("/container/data", ""), ("/var/lib/nasai", "")])
def test_unsafe_data_paths_are_named(path, why):
    assert (why in unsafe_data_path(path)) if why else unsafe_data_path(path) == ""


def test_local_facts_are_the_collections_fact_files(tmp_path):
    (tmp_path / "nasai_preflight.fact").write_text('{"a": 1}\n')
    (tmp_path / "other.fact").write_text("{}")
    assert nas_facts.local_facts(str(tmp_path)) == {"nasai_preflight": '{"a": 1}\n'}
    assert nas_facts.local_facts(str(tmp_path / "missing")) == {} and nas_facts.local_facts(None) == {}


def test_listening_ports_beyond_loopback_name_their_program_and_whether_it_is_a_container(tmp_path):
    proc = tmp_path / "proc"
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (proc / "net").mkdir(parents=True)
    # 0.0.0.0:443 LISTEN (inode 11), 127.0.0.1:8081 LISTEN (12, loopback: left out),
    # 0.0.0.0:8443 LISTEN (13), 0.0.0.0:22 ESTABLISHED (14, not listening).
    (proc / "net" / "tcp").write_text(header + "".join(
        f"   0: {address}:{port:04X} 00000000:0000 {state} 0:0 0:0 0 0 0 {inode} 1\n"
        for address, port, state, inode in (("00000000", 443, "0A", 11), ("0100007F", 8081, "0A", 12),
                                            ("00000000", 8443, "0A", 13), ("00000000", 22, "01", 14))))
    (proc / "net" / "tcp6").write_text(header)
    for pid, comm, inode, pid_ns in ((1, "systemd", None, "pid:[1]"), (80, "nginx", 11, "pid:[1]"),
                                     (90, "haproxy", 13, "pid:[2]")):
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "ns").mkdir()
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "ns" / "pid").symlink_to(pid_ns)
        if inode:
            (proc / str(pid) / "fd" / "3").symlink_to(f"socket:[{inode}]")
    assert nas_facts.listening_tcp(str(tmp_path)) == [
        {"port": 443, "process": "nginx", "pid": 80, "container": False},
        {"port": 8443, "process": "haproxy", "pid": 90, "container": True}]


def test_nvidia_smi_gives_each_gpu_with_its_memory():
    out = "0, NVIDIA H200, 143771, GPU-5b1c\n1, NVIDIA RTX 4060, [N/A], GPU-77aa\nNo devices were found\n"
    assert nas_facts.parse_nvidia_smi(out) == [
        {"index": 0, "name": "NVIDIA H200", "memory_bytes": 143771 << 20, "uuid": "GPU-5b1c"},
        {"index": 1, "name": "NVIDIA RTX 4060", "memory_bytes": None, "uuid": "GPU-77aa"}]


CDI_YAML = """cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
  - name: all
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
containerEdits:
  env: [NVIDIA_VISIBLE_DEVICES=void]
"""


def test_cdi_specs_in_json_and_yaml_give_their_device_names(tmp_path, monkeypatch):
    (tmp_path / "etc" / "cdi").mkdir(parents=True)
    (tmp_path / "var" / "run" / "cdi").mkdir(parents=True)
    (tmp_path / "etc" / "cdi" / "nvidia.yaml").write_text(CDI_YAML)
    (tmp_path / "var" / "run" / "cdi" / "amd.json").write_text('{"cdiVersion": "0.6.0", "kind": "amd.com/gpu", '
                                                               '"devices": [{"name": "gpu0", "containerEdits": {}}]}')
    (tmp_path / "etc" / "cdi" / "README").write_text("kind: not/a-spec")
    assert nas_facts.cdi_devices(str(tmp_path)) == ["amd.com/gpu=gpu0", "nvidia.com/gpu=0", "nvidia.com/gpu=all"]
    # Without PyYAML (a NAS's Python may lack it) the YAML spec is read line by line, with the same result.
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)
    assert nas_facts.cdi_device_names(CDI_YAML) == ["nvidia.com/gpu=0", "nvidia.com/gpu=all"]
    assert nas_facts.cdi_device_names("kind: nokind\ndevices:\n  - name: x\n") == []


def test_gpu_facts_from_device_nodes_render_nodes_and_specs(tmp_path):
    (tmp_path / "dev" / "dri").mkdir(parents=True)
    (tmp_path / "dev" / "nvidia0").write_text("")
    (tmp_path / "dev" / "dri" / "renderD128").write_text("")
    (tmp_path / "dev" / "dri" / "card0").write_text("")
    gpu = nas_facts.detect_gpu(None, str(tmp_path))
    assert gpu["present"] and gpu["nvidia"] and not gpu["nvidia_driver"] and gpu["nvidia_gpus"] == []
    assert gpu["memory_bytes"] is None and gpu["kfd"] is False and gpu["cdi_devices"] == []
    node = str(tmp_path / "dev" / "dri" / "renderD128")
    assert gpu["dri_render_nodes"] == [node]
    assert gpu["dri"] == [{"path": node, "gid": (tmp_path / "dev" / "dri" / "renderD128").stat().st_gid,
                           "group": gpu["dri"][0]["group"]}]
