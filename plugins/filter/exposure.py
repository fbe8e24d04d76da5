# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services role's firewall: who may reach the stack's published ports from outside the host,
as chains for iptables_chains, and the iptables-restore file that brings them back at boot."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

# Chains Docker makes and owns: a role never takes one of these names.
DOCKER_CHAINS = ("DOCKER", "DOCKER-USER", "DOCKER-INGRESS", "DOCKER-ISOLATION-STAGE-1",
                 "DOCKER-ISOLATION-STAGE-2", "DOCKER-FORWARD", "DOCKER-BRIDGE", "DOCKER-CT")


def exposure_chains(ports: Sequence[Any], allowed: Sequence[str], bridge: bool, chain: str = "NASAI_EXPOSE",
                    enabled: bool = True) -> list[dict[str, Any]]:
    """The filter table's chains that let only `allowed` networks reach `ports` (TCP) from outside.

    `chain` (from INPUT): the host's own sockets, what host network mode serves on; loopback always
    passes. `chain`_FWD (from DOCKER-USER, in `bridge` mode): connections Docker forwards to a
    published port (conntrack DNAT, matched on the port the client asked for), so that Docker's own
    port publishing, which never meets INPUT, is filtered too; the containers' own outgoing
    connections are never matched. A chain not wanted (bridge off, or `enabled` false) maps to null:
    iptables_chains removes it and its jumps."""
    ports = sorted({int(port) for port in ports})
    nets = [str(ipaddress.ip_network(str(net), strict=False)) for net in allowed]
    forward = chain + "_FWD"
    chains: dict[str, Any] = {chain: None, forward: None}
    jumps = []
    if enabled and ports:
        dports = ",".join(str(port) for port in ports)
        chains[chain] = (["-i lo -j RETURN"]
                         + ["-s %s -p tcp -m multiport --dports %s -j RETURN" % (net, dports) for net in nets]
                         + ["-p tcp -m multiport --dports %s -j DROP" % dports])
        jumps.append({"chain": "INPUT", "target": chain, "match": ""})
        if bridge:
            rules = []
            for port in ports:
                match = "-p tcp -m conntrack --ctstate DNAT --ctorigdstport %d --ctdir ORIGINAL" % port
                rules += ["-s %s %s -j RETURN" % (net, match) for net in nets] + ["%s -j DROP" % match]
            chains[forward] = rules
            jumps.append({"chain": "DOCKER-USER", "target": forward, "match": ""})
    return [{"table": "filter", "chains": chains, "jumps": jumps}]


def iptables_restore_file(tables: Sequence[Mapping[str, Any]], comment: str) -> str:
    """An `iptables-restore --noflush` file that makes the chains of `tables` (as iptables_chains
    takes them; null chains left out; declared, so a restore again flushes them first) and inserts
    their jumps first in the built-in chains. Jumps from Docker's chains are left out: DOCKER-USER
    may not exist yet at boot, and declaring it here would flush the rules others keep in it."""
    lines = ["# %s" % line for line in comment.splitlines()]
    for table in tables:
        chains = {name: rules for name, rules in table["chains"].items() if rules is not None}
        if not chains:
            continue
        lines.append("*%s" % table["table"])
        lines += [":%s - [0:0]" % name for name in chains]
        lines += ["-A %s %s" % (name, rule) for name, rules in chains.items() for rule in rules]
        for jump in reversed([j for j in table["jumps"] if not j["chain"].upper().startswith("DOCKER")]):
            match = jump.get("match") or ""
            lines.append("-I %s 1 %s-j %s" % (jump["chain"], match + " " if match else "", jump["target"]))
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def chain_name_errors(name: Any, variable: str) -> list[str]:
    """Why `name` cannot be a chain the collection owns: Docker's, a built-in one, or not a name."""
    text = str(name)
    if text.upper() in DOCKER_CHAINS or text.upper().startswith("DOCKER"):
        return ["%s must not name one of Docker's chains (%s), got %s" % (variable, ", ".join(DOCKER_CHAINS[:2]), text)]
    if text.upper() in ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"):
        return ["%s must not name a built-in chain, got %s" % (variable, text)]
    if not text or len(text) > 24 or not all(c.isalnum() or c in "_-" for c in text):
        return ["%s must be 1-24 letters, digits, _ or -, got %r" % (variable, text)]
    return []


class FilterModule:
    """nasai.stack's firewall filters."""

    def filters(self) -> dict[str, Any]:
        return {"exposure_chains": exposure_chains, "iptables_restore_file": iptables_restore_file,
                "chain_name_errors": chain_name_errors}
