"""The observability role's alert rules and Alertmanager routing, rendered by the role itself
(tests/unit/observability/render.yml) and checked by the real tools, promtool and amtool from
Debian's packages (tests/tools/prometheus-tools.sh, which `make unit` runs first): the rules load,
every alert fires and resolves on synthetic series (rules_test.yml), each receiver gets the levels
it asked for, and bad input fails before anything is rendered, naming the variable."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".cache" / "tools" / "bin"
HERE = Path(__file__).resolve().parent / "observability"


def tool(name):
    path = TOOLS / name
    assert path.exists(), f"{path} is missing: run tests/tools/prometheus-tools.sh (make unit does)"
    return str(path)


def render(tmp_path, **variables):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(["ansible-playbook", str(HERE / "render.yml"), "-e", json.dumps(dict(variables, out=str(out)))],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
    return proc.returncode, " ".join((proc.stdout + proc.stderr).split()), out


def run(*cmd, cwd=None):
    return subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd, check=False, timeout=120)


RECEIVERS = [
    {"name": "ops-webhook", "type": "webhook", "url": "http://alerts.lan:9000/hook"},
    {"name": "admin-mail", "type": "email", "to": "admin@example.net", "levels": ["critical"]},
    {"name": "phone", "type": "ntfy", "url": "https://ntfy.sh/nasai-alerts", "levels": ["error", "critical"]},
]
SMTP = {"smarthost": "mail.example.net:587", "from": "nas@example.net", "auth_username": "nas",
        "auth_password": "smtp-secret"}


def test_every_alert_fires_and_resolves_under_promtool(tmp_path):
    rc, said, out = render(tmp_path)
    assert rc == 0, said
    checked = run(tool("promtool"), "check", "rules", str(out / "alert-rules.yml"))
    assert checked.returncode == 0 and "SUCCESS: 11 rules found" in checked.stdout, checked.stdout + checked.stderr
    shutil.copy(HERE / "rules_test.yml", out / "rules_test.yml")
    tested = run(tool("promtool"), "test", "rules", "rules_test.yml", cwd=out)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = yaml.safe_load((out / "alert-rules.yml").read_text())
    levels = {r["labels"]["severity"] for g in rules["groups"] for r in g["rules"]}
    assert levels == {"warning", "error", "critical"}
    assert all(r["labels"].get("cause") for g in rules["groups"] for r in g["rules"])


def test_the_thresholds_come_from_the_variables(tmp_path):
    rc, said, out = render(tmp_path, observability_warning_percent=80, observability_critical_free_percent=5,
                           observability_storage_mountpoints=["/srv/dev-disk-by-label-data", "/srv/backup"])
    assert rc == 0, said
    text = (out / "alert-rules.yml").read_text()
    assert "> 0.8\n" in text and "< 0.05\n" in text
    assert 'mountpoint=~"/srv/dev-disk-by-label-data|/srv/backup"' in text
    # The default thresholds' unit tests no longer hold: the rules really changed.
    shutil.copy(HERE / "rules_test.yml", out / "rules_test.yml")
    assert run(tool("promtool"), "test", "rules", "rules_test.yml", cwd=out).returncode != 0


def test_each_receiver_gets_the_levels_it_asked_for(tmp_path):
    rc, said, out = render(tmp_path, observability_receivers=RECEIVERS, observability_smtp=SMTP)
    assert rc == 0, said
    config = str(out / "alertmanager.yml")
    checked = run(tool("amtool"), "check-config", config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    expected = {"warning": "ops-webhook", "error": "ops-webhook,phone", "critical": "ops-webhook,admin-mail,phone"}
    for level, receivers in expected.items():
        routed = run(tool("amtool"), "config", "routes", "test", f"--config.file={config}", f"severity={level}")
        assert routed.stdout.strip() == receivers, (level, routed.stdout, routed.stderr)
    parsed = yaml.safe_load((out / "alertmanager.yml").read_text())
    assert parsed["global"]["smtp_smarthost"] == "mail.example.net:587"
    # A critical or error alert silences the warning of the same cause on the same NAS.
    inhibit = parsed["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity=~"critical|error"'] and inhibit["equal"] == ["cause", "instance"]


def test_watched_mount_points_with_regex_characters_load_and_match_exactly(tmp_path):
    rc, said, out = render(tmp_path, observability_storage_mountpoints=["/srv/dev-disk-by-label-data", "/mnt/usb.1"])
    assert rc == 0, said
    checked = run(tool("promtool"), "check", "rules", str(out / "alert-rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert 'mountpoint=~"/srv/dev-disk-by-label-data|/mnt/usb\\\\.1"' in (out / "alert-rules.yml").read_text()


def test_without_receivers_alertmanager_still_loads(tmp_path):
    rc, said, out = render(tmp_path)
    assert rc == 0, said
    assert run(tool("amtool"), "check-config", str(out / "alertmanager.yml")).returncode == 0


@pytest.mark.parametrize("variables, message", [
    ({"observability_warning_percent": 170}, "observability_warning_percent must be a percentage between 1 and 99, got 170"),
    ({"observability_retention_time": "forever"},
     "observability_retention_time must be a Prometheus duration such as 15d, 12h or 30s, got 'forever'"),
    ({"observability_receivers": [{"name": "x", "type": "pager", "url": "http://p"}]},
     "observability_receivers[0].type must be one of webhook, email, ntfy, got 'pager'"),
    ({"observability_receivers": [{"name": "m", "type": "email", "to": "a@b.c"}]},
     "observability_receivers[0] is an email receiver: observability_smtp needs smarthost (host:port) and from"),
    ({"observability_error_5xx_ratio": 5}, "observability_error_5xx_ratio must be a share between 0 and 1"),
    ({"observability_retention_size": "lots"}, "observability_retention_size must be a size such as 500MB or 2GB"),
    ({"observability_latency_buckets": [1, 0.5]}, "observability_latency_buckets must be positive seconds in rising order"),
    ({"observability_ports": {"prometheus": 99999}}, "observability_ports.prometheus must be a port number (1-65535)"),
    ({"observability_rate_window": "5 minutes"}, "observability_rate_window must be a Prometheus duration"),
    ({"observability_images": {"prometheus": "prom:v1"}},
     "observability_images needs an entry for each of prometheus, alertmanager, node_exporter, container_exporter, "
     "mtail, grafana (the whole mapping, not only the changed ones); missing: alertmanager, node_exporter"),
])
def test_bad_input_fails_before_anything_is_rendered(tmp_path, variables, message):
    rc, said, out = render(tmp_path, **variables)
    assert rc != 0 and message in said, said
    assert not list(out.iterdir())


# HAProxy's access log lines (option httplog, RFC 5424 syslog as the proxy sends them to mtail).
HTTPLOG = ('<134>1 2026-11-27T18:00:00+00:00 nas haproxy 1 - - 10.0.0.1:5555 [27/Nov/2026:18:00:00.000] '
           'https~ {route} 0/0/0/{tr}/{ta} {status} 512 - - ---- 1/1/0/0/0 0/0 "GET /x HTTP/1.1"')


def test_the_services_it_adds_go_through_the_services_model(tmp_path):
    rc, said, out = render(tmp_path)
    assert rc == 0, said
    services = json.loads((out / "services.json").read_text())
    assert set(services) == {"prometheus", "alertmanager", "node_exporter", "container_exporter", "mtail", "grafana"}
    for name, service in services.items():
        # Every monitoring container has quotas of its own, a read-only root and no root user but
        # the exporter that must read root's 0600 state files (without any capability).
        assert service["memory"] and service["cpus"] and service["pids_limit"] and service["read_only"], name
        assert service["user"] != "0:0" or name == "container_exporter", name
        assert "cap_add" not in service, name
    # Only admins reach the web UIs through the proxy; mtail takes the proxy's access log.
    assert {n for n, s in services.items() if s.get("proxy_admin")} == {"prometheus", "alertmanager", "grafana"}
    assert services["mtail"]["proxy_log_port"] == 5515
    configs = {c["dest"]: c for c in services["prometheus"]["configs"]}
    assert configs["prometheus.yml"]["template"].endswith("roles/observability/templates/prometheus.yml.j2")
    assert configs["alert-rules.yml"]["content"] == (out / "alert-rules.yml").read_text()
    dashboards = {c["dest"]: c["content"] for c in services["grafana"]["configs"]}
    assert json.loads(dashboards["dashboards/nasai-stack.json"])["uid"] == "nasai-stack"
    assert "url: http://127.0.0.1:9090/prometheus" in dashboards["provisioning/datasources/nasai.yml"]


def test_mtail_counts_each_route_by_status_class_and_times_it(tmp_path):
    rc, said, out = render(tmp_path, observability_latency_buckets=[0.1, 1, 10])
    assert rc == 0, said
    progs = tmp_path / "progs"
    progs.mkdir()
    (progs / "proxy.mtail").write_text(json.loads((out / "services.json").read_text())["mtail"]["configs"][0]["content"])
    lines = [HTTPLOG.format(route="ai/ai-1", tr=100, ta=130, status=200),
             HTTPLOG.format(route="ai/ai-2", tr=4000, ta=4200, status=200),
             HTTPLOG.format(route="ai/ai-1", tr=1, ta=2, status=500),
             HTTPLOG.format(route="files/files-1", tr=1, ta=3, status=404),
             HTTPLOG.format(route="https~/<NOSRV>", tr=-1, ta=0, status=429)]
    (tmp_path / "proxy.log").write_text("\n".join(lines) + "\n")
    shot = run(tool("mtail"), "--progs", str(progs), "--logs", str(tmp_path / "proxy.log"), "--one_shot",
               "--one_shot_format", "prometheus", "--logtostderr")
    assert shot.returncode == 0, shot.stderr
    metrics = {re.sub(r',?prog="proxy.mtail",?', lambda m: "," if m.group(0).count(",") == 2 else "",
                      line.rsplit(" ", 1)[0]): float(line.rsplit(" ", 1)[1])
               for line in shot.stdout.splitlines() if line.startswith("nasai_")}
    assert metrics['nasai_http_requests_total{code_class="2xx",route="ai"}'] == 2
    assert metrics['nasai_http_requests_total{code_class="5xx",route="ai"}'] == 1
    assert metrics['nasai_http_requests_total{code_class="4xx",route="files"}'] == 1
    # The proxy's own answers (a 429 of admission control) count under route https.
    assert metrics['nasai_http_requests_total{code_class="4xx",route="https"}'] == 1
    assert metrics['nasai_http_request_duration_seconds_bucket{route="ai",le="0.1"}'] == 1
    assert metrics['nasai_http_request_duration_seconds_bucket{route="ai",le="1"}'] == 2
    assert metrics['nasai_http_request_duration_seconds_bucket{route="ai",le="10"}'] == 3
    assert metrics['nasai_http_request_duration_seconds_sum{route="ai"}'] == pytest.approx(4.332)
