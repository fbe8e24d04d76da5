"""Each role's own checks (tasks/*.yml: an assert over `<prefix>_checks`, a list of {that, msg}):
every `that` is one Jinja expression that the assert's list evaluates to true or false. A quoted
expression would be a string, always true: the check could never fail."""

import glob
import os

import jinja2
import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ENV = jinja2.Environment()


def checks():
    for path in sorted(glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "*.yml"))):
        with open(path, encoding="utf-8") as handle:
            tasks = yaml.safe_load(handle) or []
        for task in tasks:
            for name, value in (task.get("vars") or {}).items():
                if name.endswith("_checks"):
                    yield os.path.relpath(path, ROOT), name, value


CHECKS = list(checks())


def test_every_role_with_own_checks_is_found():
    roles = {path.split(os.sep)[1] for path, _name, _value in CHECKS}
    assert roles >= {"cluster", "docker", "nfs_models", "proxy", "services", "swap"}


@pytest.mark.parametrize("path,name,items", CHECKS, ids=[f"{p}:{n}" for p, n, _i in CHECKS])
def test_each_check_is_one_expression_with_a_message(path, name, items):
    assert items, f"{path}: {name} is empty"
    for item in items:
        that, msg = item["that"].strip(), item["msg"]
        assert that.startswith("{{") and that.endswith("}}") and "{{" not in that[2:-2], (path, that)
        expression = ENV.parse(that).body[0].nodes[0]
        # A literal (a quoted expression, true, a number) is not a check.
        assert not isinstance(expression, jinja2.nodes.Const), (path, that)
        assert isinstance(msg, str) and msg.strip(), (path, that)
