"""The observability role live on nas-site-trixie (host_vars: short alert times, a webhook receiver on
nas-site-offsite): its services run through the services model with quotas, every target is up,
real traffic through the TLS proxy gives the 5xx share it was made with and a P99 per route, and
each alert level fires when its cause is made (a container past 70 % of its memory quota, the AI
core stopped, the backup medium filled) and resolves when the cause goes, reaching the webhook.
The dashboards' queries all return data. Times and costs are written to
.cache/artefacts/observability.json for the note."""

import json
import os
import shlex
import time
import urllib.parse
from pathlib import Path

import pytest
import testinfra
# chromium: the fixture, used by name.
from test_browser import address_of, browse, chromium, screenshot  # noqa: F401 pylint: disable=unused-import

TRIXIE, OFFSITE = "nas-site-trixie", "nas-site-offsite"
PROJECT = "/srv/dev-disk-by-label-data/container/services"
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
ARTEFACTS = REPO / ".cache" / "artefacts"
DASHBOARD = REPO / "roles" / "observability" / "files" / "dashboards" / "nasai-stack.json"
HOOK_LOG = "/var/log/nasai-webhook.jsonl"
BACKUP_MEDIUM = "/srv/dev-disk-by-label-backup"
MONITORING = ("prometheus", "alertmanager", "node_exporter", "container_exporter", "mtail")
FIGURES = {}


@pytest.fixture(scope="module")
def nas():
    return testinfra.get_host(f"docker://{TRIXIE}")


@pytest.fixture(scope="module")
def offsite():
    return testinfra.get_host(f"docker://{OFFSITE}")


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield FIGURES
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / "observability.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


def py(host, code):
    """Run Python on the NAS (it has no curl) and return what it printed, parsed as JSON."""
    return json.loads(host.check_output(f"python3 -c {shlex.quote(code)}"))


def query(host, expr):
    """The result of a PromQL instant query against the NAS's Prometheus."""
    code = ("import json, urllib.parse, urllib.request\n"
            "url = 'http://127.0.0.1:9090/prometheus/api/v1/query?' + urllib.parse.urlencode({'query': %r})\n"
            "print(urllib.request.urlopen(url, timeout=10).read().decode())\n" % expr)
    answer = py(host, code)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def api(host, url):
    return py(host, "import urllib.request\nprint(urllib.request.urlopen(%r, timeout=10).read().decode())\n" % url)


def through_proxy(host, requests):
    """Send (method, path, body) requests through the TLS proxy as the admin, one at a time;
    return the status of each."""
    code = (
        "import json, ssl, urllib.error, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='{PROJECT}/tls/ca.crt')\n"
        f"key = open('{PROJECT}/secrets/user-admin.key').read().strip()\n"
        "out = []\n"
        "for method, path, body in %r:\n"
        "    req = urllib.request.Request('https://localhost' + path, method=method,\n"
        "        data=body.encode() if body is not None else None,\n"
        "        headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + key})\n"
        "    try:\n"
        "        out.append(urllib.request.urlopen(req, context=ctx, timeout=60).status)\n"
        "    except urllib.error.HTTPError as error:\n"
        "        out.append(error.code)\n"
        "print(json.dumps(out))\n" % (list(requests),))
    return py(host, code)


def wait_for(what, check, timeout=120, every=2):
    """Poll check() until it returns something true; return (value, seconds waited)."""
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return value, round(time.monotonic() - start, 1)
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(every)


def notices(offsite):
    """Every notification the webhook received: (time received, status, alertname, labels)."""
    text = offsite.file(HOOK_LOG).content_string if offsite.file(HOOK_LOG).exists else ""
    out = []
    for line in text.splitlines():
        entry = json.loads(line)
        for alert in entry["payload"].get("alerts", []):
            out.append((entry["received"], alert["status"], alert["labels"].get("alertname"), alert["labels"]))
    return out


def notified(offsite, status, alertname, since, **labels):
    return [n for n in notices(offsite) if n[0] >= since and n[1] == status and n[2] == alertname
            and all(n[3].get(k) == v for k, v in labels.items())]


def container(nas, service):
    return nas.check_output(f"docker ps -a --filter label=nasai.stack.service={service} --format '{{{{.Names}}}}'")


