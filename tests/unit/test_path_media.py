"""nasai.stack.path_media's pure parts: /proc/self/mountinfo, the mount that holds a path, the
nearest existing parent of a path not made yet, and the filesystem (device) of each path."""

import os

import pytest

from ansible_collections.nasai.stack.plugins.modules import path_media

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 8:17 / /srv/backup rw,relatime shared:30 - ext4 /dev/sdb1 rw
41 22 8:33 / /srv/my\\040disk rw,relatime shared:31 - xfs /dev/disk/by-label/my\\040label rw
42 40 0:45 / /srv/backup/nfs rw,relatime shared:32 - nfs4 nas2:/export/back\\134slash rw,vers=4.2
43 22 8:17 /restic /container/data/bound rw,relatime shared:30 - ext4 /dev/sdb1 rw
44 22 8:49 / /srv/backup rw,relatime shared:33 - btrfs /dev/sdd1 rw
not a mountinfo line
45 22 8:1 / /short -
"""


def test_unescape_octal():
    assert path_media.unescape("/srv/my\\040disk") == "/srv/my disk"
    assert path_media.unescape("a\\011b\\012c\\134d") == "a\tb\nc\\d"
    assert path_media.unescape("plain/path") == "plain/path"
    # A backslash without digits after it stays (the kernel escapes a backslash as \134).
    assert path_media.unescape("a\\b") == "a\\b"


def test_parse_mountinfo():
    mounts = path_media.parse_mountinfo(MOUNTINFO)
    assert mounts == [
        ("/", "ext4", "/dev/sda1"),
        ("/proc", "proc", "proc"),
        ("/srv/backup", "ext4", "/dev/sdb1"),
        ("/srv/my disk", "xfs", "/dev/disk/by-label/my label"),
        ("/srv/backup/nfs", "nfs4", "nas2:/export/back\\slash"),
        ("/container/data/bound", "ext4", "/dev/sdb1"),
        ("/srv/backup", "btrfs", "/dev/sdd1"),
    ]


def test_optional_fields_do_not_shift_the_separator():
    line = "50 22 8:1 / /data rw shared:1 master:2 propagate_from:3 unbindable - ext4 /dev/sde1 rw\n"
    assert path_media.parse_mountinfo(line) == [("/data", "ext4", "/dev/sde1")]
    assert path_media.parse_mountinfo("") == []


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
def test_mount_of(anchor, expected):
    assert path_media.mount_of(anchor, path_media.parse_mountinfo(MOUNTINFO)) == expected


def test_mount_of_without_mountinfo():
    assert path_media.mount_of("/srv/data", []) == ("/", "unknown", "unknown")


def test_existing_anchor_is_the_path_itself(tmp_path):
    (tmp_path / "data").mkdir()
    assert path_media.existing_anchor(str(tmp_path / "data")) == os.path.realpath(tmp_path / "data")


def test_nearest_existing_parent_of_a_missing_path(tmp_path):
    (tmp_path / "backup").mkdir()
    missing = tmp_path / "backup" / "restic" / "nas1"
    assert path_media.existing_anchor(str(missing)) == os.path.realpath(tmp_path / "backup")
    assert path_media.existing_anchor("/no/such/place/at/all") == "/"


def test_the_anchor_is_resolved(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert path_media.existing_anchor(str(tmp_path / "link" / "missing")) == os.path.realpath(tmp_path / "real")
    assert path_media.existing_anchor(str(tmp_path / "real" / ".." / "real")) == os.path.realpath(tmp_path / "real")


def test_describe_a_missing_path(tmp_path):
    mounts = [("/", "ext4", "/dev/sda1"), (os.path.realpath(tmp_path), "tmpfs", "tmpfs")]
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
    data = path_media.describe(str(tmp_path / "data"), [])
    repo = path_media.describe(str(tmp_path / "not" / "made" / "yet"), [])
    assert data["exists"] and not repo["exists"]
    assert data["device"] == repo["device"]
    # A symbolic link to it names the same filesystem too.
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    assert path_media.describe(str(tmp_path / "alias"), [])["device"] == data["device"]


def test_another_filesystem_has_another_device(tmp_path):
    if os.stat("/proc").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/proc is not a filesystem of its own here")
    assert path_media.describe("/proc", [])["device"] != path_media.describe(str(tmp_path), [])["device"]


def test_the_real_mountinfo_parses():
    try:
        with open("/proc/self/mountinfo") as handle:
            text = handle.read()
    except OSError:
        pytest.skip("no /proc/self/mountinfo")
    mounts = path_media.parse_mountinfo(text)
    assert mounts and all(point.startswith("/") for point, _fstype, _source in mounts)
    assert path_media.mount_of("/", mounts)[0] == "/"
