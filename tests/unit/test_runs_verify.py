"""run.json hashes and the chain between runs of one cluster."""

from __future__ import annotations

import json
from pathlib import Path

from runbook_lib.cli import main
from runbook_lib.runs import RUN_INDEX, sha256_file, verify_run


def make_run(cluster_dir: Path, run_id: str, prev: Path | None) -> Path:
    run = cluster_dir / run_id
    run.mkdir(parents=True)
    nb = run / "01-partition.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {"runbook": {"run_id": run_id}}}))
    index = {"schema": 1, "run_id": run_id, "previous_run_sha256": sha256_file(prev / RUN_INDEX) if prev else None,
             "status": "failed",
             "notebooks": [{"name": "01-partition", "file": nb.name, "status": "failed", "sha256": sha256_file(nb)},
                           {"name": "02-extensions-and-upgrade", "file": "02-extensions-and-upgrade.ipynb",
                            "status": "skipped", "sha256": None}]}
    (run / RUN_INDEX).write_text(json.dumps(index))
    return run


def test_untouched_chain_verifies(tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101T000000Z-aaaaaa", None)
    b = make_run(tmp_path, "20260102T000000Z-bbbbbb", a)
    c = make_run(tmp_path, "20260103T000000Z-cccccc", b)
    result = verify_run(c)
    assert result.ok, result.problems
    assert result.checked_runs == 3
    assert main(["verify", str(c)]) == 3  # intact, but its status is failed


def test_modified_notebook_is_named(tmp_path: Path, capsys) -> None:
    a = make_run(tmp_path, "20260101T000000Z-aaaaaa", None)
    (a / "01-partition.ipynb").write_text("{}")
    result = verify_run(a)
    assert not result.ok and "01-partition.ipynb" in result.problems[0]
    assert main(["verify", str(a)]) == 1
    assert "01-partition.ipynb" in capsys.readouterr().err


def test_edited_earlier_run_breaks_chain(tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101T000000Z-aaaaaa", None)
    b = make_run(tmp_path, "20260102T000000Z-bbbbbb", a)
    index = json.loads((a / RUN_INDEX).read_text())
    index["status"] = "succeeded (edited)"
    (a / RUN_INDEX).write_text(json.dumps(index))
    result = verify_run(b)
    assert not result.ok and "chain broken" in result.problems[0]


def test_deleted_earlier_run_breaks_chain(tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101T000000Z-aaaaaa", None)
    b = make_run(tmp_path, "20260102T000000Z-bbbbbb", a)
    import shutil

    shutil.rmtree(a)
    result = verify_run(b)
    assert not result.ok and "no longer there" in result.problems[0]


def test_missing_index(tmp_path: Path) -> None:
    assert not verify_run(tmp_path).ok
