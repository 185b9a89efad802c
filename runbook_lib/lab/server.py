"""The lab's HTTP server: Kubernetes API, Talos endpoint, Image Factory and control.

One process serves everything on 127.0.0.1. Requests are handled in threads and
share one :class:`Lab` guarded by a re-entrant lock; a background ticker advances
time-driven behaviour (reboots finishing, nodes turning Ready) and persists the
state to ``state.json`` in the lab directory, so a lab that is stopped and started
again is the same cluster.
"""

from __future__ import annotations

import copy
import email.utils
import json
import os
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import (
    kube_endpoints,
    kube_nodes,
    kube_openapi,
    kube_ssa,
    kube_subresources,
    kube_tables,
    kubeapi,
    streaming,
    tls,
)
from .clock import Clock
from .faults import FaultBook
from .kubeapi import ApiError, KubeStore, field_matcher, label_matcher, now_iso
from .talos import api as talos_api
from .talos.cluster import TalosCluster
from .talos.constants import T_KUBELET
from .talos.seeded import rfc3339

# --- piraeus/linstor: workload controllers, Piraeus operator, LINSTOR, linstor-csi
# isort: split
from . import drbd, record_writer, workloads
from .fio import FioRunner  # --- benchmarks (07)
from .fio import model as perf_model  # --- benchmarks (07)
from .linstor import api as linstor_api
from .piraeus import attach as attach_storage
from .piraeus import reconcile_cluster
from .piraeus import state_dict as storage_state

# --- end piraeus/linstor
# isort: split
from . import (
    snapshots,  # --- CSI snapshots (05): snapshot-controller + csi-snapshotter
)
from .talos import installed_image  # nodes installed from an Image Factory installer (lab.initial_extensions)

KUBERNETES_VERSION = kube_endpoints.KUBERNETES_VERSION
STATE_FILE = "state.json"
MAX_CALL_KEYS = 5000  # distinct "METHOD path" counters kept; the rest are lumped together
#: lab options a running lab takes over from new parameters (read at every tick); the others need a reset
LIVE_OPTIONS = ("enforce_safety", "workload_write_mib_s")


#: real seconds a lab may run before its fast clock passes the host's (see :func:`clock_start`)
BEHIND_HOST_FOR_S = 86400.0


def clock_start(time_scale: float) -> float:
    """The cluster clock's start: in the past, so it stays behind the host's clock for a day of real time.

    The cluster clock runs ``time_scale`` times faster than the host's. Server times in a client's future
    break real clients: Go's HTTP cache takes every cached discovery answer dated in the future as fresh
    (kubectl then misses a new CRD), and kubectl prints ``<invalid>`` ages.
    """
    return time.time() - max(time_scale - 1.0, 0.0) * BEHIND_HOST_FOR_S


