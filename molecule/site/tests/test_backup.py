"""The backup role on the two site NAS, against real servers: copy 2 in a restic repository on a
second medium of the NAS (a tmpfs, another filesystem than the data volume's), copy 3 off-site on
nas-site-offsite (restic's REST server for nas-site-omv, with cron; SFTP for nas-site-trixie,
with systemd timers). What each test shows is in its name; each reads real state: the
repositories' snapshots (restic itself), the files, the status and metric the job writes."""

import hashlib
import json
import os
import re
import shlex
import subprocess
import time

import pytest
import testinfra

OMV, TRIXIE, OFFSITE = "nas-site-omv", "nas-site-trixie", "nas-site-offsite"
PROJECT = "/srv/dev-disk-by-label-data/container/services"
FILES = PROJECT + "/data/files"
MEDIUM = "/srv/dev-disk-by-label-backup"
JOB = "/usr/local/sbin/nasai-backup"
# The scenario's test secrets (host_vars): none may show on a command line, in a log or in -vvv.
SECRETS = {OMV: ["repo-pass-omv-0123456789", "rest-pass-0123456789"], TRIXIE: ["repo-pass-trixie-0123456789"]}


@pytest.fixture(scope="module")
def nas():
    return {name: testinfra.get_host(f"docker://{name}") for name in (OMV, TRIXIE, OFFSITE)}


def run_job(host, *args):
    return host.run(" ".join([JOB] + [shlex.quote(a) for a in args]))


def snapshots(host, repository):
    out = host.check_output(f"{JOB} restic {repository} snapshots --json --no-lock")
    return json.loads(out or "[]")


def status(host):
    return {s["repository"]: s for s in json.loads(host.check_output(f"{JOB} status"))}


def spread(name, minutes=60):
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % minutes


def test_cron_entries_start_at_the_schedule_plus_this_nas_offset(nas):
    cron = nas[OMV].file("/etc/cron.d/nasai-backup")
    assert cron.mode == 0o644 and cron.user == "root"
    lines = [l.split() for l in cron.content_string.splitlines() if l and not l.startswith(("#", "SHELL", "PATH"))]
    # "0 2 * * *" and "0 4 * * 0", moved by the host's offset in a 60-minute spread.
    offset = spread(OMV)
    assert lines[0][:5] == [str(offset), "2", "*", "*", "*"] and lines[0][6:8] == [JOB, "run"]
    assert lines[1][:5] == [str(offset), "4", "*", "*", "0"] and lines[1][6:8] == [JOB, "check"]
    assert nas[OMV].service("cron").is_running


def test_systemd_timers_are_active_with_the_offset_and_catch_up_after_boot(nas):
    host, offset = nas[TRIXIE], spread(TRIXIE)
    for unit, when in (("nasai-backup", "*-*-* 2:%d:00" % offset), ("nasai-backup-check", "Sun *-*-* 4:%d:00" % offset)):
        timer = host.file(f"/etc/systemd/system/{unit}.timer").content_string
        assert f"OnCalendar={when}" in timer and "Persistent=true" in timer
        assert host.service(f"{unit}.timer").is_enabled and host.service(f"{unit}.timer").is_running
    assert not host.file("/etc/cron.d/nasai-backup").exists


@pytest.mark.parametrize("name", [OMV, TRIXIE])
def test_secrets_are_root_only_files_and_the_configuration_holds_none(nas, name):
    host = nas[name]
    assert host.file("/etc/nasai/backup").mode == 0o700
    for secret_file in ("password", "local.repository", "offsite.repository"):
        f = host.file(f"/etc/nasai/backup/{secret_file}")
        assert f.mode == 0o600 and f.user == "root", secret_file
    config = host.file("/etc/nasai/backup/config.json").content_string
    assert not any(secret in config for secret in SECRETS[name])


