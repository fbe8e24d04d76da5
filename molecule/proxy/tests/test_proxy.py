"""The proxy role against a real tinyproxy and a real HTTP target: explicit mode sends apt, curl
and a container's request through the proxy; transparent mode redirects plain requests of the
host and of its containers with iptables + redsocks; the proof is in the proxy's log and in the
target's log (the client it saw is the proxy). Removal, check mode, failures and bad input too."""

import json
import os
import subprocess
import time
import uuid

import pytest
import testinfra

EXPLICIT, TRANSPARENT = "nas-proxy-explicit", "nas-proxy-transparent"
PROXY_URL = "http://nas-proxy-tinyproxy:8888"
LOG = "/var/log/tinyproxy/tinyproxy.log"
AUTH_LOG = "/var/log/tinyproxy/auth.log"
CHAINS = ("NASAI_PROXY", "NASAI_PROXY_OUTPUT", "NASAI_PROXY_INPUT")


@pytest.fixture(scope="module")
def explicit():
    return testinfra.get_host(f"docker://{EXPLICIT}")


@pytest.fixture(scope="module")
def transparent():
    return testinfra.get_host(f"docker://{TRANSPARENT}")


@pytest.fixture(scope="module")
def proxy():
    return testinfra.get_host("docker://nas-proxy-tinyproxy")


@pytest.fixture(scope="module")
def web():
    return testinfra.get_host("docker://nas-proxy-web")


def address(host, name):
    return host.check_output(f"getent ahostsv4 {name}").split()[0]


def web_clients(web, marker, port=80):
    """Client addresses of the target's requests whose path holds marker (waits for the journal)."""
    for _attempt in range(20):
        lines = web.check_output(f"journalctl -u httptarget@{port} -o cat --no-pager").splitlines()
        clients = [line.split()[0] for line in lines if marker in line]
        if clients:
            return clients
        time.sleep(0.2)
    return []


def proxy_log(proxy, path=LOG):
    return proxy.file(path).content_string


def nat(host):
    return host.check_output("iptables-save -t nat")


def firewall_without_counters(host):
    lines = host.check_output("iptables-save").splitlines()
    return [line.split(" [")[0] for line in lines if not line.startswith("#")]


def ours(line):
    return any(chain in line for chain in CHAINS)


# --- explicit mode -------------------------------------------------------------------------------

def test_environment_and_login_shells_have_the_proxy(explicit):
    env = explicit.file("/etc/environment").content_string
    assert env.count("# BEGIN nasai.stack proxy") == 1
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        assert f"{key}={PROXY_URL}\n" in env
    assert "NO_PROXY=localhost,127.0.0.1,::1,.internal.lan,nas-proxy-explicit\n" in env
    # pam_env's file is read at login; the profile.d file by every login shell.
    shell = explicit.check_output("bash -lc 'echo $http_proxy $HTTPS_PROXY $no_proxy'")
    assert shell == f"{PROXY_URL} {PROXY_URL} localhost,127.0.0.1,::1,.internal.lan,nas-proxy-explicit"
    assert explicit.file("/etc/profile.d/nasai-proxy.sh").mode == 0o644


def test_curl_goes_through_the_proxy(explicit, proxy, web):
    marker = uuid.uuid4().hex
    out = explicit.check_output(f"bash -lc 'curl -sS -D- -o /dev/null http://nas-proxy-web/?curl={marker}'")
    assert out.startswith("HTTP/1.") and " 200 " in out.splitlines()[0]
    assert "Via: 1.1 tinyproxy" in out
    assert f"GET http://nas-proxy-web/?curl={marker}" in proxy_log(proxy)
    assert web_clients(web, marker) == [address(explicit, "nas-proxy-tinyproxy")]


def test_apt_goes_through_the_proxy(explicit, proxy):
    dump = explicit.check_output("apt-config dump Acquire")
    assert f'Acquire::http::Proxy "{PROXY_URL}";' in dump
    assert 'Acquire::http::Proxy::nas-proxy-explicit "DIRECT";' in dump
    before = proxy_log(proxy).count("deb.debian.org")
    explicit.check_output("apt-get update -qq")
    assert proxy_log(proxy).count("deb.debian.org") > before


