"""The LINSTOR controller's REST port (3370 ``api``): HTTP/1.1 on one connection, answered from the lab's model.

What a port-forward to the controller pod reaches: the same ``/v1/...`` and ``/health`` answers as
the service proxy (:func:`.api.handle`), with keep-alive as python-linstor's ``http.client`` uses it.
The connection is a socket (one end of a socketpair the port-forward bridges), served in its own thread.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import api as linstor_api

PORT = 3370  # the controller's containerPort "api" (piraeus-operator controller-deployment.yaml)


class _Owner:
    """What a BaseHTTPRequestHandler expects of its server: here only the lab."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab


class RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        lab = self.server.lab
        with lab.lock:
            lab.tick()
            code, payload = linstor_api.handle(lab, method, url.path, parse_qs(url.query), body)
        out = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def serve_connection(lab: Any, sock: socket.socket, peer: tuple[str, int]) -> threading.Thread:
    """Serve HTTP requests on ``sock`` until the client closes it (then close it)."""

    def run() -> None:
        try:
            RestHandler(sock, peer, _Owner(lab))
        except OSError:
            pass
        finally:
            sock.close()

    thread = threading.Thread(target=run, name="linstor-rest", daemon=True)
    thread.start()
    return thread
