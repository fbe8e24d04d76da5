"""The stdlib Docker API client's pure parts, and the stack_containers plan, against real engine
semantics: sizes and durations as Docker reads them, create bodies, fingerprints that change only
when what a container is made from changes."""

import json

import pytest

from ansible_collections.nasai.stack.plugins.module_utils import engine, stack_read
from ansible_collections.nasai.stack.plugins.filter.stack import container_specs, init_specs
from ansible_collections.nasai.stack.plugins.modules import stack_containers, stack_volume


@pytest.mark.parametrize("value, expected", [
    ("256m", 256 << 20), ("1g", 1 << 30), ("64k", 64 << 10), ("100", 100), ("2G", 2 << 30), (512, 512),
    (None, None)])
def test_size_bytes(value, expected):
    assert engine.size_bytes(value) == expected


@pytest.mark.parametrize("value", ["1.5g", "12 parsecs", "m"])
def test_size_bytes_refuses_what_docker_would(value):
    with pytest.raises(ValueError):
        engine.size_bytes(value)


@pytest.mark.parametrize("value, expected", [
    ("5s", 5 * 10 ** 9), ("1m30s", 90 * 10 ** 9), ("500ms", 5 * 10 ** 8), (3, 3 * 10 ** 9), ("2", 2 * 10 ** 9)])
def test_duration_ns(value, expected):
    assert engine.duration_ns(value) == expected


def test_duration_refuses_garbage():
    with pytest.raises(ValueError):
        engine.duration_ns("5 seconds")


@pytest.mark.parametrize("ref, expected", [
    ("nginx", ("nginx", "latest")), ("nasai/svc-haproxy:test", ("nasai/svc-haproxy", "test")),
    ("registry:5000/a/b", ("registry:5000/a/b", "latest")), ("registry:5000/a/b:1.2", ("registry:5000/a/b", "1.2")),
    ("ghcr.io/x/y@sha256:abc", ("ghcr.io/x/y", "sha256:abc"))])
def test_split_image(ref, expected):
    assert engine.split_image(ref) == expected


SPEC = {
    "name": "nasai-ai-1", "image": "nasai/llama-server:test", "command": ["--port", 8081],
    "env": {"B": 2, "A": "1"}, "network_mode": "host", "volumes": ["/m:/models:ro"],
    "healthcheck": {"test": ["CMD", "curl", "-f", "http://127.0.0.1:8081/health"], "interval": "5s",
                    "timeout": "3s", "retries": 3},
    "restart_policy": "unless-stopped", "labels": {"nasai.stack.service": "ai"}, "memory": "256m",
    "memory_swap": "256m", "cpus": 1.5, "cpuset_cpus": "0-1", "pids_limit": 256, "read_only": True,
    "user": "65534:65534", "tmpfs": ["/tmp"], "security_opts": ["no-new-privileges:true"], "cap_drop": ["ALL"],
    "log_driver": "syslog", "log_options": {"tag": "x"},
}


def test_create_body_in_host_mode():
    body = engine.create_body(SPEC)
    host = body["HostConfig"]
    assert body["Cmd"] == ["--port", "8081"]
    assert body["Env"] == ["A=1", "B=2"]
    assert body["Healthcheck"] == {"Test": ["CMD", "curl", "-f", "http://127.0.0.1:8081/health"],
                                   "Interval": 5 * 10 ** 9, "Timeout": 3 * 10 ** 9, "Retries": 3}
    assert host["NetworkMode"] == "host" and "NetworkingConfig" not in body
    assert host["Memory"] == host["MemorySwap"] == 256 << 20
    assert host["NanoCpus"] == 1500000000 and host["CpusetCpus"] == "0-1" and host["PidsLimit"] == 256
    assert host["ReadonlyRootfs"] is True and host["Tmpfs"] == {"/tmp": ""}
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["LogConfig"] == {"Type": "syslog", "Config": {"tag": "x"}}
    assert "Entrypoint" not in body


