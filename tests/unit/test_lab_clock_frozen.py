"""The lab's clock stands still inside a tick, so what a tick does cannot depend on how long it takes."""

from __future__ import annotations

import pytest

from runbook_lib.lab import clock as lab_clock
from runbook_lib.lab.clock import Clock


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The real monotonic time the clock reads, moved by the test."""
    t = [1000.0]
    monkeypatch.setattr(lab_clock.time, "monotonic", lambda: t[0])
    return t


def test_time_stands_still_inside_frozen_and_runs_on_after(real: list[float]) -> None:
    clock = Clock(scale=100.0, origin=50.0, _real_origin=real[0])
    assert clock.now() == 50.0
    with clock.frozen() as at:
        real[0] += 2.0  # a busy machine: two real seconds pass inside the tick
        assert clock.now() == at == 50.0
        with clock.frozen() as inner:  # a nested tick keeps the outer instant
            real[0] += 1.0
            assert inner == clock.now() == 50.0
        assert clock.now() == 50.0
    assert clock.now() == 50.0 + 3.0 * 100.0  # afterwards lab time has caught up with real time


def test_a_tick_that_fails_does_not_leave_the_clock_frozen(real: list[float]) -> None:
    clock = Clock(scale=10.0, _real_origin=real[0])
    with pytest.raises(RuntimeError), clock.frozen():
        raise RuntimeError("a controller failed")
    real[0] += 1.0
    assert clock.now() == 10.0


def test_the_saved_clock_carries_on_from_now_not_from_a_frozen_instant(real: list[float]) -> None:
    clock = Clock(scale=100.0, _real_origin=real[0])
    with clock.frozen():
        real[0] += 1.0
        saved = clock.to_dict()
    assert saved["origin"] == 0.0  # saved inside a tick: the tick's instant
    assert Clock.from_dict(clock.to_dict()).origin == 100.0


def test_a_tick_in_one_thread_does_not_freeze_the_clock_other_threads_read(real: list[float]) -> None:
    """Request threads stamp the ``Date`` header outside the lab's lock while the ticker thread may be inside a
    tick: they must read the live clock, or the runbook's view of the cluster's clock takes a stale answer."""
    import threading

    clock = Clock(scale=100.0, _real_origin=real[0])
    inside, release = threading.Event(), threading.Event()

    def tick() -> None:
        with clock.frozen():
            inside.set()
            release.wait(5)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        assert inside.wait(5)
        real[0] += 1.0  # one real second into the other thread's tick
        assert clock.now() == 100.0
    finally:
        release.set()
        ticker.join()