@pytest.mark.parametrize("name", [OMV, TRIXIE])
def test_a_run_makes_a_snapshot_in_both_repositories_and_a_rerun_adds_almost_nothing(nas, name):
    host = nas[name]
    before = {leg: len(snapshots(host, leg)) for leg in ("local", "offsite")}
    first = run_job(host, "run")
    assert first.rc == 0, first.stdout + first.stderr
    second = run_job(host, "run")
    assert second.rc == 0, second.stdout + second.stderr
    for leg in ("local", "offsite"):
        found = snapshots(host, leg)
        assert len(found) == before[leg] + 2, leg
        assert PROJECT in found[-1]["paths"] and found[-1]["hostname"] == name
    state = status(host)
    for leg in ("local", "offsite"):
        assert state[leg]["last_exit_code"] == 0 and state[leg]["error"] is None
        assert time.time() - state[leg]["last_success"] < 120
        # Unchanged data: only the new snapshot's own metadata (a few KiB) goes in.
        assert state[leg]["bytes_added"] < 64 * 1024, state[leg]
    metrics = host.file("/var/lib/prometheus/node-exporter/nasai_backup.prom").content_string
    assert re.search(r'nasai_backup_last_success_timestamp_seconds\{repository="offsite",leg="offsite"\} \d+', metrics)
    assert 'nasai_backup_last_exit_code{repository="local",leg="local"} 0' in metrics


def test_the_offsite_copy_is_on_the_offsite_server_and_encrypted(nas):
    server = nas[OFFSITE]
    # REST server (--private-repos): under the NAS's own user; SFTP: in the user's home.
    for repo in ("/srv/restic/nas-site-omv", "/srv/sftp/nas-site-trixie/restic"):
        assert server.file(f"{repo}/config").exists, repo
        assert len(server.check_output(f"ls {repo}/snapshots").split()) >= 2, repo
        # Encrypted: no file of the repository holds the stack's plain text.
        assert server.run(f"grep -rl 'nasai' {repo}/data").rc == 1, repo


def test_the_file_managers_and_the_chats_databases_are_copied_consistently_while_they_run(nas):
    host = nas[OMV]
    live = host.check_output(f"ls {FILES}/.hist/*/up2k.db").split()
    assert live, "copyparty keeps an index (e2dsa)"
    # The chat front-end's accounts and chats (Open WebUI's SQLite database).
    chat_db = FILES.rsplit("/", 1)[0] + "/chat/webui.db"
    assert host.file(chat_db).exists
    live.append(chat_db)
    assert run_job(host, "run").rc == 0
    listing = host.check_output(f"{JOB} restic local ls latest --no-lock")
    for db in live:
        # The live file (and its -wal) stays out; the online backup's copy is in, and sound.
        assert db not in listing.split("\n")
        copy = "/var/lib/nasai-backup/databases" + db
        assert copy in listing
        assert host.check_output(f"python3 -c \"import sqlite3; print(sqlite3.connect('{copy}')"
                                 ".execute('PRAGMA integrity_check').fetchone()[0])\"") == "ok"


def test_the_drill_reports_a_change_and_a_deletion_and_restores_both_byte_identical(nas, converge):
    host = nas[OMV]
    keep, gone = f"{FILES}/drill-changed.bin", f"{FILES}/drill-deleted.bin"
    host.check_output(f"head -c 300000 /dev/urandom > {keep} && head -c 200000 /dev/urandom > {gone}")
    sums = {p: host.check_output(f"sha256sum {p}").split()[0] for p in (keep, gone)}
    assert run_job(host, "run").rc == 0
    host.check_output(f"echo changed >> {keep} && rm {gone}")
    run = converge(OMV, {"backup_restore_repository": "offsite", "backup_restore_keep": True},
                   playbook="../../playbooks/restore.yml")
    try:
        assert run.rc == 0, run.output[-3000:]
        assert f"changed: {keep}" in run.said and f"deleted since: {gone}" in run.said
        assert re.search(r"database copy \S+up2k.db: ok", run.said)
        scratch = re.search(r"kept in (/var/tmp/nasai-restore/drill-\S+?)'", run.said).group(1)
        for path, digest in sums.items():
            assert host.check_output(f"sha256sum {scratch}{path}").split()[0] == digest, path
    finally:
        host.run("rm -rf /var/tmp/nasai-restore")
        host.run(f"rm -f {keep}")


def test_a_corrupted_pack_is_found_by_the_check(nas):
    host = nas[TRIXIE]
    repo = f"{MEDIUM}/nasai-restic"
    assert run_job(host, "check", "--subset", "100%").rc == 0
    pack = host.check_output(f"find {repo}/data -type f -size +1k | head -1")
    host.check_output(f"cp -a {pack} /root/pack.orig")
    try:
        # Flip bytes in the middle of the pack (its name, the SHA-256 of its content, no longer matches).
        host.check_output(f"printf 'CORRUPT' | dd of={pack} bs=1 seek=200 conv=notrunc status=none")
        found = run_job(host, "check", "--subset", "100%")
        assert found.rc == 1
        assert "local: CHECK FAILED" in found.stdout and pack.rsplit("/", 1)[1][:8] in found.stdout
        assert status(host)["local"]["check_last_exit_code"] != 0
        assert status(host)["offsite"]["check_last_exit_code"] == 0
    finally:
        host.check_output(f"cp -a /root/pack.orig {pack} && rm /root/pack.orig")
    assert run_job(host, "check", "--subset", "100%").rc == 0


