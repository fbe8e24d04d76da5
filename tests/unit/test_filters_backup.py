"""The backup role's filters: the schedule (cron, systemd, the per-host spread), the repositories of
the 3-2-1 rule with their secret files, and the checks of the role's settings."""

import json
import shutil
import subprocess

import pytest

from ansible_collections.nasai.stack.plugins.filter.backup import (backup_errors, backup_repositories,
                                                                   backup_schedule, host_offset, schedule_error)

CONFIG_DIR = "/etc/nasai/backup"


# --- cron parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expression", [
    "0 2 * * *", "*/15 * * * *", "0 */6 * * *", "5,35 2 * * *", "0 2 1-10/2 * *", "0-30/10 1-5 * * *",
    "0 2 * * mon-fri", "0 2 * * MON,Wed", "0 2 * jan-mar *", "0 2 1 dec *", "0 2 * * 0", "0 2 * * 7",
    "59 23 31 12 *", "  0 2 * * *  ", "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
    "@annually",
])
def test_valid_schedules(expression):
    assert schedule_error(expression) is None


@pytest.mark.parametrize("expression, why", [
    ("", "it is empty"),
    ("   ", "it is empty"),
    (None, "it is empty"),
    (5, "it is empty"),
    ("0 2 * *", "it has 4 fields, cron needs 5 (minute hour day month weekday)"),
    ("0 2 * * * *", "it has 6 fields"),
    ("@reboot", "@reboot is not one of @hourly, @daily"),
    ("60 2 * * *", "minute field '60' is outside 0-59"),
    ("0 24 * * *", "hour field '24' is outside 0-23"),
    ("0 2 0 * *", "day field '0' is outside 1-31"),
    ("0 2 32 * *", "day field '32' is outside 1-31"),
    ("0 2 * 13 *", "month field '13' is outside 1-12"),
    ("0 2 * * 8", "weekday field '8' is outside 0-7"),
    ("30-10 2 * * *", "minute field '30-10' is a backwards range"),
    ("*/0 2 * * *", "minute field '*/0' has a step of 0"),
    ("a 2 * * *", "minute field 'a' is not a number, range, list or step"),
    ("0 2 * * funday", "weekday field 'funday' is not a number"),
    ("0 2 * * mon-fry", "weekday field 'mon-fry' is not a number"),
    ("0 2 jan * *", "day field 'jan' is not a number"),
    ("0 2 * mon *", "month field 'mon' is not a number"),
    ("0 2 * * 1,", "weekday field '1,' is not a number"),
    ("0 2 * * -1", "weekday field '-1' is not a number"),
    ("0 2 * * fri-mon", "weekday field 'fri-mon' is a backwards range"),
])
def test_invalid_schedules_say_why(expression, why):
    assert why in schedule_error(expression)


def test_an_invalid_schedule_is_refused():
    with pytest.raises(ValueError, match=r"not a cron schedule \(hour field '25' is outside 0-23\): '0 25 \* \* \*'"):
        backup_schedule("0 25 * * *", "nas1", 60)


# --- the per-host spread ---------------------------------------------------------------------------

def test_the_offset_is_the_same_for_a_host_and_spread_over_the_fleet():
    assert host_offset("nas1", 60) == host_offset("nas1", 60)
    offsets = [host_offset("nas%d" % n, 60) for n in range(200)]
    assert all(0 <= o < 60 for o in offsets)
    assert len(set(offsets)) > 30
    assert host_offset("nas1", 0) == 0 and host_offset("nas1", -5) == 0
    # sha256 is stable across Python runs (unlike hash()): the schedule does not move at each deploy.
    assert host_offset("nas1", 60) == 1 and host_offset("nas2", 60) == 25


def test_a_single_time_is_moved_by_the_offset():
    offset = host_offset("nas2", 60)
    found = backup_schedule("0 2 * * *", "nas2", 60)
    assert found == {"minute": str(offset), "hour": "2", "day": "*", "month": "*", "weekday": "*",
                     "on_calendar": "*-*-* 2:%d:00" % offset, "offset_minutes": offset, "delay_seconds": 0}


