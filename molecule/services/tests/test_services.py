"""The services are real: every container healthy under its quotas (read from the cgroup files),
a chat completion and a token stream through the TLS proxy (HAProxy), users and roles enforced at
the proxy (keys, 401/403, per-user folders, rotation by reload, brute force slowed), no secret shown,
logs collected centrally, only the proxy's ports open, an OOM kill confined to the file manager, a
burst far above the AI core's capacity queued or shed (429/503 + Retry-After) without a restart,
and disabling a service or bad input never losing data or changing anything."""

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

PROJECT = "/container/data/services"
CA = f"{PROJECT}/tls/ca.crt"
CURL = f"curl -sS --cacert {CA}"
CONTAINERS = {"nasai-ai-1", "nasai-ai-2", "nasai-files", "nasai-logs", "nasai-proxy"}
MIB = 1 << 20
# The users converge.yml defines (bob's key is generated on the NAS: key(host, "bob")).
KEYS = {"root-admin": "admin-key-0123456789abcdef", "alice": "alice-key-0123456789abcdef",
        "robot": "robot-key-0123456789abcdef"}
USERS = [{"name": "root-admin", "role": "admin", "key": KEYS["root-admin"]},
         {"name": "alice", "role": "user", "key": KEYS["alice"]}, {"name": "bob", "role": "user"},
         {"name": "robot", "role": "api", "key": KEYS["robot"]}]


def bearer(name):
    return f"-H 'Authorization: Bearer {KEYS[name]}'"


def docker_json(host, *args):
    return json.loads(host.check_output("docker " + " ".join(args)))


def inspect(host, name):
    return docker_json(host, "inspect", name)[0]


def state(host):
    """{container name: (id, started at)} of the stack's containers."""
    out = host.check_output("docker ps -a --filter label=nasai.stack.service --format '{{.Names}}'")
    return {n: (inspect(host, n)["Id"], inspect(host, n)["State"]["StartedAt"]) for n in out.split()}


# The knobs read on each cgroup version: v1 has a hierarchy per controller, v2 one unified tree.
KNOBS = {
    1: {"memory": ("memory", "memory.limit_in_bytes"), "cpu": ("cpu", "cpu.cfs_quota_us cpu.cfs_period_us"),
        "cpuset": ("cpuset", "cpuset.cpus"), "pids": ("pids", "pids.max"), "oom": ("memory", "memory.oom_control")},
    2: {"memory": ("", "memory.max"), "cpu": ("", "cpu.max"), "cpuset": ("", "cpuset.cpus.effective"),
        "pids": ("", "pids.max"), "oom": ("", "memory.events")},
}


def cgroup_version(host):
    return 2 if host.check_output("stat -fc %T /sys/fs/cgroup") == "cgroup2fs" else 1


def cgroup(host, name, what):
    """One setting of an inner container's own cgroup directory (found by the container's id, named
    <id> by the cgroupfs driver or docker-<id>.scope by the systemd one), on cgroup v1 or v2:
    memory (bytes), cpu ((quota, period) in µs), cpuset, pids, oom (OOM kills so far)."""
    version = cgroup_version(host)
    controller, knobs = KNOBS[version][what]
    cid = inspect(host, name)["Id"]
    root = f"/sys/fs/cgroup/{controller}".rstrip("/")
    path = host.check_output(f"find {root}/ -type d \\( -name {cid} -o -name docker-{cid}.scope \\) -print -quit")
    assert path, f"no {controller or 'unified'} cgroup for {name}"
    values = [host.file(f"{path}/{knob}").content_string.strip() for knob in knobs.split()]
    if what == "cpu":
        quota, period = values if version == 1 else values[0].split()
        return int(quota), int(period)
    if what == "oom":
        return int(dict(line.split() for line in values[0].splitlines())["oom_kill"])
    return values[0]


def wait_for(check, timeout=30, every=0.5):
    """Poll check() until it returns something true; that value, or the last one after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def key(host, name):
    """A user's key: given in converge.yml, or generated and kept on the NAS."""
    return KEYS.get(name) or host.file(f"{PROJECT}/secrets/user-{name}.key").content_string.strip()


def chat(host, body, user="alice"):
    return host.run(f"{CURL} {bearer(user)} https://localhost/v1/chat/completions "
                    f"-H 'Content-Type: application/json' -d '{json.dumps(body)}'")


def test_all_services_run_healthy(host):
    names = set(host.check_output("docker ps --format '{{.Names}}'").split())
    assert CONTAINERS <= names
    for name in CONTAINERS:
        assert inspect(host, name)["State"]["Health"]["Status"] == "healthy", name


def test_chat_completion_through_the_tls_proxy(host):
    # --cacert makes curl verify the chain: the local CA signed the proxy's certificate.
    answer = json.loads(chat(host, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "ignore_eos": True}).stdout)
    # Random weights: the tokens are random bytes, possibly no printable text, but tokens they are.
    assert answer["usage"]["completion_tokens"] == 8
    assert answer["choices"][0]["message"]["role"] == "assistant"


STREAM = r"""
import http.client, json, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
conn = http.client.HTTPSConnection("localhost", 443, context=ctx, timeout=60)
conn.request("POST", "/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}],
             "max_tokens": 96, "ignore_eos": True, "stream": True}),
             {"Content-Type": "application/json", "Authorization": "Bearer " + sys.argv[2]})
resp = conn.getresponse()
# Read the chunked body by hand, to see how the proxy cut it: one HTTP chunk per write it made.
chunks, body = [], b""
while True:
    size = int(resp.fp.readline().split(b";")[0], 16)
    if size == 0:
        break
    chunks.append(size)
    body += resp.fp.read(size)
    resp.fp.readline()
events = [line[6:].decode() for line in body.split(b"\n") if line.startswith(b"data: ")]
print(json.dumps({"status": resp.status, "type": resp.getheader("Content-Type"), "chunks": chunks,
                  "events": events}))
"""


def test_stream_arrives_in_pieces_not_one_buffered_block(host):
    out = json.loads(host.check_output(f"python3 - {CA} {KEYS['alice']} <<'EOF'\n{STREAM}\nEOF"))
    assert out["status"] == 200 and out["type"].startswith("text/event-stream")
    events = out["events"]
    assert events[-1] == "[DONE]"
    tokens = [e for e in events[:-1] if json.loads(e)["choices"][0]["delta"].get("content")]
    assert len(tokens) >= 40
    # Unbuffered: the proxy forwards what the server wrote as it reads it, in many small chunks (two
    # events may arrive in one read when the server is quick); a buffering proxy collects them into
    # few 4-8 KiB blocks.
    chunks = sorted(out["chunks"])
    assert len(chunks) >= len(events) // 4, chunks
    assert chunks[len(chunks) // 2] < 1024, chunks


def test_requests_are_balanced_over_the_ai_replicas(host):
    def tasks(port):
        slots = json.loads(host.check_output(f"curl -s http://127.0.0.1:{port}/slots"))
        return max(s.get("id_task", -1) for s in slots)
    before = {port: tasks(port) for port in (8081, 8082)}
    for _attempt in range(6):
        assert chat(host, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}).rc == 0
    after = {port: tasks(port) for port in (8081, 8082)}
    assert all(after[p] > before[p] for p in after), (before, after)


# The local CA's key stays on the controller (services_tls_ca_key_path: next to the inventory).
CA_KEY = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "inventory" / ".nasai-ca" / "nas-services-ca.key"


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, check=False)


def test_the_ca_key_stays_off_the_nas_and_the_ca_signs_only_the_stack_s_names(host, tmp_path):
    assert not host.file(f"{PROJECT}/tls/ca.key").exists
    keys = host.run(f"grep -rl 'PRIVATE KEY' {PROJECT}").stdout.split()
    assert keys == [f"{PROJECT}/config/proxy/tls/server.key"], keys
    assert CA_KEY.is_file() and CA_KEY.stat().st_mode & 0o777 == 0o600
    ca = tmp_path / "ca.crt"
    ca.write_text(host.file(CA).content_string)
    # With the CA's own key, a certificate for another site does not verify: the CA is constrained.
    results = {}
    for name in ("nas-services", "bank.example.com"):
        key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
                "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}", "-out", str(tmp_path / "req.csr"))
        openssl("x509", "-req", "-in", str(tmp_path / "req.csr"), "-CA", str(ca), "-CAkey", str(CA_KEY),
                "-days", "2", "-copy_extensions", "copy", "-out", str(crt))
        results[name] = openssl("verify", "-CAfile", str(ca), str(crt))
    assert results["nas-services"].returncode == 0, results["nas-services"].stdout + results["nas-services"].stderr
    assert results["bank.example.com"].returncode != 0
    assert "permitted subtree violation" in results["bank.example.com"].stdout + results["bank.example.com"].stderr


