"""Request options and subresources around the object store: dryRun, field-selector checks, paging,
pod eviction and the scale subresource.

Behaviour follows the API server: ``dryRun=All`` on every verb answers as the write would and
changes nothing; field selectors name only the fields a kind supports (400 otherwise,
``field label not supported``); ``limit``/``continue`` page a list in its stable order; an
Eviction deletes its pod (the lab has no PodDisruptionBudgets); ``/scale`` reads and writes
``spec.replicas`` of Deployments and StatefulSets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from typing import Any

from .patches import merge_patch
from .types import ApiError, ResourceType

POST = {"eviction"}
_COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
# pkg/registry/*/strategy.go ToSelectableFields / GetAttrs of the kinds the lab serves
_FIELDS = {
    ("", "pods"): {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                   "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"},
    ("", "nodes"): {"spec.unschedulable"},
    ("", "events"): {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                     "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                     "reason", "reportingComponent", "source", "type"},
    ("", "namespaces"): {"status.phase"},
    ("", "secrets"): {"type"},
    ("", "persistentvolumeclaims"): set(),
    ("", "services"): {"spec.clusterIP", "spec.type"},
    ("batch", "jobs"): {"status.successful"},
}


def dry_run(query: dict, body: bytes = b"") -> bool:
    """``dryRun=All`` from the query, or from DeleteOptions in a DELETE's body (how client-go sends it)."""
    values = list(query.get("dryRun") or [])
    if body[:1] == b"{":
        with contextlib.suppress(ValueError, AttributeError):
            values += json.loads(body).get("dryRun") or []
    for v in values:
        if v != "All":
            raise ApiError(400, "BadRequest", f'unsupported dry run option "{v}": only "All" is supported')
    return bool(values)


def check_field_selector(rt: ResourceType, crd: dict | None, selector: str | None) -> None:
    """Refuse a field selector on a field the kind cannot select by (the API server's 400)."""
    if not selector:
        return
    allowed = _COMMON_FIELDS | _FIELDS.get((rt.group, rt.plural), set())
    if crd is not None:
        ver = next((v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("name") == rt.version), {})
        allowed |= {f["jsonPath"].lstrip(".") for f in ver.get("selectableFields") or []}
    for raw in selector.split(","):
        m = re.match(r"\s*([A-Za-z0-9._]+)\s*(==|=|!=)", raw)
        field = m.group(1) if m else raw.strip()
        if field not in allowed:
            raise ApiError(400, "BadRequest", f'field label not supported: {field}')


def _token(key: str, rv: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": key}).encode()).decode()


def page(listing: dict, limit: str | None, cont: str | None) -> dict:
    """One page of a list: at most ``limit`` items after the ``continue`` token, and the next token."""
    items = listing["items"]
    if cont:
        try:
            start = json.loads(base64.urlsafe_b64decode(cont.encode()))["start"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "BadRequest", "continue key is not valid: illegal base64 data") from None
        items = [o for o in items if _key(o) > start]
    if not limit or int(limit) <= 0 or len(items) <= int(limit):
        return {**listing, "items": items}
    n = int(limit)
    shown = items[:n]
    meta = {**listing["metadata"], "continue": _token(_key(shown[-1]), listing["metadata"]["resourceVersion"]),
            "remainingItemCount": len(items) - n}
    return {**listing, "metadata": meta, "items": shown}


def _key(obj: dict) -> str:
    return f"{obj['metadata'].get('namespace') or ''}/{obj['metadata']['name']}"


def post(store: Any, rt: ResourceType, namespace: str | None, name: str | None, sub: str, body: dict,
         dry: bool) -> tuple[int, dict]:
    """POST to a subresource: pods/{name}/eviction."""
    if (rt.group, rt.plural, sub) != ("", "pods", "eviction") or not name:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if body.get("kind") not in (None, "Eviction"):
        raise ApiError(400, "BadRequest", f"expected an Eviction, got {body.get('kind')}")
    store.delete(rt, namespace, name, dry_run=dry or dry_run({"dryRun": (body.get("deleteOptions") or {}).get("dryRun") or []}))
    return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _scale_of(rt: ResourceType, obj: dict) -> dict:
    sel = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in obj["metadata"]},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}


def scale(store: Any, rt: ResourceType, namespace: str | None, name: str | None, method: str, content_type: str,
          body: bytes, dry: bool) -> tuple[int, dict]:
    """GET/PUT/PATCH ``/scale`` of a Deployment or StatefulSet."""
    if rt.kind not in ("Deployment", "StatefulSet") or not name:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    current = store.get(rt, namespace, name)
    if method == "GET":
        return 200, _scale_of(rt, current)
    try:
        sent = json.loads(body.decode() or "{}")
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"error decoding scale: {exc}") from exc
    wanted = merge_patch(_scale_of(rt, current), sent) if method == "PATCH" else sent
    replicas = (wanted.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                                       f"{replicas}: must be greater than or equal to 0")
    patch = json.dumps({"spec": {"replicas": replicas}}).encode()
    _code, updated = store.patch(rt, namespace, name, "application/merge-patch+json", patch, dry_run=dry)
    return 200, _scale_of(rt, updated)