def test_monitoring_runs_through_the_services_model_with_quotas(nas):
    for service in MONITORING:
        name = f"nasai-{service}"
        inspected = json.loads(nas.check_output(f"docker inspect {name}"))[0]
        host = inspected["HostConfig"]
        assert inspected["Config"]["Labels"]["nasai.stack.service"] == service
        assert host["Memory"] > 0 and host["NanoCpus"] > 0 and host["PidsLimit"] > 0, name
        assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and not host["CapAdd"], name
        if service != "mtail":  # its upstream image has nothing to check itself with
            assert inspected["State"]["Health"]["Status"] == "healthy", name
    # Only the admin reaches the web UIs through the proxy.
    assert through_proxy(nas, [("GET", "/prometheus/-/ready", None), ("GET", "/alertmanager/-/healthy", None)]) == [200, 200]
    code = (
        "import ssl, urllib.error, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='{PROJECT}/tls/ca.crt')\n"
        "try:\n"
        "    print(urllib.request.urlopen('https://localhost/prometheus/-/ready', context=ctx, timeout=10).status)\n"
        "except urllib.error.HTTPError as error:\n"
        "    print(error.code)\n")
    assert py(nas, code) == 401


def test_every_target_is_up(nas):
    def targets():
        active = api(nas, "http://127.0.0.1:9090/prometheus/api/v1/targets")["data"]["activeTargets"]
        jobs = {t["labels"]["job"]: t["health"] for t in active}
        return jobs if set(jobs) >= {"prometheus", "alertmanager", "node", "containers", "routes", "ai"} \
            and set(jobs.values()) == {"up"} else None
    jobs, waited = wait_for("every target up", targets, timeout=90)
    FIGURES["targets_up_after_s"] = waited
    assert jobs


def test_container_exporter_matches_the_engine_for_every_container(nas):
    """The exporter's quotas are the ones the engine gave (docker inspect), its use is the cgroup's."""
    names = nas.check_output("docker ps --filter label=nasai.stack.service --format '{{.Names}}'").split()
    limits = {r["metric"]["container"]: float(r["value"][1]) for r in query(nas, "nasai_container_memory_limit_bytes")}
    cpus = {r["metric"]["container"]: float(r["value"][1]) for r in query(nas, "nasai_container_cpu_limit_cores")}
    used = {r["metric"]["container"]: float(r["value"][1]) for r in query(nas, "nasai_container_memory_usage_bytes")}
    for name in names:
        host = json.loads(nas.check_output(f"docker inspect {name}"))[0]["HostConfig"]
        assert limits[name] == host["Memory"], name
        assert cpus[name] == pytest.approx(host["NanoCpus"] / 1e9), name
        assert 0 < used[name] < limits[name], name


