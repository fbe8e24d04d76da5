"""stack_files' helpers on a real directory, and the filters that feed it."""

import os
import pwd

import pytest

from ansible_collections.nasai.stack.plugins.filter.stack import config_fingerprints, present_contents, tls_writes
from ansible_collections.nasai.stack.plugins.modules import stack_files


def test_write_atomic_replaces_content_and_sets_the_mode(tmp_path):
    path = tmp_path / "a.conf"
    path.write_text("old")
    stack_files.write_atomic(str(path), b"new\n", None, None, 0o640)
    assert path.read_text() == "new\n"
    assert os.stat(path).st_mode & 0o7777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.conf"]


def test_attrs_differ_names_what_differs(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    os.chmod(path, 0o644)
    st = os.stat(path)
    assert stack_files.attrs_differ(st, st.st_uid, st.st_gid, 0o644) == []
    assert stack_files.attrs_differ(st, st.st_uid + 1, None, 0o600) == ["owner", "mode"]


def test_resolve_id_by_number_and_name():
    assert stack_files.resolve_id("1000", None, "user") == 1000
    assert stack_files.resolve_id("root", lambda n: 0, "user") == 0
    with pytest.raises(ValueError, match="no user named ghost"):
        stack_files.resolve_id("ghost", lambda n: {}[n], "user")


def test_config_fingerprints_cover_only_each_services_own_files():
    sums = {"/p/config/proxy/a.cfg": "1", "/p/config/proxy/tls/server.crt": "2", "/p/config/files/c.conf": "3"}
    first = config_fingerprints(sums, "/p/config", ["proxy", "files", "ai"])
    changed = config_fingerprints(dict(sums, **{"/p/config/proxy/tls/server.crt": "9"}), "/p/config",
                                  ["proxy", "files", "ai"])
    assert first["files"] == changed["files"] and first["ai"] == changed["ai"]
    assert first["proxy"] != changed["proxy"]


def test_present_contents_and_tls_writes():
    paths = {"ca_key": "/t/ca.key", "server_crt": "/c/server.crt"}
    current = present_contents(paths, {"/t/ca.key": "KEY", "/c/server.crt": None})
    assert current == {"ca_key": "KEY"}
    writes = tls_writes({"ca_key": "KEY", "server_crt": "CRT"}, paths)
    assert [(w["path"], w["mode"], w["secret"]) for w in writes] == [
        ("/t/ca.key", "0600", True), ("/c/server.crt", "0644", False)]


def test_remove_files_and_empty_directories_but_keeps_a_full_one(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "empty").mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.conf").write_text("user data")
    assert stack_files.remove(str(tmp_path / "f"), False, check=True) == "removed"
    assert (tmp_path / "f").exists(), "check mode changes nothing"
    assert stack_files.remove(str(tmp_path / "f"), False, check=False) == "removed"
    assert stack_files.remove(str(tmp_path / "empty"), False, check=False) == "removed"
    assert stack_files.remove(str(full), False, check=False) == "kept"
    assert (full / "keep.conf").read_text() == "user data"
    assert stack_files.remove(str(tmp_path / "missing"), False, check=False) == ""
    assert stack_files.remove(str(full), True, check=False) == "removed"
    assert list(tmp_path.iterdir()) == []


def test_a_new_path_for_an_owner_gets_the_owners_primary_group():
    me = pwd.getpwuid(os.getuid())
    assert stack_files.wanted_attrs({"owner": str(me.pw_uid)}, new=True)[:2] == (me.pw_uid, me.pw_gid)
    # An existing path keeps its group unless one is given.
    assert stack_files.wanted_attrs({"owner": str(me.pw_uid)}, new=False)[:2] == (me.pw_uid, None)
