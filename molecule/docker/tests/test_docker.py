"""The engine installed in a Debian 12 and a Debian 13 simulated NAS really runs with the rendered
settings: docker info, the running daemon's environment, a container started from a loaded image
(its log config, cgroup, NoNewPrivs, published port), the proxy drop-in, group membership; bad
input and unsafe data-root moves are refused before anything changes; check mode is clean; a
data-root move with migration keeps the images."""

import json
import shlex

import pytest

DATA_ROOT = "/container/data/docker"
PROXY = "http://proxy.nasai.test:3128"
DROPIN = "/etc/systemd/system/docker.service.d/http-proxy.conf"


def info(host):
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


def main_pid(host):
    return host.check_output("systemctl show -p MainPID --value docker")


def daemon_json(host):
    return host.file("/etc/docker/daemon.json").content_string


def test_engine_answers_with_the_rendered_settings(host):
    facts = info(host)
    assert facts["LoggingDriver"] == "json-file"
    assert facts["LiveRestoreEnabled"] is True
    assert facts["DockerRootDir"] == DATA_ROOT
    assert facts["Driver"] == "overlay2"
    assert facts["HttpProxy"] == PROXY and facts["HttpsProxy"] == PROXY
    assert facts["RegistryConfig"]["Mirrors"] == ["https://mirror.nasai.test/"]
    assert host.service("docker").is_running and host.service("docker").is_enabled


def test_daemon_json_holds_the_role_settings_and_the_extras(host):
    settings = json.loads(daemon_json(host))
    assert settings["log-opts"] == {"max-size": "20m", "max-file": "4"}
    assert settings["no-new-privileges"] is True and settings["userland-proxy"] is False
    assert settings["default-address-pools"] == [{"base": "172.30.0.0/16", "size": 24}]
    assert settings["cgroup-parent"] == "inner-docker"
    assert settings["registry-mirrors"] == ["https://mirror.nasai.test"] and "hosts" not in settings


def test_networks_come_from_the_address_pool(host):
    address = host.check_output("ip -4 -o addr show docker0").split()[3]
    assert address.startswith("172.30.")


def test_proxy_dropin_reaches_the_running_daemon(host):
    dropin = host.file(DROPIN)
    assert dropin.mode == 0o600 and dropin.user == "root"
    environment = host.check_output("systemctl show docker -p Environment")
    for pair in (f"HTTP_PROXY={PROXY}", f"HTTPS_PROXY={PROXY}", "NO_PROXY=localhost,127.0.0.1,.nasai.test"):
        assert pair in environment
    environ = host.check_output(f"tr '\\0' '\\n' < /proc/{main_pid(host)}/environ")
    assert f"HTTP_PROXY={PROXY}" in environ.splitlines()


def test_admin_user_is_in_the_docker_group(host):
    assert "docker" in host.user("nasadmin").groups
    assert host.run("runuser -u nasadmin -- docker version --format '{{.Server.Version}}'").rc == 0


def test_no_tcp_listener(host):
    # dockerd only holds the ports published by containers (8080, the test container's).
    ports = {line.split()[3].rsplit(":", 1)[1] for line in host.check_output("ss -Hltnp").splitlines()
             if '"dockerd"' in line}
    assert ports <= {"8080"}
    assert not host.file("/etc/systemd/system/docker.service.d/nasai-tcp.conf").exists


def test_compose_v2_plugin_where_the_release_has_one(host):
    codename = host.system_info.codename
    compose = host.run("docker compose version --short")
    if codename == "bookworm":
        # Debian 12 has no compose v2 package; the role says so and does not install the v1 tool.
        assert compose.rc != 0
        assert not host.package("docker-compose").is_installed
    else:
        assert compose.rc == 0 and compose.stdout.strip().lstrip("v").startswith("2.")


