"""Docker sizes, the value coercions the services filters share, and the AI core's sizing."""

import pytest

from ansible_collections.nasai.stack.plugins.filter.services_sizing import (
    GIB, ai_sizing, as_bool, as_float, as_int, docker_size_bytes,
)

MIB = 1 << 20


@pytest.mark.parametrize(("value", "expected"), [
    ("512m", 512 * MIB), ("2g", 2 * GIB), ("2G", 2 * GIB), ("1k", 1024), ("7b", 7), ("100", 100), (100, 100),
    ("0", 0),
])
def test_docker_size_bytes_reads_docker_sizes(value, expected):
    assert docker_size_bytes(value) == expected


@pytest.mark.parametrize("value", ["lots", "1.5g", "512mb", "-1", " 1g", "", None, "1t"])
def test_docker_size_bytes_gives_the_default_for_anything_else(value):
    assert docker_size_bytes(value) is None
    assert docker_size_bytes(value, 0) == 0


def test_coercions_behave_as_the_jinja_and_ansible_filters():
    assert [as_int("42"), as_int("42.7"), as_int(3.9), as_int("x"), as_int(None), as_int("x", 5)] == [42, 42, 3, 0, 0, 5]
    assert [as_float("1.5"), as_float("x"), as_float(None)] == [1.5, 0.0, 0.0]
    assert [as_bool(v) for v in (True, "yes", "On", "TRUE", 1, "1", 1.0)] == [True] * 7
    assert [as_bool(v) for v in (False, "no", "false", 0, "0", None, "y", "")] == [False] * 8


def test_slots_fit_into_the_memory_next_to_the_model():
    # (4 GiB - 2 GiB) / 512 MiB = 4 slots; each gets 2 requests in flight.
    sizing = ai_sizing("4g", "512m", "2g", cpus=2.5, queue_length=512, replicas=2)
    assert sizing == {"memory_bytes": 4 * GIB, "slot_bytes": 512 * MIB, "model_bytes": 2 * GIB, "slots": 4,
                      "threads": 3, "inflight": 8, "threads_http": 18, "probe_inflight": 10, "pids_limit": 18 + 1024 + 3 + 64,
                      "proxy_maxconn": 512 + 1024 + 8 * 2, "gpu_layers": None, "gpu_bytes": None,
                      "gpu_usable_bytes": None, "gpu_needed_bytes": 0, "gpu_errors": []}


@pytest.mark.parametrize(("memory", "expected"), [("64g", 8), ("1g", 1), ("2g", 1), ("2560m", 1), ("3g", 2)])
def test_derived_slots_stay_between_1_and_8(memory, expected):
    assert ai_sizing(memory, "512m", "2g")["slots"] == expected


def test_slots_and_inflight_given_win():
    sizing = ai_sizing("256m", "32m", "32m", slots=2, max_inflight=3, queue_length=32, replicas="2")
    assert (sizing["slots"], sizing["inflight"], sizing["threads_http"], sizing["proxy_maxconn"]) == (2, 3, 8, 1062)
    # Probes get the rest of the AI core's HTTP threads: together the proxy never sends it more.
    assert sizing["probe_inflight"] + sizing["inflight"] == sizing["threads_http"]


def test_sizes_that_do_not_parse_count_as_0_and_the_slot_as_1_gib():
    sizing = ai_sizing("huge", "big", "?")
    assert (sizing["memory_bytes"], sizing["slot_bytes"], sizing["model_bytes"], sizing["slots"]) == (0, GIB, 0, 1)
    assert ai_sizing("8g", "0", "0")["slots"] == 8


@pytest.mark.parametrize(("cpus", "threads"), [(1.5, 2), ("3", 3), (0.2, 1), (0, 1), ("x", 1)])
def test_threads_are_the_cpus_rounded_up(cpus, threads):
    assert ai_sizing("1g", cpus=cpus)["threads"] == threads
