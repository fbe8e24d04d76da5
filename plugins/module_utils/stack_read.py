# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack's containers as the engine describes them: state, health, quotas and what a security
audit reads. stack_containers_info returns it; stack_containers returns it after its changes
(O(read_back)), so that site.yml's summary needs no call of its own."""

from __future__ import annotations


def summarize(inspected):
    """The fields RETURN documents, from the engine's inspect answer of one container."""
    state = inspected.get("State") or {}
    host = inspected.get("HostConfig") or {}
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    return {
        "name": (inspected.get("Name") or "").lstrip("/"),
        "service": labels.get("nasai.stack.service", ""),
        "image": (inspected.get("Config") or {}).get("Image", ""),
        "state": state.get("Status", ""),
        "health": (state.get("Health") or {}).get("Status", ""),
        "restart_count": int(inspected.get("RestartCount") or 0),
        "memory_bytes": int(host.get("Memory") or 0),
        "cpus": (host.get("NanoCpus") or 0) / 1e9,
        "cpuset_cpus": host.get("CpusetCpus") or "",
        "pids_limit": max(int(host.get("PidsLimit") or 0), 0),
        "security": security(inspected),
    }


def security(inspected):
    """The container's settings a security audit reads."""
    host = inspected.get("HostConfig") or {}
    config = inspected.get("Config") or {}
    opts = host.get("SecurityOpt") or []
    binds = [mount.get("Source", "") for mount in inspected.get("Mounts") or [] if mount.get("Type") == "bind"]
    writable = [mount.get("Source", "") for mount in inspected.get("Mounts") or []
                if mount.get("Type") == "bind" and mount.get("RW", True)]
    published = sorted({binding.get("HostPort", "") for bindings in (host.get("PortBindings") or {}).values()
                        for binding in bindings or []})
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return {
        "privileged": bool(host.get("Privileged")),
        "cap_add": sorted(host.get("CapAdd") or []),
        "cap_drop": sorted(host.get("CapDrop") or []),
        "read_only": bool(host.get("ReadonlyRootfs")),
        "user": config.get("User") or "",
        "no_new_privileges": any(opt.replace("=", ":") in ("no-new-privileges:true", "no-new-privileges")
                                 for opt in opts),
        "network_mode": host.get("NetworkMode") or "",
        "pid_mode": host.get("PidMode") or "",
        "ipc_mode": host.get("IpcMode") or "",
        "binds": sorted(binds),
        "binds_writable": sorted(writable),
        "published": published,
        "healthcheck": bool(test) and test[0] != "NONE",
    }


def read_stack(engine, label):
    """Every container carrying `label`, summarized, sorted by name (one that vanished meanwhile is left out)."""
    out = []
    for listed in engine.containers(label):
        inspected = engine.container(listed["Id"])
        if inspected is not None:
            out.append(summarize(inspected))
    return sorted(out, key=lambda item: item["name"])