def test_check_mode_on_a_converged_host_changes_nothing(converge, host, nas_name):
    before = daemon_json(host), main_pid(host)
    run = converge(nas_name, None, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(nas_name)["changed"] == 0
    assert (daemon_json(host), main_pid(host)) == before


def test_a_container_runs_from_a_loaded_image(converge, host, nas_name):
    run = converge(nas_name, playbook="load_image.yml")
    assert run.rc == 0, run.output
    container = json.loads(host.check_output("docker inspect nasai-hello"))[0]
    assert container["State"]["Running"] is True
    assert container["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                                    "Config": {"max-file": "4", "max-size": "20m"}}
    pid = container["State"]["Pid"]
    status = host.file(f"/proc/{pid}/status").content_string
    assert "NoNewPrivs:\t1" in status
    cgroups = host.file(f"/proc/{pid}/cgroup").content_string
    memory = [line.split(":", 2)[2] for line in cgroups.splitlines() if ":memory:" in line or line.startswith("0::")]
    assert memory and "/inner-docker/" in memory[0] + "/"
    served = host.check_output(
        "python3 -c \"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8080/passwd').read().decode())\"")
    assert served.startswith("root:x:0:0")


# Bad input, each refused naming the variable (one ansible-playbook run for all: conftest `refusals`).
BAD_INPUTS = [
    ({"docker_log_max_size": "ten megs"}, "docker_log_max_size must be a size such as 10m"),
    ({"docker_storage_driver": "aufs"}, "docker_storage_driver"),
    ({"docker_data_root": "docker-data"}, "docker_data_root must be an absolute path"),
    ({"docker_daemon_proxy_http": "proxy.lan:3128"}, "docker_daemon_proxy_http must be empty or a proxy URL"),
    ({"docker_default_address_pools": [{"base": "10.0.0.0", "size": 24}]}, "docker_default_address_pools"),
    ({"docker_tcp_listen": "0.0.0.0:2375"}, "never exposed over TCP without TLS"),
    # TLS files that are not there: the engine would not start, and no listener drop-in is left.
    ({"docker_tcp_listen": "127.0.0.1:2376", "docker_tls_cacert": "/etc/nasai/no-ca.pem",
      "docker_tls_cert": "/etc/nasai/no-cert.pem", "docker_tls_key": "/etc/nasai/no-key.pem"},
     "needs its TLS files on the host first; missing: /etc/nasai/no-ca.pem"),
    ({"docker_users": ["ghost"]}, "docker_users names users that do not exist"),
    ({"docker_log_max_file": 0}, "docker_log_max_file must be between 1 and 100"),
    # No NVIDIA driver on these NAS: the toolkit is not installed for a GPU that cannot work.
    ({"docker_nvidia_toolkit": True}, "docker_nvidia_toolkit: true needs the NVIDIA driver on"),
]


def bad_input_applies(host):
    return host.system_info.codename == "bookworm"


def bad_input_state(host):
    tcp = host.file("/etc/systemd/system/docker.service.d/nasai-tcp.conf")
    return daemon_json(host), host.file(DROPIN).content_string, tcp.exists, main_pid(host)


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)), ids=[message[:40] for _extra, message in BAD_INPUTS])
def test_bad_input_fails_before_any_change(refused, case):
    found, unchanged = refused
    assert BAD_INPUTS[case][1] in found.get(case, f"{BAD_INPUTS[case][0]} was not refused"), found.get(case)
    assert unchanged


def test_an_option_dockerd_rejects_leaves_the_engine_as_it_was(converge, host, nas_name):
    before = daemon_json(host)
    run = converge(nas_name, {"docker_daemon_options_extra": {"cgroup-parent": "inner-docker",
                                                              "no-such-option": True}})
    assert run.rc != 0
    if host.system_info.codename == "bookworm":
        # 20.10 has no `dockerd --validate`: the restart fails and the previous file is put back.
        assert "was put back" in run.output
    else:
        assert "dockerd rejects the new /etc/docker/daemon.json" in run.output
    assert daemon_json(host) == before
    assert info(host)["DockerRootDir"] == DATA_ROOT


def test_proxy_dropin_is_removed_when_unset(converge, host, nas_name):
    run = converge(nas_name, {"docker_daemon_proxy_http": "", "docker_daemon_proxy_https": None})
    assert run.rc == 0, run.output
    assert not host.file(DROPIN).exists
    assert "HTTP_PROXY" not in host.check_output("systemctl show docker -p Environment")
    assert info(host)["HttpProxy"] == ""
    run = converge(nas_name)
    assert run.rc == 0, run.output
    assert info(host)["HttpProxy"] == PROXY


