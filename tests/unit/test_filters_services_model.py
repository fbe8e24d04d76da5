"""The services model: enabled services, containers, proxy upstreams, host ports, files and directories."""

import pytest

from ansible_collections.nasai.stack.plugins.filter.services_model import (
    SERVICE_FIELDS, config_files, config_writes, data_dirs, enabled_services, host_ports, project_directories,
    proxy_log_targets, proxy_routes, proxy_upstreams, service_instances,
)

P = "/srv/nasai"


def stack():
    """A small stack like the role's presets: a collector, two AI replicas, a file manager, the proxy."""
    return {
        "proxy": {"image": "nginx", "port": 443, "configs": [{"template": "nginx.conf.j2", "dest": "nginx.conf"}],
                  "tls": True, "ports": ["443:443", "80:80"],
                  "healthcheck": {"test": ["CMD", "curl", "https://127.0.0.1:{port}/healthz"], "interval": "5s"}},
        "ai": {"image": "llama", "port": 8081, "replicas": 2, "command": ["--port", "{port}", "--threads", 3],
               "env": {"PORT": "{port}", "N": 4}, "proxy_path": "/", "volumes": ["models:/models:ro"],
               "healthcheck": {"test": "curl -f http://127.0.0.1:{port}/health"}},
        "files": {"image": "copyparty", "port": 8090, "user": "1000:1001", "data": "/srv", "data_dirs": ["files"],
                  "configs": [{"template": "copyparty.conf.j2", "dest": "copyparty.conf", "secret": True}],
                  "proxy_path": "/files/", "labels": {"x": "y"}},
        "logs": {"image": "rsyslog", "port": 5514, "protocol": "udp", "log": False, "user": "10003:10003",
                 "ports": ["127.0.0.1:5514:5514/udp"], "data": "/var/log/nasai"},
    }


ORDER = {"logs": 10, "ai": 20, "files": 30, "proxy": 90}
NAMES = ["logs", "ai", "files", "proxy"]


def by_name(instances):
    return {item["name"]: item for item in instances}


def test_enabled_services_in_deployment_order():
    assert enabled_services(stack(), ORDER) == NAMES
    definitions = dict(stack(), files={"enabled": "no"}, extra={"order": 5}, other={"enabled": True})
    assert enabled_services(definitions, ORDER) == ["extra", "logs", "ai", "other", "proxy"]
    # Without a table every service is at 50: by name.
    assert enabled_services({"b": {}, "a": {}, "c": {"order": "7"}}) == ["c", "a", "b"]


def test_instances_in_host_mode():
    instances = service_instances(stack(), NAMES, P, network_mode="host", syslog_port=5514)
    assert [i["name"] for i in instances] == ["nasai-logs", "nasai-ai-1", "nasai-ai-2", "nasai-files", "nasai-proxy"]
    ai2 = by_name(instances)["nasai-ai-2"]
    # Replicas share the host's network stack: each listens on a port of its own, {port} resolved.
    assert ai2["port"] == 8082
    assert (ai2["command"], ai2["env"]) == (["--port", "8082", "--threads", "3"], {"PORT": "8082", "N": "4"})
    assert ai2["healthcheck"] == {"test": "curl -f http://127.0.0.1:8082/health"}
    assert ai2["labels"] == {"nasai.stack.service": "ai", "nasai.stack.replica": "2"}
    assert ai2["volumes"] == ["models:/models:ro"] and ai2["ports"] == []
    assert (ai2["log_driver"], ai2["log_options"]) == ("syslog", {"syslog-address": "udp://127.0.0.1:5514",
                                                                  "tag": "nasai-ai-2", "syslog-format": "rfc5424"})
    assert ai2["security_opts"] == ["no-new-privileges:true"] and ai2["restart_policy"] == "always"
    assert (ai2["entrypoint"], ai2["memory"], ai2["read_only"], ai2["tmpfs"]) == (None, None, False, [])


