"""The chat front-end (Open WebUI) on nas-site-omv: a real browser signs in as the inventory's admin
through the TLS proxy, sends a message and sees the AI core's reply; a `user` account cannot reach the
admin settings; sign-up and a wrong password are refused; the accounts follow services_users; the
chat reaches the AI core only through the proxy, with its own `api` key; disabling it removes its
container and keeps its data.

Headless Chromium is driven through WebDriver (Debian's chromium-driver, selenium): it resolves the
NAS's name to the NAS container's address (--host-resolver-rules), so the URL is the one the
certificate is for; the chain is checked against the NAS's local CA separately (test_browser.py).
"""

import json
import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import testinfra

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
SHOTS = REPO / ".cache" / "screenshots"
OMV = "nas-site-omv"
PROJECT = "/srv/dev-disk-by-label-data/container/services"
ADMIN_KEY = PROJECT + "/secrets/user-admin.key"
ALICE = ("alice@nas.lan", "alice-key-0123456789abcdef")
ROBOT_KEY = "robot-key-0123456789abcdef"
CHAT = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def nas():
    return testinfra.get_host(f"docker://{OMV}")


@pytest.fixture(scope="module")
def admin_key(nas):
    return nas.file(ADMIN_KEY).content_string.strip()


# One HTTP request made on a NAS (it has Python, not curl): the status, then the body.
REQUEST = """
import ssl, sys, urllib.error, urllib.request
method, url, body, token = sys.argv[1:5]
headers = {"Content-Type": "application/json"}
if token:
    headers["Authorization"] = "Bearer " + token
request = urllib.request.Request(url, data=body.encode() or None, method=method, headers=headers)
try:
    answer = urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=120)
except urllib.error.HTTPError as error:
    answer = error
print(answer.status if hasattr(answer, "status") else answer.code)
print(answer.read().decode(errors="replace"))
"""


def api(nas, method, path, body=None, token=None, base=CHAT):
    """(status, decoded body) of a request made on the NAS, to the chat on loopback by default."""
    args = [method, base + path, json.dumps(body) if body is not None else "", token or ""]
    out = nas.check_output("python3 -c %s %s" % (shlex.quote(REQUEST), " ".join(shlex.quote(a) for a in args)))
    status, _newline, text = out.partition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status), text


def sign_in(nas, email, password, base=CHAT):
    return api(nas, "POST", "/api/v1/auths/signin", {"email": email, "password": password}, base=base)


@pytest.fixture(scope="module")
def admin(nas, admin_key):
    """The admin's session (Open WebUI allows 15 sign-ins per e-mail in 3 minutes: one for the module)."""
    status, session = sign_in(nas, "admin@nas.lan", admin_key)
    assert status == 200 and session["role"] == "admin", session
    return session


def test_the_chat_runs_hardened_with_its_quotas(nas):
    info = json.loads(nas.check_output("docker inspect nasai-chat"))[0]
    assert info["State"]["Health"]["Status"] == "healthy"
    host_config = info["HostConfig"]
    assert info["Config"]["User"] == "10003:10003"
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["Memory"] == 1 << 30 and host_config["NanoCpus"] == 1_000_000_000
    assert host_config["PidsLimit"] == 256
    # No secret in the container's environment: they come from the mounted file, its group only.
    env = "\n".join(info["Config"]["Env"])
    assert "WEBUI_SECRET_KEY" not in env and "OPENAI_API_KEY" not in env and "PASSWORD" not in env
    secrets = nas.file(PROJECT + "/config/chat/chat.env")
    assert (secrets.mode, secrets.uid, secrets.gid) == (0o640, 0, 10003)
    # Its data (SQLite) is under the stack's data directory, owned by it.
    database = nas.file(PROJECT + "/data/chat/webui.db")
    assert database.exists and database.uid == 10003


def test_the_proxy_serves_the_chat_at_the_root_and_keeps_the_api_behind_keys(nas):
    status, page = api(nas, "GET", "/", base="https://127.0.0.1")
    assert status == 200 and "Open WebUI" in page
    # The AI core's API still asks for a key, and takes the `api` user's.
    assert api(nas, "GET", "/v1/models", base="https://127.0.0.1")[0] == 401
    status, models = api(nas, "GET", "/v1/models", base="https://127.0.0.1", token=ROBOT_KEY)
    assert status == 200 and models["data"], models
    # The AI core's own admin endpoints stay admins' only; its own web page is not published.
    assert api(nas, "GET", "/slots", base="https://127.0.0.1", token=ROBOT_KEY)[0] == 403


