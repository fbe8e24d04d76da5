#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Own a few iptables chains of one table, and every jump to them, in one atomic step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iptables_chains
short_description: Keep chains of one iptables table, and the jumps to them, exactly as listed
version_added: 0.1.0
description:
  - Makes each listed chain of O(table) hold exactly the listed rules, in order, and makes the
    built-in chains jump to them exactly as listed in O(jumps); missing jumps are inserted first
    in their chain, duplicate or unlisted jumps to the owned chains are deleted.
  - Every change is applied in one C(iptables-restore --noflush) transaction, so nothing else in
    the table is flushed and no half-applied state is left behind.
  - Rules are compared with what C(iptables -S) prints. Addresses are compared as networks
    (C(10.1.2.3/8) is C(10.0.0.0/8), C(192.0.2.1) is C(192.0.2.1/32)) and owner names as ids;
    write the rest as C(iptables -S) prints it (for example C(-p tcp -m tcp --dport 80)), or
    every run reports a change (the module warns when that happens).
  - IPv4 only (C(iptables)).
attributes:
  check_mode:
    support: full
    details:
      - In check mode the after side of the diff is the C(iptables-restore) input that would be applied.
  diff_mode:
    support: full
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: partial
    details:
      - Only for rules written as C(iptables -S) prints them (see above); a rule written otherwise
        is applied again, and reported as a change, on every run, with a warning.
  platform:
    platforms: posix
options:
  table:
    description: The table the chains live in.
    type: str
    default: nat
    choices: [nat, filter, mangle, raw]
  chains:
    description:
      - Chain name to its rules (each the arguments that follow C(-A CHAIN)).
      - A chain mapped to null is removed, with every jump to it.
    type: dict
    required: true
  jumps:
    description: Jumps from built-in (or other) chains into the owned chains.
    type: list
    elements: dict
    default: []
    suboptions:
      chain:
        description: The chain that jumps, such as C(OUTPUT) or C(PREROUTING).
        type: str
        required: true
      target:
        description: The owned chain it jumps to.
        type: str
        required: true
      match:
        description: Match arguments of the jump, such as C(-i docker0).
        type: str
        default: ""
  state:
    description: C(absent) removes every listed chain and every jump to it.
    type: str
    choices: [present, absent]
    default: present
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Redirect the host's web traffic to redsocks, except to the LAN
  nasai.stack.iptables_chains:
    table: nat
    chains:
      NASAI_PROXY:
        - -d 192.168.0.0/16 -j RETURN
        - -p tcp -m multiport --dports 80,443 -j REDIRECT --to-ports 12345
    jumps:
      - {chain: OUTPUT, target: NASAI_PROXY}
      - {chain: PREROUTING, target: NASAI_PROXY, match: -i docker0}

- name: Remove them again
  nasai.stack.iptables_chains:
    table: nat
    chains: {NASAI_PROXY: null}
    state: absent
"""

RETURN = r"""
rules:
  description: The owned chains' rules and the jumps to them after the run, as C(iptables -S) prints them.
  returned: always
  type: list
  elements: str
  sample: ["-N NASAI_PROXY", "-A NASAI_PROXY -d 192.168.0.0/16 -j RETURN", "-A OUTPUT -j NASAI_PROXY"]
script:
  description: The iptables-restore input that was (or, in check mode, would be) applied; empty when nothing changed.
  returned: always
  type: str
