"""Model files on NFS: the client NAS mounts a real (userspace, ganesha) NFS server's export
through fstab and a Docker volume, the exporter NAS serves exports checked by exportfs, and bad
input, volumes in use and foreign volumes are refused before anything changes.

This machine's kernel has neither an NFS client nor nfsd: the data path is proven with libnfs
(`nfs-ls`/`nfs-cat`) against what the role configured, and only the kernel mount itself is
skipped, when the kernel says it cannot make it."""

import json
import subprocess
import time
from urllib.parse import quote

import pytest
import testinfra

CLIENT = "nas-nfs_models"
EXPORTER = "nas-nfs_models-exporter"
SERVER = "nas-nfs_models-ganesha"
MOUNT = "/srv/nasai/models"
MODEL = "tiny.gguf"
VOLUME = "nasai-models"
EXPORTS = "/etc/exports.d/nasai.exports"
OPTIONS = "vers=4.2,ro,soft,timeo=150,retrans=3"


@pytest.fixture(scope="module")
def client():
    return testinfra.get_host(f"docker://{CLIENT}")


@pytest.fixture(scope="module")
def exporter():
    return testinfra.get_host(f"docker://{EXPORTER}")


@pytest.fixture(scope="module")
def server():
    return testinfra.get_host(f"docker://{SERVER}")


@pytest.fixture(scope="module")
def model_sha(server):
    return server.check_output(f"sha256sum /srv/models/{MODEL}").split()[0]


def fstab_entries(host, mount_point=MOUNT):
    rows = [line.split() for line in host.file("/etc/fstab").content_string.splitlines()]
    return [fields for fields in rows if len(fields) >= 2 and fields[1] == mount_point]


def volume(host, name=VOLUME):
    out = host.run(f"docker volume inspect {name}")
    return json.loads(out.stdout)[0] if out.rc == 0 else None


def kernel_has_nfs(host):
    names = {line.split()[-1] for line in host.file("/proc/filesystems").content_string.splitlines()}
    return bool(names & {"nfs", "nfs4"})


def nfs_url(host, path, options, name=""):
    """The libnfs URL of `name` in the export host:path, with the version from the mount options."""
    vers = dict(o.split("=", 1) for o in options.split(",") if "=" in o).get("vers", "4")
    return f"nfs://{host}{quote(path)}/{quote(name)}?version={vers.split('.')[0]}"


def read_over_nfs(host, url):
    """sha256 of a file read by the userspace NFS client on `host` (the NAS)."""
    return host.check_output(f"nfs-cat '{url}' | sha256sum").split()[0]


def state(client, exporter):
    """What a refused run must leave as it was, on both NAS."""
    return {
        "fstab": client.file("/etc/fstab").content_string,
        "volumes": client.check_output("docker volume ls -q"),
        "volume": volume(client),
        "srv": client.check_output("ls -a /srv /srv/nasai"),
        "exports": exporter.file(EXPORTS).content_string,
        "etab": exporter.file("/var/lib/nfs/etab").content_string,
        "exporter_srv": exporter.check_output("ls -a /srv"),
    }


# --- client: packages, fstab, systemd, kernel mount ----------------------------------------------

def test_client_packages_are_installed(client, exporter):
    assert client.package("nfs-common").is_installed
    # The Docker volume is managed over the engine's socket with the standard library: the role
    # installs no python3-requests (appliances have none), and the volume exists all the same.
    assert not client.package("python3-requests").is_installed
    assert volume(client)["Driver"] == "local"
    # The exporter has nfs_models_client: false: no mount, no Docker volume.
    assert not fstab_entries(exporter) and exporter.run("docker volume ls").rc != 0


def test_share_is_in_fstab_once_with_its_options(client):
    assert fstab_entries(client) == [
        [f"{SERVER}:/srv/models", MOUNT, "nfs", f"_netdev,nofail,{OPTIONS}", "0", "0"]]


def test_systemd_has_read_the_mount(client):
    unit = client.check_output(f"systemd-escape -p --suffix=mount {MOUNT}")
    props = dict(line.split("=", 1) for line in client.check_output(
        f"systemctl show {unit} -p What -p Where -p Type -p Options -p NeedDaemonReload").splitlines())
    assert props == {"What": f"{SERVER}:/srv/models", "Where": MOUNT, "Type": "nfs",
                     "Options": f"_netdev,nofail,{OPTIONS}", "NeedDaemonReload": "no"}


def test_mount_point_belongs_to_the_ai_core(client):
    point = client.file(MOUNT)
    assert point.is_directory and point.uid == 1000 and point.gid == 1000 and point.mode == 0o755


def test_kernel_mount(client):
    if not kernel_has_nfs(client):
        pytest.skip("this kernel has no NFS client (neither nfs nor nfs4 in /proc/filesystems): "
                    "the role writes the mount to fstab but cannot mount it")
    mount = client.mount_point(MOUNT)
    assert mount.exists and mount.filesystem.startswith("nfs") and "ro" in mount.options


