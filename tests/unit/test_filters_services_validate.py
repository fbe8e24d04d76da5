"""The services role's input checks: every message word for word as the scenarios (and users) read it."""

import pytest

from ansible_collections.nasai.stack.plugins.filter.services_model import SERVICE_FIELDS
from ansible_collections.nasai.stack.plugins.filter.services_validate import (
    ai_memory_errors, path_errors, port_conflicts, service_errors,
)

GOOD = {"image": "nginx", "port": 443, "replicas": 2, "memory": "128m", "memory_swap": "128m", "cpus": 1.5,
        "cpuset_cpus": "0-1", "pids_limit": 128}


def errors(**fields):
    return service_errors({"web": dict(GOOD, **fields)}, ["web"], 2)


def test_a_good_service_has_no_errors():
    assert errors() == []
    assert errors(memory_swap="-1", pids_limit=-1, cpus="2", memory=None, cpuset_cpus=None) == []
    # Disabled services (not in the names) are not checked.
    assert service_errors({"web": {"memroy": 1}}, [], 2) == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"memory": "lots", "memory_swap": None}, "services_definitions.web.memory must be a Docker size such as 512m or 2g, got lots"),
    ({"memory_swap": "-2"}, "services_definitions.web.memory_swap must be a Docker size such as 512m or 2g "
                            "(or -1 for unlimited swap), got -2"),
    ({"memory_reservation": "2x"}, "services_definitions.web.memory_reservation must be a Docker size such as "
                                   "512m or 2g, got 2x"),
    ({"memory": "1g", "memory_swap": "512m"}, "services_definitions.web.memory_swap (memory + swap) must be at "
                                              "least services_definitions.web.memory (1g), got 512m"),
    ({"cpus": 4096}, "services_definitions.web.cpus must not exceed the host's 2 CPUs, got 4096"),
    ({"cpus": "abc"}, "services_definitions.web.cpus must be a number of CPUs above 0, got abc"),
    ({"cpus": 0}, "services_definitions.web.cpus must be a number of CPUs above 0, got 0"),
    ({"cpuset_cpus": "0-4095"}, "services_definitions.web.cpuset_cpus must stay within the host's CPUs 0-1, "
                                "got 0-4095"),
    ({"cpuset_cpus": "a-b"}, "services_definitions.web.cpuset_cpus must be a cpuset such as 0-2 or 1,3, got a-b"),
    ({"pids_limit": 0}, "services_definitions.web.pids_limit must be a whole number above 0 (or -1), got 0"),
    ({"image": ""}, "services_definitions.web.image must name an image, got "),
    ({"image": 5}, "services_definitions.web.image must name an image, got 5"),
    ({"port": 70000}, "services_definitions.web.port must be a port number (1-65535), got 70000"),
    ({"port": None}, "services_definitions.web.port must be a port number (1-65535), got None"),
    ({"replicas": 0}, "services_definitions.web.replicas must be a whole number >= 1, got 0"),
    ({"replicas": "x"}, "services_definitions.web.replicas must be a whole number >= 1, got x"),
])
def test_each_message_names_the_field_and_what_it_expected(fields, message):
    assert errors(**fields) == [message]


def test_a_field_fed_by_a_role_variable_names_that_variable_first():
    found = service_errors({"ai": dict(GOOD, cpus=4096)}, ["ai"], 2)
    assert found == ["services_ai_cpus (services_definitions.ai.cpus) must not exceed the host's 2 CPUs, got 4096"]


def test_memory_above_the_host_s_is_refused():
    found = service_errors({"web": dict(GOOD, memory="64g", memory_swap="64g")}, ["web"], 2, 8 << 30)
    assert found == ["services_definitions.web.memory must not exceed the host's memory (8192 MiB), got 64g"]