def test_create_body_in_bridge_mode_publishes_ports_and_joins_the_network():
    spec = dict(SPEC, network_mode="nasai", networks=["nasai"],
                published_ports=["443:443", "127.0.0.1:5514:5514/udp", "8080"])
    body = engine.create_body(spec)
    assert body["HostConfig"]["NetworkMode"] == "nasai"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"nasai": {"Aliases": ["nasai-ai-1"]}}}
    assert body["HostConfig"]["PortBindings"] == {
        "443/tcp": [{"HostIp": "", "HostPort": "443"}],
        "5514/udp": [{"HostIp": "127.0.0.1", "HostPort": "5514"}],
        "8080/tcp": [{"HostIp": "", "HostPort": ""}]}
    assert set(body["ExposedPorts"]) == {"443/tcp", "5514/udp", "8080/tcp"}


def test_shell_healthcheck_string():
    assert engine.healthcheck_body({"test": "kill -0 1"}) == {"Test": ["CMD-SHELL", "kill -0 1"]}


def _existing(spec, image_id="sha256:1", running=True):
    _action, body, _fields = stack_containers.plan_container(spec, None, image_id)
    return {"Config": {"Labels": body["Labels"], "Image": spec["image"]}, "State": {"Running": running}}


def test_plan_is_unchanged_for_the_same_description_and_image():
    current = _existing(SPEC)
    assert stack_containers.plan_container(dict(SPEC), current, "sha256:1")[0] == "unchanged"


def test_plan_recreates_and_names_only_the_changed_field():
    current = _existing(SPEC)
    action, _body, fields = stack_containers.plan_container(dict(SPEC, memory="512m"), current, "sha256:1")
    assert action == "recreated" and fields == ["HostConfig.Memory"]


def test_plan_recreates_when_the_tag_points_at_a_new_image():
    action, _body, fields = stack_containers.plan_container(dict(SPEC), _existing(SPEC), "sha256:2")
    assert action == "recreated" and fields == ["Image"]


def test_plan_starts_a_stopped_container_without_recreating_it():
    current = _existing(SPEC, running=False)
    assert stack_containers.plan_container(dict(SPEC), current, "sha256:1")[0] == "started"


def test_plan_recreates_a_container_made_by_other_tools():
    current = {"Config": {"Labels": {}, "Image": SPEC["image"]}, "State": {"Running": True}}
    action, _body, fields = stack_containers.plan_container(dict(SPEC), current, "sha256:1")
    assert action == "recreated" and "HostConfig.Memory" in fields


def test_fingerprint_labels_hold_hashes_not_values():
    spec = dict(SPEC, env={"SECRET": "hunter2-very-secret"})
    _action, body, _fields = stack_containers.plan_container(spec, None, "sha256:1")
    assert "hunter2" not in json.dumps(body["Labels"])


def test_demux_logs_reads_the_multiplexed_stream():
    frame = b"\x01\0\0\0\0\0\0\x06hello\n" + b"\x02\0\0\0\0\0\0\x04err\n"
    assert engine.demux_logs(frame) == "hello\nerr\n"
    assert engine.demux_logs("plain text") == "plain text"


def test_stream_errors_become_engine_errors():
    with pytest.raises(engine.EngineError, match="no space"):
        engine._stream_result('{"stream": "x"}\n{"errorDetail": {"message": "no space"}, "error": "no space"}', "")
    assert engine._stream_result('{"stream":"Loaded image: a:b\\n"}', "Loaded image: ") == ["a:b"]


INSTANCES = [
    {"service": "files", "name": "nasai-files", "image": "fb:1", "ports": ["8090:8090"], "networks": None,
     "labels": {"nasai.stack.service": "files"}, "volumes": ["/p/data/files:/srv"]},
    {"service": "ai", "name": "nasai-ai-1", "image": "llama:1", "ports": [], "labels": {}, "volumes": []},
]


