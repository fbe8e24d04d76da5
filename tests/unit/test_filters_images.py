"""The image registry's filters: pins by reference, and the registry after a run."""

from ansible_collections.nasai.stack.plugins.filter.images import image_pins, image_registry

DEFS = {"ai": {"image": "llama:b1"}, "proxy": {"image": "haproxy:2.8"}, "files": {"image": "copyparty:1"}}


def test_pins_are_the_recorded_ids_of_the_references_in_use():
    registry = {"ai": {"image": "llama:b1", "id": "sha256:a"}, "proxy": {"image": "haproxy:2.6", "id": "sha256:p"}}
    assert image_pins(registry, ["llama:b1", "haproxy:2.8"]) == {"llama:b1": "sha256:a"}
    assert image_pins({}, ["llama:b1"]) == {} and image_pins(None, []) == {}


def test_a_first_run_records_each_service_and_a_rerun_changes_nothing():
    ids = {"llama:b1": "sha256:a", "haproxy:2.8": "sha256:p", "copyparty:1": None}
    first = image_registry({}, DEFS, ["ai", "proxy", "files"], ids, {"llama:b1": ["ghcr.io/x@sha256:d"]}, "t1")
    assert first["ai"] == {"image": "llama:b1", "id": "sha256:a", "repo_digests": ["ghcr.io/x@sha256:d"], "since": "t1"}
    assert "files" not in first, "an image not on the NAS (check mode) records nothing"
    assert image_registry(first, DEFS, ["ai", "proxy"], ids, {}, "t2") == first


def test_a_moved_image_keeps_the_one_before_as_previous():
    first = image_registry({}, DEFS, ["ai"], {"llama:b1": "sha256:a"}, {}, "t1")
    moved = image_registry(first, DEFS, ["ai"], {"llama:b1": "sha256:b"}, {}, "t2")
    assert moved["ai"]["id"] == "sha256:b" and moved["ai"]["since"] == "t2"
    assert moved["ai"]["previous"] == {"image": "llama:b1", "id": "sha256:a"}
    # A disabled service keeps its entry: the NAS may still hold its container's data and image.
    assert image_registry(moved, DEFS, [], {}, {}, "t3") == moved
