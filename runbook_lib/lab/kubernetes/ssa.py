"""Field ownership for server-side apply: ``metadata.managedFields`` and apply conflicts.

As in structured-merge-diff: every write records which manager set which fields (FieldsV1:
``f:<field>`` for struct fields, ``k:{"name":...}`` for list items keyed by their merge key);
an Apply that would change a field another manager owns fails with 409 Conflict naming the
manager and the field, unless it is forced (``force=true``), which takes the field over.
Simplification: an Update owns the fields its body names (not only those whose value changed),
and fields an applier stops sending are not removed from the object.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import yaml

from .types import ApiError, ResourceType

_KEYS = ("name", "containerPort", "mountPath", "devicePath", "type", "ip", "key")
_SYSTEM_META = {"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "managedFields",
                "selfLink", "namespace", "name"}
Path = tuple[str, ...]


def _list_key(items: list) -> str | None:
    return next((k for k in _KEYS if items and all(isinstance(i, dict) and k in i for i in items)), None)


def leaves(obj: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Leaf fields of an object by FieldsV1 path (keyed list items are addressed by their key)."""
    out: dict[Path, Any] = {}
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            if not prefix and k in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("f:metadata",) and k in _SYSTEM_META:
                continue
            out.update(leaves(v, (*prefix, f"f:{k}")))
    elif isinstance(obj, list) and obj and (key := _list_key(obj)):
        for item in obj:
            ident = f"k:{json.dumps({key: item[key]}, separators=(',', ':'))}"
            out.update(leaves(item, (*prefix, ident)))
    elif prefix:
        out[prefix] = obj
    return out


def to_fields(paths: set[Path] | list[Path]) -> dict:
    """A FieldsV1 tree: ``{}`` for an owned field, ``"."`` marks an owned keyed list item."""
    tree: dict = {}
    for path in paths:
        node = tree
        for i, part in enumerate(path):
            node = node.setdefault(part, {})
            if part.startswith("k:") and i < len(path) - 1:
                node.setdefault(".", {})
    return tree


def from_fields(tree: dict, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, v in tree.items():
        if k == ".":
            continue
        if isinstance(v, dict) and any(key != "." for key in v):
            out |= from_fields(v, (*prefix, k))
        else:
            out.add((*prefix, k))
    return out


def _dotted(path: Path) -> str:
    parts = []
    for p in path:
        if p.startswith("f:"):
            parts.append("." + p[2:])
        else:
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(p[2:]).items()) + "]")
    return "".join(parts)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(current: dict | None) -> list[dict]:
    return [dict(e) for e in ((current or {}).get("metadata") or {}).get("managedFields") or []]


def _set(entries: list[dict], manager: str, operation: str, api_version: str, owned: set[Path], sub: str | None) -> list[dict]:
    kept = [e for e in entries if (e.get("manager"), e.get("operation"), e.get("subresource")) != (manager, operation, sub)]
    previous = next((e for e in entries if (e.get("manager"), e.get("operation"), e.get("subresource")) == (manager, operation, sub)), None)
    if operation == "Update" and previous:
        owned = owned | from_fields(previous.get("fieldsV1") or {})
    if not owned:
        return kept
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": _now(),
             "fieldsType": "FieldsV1", "fieldsV1": to_fields(owned)}
    if sub:
        entry["subresource"] = sub
    if previous and previous.get("fieldsV1") == entry["fieldsV1"]:
        entry["time"] = previous.get("time", entry["time"])  # an unchanged field set is no change
    return [*kept, entry]


def _disown(entries: list[dict], manager: str, paths: set[Path]) -> list[dict]:
    out = []
    for e in entries:
        if e.get("manager") == manager:
            out.append(e)
            continue
        mine = from_fields(e.get("fieldsV1") or {})
        left = {p for p in mine if not any(p[:len(q)] == q or q[:len(p)] == p for q in paths)}
        if left:
            out.append({**e, "fieldsV1": to_fields(left)})
    return out