def test_offsite_down_the_local_leg_completes_and_the_status_names_the_failed_leg(nas):
    host, server = nas[OMV], nas[OFFSITE]
    local_before = len(snapshots(host, "local"))
    server.check_output("systemctl stop nasai-rest-server")
    try:
        run = run_job(host, "run")
        assert run.rc == 1
        assert "offsite: FAILED" in run.stdout and "failed legs: offsite" in run.stdout
        state = status(host)
        assert state["local"]["last_exit_code"] == 0 and time.time() - state["local"]["last_success"] < 60
        assert state["offsite"]["last_exit_code"] != 0
        assert "offsite repository cannot be reached" in state["offsite"]["error"]
        assert state["offsite"]["last_success"] < state["local"]["last_success"]
        assert len(snapshots(host, "local")) == local_before + 1
        metrics = host.file("/var/lib/prometheus/node-exporter/nasai_backup.prom").content_string
        assert re.search(r'nasai_backup_last_exit_code\{repository="offsite",leg="offsite"\} [1-9]', metrics)
    finally:
        server.check_output("systemctl start nasai-rest-server")
    time.sleep(1)
    assert run_job(host, "run").rc == 0


def test_a_full_local_medium_fails_clearly_and_claims_no_snapshot(nas):
    host = nas[TRIXIE]
    local_before = len(snapshots(host, "local"))
    used_kib = int(host.check_output(f"df --output=used -k {MEDIUM} | tail -1"))
    big = f"{FILES}/too-big-for-the-medium.bin"
    host.check_output(f"head -c 8000000 /dev/urandom > {big}")
    # The second medium (a tmpfs) shrunk to what it holds plus 512 KiB: the new data cannot fit.
    host.check_output(f"mount -o remount,size={used_kib + 512}k {MEDIUM}")
    try:
        run = run_job(host, "run")
        assert run.rc == 1
        state = status(host)
        assert "local medium is full" in state["local"]["error"] and "no snapshot was made" in state["local"]["error"]
        assert state["local"]["last_exit_code"] != 0
        assert state["offsite"]["last_exit_code"] == 0
    finally:
        host.check_output(f"mount -o remount,size=512m {MEDIUM}")
        host.run(f"rm -f {big}")
    assert len(snapshots(host, "local")) == local_before
    assert run_job(host, "run").rc == 0


def test_no_password_on_a_command_line_in_the_log_or_in_verbose_output(nas, converge):
    host = nas[OMV]
    # Every command line on the NAS while a job runs (restic, ssh, python), sampled each 20 ms.
    sampler = host.run(
        f"( {JOB} run >/dev/null 2>&1 & job=$!; while kill -0 $job 2>/dev/null; do ps -eo args; sleep 0.02; done )")
    lines = sampler.stdout
    assert "restic" in lines and "backup --json" in lines
    log = host.file("/var/log/nasai-backup.log").content_string if host.file("/var/log/nasai-backup.log").exists else ""
    verbose = converge(OMV, None, "--tags", "backup", "-vvv")
    assert verbose.rc == 0, verbose.output[-3000:]
    assert "nasai.stack.backup" in verbose.output
    for secret in SECRETS[OMV]:
        assert secret not in lines and secret not in log and secret not in verbose.output


