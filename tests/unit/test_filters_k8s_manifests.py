"""The services model as Kubernetes objects: every object valid against the official schemas of
several Kubernetes versions (kubernetes-validate, strict: no unknown field), and the semantics the
schemas cannot see (selectors, ports, probes, quotas, network policies, the Ingress's backends).

No Kubernetes server runs here: this is the whole test of the Kubernetes path."""

import base64

import kubernetes_validate
import pytest

from ansible_collections.nasai.stack.plugins.filter.k8s_manifests import k8s_manifests

VERSIONS = ["1.29.0", "1.33.0", "1.37.0"]


def stack():
    """The role's presets, as the services role resolves them (llama.cpp with two replicas, copyparty,
    the chat, the proxy and the collector, which a cluster replaces)."""
    return {
        "ai": {"image": "ghcr.io/ggml-org/llama.cpp:server-b6715", "port": 8081, "replicas": 2,
               "command": ["--host", "0.0.0.0", "--port", "{port}", "--model", "/models/model.gguf"],
               "env": {"LLAMA_ARG_CACHE_RAM": 0}, "volumes": ["nasai-models:/models:ro"],
               "healthcheck": {"test": ["CMD", "curl", "-fsS", "http://127.0.0.1:{port}/health"], "interval": "5s",
                               "timeout": "3s", "retries": 3},
               "memory": "2g", "memory_swap": "2g", "cpus": 1.5, "pids_limit": 512, "read_only": True,
               "user": "65534:65534", "tmpfs": ["/tmp"], "proxy_path": ["/v1/", "/completion", "/health"]},
        "files": {"image": "docker.io/copyparty/ac:1.19.16", "port": 8090, "command": ["-c", "/etc/nasai/cp.conf"],
                  "configs": [{"template": "copyparty.conf.j2", "dest": "cp.conf", "secret": True}],
                  "data": "/srv", "memory": "256m", "cpus": 0.5, "read_only": True, "user": "1000:1000",
                  "tmpfs": ["/tmp"], "proxy_path": "/files/",
                  "healthcheck": {"test": ["CMD", "python3", "-c", "import socket; socket.create_connection("
                                           "('127.0.0.1', {port}), 2)"], "interval": "5s"}},
        "chat": {"image": "ghcr.io/open-webui/open-webui:v0.12.4", "port": 8080, "env": {"PORT": "{port}"},
                 "data": "/app/backend/data", "memory": "1g", "cpus": 1, "read_only": True, "user": "10003:10003",
                 "tmpfs": ["/tmp"], "proxy_path": "/", "proxy_public": True,
                 "healthcheck": {"test": ["CMD", "curl", "-fsS", "http://127.0.0.1:{port}/health"],
                                 "interval": "10s", "start_period": "60s"}},
        "proxy": {"image": "haproxy", "port": 443, "memory": "128m", "cpus": 1},
        "logs": {"image": "rsyslog", "port": 5514, "protocol": "udp"},
    }


