"""Runs inside the simulated NAS (benchmarks/load.sh copies it there): drives the stack with h2load
on loopback, direct to the AI core and through the proxy, and prints the figures of issue 10."""

import json
import re
import statistics
import subprocess
import sys
import threading
import time

CA = "/container/data/services/tls/ca.crt"
PROXY_LOG = "/container/data/services/data/logs/nasai-proxy.log"
AI = ["nasai-ai-1", "nasai-ai-2"]
BODY = "/tmp/chat.json"
DIRECT = "http://127.0.0.1:8081"
PROXY = "https://127.0.0.1:443"
# A `user` of the services scenario (converge.yml): the proxy lets no request through without a key.
KEY = "alice-key-0123456789abcdef"
# HAProxy's httplog: ... TR/Tw/Tc/Tr/Ta status ...
TIMERS = re.compile(r" (-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/\+?(-?\d+) (\d{3}) ")


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False).stdout


def inspect(name):
    return json.loads(sh(f"docker inspect {name}"))[0]


def restarts():
    return {n: (inspect(n)["RestartCount"], inspect(n)["State"]["StartedAt"]) for n in AI}


def cgroup_dir(name, controller):
    cid = inspect(name)["Id"]
    return sh(f"find /sys/fs/cgroup/{controller}/ -type d -name {cid} -print -quit").strip()


class Sampler(threading.Thread):
    """Peak pids and memory of the AI core's containers while a run lasts."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.pids, self.mem = threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            for name in AI:
                try:
                    with open(f"{cgroup_dir(name, 'pids')}/pids.current") as f:
                        self.pids = max(self.pids, int(f.read()))
                    with open(f"{cgroup_dir(name, 'memory')}/memory.usage_in_bytes") as f:
                        self.mem = max(self.mem, int(f.read()))
                except (OSError, ValueError):
                    pass
            time.sleep(0.3)


def memory(name):
    try:
        with open(f"{cgroup_dir(name, 'memory')}/memory.usage_in_bytes") as f:
            return int(f.read()) >> 20
    except (OSError, ValueError):
        return -1


def h2load(url, clients, requests, seconds, path="/v1/chat/completions", post=True):
    log = "/tmp/h2load.log"
    sh(f"rm -f {log}")
    data = f"-d {BODY} -H 'Content-Type: application/json'" if post else ""
    data += f" -H 'Authorization: Bearer {KEY}'" if url == PROXY else ""
    start = time.monotonic()
    out = sh(f"ulimit -n 65536; timeout {seconds + 30} h2load --h1 -m 1 -t 1 -c {clients} -n {requests} -T {seconds} -N {seconds} "
             f"{data} --log-file={log} {url}{path} 2>&1")
    wall = time.monotonic() - start
    rows = []
    for line in open(log, encoding="utf-8", errors="replace") if sh(f"ls {log}").strip() else []:
        fields = line.split()
        if len(fields) >= 3:
            rows.append((int(fields[1]), int(fields[2]) / 1000.0))
    m = re.search(r"(\d+) errored, (\d+) timeout", out)
    # Requests without a response: h2load's own bound (-T: cut) or a failed connection (an error).
    cut = int(m.group(2)) if m else 0
    return rows, wall, max(requests - len(rows) - cut, 0), cut


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def proxy_log_lines():
    try:
        with open(PROXY_LOG, encoding="utf-8", errors="replace") as f:
            return f.readlines()
    except OSError:
        return []


def level(url, clients, seconds, requests=None):
    before_log = len(proxy_log_lines())
    before = restarts()
    sampler = Sampler()
    sampler.start()
    rows, wall, lost, cut = h2load(url, clients, requests or max(clients * 2, 600), seconds)
    sampler.stop.set()
    sampler.join()
    after = restarts()
    ok = [t for s, t in rows if s == 200]
    shed = [s for s, _t in rows if s in (429, 503)]
    other = [s for s, _t in rows if s not in (200, 429, 503)]
    queued = "-"
    if url == PROXY:
        queued = 0
        for line in proxy_log_lines()[before_log:]:
            m = TIMERS.search(line)
            if m and m.group(6) == "200" and int(m.group(2)) > 0:
                queued += 1
    return {
        "clients": clients, "via": "proxy" if url == PROXY else "direct",
        "rps": len(ok) / wall if wall else 0, "p50": pct(ok, 50), "p99": pct(ok, 99),
        "answered": len(ok), "queued": queued, "shed": len(shed), "errors": len(other) + lost, "cut": cut,
        "restarts": sum(after[n][0] - before[n][0] for n in AI) + sum(after[n][1] != before[n][1] for n in AI),
        "pids": sampler.pids, "mem": sampler.mem >> 20,
    }


def wait_healthy():
    for _poll in range(120):
        if all(inspect(n)["State"].get("Health", {}).get("Status") == "healthy" for n in AI):
            return
        time.sleep(1)


TTFT = r"""
import http.client, json, random, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
# "short": one word, the proxy's overhead against the smallest first token the AI core gives.
# "chat": a system prompt and a question, begun with a number of its own so that the AI core's prompt
# cache never holds it (every token is read): some 200 tokens, what the test model's 256 hold.
SYSTEM = "You are the assistant of a small office. Answer briefly, and say when you do not know."
QUESTION = "Which of our old invoices may we delete, and how do we keep a copy off-site?"

