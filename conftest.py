"""Test-session set-up shared by tests/ and the nbmake run over notebooks/.

Every test session (every xdist worker) gets its own lab directory, so tests never touch a
developer's lab, and the lab servers it started are stopped at the end. Each notebook nbmake
runs gets a lab of its own, set up as the notebooks before it leave the cluster (see
``notebook_lab``), so a notebook passes alone, in any order and beside a rehearsal.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests import executed

_SESSION_LAB = Path(tempfile.mkdtemp(prefix="runbook-test-lab-"))
os.environ["RUNBOOK_LAB_DIR"] = str(_SESSION_LAB)
os.environ["RUNBOOK_STATE_DIR"] = str(_SESSION_LAB / "state")  # run journals: never the user's
# a notebook nbmake runs is an interactive run: its record goes to a private folder, not the project's outputs/
os.environ["RUNBOOK_OUT"] = tempfile.mkdtemp(prefix="runbook-test-outputs-")

NOTEBOOK_DIR = Path(__file__).resolve().parent / "notebooks"
_NOTEBOOK_LABS = _SESSION_LAB / "notebooks"  # <name>/: a notebook's own lab; after-<name>/: the lab it left


@pytest.fixture(scope="session", autouse=True)
def _stop_session_lab():
    yield
    from runbook_lib.lab import control

    control.remove(_SESSION_LAB)
    for d in sorted(_NOTEBOOK_LABS.glob("*")):
        control.remove(d)


executed.keep_nbmake_outputs()


def _layer(item: pytest.Item) -> str | None:
    path = Path(str(item.path))
    if path.suffix == ".ipynb":
        return "e2e"  # a notebook runs in a real kernel
    parts = path.parts[:-1]
    return next((p for p in reversed(parts) if p in ("unit", "lab", "e2e")), None) if "tests" in parts else None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list) -> None:
    """Mark tests by their layer's folder, and group them for xdist (``--dist loadgroup``).

    tests/lab and tests/e2e (and the notebooks) start labs: ``lab``; tests/e2e and the notebooks
    run real ``runbook``/kernel processes: ``e2e``. A module's tests stay together in one worker
    (several share a module-scoped lab and build on each other's objects). Tests marked
    ``after_notebooks`` read the notebooks nbmake executed: they run last, in the notebooks' worker.
    """
    for item in items:
        layer = _layer(item)
        if layer in ("lab", "e2e"):
            item.add_marker(pytest.mark.lab)
        if layer == "e2e":
            item.add_marker(pytest.mark.e2e)
        if Path(str(item.path)).suffix == ".ipynb" or item.get_closest_marker("after_notebooks"):
            item.add_marker(pytest.mark.xdist_group("notebooks"))
        elif not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)


def _run_notebook(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()


_CHAIN: dict[str, Path | str | None] = {"dir": None, "last": None}


def notebook_lab(name: str) -> Path:
    """A lab of its own for notebook ``name``, left as the notebooks before it leave the cluster.

    When the notebook before it passed in this session, its lab is reused (the lab's state holds paths
    inside its own folder, so a copy would not be the same cluster); otherwise the earlier notebooks are
    executed first in a fresh lab, by the same engine.
    """
    from runbook_lib.lab import control

    earlier = [n for n in executed.NOTEBOOKS if n < name]
    if earlier and _CHAIN["last"] == earlier[-1] and _CHAIN["dir"] is not None:
        return Path(_CHAIN["dir"])
    d = _NOTEBOOK_LABS / name
    control.remove(d)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    os.environ["RUNBOOK_LAB_DIR"] = str(d)
    try:
        for n in earlier:
            _run_notebook(NOTEBOOK_DIR / f"{n}.ipynb")
    finally:
        os.environ["RUNBOOK_LAB_DIR"] = str(_SESSION_LAB)
        control.stop(d)
    return d


def pytest_runtest_setup(item: pytest.Item) -> None:
    if Path(str(item.path)).suffix == ".ipynb":
        os.environ["RUNBOOK_LAB_DIR"] = str(notebook_lab(Path(str(item.path)).stem))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and Path(str(item.path)).suffix == ".ipynb":
        item.stash[_PASSED] = report.passed
    return report


_PASSED = pytest.StashKey[bool]()


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if Path(str(item.path)).suffix != ".ipynb":
        return
    from runbook_lib.lab import control

    d = Path(os.environ["RUNBOOK_LAB_DIR"])
    os.environ["RUNBOOK_LAB_DIR"] = str(_SESSION_LAB)
    control.stop(d)  # saves its state for the next notebook
    passed = item.stash.get(_PASSED, False)
    _CHAIN.update(dir=d if passed else None, last=Path(str(item.path)).stem if passed else None)