NAMES = ["logs", "ai", "files", "chat", "proxy"]
TLS = {"crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
       "key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}
SECRETS = {"files-config": {"cp.conf": "[accounts]\n"}, "nasai-keys": {"admin": "k" * 40}}


@pytest.fixture(scope="module")
def objects():
    return k8s_manifests(stack(), NAMES, namespace="nasai", host="nas.lan", tls=TLS, secrets=SECRETS)


def of(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def by_name(objects, kind):
    return {o["metadata"]["name"]: o for o in of(objects, kind)}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_against_the_strict_schema(objects, version):
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_objects_the_stack_needs_are_all_there(objects):
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["Deployment", "Ingress", "LimitRange", "Namespace", "NetworkPolicy", "PersistentVolumeClaim",
                     "ResourceQuota", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"]
    # The proxy and the collector of a NAS: the Ingress and the cluster's logging replace them.
    assert sorted(by_name(objects, "Deployment")) == ["ai", "chat", "files"]
    assert all(o["metadata"].get("namespace", "nasai") == "nasai" for o in objects)


def test_selectors_match_the_pod_labels_and_services_target_declared_ports(objects):
    deployments = by_name(objects, "Deployment")
    for name, service in by_name(objects, "Service").items():
        pod = deployments[name]["spec"]["template"]
        assert deployments[name]["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (name, port)


def test_probes_hit_the_port_the_container_listens_on(objects):
    for name, deployment in by_name(objects, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container[kind]
            if "httpGet" in probe:
                assert probe["httpGet"]["port"] in ports, (name, kind)
            else:
                assert any(str(ports["http"]) in word for word in probe["exec"]["command"]), (name, kind)
    ai = by_name(objects, "Deployment")["ai"]["spec"]["template"]["spec"]["containers"][0]
    assert ai["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # The start period (a model load) is the startup probe's, before liveness counts.
    chat = by_name(objects, "Deployment")["chat"]["spec"]["template"]["spec"]["containers"][0]
    assert chat["startupProbe"]["failureThreshold"] * chat["startupProbe"]["periodSeconds"] >= 60


def test_quotas_are_requests_and_limits_and_the_namespace_quota_covers_them_with_an_update(objects):
    ai = by_name(objects, "Deployment")["ai"]
    resources = ai["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"memory": "2Gi", "cpu": "1500m"}, "requests": {"memory": "2Gi", "cpu": "1500m"}}
    hard = by_name(objects, "ResourceQuota")["nasai-stack"]["spec"]["hard"]
    # ai 2 x 1500m + files 500m + chat 1000m = 4500m, and one more AI pod for a rolling update.
    assert hard["requests.cpu"] == "6000m" and hard["limits.cpu"] == "6000m"
    assert hard["requests.memory"] == "%dMi" % (2 * 2048 + 256 + 1024 + 2048)
    assert hard["pods"] == "5"
    limit = by_name(objects, "LimitRange")["nasai-stack"]["spec"]["limits"][0]
    assert limit["max"] == {"cpu": "1500m", "memory": "2048Mi"}


def test_the_ai_core_runs_only_on_ai_nodes_its_replicas_apart_and_updates_start_the_new_pod_first(objects):
    ai = by_name(objects, "Deployment")["ai"]["spec"]
    affinity = ai["template"]["spec"]["affinity"]
    term = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "nasai.stack/ai", "operator": "In", "values": ["true"]}]
    anti = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti["labelSelector"]["matchLabels"] == ai["selector"]["matchLabels"]
    assert ai["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0} and ai["replicas"] == 2
    assert "affinity" not in by_name(objects, "Deployment")["files"]["spec"]["template"]["spec"]


def test_pods_are_hardened_like_the_containers_on_a_nas(objects):
    for name, deployment in by_name(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "nasai-stack"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name


def test_only_the_ingress_controller_and_the_chat_reach_the_ai_core(objects):
    policies = by_name(objects, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    ai = policies["ai-ingress"]["spec"]
    ai_labels = by_name(objects, "Deployment")["ai"]["spec"]["template"]["metadata"]["labels"]
    assert ai["podSelector"]["matchLabels"].items() <= ai_labels.items()
    sources = ai["ingress"][0]["from"]
    chat_labels = by_name(objects, "Deployment")["chat"]["spec"]["template"]["metadata"]["labels"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in sources
    assert [s["podSelector"]["matchLabels"] for s in sources if "podSelector" in s] == [
        dict(chat_labels)]
    assert len(sources) == 2


def test_the_ingress_terminates_tls_and_routes_the_proxy_paths_longest_first(objects):
    ingress = by_name(objects, "Ingress")["nasai-stack"]["spec"]
    assert ingress["tls"] == [{"hosts": ["nas.lan"], "secretName": "nasai-tls"}]
    paths = ingress["rules"][0]["http"]["paths"]
    assert [(p["path"], p["backend"]["service"]["name"]) for p in paths] == [
        ("/completion", "ai"), ("/files/", "files"), ("/health", "ai"), ("/v1/", "ai"), ("/", "chat")]
    services = by_name(objects, "Service")
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["port"]["name"] in [p["name"] for p in services[backend["name"]]["spec"]["ports"]]


def test_secrets_hold_the_tls_pair_and_the_keys_and_the_role_reads_only_those(objects):
    secrets = by_name(objects, "Secret")
    assert secrets["nasai-tls"]["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secrets["nasai-tls"]["data"]["tls.key"]).decode() == TLS["key"]
    assert base64.b64decode(secrets["nasai-keys"]["data"]["admin"]).decode() == "k" * 40
    role = by_name(objects, "Role")["nasai-stack"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                              "resourceNames": ["files-config", "nasai-keys", "nasai-tls"]}]
    binding = by_name(objects, "RoleBinding")["nasai-stack"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "nasai-stack", "namespace": "nasai"}]
    # The file manager's configuration comes from its Secret, read-only.
    files = by_name(objects, "Deployment")["files"]["spec"]["template"]["spec"]
    assert {"name": "config", "secret": {"secretName": "files-config", "defaultMode": 0o440}} in files["volumes"]


def test_data_gets_a_claim_and_the_models_a_read_only_shared_one(objects):
    claims = by_name(objects, "PersistentVolumeClaim")
    assert sorted(claims) == ["chat-data", "files-data"]
    ai = by_name(objects, "Deployment")["ai"]["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "nasai-models", "readOnly": True}} in ai["volumes"]


def test_a_broken_object_fails_the_schema(objects):
    deployment = dict(by_name(objects, "Deployment")["ai"])
    deployment["spec"] = dict(deployment["spec"], replica=3)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