def served_certificate_end(host):
    """notAfter of the certificate the proxy serves on 443."""
    return host.check_output("openssl s_client -connect localhost:443 -servername localhost </dev/null 2>/dev/null "
                             "| openssl x509 -noout -enddate").split("=", 1)[1]


def test_a_certificate_about_to_expire_is_renewed_on_the_next_run(converge, host, nas_name, tmp_path):
    crt_path = f"{PROJECT}/config/proxy/tls/server.crt"
    key = tmp_path / "server.key"
    key.write_text(host.file(f"{PROJECT}/config/proxy/tls/server.key").content_string)
    key.chmod(0o600)
    current, ca = tmp_path / "current.crt", tmp_path / "ca.crt"
    current.write_text(host.file(crt_path).content_string)
    ca.write_text(host.file(CA).content_string)
    # The same names and key, signed by the same CA, valid for one more day only.
    req = openssl("x509", "-x509toreq", "-in", str(current), "-signkey", str(key), "-copy_extensions", "copy")
    short = openssl("x509", "-req", "-CA", str(ca), "-CAkey", str(CA_KEY), "-days", "1", "-copy_extensions", "copy",
                    stdin=req.stdout)
    assert short.returncode == 0, short.stderr
    host.check_output(f"cat > {crt_path} <<'EOF'\n{short.stdout}EOF")
    host.check_output("docker restart nasai-proxy")
    assert wait_for(lambda: inspect(host, "nasai-proxy")["State"]["Health"]["Status"] == "healthy", timeout=60)
    ending = served_certificate_end(host)
    run = converge(nas_name)
    assert run.rc == 0, run.output[-3000:]
    assert run.recap(nas_name)["changed"] > 0
    renewed = host.check_output(f"openssl x509 -in {crt_path} -noout -checkend {300 * 86400} && echo fine")
    assert renewed.endswith("fine")
    assert wait_for(lambda: served_certificate_end(host) != ending, timeout=30)
    # The renewed certificate still verifies against the same CA.
    assert host.run(f"openssl verify -CAfile {CA} {crt_path}").rc == 0


@pytest.mark.parametrize(("args", "accepted"), [
    ("-tls1_1", False),
    # CBC ciphers the server's (ECDSA) key could do, which OpenSSL's own defaults still allow.
    ("-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA", False),
    ("-tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384", False),
    ("-tls1_2", True),
    ("-tls1_3", True),
])
def test_only_modern_tls_is_offered(host, args, accepted):
    out = host.run(f"openssl s_client -connect localhost:443 {args} </dev/null 2>&1")
    assert ("Cipher is (NONE)" not in out.stdout and out.rc == 0) == accepted, out.stdout[-1500:]


def test_http_redirects_to_https(host):
    out = host.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost/v1/models")
    assert out == "301 https://localhost/v1/models"


def files_status(host, user, method, path, upload=None):
    """HTTP status of one file manager request through the proxy as `user` (None: no key)."""
    auth = f"-H 'Authorization: Bearer {key(host, user)}'" if user else ""
    body = f"-T {upload}" if upload else ""
    return host.check_output(f"{CURL} -o /dev/null -w '%{{http_code}}' -X {method} {auth} {body} "
                             f"'https://localhost/files/{path}'")


def test_file_manager_gives_each_user_their_own_folder(host):
    """copyparty's accounts are services_users: the proxy names the user, copyparty trusts it only
    from the proxy; a user reaches their own folder, an admin every folder, nobody else's."""
    name = f"probe-{time.time_ns()}.txt"
    files = f"{PROJECT}/data/files/files"
    assert files_status(host, None, "PUT", f"bob/{name}", "/etc/hostname") == "401"
    assert files_status(host, "bob", "PUT", f"bob/{name}", "/etc/hostname") in ("200", "201")
    assert host.file(f"{files}/bob/{name}").content_string == host.file("/etc/hostname").content_string
    assert files_status(host, "bob", "GET", f"bob/{name}", None) == "200"
    assert files_status(host, "root-admin", "GET", f"bob/{name}", None) == "200"
    # Another user's folder: neither read nor write.
    assert files_status(host, "alice", "GET", f"bob/{name}", None) == "403"
    assert files_status(host, "alice", "PUT", f"bob/x-{name}", "/etc/hostname") not in ("200", "201")
    assert not host.file(f"{files}/bob/x-{name}").exists
    # An API key is not a file manager login.
    assert files_status(host, "robot", "GET", "", None) == "403"
    # A forged user name, straight to copyparty on loopback (without the proxy's secret header).
    direct = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'X-Nasai-User: root-admin' "
                               f"http://127.0.0.1:8090/files/bob/{name}")
    assert direct == "403"
    listing = json.loads(host.check_output(f"{CURL} -f {bearer('alice')} 'https://localhost/files/?ls'"))
    assert [d["href"] for d in listing["dirs"]] == ["alice/"] and listing["acct"] == "alice"


def status_of(host, user, path, method="GET", auth=None):
    """(status, WWW-Authenticate) of one request through the proxy as `user` (None: no key)."""
    header = auth or (f"-H 'Authorization: Bearer {key(host, user)}'" if user else "")
    out = host.check_output(f"{CURL} -o /dev/null -D - -X {method} {header} 'https://localhost{path}'")
    lines = out.splitlines()
    challenge = next((line.split(":", 1)[1].strip() for line in lines
                      if line.lower().startswith("www-authenticate:")), None)
    return int(lines[0].split()[1]), challenge


@pytest.mark.parametrize(("user", "method", "path", "expected"), [
    (None, "GET", "/v1/models", 401),
    (None, "GET", "/health", 401),
    (None, "GET", "/", 401),
    ("alice", "GET", "/v1/models", 200),
    ("alice", "GET", "/", 200),
    ("alice", "GET", "/props", 200),
    ("alice", "POST", "/props", 403),
    ("alice", "GET", "/slots", 403),
    ("bob", "GET", "/slots", 403),
    ("root-admin", "GET", "/slots", 200),
    # llama-server's Prometheus metrics (--metrics): admins only.
    ("alice", "GET", "/metrics", 403),
    ("root-admin", "GET", "/metrics", 200),
    ("robot", "GET", "/v1/models", 200),
    ("robot", "GET", "/health", 200),
    ("robot", "GET", "/", 403),
    ("robot", "GET", "/slots", 403),
])
def test_each_role_reaches_what_it_may_and_no_key_reaches_nothing(host, user, method, path, expected):
    status, challenge = status_of(host, user, path, method)
    assert status == expected
    if expected == 401:
        # A browser asks for the user's name and key.
        assert challenge and challenge.startswith("Basic realm=")


def test_a_browser_signs_in_with_the_name_and_key(host):
    assert status_of(host, None, "/", auth=f"-u alice:{KEYS['alice']}")[0] == 200
    # Another user's name with that key, or the right name with a wrong key: refused.
    assert status_of(host, None, "/", auth=f"-u bob:{KEYS['alice']}")[0] == 401
    assert status_of(host, None, "/", auth="-u alice:not-the-key-0123456789abc")[0] == 401
    # The proxy's own health check needs no key.
    assert host.check_output(f"{CURL} https://localhost/healthz") == "ok"


def test_a_generated_key_is_kept_on_the_nas_for_root_only(host):
    path = host.file(f"{PROJECT}/secrets/user-bob.key")
    assert path.user == "root" and path.mode == 0o600
    assert len(path.content_string.strip()) >= 32
    assert status_of(host, "bob", "/v1/models")[0] == 200
    # The proxy's map holds hashes, never a key.
    users_map = host.file(f"{PROJECT}/auth/users.map")
    assert users_map.mode == 0o600
    assert not any(k in users_map.content_string for k in [*KEYS.values(), key(host, "bob")])


