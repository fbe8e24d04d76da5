# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the services role's definitions into what it deploys.

`definitions` is always the role's services__definitions ({service name: fields}, the README's
"Fields of a service"); `names` the enabled services in deployment order (enabled_services).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from ansible_collections.nasai.stack.plugins.filter.services_sizing import as_bool, as_int

# Fields a service definition may have (anything else is a typo and fails validation).
SERVICE_FIELDS = (
    "enabled", "image", "port", "protocol", "replicas", "command", "entrypoint", "env", "ports", "volumes",
    "networks", "healthcheck", "restart_policy", "labels", "memory", "memory_swap", "memory_reservation", "cpus",
    "cpuset_cpus", "pids_limit", "read_only", "user", "tmpfs", "security_opts", "cap_drop", "cap_add",
    "no_new_privileges", "configs", "config_mount", "data", "data_dirs", "tls", "init", "log", "proxy_path", "order",
    "proxy_admin", "proxy_public", "proxy_log_port", "start_first", "stop_signal", "devices", "device_requests",
    "group_add",
)
# Order of a service that neither its `order` field nor the role's order table places.
DEFAULT_ORDER = 50
# The service that collects the others' logs (its own never go to itself).
COLLECTOR = "logs"
PORT_PLACEHOLDER = "{port}"
_NUMERIC_ID = re.compile(r"^[0-9]+$")


def enabled_services(definitions: Mapping[str, Mapping[str, Any]],
                     order: Optional[Mapping[str, Any]] = None) -> list[str]:
    """Names of the enabled services (`enabled` missing or true), in deployment order: each
    service's `order` field, else its entry in `order` ({name: number}), else DEFAULT_ORDER; ties
    by name."""
    order = order or {}
    keyed = []
    for name, service in definitions.items():
        if as_bool(service.get("enabled", True)):
            keyed.append((as_int(service.get("order", order.get(name, DEFAULT_ORDER))), name))
    return [name for _key, name in sorted(keyed)]


def _with_port(value: Any, port: str) -> str:
    """`value` as text with every `{port}` replaced by `port`."""
    return str(value).replace(PORT_PLACEHOLDER, port)


def _healthcheck(check: Any, port: str) -> Any:
    """The healthcheck with `{port}` in its test (a string or a list) replaced."""
    if not check:
        return check
    test = check.get("test")
    out = {key: check[key] for key in check}
    if isinstance(test, str):
        out["test"] = _with_port(test, port)
    elif test is not None:
        out["test"] = [_with_port(part, port) for part in test]
    return out


def _mounts(name: str, service: Mapping[str, Any], project_dir: str) -> list[str]:
    """Bind mounts the role gives a service: config/<name> read-only (when it has configs or a
    certificate) and data/<name> (when it has a data path)."""
    mounts = []
    if service.get("configs") or service.get("tls"):
        mounts.append("%s/config/%s:%s:ro" % (project_dir, name, service.get("config_mount", "/etc/nasai")))
    if service.get("data"):
        mounts.append("%s/data/%s:%s" % (project_dir, name, service["data"]))
    return mounts


def _log_settings(container: str, to_collector: bool, syslog_port: Any) -> tuple[str, dict[str, str]]:
    """Docker log driver and options: the collector's syslog (UDP on 127.0.0.1), or rotated local files."""
    if to_collector:
        return "syslog", {"syslog-address": "udp://127.0.0.1:%s" % syslog_port, "tag": container,
                          "syslog-format": "rfc5424"}
    return "json-file", {"max-size": "10m", "max-file": "3"}


