"""The swap file is real: active in /proc/swaps at its size and priority, persisted, resized,
removed, and bad input or a full disk is refused before anything changes."""

import pytest

PATH = "/swapvol/swapfile"
SIZE = 64 << 20


def swap_table(host):
    """Sorted (path, size_kib, priority) rows of the kernel's own table; `Used` is left out, as
    it moves whenever the kernel swaps."""
    rows = host.file("/proc/swaps").content_string.splitlines()[1:]
    return sorted((f[0], int(f[2]), int(f[4])) for f in (r.split() for r in rows))


def swaps(host):
    """{path: (size_kib, priority)} from the kernel's own table."""
    return {path: (size, priority) for path, size, priority in swap_table(host)}


def test_swap_file_is_active_with_its_size_and_priority(host):
    # The kernel reports the size less the header page.
    page = int(host.check_output("getconf PAGESIZE"))
    assert swaps(host)[PATH] == ((SIZE - page) // 1024, 5)


def test_swap_file_is_private_and_signed(host):
    f = host.file(PATH)
    assert f.user == "root" and f.mode == 0o600 and f.size == SIZE
    assert host.check_output(f"blkid -p -o value -s TYPE {PATH}") == "swap"


def test_swap_file_is_in_fstab_once(host):
    lines = [line.split() for line in host.file("/etc/fstab").content_string.splitlines()]
    entries = [fields for fields in lines if fields and fields[0] == PATH]
    assert entries == [[PATH, "none", "swap", "sw,pri=5", "0", "0"]]


def test_swappiness_is_set_and_persisted(host):
    value = host.file("/etc/sysctl.d/60-nasai-swap.conf").content_string.strip()
    assert value.startswith("vm.swappiness=")
    assert host.file("/proc/sys/vm/swappiness").content_string.strip() == value.split("=")[1]


def test_resize_then_absent(converge, host, nas_name):
    path = "/swapvol/resize-test"
    # swappiness is left out: `absent` would also drop its persisted setting, which the
    # main swap file of this host still wants.
    common = {"swap_file_path": path, "swap_priority": None, "swap_swappiness": None}
    run = converge(nas_name, dict(common, swap_file_size="32M"))
    assert run.rc == 0, run.output
    assert swaps(host)[path][0] == (32 << 10) - 4
    run = converge(nas_name, dict(common, swap_file_size="48M"))
    assert run.rc == 0, run.output
    assert swaps(host)[path][0] == (48 << 10) - 4 and host.file(path).size == 48 << 20
    run = converge(nas_name, dict(common, swap_file_size="48M", swap_state="absent"))
    assert run.rc == 0, run.output
    assert path not in swaps(host) and not host.file(path).exists
    assert path not in host.file("/etc/fstab").content_string
    assert PATH in swaps(host), "removing one swap file must leave the other alone"


@pytest.mark.parametrize("fs", ["btrfs", "xfs"])
def test_swap_file_on_btrfs_and_xfs(converge, host, nas_name, fs):
    path = f"/swap{fs}/{nas_name}"
    assert host.check_output(f"stat -f -c %T /swap{fs}") == fs
    common = {"swap_file_path": path, "swap_file_size": "32M", "swap_min_free": "16M",
              "swap_priority": None, "swap_swappiness": None}
    run = converge(nas_name, common)
    assert run.rc == 0, run.output
    assert swaps(host)[path][0] == (32 << 10) - 4
    if fs == "btrfs":
        # The kernel only swaps to a btrfs file without copy-on-write.
        assert "C" in host.check_output(f"lsattr {path}").split()[0]
    run = converge(nas_name, dict(common, swap_state="absent"))
    assert run.rc == 0, run.output
    assert path not in swaps(host) and not host.file(path).exists


def test_check_mode_changes_nothing(converge, host, nas_name):
    run = converge(nas_name, None, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(nas_name)["changed"] == 0
    path = "/swapvol/check-mode"
    run = converge(nas_name, {"swap_file_path": path}, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(nas_name)["changed"] >= 1
    assert not host.file(path).exists and path not in swaps(host)


def test_refuses_to_fill_the_disk(converge, host, nas_name):
    path = "/swapvol/too-big"
    run = converge(nas_name, {"swap_file_path": path, "swap_file_size": "64T"})
    assert run.rc != 0
    assert "not enough space for a 67108864 MiB swap file" in run.output
    assert not host.file(path).exists


def test_refuses_to_overwrite_a_file_that_is_not_swap(converge, host, nas_name):
    path = "/swapvol/user-data"
    host.check_output(f"echo precious > {path}")
    for state in ("present", "absent"):
        run = converge(nas_name, {"swap_file_path": path, "swap_state": state})
        assert run.rc != 0 and "is not a swap file; refusing" in run.output
        assert host.file(path).content_string == "precious\n"


@pytest.mark.parametrize(("extra", "message"), [
    ({"swap_file_size": "lots"}, "swap_file_size must be a size above zero"),
    ({"swap_file_size": "0G"}, "swap_file_size must be a size above zero"),
    ({"swap_file_path": "swapfile"}, "swap_file_path must be an absolute path"),
    ({"swap_swappiness": 300}, "swap_swappiness must be between 0 and 200"),
    ({"swap_state": "maybe"}, "swap_state"),
    ({"swap_min_free": "a bit"}, "swap_min_free must be a size"),
])
def test_bad_input_fails_before_any_change(converge, host, nas_name, extra, message):
    before = swap_table(host), host.file("/etc/fstab").content_string
    run = converge(nas_name, dict({"swap_file_path": "/swapvol/bad-input"}, **extra))
    assert run.rc != 0
    assert message in run.output
    assert (swap_table(host), host.file("/etc/fstab").content_string) == before
    assert not host.file("/swapvol/bad-input").exists
