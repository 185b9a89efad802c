"""OpenAPI v3 and v2 documents for the kinds the lab serves, and server-side field validation.

The schemas are Kubernetes' own, as the ``kubernetes-validate`` package ships them for the lab's
Kubernetes version (its JSON-schema form of the API server's OpenAPI definitions, with the
``x-kubernetes-*`` extensions kept); custom resources use their CRD's ``openAPIV3Schema`` wrapped
as the API server does (``metadata`` is an ObjectMeta). kubectl reads ``/openapi/v3`` to see
that PATCH takes ``fieldValidation`` (then it leaves validation to the server), and for
``kubectl explain``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from ..talos.constants import KUBERNETES_VERSION
from .types import BUILTIN_TYPES, ApiError, ResourceType

REF = "#/components/schemas/"
V2_REF = "#/definitions/"
_GROUP_PREFIX = {"": "io.k8s.api.core", "apps": "io.k8s.api.apps", "batch": "io.k8s.api.batch",
                 "coordination.k8s.io": "io.k8s.api.coordination", "storage.k8s.io": "io.k8s.api.storage",
                 "rbac.authorization.k8s.io": "io.k8s.api.rbac",
                 "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions"}
_COMMON_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "pretty")


@functools.cache
def definitions() -> dict[str, dict]:
    """Kubernetes' definitions by name (``io.k8s.api.core.v1.Pod``), in OpenAPI v3 form."""
    # find_spec locates the package's data without importing it (its import pulls in jsonschema: seconds)
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the kubernetes-validate package (Kubernetes' schemas) is not installed")
    root = Path(list(spec.submodule_search_locations)[0]) / "kubernetes-json-schema"
    versions = sorted((p.name for p in root.iterdir() if p.name.endswith("-local")),
                      key=lambda n: tuple(int(x) for x in n[1:].split("-")[0].split(".")))
    wanted = f"{KUBERNETES_VERSION}-local"
    name = wanted if wanted in versions else versions[-1]
    raw = json.loads((root / name / "_definitions.json").read_text())["$defs"]
    return {k: _to_openapi(v) for k, v in raw.items()}


def _to_openapi(schema: Any) -> Any:
    """JSON-schema spellings back to OpenAPI's: ``type: [t, "null"]`` is ``type: t``, refs to components."""
    if isinstance(schema, list):
        return [_to_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
            continue  # int-or-string and free-form values carry no single type
        if key == "$ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/$defs/", REF)
            continue
        if key in ("$schema", "$id"):
            continue
        out[key] = _to_openapi(value)
    return out


def definition_name(rt: ResourceType) -> str:
    prefix = _GROUP_PREFIX.get(rt.group)
    if prefix is None:
        return ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"
    return f"{prefix}.{rt.version}.{rt.kind}"


def crd_schema(crd: dict, version: str) -> dict:
    """A custom resource's schema as the API server publishes it."""
    spec = crd.get("spec") or {}
    ver = next((v for v in spec.get("versions") or [] if v.get("name") == version), {})
    schema = copy.deepcopy(((ver.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object",
                                                                                  "x-kubernetes-preserve-unknown-fields": True})
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}
    props["metadata"] = {"allOf": [{"$ref": REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
                         "description": "Standard object's metadata."}
    schema["type"] = "object"
    schema["x-kubernetes-group-version-kind"] = [{"group": spec.get("group", ""), "kind": spec["names"]["kind"],
                                                  "version": version}]
    return schema


def schema_for(rt: ResourceType, crd: dict | None) -> tuple[dict | None, dict[str, dict]]:
    """The kind's schema and the definitions its refs point into."""
    defs = definitions()
    if crd is not None:
        return crd_schema(crd, rt.version), defs
    return defs.get(definition_name(rt)), defs


def _refs(schema: Any, out: set[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF):
            out.add(ref[len(REF):])
        for v in schema.values():
            _refs(v, out)
    elif isinstance(schema, list):
        for v in schema:
            _refs(v, out)


def _closure(roots: dict[str, dict], defs: dict[str, dict]) -> dict[str, dict]:
    out = dict(roots)
    todo: set[str] = set()
    _refs(list(roots.values()), todo)
    while todo:
        name = todo.pop()
        if name in out or name not in defs:
            continue
        out[name] = defs[name]
        _refs(defs[name], todo)
    return out


def _params(names: tuple[str, ...]) -> list[dict]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _op(action: str, rt: ResourceType, schema_ref: str, op_id: str) -> dict:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    body = {"content": {"application/json": {"schema": {"$ref": schema_ref}}}}
    op: dict[str, Any] = {"operationId": op_id, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                          "responses": {"200": body, "401": {"description": "Unauthorized"}}}
    if action in ("post", "put", "patch"):
        op["requestBody"] = body
        if action == "patch":
            op["requestBody"] = {"content": {t: {"schema": {"$ref": REF + "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
                                             for t in ("application/apply-patch+yaml", "application/json-patch+json",
                                                       "application/merge-patch+json",
                                                       "application/strategic-merge-patch+json")}}
        op["parameters"] = _params(_COMMON_PARAMS + (("force",) if action == "patch" else ()))
    return op


def group_version_doc(group: str, version: str, types: list[ResourceType], crd_of) -> dict:
    """``/openapi/v3/api/v1`` or ``/openapi/v3/apis/<group>/<version>``."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    roots: dict[str, dict] = {}
    paths: dict[str, dict] = {}
    defs = definitions()
    for rt in types:
        schema, _ = schema_for(rt, crd_of(rt))
        if schema is None:
            continue
        name = definition_name(rt)
        roots[name] = schema
        ref = REF + name
        coll = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
        camel = rt.kind if not rt.namespaced else f"Namespaced{rt.kind}"
        paths[coll] = {"get": _op("list", rt, ref, f"list{camel}"), "post": _op("post", rt, ref, f"create{camel}")}
        paths[f"{coll}/{{name}}"] = {"get": _op("get", rt, ref, f"read{camel}"), "put": _op("put", rt, ref, f"replace{camel}"),
                                     "patch": _op("patch", rt, ref, f"patch{camel}"),
                                     "delete": _op("delete", rt, ref, f"delete{camel}")}
        paths[f"{coll}/{{name}}/status"] = {"get": _op("get", rt, ref, f"read{camel}Status"),
                                            "patch": _op("patch", rt, ref, f"patch{camel}Status")}
    for extra in ("io.k8s.apimachinery.pkg.apis.meta.v1.Patch", "io.k8s.apimachinery.pkg.apis.meta.v1.Status"):
        if extra in defs:
            roots.setdefault(extra, defs[extra])
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION}, "paths": paths,
            "components": {"schemas": _closure(roots, defs)}}


def v3_root(gvs: list[tuple[str, str]], docs_hash) -> dict:
    """``/openapi/v3``: one entry per group-version, with the hash clients cache by."""
    out = {}
    for group, version in gvs:
        key = f"api/{version}" if not group else f"apis/{group}/{version}"
        out[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={docs_hash(group, version)}"}
    return {"paths": out}


def doc_hash(doc: dict) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()


def v2_document(types: list[ResourceType], crd_of) -> dict:
    """``/openapi/v2`` (JSON): the same schemas with v2 refs."""
    defs: dict[str, dict] = {}
    for rt in types:
        schema, all_defs = schema_for(rt, crd_of(rt))
        if schema is not None:
            defs.update(_closure({definition_name(rt): schema}, all_defs))
    text = json.dumps(defs).replace(REF, V2_REF)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION}, "paths": {},
            "definitions": json.loads(text)}


def unknown_fields(obj: Any, schema: dict | None, defs: dict[str, dict], path: str = "") -> list[str]:
    """Fields of ``obj`` the schema does not declare (what ``fieldValidation=Strict`` refuses)."""
    if not isinstance(schema, dict):
        return []
    while "$ref" in schema or ("allOf" in schema and len(schema["allOf"]) == 1 and "properties" not in schema):
        ref = schema.get("$ref") or schema["allOf"][0].get("$ref")
        if not ref:
            break
        schema = defs.get(ref[len(REF):], {})
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string"):
        return []
    found: list[str] = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            sub = f"{path}.{key}" if path else key
            if props is not None and key in props:
                found += unknown_fields(value, props[key], defs, sub)
            elif isinstance(extra, dict):
                found += unknown_fields(value, extra, defs, sub)
            elif props is not None and extra is not True and not (path == "" and key in ("apiVersion", "kind")):
                found.append(sub)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            found += unknown_fields(item, schema["items"], defs, f"{path}[{i}]")
    return found


def check_fields(rt: ResourceType, crd: dict | None, obj: Any, directive: str | None) -> list[str]:
    """Apply ``fieldValidation``: Strict raises 400, Warn returns warnings, Ignore nothing.

    Without the parameter the API server warns; the lab skips the check then, so clients that never
    ask (the runbooks' own) do not pay for loading the schemas. kubectl always sends Strict.
    """
    if directive is None:
        return []
    if directive not in ("Strict", "Warn", "Ignore"):
        raise ApiError(400, "BadRequest", f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{directive}"')
    if directive == "Ignore" or not isinstance(obj, dict):
        return []
    schema, defs = schema_for(rt, crd)
    unknown = unknown_fields(obj, schema, defs)
    if not unknown:
        return []
    if directive == "Strict":
        fields = ", ".join(f'unknown field "{f}"' for f in unknown)
        raise ApiError(400, "BadRequest", f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                          f"strict decoding error: {fields}")
    return [f'unknown field "{f}"' for f in unknown]


def served_types(types: list[ResourceType]) -> list[ResourceType]:
    return [rt for rt in types if rt in BUILTIN_TYPES or rt.group]


def serve(store: Any, path: str, accept: str) -> tuple[int, str, bytes]:
    """Answer ``/openapi/v2``, ``/openapi/v3`` and ``/openapi/v3/<group-version>``: (code, type, body)."""
    types = served_types(list(store.types.values()))
    gvs = sorted({(rt.group, rt.version) for rt in types})

    def doc(group: str, version: str) -> dict:
        return group_version_doc(group, version, [rt for rt in types if (rt.group, rt.version) == (group, version)],
                                 store.crd_of)

    parts = [p for p in path.split("/") if p]
    if parts == ["openapi", "v2"]:
        if "json" not in accept and "*/*" not in accept and accept:
            return 406, "application/json", json.dumps(ApiError(
                406, "NotAcceptable", "only application/json is served for /openapi/v2").status()).encode()
        return 200, "application/json", json.dumps(v2_document(types, store.crd_of)).encode()
    if parts == ["openapi", "v3"]:
        return 200, "application/json", json.dumps(v3_root(gvs, lambda g, v: doc_hash(doc(g, v)))).encode()
    if parts[:2] == ["openapi", "v3"]:
        rest = parts[2:]
        key = ("", rest[1]) if rest[:1] == ["api"] and len(rest) == 2 else (
            (rest[1], rest[2]) if rest[:1] == ["apis"] and len(rest) == 3 else None)
        if key in gvs:
            return 200, "application/json", json.dumps(doc(*key)).encode()
    return 404, "application/json", json.dumps(ApiError(404, "NotFound", "the server could not find the requested resource").status()).encode()
