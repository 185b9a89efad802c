"""Waiting for the cluster to reach a state, with a deadline, the last state seen and visible progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import WaitTimeout
from .progress import Tracker

T = TypeVar("T")


def wait_until(
    probe: Callable[[], tuple[bool, T]],
    *,
    what: str,
    timeout: float,
    describe: Callable[[T], str] = str,
    interval: float = 0.02,
    max_interval: float = 0.25,
    on_progress: Callable[[T], None] | None = None,
) -> T:
    """Call ``probe`` until it returns ``(True, state)``; return that state.

    Polling starts fast and backs off to ``max_interval``, so the runbook reacts
    quickly to fast changes without hammering a slow cluster: a state is seen at most
    ``max_interval`` (plus one probe) after it is reached, four reads a second at most
    (``python -m benchmarks --only reaction`` measures it). On timeout the error says
    how long it waited and what it saw last.

    Progress (:mod:`runbook_lib.progress`): a bar in a notebook, lines in the terminal of
    ``runbook run``; a wait of a second or more leaves one line in the cell saying how it ended.
    """
    start = time.monotonic()
    tracker = Tracker(what, timeout)
    delay = interval
    last: T | None = None
    seen = False
    try:
        while True:
            done, state = probe()
            last, seen = state, True
            if done:
                _report(tracker.close("reached"), tracker.elapsed)
                return state
            if on_progress is not None:
                on_progress(state)
            tracker.update(state, describe)
            waited = time.monotonic() - start
            if waited >= timeout:
                raise WaitTimeout(what, waited, describe(last) if seen else "nothing observed")
            time.sleep(min(delay, max(0.0, timeout - waited)))
            delay = min(max_interval, delay * 1.5)
    except BaseException as exc:
        tracker.close("timed out" if isinstance(exc, WaitTimeout) else f"stopped ({type(exc).__name__})")
        raise


def _report(line: str, elapsed: float) -> None:
    if elapsed >= 1.0:
        print(f"    waited: {line}")