# --- the share the role configured is really served ----------------------------------------------

def test_share_in_fstab_is_reachable_and_bytes_match(client, model_sha):
    source, _point, _type, options = fstab_entries(client)[0][:4]
    host, path = source.split(":", 1)
    assert MODEL in client.check_output(f"nfs-ls '{nfs_url(host, path, options)}'")
    assert read_over_nfs(client, nfs_url(host, path, options, MODEL)) == model_sha


def test_docker_volume_has_the_nfs_options(client):
    vol = volume(client)
    assert vol["Driver"] == "local"
    assert vol["Options"] == {"type": "nfs", "o": f"addr={SERVER},{OPTIONS}", "device": ":/srv/models"}


def test_docker_volume_options_reach_the_share(client, model_sha):
    opts = volume(client)["Options"]
    addr = dict(o.split("=", 1) for o in opts["o"].split(",") if "=" in o)["addr"]
    url = nfs_url(addr, opts["device"].lstrip(":"), opts["o"], MODEL)
    assert read_over_nfs(client, url) == model_sha


def test_the_nas_boots_while_the_nfs_server_is_down_and_finds_the_share_after(client, model_sha):
    """The NFS server down, the NAS rebooted (a restart of its container: systemd shuts down and
    boots): it boots without waiting on the mount (_netdev,nofail), keeps the mount and the volume
    as the role made them, and reads the share again once the server is back, without Ansible."""
    fstab, vol = fstab_entries(client), volume(client)
    subprocess.run(["docker", "stop", SERVER], check=True, capture_output=True)
    try:
        start = time.monotonic()
        subprocess.run(["docker", "restart", "-t", "60", CLIENT], check=True, capture_output=True)
        while client.run("systemctl is-system-running").stdout.strip() not in ("running", "degraded"):
            assert time.monotonic() - start < 120, client.run("systemctl list-jobs --no-pager").stdout
            time.sleep(1)
        booted = time.monotonic() - start
        unit = client.check_output(f"systemd-escape -p --suffix=mount {MOUNT}")
        assert client.run(f"systemctl is-active {unit}").stdout.strip() != "active"
        assert booted < 90, f"the boot took {booted:.0f} s: it waited on the share"
    finally:
        subprocess.run(["docker", "start", SERVER], check=True, capture_output=True)
    assert fstab_entries(client) == fstab and volume(client) == vol
    source, _point, _type, options = fstab[0][:4]
    host, path = source.split(":", 1)
    deadline = time.monotonic() + 60
    while client.run(f"nfs-ls '{nfs_url(host, path, options)}'").rc != 0:
        assert time.monotonic() < deadline, "the share did not come back"
        time.sleep(1)
    assert read_over_nfs(client, nfs_url(host, path, options, MODEL)) == model_sha


# --- exporter: exports file, exportfs, nfsd ------------------------------------------------------

def test_exports_are_rendered(exporter):
    exports = exporter.file(EXPORTS)
    assert exports.user == "root" and exports.mode == 0o644
    lines = [line for line in exports.content_string.splitlines() if not line.startswith("#")]
    assert lines == [
        "/srv/models 10.0.0.0/8(ro,sync,no_subtree_check,root_squash)"
        " *.lan(rw,no_subtree_check,all_squash,anonuid=1000,anongid=1000,async)",
        "/srv/archive 192.168.1.10(ro,sync,no_subtree_check,no_root_squash)",
    ]


def test_exportfs_accepted_the_exports(exporter):
    assert exporter.package("nfs-kernel-server").is_installed
    etab = {tuple(line.split("\t")[:1]) + (line.split("\t")[1].split("(")[0],): line
            for line in exporter.file("/var/lib/nfs/etab").content_string.splitlines()}
    assert set(etab) == {("/srv/models", "10.0.0.0/8"), ("/srv/models", "*.lan"),
                         ("/srv/archive", "192.168.1.10")}
    assert "anonuid=1000,anongid=1000" in etab[("/srv/models", "*.lan")]
    for path in ("/srv/models", "/srv/archive"):
        made = exporter.file(path)
        assert made.is_directory and (made.uid, made.gid) == (1000, 1000)


def test_nfsd_state_is_told_not_hidden(converge, exporter):
    nfsd = "nfsd" in exporter.file("/proc/filesystems").content_string.split()
    active = exporter.run("systemctl is-active nfs-server").stdout.strip()
    if nfsd:
        assert active == "active"
        return
    assert active != "active"
    run = converge(EXPORTER, None, "--check")
    assert run.rc == 0, run.output
    assert "nfs-server is NOT" in run.said and "has no NFS server (nfsd)" in run.said


