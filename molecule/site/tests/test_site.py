"""site.yml on two simulated NAS: every role's result is there, on each platform; the stack's
containers reach the outside through the proxy role's environment; a NAS with a bad input stops
before any change while the other goes on; each run ends with one summary per NAS."""

import json
import re
import shlex
import time
import uuid

import testinfra

PLATFORM = {"nas-site-omv": "openmediavault", "nas-site-trixie": "debian"}
OMV, TRIXIE = "nas-site-omv", "nas-site-trixie"
PROXY_URL = "http://nas-site-tinyproxy:8888"
PROJECT = "/srv/dev-disk-by-label-data/container/services"


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


def test_the_file_manager_runs_as_a_uid_of_its_own(omv):
    """A new install: not the NAS's first user (1000), a uid of the stack's own, which owns its data."""
    assert omv.check_output("docker inspect -f '{{.Config.User}}' nasai-files") == "10002:10002"
    assert (omv.file(f"{PROJECT}/data/files").uid, omv.file(f"{PROJECT}/data/files").gid) == (10002, 10002)


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
        # The admin's key, generated on the NAS: the proxy lets no request through without one.
        "key = open('/srv/dev-disk-by-label-data/container/services/secrets/user-admin.key').read().strip()\n"
        "req = urllib.request.Request('https://localhost/v1/chat/completions', data=body,\n"
        "                             headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + key})\n"
        "sys.stdout.write(urllib.request.urlopen(req, context=ctx, timeout=60).read().decode())\n"
    )
    answer = json.loads(host.check_output(f"python3 -c {shlex.quote(request)}"))
    assert answer["usage"]["completion_tokens"] == 4


# --- the proxy role's environment reaches the stack's containers ---------------------------------

def container_env(host, name):
    env = json.loads(host.check_output(f"docker inspect -f '{{{{json .Config.Env}}}}' {name}"))
    return dict(item.split("=", 1) for item in env)


def web_clients(marker):
    """Client addresses of the HTTP target's requests whose path holds marker (waits for the journal)."""
    web = testinfra.get_host("docker://nas-site-web")
    for _attempt in range(20):
        lines = web.check_output("journalctl -u httptarget@80 -o cat --no-pager").splitlines()
        clients = [line.split()[0] for line in lines if marker in line]
        if clients:
            return clients
        time.sleep(0.2)
    return []


def test_stack_containers_reach_the_outside_through_the_proxy(omv):
    proxy = testinfra.get_host("docker://nas-site-tinyproxy")
    proxy_ip = omv.check_output("getent ahostsv4 nas-site-tinyproxy").split()[0]
    # Each request names only the target: the container's own HTTP_PROXY/http_proxy send it on.
    requests = {
        "nasai-ai": "curl -sS --max-time 10 http://nas-site-web/?{marker}",
        "nasai-files": "python3 -c \"import urllib.request; print(urllib.request.urlopen("
                       "'http://nas-site-web/?{marker}', timeout=10).read().decode())\"",
    }
    for name, request in requests.items():
        env = container_env(omv, name)
        assert env["HTTP_PROXY"] == env["http_proxy"] == PROXY_URL, name
        assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1", name
        marker = f"{name}={uuid.uuid4().hex}"
        out = omv.check_output(f"docker exec {name} " + request.format(marker=marker))
        assert "nasai proxy target" in out, name
        assert f"GET http://nas-site-web/?{marker}" in proxy.file("/var/log/tinyproxy/tinyproxy.log").content_string
        assert web_clients(marker) == [proxy_ip], name
    # The log collector and the TLS proxy talk to this NAS only: they get nothing.
    for name in ("nasai-logs", "nasai-proxy"):
        assert "HTTP_PROXY" not in container_env(omv, name), name


def test_the_engine_gets_the_proxy_from_the_proxy_role_and_keeps_it(omv):
    # The proxy role writes the engine's drop-in; the docker role (run before it) leaves it alone,
    # so the rerun (Molecule's idempotence step) neither removes nor restarts anything.
    environment = omv.check_output("systemctl show docker -p Environment")
    assert "HTTP_PROXY=http://nas-site-tinyproxy:8888" in environment, environment
    assert omv.file("/etc/systemd/system/docker.service.d/http-proxy.conf").mode == 0o600


