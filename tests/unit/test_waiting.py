"""wait_until: returns the state that satisfied the probe, polls no slower than max_interval, explains timeouts."""

from __future__ import annotations

import pytest

from runbook_lib.errors import WaitTimeout
from runbook_lib.waiting import wait_until


def test_returns_the_state_that_satisfied_the_probe() -> None:
    calls = iter(range(100))
    assert wait_until(lambda: ((n := next(calls)) >= 3, n), what="n >= 3", timeout=10, interval=0.001) == 3


def test_sleeps_never_exceed_max_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("runbook_lib.waiting.time.sleep", slept.append)
    calls = iter(range(100))
    wait_until(lambda: (next(calls) >= 40, None), what="many polls", timeout=3600)
    assert slept and max(slept) <= 0.25
    assert slept == sorted(slept)  # backs off, never speeds up


def test_timeout_names_the_wait_and_the_last_state() -> None:
    with pytest.raises(WaitTimeout) as err:
        wait_until(lambda: (False, "phase=Pending"), what="pod Running", timeout=0.05, interval=0.01)
    assert "pod Running" in str(err.value) and "phase=Pending" in str(err.value)
