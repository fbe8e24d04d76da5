"""The backup role's job script (roles/backup/files/nasai-backup): secrets kept out of messages,
restic's output read, drills compared, databases copied consistently, metrics, and whole runs against
a fake restic that proves each leg of the 3-2-1 rule goes on when the other fails."""

import argparse
import fcntl
import importlib.machinery
import importlib.util
import json
import os
import sqlite3
import stat
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.nasai.stack.plugins.filter.backup import backup_repositories

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "backup" / "files" / "nasai-backup"
PASSWORD = "correct horse battery staple"
REST_PASSWORD = "s3cr3t-pass"
ENV_SECRET = "env-secret-value"
OFFSITE = "rest:https://backup.example.net:8000/nas1/"
SUMMARY = {"message_type": "summary", "files_new": 2, "files_changed": 1, "files_unmodified": 5,
           "data_added": 12345, "total_files_processed": 8, "snapshot_id": "0123456789abcdef0123456789abcdef"}


def load(config_path=None):
    """The script as a module; NASAI_BACKUP_CONFIG is read when it is imported."""
    old = os.environ.get("NASAI_BACKUP_CONFIG")
    if config_path:
        os.environ["NASAI_BACKUP_CONFIG"] = str(config_path)
    try:
        loader = importlib.machinery.SourceFileLoader("nasai_backup", str(SCRIPT))
        spec = importlib.util.spec_from_loader("nasai_backup", loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return module
    finally:
        if config_path:
            if old is None:
                del os.environ["NASAI_BACKUP_CONFIG"]
            else:
                os.environ["NASAI_BACKUP_CONFIG"] = old


job = load()


@pytest.fixture(autouse=True)
def keep_umask():
    """main() sets the umask 077 of the job; the test process gets its own back."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


# --- a fake restic ----------------------------------------------------------------------------------

FAKE_RESTIC = r'''#!%(python)s
"""A fake restic: a directory per repository, a log line per call; env FAKE_RESTIC_* makes it fail."""
import hashlib, json, os, sys

args = sys.argv[1:]
repo = open(os.environ["RESTIC_REPOSITORY_FILE"]).read().strip()
password = open(os.environ["RESTIC_PASSWORD_FILE"]).read().strip()
options = []
while args and args[0].startswith("-"):
    options += args[:2]
    args = args[2:]
with open(os.environ["FAKE_RESTIC_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "command": args, "options": options, "repo": repo,
                          "password": password, "cache": os.environ.get("RESTIC_CACHE_DIR"),
                          "env_secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
                          "restic_password": os.environ.get("RESTIC_PASSWORD")}) + "\n")
store = os.path.join(os.environ["FAKE_RESTIC_STORE"], hashlib.sha256(repo.encode()).hexdigest()[:12])


def matches(name):
    return os.environ.get(name) and os.environ[name] in repo


if matches("FAKE_RESTIC_DOWN"):
    sys.stderr.write("Fatal: unable to open repository at %%s: Post \"%%s\": dial tcp 192.0.2.1:8000: "
                     "connect: connection refused\n" %% (repo, repo))
    sys.exit(1)
if args == ["cat", "config"]:
    if os.path.exists(os.path.join(store, "config")):
        print(json.dumps({"version": 2}))
        sys.exit(0)
    sys.stderr.write("Fatal: unable to open config file: Stat: stat %%s/config: no such file or directory\n" %% repo)
    sys.exit(10)
if args == ["init"]:
    os.makedirs(store, exist_ok=True)
    open(os.path.join(store, "config"), "w").write("{}")
    print("created restic repository at %%s" %% repo)
    sys.exit(0)
if not os.path.exists(os.path.join(store, "config")):
    sys.stderr.write("Fatal: repository does not exist: unable to open config file\n")
    sys.exit(10)
if args[0] == "backup":
    if matches("FAKE_RESTIC_FAIL_BACKUP"):
        sys.stderr.write("Fatal: unable to save snapshot: Post \"%%s/data\": connection refused\n" %% repo)
        sys.exit(1)
    if matches("FAKE_RESTIC_FULL"):
        sys.stderr.write("Fatal: unable to save snapshot: write %%s/data/ab/abcd: no space left on device\n" %% repo)
        sys.exit(1)
    print(json.dumps({"message_type": "status", "percent_done": 0.5}))
    print(json.dumps(%(summary)s))
    if matches("FAKE_RESTIC_INCOMPLETE"):
        sys.stderr.write("error: open /srv/data/locked: permission denied\n")
        sys.exit(3)
    sys.exit(0)
if args[0] == "forget":
    if matches("FAKE_RESTIC_FAIL_FORGET"):
        sys.stderr.write("Fatal: unable to create exclusive lock: repository is already locked\n")
        sys.exit(11)
    sys.exit(0)
if args[0] == "check":
    if matches("FAKE_RESTIC_FAIL_CHECK"):
        print("using temporary cache in /tmp/restic-check-cache-1")
        print("check snapshots, trees and blobs")
        print("error: pack 8fa2c1d1: not referenced in any index")
        print("Fatal: repository contains errors")
        sys.exit(1)
    print("no errors were found")
    sys.exit(0)
sys.stderr.write("fake restic: unknown command %%r\n" %% (args,))
sys.exit(2)
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake restic's path, its log and the environment it reads."""
    restic = tmp_path / "bin" / "restic"
    restic.parent.mkdir()
    restic.write_text(FAKE_RESTIC % {"python": sys.executable, "summary": repr(SUMMARY)})
    restic.chmod(0o755)
    monkeypatch.setenv("FAKE_RESTIC_LOG", str(tmp_path / "restic.log"))
    monkeypatch.setenv("FAKE_RESTIC_STORE", str(tmp_path / "store"))
    for name in ("FAKE_RESTIC_DOWN", "FAKE_RESTIC_FAIL_BACKUP", "FAKE_RESTIC_FULL", "FAKE_RESTIC_INCOMPLETE",
                 "FAKE_RESTIC_FAIL_FORGET", "FAKE_RESTIC_FAIL_CHECK", "RESTIC_PASSWORD", "RESTIC_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    return restic


def calls(tmp_path):
    path = tmp_path / "restic.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def make_config(tmp_path, restic, offsite=OFFSITE, env=True):
    """The job's configuration as the role makes it: the repositories and their secret files from the
    role's filter, written to a configuration directory."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "password").write_text(PASSWORD + "\n")
    settings = {"config_dir": str(etc), "local_repository": str(tmp_path / "backup" / "restic"),
                "offsite_repository": offsite, "offsite_rest_user": "nas1", "offsite_rest_password": REST_PASSWORD,
                "offsite_env": {"AWS_SECRET_ACCESS_KEY": ENV_SECRET} if env else {}}
    repositories = backup_repositories(settings)
    for repo in repositories:
        for secret in repo["files"]:
            Path(secret["path"]).write_text(secret["content"])
            os.chmod(secret["path"], int(secret["mode"], 8))
    data = tmp_path / "data" / "services"
    (data / "config").mkdir(parents=True)
    (data / "config" / "app.yml").write_text("a: 1\n")
    state = tmp_path / "state"
    (state / "databases").mkdir(parents=True)   # the role makes it
    return {
        "restic": str(restic), "host": "nas1", "tags": ["nasai"], "password_file": str(etc / "password"),
        "repositories": [{k: v for k, v in r.items() if k not in ("files", "target")} for r in repositories],
        "paths": [str(data), str(tmp_path / "models-not-there"), str(state / "databases")],
        "excludes": ["*.tmp", str(data / "files" / "*.db")], "databases": [], "databases_dir": str(state / "databases"),
        "docker": "/bin/false", "state_dir": str(state),
        "metrics_file": str(tmp_path / "metrics" / "nasai_backup.prom"),
        "lock_file": str(tmp_path / "nasai-backup.lock"),
        "retention": {"keep_within": "2d", "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 0}, "prune": True,
        "check_subset": "10%",
    }


def status(config, name):
    return json.loads(Path(config["state_dir"], "status", name + ".json").read_text())


def run(config):
    return job.cmd_run(config, argparse.Namespace(delay=0))


# --- secrets ----------------------------------------------------------------------------------------

def test_secrets_are_scrubbed(tmp_path, fake):
    config = make_config(tmp_path, fake)
    secrets = job.secrets_of(config)
    url = "rest:https://nas1:%s@backup.example.net:8000/nas1/" % REST_PASSWORD
    assert PASSWORD in secrets and url in secrets and REST_PASSWORD in secrets and ENV_SECRET in secrets
    text = ("Fatal: unable to open repository at %s: wrong password %s; key %s; again %s"
            % (url, PASSWORD, ENV_SECRET, REST_PASSWORD))
    scrubbed = job.scrub(text, secrets)
    assert scrubbed == "Fatal: unable to open repository at ***: wrong password ***; key ***; again ***"
    assert job.scrub("nothing secret here", secrets) == "nothing secret here"


def test_secrets_of_missing_files_and_short_values(tmp_path):
    (tmp_path / "password").write_text("abc\n")
    (tmp_path / "env").write_text("# comment\nAWS_REGION=eu\nNO_EQUALS\nKEY=long-enough\n")
    config = {"password_file": str(tmp_path / "password"),
              "repositories": [{"repository_file": str(tmp_path / "missing"), "env_file": str(tmp_path / "env")},
                               {"repository_file": None, "env_file": None}]}
    # Shorter than 4 characters would scrub ordinary words: left out.
    assert job.secrets_of(config) == ["long-enough"]
    assert job.read_env_file(str(tmp_path / "env")) == {"AWS_REGION": "eu", "KEY": "long-enough"}
    assert job.read_env_file(str(tmp_path / "missing")) == {} and job.read_env_file(None) == {}


def test_a_url_without_password_adds_only_itself(tmp_path):
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "repo").write_text("rest:https://backup.example.net/nas1/\n")
    config = {"password_file": str(tmp_path / "password"),
              "repositories": [{"repository_file": str(tmp_path / "repo")}]}
    assert job.secrets_of(config) == [PASSWORD, "rest:https://backup.example.net/nas1/"]


def test_restic_env_reads_secrets_from_files_only(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("RESTIC_PASSWORD", "from-the-environment")
    monkeypatch.setenv("RESTIC_REPOSITORY", "/elsewhere")
    config = make_config(tmp_path, fake)
    offsite = config["repositories"][1]
    env = job.restic_env(config, offsite)
    assert "RESTIC_PASSWORD" not in env and "RESTIC_REPOSITORY" not in env
    assert env["RESTIC_PASSWORD_FILE"] == config["password_file"]
    assert env["RESTIC_REPOSITORY_FILE"] == offsite["repository_file"]
    assert env["RESTIC_CACHE_DIR"] == os.path.join(config["state_dir"], "cache")
    assert env["AWS_SECRET_ACCESS_KEY"] == ENV_SECRET


# --- restic's output --------------------------------------------------------------------------------

def test_summary_of_picks_the_summary_line():
    stdout = "\n".join([
        "not json at all",
        json.dumps({"message_type": "status", "percent_done": 0.1}),
        json.dumps({"message_type": "summary", "data_added": 1}),
        json.dumps({"message_type": "status", "percent_done": 1}),
        json.dumps(SUMMARY),
        json.dumps(["a", "list"]),
        "{broken",
        "",
    ])
    assert job.summary_of(stdout) == SUMMARY
    assert job.summary_of(json.dumps({"message_type": "status"})) is None
    assert job.summary_of("") is None


LOCAL = {"name": "local", "leg": "local"}
REMOTE = {"name": "offsite", "leg": "offsite"}


@pytest.mark.parametrize("repo, rc, stderr, message", [
    (LOCAL, 1, "Fatal: unable to save snapshot: write /srv/backup/restic/data/ab/abcd: no space left on device\n",
     "the local medium is full (no space left on device); no snapshot was made"),
    (REMOTE, 1, "Fatal: unable to save snapshot: No Space Left On Device",
     "the offsite medium is full (no space left on device); no snapshot was made"),
    (REMOTE, 1, "repository ok\nFatal: Post \"https://h/\": dial tcp 192.0.2.1:8000: connect: connection refused\n",
     "the offsite repository cannot be reached: Fatal: Post \"https://h/\": dial tcp 192.0.2.1:8000: connect: "
     "connection refused"),
    (REMOTE, 1, "ssh: connect to host h port 22: No route to host\n",
     "the offsite repository cannot be reached: ssh: connect to host h port 22: No route to host"),
    (REMOTE, 1, "Fatal: i/o timeout", "the offsite repository cannot be reached: Fatal: i/o timeout"),
    (REMOTE, 1, "subprocess ssh: Connection closed by 192.0.2.1 port 22",
     "the offsite repository cannot be reached: subprocess ssh: Connection closed by 192.0.2.1 port 22"),
    (LOCAL, 1, "Fatal: unable to open repository at /srv/x: nope",
     "the local repository cannot be reached: Fatal: unable to open repository at /srv/x: nope"),
    (LOCAL, 12, "Fatal: wrong password or no key found\n", "restic exited 12: Fatal: wrong password or no key found"),
    (LOCAL, 1, "", "restic exited 1: no output"),
])
def test_explain(repo, rc, stderr, message):
    assert job.explain(repo, rc, stderr) == message


# --- the drill's comparison -------------------------------------------------------------------------

def test_compare_reports_what_changed_since_the_snapshot(tmp_path):
    restored, live = tmp_path / "restored" / "srv", tmp_path / "srv"
    for root in (restored, live):
        (root / "config").mkdir(parents=True)
        (root / "config" / "same.yml").write_text("same\n")
        (root / "link").symlink_to("config/same.yml")
    (restored / "edited.txt").write_text("before\n")
    (live / "edited.txt").write_text("after!\n")          # same size, other content
    (restored / "grown.txt").write_text("a")
    (live / "grown.txt").write_text("ab")
    (restored / "gone.txt").write_text("x")
    (restored / "olddir").mkdir()
    (restored / "olddir" / "inner").write_text("x")
    (live / "new.txt").write_text("x")
    (restored / "kind").write_text("a file then")
    (live / "kind").mkdir()
    (live / "files").mkdir()
    (live / "files" / "app.db").write_text("live database")
    (live / "files" / "app.db-wal").write_text("live database")
    (live / "relinked").symlink_to("config")
    (restored / "relinked").symlink_to("elsewhere")
    report = job.compare(str(restored), str(live), [str(live / "files" / "app.db") + s for s in ("", "-wal")])
    assert report == {
        "identical": 1,
        "changed": [str(live / n) for n in ("edited.txt", "grown.txt", "kind", "relinked")],
        "deleted_since": [str(live / n) for n in ("gone.txt", "olddir", "olddir/inner")],
        "new_since": [str(live / n) for n in ("files", "new.txt")],
    }


def test_compare_ignores_patterns_only_for_what_is_new(tmp_path):
    restored, live = tmp_path / "r", tmp_path / "l"
    (restored / ".hist" / "a").mkdir(parents=True)
    (live / ".hist" / "a").mkdir(parents=True)
    (live / ".hist" / "b").mkdir(parents=True)
    (live / ".hist" / "a" / "up2k.db").write_text("x")
    (live / ".hist" / "b" / "up2k.db").write_text("x")
    (live / ".hist" / "b" / "up2k.db-shm").write_text("x")
    report = job.compare(str(restored), str(live), [str(live) + "/.hist/*/up2k.db" + s for s in ("", "-shm")])
    assert report == {"identical": 0, "changed": [], "deleted_since": [], "new_since": [str(live / ".hist" / "b")]}


def test_compare_when_either_side_is_missing(tmp_path):
    (tmp_path / "restored").mkdir()
    (tmp_path / "restored" / "f").write_text("x")
    # In neither the snapshot nor the live data (a path the run left out): no difference.
    assert job.compare(str(tmp_path / "nothing"), str(tmp_path / "live"), []) == {
        "identical": 0, "changed": [], "deleted_since": [], "new_since": []}
    assert job.compare(str(tmp_path / "restored"), str(tmp_path / "live"), []) == {
        "identical": 0, "changed": [], "deleted_since": [str(tmp_path / "live" / "f")], "new_since": []}
    (tmp_path / "live").mkdir()
    assert job.compare(str(tmp_path / "nothing"), str(tmp_path / "live"), []) == {
        "identical": 0, "changed": [], "deleted_since": [], "new_since": [str(tmp_path / "live")]}


def test_tree(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("12345")
    (tmp_path / "l").symlink_to("d/f")
    assert job.tree(str(tmp_path)) == {"d": ("dir", None), "d/f": ("file", 5), "l": ("link", "d/f")}


# --- databases --------------------------------------------------------------------------------------

def wal_database(path, rows):
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE files (name TEXT, size INTEGER)")
    db.executemany("INSERT INTO files VALUES (?, ?)", rows)
    db.commit()
    db.close()


def test_copy_databases_is_consistent_while_a_write_is_open(tmp_path):
    hist = tmp_path / "data" / "files" / ".hist"
    for volume in ("music", "photos"):
        (hist / volume).mkdir(parents=True)
        wal_database(hist / volume / "up2k.db", [("%s-%d" % (volume, n), n) for n in range(100)])
    (hist / "empty").mkdir()
    writer = sqlite3.connect(str(hist / "music" / "up2k.db"), isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO files VALUES ('uncommitted', 1000)")
    writer.execute("DELETE FROM files WHERE size < 50")
    config = {"databases": [{"path": str(hist / "*" / "up2k.db"), "kind": "sqlite"}],
              "databases_dir": str(tmp_path / "state" / "databases")}
    try:
        assert job.copy_databases(config) == []
    finally:
        writer.execute("COMMIT")
        writer.close()
    for volume in ("music", "photos"):
        copy = Path(config["databases_dir"] + str(hist / volume / "up2k.db"))
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert not Path(str(copy) + ".tmp").exists()
        db = sqlite3.connect("file:%s?mode=ro" % copy, uri=True)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # The last committed state: the open transaction's changes are not in it.
        assert db.execute("SELECT count(*), min(size) FROM files").fetchone() == (100, 0)
        assert db.execute("SELECT count(*) FROM files WHERE name = 'uncommitted'").fetchone() == (0,)
        db.close()
    assert not Path(config["databases_dir"] + str(hist / "empty")).exists()
    # The next run replaces the copy with the now committed state.
    assert job.copy_databases(config) == []
    copy = config["databases_dir"] + str(hist / "music" / "up2k.db")
    assert sqlite3.connect(copy).execute("SELECT count(*) FROM files").fetchone() == (51,)


def test_a_database_not_made_yet_is_no_error(tmp_path, capsys):
    config = {"databases": [{"path": str(tmp_path / "files" / ".hist" / "*" / "up2k.db"), "kind": "sqlite"},
                            {"path": str(tmp_path / "files" / "filebrowser.db"), "kind": "sqlite"}],
              "databases_dir": str(tmp_path / "copies")}
    assert job.copy_databases(config) == []
    assert "does not exist yet" in capsys.readouterr().out
    assert not (tmp_path / "copies").exists()
    assert job.copy_databases({"databases_dir": str(tmp_path / "copies")}) == []


def test_a_database_that_cannot_be_copied_is_reported(tmp_path):
    (tmp_path / "notes.db").write_text("this is not a SQLite database, it is text " * 100)
    config = {"databases": [{"path": str(tmp_path / "notes.db"), "kind": "sqlite"}],
              "databases_dir": str(tmp_path / "copies")}
    errors = job.copy_databases(config)
    assert len(errors) == 1 and errors[0].startswith("database %s could not be copied: " % (tmp_path / "notes.db"))
    assert not Path(str(tmp_path / "copies") + str(tmp_path / "notes.db")).exists()


def test_a_paused_copy_resumes_the_container_whatever_happens(tmp_path):
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho \"$@\" >> %s\n" % (tmp_path / "docker.log"))
    docker.chmod(0o755)
    (tmp_path / "filebrowser.db").write_bytes(b"\x01" * 3000000)
    (tmp_path / "broken.db").mkdir()   # a directory cannot be read: the copy fails
    config = {"docker": str(docker), "databases_dir": str(tmp_path / "copies"),
              "databases": [{"path": str(tmp_path / "filebrowser.db"), "kind": "pause", "container": "nasai-files"},
                            {"path": str(tmp_path / "broken.db"), "kind": "pause", "container": "nasai-other"}]}
    errors = job.copy_databases(config)
    assert len(errors) == 1 and str(tmp_path / "broken.db") in errors[0]
    assert (tmp_path / "docker.log").read_text().splitlines() == [
        "pause nasai-files", "unpause nasai-files", "pause nasai-other", "unpause nasai-other"]
    copy = Path(str(tmp_path / "copies") + str(tmp_path / "filebrowser.db"))
    assert copy.read_bytes() == b"\x01" * 3000000 and stat.S_IMODE(copy.stat().st_mode) == 0o600


# --- metrics ----------------------------------------------------------------------------------------

def test_write_metrics(tmp_path):
    config = {"state_dir": str(tmp_path / "state"), "metrics_file": str(tmp_path / "prom" / "nasai_backup.prom"),
              "repositories": [{"name": "local", "leg": "local"}, {"name": "offsite", "leg": "offsite"},
                               {"name": "never", "leg": "offsite"}]}
    job.write_status(config, "local", {"repository": "local", "last_success": 1700000000, "last_run": 1700000100,
                                       "last_exit_code": 0, "duration_seconds": 12.5, "bytes_added": 4096,
                                       "check_last_success": 1690000000, "check_last_exit_code": 0, "error": None})
    job.write_status(config, "offsite", {"repository": "offsite", "last_success": 1600000000,
                                         "last_run": 1700000200, "last_exit_code": 1, "duration_seconds": 3.25,
                                         "error": "the offsite repository cannot be reached"})
    job.write_metrics(config)
    text = (tmp_path / "prom" / "nasai_backup.prom").read_text()
    assert text == "\n".join([
        "# HELP nasai_backup_last_success_timestamp_seconds Unix time of the last successful backup to the "
        "repository.",
        "# TYPE nasai_backup_last_success_timestamp_seconds gauge",
        'nasai_backup_last_success_timestamp_seconds{repository="local",leg="local"} 1700000000',
        'nasai_backup_last_success_timestamp_seconds{repository="offsite",leg="offsite"} 1600000000',
        "# HELP nasai_backup_last_run_timestamp_seconds Unix time the last backup run to the repository ended.",
        "# TYPE nasai_backup_last_run_timestamp_seconds gauge",
        'nasai_backup_last_run_timestamp_seconds{repository="local",leg="local"} 1700000100',
        'nasai_backup_last_run_timestamp_seconds{repository="offsite",leg="offsite"} 1700000200',
        "# HELP nasai_backup_last_exit_code Exit status of restic in the last backup run (0 is success).",
        "# TYPE nasai_backup_last_exit_code gauge",
        'nasai_backup_last_exit_code{repository="local",leg="local"} 0',
        'nasai_backup_last_exit_code{repository="offsite",leg="offsite"} 1',
        "# HELP nasai_backup_last_duration_seconds Duration of the last backup run to the repository.",
        "# TYPE nasai_backup_last_duration_seconds gauge",
        'nasai_backup_last_duration_seconds{repository="local",leg="local"} 12.5',
        'nasai_backup_last_duration_seconds{repository="offsite",leg="offsite"} 3.25',
        "# HELP nasai_backup_last_added_bytes Bytes the last successful backup added to the repository.",
        "# TYPE nasai_backup_last_added_bytes gauge",
        'nasai_backup_last_added_bytes{repository="local",leg="local"} 4096',
        "# HELP nasai_backup_check_last_success_timestamp_seconds Unix time of the last successful check of the "
        "repository.",
        "# TYPE nasai_backup_check_last_success_timestamp_seconds gauge",
        'nasai_backup_check_last_success_timestamp_seconds{repository="local",leg="local"} 1690000000',
        "# HELP nasai_backup_check_last_exit_code Exit status of the last check of the repository (0 is success).",
        "# TYPE nasai_backup_check_last_exit_code gauge",
        'nasai_backup_check_last_exit_code{repository="local",leg="local"} 0',
    ]) + "\n"
    assert stat.S_IMODE((tmp_path / "prom" / "nasai_backup.prom").stat().st_mode) == 0o644
    assert [p.name for p in (tmp_path / "prom").iterdir()] == ["nasai_backup.prom"]


def test_no_metrics_file_writes_nothing(tmp_path):
    config = {"state_dir": str(tmp_path), "metrics_file": "", "repositories": [{"name": "local", "leg": "local"}]}
    job.write_metrics(config)
    assert list(tmp_path.iterdir()) == []


def test_a_broken_status_file_reads_as_none(tmp_path):
    config = {"state_dir": str(tmp_path)}
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "local.json").write_text("{half")
    assert job.read_status(config, "local") == {"repository": "local"}
    assert job.read_status(config, "offsite") == {"repository": "offsite"}


# --- whole runs against the fake restic -------------------------------------------------------------

def test_run_backs_up_every_leg(tmp_path, fake, capsys):
    config = make_config(tmp_path, fake)
    before = int(time.time())
    assert run(config) == 0
    out = capsys.readouterr().out
    assert "local: repository initialised" in out and "offsite: repository initialised" in out
    assert "local: snapshot 01234567, 12345 bytes added" in out and "every leg completed" in out
    assert "not found, left out of this run: %s" % (tmp_path / "models-not-there") in out
    for name in ("local", "offsite"):
        found = status(config, name)
        assert found["repository"] == name and found["leg"] == name
        assert found["last_exit_code"] == 0 and found["error"] is None
        assert found["last_success"] >= before and found["last_run"] == found["last_success"]
        assert found["bytes_added"] == 12345 and found["snapshot"] == SUMMARY["snapshot_id"]
        assert (found["files_new"], found["files_changed"]) == (2, 1)
        assert Path(config["state_dir"], "initialised", name).exists()
    log = calls(tmp_path)
    local_repo, offsite_repo = str(tmp_path / "backup" / "restic"), (
        "rest:https://nas1:%s@backup.example.net:8000/nas1/" % REST_PASSWORD)
    assert [c["command"][0] for c in log if c["repo"] == local_repo] == ["cat", "init", "backup", "forget"]
    assert [c["command"][0] for c in log if c["repo"] == offsite_repo] == ["cat", "init", "backup", "forget"]
    for call in log:
        # No secret on a command line; restic reads them from the files and the environment file.
        assert all(PASSWORD not in a and REST_PASSWORD not in a and ENV_SECRET not in a for a in call["argv"])
        assert call["password"] == PASSWORD and call["restic_password"] is None
        assert call["cache"] == os.path.join(config["state_dir"], "cache")
        assert call["env_secret"] == (ENV_SECRET if call["repo"] == offsite_repo else None)
    backup = next(c for c in log if c["command"][0] == "backup")
    assert backup["command"] == ["backup", "--json", "--host", "nas1", "--one-file-system", "--tag", "nasai",
                                 "--exclude", "*.tmp", "--exclude", config["excludes"][1],
                                 config["paths"][0], config["paths"][2]]
    forget = next(c for c in log if c["command"][0] == "forget")
    assert forget["command"] == ["forget", "--host", "nas1", "--group-by", "host,paths", "--tag", "nasai",
                                 "--keep-daily", "7", "--keep-weekly", "4", "--keep-within", "2d", "--prune"]
    metrics = Path(config["metrics_file"]).read_text()
    assert 'nasai_backup_last_exit_code{repository="offsite",leg="offsite"} 0' in metrics
    assert 'nasai_backup_last_added_bytes{repository="local",leg="local"} 12345' in metrics
    # The second run finds the repositories initialised and asks no more.
    assert run(config) == 0
    assert sorted(c["command"][0] for c in calls(tmp_path)[len(log):]) == ["backup", "backup", "forget", "forget"]


def test_the_repository_options_come_before_the_command(tmp_path, fake):
    config = make_config(tmp_path, fake, offsite="sftp:backup@offsite.example.net:/srv/restic")
    assert run(config) == 0
    options = {c["repo"]: c["options"] for c in calls(tmp_path)}
    assert options["sftp:backup@offsite.example.net:/srv/restic"] == [
        "-o", "sftp.command=ssh -F %s/ssh_config -l backup offsite.example.net -s sftp" % (tmp_path / "etc")]
    assert options[str(tmp_path / "backup" / "restic")] == []


def test_a_failing_leg_does_not_stop_the_other(tmp_path, fake, monkeypatch, capsys):
    config = make_config(tmp_path, fake)
    assert run(config) == 0
    job.write_status(config, "offsite", dict(status(config, "offsite"), last_success=1000))
    monkeypatch.setenv("FAKE_RESTIC_FAIL_BACKUP", "backup.example.net")
    second = int(time.time())
    assert run(config) == 1
    out = capsys.readouterr().out
    assert "failed legs: offsite (the others completed)" in out
    local, offsite = status(config, "local"), status(config, "offsite")
    assert local["error"] is None and local["last_exit_code"] == 0 and local["last_success"] >= second
    assert offsite["last_success"] == 1000 and offsite["last_exit_code"] == 1
    assert offsite["error"].startswith("the offsite repository cannot be reached: Fatal: unable to save snapshot: ")
    assert REST_PASSWORD not in offsite["error"] and REST_PASSWORD not in out
    assert "Post \"***/data\": connection refused" in offsite["error"]
    metrics = Path(config["metrics_file"]).read_text()
    assert 'nasai_backup_last_exit_code{repository="offsite",leg="offsite"} 1' in metrics
    assert 'nasai_backup_last_success_timestamp_seconds{repository="offsite",leg="offsite"} 1000' in metrics
    assert 'nasai_backup_last_exit_code{repository="local",leg="local"} 0' in metrics
    # Only the leg that made a snapshot forgets old ones.
    last = calls(tmp_path)[-3:]
    assert sorted(c["command"][0] for c in last) == ["backup", "backup", "forget"]


def test_an_unreachable_leg_from_the_start(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_RESTIC_DOWN", "backup.example.net")
    config = make_config(tmp_path, fake)
    assert run(config) == 1
    local, offsite = status(config, "local"), status(config, "offsite")
    assert local["error"] is None and local["bytes_added"] == 12345
    assert offsite["last_exit_code"] == 1 and "last_success" not in offsite
    assert offsite["error"].startswith("the offsite repository cannot be reached: Fatal: unable to open repository at "
                                       "***: Post \"***\": dial tcp")
    assert REST_PASSWORD not in capsys.readouterr().out
    assert not Path(config["state_dir"], "initialised", "offsite").exists()
    # It is initialised once it can be reached.
    monkeypatch.delenv("FAKE_RESTIC_DOWN")
    assert run(config) == 0
    assert Path(config["state_dir"], "initialised", "offsite").exists()
    assert status(config, "offsite")["error"] is None


def test_a_full_medium(tmp_path, fake, monkeypatch):
    config = make_config(tmp_path, fake)
    monkeypatch.setenv("FAKE_RESTIC_FULL", str(tmp_path / "backup" / "restic"))
    assert run(config) == 1
    assert status(config, "local")["error"] == ("the local medium is full (no space left on device); "
                                                "no snapshot was made")
    assert status(config, "offsite")["error"] is None


def test_an_incomplete_snapshot_is_a_failure_with_its_id(tmp_path, fake, monkeypatch):
    config = make_config(tmp_path, fake)
    monkeypatch.setenv("FAKE_RESTIC_INCOMPLETE", str(tmp_path / "backup" / "restic"))
    assert run(config) == 1
    local = status(config, "local")
    assert local["last_exit_code"] == 3 and "last_success" not in local
    assert local["snapshot"] == SUMMARY["snapshot_id"]
    assert local["error"] == "snapshot %s is incomplete: some files could not be read" % SUMMARY["snapshot_id"]


def test_a_failed_forget_fails_the_leg_after_its_snapshot(tmp_path, fake, monkeypatch):
    config = make_config(tmp_path, fake)
    monkeypatch.setenv("FAKE_RESTIC_FAIL_FORGET", "backup.example.net")
    assert run(config) == 1
    offsite = status(config, "offsite")
    assert offsite["last_exit_code"] == 11 and offsite["snapshot"] == SUMMARY["snapshot_id"]
    assert offsite["error"] == ("forget/prune failed: restic exited 11: Fatal: unable to create exclusive lock: "
                                "repository is already locked")


def test_a_failed_database_copy_fails_the_run(tmp_path, fake, capsys):
    config = make_config(tmp_path, fake)
    (tmp_path / "broken.db").write_text("not a database " * 100)
    config["databases"] = [{"path": str(tmp_path / "broken.db"), "kind": "sqlite"}]
    assert run(config) == 1
    out = capsys.readouterr().out
    assert "FAILED: database %s could not be copied" % (tmp_path / "broken.db") in out
    assert "every leg completed, but a database copy failed" in out
    assert status(config, "local")["error"] is None and status(config, "offsite")["error"] is None


def test_the_database_copies_are_taken_before_the_backup(tmp_path, fake):
    config = make_config(tmp_path, fake)
    wal_database(tmp_path / "data" / "services" / "app.db", [("a", 1)])
    config["databases"] = [{"path": str(tmp_path / "data" / "services" / "app.db"), "kind": "sqlite"}]
    assert run(config) == 0
    assert Path(config["databases_dir"] + str(tmp_path / "data" / "services" / "app.db")).exists()
    backup = next(c for c in calls(tmp_path) if c["command"][0] == "backup")
    assert config["databases_dir"] in backup["command"]


def test_a_second_run_while_the_lock_is_held_exits_75(tmp_path, fake, capsys):
    config = make_config(tmp_path, fake)
    with open(config["lock_file"], "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit) as exited:
            run(config)
        assert exited.value.code == 75
        with pytest.raises(SystemExit) as exited:
            job.cmd_check(config, argparse.Namespace(delay=0, subset=None))
        assert exited.value.code == 75
    assert "another run holds %s" % config["lock_file"] in capsys.readouterr().out
    assert calls(tmp_path) == [] and not Path(config["state_dir"], "status").exists()
    # Released, the lock is free again; and a run releases it when done.
    assert run(config) == 0
    assert run(config) == 0


def test_check(tmp_path, fake, monkeypatch):
    config = make_config(tmp_path, fake)
    assert run(config) == 0
    monkeypatch.setenv("FAKE_RESTIC_FAIL_CHECK", "backup.example.net")
    assert job.cmd_check(config, argparse.Namespace(delay=0, subset="1/5")) == 1
    local, offsite = status(config, "local"), status(config, "offsite")
    assert local["check_last_exit_code"] == 0 and local["check_error"] is None and "check_last_success" in local
    assert offsite["check_last_exit_code"] == 1 and "check_last_success" not in offsite
    assert offsite["check_error"] == ("error: pack 8fa2c1d1: not referenced in any index; "
                                      "Fatal: repository contains errors")
    # The backup's fields stay.
    assert offsite["bytes_added"] == 12345 and offsite["error"] is None
    assert [c["command"] for c in calls(tmp_path)[-2:]] == [["check", "--read-data-subset", "1/5"]] * 2
    metrics = Path(config["metrics_file"]).read_text()
    assert 'nasai_backup_check_last_exit_code{repository="offsite",leg="offsite"} 1' in metrics
    monkeypatch.delenv("FAKE_RESTIC_FAIL_CHECK")
    assert job.cmd_check(config, argparse.Namespace(delay=0, subset=None)) == 0
    assert calls(tmp_path)[-1]["command"] == ["check", "--read-data-subset", "10%"]
    assert status(config, "offsite")["check_error"] is None


def test_main_reads_the_configuration_named_by_the_environment(tmp_path, fake, capsys):
    config = make_config(tmp_path, fake)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    module = load(path)
    assert module.CONFIG == str(path)
    assert module.main(["run"]) == 0
    assert module.main(["status"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("[\n"):])
    assert [s["repository"] for s in shown] == ["local", "offsite"]
    assert all(s["error"] is None for s in shown)
    assert REST_PASSWORD not in out and PASSWORD not in out
    assert module.main([]) == 2


def test_init_creates_only_the_named_repository(tmp_path, fake, capsys):
    config = make_config(tmp_path, fake)
    assert job.cmd_init(config, argparse.Namespace(repository="offsite")) == 0
    assert Path(config["state_dir"], "initialised", "offsite").exists()
    assert not Path(config["state_dir"], "initialised", "local").exists()
    assert "offsite: ready" in capsys.readouterr().out
