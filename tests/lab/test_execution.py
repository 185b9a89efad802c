"""The execution layer: real subprocesses, plan mode, approvals, records."""

from __future__ import annotations

import sys

import pytest

from runbook_lib.errors import ApprovalRequired, CommandError
from runbook_lib.execution import Executor
from runbook_lib.record import Record
from runbook_lib.redact import Redactor

PY = sys.executable


def new(dry_run: bool = False, approve=None, secrets=()) -> Executor:
    record = Record(notebook="t", run_id="r", parameters={}, redactor=Redactor(secrets))
    return Executor(record, dry_run=dry_run, approve=approve)


def test_read_runs_even_in_plan_mode_and_is_not_an_action() -> None:
    ex = new(dry_run=True)
    res = ex.run([PY, "-c", "print('hello')"], step="read", target="n1")
    assert res is not None and res.stdout.strip() == "hello"
    assert ex.record.actions == []


def test_mutation_in_plan_mode_is_planned_not_run(tmp_path) -> None:
    marker = tmp_path / "ran"
    ex = new(dry_run=True)
    out = ex.run([PY, "-c", f"open({str(marker)!r}, 'w')"], step="write", target="n1", mutating=True, manifest="a: b")
    assert out is None and not marker.exists()
    (action,) = ex.record.actions
    assert action.outcome == "planned" and action.manifest == "a: b" and action.mutating


def test_mutation_applied_and_failure_recorded() -> None:
    ex = new()
    ex.run([PY, "-c", "pass"], step="ok", target="n1", mutating=True)
    with pytest.raises(CommandError) as exc:
        ex.run([PY, "-c", "import sys; sys.stderr.write('rpc error: boom'); sys.exit(1)"], step="bad", target="n1",
               mutating=True)
    assert "exited 1 on n1" in str(exc.value) and "boom" in str(exc.value)
    assert [a.outcome for a in ex.record.actions] == ["applied", "failed"]
    assert ex.record.actions[1].exit_code == 1


def test_destructive_step_needs_its_approval(tmp_path) -> None:
    marker = tmp_path / "ran"
    ex = new(approve=lambda action, node: f"{action} {node}" == "reset n2")
    with pytest.raises(ApprovalRequired) as exc:
        ex.run([PY, "-c", f"open({str(marker)!r}, 'w')"], step="reset n1", target="n1", destructive="reset")
    assert exc.value.entry == "reset n1" and '"reset n1"' in str(exc.value)
    assert not marker.exists()
    assert ex.record.actions[-1].outcome == "skipped" and ex.record.actions[-1].destructive
    ex.run([PY, "-c", "pass"], step="reset n2", target="n2", destructive="reset")
    assert ex.record.actions[-1].outcome == "applied"


def test_timeout_is_a_command_error() -> None:
    ex = new()
    with pytest.raises(CommandError) as exc:
        ex.run([PY, "-c", "import time; time.sleep(5)"], step="slow", target="n1", timeout=0.2)
    assert exc.value.exit_code is None and "timed out" in str(exc.value)


def test_secrets_are_masked_in_errors_and_records() -> None:
    ex = new(secrets=["hunter2-secret"])
    with pytest.raises(CommandError) as exc:
        ex.run([PY, "-c", "import sys; sys.stderr.write('bad token hunter2-secret'); sys.exit(1)"], step="x",
               target="n1", mutating=True, manifest="password: hunter2-secret")
    assert "hunter2-secret" not in str(exc.value)
    assert "hunter2-secret" not in str(ex.record.to_dict())
