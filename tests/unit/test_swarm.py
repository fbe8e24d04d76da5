"""The pure parts of the swarm modules: what a node does with the swarm it is in, the interface of
the default route, the labels a node keeps, and the refusal to leave a swarm without a manager."""

import pytest

from ansible_collections.nasai.stack.plugins.modules.swarm_member import default_route_interface, plan
from ansible_collections.nasai.stack.plugins.modules.swarm_nodes import quorum_refusal, wanted_spec

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
docker0\t00001EAC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t00000000\t01D3A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t00D3A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""
ACTIVE = {"LocalNodeState": "active", "ControlAvailable": False, "Cluster": {"ID": "c1"}}
MANAGER = dict(ACTIVE, ControlAvailable=True)


def test_the_default_route_s_interface_is_advertised():
    assert default_route_interface(ROUTES) == "eth0"
    assert default_route_interface(ROUTES.replace("eth0\t00000000", "eth0\t00000001")) is None


@pytest.mark.parametrize(("swarm", "state", "init", "other", "force", "action"), [
    ({"LocalNodeState": "inactive"}, "present", True, False, False, "initialised"),
    ({"LocalNodeState": "inactive"}, "present", False, False, False, "joined"),
    (MANAGER, "present", True, False, False, "none"),
    (ACTIVE, "present", False, False, False, "none"),
    (ACTIVE, "present", False, True, True, "rejoined"),
    (ACTIVE, "absent", False, False, False, "left"),
    ({"LocalNodeState": "inactive"}, "absent", False, False, False, "none"),
    (MANAGER, "read", False, False, False, "none"),
])
def test_what_a_node_does(swarm, state, init, other, force, action):
    assert plan(swarm, state, init, other, force) == (action, None)


@pytest.mark.parametrize(("swarm", "state", "other", "words"), [
    (ACTIVE, "present", True, "this engine is in another swarm (c1)"),
    (MANAGER, "absent", False, "this node is a manager of swarm c1: demote it first"),
    ({"LocalNodeState": "locked"}, "present", False, "docker swarm unlock"),
])
def test_what_a_node_refuses(swarm, state, other, words):
    action, why = plan(swarm, state, False, other, False)
    assert action is None and words in why


def test_a_node_keeps_the_labels_it_does_not_own():
    spec = {"Role": "manager", "Availability": "active", "Labels": {"rack": "r2", "nasai.cores": "2", "ai": "true"}}
    new = wanted_spec(spec, "worker", {"nasai.gpu": "none", "ai": "false"}, "nasai.", ["ai"])
    assert new == {"Role": "worker", "Availability": "active",
                   "Labels": {"rack": "r2", "nasai.gpu": "none", "ai": "false"}}
    assert wanted_spec(spec, None, {"nasai.cores": "2", "ai": "true"}, "nasai.", ["ai"]) == spec


def test_no_role_change_leaves_the_swarm_without_a_manager():
    nodes = [{"ID": "a", "Spec": {"Role": "manager"}}, {"ID": "b", "Spec": {"Role": "worker"}}]
    assert "no manager left" in quorum_refusal(nodes, {"a": "worker"})
    assert quorum_refusal(nodes, {"a": "worker", "b": "manager"}) is None