def test_instances_mount_config_and_data_and_keep_the_collectors_logs_local():
    instances = by_name(service_instances(stack(), NAMES, P, syslog_port=5514))
    assert instances["nasai-files"]["volumes"] == [f"{P}/config/files:/etc/nasai:ro", f"{P}/data/files:/srv"]
    assert instances["nasai-files"]["labels"] == {"x": "y", "nasai.stack.service": "files",
                                                  "nasai.stack.replica": "1"}
    assert instances["nasai-proxy"]["healthcheck"]["test"] == ["CMD", "curl", "https://127.0.0.1:443/healthz"]
    assert instances["nasai-proxy"]["healthcheck"]["interval"] == "5s"
    # The collector never logs to itself; log: false keeps a service's logs local too.
    assert instances["nasai-logs"]["log_driver"] == "json-file"
    assert instances["nasai-logs"]["log_options"] == {"max-size": "10m", "max-file": "3"}
    assert all(i["log_driver"] == "json-file" for i in service_instances(stack(), NAMES, P))
    # The others' first lines go to the collector: it alone is healthy before the next starts.
    assert [i["name"] for i in instances.values() if i["healthy_before_next"]] == ["nasai-logs"]
    assert not any(i["healthy_before_next"] for i in service_instances(stack(), NAMES, P))


def test_instances_in_bridge_mode_share_the_port_and_publish():
    instances = by_name(service_instances(stack(), NAMES, P, network_mode="bridge", network_name="net"))
    assert [instances["nasai-ai-1"]["port"], instances["nasai-ai-2"]["port"]] == [8081, 8081]
    assert instances["nasai-proxy"]["ports"] == ["443:443", "80:80"]
    assert instances["nasai-ai-1"]["networks"] == ["net"]


def test_instance_fields_given_are_passed():
    definitions = {"x": {"image": "i", "port": "9000", "config_mount": "/cfg", "tls": True, "no_new_privileges": False,
                         "security_opts": ["seccomp=unconfined"], "read_only": "yes", "networks": ["n1"],
                         "restart_policy": "always", "cap_drop": ["ALL"], "memory": "1g", "cpus": 0.5}}
    (item,) = service_instances(definitions, ["x"], P)
    assert item["volumes"] == [f"{P}/config/x:/cfg:ro"]
    assert item["security_opts"] == ["seccomp=unconfined"]
    assert (item["read_only"], item["networks"], item["restart_policy"]) == (True, ["n1"], "always")
    assert (item["cap_drop"], item["memory"], item["cpus"], item["command"]) == (["ALL"], "1g", 0.5, None)


def test_proxy_upstreams_longest_path_first():
    definitions = stack()
    for mode, peer, ai in (("host", "127.0.0.1", ["127.0.0.1:8081", "127.0.0.1:8082"]),
                           ("bridge", "", ["nasai-ai-1:8081", "nasai-ai-2:8081"])):
        instances = service_instances(definitions, NAMES, P, network_mode=mode)
        assert proxy_upstreams(definitions, NAMES, instances, peer) == [
            {"name": "files", "path": "/files/", "paths": ["/files/"],
             "servers": [("%s:8090" % peer) if peer else "nasai-files:8090"], "admin": False, "public": False},
            {"name": "ai", "path": "/", "paths": ["/"], "servers": ai, "admin": False, "public": False}]


def test_proxy_routes_take_the_longest_prefix_first_across_services():
    # The chat takes / and signs its users in itself; the AI core keeps its API paths beside it.
    definitions = dict(stack(), chat={"port": 8080, "proxy_path": "/", "proxy_public": True})
    definitions["ai"] = dict(definitions["ai"], proxy_path=["/v1/", "/slots", "/completion"])
    names = NAMES + ["chat"]
    upstreams = proxy_upstreams(definitions, names, service_instances(definitions, names, P), "127.0.0.1")
    ai = next(u for u in upstreams if u["name"] == "ai")
    assert (ai["path"], ai["paths"]) == ("/completion", ["/completion", "/slots", "/v1/"])
    assert [(r["path"], r["name"], r["public"]) for r in proxy_routes(upstreams)] == [
        ("/completion", "ai", False), ("/files/", "files", False), ("/slots", "ai", False),
        ("/v1/", "ai", False), ("/", "chat", True)]


