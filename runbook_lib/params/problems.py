"""Parameter problems as ``(path, message)`` pairs and their one-line rendering (``nodes[2].address: ...``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


def loc_path(loc: Iterable[str | int]) -> str:
    """``("nodes", 2, "address")`` -> ``nodes[2].address``; odd keys are quoted in brackets."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.match(r"^[A-Za-z0-9_-]+$", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "top level"


def render(problems: Iterable[Problem], order: Sequence[str]) -> list[str]:
    """Format, drop repeats, and order by top-level key (``order``: file order) so related lines sit together."""
    rank = {key: i for i, key in enumerate(order)}
    ranked: dict[str, int] = {}
    for loc, message in problems:
        line = f"{loc_path(loc)}: {message}"
        ranked.setdefault(line, rank.get(str(loc[0]) if loc else "", len(rank)))
    return sorted(ranked, key=ranked.__getitem__)
