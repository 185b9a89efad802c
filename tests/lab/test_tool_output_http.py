"""The LINSTOR client over real HTTP refuses malformed answers and names the path of an error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from runbook_lib.errors import ParseError, RunbookError
from runbook_lib.linstor import LinstorClient


class _Answers(BaseHTTPRequestHandler):
    bodies: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        code, body = self.bodies.get(self.path, (404, b'[{"message": "no such path"}]'))
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def linstor_server() -> Iterator[tuple[dict, LinstorClient]]:
    """A loopback HTTP server answering LINSTOR paths with whatever bytes a test puts in ``bodies``."""
    bodies: dict[str, tuple[int, bytes]] = {}
    handler = type("Handler", (_Answers,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    http = httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
    try:
        yield bodies, LinstorClient(http, "/proxy")
    finally:
        http.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("path", "body", "call", "field"), [
    ("/proxy/v1/view/storage-pools", b'[{"storage_pool_name": "p", "node_na', "storage_pools", "/v1/view/storage-pools"),
    ("/proxy/v1/view/resources", b"\xff\xfe not utf-8", "resources", "/v1/view/resources"),
    ("/proxy/v1/view/resources", b'{"resources": []}', "resources", "view/resources"),
    ("/proxy/v1/nodes", b'[{"name": "n1", "connection_status": "ONLINE"}, {"type": "SATELLITE"}]', "nodes",
     "nodes[1].name"),
    ("/proxy/v1/nodes", b'[{"name": "n1", "connection_status": 1}]', "nodes", "nodes[0].connection_status"),
    ("/proxy/v1/controller/version", b'["1.31.0"]', "controller_version", "controller/version"),
    ("/proxy/v1/controller/version", b'{"version": 131}', "controller_version", "controller/version.version"),
])
def test_linstor_client_malformed_answers(linstor_server, path: str, body: bytes, call: str, field: str) -> None:
    bodies, client = linstor_server
    bodies[path] = (200, body)
    with pytest.raises(ParseError) as info:
        getattr(client, call)()
    assert info.value.tool == "linstor" and info.value.field == field and field in str(info.value)


def test_linstor_client_http_error_names_the_path(linstor_server) -> None:
    bodies, client = linstor_server
    bodies["/proxy/v1/view/storage-pools"] = (500, b'[{"message": "controller not ready"}]')
    with pytest.raises(RunbookError, match=r"LINSTOR /v1/view/storage-pools: HTTP 500.*controller not ready"):
        client.storage_pools()
    bodies["/proxy/v1/nodes"] = (200, b'[{"name": "n1", "connection_status": "ONLINE"}]')
    assert client.nodes() == [{"name": "n1", "connection_status": "ONLINE"}]