def service_instances(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str], project_dir: str,
                      network_mode: str = "host", network_name: str = "nasai",
                      syslog_port: Any = None, colors: Optional[Mapping[str, str]] = None,
                      green_offset: int = 100) -> list[dict[str, Any]]:
    """One entry per container to run (replicas expanded) with every container field resolved.

    A service with several replicas gives nasai-<name>-1, -2, ...; one replica gives nasai-<name>.
    In host mode replica N listens on port + N - 1 (they share one network stack), in bridge mode
    every replica on `port`, and only bridge mode publishes `ports`. `{port}` in command, env and
    healthcheck.test becomes the replica's port. With `syslog_port` set, every service but the
    collector itself (and those with `log: false`) logs to the collector.

    `colors` ({service: "blue" | "green"}) names the replica set of a blue-green switch: the green
    set runs beside the blue one as nasai-<name>-green[-N], in host mode `green_offset` ports
    higher, labelled nasai.stack.color=green; blue keeps the plain names and ports.
    """
    out = []
    colors = colors or {}
    for name in names:
        service = definitions[name]
        count = as_int(service.get("replicas", 1))
        green = colors.get(name) == "green"
        for replica in range(1, count + 1):
            port = str(as_int(service.get("port")) + (replica - 1 if network_mode == "host" else 0)
                       + (as_int(green_offset) if green and network_mode == "host" else 0))
            container = "nasai-%s%s%s" % (name, "-green" if green else "", "-%d" % replica if count > 1 else "")
            command = service.get("command")
            to_collector = syslog_port is not None and as_bool(service.get("log", True)) and name != COLLECTOR
            log_driver, log_options = _log_settings(container, to_collector, syslog_port)
            labels = dict(service.get("labels") or {})
            labels.update({"nasai.stack.service": name, "nasai.stack.replica": str(replica)})
            if green:
                labels["nasai.stack.color"] = "green"
            out.append({
                "service": name,
                "replica": replica,
                "name": container,
                "port": int(port),
                "image": service.get("image"),
                "command": [_with_port(part, port) for part in command] if command is not None else None,
                "entrypoint": service.get("entrypoint"),
                "env": {key: _with_port(value, port) for key, value in (service.get("env") or {}).items()},
                "ports": [str(p) for p in service.get("ports") or []] if network_mode == "bridge" else [],
                "volumes": _mounts(name, service, project_dir) + list(service.get("volumes") or []),
                "networks": service.get("networks", [network_name]),
                "healthcheck": _healthcheck(service.get("healthcheck"), port),
                # `always`, not unless-stopped: the engine flags a container that exits while it shuts
                # down itself as stopped by hand, and unless-stopped then leaves it down at the next boot
                # (the log collector, found exited 255 after a clean reboot of a simulated NAS).
                "restart_policy": service.get("restart_policy", "always"),
                "labels": labels,
                "memory": service.get("memory"),
                "memory_swap": service.get("memory_swap"),
                "memory_reservation": service.get("memory_reservation"),
                "cpus": service.get("cpus"),
                "cpuset_cpus": service.get("cpuset_cpus"),
                "pids_limit": service.get("pids_limit"),
                "read_only": as_bool(service.get("read_only", False)),
                "user": service.get("user"),
                "tmpfs": service.get("tmpfs", []),
                "security_opts": (["no-new-privileges:true"] if as_bool(service.get("no_new_privileges", True))
                                  else []) + list(service.get("security_opts") or []),
                # Every capability dropped unless a service says otherwise (cap_add gives back what it needs).
                "cap_drop": service.get("cap_drop", ["ALL"]),
                "cap_add": service.get("cap_add", []),
                "log_driver": log_driver,
                "log_options": log_options,
                # A replacement starts beside the running container (host mode shares the ports
                # through SO_REUSEPORT), which then stops gracefully on stop_signal.
                "start_first": as_bool(service.get("start_first", False)),
                "stop_signal": service.get("stop_signal"),
                # A GPU: device nodes (host:container:perms), device requests (CDI or --gpus), the
                # groups that may open them.
                "devices": list(service.get("devices") or []),
                "device_requests": list(service.get("device_requests") or []),
                "group_add": [str(group) for group in service.get("group_add") or []],
                # The others' first lines go to the collector: it is healthy before they start.
                "healthy_before_next": name == COLLECTOR and syslog_port is not None,
            })
    return out