def managed_after_apply(rt: ResourceType, current: dict | None, applied: dict, manager: str | None, force: bool,
                        sub: str | None = None) -> list[dict]:
    """managedFields after ``manager`` applies ``applied``; 409 on fields owned by others (unless forced)."""
    if not manager:
        raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                                       "is required for apply patch")
    entries = _entries(current)
    sent = leaves(applied)
    have = leaves(current) if current else {}
    changed = {p for p, v in sent.items() if p in have and have[p] != v}
    conflicts = []
    for e in entries:
        if e.get("manager") == manager:
            continue
        owned = from_fields(e.get("fieldsV1") or {})
        for p in sorted(changed & owned):
            conflicts.append((e.get("manager"), p))
    if conflicts and not force:
        raise ApiError(409, "Conflict", _conflict_message(rt, conflicts, entries), kind=rt.plural,
                       name=(applied.get("metadata") or {}).get("name", ""), group=rt.group)
    entries = _disown(entries, manager, {p for _m, p in conflicts})
    return _set(entries, manager, "Apply", rt.api_version, set(sent), sub)


def _conflict_message(rt: ResourceType, conflicts: list[tuple[str, Path]], entries: list[dict]) -> str:
    """structured-merge-diff's wording: ``Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.x``."""
    versions = {e.get("manager"): e.get("apiVersion", rt.api_version) for e in entries}
    if len(conflicts) == 1:
        m, p = conflicts[0]
        return f'Apply failed with 1 conflict: conflict with "{m}" using {versions.get(m)}: {_dotted(p)}'
    by: dict[str, list[str]] = {}
    for m, p in conflicts:
        by.setdefault(m, []).append(_dotted(p))
    parts = [f'conflicts with "{m}" using {versions.get(m)}:\n' + "\n".join(f"- {f}" for f in fs) for m, fs in by.items()]
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(parts)


def stamp(rt: ResourceType, method: str, content_type: str, current: dict | None, body: bytes, manager: str,
          force: bool, sub: str | None) -> bytes:
    """The request body with the managedFields the write leaves (conflicting applies raise 409)."""
    ctype = content_type.split(";")[0].strip()
    try:
        if ctype == "application/apply-patch+yaml":
            sent = yaml.safe_load(body.decode() or "{}")
        else:
            sent = json.loads(body.decode() or "null")
    except (ValueError, yaml.YAMLError, UnicodeDecodeError):
        return body  # the store answers the decoding error
    if method == "PATCH" and ctype == "application/json-patch+json":
        if not isinstance(sent, list) or current is None:
            return body
        managed = managed_after_update(rt, current, None, manager, sub)
        return json.dumps([*sent, {"op": "add", "path": "/metadata/managedFields", "value": managed}]).encode()
    if not isinstance(sent, dict):
        return body
    if ctype == "application/apply-patch+yaml":
        managed = managed_after_apply(rt, current, sent, manager, force, sub)
    else:
        managed = managed_after_update(rt, current, sent, manager, sub)
    sent.setdefault("metadata", {})
    if isinstance(sent["metadata"], dict):
        sent["metadata"]["managedFields"] = managed
    return json.dumps(sent).encode()


def managed_after_update(rt: ResourceType, current: dict | None, body: Any, manager: str, sub: str | None = None) -> list[dict]:
    """managedFields after a create, update or non-apply patch by ``manager`` (it takes over what it sets)."""
    entries = _entries(current)
    sent = set(leaves(body)) if isinstance(body, dict) else set()
    entries = _disown(entries, manager, sent)
    return _set(entries, manager, "Update", rt.api_version, sent, sub)


def manager_of(query_manager: str | None, user_agent: str) -> str:
    """The field manager: the request's ``fieldManager``, else the user agent's first word (as the API server)."""
    if query_manager:
        return query_manager
    return (user_agent.split("/", 1)[0] or "unknown")[:128]
