"""Wire models for tool output: pydantic types for what a tool sends, errors as ``ParseError`` with field paths.

A tool's decoded JSON (LINSTOR's REST views, ``fio --output-format=json``, ``helm status -o json``)
is validated by a model of the fields we read; whatever does not fit becomes one
:class:`~runbook_lib.errors.ParseError` naming the tool and the dotted path of the field
(``pools[1].free_capacity``, ``jobs[0].read.iops``), never a bare ``KeyError`` or pydantic's own error.
Fields we do not read are ignored, so a newer tool version with more fields still parses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, PlainValidator, TypeAdapter, ValidationError

from .errors import ParseError

T = TypeVar("T")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # Java longs (LINSTOR) and fio's 64-bit counters


class WireModel(BaseModel):
    """Base of every wire model: unknown fields ignored, nothing coerced (``"12"`` is not a number)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, populate_by_name=True)


def int64(value: Any) -> int:
    """A JSON integer (not a bool) that fits 64 bits; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value} does not fit a 64-bit integer")
    return value


def number(value: Any) -> float:
    """A finite JSON number (not a bool) as a float; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: no real measurement
        raise ValueError(f"{value} is out of range") from None
    if not math.isfinite(number):
        raise ValueError(f"{value} is not a finite number")
    return number


def _instance_of(kind: type, words: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError(f"expected {words}, got {value!r}")
        return value
    return check


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


Int64 = Annotated[int, PlainValidator(int64)]
Number = Annotated[float, PlainValidator(number)]
Text = Annotated[str, PlainValidator(_instance_of(str, "a string"))]
Name = Annotated[str, PlainValidator(_name)]
Flag = Annotated[bool, PlainValidator(_instance_of(bool, "true or false"))]


def field_path(root: str, loc: tuple[int | str, ...]) -> str:
    """``("pools", 1, "free_capacity")`` -> ``pools[1].free_capacity`` (``root`` names a bare top level)."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "(top level)"


def _problem(err: dict, path: str) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return f"{path} missing"
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected an object, got {type(err.get('input')).__name__}"
    elif kind == "list_type":
        message = f"expected a list, got {type(err.get('input')).__name__}"
    return f"{path}: {message}"


def parse(tool: str, kind: type[T] | Any, data: Any, *, root: str = "") -> T:
    """``data`` validated as ``kind`` (a model or any type pydantic takes); else :class:`ParseError`.

    The error names the first field that does not fit, as a path below ``root``.
    """
    try:
        return _adapter(kind).validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        path = field_path(root, tuple(first.get("loc", ())))
        raise ParseError(tool, _problem(first, path), field=path) from None
    except RecursionError:
        raise ParseError(tool, "nested too deeply to be tool output", field=root or "(top level)") from None


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(kind: Any) -> TypeAdapter:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]
