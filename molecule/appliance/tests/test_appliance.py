"""site.yml on simulated Synology DSM, QNAP QTS and TrueNAS SCALE appliances (no `requests`, no
usable apt/dpkg): each gets the whole stack on its platform's data path and ports, serving a chat
completion over TLS, while the vendor's engine, package manager and web UI stay exactly as they
were. An Unraid-like host without Python is stopped by preflight, with the fix, before any change."""

import json
import shlex

import pytest
import testinfra

# Per platform: the data path preflight picks, the stack's HTTPS port, the vendor's web UI ports,
# the vendor engine's unit and settings file, and how the package manager is missing.
PLATFORMS = {
    "nas-appliance-dsm": {
        "platform": "synology_dsm", "data": "/volume1/nasai", "https": 8443, "ui": [5000, 5001, 80, 443],
        "unit": "pkg-ContainerManager-dockerd", "config": "/var/packages/ContainerManager/etc/dockerd.json",
        "data_root": "/volume1/@docker", "apt": "missing"},
    "nas-appliance-qts": {
        "platform": "qnap_qts", "data": "/share/CACHEDEV1_DATA/nasai", "https": 8443, "ui": [8080, 443],
        "unit": "docker", "config": "/etc/docker/daemon.json",
        "data_root": "/share/CACHEDEV1_DATA/Container/container-station-data/lib/docker", "apt": "missing"},
    "nas-appliance-scale": {
        "platform": "truenas_scale", "data": "/mnt/tank/nasai", "https": 8443, "ui": [80, 443],
        "unit": "docker", "config": "/etc/docker/daemon.json",
        "data_root": "/mnt/.ix-apps/docker", "apt": "not executable"},
}
UNRAID = "nas-appliance-unraid"


@pytest.fixture(scope="module")
def want(nas_name):
    """What one appliance of the converge should show (the Unraid-like one has its own test)."""
    if nas_name not in PLATFORMS:
        pytest.skip(f"{nas_name} has no Python: test_unraid_without_python_stops_at_preflight_with_the_fix")
    return PLATFORMS[nas_name]


def test_preflight_found_the_platform_and_its_data_path(want, host):
    fact = json.loads(host.file("/etc/ansible/facts.d/nasai_preflight.fact").content_string)
    assert fact["platform"] == want["platform"]
    assert fact["appliance"] is True
    assert fact["data_path"] == want["data"]
    assert fact["package_manager_usable"] is False


def test_vendor_engine_and_settings_are_untouched(want, host):
    baseline = json.loads(host.file("/root/nasai-baseline.json").content_string)
    assert host.check_output(f"sha256sum {want['config']} | cut -c1-64") == baseline["config"]
    assert host.check_output(f"systemctl show -p MainPID --value {want['unit']}") == baseline["pid"]
    assert host.check_output("docker info --format '{{.DockerRootDir}}'") == want["data_root"]
    assert not host.file("/etc/systemd/system/docker.service.d").exists


def test_nothing_the_platform_lacks_was_added(want, host):
    assert host.run("python3 -c 'import requests'").rc != 0
    for tool in ("apt-get", "dpkg"):
        path = f"/usr/bin/{tool}"
        if want["apt"] == "missing":
            assert not host.file(path).exists
        else:
            assert host.file(path).exists and not host.file(path).mode & 0o111


def test_no_swap_file_on_a_platform_that_manages_swap(want, host):
    assert not host.file("/swapfile").exists
    assert "swap" not in host.file("/etc/fstab").content_string


def test_stack_serves_chat_over_tls_beside_the_vendor_ui(want, host):
    ca = f"{want['data']}/services/tls/ca.crt"
    for name in ("nasai-ai", "nasai-files", "nasai-logs", "nasai-proxy"):
        assert host.check_output(f"docker inspect -f '{{{{.State.Health.Status}}}}' {name}") == "healthy", name
    request = (
        "import json, ssl, sys, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='{ca}')\n"
        "body = json.dumps({'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 4, 'ignore_eos': True}).encode()\n"
        # The admin's key, generated on the NAS: the proxy lets no request through without one.
        f"key = open('{want['data']}/services/secrets/user-admin.key').read().strip()\n"
        f"req = urllib.request.Request('https://localhost:{want['https']}/v1/chat/completions', data=body,\n"
        "                             headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + key})\n"
        "sys.stdout.write(urllib.request.urlopen(req, context=ctx, timeout=60).read().decode())\n"
        "for port in sys.argv[1:]:\n"
        "    ui = urllib.request.urlopen(f'http://localhost:{port}/', timeout=5).read()\n"
        "    assert ui == b'vendor web UI\\n', port\n"
    )
    ports = " ".join(str(p) for p in want["ui"])
    answer = json.loads(host.check_output(f"python3 -c {shlex.quote(request)} {ports}"))
    assert answer["usage"]["completion_tokens"] == 4


def test_check_diff_reports_no_change(converge):
    run = converge("nas", None, "--check", "--diff")
    assert run.rc == 0, run.output[-3000:]
    for name in PLATFORMS:
        assert run.recap(name)["changed"] == 0, run.output[-3000:]


def test_a_port_the_vendor_ui_holds_stops_preflight_with_the_fix(converge):
    """DSM's own web server holds 443: asked for it, preflight stops the NAS before any change and
    names the port, the variable, the program and a free port instead."""
    dsm = "nas-appliance-dsm"
    run = converge(dsm, {"services_https_port": 443})
    assert run.rc != 0
    assert run.recap(dsm)["changed"] == 0
    assert "port 443 (services_https_port) is held by vendor-webui (pid" in run.said, run.output[-3000:]
    assert "Set that variable to a free port, such as" in run.said


@pytest.fixture(scope="module")
def unraid():
    return testinfra.get_host(f"docker://{UNRAID}")


def test_unraid_without_python_stops_at_preflight_with_the_fix(converge, unraid, tmp_path):
    before = unraid.check_output("cat /root/nasai-baseline.json")
    # The host is outside group `nas` for the scenario's converge; this adds it, for site.yml.
    extra = tmp_path / "nopython.yml"
    extra.write_text(f"nas:\n  hosts:\n    {UNRAID}:\n", encoding="utf-8")
    for args in ((), ("--check", "--diff")):
        run = converge(UNRAID, None, "-i", str(extra), *args)
        assert run.rc != 0
        assert run.recap(UNRAID)["failed"] == 1 and run.recap(UNRAID)["changed"] == 0
        assert "has no Python 3.8 or later" in run.output
        assert "Python 3 for UNRAID" in run.output
    # Nothing was changed: no facts, no data directory, the engine as it was.
    assert not unraid.file("/etc/ansible").exists
    assert not unraid.file("/mnt/user/appdata/nasai").exists
    assert unraid.check_output("systemctl show -p MainPID --value docker") == json.loads(before)["pid"]
    assert unraid.run("command -v python3").rc != 0
