# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the proxy role: the `proxies` section of each user's Docker client configuration."""

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


class FilterModule:
    """nasai.stack's proxy role filters."""

    def filters(self) -> dict[str, Any]:
        return {"docker_client_plan": docker_client_plan}
