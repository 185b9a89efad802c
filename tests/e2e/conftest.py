"""Fixtures of the e2e layer: one cluster that 01-04 set up through ``runbook run``, shared by the tests.

Most e2e scenarios start where 01-04 leave the cluster, and running those four notebooks costs more than the
scenarios themselves. So they run once per test session, the way an operator's first run goes wrong in small
ways: a secret planted in the parameters (no output file may show it) and a burst of API errors the runbooks
must ride out. The first xdist worker that needs the cluster runs them, the others wait for it (a file lock
beside the workers' temporary folders); tests read the run and work on copies of the stopped lab.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from runbook_lib.lab import control
from tests.lab_helpers import LAB_PARAMS, run_dir_of, runbook, write_params

INSTALLED = ["01", "02", "03", "04"]
PLANTED = "planted-S3cret-passphrase-4711"
URL_PASSWORD = "url-Pa55word-0815"  # in factory_url's userinfo: a secret too
API_ERRORS = 4  # 500s the lab answers first: retried, never a failed run


@dataclass(frozen=True)
class InstalledRun:
    lab: Path  # the stopped lab 01-04 left: copy it (tests/lab_helpers.copy_lab), never run on it
    run: Path  # the run directory
    params: Path
    output: str  # the command's stdout and stderr
    lab_environ: bytes  # /proc/<pid>/environ of the lab server the run started
    browser_starts: int  # how many times the run started a browser for its figures


def _planted_params(path: Path) -> Path:
    """The lab's parameter file with secrets where papermill or a record could copy them."""
    base = yaml.safe_load(LAB_PARAMS.read_text())
    return write_params(path, secrets={"linstor_passphrase": PLANTED},
                        kubeconfig=f"/nonexistent/{PLANTED}/kubeconfig",  # ignored by the lab target
                        bench={**base["bench"], "install": f"apk add --no-cache fio # {PLANTED}"},
                        factory_url=f"https://runbook:{URL_PASSWORD}@factory.talos.dev",
                        lab={**base["lab"], "faults": [{"kind": "api-errors", "count": API_ERRORS}]})


def _counting_browser(root: Path) -> dict[str, str]:
    """``$BROWSER_PATH`` for a browser that notes each start in ``browser-starts`` and then is the real one."""
    from runbook_lib import figure_export

    real = figure_export.browser_path()
    if real is None:
        return {}
    wrapper = root / "counting-chromium"
    wrapper.write_text(f'#!/bin/sh\necho "$$" >> {shlex.quote(str(root / "browser-starts"))}\n'
                       f'exec {shlex.quote(real)} "$@"\n')
    wrapper.chmod(0o755)
    return {"BROWSER_PATH": str(wrapper)}


def _build(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    lab_dir, out = root / "lab", root / "out"
    params = _planted_params(root / "params.yaml")
    try:
        proc = runbook("run", "-f", str(params), *INSTALLED, "--out", str(out), lab_dir=lab_dir, check=True,
                       env=_counting_browser(root))
        environ = Path(f"/proc/{control.status(lab_dir)['pid']}/environ").read_bytes()
    finally:
        control.stop(lab_dir)
    (root / "lab-environ").write_bytes(environ)
    (root / "output.txt").write_text(proc.stdout + proc.stderr)
    return {"lab": str(lab_dir), "run": str(run_dir_of(proc)), "params": str(params)}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledRun:
    """One ``runbook run 01 02 03 04`` on a fresh lab, for the whole session (read-only for tests)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # one folder for all of a session's workers
    root, done = shared / "installed", shared / "installed.json"
    with open(shared / "installed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            done.write_text(json.dumps(_build(root)))
    paths = json.loads(done.read_text())
    starts = root / "browser-starts"
    return InstalledRun(Path(paths["lab"]), Path(paths["run"]), Path(paths["params"]),
                        (root / "output.txt").read_text(), (root / "lab-environ").read_bytes(),
                        len(starts.read_text().split()) if starts.exists() else 0)
