# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker Engine API over its Unix socket, with the Python standard library only.

Appliance NAS (Synology DSM, QNAP QTS, TrueNAS SCALE, Unraid) ship an engine but no `requests`
for Python, which community.docker's modules need on the managed host. Everything the stack asks
of the engine (inspect, create, start, remove, load, pull) is a handful of plain HTTP calls, made
here over `http.client`, so the collection's modules run wherever the NAS has a Python 3.6+.
Pure helpers (sizes, durations, create bodies, spec fingerprints) are separate for unit tests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
from urllib.parse import quote, urlencode

DEFAULT_SOCKET = "/var/run/docker.sock"
# The `socket` option of every module that talks to the engine (doc fragment nasai.stack.engine).
ENGINE_SOCKET_OPTION = {"type": "path", "default": DEFAULT_SOCKET}
LABEL_SPEC = "nasai.stack.spec"
LABEL_SPEC_HASH = "nasai.stack.spec-hash"
_SIZE = re.compile(r"^\s*([0-9]+)\s*([bkmg]?)b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"([0-9.]+)(ns|us|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}


class EngineError(Exception):
    """An engine call that failed: the HTTP status (0 when the socket did not answer) and its message."""

    def __init__(self, status, message):
        super().__init__("%s (HTTP %s)" % (message, status) if status else message)
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Engine:
    """A client of one engine's API socket; every call opens its own short connection."""

    def __init__(self, socket_path=DEFAULT_SOCKET, timeout=60):
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, method, path, query=None, body=None, raw=None, length=None, timeout=None, ok=(200,)):
        """(status, parsed JSON or text) of one request; EngineError for a status outside `ok`."""
        url = path + ("?" + urlencode(query) if query else "")
        headers = {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            payload = raw
            headers["Content-Type"] = "application/x-tar"
            headers["Content-Length"] = str(length)
        conn = _UnixConnection(self.socket_path, timeout or self.timeout)
        try:
            conn.request(method, url, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(0, "the engine at %s did not answer %s %s: %s" % (self.socket_path, method, path, exc))
        finally:
            conn.close()
        text = data.decode("utf-8", errors="replace")
        if response.status not in ok:
            raise EngineError(response.status, _error_message(text) or response.reason)
        content_type = response.getheader("Content-Type") or ""
        if "json" in content_type and text.strip() and "\n{" not in text.strip():
            return response.status, json.loads(text)
        return response.status, text

    def _get(self, path, query=None):
        status, data = self.call("GET", path, query, ok=(200, 404))
        return None if status == 404 else data

    # Read ------------------------------------------------------------------------------------
    def version(self):
        return self._get("/version")

    def info(self):
        return self._get("/info")

    def container(self, name):
        return self._get("/containers/%s/json" % quote(name, safe=""))

    def containers(self, label):
        return self._get("/containers/json", {"all": "1", "filters": json.dumps({"label": [label]})}) or []

    def image(self, name):
        return self._get("/images/%s/json" % quote(name, safe=":/@"))

    def network(self, name):
        return self._get("/networks/%s" % quote(name, safe=""))

    def volume(self, name):
        return self._get("/volumes/%s" % quote(name, safe=""))

    def logs(self, name, tail=20):
        status, data = self.call("GET", "/containers/%s/logs" % quote(name, safe=""),
                                 {"stdout": "1", "stderr": "1", "tail": str(tail)}, ok=(200, 404))
        return "" if status == 404 else demux_logs(data)

    # Change ----------------------------------------------------------------------------------
    def create(self, name, body):
        _status, data = self.call("POST", "/containers/create", {"name": name}, body=body, ok=(201,))
        return data["Id"]

    def connect(self, network, container, aliases=None):
        self.call("POST", "/networks/%s/connect" % quote(network, safe=""),
                  body={"Container": container, "EndpointConfig": {"Aliases": aliases or []}})

    def start(self, name):
        self.call("POST", "/containers/%s/start" % quote(name, safe=""), ok=(204, 304))

    def stop(self, name, grace=10):
        self.call("POST", "/containers/%s/stop" % quote(name, safe=""), {"t": str(grace)},
                  ok=(204, 304), timeout=grace + self.timeout)

    def kill(self, name, signal):
        """Send a signal to the container's main process (a reload, with SIGHUP or SIGUSR2)."""
        self.call("POST", "/containers/%s/kill" % quote(name, safe=""), {"signal": signal}, ok=(204,))

    def set_restart_policy(self, name, policy):
        """Change a container's restart policy (RestartPolicy of the create body) in place."""
        self.call("POST", "/containers/%s/update" % quote(name, safe=""), body={"RestartPolicy": policy}, ok=(200,))

    def rename(self, name, new_name):
        self.call("POST", "/containers/%s/rename" % quote(name, safe=""), {"name": new_name}, ok=(204,))

    def remove(self, name):
        """Remove a container; its named volumes and bind-mounted data stay."""
        self.call("DELETE", "/containers/%s" % quote(name, safe=""), {"force": "1", "v": "0"}, ok=(204, 404))

    def wait(self, name, timeout):
        _status, data = self.call("POST", "/containers/%s/wait" % quote(name, safe=""), timeout=timeout)
        return data.get("StatusCode") if isinstance(data, dict) else None

    def create_network(self, name, driver="bridge", labels=None):
        self.call("POST", "/networks/create", body={"Name": name, "Driver": driver, "Labels": labels or {},
                                                    "CheckDuplicate": True}, ok=(201,))

    def create_volume(self, name, driver="local", options=None, labels=None):
        self.call("POST", "/volumes/create", body={"Name": name, "Driver": driver, "DriverOpts": options or {},
                                                   "Labels": labels or {}}, ok=(201,))

    def remove_volume(self, name):
        self.call("DELETE", "/volumes/%s" % quote(name, safe=""), ok=(204, 404))

    def volume_users(self, name):
        """Names of the containers (running or not) that mount volume `name`."""
        found = self._get("/containers/json", {"all": "1", "filters": json.dumps({"volume": [name]})}) or []
        return sorted((c.get("Names") or ["/?"])[0].lstrip("/") for c in found)

    def load(self, path):
        """Load a `docker save` archive; the image names it brought ("Loaded image: ...")."""
        import os

        with open(path, "rb") as archive:
            _status, text = self.call("POST", "/images/load", {"quiet": "1"}, raw=archive,
                                      length=os.fstat(archive.fileno()).st_size, timeout=1800)
        return _stream_result(text, "Loaded image: ")

    def tag(self, image_id, name):
        """Point the reference `name` (repository:tag) at the image `image_id`."""
        repo, tag = split_image(name)
        self.call("POST", "/images/%s/tag" % quote(image_id, safe=":"), {"repo": repo, "tag": tag}, ok=(200, 201))

    def pull(self, name):
        repo, tag = split_image(name)
        _status, text = self.call("POST", "/images/create", {"fromImage": repo, "tag": tag}, timeout=3600)
        _stream_result(text, "")
        return name


# Pure helpers ----------------------------------------------------------------------------------
def _error_message(text):
    try:
        return json.loads(text).get("message")
    except (ValueError, AttributeError):
        return text.strip()[:500]


def _stream_result(text, prefix):
    """Lines after `prefix` in a JSON progress stream; EngineError for the first error it holds."""
    found = []
    for line in (text if isinstance(text, str) else json.dumps(text)).splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if item.get("error") or item.get("errorDetail"):
            raise EngineError(200, item.get("error") or item["errorDetail"].get("message"))
        stream = item.get("stream", "")
        if prefix and stream.startswith(prefix):
            found.append(stream[len(prefix):].strip())
    return found


def demux_logs(data):
    """Text of a non-TTY container's multiplexed log stream (8-byte frame headers)."""
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else data
    out, pos = [], 0
    while pos + 8 <= len(raw) and raw[pos] in (0, 1, 2) and raw[pos + 1:pos + 4] == b"\0\0\0":
        size = int.from_bytes(raw[pos + 4:pos + 8], "big")
        out.append(raw[pos + 8:pos + 8 + size])
        pos += 8 + size
    if not out:
        return raw.decode("utf-8", errors="replace")
    return b"".join(out).decode("utf-8", errors="replace")


def split_image(name):
    """(repository, tag or digest) of an image reference; the tag defaults to `latest`."""
    if "@" in name:
        repo, digest = name.split("@", 1)
        return repo, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, "latest"


def size_bytes(value):
    """Bytes of a Docker size (an int, or a number with b, k, m or g, 1024-based); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError("%r is not a size (a number with b, k, m or g)" % (value,))
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


def duration_ns(value):
    """Nanoseconds of a duration such as 5s, 1m30s or 500ms (a bare number counts as seconds)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value * 10 ** 9)
    text = str(value).strip()
    if re.match(r"^[0-9.]+$", text):
        return int(float(text) * 10 ** 9)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("%r is not a duration (such as 5s, 1m30s, 500ms)" % (value,))
    return int(sum(float(n) * _DURATION_NS[u] for n, u in parts))


def _port_key(spec):
    """("container port/proto", {"HostIp", "HostPort"}) of `[ip:]host:container[/proto]` or `container`."""
    spec = str(spec)
    proto = "tcp"
    if "/" in spec:
        spec, proto = spec.rsplit("/", 1)
    parts = spec.split(":")
    if len(parts) == 1:
        return "%s/%s" % (parts[0], proto), {"HostIp": "", "HostPort": ""}
    host_ip = ":".join(parts[:-2]) if len(parts) > 2 else ""
    return "%s/%s" % (parts[-1], proto), {"HostIp": host_ip.strip("[]"), "HostPort": parts[-2]}


def _major(version):
    match = re.match(r"^\s*([0-9]+)", str(version or ""))
    return int(match.group(1)) if match else 0


def engine_cdi(version_info, info, daemon_settings=None):
    """Whether the engine hands CDI devices (vendor.com/class=name) to containers.

    Engines that report their CDI spec directories (API 1.46+) have CDI on exactly when they list
    some; Docker 25-27 have it when daemon.json turns the `cdi` feature on (28 on by default);
    older engines have no CDI."""
    if "CDISpecDirs" in (info or {}):
        return bool(info.get("CDISpecDirs"))
    major = _major((version_info or {}).get("Version"))
    if major >= 28:
        return True
    if major >= 25:
        return bool(((daemon_settings or {}).get("features") or {}).get("cdi"))
    return False


def healthcheck_body(check):
    """The API's Healthcheck object of a compose-style healthcheck (test, interval, timeout, ...)."""
    if not check:
        return None
    test = check.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    body = {"Test": [str(t) for t in test]}
    for key, api in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if check.get(key) is not None:
            body[api] = duration_ns(check[key])
    if check.get("retries") is not None:
        body["Retries"] = int(check["retries"])
    return body


def device_body(item):
    """The API's device mapping of `host[:container[:permissions]]` (docker run --device)."""
    parts = str(item).split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1] else host
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"}


