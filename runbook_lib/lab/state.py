"""Saving the lab's controller state: plain dataclasses to JSON-able dicts and back."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Self


class SavedState:
    """Mixin for a dataclass of JSON-able fields; keys a saved lab holds but the class no longer has are dropped."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]  # mixed into dataclasses only

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in (data or {}).items() if k in fields})
