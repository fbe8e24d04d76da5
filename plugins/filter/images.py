# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the image registry: which image (by id, the digest of its content) each service runs,
and the one it ran before."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional


def image_pins(registry: Optional[Mapping[str, Any]], images: Iterable[str]) -> dict[str, str]:
    """{image reference: recorded id} for the references of `images` the registry records."""
    pins = {}
    for entry in (registry or {}).values():
        if isinstance(entry, Mapping) and entry.get("image") in set(images) and entry.get("id"):
            pins[entry["image"]] = entry["id"]
    return pins


def image_registry(registry: Optional[Mapping[str, Any]], definitions: Mapping[str, Mapping[str, Any]],
                   names: Iterable[str], ids: Mapping[str, Optional[str]],
                   repo_digests: Optional[Mapping[str, Any]] = None, since: str = "") -> dict[str, Any]:
    """The registry once the enabled services `names` run: per service its image reference, id,
    registry digests and since when; the image it ran before as `previous` when the id changed.
    A service whose image is unknown (check mode, missing) keeps its entry; a disabled one keeps it too."""
    out = dict(registry or {})
    repo_digests = repo_digests or {}
    for name in names:
        image = definitions[name].get("image")
        found = ids.get(image)
        if not found:
            continue
        old = out.get(name) or {}
        if old.get("id") == found and old.get("image") == image:
            continue
        entry = {"image": image, "id": found, "repo_digests": list(repo_digests.get(image) or []), "since": since}
        if old.get("id"):
            entry["previous"] = {"image": old.get("image"), "id": old.get("id")}
        out[name] = entry
    return out


class FilterModule:
    """nasai.stack's filters of the image registry."""

    def filters(self) -> dict[str, Any]:
        return {"image_pins": image_pins, "image_registry": image_registry}