def test_container_specs_in_host_mode_publish_nothing_and_carry_the_config_fingerprint():
    specs = container_specs(INSTANCES, "host", "nasai", {"files": "abc"})
    assert specs[0]["network_mode"] == "host" and specs[0]["published_ports"] == [] and specs[0]["networks"] == []
    assert specs[0]["labels"] == {"nasai.stack.service": "files", "nasai.stack.config": "abc"}
    assert specs[1]["labels"] == {"nasai.stack.config": ""}


def test_container_specs_in_bridge_mode():
    specs = container_specs(INSTANCES, "bridge", "nasai", {})
    assert specs[0]["network_mode"] == "nasai" and specs[0]["networks"] == ["nasai"]
    assert specs[0]["published_ports"] == ["8090:8090"]


def test_init_specs_once_per_service_with_an_init_step():
    definitions = {"files": {"init": {"creates": "fb.db", "command": ["users", "add"]}, "user": "1000:1000",
                             "entrypoint": ["/bin/fb"]}, "ai": {}}
    specs = init_specs(INSTANCES + [dict(INSTANCES[0], name="nasai-files-2")], definitions, "/p")
    assert len(specs) == 1
    assert specs[0]["name"] == "nasai-files-init" and specs[0]["creates"] == "/p/data/files/fb.db"
    assert specs[0]["network_mode"] == "none" and specs[0]["volumes"] == ["/p/data/files:/srv"]


# --- stack_volume: when a volume may be created, recreated or removed --------------------------

NFS = {"type": "nfs", "o": "addr=10.0.0.2,vers=4.2,ro", "device": ":/srv/models"}


@pytest.mark.parametrize("current, state, action", [
    (None, "present", "created"),
    ({"Driver": "local", "Options": NFS}, "present", "none"),
    ({"Driver": "local", "Options": dict(NFS, o="addr=10.0.0.2,vers=3,ro")}, "present", "recreated"),
    ({"Driver": "local", "Options": NFS}, "absent", "removed"),
    (None, "absent", "none"),
])
def test_volume_plan(current, state, action):
    assert stack_volume.plan(current, state, "local", NFS) == action


def test_a_volume_that_may_hold_data_is_refused_naming_the_opt_in():
    plain = {"Driver": "local", "Options": None}
    why = stack_volume.refusal("precious", plain, "recreated", [], ["nfs"], False, NFS, "my_volume_")
    assert "precious exists and is not an NFS volume" in why and "my_volume_replace_foreign: true" in why
    assert stack_volume.refusal("precious", plain, "recreated", [], ["nfs"], True, NFS) is None


def test_a_volume_in_use_is_never_recreated_or_removed():
    ours = {"Driver": "local", "Options": NFS}
    why = stack_volume.refusal("m", ours, "recreated", ["model-user"], ["nfs"], True, dict(NFS, o="vers=4.1"))
    assert "used by model-user" in why and "recreate it with the NFS options" in why and "vers=4.1" in why
    removal = stack_volume.refusal("m", ours, "removed", ["a"], ["nfs"], False, NFS, "my_volume_")
    assert "remove it (my_volume_state: absent)" in removal
    assert stack_volume.refusal("m", ours, "recreated", [], ["nfs"], False, NFS) is None


def test_without_a_log_driver_the_engine_default_applies():
    body = engine.create_body({"name": "x", "image": "i"})
    assert "LogConfig" not in body["HostConfig"]
    assert body["HostConfig"]["NetworkMode"] == "bridge" and "Memory" not in body["HostConfig"]


def test_connections_are_counted_per_local_port_established_only(tmp_path):
    net = tmp_path / "42" / "net"
    net.mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (net / "tcp").write_text(header
                             + "   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n"
                             + "   1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000 0 0 2\n"
                             + "   2: 0100007F:C350 0100007F:1F91 01 00000000:00000000 00:00000000 00000000 0 0 3\n"
                             + "   3: 0100007F:1F91 0100007F:C351 06 00000000:00000000 00:00000000 00000000 0 0 4\n")
    (net / "tcp6").write_text(header
                              + "   0: 00000000000000000000000001000000:1F91 00000000000000000000000001000000:C352 01"
                              + " 00000000:00000000 00:00000000 00000000 0 0 5\n")
    # 0x1F91 = 8081: one listening (0A), one time-wait (06), two established (one IPv4, one IPv6).
    assert stack_containers.open_connections(42, 8081, proc=str(tmp_path)) == 2
    assert stack_containers.open_connections(42, 50000, proc=str(tmp_path)) == 1
    assert stack_containers.open_connections(43, 8081, proc=str(tmp_path)) == 0


