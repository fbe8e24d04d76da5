# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CIS Docker Benchmark items that apply to a NAS running the stack, checked against what the
engine and the containers report: one row per item (and container), pass, fail or accepted (a
deviation the stack makes on purpose, with its reason)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Capabilities a container of the stack may add back after dropping ALL: binding 80/443, and a
# proxy master dropping its workers to nobody and stopping them on a reload.
ALLOWED_CAPS = {"NET_BIND_SERVICE", "SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE"}
# Host paths no container of the stack may mount (CIS 5.5, 5.31).
SENSITIVE = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr", "/var/lib/docker")
SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
# The observability role's exporters read the host on purpose, read-only and without capabilities.
ACCEPTED_MOUNTS = {
    "node_exporter": "node exporter reads the host's filesystems and /proc through a read-only mount of /",
    "container_exporter": "the container exporter reads cgroup files and the engine's state files, read-only",
}
ACCEPTED_ROOT = {
    "container_exporter": "the container exporter reads the engine's root-only state files: root without any "
                          "capability, read-only root filesystem",
}
ACCEPTED_NO_HEALTHCHECK = {
    "mtail": "mtail's image has no shell or client to check itself with; Prometheus scrapes it (NasaiTargetDown)",
}


def _row(item: str, title: str, ok: bool, detail: str = "", accepted: str = "") -> dict[str, str]:
    status = "pass" if ok else ("accepted" if accepted else "fail")
    why = {"pass": "", "accepted": accepted, "fail": detail}[status]
    return {"item": item, "title": title, "status": status, "detail": why}


def _caps(cap: str) -> str:
    return cap.upper().removeprefix("CAP_")


