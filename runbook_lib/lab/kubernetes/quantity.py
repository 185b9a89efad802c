"""Kubernetes resource quantities (binary and decimal suffixes) in bytes."""

from __future__ import annotations

import re


def quantity_bytes(q: str | int) -> int:
    """A Kubernetes resource quantity in bytes (binary and decimal suffixes)."""
    if isinstance(q, int):
        return q
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTPE]i?|k|m)?\s*", str(q))
    if not m:
        raise ValueError(f"quantities must match the regular expression: {q!r}")
    num = float(m.group(1))
    unit = m.group(2) or ""
    mult = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "m": 1e-3}[unit]
    return int(num * mult)
