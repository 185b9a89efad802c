"""Accelerated lab time.

Lab durations (a reboot takes 45 lab seconds) are real Talos-like numbers; the
clock runs ``scale`` lab seconds per real second so a whole suite finishes fast.
Events keep their order because every duration is divided by the same factor.
Inside one tick the clock stands still (:meth:`Clock.frozen`): every controller of the tick sees the same
instant, however long the tick takes on a busy machine, so the order of what happens in it never depends on
the machine's load.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Clock:
    scale: float = 100.0
    #: lab time at ``_real_origin``; persisted so a restarted lab keeps its history
    origin: float = 0.0
    _real_origin: float = field(default_factory=time.monotonic, repr=False)
    _frozen_at: float | None = field(default=None, repr=False)

    def now(self) -> float:
        """Lab seconds since the lab was created (the tick's instant while a tick runs)."""
        if self._frozen_at is not None:
            return self._frozen_at
        return self.origin + (time.monotonic() - self._real_origin) * self.scale

    @contextlib.contextmanager
    def frozen(self) -> Iterator[float]:
        """Lab time stands still inside: one tick happens at one instant. Nested use keeps the outer instant."""
        if self._frozen_at is not None:
            yield self._frozen_at
            return
        self._frozen_at = self.now()
        try:
            yield self._frozen_at
        finally:
            self._frozen_at = None

    def real_seconds(self, lab_seconds: float) -> float:
        """How long ``lab_seconds`` takes in real time."""
        return lab_seconds / self.scale

    def to_dict(self) -> dict:
        return {"scale": self.scale, "origin": self.now()}

    @classmethod
    def from_dict(cls, data: dict) -> Clock:
        return cls(scale=float(data["scale"]), origin=float(data["origin"]))
