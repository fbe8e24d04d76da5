#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, in one round trip, the state of a host's Docker engine that the docker role acts on."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_engine_info
short_description: Read the Docker engine's packages, service, daemon settings and data root
version_added: 0.1.0
description:
  - Reads, without changing anything, what the C(nasai.stack.docker) role needs before it
    changes a host, in a single module call. It reports which engine packages are installed and which
    package owns C(dockerd), the systemd state of the engine's service, what the running engine
    reports (version, data root, storage driver), the current C(daemon.json), whether the current
    and the wanted data roots hold images, containers or volumes, and the members of the
    C(docker) group.
  - The engine is only queried when its service is active (or there is no such unit), so a
    stopped engine is not started by socket activation.
attributes:
  check_mode:
    support: full
    details:
      - It only reads, so check mode runs it as usual.
  diff_mode:
    support: N/A
    details:
      - It changes nothing.
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  packages:
    description: Package names whose installed version is reported (dpkg hosts only).
    type: list
    elements: str
    default: []
  service:
    description: Name of the engine's systemd unit.
    type: str
    default: docker
  config_path:
    description: Path of the engine's daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  data_root:
    description: The data root the engine should use; its filesystem and contents are reported.
    type: path
  group:
    description: Group whose members are reported.
    type: str
    default: docker
  users:
    description: User names whose existence is reported.
    type: list
    elements: str
    default: []
  dropin_dir:
    description: Directory of the unit's drop-ins, whose C(.conf) files are returned.
    type: path
  files:
    description: Paths whose absence is reported (such as the TLS files a setting needs).
    type: list
    elements: path
    default: []
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Read the engine's state
  nasai.stack.docker_engine_info:
    packages: [docker.io, docker-compose]
    data_root: /container/data/docker
  register: engine
"""

RETURN = r"""
packages:
  description: Installed version of each requested package, null when not installed.
  returned: always
  type: dict
  sample: {docker.io: "20.10.24+dfsg1-1+deb12u1", docker-compose: null}
dockerd:
  description: Path of the dockerd binary, null when there is none.
  returned: always
  type: str
docker:
  description: Path of the docker CLI, null when there is none.
  returned: always
  type: str
engine_package:
  description: The dpkg package that owns dockerd, null when none does (appliances, static installs).
  returned: always
  type: str
service:
  description: The systemd properties of the engine's unit (LoadState, ActiveState, SubState, UnitFileState, FragmentPath).
  returned: always
  type: dict
exec_start:
  description: The ExecStart command line of the unit file itself (without drop-ins), null when unknown.
  returned: always
  type: str
server:
  description: What the running engine reports; C(answering) is false when it is stopped or broken.
  returned: always
  type: dict
  sample: {answering: true, version: "20.10.24+dfsg1", data_root: /var/lib/docker, storage_driver: overlay2,
           logging_driver: json-file, live_restore: true, error: null}
config:
  description: The daemon configuration file (exists, valid, settings).
  returned: always
  type: dict
data_root:
  description: >-
    current (the data root in use or configured), has_data (images, containers or volumes
    there), target, target_has_data, target_fstype (filesystem holding the wanted data root).
  returned: always
  type: dict
os:
  description: >-
    id and codename from /etc/os-release, and the Debian architecture name (from dpkg, or from
    the machine type where dpkg is missing or not executable).
  returned: always
  type: dict
group_members:
  description: Members of O(group), null when the group does not exist.
  returned: always
  type: list
missing_users:
  description: The O(users) that do not exist on the host.
  returned: always
  type: list
missing_files:
  description: The O(files) that are not regular files on the host.
  returned: always
  type: list
dropins:
  description: Content of each C(.conf) file in O(dropin_dir), null when the directory does not exist.
  returned: always
  type: dict
"""

import grp
import json
import os
import platform
import pwd
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nasai.stack.plugins.module_utils.host import (
    mount_of, nearest_existing, parse_os_release, read_text)

DEFAULT_DATA_ROOT = "/var/lib/docker"
# platform.machine() to Debian architecture names, for hosts whose dpkg is missing or not
# executable (TrueNAS SCALE removes its x bit; DSM, QTS and Unraid have none).
DEB_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                     "armv7l": "armhf", "armv6l": "armel", "i686": "i386", "i386": "i386",
                     "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}


def executable(name):
    """The path of `name` on PATH when it is there and executable (shutil.which checks both)."""
    return shutil.which(name)


def deb_architecture(module, dpkg):
    """dpkg's architecture name; from platform.machine() when dpkg cannot run or fails."""
    if dpkg:
        rc, out, _err = module.run_command([dpkg, "--print-architecture"])
        if rc == 0 and out.strip():
            return out.strip()
    machine = platform.machine()
    return DEB_ARCHITECTURES.get(machine, machine or None)


SERVICE_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath")


def parse_dpkg_query(text):
    """{package: version} for the installed packages of `dpkg-query -W` output."""
    versions = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[1].startswith("ii"):
            versions[fields[0]] = fields[2]
    return versions


def parse_systemctl_show(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def exec_start_of(unit_text):
    """The last ExecStart= command of a unit file, with line continuations joined."""
    command = None
    for line in (unit_text or "").replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("ExecStart="):
            command = " ".join(line[len("ExecStart="):].split()) or None
    return command


def has_docker_data(root):
    """Whether a data root holds containers, volumes or images (an empty skeleton does not)."""
    def entries(*parts):
        try:
            return os.listdir(os.path.join(root, *parts))
        except OSError:
            return []

    if entries("containers"):
        return True
    if [e for e in entries("volumes") if e not in ("metadata.db", "backingFsBlockDev")]:
        return True
    for driver in entries("image"):
        if entries("image", driver, "imagedb", "content", "sha256"):
            return True
    return False


def dir_has_entries(path):
    try:
        return bool(os.listdir(path))
    except OSError:
        return False


def fstype_of(path, mounts_text, exists=os.path.exists, realpath=os.path.realpath):
    """The filesystem type holding `path` (or its nearest existing parent)."""
    return mount_of(realpath(nearest_existing(path, exists)), mounts_text)[1]


def read_dropins(directory):
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".conf"))
    except OSError:
        return None
    return {name: read_text(os.path.join(directory, name)) for name in names}