def test_proxy_upstreams_mark_the_routes_only_admins_reach():
    definitions = dict(stack(), metrics={"port": 9090, "proxy_path": "/prometheus/", "proxy_admin": True})
    names = NAMES + ["metrics"]
    instances = service_instances(definitions, names, P)
    upstreams = proxy_upstreams(definitions, names, instances, "127.0.0.1")
    assert [(u["name"], u["admin"]) for u in upstreams] == [("metrics", True), ("files", False), ("ai", False)]


def test_host_ports_in_host_mode_are_listened_on_and_published():
    definitions = stack()
    ports = host_ports(service_instances(definitions, NAMES, P), definitions, "host")
    assert ports == [
        {"container": "nasai-logs", "port": "5514/udp"},
        {"container": "nasai-ai-1", "port": "8081/tcp"},
        {"container": "nasai-ai-2", "port": "8082/tcp"},
        {"container": "nasai-files", "port": "8090/tcp"},
        {"container": "nasai-proxy", "port": "443/tcp"},
        {"container": "nasai-proxy", "port": "80/tcp"},
    ]


def test_host_ports_in_bridge_mode_are_only_the_published():
    definitions = stack()
    ports = host_ports(service_instances(definitions, NAMES, P, network_mode="bridge"), definitions, "bridge")
    assert [p["port"] for p in ports] == ["5514/udp", "443/tcp", "80/tcp"]
    definitions = {"x": {"port": 1, "ports": ["10.0.0.1:9000:90", "9001/udp", 9002]}}
    ports = host_ports(service_instances(definitions, ["x"], P), definitions, "host")
    assert [p["port"] for p in ports] == ["9000/tcp", "9001/udp", "9002/tcp", "1/tcp"]


def test_config_files_carry_the_group_of_the_services_user():
    assert config_files(stack(), NAMES) == [
        {"service": "files", "template": "copyparty.conf.j2", "content": None, "dest": "copyparty.conf",
         "secret": True, "group": "1001"},
        {"service": "proxy", "template": "nginx.conf.j2", "content": None, "dest": "nginx.conf", "secret": False,
         "group": "0"},
    ]


def test_data_dirs_owned_by_the_numeric_ids():
    assert data_dirs(stack(), NAMES, P) == [
        {"path": f"{P}/data/logs", "owner": "10003", "group": "10003"},
        {"path": f"{P}/data/files", "owner": "1000", "group": "1001"},
        {"path": f"{P}/data/files/files", "owner": "1000", "group": "1001"},
    ]
    definitions = {"a": {"data": "/d", "user": "www-data:33", "data_dirs": ["x/"]}, "b": {"data": "/d", "user": 7},
                   "c": {"data": "/d", "user": "nobody"}, "d": {"data": ""}}
    assert data_dirs(definitions, ["a", "b", "c", "d"], P) == [
        {"path": f"{P}/data/a", "owner": "0", "group": "33"}, {"path": f"{P}/data/a/x", "owner": "0", "group": "33"},
        {"path": f"{P}/data/b", "owner": "7", "group": "7"}, {"path": f"{P}/data/c", "owner": "0", "group": "0"}]


def test_project_directories():
    files = config_files(stack(), NAMES)
    dirs = project_directories(files, P, data_dirs(stack(), ["files"], P), tls=True)
    assert dirs[:5] == [{"path": P, "mode": "0755"}, {"path": f"{P}/config", "mode": "0755"},
                        {"path": f"{P}/data", "mode": "0755"}, {"path": f"{P}/secrets", "mode": "0700"},
                        {"path": f"{P}/tls", "mode": "0700"}]
    root = {"mode": "0755", "owner": "root", "group": "root"}
    assert dirs[5:] == [dict(root, path=f"{P}/config/files"), dict(root, path=f"{P}/config/proxy"),
                        dict(root, path=f"{P}/config/proxy/tls"),
                        {"path": f"{P}/data/files", "owner": "1000", "group": "1001", "mode": "0750"},
                        {"path": f"{P}/data/files/files", "owner": "1000", "group": "1001", "mode": "0750"}]
    assert [d["path"] for d in project_directories([], P)][5:] == []
    nested = [{"service": "grafana", "dest": "provisioning/datasources/a.yml"},
              {"service": "grafana", "dest": "provisioning/dashboards/b.yml"}, {"service": "grafana", "dest": "c.json"}]
    assert [d["path"] for d in project_directories(nested, P)][5:] == [
        f"{P}/config/grafana", f"{P}/config/grafana/provisioning", f"{P}/config/grafana/provisioning/datasources",
        f"{P}/config/grafana/provisioning/dashboards"]


