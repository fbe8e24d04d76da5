"""The observability role's alert rules and Alertmanager routing, rendered by the role itself
(tests/unit/observability/render.yml) and checked by the real tools, promtool and amtool from
Debian's packages (tests/tools/prometheus-tools.sh, which `make unit` runs first): the rules load,
every alert fires and resolves on synthetic series (rules_test.yml), each receiver gets the levels
it asked for, and bad input fails before anything is rendered, naming the variable."""

import json
import os
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
    assert 'mountpoint=~"/srv/dev\\-disk\\-by\\-label\\-data|/srv/backup"' in text
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
])
def test_bad_input_fails_before_anything_is_rendered(tmp_path, variables, message):
    rc, said, out = render(tmp_path, **variables)
    assert rc != 0 and message in said, said
    assert not list(out.iterdir())
