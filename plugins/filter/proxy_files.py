# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the proxy role: the `proxies` section of each user's Docker client configuration, and
the iptables chains of transparent mode."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from ansible.errors import AnsibleFilterError


def docker_client_wanted(current: Mapping[str, Any], proxies: Optional[Mapping[str, str]]) -> dict[str, Any]:
    """A Docker client configuration with `proxies.default` set to `proxies`, or without it when
    `proxies` is None; every other key (auths, credsStore, other proxies) kept as it is."""
    wanted = {key: value for key, value in current.items() if key != "proxies"}
    others = {key: value for key, value in (current.get("proxies") or {}).items() if key != "default"}
    if proxies is not None:
        others["default"] = dict(proxies)
    if others:
        wanted["proxies"] = others
    return wanted


def docker_client_plan(contents: Mapping[str, Optional[str]], users: Sequence[str],
                       proxies: Optional[Mapping[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """What stack_files writes and removes for each user's ~/.docker/config.json.

    `contents` is stack_files' `contents` for a read whose first entries are those files, in the
    order of `users` (missing files are None). Returns `writes` (path, content, owner, mode 0600)
    for the files whose configuration differs from what is wanted, and `removals` (path) for files
    that held nothing but the proxy. A file that is not a JSON object fails, naming it.
    """
    plan: dict[str, list[dict[str, Any]]] = {"writes": [], "removals": []}
    for user, (path, text) in zip(users, list(contents.items())[:len(users)]):
        try:
            current = json.loads(text) if text is not None and text.strip() else {}
        except ValueError as exc:
            raise AnsibleFilterError("%s (user %s's Docker client configuration) is not valid JSON: %s"
                                     % (path, user, exc))
        if not isinstance(current, dict):
            raise AnsibleFilterError("%s (user %s's Docker client configuration) is not a JSON object" % (path, user))
        wanted = docker_client_wanted(current, proxies)
        if wanted and wanted != current:
            plan["writes"].append({"path": path, "content": json.dumps(wanted, indent=1, sort_keys=True) + "\n",
                                   "owner": user, "mode": "0600"})
        elif not wanted and text is not None:
            plan["removals"].append({"path": path})
    return plan


def transparent_chains(chain: str, redsocks_port: Any, ports: Sequence[Any], proxy_addresses: Sequence[str] = (),
                       exclude: Sequence[str] = (), exclude_users: Sequence[str] = (), host: bool = True,
                       interfaces: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The chains of transparent mode and the jumps to them, per table, for iptables_chains.

    nat `chain`: loopback, local addresses, the proxy itself and `exclude` go direct (RETURN); TCP
    to `ports` is redirected to redsocks. nat `chain`_OUTPUT (when `host`): the host's own traffic,
    except redsocks' and `exclude_users`', into `chain`; jumps from OUTPUT and from PREROUTING on
    each of `interfaces` (Docker's bridges). filter `chain`_INPUT: nothing from outside reaches
    redsocks' port unless it was redirected (conntrack DNAT).
    """
    nat_rules = ["-d 127.0.0.0/8 -j RETURN", "-m addrtype --dst-type LOCAL -j RETURN"]
    nat_rules += ["-d %s/32 -j RETURN" % address for address in proxy_addresses]
    nat_rules += ["-d %s -j RETURN" % target for target in exclude]
    nat_rules.append("-p tcp -m multiport --dports %s -j REDIRECT --to-ports %s"
                     % (",".join(str(port) for port in ports), redsocks_port))
    output_chain, input_chain = chain + "_OUTPUT", chain + "_INPUT"
    output_rules = ["-m owner --uid-owner %s -j RETURN" % user for user in ["redsocks"] + list(exclude_users)]
    output_rules.append("-j " + chain)
    jumps = [{"chain": "OUTPUT", "target": output_chain, "match": ""}] if host else []
    jumps += [{"chain": "PREROUTING", "target": chain, "match": "-i " + interface} for interface in interfaces]
    return [
        {"table": "nat", "chains": {chain: nat_rules, output_chain: output_rules if host else None}, "jumps": jumps},
        {"table": "filter",
         "chains": {input_chain: ["-p tcp -m tcp --dport %s -m conntrack ! --ctstate DNAT -j DROP" % redsocks_port]},
         "jumps": [{"chain": "INPUT", "target": input_chain, "match": ""}]},
    ]


class FilterModule:
    """nasai.stack's proxy role filters."""

    def filters(self) -> dict[str, Any]:
        return {"docker_client_plan": docker_client_plan, "transparent_chains": transparent_chains}