def test_docker_client_config_gives_containers_the_proxy(explicit, proxy, web):
    config = json.loads(explicit.file("/root/.docker/config.json").content_string)
    assert config["proxies"]["default"] == {
        "httpProxy": PROXY_URL, "httpsProxy": PROXY_URL,
        "noProxy": "localhost,127.0.0.1,::1,.internal.lan,nas-proxy-explicit"}
    assert explicit.file("/root/.docker/config.json").mode == 0o600
    marker = uuid.uuid4().hex
    proxy_ip = address(explicit, "nas-proxy-tinyproxy")
    # The NAS engine's default bridge cannot use Docker's embedded DNS: name the proxy for it.
    out = explicit.check_output(
        f"docker run --rm --add-host nas-proxy-tinyproxy:{proxy_ip} nasai/busybox "
        f"sh -c 'env; wget -q -O- http://nas-proxy-web/?container={marker}'")
    assert f"HTTP_PROXY={PROXY_URL}" in out and f"http_proxy={PROXY_URL}" in out
    assert "nasai proxy target" in out
    assert f"GET http://nas-proxy-web/?container={marker}" in proxy_log(proxy)
    assert web_clients(web, marker) == [proxy_ip]


DOCKER_DAEMON = os.environ.get("NASAI_TEST_DOCKER_DAEMON_PROXY", "true").lower() == "true"


@pytest.mark.skipif(not DOCKER_DAEMON, reason="NASAI_TEST_DOCKER_DAEMON_PROXY=false: the docker role is left out")
def test_docker_daemon_uses_the_proxy(explicit, transparent):
    info = explicit.check_output("docker info --format '{{.HTTPProxy}} {{.HTTPSProxy}} {{.NoProxy}}'")
    assert info == f"{PROXY_URL} {PROXY_URL} localhost,127.0.0.1,::1,.internal.lan,nas-proxy-explicit"
    # Transparent mode: the daemon's traffic is redirected, it is told nothing.
    assert transparent.check_output("docker info --format '{{.HTTPProxy}}'") == ""


def test_container_env_is_exported(explicit, transparent):
    env = json.loads(explicit.file("/run/proxy_container_env.json").content_string)
    assert env["PROXY_URL"] == PROXY_URL and env["HTTPS_PROXY"] == PROXY_URL
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1,.internal.lan,nas-proxy-explicit"
    # Transparent mode: containers need nothing, their traffic is redirected.
    assert json.loads(transparent.file("/run/proxy_container_env.json").content_string) == {}


def test_explicit_host_has_no_transparent_pieces(explicit):
    assert "NASAI_PROXY" not in explicit.check_output("iptables-save")
    assert not explicit.file("/etc/nasai/proxy").exists
    assert not explicit.package("redsocks").is_installed


# --- transparent mode ----------------------------------------------------------------------------

def test_plain_request_from_the_host_goes_through_the_proxy(transparent, proxy, web):
    marker = uuid.uuid4().hex
    connects = proxy_log(proxy).count("CONNECT ")
    out = transparent.check_output(f"env -i /usr/bin/curl -sS -D- -o /dev/null http://nas-proxy-web/?host={marker}")
    assert " 200 " in out.splitlines()[0]
    assert proxy_log(proxy).count("CONNECT ") > connects
    assert f"CONNECT {address(transparent, 'nas-proxy-web')}:80" in proxy_log(proxy)
    assert web_clients(web, marker) == [address(transparent, "nas-proxy-tinyproxy")]


@pytest.mark.parametrize("port", [80, 443])
def test_plain_request_from_a_container_goes_through_the_proxy(transparent, proxy, web, port):
    marker = uuid.uuid4().hex
    target = address(transparent, "nas-proxy-web")
    out = transparent.check_output(
        f"docker run --rm nasai/busybox sh -c 'env; wget -q -O- http://{target}:{port}/?container={marker}'")
    assert "nasai proxy target" in out and "proxy" not in out.lower().replace("nasai proxy target", "")
    assert f"CONNECT {target}:{port}" in proxy_log(proxy)
    assert web_clients(web, marker, port) == [address(transparent, "nas-proxy-tinyproxy")]