WRONG_KEYS = (f"for i in $(seq 30); do curl -s --cacert {CA} --interface 127.0.0.2 -o /dev/null -w '%{{http_code}} ' "
              "-H \"Authorization: Bearer wrong-key-$i-0123456789abcdef\" https://127.0.0.1/v1/models; done")


def test_wrong_keys_are_slowed_down_per_address(host):
    """Past services_auth_fail_limit (20 in converge.yml) wrong keys a minute, the proxy answers that
    address 429, even with a right key, until it slows down; other addresses are not affected."""
    codes = host.check_output(WRONG_KEYS).split()
    assert set(codes) == {"401", "429"}, codes
    assert codes.index("429") >= 20 and set(codes[codes.index("429"):]) == {"429"}, codes
    right = host.check_output(f"{CURL} --interface 127.0.0.2 -o /dev/null -w '%{{http_code}}' {bearer('alice')} "
                              "https://127.0.0.1/v1/models")
    assert right == "429"
    assert status_of(host, "alice", "/v1/models")[0] == 200


@pytest.mark.parametrize(("name", "memory", "cpus", "cpuset", "pids"), [
    # 2 slots: 4 requests in flight, --threads-http 10; + cpp-httplib's 1024 extra threads + 2 + 64.
    ("nasai-ai-1", 256 * MIB, 150000, "0-1", 1100),
    ("nasai-ai-2", 256 * MIB, 150000, "0-1", 1100),
    ("nasai-files", 64 * MIB, 50000, "1", 100),
    ("nasai-proxy", 128 * MIB, 100000, None, 128),
])
def test_quotas_are_in_the_cgroup_files(host, name, memory, cpus, cpuset, pids):
    # No cpuset asked for: every CPU of the NAS.
    cpuset = cpuset or f"0-{int(host.check_output('nproc')) - 1}"
    assert int(cgroup(host, name, "memory")) == memory
    assert cgroup(host, name, "cpu") == (cpus, 100000)
    assert cgroup(host, name, "cpuset") == cpuset
    assert int(cgroup(host, name, "pids")) == pids
    if name.startswith("nasai-ai"):
        # llama.cpp's prompt cache (8 GiB by default) is off: it grew the core past its quota in the soak.
        assert "LLAMA_ARG_CACHE_RAM=0" in inspect(host, name)["Config"]["Env"]
    hardening = inspect(host, name)["HostConfig"]
    assert "no-new-privileges:true" in hardening["SecurityOpt"] and hardening["ReadonlyRootfs"]


def test_services_run_as_non_root_where_possible(host):
    for name in ("nasai-ai-1", "nasai-files", "nasai-logs"):
        uid = host.check_output(f"docker exec {name} id -u")
        assert uid != "0", name
    # HAProxy's master binds 80/443 as root (capabilities: NET_BIND_SERVICE, SETUID, SETGID, KILL only);
    # its worker, which handles every connection, runs as nobody.
    procs = [line.split(None, 3) for line in
             host.check_output("docker top nasai-proxy -o pid,ppid,uid,args").splitlines()[1:]]
    # Workers: the processes whose parent (the master) is in the container too.
    workers = [p for p in procs if p[1] in {q[0] for q in procs} and "haproxy" in p[3]]
    assert workers and all(p[2] == "65534" for p in workers), procs
    caps = inspect(host, "nasai-proxy")["HostConfig"]
    assert caps["CapDrop"] == ["ALL"]
    # KILL: the master stops the old worker on a reload.
    assert {c.removeprefix("CAP_") for c in caps["CapAdd"]} == {"NET_BIND_SERVICE", "SETUID", "SETGID", "KILL"}


def listening_outside_loopback(host):
    """{(protocol, port)} of the sockets the NAS listens on beyond loopback.

    Left out: HAProxy's log sender, the one unconnected UDP socket the kernel binds to an ephemeral
    port for the datagrams it sends to the collector on 127.0.0.1 (HAProxy never reads from it).
    """
    low, high = (int(n) for n in host.file("/proc/sys/net/ipv4/ip_local_port_range").content_string.split())
    listening = set()
    for line in host.check_output("ss -Htlnup").splitlines():
        fields = line.split()
        address, port = fields[4].rsplit(":", 1)
        log_sender = fields[0] == "udp" and low <= int(port) <= high and '"haproxy"' in line
        if not address.startswith(("127.", "[::1]")) and not log_sender:
            listening.add((fields[0], int(port)))
    return listening


def test_only_the_proxy_ports_listen_outside_loopback(host):
    assert listening_outside_loopback(host) == {("tcp", 80), ("tcp", 443)}


# A client on the scenario network probes the NAS's TCP ports (all of them, or a list): "open"
# (connected), "dropped" (no answer within 1.5 s: a firewall DROP); a refused port is neither.
SCAN = r"""
import asyncio, json, sys
HOST, PORTS = sys.argv[1], sys.argv[2]
ports = range(1, 65536) if PORTS == "all" else [int(p) for p in PORTS.split(",")]

async def probe(port, gate):
    async with gate:
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1.5)
            writer.close()
            return port, "open"
        except asyncio.TimeoutError:
            return port, "dropped"
        except OSError:
            return port, "refused"

async def main():
    gate = asyncio.Semaphore(500)
    found = await asyncio.gather(*(probe(port, gate) for port in ports))
    print(json.dumps({kind: [p for p, k in found if k == kind] for kind in ("open", "dropped")}))

asyncio.run(main())
"""
# converge.yml allows 192.168.208.128/25 of the scenario network (192.168.208.0/24).
ALLOWED_CLIENT, DENIED_CLIENT = "192.168.208.200", "192.168.208.50"


def scan(nas_name, client, ports="all"):
    """What a client container at address `client` on the scenario network finds on the NAS."""
    nas = json.loads(subprocess.run(["docker", "inspect", nas_name], capture_output=True, text=True,
                                    check=True).stdout)[0]
    address = nas["NetworkSettings"]["Networks"]["nasai-services"]["IPAddress"]
    proc = subprocess.run(["docker", "run", "--rm", "--network", "nasai-services", "--ip", client,
                           "--entrypoint", "python3", "nasai/nas:bookworm", "-c", SCAN, address, ports],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout)


def test_only_the_allowed_network_reaches_the_proxy_and_no_other_port_answers(host, nas_name):
    """Host network mode: from the allowed range only 80 and 443 answer; from elsewhere those two
    are dropped, and every other port of the 65535 is closed either way."""
    assert scan(nas_name, ALLOWED_CLIENT) == {"open": [80, 443], "dropped": []}
    assert scan(nas_name, DENIED_CLIENT) == {"open": [], "dropped": [80, 443]}


def test_the_firewall_comes_back_at_boot(host, nas_name):
    """The unit that restores the chains at boot brings them back after they were flushed away."""
    assert host.service("nasai-services-firewall.service").is_enabled
    host.check_output("iptables -D INPUT -j NASAI_EXPOSE && iptables -F NASAI_EXPOSE && iptables -X NASAI_EXPOSE")
    assert scan(nas_name, DENIED_CLIENT, "443") == {"open": [443], "dropped": []}
    host.check_output("systemctl restart nasai-services-firewall.service")
    assert scan(nas_name, DENIED_CLIENT, "443") == {"open": [], "dropped": [443]}
    # Restored exactly as the role left it: a rerun finds nothing to change.
    assert "-A INPUT -j NASAI_EXPOSE" in host.check_output("iptables -S INPUT")


def test_logs_are_collected_centrally(host):
    chat(host, {"messages": [{"role": "user", "content": "log me"}], "max_tokens": 2})
    path = f"{PROJECT}/data/logs/nasai-proxy.log"
    # The log travels over UDP syslog: poll for it.
    assert wait_for(lambda: "POST /v1/chat/completions" in host.file(path).content_string, timeout=15)
    for name in ("nasai-ai-1", "nasai-ai-2", "nasai-files"):
        assert host.file(f"{PROJECT}/data/logs/{name}.log").size > 0, name


