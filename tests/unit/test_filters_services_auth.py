"""The services role's users: keys from the inventory or the NAS, the proxy's map of keys, the checks."""

import base64
import hashlib

import pytest

from ansible_collections.nasai.stack.plugins.filter.services_auth import (
    auth_map, chat_accounts, user_errors, user_key_paths, user_keys,
)

PROJECT = "/srv/services"
USERS = [{"name": "root", "role": "admin", "key": "k" * 24}, {"name": "bob", "role": "user", "key": None},
         {"name": "ci", "role": "api"}]


def test_only_users_without_a_key_get_a_key_file():
    assert user_key_paths(USERS, PROJECT) == [f"{PROJECT}/secrets/user-bob.key", f"{PROJECT}/secrets/user-ci.key"]


def test_a_given_key_wins_a_generated_one_is_read_stripped():
    secrets = {f"{PROJECT}/secrets/user-bob.key": "generated-bob\n"}
    assert user_keys(USERS, secrets, PROJECT) == [
        {"name": "root", "role": "admin", "key": "k" * 24},
        {"name": "bob", "role": "user", "key": "generated-bob"},
        {"name": "ci", "role": "api", "key": ""}]


def test_haproxy_map_holds_hashes_never_keys_and_skips_users_without_one():
    users = [{"name": "root", "role": "admin", "key": "secret-root"}, {"name": "ci", "role": "api", "key": ""}]
    text = auth_map(users, "haproxy")
    assert text == "%s root admin\n" % hashlib.sha256(b"secret-root").hexdigest()
    assert "secret-root" not in text


def test_nginx_map_holds_bearer_and_basic_headers():
    text = auth_map([{"name": "bob", "role": "user", "key": "kb"}], "nginx")
    basic = base64.b64encode(b"bob:kb").decode()
    assert text.splitlines() == ['"Bearer kb" "bob user";', f'"Basic {basic}" "bob user";']


def test_good_users_have_no_errors():
    assert user_errors(USERS) == []


@pytest.mark.parametrize(("users", "message"), [
    ("admin", "services_users must be a list"),
    ([{"name": "Bob", "role": "user"}], "services_users[0].name must be a lower-case letter"),
    ([{"name": "../x", "role": "user"}], "services_users[0].name must be a lower-case letter"),
    ([{"name": "a", "role": "user"}, {"name": "a", "role": "api"}], "services_users names must be unique, a appears"),
    ([{"name": "a", "role": "root"}], "services_users[0].role must be one of admin, user, api, got 'root'"),
    ([{"name": "a", "role": "user", "key": "short"}], "services_users[0].key (user a) must be 24 to 256"),
    ([{"name": "a", "role": "user", "key": "x" * 20 + " y" * 3}], "must be 24 to 256 characters without spaces"),
    ([{"name": "a", "role": "user", "key": "x" * 24}, {"name": "b", "role": "api", "key": "x" * 24}],
     "services_users[1].key (user b) is another user's key"),
])
def test_bad_users_are_named_with_what_was_expected(users, message):
    assert any(message in error for error in user_errors(users)), user_errors(users)


def test_chat_accounts_are_the_admins_and_users_with_their_email_and_key_as_password():
    users = [{"name": "admin", "role": "admin", "key": "k" * 40}, {"name": "alice", "role": "user", "key": "a" * 30},
             {"name": "robot", "role": "api", "key": "r" * 30}]
    inventory = [{"name": "admin", "role": "admin"}, {"name": "alice", "role": "user", "email": "Alice@Example.ORG"},
                 {"name": "robot", "role": "api"}]
    assert chat_accounts(users, inventory, "nas.lan") == [
        {"name": "admin", "email": "admin@nas.lan", "password": "k" * 40, "role": "admin"},
        {"name": "alice", "email": "alice@example.org", "password": "a" * 30, "role": "user"}]


@pytest.mark.parametrize("email", ["alice", "alice@", "@nas.lan", "alice@nas", "a b@nas.lan"])
def test_user_errors_name_an_email_that_is_not_an_address(email):
    errors = user_errors([{"name": "alice", "role": "user", "email": email}])
    assert errors == ["services_users[0].email (user alice) must be an e-mail address (name@domain), got %r" % email]
