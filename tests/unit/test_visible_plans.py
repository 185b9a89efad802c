"""Every action shows its command or manifest and its outcome in the cell's output; plan mode says "would"."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runbook_lib import action_text
from runbook_lib.errors import ApprovalRequired
from runbook_lib.execution import Executor
from runbook_lib.record import Record
from runbook_lib.redact import Redactor

PY = sys.executable


def executor(dry_run: bool, approve=None, secrets=()) -> tuple[Executor, list[str]]:
    shown: list[str] = []
    record = Record(notebook="t", run_id="r", parameters={}, redactor=Redactor(secrets))
    return Executor(record, dry_run=dry_run, approve=approve, echo=shown.append), shown




def test_plan_mode_says_would_and_not_run_and_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "ran"
    ex, shown = executor(dry_run=True)
    ex.run([PY, "-c", f"open({str(marker)!r}, 'w')"], step="reset n1", target="n1", destructive="reset",
           manifest="kind: X\n")
    ex.call(lambda: 1 / 0, step="apply Namespace", target="Namespace/x", manifest="kind: Namespace\n",
            command=["kubectl", "apply", "-f", "-"])
    text = "\n".join(shown)
    assert not marker.exists()
    assert text.count("PLAN, not run: would") == 2 and text.count("nothing was changed (plan mode)") == 2
    assert "would run: $ kubectl apply -f -" in text and "would apply this manifest:" in text
    assert "applied" not in text




def test_refused_and_unchanged_actions_say_so() -> None:
    ex, shown = executor(dry_run=False, approve=lambda action, node: False)
    with pytest.raises(ApprovalRequired):
        ex.run([PY, "-c", "pass"], step="reset n1", target="n1", destructive="reset")
    ex.unchanged(step="install chart", target="ns/rel", kind="helm", command=["helm", "upgrade", "--install", "r", "c"])
    text = "\n".join(shown)
    assert "NOT RUN" in text and "'reset n1'" in text
    assert "unchanged, not run: install chart" in text and "not needed: $ helm upgrade --install r c" in text


def test_secrets_never_reach_the_cell_output() -> None:
    ex, shown = executor(dry_run=True, secrets=["s3cr3t-token"])
    ex.run(["helm", "--set", "token=s3cr3t-token"], step="x", target="t", kind="helm", mutating=True,
           manifest="token: s3cr3t-token\n")
    assert shown and not any("s3cr3t-token" in line for line in shown)


def test_long_manifests_are_cut_in_the_cell_but_whole_in_the_record() -> None:
    ex, shown = executor(dry_run=True)
    manifest = "".join(f"line{i}: {i}\n" for i in range(action_text.MANIFEST_LINES + 5))
    ex.call(lambda: None, step="big", target="X/y", manifest=manifest)
    text = "\n".join(shown)
    assert "5 more line(s)" in text and f"line{action_text.MANIFEST_LINES + 4}" not in text
    assert ex.record.actions[0].manifest == manifest




def test_each_kernel_gets_its_own_socket_path(tmp_path) -> None:
    """Two runs side by side must not share jupyter_client's default ``kernel-ipc`` sockets."""
    from runbook_lib.kernels import ipc_kernel_manager

    cls = ipc_kernel_manager(str(tmp_path))
    a, b = cls(kernel_name="python3"), cls(kernel_name="python3")
    assert a.transport == "ipc" and a.ip != b.ip and Path(a.ip).parent == tmp_path
