# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the backup role: the schedule (cron fields, a systemd calendar, the per-host spread),
the repositories of the 3-2-1 rule as the job's configuration, and the checks of its input."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Mapping, Sequence
from urllib.parse import quote

# cron's fields: name, lowest, highest.
FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7)]
SHORTCUTS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
             "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# Off-site backends of restic; a local path (or local:) is never off-site.
OFFSITE_SCHEMES = ("rest:", "sftp:", "s3:", "b2:", "azure:", "gs:", "swift:", "rclone:")
RETENTION_KEYS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def _names_to_numbers(token: str, field: str) -> str:
    names = {"month": MONTHS, "weekday": WEEKDAYS}.get(field)
    if not names:
        return token
    base = 1 if field == "month" else 0
    return re.sub(r"[a-zA-Z]{3}", lambda m: str(names.index(m.group(0).lower()) + base)
                  if m.group(0).lower() in names else m.group(0), token)


def _check_field(token: str, field: str, low: int, high: int) -> str | None:
    """Why a cron field is not valid, or None."""
    for part in _names_to_numbers(token, field).split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if not match:
            return "%s field %r is not a number, range, list or step" % (field, token)
        numbers = [int(n) for n in match.group(2, 3) if n is not None]
        if any(n < low or n > high for n in numbers):
            return "%s field %r is outside %d-%d" % (field, token, low, high)
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            return "%s field %r is a backwards range" % (field, token)
        if match.group(4) is not None and int(match.group(4)) == 0:
            return "%s field %r has a step of 0" % (field, token)
    return None


def schedule_error(expression: Any) -> str | None:
    """Why `expression` is not a cron schedule (five fields or an @shortcut), or None."""
    if not isinstance(expression, str) or not expression.strip():
        return "it is empty"
    text = SHORTCUTS.get(expression.strip(), expression.strip())
    if text.startswith("@"):
        return "%s is not one of %s" % (text, ", ".join(SHORTCUTS))
    parts = text.split()
    if len(parts) != 5:
        return "it has %d fields, cron needs 5 (minute hour day month weekday)" % len(parts)
    for token, (field, low, high) in zip(parts, FIELDS):
        why = _check_field(token, field, low, high)
        if why:
            return why
    if parts[2] != "*" and parts[4] != "*":
        return "it sets both the day of the month and the weekday (cron runs on either): set one of them"
    return None


def host_offset(host: str, spread_minutes: int) -> int:
    """The same minutes for the same host on every run, spread evenly over the fleet."""
    if spread_minutes <= 0:
        return 0
    return int(hashlib.sha256(host.encode()).hexdigest(), 16) % spread_minutes


def _expand(token: str, field: str) -> list[int]:
    """The numbers a (valid) cron field names; for the weekday, 7 is Sunday (0)."""
    low, high = {name: (lo, hi) for name, lo, hi in FIELDS}[field]
    if field == "weekday":
        high = 6
    found = set()
    for part in _names_to_numbers(token, field).split(","):
        part, step = (part.split("/") + [""])[:2]
        if part == "*":
            first, last = low, high
        elif "-" in part:
            first, last = (int(n) for n in part.split("-"))
        else:
            first = int(part)
            last = high if step else first
        found.update(range(first, last + 1, int(step or 1)))
    return sorted({0 if n == 7 and field == "weekday" else n for n in found})


def _calendar_field(token: str, field: str) -> str:
    """A cron field in systemd.time's calendar syntax."""
    token = _names_to_numbers(token, field)
    if field == "weekday":
        days = _expand(token, "weekday")
        if token == "*" or len(days) == 7:
            return ""
        # systemd's week runs Monday to Sunday (Sun..Tue would be refused): runs of days in that
        # order, as ranges.
        order = [d for d in (1, 2, 3, 4, 5, 6, 0) if d in days]
        runs: list[list[int]] = []
        for day in order:
            if runs and (runs[-1][-1] % 7) + 1 == (day or 7):
                runs[-1].append(day)
            else:
                runs.append([day])
        return ",".join(DAYS[r[0]] if len(r) == 1 else "%s..%s" % (DAYS[r[0]], DAYS[r[-1]]) for r in runs)
    out = []
    for part in token.split(","):
        step = None
        if "/" in part:
            part, step = part.split("/")
        if part == "*":
            part = str({"minute": 0, "hour": 0, "day": 1, "month": 1}[field]) if step else "*"
        elif "-" in part:
            part = part.replace("-", "..")
        out.append(part + ("/" + step if step else ""))
    return ",".join(out)


