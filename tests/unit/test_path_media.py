"""nasai.stack.path_media and the shared mount-table helpers it uses (module_utils/host.py): the
mount that holds a path, the nearest existing parent of a path not made yet, and the filesystem
(device) of each path."""

import os

import pytest

from ansible_collections.nasai.stack.plugins.module_utils.host import mount_entry, mount_of, unescape_mount_field
from ansible_collections.nasai.stack.plugins.modules import path_media

# /proc/mounts: source, mount point, type, options (escaped as the kernel does).
MOUNTS = """\
/dev/sda1 / ext4 rw,relatime,errors=remount-ro 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/sdb1 /srv/backup ext4 rw,relatime 0 0
/dev/disk/by-label/my\\040label /srv/my\\040disk xfs rw,relatime 0 0
nas2:/export/back\\134slash /srv/backup/nfs nfs4 rw,relatime,vers=4.2 0 0
/dev/sdb1 /container/data/bound ext4 rw,relatime 0 0
/dev/sdd1 /srv/backup btrfs rw,relatime 0 0
not-a-line
"""


def test_unescape_octal():
    assert unescape_mount_field("/srv/my\\040disk") == "/srv/my disk"
    assert unescape_mount_field("a\\011b\\012c\\134d") == "a\tb\nc\\d"
    assert unescape_mount_field("plain/path") == "plain/path"
    # A backslash without digits after it stays (the kernel escapes a backslash as \\134).
    assert unescape_mount_field("a\\b") == "a\\b"


@pytest.mark.parametrize("anchor, expected", [
    ("/", ("/", "ext4", "/dev/sda1")),
    ("/etc/nasai", ("/", "ext4", "/dev/sda1")),
    # The deepest mount point wins.
    ("/srv/backup/nfs/nas1", ("/srv/backup/nfs", "nfs4", "nas2:/export/back\\slash")),
    ("/srv/backup/nfs", ("/srv/backup/nfs", "nfs4", "nas2:/export/back\\slash")),
    # Of two mounts on the same point the last one (on top) wins.
    ("/srv/backup/restic", ("/srv/backup", "btrfs", "/dev/sdd1")),
    ("/srv/backup", ("/srv/backup", "btrfs", "/dev/sdd1")),
    # A name that only starts like a mount point is not inside it.
    ("/srv/backups/restic", ("/", "ext4", "/dev/sda1")),
    ("/srv/backup/nfsx", ("/srv/backup", "btrfs", "/dev/sdd1")),
    ("/srv/my disk/restic", ("/srv/my disk", "xfs", "/dev/disk/by-label/my label")),
])
def test_mount_entry(anchor, expected):
    assert mount_entry(anchor, MOUNTS) == expected
    # The older two-field answer is the same mechanism.
    assert mount_of(anchor, MOUNTS) == expected[:2]


def test_mount_entry_without_mounts():
    assert mount_entry("/srv/data", "") == ("/", "unknown", "unknown")


def test_existing_anchor_is_the_path_itself(tmp_path):
    (tmp_path / "data").mkdir()
    assert path_media.describe(str(tmp_path / "data"), "")["anchor"] == os.path.realpath(tmp_path / "data")


def test_nearest_existing_parent_of_a_missing_path(tmp_path):
    (tmp_path / "backup").mkdir()
    missing = tmp_path / "backup" / "restic" / "nas1"
    assert path_media.describe(str(missing), "")["anchor"] == os.path.realpath(tmp_path / "backup")
    assert path_media.describe("/no/such/place/at/all", "")["anchor"] == "/"


def test_the_anchor_is_resolved(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert path_media.describe(str(tmp_path / "link" / "missing"), "")["anchor"] == os.path.realpath(tmp_path / "real")
    assert path_media.describe(str(tmp_path / "real" / ".." / "real"), "")["anchor"] == os.path.realpath(tmp_path / "real")


def test_describe_a_missing_path(tmp_path):
    mounts = "/dev/sda1 / ext4 rw 0 0\ntmpfs %s tmpfs rw 0 0\n" % os.path.realpath(tmp_path)
    found = path_media.describe(str(tmp_path / "backup" / "restic"), mounts)
    assert found["path"] == str(tmp_path / "backup" / "restic")
    assert found["exists"] is False
    assert found["anchor"] == os.path.realpath(tmp_path)
    assert found["device"] == os.stat(tmp_path).st_dev
    assert (found["mount_point"], found["fstype"], found["source"]) == (os.path.realpath(tmp_path), "tmpfs", "tmpfs")
    assert 0 <= found["free_bytes"] <= found["size_bytes"] and found["size_bytes"] > 0


def test_two_paths_on_the_same_filesystem_have_the_same_device(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file").write_text("x")
    data = path_media.describe(str(tmp_path / "data"), "")
    repo = path_media.describe(str(tmp_path / "not" / "made" / "yet"), "")
    assert data["exists"] and not repo["exists"]
    assert data["device"] == repo["device"]
    # A symbolic link to it names the same filesystem too.
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    assert path_media.describe(str(tmp_path / "alias"), "")["device"] == data["device"]


def test_another_filesystem_has_another_device(tmp_path):
    if os.stat("/proc").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/proc is not a filesystem of its own here")
    assert path_media.describe("/proc", "")["device"] != path_media.describe(str(tmp_path), "")["device"]


def test_the_real_mount_table_parses():
    try:
        with open("/proc/mounts") as handle:
            text = handle.read()
    except OSError:
        pytest.skip("no /proc/mounts")
    assert mount_entry("/", text)[0] == "/"
    assert all(mount_entry(line.split()[1], text)[0].startswith("/") for line in text.splitlines() if line.strip())
