#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gather what nasai.stack needs to know about a NAS host in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nas_facts
short_description: Gather NAS platform, hardware, GPU, Docker and data-path facts
version_added: 0.1.0
description:
  - Reads, without changing anything, what the nasai.stack roles need to know about a host
    in a single module call, and returns it as the C(nasai_nas) fact.
  - The NAS platform is told from its marker files (Synology DSM, QNAP QTS, Unraid,
    TrueNAS SCALE, OpenMediaVault), falling back to C(/etc/os-release).
  - CPU count is the number of CPUs this process may run on (it honours a cpuset); memory is
    C(MemTotal), lowered to the cgroup memory limit when one is set.
  - Also reports whether a usable package manager exists (TrueNAS SCALE makes apt and dpkg
    non-executable; DSM, QTS and Unraid have none), the target's Python and whether it has
    C(requests), and the platform's own data path (DSM C(/volume1/nasai), QTS
    C(/share/CACHEDEV1_DATA/nasai), SCALE C(/mnt/<pool>/nasai) with the pool found under
    C(/mnt), Unraid C(/mnt/user/appdata/nasai)).
attributes:
  check_mode:
    support: full
    details:
      - It only reads, so check mode runs it as usual.
  diff_mode:
    support: N/A
    details:
      - It changes nothing.
  facts:
    support: full
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  data_path:
    description:
      - Where the stack keeps its data. It may not exist yet; free space is then read from
        its nearest existing parent.
      - When not given, the platform's own place for it is used (C(platform_data_path)), or
        C(/container/data) on a platform without one.
      - It must be absolute, without C(..), and neither the root nor a system directory
        (C(/etc), C(/usr), C(/var), ...); the module fails on anything else before reading it.
    type: path
  facts_dir:
    description:
      - Directory of the collection's local facts (C(nasai_*.fact) files, as the roles record them);
        their text is returned in C(local_facts), by name without C(.fact), so a role can tell
        what it recorded on an earlier run without another round trip.
    type: path
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
"""

EXAMPLES = r"""
- name: Gather NAS facts
  nasai.stack.nas_facts:
    data_path: /srv/dev-disk-by-label-data/container
