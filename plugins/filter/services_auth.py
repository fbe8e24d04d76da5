# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the services role's users (services_users): each user's key, where a generated key is
kept, the reverse proxy's map of keys to users, and the checks of the list."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
KEY = re.compile(r"^\S{24,256}$")
ROLES = ("admin", "user", "api")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def user_key_path(name: str, project_dir: str) -> str:
    """Where the NAS keeps the generated key of user `name`."""
    return "%s/secrets/user-%s.key" % (project_dir.rstrip("/"), name)


def user_key_paths(users: Sequence[Mapping[str, Any]], project_dir: str) -> list[str]:
    """The key files of the users whose key the inventory does not give (generated, kept on the NAS)."""
    return [user_key_path(user["name"], project_dir) for user in users if not user.get("key")]


def user_keys(users: Sequence[Mapping[str, Any]], secrets: Mapping[str, Optional[str]],
              project_dir: str) -> list[dict[str, str]]:
    """Each user as {name, role, key}: the key the inventory gives, else the one `secrets`
    ({path: text}: kept on the NAS or generated on this run) holds for it, stripped."""
    out = []
    for user in users:
        key = user.get("key") or (secrets.get(user_key_path(user["name"], project_dir)) or "").strip()
        out.append({"name": user["name"], "role": user["role"], "key": key})
    return out


def auth_map(users: Sequence[Mapping[str, str]], engine: str) -> str:
    """The reverse proxy's map of credentials to "name role", one line per credential.

    haproxy: the SHA-256 (hex) of each key, so the file holds no key; the proxy hashes what the client
    sent (a Bearer token or a Basic password) and checks a Basic user name against the name.
    nginx: the whole Authorization header, "Bearer <key>" and "Basic base64(name:key)", as a map
    include (open-source nginx cannot hash)."""
    lines = []
    for user in sorted(users, key=lambda u: u["name"]):
        if not user.get("key"):
            continue
        who = "%s %s" % (user["name"], user["role"])
        if engine == "haproxy":
            lines.append("%s %s" % (hashlib.sha256(user["key"].encode("utf-8")).hexdigest(), who))
        else:
            basic = base64.b64encode(("%s:%s" % (user["name"], user["key"])).encode("utf-8")).decode("ascii")
            lines.append('"Bearer %s" "%s";' % (user["key"], who))
            lines.append('"Basic %s" "%s";' % (basic, who))
    return "\n".join(lines) + "\n"


def chat_accounts(users: Sequence[Mapping[str, str]], inventory: Sequence[Mapping[str, Any]],
                  domain: str) -> list[dict[str, str]]:
    """The chat front-end's accounts: each user of `users` ({name, role, key}, as user_keys gives them)
    with role admin or user, as {name, email, password, role}: the e-mail the inventory's entry gives
    (`inventory`: services_users), else <name>@`domain`; the password is the user's key."""
    emails = {user.get("name"): user.get("email") for user in inventory if isinstance(user, Mapping)}
    return [{"name": user["name"], "email": (emails.get(user["name"]) or "%s@%s" % (user["name"], domain)).lower(),
             "password": user["key"], "role": user["role"]}
            for user in users if user["role"] in ("admin", "user")]


def user_errors(users: Any) -> list[str]:
    """What is wrong with services_users, each message naming the variable and what it expected."""
    if not isinstance(users, Sequence) or isinstance(users, (str, bytes)):
        return ["services_users must be a list of {name, role, key}"]
    errors, names, keys = [], set(), set()
    for index, user in enumerate(users):
        where = "services_users[%d]" % index
        if not isinstance(user, Mapping):
            errors.append("%s must be a mapping with name, role and key" % where)
            continue
        name = str(user.get("name", ""))
        if not NAME.match(name):
            errors.append("%s.name must be a lower-case letter then up to 31 of a-z 0-9 _ -, got %r"
                          % (where, name))
        elif name in names:
            errors.append("services_users names must be unique, %s appears twice" % name)
        names.add(name)
        if user.get("role") not in ROLES:
            errors.append("%s.role must be one of %s, got %r" % (where, ", ".join(ROLES), user.get("role")))
        email = user.get("email")
        if email is not None and not EMAIL.match(str(email)):
            errors.append("%s.email (user %s) must be an e-mail address (name@domain), got %r" % (where, name, email))
        key = user.get("key")
        if key:
            if not KEY.match(str(key)):
                errors.append("%s.key (user %s) must be 24 to 256 characters without spaces" % (where, name))
            elif key in keys:
                errors.append("%s.key (user %s) is another user's key: each user needs their own" % (where, name))
            keys.add(key)
    return errors


class FilterModule:
    """nasai.stack's filters of the stack's users."""

    def filters(self) -> dict[str, Any]:
        return {"user_key_paths": user_key_paths, "user_keys": user_keys, "auth_map": auth_map,
                "user_errors": user_errors, "chat_accounts": chat_accounts}