def body(kind, n):
    if kind == "short":
        messages = [{"role": "user", "content": "hi"}]
    else:
        messages = [{"role": "system", "content": "%d. %s" % (n, SYSTEM)}, {"role": "user", "content": QUESTION}]
    return json.dumps({"messages": messages, "max_tokens": 16, "stream": True})

def first_token(conn, payload):
    conn.connect()
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json",
                 "Authorization": "Bearer " + sys.argv[3]})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit("HTTP %d: %s" % (resp.status, resp.read()[:300]))
    while True:
        line = resp.readline()
        if line.startswith(b"data: ") or not line:
            break
    took = time.perf_counter() - start
    # The rest of the stream is read, as a chat client would: a client that hangs up mid-stream
    # makes the proxy drop its connection to the replica instead of keeping it for the next request.
    resp.read()
    conn.close()
    return took

times = {"direct": [], "proxy": []}
random.seed(10)
for run in range(int(sys.argv[1])):
    # Direct alternates over the replicas as the proxy balances over them; the order of the pair is
    # drawn each time, so that neither always follows the other on this shared machine.
    tries = [("direct", lambda: http.client.HTTPConnection("127.0.0.1", 8081 + run % 2)),
             ("proxy", lambda: http.client.HTTPSConnection("localhost", 443, context=ctx))]
    random.shuffle(tries)
    for via, conn in tries:
        times[via].append(first_token(conn(), body(sys.argv[4], 2 * run + (via == "proxy"))))
