"""Three NAS formed into one Docker Swarm by the cluster role: three managers hold a quorum, the
labels are the inventory's and the facts', the services model's AI core runs as a swarm service on
the NAS labelled ai=true only (spread, quotas, health checks, start-first updates) and the TLS proxy
of a NAS without AI answers from the replicas of the others, a manager down leaves the swarm
answering (no request through the proxy fails) and its replica comes back on another NAS, a NAS
leaves and joins again, the tokens never show, and bad input (placement included) is refused before
any change. Figures go to .cache/artefacts/cluster.json."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import testinfra

NAS = ["nas-cluster-1", "nas-cluster-2", "nas-cluster-3"]
ALL = "nas"
AI = "nasai_ai"
PROXY = "nasai_proxy"
KEY = "robot-key-0123456789abcdef"
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
FIGURES = {}


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield FIGURES
    artefact = REPO / ".cache" / "artefacts" / "cluster.json"
    artefact.parent.mkdir(parents=True, exist_ok=True)
    artefact.write_text(json.dumps(FIGURES, indent=2) + "\n")


def running_replicas(host):
    """(node, task container id) of each running replica of the AI core, as a manager sees them."""
    tasks = json.loads("[" + ",".join(host.check_output(
        f"docker service ps {AI} --filter desired-state=running --format '{{{{json .}}}}'").split("\n")) + "]")
    return sorted(t["Node"] for t in tasks if t["CurrentState"].startswith("Running"))


@pytest.fixture(scope="module")
def hosts():
    return {name: testinfra.get_host(f"docker://{name}") for name in NAS}


def nodes(host):
    """The swarm's nodes as a manager sees them: hostname -> (role, manager status, state, labels)."""
    ids = host.check_output("docker node ls -q").split()
    seen = {}
    for node in json.loads(host.check_output("docker node inspect " + " ".join(ids))):
        seen[node["Description"]["Hostname"]] = (
            node["Spec"]["Role"], (node.get("ManagerStatus") or {}).get("Reachability"),
            node["Status"]["State"], node["Spec"].get("Labels") or {})
    return seen


def swarm_state(host):
    return json.loads(host.check_output("docker info --format '{{json .Swarm}}'"))


def test_three_managers_hold_a_quorum(hosts):
    seen = nodes(hosts[NAS[0]])
    assert sorted(seen) == NAS
    assert {name: (role, reach, state) for name, (role, reach, state, _l) in seen.items()} == \
        {name: ("manager", "reachable", "ready") for name in NAS}
    # One swarm: the same cluster id everywhere, each engine a manager with control.
    infos = [swarm_state(hosts[name]) for name in NAS]
    assert len({info["Cluster"]["ID"] for info in infos}) == 1
    assert all(info["ControlAvailable"] and info["Managers"] == 3 for info in infos)


def test_labels_are_the_inventory_s_and_the_facts(hosts):
    seen = nodes(hosts[NAS[1]])
    for name in NAS:
        host = hosts[name]
        labels = seen[name][3]
        assert labels["ai"] == ("false" if name == "nas-cluster-3" else "true"), name
        assert labels["nasai.cores"] == host.check_output("nproc --all"), name
        assert labels["nasai.gpu"] == "none", name
        assert int(labels["nasai.memory_gib"]) >= 1, name
        # The size of the data path's filesystem (its size, not its free space, which would change
        # the label at every run).
        assert int(labels["nasai.disk_gib"]) >= 1, name
    assert seen["nas-cluster-1"][3]["room"] == "office" and seen["nas-cluster-1"][3]["disk"] == "ssd"
    # A label set by hand (not the role's own) stays across a run.
    first = hosts[NAS[0]]
    first.check_output("docker node update --label-add rack=r2 nas-cluster-2")
    assert nodes(first)["nas-cluster-2"][3]["rack"] == "r2"


