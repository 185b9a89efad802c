"""``runbook verify`` detects every edit of the newest run too (issue 14, item 3).

Runs are written by the functions ``runbook run`` uses (start_run, mark_notebook, seal_run),
then tampered with the way an operator covering a mistake would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from runbook_lib.cli import main
from runbook_lib.runs import (
    RUN_INDEX,
    STATE_ENV,
    journal_path,
    make_run_dir,
    mark_notebook,
    previous_run,
    seal_run,
    sha256_file,
    start_run,
    verify_run,
    write_notebook,
)

NAMES = ["01-partition", "02-extensions-and-upgrade", "03-piraeus-install"]


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "state"))
    return tmp_path / "state"


def write_run(cluster: Path, run_id: str, statuses: list[str]) -> Path:
    """A run as the runner writes it: run.json first, each notebook, then the seal."""
    run = make_run_dir(cluster, run_id)
    prev = previous_run(cluster, run_id)
    index = {"schema": 1, "run_id": run_id, "cluster_name": cluster.name, "target": "lab", "dry_run": False,
             "operator": "alice@laptop", "started_at": "2026-01-01T00:00:00Z",
             "previous_run_sha256": sha256_file(prev / RUN_INDEX) if prev else None}
    start_run(run, index, NAMES)
    for name, status in zip(NAMES, statuses, strict=False):
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell("rb.finish()"))
        nb.metadata["runbook"] = {"schema": 1, "notebook": name, "run_id": run_id, "status": status, "actions": []}
        write_notebook(run / f"{name}.ipynb", nb)
        mark_notebook(run, index, name, status, sha256_file(run / f"{name}.ipynb"), 1.0)
    ended = "succeeded" if all(s == "succeeded" for s in statuses) and len(statuses) == len(NAMES) else "failed"
    seal_run(run, index, ended)
    return run


def edit_index(run: Path, **changes) -> dict:
    index = json.loads((run / RUN_INDEX).read_text())
    index.update(changes)
    (run / RUN_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return index


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path]:
    cluster = tmp_path / "out" / "lab"
    first = write_run(cluster, "20260101T000000Z-aaaaaa", ["succeeded"] * 3)
    newest = write_run(cluster, "20260102T000000Z-bbbbbb", ["succeeded"] * 3)
    return first, newest


def test_an_untouched_chain_verifies(chain, capsys) -> None:
    _, newest = chain
    assert main(["verify", str(newest)]) == 0
    assert "chain intact over 2 run(s)" in capsys.readouterr().out


@pytest.mark.parametrize("field,value", [("dry_run", True), ("operator", "bob@desk"), ("status", "succeeded ")])
def test_an_edited_field_of_the_newest_run_fails(chain, capsys, field: str, value: object) -> None:
    _, newest = chain
    edit_index(newest, **{field: value})
    assert main(["verify", str(newest)]) == 1
    assert "run.json differs from the one sealed in the journal" in capsys.readouterr().err


def test_a_failed_notebook_turned_skipped_with_a_null_hash_fails(tmp_path: Path, capsys) -> None:
    cluster = tmp_path / "out" / "lab"
    run = write_run(cluster, "20260101T000000Z-aaaaaa", ["succeeded", "succeeded", "failed"])
    index = json.loads((run / RUN_INDEX).read_text())
    index["notebooks"][2].update(status="skipped", sha256=None)
    index["status"] = "succeeded"
    (run / RUN_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert "listed as skipped without a hash, but the file is there" in err
    # the same, with the notebook deleted as well: still caught (nothing before it failed; the journal)
    (run / "03-piraeus-install.ipynb").unlink()
    result = verify_run(run)
    assert not result.ok
    assert any("listed as skipped although no notebook before it failed" in p for p in result.problems)
    assert any("sealed in the journal" in p for p in result.problems)


def test_a_deleted_notebook_with_its_entry_fails(chain) -> None:
    _, newest = chain
    (newest / "03-piraeus-install.ipynb").unlink()
    index = json.loads((newest / RUN_INDEX).read_text())
    index["notebooks"] = index["notebooks"][:2]
    (newest / RUN_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    result = verify_run(newest)
    assert not result.ok and any("sealed in the journal" in p for p in result.problems), result.problems


def test_a_deleted_newest_run_fails(chain) -> None:
    first, newest = chain
    shutil.rmtree(newest)
    result = verify_run(first)
    assert not result.ok
    assert any(p.startswith(f"{newest.name}: the journal records this run but its directory") for p in result.problems)


def test_an_unlisted_notebook_fails(chain) -> None:
    _, newest = chain
    shutil.copy(newest / "01-partition.ipynb", newest / "04-storage-classes.ipynb")
    result = verify_run(newest)
    assert any("04-storage-classes.ipynb: a notebook that run.json does not list" in p for p in result.problems)


def test_a_run_that_did_not_succeed_is_reported(tmp_path: Path, capsys) -> None:
    run = write_run(tmp_path / "out" / "lab", "20260101T000000Z-aaaaaa", ["succeeded", "failed"])
    assert main(["verify", str(run)]) == 3
    assert "NOT SUCCEEDED" in capsys.readouterr().err and json.loads((run / RUN_INDEX).read_text())["notebooks"][2][
        "status"] == "skipped"


def test_without_a_journal_verify_says_what_it_cannot_check(chain, capsys) -> None:
    _, newest = chain
    journal_path(newest.parent).unlink()
    edit_index(newest, operator="bob@desk")  # undetectable here: said, not hidden
    assert main(["verify", str(newest)]) == 0
    assert "NOTE: no journal of" in capsys.readouterr().err