def test_in_transparent_mode_the_containers_get_no_proxy_variables(trixie):
    # The redirect carries their traffic (test_reboot.py sends a request through it).
    for name in ("nasai-ai", "nasai-files"):
        env = container_env(trixie, name)
        assert not {"HTTP_PROXY", "http_proxy", "PROXY_URL"} & set(env), name


# --- fleet: validation first, one broken NAS, the summary ----------------------------------------

def snapshot(host):
    """What a run would change first on this NAS: the swap file, the engine's settings, the
    preflight record, the project's files and the containers (their ids and start times)."""
    return host.check_output(
        "stat -c '%n %s %Y' /srv/swap/swapfile /etc/docker/daemon.json /etc/ansible/facts.d/nasai_preflight.fact; "
        f"find {PROJECT}/config {PROJECT}/tls {PROJECT}/secrets -printf '%p %s %T@\\n' | sort; "
        "docker ps -aq --no-trunc | sort | xargs docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}}'")


def summary(output, name):
    """The summary the last play printed for one NAS (the lines of its msg), or None."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"ok: [{name}]") and "msg:" in lines[i + 1]
              and "platform:" in lines[i + 2]]
    if not starts:
        return None
    body = []
    for line in lines[starts[-1] + 2:]:
        if not line.startswith("    "):
            break
        body.append(line.strip())
    return " ".join(body)


def test_bad_input_stops_its_nas_before_any_change_while_the_other_converges(converge, omv, trixie, tmp_path):
    before = snapshot(trixie)
    # Swap would be resized first (the swap role runs before services): a late check would show it.
    extra = tmp_path / "broken.yml"
    # A GPU index beyond the NAS's one GPU (its simulated nvidia-smi answers for GPU 0).
    extra.write_text(f"nas:\n  hosts:\n    {TRIXIE}:\n      swap_file_size: 300M\n"
                     "      services_ai_gpu_devices: [1]\n", encoding="utf-8")
    run = converge("nas", None, "-i", str(extra))
    assert run.rc == 2, run.output[-3000:]
    assert run.recap(TRIXIE)["failed"] == 1 and run.recap(TRIXIE)["changed"] == 0
    assert "services_ai_gpu_devices [1]: this host has NVIDIA GPUs 0 (nvidia-smi)" in run.output
    assert snapshot(trixie) == before
    # The other NAS went through every play, changed nothing (it is converged) and got its summary.
    recap = run.recap(OMV)
    assert recap["failed"] == 0 and recap["unreachable"] == 0 and recap["changed"] == 0, run.output[-3000:]
    text = summary(run.output, OMV)
    assert text, run.output[-3000:]
    assert "platform: openmediavault" in text and "changed: nothing" in text
    assert "chat UI: https://nas-site-omv/" in text and "API: https://nas-site-omv/v1" in text
    assert "file manager: https://nas-site-omv/files/ (each user their own folder, admins all)" in text
    assert f"CA certificate: {PROJECT}/tls/ca.crt" in text
    # Where the generated key is, never the key itself.
    assert f"keys: generated ones are in {PROJECT}/secrets/user-<name>.key on the NAS (root only), for admin" in text
    assert omv.file(f"{PROJECT}/secrets/user-admin.key").content_string.strip() not in run.output
    assert "nasai-ai: healthy; memory 256 MiB, 1.5 CPUs" in text
    assert "AI core GPU: dri through devices (/dev/dri/renderD128), 2 of 2 layers offloaded" in text
    for name in ("nasai-files", "nasai-logs", "nasai-proxy"):
        assert f"{name}: healthy;" in text, name
    assert summary(run.output, TRIXIE) is None
    assert f"not deployed: {TRIXIE}" in run.output


def test_max_fail_percentage_zero_stops_the_fleet_at_the_checks(converge, omv, trixie, tmp_path):
    before = {OMV: snapshot(omv), TRIXIE: snapshot(trixie)}
    extra = tmp_path / "broken.yml"
    extra.write_text(f"nas:\n  hosts:\n    {TRIXIE}:\n      services_network_mode: overlay\n", encoding="utf-8")
    run = converge("nas", {"nasai_max_fail_percentage": 0}, "-i", str(extra))
    assert run.rc != 0
    # argument_specs caught it; the deploy play never started, on either NAS.
    assert "services_network_mode" in run.output and "overlay" in run.output
    assert "PLAY [Deploy the stack" not in run.output, run.output[-3000:]
    assert run.recap(TRIXIE)["failed"] == 1 and run.recap(OMV)["changed"] == 0
    assert {OMV: snapshot(omv), TRIXIE: snapshot(trixie)} == before


def test_cis_docker_benchmark_audit_passes_on_the_converged_fleet(converge):
    """playbooks/audit.yml: the engine's and every container's CIS items pass, or are accepted with
    the stack's reason (host network mode, the proxy's root master and ports); none fails."""
    run = converge("nas", None, playbook="../../playbooks/audit.yml")
    assert run.rc == 0, run.output[-4000:]
    words = run.said
    for name in (OMV, TRIXIE):
        assert run.recap(name)["failed"] == 0
    assert re.search(r"\b\d+ pass, \d+ accepted, 0 fail\b", words), run.output[-4000:]
    for item in ("2.15", "2.14", "5.3", "5.12", "5.25", "5.31"):
        assert f"pass {item} " in words, item


def test_the_collector_s_files_are_capped_and_rotate(trixie):
    """A collector file (rsyslog engine) past services_logs_file_max (1m here) is rotated by the
    autoheal timer's script, and the collector goes on writing a new file (it reopens on HUP)."""
    logs = f"{PROJECT}/data/logs"
    log = f"{logs}/nasai-proxy.log"
    trixie.check_output(f"rm -f {log}.1 {log}.2 && fallocate -l 2M {log}.grow && cat {log}.grow >> {log} && rm {log}.grow")
    assert trixie.file(log).size >= 2 << 20
    trixie.check_output("systemctl start nasai-autoheal.service")
    assert trixie.file(f"{log}.1").size >= 2 << 20
    assert "rotated" in trixie.check_output("journalctl -t nasai-autoheal --no-pager -n 5")
    marker = f"/v1/models?rotation-{uuid.uuid4().hex[:8]}"
    request = (
        "import ssl, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='{PROJECT}/tls/ca.crt')\n"
        f"key = open('{PROJECT}/secrets/user-admin.key').read().strip()\n"
        f"req = urllib.request.Request('https://localhost{marker}', headers={{'Authorization': 'Bearer ' + key}})\n"
        "urllib.request.urlopen(req, context=ctx, timeout=30).read()\n")
    trixie.check_output(f"python3 -c {shlex.quote(request)}")
    deadline = time.time() + 20
    while marker not in (trixie.file(log).content_string if trixie.file(log).exists else "") and time.time() < deadline:
        time.sleep(1)
    assert marker in trixie.file(log).content_string
    assert trixie.file(log).size < 1 << 20


