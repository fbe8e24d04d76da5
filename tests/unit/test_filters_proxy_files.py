"""The proxy role's Docker client configuration plan: other keys kept, no rewrite when nothing differs."""

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nasai.stack.plugins.filter.proxy_files import docker_client_plan, transparent_chains

PROXIES = {"httpProxy": "http://p:3128", "httpsProxy": "http://p:3128", "noProxy": "localhost"}


def test_a_missing_file_is_written_with_the_proxy():
    plan = docker_client_plan({"/root/.docker/config.json": None, "/f.fact": "{}"}, ["root"], PROXIES)
    assert plan["removals"] == []
    (write,) = plan["writes"]
    assert (write["path"], write["owner"], write["mode"]) == ("/root/.docker/config.json", "root", "0600")
    assert json.loads(write["content"]) == {"proxies": {"default": PROXIES}}


def test_other_keys_are_kept_and_an_equal_file_is_left_alone():
    current = {"auths": {"r": {"auth": "x"}}, "proxies": {"other": {"httpProxy": "http://o"}}}
    plan = docker_client_plan({"/h/a": json.dumps(current)}, ["a"], PROXIES)
    wanted = json.loads(plan["writes"][0]["content"])
    assert wanted == {"auths": current["auths"], "proxies": {"other": current["proxies"]["other"], "default": PROXIES}}
    # Formatted differently but equal: nothing to write.
    assert docker_client_plan({"/h/a": json.dumps(wanted, indent=4)}, ["a"], PROXIES) == {"writes": [], "removals": []}


def test_removal_keeps_what_is_not_ours_and_removes_a_file_that_held_only_the_proxy():
    only_ours = json.dumps({"proxies": {"default": PROXIES}})
    mixed = json.dumps({"auths": {}, "proxies": {"default": PROXIES}})
    plan = docker_client_plan({"/h/a": only_ours, "/h/b": mixed, "/h/c": None}, ["a", "b", "c"], None)
    assert plan["removals"] == [{"path": "/h/a"}]
    assert [(w["path"], json.loads(w["content"])) for w in plan["writes"]] == [("/h/b", {"auths": {}})]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_broken_file_fails_naming_it(text):
    with pytest.raises(AnsibleFilterError, match="/h/a"):
        docker_client_plan({"/h/a": text}, ["a"], PROXIES)


def test_transparent_chains_as_the_proxy_scenario_checks_them_on_the_host():
    nat, filt = transparent_chains("NASAI_PROXY", 12345, [80, 443], ["192.0.2.8"], ["10.0.0.0/8", "172.17.0.0/16"],
                                   [], True, ["docker0", "br-+"])
    assert nat["table"] == "nat" and nat["chains"]["NASAI_PROXY"] == [
        "-d 127.0.0.0/8 -j RETURN", "-m addrtype --dst-type LOCAL -j RETURN", "-d 192.0.2.8/32 -j RETURN",
        "-d 10.0.0.0/8 -j RETURN", "-d 172.17.0.0/16 -j RETURN",
        "-p tcp -m multiport --dports 80,443 -j REDIRECT --to-ports 12345"]
    assert nat["chains"]["NASAI_PROXY_OUTPUT"] == ["-m owner --uid-owner redsocks -j RETURN", "-j NASAI_PROXY"]
    assert nat["jumps"] == [{"chain": "OUTPUT", "target": "NASAI_PROXY_OUTPUT", "match": ""},
                            {"chain": "PREROUTING", "target": "NASAI_PROXY", "match": "-i docker0"},
                            {"chain": "PREROUTING", "target": "NASAI_PROXY", "match": "-i br-+"}]
    assert filt == {"table": "filter", "jumps": [{"chain": "INPUT", "target": "NASAI_PROXY_INPUT", "match": ""}],
                    "chains": {"NASAI_PROXY_INPUT": [
                        "-p tcp -m tcp --dport 12345 -m conntrack ! --ctstate DNAT -j DROP"]}}


def test_containers_only_leaves_the_host_traffic_and_output_chain_out():
    nat, _filter = transparent_chains("P", 1, [80], exclude_users=["backup"], host=False, interfaces=["docker0"])
    assert nat["chains"]["P_OUTPUT"] is None
    assert nat["jumps"] == [{"chain": "PREROUTING", "target": "P", "match": "-i docker0"}]
    with_users = transparent_chains("P", 1, [80], exclude_users=["backup"])[0]["chains"]["P_OUTPUT"]
    assert with_users == ["-m owner --uid-owner redsocks -j RETURN", "-m owner --uid-owner backup -j RETURN", "-j P"]
