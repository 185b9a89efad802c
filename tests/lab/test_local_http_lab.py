"""local_http against a real loopback server: requests arrive, and a proxy set in the environment is not used."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runbook_lib import local_http


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = json.dumps({"path": self.path, "body": json.loads(body or b"null")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_a_request_reaches_the_server_past_an_unreachable_proxy(echo_url, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: a proxied request would fail
    monkeypatch.setenv("NO_PROXY", "")
    resp = local_http.request("POST", echo_url + "/lab/v1/faults", json={"kind": "node-down"}, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"path": "/lab/v1/faults", "body": {"kind": "node-down"}}
