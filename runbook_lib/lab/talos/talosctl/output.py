"""Output formatting of the lab's talosctl: tables through a tabwriter, -o json, -o yaml, jsonpath."""

from __future__ import annotations

import json
import re

from ..go_yaml import EMPTY, Raw, go_yaml_dump
from .commands import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _type_display(rtype: str) -> str:
    plural = rtype.split(".", 1)[0]
    return plural[:-2] if plural.endswith("ses") else plural[:-1] if plural.endswith("s") else plural


def _jsonpath(obj: Any, expr: str) -> Any:
    path = expr.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    for part in [p for p in path.split(".") if p]:
        if isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def tabwrite(rows: list[list[str]], padding: int = 3) -> str:
    """Go ``text/tabwriter`` (minwidth 0, padding 3, spaces): cells padded, the last cell of a line is not."""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, c in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(c) + padding)
    out = []
    for r in rows:
        out.append("".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1])) + (r[-1] if r else ""))
    return "\n".join(out) + "\n"


def _yaml_int(text: str) -> Any:
    """How go-yaml reads back a plain scalar written unquoted (cosi metadata values)."""
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def resource_json(node: str, res: dict) -> dict:
    """The ``-o json`` object: metadata re-typed like talosctl's YAML→map→JSON round trip (notes §2.1)."""
    md = dict(res["metadata"])
    md["id"] = _yaml_int(str(md["id"]))
    md["owner"] = md.get("owner") or None
    if "labels" in md:
        md["labels"] = {k: (None if v == "" else _yaml_int(v)) for k, v in md["labels"].items()}
    return {"metadata": md, "node": node, "spec": res["spec"]}


def format_json(obj: Any) -> str:
    """Go ``json.Encoder`` with ``SetIndent("", "    ")``: sorted keys, HTML-escaped, trailing newline."""
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def resource_yaml(node: str, res: dict) -> str:
    md = res["metadata"]
    meta: dict[str, Any] = {k: Raw(str(md[k])) for k in ("namespace", "type", "id", "version")}
    meta["owner"] = Raw(md["owner"]) if md.get("owner") else EMPTY
    meta.update({k: Raw(str(md[k])) for k in ("phase", "created", "updated")})
    if md.get("labels"):
        meta["labels"] = {k: (EMPTY if v == "" else Raw(v)) for k, v in md["labels"].items()}
    return f"node: {node}\n" + go_yaml_dump({"metadata": meta, "spec": res["spec"]})


def format_resources(output: str, definition: dict, items: list[tuple[str, dict]]) -> str:
    """Render (node, resource) pairs as talosctl ``get -o`` does."""
    if output == "json":
        return "".join(format_json(resource_json(node, res)) for node, res in items)
    if output == "yaml":
        return "---\n".join(resource_yaml(node, res) for node, res in items)
    if output.startswith("jsonpath="):
        expr = output.split("=", 1)[1]
        return "".join(_cell(_jsonpath(resource_json(node, res), expr)) + "\n" for node, res in items)
    if output != "table":
        raise CLIError(f"output writer {output!r} is not supported")
    cols = definition.get("columns") or []
    header = ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", *[name.upper() for name, _ in cols]]
    rows = [header]
    for node, res in items:
        md = res["metadata"]
        rows.append([node, md["namespace"], _type_display(md["type"]), str(md["id"]), str(md["version"]),
                     *[_cell(_jsonpath(res["spec"], path)) for _, path in cols]])
    return tabwrite(rows)
