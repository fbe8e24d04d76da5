"""A Synology-like NAS keeps its vendor's engine exactly as it was (package, binary, settings, running
process); opt-ins change only what they name; a stopped or too old engine is refused clearly. A
host set up for Docker's repository gets a deb822 sources file apt accepts, without the legacy
files that made apt fail, and its engine really installs from that signed repository. Check mode
on a host without any engine changes nothing."""

import json

import pytest
import testinfra

DSM = "nas-docker-adopt-dsm"
CE = "nas-docker-adopt-cerepo"
BARE = "nas-docker-adopt-bare"
REPO = "http://127.0.0.1:8765/linux/debian"


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
        assert "is installed but not answering (docker.service is inactive (dead))" in run.said
        assert dsm.check_output("systemctl is-active docker || true") == "inactive"
    finally:
        dsm.check_output("systemctl start docker.socket docker.service")


def test_docker_repository_is_a_deb822_file_apt_accepts(ce):
    sources = ce.file("/etc/apt/sources.list.d/docker.sources")
    assert sources.mode == 0o644
    fields = dict(line.split(": ", 1) for line in sources.content_string.splitlines() if ": " in line)
    fields.pop("X-Repolib-Name", None)
    assert fields == {"Types": "deb", "URIs": REPO, "Suites": "bookworm", "Components": "stable",
                      "Architectures": "amd64", "Signed-By": "/etc/apt/keyrings/docker.asc"}
    assert ce.file("/etc/apt/keyrings/docker.asc").content_string.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    # The legacy one-line file and its key are gone, so apt sees one consistent Signed-By.
    assert not ce.file("/etc/apt/sources.list.d/docker.list").exists
    assert not ce.file("/etc/apt/keyrings/docker.gpg").exists
    # apt really fetches the repository and checks its signature: with the legacy file back it
    # would fail with "Conflicting values set for option Signed-By", with another key NO_PUBKEY.
    update = ce.run("apt-get update")
    said = update.stdout + update.stderr
    assert update.rc == 0 and "Conflicting" not in said and "NO_PUBKEY" not in said, said
    assert "not signed" not in said and f"{REPO} bookworm InRelease" in said, said


def test_engine_installs_and_runs_from_the_signed_repository(ce):
    for name in ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"):
        assert ce.package(name).is_installed, name
        assert ce.package(name).version.endswith("~nasai1"), name
    assert f"500 {REPO} bookworm/stable amd64 Packages" in ce.check_output("apt-cache policy docker-ce")
    assert ce.check_output("dpkg -S /usr/sbin/dockerd").startswith("docker-ce:")
    info = json.loads(ce.check_output("docker info --format '{{json .}}'"))
    assert info["DockerRootDir"] == "/container/data/docker" and info["LiveRestoreEnabled"] is True


def test_check_mode_on_a_host_without_engine_changes_nothing(converge):
    bare = testinfra.get_host(f"docker://{BARE}")
    before = bare.check_output("ls -la /etc/apt/sources.list.d /etc; cat /var/lib/dpkg/status | md5sum")
    run = converge(BARE, {"docker_install_source": "distribution", "docker_data_root": "/srv/elsewhere/docker"},
                   "--check", "--diff", playbook="check_bare.yml")
    assert run.rc == 0, run.output
    assert run.recap(BARE)["changed"] >= 1
    assert '"data-root": "/srv/elsewhere/docker"' in run.output, "the diff shows the new daemon.json"
    assert not bare.exists("dockerd") and not bare.package("docker.io").is_installed
    assert not bare.file("/etc/docker/daemon.json").exists
    assert bare.check_output("ls -la /etc/apt/sources.list.d /etc; cat /var/lib/dpkg/status | md5sum") == before
