"""The proxy role's Docker client configuration plan: other keys kept, no rewrite when nothing differs."""

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nasai.stack.plugins.filter.proxy_files import docker_client_plan

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
