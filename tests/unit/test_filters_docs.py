"""Every filter the collection registers has its ansible-doc documentation, and the documentation
describes the function's parameters."""

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

FILTER_DIR = Path(__file__).resolve().parents[2] / "plugins" / "filter"
MODULES = sorted(p.stem for p in FILTER_DIR.glob("*.py") if p.stem != "__init__")


def registered():
    out = {}
    for stem in MODULES:
        module = importlib.import_module("ansible_collections.nasai.stack.plugins.filter." + stem)
        for name, func in module.FilterModule().filters().items():
            assert name not in out, "%s registered twice" % name
            out[name] = func
    return out


FILTERS = registered()


def test_every_documentation_file_belongs_to_a_registered_filter():
    assert sorted(p.stem for p in FILTER_DIR.glob("*.yml")) == sorted(FILTERS)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_documentation_matches_the_function(name):
    doc = yaml.safe_load((FILTER_DIR / (name + ".yml")).read_text())
    assert set(doc) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = doc["DOCUMENTATION"]
    assert documentation["name"] == name
    assert documentation["short_description"] and documentation["description"]
    assert "_value" in doc["RETURN"] and "nasai.stack." + name in doc["EXAMPLES"]
    func = FILTERS[name]
    params = list(inspect.signature(func).parameters)
    documented = ["_input" if p == params[0] else p for p in params]
    assert sorted(documentation["options"]) == sorted(documented)
    positional = [p.strip() for p in documentation["positional"].split(",")]
    assert positional == documented[:len(positional)]
    assert inspect.getdoc(func), "%s has no docstring" % name
