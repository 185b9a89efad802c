"""Pydantic's validation errors as the operator's messages: plain words, a suggestion, never a secret value."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from .base import is_model
from .model import Params
from .problems import Loc, Problem
from .secrets import is_secret_key


class _Hidden:
    """Stands in for a secret value in messages: only its kind is shown."""

    def __init__(self, value: Any) -> None:
        self.kind = _kind_of(value)


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def describe_input(value: Any) -> str:
    """Say what was given; short values are quoted so the operator can find them in the file."""
    if isinstance(value, _Hidden):
        return f"{value.kind} (value hidden)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    return _kind_of(value)


def _number(value: Any) -> str:
    """``0.0`` -> ``0``: bounds read like the operator wrote them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_secret_loc(loc: Loc) -> bool:
    return bool(loc) and (loc[0] == "secrets" or any(isinstance(p, str) and is_secret_key(p) for p in loc))


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose fields apply at ``loc`` (for "did you mean" suggestions)."""
    model: type[BaseModel] = Params
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        while get_origin(annotation) is not None and not is_model(annotation):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return None
            annotation = args[0]
        if not is_model(annotation):
            return None
        model = annotation
    return model


def _unknown_key_message(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    key = loc[-1]
    if model is not None and isinstance(key, str):
        close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
        if close:
            return f"unknown key (typo? did you mean {close[0]!r}?)"
    return "unknown key (typo?)"


_TYPE_MESSAGES: Mapping[str, Callable[[Any, Mapping[str, Any]], str]] = {
    "missing": lambda v, c: "required",
    "invalid_key": lambda v, c: "keys must be strings",
    "string_type": lambda v, c: f"expected a string, got {describe_input(v)}",
    "bool_type": lambda v, c: f"expected true or false, got {describe_input(v)}",
    "bool_parsing": lambda v, c: f"expected true or false, got {describe_input(v)}",
    "int_type": lambda v, c: f"expected a whole number, got {describe_input(v)}",
    "int_parsing": lambda v, c: f"expected a whole number, got {describe_input(v)}",
    "int_from_float": lambda v, c: f"expected a whole number, got {describe_input(v)}",
    "float_type": lambda v, c: f"expected a number, got {describe_input(v)}",
    "float_parsing": lambda v, c: f"expected a number, got {describe_input(v)}",
    "finite_number": lambda v, c: "expected a finite number",
    "list_type": lambda v, c: f"expected a list, got {describe_input(v)}",
    "dict_type": lambda v, c: f"expected a mapping (key: value), got {describe_input(v)}",
    "model_type": lambda v, c: f"expected a mapping (key: value), got {describe_input(v)}",
    "model_attributes_type": lambda v, c: f"expected a mapping (key: value), got {describe_input(v)}",
    "literal_error": lambda v, c: f"must be one of {c.get('expected')}, got {describe_input(v)}",
    "greater_than": lambda v, c: f"must be greater than {_number(c.get('gt'))}",
    "greater_than_equal": lambda v, c: f"must be at least {_number(c.get('ge'))}",
    "less_than": lambda v, c: f"must be less than {_number(c.get('lt'))}",
    "less_than_equal": lambda v, c: f"must be at most {_number(c.get('le'))}",
    "too_short": lambda v, c: f"needs at least {c.get('min_length')} entry",
    "too_long": lambda v, c: f"takes at most {c.get('max_length')} entries",
}


def problem_from_error(error: Mapping[str, Any]) -> Problem:
    """One pydantic error -> ``(loc, friendly message)``, never echoing a secret value."""
    loc: Loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        if kind == "string_type":
            return loc, "keys must be strings"
    if _is_secret_loc(loc):
        value = _Hidden(value)
    if kind == "extra_forbidden":
        return loc, _unknown_key_message(loc)
    if kind in ("value_error", "assertion_error"):
        return loc, str(ctx.get("error", error.get("msg", "invalid value")))
    render = _TYPE_MESSAGES.get(kind)
    return loc, render(value, ctx) if render else str(error.get("msg", "invalid value"))
