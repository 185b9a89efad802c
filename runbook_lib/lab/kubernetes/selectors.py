"""Label and field selectors, as the API server parses and matches them."""

from __future__ import annotations

import re
from typing import Any

from .types import ApiError

_LABEL_REQ = re.compile(
    r"\s*(?P<key>[A-Za-z0-9./_-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<val>[A-Za-z0-9._-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<vals>[^)]*)\))?\s*$"
)


def _split_selector(selector: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set-based requirements)."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_matcher(selector: str | None):
    """Compile a label selector (equality- and set-based, ``key``, ``!key``)."""
    if not selector:
        return lambda labels: True
    reqs = []
    for raw in _split_selector(selector):
        raw = raw.strip()
        if raw.startswith("!"):
            key = raw[1:].strip()
            reqs.append(lambda labels, k=key: k not in labels)
            continue
        m = _LABEL_REQ.match(raw)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: invalid label selector {raw!r}")
        key, op = m["key"], m["op"] or m["setop"]
        if op is None:
            reqs.append(lambda labels, k=key: k in labels)
        elif op in ("=", "=="):
            reqs.append(lambda labels, k=key, v=m["val"]: labels.get(k) == v)
        elif op == "!=":
            reqs.append(lambda labels, k=key, v=m["val"]: labels.get(k) != v)
        else:
            values = {v.strip() for v in m["vals"].split(",") if v.strip()}
            if op == "in":
                reqs.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                reqs.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
    return lambda labels: all(r(labels) for r in reqs)


def _field_value(obj: dict, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


def field_matcher(selector: str | None):
    """Compile a field selector (``a.b=c``, ``a.b==c``, ``a.b!=c``, comma-separated)."""
    if not selector:
        return lambda obj: True
    reqs = []
    for raw in selector.split(","):
        m = re.match(r"\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", raw)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector {raw!r}")
        path, op, value = m.groups()
        if op == "!=":
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) != v)
        else:
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) == v)
    return lambda obj: all(r(obj) for r in reqs)
