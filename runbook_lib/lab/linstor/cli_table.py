"""LINBIT/linstor-client's table (``linstor_client/table.py``) and size strings, as the lab's ``linstor`` prints them.

ASCII frames (``+--+``, ``|``, ``|==|``; the container has no UTF-8 locale), a header color per column for the
data rows, cells as text or (color, text), rows natsorted by the first column when the command groups by it,
multi-line cells with ``|---|`` separators between rows, and python-linstor's ``SizeCalc.approximate_size_string``.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

# linstor_client/consts.py Color: "\x1b[i;jm" for i in 0..1, j in 30..37, then NONE
DARKGREEN, DARKBLUE = "\x1b[0;32m", "\x1b[0;34m"
RED, GREEN, YELLOW = "\x1b[1;31m", "\x1b[1;32m", "\x1b[1;33m"
NONE = "\x1b[0m"

Cell = Any  # str, int, or (color, text) as Table.color_cell returns it


def size_string(size_kib: int) -> str:
    """python-linstor SizeCalc.approximate_size_string (C locale: no digit grouping)."""
    units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
    index, counter, magnitude = 0, 1, 1 << 10
    while counter < len(units):
        if size_kib >= magnitude:
            index = counter
        else:
            break
        magnitude <<= 10
        counter += 1
    magnitude >>= 10
    if size_kib % magnitude:
        return f"{size_kib / magnitude:3.2f} {units[index]}"
    return f"{size_kib // magnitude} {units[index]}"


def _natkey(value: Any) -> tuple:
    """natsort's default key: text and integer runs alternate, text first."""
    if isinstance(value, int):
        return ("", value)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", str(value))))


class Table:
    """linstor_client/table.py: columns (name, header color, text alignment), rows, group-by sort, frames."""

    def __init__(self, colors: bool) -> None:
        self.colors = colors
        self.header: list[tuple[str, str | None, str]] = []
        self.rows: list[list[Cell]] = []
        self.group = False

    def add_column(self, name: str, color: str | None = None, just: str = "<") -> None:
        self.header.append((name, color if self.colors else None, just))

    def color_cell(self, text: str, color: str | None) -> Cell:
        return (color, text) if self.colors and color else text

    def add_row(self, row: list[Cell]) -> None:
        self.rows.append(row)

    def show(self) -> str:
        overrides = [[c[0] if isinstance(c, tuple) else None for c in r] for r in self.rows]
        table = [[c[1] if isinstance(c, tuple) else c for c in r] for r in self.rows]
        if self.group and table:
            for r in table:
                with contextlib.suppress(ValueError):
                    r[0] = int(r[0])
            order = sorted(range(len(table)), key=lambda i: _natkey(table[i][0]))
            table, overrides = [table[i] for i in order], [overrides[i] for i in order]
        names = [h[0] for h in self.header]
        cells = [[h.replace("_", " ") for h in names]] + table
        overrides.insert(0, [None] * len(names))
        widths = [max(max((len(line) for line in str(r[i]).splitlines()), default=0) for r in cells)
                  for i in range(len(names))]
        multi = any("\n" in str(c) for r in cells for c in r)
        inner = sum(widths) + 3 * len(names) - 1
        out = ["+" + "-" * inner + "+"]
        for ridx, row in enumerate(cells):
            parts = []
            for i, (_name, color, just) in enumerate(self.header):
                chosen = overrides[ridx][i] or (color if ridx > 0 else None)
                parts.append((chosen, just, widths[i]))
            lines = [str(c).splitlines() or [""] for c in row]
            for n in range(max(len(x) for x in lines)):
                text = "|"
                for i, (color, just, width) in enumerate(parts):
                    field = f"{lines[i][n] if n < len(lines[i]) else '':{just}{width}}"
                    text += " " + (color + field + NONE if color else field) + " |"
                out.append(text)
            if ridx == 0:
                out.append("|" + "=" * inner + "|")
            elif multi and ridx < len(cells) - 1:
                out.append("|" + "-" * inner + "|")
        out.append("+" + "-" * inner + "+")
        return "\n".join(out) + "\n"
