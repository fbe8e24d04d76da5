#!/usr/bin/env python3
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each container of the stack against its own quota, for Prometheus: memory, CPU and pids used and
allowed, read from the kernel's cgroup files (v2, or v1 where an older NAS has it), and whether it
runs, read from the engine's own state files (config.v2.json). Neither the engine's API socket nor
anything but the Python standard library: it mounts both read-only. (Health is not in those files:
the engine does not write its changes there; the services role's autoheal timer, which asks the
engine, records nasai_container_healthy for node exporter.)

  nasai-container-exporter --listen 127.0.0.1:9338 --cgroup /host/cgroup --containers /host/containers

Metrics (labels container, service): nasai_container_memory_usage_bytes (working set: what the
kernel would not reclaim, as the OOM killer sees it), nasai_container_memory_limit_bytes,
nasai_container_cpu_usage_seconds_total, nasai_container_cpu_limit_cores, nasai_container_pids,
nasai_container_pids_limit, nasai_container_running. A limit the container does not have is left
out, not reported as 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

LABEL = "nasai.stack.service"
ID = re.compile(r"([0-9a-f]{64})")
# cgroup v1 keeps an unlimited memory limit as a huge number (page-rounded LONG_MAX).
V1_UNLIMITED = 1 << 62
METRICS = (
    ("memory_usage_bytes", "gauge", "Memory the container uses (working set: usage less inactive file cache)."),
    ("memory_limit_bytes", "gauge", "The container's memory quota."),
    ("cpu_usage_seconds_total", "counter", "CPU time the container used."),
    ("cpu_limit_cores", "gauge", "The container's CPU quota, in cores."),
    ("pids", "gauge", "Processes and threads in the container."),
    ("pids_limit", "gauge", "The container's pids quota."),
    ("running", "gauge", "1 when the container runs."),
)


def read(path: str) -> Optional[str]:
    """The file's text, stripped, or None when it cannot be read."""
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def stat_value(text: Optional[str], key: str) -> Optional[int]:
    """The value of `key` in a "key value" per line file (memory.stat, cpu.stat)."""
    for line in (text or "").splitlines():
        name, _sep, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def number(text: Optional[str]) -> Optional[int]:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def cgroup_dirs(root: str, depth: int = 8) -> dict[str, list[str]]:
    """{container id: [its cgroup directories]} under `root`: one with cgroup v2, one per controller
    with v1. Docker names them <id>, docker-<id>.scope (systemd driver) or nests them under a
    cgroup parent, which may itself sit in another container's cgroup (an engine in a container)."""
    found: dict[str, list[str]] = {}
    base = root.rstrip("/").count("/")
    for path, dirs, _names in os.walk(root):
        match = ID.search(os.path.basename(path))
        if match:
            found.setdefault(match.group(1), []).append(path)
        if path.count("/") - base >= depth:
            dirs[:] = []
    return found


def usage(dirs: list[str]) -> dict[str, float]:
    """What the container's cgroup directories say of its use and its limits."""
    out: dict[str, float] = {}
    for path in dirs:
        def join(name: str, folder: str = path) -> str:
            return os.path.join(folder, name)
        current = number(read(join("memory.current")))
        if current is not None:  # cgroup v2
            inactive = stat_value(read(join("memory.stat")), "inactive_file") or 0
            out["memory_usage_bytes"] = max(current - inactive, 0)
            limit = number(read(join("memory.max")))
            if limit is not None:
                out["memory_limit_bytes"] = limit
            used = stat_value(read(join("cpu.stat")), "usage_usec")
            if used is not None:
                out["cpu_usage_seconds_total"] = used / 1e6
            quota, _sep, period = (read(join("cpu.max")) or "max").partition(" ")
            if quota.isdigit() and period.isdigit() and int(period):
                out["cpu_limit_cores"] = int(quota) / int(period)
        v1_memory = number(read(join("memory.usage_in_bytes")))
        if v1_memory is not None:
            inactive = stat_value(read(join("memory.stat")), "total_inactive_file") or 0
            out["memory_usage_bytes"] = max(v1_memory - inactive, 0)
            limit = number(read(join("memory.limit_in_bytes")))
            if limit is not None and limit < V1_UNLIMITED:
                out["memory_limit_bytes"] = limit
        v1_cpu = number(read(join("cpuacct.usage")))
        if v1_cpu is not None:
            out["cpu_usage_seconds_total"] = v1_cpu / 1e9
        quota, period = number(read(join("cpu.cfs_quota_us"))), number(read(join("cpu.cfs_period_us")))
        if quota is not None and quota > 0 and period:
            out["cpu_limit_cores"] = quota / period
        pids = number(read(join("pids.current")))
        if pids is not None:
            out["pids"] = pids
            limit = number(read(join("pids.max")))
            if limit is not None:
                out["pids_limit"] = limit
    return out


def containers(state_dir: str) -> list[dict]:
    """The stack's containers (those with the label) as the engine keeps them on disk."""
    out = []
    for entry in sorted(os.listdir(state_dir)):
        try:
            with open(os.path.join(state_dir, entry, "config.v2.json"), encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError):
            continue
        labels = (config.get("Config") or {}).get("Labels") or {}
        if LABEL not in labels:
            continue
        state = config.get("State") or {}
        out.append({"id": config.get("ID", entry), "name": config.get("Name", entry).lstrip("/"),
                    "service": labels[LABEL], "running": bool(state.get("Running"))})
    return out


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(cgroup_root: str, state_dir: str) -> str:
    """The metrics, in Prometheus's text format."""
    rows: dict[str, list[str]] = {metric[0]: [] for metric in METRICS}
    dirs = cgroup_dirs(cgroup_root)
    for item in containers(state_dir):
        labels = 'container="%s",service="%s"' % (escape(item["name"]), escape(item["service"]))
        values: dict[str, float] = usage(dirs.get(item["id"], [])) if item["running"] else {}
        values["running"] = 1 if item["running"] else 0
        for name, value in values.items():
            rows[name].append("nasai_container_%s{%s} %s" % (name, labels, repr(float(value))))
    lines = []
    for name, kind, text in METRICS:
        lines += ["# HELP nasai_container_%s %s" % (name, text), "# TYPE nasai_container_%s %s" % (name, kind)]
        lines += rows[name]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--listen", default="127.0.0.1:9338", help="address:port to serve /metrics on")
    parser.add_argument("--cgroup", default="/sys/fs/cgroup", help="the host's cgroup root")
    parser.add_argument("--containers", default="/var/lib/docker/containers",
                        help="the engine's containers directory (in its data root)")
    parser.add_argument("--once", action="store_true", help="print the metrics once and exit")
    args = parser.parse_args(argv)
    if args.once:
        sys.stdout.write(exposition(args.cgroup, args.containers))
        return 0

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] == "/health":
                body, status = b"ok\n", 200
            elif self.path.split("?")[0] == "/metrics":
                body, status = exposition(args.cgroup, args.containers).encode(), 200
            else:
                body, status = b"not found\n", 404
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # scrapes every few seconds: no access log
            pass

    host, _sep, port = args.listen.rpartition(":")
    ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