class _Engine:
    def __init__(self, pid):
        self.pid = pid

    def container(self, _name):
        return {"State": {"Pid": self.pid}}


def test_a_drain_settles_then_waits_for_two_quiet_looks(monkeypatch):
    looks = iter([2, 1, 0, 1, 0, 0, 5])
    monkeypatch.setattr(stack_containers, "open_connections", lambda pid, port: next(looks))
    slept = []
    stack_containers.drain(_Engine(7), "nasai-ai-1", 8081, timeout=60, sleep=slept.append, settle=3)
    assert slept[0] == 3 and next(looks) == 5, "stopped before two quiet looks in a row"


def test_a_drain_of_a_stopped_container_ends_at_once():
    slept = []
    stack_containers.drain(_Engine(0), "nasai-ai-1", 8081, timeout=60, sleep=slept.append, settle=0)
    assert slept == [0, 0.5]


def _process(proc, pid, ppid, start, name="haproxy"):
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    # /proc/<pid>/stat: pid (comm) state ppid ... starttime is the 22nd field.
    rest = ["S", str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 5
    (proc / str(pid) / "stat").write_text("%d (%s) %s\n" % (pid, name, " ".join(rest)))


def test_the_old_workers_of_a_reloaded_proxy_are_its_children_started_before_the_signal(tmp_path):
    _process(tmp_path, 100, 1, 50)          # the master
    _process(tmp_path, 101, 100, 60)        # the old worker
    _process(tmp_path, 102, 100, 900)       # the new worker, after the reload at tick 800
    _process(tmp_path, 103, 7, 10, "a b)")  # someone else's child, with a parenthesis in its name
    (tmp_path / "self").mkdir()
    assert stack_containers.older_children(100, 800, proc=str(tmp_path)) == 1
    assert stack_containers.older_children(100, 40, proc=str(tmp_path)) == 0


def test_the_old_set_waits_until_the_proxy_has_no_old_worker(tmp_path, monkeypatch):
    counts = iter([2, 1, 1, 0, 9])
    monkeypatch.setattr(stack_containers, "older_children", lambda pid, since, proc: next(counts))
    slept = []
    stack_containers.wait_old_workers(_Engine(100), "nasai-proxy", 800, timeout=60, sleep=slept.append)
    assert slept == [0.5, 0.5, 0.5] and next(counts) == 9


class _Swap:
    """A fake engine that records calls; the replacement becomes healthy when `healthy`."""

    def __init__(self, healthy):
        self.healthy, self.calls, self.running = healthy, [], {"nasai-proxy": True}

    def remove(self, name):
        self.calls.append(("remove", name))
        self.running.pop(name, None)

    def create(self, name, _body):
        self.calls.append(("create", name))

    def start(self, name):
        self.calls.append(("start", name))
        self.running[name] = True

    def kill(self, name, signal):
        self.calls.append(("kill", name, signal))
        self.running[name] = False

    def rename(self, name, new):
        self.calls.append(("rename", name, new))

    def set_restart_policy(self, name, policy):
        self.calls.append(("restart policy", name, policy["Name"]))

    def container(self, name):
        health = "healthy" if self.healthy or name == "nasai-proxy" else "unhealthy"
        return {"State": {"Running": self.running.get(name, False), "Health": {"Status": health, "Log": []}}}

    def logs(self, _name):
        return ""


def test_start_first_stops_the_running_proxy_only_after_its_replacement_is_healthy():
    engine = _Swap(healthy=True)
    body = {"Healthcheck": {"Test": ["CMD", "true"]}, "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}}
    error = stack_containers.replace_start_first(engine, "nasai-proxy", body, {"stop_signal": "SIGUSR1"}, 5, 5)
    assert error is None
    assert engine.calls == [("remove", "nasai-proxy-next"), ("create", "nasai-proxy-next"),
                            ("start", "nasai-proxy-next"), ("restart policy", "nasai-proxy-next", "unless-stopped"),
                            ("kill", "nasai-proxy", "SIGUSR1"),
                            ("remove", "nasai-proxy"), ("rename", "nasai-proxy-next", "nasai-proxy")]


def test_start_first_leaves_the_running_proxy_alone_when_the_replacement_fails(monkeypatch):
    monkeypatch.setattr(stack_containers.time, "sleep", lambda _s: None)
    engine = _Swap(healthy=False)
    body = {"Healthcheck": {"Test": ["CMD", "false"]}}
    error = stack_containers.replace_start_first(engine, "nasai-proxy", body, {"stop_signal": "SIGUSR1"}, 0, 5)
    assert "nasai-proxy: its replacement did not become healthy beside it" in error
    assert ("kill", "nasai-proxy", "SIGUSR1") not in engine.calls and engine.calls[-1] == ("remove", "nasai-proxy-next")


def test_a_gpu_reaches_the_container_as_devices_requests_and_groups():
    body = engine.create_body(dict(SPEC, devices=["/dev/dri/renderD128", "/dev/nvidia0:/dev/gpu0:rw"],
                                   device_requests=[{"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"]},
                                                    {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}],
                                   group_add=[993]))
    host = body["HostConfig"]
    assert host["Devices"] == [
        {"PathOnHost": "/dev/dri/renderD128", "PathInContainer": "/dev/dri/renderD128", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/nvidia0", "PathInContainer": "/dev/gpu0", "CgroupPermissions": "rw"}]
    assert host["DeviceRequests"] == [
        {"Driver": "cdi", "Count": 0, "DeviceIDs": ["nvidia.com/gpu=all"], "Capabilities": [], "Options": {}},
        {"Driver": "nvidia", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]
    assert host["GroupAdd"] == ["993"]
    # Without a GPU the body (and so the fingerprint of a container made before) has none of them.
    assert not {"Devices", "DeviceRequests", "GroupAdd"} & set(engine.create_body(SPEC)["HostConfig"])


@pytest.mark.parametrize(("version", "info", "settings", "expected"), [
    ("28.2.2", {"CDISpecDirs": ["/etc/cdi", "/var/run/cdi"]}, {}, True),
    ("28.2.2", {"CDISpecDirs": []}, {}, False),
    ("26.1.5+dfsg1", {}, {"features": {"cdi": True}}, True),
    ("26.1.5+dfsg1", {}, {}, False),
    ("20.10.24+dfsg1", {}, {"features": {"cdi": True}}, False),
])
def test_whether_the_engine_reads_cdi_specs(version, info, settings, expected):
    assert engine.engine_cdi({"Version": version}, info, settings) is expected


class _Listed:
    """A fake engine with two labelled containers, one of which vanishes between list and inspect."""

    def containers(self, label):
        assert label == "nasai.stack.service"
        return [{"Id": "b"}, {"Id": "gone"}, {"Id": "a"}]

    def container(self, ident):
        if ident == "gone":
            return None
        return {"Name": "/nasai-" + ident, "Config": {"Image": "img", "Labels": {"nasai.stack.service": ident}},
                "State": {"Status": "running", "Health": {"Status": "healthy"}},
                "HostConfig": {"Memory": 268435456, "NanoCpus": 1500000000, "PidsLimit": -1}}


def test_the_stack_read_back_is_each_labelled_container_summarized_by_name():
    stack = stack_read.read_stack(_Listed(), "nasai.stack.service")
    assert [c["name"] for c in stack] == ["nasai-a", "nasai-b"]
    assert stack[0]["health"] == "healthy" and stack[0]["memory_bytes"] == 268435456
    assert stack[0]["cpus"] == 1.5 and stack[0]["pids_limit"] == 0 and stack[0]["service"] == "a"
