"""The Kubernetes API's routes as tables: paths served besides objects, subresources the lab answers, and object verbs.

The HTTP handler (:mod:`..server`) authenticates, parses the path into a :class:`KubeRequest` and calls
:func:`serve`; only the streaming answers (watch, exec) stay with the handler. Every route runs with the
lab's lock held and returns a :class:`Reply`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..cluster import Lab
from ..linstor import api as linstor_api
from ..workloads.logs import pod_log
from . import endpoints, openapi, ssa, subresources, tables
from .protobuf import decode as protobuf
from .types import ApiError, ResourceType


@dataclass
class KubeRequest:
    """One API request: its verb, path and body, and the path's parts (group, version, namespace, the rest)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    headers: Mapping[str, str]
    identity: tuple[str, list[str]] | None = None  # the TLS client certificate's user and groups
    group: str = ""
    version: str = ""
    namespace: str | None = None
    rest: tuple[str, ...] = ()

    @property
    def q(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.query.items()}

    @property
    def plural(self) -> str:
        return self.rest[0]

    @property
    def name(self) -> str | None:
        return self.rest[1] if len(self.rest) > 1 else None

    @property
    def sub(self) -> str | None:
        return self.rest[2] if len(self.rest) > 2 else None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name) or default


@dataclass
class Reply:
    code: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


