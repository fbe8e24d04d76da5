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