def test_the_stack_renders_as_kubernetes_objects_valid_against_the_schema(converge, tmp_path):
    """playbooks/k8s_manifests.yml: the services model of a converged NAS as Kubernetes objects, written
    one file each and strictly valid for Kubernetes 1.33 (no server runs here: see the unit tests)."""
    import kubernetes_validate
    import yaml

    run = converge(OMV, {"cluster_k8s_dir": str(tmp_path)}, playbook="../../playbooks/k8s_manifests.yml")
    assert run.rc == 0, run.output[-3000:]
    objects = [doc for path in sorted(tmp_path.glob("*.yaml"))
               for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    # This NAS's stack: the AI core and the file manager (the chat is not rendered yet); its proxy
    # becomes the Ingress, and each pod listens on its own address.
    assert sorted(deployments) == ["ai", "files"]
    ai = deployments["ai"]["spec"]["template"]["spec"]["containers"][0]
    assert ai["image"] == "nasai/llama-server:test" and ai["args"][ai["args"].index("--host") + 1] == "0.0.0.0"
    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    paths = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    # With the chat on, the AI core has its API paths only (the chat, not rendered, would take /).
    assert paths["/v1/"] == "ai" and paths["/files/"] == "files" and "/" not in paths
    assert ingress["spec"]["rules"][0]["host"] == OMV