def test_config_writes_secret_files_are_readable_by_the_services_group_only():
    files = config_files(stack(), NAMES)
    assert config_writes(files, P, ["pw inside", "server {}"]) == [
        {"path": f"{P}/config/files/copyparty.conf", "content": "pw inside", "owner": "root", "group": "1001",
         "mode": "0640", "secret": True},
        {"path": f"{P}/config/proxy/nginx.conf", "content": "server {}", "owner": "root", "group": "root",
         "mode": "0644", "secret": False},
    ]
    with pytest.raises(ValueError, match="one content per template"):
        config_writes(files, P, ["only one"])


def test_config_writes_take_the_content_a_service_brings_and_render_the_rest():
    # A role that adds services (observability) renders some files itself: only templates are rendered here.
    definitions = dict(stack(), metrics={"port": 9090, "user": "65534:65534", "configs": [
        {"content": "groups: []\n", "dest": "rules.yml"}, {"template": "/abs/prometheus.yml.j2", "dest": "p.yml"}]})
    files = config_files(definitions, NAMES + ["metrics"])
    writes = config_writes(files, P, ["pw", "server {}", "scrape_configs: []"])
    assert [(w["path"].rsplit("/", 2)[-2:], w["content"]) for w in writes] == [
        (["files", "copyparty.conf"], "pw"), (["proxy", "nginx.conf"], "server {}"),
        (["metrics", "rules.yml"], "groups: []\n"), (["metrics", "p.yml"], "scrape_configs: []")]


def test_every_field_the_model_reads_is_a_known_field():
    assert len(SERVICE_FIELDS) == len(set(SERVICE_FIELDS))
    assert set(stack()["ai"]) | set(stack()["files"]) | set(stack()["proxy"]) <= set(SERVICE_FIELDS)


def test_proxy_log_targets_are_the_replicas_of_services_that_read_the_access_log():
    definitions = dict(stack(), routes={"port": 3903, "proxy_log_port": 5515})
    names = NAMES + ["routes"]
    for mode, peer, target in (("host", "127.0.0.1", "127.0.0.1:5515"), ("bridge", "", "nasai-routes:5515")):
        instances = service_instances(definitions, names, P, network_mode=mode)
        assert proxy_log_targets(definitions, names, instances, peer) == [target]
    assert proxy_log_targets(definitions, NAMES, service_instances(definitions, NAMES, P), "127.0.0.1") == []


@pytest.mark.parametrize(("mode", "ports"), [("host", [8181, 8182]), ("bridge", [8081, 8081])])
def test_the_green_set_runs_beside_blue_under_its_own_names_and_ports(mode, ports):
    defs = stack()
    names = ["ai"]
    blue = service_instances(defs, names, P, network_mode=mode, colors={"ai": "blue"})
    green = service_instances(defs, names, P, network_mode=mode, colors={"ai": "green"}, green_offset=100)
    assert [i["name"] for i in blue] == ["nasai-ai-1", "nasai-ai-2"]
    assert [i["name"] for i in green] == ["nasai-ai-green-1", "nasai-ai-green-2"]
    assert [i["port"] for i in green] == ports
    assert green[0]["command"] == ["--port", str(ports[0]), "--threads", "3"]
    assert green[0]["labels"]["nasai.stack.color"] == "green" and "nasai.stack.color" not in blue[0]["labels"]
    assert blue == service_instances(defs, names, P, network_mode=mode)