def test_bad_input_is_refused_before_any_change(nas, converge):
    host = nas[OMV]
    config = "/etc/nasai/backup/config.json"
    before = host.check_output(f"sha256sum {config} /etc/cron.d/nasai-backup")
    # One repository only, the local one on the data path's filesystem, a schedule cron cannot
    # read, and every keep_* 0: each named.
    first = converge(OMV, {"backup_offsite_repository": "", "backup_local_repository": "/srv/dev-disk-by-label-data/backup-here",
                           "backup_schedule": "every night", "backup_keep_within": "", "backup_keep_daily": 0,
                           "backup_keep_weekly": 0, "backup_keep_monthly": 0})
    assert first.rc != 0
    for message in ("backup_offsite_repository is empty: 3-2-1 needs copy 3 off-site",
                    "is on the same filesystem as the data path",
                    "backup_schedule is not a cron schedule",
                    "forget would keep no snapshot"):
        assert message in first.said, message
    # The off-site repository the same as the local one (and not off-site at all).
    second = converge(OMV, {"backup_offsite_repository": "local:" + MEDIUM + "/nasai-restic"})
    assert second.rc != 0
    assert "backup_offsite_repository is the same repository as backup_local_repository" in second.said
    assert "a path on the NAS is not off-site" in second.said
    for run in (first, second):
        assert run.recap(OMV)["changed"] == 0
    assert host.check_output(f"sha256sum {config} /etc/cron.d/nasai-backup") == before


def https(host, path, key, ca=PROJECT + "/tls/ca.crt", name="nas-site-omv"):
    """GET over the stack's TLS proxy on the NAS itself, checking its certificate for `name`."""
    script = (
        "import ssl, sys, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='{ca}')\n"
        "ctx.check_hostname = False\n"
        f"req = urllib.request.Request('https://127.0.0.1{path}', headers={{'Authorization': 'Bearer {key}'}})\n"
        "sys.stdout.write(urllib.request.urlopen(req, context=ctx, timeout=30).read().decode())\n")
    return host.check_output(f"python3 -c {shlex.quote(script)}")


def test_a_full_restore_onto_a_fresh_nas_serves_the_same_files_logins_and_certificates(nas, tmp_path):
    """nas-site-omv is lost; a fresh NAS takes its inventory entry (ansible_host: nas-site-spare)
    and playbooks/restore_full.yml brings it back from the off-site copy."""
    old, spare = nas[OMV], testinfra.get_host("docker://nas-site-spare")
    # A file in the file manager (the admins' root, data/files/files/), read with the admin's key.
    admin = old.check_output(f"cat {PROJECT}/secrets/user-admin.key")
    content = "restored %s" % time.time()
    note = f"{FILES}/files/note.txt"
    old.check_output(f"printf %s {shlex.quote(content)} > {note} && chown 1000:1000 {note}")
    assert https(old, "/files/note.txt", admin) == content
    assert run_job(old, "run").rc == 0
    kept = ["tls/ca.crt", "config/proxy/tls/server.crt", "config/proxy/tls/server.key", "secrets/user-admin.key",
            "auth/users.map"]
    before = {f: old.check_output(f"sha256sum {PROJECT}/{f}").split()[0] for f in kept}
    names = old.check_output(f"openssl x509 -noout -ext subjectAltName -in {PROJECT}/config/proxy/tls/server.crt")
    server_names = [n.split(":", 1)[1] for n in re.findall(r"(?:DNS|IP Address):[^,\s]+", names)]

    # The replacement: the same inventory entry, pointed at the new box.
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    (tmp_path / "group_vars").symlink_to(os.path.realpath(ephemeral + "/inventory/group_vars"))
    (tmp_path / "host_vars").symlink_to(scenario + "/host_vars")
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"children": {"nas": {"hosts": {OMV: {
        "ansible_host": "nas-site-spare", "ansible_connection": "community.docker.docker"}}}}}}))
    extra = {"services_tls_ca_key_path": ephemeral + "/inventory/.nasai-ca/nas-site-omv-ca.key",
             "services_server_names": server_names}
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), "playbooks/restore_full.yml",
                           "-e", json.dumps(extra)], capture_output=True, text=True, timeout=900, check=False,
                          cwd=scenario + "/../..")
    said = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "databases put back:" in said and "up2k.db" in said
    # The same certificates (not reissued), keys and users' map; the same files behind the same login.
    after = {f: spare.check_output(f"sha256sum {PROJECT}/{f}").split()[0] for f in kept}
    assert after == before
    assert https(spare, "/files/note.txt", admin) == content
    assert '"object"' in https(spare, "/v1/models", admin)
    for name in ("nasai-ai", "nasai-files", "nasai-proxy"):
        assert spare.check_output(f"docker inspect -f '{{{{.State.Health.Status}}}}' {name}") == "healthy"
    # And it backs up again, to the same repositories, as the NAS it replaced.
    assert run_job(spare, "run").rc == 0
    assert snapshots(spare, "offsite")[-1]["hostname"] == OMV


