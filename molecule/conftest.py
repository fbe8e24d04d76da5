"""Fixtures shared by every scenario's testinfra tests.

Tests talk to the simulated NAS containers over `docker exec` (testinfra's docker backend), which
is several times faster than going through Ansible for each command. `converge` runs the
scenario's converge playbook again with other variables, for the cases a single converge cannot
show: bad input, failing thresholds, resize, removal, check mode.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra
import yaml


def _inventory():
    with open(os.environ["MOLECULE_INVENTORY_FILE"], encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def nas_hosts():
    """Names of the inventory's hosts in group `nas` (every host when there is no such group).

    Molecule writes each platform's groups at the top level of its inventory, beside `all`; an
    inventory written by hand may nest them under all.children: both are read.
    """
    inventory = _inventory()
    group = inventory.get("nas") or (inventory.get("all") or {}).get("children", {}).get("nas")
    hosts = (group or inventory.get("all") or {}).get("hosts") or {}
    return sorted(hosts)


def pytest_generate_tests(metafunc):
    if "nas_name" in metafunc.fixturenames:
        metafunc.parametrize("nas_name", nas_hosts(), scope="module")


@pytest.fixture(scope="module")
def host(nas_name):
    return testinfra.get_host(f"docker://{nas_name}")


class PlaybookRun:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr

    @property
    def said(self):
        """The output with Ansible's line folding undone (words joined by single spaces), to find
        a message in it."""
        return " ".join(self.output.split())

    def recap(self, name):
        """The PLAY RECAP counters of one host, e.g. {'ok': 5, 'changed': 0, ...}."""
        for line in self.output.splitlines():
            fields = line.split()
            if fields and fields[0] == name and ":" in line and "ok=" in line:
                return {k: int(v) for k, v in (f.split("=") for f in fields[2:])}
        raise AssertionError(f"no recap for {name} in:\n{self.output[-3000:]}")


@pytest.fixture(scope="session")
def converge():
    """Run this scenario's converge.yml on one host with extra variables (and extra CLI args)."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])

    def run(limit, extra_vars=None, *args, playbook="converge.yml"):
        cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit,
               str(scenario / playbook), *args]
        if extra_vars:
            cmd += ["--extra-vars", json.dumps(extra_vars)]
        env = dict(os.environ, ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="true")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=600)
        return PlaybookRun(proc)

    return run


@pytest.fixture(scope="session")
def refusals(converge, tmp_path_factory):
    """Run many bad inputs against one host in a single ansible-playbook run and return what each
    was refused with: {case index: the failure's messages joined}, no entry for a case that was not
    refused. Each case is a play of its own with converge.yml's vars and the case's on top, its
    roles included in a block whose rescue records the messages (a looped assert's per-item
    messages too), so one failing case does not stop the next. One run instead of one per case:
    Ansible's start and the NAS facts are paid once."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    base = yaml.safe_load((scenario / "converge.yml").read_text(encoding="utf-8"))[0]
    roles = [role["role"] if isinstance(role, dict) else role for role in base.get("roles", [])]

    def run(limit, cases):
        out_dir = tmp_path_factory.mktemp("refusals")
        record = ("{{ nasai_test_refusals | default({}) | combine({'%d': ([ansible_failed_result.msg | default('')]"
                  " + ansible_failed_result.argument_errors | default([])"
                  " + ansible_failed_result.results | default([]) | selectattr('failed', 'defined')"
                  " | selectattr('failed') | map(attribute='msg') | list) | join(' | ')}) }}")
        plays = []
        for index, extra in enumerate(cases):
            plays.append({
                "name": f"Bad input {index}: {json.dumps(extra)[:60]}", "hosts": limit, "gather_facts": False,
                "vars": {**base.get("vars", {}), **extra},
                "tasks": [{"name": "Run the roles with the bad input", "block": [
                    {"name": f"Run {role}", "ansible.builtin.include_role": {"name": role}} for role in roles],
                    "rescue": [{"name": "Record the refusal", "ansible.builtin.set_fact": {"nasai_test_refusals": record % index}}]}],
            })
        plays.append({"name": "Write the refusals", "hosts": limit, "gather_facts": False, "tasks": [
            {"name": "Write them on the controller", "ansible.builtin.copy": {
                "content": "{{ nasai_test_refusals | default({}) | to_json }}", "dest": str(out_dir / "refusals.json"),
                "mode": "0600"}, "delegate_to": "localhost"}]})
        playbook = out_dir / "refusals.yml"
        playbook.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
        result = converge(limit, None, playbook=str(playbook))
        path = out_dir / "refusals.json"
        assert path.exists(), result.output[-3000:]
        found = json.loads(path.read_text(encoding="utf-8"))
        return {int(key): " ".join(value.split()) for key, value in found.items()}, result

    return run


@pytest.fixture(scope="module")
def refused(refusals, host, nas_name, request):
    """The test module's BAD_INPUTS ([(extra vars, message)]) run on this NAS in one go: ({case:
    what it was refused with}, whether the module's bad_input_state(host) stayed the same). A module's
    bad_input_applies(host), when it has one, says on which NAS to run them."""
    module = request.module
    applies = getattr(module, "bad_input_applies", None)
    if applies is not None and not applies(host):
        pytest.skip("input is checked the same way on every NAS of this scenario: one is enough")
    before = module.bad_input_state(host)
    found, run = refusals(nas_name, [extra for extra, _message in module.BAD_INPUTS])
    assert run.rc == 0, run.output[-3000:]
    return found, module.bad_input_state(host) == before
