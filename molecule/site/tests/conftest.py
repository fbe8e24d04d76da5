"""The scenario's proxy and HTTP target are platforms too, in group `aux`: the per-NAS tests (those
taking `nas_name`) run on the hosts of group `nas` only. (Molecule writes each group at the top level
of its inventory, beside `all`, where the shared conftest's nas_hosts() does not look.)"""

import os

import yaml


def _nas_group():
    with open(os.environ["MOLECULE_INVENTORY_FILE"], encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)
    return set((inventory.get("nas") or {}).get("hosts") or {})


def _nas_name(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("nas_name") if callspec else None


def pytest_collection_modifyitems(config, items):
    nas = _nas_group()
    others = [item for item in items if _nas_name(item) is not None and _nas_name(item) not in nas]
    if others:
        config.hook.pytest_deselected(items=others)
        items[:] = [item for item in items if item not in others]