def _daemon_rows(engine: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    settings = (engine.get("config") or {}).get("settings") or {}
    server = engine.get("server") or {}
    rows = [
        _row("2.15", "live restore is enabled", bool(server.get("live_restore") or settings.get("live-restore")),
             "live-restore is off: containers stop while the engine restarts"),
        _row("2.13", "container logs are kept and rotated",
             bool((settings.get("log-opts") or {}).get("max-size"))
             or server.get("logging_driver") in ("local", "journald", "syslog"),
             "log-opts max-size is not set for driver %s" % server.get("logging_driver")),
        _row("2.14", "new privileges are off by default", bool(settings.get("no-new-privileges")),
             "daemon.json has no no-new-privileges: true"),
    ]
    tcp = [h for h in settings.get("hosts") or [] if str(h).startswith("tcp://")]
    tcp += ["tcp (drop-in %s)" % name for name, text in (engine.get("dropins") or {}).items()
            if text and "tcp://" in text]
    rows.append(_row("2.7", "a TCP socket, if any, requires TLS client certificates",
                     not tcp or bool(settings.get("tlsverify")), "TCP listener without tlsverify: %s" % tcp))
    socket = files.get("socket") or {}
    if socket.get("exists"):
        rows.append(_row("3.15-3.16", "docker.sock is owned by root:docker (or root) and not world-accessible",
                         socket.get("pw_name") == "root" and socket.get("gr_name") in ("docker", "root")
                         and int(socket.get("mode", "0777"), 8) & 0o007 == 0,
                         "%s:%s %s" % (socket.get("pw_name"), socket.get("gr_name"), socket.get("mode"))))
    config = files.get("config") or {}
    if config.get("exists"):
        rows.append(_row("3.17-3.18", "daemon.json is owned by root and not writable by others",
                         config.get("pw_name") == "root" and int(config.get("mode", "0777"), 8) & 0o022 == 0,
                         "%s %s" % (config.get("pw_name"), config.get("mode"))))
    return rows


def _container_rows(c: Mapping[str, Any]) -> list[dict[str, str]]:
    sec = c.get("security") or {}
    name = c.get("name", "?")
    service = c.get("service")
    proxy = service == "proxy"
    added = {_caps(cap) for cap in sec.get("cap_add") or []}
    all_dropped = "ALL" in {_caps(cap) for cap in sec.get("cap_drop") or []}
    user = str(sec.get("user") or "")
    root = user in ("", "0", "root") or user.startswith(("0:", "root:"))
    mounts = [b for b in sec.get("binds") or [] if b in SENSITIVE
              or any(b.startswith(s + "/") for s in SENSITIVE if s != "/")]
    sockets = [b for b in sec.get("binds") or [] if b in SOCKETS]
    low_ports = [p for p in sec.get("published") or [] if p.isdigit() and int(p) < 1024]
    return [
        _row("5.4", "%s is not privileged" % name, not sec.get("privileged"), "privileged"),
        _row("5.3", "%s drops all capabilities but the ones it needs" % name,
             all_dropped and added <= ALLOWED_CAPS,
             "cap_drop %s, cap_add %s" % (sec.get("cap_drop"), sorted(added))),
        _row("4.1", "%s runs as a non-root user" % name, not root, "runs as root",
             accepted="the proxy's master keeps root to bind its ports, without other capabilities; its "
                      "workers run as nobody" if root and proxy and all_dropped
             else ACCEPTED_ROOT.get(service, "") if root and all_dropped and not added and sec.get("read_only")
             else ""),
        _row("5.12", "%s has a read-only root filesystem" % name, bool(sec.get("read_only")), "writable root"),
        _row("5.25", "%s cannot gain new privileges" % name, bool(sec.get("no_new_privileges")),
             "no-new-privileges is not set"),
        _row("5.10", "%s has a memory limit" % name, bool(c.get("memory_bytes")), "no memory limit"),
        _row("5.11", "%s has a CPU limit" % name, bool(c.get("cpus")) or bool(c.get("cpuset_cpus")), "no CPU limit"),
        _row("5.28", "%s has a pids limit" % name, bool(c.get("pids_limit")), "no pids limit"),
        _row("5.26", "%s has a health check" % name, bool(sec.get("healthcheck")), "no health check",
             accepted=ACCEPTED_NO_HEALTHCHECK.get(service, "")),
        _row("5.9", "%s does not share the host's network namespace" % name, sec.get("network_mode") != "host",
             "host network", accepted="host network mode (services_network_mode): the services listen on "
                                      "loopback only, the proxy's ports are behind the firewall"
             if sec.get("network_mode") == "host" else ""),
        _row("5.15", "%s does not share the host's process namespace" % name, sec.get("pid_mode") != "host",
             "pid host"),
        _row("5.16", "%s does not share the host's IPC namespace" % name, sec.get("ipc_mode") != "host", "ipc host"),
        _row("5.5", "%s mounts no system directory" % name, not mounts, "mounts %s" % mounts,
             accepted=ACCEPTED_MOUNTS.get(service, "")
             if mounts and not set(mounts) & set(sec.get("binds_writable", mounts)) else ""),
        _row("5.31", "%s does not mount the engine's socket" % name, not sockets, "mounts %s" % sockets),
        _row("5.7", "%s publishes no privileged port" % name, not low_ports, "publishes %s" % low_ports,
             accepted="the proxy serves HTTPS (and its redirect) on its standard ports"
             if low_ports and proxy else ""),
    ]


def cis_docker_audit(containers: Sequence[Mapping[str, Any]], engine: Mapping[str, Any],
                     files: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows {item, title, status (pass, fail, accepted), detail} for the engine (`engine`: what
    docker_engine_info returns; `files`: stat results of the engine's `socket` and `config`) and
    each of the stack's `containers` (stack_containers_info)."""
    rows = _daemon_rows(engine, files)
    for container in containers:
        rows.extend(_container_rows(container))
    return rows


class FilterModule:
    """nasai.stack's audit filter."""

    def filters(self) -> dict[str, Any]:
        return {"cis_docker_audit": cis_docker_audit}
