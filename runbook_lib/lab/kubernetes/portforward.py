"""``pods/portforward``: SPDY/3.1 streams over WebSocket (kubectl 1.31+) or over a plain SPDY upgrade.

kubectl dials WebSocket first, offering ``SPDY/3.1+portforward.k8s.io`` (client-go
``tools/portforward/tunneling_dialer.go``: the ``WebsocketsSPDYTunnelingPrefix`` before each protocol) and
runs an ordinary SPDY client over the binary messages (``tunneling_connection.go``: message boundaries
carry no meaning). When the WebSocket upgrade fails, ``fallback_dialer.go`` retries with the classic
``Upgrade: SPDY/3.1`` + ``X-Stream-Protocol-Version: portforward.k8s.io`` POST; the lab answers both.

Inside, the kubelet's protocol (pkg/kubelet/cri/streaming/portforward/httpstream.go): each forwarded
connection opens an ``error`` and a ``data`` stream with headers ``streamType``, ``port`` and
``requestID``; once both are there the port is dialled and bytes are copied; a failure is written on
the error stream; both streams are closed (FIN) when the port's side closes. What a port reaches: the
LINSTOR controller pod's 3370 serves the REST API (:mod:`..linstor.rest_port`); any other port refuses
the connection as containerd reports it.

One thread owns the client's connection (reads and writes, so a TLS socket is never used from two
threads); each forwarded connection is one end of a socketpair whose other end is served in its own thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import select
import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any

from ..cluster import Lab
from ..linstor import rest_port
from . import spdy
from .streaming import GUID
from .streaming import frame as ws_frame
from .types import ApiError

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
TUNNELING_PREFIX = "SPDY/3.1+"  # k8s.io/apimachinery pkg/util/portforward constants.go
WS_PROTOCOL = TUNNELING_PREFIX + PORTFORWARD_PROTOCOL
#: seconds between checks that the lab server is not stopping while a session is idle
IDLE_CHECK_S = 1.0


def _offered(headers: Any, name: str) -> list[str]:
    return [p.strip() for p in (headers.get(name) or "").split(",") if p.strip()]


def _pod_for(lab: Lab, namespace: str, name: str) -> dict:
    with lab.lock:
        pod = lab.kube.objects.get(("", "pods", namespace, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', kind="pods", name=name)
        if (pod.get("status") or {}).get("phase") != "Running":
            raise ApiError(400, "BadRequest", f"pod {name} is not running")
        return pod


def forward_pod(handler: Any, lab: Lab, namespace: str, name: str) -> None:
    """Answer ``GET|POST .../pods/{name}/portforward`` on ``handler`` (a BaseHTTPRequestHandler)."""
    pod = _pod_for(lab, namespace, name)
    headers = handler.headers
    if "websocket" in (headers.get("Upgrade") or "").lower():
        if WS_PROTOCOL not in _offered(headers, "Sec-WebSocket-Protocol"):
            raise ApiError(400, "BadRequest", "unable to upgrade: the lab forwards ports over WebSocket only with "
                           f"the {WS_PROTOCOL} subprotocol")
        accept = base64.b64encode(hashlib.sha1((headers.get("Sec-WebSocket-Key", "") + GUID).encode()).digest()).decode()
        reply = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept,
                 "Sec-WebSocket-Protocol": WS_PROTOCOL}
        websocket = True
    elif (headers.get("Upgrade") or "").lower() == "spdy/3.1":
        if PORTFORWARD_PROTOCOL not in _offered(headers, "X-Stream-Protocol-Version"):
            raise ApiError(403, "Forbidden", "unable to upgrade: unable to negotiate protocol: client supports "
                           f"{_offered(headers, 'X-Stream-Protocol-Version')}, server supports [{PORTFORWARD_PROTOCOL}]")
        reply = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": PORTFORWARD_PROTOCOL}
        websocket = False
    else:
        raise ApiError(400, "BadRequest", "Upgrade request required")
    handler.send_response(101, "Switching Protocols")
    for k, v in reply.items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    # Both clients wait for the 101 before sending (RFC 6455 §4.1; an HTTP upgrade round trip), so nothing of
    # the session sits in the handler's read buffer: the session reads the socket itself from here on.
    Session(handler.connection, lab, pod, websocket, handler.server.stopping).run()


class _WebSocketReader:
    """The client's masked frames (RFC 6455 §5.2) as a byte stream of binary payloads, plus control frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= 2:
            b0, b1 = self._buf[0], self._buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(self._buf) < 4:
                    break
                (n,), pos = struct.unpack_from("!H", self._buf, 2), 4
            elif n == 127:
                if len(self._buf) < 10:
                    break
                (n,), pos = struct.unpack_from("!Q", self._buf, 2), 10
            mask = b""
            if b1 & 0x80:
                mask, pos = bytes(self._buf[pos:pos + 4]), pos + 4
            if len(self._buf) < pos + n:
                break
            payload = bytes(self._buf[pos:pos + n])
            del self._buf[:pos + n]
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            out.append((b0 & 0x0F, payload))
        return out


