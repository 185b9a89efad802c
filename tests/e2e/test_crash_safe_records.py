"""Crash-safe records (issue 14, item 2): Ctrl-C, kill -9 and a full output disk, on real ``runbook run`` processes.

Each run is stopped in the middle of a change, so each costs one kernel start and one or two nodes'
changes. Afterwards the run directory must hold a readable notebook whose record lists the change, and
a ``run.json`` that ``runbook verify`` finds intact and not succeeded (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook_lib.cli import main
from runbook_lib.lab import control
from runbook_lib.runs import RUN_INDEX, verify_run
from tests.lab_helpers import LAB_PARAMS, ROOT
from tests.storage_lab import wait_for

#: lab seconds per real second. The kill -9 and the full disk come on the first "applied" line, and the run must
#: still be changing the cluster when they reach it: after that line a run of 01 still resets one to three nodes,
#: about 65 lab seconds each (2.6 real seconds each at x25; at x400 a busy machine let the run end first). The
#: Ctrl-C does not race the run: it comes while the run waits for a node held down by a stuck-reboot fault.
TIME_SCALE = 25


def start_run(lab_dir: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "RUNBOOK_LAB_DIR": str(lab_dir)}
    return subprocess.Popen([sys.executable, "-m", "runbook_lib.cli", "run", "-f", str(LAB_PARAMS), "01", "--out",
                             str(out), "-p", "lab", f"{{time_scale: {TIME_SCALE}}}"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def read_until(proc: subprocess.Popen, *markers: str) -> str:
    seen = ""
    for line in proc.stdout:  # type: ignore[union-attr]
        seen += line
        if all(m in line for m in markers):
            return seen
    raise AssertionError(f"the run ended before {markers!r}:\n{seen}\n{proc.stderr.read()}")  # type: ignore[union-attr]



def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def the_runs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "lab").iterdir() if p.is_dir())


def actions(run: Path) -> list[tuple[str, str]]:
    nb = json.loads((run / "01-partition.ipynb").read_text())
    return [(a["step"], a["outcome"]) for a in nb["metadata"]["runbook"]["actions"]]


def kill_machine(proc: subprocess.Popen) -> None:
    """kill -9 of the runner and its kernel, as when the machine dies; waits until they are gone."""
    tree = [proc.pid, *children(proc.pid)]
    for pid in tree:
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for _ in range(100):
        if not any(Path(f"/proc/{pid}").exists() for pid in tree):
            return
        time.sleep(0.1)


def fill(path: Path) -> None:
    try:
        with path.open("wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass  # full


def test_kill_9_then_ctrl_c_then_a_full_disk_each_leave_a_verifiable_record(lab_dir: Path, tmp_path: Path,
                                                                           capsys) -> None:
    # Three runs of 01 on one lab, each stopped right after a change (the next run has changes left to make).
    out = tmp_path / "out"

    # 1. kill -9: nobody seals the run; its run.json says running and its record holds the change
    proc = start_run(lab_dir, out)
    try:
        read_until(proc, "| applied")
        kill_machine(proc)
    finally:
        proc.kill()
    killed = the_runs(out)[0]
    assert json.loads((killed / RUN_INDEX).read_text())["status"] == "running"

    # 2. the next run says the previous one was interrupted, where, and what it had started; then Ctrl-C while it
    # waits for a node whose reset does not complete (the run is surely mid-change, however late the line comes)
    control.fault_add("stuck-reboot", "lab-cp-2", d=lab_dir)
    proc = start_run(lab_dir, out)
    try:
        seen = read_until(proc, "reset EPHEMERAL lab-cp-2 |", "still running")
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    control.fault_clear(lab_dir)
    assert f"the previous run {killed.name} of 'lab' was interrupted during 01-partition" in seen, seen
    assert "  01-partition: patch machineconfig lab-cp-1 [lab-cp-1] applied" in seen, seen
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("runbook: interrupted during 01-partition"), err
    for run in the_runs(out):
        index = json.loads((run / RUN_INDEX).read_text())
        assert index["status"] == index["notebooks"][0]["status"] == "interrupted", run
        assert [o for _, o in actions(run)][-1] in ("applied", "started", "interrupted")
        assert not list(run.glob(".*.record.json"))  # folded into the notebook
        assert main(["verify", str(run)]) == 3  # intact, but it did not succeed
    assert ("patch machineconfig lab-cp-1", "applied") in actions(killed)
    assert "NOT SUCCEEDED" in capsys.readouterr().err

    wait_for(lambda: any(n["name"] == "lab-cp-2" and n["ready"] for n in (control.status(lab_dir) or {}).get("nodes", [])),
             "lab-cp-2 Ready again once its stuck-reboot fault was cleared", 60)

    # 3. a full output disk: the run stops at the first record it cannot write, with a readable record
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        proc = start_run(lab_dir, small)
        try:
            read_until(proc, "| applied")
            fill(small / "filler")  # the disk fills up while the run changes the cluster
            stdout, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
        assert proc.returncode == 1, stdout + err
        assert "Traceback" not in err, err
        assert "cannot write the run record" in err and "No space left on device" in err, stdout + err
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
        (run,) = the_runs(small)
        index = json.loads((run / RUN_INDEX).read_text())
        assert index["status"] == "failed" and index["notebooks"][0]["status"] == "failed"
        steps = actions(run)
        # the last change is there; "started" when the disk filled between the call and the record of its end
        assert steps and steps[-1][1] in ("applied", "failed", "started"), steps
        assert verify_run(run).ok
    finally:
        subprocess.run(["umount", "-l", str(small)])
