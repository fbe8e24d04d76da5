"""Kernel NFS detection of nasai.stack.nfs_support, on fake /proc and /lib/modules trees."""

import pytest

from ansible_collections.nasai.stack.plugins.modules import nfs_support

RELEASE = "6.1.0-18-amd64"


def fake_root(tmp_path, filesystems="", builtin="", dep="", selinux=None):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "filesystems").write_text(filesystems)
    modules = tmp_path / "lib" / "modules" / RELEASE
    modules.mkdir(parents=True)
    (modules / "modules.builtin").write_text(builtin)
    (modules / "modules.dep").write_text(dep)
    if selinux is not None:
        (tmp_path / "sys" / "fs" / "selinux").mkdir(parents=True)
        (tmp_path / "sys" / "fs" / "selinux" / "enforce").write_text(selinux)
    return str(tmp_path)


def test_nothing_nfs_in_the_kernel_says_why(tmp_path):
    root = fake_root(tmp_path, "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n")
    found = nfs_support.support(root, RELEASE)
    assert not found["client"]["supported"] and not found["server"]["supported"]
    assert found["client"]["reason"] == (
        f"kernel {RELEASE} has no NFS client: nfs or nfs4 is not in /proc/filesystems and "
        f"/lib/modules/{RELEASE} has no kernel/fs/nfs/nfs.ko")
    assert "no NFS server (nfsd)" in found["server"]["reason"]
    assert found["selinux"] == {"enabled": False, "enforcing": False}


def test_loaded_filesystems_count(tmp_path):
    root = fake_root(tmp_path, "nodev\tnfs\nnodev\tnfs4\nnodev\tnfsd\n")
    found = nfs_support.support(root, RELEASE)
    assert found["client"]["supported"] and found["client"]["filesystems"] == ["nfs", "nfs4"]
    assert found["server"]["supported"] and found["server"]["reason"] == "nfsd in /proc/filesystems"


@pytest.mark.parametrize("suffix", ["", ".xz", ".zst"])
def test_loadable_modules_count(tmp_path, suffix):
    dep = (f"kernel/fs/nfs/nfs.ko{suffix}: kernel/net/sunrpc/sunrpc.ko{suffix}\n"
           f"kernel/fs/nfsd/nfsd.ko{suffix}: kernel/fs/lockd/lockd.ko{suffix}\n")
    found = nfs_support.support(fake_root(tmp_path, "nodev\tsysfs\n", dep=dep), RELEASE)
    assert found["client"]["supported"] and found["client"]["modules"] == ["kernel/fs/nfs/nfs.ko"]
    assert found["server"]["supported"]


def test_built_in_client_without_server(tmp_path):
    found = nfs_support.support(fake_root(tmp_path, builtin="kernel/fs/nfs/nfs.ko\n"), RELEASE)
    assert found["client"]["supported"] and not found["server"]["supported"]


def test_other_kernels_modules_do_not_count(tmp_path):
    root = fake_root(tmp_path)
    other = tmp_path / "lib" / "modules" / "5.10.0-old"
    other.mkdir()
    (other / "modules.dep").write_text("kernel/fs/nfs/nfs.ko:\n")
    assert not nfs_support.support(root, RELEASE)["client"]["supported"]


@pytest.mark.parametrize(("enforce", "expected"), [("1", True), ("0", False)])
def test_selinux(tmp_path, enforce, expected):
    found = nfs_support.support(fake_root(tmp_path, selinux=enforce), RELEASE)
    assert found["selinux"] == {"enabled": True, "enforcing": expected}
