"""Waiting for the cluster to reach a state, with a deadline and the last state seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import WaitTimeout

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
    """
    start = time.monotonic()
    delay = interval
    last: T | None = None
    seen = False
    while True:
        done, state = probe()
        last, seen = state, True
        if done:
            return state
        if on_progress is not None:
            on_progress(state)
        waited = time.monotonic() - start
        if waited >= timeout:
            raise WaitTimeout(what, waited, describe(last) if seen else "nothing observed")
        time.sleep(min(delay, max(0.0, timeout - waited)))
        delay = min(max_interval, delay * 1.5)
