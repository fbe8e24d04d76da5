# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the nfs_models role: exports(5) lines from the role's export list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional


def client_options(client: Mapping[str, Any], uid: Optional[Any] = None, gid: Optional[Any] = None) -> list[str]:
    """exports(5) options of one client: its access (ro unless given), sync and no_subtree_check
    unless its own options ask for async or subtree_check, its squash (root_squash unless given;
    all_squash maps to `uid`/`gid` when they are set), then its own options."""
    extra = list(client.get("options") or [])
    squash = client.get("squash") or "root_squash"
    opts = [client.get("access") or "ro"]
    opts += [] if "async" in extra else ["sync"]
    opts += [] if "subtree_check" in extra else ["no_subtree_check"]
    opts.append(squash)
    if squash == "all_squash" and uid is not None:
        opts.append("anonuid=%s" % uid)
    if squash == "all_squash" and gid is not None:
        opts.append("anongid=%s" % gid)
    return opts + extra


def nfs_export_lines(exports: Sequence[Mapping[str, Any]], uid: Optional[Any] = None,
                     gid: Optional[Any] = None) -> list[str]:
    """One exports(5) line per export: its path, then host(options) for each of its clients."""
    lines = []
    for export in exports:
        clients = ["%s(%s)" % (client["host"], ",".join(client_options(client, uid, gid)))
                   for client in export.get("clients") or []]
        lines.append("%s %s" % (export["path"], " ".join(clients)))
    return lines


class FilterModule:
    """nasai.stack's nfs_models role filters."""

    def filters(self) -> dict[str, Any]:
        return {"nfs_export_lines": nfs_export_lines}