def test_rules_live_in_their_own_chains_once(transparent):
    rules = nat(transparent).splitlines()
    assert rules.count("-A OUTPUT -j NASAI_PROXY_OUTPUT") == 1
    assert rules.count("-A PREROUTING -i docker0 -j NASAI_PROXY") == 1
    assert rules.count("-A PREROUTING -i br-+ -j NASAI_PROXY") == 1
    proxy_ip = address(transparent, "nas-proxy-tinyproxy")
    uid = transparent.check_output("id -u redsocks")
    chain = [line for line in rules if line.startswith("-A NASAI_PROXY ")]
    assert chain == [
        "-A NASAI_PROXY -d 127.0.0.0/8 -j RETURN",
        "-A NASAI_PROXY -m addrtype --dst-type LOCAL -j RETURN",
        f"-A NASAI_PROXY -d {proxy_ip}/32 -j RETURN",
        "-A NASAI_PROXY -d 10.0.0.0/8 -j RETURN",
        "-A NASAI_PROXY -d 169.254.0.0/16 -j RETURN",
        "-A NASAI_PROXY -d 172.17.0.0/16 -j RETURN",
        "-A NASAI_PROXY -p tcp -m multiport --dports 80,443 -j REDIRECT --to-ports 12345",
    ]
    assert [line for line in rules if line.startswith("-A NASAI_PROXY_OUTPUT ")] == [
        f"-A NASAI_PROXY_OUTPUT -m owner --uid-owner {uid} -j RETURN",
        "-A NASAI_PROXY_OUTPUT -j NASAI_PROXY",
    ]
    # Docker's own rules in the same table are still there.
    assert "-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT" in rules
    assert any(line.startswith("-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE") for line in rules)


def test_redsocks_runs_http_connect_and_refuses_direct_connections(transparent, web):
    assert transparent.service("redsocks").is_running and transparent.service("redsocks").is_enabled
    conf = transparent.file("/etc/nasai/proxy/redsocks.conf")
    assert "type = http-connect;" in conf.content_string and conf.mode == 0o600
    assert transparent.socket("tcp://0.0.0.0:12345").is_listening
    # Only redirected connections reach it: a LAN client connecting directly is dropped.
    nas_ip = address(web, TRANSPARENT)
    assert web.run(f"timeout 3 bash -c '</dev/tcp/{nas_ip}/12345'").rc != 0
    assert web.run(f"timeout 3 bash -c '</dev/tcp/{address(web, 'nas-proxy-tinyproxy')}/8888'").rc == 0


def test_rules_are_restored_at_boot_without_duplicates(transparent):
    unit = transparent.service("nasai-proxy-iptables")
    assert unit.is_enabled
    before = firewall_without_counters(transparent)
    # What a reboot loses: our chains and jumps (Docker's rules stay, they are Docker's).
    transparent.check_output(
        "printf '*nat\\n-D OUTPUT -j NASAI_PROXY_OUTPUT\\n-D PREROUTING -i docker0 -j NASAI_PROXY\\n"
        "-D PREROUTING -i br-+ -j NASAI_PROXY\\n-F NASAI_PROXY\\n-F NASAI_PROXY_OUTPUT\\n-X NASAI_PROXY\\n"
        "-X NASAI_PROXY_OUTPUT\\nCOMMIT\\n*filter\\n-D INPUT -j NASAI_PROXY_INPUT\\n-F NASAI_PROXY_INPUT\\n"
        "-X NASAI_PROXY_INPUT\\nCOMMIT\\n' | iptables-restore --noflush")
    assert not any(ours(line) for line in firewall_without_counters(transparent))
    transparent.check_output("systemctl restart nasai-proxy-iptables")
    assert sorted(firewall_without_counters(transparent)) == sorted(before)
    transparent.check_output("systemctl restart nasai-proxy-iptables")
    assert sorted(firewall_without_counters(transparent)) == sorted(before)


