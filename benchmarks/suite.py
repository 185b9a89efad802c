"""Suite time: every notebook on a fresh lab through ``runbook run``, against a floor measured in the same run.

The floor is what no runbook can avoid: N papermill runs (N = the suite's notebooks) of a bare
one-cell notebook with no imports, in the same kernel through the same engine. The ratio
suite / floor is the runbooks' own cost, their imports included; the slowest cells show where it goes.
The bare kernel runs N times before the suite and N times after it; the floor is N times the median
of those 2N runs (a busy spell of the machine during a few of them would otherwise flatter the ratio:
single runs of 4 s among runs of 0.8 s were seen on a shared 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from runbook_lib.runner import _register_engine, notebooks_dir, resolve_names

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "parameters" / "lab.yaml"
IMPORT_LINE = re.compile(r"^(from \S+ import .+|import \S+.*)$")


@dataclass
class SuiteResult:
    notebooks: list[str]
    suite_s: float  # wall time of `runbook run`, lab start and lock included
    per_notebook_s: dict[str, float]
    floor_s: float  # N times the median bare-kernel run
    floor_runs_s: list[float]  # all 2N runs, before and after the suite
    slowest_cells: list[dict] = field(default_factory=list)
    lab_stats: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.suite_s / self.floor_s


FLOOR_CELL = "1 + 1"  # a cell that imports nothing: what the kernel and engine cost alone


def floor_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(FLOOR_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def measure_floor(names: list[str], work: Path) -> list[float]:
    """One papermill run of the bare one-cell notebook per suite notebook, same kernel and engine."""
    import papermill as pm

    _register_engine()
    src = work / "floor.ipynb"
    nbformat.write(floor_notebook(), src)
    times = []
    for i in range(len(names)):
        t0 = time.monotonic()
        pm.execute_notebook(str(src), str(work / f"floor-{i}.ipynb"), engine_name="runbook", kernel_name="python3",
                            progress_bar=False, cwd=str(notebooks_dir()), log_output=False)
        times.append(time.monotonic() - t0)
    return times


def _lab_env(lab_dir: Path) -> dict[str, str]:
    return {**os.environ, "RUNBOOK_LAB_DIR": str(lab_dir)}


def _lab_stats(lab_dir: Path) -> dict:
    from runbook_lib.lab import control

    return (control.status(lab_dir) or {}).get("stats", {})


def _slowest_cells(run_dir: Path, top: int) -> list[dict]:
    cells = []
    for path in sorted(run_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            duration = (cell.metadata.get("papermill") or {}).get("duration")
            if cell.cell_type == "code" and duration is not None:
                first = next((ln for ln in cell.source.splitlines() if ln and not ln.startswith("#")), "")
                cells.append({"notebook": path.stem, "cell": i, "seconds": round(duration, 2), "code": first[:80]})
    return sorted(cells, key=lambda c: -c["seconds"])[:top]


def run_suite(work: Path, echo=print, names: list[str] | None = None,
              params: Path = PARAMS) -> tuple[float, Path]:
    """``runbook run -f parameters/lab.yaml [NAMES]`` on a fresh lab in a private lab directory; (seconds, run dir)."""
    lab_dir, out = work / "lab", work / "outputs"
    cmd = [sys.executable, "-m", "runbook_lib.cli", "run", "-f", str(params), *(names or []), "--out", str(out)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=_lab_env(lab_dir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line.rstrip())
        echo("  " + line.rstrip())
    code = proc.wait()
    seconds = time.monotonic() - t0
    if code != 0:
        raise RuntimeError("the suite failed:\n" + "\n".join(lines[-20:]))
    run_dir = next(p.parent for p in out.glob("*/*/run.json"))
    return seconds, run_dir


def stop_lab(lab_dir: Path) -> None:
    """``runbook lab stop`` for the private lab: no server outlives the benchmark."""
    from runbook_lib.lab import control

    control.stop(lab_dir)


def measure(echo=print, top_cells: int = 10, names: list[str] | None = None) -> SuiteResult:
    """The suite (every notebook, or ``names``) against its floor (as many bare-kernel runs as notebooks)."""
    names = resolve_names(list(names or []))
    with tempfile.TemporaryDirectory(prefix="runbook-bench-suite-") as tmp:
        work = Path(tmp)
        echo(f"suite: {len(names)} notebooks: {', '.join(names)}")
        echo(f"floor: {len(names)} papermill runs of a one-cell notebook with no imports ...")
        before = measure_floor(names, work)
        echo(f"floor: {sum(before):.1f}s ({', '.join(f'{t:.1f}' for t in before)})")
        try:
            suite_s, run_dir = run_suite(work, echo, names)
            stats = _lab_stats(work / "lab")
        finally:
            stop_lab(work / "lab")
        after = measure_floor(names, work)
        echo(f"floor again: {sum(after):.1f}s ({', '.join(f'{t:.1f}' for t in after)})")
        runs = before + after
        index = json.loads((run_dir / "run.json").read_text())
        per = {n["name"]: n["duration_s"] for n in index["notebooks"]}
        return SuiteResult(names, suite_s, per, len(names) * statistics.median(runs), runs,
                           _slowest_cells(run_dir, top_cells), stats)


def report(res: SuiteResult) -> list[str]:
    floor_each = res.floor_s / len(res.notebooks)
    out = [f"Suite: {len(res.notebooks)} notebooks in {res.suite_s:.1f}s; floor {res.floor_s:.1f}s "
           f"({len(res.notebooks)} x {floor_each:.2f}s, the median of {len(res.floor_runs_s)} bare kernels "
           f"from {min(res.floor_runs_s):.2f}s to {max(res.floor_runs_s):.2f}s, before and after the suite)",
           f"ratio {res.ratio:.2f}",
           "  notebook                      seconds  over floor"]
    for name, sec in res.per_notebook_s.items():
        out.append(f"  {name:<28} {sec:7.1f}  {sec - floor_each:+7.1f}")
    other = res.suite_s - sum(res.per_notebook_s.values())
    out.append(f"  {'(runbook run: start, lab, lock)':<28} {other:7.1f}")
    if res.slowest_cells:
        out.append("  slowest cells:")
        out += [f"    {c['seconds']:6.2f}s  {c['notebook']}[{c['cell']}]  {c['code']}" for c in res.slowest_cells]
    if res.lab_stats:
        out.append("  lab requests: " + ", ".join(f"{k} {v}" for k, v in res.lab_stats.items()))
    return out
