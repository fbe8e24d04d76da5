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
