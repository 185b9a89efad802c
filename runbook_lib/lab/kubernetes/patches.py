"""Patches as the API server applies them: JSON merge patch (RFC 7386), strategic merge, JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from .types import ApiError


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(items: list) -> str | None:
    for key in ("name", "type", "containerPort", "mountPath", "devicePath", "ip"):
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    """A strategic-merge subset: lists of named objects merge by their key, ``$patch: delete`` removes."""
    if isinstance(patch, dict) and isinstance(target, dict):
        result = copy.deepcopy(target)
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value)
        return result
    if isinstance(patch, list) and isinstance(target, list):
        mkey = _merge_key(patch) if patch else None
        if mkey and (not target or _merge_key(target) == mkey):
            result = copy.deepcopy(target)
            for item in patch:
                idx = next((i for i, t in enumerate(result) if t.get(mkey) == item.get(mkey)), None)
                if item.get("$patch") == "delete":
                    if idx is not None:
                        result.pop(idx)
                    continue
                if idx is None:
                    result.append(copy.deepcopy(item))
                else:
                    result[idx] = strategic_merge(result[idx], item)
            return result
    return copy.deepcopy(patch)


def json_patch(doc: Any, ops: list[dict]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, test, copy, move)."""
    doc = copy.deepcopy(doc)

    def parts(path: str) -> list[str]:
        out = []
        for p in path.split("/")[1:]:
            for a, b in _JSON_POINTER_ESC:
                p = p.replace(a, b)
            out.append(p)
        return out

    def walk(path: str):
        ps = parts(path)
        cur = doc
        for p in ps[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, ps[-1]

    def get(path: str):
        parent, last = walk(path)
        return parent[int(last)] if isinstance(parent, list) else parent[last]

    try:
        for op in ops:
            kind, path = op["op"], op["path"]
            if kind in ("add", "replace"):
                parent, last = walk(path)
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif kind == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise KeyError(path)
                    parent[last] = op["value"]
            elif kind == "remove":
                parent, last = walk(path)
                del parent[int(last) if isinstance(parent, list) else last]
            elif kind == "test":
                if get(path) != op["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: test failed at {path}")
            elif kind in ("copy", "move"):
                value = copy.deepcopy(get(op["from"]))
                if kind == "move":
                    parent, last = walk(op["from"])
                    del parent[int(last) if isinstance(parent, list) else last]
                parent, last = walk(path)
                if isinstance(parent, list):
                    parent.insert(len(parent) if last == "-" else int(last), value)
                else:
                    parent[last] = value
            else:
                raise ApiError(400, "BadRequest", f"unknown json patch op {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from exc
    return doc


_JSON_POINTER_ESC = (("~1", "/"), ("~0", "~"))
