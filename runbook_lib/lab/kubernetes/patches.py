"""Patches as the API server applies them: JSON merge patch (RFC 7386), strategic merge, JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from .. import json_patch as json_patch_rules
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
    """RFC 6902 JSON patch, as the API server applies it (a failure is a 422)."""
    try:
        return json_patch_rules.apply(doc, ops)
    except json_patch_rules.PatchFailed as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from None