def json_reply(code: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(code, json.dumps(obj).encode(), "application/json", headers)


def json_body(req: KubeRequest, rt: ResourceType | None = None) -> bytes:
    """The request body as JSON or YAML: a protobuf body (kubectl's built-in kinds) decoded, CBOR refused (415).

    ``rt`` names the kind a protobuf envelope without a kind stands for (the URL's, as the API server does).
    """
    default = (rt.api_version, rt.kind) if rt is not None and req.sub is None and req.method in ("POST", "PUT") \
        else ("", "")
    return protobuf.as_json(req.body, req.header("Content-Type"), *default)


def decode(body: bytes) -> dict:
    """A request body (JSON or YAML, see :func:`json_body`) as an object; non-objects are refused."""
    try:
        obj = json.loads(body.decode() or "null")
    except ValueError:
        try:
            obj = yaml.safe_load(body.decode())
        except Exception as exc:  # noqa: BLE001 - any decode problem is a 400
            raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {exc}") from exc
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
    return obj


def _field_body(req: KubeRequest) -> Any:
    """The sent object or patch, for field validation (JSON patches name no fields: None)."""
    if "json-patch" in req.header("Content-Type"):
        return None
    try:
        return decode(req.body)
    except ApiError as err:
        if err.code == 415:
            raise
        return None


def parse_path(req: KubeRequest) -> KubeRequest:
    """Fill in group, version, namespace and the rest from ``/api/v1/...`` or ``/apis/{group}/{version}/...``."""
    parts = [p for p in req.path.split("/") if p]
    if parts[0] == "api":
        req.group, req.version, rest = "", parts[1] if len(parts) > 1 else "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        req.group, req.version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if len(rest) >= 3 and rest[0] == "namespaces":
        req.namespace, rest = rest[1], rest[2:]
    req.rest = tuple(rest)
    return req


def _openapi(lab: Lab, req: KubeRequest) -> Reply:
    code, ctype, out = openapi.serve(lab.kube, req.path, req.header("Accept"))
    return Reply(code, out, ctype)


#: paths outside the object tree: (matches path and method, route)
TOP_LEVEL: tuple[tuple[Callable[[str, str], bool], Callable[[Lab, KubeRequest], Reply]], ...] = (
    (lambda path, method: path.startswith("/openapi/") and method == "GET", _openapi),
    (lambda path, method: path in ("/api", "/api/"), lambda lab, req: json_reply(200, lab.kube.discovery_core())),
    (lambda path, method: path in ("/apis", "/apis/"), lambda lab, req: json_reply(200, lab.kube.discovery_groups())),
)


def _is_service_proxy(req: KubeRequest) -> bool:
    return req.group == "" and req.namespace is not None and len(req.rest) >= 3 and req.plural == "services" \
        and req.sub == "proxy"


def _service_proxy(lab: Lab, req: KubeRequest) -> Reply:
    """``services/{name}/proxy/...``: the LINSTOR controller's REST API behind its Service."""
    sub_path = req.path.split("/proxy", 1)[1] if "/proxy/" in req.path else "/"
    assert req.namespace is not None and req.name is not None
    code, ctype, out = linstor_api.proxy(lab, req.method, req.namespace, req.name, sub_path, req.query, req.body)
    return Reply(code, out, ctype)


def _is_pod_log(req: KubeRequest) -> bool:
    return req.group == "" and req.namespace is not None and len(req.rest) == 3 and req.plural == "pods" \
        and req.sub == "log" and req.method == "GET"


def is_pod_portforward(req: KubeRequest) -> bool:
    """``pods/{name}/portforward`` (GET for WebSocket, POST for a SPDY upgrade): streamed by the handler."""
    return req.group == "" and req.namespace is not None and len(req.rest) == 3 and req.plural == "pods" \
        and req.sub == "portforward" and req.method in ("GET", "POST")


def _pod_log(lab: Lab, req: KubeRequest) -> Reply:
    assert req.namespace is not None and req.name is not None
    text = pod_log(lab, req.namespace, req.name, req.query)
    if text is None:
        raise ApiError(404, "NotFound", f'pods "{req.name}" not found', kind="pods", name=req.name)
    return Reply(200, text, "text/plain")


def _is_review(req: KubeRequest) -> bool:
    return req.group in ("authorization.k8s.io", "authentication.k8s.io") and req.method == "POST" and req.name is None


def _review(lab: Lab, req: KubeRequest) -> Reply:
    """SelfSubjectAccessReview and friends (``kubectl auth can-i``, ``kubectl auth whoami``)."""
    return json_reply(201, endpoints.review(req.group, req.plural, decode(json_body(req)),
                                            req.identity or ("admin", ["system:masters"])))


#: resource paths the lab answers before the object store: (matches the request, route)
SPECIAL: tuple[tuple[Callable[[KubeRequest], bool], Callable[[Lab, KubeRequest], Reply]], ...] = (
    (_is_service_proxy, _service_proxy),
    (_is_pod_log, _pod_log),
    (_is_review, _review),
)


def object_verb(method: str, name: str | None, sub: str | None) -> str | None:
    """Which object verb a request is (None: the method is not allowed there)."""
    if sub == "scale" and method in ("GET", "PUT", "PATCH"):
        return "scale"
    if method == "GET":
        return "read"
    if method == "POST":
        return "create" if name is None else "subresource" if sub in subresources.POST else None
    return method.lower() if name and method in ("PUT", "PATCH", "DELETE") else None


def _read(lab: Lab, rt: ResourceType, req: KubeRequest, dry_run: bool) -> tuple[int, Any]:
    store, q = lab.kube, req.q
    if req.name is None:
        subresources.check_field_selector(rt, store.crd_of(rt), q.get("fieldSelector"))
        out = subresources.page(store.list(rt, req.namespace, q.get("labelSelector"), q.get("fieldSelector")),
                                q.get("limit"), q.get("continue"))
    else:
        out = store.get(rt, req.namespace, req.name)
    if tables.wants_table(req.header("Accept")):
        out = tables.to_table(rt.kind, out, crd=store.crd_of(rt), version=rt.version,
                              include_object=q.get("includeObject", "Metadata"))
    return 200, out


def _create(lab: Lab, rt: ResourceType, req: KubeRequest, dry_run: bool) -> tuple[int, Any]:
    return 201, lab.kube.create(rt, req.namespace, decode(req.body), dry_run=dry_run)


def _post_subresource(lab: Lab, rt: ResourceType, req: KubeRequest, dry_run: bool) -> tuple[int, Any]:
    assert req.name is not None and req.sub is not None
    return subresources.post(lab.kube, rt, req.namespace, req.name, req.sub, decode(req.body), dry_run)


def _scale(lab: Lab, rt: ResourceType, req: KubeRequest, dry_run: bool) -> tuple[int, Any]:
    assert req.name is not None
    return subresources.scale(lab.kube, rt, req.namespace, req.name, req.method, req.header("Content-Type"),
                              req.body, dry_run)


def _replace(lab: Lab, rt: ResourceType, req: KubeRequest, dry_run: bool) -> tuple[int, Any]:
    assert req.name is not None
    return 200, lab.kube.replace(rt, req.namespace, req.name, decode(req.body), subresource=req.sub, dry_run=dry_run)


def _patch(lab: Lab, rt: ResourceType, req: KubeRequest, dry_run: bool) -> tuple[int, Any]:
    assert req.name is not None
    q = req.q
    return lab.kube.patch(rt, req.namespace, req.name, req.header("Content-Type"), req.body, subresource=req.sub,
                          field_manager=q.get("fieldManager"), force=q.get("force") == "true", dry_run=dry_run)


def _delete(lab: Lab, rt: ResourceType, req: KubeRequest, dry_run: bool) -> tuple[int, Any]:
    assert req.name is not None
    return 200, lab.kube.delete(rt, req.namespace, req.name, dry_run=dry_run)


OBJECT_VERBS: dict[str, Callable[[Lab, ResourceType, KubeRequest, bool], tuple[int, Any]]] = {
    "read": _read, "create": _create, "subresource": _post_subresource, "scale": _scale,
    "put": _replace, "patch": _patch, "delete": _delete,
}


def resolve(lab: Lab, req: KubeRequest) -> ResourceType:
    """The request's resource type (404 for a namespaced path to a cluster-scoped type)."""
    rt = lab.kube.resolve(req.group, req.version, req.plural)
    if not rt.namespaced and req.namespace is not None and req.plural != "namespaces":
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return rt


def serve_object(lab: Lab, rt: ResourceType, req: KubeRequest) -> tuple[Reply, bool]:
    """Answer a verb on stored objects: (reply, whether the store was written)."""
    store, q = lab.kube, req.q
    # protobuf drops unknown fields: "strict decoding is unsupported for protobuf" (apimachinery codec_factory.go)
    strict_fields = not protobuf.is_protobuf(req.body, req.header("Content-Type"))
    if req.method != "GET":
        req.body = json_body(req, rt)
    dry_run = subresources.dry_run(req.query, req.body if req.method == "DELETE" else b"")
    warnings: list[str] = []
    writes = req.method in ("POST", "PUT", "PATCH")
    if writes and req.sub is None and strict_fields:
        warnings = openapi.check_fields(rt, store.crd_of(rt), _field_body(req), q.get("fieldValidation"))
    if writes and req.sub in (None, "status"):
        current = store.objects.get(store._key(rt, req.namespace, req.name)) if req.name else None
        req.body = ssa.stamp(rt, req.method, req.header("Content-Type", "application/json"), current, req.body,
                             ssa.manager_of(q.get("fieldManager"), req.header("User-Agent")),
                             q.get("force") == "true", req.sub)
    verb = object_verb(req.method, req.name, req.sub)
    if verb is None:
        raise ApiError(405, "MethodNotAllowed",
                       f"the server does not allow this method on the requested resource ({req.method})")
    code, out = OBJECT_VERBS[verb](lab, rt, req, dry_run)
    headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
    return json_reply(code, out, headers), req.method != "GET" and not dry_run
