"""The lab's HTTP server: Kubernetes API, Talos endpoint, Image Factory and control.

One process serves everything on 127.0.0.1. Requests are handled in threads and
share one :class:`Lab` guarded by a re-entrant lock; a background ticker advances
time-driven behaviour (reboots finishing, nodes turning Ready) and persists the
state to ``state.json`` in the lab directory, so a lab that is stopped and started
again is the same cluster.
"""

from __future__ import annotations

import email.utils
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import control_api, tls
from .assembly import STATE_FILE
from .cluster import Lab
from .kubernetes import chunked, log_stream, portforward, routes, streaming
from .kubernetes import endpoints as kube_endpoints
from .kubernetes import subresources as kube_subresources
from .kubernetes.selectors import field_matcher, label_matcher
from .kubernetes.types import ApiError
from .talos import api as talos_api


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle and delayed ACKs every
    # keep-alive response would wait ~40 ms.
    disable_nagle_algorithm = True
    server: LabHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get("RUNBOOK_LAB_DEBUG"):
            super().log_message(format, *args)

    # All verbs share one dispatcher.
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header on the cluster's clock, like an API server's: runbooks read the cluster's time from it."""
        return email.utils.formatdate(self.server.lab.cluster_time() if timestamp is None else timestamp, usegmt=True)

    def _send(self, code: int, body: bytes, content_type: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode())

    def _read_body(self) -> bytes:
        """The request body: Content-Length bytes, or a chunked body's chunks (client-go streams files so)."""
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers, up to the blank line
            pass
        return b"".join(chunks)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = self._read_body()
        lab = self.server.lab
        path = url.path
        self.server.note_request()
        try:
            if path.startswith("/lab/v1/"):
                return self._control(method, path, query, body)
            if path.startswith("/talos/"):
                with lab.lock:
                    lab.tick()
                    lab.stats["talos_requests"] += 1
                    code, headers, out = talos_api.handle(lab, method, path, query, body, dict(self.headers))
                    if headers.pop("X-Lab-Dirty", None):
                        lab.mark_dirty()
                self._send(code, out, headers.pop("Content-Type", "application/json"), headers)
                return
            if path.startswith("/factory/") and self.server.factory_handler is not None:
                code, headers, out = self.server.factory_handler(lab, method, path[len("/factory"):], query, body)
                self._send(code, out, headers.pop("Content-Type", "application/json"), headers)
                return
            self._kube(method, path, query, body)
        except ApiError as err:
            self._json(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _control(self, method: str, path: str, query: dict, body: bytes) -> None:
        lab = self.server.lab
        if path == "/lab/v1/shutdown" and method == "POST":
            self._json(200, {"stopping": True})
            threading.Thread(target=self.server.stop, daemon=True).start()
            return
        with lab.lock:
            lab.tick()
            code, out = control_api.handle(lab, method, path, body)
            self._json(code, out)

    def _reply(self, reply: routes.Reply) -> None:
        self._send(reply.code, reply.body, reply.content_type, reply.headers)

    def _kube(self, method: str, path: str, query: dict, body: bytes) -> None:
        """The Kubernetes API: public endpoints, then authentication and the API server's gates, then the routes."""
        lab = self.server.lab
        if kube_endpoints.is_public(path) and method == "GET":
            with lab.lock:
                lab.tick()
                code, ctype, out = kube_endpoints.public(path, parse_qs(url_query(self.path), keep_blank_values=True),
                                                         lab.api_available())
            self._send(code, out, ctype)
            return
        identity = tls.peer_identity(self.connection)
        if self.headers.get("Authorization") != f"Bearer {lab.token}" and identity is None:
            self._json(401, ApiError(401, "Unauthorized", "Unauthorized").status())
            return
        with lab.lock:
            lab.tick()
            lab.stats["kube_requests"] += 1
            lab.count_call(method, path)
            if lab.faults.take("api-errors"):
                lab.mark_dirty()
                raise ApiError(500, "InternalError", "Internal error occurred: injected fault (runbook lab fault api-errors)")
            if not lab.api_available():
                raise ApiError(503, "ServiceUnavailable", "etcdserver: request timed out (etcd has lost quorum)")
        req = routes.KubeRequest(method, path, query, body, self.headers, identity)
        top = next((route for matches, route in routes.TOP_LEVEL if matches(path, method)), None)
        if top is not None:
            with lab.lock:
                self._reply(top(lab, req))
            return
        routes.parse_path(req)
        if not req.rest:
            with lab.lock:
                self._json(200, lab.kube.discovery_resources(req.group, req.version))
            return
        if log_stream.wants_follow(req.group, req.namespace, req.rest, method, query):
            assert req.namespace is not None and req.name is not None
            log_stream.follow(self, lab, req.namespace, req.name, query)
            return
        special = next((route for matches, route in routes.SPECIAL if matches(req)), None)
        if special is not None:
            with lab.lock:
                reply = special(lab, req)
            self._reply(reply)
            return
        if req.group == "" and req.namespace is not None and len(req.rest) == 3 and req.plural == "pods" \
                and req.sub == "exec":
            assert req.name is not None
            streaming.exec_pod(self, lab, req.namespace, req.name, query)
            return
        if routes.is_pod_portforward(req):
            assert req.namespace is not None and req.name is not None
            portforward.forward_pod(self, lab, req.namespace, req.name)
            return
        with lab.lock:
            rt = routes.resolve(lab, req)
        if method == "GET" and req.name is None and query.get("watch", ["false"])[0] in ("true", "1"):
            self._watch(rt, req.namespace, query)
            return
        with lab.lock:
            reply, wrote = routes.serve_object(lab, rt, req)
            if wrote:
                lab.mark_dirty()
                self.server.after_kube_write(lab)
        self._reply(reply)

    def _watch(self, rt: Any, namespace: str | None, query: dict) -> None:
        lab = self.server.lab
        q = {k: v[-1] for k, v in query.items()}
        lmatch, fmatch = label_matcher(q.get("labelSelector")), field_matcher(q.get("fieldSelector"))
        timeout = float(q.get("timeoutSeconds", 1800))
        deadline = time.monotonic() + timeout
        rv_param = q.get("resourceVersion", "")
        with lab.lock:
            kube_subresources.check_field_selector(rt, lab.kube.crd_of(rt), q.get("fieldSelector"))
            if rv_param in ("", "0") or q.get("sendInitialEvents") == "true":
                listing = lab.kube.list(rt, namespace, q.get("labelSelector"), q.get("fieldSelector"))
                initial = [{"type": "ADDED", "object": o} for o in listing["items"]]
                since = lab.kube.rv
                if q.get("sendInitialEvents") == "true":  # watch-list (KEP-3157): the initial events end with a bookmark
                    initial.append({"type": "BOOKMARK", "object": {
                        "kind": rt.kind, "apiVersion": rt.api_version, "metadata": {
                            "resourceVersion": str(since), "annotations": {"k8s.io/initial-events-end": "true"}}}})
            else:
                initial, since = [], int(rv_param)
                lab.kube.events_since(rt, namespace, since, lmatch, fmatch)  # 410 Gone before headers are sent
        chunk = chunked.start(self, "application/json")

        try:
            for ev in initial:
                chunk(json.dumps(ev).encode() + b"\n")
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                self.server.note_request()  # an open watch is someone looking: keep the ticker at full rate
                with lab.lock:
                    try:
                        events = lab.kube.events_since(rt, namespace, since, lmatch, fmatch)
                    except ApiError as err:
                        events = []
                        chunk(json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n")
                        break
                    if not events:
                        lab.kube.changed.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
                        events = lab.kube.events_since(rt, namespace, since, lmatch, fmatch)
                for ev in events:
                    since = max(since, ev.rv)
                    chunk(json.dumps({"type": ev.type, "object": ev.obj}).encode() + b"\n")
            chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass


def url_query(raw_path: str) -> str:
    return urlsplit(raw_path).query


#: the ticker's period while someone uses the lab (see _tick_loop)
BUSY_TICK_S = 0.025
#: its period once the lab is idle: no request and no change for IDLE_AFTER_S real seconds
IDLE_TICK_S = 2.0
IDLE_AFTER_S = 2.0


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, lab: Lab, state_dir: Path | None, port: int = 0, pki: tls.Pki | None = None) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.pki = pki
        self.tls_context = pki.server_context() if pki else None
        self.lab = lab
        self.state_dir = state_dir
        self.stopping = threading.Event()
        self.wake = threading.Event()  # a request ends an idle ticker's long sleep
        self.last_activity = time.monotonic()
        self.idle = False
        self.factory_handler = None
        self.write_hooks: list = []
        self._ticker = threading.Thread(target=self._tick_loop, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def kube_url(self) -> str:
        """Where kubeconfig clients reach the API: https on the same port when the lab has a PKI."""
        return self.url.replace("http://", "https://", 1) if self.tls_context else self.url

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (reset, broken pipe) is no server error and leaves no traceback."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection, in TLS when it opens with a ClientHello (in the connection's own thread)."""
        if self.tls_context is None or not tls.is_tls_hello(request):
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(10.0)
            conn = self.tls_context.wrap_socket(request, server_side=True)
            conn.settimeout(None)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def after_kube_write(self, lab: Lab) -> None:
        for hook in self.write_hooks:
            hook(lab)

    def note_request(self) -> None:
        self.last_activity = time.monotonic()
        if self.idle:
            self.wake.set()

    def _tick_loop(self) -> None:
        last_save = 0.0
        # 25 ms: 2.5 lab seconds at the default x100, longer than the shortest modelled steps (1-2 s: container
        # creation, attach, provisioning). Talos events run in time order within a tick; the controllers compare
        # lab times, so such steps finish in the right order, only up to one tick later. Every API request also
        # ticks first, so a runbook never sees a state older than its request.
        # Idle (no request and no change for IDLE_AFTER_S) it ticks every IDLE_TICK_S: an idle lab costs well under
        # 1 % of a core instead of ~20 %. Due events still run in lab-time order, only up to one idle tick late, and
        # the first request wakes the ticker (and ticks itself), so no client sees an older state.
        while not self.stopping.is_set():
            self.idle = time.monotonic() - self.last_activity > IDLE_AFTER_S
            self.wake.wait(IDLE_TICK_S if self.idle else BUSY_TICK_S)
            self.wake.clear()
            if self.stopping.is_set():
                break
            with self.lab.lock:
                rv = self.lab.kube.rv
                self.lab.tick()
                if self.lab.kube.rv != rv:
                    self.last_activity = time.monotonic()
                if self.lab.dirty and self.state_dir and time.monotonic() - last_save > 1.0:
                    self.save()
                    last_save = time.monotonic()

    def save(self) -> None:
        if not self.state_dir:
            return
        with self.lab.lock:
            data = json.dumps(self.lab.to_dict())
            self.lab.dirty = False
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(data)
        os.replace(tmp, self.state_dir / STATE_FILE)

    def start_background(self) -> None:
        self._ticker.start()
        # poll_interval only bounds how long shutdown() waits; requests are served as they arrive
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.save()  # before `stopping` is set: the main thread exits as soon as it is
        self.stopping.set()
        self.wake.set()
        self.shutdown()
