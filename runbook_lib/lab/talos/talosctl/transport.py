"""The lab talosctl's talosconfig context and its HTTP/1.1 client for the lab's Talos endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from urllib.parse import quote

from ..constants import DEFAULT_TALOS_VERSION
from ..errors import TalosAPIError
from .commands import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


POLL_INTERVAL = 0.02  # real seconds between --wait / health polls


class Context:
    __slots__ = ("endpoints", "nodes", "key")

    def __init__(self, endpoints: list[str], nodes: list[str], key: str) -> None:
        self.endpoints = endpoints
        self.nodes = nodes
        self.key = key


def load_context(opts: dict) -> Context:
    path = opts["talosconfig"] or os.environ.get("TALOSCONFIG") or os.path.expanduser("~/.talos/config")
    if not os.path.exists(path) and not opts["talosconfig"] and not os.environ.get("TALOSCONFIG"):
        alt = "/var/run/secrets/talos.dev/config"
        path = alt if os.path.exists(alt) else path
    try:
        with open(path) as fh:
            data = _parse_config(path, fh.read())
    except OSError as exc:
        raise CLIError(f"failed to open config file {path!r}: {exc.strerror.lower() if exc.strerror else exc}") from None
    name = opts["context"] or data.get("context") or ""
    contexts = data.get("contexts") or {}
    if name not in contexts:
        raise CLIError(f'context "{name}" is not defined in \'contexts\' key in config')
    ctx = contexts[name] or {}
    endpoints = opts["endpoints"] or list(ctx.get("endpoints") or [])
    if not endpoints:
        raise CLIError("failed to determine endpoints")
    return Context(endpoints=endpoints, nodes=opts["nodes"] or list(ctx.get("nodes") or []), key=str(ctx.get("key", "")))


def _parse_config(path: str, text: str) -> dict:
    """A talosconfig is YAML. The lab writes its own in JSON (which is YAML too): it loads without the YAML
    parser, whose import is the costliest part of a talosctl call."""
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            return json.loads(text) or {}
    import yaml

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CLIError(f"failed to parse config file {path!r}: {exc}") from None


class Client:
    """HTTP client for the lab's Talos endpoint; every response updates ``lab_time``.

    One HTTP/1.1 request per connection (``Connection: close``), written and read over a plain
    socket: the lab answers every Talos call with a ``Content-Length`` JSON body.
    """

    def __init__(self, ctx: Context) -> None:
        endpoint = ctx.endpoints[0]
        if ":" not in endpoint.rsplit("]", 1)[-1]:
            endpoint += ":50000"
        self.endpoint = endpoint
        host, _, port = endpoint.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.key = ctx.key
        self.call_id = os.urandom(16).hex()
        self.lab_time = 0.0
        self.scale = 1.0
        self.client_version = ""
        self.client_go_version = ""
        self.client_sha = ""

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        try:
            status, headers, payload = self._http(method, "/talos/v1" + path, data)
        except (OSError, ValueError) as exc:
            detail = "connect: connection refused" if "refused" in str(exc).lower() else str(exc)
            raise TalosAPIError("Unavailable", 'connection error: desc = "transport: Error while dialing: dial tcp '
                                f'{self.endpoint}: {detail}"') from None
        value = headers.get("x-lab-time")
        if value:
            self.lab_time = float(value)
        if status >= 400:
            try:
                err = json.loads(payload or b"{}")
            except ValueError:
                err = {}
            raise TalosAPIError(err.get("code", "Unknown"), err.get("message", f"HTTP {status}"))
        return json.loads(payload or b"null")

    def _http(self, method: str, path: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.endpoint}\r\nAuthorization: Bearer {self.key}\r\n"
                f"X-Talosctl-Call: {self.call_id}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        # An ASCII host as bytes: a str one goes through the idna codec, an import at every talosctl call.
        host = self.host.encode() if self.host.isascii() else self.host
        with socket.create_connection((host, self.port), timeout=30) as sock, sock.makefile("rb") as rfile:
            sock.sendall(head.encode("latin-1") + data)
            status_line = rfile.readline(65537)
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                raise ConnectionResetError(f"malformed HTTP status line {status_line[:80]!r}")
            headers: dict[str, str] = {}
            while True:
                line = rfile.readline(65537)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = headers.get("content-length")
            payload = rfile.read(int(length)) if length is not None else rfile.read()
        return int(parts[1]), headers, payload

    def info(self) -> None:
        data = self.call("GET", "/info")
        self.lab_time, self.scale = float(data["now"]), float(data["scale"])
        self.client_version = str(data.get("talosctl_version") or "") or DEFAULT_TALOS_VERSION
        self.client_go_version = str(data.get("talosctl_go_version") or "")
        self.client_sha = str(data.get("talosctl_sha") or "")


def node_path(node: str, rest: str) -> str:
    return f"/nodes/{quote(node, safe='')}/{rest}"


def append_errors(errors: list[str]) -> str:
    """talosctl ``helpers.AppendErrors``: ``1 error occurred:`` / ``2 errors occurred:`` then `` <err>`` lines."""
    word = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} {word} occurred:\n" + "\n".join(f" {e}" for e in errors)