def read_config(path):
    text = read_text(path)
    if text is None:
        return {"exists": False, "valid": True, "settings": {}, "error": None}
    if not text.strip():
        return {"exists": True, "valid": True, "settings": {}, "error": None}
    try:
        settings = json.loads(text)
    except ValueError as exc:
        return {"exists": True, "valid": False, "settings": {}, "error": str(exc)}
    if not isinstance(settings, dict):
        return {"exists": True, "valid": False, "settings": {}, "error": "not a JSON object"}
    return {"exists": True, "valid": True, "settings": settings, "error": None}


def not_answering(error):
    """The server facts of an engine that does not answer, and why."""
    return {"answering": False, "version": None, "data_root": None, "storage_driver": None,
            "logging_driver": None, "live_restore": None, "error": error}


def query_server(module, docker):
    result = not_answering(None)
    if not docker:
        result["error"] = "no docker CLI"
        return result
    rc, out, err = module.run_command([docker, "info", "--format", "{{json .}}"])
    info = None
    if rc == 0:
        try:
            info = json.loads(out)
        except ValueError:
            info = None
    if not info or not info.get("ServerVersion"):
        result["error"] = (err or out).strip()[-500:] or "the engine did not answer"
        return result
    result.update(answering=True, version=info.get("ServerVersion"), data_root=info.get("DockerRootDir"),
                  storage_driver=info.get("Driver"), logging_driver=info.get("LoggingDriver"),
                  live_restore=info.get("LiveRestoreEnabled"))
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "service": {"type": "str", "default": "docker"},
            "config_path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "data_root": {"type": "path"},
            "group": {"type": "str", "default": "docker"},
            "users": {"type": "list", "elements": "str", "default": []},
            "dropin_dir": {"type": "path"},
            "files": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    release = parse_os_release(read_text("/etc/os-release"))
    os_facts = {"id": release.get("ID"), "codename": release.get("VERSION_CODENAME"), "architecture": None}

    # A tool that exists without its x bit (TrueNAS SCALE's apt and dpkg) counts as absent.
    dpkg_query = executable("dpkg-query")
    packages = {name: None for name in params["packages"]}
    dockerd = shutil.which("dockerd") or next(
        (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd", "/usr/local/bin/dockerd") if os.path.exists(p)), None)
    docker = shutil.which("docker")
    engine_package = None
    if dpkg_query:
        if packages:
            _rc, out, _err = module.run_command(
                [dpkg_query, "-W", "-f", "${Package}\t${db:Status-Abbrev}\t${Version}\n"] + list(packages))
            packages.update(parse_dpkg_query(out))
        if dockerd:
            rc, out, _err = module.run_command([dpkg_query, "-S", os.path.realpath(dockerd)])
            if rc == 0 and ":" in out:
                engine_package = out.split(":", 1)[0].strip()
    os_facts["architecture"] = deb_architecture(module, executable("dpkg"))

    service = {key: None for key in SERVICE_PROPERTIES}
    systemctl = shutil.which("systemctl")
    if systemctl:
        rc, out, _err = module.run_command(
            [systemctl, "show", "-p", ",".join(SERVICE_PROPERTIES), params["service"] + ".service"])
        if rc == 0:
            service.update(parse_systemctl_show(out))
    unit_exists = service.get("LoadState") == "loaded"
    exec_start = exec_start_of(read_text(service["FragmentPath"])) if service.get("FragmentPath") else None

    # Querying a stopped engine through its socket unit would start it: only ask a running one.
    if unit_exists and service.get("ActiveState") != "active":
        server = not_answering("%s.service is %s (%s)" % (params["service"], service.get("ActiveState"),
                                                          service.get("SubState")))
    elif dockerd or docker:
        server = query_server(module, docker)
    else:
        server = not_answering("no Docker engine installed")

    config = read_config(params["config_path"])
    current = server["data_root"] or config["settings"].get("data-root") or DEFAULT_DATA_ROOT
    target = params["data_root"]
    mounts = read_text("/proc/mounts") or ""
    data_root = {
        "current": current,
        "has_data": has_docker_data(current),
        "target": target,
        "target_has_data": bool(target) and os.path.normpath(target) != os.path.normpath(current)
        and dir_has_entries(target),
        "target_fstype": fstype_of(target, mounts) if target else None,
    }

    try:
        members = sorted(grp.getgrnam(params["group"]).gr_mem)
    except KeyError:
        members = None
    missing_users = []
    for user in params["users"]:
        try:
            pwd.getpwnam(user)
        except KeyError:
            missing_users.append(user)

    dropins = read_dropins(params["dropin_dir"]) if params["dropin_dir"] else None

    module.exit_json(changed=False, dropins=dropins, packages=packages, dockerd=dockerd, docker=docker,
                     engine_package=engine_package, service=service, exec_start=exec_start,
                     server=server, config=config, data_root=data_root, os=os_facts,
                     group_members=members, missing_users=missing_users,
                     missing_files=[path for path in params["files"] if not os.path.isfile(path)])


if __name__ == "__main__":
    main()
