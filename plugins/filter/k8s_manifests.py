# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services model rendered as Kubernetes objects: the same description of the stack that the
services role deploys on one NAS, for a cluster run by Kubernetes."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any, Optional

PART_OF = "nasai-stack"
NAME_LABEL = "app.kubernetes.io/name"
PART_LABEL = "app.kubernetes.io/part-of"
# The reverse proxy and the log collector of a NAS: in a cluster the Ingress (TLS, paths) and the
# cluster's own logging take their place.
REPLACED = ("proxy", "logs")
SIZE = re.compile(r"^([0-9]+)([bkmg]?)$", re.I)
HTTP_CHECK = re.compile(r"^https?://(?:127\.0\.0\.1|localhost):\{port\}(/\S*)?$")


def _quantity(size: Any) -> Optional[str]:
    """A Docker size (512m, 2g: binary units) as a Kubernetes quantity (512Mi, 2Gi)."""
    match = SIZE.match(str(size or "").strip())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).lower()
    return "%d%s" % (number, {"": "", "b": "", "k": "Ki", "m": "Mi", "g": "Gi"}[unit])


def _bytes(quantity: str) -> int:
    match = re.match(r"^([0-9]+)(Ki|Mi|Gi)?$", quantity)
    return int(match.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[match.group(2)]


def _millicores(cpus: Any) -> Optional[int]:
    try:
        value = float(cpus)
    except (TypeError, ValueError):
        return None
    return int(round(value * 1000)) if value > 0 else None


def _with_port(value: Any, port: Any) -> str:
    return str(value).replace("{port}", str(port))


def _uid_gid(user: Any) -> tuple[Optional[int], Optional[int]]:
    parts = str(user or "").split(":")
    try:
        uid = int(parts[0])
    except ValueError:
        return None, None
    try:
        gid = int(parts[1]) if len(parts) > 1 else uid
    except ValueError:
        gid = None
    return uid, gid


def _seconds(value: Any, default: int) -> int:
    match = re.match(r"^([0-9]+)(s|m)?$", str(value or ""))
    if not match:
        return default
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def _probes(check: Optional[Mapping[str, Any]], port: Any) -> dict[str, Any]:
    """Startup, readiness and liveness probes from a Docker health check: an HTTP GET to the
    container's own port where the check is one (curl http://127.0.0.1:{port}/path), else the same
    command. The startup probe allows start_period (a model load) before the others count."""
    if not check or not check.get("test"):
        return {}
    test = check["test"]
    words = test[1:] if isinstance(test, (list, tuple)) and test[:1] in (["CMD"], ["CMD-SHELL"]) else test
    if isinstance(test, (list, tuple)) and test[:1] == ["CMD-SHELL"]:
        words = ["sh", "-c", " ".join(str(w) for w in words)]
    elif isinstance(test, str):
        words = ["sh", "-c", test]
    handler: dict[str, Any]
    urls = [w for w in words if HTTP_CHECK.match(str(w))] if words and str(words[0]) == "curl" else []
    if urls:
        handler = {"httpGet": {"path": HTTP_CHECK.match(str(urls[0])).group(1) or "/", "port": "http"}}
    else:
        handler = {"exec": {"command": [_with_port(w, port) for w in words]}}
    period = _seconds(check.get("interval"), 10)
    timeout = _seconds(check.get("timeout"), 5)
    retries = int(check.get("retries", 3))
    start = _seconds(check.get("start_period"), 60)
    return {
        "startupProbe": dict(handler, periodSeconds=period, timeoutSeconds=timeout,
                             failureThreshold=max(1, -(-start // period) + retries)),
        "readinessProbe": dict(handler, periodSeconds=period, timeoutSeconds=timeout, failureThreshold=retries),
        "livenessProbe": dict(handler, periodSeconds=period, timeoutSeconds=timeout, failureThreshold=retries),
    }


def _labels(name: str) -> dict[str, str]:
    return {NAME_LABEL: name, PART_LABEL: PART_OF}


def _meta(name: str, namespace: str, component: Optional[str] = None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": _labels(component or name)}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _resources(service: Mapping[str, Any]) -> dict[str, Any]:
    """Limits from the quotas (memory, cpus); requests what the scheduler must find free on a node:
    memory_reservation or the whole limit (a model does not fit in less), the CPU limit."""
    limits, requests = {}, {}
    memory = _quantity(service.get("memory"))
    if memory:
        limits["memory"] = memory
        requests["memory"] = _quantity(service.get("memory_reservation")) or memory
    cpu = _millicores(service.get("cpus"))
    if cpu:
        limits["cpu"] = "%dm" % cpu
        requests["cpu"] = "%dm" % cpu
    return {key: value for key, value in (("limits", limits), ("requests", requests)) if value}


def _deployment(name: str, service: Mapping[str, Any], namespace: str, ai_label: str,
                models_claim: str, configs_secret: Optional[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Deployment of one service, and the PersistentVolumeClaims it needs."""
    port = service.get("port")
    protocol = "UDP" if str(service.get("protocol", "tcp")).lower() == "udp" else "TCP"
    container: dict[str, Any] = {"name": name, "image": str(service["image"]),
                                 "ports": [{"name": "http" if protocol == "TCP" else "port",
                                            "containerPort": int(port), "protocol": protocol}]}
    if service.get("entrypoint"):
        container["command"] = [_with_port(w, port) for w in service["entrypoint"]]
    if service.get("command"):
        container["args"] = [_with_port(w, port) for w in service["command"]]
    env = service.get("env") or {}
    if env:
        container["env"] = [{"name": str(key), "value": _with_port(value, port)} for key, value in sorted(env.items())]
    resources = _resources(service)
    if resources:
        container["resources"] = resources
    container.update(_probes(service.get("healthcheck"), port) if protocol == "TCP" else {})
    uid, gid = _uid_gid(service.get("user"))
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": not bool(service.get("no_new_privileges", True)),
        "readOnlyRootFilesystem": bool(service.get("read_only", False)),
        "capabilities": {"drop": list(service.get("cap_drop") or ["ALL"])},
    }
    if service.get("cap_add"):
        security["capabilities"]["add"] = list(service["cap_add"])
    container["securityContext"] = security
    volumes, mounts, claims = [], [], []
    for index, path in enumerate(service.get("tmpfs") or []):
        volumes.append({"name": "tmp-%d" % index, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "tmp-%d" % index, "mountPath": str(path)})
    if service.get("data"):
        claim = "%s-data" % name
        claims.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(claim, namespace, name),
                       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "data", "mountPath": str(service["data"])})
    for spec in service.get("volumes") or []:
        source, _sep, rest = str(spec).partition(":")
        target, _sep, mode = rest.partition(":")
        if source.startswith("/") or not target:
            continue  # a path of the NAS: no meaning on another node
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": models_claim,
                                                                    "readOnly": mode == "ro"}})
        mounts.append({"name": "models", "mountPath": target, "readOnly": mode == "ro"})
    if (service.get("configs") or service.get("tls")) and configs_secret:
        volumes.append({"name": "config", "secret": {"secretName": configs_secret, "defaultMode": 0o440}})
        mounts.append({"name": "config", "mountPath": str(service.get("config_mount", "/etc/nasai")), "readOnly": True})
    if mounts:
        container["volumeMounts"] = mounts
    pod_security: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if uid is not None:
        pod_security.update(runAsUser=uid, runAsNonRoot=uid != 0)
    if gid is not None:
        pod_security.update(runAsGroup=gid, fsGroup=gid)
    pod: dict[str, Any] = {"serviceAccountName": PART_OF, "automountServiceAccountToken": False,
                           "securityContext": pod_security, "containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    replicas = int(service.get("replicas", 1) or 1)
    affinity: dict[str, Any] = {}
    if name == "ai":
        # Node affinity: the AI core only on nodes labelled for it (preflight's facts, inventory).
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ai_label, "operator": "In", "values": ["true"]}]}]}}
    if replicas > 1:
        # Anti-affinity: replicas on different nodes where there are enough of them.
        affinity["podAntiAffinity"] = {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                "labelSelector": {"matchLabels": _labels(name)}}}]}
    if affinity:
        pod["affinity"] = affinity
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _labels(name)},
            # A new pod becomes ready before an old one goes: updates keep serving.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": _labels(name)}, "spec": pod},
        },
    }
    return deployment, claims


def _paths(service: Mapping[str, Any]) -> list[str]:
    paths = service.get("proxy_path")
    if paths is None:
        return []
    return [str(p) for p in paths] if isinstance(paths, (list, tuple)) else [str(paths)]


def k8s_manifests(definitions: Mapping[str, Mapping[str, Any]], names: Iterable[str], namespace: str = "nasai",
                  host: str = "nas.lan", tls: Optional[Mapping[str, str]] = None,
                  secrets: Optional[Mapping[str, Mapping[str, str]]] = None,
                  ingress_namespace: str = "ingress-nginx", ingress_class: str = "nginx",
                  ai_label: str = "nasai.stack/ai", models_claim: str = "nasai-models") -> list[dict[str, Any]]:
    """Kubernetes objects for the enabled services `names` of `definitions` (the services role's
    model): a Namespace; a ServiceAccount with a Role that may read only the stack's own Secrets and
    a RoleBinding; per service a Deployment (replicas, requests and limits, probes, hardened security
    context, node affinity for the AI core, anti-affinity between replicas, rolling updates that
    start the new pod first), a Service and the claims for its data; an Ingress terminating TLS with
    the paths of the proxy; NetworkPolicies (nothing in by default; the Ingress controller reaches
    the proxied services, the AI core also the chat); a ResourceQuota covering every request and
    limit with room for one rolling update, and a LimitRange; Secrets for TLS (`tls`: crt, key) and
    for `secrets` ({name: {key: text}})."""
    tls = dict(tls or {})
    secrets = dict(secrets or {})
    wanted = [name for name in names if name not in REPLACED and definitions[name].get("image")
              and definitions[name].get("port")]
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {PART_LABEL: PART_OF}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(PART_OF, namespace),
         "automountServiceAccountToken": False},
    ]
    secret_names = sorted(secrets) + (["nasai-tls"] if tls else [])
    objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(PART_OF, namespace),
                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                               "resourceNames": secret_names or ["nasai-none"]}]})
    objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": _meta(PART_OF, namespace),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PART_OF},
                    "subjects": [{"kind": "ServiceAccount", "name": PART_OF, "namespace": namespace}]})
    if tls:
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": _meta("nasai-tls", namespace, PART_OF),
                        "type": "kubernetes.io/tls",
                        "data": {"tls.crt": _b64(tls.get("crt", "")), "tls.key": _b64(tls.get("key", ""))}})
    for name in sorted(secrets):
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace, PART_OF),
                        "type": "Opaque", "data": {key: _b64(value) for key, value in sorted(secrets[name].items())}})
    pods_total, surge = 0, {"cpu": 0, "memory": 0}
    totals = {"requests.cpu": 0, "requests.memory": 0, "limits.cpu": 0, "limits.memory": 0}
    max_limits = {"cpu": 0, "memory": 0}
    rules = []
    for name in wanted:
        service = definitions[name]
        config_secret = "%s-config" % name if "%s-config" % name in secrets else None
        deployment, claims = _deployment(name, service, namespace, ai_label, models_claim, config_secret)
        objects.extend(claims)
        objects.append(deployment)
        port = int(service["port"])
        protocol = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"]
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace),
                        "spec": {"selector": _labels(name),
                                 "ports": [{"name": "http" if protocol == "TCP" else "port", "port": port,
                                            "targetPort": "http" if protocol == "TCP" else "port",
                                            "protocol": protocol}]}})
        replicas = deployment["spec"]["replicas"]
        pods_total += replicas
        resources = deployment["spec"]["template"]["spec"]["containers"][0].get("resources", {})
        cpu = int(resources.get("limits", {}).get("cpu", "0m")[:-1] or 0)
        memory = _bytes(resources.get("limits", {}).get("memory", "0"))
        req_cpu = int(resources.get("requests", {}).get("cpu", "0m")[:-1] or 0)
        req_memory = _bytes(resources.get("requests", {}).get("memory", "0"))
        totals["requests.cpu"] += req_cpu * replicas
        totals["requests.memory"] += req_memory * replicas
        totals["limits.cpu"] += cpu * replicas
        totals["limits.memory"] += memory * replicas
        surge = {"cpu": max(surge["cpu"], cpu), "memory": max(surge["memory"], memory)}
        max_limits = {"cpu": max(max_limits["cpu"], cpu), "memory": max(max_limits["memory"], memory)}
        allowed = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ingress_namespace}}}]
        if name == "ai" and "chat" in wanted:
            allowed.append({"podSelector": {"matchLabels": _labels("chat")}})
        if _paths(service) or name == "ai":
            objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": _meta("%s-ingress" % name, namespace, name),
                            "spec": {"podSelector": {"matchLabels": _labels(name)}, "policyTypes": ["Ingress"],
                                     "ingress": [{"from": allowed,
                                                  "ports": [{"port": "http", "protocol": "TCP"}]}]}})
        for path in _paths(service):
            rules.append({"path": path, "pathType": "Prefix",
                          "backend": {"service": {"name": name, "port": {"name": "http"}}}})
    objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": _meta("default-deny-ingress", namespace, PART_OF),
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    if rules:
        rules.sort(key=lambda rule: (-len(rule["path"]), rule["path"]))
        ingress: dict[str, Any] = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                   "metadata": _meta(PART_OF, namespace),
                                   "spec": {"ingressClassName": ingress_class,
                                            "rules": [{"host": host, "http": {"paths": rules}}]}}
        if tls:
            ingress["spec"]["tls"] = [{"hosts": [host], "secretName": "nasai-tls"}]
        objects.append(ingress)
    # Room for one rolling update (maxSurge 1: one more pod of the largest service at once).
    hard = {"pods": str(pods_total + 1),
            "requests.cpu": "%dm" % (totals["requests.cpu"] + surge["cpu"]),
            "requests.memory": "%dMi" % (-(-(totals["requests.memory"] + surge["memory"]) // (1 << 20))),
            "limits.cpu": "%dm" % (totals["limits.cpu"] + surge["cpu"]),
            "limits.memory": "%dMi" % (-(-(totals["limits.memory"] + surge["memory"]) // (1 << 20)))}
    objects.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta(PART_OF, namespace),
                    "spec": {"hard": hard}})
    # A container without its own quotas gets small ones; none may ask more than the largest service.
    limit_range = {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                   "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}
    if max_limits["cpu"] and max_limits["memory"]:
        limit_range["max"] = {"cpu": "%dm" % max(max_limits["cpu"], 500),
                              "memory": "%dMi" % max(max_limits["memory"] // (1 << 20), 256)}
    objects.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta(PART_OF, namespace),
                    "spec": {"limits": [limit_range]}})
    return objects


class FilterModule:
    """nasai.stack's Kubernetes rendering of the services model."""

    def filters(self) -> dict[str, Any]:
        return {"k8s_manifests": k8s_manifests}
