# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the AI core's model registry: the versions an inventory lists, which one to serve,
and how to get from the active one to it (blue-green, one replica at a time, or a refusal)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from ansible_collections.nasai.stack.plugins.filter.services_sizing import as_int, docker_size_bytes

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MODEL_FIELDS = ("version", "file", "sha256", "date")
PREVIOUS = "previous"
MIB = 1048576


def model_errors(models: Any, wanted: Any = None, engine: str = "llama_cpp") -> list[str]:
    """Messages for services_ai_models and services_ai_model_version; none when they are right."""
    if not models:
        return []
    if not isinstance(models, Sequence) or isinstance(models, (str, bytes)):
        return ["services_ai_models must be a list of {version, file, sha256, date}, got %r" % (models,)]
    errors = []
    if engine != "llama_cpp":
        errors.append("services_ai_models needs services_ai_engine=llama_cpp (Ollama keeps its own models), got %s"
                      % engine)
    seen = set()
    for index, model in enumerate(models):
        where = "services_ai_models[%d]" % index
        if not isinstance(model, Mapping):
            errors.append("%s must be a mapping of %s, got %r" % (where, ", ".join(MODEL_FIELDS), model))
            continue
        unknown = sorted(set(model) - set(MODEL_FIELDS))
        if unknown:
            errors.append("%s has unknown fields %s (expected %s)" % (where, ", ".join(unknown), ", ".join(MODEL_FIELDS)))
        version = str(model.get("version") or "")
        if not _VERSION.match(version) or version == PREVIOUS:
            errors.append("%s.version must be 1-64 of A-Z a-z 0-9 . _ + - (not 'previous'), got %r"
                          % (where, model.get("version")))
        elif version in seen:
            errors.append("%s.version %s is listed twice" % (where, version))
        seen.add(version)
        path = str(model.get("file") or "")
        if not path or path.startswith("/") or ".." in path.split("/"):
            errors.append("%s.file must be a path inside the models volume (no leading / or ..), got %r"
                          % (where, model.get("file")))
        if not _SHA256.match(str(model.get("sha256") or "")):
            errors.append("%s.sha256 must be 64 lower-case hex digits, got %r" % (where, model.get("sha256")))
        if not _DATE.match(str(model.get("date") or "")):
            errors.append("%s.date must be YYYY-MM-DD, got %r" % (where, model.get("date")))
    if wanted not in (None, "", PREVIOUS) and str(wanted) not in seen:
        errors.append("services_ai_model_version must be a version of services_ai_models (%s) or 'previous', got %s"
                      % (", ".join(sorted(seen)), wanted))
    return errors


def model_plan(models: Sequence[Mapping[str, Any]], registry: Optional[Mapping[str, Any]], wanted: Any,
               replicas: Any, memory: Any, available_kib: Any, reserve: Any = "1g",
               switch: str = "auto") -> dict[str, Any]:
    """How this run serves the model version asked for.

    `registry` is what the NAS recorded ({active, previous}, each a model entry with its `color`);
    `wanted` a version, `previous`, or none for the last of `models`. The result's `action`:
    `first` (nothing recorded: deploy it, blue), `same` (it is active: nothing to do), `blue_green`
    (a green set beside blue, then the switch), `rolling` (one replica at a time), or `refuse`
    (with `message`); `deploy` is what the normal pass of the role runs ({version, file, sha256,
    date, color}), `target` what the switch ends with.
    """
    registry = registry or {}
    active = registry.get("active") or None
    by_version = {str(model["version"]): dict(model) for model in models}
    if wanted == PREVIOUS:
        previous = registry.get("previous") or {}
        if not previous.get("version"):
            return {"action": "refuse", "message": "services_ai_model_version=previous: the registry records no "
                    "previous version to go back to (active: %s)" % (active or {}).get("version")}
        name = str(previous["version"])
        if name not in by_version:
            return {"action": "refuse", "message": "services_ai_model_version=previous names %s, which "
                    "services_ai_models no longer lists" % name}
    else:
        name = str(wanted) if wanted not in (None, "") else str(models[-1]["version"])
    target = by_version[name]
    if not active:
        deploy = dict(target, color="blue")
        return {"action": "first", "deploy": deploy, "target": deploy, "active": None}
    color = active.get("color") or "blue"
    if active.get("version") == target["version"] and active.get("sha256") == target["sha256"]:
        deploy = dict(target, color=color)
        return {"action": "same", "deploy": deploy, "target": deploy, "active": active}
    count = as_int(replicas, 1)
    need = count * (docker_size_bytes(memory, 0) or 0)
    free = as_int(available_kib) * 1024 - (docker_size_bytes(reserve, 0) or 0)
    numbers = ("%d replica(s) x %s = %d MiB for the green set; the NAS has %d MiB available less "
               "services_ai_switch_reserve (%s) = %d MiB"
               % (count, memory, need // MIB, as_int(available_kib) // 1024, reserve, free // MIB))
    fits = need <= free
    if switch == "blue_green" and not fits:
        return {"action": "refuse", "message": "a blue-green switch from %s to %s needs more memory: %s"
                % (active.get("version"), name, numbers)}
    if switch == "blue_green" or (switch == "auto" and fits):
        green = "green" if color == "blue" else "blue"
        return {"action": "blue_green", "deploy": dict(active, color=color), "target": dict(target, color=green),
                "active": active, "numbers": numbers}
    if count >= 2:
        deploy = dict(target, color=color)
        return {"action": "rolling", "deploy": deploy, "target": deploy, "active": active, "numbers": numbers}
    return {"action": "refuse", "message": "switching from %s to %s would take the service down: %s, and one "
            "replica cannot be replaced one at a time (services_ai_replicas >= 2 can)"
            % (active.get("version"), name, numbers)}


def model_registry(registry: Optional[Mapping[str, Any]], served: Mapping[str, Any], since: str) -> dict[str, Any]:
    """The registry once `served` is active: it becomes `active` (with `since`), the version active
    before it `previous`; unchanged when it was active already."""
    registry = dict(registry or {})
    active = registry.get("active") or {}
    if active.get("version") == served.get("version") and active.get("sha256") == served.get("sha256") \
            and active.get("color") == served.get("color"):
        return registry
    entry = {key: served.get(key) for key in (*MODEL_FIELDS, "color")}
    entry["since"] = since
    if active.get("version") and active.get("version") != served.get("version"):
        registry["previous"] = active
    registry["active"] = entry
    return registry


class FilterModule:
    """nasai.stack's filters of the AI core's model registry."""

    def filters(self) -> dict[str, Any]:
        return {"model_errors": model_errors, "model_plan": model_plan, "model_registry": model_registry}