# --- reruns, check mode ---------------------------------------------------------------------------

def test_check_mode_changes_nothing_and_says_what_is_not_mounted(converge, client, exporter):
    before = state(client, exporter)
    run = converge("nas", None, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.recap(CLIENT)["changed"] == 0 and run.recap(EXPORTER)["changed"] == 0
    if not kernel_has_nfs(client):
        assert f"{SERVER}:/srv/models is written to /etc/fstab for {MOUNT} but NOT mounted" in run.said
    assert state(client, exporter) == before


def test_changed_options_recreate_an_unused_volume(converge, client, model_sha):
    run = converge(CLIENT, {"nfs_models_version": "3"})
    assert run.rc == 0, run.output
    opts = volume(client)["Options"]
    assert opts["o"] == f"addr={SERVER},{OPTIONS.replace('4.2', '3')}"
    assert fstab_entries(client)[0][3] == f"_netdev,nofail,{OPTIONS.replace('4.2', '3')}"
    # NFSv3 (portmapper, mountd) from the same options.
    assert read_over_nfs(client, nfs_url(SERVER, "/srv/models", opts["o"], MODEL)) == model_sha
    run = converge(CLIENT)
    assert run.rc == 0, run.output
    assert volume(client)["Options"]["o"] == f"addr={SERVER},{OPTIONS}"


def test_absent_removes_the_mount_and_the_volume_not_the_share(converge, client, server, model_sha):
    run = converge(CLIENT, {"nfs_models_mount_state": "absent", "nfs_models_docker_volume_state": "absent"})
    assert run.rc == 0, run.output
    assert fstab_entries(client) == [] and volume(client) is None
    assert client.file(MOUNT).is_directory
    assert server.check_output(f"sha256sum /srv/models/{MODEL}").split()[0] == model_sha
    run = converge(CLIENT)
    assert run.rc == 0, run.output
    assert len(fstab_entries(client)) == 1 and volume(client)["Options"]["type"] == "nfs"


def test_volume_in_use_is_not_recreated(converge, client, exporter):
    client.check_output("docker image inspect nasai-test/empty >/dev/null 2>&1 || "
                        "tar -cf - --files-from /dev/null | docker import - nasai-test/empty")
    client.check_output(f"docker create --name model-user -v {VOLUME}:/models nasai-test/empty /none")
    try:
        before = state(client, exporter)
        run = converge(CLIENT, {"nfs_models_version": "4.1"})
        assert run.rc != 0
        assert f"Docker volume {VOLUME} is used by model-user" in run.said
        assert "recreate it with the NFS options" in run.said and "vers=4.1" in run.said
        assert run.recap(CLIENT)["changed"] == 0
        assert state(client, exporter) == before
        run = converge(CLIENT, {"nfs_models_docker_volume_state": "absent"})
        assert run.rc != 0 and "remove it (nfs_models_docker_volume_state: absent)" in run.said
        assert volume(client) == before["volume"]
    finally:
        client.run("docker rm -f model-user")


def test_foreign_volume_is_not_replaced(converge, client, exporter):
    client.check_output("docker volume create precious >/dev/null && "
                        "echo weights > /var/lib/docker/volumes/precious/_data/keep")
    try:
        before = state(client, exporter)
        run = converge(CLIENT, {"nfs_models_docker_volume_name": "precious"})
        assert run.rc != 0
        assert "Docker volume precious exists and is not an NFS volume" in run.said
        assert "nfs_models_docker_volume_replace_foreign" in run.said
        assert state(client, exporter) == before
        assert not volume(client, "precious")["Options"]
        assert client.file("/var/lib/docker/volumes/precious/_data/keep").content_string == "weights\n"
    finally:
        client.run("docker volume rm precious")


def test_kernel_missing_policy_fail_stops_before_any_change(converge, client, exporter):
    if kernel_has_nfs(client):
        pytest.skip("this kernel has an NFS client: the policy does not apply")
    before = state(client, exporter)
    run = converge(CLIENT, {"nfs_models_kernel_missing_policy": "fail", "nfs_models_mount_path": "/srv/other"})
    assert run.rc != 0
    assert "has no NFS client" in run.said and "nfs_models_kernel_missing_policy: fail" in run.said
    assert run.recap(CLIENT)["changed"] == 0 and state(client, exporter) == before


def test_exportfs_rejection_puts_the_previous_exports_back(converge, client, exporter):
    before = state(client, exporter)
    exports = [{"path": "/srv/models", "clients": [{"host": "10.0.0.0/8", "options": ["fsid=notanumber"]}]}]
    run = converge(EXPORTER, {"nfs_models_exports": exports})
    assert run.rc != 0
    assert "exportfs rejected the exports rendered from nfs_models_exports" in run.said
    assert 'bad fsid "fsid=notanumber"' in run.said
    assert state(client, exporter) == before


def test_world_read_write_export_when_allowed(converge, exporter):
    exports = [{"path": "/srv/models", "clients": [{"host": "*", "access": "rw"}]}]
    run = converge(EXPORTER, {"nfs_models_exports": exports, "nfs_models_export_allow_world_rw": True})
    assert run.rc == 0, run.output
    assert "/srv/models *(rw,sync,no_subtree_check,root_squash)" in exporter.file(EXPORTS).content_string
    assert "/srv/models\t*(rw," in exporter.file("/var/lib/nfs/etab").content_string
    run = converge(EXPORTER)
    assert run.rc == 0, run.output
    assert "/srv/models\t*(" not in exporter.file("/var/lib/nfs/etab").content_string


# --- bad input fails before any change -----------------------------------------------------------

WORLD_RW = [{"path": "/srv/models", "clients": [{"host": "*", "access": "rw"}]}]


@pytest.mark.parametrize(("limit", "extra", "message"), [
    (CLIENT, {"nfs_models_share": "nas-nfs_models-ganesha"}, "nfs_models_share must be host:/path"),
    (CLIENT, {"nfs_models_share": "server:models"}, "nfs_models_share must be host:/path"),
    (CLIENT, {"nfs_models_share": "server:/models,rw"}, "nfs_models_share must be host:/path"),
    (CLIENT, {"nfs_models_share": ""}, "nfs_models_share must be host:/path"),
    (CLIENT, {"nfs_models_version": "5"}, "nfs_models_version"),
    (CLIENT, {"nfs_models_version": "4.3"}, "nfs_models_version"),
    (CLIENT, {"nfs_models_mount_state": "up"}, "nfs_models_mount_state"),
    (CLIENT, {"nfs_models_mount_path": "models"}, "nfs_models_mount_path must be an absolute path"),
    (CLIENT, {"nfs_models_timeo": 0}, "nfs_models_timeo must be 1 to 6000"),
    (CLIENT, {"nfs_models_extra_options": ["vers=3"]}, "nfs_models_extra_options must not set"),
    (CLIENT, {"nfs_models_extra_options": ["rsize=1048576,rw"]}, "nfs_models_extra_options must be NFS options"),
    (CLIENT, {"nfs_models_docker_volume_name": "-bad"}, "nfs_models_docker_volume_name must be"),
    (CLIENT, {"nfs_models_uid": -1}, "nfs_models_uid must be a number >= 0"),
    (EXPORTER, {"nfs_models_exports": WORLD_RW}, "nfs_models_export_allow_world_rw: true"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/srv/models", "clients": [{"host": "0.0.0.0/0", "access": "rw"}]}]},
     "read-write to everyone"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/srv/models", "clients": [{"host": "*", "options": ["rw"]}]}]},
     "client options must be exports(5) keywords other than ro/rw"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/srv/models", "clients": [{"host": "*", "options": ["bogus"]}]}]},
     "client options must be exports(5) keywords"),
    (EXPORTER, {"nfs_models_exports": [{"path": "srv/models", "clients": [{"host": "*"}]}]},
     "each path must be absolute"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/srv/models", "clients": [{"host": "a b"}]}]},
     "each client host must be"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/srv/models", "clients": [{"host": "*", "access": "write"}]}]},
     "access"),
    (EXPORTER, {"nfs_models_exports": []}, "nfs_models_exports must list at least one export"),
    (EXPORTER, {"nfs_models_exports_file": "/etc/exports"}, "nfs_models_exports_file must be a file ending"),
    # Dangerous input needs an opt-in: root of a client as root here, the root or a system directory.
    (EXPORTER, {"nfs_models_export_allow_no_root_squash": False, "nfs_models_exports": [
        {"path": "/srv/models", "clients": [{"host": "10.0.0.0/8", "squash": "no_root_squash"}]}]},
     "with no_root_squash: root on those clients would be root on these files"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/", "clients": [{"host": "10.0.0.0/8"}]}]},
     "nfs_models_exports exports /, the root or a system directory"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/etc", "clients": [{"host": "10.0.0.0/8"}]}]},
     "nfs_models_exports exports /etc, the root or a system directory"),
    (EXPORTER, {"nfs_models_exports": [{"path": "/srv/../etc", "clients": [{"host": "10.0.0.0/8"}]}]},
     "a path must not contain '..'"),
    # A local filesystem is mounted there (tmpfs): the share would hide its files.
    (CLIENT, {"nfs_models_mount_path": "/dev/shm"}, "is where a local tmpfs filesystem is mounted"),
])
def test_bad_input_fails_before_any_change(converge, client, exporter, limit, extra, message):
    before = state(client, exporter)
    run = converge(limit, extra)
    assert run.rc != 0
    assert message in run.said
    assert run.recap(limit)["changed"] == 0
    assert state(client, exporter) == before
