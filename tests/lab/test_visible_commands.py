"""Commands run as real processes show their quoted argv, outcome and duration."""

from __future__ import annotations

import pytest

from runbook_lib.errors import CommandError
from tests.unit.test_visible_plans import PY, executor


def test_applied_command_shows_the_quoted_argv_outcome_and_duration() -> None:
    ex, shown = executor(dry_run=False)
    ex.run([PY, "-c", "print('a b')"], step="write thing", target="n1", mutating=True)
    text = "\n".join(shown)
    assert f"$ {PY} -c 'print('\"'\"'a b'\"'\"')'" in text  # shlex quoting, pasteable into a shell
    assert ">>> write thing (talosctl on n1)" in text
    assert "applied in " in text and "(exit 0)" in text
    assert "would" not in text


def test_failed_command_and_api_call_say_failed() -> None:
    ex, shown = executor(dry_run=False)
    with pytest.raises(CommandError):
        ex.run([PY, "-c", "raise SystemExit(3)"], step="bad", target="n1", mutating=True)
    with pytest.raises(ZeroDivisionError):
        ex.call(lambda: 1 / 0, step="api", target="Pod/p", manifest="kind: Pod\n")
    text = "\n".join(shown)
    assert "FAILED in" in text and "(exit 3)" in text and "ZeroDivisionError" in text

