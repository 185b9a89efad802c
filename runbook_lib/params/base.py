"""The strict base of every parameter model: unknown keys are errors, instances are read-only."""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class StrictModel(BaseModel):
    """Base for every level: unknown keys are errors, instances are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Lax pydantic reads ``true`` as 1 and ``1`` as true; a typo must not become a timeout of 1 s."""
        kinds = _scalar_kinds(cls.model_fields[info.field_name].annotation) if info.field_name else set()
        if isinstance(value, bool) and kinds and "bool" not in kinds and kinds & {"int", "float"}:
            raise ValueError(f"expected a number, got {str(value).lower()}")
        if isinstance(value, int | float) and not isinstance(value, bool) and kinds == {"bool"}:
            raise ValueError(f"expected true or false, got the number {value}")
        return value


def _scalar_kinds(annotation: Any) -> set[str]:
    """``float | None`` -> ``{"float"}``: the scalar types a field accepts (models and strings aside)."""
    if annotation in (bool, int, float):
        return {annotation.__name__}
    if get_origin(annotation) is Annotated:
        return _scalar_kinds(get_args(annotation)[0])
    if get_origin(annotation) is not None and not is_model(annotation) and get_origin(annotation) not in (list, dict):
        kinds: set[str] = set()
        for arg in get_args(annotation):
            kinds |= _scalar_kinds(arg)
        return kinds
    return set()


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