def test_the_offset_carries_into_the_next_hour():
    offset = host_offset("nas2", 60)
    found = backup_schedule("50 2 * * *", "nas2", 60)
    total = 2 * 60 + 50 + offset
    assert (found["hour"], found["minute"]) == (str(total // 60), str(total % 60)) == ("3", "15")
    assert found["on_calendar"] == "*-*-* 3:15:00"


def test_the_offset_wraps_past_midnight():
    found = backup_schedule("50 23 * * *", "nas2", 60)
    assert (found["hour"], found["minute"], found["delay_seconds"]) == ("0", "15", 0)
    assert found["on_calendar"] == "*-*-* 0:15:00"
    # A spread of a whole day never gives an hour of 24 or more.
    for n in range(50):
        when = backup_schedule("59 23 * * *", "nas%d" % n, 1440)
        assert 0 <= int(when["hour"]) <= 23 and 0 <= int(when["minute"]) <= 59


def test_the_offset_past_midnight_moves_the_weekday_too():
    found = backup_schedule("50 23 * * 0", "nas2", 60)
    assert (found["hour"], found["minute"], found["weekday"]) == ("0", "15", "1")


def test_no_spread_keeps_the_time():
    found = backup_schedule("30 4 * * 0", "nas2", 0)
    assert (found["minute"], found["hour"], found["offset_minutes"], found["delay_seconds"]) == ("30", "4", 0, 0)


def test_leading_zeros_are_numbers():
    assert backup_schedule("05 02 * * *", "nas1", 0)[("minute")] == "5"


@pytest.mark.parametrize("expression, minute, hour", [
    ("*/15 * * * *", "*/15", "*"),
    ("0 */6 * * *", "0", "*/6"),
    ("5,35 2 * * *", "5,35", "2"),
    ("0 1-5 * * *", "0", "1-5"),
    ("@hourly", "0", "*"),
])
def test_a_time_that_is_not_single_numbers_waits_the_offset_instead(expression, minute, hour):
    offset = host_offset("nas2", 60)
    found = backup_schedule(expression, "nas2", 60)
    assert (found["minute"], found["hour"]) == (minute, hour)
    assert found["offset_minutes"] == offset and found["delay_seconds"] == offset * 60


@pytest.mark.parametrize("expression, fields", [
    ("@daily", ("0", "0", "*", "*", "*")),
    ("@midnight", ("0", "0", "*", "*", "*")),
    ("@weekly", ("0", "0", "*", "*", "0")),
    ("@monthly", ("0", "0", "1", "*", "*")),
    ("@yearly", ("0", "0", "1", "1", "*")),
    ("@annually", ("0", "0", "1", "1", "*")),
    (" @daily ", ("0", "0", "*", "*", "*")),
])
def test_shortcuts_are_cron_fields(expression, fields):
    found = backup_schedule(expression, "nas1", 0)
    assert tuple(found[k] for k in ("minute", "hour", "day", "month", "weekday")) == fields


# --- systemd's OnCalendar ----------------------------------------------------------------------------

CALENDARS = [
    ("0 2 * * *", "*-*-* 2:0:00"),
    ("30 4 * * 0", "Sun *-*-* 4:30:00"),
    ("30 4 * * 7", "Sun *-*-* 4:30:00"),
    ("0 2 * * mon-fri", "Mon..Fri *-*-* 2:0:00"),
    ("0 2 * * 1,3,5", "Mon,Wed,Fri *-*-* 2:0:00"),
    ("0 2 * * sat,sun", "Sat..Sun *-*-* 2:0:00"),
    ("0 2 * * 5-7", "Fri..Sun *-*-* 2:0:00"),
    ("*/15 * * * *", "*-*-* *:0/15:00"),
    ("*/15 * * * mon-fri", "Mon..Fri *-*-* *:0/15:00"),
    ("0 */6 * * *", "*-*-* 0/6:0:00"),
    ("5,35 2 * * *", "*-*-* 2:5,35:00"),
    ("0 1-5 * * *", "*-*-* 1..5:0:00"),
    ("0 2 */2 * *", "*-*-1/2 2:0:00"),
    ("0 2 1-10/2 jan-mar *", "*-1..3-1..10/2 2:0:00"),
    ("0 3 15 */3 *", "*-1/3-15 3:0:00"),
    ("@weekly", "Sun *-*-* 0:0:00"),
    ("@monthly", "*-*-1 0:0:00"),
    ("@yearly", "*-1-1 0:0:00"),
]


@pytest.mark.parametrize("expression, calendar", CALENDARS)
def test_on_calendar(expression, calendar):
    assert backup_schedule(expression, "nas1", 0)["on_calendar"] == calendar


def test_on_calendar_has_the_moved_time():
    offset = host_offset("nas2", 60)
    assert backup_schedule("0 3 * * sun", "nas2", 60)["on_calendar"] == "Sun *-*-* 3:%d:00" % offset


def systemd_accepts(calendar):
    result = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True, check=False)
    return result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
@pytest.mark.parametrize("expression", [pair[0] for pair in CALENDARS])
def test_systemd_accepts_the_calendar(expression):
    ok, output = systemd_accepts(backup_schedule(expression, "nas1", 60)["on_calendar"])
    assert ok, output


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
@pytest.mark.parametrize("expression", ["0 2 * * 0-2", "0 2 * * sun-sat"])
def test_systemd_accepts_weekday_ranges_from_sunday(expression):
    ok, output = systemd_accepts(backup_schedule(expression, "nas1", 0)["on_calendar"])
    assert ok, output


def test_every_weekday_as_a_range_is_every_day():
    assert backup_schedule("0 2 * * 0-7", "nas1", 0)["on_calendar"] in ("*-*-* 2:0:00", "Mon..Sun *-*-* 2:0:00")


@pytest.mark.parametrize("expression", ["0 2 * * */2", "0 2 * * 1-5/2"])
def test_a_weekday_step_gives_a_calendar(expression):
    assert schedule_error(expression) is None
    assert backup_schedule(expression, "nas1", 0)["on_calendar"]


# --- repositories ----------------------------------------------------------------------------------

def settings(**values):
    base = {"config_dir": CONFIG_DIR, "local_repository": "/srv/backup/restic", "offsite_repository": ""}
    base.update(values)
    return base


def public(repos):
    """What goes to the job's configuration (the role drops `files` and `target`)."""
    return json.dumps([{k: v for k, v in r.items() if k not in ("files", "target")} for r in repos])


def test_nothing_set_gives_no_repository():
    assert backup_repositories(settings(local_repository="")) == []
    assert backup_repositories(settings(local_repository=None, offsite_repository=None)) == []


def test_local_repository():
    assert backup_repositories(settings()) == [{
        "name": "local", "leg": "local", "repository_file": CONFIG_DIR + "/local.repository", "env_file": None,
        "options": [], "files": [{"path": CONFIG_DIR + "/local.repository", "content": "/srv/backup/restic\n",
                                  "mode": "0600"}]}]


def test_rest_credentials_are_percent_encoded_into_the_secret_file_only():
    repos = backup_repositories(settings(offsite_repository="rest:https://backup.example.net:8000/nas1/",
                                         offsite_rest_user="nas 1", offsite_rest_password="p@ss/w:rd%"))
    assert [r["name"] for r in repos] == ["local", "offsite"]
    offsite = repos[1]
    assert offsite["files"] == [{"path": CONFIG_DIR + "/offsite.repository", "mode": "0600",
                                 "content": "rest:https://nas%201:p%40ss%2Fw%3Ard%25@backup.example.net:8000/nas1/\n"}]
    assert offsite["target"] == {"kind": "rest"}
    assert offsite["options"] == [] and offsite["env_file"] is None
    assert offsite["repository_file"] == CONFIG_DIR + "/offsite.repository"
    shown = public(repos)
    assert "p@ss" not in shown and "p%40ss" not in shown and "nas%201" not in shown


def test_rest_credentials_replace_those_in_the_url():
    repos = backup_repositories(settings(offsite_repository="rest:http://old:secret@10.0.0.5:8000/nas1/",
                                         offsite_rest_user="nas1", offsite_rest_password="new-password"))
    assert repos[1]["files"][0]["content"] == "rest:http://nas1:new-password@10.0.0.5:8000/nas1/\n"


def test_rest_without_user_is_kept_as_given():
    repos = backup_repositories(settings(offsite_repository="rest:https://backup.example.net/nas1/"))
    assert repos[1]["files"][0]["content"] == "rest:https://backup.example.net/nas1/\n"


@pytest.mark.parametrize("repository, target, login", [
    ("sftp:backup@offsite.example.net:/srv/restic/nas1",
     {"kind": "sftp", "user": "backup", "host": "offsite.example.net", "port": 22, "path": "/srv/restic/nas1"},
     "-l backup offsite.example.net"),
    ("sftp:offsite.example.net:restic",
     {"kind": "sftp", "user": "root", "host": "offsite.example.net", "port": 22, "path": "restic"},
     "-l root offsite.example.net"),
    ("sftp://backup@192.0.2.7:2222//srv/restic",
     {"kind": "sftp", "user": "backup", "host": "192.0.2.7", "port": 2222, "path": "/srv/restic"},
     "-l backup 192.0.2.7"),
    ("sftp://offsite.example.net/restic",
     {"kind": "sftp", "user": "root", "host": "offsite.example.net", "port": 22, "path": "restic"},
     "-l root offsite.example.net"),
])
def test_sftp_user_host_and_port(repository, target, login):
    offsite = backup_repositories(settings(offsite_repository=repository))[1]
    assert offsite["target"] == target
    # The port is in ssh_config (the role writes Port from target.port); the command names that file.
    assert offsite["options"] == ["-o", "sftp.command=ssh -F %s/ssh_config %s -s sftp" % (CONFIG_DIR, login)]
    assert offsite["files"] == [{"path": CONFIG_DIR + "/offsite.repository", "content": repository + "\n",
                                 "mode": "0600"}]


def test_malformed_sftp_gets_no_command():
    offsite = backup_repositories(settings(offsite_repository="sftp:nowhere"))[1]
    assert offsite["target"] == {"kind": "sftp"} and offsite["options"] == []


def test_env_file_only_when_env_is_given():
    env = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
    repos = backup_repositories(settings(local_repository="", offsite_repository="s3:https://s3.example.net/b/nas1",
                                         offsite_env=env))
    assert len(repos) == 1
    offsite = repos[0]
    assert offsite["target"] == {"kind": "s3"}
    assert offsite["env_file"] == CONFIG_DIR + "/offsite.env"
    assert offsite["files"][1] == {"path": CONFIG_DIR + "/offsite.env", "mode": "0600",
                                   "content": "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\n"}
    assert "wJalrXUtnFEMI" not in public(repos)
    for empty in ({}, None):
        offsite = backup_repositories(settings(offsite_repository="s3:https://s3.example.net/b", offsite_env=empty))[1]
        assert offsite["env_file"] is None
        assert [f["path"] for f in offsite["files"]] == [CONFIG_DIR + "/offsite.repository"]


def test_cacert_option():
    repos = backup_repositories(settings(offsite_repository="rest:https://backup.lan/nas1/", offsite_cacert="PEM"))
    assert repos[1]["options"] == ["--cacert", CONFIG_DIR + "/offsite-ca.pem"]
    # The certificate is written by the role itself, not as one of the repository's secret files.
    assert [f["path"] for f in repos[1]["files"]] == [CONFIG_DIR + "/offsite.repository"]
    sftp = backup_repositories(settings(offsite_repository="sftp:u@h:/r", offsite_cacert="PEM"))[1]
    assert sftp["options"][-2:] == ["--cacert", CONFIG_DIR + "/offsite-ca.pem"] and len(sftp["options"]) == 4


def test_secret_content_ends_with_one_newline():
    repos = backup_repositories(settings(local_repository="/srv/backup\n\n"))
    assert repos[0]["files"][0]["content"] == "/srv/backup\n"


# --- errors ----------------------------------------------------------------------------------------

def good(**values):
    base = {
        "state": "present", "password": "correct horse battery staple", "local_repository": "/srv/backup/restic",
        "offsite_repository": "rest:https://backup.example.net:8000/nas1/", "allow_incomplete": False,
        "allow_same_medium": False, "offsite_rest_user": "nas1", "offsite_rest_password": "rest-password",
        "offsite_cacert": None, "offsite_env": {}, "offsite_sftp_key": None, "offsite_sftp_known_hosts": None,
        "offsite_sftp_accept_new": False, "paths": ["/container/data/services", "/var/lib/nasai-backup/databases"],
        "schedule": "0 2 * * *", "check_schedule": "0 4 * * 0", "check_subset": "10%",
        "retention": {"keep_within": "2d", "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6},
        "databases": [{"path": "/container/data/services/data/files/.hist/*/up2k.db", "kind": "sqlite"},
                      {"path": "/container/data/services/data/files/filebrowser.db", "kind": "pause",
                       "container": "nasai-files"}],
        "config_dir": CONFIG_DIR,
    }
    base.update(values)
    return base


def medium(path, device, source="/dev/sda1", mount_point="/"):
    return {"path": path, "exists": True, "anchor": path, "device": device, "mount_point": mount_point,
            "fstype": "ext4", "source": source, "free_bytes": 1, "size_bytes": 2}


def test_good_settings_have_no_error():
    assert backup_errors(good()) == []
    assert backup_errors(good(), [medium("/container/data/services", 2049),
                                  medium("/srv/backup/restic", 2065, "/dev/sdb1", "/srv/backup")]) == []


@pytest.mark.parametrize("values", [
    {"state": "absent", "password": None, "local_repository": "", "offsite_repository": "", "schedule": "nope",
     "retention": {}, "check_subset": "all", "databases": [{"path": "/x", "kind": "tar"}]},
    {"state": "absent", "local_repository": "/container/data/services/backup"},
])
def test_absent_checks_nothing(values):
    assert backup_errors(good(**values), [medium("/a", 1), medium("/b", 1)]) == []


@pytest.mark.parametrize("values, message", [
    ({"password": None},
     "backup_password must be set to the repositories' password (12 characters or more, from ansible-vault), "
     "got nothing"),
    ({"password": "short"}, "backup_password must be set to the repositories' password (12 characters or more, "
                            "from ansible-vault), got 5 characters"),
    ({"local_repository": "", "offsite_repository": ""},
     "backup_local_repository and backup_offsite_repository are both empty: nothing to back up to"),
    ({"local_repository": ""},
     "backup_local_repository is empty: 3-2-1 needs copy 2, a repository on a second medium of the NAS (another "
     "disk or mount), or backup_allow_incomplete: true to go on without it"),
    ({"offsite_repository": "", "offsite_rest_user": None, "offsite_rest_password": None},
     "backup_offsite_repository is empty: 3-2-1 needs copy 3 off-site (rest:, sftp: or s3:), or "
     "backup_allow_incomplete: true to go on without it"),
    ({"local_repository": "backup/restic"},
     "backup_local_repository must be an absolute path without '..', got 'backup/restic'"),
    ({"local_repository": "/srv/../container/backup"},
     "backup_local_repository must be an absolute path without '..', got '/srv/../container/backup'"),
    ({"local_repository": "local:relative"},
     "backup_local_repository must be an absolute path without '..', got 'relative'"),
    ({"local_repository": "/container/data/services/backup"},
     "backup_local_repository (/container/data/services/backup) is inside a path it backs up "
     "(/container/data/services): the repository would back up itself"),
    ({"local_repository": "local:/container/data/services/"},
     "backup_local_repository (/container/data/services/) is inside a path it backs up (/container/data/services)"),
    ({"offsite_repository": "/mnt/usb/restic"},
     "backup_offsite_repository must be an off-site restic repository (rest:, sftp:, s3:, b2:, azure:, gs:, swift:, "
     "rclone:...), got '/mnt/usb/restic': a path on the NAS is not off-site"),
    ({"offsite_repository": "local:/mnt/usb/restic"}, "got 'local:/mnt/usb/restic': a path on the NAS is not off-site"),
    ({"offsite_repository": "/srv/backup/restic/"},
     "backup_offsite_repository is the same repository as backup_local_repository (/srv/backup/restic)"),
    ({"offsite_repository": "local:/srv/backup/restic", "local_repository": "local:/srv/backup/restic"},
     "backup_offsite_repository is the same repository as backup_local_repository (/srv/backup/restic)"),
    ({"offsite_repository": "sftp:nowhere", "offsite_sftp_key": "KEY", "offsite_sftp_accept_new": True},
     "backup_offsite_repository 'sftp:nowhere' is not sftp:user@host:/path or sftp://user@host:port//path"),
    ({"offsite_repository": "sftp:backup@offsite:/restic", "offsite_sftp_known_hosts": "offsite ssh-ed25519 AAAA"},
     "backup_offsite_sftp_key must hold the SSH private key for sftp:backup@offsite:/restic (from ansible-vault)"),
    ({"offsite_repository": "sftp:backup@offsite:/restic", "offsite_sftp_key": "KEY"},
     "backup_offsite_sftp_known_hosts must hold the off-site server's host key line (ssh-keyscan), or "
     "backup_offsite_sftp_accept_new: true to trust it on first use"),
    ({"offsite_rest_password": None},
     "backup_offsite_rest_user and backup_offsite_rest_password go together (one is empty)"),
    ({"offsite_rest_user": ""},
     "backup_offsite_rest_user and backup_offsite_rest_password go together (one is empty)"),
    ({"schedule": "0 25 * * *"}, "backup_schedule is not a cron schedule (hour field '25' is outside 0-23), "
                                 "got '0 25 * * *'"),
    ({"schedule": None}, "backup_schedule is not a cron schedule (it is empty), got None"),
    ({"check_schedule": "@reboot"}, "backup_check_schedule is not a cron schedule (@reboot is not one of"),
    ({"retention": {"keep_daily": -1, "keep_weekly": 4}}, "backup_keep_daily must not be negative"),
    ({"retention": {"keep_daily": -1, "keep_last": -2, "keep_weekly": 4}},
     "backup_keep_last, backup_keep_daily must not be negative"),
    ({"retention": {"keep_within": "", "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}},
     "backup_keep_daily, backup_keep_weekly, backup_keep_monthly are all 0 and backup_keep_within is empty: "
     "forget would keep no snapshot; keep at least one"),
    ({"retention": {}}, "forget would keep no snapshot"),
    ({"retention": None}, "forget would keep no snapshot"),
    ({"retention": {"keep_within": "two days"}},
     "backup_keep_within must be a restic duration (years y, months m, days d, hours h) such as 2d, 7d or 1y2m, got 'two days'"),
    ({"retention": {"keep_within": "2"}}, "backup_keep_within must be a restic duration (years y, months m, days d, hours h) such as 2d, 7d or 1y2m, got '2'"),
    ({"retention": {"keep_within": "2d 3h"}}, "backup_keep_within must be a restic duration"),
    ({"check_subset": "all"}, "backup_check_subset must be a share such as 10%, 1/5 or a size such as 500M, got 'all'"),
    ({"check_subset": "101%"}, "backup_check_subset must be a share such as 10%, 1/5 or a size such as 500M, "
                               "got '101%'"),
    ({"check_subset": ""}, "backup_check_subset must be a share such as 10%, 1/5 or a size such as 500M, got ''"),
    ({"check_subset": "500MB"}, "backup_check_subset must be a share"),
    ({"databases": [{"path": "/srv/app.db", "kind": "mysql"}]},
     "backup_databases: kind of /srv/app.db must be sqlite or pause, got 'mysql'"),
    ({"databases": [{"path": "/srv/app.db"}]},
     "backup_databases: kind of /srv/app.db must be sqlite or pause, got None"),
    ({"databases": [{"path": "/srv/app.db", "kind": "pause"}]},
     "backup_databases: /srv/app.db is copied with its container paused: name the container"),
    ({"databases": [{"path": "/srv/app.db", "kind": "pause", "container": ""}]},
     "backup_databases: /srv/app.db is copied with its container paused: name the container"),
])
def test_each_error_names_its_variable(values, message):
    errors = backup_errors(good(**values))
    assert any(message in e for e in errors), errors
    assert all(e.startswith("backup_") for e in errors)


def test_allow_incomplete_accepts_one_leg():
    assert backup_errors(good(local_repository="", allow_incomplete=True)) == []
    assert backup_errors(good(offsite_repository="", offsite_rest_user=None, offsite_rest_password=None,
                              allow_incomplete=True)) == []
    # ... but not none at all.
    errors = backup_errors(good(local_repository="", offsite_repository="", offsite_rest_user=None,
                                offsite_rest_password=None, allow_incomplete=True))
    assert errors == ["backup_local_repository and backup_offsite_repository are both empty: nothing to back up to"]


def test_same_filesystem_by_device_number():
    media = [medium("/container/data/services", 2049), medium("/srv/backup/restic", 2049)]
    assert backup_errors(good(), media) == [
        "backup_local_repository (/srv/backup/restic) is on the same filesystem as the data path "
        "/container/data/services (/dev/sda1, mounted at /): copy 2 must be on a second medium, another disk or mount"]
    assert backup_errors(good(allow_same_medium=True), media) == []
    # The device number decides, not the names: a bind mount of the same disk is still the same medium.
    media = [medium("/container/data/services", 2049), medium("/mnt/other", 2049, "/dev/sda1", "/mnt/other")]
    assert "on the same filesystem" in backup_errors(good(local_repository="/mnt/other"), media)[0]
    # Without the module's answer (no local repository path), nothing is compared.
    assert backup_errors(good(local_repository="", allow_incomplete=True), media) == []
    assert backup_errors(good(), media[:1]) == []


def test_local_outside_the_paths_with_a_common_prefix_is_fine():
    assert backup_errors(good(local_repository="/container/data/services-backup")) == []


@pytest.mark.parametrize("offsite", [
    "rest:https://backup.example.net/nas1/", "sftp:backup@host:/restic", "sftp://backup@host:2222//restic",
    "s3:https://s3.amazonaws.com/bucket/nas1", "b2:bucket:nas1", "azure:container:/nas1", "gs:bucket:/nas1",
    "swift:container:/nas1", "rclone:remote:nas1",
])
def test_offsite_backends(offsite):
    values = {"offsite_repository": offsite, "offsite_sftp_key": "KEY", "offsite_sftp_accept_new": True}
    if not offsite.startswith("rest:"):
        values.update(offsite_rest_user=None, offsite_rest_password=None)
    assert backup_errors(good(**values)) == []


def test_sftp_known_hosts_given():
    assert backup_errors(good(offsite_repository="sftp:b@h:/r", offsite_sftp_key="KEY", offsite_rest_user=None,
                              offsite_rest_password=None, offsite_sftp_known_hosts="h ssh-ed25519 AAAA")) == []


@pytest.mark.parametrize("within", ["2d", "1y2m", "12h", "1y2m3d4h"])
def test_restic_durations(within):
    assert backup_errors(good(retention={"keep_within": within})) == []


@pytest.mark.parametrize("within", ["1w", "2D", "3H", "1M"])
def test_durations_restic_refuses_are_refused(within):
    assert backup_errors(good(retention={"keep_within": within})) != []


@pytest.mark.parametrize("subset", ["10%", "100%", "2.5%", "0.5%", "1/5", "500M", "2G", "1024"])
def test_check_subsets(subset):
    assert backup_errors(good(check_subset=subset)) == []


def test_a_single_keep_is_enough():
    for key in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"):
        assert backup_errors(good(retention={key: 1})) == []
    assert backup_errors(good(retention={"keep_within": "1y"})) == []
    # Values from a template are strings.
    assert backup_errors(good(retention={"keep_daily": "7", "keep_within": ""})) == []
