"""Merging and validation of nasai.stack.docker_daemon_config."""

import json

from ansible_collections.nasai.stack.plugins.modules import docker_daemon_config as config


def test_settings_override_and_null_removes():
    current = {"debug": True, "log-driver": "local", "mtu": 1400}
    merged = config.merge(current, {"log-driver": "json-file", "debug": None}, keep_unmanaged=True)
    assert merged == {"log-driver": "json-file", "mtu": 1400}
    assert current == {"debug": True, "log-driver": "local", "mtu": 1400}, "the input is not modified"


def test_unmanaged_keys_can_be_dropped():
    assert config.merge({"mtu": 1400}, {"live-restore": True}, keep_unmanaged=False) == {"live-restore": True}


def test_render_is_stable_json():
    text = config.render({"b": 1, "a": {"y": "2", "x": "1"}})
    assert text.endswith("\n") and json.loads(text) == {"a": {"x": "1", "y": "2"}, "b": 1}
    assert text == config.render(json.loads(text))


class FakeModule:
    def __init__(self, rc, out="", err=""):
        self.result = (rc, out, err)
        self.calls = []

    def run_command(self, argv):
        self.calls.append(argv)
        return self.result


def test_dockerd_validate_verdicts():
    ok = FakeModule(0, "configuration OK")
    assert config.validate_with_dockerd(ok, "/usr/sbin/dockerd", "/tmp/c") == (True, "configuration OK", True)
    assert ok.calls == [["/usr/sbin/dockerd", "--validate", "--config-file", "/tmp/c"]]
    bad = FakeModule(1, "", "unable to configure the Docker daemon: no-such-option")
    assert config.validate_with_dockerd(bad, "d", "c")[0] is False
    # Docker 20.10 has no --validate: not a verdict on the file.
    old = FakeModule(125, "", "unknown flag: --validate")
    assert config.validate_with_dockerd(old, "d", "c") == (True, "unknown flag: --validate", False)
