"""The services model's AI core as a swarm stack, and the placement checks."""

import pytest

from ansible_collections.nasai.stack.plugins.filter.swarm import swarm_placement_errors, swarm_stack

AI = {"image": "nasai/llama-server:test", "port": 8081, "replicas": 2,
      "command": ["--host", "0.0.0.0", "--port", "{port}", "--model", "/models/model.gguf"],
      "env": {"LLAMA_ARG_CACHE_RAM": "0"}, "volumes": ["/srv/models:/models:ro"],
      "healthcheck": {"test": ["CMD", "curl", "-fsS", "http://127.0.0.1:{port}/health"], "interval": "5s",
                      "timeout": "3s", "retries": 3},
      "memory": "256m", "memory_swap": "256m", "cpus": 1.5, "read_only": True, "user": "65534:65534",
      "tmpfs": ["/tmp"]}
GIB = 1 << 30


def node(name, ai="true", memory=8 * GIB, **labels):
    return {"name": name, "role": "worker", "labels": dict(labels, ai=ai), "memory_bytes": memory}


def test_the_ai_core_becomes_a_replicated_service_placed_on_ai_nodes():
    stack = swarm_stack({"ai": AI, "proxy": {}}, ["ai", "proxy"], replicas=3, constraints=["node.labels.disk == ssd"])
    ai = stack["services"]["ai"]
    assert ai["command"][3] == "8081" and ai["healthcheck"]["test"][-1] == "http://127.0.0.1:8081/health"
    deploy = ai["deploy"]
    assert deploy["replicas"] == 3 and deploy["endpoint_mode"] == "dnsrr"
    assert deploy["placement"] == {"constraints": ["node.labels.ai == true", "node.labels.disk == ssd"],
                                   "preferences": [{"spread": "node.id"}]}
    assert deploy["resources"] == {"limits": {"cpus": "1.5", "memory": "256m"}, "reservations": {"memory": "256m"}}
    assert deploy["update_config"]["order"] == "start-first" and deploy["update_config"]["failure_action"] == "rollback"
    assert ai["volumes"] == [{"type": "bind", "source": "/srv/models", "target": "/models", "read_only": True},
                             {"type": "tmpfs", "target": "/tmp"}]
    assert ai["read_only"] is True and ai["cap_drop"] == ["ALL"] and ai["user"] == "65534:65534"
    assert stack["networks"]["nasai"]["driver"] == "overlay" and ai["networks"] == ["nasai"]
    assert swarm_stack({"ai": AI}, ["ai"])["services"]["ai"]["deploy"]["replicas"] == 2
    assert swarm_stack({"ai": AI}, ["files"])["services"] == {}


@pytest.mark.parametrize(("nodes", "replicas", "constraints", "words"), [
    ([node("a", ai="false"), node("b", ai="false")], 1, [], "no NAS meets the AI core's placement"),
    ([node("a"), node("b", disk="hdd")], 1, ["node.labels.disk == ssd"], "no NAS meets"),
    ([node("a", memory=GIB // 2), node("b", memory=GIB // 2)], 5, [], "room for 4 replica(s)"),
    ([node("a")], 1, ["disk=ssd"], "cluster_stack_constraints must be"),
])
def test_placements_that_cannot_be_are_refused(nodes, replicas, constraints, words):
    errors = swarm_placement_errors(nodes, replicas, "256m", constraints=constraints)
    assert len(errors) == 1 and words in errors[0], errors


def test_placements_that_fit_pass():
    nodes = [node("a"), node("b", disk="ssd"), node("c", ai="false")]
    assert swarm_placement_errors(nodes, 2, "256m") == []
    assert swarm_placement_errors(nodes, 1, "256m", constraints=["node.labels.disk == ssd"]) == []
    assert swarm_placement_errors(nodes, 1, "256m", constraints=["node.hostname != a"]) == []


def test_the_proxy_runs_on_every_node_with_its_secrets_named_by_content():
    from ansible_collections.nasai.stack.plugins.filter.swarm import swarm_secret_refs
    refs = swarm_secret_refs({"config": "a", "users": "b", "tls": "c"}, "/etc/nasai/cluster/", "nasai")
    assert refs["users"]["file"].startswith("/etc/nasai/cluster/users-")
    assert refs["users"]["name"].startswith("nasai_users_")
    assert swarm_secret_refs({"users": "b2"}, "/d", "nasai")["users"]["name"] != refs["users"]["name"]
    stack = swarm_stack({"ai": AI}, ["ai"], proxy=dict(refs, image="nasai/svc-haproxy:test", port=9443))
    proxy = stack["services"]["proxy"]
    assert proxy["deploy"]["mode"] == "global" and proxy["deploy"]["update_config"]["order"] == "stop-first"
    assert proxy["ports"] == [{"target": 9443, "published": 9443, "protocol": "tcp", "mode": "host"}]
    assert proxy["user"] == "65534:65534" and proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"]
    assert {s["target"] for s in proxy["secrets"]} == {"tls.pem", "users.map"}
    assert stack["secrets"]["tls"] == refs["tls"] and stack["configs"]["haproxy"] == refs["config"]
