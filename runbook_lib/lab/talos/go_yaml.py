"""A go-yaml style emitter: the YAML talosctl and machined print (4-space maps, quoting as go-yaml does)."""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False  # no typing import: the lab's talosctl imports this module at every call
if TYPE_CHECKING:
    from typing import Any


class Raw(str):
    """A scalar emitted as-is (cosi writes metadata values as plain nodes, so ``id: 0`` is unquoted)."""


class _Empty:
    """A mapping value that prints nothing after the colon (cosi's empty labels/owner)."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()


_YAML_WORDS = frozenset({"true", "false", "null", "~", "yes", "no", "on", "off", "y", "n", ""})


_YAML_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)|0o[0-7]+|0x[0-9a-fA-F]+|0b[01]+")


_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


_YAML_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


_YAML_TIMESTAMP = re.compile(r"\d{4}-\d\d?-\d\d?([Tt ]|$)")


def _resolves_non_string(s: str) -> bool:
    """Would a plain ``s`` read back as something other than a string (go-yaml v3 resolve + isOldBool)?"""
    return (s.lower() in _YAML_WORDS or bool(_YAML_INT.fullmatch(s)) or bool(_YAML_FLOAT.fullmatch(s))
            or bool(_YAML_BASE60.fullmatch(s)) or bool(_YAML_TIMESTAMP.match(s)))


def _plain_allowed(s: str) -> bool:
    """libyaml ``analyze_scalar`` for block context, reduced to the cases our strings hit."""
    if not s or s != s.strip() or s.startswith(("---", "...")):
        return False
    if s[0] in "!&*|>'\"%@`#,[]{}":
        return False
    if s[0] in "-?:" and (len(s) == 1 or s[1] == " "):
        return False
    if ": " in s or " #" in s or s.endswith(":") or "\t" in s:
        return False
    return all(c.isprintable() for c in s)


def yaml_scalar(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    s = str(value)
    if _resolves_non_string(s):
        return json.dumps(s)
    if _plain_allowed(s):
        return s
    if all(c.isprintable() for c in s):
        return "'" + s.replace("'", "''") + "'"
    return json.dumps(s)


def _child_indent(indent: int) -> int:
    """go-yaml v3 ``increase_indent``: everything but the first level in a sequence item aligns to 4."""
    return 4 * ((indent + 4) // 4)


def _emit_value(head: str, value: Any, indent: int, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append(head + " {}")
        else:
            out.append(head)
            _emit_mapping(value, _child_indent(indent), out)
    elif isinstance(value, list | tuple):
        if not value:
            out.append(head + " []")
        else:
            out.append(head)
            _emit_sequence(list(value), _child_indent(indent), out)
    elif value is EMPTY:
        out.append(head)
    elif isinstance(value, str) and not isinstance(value, Raw) and "\n" in value:
        trailing = len(value) - len(value.rstrip("\n"))
        chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
        out.append(f"{head} |{chomp}")
        pad = " " * _child_indent(indent)
        body = value[:-trailing] if trailing else value
        for line in body.split("\n"):
            out.append(pad + line if line else "")
        out.extend("" for _ in range(max(trailing - 1, 0)))
    else:
        out.append(f"{head} {yaml_scalar(value)}")


def _emit_mapping(mapping: dict, indent: int, out: list[str], first_prefix: str | None = None) -> None:
    for i, (key, value) in enumerate(mapping.items()):
        prefix = first_prefix if (i == 0 and first_prefix is not None) else " " * indent
        _emit_value(f"{prefix}{yaml_scalar(str(key))}:", value, indent, out)


def _emit_sequence(items: list, indent: int, out: list[str]) -> None:
    for item in items:
        if isinstance(item, dict) and item:
            _emit_mapping(item, indent + 2, out, first_prefix=" " * indent + "- ")
        else:
            _emit_value(" " * indent + "-", item, indent, out)


def go_yaml_dump(value: dict) -> str:
    """Marshal a mapping like go-yaml v3 with a 4-space indent (Talos config and talosctl output)."""
    out: list[str] = []
    _emit_mapping(value, 0, out)
    return "\n".join(out) + "\n"


def dump_config(docs: list[dict]) -> str:
    """A multi-document machine configuration as Talos writes it (``---`` between documents)."""
    return "---\n".join(go_yaml_dump(d) for d in docs)