def backup_schedule(expression: str, host: str, spread_minutes: int = 0) -> dict[str, Any]:
    """The schedule for one host: cron fields, a systemd OnCalendar value, and the spread.

    When the minute and the hour are single numbers, the host's offset (0 to spread_minutes - 1,
    from a hash of its name) moves the time itself, so the cron entry shows when this NAS runs.
    Otherwise the job waits the offset first (delay_seconds)."""
    why = schedule_error(expression)
    if why:
        raise ValueError("not a cron schedule (%s): %r" % (why, expression))
    minute, hour, day, month, weekday = SHORTCUTS.get(expression.strip(), expression.strip()).split()
    offset = host_offset(host, int(spread_minutes))
    delay = 0
    total = int(hour) * 60 + int(minute) + offset if minute.isdigit() and hour.isdigit() else None
    if total is not None and (total < 24 * 60 or (day == "*" and month == "*")):
        minute, hour = str(total % 60), str(total // 60 % 24)
        if total >= 24 * 60 and weekday != "*":
            # Past midnight: the next day of the week.
            weekday = ",".join(str(d) for d in sorted((d + 1) % 7 for d in _expand(weekday, "weekday")))
    else:
        # Not a single time of day (or past midnight on chosen days of a month): wait instead.
        delay = offset * 60
    days = _calendar_field(weekday, "weekday")
    calendar = "%s*-%s-%s %s:%s:00" % (
        days + " " if days else "", _calendar_field(month, "month"), _calendar_field(day, "day"),
        _calendar_field(hour, "hour"), _calendar_field(minute, "minute"))
    return {"minute": minute, "hour": hour, "day": day, "month": month, "weekday": weekday,
            "on_calendar": calendar, "offset_minutes": offset, "delay_seconds": delay}


def offsite_target(repository: str) -> dict[str, Any]:
    """The backend of an off-site restic repository and, for SFTP, the user, host, port and path."""
    kind = repository.split(":", 1)[0] if ":" in repository else "local"
    target: dict[str, Any] = {"kind": kind}
    if kind == "sftp":
        rest = repository[len("sftp:"):]
        match = re.fullmatch(r"//(?:([^@/]+)@)?([^:/]+)(?::(\d+))?/(.*)", rest) \
            or re.fullmatch(r"(?:([^@/]+)@)?([^:/]+)():(.*)", rest)
        if match:
            user, host, port, path = match.groups()
            target.update({"user": user or "root", "host": host, "port": int(port or 22), "path": path})
    return target


def _with_credentials(repository: str, user: Any, password: Any) -> str:
    """rest:https://host/... with user:password inserted (percent-encoded)."""
    if not user:
        return repository
    scheme, rest = repository.split("://", 1)
    rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
    return "%s://%s:%s@%s" % (scheme, quote(str(user), safe=""), quote(str(password or ""), safe=""), rest)


def _secret(path: str, content: str) -> dict[str, str]:
    return {"path": path, "content": content.rstrip("\n") + "\n", "mode": "0600"}


def backup_repositories(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The repositories of the job's configuration: local (copy 2) and offsite (copy 3). `files` are
    the secret files each needs on the NAS (the repository string, credentials included, and the
    backend's environment, mode 0600); the rest (the files' paths, restic options) is safe to show
    and goes to the job's configuration."""
    config_dir = settings["config_dir"]
    repos = []
    local = settings.get("local_repository") or ""
    if local:
        repos.append({"name": "local", "leg": "local", "repository_file": "%s/local.repository" % config_dir,
                      "env_file": None, "options": [],
                      "files": [_secret("%s/local.repository" % config_dir, local)]})
    offsite = settings.get("offsite_repository") or ""
    if offsite:
        target = offsite_target(offsite)
        options: list[str] = []
        repository = offsite
        if target["kind"] == "rest":
            repository = "rest:" + _with_credentials(offsite[len("rest:"):], settings.get("offsite_rest_user"),
                                                     settings.get("offsite_rest_password"))
        if target["kind"] == "sftp" and "host" in target:
            options += ["-o", "sftp.command=ssh -F %s/ssh_config -l %s %s -s sftp"
                        % (config_dir, target["user"], target["host"])]
        if settings.get("offsite_cacert"):
            options += ["--cacert", "%s/offsite-ca.pem" % config_dir]
        env = dict(settings.get("offsite_env") or {})
        files = [_secret("%s/offsite.repository" % config_dir, repository)]
        if env:
            files.append(_secret("%s/offsite.env" % config_dir, "".join("%s=%s\n" % item for item in sorted(env.items()))))
        repos.append({"name": "offsite", "leg": "offsite", "repository_file": "%s/offsite.repository" % config_dir,
                      "env_file": "%s/offsite.env" % config_dir if env else None, "options": options,
                      "target": target, "files": files})
    return repos


def _same_or_inside(path: str, parent: str) -> bool:
    path, parent = os.path.normpath(path), os.path.normpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def backup_errors(settings: Mapping[str, Any], media: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Why the backup settings cannot work or break the 3-2-1 rule; each message names the variable.
    `media` is path_media's answer for [data path, local repository] when both are set."""
    errors: list[str] = []
    if settings.get("state", "present") != "present":
        return errors
    allow = bool(settings.get("allow_incomplete"))
    local = settings.get("local_repository") or ""
    offsite = settings.get("offsite_repository") or ""
    password = settings.get("password") or ""
    if len(str(password)) < 12:
        errors.append("backup_password must be set to the repositories' password (12 characters or more, from "
                      "ansible-vault), got %s" % ("nothing" if not password else "%d characters" % len(str(password))))
    if not local and not offsite:
        errors.append("backup_local_repository and backup_offsite_repository are both empty: nothing to back up to")
    elif not local and not allow:
        errors.append("backup_local_repository is empty: 3-2-1 needs copy 2, a repository on a second medium of the "
                      "NAS (another disk or mount), or backup_allow_incomplete: true to go on without it")
    elif not offsite and not allow:
        errors.append("backup_offsite_repository is empty: 3-2-1 needs copy 3 off-site (rest:, sftp: or s3:), or "
                      "backup_allow_incomplete: true to go on without it")
    if local:
        if local.startswith("local:"):
            local = local[len("local:"):]
        if not os.path.isabs(local) or ".." in local.split("/"):
            errors.append("backup_local_repository must be an absolute path without '..', got %r" % local)
        for path in settings.get("paths") or []:
            if _same_or_inside(local, str(path)):
                errors.append("backup_local_repository (%s) is inside a path it backs up (%s): the repository would "
                              "back up itself" % (local, path))
    if offsite:
        if not str(offsite).startswith(OFFSITE_SCHEMES):
            errors.append("backup_offsite_repository must be an off-site restic repository (%s...), got %r: a path "
                          "on the NAS is not off-site" % (", ".join(OFFSITE_SCHEMES), offsite))
        if local and os.path.normpath(str(offsite).replace("local:", "", 1)) == os.path.normpath(local):
            errors.append("backup_offsite_repository is the same repository as backup_local_repository (%s)" % local)
        target = offsite_target(str(offsite))
        if target["kind"] == "rest" and not re.match(r"rest:https?://[^/]", str(offsite)):
            errors.append("backup_offsite_repository %r is not rest:http(s)://host:port/path/" % offsite)
        if target["kind"] == "sftp":
            if "host" not in target:
                errors.append("backup_offsite_repository %r is not sftp:user@host:/path or sftp://user@host:port//path"
                              % offsite)
            if not settings.get("offsite_sftp_key"):
                errors.append("backup_offsite_sftp_key must hold the SSH private key for %s (from ansible-vault)"
                              % offsite)
            if not settings.get("offsite_sftp_known_hosts") and not settings.get("offsite_sftp_accept_new"):
                errors.append("backup_offsite_sftp_known_hosts must hold the off-site server's host key line "
                              "(ssh-keyscan), or backup_offsite_sftp_accept_new: true to trust it on first use")
        if bool(settings.get("offsite_rest_user")) != bool(settings.get("offsite_rest_password")):
            errors.append("backup_offsite_rest_user and backup_offsite_rest_password go together (one is empty)")
    if len(media) == 2 and local:
        data, repo = media
        if data["device"] == repo["device"] and not settings.get("allow_same_medium"):
            errors.append("backup_local_repository (%s) is on the same filesystem as the data path %s (%s, mounted at "
                          "%s): copy 2 must be on a second medium, another disk or mount"
                          % (local, data["path"], data["source"], data["mount_point"]))
    for variable in ("schedule", "check_schedule"):
        why = schedule_error(settings.get(variable))
        if why:
            errors.append("backup_%s is not a cron schedule (%s), got %r" % (variable, why, settings.get(variable)))
    retention = settings.get("retention") or {}
    negative = [k for k in RETENTION_KEYS if int(retention.get(k) or 0) < 0]
    if negative:
        errors.append("%s must not be negative" % ", ".join("backup_" + k for k in negative))
    if not any(int(retention.get(k) or 0) > 0 for k in RETENTION_KEYS) and not retention.get("keep_within"):
        errors.append("backup_keep_daily, backup_keep_weekly, backup_keep_monthly are all 0 and backup_keep_within "
                      "is empty: forget would keep no snapshot; keep at least one")
    within = retention.get("keep_within")
    if within and not re.fullmatch(r"(\d+[ymdh])+", str(within)):
        errors.append("backup_keep_within must be a restic duration (years y, months m, days d, hours h) such as "
                      "2d, 7d or 1y2m, got %r" % within)
    subset = str(settings.get("check_subset") or "")
    if not re.fullmatch(r"(100|[1-9]?\d(\.\d+)?)%|\d+/\d+|\d+[KMGT]?", subset):
        errors.append("backup_check_subset must be a share such as 10%%, 1/5 or a size such as 500M, got %r" % subset)
    for db in settings.get("databases") or []:
        if db.get("kind") not in ("sqlite", "pause"):
            errors.append("backup_databases: kind of %s must be sqlite or pause, got %r" % (db.get("path"), db.get("kind")))
        if db.get("kind") == "pause" and not db.get("container"):
            errors.append("backup_databases: %s is copied with its container paused: name the container"
                          % db.get("path"))
    return errors


class FilterModule:
    """nasai.stack's filters of the backup role."""

    def filters(self) -> dict[str, Any]:
        return {"backup_schedule": backup_schedule, "backup_repositories": backup_repositories,
                "backup_errors": backup_errors}
