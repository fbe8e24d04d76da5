"""site.yml on two simulated NAS: every role's result is there, on each platform."""

import json
import shlex

PLATFORM = {"nas-site-omv": "openmediavault", "nas-site-trixie": "debian"}


def test_preflight_recorded_the_platform(host, nas_name):
    fact = json.loads(host.file("/etc/ansible/facts.d/nasai_preflight.fact").content_string)
    assert fact["platform"] == PLATFORM[nas_name]
    assert fact["data_path"] == "/srv/dev-disk-by-label-data/container"
    # The demo inventory lets a 2-CPU box through with a warning.
    assert fact["checks"]["memory"] and fact["checks"]["disk"]


def test_swap_file_is_active(host):
    page = int(host.check_output("getconf PAGESIZE"))
    rows = [r.split() for r in host.file("/proc/swaps").content_string.splitlines()[1:]]
    sizes = [int(r[2]) for r in rows if r[0] == "/srv/swap/swapfile"]
    assert ((256 << 20) - page) // 1024 in sizes
    assert host.file("/srv/swap/swapfile").size == 256 << 20


def test_engine_answers_with_the_stack_settings(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["DockerRootDir"] == "/srv/dev-disk-by-label-data/container/docker"
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert info["CgroupDriver"] in ("cgroupfs", "systemd")
    assert host.service("docker").is_running and host.service("docker").is_enabled


def test_stack_serves_chat_over_tls(host):
    ca = "/srv/dev-disk-by-label-data/container/services/tls/ca.crt"
    for name in ("nasai-ai", "nasai-files", "nasai-logs", "nasai-proxy"):
        health = host.check_output(f"docker inspect -f '{{{{.State.Health.Status}}}}' {name}")
        assert health == "healthy", name
    # The NAS has no curl: python's client, verifying the proxy's certificate against the local CA.
    request = (
        "import json, ssl, sys, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='{ca}')\n"
        "body = json.dumps({'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 4, 'ignore_eos': True}).encode()\n"
        "req = urllib.request.Request('https://localhost/v1/chat/completions', data=body,\n"
        "                             headers={'Content-Type': 'application/json'})\n"
        "sys.stdout.write(urllib.request.urlopen(req, context=ctx, timeout=60).read().decode())\n"
    )
    answer = json.loads(host.check_output(f"python3 -c {shlex.quote(request)}"))
    assert answer["usage"]["completion_tokens"] == 4
