"""Accelerated lab time.

Lab durations (a reboot takes 45 lab seconds) are real Talos-like numbers; the
clock runs ``scale`` lab seconds per real second so a whole suite finishes fast.
Events keep their order because every duration is divided by the same factor.
Inside one tick the clock stands still (:meth:`Clock.frozen`): every controller of the tick sees the same
instant, however long the tick takes on a busy machine, so the order of what happens in it never depends on
the machine's load. It stands still only for the thread running the tick: a request thread stamping its answer's
``Date`` meanwhile reads the live clock (a stale ``Date`` would mislead the runbook's view of the cluster's clock).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Clock:
    scale: float = 100.0
    #: lab time at ``_real_origin``; persisted so a restarted lab keeps its history
    origin: float = 0.0
    _real_origin: float = field(default_factory=time.monotonic, repr=False)
    #: the tick's instant, for the thread running the tick
    _frozen: threading.local = field(default_factory=threading.local, repr=False)

    def now(self) -> float:
        """Lab seconds since the lab was created (the tick's instant inside this thread's tick)."""
        frozen = getattr(self._frozen, "at", None)
        if frozen is not None:
            return frozen
        return self.origin + (time.monotonic() - self._real_origin) * self.scale

    @contextlib.contextmanager
    def frozen(self) -> Iterator[float]:
        """Lab time stands still inside, for this thread: one tick happens at one instant. Nested use keeps the
        outer instant."""
        outer = getattr(self._frozen, "at", None)
        if outer is not None:
            yield outer
            return
        self._frozen.at = self.now()
        try:
            yield self._frozen.at
        finally:
            self._frozen.at = None

    def real_seconds(self, lab_seconds: float) -> float:
        """How long ``lab_seconds`` takes in real time."""
        return lab_seconds / self.scale

    def to_dict(self) -> dict:
        return {"scale": self.scale, "origin": self.now()}

    @classmethod
    def from_dict(cls, data: dict) -> Clock:
        return cls(scale=float(data["scale"]), origin=float(data["origin"]))