ECHO = r"""
import http.server, json
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"xff": self.headers.get_all("X-Forwarded-For"), "real": self.headers.get("X-Real-IP"),
                           "auth": self.headers.get("Authorization"), "user": self.headers.get_all("X-Nasai-User")})
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 8090), Echo).serve_forever()
"""


def test_backends_get_the_address_and_user_the_proxy_saw_never_a_key(host):
    """A client's own X-Forwarded-For or user name never reaches a backend, nor does its key: an
    echo server stands in for the file manager on its port for a moment and shows what the proxy sent."""
    host.check_output("docker stop nasai-files")
    try:
        host.check_output(f"cat > /tmp/nasai-echo.py <<'EOF'\n{ECHO}\nEOF")
        host.check_output("(setsid python3 /tmp/nasai-echo.py >/dev/null 2>&1 &)")
        answer = wait_for(lambda: host.run(f"{CURL} -f -H 'X-Forwarded-For: 6.6.6.6' {bearer('alice')} "
                                           f"-H 'X-Real-IP: 6.6.6.6' -H 'X-Nasai-User: root-admin' "
                                           f"https://localhost/files/xff").stdout)
        assert json.loads(answer) == {"xff": ["127.0.0.1"], "real": "127.0.0.1", "auth": None,
                                      "user": ["alice"]}, answer
    finally:
        host.run("pkill -f /tmp/nasai-echo.py")
        host.check_output("docker start nasai-files")
        assert wait_for(lambda: inspect(host, "nasai-files")["State"]["Health"]["Status"] == "healthy", timeout=60)


def test_memory_hog_in_the_file_manager_is_oom_killed_alone(host):
    before = state(host)
    kills = cgroup(host, "nasai-files", "oom")
    # The hog makes itself the OOM killer's first choice, so the file manager itself survives.
    hog = host.run("docker exec nasai-files python3 -c \"open('/proc/self/oom_score_adj', 'w').write('1000'); "
                   "b = b'x' * (200 << 20)\"")
    assert hog.rc == 137, hog  # SIGKILL from the OOM killer
    assert cgroup(host, "nasai-files", "oom") == kills + 1
    assert state(host) == before, "no container was restarted"
    for name in CONTAINERS:
        assert wait_for(lambda n=name: inspect(host, n)["State"]["Health"]["Status"] == "healthy"), name


def test_an_unhealthy_container_is_restarted_by_autoheal(host):
    """A replica whose process hangs (stopped from the NAS) fails its health check; the engine only
    marks it unhealthy, and the autoheal timer restarts it."""
    timer = host.service("nasai-autoheal.timer")
    assert timer.is_enabled and timer.is_running
    before = inspect(host, "nasai-ai-2")["State"]
    host.check_output(f"kill -STOP {before['Pid']}")
    try:
        assert wait_for(lambda: inspect(host, "nasai-ai-2")["State"]["Health"]["Status"] == "unhealthy", timeout=90)
        assert wait_for(lambda: inspect(host, "nasai-ai-2")["State"]["StartedAt"] != before["StartedAt"], timeout=90)
    finally:
        host.run(f"kill -CONT {before['Pid']}")
    assert wait_for(lambda: inspect(host, "nasai-ai-2")["State"]["Health"]["Status"] == "healthy", timeout=90)
    assert "restarted nasai-ai-2: its health check failed" in host.check_output("journalctl -t nasai-autoheal --no-pager")


# A burst far above the AI core's capacity (2 replicas x 4 requests in flight + a queue of 32, set
# in converge.yml): CLIENTS clients on loopback, each sending chat completions one after another
# over new TLS connections until DURATION seconds are over. Prints each response's status and
# Retry-After header, the errors, and the chat answered right after.
BURST = r"""
import asyncio, json, ssl, sys, time
CLIENTS, DURATION = int(sys.argv[2]), float(sys.argv[3])
ctx = ssl.create_default_context(cafile=sys.argv[1])
body = json.dumps({"messages": [{"role": "user", "content": "burst"}], "max_tokens": 8}).encode()
request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           b"Authorization: Bearer %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
           % (sys.argv[4].encode(), len(body))) + body
results, errors = [], []

async def one():
    reader, writer = await asyncio.open_connection("127.0.0.1", 443, ssl=ctx, server_hostname="localhost")
    writer.write(request)
    raw = await reader.read()
    writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:])}
    return int(head[0].split()[1]), headers.get("retry-after")

async def client(deadline):
    while time.monotonic() < deadline:
        try:
            results.append(await asyncio.wait_for(one(), 120))
        except Exception as exc:
            errors.append(repr(exc))

async def main():
    deadline = time.monotonic() + DURATION
    await asyncio.gather(*(client(deadline) for _ in range(CLIENTS)))

asyncio.run(main())
print(json.dumps({"results": results, "errors": errors[:20], "error_count": len(errors)}))
"""


def restarts(host):
    """{container: (restart count, started at)} of the stack's running containers."""
    names = host.check_output("docker ps --filter label=nasai.stack.service --format '{{.Names}}'").split()
    return {n: (inspect(host, n)["RestartCount"], inspect(host, n)["State"]["StartedAt"]) for n in names}


def test_burst_above_capacity_is_queued_or_shed_never_a_crash(host):
    before = restarts(host)
    out = json.loads(host.check_output(f"python3 - {CA} 300 4 {KEYS['alice']} <<'EOF'\n{BURST}\nEOF"))
    statuses = [status for status, _retry in out["results"]]
    assert out["error_count"] == 0, out["errors"]
    # Every answer is a completion or a deliberate refusal that says when to come back.
    assert set(statuses) <= {200, 429, 503}, sorted(set(statuses))
    refused = [(status, retry) for status, retry in out["results"] if status != 200]
    assert all(retry == "5" for _status, retry in refused), refused[:10]
    # The burst did reach past the queue (some shed) and the queue did serve (some answered).
    assert statuses.count(200) > 0 and statuses.count(429) > 0, {s: statuses.count(s) for s in set(statuses)}
    assert restarts(host) == before, "a container restarted under the burst"
    # Right after, a normal chat is answered (polled: no fixed wait).
    for _attempt in range(30):
        answer = chat(host, {"messages": [{"role": "user", "content": "still there?"}], "max_tokens": 4,
                             "ignore_eos": True})
        if answer.rc == 0 and '"completion_tokens":4' in answer.stdout.replace(" ", ""):
            break
        time.sleep(1)
    else:
        raise AssertionError(answer.stdout + answer.stderr)
    assert restarts(host) == before


# A streamed completion sent while every AI slot is busy and requests wait in the proxy's queue:
# BLOCKERS long completions first (more than the 2 x 4 in flight, fewer than the queue of 32),
# then one stream, marked in its query string so the proxy's log line can be found.
QUEUED_STREAM = r"""
import asyncio, json, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
BLOCKERS = int(sys.argv[2])

async def post(body, path="/v1/chat/completions", sent=None):
    reader, writer = await asyncio.open_connection("127.0.0.1", 443, ssl=ctx, server_hostname="localhost")
    data = json.dumps(body).encode()
    writer.write(b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                 % (path.encode(), sys.argv[3].encode(), len(data)) + data)
    await writer.drain()
    if sent is not None:
        sent.release()
    raw = await reader.read()
    writer.close()
    head, _sep, rest = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest.decode("latin-1")

async def main():
    long = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 100, "ignore_eos": True}
    # The stream goes as soon as every blocker's request is out (not after a fixed pause): the tiny
    # test model answers a blocker in tens of milliseconds, so a pause let the queue drain first.
    sent = asyncio.Semaphore(0)
    blockers = [asyncio.ensure_future(post(long, sent=sent)) for _n in range(BLOCKERS)]
    for _n in range(BLOCKERS):
        await sent.acquire()
    stream = await post(dict(long, stream=True), "/v1/chat/completions?nasai=queued-stream")
    done = await asyncio.gather(*blockers)
    print(json.dumps({"stream": stream, "blockers": [status for status, _body in done]}))

asyncio.run(main())
"""


