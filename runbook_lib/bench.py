"""The documented home of ``parse_fio`` (CONTRACTS §4): it re-exports the fio parser from :mod:`.fio`.

Notebook 07's step is :mod:`.steps.nb07_benchmarks`.
"""

from __future__ import annotations

from .fio import parse_fio

__all__ = ["parse_fio"]