@dataclass
class _Pair:
    """One forwarded connection: its error and data streams and, once dialled, the port's socket."""

    request_id: str
    port: int = 0
    error_stream: int = 0
    data_stream: int = 0
    sock: socket.socket | None = None
    done: bool = False
    pending: list[bytes] = field(default_factory=list)


class Session:
    """The SPDY session of one port-forward connection, run in the handler's thread until either side closes."""

    def __init__(self, conn: socket.socket, lab: Lab, pod: dict, websocket: bool, stopping: Any) -> None:
        self.conn, self.lab, self.pod, self.websocket, self.stopping = conn, lab, pod, websocket, stopping
        self.decoder, self.encoder = spdy.Decoder(), spdy.Encoder()
        self.ws = _WebSocketReader() if websocket else None
        self.pairs: dict[str, _Pair] = {}
        self.streams: dict[int, _Pair] = {}
        self.by_sock: dict[socket.socket, _Pair] = {}
        self.open = True

    # -- the client's side
    def send(self, data: bytes) -> None:
        if data:
            self.conn.sendall(ws_frame(data) if self.websocket else data)

    def _receive(self) -> None:
        try:
            data = self.conn.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        if not data:
            self.open = False
            return
        if self.ws is None:
            self._frames(data)
            return
        for opcode, payload in self.ws.feed(data):
            if opcode in (0, 2):
                self._frames(payload)
            elif opcode == 8:  # close: answered in run()'s clean-up
                self.open = False
            elif opcode == 9:
                self.conn.sendall(ws_frame(payload, opcode=10))
            elif opcode == 1:  # tunneling_connection.go refuses text messages too
                self.open = False

    def _frames(self, data: bytes) -> None:
        for f in self.decoder.feed(data):
            if f.kind == spdy.SYN_STREAM:
                self._new_stream(f)
            elif f.kind == spdy.DATA:
                self._data(f)
            elif f.kind == spdy.RST_STREAM:
                pair = self.streams.get(f.stream_id)
                if pair is not None and f.stream_id == pair.data_stream:
                    self._close_pair(pair, fin=False)
            elif f.kind == spdy.PING:
                self.send(self.encoder.ping(f.ping_id))
            elif f.kind == spdy.GOAWAY:
                self.open = False

    def _new_stream(self, f: spdy.Frame) -> None:
        """httpStreamReceived's checks (a bad stream is reset), the reply, then pairing by requestID."""
        port_text, kind = f.header("port"), f.header("streamtype")
        problem = None
        if not port_text:
            problem = '"port" header is required'
        elif not port_text.isdigit() or not 0 < int(port_text) < 65536:
            problem = f"unable to parse {port_text!r} as a port"
        elif kind not in ("error", "data"):
            problem = f"invalid stream type {kind!r}" if kind else '"streamType" header is required'
        if problem is not None:
            self.send(self.encoder.rst_stream(f.stream_id, spdy.CANCEL))
            return
        self.send(self.encoder.syn_reply(f.stream_id))
        # no requestID: an old client; the kubelet pairs by stream id (error n, data n+2)
        request_id = f.header("requestid") or str(f.stream_id if kind == "error" else f.stream_id - 2)
        pair = self.pairs.setdefault(request_id, _Pair(request_id, int(port_text)))
        self.streams[f.stream_id] = pair
        if kind == "error":
            pair.error_stream = f.stream_id
        else:
            pair.data_stream = f.stream_id
        if pair.error_stream and pair.data_stream and pair.sock is None and not pair.done:
            self._dial(pair)

    def _data(self, f: spdy.Frame) -> None:
        pair = self.streams.get(f.stream_id)
        if pair is None or f.stream_id != pair.data_stream or pair.done:
            return
        if pair.sock is None:
            pair.pending.append(f.data)
            return
        try:
            if f.data:
                pair.sock.sendall(f.data)
            if f.fin:
                pair.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_pair(pair, fin=True)

    # -- the pod's side
    def _dial(self, pair: _Pair) -> None:
        labels = self.pod["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/component") == "linstor-controller" and pair.port == rest_port.PORT:
            mine, theirs = socket.socketpair()
            rest_port.serve_connection(self.lab, theirs, ("127.0.0.1", 0))
            pair.sock = mine
            self.by_sock[mine] = pair
            for chunk in pair.pending:
                mine.sendall(chunk)
            pair.pending.clear()
            return
        self.send(self.encoder.data(pair.error_stream, refused(self.pod, pair.port).encode()))
        self._close_pair(pair, fin=True)

    def _from_port(self, sock: socket.socket) -> None:
        pair = self.by_sock[sock]
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if chunk:
            self.send(self.encoder.data(pair.data_stream, chunk))
        else:
            self._close_pair(pair, fin=True)

    def _close_pair(self, pair: _Pair, *, fin: bool) -> None:
        """The port's side is done: FIN both streams (the kubelet's deferred Close) unless the client reset them."""
        if pair.done:
            return
        pair.done = True
        if pair.sock is not None:
            self.by_sock.pop(pair.sock, None)
            pair.sock.close()
        if fin:
            self.send(self.encoder.data(pair.data_stream, b"", fin=True))
            self.send(self.encoder.data(pair.error_stream, b"", fin=True))
        self.pairs.pop(pair.request_id, None)
        for sid in (pair.data_stream, pair.error_stream):
            self.streams.pop(sid, None)

    def run(self) -> None:
        try:
            while self.open and not self.stopping.is_set():
                if isinstance(self.conn, ssl.SSLSocket) and self.conn.pending():
                    ready = [self.conn]
                else:
                    ready, _, _ = select.select([self.conn, *self.by_sock], [], [], IDLE_CHECK_S)
                for r in ready:
                    if r is self.conn:
                        self._receive()
                    elif r in self.by_sock:
                        self._from_port(r)
                    if not self.open:
                        break
        except (OSError, spdy.SpdyError):
            pass
        finally:
            for pair in list(self.pairs.values()):
                if pair.sock is not None:
                    pair.sock.close()
            if self.websocket:
                with contextlib.suppress(OSError):
                    self.conn.sendall(ws_frame(struct.pack("!H", 1000), opcode=8))


def refused(pod: dict, port: int) -> str:
    """The kubelet's message for a port nothing listens on (containerd's netns dial, IPv4 and IPv6)."""
    sandbox = hashlib.sha256(pod["metadata"].get("uid", pod["metadata"]["name"]).encode()).hexdigest()
    netns = f"/var/run/netns/cni-{sandbox[:8]}-{sandbox[8:12]}-{sandbox[12:16]}-{sandbox[16:20]}-{sandbox[20:32]}"
    return (f"error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward in network namespace "
            f'"{netns}": failed to connect to localhost:{port} inside namespace "{sandbox}", IPv4: dial tcp4 '
            f"127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused ")