def test_the_ai_core_runs_on_the_ai_nodes_with_its_quotas_and_answers_across_nodes(hosts):
    manager = hosts[NAS[0]]
    # One replica per NAS labelled ai=true (nas-cluster-3 is not), spread over them.
    assert running_replicas(manager) == ["nas-cluster-1", "nas-cluster-2"]
    spec = json.loads(manager.check_output(f"docker service inspect {AI}"))[0]["Spec"]
    task = spec["TaskTemplate"]
    assert task["Placement"]["Constraints"] == ["node.labels.ai == true"]
    assert task["Resources"]["Limits"]["MemoryBytes"] == 256 << 20
    assert task["Resources"]["Reservations"]["MemoryBytes"] == 256 << 20
    assert task["Resources"]["Limits"]["NanoCPUs"] == 500_000_000
    assert task["ContainerSpec"]["ReadOnly"] is True and task["ContainerSpec"]["User"] == "65534:65534"
    assert task["ContainerSpec"]["Healthcheck"]["Test"][-1].endswith("/health")
    assert spec["UpdateConfig"]["Order"] == "start-first" and spec["EndpointSpec"]["Mode"] == "dnsrr"
    # Each node runs its replica healthy; from the replica on nas-cluster-1, every replica (the other
    # NAS's too) answers over the overlay network, found by the swarm's DNS (tasks.nasai_ai).
    for name in ("nas-cluster-1", "nas-cluster-2"):
        ids = hosts[name].check_output(
            f"docker ps -q --filter label=com.docker.swarm.service.name={AI} --filter health=healthy").split()
        assert len(ids) == 1, name
    local = hosts[NAS[0]].check_output(f"docker ps -q --filter label=com.docker.swarm.service.name={AI}")
    addresses = hosts[NAS[0]].check_output(f"docker exec {local} getent ahostsv4 tasks.{AI}").split()
    replicas = sorted({a for a in addresses if a[0].isdigit()})
    assert len(replicas) == 2, addresses
    for address in replicas:
        assert hosts[NAS[0]].check_output(
            f"docker exec {local} curl -fsS --max-time 5 http://{address}:8081/health").count("ok") == 1


def client(hosts):
    """nas-cluster-1 as a client of the swarm's proxies, trusting the proxy's certificate."""
    cert = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "cluster-tls" / "server.crt"
    subprocess.run(["docker", "exec", "-i", NAS[0], "sh", "-c", "cat > /root/swarm-proxy.crt"],
                   input=cert.read_bytes(), check=True)
    return hosts[NAS[0]]


def ask(host, nas, key=KEY, path="/v1/models"):
    """The HTTP status of one request to that NAS's swarm proxy, its certificate checked."""
    auth = f"-H 'Authorization: Bearer {key}'" if key else ""
    return host.run(f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 --cacert /root/swarm-proxy.crt "
                    f"{auth} https://{nas}:9443{path}").stdout.strip()


def replica_nodes(manager):
    """The node of each AI replica's address on the stack's network."""
    services = json.loads(manager.check_output(
        "docker network inspect nasai_nasai --verbose --format '{{json .Services}}'"))
    addr_node = {n["Status"]["Addr"]: n["Description"]["Hostname"]
                 for n in json.loads(manager.check_output("docker node inspect $(docker node ls -q)"))}
    return {task["EndpointIP"]: addr_node.get(task["Info"]["Host IP"])
            for task in services[AI]["Tasks"]}


def test_a_nas_without_ai_answers_through_its_proxy_from_replicas_on_the_others(hosts):
    """nas-cluster-3 runs no AI replica: its TLS proxy answers from the replicas of nas-cluster-1 and
    nas-cluster-2 (its access log names each replica's address); no key, 401."""
    me = client(hosts)
    assert ask(me, "nas-cluster-3", key=None) == "401"
    statuses = [ask(me, "nas-cluster-3") for _attempt in range(6)]
    assert statuses == ["200"] * 6, statuses
    third = hosts[NAS[2]]
    proxy = third.check_output(f"docker ps -q --filter label=com.docker.swarm.service.name={PROXY}")
    log = third.check_output(f"docker logs --tail 50 {proxy} 2>&1")
    answered = [line.split()[4].rsplit(":", 1)[0] for line in log.splitlines() if '"GET /v1/models' in line
                and " 200 " in line]
    where = replica_nodes(hosts[NAS[0]])
    assert {where.get(address) for address in answered[-6:]} == {"nas-cluster-1", "nas-cluster-2"}, (answered, where)


def test_the_join_tokens_never_show(hosts, converge):
    tokens = [hosts[NAS[0]].check_output(f"docker swarm join-token -q {role}") for role in ("worker", "manager")]
    run = converge(ALL, None, "-vvv")
    assert run.rc == 0, run.output[-3000:]
    assert all(run.recap(name)["changed"] == 0 for name in NAS), run.output[-3000:]
    assert "SWMTKN-" not in run.output and not any(token in run.output for token in tokens)
    # The hand-set label survived the run.
    assert nodes(hosts[NAS[0]])["nas-cluster-2"][3]["rack"] == "r2"