def test_traffic_gives_its_5xx_share_and_a_p99_per_route(nas, offsite):
    """Ten requests to the AI core through the proxy: six chat completions, four embeddings, which a
    chat model does not serve (the AI core answers 501): the counters grow by exactly that, the 5xx
    share is 40 %, the P99 of the route exists, and the error alert reaches the webhook."""
    good = ("POST", "/v1/chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}))
    bad = ("POST", "/v1/embeddings", json.dumps({"input": "hi"}))

    def counts():
        return {r["metric"]["code_class"]: float(r["value"][1])
                for r in query(nas, 'sum by (code_class) (nasai_http_requests_total{route="ai"})')}

    # Both series exist first (Prometheus cannot know that a counter it sees for the first time
    # started at 0), then a quiet start: no other request to the AI core in the window the share is
    # taken over (the tests before this one use it too).
    first = counts()
    assert through_proxy(nas, [good, bad]) == [200, 501]
    # Scraped with these two counted (on a stack that served before, the series exist already).
    wait_for("both series scraped", lambda: all(
        counts().get(code, 0) > first.get(code, 0) for code in ("2xx", "5xx")), timeout=30)
    window = "20s"
    wait_for("a quiet AI route", lambda: not query(
        nas, f'sum(increase(nasai_http_requests_total{{route="ai"}}[{window}])) > 0'), timeout=60)
    before = counts()
    statuses = through_proxy(nas, [good, bad, good, good, bad, good, bad, good, good, bad])
    assert [s >= 500 for s in statuses] == [False, True, False, False, True, False, True, False, False, True], statuses

    def grown():
        now = counts()
        return now if now.get("5xx", 0) - before.get("5xx", 0) >= 4 and now.get("2xx", 0) - before.get("2xx", 0) >= 6 else None
    now, _waited = wait_for("the proxy's log counted", grown, timeout=60)
    assert now["5xx"] - before.get("5xx", 0) == 4 and now["2xx"] - before.get("2xx", 0) == 6
    # The alert's own expression (a ratio of rates), over the window that holds only this traffic.
    share, _waited = wait_for("the 5xx share", lambda: query(
        nas, f'sum(rate(nasai_http_requests_total{{route="ai",code_class="5xx"}}[{window}]))'
             f' / sum(rate(nasai_http_requests_total{{route="ai"}}[{window}]))'), timeout=20)
    FIGURES["5xx_share_measured"] = float(share[0]["value"][1])
    assert float(share[0]["value"][1]) == pytest.approx(0.4, abs=0.05)
    p99 = query(nas, 'histogram_quantile(0.99, sum by (route, le) (rate(nasai_http_request_duration_seconds_bucket[1m])))')
    by_route = {r["metric"]["route"]: float(r["value"][1]) for r in p99 if r["value"][1] not in ("NaN", "+Inf")}
    FIGURES["p99_seconds_by_route"] = by_route
    assert 0 < by_route["ai"] < 120
    since = time.time() - 5
    _found, waited = wait_for("NasaiHttp5xxHigh at the webhook",
                              lambda: notified(offsite, "firing", "NasaiHttp5xxHigh", since, route="ai"), timeout=120)
    FIGURES["error_5xx_fired_after_s"] = waited


def test_each_level_fires_at_the_webhook_and_resolves_when_its_cause_goes(nas, offsite):
    """Three causes at once: the container exporter past 70 % of its memory quota (warning), the AI
    core stopped (error), the backup medium filled past 90 % (critical). Each notice reaches the
    webhook; a critical storage alert holds back the storage warning of the same NAS (inhibited in
    Alertmanager); each resolves when its cause goes."""
    ai = container(nas, "ai")
    exporter = "nasai-container_exporter"
    limit = int(json.loads(nas.check_output(f"docker inspect {exporter}"))[0]["HostConfig"]["Memory"])
    since = time.time()
    # warning: memory held by a second process in the container (its quota counts them all),
    # written so that it is resident: with what the exporter uses and that Python's own ~10 MiB,
    # about 82 % of the quota (past 70 %, short of the OOM killer).
    using = float(query(nas, f'nasai_container_memory_usage_bytes{{container="{exporter}"}}')[0]["value"][1])
    hold = int(limit * 0.82 - using - (10 << 20))
    nas.check_output(f"docker exec -d {exporter} python3 -c "
                     + shlex.quote(f"import time; b = b'x' * {hold}; time.sleep(600)  # nasai-stress"))
    # error: the AI core stops (the restart policy leaves a stopped container alone).
    nas.check_output(f"docker stop {ai}")
    # critical: the backup medium under 10 % free.
    free = int(nas.check_output(f"df --output=avail -B1 {BACKUP_MEDIUM} | tail -n1"))
    size = int(nas.check_output(f"df --output=size -B1 {BACKUP_MEDIUM} | tail -n1"))
    nas.check_output(f"fallocate -l {free - size // 20} {BACKUP_MEDIUM}/nasai-fill")
    # Each alert the causes make: the labels that name it and its level.
    causes = {"NasaiContainerMemoryHigh": ({"container": exporter}, "warning"),
              "NasaiServiceUnhealthy": ({"container": ai}, "error"),
              "NasaiStorageLow": ({"mountpoint": BACKUP_MEDIUM}, "critical")}
    try:
        fired = {}
        for name, (labels, severity) in causes.items():
            found, _waited = wait_for(f"{name} at the webhook",
                                      lambda: notified(offsite, "firing", name, since, **labels), timeout=150)
            fired[name] = round(found[0][0] - since, 1)
            assert found[0][3]["severity"] == severity
        FIGURES["fired_after_cause_s"] = fired
        # The storage warning of the same filesystem (over 70 % used) fires too, and Alertmanager
        # holds it back while the critical one lasts.

        def inhibited():
            alerts = api(nas, "http://127.0.0.1:9093/alertmanager/api/v2/alerts?active=true&inhibited=true")
            return [a for a in alerts if a["labels"]["alertname"] == "NasaiDiskUsageHigh"
                    and a["labels"].get("mountpoint") == BACKUP_MEDIUM and a["status"]["state"] == "suppressed"
                    and a["status"]["inhibitedBy"]]
        wait_for("the storage warning inhibited by the critical alert", inhibited, timeout=60)
    finally:
        cleared = time.time()
        nas.run("pkill -f nasai-stress")
        nas.run(f"docker start {ai}")
        nas.run(f"rm -f {BACKUP_MEDIUM}/nasai-fill")
    resolved = {}
    for name, (labels, _severity) in causes.items():
        found, _waited = wait_for(f"{name} resolved at the webhook",
                                  lambda: notified(offsite, "resolved", name, cleared, **labels), timeout=150)
        resolved[name] = round(found[0][0] - cleared, 1)
    FIGURES["resolved_after_cause_gone_s"] = resolved
    wait_for("the AI core healthy again", lambda: nas.check_output(
        f"docker inspect -f '{{{{.State.Health.Status}}}}' {ai}") == "healthy", timeout=120)


def test_every_dashboard_panel_returns_data(nas):
    """Each query of the collection's Grafana dashboard, run against the live Prometheus (Grafana's
    $__rate_interval as 5m), returns at least one series."""
    # The backup panel needs one backup to have run (test_backup runs them; alone, this runs one).
    if not query(nas, "nasai_backup_last_success_timestamp_seconds"):
        nas.check_output("/usr/local/sbin/nasai-backup run")
        wait_for("the backup's metric scraped", lambda: query(nas, "nasai_backup_last_success_timestamp_seconds"),
                 timeout=60)
    dashboard = json.loads(DASHBOARD.read_text())
    empty = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m")
            if not query(nas, expr):
                empty.append((panel["title"], expr))
    assert not empty, empty


def test_monitoring_cost(nas):
    """What the monitoring containers cost (for the note), measured from their cgroups: CPU over 20 s
    at rest, then over 20 s of 8 clients asking the proxy for the model list as fast as they can
    (every answer a log line for mtail, a count and an observation), and memory after."""
    names = "|".join(f"nasai-{service}" for service in MONITORING)

    def cpu_seconds():
        """{container: (time of the sample, CPU seconds)}: the scrape's own time, not the query's."""
        values = query(nas, f'nasai_container_cpu_usage_seconds_total{{container=~"{names}"}}')
        times = query(nas, f'timestamp(nasai_container_cpu_usage_seconds_total{{container=~"{names}"}})')
        at = {r["metric"]["container"]: float(r["value"][1]) for r in times}
        return {r["metric"]["container"]: (at[r["metric"]["container"]], float(r["value"][1])) for r in values}

    def cores(before, after):
        return {name: round((after[name][1] - before[name][1]) / (after[name][0] - before[name][0]), 3)
                for name in after}

    start = cpu_seconds()
    time.sleep(20)
    rested = cpu_seconds()
    FIGURES["monitoring_cpu_cores_at_rest"] = cores(start, rested)
    load = (
        "import json, ssl, threading, time, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='{PROJECT}/tls/ca.crt')\n"
        f"key = open('{PROJECT}/secrets/user-admin.key').read().strip()\n"
        "count, end = [0] * 8, time.time() + 20\n"
        "def client(i):\n"
        "    while time.time() < end:\n"
        "        req = urllib.request.Request('https://localhost/v1/models', headers={'Authorization': 'Bearer ' + key})\n"
        "        urllib.request.urlopen(req, context=ctx, timeout=10).read()\n"
        "        count[i] += 1\n"
        "threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(json.dumps(sum(count)))\n")
    served = py(nas, load)
    time.sleep(5)  # the scrape after the end
    FIGURES["monitoring_cpu_cores_under_traffic"] = cores(rested, cpu_seconds())
    FIGURES["traffic_requests_per_s"] = round(served / 20, 1)
    memory = query(nas, f'nasai_container_memory_usage_bytes{{container=~"{names}"}}')
    FIGURES["monitoring_memory_mib"] = {r["metric"]["container"]: round(float(r["value"][1]) / 2**20, 1) for r in memory}
    assert served > 0 and len(memory) == len(MONITORING)
    # Within their quotas, and the five of them under 600 MiB together.
    assert sum(float(r["value"][1]) for r in memory) < 600 * 2**20


def test_a_picture_of_p99_and_5xx_per_route(nas, chromium, tmp_path):
    """Headless Chromium, signed in as the admin through the TLS proxy, photographs Prometheus's
    graphs of the P99 and the 5xx share per route after the traffic above:
    .cache/screenshots/nas-site-trixie-prometheus.png (the README shows a copy)."""
    address = address_of(TRIXIE)
    key = nas.file(f"{PROJECT}/secrets/user-admin.key").content_string.strip()
    graphs = {"g0.expr": "histogram_quantile(0.99, sum by (route, le) (rate(nasai_http_request_duration_seconds_bucket[1m])))",
              "g1.expr": 'sum by (route) (rate(nasai_http_requests_total{code_class="5xx"}[1m]))'
                         " / sum by (route) (rate(nasai_http_requests_total[1m]))"}
    params = {}
    for graph, expr in graphs.items():
        index = graph.split(".", maxsplit=1)[0]
        params.update({graph: expr, f"{index}.tab": "0", f"{index}.range_input": "15m"})
    url = f"https://admin:{key}@{TRIXIE}/prometheus/graph?" + urllib.parse.urlencode(params)
    dom = browse(chromium, TRIXIE, address, tmp_path, url, "--dump-dom", "--virtual-time-budget=8000")
    # Both graphs drew their series (the legend names the routes).
    assert dom.count('route="ai"') >= 2, dom[-3000:]
    path = screenshot(chromium, TRIXIE, address, tmp_path, url, "prometheus", "--virtual-time-budget=8000",
                      "--window-size=1280,1650")
    FIGURES["screenshot"] = str(path.relative_to(REPO))
