"""Where a notebook's time goes: run notebooks' cells in this process and total the time per kind of call.

``python -m benchmarks.profile 01 02`` runs the named notebooks (default: all) on a fresh private lab,
cell by cell, with the parameters of ``parameters/lab.yaml``, and prints per cell the real time spent
in subprocesses (``talosctl``, ``helm``, by sub-command), sleeping (polling), and the rest. It is a
tool for finding waste, not a figure for the README: the kernel and papermill are not involved.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nbformat
import yaml

from runbook_lib.runner import notebooks_dir, resolve_names

ROOT = Path(__file__).resolve().parents[1]


class Tally:
    """Real seconds and counts per kind of blocking call, for the cell being run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, kind: str, seconds: float) -> None:
        self.seconds[kind] += seconds
        self.calls[kind] += 1


def _kind(argv: list[str]) -> str:
    tool = Path(str(argv[0])).name
    words = [a for a in argv[1:] if not a.startswith("-") and "/" not in a and "=" not in a
             and not a.replace(".", "").replace(",", "").isdigit()]  # node addresses, one or a list
    return f"{tool} {' '.join(words[:2])}".strip()


def instrument(tally: list[Tally]) -> None:
    real_popen, real_sleep = subprocess.Popen, time.sleep

    class Popen(real_popen):  # tallied at ``with`` exit: how execution's runner and ``subprocess.run`` use it
        def __init__(self, argv, *args, **kwargs):
            self._t0, self._argv = time.monotonic(), list(argv) if not isinstance(argv, str) else [argv]
            super().__init__(argv, *args, **kwargs)

        def __exit__(self, *exc):
            try:
                return super().__exit__(*exc)
            finally:
                tally[0].add(_kind(self._argv), time.monotonic() - self._t0)

    def sleep(seconds: float) -> None:
        t0 = time.monotonic()
        real_sleep(seconds)
        tally[0].add("sleep", time.monotonic() - t0)

    subprocess.Popen = Popen  # type: ignore[misc]
    time.sleep = sleep  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    names = resolve_names(args.notebooks)
    params = yaml.safe_load((ROOT / "parameters" / "lab.yaml").read_text())
    tally = [Tally()]
    instrument(tally)
    with tempfile.TemporaryDirectory(prefix="runbook-profile-") as tmp:
        os.environ["RUNBOOK_LAB_DIR"] = str(Path(tmp) / "lab")
        os.environ["RUNBOOK_RECORD"] = str(Path(tmp) / "record.json")
        os.chdir(notebooks_dir())
        try:
            for name in names:
                nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
                from IPython.display import display  # what a kernel puts in a notebook's namespace

                ns: dict = {**params, "__name__": "__main__", "display": display}
                total = 0.0
                for i, cell in enumerate(nb.cells):
                    if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
                        continue
                    tally[0] = Tally()
                    t0 = time.monotonic()
                    exec(compile(cell.source, f"{name}[{i}]", "exec"), ns)  # noqa: S102 - our own notebooks
                    dt = time.monotonic() - t0
                    total += dt
                    parts = ", ".join(f"{k} {v:.2f}s/{tally[0].calls[k]}" for k, v in
                                      sorted(tally[0].seconds.items(), key=lambda kv: -kv[1]))
                    rest = dt - sum(tally[0].seconds.values())
                    first = next((ln for ln in cell.source.splitlines() if ln and not ln.startswith("#")), "")[:60]
                    print(f"{name}[{i}] {dt:6.2f}s  other {rest:5.2f}s  {parts}  | {first}", file=sys.stderr)
                print(f"{name}: {total:.2f}s", file=sys.stderr)
        finally:
            from runbook_lib.lab import control

            control.stop(Path(os.environ["RUNBOOK_LAB_DIR"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