def test_the_last_replica_s_port_must_still_be_a_port():
    found = service_errors({"web": dict(GOOD, port=65535, replicas=2)}, ["web"], 2)
    assert found == ["services_definitions.web.port (65535) + services_definitions.web.replicas (2) - 1 must stay "
                     "within 65535: replica N listens on port + N - 1"]


@pytest.mark.parametrize("name", ["../etc", "Web", "a/b", ""])
def test_service_names_that_are_not_names_are_refused(name):
    found = service_errors({name: dict(GOOD)}, [name], 2)
    assert len(found) == 1 and found[0].startswith("services_definitions and services_overrides keys must be")


@pytest.mark.parametrize(("path", "why"), [
    ("/", "must not be the root or a system directory (/)"), ("/etc", "must not be the root or a system directory"),
    ("srv/models", "must be an absolute path"), ("/srv/../etc", "must not contain '..'")])
def test_paths_a_service_would_get_are_checked(path, why):
    found = path_errors(path, "services_models_volume")
    assert len(found) == 1 and found[0].startswith("services_models_volume " + why), found
    assert path_errors("/srv/models", "services_models_volume") == []


def test_missing_image_and_port_say_nothing_was_given():
    found = service_errors({"x": {}}, ["x"], 2)
    assert found == ["services_definitions.x.image must name an image, got nothing",
                     "services_definitions.x.port must be a port number (1-65535), got nothing"]


def test_unknown_fields_are_listed_in_the_order_given_with_the_allowed_ones():
    found = errors(memroy="1g", zzz=1)
    assert found == ["services_definitions.web has unknown fields memroy, zzz (allowed: %s)"
                     % ", ".join(SERVICE_FIELDS)]
    assert found[0].startswith("services_definitions.web has unknown fields memroy")


def test_messages_come_service_by_service_in_field_order():
    found = service_errors({"a": {"image": "", "port": 1, "pids_limit": 0}, "b": {"image": "i", "port": 0}},
                           ["b", "a"], 2)
    assert [m.split(" must")[0] for m in found] == [
        "services_definitions.b.port", "services_definitions.a.image", "services_definitions.a.pids_limit"]


def test_port_conflicts_name_the_port_and_the_containers():
    ports = [{"container": "nasai-ai-2", "port": "8082/tcp"}, {"container": "nasai-proxy", "port": "443/tcp"},
             {"container": "nasai-proxy", "port": "80/tcp"}, {"container": "nasai-files", "port": "8082/tcp"},
             {"container": "nasai-logs", "port": "8082/udp"}]
    assert port_conflicts(ports, "host") == [
        "port 8082/tcp is used by more than one container (nasai-ai-2, nasai-files) in services_network_mode=host: "
        "change the ports in services_definitions/services_overrides or services_https_port/services_http_port"]
    ports.append({"container": "nasai-proxy", "port": "443/tcp"})
    found = port_conflicts(ports, "bridge")
    assert [m.split(" is used")[0] for m in found] == ["port 443/tcp", "port 8082/tcp"]
    assert "(nasai-proxy, nasai-proxy) in services_network_mode=bridge" in found[0]
    assert port_conflicts([]) == []


def test_ai_memory_errors_when_the_slots_and_the_model_do_not_fit():
    assert ai_memory_errors("256m", "32m", "32m", 8) == [
        "services_ai_slots (8) x services_ai_slot_memory (32m) + services_ai_model_memory (32m) exceed the AI core "
        "memory (256m): lower the slots or raise services_ai_memory"]
    assert ai_memory_errors("256m", "32m", "32m", 2) == []
    assert ai_memory_errors("288m", "32m", "32m", 8) == []


@pytest.mark.parametrize("sizes", [(None, "32m", "32m"), ("lots", "32m", "32m"), ("256m", "big", "32m"),
                                   ("256m", "32m", "1.5g")])
def test_ai_memory_errors_leave_unset_or_bad_sizes_to_the_other_checks(sizes):
    assert ai_memory_errors(*sizes, 100) == []