"""

RETURN = r"""
ansible_facts:
  description: Facts about the host.
  returned: always
  type: dict
  contains:
    nasai_nas:
      description:
        - Platform, cpu, memory, architecture, gpu, docker and data_path details.
        - C(fqdn) and C(lan_ipv4), the address the host reaches other networks from (its default
          route's source; null without one), name the host in certificates.
        - C(gpu), the GPUs a container could use. NVIDIA - C(nvidia) (device nodes or
          C(nvidia-smi)), C(nvidia_driver) (C(nvidia-smi) answered or the kernel module is loaded),
          C(nvidia_gpus) (index, name, memory, uuid from C(nvidia-smi)) and C(memory_bytes), their
          memory together (null when not known). Intel/AMD - C(dri) (each render node with the group
          that may open it) and C(kfd) (AMD ROCm). How a container reaches them - C(cdi_devices) (the
          device names of the CDI specs in C(/etc/cdi) and C(/var/run/cdi)), and the NVIDIA Container
          Toolkit's C(nvidia_container_hook) and C(nvidia_ctk) (paths, null when missing).
        - C(listening), the TCP ports something listens on beyond loopback, with the program
          (C(process), C(pid)) and whether it runs in a container (another PID namespace, or
          Docker's port forwarder), so that ports the NAS's own web UI holds are known.
      type: dict
      sample:
        platform: {name: openmediavault, version: "7.4.2", appliance: false}
        architecture: x86_64
        fqdn: omv.home.lan
        lan_ipv4: 192.168.1.20
        listening: [{port: 443, process: nginx, pid: 812, container: false}]
        cpu_count: 4
        memory_bytes: 8254390272
        gpu: {present: true, nvidia: true, nvidia_driver: true,
              nvidia_gpus: [{index: 0, name: NVIDIA RTX 4060, memory_bytes: 8585740288, uuid: GPU-5b1c...}],
              memory_bytes: 8585740288, dri_render_nodes: [], dri: [], kfd: false,
              cdi_devices: [nvidia.com/gpu=0, nvidia.com/gpu=all],
              nvidia_container_hook: /usr/bin/nvidia-container-runtime-hook, nvidia_ctk: /usr/bin/nvidia-ctk}
        docker: {installed: true, version: "20.10.24+dfsg1", socket: true}
        data_path: {path: /container/data, exists: false, probed: /, mount: /, fstype: ext4,
                    size_total: 268435456000, size_available: 85899345920}
        platform_data_path: null
        pools: []
        package_manager: {name: apt, usable: true,
                          tools: {apt-get: executable, dpkg: executable}}
        python: {version: "3.11.2", executable: /usr/bin/python3, requests: true}
        local_facts: {nasai_preflight: '{"platform": "openmediavault", ...}'}
"""

import glob
import grp
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.host import (
    mount_of, nearest_existing, parse_os_release, read_text, unsafe_data_path)

# Marker files of the NAS platforms, checked in this order. `appliance` platforms manage their
# own packages and Docker engine: the stack adopts what is there instead of installing.
PLATFORM_MARKERS = (
    ("synology_dsm", ("/etc.defaults/VERSION", "/etc/synoinfo.conf"), True),
    ("qnap_qts", ("/etc/config/uLinux.conf", "/sbin/getcfg"), True),
    ("unraid", ("/etc/unraid-version",), True),
    ("truenas_scale", ("/usr/bin/midclt", "/etc/truenas-version"), True),
    ("openmediavault", ("/etc/openmediavault/config.xml", "/usr/sbin/omv-confdbadm"), False),
)

# Where each platform writes its version, and the pattern that pulls it out.
VERSION_SOURCES = {
    "synology_dsm": ("/etc.defaults/VERSION", r'productversion="([^"]+)"'),
    "qnap_qts": ("/etc/config/uLinux.conf", r"(?m)^\s*Version\s*=\s*(\S+)"),
    "unraid": ("/etc/unraid-version", r'version="([^"]+)"'),
    "truenas_scale": ("/etc/version", r"(\S+)"),
    "openmediavault": ("/var/lib/dpkg/status", r"Package: openmediavault\n(?:[^\n]+\n)*?Version: (\S+)"),
}


# Where each platform keeps user data; the stack's directory goes there. {pool} is a pool found
# under /mnt (TrueNAS SCALE).
PLATFORM_DATA_PATHS = {
    "synology_dsm": "/volume1/nasai",
    "qnap_qts": "/share/CACHEDEV1_DATA/nasai",
    "truenas_scale": "/mnt/{pool}/nasai",
    "unraid": "/mnt/user/appdata/nasai",
}
DEFAULT_DATA_PATH = "/container/data"
# The package manager's tools, each reported as executable, not executable or missing.
PACKAGE_TOOLS = ("apt-get", "dpkg")
TOOL_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin")


def os_release(root="/"):
    return parse_os_release(read_text(os.path.join(root, "etc/os-release")))


def detect_platform(root="/"):
    """Return name, version and whether the platform is an appliance that owns its packages."""
    for name, markers, appliance in PLATFORM_MARKERS:
        found = [m for m in markers if os.path.exists(os.path.join(root, m.lstrip("/")))]
        if found:
            version = None
            source, pattern = VERSION_SOURCES[name]
            match = re.search(pattern, read_text(os.path.join(root, source.lstrip("/"))) or "")
            if match:
                version = match.group(1)
            return {"name": name, "version": version, "appliance": appliance, "markers": found}
    release = os_release(root)
    name = release.get("ID", "linux")
    return {"name": name if name in ("debian", "ubuntu") else "linux",
            "version": release.get("VERSION_ID"), "appliance": False, "markers": [],
            "os_id": name}


def cgroup_memory_limit(root="/"):
    """The memory limit of this process's cgroup (v1 or v2), or None when unlimited."""
    text = read_text(os.path.join(root, "proc/self/cgroup")) or ""
    for line in text.splitlines():
        _id, controllers, path = line.split(":", 2)
        if controllers == "":
            candidate = os.path.join(root, "sys/fs/cgroup", path.lstrip("/"), "memory.max")
        elif "memory" in controllers.split(","):
            candidate = os.path.join(root, "sys/fs/cgroup/memory", path.lstrip("/"),
                                     "memory.limit_in_bytes")
        else:
            continue
        value = (read_text(candidate) or "").strip()
        if value.isdigit() and int(value) < (1 << 60):
            return int(value)
    return None


def memory_bytes(root="/"):
    match = re.search(r"(?m)^MemTotal:\s+(\d+) kB", read_text(os.path.join(root, "proc/meminfo")) or "")
    total = int(match.group(1)) * 1024 if match else 0
    limit = cgroup_memory_limit(root)
    return min(total, limit) if limit else total


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Where the Container Device Interface keeps its device specs (the engine reads both).
CDI_SPEC_DIRS = ("etc/cdi", "var/run/cdi")
# NVIDIA Container Toolkit: the hook the engine runs for `--gpus` requests, and its CLI (CDI specs).
NVIDIA_HOOK = "nvidia-container-runtime-hook"
NVIDIA_CTK = "nvidia-ctk"
NVIDIA_SMI_QUERY = ["--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"]


def parse_nvidia_smi(text):
    """[{index, name, memory_bytes, uuid}] of `nvidia-smi --query-gpu=index,name,memory.total,uuid
    --format=csv,noheader,nounits` output (memory in MiB; "[N/A]" gives null)."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        mib = fields[2].split()[0] if fields[2] else ""
        gpus.append({"index": int(fields[0]), "name": fields[1],
                     "memory_bytes": int(mib) << 20 if mib.isdigit() else None, "uuid": fields[3]})
    return gpus


def cdi_device_names(text):
    """The fully qualified device names (vendor.com/class=name) a CDI spec (JSON or YAML) declares.

    PyYAML may be missing on a NAS: a YAML spec is then read line by line (the spec's top-level
    `kind` and the `name` of each entry of `devices`, the only keys called so)."""
    try:
        spec = json.loads(text)
    except ValueError:
        spec = None
        try:
            import yaml  # pylint: disable=import-outside-toplevel
            spec = yaml.safe_load(text)
        except Exception:  # pylint: disable=broad-except
            spec = None
    if isinstance(spec, dict):
        kind = spec.get("kind")
        names = [device.get("name") for device in spec.get("devices") or [] if isinstance(device, dict)]
    else:
        match = re.search(r"^kind:\s*[\"']?([^\s\"']+)", text, re.M)
        kind = match.group(1) if match else None
        names = re.findall(r"^\s*-?\s*name:\s*[\"']?([^\s\"']+)", text, re.M)
    if not kind or "/" not in str(kind):
        return []
    return ["%s=%s" % (kind, name) for name in names if name]


def cdi_devices(root="/"):
    """Every CDI device name the spec files in /etc/cdi and /var/run/cdi declare, sorted."""
    found = set()
    for directory in CDI_SPEC_DIRS:
        for path in sorted(glob.glob(os.path.join(root, directory, "*"))):
            if path.endswith((".json", ".yaml", ".yml")):
                found.update(cdi_device_names(read_text(path) or ""))
    return sorted(found)


def render_node(path):
    """{path, gid, group} of a DRI render node: containers need its group to open it."""
    try:
        gid = os.stat(path).st_gid
    except OSError:
        return {"path": path, "gid": None, "group": None}
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = None
    return {"path": path, "gid": gid, "group": group}


def detect_gpu(module=None, root="/"):
    """NVIDIA GPUs (device nodes, the driver through nvidia-smi: each GPU's memory), DRI render nodes
    (Intel/AMD GPUs and iGPUs) with their group, and the ways a container can reach them: CDI specs,
    the NVIDIA Container Toolkit's hook and CLI, AMD's /dev/kfd (ROCm)."""
    nodes = any(os.path.exists(os.path.join(root, p)) for p in ("dev/nvidiactl", "dev/nvidia0"))
    smi = shutil.which("nvidia-smi")
    gpus = []
    if smi and module is not None:
        rc, out, _err = module.run_command([smi] + NVIDIA_SMI_QUERY)
        gpus = parse_nvidia_smi(out) if rc == 0 else []
    driver = bool(gpus) or os.path.exists(os.path.join(root, "proc/driver/nvidia/version"))
    dri = sorted(glob.glob(os.path.join(root, "dev/dri/renderD*")))
    memories = [gpu["memory_bytes"] for gpu in gpus]
    return {
        "present": nodes or smi is not None or bool(dri),
        "nvidia": nodes or smi is not None,
        "nvidia_driver": driver,
        "nvidia_gpus": gpus,
        # All of them together (llama.cpp splits the layers over them); null when not known.
        "memory_bytes": sum(memories) if memories and None not in memories else None,
        "dri_render_nodes": dri,
        "dri": [render_node(path) for path in dri],
        "kfd": os.path.exists(os.path.join(root, "dev/kfd")),
        "cdi_devices": cdi_devices(root),
        "nvidia_container_hook": shutil.which(NVIDIA_HOOK),
        "nvidia_ctk": shutil.which(NVIDIA_CTK),
    }


def detect_docker(module):
    binary = shutil.which("docker") or shutil.which("dockerd")
    result = {"installed": binary is not None, "binary": binary, "version": None,
              "socket": os.path.exists("/var/run/docker.sock")}
    if binary:
        # `--version` reads only the binary: it answers even when the engine is stopped.
        rc, out, _err = module.run_command([binary, "--version"])
        match = re.search(r"version ([^\s,]+)", out) if rc == 0 else None
        result["version"] = match.group(1) if match else None
    return result


def tool_state(name, root="/"):
    """`executable`, `not executable` (present without the x bit, as on TrueNAS SCALE) or `missing`."""
    for directory in TOOL_DIRS:
        path = os.path.join(root, directory.lstrip("/"), name)
        if os.path.isfile(path):
            return "executable" if os.access(path, os.X_OK) else "not executable"
    return "missing"


def package_manager(root="/"):
    """Whether apt can install packages here: apt-get and dpkg both present and executable."""
    tools = {name: tool_state(name, root) for name in PACKAGE_TOOLS}
    present = any(state != "missing" for state in tools.values())
    return {"name": "apt" if present else None,
            "usable": all(state == "executable" for state in tools.values()), "tools": tools}


def python_facts():
    return {"version": platform.python_version(), "executable": sys.executable,
            "requests": importlib.util.find_spec("requests") is not None}


def pools(mounts_text):
    """TrueNAS SCALE pools: file systems mounted right under /mnt (not hidden ones such as
    /mnt/.ix-apps), ZFS first, then by name."""
    found = {}
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        match = re.match(r"^/mnt/([^/.][^/]*)$", point)
        if match:
            found[match.group(1)] = fields[2]
    return sorted(found, key=lambda name: (found[name] != "zfs", name))


def platform_data_path(name, pool_names):
    """The platform's own place for the stack's data, None when it cannot be told (no pool)."""
    template = PLATFORM_DATA_PATHS.get(name)
    if template is None or ("{pool}" in template and not pool_names):
        return None
    return template.format(pool=pool_names[0] if pool_names else "")


def data_path_facts(path, root="/"):
    path = os.path.normpath(path)
    probed = nearest_existing(path)
    stats = os.statvfs(probed)
    point, fstype = mount_of(os.path.realpath(probed), read_text(os.path.join(root, "proc/mounts")) or "")
    return {"path": path, "exists": probed == path, "probed": probed, "mount": point,
            "fstype": fstype, "size_total": stats.f_blocks * stats.f_frsize,
            "size_available": stats.f_bavail * stats.f_frsize}


def local_facts(directory):
    """{name: text} of the nasai_*.fact files in `directory` (empty when it is unset or missing)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(directory, "nasai_*.fact"))) if directory else []:
        text = read_text(path)
        if text is not None:
            found[os.path.basename(path)[:-len(".fact")]] = text
    return found


def lan_ipv4():
    """The address the host sends from towards other networks (its default route's source), found
    by routing a UDP socket (nothing is sent); None without a route."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def listening_tcp(root="/"):
    """[{port, process, pid, container}] of the TCP sockets listening beyond loopback, sorted by port."""
    inodes = {}
    for name, loopback in (("tcp", "0100007F"), ("tcp6", "00000000000000000000000001000000")):
        for line in (read_text(os.path.join(root, "proc/net", name)) or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":
                continue
            address, port = fields[1].rsplit(":", 1)
            if address != loopback:
                inodes[fields[9]] = int(port, 16)
    owners = {}
    host_pid_ns = _readlink(os.path.join(root, "proc/1/ns/pid"))
    for pid in (entry for entry in os.listdir(os.path.join(root, "proc")) if entry.isdigit()):
        base = os.path.join(root, "proc", pid)
        try:
            links = [_readlink(os.path.join(base, "fd", fd)) for fd in os.listdir(os.path.join(base, "fd"))]
        except OSError:
            continue
        for link in links:
            inode = link[8:-1] if link.startswith("socket:[") else None
            if inode in inodes and inode not in owners:
                comm = (read_text(os.path.join(base, "comm")) or "?").strip()
                container = comm == "docker-proxy" or _readlink(os.path.join(base, "ns/pid")) != host_pid_ns
                owners[inode] = {"port": inodes[inode], "process": comm, "pid": int(pid), "container": container}
    found = {(item["port"], item["process"]): item for item in owners.values()}
    return sorted(found.values(), key=lambda item: (item["port"], item["process"]))


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return ""


def main():
    module = AnsibleModule(
        argument_spec={"data_path": {"type": "path"}, "facts_dir": {"type": "path"}},
        supports_check_mode=True,
    )
    found = detect_platform()
    pool_names = pools(read_text("/proc/mounts") or "") if found["name"] == "truenas_scale" else []
    default_path = platform_data_path(found["name"], pool_names)
    data_path = module.params["data_path"] or default_path or DEFAULT_DATA_PATH
    why = unsafe_data_path(data_path)
    if why:
        # Refused before anything reads or makes it (a relative path used to loop forever here).
        module.fail_json(msg="nasai_data_path (preflight_data_path) %s, such as /srv/dev-disk-by-label-data/nasai; "
                             "got %r" % (why, data_path))
    facts = {
        "platform": found,
        "architecture": platform.machine(),
        "fqdn": socket.getfqdn(),
        "lan_ipv4": lan_ipv4(),
        "listening": listening_tcp(),
        "cpu_count": cpu_count(),
        "memory_bytes": memory_bytes(),
        "gpu": detect_gpu(module),
        "docker": detect_docker(module),
        "data_path": data_path_facts(data_path),
        "platform_data_path": default_path,
        "pools": pool_names,
        "package_manager": package_manager(),
        "python": python_facts(),
        "local_facts": local_facts(module.params["facts_dir"]),
    }
    module.exit_json(changed=False, ansible_facts={"nasai_nas": facts})


if __name__ == "__main__":
    main()
