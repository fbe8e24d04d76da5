"""The model registry's filters: the versions an inventory lists, the plan from the active version
to the one asked for (blue-green, rolling or a refusal with the numbers), and the registry after it."""

import pytest

from ansible_collections.nasai.stack.plugins.filter.models import model_errors, model_plan, model_registry

V1 = {"version": "v1", "file": "tiny.gguf", "sha256": "a" * 64, "date": "2026-11-01"}
V2 = {"version": "v2", "file": "sub/tiny-v2.gguf", "sha256": "b" * 64, "date": "2026-11-20"}
MODELS = [V1, V2]
GIB_KIB = 1 << 20


def registry(active, previous=None, color="blue"):
    out = {"active": dict(active, color=color, since="2026-11-02T00:00:00Z")}
    if previous:
        out["previous"] = dict(previous, color="green" if color == "blue" else "blue")
    return out


def test_a_right_list_has_no_errors():
    assert model_errors(MODELS, "v1") == [] and model_errors(MODELS, "previous") == [] and model_errors([], "x") == []


@pytest.mark.parametrize(("models", "wanted", "engine", "message"), [
    ([dict(V1, sha256="abc")], None, "llama_cpp", "services_ai_models[0].sha256 must be 64 lower-case hex digits"),
    ([dict(V1, file="/etc/shadow")], None, "llama_cpp", "services_ai_models[0].file must be a path inside"),
    ([dict(V1, file="../x.gguf")], None, "llama_cpp", "services_ai_models[0].file must be a path inside"),
    ([dict(V1, date="1 Nov")], None, "llama_cpp", "services_ai_models[0].date must be YYYY-MM-DD"),
    ([dict(V1, version="previous")], None, "llama_cpp", "services_ai_models[0].version must be"),
    ([V1, dict(V2, version="v1")], None, "llama_cpp", "services_ai_models[1].version v1 is listed twice"),
    ([dict(V1, sha="x")], None, "llama_cpp", "services_ai_models[0] has unknown fields sha"),
    (MODELS, "v3", "llama_cpp", "services_ai_model_version must be a version of services_ai_models (v1, v2)"),
    (MODELS, None, "ollama", "services_ai_models needs services_ai_engine=llama_cpp"),
    ("v1", None, "llama_cpp", "services_ai_models must be a list"),
])
def test_wrong_versions_are_named(models, wanted, engine, message):
    errors = model_errors(models, wanted, engine)
    assert any(message in error for error in errors), errors


def test_nothing_recorded_deploys_the_version_asked_for_blue():
    plan = model_plan(MODELS, {}, None, 1, "2g", 0)
    assert plan["action"] == "first" and plan["deploy"] == dict(V2, color="blue") == plan["target"]


def test_the_active_version_needs_nothing_and_keeps_its_color():
    plan = model_plan(MODELS, registry(V2, V1, color="green"), "v2", 1, "2g", 0)
    assert plan["action"] == "same" and plan["deploy"]["color"] == "green"


def test_a_new_version_with_memory_for_both_sets_is_blue_green():
    plan = model_plan(MODELS, registry(V1), "v2", 2, "2g", 8 * GIB_KIB, "1g")
    assert plan["action"] == "blue_green"
    assert plan["deploy"]["version"] == "v1" and plan["deploy"]["color"] == "blue"
    assert plan["target"] == dict(V2, color="green")


def test_from_green_the_switch_goes_back_to_blue():
    plan = model_plan(MODELS, registry(V2, V1, color="green"), "previous", 1, "2g", 8 * GIB_KIB)
    assert plan["action"] == "blue_green" and plan["target"] == dict(V1, color="blue")


def test_a_changed_file_of_the_same_version_is_a_switch_too():
    plan = model_plan([V1, dict(V2, sha256="c" * 64)], registry(V2), "v2", 1, "2g", 8 * GIB_KIB)
    assert plan["action"] == "blue_green"


def test_without_the_memory_two_replicas_switch_one_at_a_time():
    plan = model_plan(MODELS, registry(V1), "v2", 2, "2g", 4 * GIB_KIB, "1g")
    assert plan["action"] == "rolling" and plan["deploy"] == dict(V2, color="blue")
    assert "2 replica(s) x 2g = 4096 MiB" in plan["numbers"]


def test_without_the_memory_one_replica_is_refused_with_the_numbers():
    plan = model_plan(MODELS, registry(V1), "v2", 1, "2g", 2 * GIB_KIB, "1g")
    assert plan["action"] == "refuse"
    assert "1 replica(s) x 2g = 2048 MiB for the green set; the NAS has 2048 MiB available less " \
           "services_ai_switch_reserve (1g) = 1024 MiB" in plan["message"]


@pytest.mark.parametrize(("switch", "available", "action"), [
    ("blue_green", 2 * GIB_KIB, "refuse"), ("rolling", 64 * GIB_KIB, "rolling"), ("blue_green", 64 * GIB_KIB, "blue_green")])
def test_a_chosen_switch_is_kept_or_refused(switch, available, action):
    assert model_plan(MODELS, registry(V1), "v2", 2, "2g", available, "1g", switch)["action"] == action


def test_previous_without_one_recorded_is_refused():
    plan = model_plan(MODELS, registry(V1), "previous", 1, "2g", 64 * GIB_KIB)
    assert plan["action"] == "refuse" and "records no previous version" in plan["message"]


def test_the_registry_moves_active_to_previous_and_stays_put_on_a_rerun():
    first = model_registry({}, dict(V1, color="blue"), "t1")
    assert first["active"]["version"] == "v1" and first["active"]["since"] == "t1" and "previous" not in first
    second = model_registry(first, dict(V2, color="green"), "t2")
    assert second["active"]["version"] == "v2" and second["previous"]["version"] == "v1"
    assert model_registry(second, dict(V2, color="green"), "t3") == second
    back = model_registry(second, dict(V1, color="blue"), "t4")
    assert back["active"]["version"] == "v1" and back["previous"]["version"] == "v2"
