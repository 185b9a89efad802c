"""The lab's Talos endpoint: a small JSON RPC over HTTP that the ``talosctl`` shim speaks.

Real talosctl talks gRPC to apid on ``<endpoint>:50000``, which proxies to the nodes
named with ``--nodes``. The lab keeps that shape: the shim sends every call to the
lab server (its talosconfig endpoint) with the target node in the path, and the
server answers as that node's API would, including when it would not answer at all.

Paths (all JSON; ``{node}`` is the address or name given to ``--nodes``)::

    GET  /talos/v1/info                              lab time, time scale, talosctl version
    GET  /talos/v1/nodes/{node}/resolve?type=T       resource definition for a type or alias
    GET  /talos/v1/nodes/{node}/resources/{type}[/{id}]   list / get (Talos envelope: metadata, spec)
    POST /talos/v1/nodes/{node}/apply-config         {data, mode, dry_run, insecure, try_timeout}
    POST /talos/v1/nodes/{node}/reset                {graceful, reboot, mode, system_labels, user_disks}
    POST /talos/v1/nodes/{node}/upgrade              {image, stage, force, reboot_mode}
    POST /talos/v1/nodes/{node}/reboot               {mode}
    POST /talos/v1/nodes/{node}/shutdown             {force}
    GET  /talos/v1/nodes/{node}/version?insecure=    server version block
    GET  /talos/v1/nodes/{node}/read?path=P          file content
    POST /talos/v1/nodes/{node}/wipe                 {devices, method, drop_partition}
    GET  /talos/v1/nodes/{node}/etcd/members | etcd/status
    GET  /talos/v1/nodes/{node}/etcd/snapshot       {snapshot: base64 of the file (:mod:`.etcd_snapshot`)}
    POST /talos/v1/nodes/{node}/etcd/remove-member   {member}
    POST /talos/v1/nodes/{node}/health               {control_plane_nodes, worker_nodes}
    GET  /talos/v1/nodes/{node}/wait?actor=A         what ``--wait`` observes (stage, boot ID, action error)

Errors are ``{"code": <gRPC code name>, "message": ...}`` with a matching HTTP status; a
node that is down answers ``Unavailable`` with the dial error talosctl would print.
Every answer carries ``X-Lab-Time`` (lab seconds) so the shim can measure ``--timeout``
in lab time. The ``talosctl-fail`` fault makes the next N *invocations* for a node fail:
the shim tags its requests with ``X-Talosctl-Call`` and the fault is consumed once per
(invocation, node).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from itertools import permutations
from typing import Any

from ...schematic_ids import schematic_id
from . import etcd_snapshot, installed_image
from .cluster import TalosCluster
from .constants import EXTENSION_CATALOG, GO_VERSIONS
from .errors import TalosAPIError
from .node import TalosNode
from .releases import parse_version
from .resource_types import RESOURCE_DEFS, resolve_resource_type

_HTTP_STATUS = {"NotFound": 404, "Unavailable": 503, "InvalidArgument": 400, "FailedPrecondition": 412,
                "Unauthenticated": 401, "PermissionDenied": 403, "Unimplemented": 501, "AlreadyExists": 409,
                "DeadlineExceeded": 504, "Unknown": 500, "Internal": 500}
_MAX_TRACKED_CALLS = 2000


def handle(lab: Any, method: str, path: str, query: dict[str, list[str]], body: bytes,
           headers: dict) -> tuple[int, dict[str, str], bytes]:
    """Serve one ``/talos/`` request (``lab.lock`` is held and ``lab.tick()`` has run)."""
    cluster: TalosCluster = lab.talos
    now = lab.clock.now()
    hdrs = {k.lower(): v for k, v in headers.items()}
    out_headers = {"X-Lab-Time": f"{now:.3f}"}
    try:
        if not _authorized(lab, cluster, hdrs.get("authorization", "")):
            raise TalosAPIError("Unavailable", 'connection error: desc = "transport: authentication handshake failed: '
                                'remote error: tls: bad certificate"')
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["talos", "v1"]:
            raise TalosAPIError("Unimplemented", f"unknown method {method} {path}")
        if parts[2:] == ["info"]:
            # The client block of `talosctl version` (SHA, Go version) comes from here, so that the
            # talosctl shim need not import the model for it.
            tag = cluster.talosctl_version
            return _ok(out_headers, {"now": now, "scale": lab.clock.scale, "talosctl_version": tag,
                                     "talosctl_go_version": GO_VERSIONS.get(parse_version(tag)[:2], "go1.25.5"),
                                     "talosctl_sha": hashlib.sha1(tag.encode()).hexdigest()[:8]})
        if len(parts) < 5 or parts[2] != "nodes":
            raise TalosAPIError("Unimplemented", f"unknown method {method} {path}")
        node = _node(cluster, parts[3])
        q = {k: v[-1] for k, v in query.items()}
        req = json.loads(body or b"{}") if method == "POST" else {}
        consumed, failing = _take_fault(lab, cluster, node, hdrs.get("x-talosctl-call", ""))
        if consumed:
            out_headers["X-Lab-Dirty"] = "1"  # the fault book changed: persist it
        if failing:
            raise TalosAPIError("Unavailable", 'connection error: desc = "transport: Error while dialing: dial tcp '
                                f'{node.address}:50000: i/o timeout"')
        result, mutated = _route(lab, cluster, node, method, parts[4:], q, req, now)
        if mutated:
            out_headers["X-Lab-Dirty"] = "1"
        return _ok(out_headers, result)
    except TalosAPIError as err:
        body_out = json.dumps({"code": err.code, "message": err.message}).encode()
        return _HTTP_STATUS.get(err.code, 500), {**out_headers, "Content-Type": "application/json"}, body_out
    except (ValueError, KeyError, TypeError) as exc:
        body_out = json.dumps({"code": "InvalidArgument", "message": f"bad request: {exc}"}).encode()
        return 400, {**out_headers, "Content-Type": "application/json"}, body_out


def _ok(headers: dict[str, str], result: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {**headers, "Content-Type": "application/json"}, json.dumps(result).encode()


def _authorized(lab: Any, cluster: TalosCluster, header: str) -> bool:
    """The talosconfig client key travels as a bearer credential (the lab's stand-in for mTLS)."""
    accepted = {cluster.client_key, lab.token} - {None, ""}
    return header.removeprefix("Bearer ").strip() in accepted


def _node(cluster: TalosCluster, ref: str) -> TalosNode:
    try:
        return cluster.node_by_address(ref)
    except KeyError:
        raise TalosAPIError("Unavailable", 'connection error: desc = "transport: Error while dialing: dial tcp: '
                            f'lookup {ref}: no such host"') from None


def _take_fault(lab: Any, cluster: TalosCluster, node: TalosNode, call: str) -> tuple[bool, bool]:
    """``talosctl-fail``: decide once per (invocation, node) whether this invocation fails.

    Returns (a fault was consumed now, this invocation fails for this node).
    """
    key = (call or "-", node.name)
    consumed = False
    if key not in cluster.api_calls:
        if len(cluster.api_calls) > _MAX_TRACKED_CALLS:
            for old in list(cluster.api_calls)[: _MAX_TRACKED_CALLS // 2]:
                del cluster.api_calls[old]
        failing = bool(lab.faults.take("talosctl-fail", node.name))
        cluster.api_calls[key] = failing
        consumed = failing
    return consumed, cluster.api_calls[key]


def schematic_lookup_for(lab: Any) -> Callable[[str], list[str] | None]:
    """Extension list of a schematic ID, as the Image Factory would build it (None: unknown schematic).

    Order: schematics posted to the lab's factory (``lab.schematics``, see :mod:`.factory_api`); then
    schematics that exist on the real factory whatever this lab saw: every ordering of the official extensions in the model's
    catalog and the empty schematic, computed with the offline algorithm of :mod:`runbook_lib.factory`.
    """
    known: dict[str, list[str]] = {}
    names = list(EXTENSION_CATALOG)
    for r in range(len(names) + 1):
        for combo in permutations(names, r):
            schematic = {"customization": {"systemExtensions": {"officialExtensions": list(combo)}}} if combo else {}
            known[schematic_id(schematic)] = list(combo)

    def find(schematic: str) -> list[str] | None:
        posted = lab.schematics
        if schematic in posted:
            data = posted[schematic] or {}
            return list(((data.get("customization") or {}).get("systemExtensions") or {})
                        .get("officialExtensions") or [])
        return known.get(schematic)

    return find


def _route(lab: Any, cluster: TalosCluster, node: TalosNode, method: str, rest: list[str], q: dict, req: dict,
           now: float) -> tuple[Any, bool]:
    """Dispatch one node call; returns (result, whether the lab state changed)."""
    op = rest[0]
    insecure = q.get("insecure", str(req.get("insecure", ""))).lower() == "true"
    if op == "resolve" and method == "GET":
        cluster.require_up(node, now, insecure=insecure)
        rtype = resolve_resource_type(q.get("type", ""))
        if rtype is None:
            raise TalosAPIError("NotFound", f'resource "{q.get("type", "")}" is not registered')
        d = RESOURCE_DEFS[rtype]
        return {"type": rtype, "namespace": d["namespace"], "aliases": d["aliases"], "columns": d["columns"]}, False
    if op == "resources" and method == "GET" and len(rest) in (2, 3):
        return _resources(cluster, node, rest[1], rest[2] if len(rest) == 3 else None, q, now, insecure), False
    if op == "wait" and method == "GET":
        return cluster.action_status(node, q.get("actor"), now), False
    if op == "version" and method == "GET":
        return cluster.version_info(node, now, insecure=insecure), False
    if op == "read" and method == "GET":
        if q.get("path") in ("/proc/cmdline", "/proc/crypto"):
            cluster.require_up(node, now)
            text = installed_image.cmdline(lab, node) if q["path"] == "/proc/cmdline" else installed_image.crypto(node)
            return {"content": text}, False
        return {"content": cluster.read(node, q.get("path", ""), now)}, False
    if op == "etcd" and len(rest) == 2:
        if rest[1] == "members" and method == "GET":
            return {"members": cluster.etcd_member_list(node, now)}, False
        if rest[1] == "status" and method == "GET":
            return cluster.etcd_status(node, now), False
        if rest[1] == "snapshot" and method == "GET":
            cluster.require_etcd_snapshot(node, now)
            return {"snapshot": base64.b64encode(_etcd_snapshot(lab)).decode()}, False
        if rest[1] == "remove-member" and method == "POST":
            cluster.etcd_remove_member(node, str(req["member"]), now)
            return {}, True
    if method == "POST" and op == "health":
        checks = cluster.health_checks(node, now, req.get("control_plane_nodes") or None,
                                       req.get("worker_nodes") or None)
        return {"checks": [[name, err] for name, err in checks],
                "nodes": [n.address for n in cluster.nodes.values()]}, False
    if method == "POST" and op == "apply-config":
        res = cluster.apply_config(node, str(req["data"]), str(req.get("mode", "auto")), now,
                                   dry_run=bool(req.get("dry_run")), insecure=insecure,
                                   try_timeout=float(req.get("try_timeout", 60.0)),
                                   schematic_lookup=schematic_lookup_for(lab))
        return res, not req.get("dry_run")
    if method == "POST" and op == "reset":
        actor = cluster.reset(node, bool(req.get("graceful", True)), bool(req.get("reboot", False)),
                              str(req.get("mode", "all")), list(req.get("system_labels") or []),
                              list(req.get("user_disks") or []), now)
        return {"actor_id": actor}, True
    if method == "POST" and op == "upgrade":
        actor = cluster.upgrade(node, str(req["image"]), now, stage=bool(req.get("stage")),
                                force=bool(req.get("force")), schematic_lookup=schematic_lookup_for(lab))
        return {"actor_id": actor, "ack": "Upgrade request received"}, True
    if method == "POST" and op == "reboot":
        return {"actor_id": cluster.reboot(node, now, str(req.get("mode", "default")))}, True
    if method == "POST" and op == "shutdown":
        return {"actor_id": cluster.shutdown(node, now, bool(req.get("force")))}, True
    if method == "POST" and op == "wipe":
        cluster.wipe_disk(node, [str(d) for d in req.get("devices") or []], str(req.get("method", "FAST")),
                          bool(req.get("drop_partition")), now)
        return {}, True
    raise TalosAPIError("Unimplemented", f"unknown method {method} /{'/'.join(rest)}")


def _etcd_snapshot(lab: Any) -> bytes:
    """The Kubernetes store as etcd holds it: every object under its registry key, at the store's revision."""
    objects = [(etcd_snapshot.registry_key(*key), obj) for key, obj in lab.kube.objects.items()]
    return etcd_snapshot.build(objects, lab.kube.rv)


def _resources(cluster: TalosCluster, node: TalosNode, type_ref: str, rid: str | None, q: dict, now: float,
               insecure: bool) -> dict:
    cluster.require_up(node, now, insecure=insecure)
    rtype = resolve_resource_type(type_ref)
    if rtype is None:
        raise TalosAPIError("NotFound", f'resource "{type_ref}" is not registered')
    namespace = q.get("namespace") or RESOURCE_DEFS[rtype]["namespace"]
    items = [r for r in cluster.resources(node, rtype, now) if r["metadata"]["namespace"] == namespace]
    if rid is not None:
        items = [r for r in items if r["metadata"]["id"] == rid]
        if not items:
            raise TalosAPIError("NotFound", f"resource {rtype}({namespace}/{rid}@undefined) doesn't exist")
    return {"items": items}
