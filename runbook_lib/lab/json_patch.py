"""RFC 6902 JSON patch as Talos and the Kubernetes API server apply it: both use evanphx/json-patch's ``Apply``.

No missing parent is created, ``replace`` and ``remove`` need the member, ``test`` compares, and a patch that
fails leaves the document as it was. The operations are the ``jsonpatch`` library's; the failure messages read as
evanphx/json-patch's (``patch.go``), which ``talosctl`` and ``kubectl`` print.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")


class PatchFailed(ValueError):
    """The patch does not apply to the document."""


def apply(doc: Any, ops: Any) -> Any:
    """``doc`` with ``ops`` applied, one operation after the other; ``doc`` itself is never changed."""
    if not isinstance(ops, list):
        raise PatchFailed("a JSON patch is a list of operations")
    result = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in OPERATIONS:
            raise PatchFailed(f"Unexpected kind: {kind}")
        if not isinstance(op.get("path"), str) or (kind in ("move", "copy") and not isinstance(op.get("from"), str)):
            raise PatchFailed(f"{kind} operation needs a string path" + (" and from" if kind in ("move", "copy") else ""))
        try:
            result = jsonpatch.apply_patch(result, [op], in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise PatchFailed(f"testing value {op['path']} failed: test failed") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError, TypeError):
            where = f"from path: {op['from']}" if kind in ("move", "copy") else f"path: {op['path']}"
            raise PatchFailed(f"{kind} operation does not apply: doc is missing {where}") from None
    return result
