"""The collection's container exporter (roles/observability/files/nasai-container-exporter.py) on
cgroup trees laid out as the kernel and the engine lay them out: v2 (systemd driver), v1 (cgroupfs
driver under a cgroup parent, one directory per controller), the engine's state files. The site
scenario runs it against real containers."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "observability" / "files" / "nasai-container-exporter.py"
spec = importlib.util.spec_from_file_location("exporter", SCRIPT)
exporter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exporter)

A, B, C = "a" * 64, "b" * 64, "c" * 64


def state(root, cid, name, service=None, running=True, health=None):
    folder = root / cid
    folder.mkdir(parents=True)
    labels = {"nasai.stack.service": service} if service else {"other": "x"}
    st = {"Running": running}
    if health:
        st["Health"] = {"Status": health}
    (folder / "config.v2.json").write_text(json.dumps({"ID": cid, "Name": "/" + name, "Config": {"Labels": labels},
                                                       "State": st}))


def files(folder, **contents):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        (folder / name.replace("__", ".")).write_text(text + "\n")


def parse(text):
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_cgroup_v2_with_the_systemd_driver(tmp_path):
    containers, cgroup = tmp_path / "containers", tmp_path / "cgroup"
    state(containers, A, "nasai-ai-1", "ai", health="healthy")
    state(containers, B, "nasai-files", "files", health="unhealthy")
    state(containers, C, "someone-elses")
    files(cgroup / "system.slice" / f"docker-{A}.scope", memory__current="300", memory__max="1000",
          memory__stat="anon 200\ninactive_file 100", cpu__stat="usage_usec 2500000\nuser_usec 1",
          cpu__max="150000 100000", pids__current="12", pids__max="256")
    files(cgroup / "system.slice" / f"docker-{B}.scope", memory__current="50", memory__max="max",
          memory__stat="inactive_file 0", cpu__stat="usage_usec 0", cpu__max="max 100000", pids__current="3",
          pids__max="max")
    m = parse(exporter.exposition(str(cgroup), str(containers)))
    ai = '{container="nasai-ai-1",service="ai"}'
    assert m["nasai_container_memory_usage_bytes" + ai] == 200  # the working set: inactive file cache left out
    assert m["nasai_container_memory_limit_bytes" + ai] == 1000
    assert m["nasai_container_cpu_usage_seconds_total" + ai] == 2.5
    assert m["nasai_container_cpu_limit_cores" + ai] == 1.5
    assert (m["nasai_container_pids" + ai], m["nasai_container_pids_limit" + ai]) == (12, 256)
    # Health is not read from the state files (the engine does not keep it current there).
    assert not [key for key in m if key.startswith("nasai_container_healthy")]
    files_ = '{container="nasai-files",service="files"}'
    # No limit is no series (never a 0 that would read as "100 % used").
    assert "nasai_container_memory_limit_bytes" + files_ not in m
    assert "nasai_container_cpu_limit_cores" + files_ not in m
    assert not [key for key in m if "someone-elses" in key]


def test_cgroup_v1_under_a_cgroup_parent_and_a_stopped_container(tmp_path):
    containers, cgroup = tmp_path / "containers", tmp_path / "cgroup"
    state(containers, A, "nasai-proxy", "proxy", health="healthy")
    state(containers, B, "nasai-logs", "logs", running=False)
    # An engine in a container (the simulated NAS): its containers' cgroups nest under the engine's own.
    files(cgroup / "memory" / "docker" / C / "system.slice" / "containerd.service" / "inner-docker" / A,
          memory__usage_in_bytes="4096", memory__limit_in_bytes="8192", memory__stat="total_inactive_file 1024")
    files(cgroup / "cpu,cpuacct" / "inner-docker" / A, cpuacct__usage="3000000000", cpu__cfs_quota_us="50000",
          cpu__cfs_period_us="100000")
    files(cgroup / "pids" / "inner-docker" / A, pids__current="5", pids__max="128")
    files(cgroup / "memory" / "inner-docker" / B, memory__usage_in_bytes="1",
          memory__limit_in_bytes=str(9223372036854771712))
    m = parse(exporter.exposition(str(cgroup), str(containers)))
    proxy = '{container="nasai-proxy",service="proxy"}'
    assert m["nasai_container_memory_usage_bytes" + proxy] == 3072
    assert m["nasai_container_memory_limit_bytes" + proxy] == 8192
    assert m["nasai_container_cpu_usage_seconds_total" + proxy] == 3
    assert m["nasai_container_cpu_limit_cores" + proxy] == 0.5
    assert m["nasai_container_pids" + proxy] == 5
    logs = '{container="nasai-logs",service="logs"}'
    # A stopped container: running 0 and nothing else (its cgroup is gone or stale).
    assert m["nasai_container_running" + logs] == 0
    assert [key for key in m if "nasai-logs" in key] == ["nasai_container_running" + logs]
