"""The CIS Docker Benchmark audit: each item passes, fails, or is accepted with its reason."""

from ansible_collections.nasai.stack.plugins.filter.audit import cis_docker_audit

ENGINE = {"server": {"live_restore": True, "logging_driver": "json-file"},
          "config": {"settings": {"log-opts": {"max-size": "10m"}, "no-new-privileges": True}}, "dropins": {}}
FILES = {"socket": {"exists": True, "pw_name": "root", "gr_name": "docker", "mode": "0660"},
         "config": {"exists": True, "pw_name": "root", "mode": "0644"}}
GOOD = {"name": "nasai-ai-1", "service": "ai", "memory_bytes": 1 << 28, "cpus": 1.5, "cpuset_cpus": "", "pids_limit": 64,
        "security": {"privileged": False, "cap_add": [], "cap_drop": ["ALL"], "read_only": True, "user": "65534:65534",
                     "no_new_privileges": True, "network_mode": "nasai", "pid_mode": "", "ipc_mode": "private",
                     "binds": ["/srv/models"], "published": [], "healthcheck": True}}


def statuses(containers, engine=None, files=None):
    return {(row["item"], row["status"]) for row in cis_docker_audit(containers, engine or ENGINE, files or FILES)}


def test_a_hardened_container_and_engine_pass_every_item():
    rows = cis_docker_audit([GOOD], ENGINE, FILES)
    assert {row["status"] for row in rows} == {"pass"}, [r for r in rows if r["status"] != "pass"]
    assert len(rows) == 6 + 15


def test_each_weakness_fails_its_item():
    weak = dict(GOOD, memory_bytes=0, pids_limit=0, security=dict(
        GOOD["security"], privileged=True, cap_drop=[], cap_add=["SYS_ADMIN"], read_only=False, user="",
        no_new_privileges=False, pid_mode="host", binds=["/etc", "/var/run/docker.sock"], healthcheck=False))
    failed = {item for item, status in statuses([weak]) if status == "fail"}
    assert failed == {"5.4", "5.3", "4.1", "5.12", "5.25", "5.10", "5.28", "5.26", "5.15", "5.5", "5.31"}


def test_the_engine_s_weaknesses_fail():
    engine = {"server": {"live_restore": False, "logging_driver": "json-file"},
              "config": {"settings": {"hosts": ["tcp://0.0.0.0:2375"]}}, "dropins": {}}
    files = {"socket": {"exists": True, "pw_name": "root", "gr_name": "docker", "mode": "0666"},
             "config": {"exists": True, "pw_name": "admin", "mode": "0666"}}
    failed = {item for item, status in statuses([], engine, files) if status == "fail"}
    assert failed == {"2.15", "2.13", "2.14", "2.7", "3.15-3.16", "3.17-3.18"}


def test_host_network_and_the_proxy_s_root_master_and_ports_are_accepted_with_a_reason():
    proxy = dict(GOOD, name="nasai-proxy", service="proxy", security=dict(
        GOOD["security"], user="0:0", cap_add=["NET_BIND_SERVICE", "SETUID", "SETGID", "KILL"], network_mode="host",
        published=["443", "80"]))
    rows = {row["item"]: row for row in cis_docker_audit([proxy], ENGINE, FILES)}
    for item in ("4.1", "5.9", "5.7"):
        assert rows[item]["status"] == "accepted" and rows[item]["detail"], rows[item]
    # The same root user in another service is a failure, not a deviation.
    other = dict(proxy, service="ai")
    assert {item for item, status in statuses([other]) if status == "fail"} >= {"4.1", "5.7"}


def test_the_exporters_reading_the_host_read_only_are_accepted_and_only_read_only():
    node = dict(GOOD, name="nasai-node_exporter", service="node_exporter",
                security=dict(GOOD["security"], binds=["/"], binds_writable=[]))
    exporter = dict(GOOD, name="nasai-container_exporter", service="container_exporter", security=dict(
        GOOD["security"], user="0:0", binds=["/sys/fs/cgroup", "/var/lib/docker/containers"], binds_writable=[]))
    mtail = dict(GOOD, name="nasai-mtail", service="mtail", security=dict(GOOD["security"], healthcheck=False))
    rows = [(r["item"], r["name"] if "name" in r else r["title"].split()[0], r["status"])
            for r in cis_docker_audit([node, exporter, mtail], ENGINE, FILES)]
    accepted = {(item, who.split()[0]) for item, who, status in rows if status == "accepted"}
    assert accepted == {("5.5", "nasai-node_exporter"), ("5.5", "nasai-container_exporter"),
                        ("4.1", "nasai-container_exporter"), ("5.26", "nasai-mtail")}
    assert not [row for row in rows if row[2] == "fail"]
    # Mounted read-write, or root with a capability, is a failure even for them.
    writable = dict(node, security=dict(node["security"], binds_writable=["/"]))
    assert ("5.5", "fail") in statuses([writable])
    capable = dict(exporter, security=dict(exporter["security"], cap_add=["DAC_OVERRIDE"]))
    assert ("4.1", "fail") in statuses([capable])
