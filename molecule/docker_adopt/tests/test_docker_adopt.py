"""A Synology-like NAS keeps its vendor's engine exactly as it was (package, binary, settings, running
process); opt-ins change only what they name; a stopped or too old engine is refused clearly. A
host set up for Docker's repository gets a deb822 sources file apt accepts, without the legacy
files that made apt fail."""

import json

import pytest
import testinfra

DSM = "nas-docker-adopt-dsm"
CE = "nas-docker-adopt-cerepo"


@pytest.fixture(scope="module")
def dsm():
    return testinfra.get_host(f"docker://{DSM}")


@pytest.fixture(scope="module")
def ce():
    return testinfra.get_host(f"docker://{CE}")


def state(dsm):
    return {
        "dpkg_status": dsm.check_output("stat -c %Y /var/lib/dpkg/status"),
        "dpkg": dsm.check_output("dpkg-query -W -f '${Version}' docker.io"),
        "daemon_json": dsm.check_output("sha256sum /etc/docker/daemon.json | cut -c1-64"),
        "pid": dsm.check_output("systemctl show -p MainPID --value docker"),
        "dockerd": dsm.check_output("stat -c %Y /usr/sbin/dockerd"),
    }


def baseline(dsm):
    return json.loads(dsm.file("/root/nasai-baseline.json").content_string)


def test_vendor_engine_is_left_exactly_as_it_was(dsm):
    assert state(dsm) == baseline(dsm)
    assert json.loads(dsm.file("/etc/docker/daemon.json").content_string) == {
        "log-level": "warn", "storage-driver": "overlay2"}
    assert not dsm.file("/etc/systemd/system/docker.service.d").exists
    assert not dsm.package("python3-requests").is_installed
    assert "docker" not in dsm.user("nasadmin").groups
    assert dsm.check_output("docker info --format '{{.DockerRootDir}}'") == "/var/lib/docker"


def test_rerun_and_check_mode_change_nothing(converge, dsm):
    for args in ((), ("--check", "--diff")):
        run = converge(DSM, None, *args)
        assert run.rc == 0, run.output
        assert run.recap(DSM)["changed"] == 0
        assert "adopt: engine from package docker.io" in run.output
    assert state(dsm) == baseline(dsm)


def test_opt_in_changes_only_what_it_names(converge, dsm):
    run = converge(DSM, {"docker_appliance_manage": ["users"], "docker_users": ["nasadmin"],
                         "docker_daemon_proxy_http": "http://proxy.lan:3128"})
    assert run.rc == 0, run.output
    assert "docker" in dsm.user("nasadmin").groups
    # The proxy was not opted in: no drop-in, no restart, settings untouched.
    assert not dsm.file("/etc/systemd/system/docker.service.d/http-proxy.conf").exists
    assert state(dsm) == baseline(dsm)


def test_too_old_engine_is_refused(converge, dsm):
    run = converge(DSM, {"docker_min_version": "99.0", "docker_appliance_manage": ["daemon_config"]})
    assert run.rc != 0
    assert "older than docker_min_version 99.0" in run.output
    assert state(dsm) == baseline(dsm)


def test_stopped_engine_is_reported_not_started(converge, dsm):
    dsm.check_output("systemctl stop docker.socket docker.service")
    try:
        run = converge(DSM)
        assert run.rc != 0
        assert "is installed but not answering (docker.service is inactive (dead))" in " ".join(run.output.split())
        assert dsm.check_output("systemctl is-active docker || true") == "inactive"
    finally:
        dsm.check_output("systemctl start docker.socket docker.service")


def test_docker_repository_is_a_deb822_file_apt_accepts(ce):
    sources = ce.file("/etc/apt/sources.list.d/docker.sources")
    assert sources.mode == 0o644
    fields = dict(line.split(": ", 1) for line in sources.content_string.splitlines() if ": " in line)
    assert fields == {"Types": "deb", "URIs": "https://download.docker.com/linux/debian", "Suites": "bookworm",
                      "Components": "stable", "Architectures": "amd64",
                      "Signed-By": "/etc/apt/keyrings/docker.asc"}
    assert ce.file("/etc/apt/keyrings/docker.asc").content_string.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    # The legacy one-line file and its key are gone, so apt sees one consistent Signed-By.
    assert not ce.file("/etc/apt/sources.list.d/docker.list").exists
    assert not ce.file("/etc/apt/keyrings/docker.gpg").exists
    # apt reads every sources file and lists what it would download (without the network); with
    # the legacy file back it would fail with "Conflicting values set for option Signed-By".
    uris = ce.run("apt-get update --print-uris")
    assert uris.rc == 0 and "Conflicting" not in uris.stdout + uris.stderr, uris.stdout + uris.stderr
    assert "'https://download.docker.com/linux/debian/dists/bookworm/InRelease'" in uris.stdout


def test_docker_repository_host_has_no_engine_yet(ce):
    assert not ce.exists("dockerd")
    settings = json.loads(ce.file("/etc/docker/daemon.json").content_string)
    assert settings["data-root"] == "/container/data/docker" and settings["live-restore"] is True


def test_check_mode_on_a_host_without_engine_changes_nothing(converge, ce):
    before = ce.file("/etc/docker/daemon.json").content_string
    run = converge(CE, {"docker_install_source": "distribution", "docker_install_packages": True,
                        "docker_data_root": "/srv/elsewhere/docker"},
                   "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(CE)["changed"] >= 1
    assert '"data-root": "/srv/elsewhere/docker"' in run.output, "the diff shows the new daemon.json"
    assert not ce.exists("dockerd") and not ce.package("docker.io").is_installed
    assert ce.file("/etc/docker/daemon.json").content_string == before