def test_a_queued_stream_starts_when_a_slot_frees(host):
    out = json.loads(host.check_output(f"python3 - {CA} 30 {KEYS['alice']} <<'EOF'\n{QUEUED_STREAM}\nEOF"))
    status, body = out["stream"]
    assert status == 200, body[:500]
    events = [line for line in body.splitlines() if line.startswith("data: ")]
    assert len(events) > 10 and events[-1] == "data: [DONE]", body[-500:]
    assert set(out["blockers"]) == {200}, out["blockers"]
    # The proxy's log line for the stream: %TR/%Tw/%Tc/%Tr/%Ta, Tw the milliseconds it waited in
    # the queue for a free slot.
    path = f"{PROJECT}/data/logs/nasai-proxy.log"
    line = wait_for(lambda: next((entry for entry in host.file(path).content_string.splitlines()
                                  if "queued-stream" in entry), None), timeout=15)
    assert line, "no proxy log line for the stream"
    timers = next(field for field in line.split() if re.fullmatch(r"-?\d+/-?\d+/-?\d+/-?\d+/\+?\d+", field))
    assert int(timers.split("/")[1]) > 0, line


def test_check_mode_changes_nothing(converge, nas_name):
    run = converge(nas_name, None, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(nas_name)["changed"] == 0


# A client that asks the proxy for the model list without pause, 4 at once, each request on a new
# connection, until /tmp/nasai-load.stop exists; it counts answers by status and transport errors.
STEADY_LOAD = r"""
import json, os, ssl, sys, threading, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
counts, errors, lock = {}, [], threading.Lock()

def client():
    while not os.path.exists("/tmp/nasai-load.stop"):
        req = urllib.request.Request("https://localhost/v1/models", headers={"Authorization": "Bearer " + sys.argv[2]})
        try:
            status = urllib.request.urlopen(req, context=ctx, timeout=30).status
        except urllib.error.HTTPError as error:
            status = error.code
        except Exception as exc:  # refused, reset, cut: what a restart would cause
            with lock:
                errors.append(repr(exc))
            continue
        with lock:
            counts[status] = counts.get(status, 0) + 1

threads = [threading.Thread(target=client) for _n in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"counts": counts, "errors": errors[:10], "error_count": len(errors)}))
"""


def under_load(host, action, script=STEADY_LOAD, timeout=60):
    """Run action() while a load script (STEADY_LOAD unless said) runs on the NAS; return (action's
    result, the load's counts), waiting at most `timeout` s for the load to report."""
    host.check_output("rm -f /tmp/nasai-load.stop /tmp/nasai-load.json")
    host.check_output(f"cat > /tmp/nasai-load.py <<'EOF'\n{script}\nEOF")
    host.check_output(f"nohup python3 /tmp/nasai-load.py {CA} {KEYS['alice']} > /tmp/nasai-load.json 2>&1 &")
    try:
        time.sleep(2)
        result = action()
        time.sleep(3)
    finally:
        host.check_output("touch /tmp/nasai-load.stop")
    assert wait_for(lambda: host.file("/tmp/nasai-load.json").size > 0, timeout=timeout)
    return result, json.loads(host.file("/tmp/nasai-load.json").content_string)


def test_disabling_a_service_keeps_its_data_and_reloads_the_proxy_without_a_failed_request(converge, host, nas_name):
    """The file manager disabled, then enabled again: its route leaves and comes back by a reload of
    the proxy (its container never restarts), under a steady load that sees no failed request."""
    data = f"{PROJECT}/data/files/files/keep.txt"
    host.check_output(f"echo precious > {data}")
    before = state(host)
    overrides = {"files": {"enabled": False, "cpuset_cpus": "1", "pids_limit": 100}}
    run, load = under_load(host, lambda: converge(nas_name, {"services_overrides": overrides}))
    assert run.rc == 0, run.output
    after = state(host)
    assert "nasai-files" not in after
    assert host.file(data).content_string == "precious\n"
    assert "/files/" not in host.file(f"{PROJECT}/config/proxy/haproxy.cfg").content_string
    # The route is gone (what was /files/ now reaches the AI core, which knows no such page) ...
    assert wait_for(lambda: status_of(host, "root-admin", "/files/?ls")[0] == 404, timeout=10)
    # ... by a reload: no container restarted, the proxy least of all, and no request failed.
    for name in ("nasai-proxy", "nasai-ai-1", "nasai-ai-2", "nasai-logs"):
        assert after[name] == before[name], name
    assert load["error_count"] == 0 and set(load["counts"]) == {"200"}, load
    run, load = under_load(host, lambda: converge(nas_name))
    assert run.rc == 0, run.output
    assert state(host)["nasai-proxy"] == before["nasai-proxy"]
    assert load["error_count"] == 0 and set(load["counts"]) == {"200"}, load
    listing = wait_for(lambda: host.run(f"{CURL} -f {bearer('root-admin')} 'https://localhost/files/?ls'").stdout,
                       timeout=30)
    assert "keep.txt" in listing


def test_file_manager_data_of_another_owner_is_handed_over_only_when_asked(converge, host, nas_name):
    """Data left by a release that ran the file manager as 1000:1000 (the NAS's first user): with
    services_files_uid_gid unset the file manager runs as that owner; set to another uid, the run
    stops naming services_files_migrate_owner and nothing changes; with it, every file is handed
    over and the file manager runs as the new uid. A rerun changes nothing."""
    data = f"{PROJECT}/data/files"
    note = f"{data}/files/old/note.txt"
    host.check_output(f"mkdir -p {data}/files/old && echo kept > {note} && chown -R 1000:1000 {data}")
    try:
        run = converge(nas_name, {"services_files_uid_gid": None})
        assert run.rc == 0, run.output[-3000:]
        assert inspect(host, "nasai-files")["Config"]["User"] == "1000:1000"
        assert (host.file(note).uid, host.file(data).uid) == (1000, 1000)

        before = state(host)
        run = converge(nas_name)  # converge.yml's services_files_uid_gid: 10002:10002
        assert run.rc != 0
        assert (f"but {data} and the files in it belong to 1000:1000: set services_files_migrate_owner: true"
                in run.said), run.output[-3000:]
        assert state(host) == before and host.file(note).uid == 1000

        run = converge(nas_name, {"services_files_migrate_owner": True})
        assert run.rc == 0, run.output[-3000:]
        assert host.check_output(f"find {data} -not -user 10002 -o -not -group 10002 | wc -l") == "0"
        assert host.file(note).content_string == "kept\n"
        assert inspect(host, "nasai-files")["Config"]["User"] == "10002:10002"
        assert wait_for(lambda: inspect(host, "nasai-files")["State"]["Health"]["Status"] == "healthy", timeout=60)
        rerun = converge(nas_name)
        assert rerun.rc == 0 and rerun.recap(nas_name)["changed"] == 0, rerun.output[-3000:]
    finally:
        host.run(f"rm -rf {data}/files/old && chown -R 10002:10002 {data}")
        run = converge(nas_name)
        assert run.rc == 0, run.output[-3000:]


def test_rotated_and_removed_keys_reload_the_proxy_alone_and_no_secret_shows(converge, host, nas_name):
    """A changed key works and the old one stops, a removed user's key stops, after the rerun: the
    proxy re-reads its map (a signal), no container restarts, the AI core least of all. No key shows
    in that run's -vvv --diff output, in any process's command line or in a world-readable file."""
    new_key = "alice-rotated-key-0123456789abcdef"
    users = [dict(u, key=new_key) if u["name"] == "alice" else u for u in USERS if u["name"] != "robot"]
    before = state(host)
    secrets = [*KEYS.values(), new_key, key(host, "bob"),
               host.file(f"{PROJECT}/secrets/files_idp_header").content_string.strip()]
    try:
        run = converge(nas_name, {"services_users": users}, "-vvv", "--diff")
        assert run.rc == 0, run.output[-3000:]
        # The reload is a signal: the new worker takes over within moments of the run's end.
        assert wait_for(lambda: status_of(host, None, "/v1/models",
                                          auth=f"-H 'Authorization: Bearer {new_key}'")[0] == 200, timeout=10)
        assert status_of(host, "alice", "/v1/models")[0] == 401
        assert status_of(host, "robot", "/v1/models")[0] == 401
        assert status_of(host, "root-admin", "/slots")[0] == 200
        assert state(host) == before, "a container was restarted"
        shown = [s for s in secrets if s in run.output]
        assert not shown, f"{len(shown)} secret(s) in the output of converge -vvv --diff"
        assert not [s for s in secrets if s in host.check_output("ps auxww")]
        # The patterns for grep -f, in a file only root reads.
        host.check_output(f"umask 077 && printf '%s\\n' {' '.join(secrets)} > /root/nasai-secrets")
        readable = host.run("find /etc /container/data -xdev -type f -perm -o=r -print0 "
                            "| xargs -0 grep -lF -f /root/nasai-secrets")
        assert readable.stdout == "", readable.stdout
    finally:
        host.run("rm -f /root/nasai-secrets")
        run = converge(nas_name)
        assert run.rc == 0, run.output[-3000:]
    assert status_of(host, "alice", "/v1/models")[0] == 200


IMAGES = {"llama_cpp": "nasai/llama-server:test", "copyparty": "nasai/svc-copyparty:test",
          "nginx": "nasai/svc-nginx:test", "haproxy": "nasai/svc-haproxy:test", "rsyslog": "nasai/svc-rsyslog:test"}


def test_an_image_that_never_becomes_healthy_is_rolled_back_and_a_good_one_replaces(converge, host, nas_name):
    """A new AI core image whose container never passes its health check (built here, on the NAS):
    the first replica is replaced, the replacement never becomes healthy, the previous container
    is put back and the run fails saying so; the second replica is never touched, and a steady load
    sees no failed request. A good new tag then replaces both, one at a time, with nothing left behind."""
    host.check_output("mkdir -p /tmp/broken && printf 'FROM nasai/llama-server:test\\n"
                      "ENTRYPOINT [\"/bin/sh\", \"-c\", \"exit 1\", \"--\"]\\n' > /tmp/broken/Dockerfile"
                      " && docker build -q -t nasai/llama-broken:test /tmp/broken")
    before = state(host)
    image_of = {n: inspect(host, n)["Image"] for n in ("nasai-ai-1", "nasai-ai-2")}
    broken = {"services_images": dict(IMAGES, llama_cpp="nasai/llama-broken:test"), "services_healthy_timeout": 20}
    run, load = under_load(host, lambda: converge(nas_name, broken))
    assert run.rc != 0
    assert "nasai-ai-1 did not become healthy, so the previous container (image nasai/llama-server:test) was put back" \
        in run.said, run.output[-3000:]
    after = state(host)
    assert after["nasai-ai-2"] == before["nasai-ai-2"], "the second replica was touched"
    assert after["nasai-ai-1"][0] == before["nasai-ai-1"][0], "not the previous container"
    assert {n: inspect(host, n)["Image"] for n in image_of} == image_of
    assert wait_for(lambda: inspect(host, "nasai-ai-1")["State"]["Health"]["Status"] == "healthy", timeout=60)
    assert load["error_count"] == 0 and set(load["counts"]) == {"200"}, load
    assert "previous" not in host.check_output("docker ps -a --format '{{.Names}}'")
    # A good new tag (the same image under another name): both replicas replaced, one at a time; and
    # the proxy's new tag: its replacement starts beside it on the same ports, then the old one stops
    # gracefully, so 443 never refuses one of the load's new connections.
    host.check_output("docker tag nasai/llama-server:test nasai/llama-server:next"
                      " && docker tag nasai/svc-haproxy:test nasai/svc-haproxy:next")
    good = {"services_images": dict(IMAGES, llama_cpp="nasai/llama-server:next", haproxy="nasai/svc-haproxy:next")}
    try:
        run, load = under_load(host, lambda: converge(nas_name, good))
        assert run.rc == 0, run.output[-3000:]
        assert {inspect(host, n)["Config"]["Image"] for n in image_of} == {"nasai/llama-server:next"}
        assert inspect(host, "nasai-proxy")["Config"]["Image"] == "nasai/svc-haproxy:next"
        assert state(host)["nasai-proxy"] != before["nasai-proxy"]
        assert load["error_count"] == 0 and set(load["counts"]) == {"200"}, load
        assert not re.search(r"-(previous|next)\b", host.check_output("docker ps -a --format '{{.Names}}'"))
        # The NAS records what runs: the reference, its id (the digest of its content), the one before.
        recorded = images_registry(host)["ai"]
        assert recorded["image"] == "nasai/llama-server:next" and recorded["id"] == inspect(host, "nasai-ai-1")["Image"]
        assert recorded["previous"]["image"] == "nasai/llama-server:test"
    finally:
        run = converge(nas_name)
        assert run.rc == 0, run.output[-3000:]


def images_registry(host):
    return json.loads(host.file(f"{PROJECT}/registry/images.json").content_string)


def image_id(host, ref):
    return host.check_output(f"docker image inspect -f '{{{{.Id}}}}' {ref}")


def test_images_stay_at_their_recorded_id_until_an_update_moves_them(converge, host, nas_name, tmp_path):
    """A tag built anew on the NAS by hand does not change what runs: the next run points it back at
    the recorded image and restarts nothing. An update (services_images_update, what
    playbooks/update_images.yml sets) with a new offline bundle holding a newer image under the same
    tag replaces that container alone and records the new id and the previous one."""
    ref = "nasai/svc-rsyslog:test"
    old = image_id(host, ref)
    assert images_registry(host)["logs"]["id"] == old
    host.check_output(f"mkdir -p /tmp/next && printf 'FROM {ref}\nLABEL nasai.test=next\n' > /tmp/next/Dockerfile"
                      f" && docker build -q -t {ref} /tmp/next")
    new = image_id(host, ref)
    assert new != old
    before = state(host)
    run = converge(nas_name)
    assert run.rc == 0, run.output[-3000:]
    assert image_id(host, ref) == old and state(host) == before
    # The new image as an offline bundle, made on the NAS and brought to the controller.
    host.check_output(f"docker tag {new} {ref} && docker save -o /tmp/next.tar {ref} && docker tag {old} {ref}")
    subprocess.run(["docker", "cp", f"{nas_name}:/tmp/next.tar", str(tmp_path / "next.tar")], check=True)
    update = {"services_images_update": True, "services_bundle_src_dir": str(tmp_path),
              "services_bundle_archives": ["next.tar"]}
    try:
        run = converge(nas_name, update)
        assert run.rc == 0, run.output[-3000:]
        assert inspect(host, "nasai-logs")["Image"] == new and state(host)["nasai-ai-1"] == before["nasai-ai-1"]
        recorded = images_registry(host)["logs"]
        assert recorded["id"] == new and recorded["previous"]["id"] == old, recorded
        # A newer image that never becomes healthy: the container and the tag go back to `new`.
        host.check_output(f"printf 'FROM {ref}\\nENTRYPOINT [\"/bin/sh\", \"-c\", \"exit 1\", \"--\"]\\n' "
                          f"> /tmp/next/Dockerfile && docker build -q -t {ref} /tmp/next"
                          f" && docker save -o /tmp/next.tar {ref} && docker tag {new} {ref}")
        subprocess.run(["docker", "cp", f"{nas_name}:/tmp/next.tar", str(tmp_path / "next.tar")], check=True)
        run = converge(nas_name, dict(update, services_healthy_timeout=15))
        assert run.rc != 0
        assert "were pointed back at the ids recorded before" in run.said, run.output[-3000:]
        assert image_id(host, ref) == new and inspect(host, "nasai-logs")["Image"] == new
        assert images_registry(host)["logs"]["id"] == new
    finally:
        # Back to the first image: its tag and its record, then a run that replaces the container.
        host.run(f"rm -f /tmp/next.tar && docker tag {old} {ref}")
        host.check_output("python3 -c " + shlex.quote(
            "import json; p = '%s/registry/images.json'; r = json.load(open(p)); r['logs']['id'] = '%s';"
            " json.dump(r, open(p, 'w'))" % (PROJECT, old)))
        run = converge(nas_name)
        assert run.rc == 0, run.output[-3000:]
    assert inspect(host, "nasai-logs")["Image"] == old and images_registry(host)["logs"]["id"] == old


# Clients for a model switch, until /tmp/nasai-load.stop exists: two ask for the model list (each
# answer's model id and time kept), two stream chat completions (a stream that ends without its
# [DONE] is cut); every request on a new connection. Prints counts, errors, cut streams, the ids
# seen in order (changes only) and the p99 latency in ms.
SWITCH_LOAD = r"""
import json, os, ssl, sys, threading, time, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
auth = {"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"}
counts, errors, cut, ids, latencies, lock = {}, [], [], [], [], threading.Lock()
chat = json.dumps({"messages": [{"role": "user", "content": "Count to ten."}], "max_tokens": 24,
                   "stream": True}).encode()

def one(stream):
    start = time.monotonic()
    if stream:
        req = urllib.request.Request("https://localhost/v1/chat/completions", data=chat, headers=auth)
    else:
        req = urllib.request.Request("https://localhost/v1/models", headers=auth)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=60) as answer:
            status, body = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, ""
    except Exception as exc:  # refused, reset, cut: what a restart would cause
        with lock:
            errors.append(repr(exc))
        return
    with lock:
        counts[status] = counts.get(status, 0) + 1
        latencies.append(time.monotonic() - start)
        if stream and status == 200 and "data: [DONE]" not in body:
            cut.append(body[-200:])
        if not stream and status == 200:
            model = json.loads(body)["data"][0]["id"]
            if not ids or ids[-1] != model:
                ids.append(model)

def client(stream):
    while not os.path.exists("/tmp/nasai-load.stop"):
        one(stream)

threads = [threading.Thread(target=client, args=(n % 2 == 1,)) for n in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
latencies.sort()
print(json.dumps({"counts": counts, "errors": errors[:10], "error_count": len(errors), "cut": len(cut),
                  "cut_samples": cut[:3], "ids": ids, "requests": len(latencies),
                  "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))]) if latencies else None}))
"""


def switch_load(host, action):
    """Run action() while SWITCH_LOAD runs on the NAS; (action's result, the load's figures)."""
    return under_load(host, action, script=SWITCH_LOAD, timeout=90)


# The load's figures during each switch, for the note (.cache/artefacts/model_switch.json).
ARTEFACT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3])) \
    / ".cache" / "artefacts" / "model_switch.json"


