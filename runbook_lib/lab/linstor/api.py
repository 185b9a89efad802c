"""LINSTOR REST (``/v1/...``) served behind the Kubernetes service proxy.

Clients reach the controller the way a notebook reaches a real one without a port-forward:
``/api/v1/namespaces/<ns>/services/linstor-controller:3370/proxy/v1/...`` on the API server
(also ``linstor-controller``, ``linstor-controller:api`` and ``http:linstor-controller:3370``).
The API server answers 503 ``no endpoints available for service "..."`` while the Service has
no ready pod, and 404 when the Service does not exist, as Kubernetes does.

Endpoints (LINSTOR REST API 1.27; responses are the shapes of ``rest_v1_openapi.yaml``,
errors are ``ApiCallRc`` lists):

- ``GET /health``, ``GET /v1/controller/version``, ``GET|POST /v1/controller/properties``
- ``GET /v1/nodes[?nodes=..]``, ``GET /v1/nodes/{node}``, ``GET /v1/nodes/{node}/storage-pools``,
  ``DELETE /v1/nodes/{node}/storage-pools/{pool}``
- ``GET /v1/view/storage-pools``, ``GET /v1/view/resources``, ``GET /v1/view/snapshots``
  (filters ``nodes``, ``resources``, ``storage_pools``; paging ``offset``/``limit``)
- ``GET /v1/resource-definitions[?with_volume_definitions=true]``,
  ``GET /v1/resource-definitions/{rd}/resources``, ``GET /v1/resource-definitions/{rd}/sync-status``,
  ``GET|POST /v1/resource-definitions/{rd}/snapshots``, ``DELETE .../snapshots/{snap}``
- ``GET /v1/resource-definitions/{rd}``, ``GET /v1/resource-groups[/{rg}]``
- volume groups, error reports and physical storage (:mod:`.linstor_views`)
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from ..kubernetes import objects as ko
from ..kubernetes.objects import pod_ready
from ..storage.facts import controller_pod
from . import views as linstor_views
from .constants import CONTROLLER_VERSION
from .return_codes import (
    FAIL_NOT_FOUND_NODE,
    FAIL_NOT_FOUND_RSC_DFN,
    FAIL_NOT_FOUND_RSC_GRP,
    MASK_ERROR,
    MASK_NODE,
    MASK_RSC_DFN,
    MASK_RSC_GRP,
    LinstorError,
    api_rc,
    not_found,
    ret_code,
)

UNKNOWN_API_CALL = ret_code(0x0FFFFFFFFFFFFFFF, MASK_ERROR)


def _status(code: int, reason: str, message: str) -> tuple[int, str, bytes]:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return code, "application/json", json.dumps(body).encode()


def proxy(lab: Any, method: str, namespace: str, service: str, rest: str, query: dict[str, list[str]],
          body: bytes) -> tuple[int, str, bytes]:
    """The API server's service proxy for ``service`` (``name``, ``name:port``, ``scheme:name:port``)."""
    parts = unquote(service).split(":")
    if len(parts) == 3:
        _scheme, name, port = parts
    elif len(parts) == 2:
        name, port = parts
    else:
        name, port = parts[0], ""
    svc = ko.get(lab, "", "services", namespace, name)
    if svc is None:
        return _status(404, "NotFound", f'services "{name}" not found')
    ports = (svc.get("spec") or {}).get("ports") or []
    match = [p for p in ports if not port or str(p.get("port")) == port or p.get("name") == port]
    is_linstor = (svc["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "linstor-controller"
    if not match or (len(ports) > 1 and not port):
        return _status(503, "ServiceUnavailable", f'no endpoints available for service "{unquote(service)}"')
    if not is_linstor or controller_pod(lab, namespace) is None:
        if is_linstor:
            return _status(503, "ServiceUnavailable", f'no endpoints available for service "{unquote(service)}"')
        pods = [p for p in ko.objects(lab, "", "pods", namespace) if pod_ready(p) and all(
            (p["metadata"].get("labels") or {}).get(k) == v for k, v in ((svc.get("spec") or {}).get("selector") or {}).items())]
        if not pods:
            return _status(503, "ServiceUnavailable", f'no endpoints available for service "{unquote(service)}"')
        ip = (pods[0].get("status") or {}).get("podIP", "10.244.0.1")
        return _status(503, "ServiceUnavailable",
                       f"error trying to reach service: dial tcp {ip}:{match[0].get('targetPort', match[0].get('port'))}: "
                       "connect: connection refused")
    code, payload = handle(lab, method, "/" + unquote(rest).lstrip("/"), query, body)
    if payload is None:
        return code, "text/plain", b""
    return code, "application/json", json.dumps(payload).encode()


def _page(items: list, query: dict[str, list[str]]) -> list:
    offset = int((query.get("offset") or ["0"])[-1] or 0)
    limit = int((query.get("limit") or ["0"])[-1] or 0)
    items = items[offset:]
    return items[:limit] if limit > 0 else items


def _multi(query: dict[str, list[str]], key: str) -> set[str] | None:
    values = [v for raw in query.get(key, []) for v in raw.split(",") if v]
    return {v.lower() for v in values} or None


def handle(lab: Any, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    """One LINSTOR REST call against ``lab.linstor``: (HTTP status, JSON payload)."""
    ctl = lab.linstor
    try:
        return _route(lab, ctl, method, path, query, body)
    except LinstorError as exc:
        return exc.http_status, exc.rcs
    except (ValueError, KeyError, TypeError) as exc:
        return 400, [api_rc(ret_code(0x0FFFFFFFFFFFFFFD, MASK_ERROR), f"Invalid request: {exc}")]


def _json_body(body: bytes) -> Any:
    return json.loads(body.decode() or "{}")


def _changed(lab: Any) -> None:
    lab.workloads.state.next_due = 0.0  # let the operator and CSI see the change at the next tick
    lab.mark_dirty()


def _route(lab: Any, ctl: Any, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    nodes_f, pools_f, res_f = _multi(query, "nodes"), _multi(query, "storage_pools"), _multi(query, "resources")
    p = path.rstrip("/")
    if p == "/health" and method == "GET":
        return 200, None
    if p == "/v1/controller/version" and method == "GET":
        return 200, dict(CONTROLLER_VERSION)
    if p == "/v1/controller/properties":
        if method == "GET":
            return 200, dict(ctl.props)
        if method == "POST":
            req = _json_body(body)
            rcs = ctl.modify_props(req.get("override_props") or {}, req.get("delete_props") or [])
            _changed(lab)
            return 201, rcs
    if p == "/v1/nodes" and method == "GET":
        items = [ctl.node_json(n) for name, n in sorted(ctl.nodes.items()) if not nodes_f or name.lower() in nodes_f]
        return 200, _page(items, query)
    m = re.fullmatch(r"/v1/nodes/([^/]+)", p)
    if m and method == "GET":
        node = _node(ctl, m.group(1))
        return 200, ctl.node_json(node)
    m = re.fullmatch(r"/v1/nodes/([^/]+)/storage-pools", p)
    if m and method == "GET":
        node = _node(ctl, m.group(1))
        items = [ctl.pool_json(sp) for name, sp in sorted(ctl.pools.get(node.name, {}).items())
                 if not pools_f or name.lower() in pools_f]
        return 200, _page(items, query)
    m = re.fullmatch(r"/v1/nodes/([^/]+)/storage-pools/([^/]+)", p)
    if m and method == "DELETE":
        rcs = ctl.delete_storage_pool(_node(ctl, m.group(1)).name, m.group(2))
        _changed(lab)
        return 200, rcs
    if p == "/v1/view/storage-pools" and method == "GET":
        items = [ctl.pool_json(sp) for node in sorted(ctl.pools) for name, sp in sorted(ctl.pools[node].items())
                 if (not nodes_f or node.lower() in nodes_f) and (not pools_f or name.lower() in pools_f)]
        return 200, _page(items, query)
    if p == "/v1/view/resources" and method == "GET":
        items = [ctl.resource_json(rd, rep, with_volumes=True)
                 for rd_name, rd in sorted(ctl.rds.items()) if not res_f or rd_name.lower() in res_f
                 for node, rep in sorted(rd.replicas.items())
                 if (not nodes_f or node.lower() in nodes_f) and (not pools_f or rep.pool.lower() in pools_f)]
        return 200, _page(items, query)
    if p == "/v1/view/snapshots" and method == "GET":
        items = [ctl.snapshot_json(s) for rd in sorted(ctl.snapshots) for _n, s in sorted(ctl.snapshots[rd].items())
                 if (not res_f or rd.lower() in res_f) and (not nodes_f or nodes_f & {n.lower() for n in s.nodes})]
        return 200, _page(items, query)
    if p == "/v1/resource-definitions" and method == "GET":
        with_vd = (query.get("with_volume_definitions") or ["false"])[-1].lower() == "true"
        wanted = _multi(query, "resource_definitions")
        items = [ctl.rd_json(rd, with_volume_definitions=with_vd) for name, rd in sorted(ctl.rds.items())
                 if not wanted or name.lower() in wanted]
        return 200, _page(items, query)
    m = re.fullmatch(r"/v1/resource-definitions/([^/]+)", p)
    if m and method == "GET":
        return 200, ctl.rd_json(_rd(ctl, m.group(1)), with_volume_definitions=False)
    m = re.fullmatch(r"/v1/resource-definitions/([^/]+)/resources", p)
    if m and method == "GET":
        rd = _rd(ctl, m.group(1))
        return 200, _page([ctl.resource_json(rd, rep, with_volumes=False) for _n, rep in sorted(rd.replicas.items())], query)
    m = re.fullmatch(r"/v1/resource-definitions/([^/]+)/sync-status", p)
    if m and method == "GET":
        rd = _rd(ctl, m.group(1))
        return 200, {"synced_on_all": all(ctl.nodes.get(n) is not None and ctl.nodes[n].online for n in rd.replicas)}
    m = re.fullmatch(r"/v1/resource-definitions/([^/]+)/snapshots", p)
    if m and method == "GET":
        rd = _rd(ctl, m.group(1))
        return 200, [ctl.snapshot_json(s) for _n, s in sorted(ctl.snapshots.get(rd.name, {}).items())]
    if m and method == "POST":
        req = _json_body(body)
        rcs = ctl.create_snapshot(_rd(ctl, m.group(1)).name, req["name"])
        _changed(lab)
        return 201, rcs
    m = re.fullmatch(r"/v1/resource-definitions/([^/]+)/snapshots/([^/]+)", p)
    if m and method == "DELETE":
        rcs = ctl.delete_snapshot(_rd(ctl, m.group(1)).name, m.group(2))
        _changed(lab)
        return 200, rcs
    if p == "/v1/resource-groups" and method == "GET":
        wanted = _multi(query, "resource_groups")
        return 200, _page([ctl.rg_json(rg) for name, rg in sorted(ctl.groups.items()) if not wanted or name.lower() in wanted], query)
    m = re.fullmatch(r"/v1/resource-groups/([^/]+)", p)
    if m and method == "GET":
        return 200, ctl.rg_json(_rg(ctl, m.group(1)))
    listed = linstor_views.route(ctl, method, p, query, _rg)
    if listed is not None:
        return listed
    return 404, [api_rc(UNKNOWN_API_CALL, f"No such API call: {method} {path}")]


def _named(objects: dict[str, Any], name: str, code: int, mask: int, what: str) -> Any:
    """LINSTOR looks names up case-insensitively; a missing one is its NOT_FOUND return code."""
    for n, obj in objects.items():
        if n.lower() == name.lower():
            return obj
    raise not_found(code, mask, f"{what} '{name}'")


def _node(ctl: Any, name: str) -> Any:
    return _named(ctl.nodes, name, FAIL_NOT_FOUND_NODE, MASK_NODE, "Node")


def _rd(ctl: Any, name: str) -> Any:
    return _named(ctl.rds, name, FAIL_NOT_FOUND_RSC_DFN, MASK_RSC_DFN, "Resource definition")


def _rg(ctl: Any, name: str) -> Any:
    return _named(ctl.groups, name, FAIL_NOT_FOUND_RSC_GRP, MASK_RSC_GRP, "Resource group")
