"""An executed notebook's file text, byte for byte as ``nbformat.writes`` makes it, re-encoding only changed cells.

papermill saves a notebook at each code cell's start and end, and nbformat encodes the whole notebook each
time with the standard library's pure-Python JSON encoder (the one that indents), every figure's plotly
JSON included. :class:`NotebookEncoder` keeps each cell's text from the last save and encodes again only a
cell whose content changed; the C encoder's compact text of a cell, a fraction of the cost, tells which.
"""

from __future__ import annotations

import json

# nbformat.v4.nbjson.JSONWriter's settings
_PRETTY = {"indent": 1, "sort_keys": True, "separators": (",", ": "), "ensure_ascii": False}
_TRANSIENT_METADATA = ("orig_nbformat", "orig_nbformat_minor", "signature")  # nbformat.v4.rwbase.strip_transient


def _bytes_as_ascii(obj: object) -> str:
    """nbformat's BytesEncoder: base64 bytes are written as text."""
    if isinstance(obj, bytes):
        return obj.decode("ascii")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class NotebookEncoder:
    """One notebook's successive saves: :meth:`encode` is ``nbformat.writes`` without its validation."""

    def __init__(self) -> None:
        self._cells: dict[int, tuple[str, str]] = {}  # cell index -> (compact text, text in the file)
        self.encoded = 0  # cells encoded for the file so far (the others came from the last save)

    def encode(self, nb: dict) -> str:
        top = {k: v for k, v in nb.items() if k != "cells"}
        top["metadata"] = {k: v for k, v in (nb.get("metadata") or {}).items() if k not in _TRANSIENT_METADATA}
        text = json.dumps({"cells": [], **top}, default=_bytes_as_ascii, **_PRETTY)
        cells = nb.get("cells") or []
        if not cells:
            return text
        head = '{\n "cells": []'
        assert text.startswith(head)  # sort_keys puts "cells" first
        body = ",\n".join(self._cell(i, cell) for i, cell in enumerate(cells))
        return '{\n "cells": [\n' + body + "\n ]" + text[len(head):]

    def _cell(self, index: int, cell: dict) -> str:
        compact = json.dumps(cell, sort_keys=True, ensure_ascii=False, default=_bytes_as_ascii)
        known = self._cells.get(index)
        if known is not None and known[0] == compact:
            return known[1]
        from nbformat import from_dict
        from nbformat.v4.rwbase import split_lines

        (on_disk,) = split_lines(from_dict({"cells": [cell]})).cells  # a copy: the notebook in memory stays as is
        on_disk.get("metadata", {}).pop("trusted", None)
        pretty = json.dumps(on_disk, default=_bytes_as_ascii, **_PRETTY)
        text = "\n".join("  " + line for line in pretty.split("\n"))  # the cells list is two levels down
        self._cells[index] = (compact, text)
        self.encoded += 1
        return text
