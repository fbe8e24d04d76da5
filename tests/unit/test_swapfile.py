"""Size parsing and swap-signature detection of nasai.stack.swapfile."""

import os

import pytest

from ansible_collections.nasai.stack.plugins.modules import swapfile


@pytest.mark.parametrize(("text", "expected"), [
    ("4G", 4 << 30), ("4GiB", 4 << 30), ("4 GB", 4 << 30), ("512M", 512 << 20), ("512m", 512 << 20),
    ("1.5G", 3 << 29), ("4096", 4096), ("64K", 64 << 10), ("2T", 2 << 40),
])
def test_parse_size(text, expected):
    assert swapfile.parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "", "4X", "G4", "-1G", "4 G B"])
def test_parse_size_rejects_non_sizes(text):
    assert swapfile.parse_size(text) is None


def test_swap_signature_is_read_at_the_end_of_the_first_page(tmp_path):
    page = os.sysconf("SC_PAGE_SIZE")
    swap = tmp_path / "swap"
    swap.write_bytes(bytes(page - 10) + b"SWAPSPACE2" + bytes(page))
    data = tmp_path / "data"
    data.write_bytes(b"precious" * page)
    assert swapfile.has_swap_signature(str(swap))
    assert not swapfile.has_swap_signature(str(data))
    assert not swapfile.has_swap_signature(str(tmp_path / "missing"))


FSTAB = "# /etc/fstab\nUUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n"


def test_fstab_keeps_one_line_for_the_file_and_every_other_line():
    assert swapfile.fstab_with(FSTAB, "/swapfile", "sw") == FSTAB
    # Spaced differently but the same fields: left as it is.
    spaced = FSTAB.replace("/swapfile none swap sw 0 0", "/swapfile\tnone  swap sw 0 0")
    assert swapfile.fstab_with(spaced, "/swapfile", "sw") == spaced
    doubled = FSTAB + "/swapfile none swap sw,pri=1 0 0\n"
    assert swapfile.fstab_with(doubled, "/swapfile", "sw,pri=5") == (
        "# /etc/fstab\nUUID=1 / ext4 defaults 0 1\n/swapfile none swap sw,pri=5 0 0\n")


def test_fstab_adds_and_removes_the_line():
    bare = "UUID=1 / ext4 defaults 0 1"  # no final newline
    added = swapfile.fstab_with(bare, "/srv/swap/swapfile", "sw")
    assert added == bare + "\n/srv/swap/swapfile none swap sw 0 0\n"
    assert swapfile.fstab_with(added, "/srv/swap/swapfile", None) == bare + "\n"
    # A commented line and another file's line are not ours.
    other = "#/swapfile none swap sw 0 0\n/other none swap sw 0 0\n"
    assert swapfile.fstab_with(other, "/swapfile", None) == other


def test_fstab_written_in_place_keeps_the_mode(tmp_path):
    path = tmp_path / "fstab"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    swapfile.write_in_place(str(path), "new\n")
    assert path.read_text() == "new\n" and os.stat(path).st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["fstab"]
