#!/usr/bin/env python3
"""The alerts' webhook receiver of the site scenario: appends the JSON body of every POST (one
Alertmanager notification) as one line to /var/log/nasai-webhook.jsonl, with the time it came."""

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = "/var/log/nasai-webhook.jsonl"


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"received": time.time(), "path": self.path, "payload": json.loads(body or b"{}")}) + "\n")
        self.send_response(200)
        self.end_headers()


ThreadingHTTPServer(("0.0.0.0", 9099), Hook).serve_forever()
