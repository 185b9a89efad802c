"""The suite's time split into waiting for the lab's clock and everything else, by running it at several clock rates.

The lab's clock runs ``lab.time_scale`` times faster than the host, so a wait for cluster time (a reboot, a
resync, a fio job's runtime) costs ``lab seconds / time_scale`` real seconds, and the rest (kernels, imports,
tool processes, API requests) does not depend on the rate. Running the same suite at half, once and twice the
parameter file's rate, by turns, and fitting ``T = C + L / scale`` by least squares gives ``L``, the lab seconds
the suite waits for, and ``C``, its cost when the clock is free. ``C`` against the floor of bare kernels says how
far the runbooks' own work alone is from the suite target; the fit's residual says how noisy the runs were.
The split holds while the waits are longer than the lab's busy tick (25 ms) and the runbooks' polls: at x400 a
container start of 1-2 lab seconds already takes one tick, whatever the rate, so the rates stay near the file's.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from runbook_lib.runner import resolve_names

from . import suite

MULTIPLIERS = (0.5, 1, 2)


@dataclass(frozen=True)
class Fit:
    """``seconds = fixed_s + lab_s / scale``, fitted over the runs; ``residual_s``: the largest miss of one run."""

    fixed_s: float
    lab_s: float
    residual_s: float

    def at(self, scale: float) -> float:
        return self.fixed_s + self.lab_s / scale


def fit(runs: list[tuple[float, float]]) -> Fit:
    """Least squares of ``(scale, seconds)`` pairs on ``seconds = C + L / scale``; needs two distinct scales."""
    xs, ys = [1.0 / scale for scale, _ in runs], [seconds for _, seconds in runs]
    if len(set(xs)) < 2:
        raise ValueError("fitting the clock's share needs runs at two different time scales at least")
    line = statistics.linear_regression(xs, ys)
    misses = [abs(y - (line.intercept + line.slope * x)) for x, y in zip(xs, ys, strict=True)]
    return Fit(line.intercept, line.slope, max(misses))


@dataclass
class ClockResult:
    base_scale: float
    runs: list[tuple[float, float]]  # (time_scale, suite seconds)
    per_notebook: dict[str, list[tuple[float, float]]]
    floor_s: float

    @property
    def suite(self) -> Fit:
        return fit(self.runs)


def params_at(scale: float, work: Path) -> Path:
    """The suite's parameter file with ``lab.time_scale`` set to ``scale`` (a copy; the original is not touched)."""
    doc = yaml.safe_load(suite.PARAMS.read_text())
    doc.setdefault("lab", {})["time_scale"] = scale
    path = work / f"lab-x{scale:g}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def measure(echo=print, names: list[str] | None = None) -> ClockResult:
    names = resolve_names(list(names or []))
    base = float((yaml.safe_load(suite.PARAMS.read_text()).get("lab") or {}).get("time_scale") or 100.0)
    runs: list[tuple[float, float]] = []
    per: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="runbook-bench-clock-") as tmp:
        work = Path(tmp)
        for m in MULTIPLIERS:
            scale = base * m
            run_work = work / f"x{scale:g}"
            run_work.mkdir()
            echo(f"clock: the suite at lab.time_scale {scale:g} ...")
            try:
                seconds, run_dir = suite.run_suite(run_work, echo, names, params=params_at(scale, work))
            finally:
                suite.stop_lab(run_work / "lab")
            runs.append((scale, seconds))
            for nb in json.loads((run_dir / "run.json").read_text())["notebooks"]:
                per.setdefault(nb["name"], []).append((scale, nb["duration_s"]))
        floor_runs = suite.measure_floor(names, work)
    return ClockResult(base, runs, per, len(names) * statistics.median(floor_runs))


def report(res: ClockResult) -> list[str]:
    total = res.suite
    out = [f"Clock: the suite at lab.time_scale {', '.join(f'{s:g}: {t:.1f}s' for s, t in res.runs)}",
           f"  waiting for the lab's clock: {total.lab_s:.0f} lab seconds, {total.lab_s / res.base_scale:.1f}s at "
           f"x{res.base_scale:g}; the rest {total.fixed_s:.1f}s (fit within {total.residual_s:.1f}s of each run)",
           f"  the rest against the floor ({res.floor_s:.1f}s): ratio {total.fixed_s / res.floor_s:.2f} "
           f"with the clock free",
           "  notebook                      clock s    rest s"]
    for name, runs in res.per_notebook.items():
        if len({s for s, _ in runs}) > 1:
            f = fit(runs)
            out.append(f"  {name:<28} {f.lab_s / res.base_scale:8.1f}  {f.fixed_s:8.1f}")
    return out