def keep_figures(name, load):
    figures = json.loads(ARTEFACT.read_text()) if ARTEFACT.exists() else {}
    figures[name] = {key: load[key] for key in ("requests", "counts", "error_count", "cut", "p99_ms", "ids")}
    ARTEFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTEFACT.write_text(json.dumps(figures, indent=2) + "\n")


def registry(host):
    return json.loads(host.file(f"{PROJECT}/registry/models.json").content_string)


def ai_names(host):
    out = host.check_output("docker ps -a --filter label=nasai.stack.service=ai --format '{{.Names}}'")
    return sorted(out.split())


def served_model(host):
    models = host.check_output(f"{CURL} {bearer('alice')} https://localhost/v1/models")
    return json.loads(models)["data"][0]["id"]


def test_a_model_version_switches_blue_green_and_back_under_load_without_a_failed_request(converge, host, nas_name):
    """Versions v1 (the model served so far) and v2 (a second file): v1 is recorded without touching
    a container; v2 starts as the green set beside blue, is checked, takes the traffic by a reload of
    the proxy, and blue goes once drained; `previous` goes back the same way. A steady load of model
    lists and token streams sees no failed request and no cut stream; the registry and the metric
    follow; a rerun changes nothing."""
    host.check_output("cp /srv/models/model.gguf /srv/models/model-v2.gguf")
    sha = host.check_output("sha256sum /srv/models/model.gguf").split()[0]
    models = [{"version": "v1", "file": "model.gguf", "sha256": sha, "date": "2026-11-01"},
              {"version": "v2", "file": "model-v2.gguf", "sha256": sha, "date": "2026-11-20"}]
    before = state(host)
    run = converge(nas_name, {"services_ai_models": models, "services_ai_model_version": "v1"})
    assert run.rc == 0, run.output[-3000:]
    assert state(host) == before, "recording the version served so far restarted a container"
    assert registry(host)["active"]["version"] == "v1" and registry(host)["active"]["color"] == "blue"

    run, load = switch_load(host, lambda: converge(nas_name, {"services_ai_models": models,
                                                              "services_ai_model_version": "v2"}))
    keep_figures("v1_to_v2_blue_green", load)
    assert run.rc == 0, run.output[-3000:]
    assert ai_names(host) == ["nasai-ai-green-1", "nasai-ai-green-2"]
    assert served_model(host).endswith("model-v2.gguf")
    assert state(host)["nasai-proxy"] == before["nasai-proxy"], "the proxy restarted instead of reloading"
    assert load["error_count"] == 0 and set(load["counts"]) == {"200"} and load["cut"] == 0, load
    # The load saw the old version, then the new one.
    assert load["ids"][0].endswith("/model.gguf") and load["ids"][-1].endswith("/model-v2.gguf"), load["ids"]
    assert registry(host)["active"]["version"] == "v2" and registry(host)["previous"]["version"] == "v1"
    metric = host.file("/var/lib/prometheus/node-exporter/nasai_model.prom").content_string
    assert 'nasai_model_info{version="v2",file="model-v2.gguf"' in metric and 'color="green",previous="v1"} 1' in metric
    rerun = converge(nas_name, {"services_ai_models": models, "services_ai_model_version": "v2"})
    assert rerun.rc == 0 and rerun.recap(nas_name)["changed"] == 0, rerun.output[-3000:]

    run, load = switch_load(host, lambda: converge(nas_name, {"services_ai_models": models,
                                                              "services_ai_model_version": "previous"}))
    keep_figures("v2_back_to_previous", load)
    assert run.rc == 0, run.output[-3000:]
    assert ai_names(host) == ["nasai-ai-1", "nasai-ai-2"]
    assert served_model(host).endswith("/model.gguf")
    assert load["error_count"] == 0 and set(load["counts"]) == {"200"} and load["cut"] == 0, load
    assert registry(host)["active"]["version"] == "v1" and registry(host)["previous"]["version"] == "v2"


