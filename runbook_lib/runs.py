"""Run directories, their ``run.json`` index, the hash chain and its verification.

A run lives in ``<out>/<cluster_name>/<run_id>/``. ``run.json`` lists each executed
notebook with its sha256 and points at the previous run of the same cluster by the
sha256 of that run's ``run.json``, so removing or editing any earlier record breaks
the chain that ``runbook verify`` walks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

RUN_INDEX = "run.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cluster_runs(cluster_dir: Path) -> list[Path]:
    """Run directories of one cluster that have an index, oldest first (run IDs sort by time)."""
    if not cluster_dir.is_dir():
        return []
    return sorted(p for p in cluster_dir.iterdir() if (p / RUN_INDEX).is_file())


def previous_run(cluster_dir: Path, run_id: str) -> Path | None:
    earlier = [p for p in cluster_runs(cluster_dir) if p.name < run_id]
    return earlier[-1] if earlier else None


@dataclass
class VerifyResult:
    ok: bool
    problems: list[str]
    checked_runs: int


def _notebook_problems(run_dir: Path, index: dict) -> list[str]:
    problems = []
    for nb in index.get("notebooks", []):
        if nb.get("status") == "skipped" and not nb.get("sha256"):
            continue
        path = run_dir / nb.get("file", "")
        if not path.is_file():
            problems.append(f"{run_dir.name}/{path.name}: listed in run.json but missing")
        elif sha256_file(path) != nb.get("sha256"):
            problems.append(f"{run_dir.name}/{path.name}: sha256 differs from run.json (the file was modified)")
    return problems


def verify_run(run_dir: Path) -> VerifyResult:
    """Check the notebooks' hashes of ``run_dir`` and of every earlier run it chains back to."""
    run_dir = run_dir.resolve()
    index_path = run_dir / RUN_INDEX
    if not index_path.is_file():
        return VerifyResult(False, [f"{index_path}: missing"], 0)
    try:
        index = json.loads(index_path.read_text())
    except ValueError as exc:
        return VerifyResult(False, [f"{index_path}: not valid JSON ({exc})"], 0)
    problems = _notebook_problems(run_dir, index)
    checked = 1
    current_dir, current = run_dir, index
    while True:
        prev_dir = previous_run(current_dir.parent, current_dir.name)
        expected = current.get("previous_run_sha256")
        if prev_dir is None:
            if expected is not None:
                problems.append(f"{current_dir.name}: points at a previous run that is no longer there")
            break
        actual = sha256_file(prev_dir / RUN_INDEX)
        if expected != actual:
            problems.append(f"{current_dir.name}: chain broken: previous run {prev_dir.name} has run.json sha256 "
                            f"{actual[:12]}…, the record expects {str(expected)[:12]}…")
            break
        current_dir, current = prev_dir, json.loads((prev_dir / RUN_INDEX).read_text())
        problems += _notebook_problems(current_dir, current)
        checked += 1
    return VerifyResult(not problems, problems, checked)