print(json.dumps(times))
"""


def ttft(kind, n=100):
    """Median seconds from sending a streamed chat (`kind`: short or chat) to its first event, direct
    and through the proxy (connections, TLS included, set up before the clock starts)."""
    with open("/tmp/ttft.py", "w", encoding="utf-8") as f:
        f.write(TTFT)
    times = json.loads(sh(f"python3 /tmp/ttft.py {n} {CA} {KEY} {kind}"))
    return statistics.median(times["direct"]), statistics.median(times["proxy"])


def print_ttft(n, model):
    """The time to first streamed token of both prompts, direct and through the proxy, printed."""
    for kind, prompt in (("short", "a one-word prompt"), ("chat", "a chat's prompt of some 200 tokens, never cached")):
        direct, proxy = ttft(kind, n)
        print(f"time to first streamed token, {model}, {prompt} (median of {n}): direct {direct * 1000:.1f} ms, "
              f"proxy {proxy * 1000:.1f} ms, ratio {proxy / direct:.2f} (target <= 1.1)", flush=True)


def main():
    if sys.argv[1] == "ttft":
        # Only the time to first token, on whatever model the stack serves now (load.sh: a model of
        # a small real model's size): load_driver.py ttft N MODEL-NAME.
        wait_healthy()
        print_ttft(int(sys.argv[2]), sys.argv[3])
        return
    if sys.argv[1] == "compare":
        # One proxy engine at 400 clients (load.sh runs it for haproxy, then for nginx).
        with open(BODY, "w", encoding="utf-8") as f:
            json.dump({"messages": [{"role": "user", "content": "load"}], "max_tokens": 8}, f)
        wait_healthy()
        r = level(PROXY, 400, int(sys.argv[2]))
        print(f"{sys.argv[3]:<8} 400 clients: answered {r['answered']}, shed {r['shed']}, errors {r['errors']}, "
              f"cut {r['cut']}, p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms, AI core restarts {r['restarts']}, "
              f"peak pids {r['pids']}", flush=True)
        return
    levels = [int(c) for c in sys.argv[1].split(",")]
    seconds = int(sys.argv[2])
    soak = int(sys.argv[3])
    with open(BODY, "w", encoding="utf-8") as f:
        json.dump({"messages": [{"role": "user", "content": "load"}], "max_tokens": 8}, f)
    print(f"{'clients':>7} {'via':<6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'answered':>8} {'queued':>7} "
          f"{'shed':>6} {'errors':>6} {'cut':>5} {'restarts':>8} {'peak pids':>9} {'peak MiB':>8}", flush=True)
    for clients in levels:
        for url in (DIRECT, PROXY):
            wait_healthy()
            r = level(url, clients, seconds)
            print(f"{r['clients']:>7} {r['via']:<6} {r['rps']:>7.1f} {r['p50']:>8.0f} {r['p99']:>8.0f} "
                  f"{r['answered']:>8} {r['queued']!s:>7} {r['shed']:>6} {r['errors']:>6} {r['cut']:>5} {r['restarts']:>8} "
                  f"{r['pids']:>9} {r['mem']:>8}", flush=True)
    wait_healthy()
    rates = {}
    for url in (DIRECT, PROXY):
        rows, wall, _queued, _cut = h2load(url, 4, 4000, 30, path="/health", post=False)
        rates[url] = sum(1 for s, _t in rows if s == 200) / wall
    print(f"GET /health at 4 clients: direct {rates[DIRECT]:.0f}/s, proxy {rates[PROXY]:.0f}/s, "
          f"ratio {rates[PROXY] / rates[DIRECT]:.2f} (target >= 0.5)", flush=True)
    print_ttft(100, "the test model")
    if soak:
        # Back-to-back rounds of 6,000 requests at 300 clients until `soak` seconds are over, the AI
        # core's memory read between rounds: continuous load, and a memory series to show it is flat.
        wait_healthy()
        mem = [sum(memory(n) for n in AI)]
        totals = {"answered": 0, "shed": 0, "errors": 0, "cut": 0, "restarts": 0, "rounds": 0, "p99": 0.0}
        start = time.monotonic()
        while time.monotonic() - start < soak:
            r = level(PROXY, 300, 120, requests=6000)
            for key in ("answered", "shed", "errors", "cut", "restarts"):
                totals[key] += r[key]
            totals["rounds"] += 1
            totals["p99"] = max(totals["p99"], r["p99"])
            mem.append(sum(memory(n) for n in AI))
        took = time.monotonic() - start
        print(f"soak {took:.0f} s at 300 clients through the proxy ({totals['rounds']} rounds): answered "
              f"{totals['answered']} ({totals['answered'] / took:.0f}/s), shed {totals['shed']}, errors "
              f"{totals['errors']}, cut {totals['cut']}, AI core restarts {totals['restarts']}, worst round p99 "
              f"{totals['p99']:.0f} ms; AI core memory MiB, start to end: {mem}", flush=True)


if __name__ == "__main__":
    main()
