# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A marked block in a shared text file (such as /etc/environment), as ansible.builtin.blockinfile
keeps it, computed on the controller so that the file can be read and written with other files in
one call each."""

from __future__ import annotations

from typing import Any, Optional


def with_block(text: Optional[str], block: Optional[str], marker: str = "# {mark} ANSIBLE MANAGED BLOCK") -> str:
    """`text` with the lines between `marker` (BEGIN/END) replaced by `block`, or the block added at
    the end when the markers are not there; `block` None (or empty) removes the markers and what is
    between them. Every other line stays as it is."""
    begin, end = marker.replace("{mark}", "BEGIN"), marker.replace("{mark}", "END")
    lines = (text or "").splitlines()
    try:
        first = lines.index(begin)
        last = lines.index(end, first)
    except ValueError:
        first = last = None
    wanted = [begin] + block.rstrip("\n").split("\n") + [end] if block else []
    if first is None:
        new = lines + wanted
    else:
        new = lines[:first] + wanted + lines[last + 1:]
    if new == lines:
        return text or ""
    return "\n".join(new) + ("\n" if new else "")


class FilterModule:
    """nasai.stack's text block filter."""

    def filters(self) -> dict[str, Any]:
        return {"with_block": with_block}