def test_a_reboot_brings_the_transparent_proxy_back_by_itself(transparent, proxy, web):
    """A clean reboot of the NAS (a restart of its container, systemd shutting down and booting),
    no Ansible after it: the chains come back once each, redsocks runs, and a plain request of the
    host goes through the proxy again."""
    # Ours only: Docker's own rules name a new port for its DNS at each boot.
    before = [line for line in firewall_without_counters(transparent) if ours(line)]
    subprocess.run(["docker", "restart", "-t", "60", TRANSPARENT], check=True, capture_output=True)
    start = time.monotonic()
    while transparent.run("systemctl is-system-running").stdout.strip() not in ("running", "degraded"):
        assert time.monotonic() - start < 120, transparent.run("systemctl --failed --no-pager").stdout
        time.sleep(1)
    assert sorted(line for line in firewall_without_counters(transparent) if ours(line)) == sorted(before)
    assert transparent.service("redsocks").is_running
    marker = uuid.uuid4().hex
    out = transparent.check_output(f"env -i /usr/bin/curl -sS -D- -o /dev/null http://nas-proxy-web/?reboot={marker}")
    assert " 200 " in out.splitlines()[0]
    assert web_clients(web, marker) == [address(transparent, "nas-proxy-tinyproxy")]


def test_excluded_destination_goes_direct(converge, transparent, web):
    target = address(transparent, "nas-proxy-web")
    run = converge(TRANSPARENT, {"proxy_transparent_exclude": ["10.0.0.0/8", "172.17.0.0/16", f"{target}/32"],
                                 "proxy_verify": False})
    assert run.rc == 0, run.output
    try:
        marker = uuid.uuid4().hex
        transparent.check_output(f"env -i /usr/bin/curl -sS -o /dev/null http://nas-proxy-web/?direct={marker}")
        assert web_clients(web, marker) == [address(web, TRANSPARENT)]
        assert nat(transparent).count(f"-d {target}/32 -j RETURN") == 1
    finally:
        run = converge(TRANSPARENT)
        assert run.rc == 0, run.output
    assert f"-d {target}/32 -j RETURN" not in nat(transparent)


# --- both modes ----------------------------------------------------------------------------------