def test_switching_the_scheduler_moves_the_job_between_systemd_and_cron(nas, converge):
    host = nas[TRIXIE]
    to_cron = converge(TRIXIE, {"backup_scheduler": "cron"}, "--tags", "backup")
    assert to_cron.rc == 0, to_cron.output[-3000:]
    assert host.file("/etc/cron.d/nasai-backup").exists
    assert not host.file("/etc/systemd/system/nasai-backup.timer").exists
    assert "nasai-backup" not in host.check_output("systemctl list-timers --all --no-legend")
    back = converge(TRIXIE, None, "--tags", "backup")
    assert back.rc == 0, back.output[-3000:]
    assert not host.file("/etc/cron.d/nasai-backup").exists
    assert host.service("nasai-backup.timer").is_running


def test_absent_removes_the_job_and_keeps_every_snapshot(nas, converge):
    host = nas[OMV]
    count = len(snapshots(host, "local"))
    removed = converge(OMV, {"backup_state": "absent"}, "--tags", "backup")
    assert removed.rc == 0, removed.output[-3000:]
    for gone in ("/etc/cron.d/nasai-backup", JOB, "/etc/nasai/backup/password", "/etc/nasai/backup/config.json"):
        assert not host.file(gone).exists, gone
    # The repository is untouched: restic, given the password by hand, still lists every snapshot.
    host.check_output(f"umask 077; printf %s {SECRETS[OMV][0]} > /root/restic.pw")
    listed = host.run(f"restic -r {MEDIUM}/nasai-restic --password-file /root/restic.pw snapshots --json --no-lock")
    host.check_output("rm /root/restic.pw")
    assert listed.rc == 0 and len(json.loads(listed.stdout)) == count, listed.stdout + listed.stderr
    again = converge(OMV, None, "--tags", "backup")
    assert again.rc == 0, again.output[-3000:]
    assert len(snapshots(host, "local")) == count


def test_runs_never_overlap(nas):
    host = nas[TRIXIE]
    both = host.run(f"{JOB} run >/tmp/first.log 2>&1 & sleep 0.5; {JOB} run; echo second=$?; wait $!; echo first=$?")
    assert "second=75" in both.stdout and "another run holds" in both.stdout
    assert "first=0" in both.stdout


def test_retention_forgets_and_prunes_what_it_does_not_keep(nas, converge):
    host = nas[TRIXIE]
    keep_one = {"backup_keep_within": "", "backup_keep_daily": 1, "backup_keep_weekly": 0, "backup_keep_monthly": 0,
                "backup_forget_interval_hours": 0}
    assert all(len(snapshots(host, leg)) > 1 for leg in ("local", "offsite"))
    changed = converge(TRIXIE, keep_one, "--tags", "backup")
    assert changed.rc == 0, changed.output[-3000:]
    try:
        run = run_job(host, "run")
        assert run.rc == 0, run.stdout + run.stderr
        # Every snapshot is from today: one a day is kept, in each repository, and the data of the
        # others is pruned (the repository's check still passes).
        for leg in ("local", "offsite"):
            assert len(snapshots(host, leg)) == 1, leg
        assert run_job(host, "check", "--subset", "100%").rc == 0
    finally:
        assert converge(TRIXIE, None, "--tags", "backup").rc == 0


def test_models_and_extra_paths_are_included_on_request_and_excludes_are_left_out(nas, converge):
    host = nas[OMV]
    models = "/srv/dev-disk-by-label-data/container/models"
    host.check_output(f"touch {FILES}/scratch.tmp")
    wider = converge(OMV, {"backup_include_models": True, "backup_extra_paths": ["/etc/cron.d"]},
                     "--tags", "backup")
    try:
        assert wider.rc == 0, wider.output[-3000:]
        assert run_job(host, "run").rc == 0
        latest = snapshots(host, "local")[-1]
        assert {PROJECT, models, "/etc/cron.d"} <= set(latest["paths"])
        listing = host.check_output(f"{JOB} restic local ls latest --no-lock").split("\n")
        assert f"{models}/model.gguf" in listing and "/etc/cron.d/nasai-backup" in listing
        # backup_exclude's default "*.tmp": the file is not in the snapshot.
        assert f"{FILES}/scratch.tmp" not in listing
    finally:
        host.run(f"rm -f {FILES}/scratch.tmp")
        assert converge(OMV, None, "--tags", "backup").rc == 0
