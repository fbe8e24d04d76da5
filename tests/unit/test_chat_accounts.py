"""chat_accounts: Open WebUI's accounts follow the list of users, against a fake Open WebUI API."""

import json
import http.server
import threading
import uuid

import pytest

from ansible_collections.nasai.stack.plugins.modules import chat_accounts


class FakeOpenWebUI(http.server.BaseHTTPRequestHandler):
    """The endpoints the module uses: sign-in (token = the user's id), the user list, add, update."""

    users = {}

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def caller(self):
        token = self.headers.get("Authorization", "")[len("Bearer "):]
        return self.users.get(token)

    def do_GET(self):
        if self.path == "/api/v1/users/all":
            if not self.caller() or self.caller()["role"] != "admin":
                return self.answer(401, {"detail": "no"})
            return self.answer(200, {"users": [{k: v for k, v in u.items() if k != "password"}
                                               for u in self.users.values()], "total": len(self.users)})
        return self.answer(404, {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/v1/auths/signin":
            for user in self.users.values():
                if user["email"] == body["email"] and user["password"] == body["password"]:
                    return self.answer(200, {"token": user["id"], "role": user["role"]})
            return self.answer(400, {"detail": "wrong"})
        if not self.caller() or self.caller()["role"] != "admin":
            return self.answer(401, {"detail": "no"})
        if self.path == "/api/v1/auths/add":
            new = dict(body, id=str(uuid.uuid4()))
            self.users[new["id"]] = new
            return self.answer(200, new)
        if self.path.startswith("/api/v1/users/") and self.path.endswith("/update"):
            self.users[self.path.split("/")[4]].update(body)
            return self.answer(200, {})
        return self.answer(404, {})

    def log_message(self, *args):
        pass


@pytest.fixture()
def webui():
    FakeOpenWebUI.users = {"a1": {"id": "a1", "name": "admin", "email": "admin@nas.lan", "role": "admin",
                                  "password": "admin-key-0123456789abcdef"}}
    server = http.server.HTTPServer(("127.0.0.1", 0), FakeOpenWebUI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


ADMIN = {"name": "admin", "email": "admin@nas.lan", "password": "admin-key-0123456789abcdef", "role": "admin"}
ALICE = {"name": "alice", "email": "alice@nas.lan", "password": "alice-key-0123456789abcdef", "role": "user"}


def roles():
    return {u["email"]: u["role"] for u in FakeOpenWebUI.users.values()}


def test_missing_accounts_are_created_and_a_second_run_changes_nothing(webui):
    result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], {})
    assert result == {"created": ["alice@nas.lan"], "updated": [], "locked": []}
    assert roles() == {"admin@nas.lan": "admin", "alice@nas.lan": "user"}
    again, same = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], state)
    assert again == {"created": [], "updated": [], "locked": []} and same == state


def test_check_mode_reports_without_changing(webui):
    result, _state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], {}, True)
    assert result["created"] == ["alice@nas.lan"] and "alice@nas.lan" not in roles()


def test_a_changed_role_or_key_is_updated_and_a_removed_user_is_locked_not_deleted(webui):
    _result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], {})
    promoted = dict(ALICE, role="admin", password="alice-new-key-0123456789ab")
    result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, promoted], state)
    assert result["updated"] == ["alice@nas.lan"] and roles()["alice@nas.lan"] == "admin"
    assert chat_accounts.sign_in(webui, "alice@nas.lan", promoted["password"])
    result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN], state)
    assert result["locked"] == ["alice@nas.lan"] and roles()["alice@nas.lan"] == "pending"


def test_only_the_admin_signs_in_and_a_rerun_uses_its_recorded_session(webui, monkeypatch):
    seen = []
    real = chat_accounts.sign_in
    monkeypatch.setattr(chat_accounts, "sign_in", lambda base, email, password: seen.append(email) or real(
        base, email, password))
    _result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], {})
    assert seen == ["admin@nas.lan"] and state["token"] == "a1"
    result, again = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], state)
    assert seen == ["admin@nas.lan"] and again == state and result["updated"] == []


def test_a_session_open_webui_refuses_signs_in_again(webui):
    _result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], {})
    expired = dict(state, token="expired")
    result, again = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN, ALICE], expired)
    assert result == {"created": [], "updated": [], "locked": []} and again["token"] == "a1"


def test_a_refused_key_is_tried_once_when_it_is_the_one_given_before(webui, monkeypatch):
    _result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN], {})
    FakeOpenWebUI.users["a1"]["password"] = "changed-in-the-ui-0123456789"
    seen = []
    real = chat_accounts.sign_in
    monkeypatch.setattr(chat_accounts, "sign_in", lambda base, email, password: seen.append(password) or real(
        base, email, password))
    with pytest.raises(chat_accounts.SignInRefused, match="admin@nas.lan did not accept its key"):
        chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN], dict(state, token="expired"))
    assert seen == [ADMIN["password"]]


def test_a_recorded_session_is_not_used_for_another_admin_key(webui):
    _result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN], {})
    rotated = dict(ADMIN, password="admin-rotated-0123456789abc")
    result, state = chat_accounts.sync(webui, "admin@nas.lan", rotated["password"], [rotated], state)
    # The rotated key did not sign in (not set yet): the admin's password is updated to it.
    assert result["updated"] == ["admin@nas.lan"]
    assert chat_accounts.sign_in(webui, "admin@nas.lan", rotated["password"])
    # The next run with the rotated key changes nothing (its session is the one recorded).
    result, again = chat_accounts.sync(webui, "admin@nas.lan", rotated["password"], [rotated], state)
    assert result == {"created": [], "updated": [], "locked": []} and again == state


def test_accounts_it_did_not_make_are_left_alone(webui):
    FakeOpenWebUI.users["b1"] = {"id": "b1", "name": "bob", "email": "bob@nas.lan", "role": "user", "password": "x"}
    result, _state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN], {})
    assert result == {"created": [], "updated": [], "locked": []} and roles()["bob@nas.lan"] == "user"


def test_a_rotated_admin_key_signs_in_with_the_one_given_before_and_takes_the_new_one(webui):
    _result, state = chat_accounts.sync(webui, "admin@nas.lan", ADMIN["password"], [ADMIN], {})
    rotated = dict(ADMIN, password="admin-rotated-0123456789abc")
    result, state = chat_accounts.sync(webui, "admin@nas.lan", rotated["password"], [rotated], state)
    assert result["updated"] == ["admin@nas.lan"] and state["admin_password"] == rotated["password"]
    assert chat_accounts.sign_in(webui, "admin@nas.lan", rotated["password"])
    with pytest.raises(chat_accounts.SignInRefused, match="admin@nas.lan did not accept its key"):
        chat_accounts.sync(webui, "admin@nas.lan", "never-set-0123456789abcdef", [ADMIN], {})
