# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of the observability role's input: thresholds, durations, retention, receivers."""

from __future__ import annotations

import re
from typing import Any, Mapping

RECEIVER_TYPES = ("webhook", "email", "ntfy")
LEVELS = ("warning", "error", "critical")
# A Prometheus duration: one or more number-unit pairs, largest first (1h30m, 15d, 2w).
DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
SIZE = re.compile(r"^\d+(B|KB|MB|GB|TB|PB|EB)$")


# The services the role adds (observability_images, _memory, _cpus, _ports have one entry each).
SERVICES = ("prometheus", "alertmanager", "node_exporter", "container_exporter", "mtail", "grafana")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def observability_errors(settings: Mapping[str, Any]) -> list[str]:
    """Why the observability settings cannot work; each message names the variable."""
    errors: list[str] = []
    for key in ("warning_percent", "critical_free_percent"):
        value = _number(settings.get(key))
        if value is None or not 1 <= value <= 99:
            errors.append("observability_%s must be a percentage between 1 and 99, got %r" % (key, settings.get(key)))
    ratio = _number(settings.get("error_5xx_ratio"))
    if ratio is None or not 0 < ratio < 1:
        errors.append("observability_error_5xx_ratio must be a share between 0 and 1 (0.05 is 5 %%), got %r"
                      % settings.get("error_5xx_ratio"))
    hours = _number(settings.get("backup_max_age_hours"))
    if hours is None or hours < 1:
        errors.append("observability_backup_max_age_hours must be 1 or more, got %r" % settings.get("backup_max_age_hours"))
    for variable, value in (settings.get("durations") or {}).items():
        if not isinstance(value, str) or not value or not DURATION.match(value):
            errors.append("%s must be a Prometheus duration such as 15d, 12h or 30s, got %r" % (variable, value))
    size = settings.get("retention_size")
    if not isinstance(size, str) or not SIZE.match(size):
        errors.append("observability_retention_size must be a size such as 500MB or 2GB, got %r" % size)
    buckets = settings.get("latency_buckets", [1])
    numbers = [_number(bucket) for bucket in buckets] if isinstance(buckets, list) else [None]
    if not numbers or None in numbers or any(b <= 0 for b in numbers) or numbers != sorted(set(numbers)):
        errors.append("observability_latency_buckets must be positive seconds in rising order, got %r" % (buckets,))
    for variable, needed in (("observability_images", SERVICES), ("observability_memory", SERVICES),
                             ("observability_cpus", SERVICES), ("observability_ports", SERVICES + ("mtail_log",))):
        given = settings.get(variable[len("observability_"):], {s: 1 for s in needed})
        missing = [key for key in needed if not isinstance(given, Mapping) or given.get(key) in (None, "")]
        if missing:
            errors.append("%s needs an entry for each of %s (the whole mapping, not only the changed ones); "
                          "missing: %s" % (variable, ", ".join(needed), ", ".join(missing)))
    ports = settings.get("ports", {})
    for key, value in (ports.items() if isinstance(ports, Mapping) else [("", ports)]):
        if not (str(value).isdigit() and 1 <= int(value) <= 65535):
            errors.append("observability_ports.%s must be a port number (1-65535), got %r" % (key, value))
    names = []
    for index, receiver in enumerate(settings.get("receivers") or []):
        where = "observability_receivers[%d]" % index
        if not isinstance(receiver, Mapping):
            errors.append("%s must be a mapping with name and type, got %r" % (where, receiver))
            continue
        name, kind = receiver.get("name"), receiver.get("type")
        if not name or not re.match(r"^[A-Za-z0-9_.-]+$", str(name)):
            errors.append("%s.name must be a word (letters, digits, - _ .), got %r" % (where, name))
        elif name in names or name == "nobody":
            errors.append("%s.name %r is taken (each receiver needs its own name, and nobody is the default)"
                          % (where, name))
        names.append(name)
        if kind not in RECEIVER_TYPES:
            errors.append("%s.type must be one of %s, got %r" % (where, ", ".join(RECEIVER_TYPES), kind))
        elif kind == "email":
            if not re.match(r"^[^@\s]+@[^@\s]+$", str(receiver.get("to") or "")):
                errors.append("%s.to must be an email address, got %r" % (where, receiver.get("to")))
            if not (settings.get("smtp") or {}).get("smarthost") or not (settings.get("smtp") or {}).get("from"):
                errors.append("%s is an email receiver: observability_smtp needs smarthost (host:port) and from" % where)
        elif not re.match(r"^https?://[^/\s]+", str(receiver.get("url") or "")):
            errors.append("%s.url must be an http(s) URL, got %r" % (where, receiver.get("url")))
        levels = receiver.get("levels", list(LEVELS))
        if not isinstance(levels, list) or not levels or any(level not in LEVELS for level in levels):
            errors.append("%s.levels must be a list of %s, got %r" % (where, ", ".join(LEVELS), levels))
    return errors


def promql_any_of(values: Any) -> str:
    """A PromQL label matcher's regular expression (the text between its double quotes) that
    matches any of `values` exactly: RE2's special characters escaped, then backslashes and quotes
    escaped again for PromQL's string."""
    escaped = [re.sub(r"([.+*?()\[\]{}|^$\\])", r"\\\1", str(value)) for value in values or []]
    return "|".join(escaped).replace("\\", "\\\\").replace('"', '\\"')


class FilterModule:
    """nasai.stack's filters of the observability role."""

    def filters(self) -> dict[str, Any]:
        return {"observability_errors": observability_errors, "promql_any_of": promql_any_of}
