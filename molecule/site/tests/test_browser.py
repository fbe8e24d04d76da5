"""The stack's web pages render in a real browser: headless Chromium on this machine signs in as the
stack's admin (user name and key, which the proxy asks for), opens the chat UI (llama-server's own)
and the file manager through each NAS's TLS proxy (where the chat front-end runs, test_chat.py drives it), checks what the page shows, and keeps screenshots
under .cache/screenshots/ as artefacts.

Chromium reaches the NAS container by its address on the scenario network, under the NAS's own name
(--host-resolver-rules), so the URL is the one the certificate is for. The certificate chain is
checked separately against the NAS's local CA (Chromium would need an NSS database to trust it);
the browser itself then ignores certificate errors only to render and photograph the page.
"""

import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
SHOTS = REPO / ".cache" / "screenshots"
CA = "/srv/dev-disk-by-label-data/container/services/tls/ca.crt"
# The admin's key, generated on the NAS (services_users' default).
ADMIN_KEY = "/srv/dev-disk-by-label-data/container/services/secrets/user-admin.key"
WINDOW = "1280,800"


@pytest.fixture(scope="session")
def chromium():
    """The browser, installed by the shared setup script when this machine lacks it."""
    if not shutil.which("chromium"):
        subprocess.run([str(REPO / "tests" / "setup-machine.sh"), "--browser"], check=True)
    path = shutil.which("chromium")
    assert path, "tests/setup-machine.sh --browser did not install chromium"
    return path


def address_of(name):
    """A container's address on its scenario network, reachable from this machine."""
    out = subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", name],
                         capture_output=True, text=True, check=True).stdout
    addresses = [net["IPAddress"] for net in json.loads(out).values() if net.get("IPAddress")]
    assert addresses, f"{name} has no network address"
    return addresses[0]


@pytest.fixture(scope="module")
def nas_address(nas_name):
    """The NAS container's address on its scenario network, reachable from this machine."""
    return address_of(nas_name)


@pytest.fixture(scope="module")
def local_ca(host, nas_name, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / f"{nas_name}-ca.crt"
    path.write_text(host.file(CA).content_string, encoding="utf-8")
    return path


def browse(chromium, nas_name, address, tmp_path, url, *action, loads=True):
    """Run headless Chromium on url (https://<nas_name>/... resolved to address); return stdout
    (with loads=False, stderr, where Chromium says why a page did not load).

    Other scenarios on this machine create and remove Docker networks, which Chromium can see as
    a network change in the middle of a page load (net::ERR_NETWORK_CHANGED): only that is retried.
    """
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--ignore-certificate-errors", f"--user-data-dir={tmp_path / 'profile'}",
           f"--host-resolver-rules=MAP {nas_name} {address}", f"--window-size={WINDOW}",
           *action, url]
    for _attempt in range(3):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if "ERR_NETWORK_CHANGED" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    if not loads:
        return proc.stderr
    assert "Page load failed" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def signed_in(host, nas_name):
    """The NAS's https:// URL prefix with the admin's name and key in it (Chromium answers the
    proxy's Basic challenge with them)."""
    return f"https://admin:{host.file(ADMIN_KEY).content_string.strip()}@{nas_name}"


def title(dom):
    match = re.search(r"<title>(.*?)</title>", dom, re.S)
    return match.group(1).strip() if match else ""


def png_colours(path):
    """How many distinct pixel colours an 8-bit RGB(A) PNG (Chromium's screenshots) has."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour_type, _compression, _filter, interlace = header
    assert depth == 8 and colour_type in (2, 6) and not interlace, header
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous, colours = bytearray(stride), set()
    for row in range(height):
        kind = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        colours.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp))
        previous = line
    return len(colours)


def screenshot(chromium, nas_name, address, tmp_path, url, name, *action):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{nas_name}-{name}.png"
    path.unlink(missing_ok=True)
    browse(chromium, nas_name, address, tmp_path, url, *action, f"--screenshot={path}")
    assert path.is_file(), f"no screenshot of {url}"
    # A page with text and widgets, not a blank (one colour) or nearly empty error page.
    assert png_colours(path) > 16, f"{path} looks blank"
    return path


def test_proxy_certificate_verifies_against_the_local_ca(nas_name, nas_address, local_ca):
    ctx = ssl.create_default_context(cafile=str(local_ca))
    with socket.create_connection((nas_address, 443), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=nas_name) as tls:
            names = [value for _kind, value in tls.getpeercert()["subjectAltName"]]
    assert nas_name in names and "localhost" in names and "127.0.0.1" in names


def test_without_a_key_the_browser_gets_no_page(chromium, nas_name, nas_address, tmp_path):
    # The file manager asks for a key on every NAS (where the chat front-end runs, / is its sign-in page).
    err = browse(chromium, nas_name, nas_address, tmp_path, f"https://{nas_name}/files/", "--dump-dom", loads=False)
    assert "Page load failed: net::ERR_INVALID_AUTH_CREDENTIALS" in err, err[-3000:]


def test_chat_ui_renders(host, chromium, nas_name, nas_address, tmp_path, signed_in):
    if host.run("docker inspect nasai-chat").rc == 0:
        pytest.skip("this NAS serves the chat front-end at /: test_chat.py signs in and chats there")
    url = f"{signed_in}/"
    dom = browse(chromium, nas_name, nas_address, tmp_path, url, "--dump-dom")
    # llama-server's web UI, loaded through the proxy: a chat page with a prompt box and a button.
    assert "chat" in title(dom).lower(), dom[:2000]
    assert "<textarea" in dom and "<button" in dom, dom[:2000]
    screenshot(chromium, nas_name, nas_address, tmp_path, url, "chat")


def test_file_manager_opens_signed_in(chromium, nas_name, nas_address, tmp_path, signed_in):
    url = f"{signed_in}/files/"
    dom = browse(chromium, nas_name, nas_address, tmp_path, url, "--dump-dom")
    # copyparty's page, signed in as the user the proxy named: no login form of its own, and no
    # warning about the proxy (copyparty trusts the stack's proxy).
    assert re.search(r'acct"?\s*[:=]\s*"admin"', dom), dom[:3000]
    assert 'name="cppwd"' not in dom, dom[:3000]
    assert "reverse-proxy config" not in dom, dom[:3000]
    screenshot(chromium, nas_name, nas_address, tmp_path, url, "files")
