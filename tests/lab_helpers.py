"""Helpers for tests that drive the real ``runbook`` command against a private lab."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from runbook_lib.lab import control

ROOT = Path(__file__).resolve().parents[1]
LAB_PARAMS = ROOT / "parameters" / "lab.yaml"

# The two volume documents of notebook 01, as a Talos config patch (100 GiB user volume minimum).
VOLUME_DOCS = """---
apiVersion: v1alpha1
kind: VolumeConfig
name: EPHEMERAL
provisioning:
  maxSize: 100GiB
---
apiVersion: v1alpha1
kind: UserVolumeConfig
name: linstor-storage
provisioning:
  diskSelector:
    match: disk.transport == 'nvme'
  minSize: 100GiB
"""


def runbook(*args: str, lab_dir: Path, check: bool = False, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNBOOK_LAB_DIR": str(lab_dir), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"runbook {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def output_tail(proc: subprocess.CompletedProcess) -> str:
    """The end of a run's stdout and stderr, for an assertion message: where a failed or timed-out step names itself."""
    return f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


def copy_lab(template: Path, d: Path, *, start: bool = False, **options) -> Path:
    """A lab directory that starts as a copy of the stopped lab in ``template``, with some options changed.

    The lab's state holds no path of its own folder, so a copy is the same cluster; ``time_scale`` also sets
    the saved clock's rate. The copy starts on first use (``runbook run`` connects to it), or now with ``start``
    (to inject faults before a run).
    """
    shutil.copytree(template, d, ignore=shutil.ignore_patterns("server.json", "server.log"))
    if options:
        state = json.loads((d / "state.json").read_text())
        state["options"].update(options)
        if "time_scale" in options:
            state["clock"]["scale"] = options["time_scale"]
        (d / "state.json").write_text(json.dumps(state))
        (d / "options.json").write_text(json.dumps(state["options"], indent=2))
    if start:
        control.start(None, d)
    return d


def run_dir_of(proc: subprocess.CompletedProcess) -> Path:
    return Path(proc.stdout.strip().splitlines()[-1])


def record(run_dir: Path, notebook: str) -> dict:
    return json.loads((run_dir / f"{notebook}.ipynb").read_text())["metadata"]["runbook"]


def write_params(path: Path, **overrides) -> Path:
    data = yaml.safe_load(LAB_PARAMS.read_text())
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


def serve_lab(nodes: list[dict], d: Path, *, time_scale: float = 2000.0, seed: int = 5):
    """An in-process lab serving HTTP on 127.0.0.1, and a talosconfig for it in ``d``: (lab, server, path).

    The caller stops it: ``server.stop(); server.server_close()``.
    """
    from runbook_lib.lab.assembly import create_lab
    from runbook_lib.lab.server import LabHTTPServer

    lab = create_lab({"nodes": nodes, "time_scale": time_scale, "seed": seed})
    server = LabHTTPServer(lab, None)
    server.start_background()
    cfg = d / "talosconfig"
    cfg.write_text(yaml.safe_dump(lab.talos.talosconfig(server.url.split("://", 1)[1])))
    return lab, server, cfg