def test_a_bad_model_file_never_takes_traffic(converge, host, nas_name):
    """A wrong checksum is refused before anything starts; a damaged GGUF (right checksum, not a
    model) starts green, never becomes healthy, and is removed: blue serves on, the registry still
    names it, a steady load sees no failed request. Then back to the unversioned model of converge.yml."""
    sha = host.check_output("sha256sum /srv/models/model.gguf").split()[0]
    host.check_output("head -c 300000 /dev/urandom > /srv/models/broken.gguf")
    broken_sha = host.check_output("sha256sum /srv/models/broken.gguf").split()[0]
    models = [{"version": "v1", "file": "model.gguf", "sha256": sha, "date": "2026-11-01"},
              {"version": "v3", "file": "model-v2.gguf", "sha256": "0" * 64, "date": "2026-11-25"},
              {"version": "v4", "file": "broken.gguf", "sha256": broken_sha, "date": "2026-11-26"}]
    before = state(host)
    try:
        run = converge(nas_name, {"services_ai_models": models, "services_ai_model_version": "v3"})
        assert run.rc != 0
        assert f"model v3: /models/model-v2.gguf has sha256 {sha}, services_ai_models says {'0' * 64}; " \
               "nothing was switched (v1 keeps serving)" in run.said, run.output[-3000:]
        assert state(host) == before

        run, load = switch_load(host, lambda: converge(nas_name, {"services_ai_models": models,
                                                                  "services_ai_model_version": "v4",
                                                                  "services_healthy_timeout": 10}))
        keep_figures("broken_v4_refused", load)
        assert run.rc != 0
        assert "model v4 was not switched to: nasai-ai-green-1 " in run.said, run.output[-3000:]
        assert "green was removed and v1 keeps serving" in run.said
        assert state(host) == before and ai_names(host) == ["nasai-ai-1", "nasai-ai-2"]
        assert load["error_count"] == 0 and set(load["counts"]) == {"200"} and load["cut"] == 0, load
        assert registry(host)["active"]["version"] == "v1"

        # One replica and no memory to spare: a switch would take the service down, so none starts.
        free_kib = int(host.check_output("awk '/^MemAvailable/ {print $2}' /proc/meminfo"))
        run = converge(nas_name, {"services_ai_models": models, "services_ai_model_version": "v4",
                                  "services_ai_replicas": 1, "services_ai_switch_reserve": f"{free_kib // 1024}m"})
        assert run.rc != 0
        assert re.search(r"switching from v1 to v4 would take the service down: 1 replica\(s\) x 256m = 256 MiB "
                         r"for the green set; the NAS has \d+ MiB available less services_ai_switch_reserve", run.said), \
            run.output[-3000:]
        assert state(host) == before
    finally:
        host.run("rm -f /srv/models/broken.gguf /srv/models/model-v2.gguf")
        run = converge(nas_name)
        assert run.rc == 0, run.output[-3000:]
    assert state(host) == before