def proxy_upstreams(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str],
                    instances: Sequence[Mapping[str, Any]], peer_host: str = "") -> list[dict[str, Any]]:
    """The reverse proxy's upstreams: each enabled service with a `proxy_path` (one path prefix or a
    list of them) and the `host:port` of its replicas (`peer_host`, or the container's name when
    empty), by longest path first; `admin` when only admins may reach it (`proxy_admin`), `public` when
    the proxy asks no key for it (`proxy_public`: the service signs its users in itself)."""
    out = []
    for name in names:
        if "proxy_path" not in definitions[name]:
            continue
        paths = definitions[name]["proxy_path"]
        paths = [str(path) for path in paths] if isinstance(paths, (list, tuple)) else [str(paths)]
        paths = sorted(paths, key=lambda path: (len(path), _fold(path)), reverse=True)
        servers = ["%s:%s" % (peer_host or item["name"], item["port"]) for item in instances if item["service"] == name]
        out.append({"name": name, "path": paths[0], "paths": paths, "servers": servers,
                    "admin": as_bool(definitions[name].get("proxy_admin", False)),
                    "public": as_bool(definitions[name].get("proxy_public", False))})
    return sorted(out, key=lambda upstream: _fold(upstream["path"]), reverse=True)


def proxy_routes(upstreams: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every (path prefix, upstream) pair of `upstreams`, longest prefix first: the order in which a
    proxy that takes the first match (HAProxy's rules, a regular-expression map) must test them to
    pick the longest one, as nginx's prefix locations do."""
    routes = [{"path": path, "name": upstream["name"], "public": as_bool(upstream.get("public", False))}
              for upstream in upstreams for path in upstream.get("paths", [upstream["path"]])]
    return sorted(routes, key=lambda route: (len(route["path"]), route["path"]), reverse=True)


def proxy_log_targets(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str],
                      instances: Sequence[Mapping[str, Any]], peer_host: str = "") -> list[str]:
    """`host:port` of every replica of an enabled service with a `proxy_log_port`: where the
    reverse proxy also sends its access log (syslog over UDP), `peer_host` or the container's name."""
    wanted = {name: definitions[name]["proxy_log_port"] for name in names
              if definitions[name].get("proxy_log_port") is not None}
    return ["%s:%s" % (peer_host or item["name"], wanted[item["service"]])
            for item in instances if item["service"] in wanted]


def _fold(value: Any) -> Any:
    """Sort key of Jinja's case-insensitive `sort`: strings lower-cased, anything else as it is."""
    return value.lower() if isinstance(value, str) else value


def _host_port(spec: Any) -> str:
    """"port/proto" that a Docker short port spec (`[ip:]host:container[/proto]` or `port`) takes on the host."""
    fields = str(spec).split("/")
    parts = fields[0].split(":")
    return "%s/%s" % (parts[-2] if len(parts) > 1 else parts[0], fields[1] if len(fields) > 1 else "tcp")


def host_ports(instances: Sequence[Mapping[str, Any]], definitions: Mapping[str, Mapping[str, Any]],
               network_mode: str = "host") -> list[dict[str, str]]:
    """Ports each container takes in the NAS's own network stack, as {container, port: "port/proto"}:
    in host mode what it listens on (`port`/`protocol`) and publishes, in bridge mode what it publishes."""
    out = []
    for item in instances:
        service = definitions[item["service"]]
        taken = [_host_port(spec) for spec in service.get("ports") or []]
        own = "%s/%s" % (item["port"], service.get("protocol", "tcp"))
        if network_mode == "host" and own not in taken:
            taken.append(own)
        out.extend({"container": item["name"], "port": port} for port in taken)
    return out


def _user_ids(service: Mapping[str, Any], default: str) -> list[str]:
    """The parts of a service's `user` ("uid:gid", "uid" or a name), `default` when it has none."""
    user = service.get("user")
    return str(default if user is None else user).split(":")


def config_files(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str]) -> list[dict[str, Any]]:
    """The configuration files to render, one per (service, `configs` entry): template (a name in the
    services role's templates/ or an absolute path) or content (text rendered by whoever added the
    service), dest, secret, and the group of the user the service runs as (which may read a secret one)."""
    out = []
    for name in names:
        for config in definitions[name].get("configs") or []:
            out.append({"service": name, "template": config.get("template"), "content": config.get("content"),
                        "dest": config.get("dest"),
                        "secret": as_bool(config.get("secret", False)),
                        "group": _user_ids(definitions[name], "0")[-1]})
    return out


