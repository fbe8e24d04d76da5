"""Preflight on a plain Debian NAS and a Synology-like one: what it finds, records and refuses."""

import json

import pytest

FACT = "/etc/ansible/facts.d/nasai_preflight.fact"
EXPECTED_PLATFORM = {
    "nas-preflight-debian": ("debian", "12"),
    "nas-preflight-dsm": ("synology_dsm", "7.2.1"),
}


@pytest.fixture(scope="module")
def recorded(host):
    fact = host.file(FACT)
    assert fact.exists and fact.user == "root" and fact.mode == 0o644
    return json.loads(fact.content_string)


def test_platform_is_told_from_marker_files(recorded, nas_name):
    name, version = EXPECTED_PLATFORM[nas_name]
    assert recorded["platform"] == name
    assert recorded["platform_version"] == version
    assert recorded["appliance"] is (name == "synology_dsm")


def test_hardware_matches_the_host(recorded, host):
    assert recorded["cpu_count"] == int(host.check_output("nproc"))
    assert recorded["architecture"] == host.check_output("uname -m")
    meminfo_kib = int(host.check_output("awk '/^MemTotal/ {print $2}' /proc/meminfo"))
    assert recorded["memory_gib"] == -(-meminfo_kib // (1024 * 1024))  # rounded up


def test_data_path_and_checks(recorded, host):
    # The data path does not exist yet: its filesystem is read from the nearest parent.
    assert not host.file("/srv/nasai/data").exists
    assert recorded["data_path"] == "/srv/nasai/data"
    assert recorded["data_fstype"] == host.check_output("stat -f -c %T /").replace("overlayfs", "overlay")
    # ports: nothing outside the containers holds the stack's HTTPS/HTTP ports.
    assert recorded["checks"] == {"cpu": True, "memory": True, "disk": True, "architecture": True,
                                  "platform": True, "gpu": False, "engine": True, "data_path": True,
                                  "ports": True}
    # No GPU here (the site and services scenarios have simulated ones), nor a way to one.
    assert recorded["gpu"] == {"present": False, "nvidia": False, "nvidia_driver": False, "nvidia_gpus": [],
                               "memory_bytes": None, "dri_render_nodes": [], "dri": [], "kfd": False,
                               "cdi_devices": [], "nvidia_container_hook": None, "nvidia_ctk": None}


def test_default_thresholds_fail_naming_host_measure_and_threshold(converge, host, nas_name):
    probe_dir = "/tmp/preflight-fail-probe"
    run = converge(nas_name, {"preflight_min_cpu_cores": 64, "preflight_facts_dir": probe_dir})
    assert run.rc != 0
    cpus = host.check_output("nproc")
    assert f"{nas_name}: {cpus} CPU cores available, preflight_min_cpu_cores requires 64" in run.output
    assert not host.file(probe_dir).exists, "a failed preflight must change nothing"


def test_warn_policy_reports_and_goes_on(converge, host, nas_name):
    probe_dir = "/tmp/preflight-warn-probe"
    run = converge(nas_name, {"preflight_min_free_gib": 100000, "preflight_disk_policy": "warn",
                              "preflight_facts_dir": probe_dir})
    assert run.rc == 0, run.output
    assert "PREFLIGHT WARNING" in run.output and "preflight_min_free_gib requires 100000" in run.output
    recorded = json.loads(host.file(f"{probe_dir}/nasai_preflight.fact").content_string)
    assert recorded["checks"]["disk"] is False
    host.run(f"rm -rf {probe_dir}")


@pytest.mark.parametrize(("extra", "message"), [
    ({"preflight_min_cpu_cores": -1}, "preflight_min_cpu_cores must be a number >= 0, got -1"),
    ({"preflight_min_memory_gib": "lots"}, "preflight_min_memory_gib"),
    ({"preflight_disk_policy": "maybe"}, "preflight_disk_policy"),
    ({"preflight_data_path": 42, "preflight_gpu_policy": "sometimes"}, "preflight_gpu_policy"),
    # A relative data path used to make the facts module spin at 100 % CPU forever.
    ({"preflight_data_path": "container/data"}, "nasai_data_path (preflight_data_path) must be an absolute path"),
    ({"preflight_data_path": "/srv/nasai/../../etc"}, "must not contain '..'"),
    ({"preflight_data_path": "/"}, "must not be the root or a system directory (/)"),
    ({"preflight_data_path": "/usr/lib/nasai"}, "must not be the root or a system directory (/usr/lib/nasai)"),
])
def test_bad_input_fails_before_any_change(converge, host, nas_name, extra, message):
    probe_dir = "/tmp/preflight-bad-input-probe"
    run = converge(nas_name, dict(extra, preflight_facts_dir=probe_dir))
    assert run.rc != 0
    assert message in run.output
    assert not host.file(probe_dir).exists


def test_check_mode_reports_no_change_on_a_converged_host(converge, nas_name):
    run = converge(nas_name, None, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(nas_name)["changed"] == 0
