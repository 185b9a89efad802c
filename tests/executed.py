"""The notebooks nbmake executed in this test session, kept for the tests that read their outputs.

nbmake runs every notebook but keeps no executed copy (its ``--overwrite`` would write into
``notebooks/``); the root conftest wraps its runner so each executed notebook is also written
here, and moves the tests marked ``after_notebooks`` after the notebook items. Run alone
(``pytest tests/test_browser.py``), those tests execute the notebooks themselves.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import nbformat

DIR = Path(tempfile.mkdtemp(prefix="runbook-test-executed-"))
atexit.register(shutil.rmtree, DIR, ignore_errors=True)
NOTEBOOKS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))


def keep_nbmake_outputs() -> None:
    """Make nbmake's runner write each executed notebook into ``DIR`` as well."""
    from nbmake.nb_run import NotebookRun

    if getattr(NotebookRun.execute, "_keeps_outputs", False):
        return
    execute = NotebookRun.execute

    def execute_and_keep(self, *args, **kwargs):
        result = execute(self, *args, **kwargs)
        nbformat.write(result.nb, str(DIR / Path(self.filename).name))
        return result

    execute_and_keep._keeps_outputs = True
    NotebookRun.execute = execute_and_keep


def kept() -> dict[str, Path]:
    """The executed notebooks kept so far, by name (all of them once nbmake has run)."""
    return {name: DIR / f"{name}.ipynb" for name in NOTEBOOKS if (DIR / f"{name}.ipynb").exists()}


_own_run: dict[str, Path] = {}


def all_executed(out: Path) -> dict[str, Path]:
    """Every notebook executed: nbmake's copies from this session, else one ``runbook run`` on a private lab."""
    have = kept()
    if len(have) == len(NOTEBOOKS):
        return have
    if _own_run:
        return dict(_own_run)
    from runbook_lib.lab import control

    from .lab_helpers import LAB_PARAMS, run_dir_of, runbook

    lab_dir = out / "lab"
    try:
        run = run_dir_of(runbook("run", "-f", str(LAB_PARAMS), "--out", str(out / "runs"), lab_dir=lab_dir, check=True))
    finally:
        control.remove(lab_dir)
    _own_run.update({name: run / f"{name}.ipynb" for name in NOTEBOOKS})
    return dict(_own_run)