def data_dirs(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str],
              project_dir: str) -> list[dict[str, str]]:
    """Data directories to create: data/<service> of each service with `data`, and its `data_dirs`,
    owned by the service's numeric uid:gid (root, or the uid, where they are not numeric)."""
    out = []
    for name in names:
        service = definitions[name]
        if not service.get("data"):
            continue
        ids = _user_ids(service, "0:0")
        uid = ids[0] if _NUMERIC_ID.match(ids[0]) else "0"
        gid = ids[-1] if _NUMERIC_ID.match(ids[-1]) else uid
        for sub in [""] + list(service.get("data_dirs") or []):
            path = "%s/data/%s/%s" % (project_dir, name, sub)
            out.append({"path": path[:-1] if path.endswith("/") else path, "owner": uid, "group": gid})
    return out


def project_directories(files: Sequence[Mapping[str, Any]], project_dir: str,
                        data: Sequence[Mapping[str, Any]] = (), tls: bool = False,
                        auth: bool = False) -> list[dict[str, str]]:
    """Every directory of the project for stack_files: its own (config/, data/, the private
    secrets/ and tls/), config/<service> of each service with configuration files `files`
    (config_files) and the subdirectories their `dest` names, with `tls` the proxy's certificate directory and with `auth` the private auth/
    (the proxy's map of keys), all root's; then the data directories `data` (data_dirs) with their
    owners, 0750."""
    out = [{"path": project_dir, "mode": "0755"},
           {"path": project_dir + "/config", "mode": "0755"},
           {"path": project_dir + "/data", "mode": "0755"},
           {"path": project_dir + "/secrets", "mode": "0700"},
           {"path": project_dir + "/tls", "mode": "0700"}]
    if as_bool(auth):
        out.append({"path": project_dir + "/auth", "mode": "0700"})
    config = []
    for item in files:
        # A dest in a subdirectory (Grafana's provisioning/datasources/...) gets each level.
        parts = [item["service"]] + str(item.get("dest") or "").split("/")[:-1]
        config += ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    config += ["proxy", "proxy/tls"] if as_bool(tls) else []
    for sub in dict.fromkeys(config):
        out.append({"path": "%s/config/%s" % (project_dir, sub), "mode": "0755", "owner": "root", "group": "root"})
    out.extend(dict(item, mode="0750") for item in data)
    return out


def config_writes(files: Sequence[Mapping[str, Any]], project_dir: str,
                  contents: Sequence[str]) -> list[dict[str, Any]]:
    """stack_files entries of the rendered configuration: `files` (config_files) with their
    `contents` (the rendered templates of those without a `content` of their own, in the same
    order), at config/<service>/<dest>, owned by root; a secret one (a password inside) 0640
    readable by the service's group, others 0644."""
    templated = [item for item in files if item.get("content") is None]
    if len(templated) != len(contents):
        raise ValueError("config_writes needs one content per template: %d templates, %d contents"
                         % (len(templated), len(contents)))
    rendered = iter(contents)
    out = []
    for item in files:
        content = item["content"] if item.get("content") is not None else next(rendered)
        secret = bool(item["secret"])
        out.append({"path": "%s/config/%s/%s" % (project_dir, item["service"], item["dest"]), "content": content,
                    "owner": "root", "group": item["group"] if secret else "root",
                    "mode": "0640" if secret else "0644", "secret": secret})
    return out


class FilterModule:
    """nasai.stack's filters of the services model."""

    def filters(self) -> dict[str, Any]:
        return {
            "enabled_services": enabled_services,
            "service_instances": service_instances,
            "proxy_upstreams": proxy_upstreams,
            "proxy_routes": proxy_routes,
            "proxy_log_targets": proxy_log_targets,
            "host_ports": host_ports,
            "config_files": config_files,
            "data_dirs": data_dirs,
            "project_directories": project_directories,
            "config_writes": config_writes,
        }