def test_sign_up_and_a_wrong_password_are_refused(nas):
    mallory = {"name": "mallory", "email": "mallory@nas.lan", "password": "mallory-password-0123456789"}
    status, _body = api(nas, "POST", "/api/v1/auths/signup", mallory, base="https://127.0.0.1")
    assert status in (401, 403)
    assert sign_in(nas, ALICE[0], "not-alices-key-0123456789", base="https://127.0.0.1")[0] in (400, 401)
    assert sign_in(nas, *ALICE, base="https://127.0.0.1")[0] == 200


def test_the_accounts_are_the_inventory_users_with_their_roles(nas, admin):
    status, users = api(nas, "GET", "/api/v1/users/all", token=admin["token"])
    roles = {u["email"]: u["role"] for u in users["users"]}
    # robot has the `api` role: no chat account; nasai-chat (the chat's own key) neither.
    assert roles == {"admin@nas.lan": "admin", "alice@nas.lan": "user"}
    status, alice = sign_in(nas, *ALICE)
    assert status == 200 and alice["role"] == "user"
    # A user cannot open the admin settings.
    assert api(nas, "GET", "/api/v1/auths/admin/config", token=alice["token"])[0] in (401, 403)
    assert api(nas, "GET", "/api/v1/users/all", token=alice["token"])[0] in (401, 403)


def proxy_log_count(nas, pattern):
    log = PROJECT + "/data/logs/nasai-proxy.log"
    return int(nas.run(f"grep -c -- {shlex.quote(pattern)} {log}").stdout.strip() or 0)


def test_the_chat_reaches_the_ai_core_through_the_proxy_with_its_own_key(nas, admin):
    status, models = api(nas, "GET", "/api/models", token=admin["token"])
    assert status == 200 and models["data"], models
    # What the proxy passed to the AI core from loopback (the chat's connection): counted before and after.
    line = '"POST /v1/chat/completions'
    before = proxy_log_count(nas, line)
    status, answer = api(nas, "POST", "/api/chat/completions", {
        "model": models["data"][0]["id"], "stream": False, "max_tokens": 8,
        "messages": [{"role": "user", "content": "Say hello"}]}, token=admin["token"])
    assert status == 200 and answer["choices"][0]["message"]["content"], answer
    deadline = time.monotonic() + 15
    while proxy_log_count(nas, line) <= before:
        assert time.monotonic() < deadline, "the proxy logged no /v1/chat/completions from the chat"
        time.sleep(1)
    # Its key is the generated one of its own `api` user, which the proxy's map knows by its hash.
    key = nas.file(PROJECT + "/secrets/user-nasai-chat.key").content_string.strip()
    assert key and key in nas.file(PROJECT + "/config/chat/chat.env").content_string
    assert "nasai-chat api" in nas.file(PROJECT + "/auth/users.map").content_string


@pytest.fixture(scope="module")
def browser(nas):
    """Headless Chromium under WebDriver, resolving the NAS's name to its container's address."""
    if not shutil.which("chromedriver"):
        subprocess.run([str(REPO / "tests" / "setup-machine.sh"), "--browser"], check=True)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    address = nas_address()
    options = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--ignore-certificate-errors",
                "--window-size=1280,800", f"--host-resolver-rules=MAP {OMV} {address}"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def test_a_browser_signs_in_as_the_admin_sends_a_message_and_sees_the_reply(browser, admin_key):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 90)
    browser.get(f"https://{OMV}/auth")
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "input[type=email], input[name=email]")))
    browser.find_element(By.CSS_SELECTOR, "input[type=email], input[name=email]").send_keys("admin@nas.lan")
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(admin_key + Keys.ENTER)
    # The chat page: its message box (a rich-text editor) takes the prompt.
    box = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#chat-input")))
    # The first sign-in opens the release notes over the page a moment after it loads: close them
    # (a script's click: the dialog may still be fading in), then type into the box.
    time.sleep(3)
    for button in browser.find_elements(By.XPATH, "//button[contains(., \"Let's Go\")]"):
        browser.execute_script("arguments[0].click();", button)
    browser.execute_script("arguments[0].focus();", box)
    box.send_keys("Hello from the NAS test" + Keys.ENTER)

    def reply(driver):
        texts = [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, "#response-content-container")]
        return [t for t in texts if t]

    # The reply streams in: its elements are replaced as tokens arrive (a stale one is looked at again).
    replies = WebDriverWait(browser, 90, ignored_exceptions=(StaleElementReferenceException,)).until(reply)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "chat-open-webui.png"))
    assert replies and replies[0], "no reply from the AI core appeared in the page"
    assert "Hello from the NAS test" in browser.page_source


