#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the chat front-end's (Open WebUI's) accounts in line with the inventory's users."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: chat_accounts
short_description: Keep Open WebUI's accounts in line with a list of users, through its API
version_added: 0.5.0
description:
  - Signs in to Open WebUI as its admin and makes its accounts what O(users) says - each user present
    with its name, role and password - without touching accounts it does not manage.
  - A user missing from Open WebUI is created; one whose name or role differs is updated; one whose
    password differs from the one this module set last (its SHA-256, kept in O(state_file)) gets the
    password given. Only the admin signs in, at most once a run, as Open WebUI limits sign-ins per
    e-mail; a run with the admin key of the last run uses the session recorded then (O(state_file))
    while Open WebUI accepts it, and signs in only when it does not. A new session recorded is no change.
  - An account this module made before (recorded in O(state_file)) whose user is no longer in O(users)
    gets the role C(pending), which locks it out and keeps its chats; nothing is ever deleted.
  - The admin signs in with O(admin_password), else with the password the module last gave it (kept in
    O(state_file), readable by root only), so rotating the admin's key works like any other user's.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    description: Run a second time with the same options on an unchanged host, it reports no change.
    support: full
  platform:
    platforms: posix
options:
  url:
    description: Base URL of Open WebUI, as reached from the host (loopback in host mode).
    type: str
    required: true
  admin_email:
    description: The sign-in e-mail of the admin that manages the accounts (the first admin).
    type: str
    required: true
  admin_password:
    description: Its password.
    type: str
    required: true
  users:
    description: The accounts wanted.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The name Open WebUI shows.
        type: str
        required: true
      email:
        description: The sign-in e-mail.
        type: str
        required: true
      password:
        description: The password (the user's key).
        type: str
        required: true
      role:
        description: The account's role.
        type: str
        required: true
        choices: [admin, user]
  state_file:
    description: JSON file (mode 0600) recording the e-mails this module manages, the SHA-256 of the
      passwords it set, the admin's last password and the admin's session.
    type: path
    required: true
  timeout:
    description: Seconds to wait for Open WebUI to answer its first request.
    type: int
    default: 120
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
author: nasai.stack contributors (@nasai)
"""

EXAMPLES = r"""
- name: Keep the chat's accounts in line with services_users
  nasai.stack.chat_accounts:
    url: http://127.0.0.1:8080
    admin_email: admin@nas.lan
    admin_password: "{{ admin_key }}"
    users:
      - {name: alice, email: alice@nas.lan, password: "{{ alice_key }}", role: user}
    state_file: /srv/data/services/secrets/chat_accounts.json
  no_log: true
"""

RETURN = r"""
created:
  description: E-mails of the accounts created.
  type: list
  elements: str
  returned: always
updated:
  description: E-mails of the accounts whose name, role or password changed.
  type: list
  elements: str
  returned: always
locked:
  description: E-mails of the accounts set to C(pending) (their user left O(users)).
  type: list
  elements: str
  returned: always
"""

import hashlib
import json
import os
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ApiError(Exception):
    """An answer of Open WebUI other than 2xx, with its status."""

    def __init__(self, status, text):
        super().__init__("HTTP %s: %s" % (status, text[:300]))
        self.status = status


def call(url, method="GET", body=None, token=None, timeout=30):
    """JSON request to Open WebUI; its decoded answer."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    # The standard library, not module_utils.urls: plain HTTP on loopback needs nothing more, and the
    # module ships and starts faster on every run without it. Never through the host's proxy.
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with DIRECT.open(request, timeout=timeout) as answer:
            text = answer.read().decode()
    except urllib.error.HTTPError as error:
        raise ApiError(error.code, error.read().decode(errors="replace")) from error
    return json.loads(text) if text else None


def sign_in(base, email, password):
    """The session token of email/password, or None when Open WebUI refuses them."""
    try:
        return call(base + "/api/v1/auths/signin", "POST", {"email": email, "password": password})["token"]
    except ApiError as error:
        if error.status in (400, 401, 403):
            return None
        raise


def wait_ready(base, timeout):
    """Wait until Open WebUI answers /health (it may just have been started)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            call(base + "/health", timeout=5)
            return
        except (OSError, ApiError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def read_state(path):
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    return {"managed": list(state.get("managed", [])), "admin_password": state.get("admin_password"),
            "hashes": dict(state.get("hashes", {})), "token": state.get("token")}


def write_state(path, state):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, sort_keys=True)
    os.replace(tmp, path)


class SignInRefused(Exception):
    """The admin's password, and the one given before, do not sign in."""


def digest(password):
    return hashlib.sha256(password.encode()).hexdigest()


def sync(base, admin_email, admin_password, users, state, check_mode=False):
    """Make Open WebUI's accounts what `users` says; return (result, new state).

    Open WebUI limits sign-ins per e-mail (15 in 3 minutes) and each costs a bcrypt check: only the
    admin signs in, at most once, and a rerun with the same admin key uses the session recorded at the
    last run while Open WebUI accepts it. Another user's password is set when their key differs from
    the one recorded (its SHA-256) at the last run."""
    admin_email = admin_email.lower()
    wanted = {user["email"].lower(): user for user in users}
    hashes = dict(state.get("hashes", {}))
    result = {"created": [], "updated": [], "locked": []}
    token = listing = None
    if state.get("token") and state.get("admin_password") == admin_password:
        try:
            listing = call(base + "/api/v1/users/all", token=state["token"])
            token = state["token"]
        except ApiError as error:
            if error.status not in (401, 403):
                raise
    if token is None:
        token = sign_in(base, admin_email, admin_password)
    # Signed in with this very key, now or at the run the recorded session is from: it is current.
    admin_current = token is not None
    # Else the password this module gave the admin last, when it is another one.
    if token is None and state.get("admin_password") not in (None, admin_password):
        token = sign_in(base, admin_email, state["admin_password"])
    if token is None:
        raise SignInRefused("the chat's admin %s did not accept its key, nor the one given before: set its "
                            "password in Open WebUI to the admin's key, then run again" % admin_email)
    if listing is None:
        listing = call(base + "/api/v1/users/all", token=token)
    accounts = {user["email"].lower(): user for user in
                (listing.get("users", []) if isinstance(listing, dict) else listing)}
    for email, user in sorted(wanted.items()):
        account = accounts.get(email)
        if account is None:
            result["created"].append(email)
            if not check_mode:
                body = {"name": user["name"], "email": email, "password": user["password"], "role": user["role"]}
                call(base + "/api/v1/auths/add", "POST", body, token=token)
            hashes[email] = digest(user["password"])
            continue
        change = {key: user[key] for key in ("role", "name") if account.get(key) != user[key]}
        stale = not admin_current if email == admin_email else hashes.get(email) != digest(user["password"])
        if stale:
            change["password"] = user["password"]
        if change:
            result["updated"].append(email)
            if not check_mode:
                call(base + "/api/v1/users/%s/update" % account["id"], "POST", change, token=token)
        hashes[email] = digest(user["password"])
    for email in sorted(set(state.get("managed", [])) - set(wanted)):
        account = accounts.get(email)
        if account is not None and account.get("role") != "pending" and email != admin_email:
            result["locked"].append(email)
            if not check_mode:
                call(base + "/api/v1/users/%s/update" % account["id"], "POST", {"role": "pending"}, token=token)
    managed = sorted(set(wanted) | (set(state.get("managed", [])) & set(accounts)))
    new_state = {"managed": managed, "admin_password": admin_password,
                 "hashes": {email: hashes[email] for email in managed if email in hashes},
                 "token": token}
    return result, new_state


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "admin_email": {"type": "str", "required": True},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            # Only the passwords are secret: names and e-mails stay readable in the result.
            "users": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "email": {"type": "str", "required": True},
                "password": {"type": "str", "required": True, "no_log": True},
                "role": {"type": "str", "required": True, "choices": ["admin", "user"]},
            }},
            "state_file": {"type": "path", "required": True},
            "timeout": {"type": "int", "default": 120},
        },
        supports_check_mode=True,
    )
    params = module.params
    base = params["url"].rstrip("/")
    state = read_state(params["state_file"])
    try:
        wait_ready(base, params["timeout"])
        result, new_state = sync(base, params["admin_email"], params["admin_password"], params["users"], state,
                                 module.check_mode)
    except SignInRefused as error:
        module.fail_json(msg=str(error))
    except (OSError, ApiError, KeyError, ValueError) as error:
        module.fail_json(msg="Open WebUI at %s: %s" % (base, error))
    # The recorded session is a cache: a new one is written, but is no change of the accounts.
    changed = bool(result["created"] or result["updated"] or result["locked"]) or \
        dict(new_state, token=None) != dict(state, token=None)
    if new_state != state and not module.check_mode:
        write_state(params["state_file"], new_state)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
