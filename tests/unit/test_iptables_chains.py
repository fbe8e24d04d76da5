"""Planning of nasai.stack.iptables_chains: what it changes, and that a converged table plans nothing."""

import pytest

from ansible_collections.nasai.stack.plugins.modules import iptables_chains as ipc

CHAINS = {
    "NASAI_T": ["-d 10.1.2.3/8 -j RETURN", "-p tcp -m tcp --dport 80 -j REDIRECT --to-ports 12345"],
    "NASAI_T_OUT": ["-m owner --uid-owner root -j RETURN", "-j NASAI_T"],
}
JUMPS = [{"chain": "OUTPUT", "target": "NASAI_T_OUT", "match": ""},
         {"chain": "PREROUTING", "target": "NASAI_T", "match": "-i docker0"},
         {"chain": "PREROUTING", "target": "NASAI_T", "match": "-i br-+"}]
BASE = """-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N DOCKER
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
"""
CONVERGED = BASE + """-N NASAI_T
-N NASAI_T_OUT
-A PREROUTING -i br-+ -j NASAI_T
-A PREROUTING -i docker0 -j NASAI_T
-A OUTPUT -j NASAI_T_OUT
-A NASAI_T -d 10.0.0.0/8 -j RETURN
-A NASAI_T -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 12345
-A NASAI_T_OUT -m owner --uid-owner 0 -j RETURN
-A NASAI_T_OUT -j NASAI_T
"""


@pytest.mark.parametrize(("given", "expected"), [
    ("-d 10.1.2.3/8 -j RETURN", ["-d", "10.0.0.0/8", "-j", "RETURN"]),
    ("--destination 192.0.2.1 --jump RETURN", ["-d", "192.0.2.1/32", "-j", "RETURN"]),
    ("! -s 127.0.0.1 -j ACCEPT", ["!", "-s", "127.0.0.1/32", "-j", "ACCEPT"]),
    ("-m owner --uid-owner root -j RETURN", ["-m", "owner", "--uid-owner", "0", "-j", "RETURN"]),
    ("-m owner --gid-owner root -j RETURN", ["-m", "owner", "--gid-owner", "0", "-j", "RETURN"]),
    ("-m owner --uid-owner no-such-user-here -j RETURN",
     ["-m", "owner", "--uid-owner", "no-such-user-here", "-j", "RETURN"]),
])
def test_normalize_matches_what_iptables_prints(given, expected):
    assert ipc.normalize(given.split()) == expected


def test_empty_table_gets_chains_then_jumps_in_order():
    lines = ipc.plan(BASE, CHAINS, JUMPS, "present")
    assert lines[:2] == [":NASAI_T - [0:0]", ":NASAI_T_OUT - [0:0]"]
    assert "-A NASAI_T -d 10.0.0.0/8 -j RETURN" in lines
    inserts = [line for line in lines if line.startswith("-I")]
    # Inserted at position 1 in reverse, so the listed order is the final order.
    assert inserts == ["-I PREROUTING 1 -i br-+ -j NASAI_T", "-I PREROUTING 1 -i docker0 -j NASAI_T",
                       "-I OUTPUT 1 -j NASAI_T_OUT"]
    assert not any(line.startswith(("-D", "-X")) for line in lines)


def test_converged_table_plans_nothing():
    assert ipc.plan(CONVERGED, CHAINS, JUMPS, "present") == []


def test_drifted_chain_is_rewritten_and_duplicate_or_stale_jumps_deleted():
    live = CONVERGED.replace("--to-ports 12345", "--to-ports 1") + \
        "-A OUTPUT -j NASAI_T_OUT\n-A PREROUTING -i eth9 -j NASAI_T\n"
    lines = ipc.plan(live, CHAINS, JUMPS, "present")
    assert "-D OUTPUT -j NASAI_T_OUT" in lines and "-D PREROUTING -i eth9 -j NASAI_T" in lines
    assert lines.count("-D OUTPUT -j NASAI_T_OUT") == 1
    assert ":NASAI_T - [0:0]" in lines and ":NASAI_T_OUT - [0:0]" not in lines
    assert not any(line.startswith("-I") for line in lines)


def test_absent_removes_jumps_then_chains_and_leaves_docker_alone():
    lines = ipc.plan(CONVERGED, CHAINS, JUMPS, "absent")
    assert lines == ["-D OUTPUT -j NASAI_T_OUT", "-D PREROUTING -i br-+ -j NASAI_T",
                     "-D PREROUTING -i docker0 -j NASAI_T", "-F NASAI_T", "-F NASAI_T_OUT",
                     "-X NASAI_T", "-X NASAI_T_OUT"]
    assert not any("DOCKER" in line or "MASQUERADE" in line for line in lines)
    assert ipc.plan(BASE, CHAINS, JUMPS, "absent") == []


def test_chain_mapped_to_null_is_removed_with_its_jumps():
    chains = {"NASAI_T": CHAINS["NASAI_T"], "NASAI_T_OUT": None}
    lines = ipc.plan(CONVERGED, chains, JUMPS, "present")
    assert "-D OUTPUT -j NASAI_T_OUT" in lines
    assert lines[-2:] == ["-F NASAI_T_OUT", "-X NASAI_T_OUT"]


def test_comments_are_quoted_for_iptables_restore():
    chains = {"NASAI_C": ['-m comment --comment "nasai proxy" -j RETURN']}
    assert '-A NASAI_C -m comment --comment "nasai proxy" -j RETURN' in ipc.plan(BASE, chains, [], "present")
    live = BASE + '-N NASAI_C\n-A NASAI_C -m comment --comment "nasai proxy" -j RETURN\n'
    assert ipc.plan(live, chains, [], "present") == []