@pytest.mark.parametrize(("proxy", "message"), [
    ("http://entry.nasai.test:8080", None),
    ("entry.nasai.test:8080", "docker_daemon_proxy_http must be empty or a proxy URL"),
])
def test_other_roles_set_the_proxy_through_the_entry_point(converge, host, nas_name, proxy, message):
    run = converge(nas_name, {"nasai_test_proxy": proxy}, playbook="proxy_entry_point.yml")
    if message:
        assert run.rc != 0 and message in run.output
        assert info(host)["HttpProxy"] == PROXY
        return
    assert run.rc == 0, run.output
    assert info(host)["HttpProxy"] == proxy and info(host)["NoProxy"] == "localhost"
    run = converge(nas_name)
    assert run.rc == 0, run.output
    assert info(host)["HttpProxy"] == PROXY


TLS = "/etc/docker/tls"
MAKE_CERTS = f"""set -e; mkdir -p {TLS}; cd {TLS}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=nasai-test-ca
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -keyout $who-key.pem -out $who.csr -subj /CN=$who
done
printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
printf 'extendedKeyUsage=clientAuth\\n' > client.ext
for who in server client; do
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out $who.pem -days 2 -extfile $who.ext
done 2>/dev/null
"""


def test_tcp_listener_only_with_tls_and_removed_again(converge, host, nas_name):
    host.check_output("sh -c " + shlex.quote(MAKE_CERTS))
    run = converge(nas_name, {"docker_tcp_listen": "127.0.0.1:2376", "docker_tls_cacert": f"{TLS}/ca.pem",
                              "docker_tls_cert": f"{TLS}/server.pem", "docker_tls_key": f"{TLS}/server-key.pem"})
    assert run.rc == 0, run.output
    remote = "docker -H tcp://127.0.0.1:2376"
    client = f"--tlsverify --tlscacert {TLS}/ca.pem --tlscert {TLS}/client.pem --tlskey {TLS}/client-key.pem"
    assert host.run(f"{remote} {client} version --format '{{{{.Server.Version}}}}'").rc == 0
    assert host.run(f"{remote} --tlsverify --tlscacert {TLS}/ca.pem version").rc != 0, "no client certificate"
    assert host.run(f"{remote} version").rc != 0, "no TLS"
    assert host.run("docker version --format '{{.Server.Version}}'").rc == 0, "the local socket still works"
    run = converge(nas_name)
    assert run.rc == 0, run.output
    assert not host.file("/etc/systemd/system/docker.service.d/nasai-tcp.conf").exists
    assert "tls" not in json.loads(daemon_json(host))
    assert host.run(f"{remote} {client} version").rc != 0


def test_adopts_an_engine_from_another_source_without_replacing_it(converge, host, nas_name):
    packages = host.check_output("dpkg-query -W -f '${Package} ${Version}\\n' 'docker*'")
    run = converge(nas_name, {"docker_install_source": "docker_ce", "docker_ce_gpg_key": "https://x.invalid/gpg"})
    assert run.rc == 0, run.output
    assert "adopt: engine from package docker.io" in run.output
    assert run.recap(nas_name)["changed"] == 0
    assert host.check_output("dpkg-query -W -f '${Package} ${Version}\\n' 'docker*'") == packages
    assert not host.file("/etc/apt/sources.list.d/docker.sources").exists


def test_data_root_move_with_data_is_refused_without_migration(converge, host, nas_name):
    before = daemon_json(host), main_pid(host)
    run = converge(nas_name, {"docker_data_root": "/container/data/docker-moved"})
    assert run.rc != 0
    assert "set docker_data_root_migrate: true" in run.output
    assert (daemon_json(host), main_pid(host)) == before
    assert not host.file("/container/data/docker-moved").exists


def test_data_root_migration_keeps_images_and_the_old_copy(converge, host, nas_name):
    run = converge(nas_name, {"docker_data_root": "/container/data/docker-moved", "docker_data_root_migrate": True})
    assert run.rc == 0, run.output
    assert info(host)["DockerRootDir"] == "/container/data/docker-moved"
    assert host.run("docker image inspect nasai/busybox:test").rc == 0
    assert host.run("docker container inspect nasai-hello").rc == 0
    # Nothing is lost: the old data root stays until its owner removes it.
    assert host.file(f"{DATA_ROOT}/image").is_directory
    run = converge(nas_name, {"docker_data_root": "/container/data/docker-moved"})
    assert run.rc == 0 and run.recap(nas_name)["changed"] == 0, run.output