# Bad input, each refused naming the variable (one ansible-playbook run for all: conftest `refusals`).
BAD_INPUTS = [
    ({"services_files_memory": "lots"}, "services_files_memory (services_definitions.files.memory) must be a Docker size"),
    ({"services_files_uid_gid": "0:0"}, "services_files_uid_gid must be a non-root uid:gid in numbers"),
    ({"services_ai_cpus": 4096}, "services_ai_cpus (services_definitions.ai.cpus) must not exceed the host's"),
    # Dangerous input: more memory than the host has, a port past 65535 for the last replica, a
    # service name or a path that climbs out, the root or a system directory as a data or model path.
    ({"services_ai_memory": "4096g"}, "services_ai_memory (services_definitions.ai.memory) must not exceed the host's memory"),
    ({"services_ai_port": 65535}, "services_ai_port (services_definitions.ai.port) (65535) + services_definitions.ai.replicas (2)"),
    ({"services_overrides": {"../x": {"image": "x", "port": 1}}}, "keys must be service names"),
    ({"services_data_path": "/container/../etc"}, "services_data_path must not contain '..'"),
    ({"services_project_dir": "/"}, "services_project_dir must not be the root or a system directory"),
    ({"services_models_volume": "/etc"}, "services_models_volume must not be the root or a system directory"),
    # A share's volume options with no type (here the models are a directory, which is refused too).
    ({"services_models_volume_options": {"o": "bind"}}, "services_models_volume_options need a type"),
    ({"services_users": [{"name": "eve", "role": "user", "key": "short"}]}, "services_users[0].key (user eve) must be 24 to 256"),
    ({"services_allowed_networks": ["lan"]}, "services_allowed_networks must be IPv4 networks"),
    ({"services_overrides": {"files": {"cpuset_cpus": "0-4095"}}},
     "services_definitions.files.cpuset_cpus must stay within the host's CPUs 0-"),
    ({"services_files_port": 8082}, "port 8082/tcp is used by more than one container"),
    ({"services_http_port": 443}, "port 443/tcp is used by more than one container"),
    ({"services_network_mode": "macvlan"}, "services_network_mode"),
    ({"services_overrides": {"files": {"memroy": "1g"}}}, "services_definitions.files has unknown fields memroy"),
    ({"services_ai_slots": 8}, "services_ai_slots (8) x services_ai_slot_memory"),
    ({"services_ai_queue_timeout": 0}, "services_ai_queue_timeout must be 1-3600 seconds"),
    ({"services_ai_cache_ram": -1}, "services_ai_cache_ram must be 0 (off)"),
    ({"services_logs_file_max": "10k"}, "services_logs_file_max must be a Docker size of at least 1m"),
    # The chat front-end: bridge mode is not for it yet, an e-mail must be one.
    ({"services_chat_enabled": True, "services_network_mode": "bridge"},
     "services_chat_enabled=true needs services_network_mode=host"),
    ({"services_users": [{"name": "eve", "role": "user", "email": "eve"}]},
     "services_users[0].email (user eve) must be an e-mail address"),
    # The GPU (test_gpu.py): render nodes this NAS lacks, more layers than its 64 MiB GPU holds.
    ({"services_ai_gpu": "dri"}, "services_ai_gpu=dri: no DRI render node (/dev/dri/renderD*) on this host"),
    ({"services_ai_gpu_layers": 2}, "services_ai_gpu_layers (2 of 2) with services_ai_slots (2) x services_ai_slot_memory "
     "need 96 MiB of GPU memory, the GPU has 64 MiB"),
]


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)), ids=[message[:50] for _extra, message in BAD_INPUTS])
def test_bad_input_fails_before_any_change(refused, case):
    found, unchanged = refused
    assert BAD_INPUTS[case][1] in found.get(case, f"{BAD_INPUTS[case][0]} was not refused"), found.get(case)
    assert unchanged


def bad_input_state(host):
    return snapshot(host)


def snapshot(host):
    """The containers, the stack's files but its data (checksums, modes, owners) and the firewall."""
    files = host.check_output(f"find {PROJECT} /etc/nasai -path {PROJECT}/data -prune -o -printf '%p %m %u %s\\n' "
                              f"-type f -exec md5sum {{}} + | sort")
    return state(host), files, host.check_output("iptables -S")


# Also without the GPU (services_ai_gpu: none), on this NAS that has one (test_gpu.py).
BRIDGE_NGINX = {"services_network_mode": "bridge", "services_proxy_engine": "nginx", "services_ai_gpu": "none",
                "services_images": {"llama_cpp": "nasai/llama-server:test", "copyparty": "nasai/svc-copyparty:test",
                                    "nginx": "nasai/svc-nginx:test", "rsyslog": "nasai/svc-rsyslog:test"}}


def test_bridge_mode_with_nginx_serves_the_same_stack(converge, host, nas_name):
    """Development mode, with the other proxy engine: a user-defined bridge, services found by name,
    only the proxy published, the same users and roles; with services_ai_gpu: none the AI core gets no
    GPU although the NAS has one."""
    try:
        run = converge(nas_name, BRIDGE_NGINX)
        assert run.rc == 0, run.output
        for name in CONTAINERS:
            config = inspect(host, name)
            assert config["HostConfig"]["NetworkMode"] == "nasai", name
            assert config["State"]["Health"]["Status"] == "healthy", name
            assert not config["HostConfig"].get("DeviceRequests") and not config["HostConfig"].get("Devices"), name
            assert not [item for item in config["Config"]["Env"] if item.startswith("LLAMA_ARG_N_GPU_LAYERS=")], name
        assert "server nasai-ai-2:8081" in host.file(f"{PROJECT}/config/proxy/nginx.conf").content_string
        answer = json.loads(chat(host, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": True}).stdout)
        assert answer["usage"]["completion_tokens"] == 4
        assert listening_outside_loopback(host) == {("tcp", 80), ("tcp", 443)}
        # nginx enforces the same users and roles.
        status, challenge = status_of(host, None, "/v1/models")
        assert status == 401 and challenge.startswith("Basic realm=")
        assert [status_of(host, user, path)[0] for user, path in
                [("alice", "/slots"), ("root-admin", "/slots"), ("robot", "/"), ("robot", "/v1/models"),
                 ("bob", "/v1/models"), ("robot", "/files/")]] == [403, 200, 403, 200, 200, 403]
        assert status_of(host, None, "/", auth=f"-u alice:{KEYS['alice']}")[0] == 200
        assert status_of(host, None, "/", auth=f"-u bob:{KEYS['alice']}")[0] == 401
        assert files_status(host, "alice", "GET", "bob/", None) == "403"
        # Docker's port publishing never meets INPUT: DOCKER-USER's chain guards it.
        ports = "80,443,8081,8082,8090"
        assert scan(nas_name, ALLOWED_CLIENT, ports) == {"open": [80, 443], "dropped": []}
        assert scan(nas_name, DENIED_CLIENT, ports) == {"open": [], "dropped": [80, 443]}
        run = converge(nas_name, BRIDGE_NGINX)
        assert run.rc == 0 and run.recap(nas_name)["changed"] == 0, run.output
        # Wrong keys are slowed down (last: behind Docker's port publishing every client has the
        # bridge's address, so this address is every client's).
        codes = host.check_output(WRONG_KEYS).split()
        assert "429" in codes and codes.index("429") >= 20, codes
    finally:
        run = converge(nas_name)
        assert run.rc == 0, run.output
    assert inspect(host, "nasai-proxy")["HostConfig"]["NetworkMode"] == "host"
