"""stack_containers' order of starts and health waits, run whole (main()) against a fake engine:
a first start waits once for all its new containers, the log collector before the others, and a
running container is replaced only once what the run created before it is healthy."""

import functools
import json

import pytest

from ansible.module_utils import basic
from ansible_collections.nasai.stack.plugins.modules import stack_containers

HEALTH = {"test": ["CMD", "true"], "interval": "5s"}


class _Engine:
    """Records starts, stops and the moment each container is first seen healthy. A started
    container reports healthy from its third look on (it is starting before)."""

    def __init__(self, existing=()):
        self.events, self.looks, self.bodies = [], {}, {}
        self.existing = dict(existing)

    def network(self, _name):
        return {}

    def volume(self, _name):
        return {}

    def image(self, _name):
        return {"Id": "sha256:1"}

    def container(self, name):
        if name in self.existing:
            body = self.existing[name]
            return {"Config": {"Labels": body["Labels"], "Image": "img"}, "State": {"Running": True}}
        if name not in self.looks:
            return None
        self.looks[name] += 1
        healthy = self.looks[name] >= 3
        if healthy and ("healthy", name) not in self.events:
            self.events.append(("healthy", name))
        return {"State": {"Running": True, "Health": {"Status": "healthy" if healthy else "starting"}}}

    def create(self, name, body):
        self.bodies[name] = body

    def start(self, name):
        self.events.append(("start", name))
        self.looks[name] = 0

    def stop(self, name, grace=10):
        self.events.append(("stop", name))

    def rename(self, name, new_name):
        if name in self.existing:
            self.existing[new_name] = self.existing.pop(name)

    def remove(self, name):
        self.existing.pop(name, None)

    def containers(self, _label):
        return []


def _run(monkeypatch, fake, containers):
    monkeypatch.setattr(stack_containers, "Engine", lambda _socket: fake)
    # Its poll interval is a default argument, bound when the module loaded.
    monkeypatch.setattr(stack_containers, "wait_healthy",
                        functools.partial(stack_containers.wait_healthy, sleep=lambda _s: None))
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps(
        {"ANSIBLE_MODULE_ARGS": {"containers": containers, "prune_label": "nasai.stack.service"}}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    with pytest.raises(SystemExit):
        stack_containers.main()
    return fake.events


def _spec(name, **extra):
    return dict({"name": name, "image": "img", "network_mode": "host", "healthcheck": HEALTH,
                 "labels": {"nasai.stack.service": name}}, **extra)


def test_a_first_start_starts_all_then_waits_once_with_the_collector_healthy_first(monkeypatch):
    events = _run(monkeypatch, _Engine(), [
        _spec("nasai-logs", healthy_before_next=True), _spec("nasai-ai-1"), _spec("nasai-ai-2"),
        _spec("nasai-proxy")])
    assert events == [("start", "nasai-logs"), ("healthy", "nasai-logs"),
                      ("start", "nasai-ai-1"), ("start", "nasai-ai-2"), ("start", "nasai-proxy"),
                      ("healthy", "nasai-ai-1"), ("healthy", "nasai-ai-2"), ("healthy", "nasai-proxy")]


def test_a_running_container_is_replaced_only_once_the_new_ones_before_it_are_healthy(monkeypatch):
    _action, old_body, _fields = stack_containers.plan_container(_spec("nasai-proxy"), None, "sha256:1")
    fake = _Engine(existing=[("nasai-proxy", old_body)])
    events = _run(monkeypatch, fake, [
        _spec("nasai-ai-green-1"), _spec("nasai-ai-green-2"), _spec("nasai-proxy", command=["--new"])])
    assert events == [("start", "nasai-ai-green-1"), ("start", "nasai-ai-green-2"),
                      ("healthy", "nasai-ai-green-1"), ("healthy", "nasai-ai-green-2"),
                      ("stop", "nasai-proxy"), ("start", "nasai-proxy"), ("healthy", "nasai-proxy")]
