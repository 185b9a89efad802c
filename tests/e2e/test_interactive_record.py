"""A notebook run outside ``runbook run`` (here: nbclient, as ``jupyter nbconvert --execute``) keeps a verifiable record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from runbook_lib.runs import verify_run

ROOT = Path(__file__).resolve().parents[2]

CELLS = [  # a plan against a "real" cluster whose tools are absent: no lab to start, nothing to reach
    'target = "talos"\ndry_run = True\ncluster_name = "edge"\ntalosctl = "/nonexistent/talosctl"\n'
    'talosconfig = "talosconfig"\nkubeconfig = "kubeconfig"\nsecrets = {"bmc": "s3cr3t-planted-9731"}',
    'from runbook_lib.session import Session\nrb = Session.begin("01-partition", globals())',
    'rb.executor.run(["talosctl", "--nodes", "10.5.0.2", "reset", "--graceful=false"], step="reset lab-cp-1",\n'
    '                target="lab-cp-1", destructive="reset")\n'
    'rb.check("the answer", True, 42, 42)\n'
    'print("the bmc password is", rb.params.secret("bmc"))\n'
    '"a result"',
    'rb.finish()',
]


def test_interactive_run_writes_a_record_that_verify_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "outputs"
    monkeypatch.setenv("RUNBOOK_OUT", str(out))
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("RUNBOOK_RECORD", "RUNBOOK_RUN_ID", "RUNBOOK_PROGRESS"):
        monkeypatch.delenv(key, raising=False)
    for name in ("talosconfig", "kubeconfig"):
        (tmp_path / name).write_text("{}\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    (run_dir,) = (out / "edge").iterdir()
    first = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert f"record: {run_dir}" in first and "runbook verify" in first  # the first cell says where

    index = json.loads((run_dir / "run.json").read_text())
    assert index["status"] == "succeeded" and index["dry_run"] is True and index["interactive"]
    assert [n["name"] for n in index["notebooks"]] == ["01-partition"]
    kept = nbformat.read(run_dir / "01-partition.ipynb", as_version=4)
    record = kept.metadata["runbook"]
    assert record["status"] == "succeeded" and record["run_id"] == run_dir.name
    assert [a["outcome"] for a in record["actions"]] == ["planned"]
    assert [c["name"] for c in record["checks"]] == ["the answer"]
    # the cells from Session.begin on, with what they printed and returned
    assert [c.source for c in kept.cells] == CELLS[1:]
    texts = ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream") for c in kept.cells]
    assert "PLAN, not run: would reset lab-cp-1" in texts[1] and "[PASS] the answer" in texts[1]
    assert any(o.output_type == "execute_result" and "a result" in o.data["text/plain"] for o in kept.cells[1].outputs)
    assert "1 checks, 0 failed" in texts[2]
    assert not list(run_dir.glob(".*.record.json"))  # folded into the notebook when the run was sealed
    assert "s3cr3t-planted-9731" in "".join(o.get("text", "") for o in nb.cells[2].outputs)  # the kernel printed it
    assert "s3cr3t-planted-9731" not in "".join(p.read_text() for p in run_dir.iterdir() if p.is_file())

    result = verify_run(run_dir)
    assert result.ok, result.problems
    assert result.status == "succeeded"


def test_a_session_begun_again_ends_the_earlier_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No IPython here (a plain process): only the records and run.json are kept."""
    from runbook_lib.session import Session

    monkeypatch.setenv("RUNBOOK_OUT", str(tmp_path / "outputs"))
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    for key in ("RUNBOOK_RECORD", "RUNBOOK_RUN_ID", "RUNBOOK_PROGRESS"):
        monkeypatch.delenv(key, raising=False)
    for name in ("talosconfig", "kubeconfig"):
        (tmp_path / name).write_text("{}\n")
    ns = {"target": "talos", "dry_run": True, "cluster_name": "edge", "talosctl": "/nonexistent/talosctl",
          "talosconfig": str(tmp_path / "talosconfig"), "kubeconfig": str(tmp_path / "kubeconfig")}
    first = Session.begin("04-storage-classes", ns)
    second = Session.begin("04-storage-classes", ns)
    second.finish()
    statuses = {d.name: json.loads((d / "run.json").read_text())["status"] for d in (tmp_path / "outputs" / "edge").iterdir()}
    assert statuses == {first.record.run_id: "interrupted", second.record.run_id: "succeeded"}
    assert verify_run(tmp_path / "outputs" / "edge" / second.record.run_id).ok
