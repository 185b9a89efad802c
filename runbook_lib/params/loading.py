"""Reading a parameter file or notebook namespace: strict YAML, size limit, and validation into :class:`Params`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ParamsError
from .checks import cross_field_problems
from .messages import describe_input, problem_from_error
from .model import PARAMETER_KEYS, Params
from .problems import render

#: A parameter file is a page of YAML; anything this large is a mistake (and would parse for minutes).
MAX_PARAMS_FILE_BYTES = 4 * 1024 * 1024


def parse_params(data: Any, source: str | None = None) -> Params:
    """Validate a parameter mapping; :class:`ParamsError` lists every problem with its path."""
    if not isinstance(data, Mapping):
        raise ParamsError(
            [f"top level: expected a mapping of parameter names to values, got {describe_input(data)}"],
            source,
        )
    bad_keys = [key for key in data if not isinstance(key, str)]
    if bad_keys:
        raise ParamsError([f"top level: keys must be strings, got {key!r}" for key in bad_keys], source)
    try:
        return Params.model_validate(dict(data))
    except ValidationError as exc:
        problems = [problem_from_error(err) for err in exc.errors(include_url=False)]
        problems += cross_field_problems(data)
        raise ParamsError(render(problems, PARAMETER_KEYS), source) from None
    except ParamsError as exc:
        raise ParamsError(exc.problems, source) from None


def params_from_namespace(namespace: Mapping[str, Any], source: str | None = None) -> Params:
    """Validate the parameter variables of a notebook namespace (``globals()`` after papermill).

    Only :data:`PARAMETER_KEYS` are read, so the notebook's other variables do not count as unknown keys.
    """
    return parse_params({key: namespace[key] for key in PARAMETER_KEYS if key in namespace}, source)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate and non-string mapping keys (a repeated key silently wins otherwise)."""


def _construct_strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is not a string (quote it)", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_strict_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = (
                f"{exc.context}: {problem}" if exc.context_mark is None else f"{problem} ({exc.context})"
            )
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {exc}"


def read_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a parameter file into a mapping, rejecting bad YAML, duplicate keys and non-mappings.

    Does not validate the values (see :func:`load_params`); the CLI uses this to
    hand the same mapping to papermill.
    """
    source = os.fspath(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_PARAMS_FILE_BYTES:
            raise ParamsError([f"top level: the file is {size / 2**20:.1f} MiB; a parameter file may be at most "
                               f"{MAX_PARAMS_FILE_BYTES // 2**20} MiB (is this the right file?)"], source)
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError([f"cannot read the file: {exc.strerror or exc}"], source) from None
    except UnicodeDecodeError as exc:
        raise ParamsError(
            [f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"], source
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ParamsError([_yaml_problem(exc)], source) from None
    if data is None:
        raise ParamsError(
            ["top level: the file is empty; expected a mapping of parameter names to values"], source
        )
    if not isinstance(data, dict):
        raise ParamsError(
            [f"top level: expected a mapping of parameter names to values, got {describe_input(data)}"],
            source,
        )
    return data


def load_params(path: str | os.PathLike[str]) -> Params:
    """Read and validate a parameter file; :class:`ParamsError` lists every problem."""
    return parse_params(read_params_file(path), source=os.fspath(path))