"""

import grp
import ipaddress
import pwd
import shlex

from ansible.module_utils.basic import AnsibleModule

LONG_OPTIONS = {
    "--source": "-s", "--destination": "-d", "--jump": "-j", "--protocol": "-p",
    "--in-interface": "-i", "--out-interface": "-o", "--match": "-m", "--goto": "-g",
}
ADDRESS_OPTIONS = ("-s", "-d")


def normalize(tokens):
    """The token list iptables -S would print for these rule arguments, as far as we can tell."""
    out = []
    tokens = [LONG_OPTIONS.get(t, t) for t in tokens]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        out.append(token)
        value = tokens[i + 1] if i + 1 < len(tokens) else None
        if value is not None and token in ADDRESS_OPTIONS:
            try:
                value = str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                pass
            out.append(value)
            i += 1
        elif value is not None and token == "--uid-owner" and not value.isdigit():
            try:
                value = str(pwd.getpwnam(value).pw_uid)
            except KeyError:
                pass
            out.append(value)
            i += 1
        elif value is not None and token == "--gid-owner" and not value.isdigit():
            try:
                value = str(grp.getgrnam(value).gr_gid)
            except KeyError:
                pass
            out.append(value)
            i += 1
        i += 1
    return out


def parse_rules(text):
    """{chain: [tokens of each -A rule]} and the set of chains, from `iptables -S` output."""
    chains, rules = set(), {}
    for line in text.splitlines():
        tokens = shlex.split(line)
        if len(tokens) >= 2 and tokens[0] in ("-N", "-P"):
            chains.add(tokens[1])
            rules.setdefault(tokens[1], [])
        elif len(tokens) >= 2 and tokens[0] == "-A":
            chains.add(tokens[1])
            rules.setdefault(tokens[1], []).append(normalize(tokens[2:]))
    return chains, rules


def jump_target(tokens):
    """The chain a rule jumps or goes to, or None."""
    for flag in ("-j", "-g"):
        if flag in tokens[:-1]:
            return tokens[tokens.index(flag) + 1]
    return None


def render(chain, tokens):
    return " ".join(["-A", chain] + ['"%s"' % t if (" " in t or not t) else t for t in tokens])


def plan(live_text, chains, jumps, state):
    """The iptables-restore lines (without table header and COMMIT) that reach the wanted state."""
    existing, live = parse_rules(live_text)
    owned = set(chains)
    wanted = {} if state == "absent" else {c: r for c, r in chains.items() if r is not None}
    wanted_rules = {c: [normalize(shlex.split(r)) for r in rules] for c, rules in wanted.items()}
    wanted_jumps = []
    if state == "present":
        for jump in [j for j in jumps if j["target"] in wanted]:
            tokens = normalize(shlex.split(jump.get("match") or "")) + ["-j", jump["target"]]
            wanted_jumps.append((jump["chain"], tokens))

    lines = []
    # Chains first (declaring one also empties it), so rules may jump between owned chains.
    rewrite = [c for c in wanted if c not in existing or live.get(c, []) != wanted_rules[c]]
    for chain in rewrite:
        lines.append(":%s - [0:0]" % chain)
    for chain in rewrite:
        lines.append("-F %s" % chain)
        lines.extend(render(chain, tokens) for tokens in wanted_rules[chain])

    # Jumps: delete what is unlisted or duplicated, insert what is missing.
    deletes, inserts = [], []
    for chain in sorted(existing - owned):
        seen = []
        for tokens in live.get(chain, []):
            if jump_target(tokens) not in owned:
                continue
            key = (chain, tokens)
            if key in wanted_jumps and key not in seen:
                seen.append(key)
            else:
                deletes.append("-D %s" % render(chain, tokens)[3:])
    for chain, tokens in wanted_jumps:
        if tokens not in live.get(chain, []):
            inserts.append(" ".join(["-I", chain, "1"] + [render(chain, tokens).split(" ", 2)[2]]))
    lines = deletes + lines + list(reversed(inserts))

    # Owned chains no longer wanted: empty them all, then remove them.
    gone = [c for c in chains if c in existing and c not in wanted]
    lines.extend("-F %s" % c for c in gone)
    lines.extend("-X %s" % c for c in gone)
    return lines


def owned_view(live_text, chains):
    """What the module reports: the owned chains and every rule that jumps to one of them."""
    owned = set(chains)
    out = []
    for line in live_text.splitlines():
        tokens = shlex.split(line)
        if len(tokens) >= 2 and tokens[1] in owned:
            out.append(line)
        elif tokens[:1] == ["-A"] and jump_target(tokens) in owned:
            out.append(line)
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            table=dict(type="str", default="nat", choices=["nat", "filter", "mangle", "raw"]),
            chains=dict(type="dict", required=True),
            jumps=dict(type="list", elements="dict", default=[], options=dict(
                chain=dict(type="str", required=True),
                target=dict(type="str", required=True),
                match=dict(type="str", default=""),
            )),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    table, chains, state = module.params["table"], module.params["chains"], module.params["state"]
    for name, rules in chains.items():
        if rules is not None and not isinstance(rules, list):
            module.fail_json(msg="chains.%s must be a list of rules or null" % name)
    for jump in module.params["jumps"]:
        if jump["target"] not in chains:
            module.fail_json(msg="jump target %s is not one of the chains" % jump["target"])

    iptables = module.get_bin_path("iptables")
    if iptables is None:
        if state == "absent":
            module.exit_json(changed=False, rules=[], script="")
        module.fail_json(msg="iptables is not installed")
    restore = module.get_bin_path("iptables-restore", required=True)

    def live():
        rc, out, err = module.run_command([iptables, "-w", "5", "-t", table, "-S"])
        if rc != 0:
            module.fail_json(msg="iptables -t %s -S failed: %s" % (table, (err or out).strip()))
        return out

    before = live()
    lines = plan(before, chains, module.params["jumps"], state)
    if not lines:
        module.exit_json(changed=False, rules=owned_view(before, chains), script="")
    script = "*%s\n%s\nCOMMIT\n" % (table, "\n".join(lines))
    diff = {"before": "\n".join(owned_view(before, chains)) + "\n", "before_header": "%s table" % table}
    if module.check_mode:
        diff.update(after=script, after_header="iptables-restore --noflush")
        module.exit_json(changed=True, rules=owned_view(before, chains), script=script, diff=diff)

    rc, out, err = module.run_command([restore, "-w", "5", "--noflush"], data=script, binary_data=True)
    if rc != 0:
        module.fail_json(msg="iptables-restore failed: %s" % (err or out).strip(), script=script)
    after = live()
    diff.update(after="\n".join(owned_view(after, chains)) + "\n", after_header="%s table" % table)
    if plan(after, chains, module.params["jumps"], state):
        module.warn("the %s chains still differ from the wanted rules after applying them: write the "
                    "rules as `iptables -S` prints them, or every run will report a change" % table)
    module.exit_json(changed=True, rules=owned_view(after, chains), script=script, diff=diff)


if __name__ == "__main__":
    main()