def test_check_mode_changes_nothing(converge):
    run = converge("nas", None, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(EXPLICIT)["changed"] == 0 and run.recap(TRANSPARENT)["changed"] == 0


def test_check_mode_on_a_new_host_changes_nothing(converge, explicit):
    """Transparent mode in check mode where redsocks and iptables rules do not exist yet."""
    before = firewall_without_counters(explicit), explicit.file("/etc/environment").content_string
    run = converge(EXPLICIT, {"proxy_mode": "transparent"}, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(EXPLICIT)["changed"] > 0
    assert (firewall_without_counters(explicit), explicit.file("/etc/environment").content_string) == before
    assert not explicit.package("redsocks").is_installed and not explicit.file("/etc/nasai/proxy").exists


def test_verify_fails_clearly_when_the_proxy_is_down(converge, proxy):
    proxy.check_output("systemctl stop tinyproxy")
    try:
        run = converge("nas", {"proxy_verify_timeout": 3})
    finally:
        proxy.check_output("systemctl start tinyproxy")
    assert run.rc != 0
    assert "Proxy verification failed: nothing answers on nas-proxy-tinyproxy:8888" in run.output
    assert run.recap(EXPLICIT)["failed"] == 1 and run.recap(TRANSPARENT)["failed"] == 1


@pytest.mark.parametrize("nas", [EXPLICIT, TRANSPARENT])
def test_verify_fails_clearly_when_the_url_is_unreachable(converge, nas):
    run = converge(nas, {"proxy_verify_url": "http://nas-proxy-web:81/", "proxy_verify_timeout": 5})
    assert run.rc != 0
    assert "Proxy verification failed: HEAD http://nas-proxy-web:81/ (proxy_verify_url)" in run.output
    assert "unreachable" in run.output


def test_credentials_reach_the_proxy_and_stay_out_of_logs(converge, explicit, proxy):
    secret = "s3cr3t.pass-1"
    creds = {"proxy_http": "http://nas-proxy-tinyproxy:8889", "proxy_username": "nasai"}
    try:
        run = converge(EXPLICIT, dict(creds, proxy_password="wrong-pass"))
        assert run.rc != 0 and "was refused with 40" in run.output
        assert "wrong-pass" not in run.output
        before = proxy_log(proxy, AUTH_LOG).count("verify-nas-proxy-explicit")
        run = converge(EXPLICIT, dict(creds, proxy_password=secret), "-vvv", "--diff")
        assert run.rc == 0, run.output
        assert secret not in run.output
        # Nowhere another user could read it: not in `systemctl show` (the engine's drop-in names a
        # root-only environment file), not in a command line, not in a world-readable file in /etc.
        assert secret not in explicit.check_output("systemctl show docker -p Environment -p EnvironmentFiles")
        assert explicit.file("/etc/systemd/system/docker.service.d/http-proxy.env").mode == 0o600
        assert secret in explicit.file("/etc/systemd/system/docker.service.d/http-proxy.env").content_string
        assert secret not in explicit.check_output("ps auxww")
        assert explicit.file("/etc/environment").mode == 0o600
        readable = explicit.run(f"find /etc -xdev -type f -perm -o=r -print0 | xargs -0 grep -lF -- '{secret}'")
        assert readable.stdout == "", readable.stdout
        assert proxy_log(proxy, AUTH_LOG).count("verify-nas-proxy-explicit") > before
        url = f"http://nasai:{secret}@nas-proxy-tinyproxy:8889"
        profile = explicit.file("/etc/profile.d/nasai-proxy.sh")
        assert profile.mode == 0o600 and f"export HTTPS_PROXY='{url}'" in profile.content_string
        assert explicit.file("/etc/apt/apt.conf.d/80nasai-proxy").mode == 0o600
        out = explicit.check_output("bash -lc 'curl -sS -o /dev/null -w %{http_code} http://nas-proxy-web/'")
        assert out == "200"
    finally:
        run = converge(EXPLICIT)
        assert run.rc == 0, run.output
    assert secret not in explicit.file("/etc/environment").content_string
    assert explicit.file("/etc/environment").mode == 0o644
    assert not explicit.file("/etc/systemd/system/docker.service.d/http-proxy.env").exists


def test_docker_client_config_keeps_other_keys(converge, explicit):
    path = "/root/.docker/config.json"
    config = json.loads(explicit.file(path).content_string)
    config["auths"] = {"registry.lan": {"auth": "dXNlcjpwYXNz"}}
    explicit.check_output(f"echo '{json.dumps(config)}' > {path}")
    run = converge(EXPLICIT, {"proxy_verify": False})
    assert run.rc == 0, run.output
    assert run.recap(EXPLICIT)["changed"] == 0
    run = converge(EXPLICIT, {"proxy_state": "absent"})
    assert run.rc == 0, run.output
    assert json.loads(explicit.file(path).content_string) == {"auths": config["auths"]}
    run = converge(EXPLICIT)
    assert run.rc == 0, run.output
    after = json.loads(explicit.file(path).content_string)
    assert after["auths"] == config["auths"] and after["proxies"]["default"]["httpProxy"] == PROXY_URL


BAD_INPUT = [
    ({"proxy_http": "nas-proxy-tinyproxy:8888"}, "proxy_http must be a URL like"),
    ({"proxy_http": "ftp://nas-proxy-tinyproxy:21"}, "proxy_http must be a URL like"),
    ({"proxy_http": "http://user:pw@nas-proxy-tinyproxy:8888"}, "proxy_http must be a URL like"),
    ({"proxy_https": "nas-proxy-tinyproxy:8888"}, "proxy_https must be empty or a URL"),
    ({"proxy_http": "http://nas-proxy-tinyproxy:70000"}, "proxy_http's port must be between 1 and 65535"),
    ({"proxy_https": "http://nas-proxy-tinyproxy:0"}, "proxy_https's port must be between 1 and 65535"),
    ({"proxy_transparent_redsocks_port": 65536}, "proxy_transparent_redsocks_port must be between 1 and 65535"),
    ({"proxy_transparent_ports": [80, 99999]}, "proxy_transparent_ports must be a non-empty list of ports"),
    ({"proxy_transparent_exclude": ["10.0.0.0/33"]}, "proxy_transparent_exclude must hold IPv4 addresses or CIDRs"),
    ({"proxy_transparent_exclude": ["300.1.2.0/24"]}, "proxy_transparent_exclude must hold IPv4 addresses or CIDRs"),
    ({"proxy_transparent_exclude": ["lan"]}, "proxy_transparent_exclude must hold IPv4 addresses or CIDRs"),
    ({"proxy_username": "nasai"}, "proxy_username and proxy_password must be set together"),
    ({"proxy_no_proxy": ["a.lan, b.lan"]}, "proxy_no_proxy entries must be single hosts"),
    ({"proxy_verify_url": "example.com"}, "proxy_verify_url must be an http:// or https:// URL"),
    ({"proxy_http": ""}, "proxy_http must be set when proxy_state is present"),
    ({"proxy_mode": "magic"}, "proxy_mode"),
    ({"proxy_transparent_chain": "nasai-proxy"}, "proxy_transparent_chain must be"),
    # The role removes its chains by name: Docker's and the built-in ones are refused.
    ({"proxy_transparent_chain": "DOCKER"}, "proxy_transparent_chain must not name one of Docker's chains"),
    ({"proxy_transparent_chain": "INPUT"}, "proxy_transparent_chain must not name a built-in chain"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_INPUT, ids=[m.split()[0] + str(i) for i, (_extra, m) in enumerate(BAD_INPUT)])
def test_bad_input_fails_before_any_change(converge, transparent, extra, message):
    files = "/etc/environment /etc/nasai/proxy/redsocks.conf /etc/nasai/proxy/iptables.rules"
    before = firewall_without_counters(transparent), transparent.check_output(f"md5sum {files}")
    run = converge(TRANSPARENT, dict({"proxy_transparent_redsocks_port": 12399,
                                      "proxy_transparent_exclude": ["10.0.0.0/8"]}, **extra))
    assert run.rc != 0
    assert message in run.said
    assert run.recap(TRANSPARENT)["changed"] == 0
    assert (firewall_without_counters(transparent), transparent.check_output(f"md5sum {files}")) == before


# --- removal (last: it leaves the hosts without a proxy) -----------------------------------------

def test_absent_removes_every_piece(converge, explicit, transparent, web):
    docker_rules = [line for line in firewall_without_counters(transparent) if not ours(line)]
    # Something of the admin's in the role's directory (or a proxy_config_dir set to /etc by a
    # typo): only the files the role made go, by name.
    transparent.check_output("echo mine > /etc/nasai/proxy/admin-notes.txt")
    run = converge("nas", {"proxy_state": "absent"})
    assert run.rc == 0, run.output
    assert transparent.check_output("ls -A /etc/nasai/proxy") == "admin-notes.txt"
    transparent.check_output("rm -r /etc/nasai/proxy")
    for host in (explicit, transparent):
        assert "nasai.stack proxy" not in host.file("/etc/environment").content_string
        docker_config = host.file("/root/.docker/config.json")
        assert not docker_config.exists or "proxies" not in json.loads(docker_config.content_string)
        for path in ("/etc/profile.d/nasai-proxy.sh", "/etc/apt/apt.conf.d/80nasai-proxy", "/etc/nasai/proxy",
                     "/etc/systemd/system/nasai-proxy-iptables.service",
                     "/etc/systemd/system/redsocks.service.d"):
            assert not host.file(path).exists, path
        # What the role recorded: its mode, and that transparent mode is gone.
        assert json.loads(host.file("/etc/ansible/facts.d/nasai_proxy.fact").content_string) == {
            "mode": "absent", "transparent_removed": True}
        assert not any(ours(line) for line in firewall_without_counters(host))
    # Nothing else was flushed: Docker's rules are all still there.
    assert firewall_without_counters(transparent) == docker_rules
    if DOCKER_DAEMON:
        assert explicit.check_output("docker info --format '[{{.HTTPProxy}}]'") == "[]"
    assert not transparent.service("redsocks").is_running
    assert not transparent.service("redsocks").is_enabled
    marker = uuid.uuid4().hex
    transparent.check_output(f"env -i /usr/bin/curl -sS -o /dev/null http://nas-proxy-web/?absent={marker}")
    assert web_clients(web, marker) == [address(web, TRANSPARENT)]
    run = converge("nas", {"proxy_state": "absent"})
    assert run.rc == 0 and run.recap(EXPLICIT)["changed"] == 0 and run.recap(TRANSPARENT)["changed"] == 0, run.output
