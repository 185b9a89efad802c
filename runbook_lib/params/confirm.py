"""The ``confirm`` list: approvals written as ``"<action> <node>"`` entries, split and checked one by one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

from ..approvals import ACTIONS as _APPROVAL_ACTIONS
from ..approvals import RENAMED, renamed_message
from .nodes import DEFAULT_NODES

ACTIONS: tuple[str, ...] = tuple(_APPROVAL_ACTIONS)


def confirm_list(value: Any) -> Any:
    """``papermill -p confirm "reset cp-1, wipe cp-1"`` passes one string: split it."""
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]
    return value


def _confirm_entry(value: str) -> str:
    parts = value.split()
    if len(parts) != 2:
        raise ValueError(
            f"{value!r} must be '<action> <node>' (or 'benchmark <storage-class>'), "
            f"for example 'reset {DEFAULT_NODES[0]['name']}'"
        )
    action, node = parts
    if action in RENAMED:
        raise ValueError(renamed_message(action, node))
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; approvals are for {', '.join(ACTIONS)}")
    return f"{action} {node}"


Approval = Annotated[str, AfterValidator(_confirm_entry)]