def device_request_body(item):
    """The API's device request (docker run --gpus, or a CDI device with driver `cdi`) of a dict with
    driver, count, device_ids, capabilities (a list of lists) and options."""
    body = {"Driver": str(item.get("driver") or ""), "Count": int(item.get("count") or 0),
            "DeviceIDs": [str(x) for x in item.get("device_ids") or []],
            "Capabilities": [[str(c) for c in group] for group in item.get("capabilities") or []],
            "Options": {str(k): str(v) for k, v in (item.get("options") or {}).items()}}
    return body


def create_body(spec):
    """The body of POST /containers/create for one container of the stack.

    `spec` holds the stack's own field names (image, command, entrypoint, env, network_mode,
    networks, published_ports, volumes, healthcheck, restart_policy, labels, memory, memory_swap,
    memory_reservation, cpus, cpuset_cpus, pids_limit, read_only, user, tmpfs, security_opts,
    cap_drop, cap_add, log_driver, log_options, devices, device_requests, group_add); missing or
    None fields take the engine's default.
    """
    network_mode = spec.get("network_mode") or "bridge"
    networks = list(spec.get("networks") or [])
    if network_mode not in ("host", "none", "bridge") and not networks:
        networks = [network_mode]
    ports = {}
    exposed = {}
    for item in spec.get("published_ports") or []:
        key, binding = _port_key(item)
        exposed[key] = {}
        ports.setdefault(key, []).append(binding)
    host = {
        "Binds": list(spec.get("volumes") or []),
        "NetworkMode": networks[0] if networks and network_mode not in ("host", "none") else network_mode,
        "PortBindings": ports,
        "RestartPolicy": {"Name": spec.get("restart_policy") or "no", "MaximumRetryCount": 0},
        "ReadonlyRootfs": bool(spec.get("read_only")),
        "Tmpfs": {path: "" for path in spec.get("tmpfs") or []},
        "SecurityOpt": list(spec.get("security_opts") or []),
        "CapDrop": list(spec.get("cap_drop") or []),
        "CapAdd": list(spec.get("cap_add") or []),
    }
    # Without a log driver the engine's own default (daemon.json: driver and rotation) applies.
    if spec.get("log_driver"):
        host["LogConfig"] = {"Type": spec["log_driver"],
                             "Config": {k: str(v) for k, v in (spec.get("log_options") or {}).items()}}
    for key, api in (("memory", "Memory"), ("memory_swap", "MemorySwap"), ("memory_reservation", "MemoryReservation")):
        if spec.get(key) is not None:
            host[api] = size_bytes(spec[key])
    if spec.get("cpus") is not None:
        host["NanoCpus"] = int(round(float(spec["cpus"]) * 10 ** 9))
    if spec.get("cpuset_cpus") is not None:
        host["CpusetCpus"] = str(spec["cpuset_cpus"])
    if spec.get("pids_limit") is not None:
        host["PidsLimit"] = int(spec["pids_limit"])
    # Only when given, so that the fingerprint of a container without them stays as it was.
    if spec.get("devices"):
        host["Devices"] = [device_body(item) for item in spec["devices"]]
    if spec.get("device_requests"):
        host["DeviceRequests"] = [device_request_body(item) for item in spec["device_requests"]]
    if spec.get("group_add"):
        host["GroupAdd"] = [str(group) for group in spec["group_add"]]
    body = {
        "Image": spec["image"],
        "Env": ["%s=%s" % (k, v) for k, v in sorted((spec.get("env") or {}).items())],
        "Labels": {k: str(v) for k, v in (spec.get("labels") or {}).items()},
        "ExposedPorts": exposed,
        "HostConfig": host,
    }
    if spec.get("command") is not None:
        body["Cmd"] = [str(c) for c in spec["command"]]
    if spec.get("entrypoint") is not None:
        body["Entrypoint"] = [str(c) for c in spec["entrypoint"]]
    if spec.get("user") is not None:
        body["User"] = str(spec["user"])
    check = healthcheck_body(spec.get("healthcheck"))
    if check:
        body["Healthcheck"] = check
    if networks and network_mode not in ("host", "none"):
        body["NetworkingConfig"] = {"EndpointsConfig": {networks[0]: {"Aliases": [spec.get("name", "")]}}}
    return body


def _short(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def fingerprint(body, image_id, extra_networks=()):
    """({field: short hash}, overall hash) of what a container is made from: each field of the
    create body, the image's id (a new image under the same tag recreates the container) and any
    further networks. Stored as labels, so a diff can name the fields that changed without
    storing their values (which may hold secrets)."""
    fields = {"Image": _short([body["Image"], image_id]), "Networks": _short(list(extra_networks))}
    for key, value in body.items():
        if key == "HostConfig":
            for host_key, host_value in value.items():
                fields["HostConfig." + host_key] = _short(host_value)
        elif key not in ("Image", "Labels"):
            fields[key] = _short(value)
    labels = {k: v for k, v in body.get("Labels", {}).items() if k not in (LABEL_SPEC, LABEL_SPEC_HASH)}
    fields["Labels"] = _short(labels)
    return fields, _short(fields)


def changed_fields(old_fields, new_fields):
    """Names of the fields whose hash differs (all of them when the old ones are unknown)."""
    if not isinstance(old_fields, dict):
        return sorted(new_fields)
    return sorted(k for k in set(old_fields) | set(new_fields) if old_fields.get(k) != new_fields.get(k))