def test_a_manager_down_leaves_the_swarm_answering(hosts):
    """The engine of one manager stops: requests through another NAS's proxy go on (figures), the two
    other managers keep the quorum and see it down, its AI replica starts on the other AI NAS; started
    again, it is back as a reachable manager by itself."""
    down = hosts[NAS[1]]
    me = client(hosts)
    down.check_output("systemctl stop docker.socket docker.service")
    try:
        start = time.monotonic()
        # Through nas-cluster-3's proxy, one request after the other from the stop on: the failed
        # ones and the seconds until ten in a row succeed (HAProxy's checks and retries move off the
        # lost replica).
        failed, streak = 0, 0
        while streak < 10:
            if ask(me, "nas-cluster-3") == "200":
                streak += 1
            else:
                failed, streak = failed + 1, 0
            assert time.monotonic() - start < 120, failed
        FIGURES["failover_failed_requests"] = failed
        FIGURES["failover_seconds_to_ten_good"] = round(time.monotonic() - start, 1)
        while True:
            seen = nodes(hosts[NAS[0]])
            if seen["nas-cluster-2"][1] == "unreachable":
                break
            assert time.monotonic() - start < 60, seen
            time.sleep(1)
        # The quorum holds: a change to the swarm's state is accepted.
        hosts[NAS[2]].check_output("docker node update --label-add probe=1 nas-cluster-1")
        hosts[NAS[2]].check_output("docker node update --label-rm probe nas-cluster-1")
        # Its AI replica comes back on the AI node left (nas-cluster-3 takes none: ai=false).
        while running_replicas(hosts[NAS[0]]) != ["nas-cluster-1", "nas-cluster-1"]:
            assert time.monotonic() - start < 120, running_replicas(hosts[NAS[0]])
            time.sleep(1)
        FIGURES["replica_back_on_another_nas_s"] = round(time.monotonic() - start, 1)
    finally:
        down.check_output("systemctl start docker.service")
    start = time.monotonic()
    while nodes(hosts[NAS[0]])["nas-cluster-2"][:3] != ("manager", "reachable", "ready"):
        assert time.monotonic() - start < 90, nodes(hosts[NAS[0]])
        time.sleep(1)


def test_a_nas_leaves_and_joins_again(hosts, converge):
    """nas-cluster-3 leaves (cluster_state absent): with two NAS left the swarm keeps one manager (an
    even number holds no quorum better), nas-cluster-3's engine is in no swarm and is gone from the
    list. The next run with it present brings it back, the managers are three again, and a third
    run changes nothing."""
    leave = {"cluster_state": "{{ 'absent' if inventory_hostname == 'nas-cluster-3' else 'present' }}"}
    run = converge(ALL, leave)
    assert run.rc == 0, run.output[-3000:]
    seen = nodes(hosts[NAS[0]])
    assert sorted(seen) == NAS[:2], seen
    assert {name: s[0] for name, s in seen.items()} == {"nas-cluster-1": "manager", "nas-cluster-2": "worker"}
    assert swarm_state(hosts[NAS[2]])["LocalNodeState"] == "inactive"
    back = converge(ALL)
    assert back.rc == 0, back.output[-3000:]
    seen = nodes(hosts[NAS[0]])
    assert sorted(seen) == NAS and {s[0] for s in seen.values()} == {"manager"}, seen
    assert seen["nas-cluster-3"][3]["ai"] == "false"
    again = converge(ALL)
    assert again.rc == 0 and all(again.recap(name)["changed"] == 0 for name in NAS), again.output[-3000:]


@pytest.mark.parametrize(("extra", "message"), [
    ({"cluster_managers": ["nas-cluster-1", "nas-cluster-2"]},
     "a swarm needs 1, 3, 5 or 7 managers, an odd number, to keep a quorum"),
    ({"cluster_managers": ["nas-cluster-1", "nas-elsewhere", "nas-cluster-3"]},
     "cluster_managers names nas-elsewhere, not in group nas"),
    ({"cluster_node_labels": {"rack": 3}}, "cluster_node_labels values must be strings"),
    ({"cluster_stack_constraints": ["node.labels.disk == nvme"]}, "no NAS meets the AI core's placement"),
    ({"cluster_stack_ai_replicas": 400}, "cluster_stack_ai_replicas (400) x services_ai_memory (256m) does not fit"),
])
def test_bad_input_is_refused_before_any_change(hosts, converge, extra, message):
    service = f"docker service inspect {AI} --format '{{{{json .Spec}}}} {{{{.Version.Index}}}}'"
    before = nodes(hosts[NAS[0]]), hosts[NAS[0]].check_output(service)
    run = converge(ALL, extra)
    assert run.rc != 0
    assert message in run.said, run.output[-3000:]
    assert (nodes(hosts[NAS[0]]), hosts[NAS[0]].check_output(service)) == before