def nas_address():
    networks = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", OMV],
                                         capture_output=True, text=True, check=True).stdout)
    return next(net["IPAddress"] for net in networks.values() if net.get("IPAddress"))


def test_wrong_passwords_past_the_limit_get_429_from_the_proxy():
    """From the other NAS (one address of the LAN; not nas-site-omv's loopback, which the chat itself
    uses to reach the AI core): past services_auth_fail_limit (10 a minute) sign-ins, 429."""
    other = testinfra.get_host("docker://nas-site-trixie")
    # Another e-mail each time: Open WebUI's own limit (per e-mail) stays out of it; the proxy counts by address.
    # By address: the name nas-site-omv is nas-site-spare's host name too (the restore test's stand-in),
    # so the scenario's DNS would share the sign-ins between two proxies.
    base = f"https://{nas_address()}"
    codes = [sign_in(other, f"guess{n:02d}@nas.lan", "guess-0123456789abcdef", base=base)[0] for n in range(14)]
    assert set(codes[:10]) <= {400, 401} and set(codes[11:]) == {429}, codes


def test_a_user_removed_from_the_inventory_is_locked_out_and_keeps_their_chats(nas, converge, admin):
    alice = sign_in(nas, *ALICE)[1]
    title = f"alice's notes {uuid.uuid4().hex[:8]}"
    status, chat = api(nas, "POST", "/api/v1/chats/new", {"chat": {"title": title, "messages": []}},
                       token=alice["token"])
    assert status == 200, chat
    run = converge(OMV, {"services_users": [{"name": "admin", "role": "admin", "key": None},
                                            {"name": "robot", "role": "api", "key": ROBOT_KEY}]},
                   "--tags", "proxy,services")
    assert run.rc == 0, run.output[-3000:]
    users = api(nas, "GET", "/api/v1/users/all", token=admin["token"])[1]["users"]
    assert {u["email"]: u["role"] for u in users}["alice@nas.lan"] == "pending"
    # Locked out: her session ended with the change, and a new one reaches no chat.
    assert api(nas, "GET", "/api/v1/chats/", token=alice["token"])[0] == 401
    pending = sign_in(nas, *ALICE)[1]
    assert pending["role"] == "pending"
    assert api(nas, "GET", "/api/v1/chats/", token=pending["token"])[0] in (401, 403)
    # Back in the inventory: a user again, with the same account and chats.
    run = converge(OMV, None, "--tags", "proxy,services")
    assert run.rc == 0, run.output[-3000:]
    status, chats = api(nas, "GET", "/api/v1/chats/", token=sign_in(nas, *ALICE)[1]["token"])
    assert status == 200 and title in [c["title"] for c in chats], chats


def test_disabling_the_chat_removes_its_container_keeps_its_data_and_reruns_change_nothing(nas, converge):
    off = converge(OMV, {"services_chat_enabled": False}, "--tags", "proxy,services")
    assert off.rc == 0, off.output[-3000:]
    assert nas.run("docker inspect nasai-chat").rc != 0
    assert nas.file(PROJECT + "/data/chat/webui.db").exists
    # Without the chat, / is the AI core's again, behind the keys.
    assert api(nas, "GET", "/", base="https://127.0.0.1")[0] == 401
    on = converge(OMV, None, "--tags", "proxy,services")
    assert on.rc == 0, on.output[-3000:]
    again = converge(OMV, None, "--tags", "proxy,services")
    assert again.rc == 0 and again.recap(OMV)["changed"] == 0, again.output[-3000:]
    assert json.loads(nas.check_output("docker inspect nasai-chat"))[0]["State"]["Health"]["Status"] == "healthy"