class Lab:
    """The whole simulated cluster. Every method expects ``lock`` to be held."""

    def __init__(self, *, clock: Clock, talos: TalosCluster, kube: KubeStore, faults: FaultBook,
                 options: dict, token: str, lock: threading.RLock) -> None:
        self.lock = lock
        self.clock = clock
        self.talos = talos
        self.kube = kube
        self.faults = faults
        self.options = options
        self.token = token
        self.schematics: dict[str, dict] = {}  # Image Factory schematics by ID (see factory_api)
        self.dirty = True
        kubeapi.cluster_clock = self.cluster_time  # object timestamps on the cluster's clock, not the host's
        self.stats = {"requests": 0, "kube_requests": 0, "talos_requests": 0}
        # Benchmarks: Kubernetes API calls per "METHOD path" and the ticker's cost (GET /lab/v1/stats).
        self.calls: dict[str, int] = {}
        self.ticks = 0
        self.tick_seconds = 0.0

    # -- construction and persistence
    @classmethod
    def create(cls, options: dict) -> Lab:
        lock = threading.RLock()
        nodes = options["nodes"]
        talos = TalosCluster.create(
            nodes,
            talos_version=options.get("initial_talos_version", "v1.12.6"),
            disk_size=int(options.get("disk_size", 500_000_000_000)),
            disk_transport=options.get("disk_transport", "nvme"),
            seed=int(options.get("seed", 1)),
            epoch=clock_start(float(options.get("time_scale", 100.0))),
        )
        lab = cls(clock=Clock(scale=float(options.get("time_scale", 100.0))), talos=talos, kube=KubeStore(lock),
                  faults=FaultBook(), options=options, token=secrets.token_hex(16), lock=lock)
        installed_image.install_initial(lab, options.get("initial_extensions") or [], options.get("initial_kernel_args") or [])
        attach_storage(lab)  # --- piraeus/linstor
        lab.workloads.runners.insert(0, FioRunner())  # --- benchmarks (07): fio pods
        lab.workloads.runners.insert(0, record_writer.RecordReader())  # 06's reader pods
        for fault in options.get("faults", []) or []:
            lab.faults.add(fault["kind"], fault.get("node"), fault.get("peer"), fault.get("count"))
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            lab.kube.create(lab.kube.resolve("", "v1", "namespaces"), None, {"metadata": {"name": ns}})
        lab.tick()
        return lab

    def to_dict(self) -> dict:
        return {
            "schema": 1,
            "options": self.options,
            "token": self.token,
            "clock": self.clock.to_dict(),
            "faults": self.faults.to_list(),
            "schematics": self.schematics,
            "talos": self.talos.to_dict(),
            "kube": self.kube.to_dict(),
            "storage": storage_state(self),  # --- piraeus/linstor
        }

    @classmethod
    def from_dict(cls, data: dict) -> Lab:
        lock = threading.RLock()
        lab = cls(clock=Clock.from_dict(data["clock"]), talos=TalosCluster.from_dict(data["talos"]),
                  kube=KubeStore.from_dict(data["kube"], lock), faults=FaultBook.from_list(data["faults"]),
                  options=data["options"], token=data["token"], lock=lock)
        lab.schematics = data.get("schematics", {})
        attach_storage(lab, data.get("storage"))  # --- piraeus/linstor
        lab.workloads.runners.insert(0, FioRunner())  # --- benchmarks (07): fio pods
        lab.workloads.runners.insert(0, record_writer.RecordReader())  # 06's reader pods
        return lab

    def mark_dirty(self) -> None:
        self.dirty = True

    def cluster_time(self) -> float:
        """Now on the cluster's clock: the Talos epoch plus lab seconds (``time_scale`` times faster than the host)."""
        return self.talos.epoch + self.clock.now()

    # -- time-driven behaviour
    def count_call(self, method: str, path: str) -> None:
        key = f"{method} {path}" if len(self.calls) < MAX_CALL_KEYS else "(other)"
        self.calls[key] = self.calls.get(key, 0) + 1

    def perf_stats(self) -> dict:
        return {"stats": self.stats, "calls": self.calls, "ticks": self.ticks, "tick_seconds": self.tick_seconds,
                "nodes": len(self.talos.nodes), "objects": len(self.kube.objects),
                "milestones": list(self.kube.milestones)}

    def tick(self) -> None:
        started = time.perf_counter()
        try:
            self._tick()
        finally:
            self.ticks += 1
            self.tick_seconds += time.perf_counter() - started

    def _tick(self) -> None:
        now = self.clock.now()
        if self.talos.advance(now, self.faults):
            self.dirty = True
        self._sync_nodes(now)
        # --- piraeus/linstor: the kernel side runs without the API; controllers need it
        drbd.tick(self, now)
        record_writer.tick(self, now)
        rv = self.kube.rv
        reconcile_cluster(self, now)
        snapshots.reconcile(self, now)  # --- CSI snapshots: snapshot-controller + csi-snapshotter
        if self.kube.rv != rv:
            self.dirty = True
        # --- end piraeus/linstor

    def api_available(self) -> bool:
        return self.talos.etcd_quorum(self.clock.now())

    def node_reachable(self, name: str) -> bool:
        """Can this node's kubelet reach the API server? Not when partitioned from most control planes."""
        cps = [n for n in self.talos.nodes.values() if n.role == "controlplane"]
        reach = sum(1 for n in cps if n.name == name or not self.faults.partitioned(name, n.name))
        return reach * 2 > len(cps)

    def _sync_nodes(self, now: float) -> None:
        """Mirror Talos nodes into Kubernetes Node objects (the kubelet's job on a real node)."""
        nodes_rt = self.kube.resolve("", "v1", "nodes")
        for node in self.talos.nodes.values():
            reachable = self.node_reachable(node.name)
            ready = node.kubelet_ready(now) and reachable
            key = ("", "nodes", None, node.name)
            current = self.kube.objects.get(key)
            status = "True" if ready else "Unknown" if not (node.is_up(now) and reachable) else "False"
            if current is None:
                if not ready:
                    continue  # a node registers itself when its kubelet first starts
                labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
                if node.role == "controlplane":
                    labels["node-role.kubernetes.io/control-plane"] = ""
                body = {"metadata": {"name": node.name, "labels": labels}, "spec": {}, "status": self._node_status(node, status, None)}
                created = self.kube.create(nodes_rt, None, body)
                kube_nodes.write_lease(self.kube, created, now_iso())
                self.dirty = True
                continue
            old_cond = next((c for c in current.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
            new_status = self._node_status(node, status, old_cond)
            if new_status != current.get("status"):
                new = copy.deepcopy(current)
                new["status"] = new_status
                self.kube._store_update(nodes_rt, key, current, new)
                if status == "True":  # the kubelet renews its Lease while it posts status
                    kube_nodes.write_lease(self.kube, new, now_iso())
                self.dirty = True

    def _node_status(self, node: Any, ready: str, old_cond: dict | None) -> dict:
        if old_cond and old_cond["status"] == ready:
            cond = old_cond
        else:
            reasons = {"True": ("KubeletReady", "kubelet is posting ready status"),
                       "False": ("KubeletNotReady", "container runtime network not ready"),
                       "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status.")}
            reason, message = reasons[ready]
            # the moment the kubelet turned ready, not the tick that noticed it (a tick is seconds of lab time)
            # (unless it was ready all along and only unreachable: then the tick's time is the best there is)
            since = node.running_at + T_KUBELET if ready == "True" and node.running_at is not None else None
            at = now_iso()
            if since is not None and since <= self.clock.now() and rfc3339(self.talos.epoch, since) >= (old_cond or {}).get(
                    "lastTransitionTime", ""):
                at = rfc3339(self.talos.epoch, since)
            cond = {"type": "Ready", "status": ready, "reason": reason, "message": message,
                    "lastHeartbeatTime": at, "lastTransitionTime": at}
        return kube_nodes.complete({
            "conditions": [cond],
            "addresses": [{"type": "InternalIP", "address": node.address}, {"type": "Hostname", "address": node.name}],
            "nodeInfo": {"osImage": f"Talos ({node.talos_version})", "kubeletVersion": KUBERNETES_VERSION,
                         "containerRuntimeVersion": "containerd://2.1.5", "operatingSystem": "linux",
                         "architecture": "amd64", "kernelVersion": node.kernel_version,
                         "bootID": node.boot_id, "machineID": node.node_id, "systemUUID": node.node_id,
                         "kubeProxyVersion": KUBERNETES_VERSION},
        }, cond)


# ---------------------------------------------------------------- HTTP


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

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
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

    # -- control
    def _control(self, method: str, path: str, query: dict, body: bytes) -> None:
        lab = self.server.lab
        with lab.lock:
            lab.tick()
            if path == "/lab/v1/status":
                now = lab.clock.now()
                nodes = [{"name": n.name, "address": n.address, "role": n.role, "up": n.is_up(now),
                          "ready": n.kubelet_ready(now), "stage": n.stage, "talos_version": n.talos_version}
                         for n in lab.talos.nodes.values()]
                self._json(200, {"pid": os.getpid(), "lab_time": now, "time_scale": lab.clock.scale,
                                 "nodes": nodes, "faults": lab.faults.to_list(), "stats": lab.stats,
                                 "etcd_quorum": lab.api_available(),
                                 "options": {k: lab.options.get(k) for k in LIVE_OPTIONS}})
            elif path == "/lab/v1/options" and method == "PATCH":
                req = json.loads(body or b"{}")
                unknown = sorted(set(req) - set(LIVE_OPTIONS))
                if unknown:
                    self._json(400, {"error": f"lab options {', '.join(unknown)} are fixed when the lab is created: "
                                              "run `runbook lab reset -f <params>` to change them"})
                    return
                lab.options.update(req)
                lab.mark_dirty()
                self._json(200, {k: lab.options.get(k) for k in LIVE_OPTIONS})
            elif path == "/lab/v1/faults" and method == "GET":
                self._json(200, lab.faults.to_list())
            elif path == "/lab/v1/faults" and method == "POST":
                req = json.loads(body or b"{}")
                try:
                    if req.get("node") and req["node"] not in lab.talos.nodes:
                        raise ValueError(f"unknown node {req['node']!r}; lab nodes: {', '.join(lab.talos.nodes)}")
                    if req.get("peer") and req["peer"] not in lab.talos.nodes:
                        raise ValueError(f"unknown peer {req['peer']!r}; lab nodes: {', '.join(lab.talos.nodes)}")
                    fault = lab.faults.add(req["kind"], req.get("node"), req.get("peer"), req.get("count"))
                except ValueError as exc:
                    self._json(400, {"error": str(exc)})
                    return
                lab.mark_dirty()
                lab.tick()
                self._json(201, fault.__dict__)
            elif path == "/lab/v1/faults" and method == "DELETE":
                cleared = lab.faults.clear()
                lab.mark_dirty()
                lab.tick()
                self._json(200, [f.__dict__ for f in cleared])
            elif path.startswith("/lab/v1/faults/") and method == "DELETE":
                fault = lab.faults.remove(int(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1].isdigit() else -1)
                if fault is None:
                    self._json(404, {"error": f"no fault #{path.rsplit('/', 1)[1]}; see `runbook lab fault list`"})
                    return
                lab.mark_dirty()
                lab.tick()
                self._json(200, fault.__dict__)
            elif path.startswith("/lab/v1/nodes/") and path.endswith("/power-on") and method == "POST":
                node = lab.talos.nodes.get(path.split("/")[4])
                if node is None:
                    self._json(404, {"error": f"unknown node; lab nodes: {', '.join(lab.talos.nodes)}"})
                    return
                lab.talos.power_on(node, lab.clock.now())
                lab.mark_dirty()
                self._json(200, {"node": node.name, "power": node.power})
            # --- piraeus/linstor: the helm shim consumes one use of a helm-fail fault per call
            elif path == "/lab/v1/helm/fault" and method == "POST":
                failed = lab.faults.take("helm-fail")
                if failed:
                    lab.mark_dirty()
                self._json(200, {"fail": failed})
            # --- end piraeus/linstor
            # --- benchmarks (07): the performance model's ground truth
            elif path == "/lab/v1/perf" and method == "GET":
                self._json(200, perf_model(lab).truth())
            # --- end benchmarks (07)
            elif path == "/lab/v1/stats" and method == "GET":  # benchmarks: calls, tick cost, milestones
                self._json(200, {**lab.perf_stats(), "rss_bytes": _rss_bytes()})
            elif path == "/lab/v1/shutdown" and method == "POST":
                self._json(200, {"stopping": True})
                threading.Thread(target=self.server.stop, daemon=True).start()
            else:
                self._json(404, {"error": f"no such lab endpoint {method} {path}"})

    # -- Kubernetes API
    def _kube(self, method: str, path: str, query: dict, body: bytes) -> None:
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
        if path.startswith("/openapi/") and method == "GET":
            with lab.lock:
                code, ctype, out = kube_openapi.serve(lab.kube, path, self.headers.get("Accept", ""))
            self._send(code, out, ctype)
            return
        if path in ("/api", "/api/"):
            self._json(200, lab.kube.discovery_core())
            return
        if path in ("/apis", "/apis/"):
            with lab.lock:
                self._json(200, lab.kube.discovery_groups())
            return
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api":
            group, version, rest = "", parts[1] if len(parts) > 1 else "", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            with lab.lock:
                self._json(200, lab.kube.discovery_resources(group, version))
            return
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        # --- piraeus/linstor: service proxy (LINSTOR REST) and pod logs
        if group == "" and namespace is not None and len(rest) >= 3 and rest[0] == "services" and rest[2] == "proxy":
            sub_path = path.split("/proxy", 1)[1] if "/proxy/" in path else "/"
            with lab.lock:
                code, ctype, out = linstor_api.proxy(lab, method, namespace, rest[1], sub_path, query, body)
            self._send(code, out, ctype)
            return
        if group == "" and namespace is not None and len(rest) == 3 and rest[0] == "pods" and rest[2] == "log" and method == "GET":
            q = {k: v[-1] for k, v in query.items()}
            with lab.lock:
                text = workloads.pod_log(lab, namespace, rest[1], q.get("container"),
                                         int(q["tailLines"]) if q.get("tailLines") else None)
            if text is None:
                raise ApiError(404, "NotFound", f'pods "{rest[1]}" not found', kind="pods", name=rest[1])
            self._send(200, text.encode(), "text/plain")
            return
        # --- end piraeus/linstor
        if group == "" and namespace is not None and len(rest) == 3 and rest[0] == "pods" and rest[2] == "exec":
            streaming.exec_pod(self, lab, namespace, rest[1], query)
            return
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if group in ("authorization.k8s.io", "authentication.k8s.io") and method == "POST" and name is None:
            self._json(201, kube_endpoints.review(group, plural, self._decode(body), identity or ("admin", ["system:masters"])))
            return
        with lab.lock:
            rt = lab.kube.resolve(group, version, plural)
        if not rt.namespaced and namespace is not None and plural != "namespaces":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and name is None and query.get("watch", ["false"])[0] in ("true", "1"):
            self._watch(rt, namespace, query)
            return
        q = {k: v[-1] for k, v in query.items()}
        warnings: list[str] = []
        with lab.lock:
            store = lab.kube
            dry_run = kube_subresources.dry_run(query, body if method == "DELETE" else b"")
            if method in ("POST", "PUT", "PATCH") and sub is None:
                warnings = kube_openapi.check_fields(rt, store.crd_of(rt), self._field_body(body), q.get("fieldValidation"))
            if method in ("POST", "PUT", "PATCH") and sub in (None, "status") and not body.startswith(b"k8s\x00"):
                current = store.objects.get(store._key(rt, namespace, name)) if name else None
                body = kube_ssa.stamp(rt, method, self.headers.get("Content-Type", "application/json"), current, body,
                                      kube_ssa.manager_of(q.get("fieldManager"), self.headers.get("User-Agent", "")),
                                      q.get("force") == "true", sub)
            if method == "GET" and sub != "scale":
                if name is None:
                    kube_subresources.check_field_selector(rt, store.crd_of(rt), q.get("fieldSelector"))
                out = store.get(rt, namespace, name) if name else kube_subresources.page(store.list(
                    rt, namespace, q.get("labelSelector"), q.get("fieldSelector")), q.get("limit"), q.get("continue"))
                code = 200
                if kube_tables.wants_table(self.headers.get("Accept", "")):
                    out = kube_tables.to_table(rt.kind, out, crd=store.crd_of(rt), version=rt.version,
                                               include_object=q.get("includeObject", "Metadata"))
            elif method == "POST" and name is None:
                obj = self._decode(body)
                code, out = 201, store.create(rt, namespace, obj, dry_run=dry_run)
            elif method == "POST" and sub in kube_subresources.POST:
                code, out = kube_subresources.post(store, rt, namespace, name, sub, self._decode(body), dry_run)
            elif method in ("GET", "PUT", "PATCH") and sub == "scale":
                code, out = kube_subresources.scale(store, rt, namespace, name, method, self.headers.get("Content-Type", ""),
                                                    body, dry_run)
            elif method == "PUT" and name:
                code, out = 200, store.replace(rt, namespace, name, self._decode(body), subresource=sub, dry_run=dry_run)
            elif method == "PATCH" and name:
                code, out = store.patch(rt, namespace, name, self.headers.get("Content-Type", ""), body,
                                        subresource=sub, field_manager=q.get("fieldManager"), force=q.get("force") == "true",
                                        dry_run=dry_run)
            elif method == "DELETE" and name:
                code, out = 200, store.delete(rt, namespace, name, dry_run=dry_run)
            else:
                raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({method})")
            if method != "GET" and not dry_run:
                lab.mark_dirty()
                self.server.after_kube_write(lab)
        self._send(code, json.dumps(out).encode(), "application/json",
                   {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None)

    @staticmethod
    def _decode(body: bytes) -> dict:
        if body.startswith(b"k8s\x00"):  # Kubernetes' protobuf envelope (runtime.protobufSerializer)
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json, application/yaml")
        try:
            obj = json.loads(body.decode() or "null")
        except ValueError:
            try:
                import yaml

                obj = yaml.safe_load(body.decode())
            except Exception as exc:  # noqa: BLE001 - any decode problem is a 400
                raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {exc}") from exc
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        return obj

    def _field_body(self, body: bytes) -> Any:
        """The sent object or patch, for field validation (JSON patches name no fields: None)."""
        if "json-patch" in self.headers.get("Content-Type", ""):
            return None
        try:
            return self._decode(body)
        except ApiError as err:
            if err.code == 415:
                raise
            return None

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
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

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


def _rss_bytes() -> int | None:
    """Resident memory of the lab process (Linux), for the scale benchmark."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


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


def load_or_create(state_dir: Path | None, options: dict) -> Lab:
    if state_dir and (state_dir / STATE_FILE).exists():
        return Lab.from_dict(json.loads((state_dir / STATE_FILE).read_text()))
    return Lab.create(options)
