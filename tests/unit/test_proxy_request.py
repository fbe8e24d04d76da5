"""proxy_request: one request through the proxy given as an option, its password sent to the proxy."""

import base64
import http.server
import threading

from ansible_collections.nasai.stack.plugins.modules import proxy_request


class FakeProxy(http.server.BaseHTTPRequestHandler):
    """Answers as a proxy would: 407 without the right credentials, else 200 with a Via header."""

    seen = []

    def do_HEAD(self):
        auth = self.headers.get("Proxy-Authorization", "")
        FakeProxy.seen.append((self.path, auth))
        ok = auth == "Basic " + base64.b64encode(b"nasai:s3cret").decode()
        self.send_response(200 if ok else 407)
        self.send_header("Via", "1.1 fakeproxy")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_request_goes_to_the_proxy_with_its_credentials_and_redirects_are_not_followed():
    server = http.server.HTTPServer(("127.0.0.1", 0), FakeProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        status, _msg, via = proxy_request.send("http://example.invalid/x", f"http://nasai:s3cret@127.0.0.1:{port}",
                                               "HEAD", 5)
        assert (status, via) == (200, "1.1 fakeproxy")
        assert FakeProxy.seen[-1][0] == "http://example.invalid/x"
        wrong = proxy_request.send("http://example.invalid/x", f"http://nasai:wrong@127.0.0.1:{port}", "HEAD", 5)
        assert wrong[0] == 407
    finally:
        server.shutdown()


def test_no_answer_is_minus_one_with_the_reason():
    status, msg, _via = proxy_request.send("http://127.0.0.1:9/", "", "HEAD", 2)
    assert status == -1 and "refused" in msg.lower()
