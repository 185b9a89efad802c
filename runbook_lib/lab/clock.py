"""Accelerated lab time.

Lab durations (a reboot takes 45 lab seconds) are real Talos-like numbers; the
clock runs ``scale`` lab seconds per real second so a whole suite finishes fast.
Events keep their order because every duration is divided by the same factor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Clock:
    scale: float = 100.0
    #: lab time at ``_real_origin``; persisted so a restarted lab keeps its history
    origin: float = 0.0
    _real_origin: float = field(default_factory=time.monotonic, repr=False)

    def now(self) -> float:
        """Lab seconds since the lab was created."""
        return self.origin + (time.monotonic() - self._real_origin) * self.scale

    def real_seconds(self, lab_seconds: float) -> float:
        """How long ``lab_seconds`` takes in real time."""
        return lab_seconds / self.scale

    def to_dict(self) -> dict:
        return {"scale": self.scale, "origin": self.now()}

    @classmethod
    def from_dict(cls, data: dict) -> Clock:
        return cls(scale=float(data["scale"]), origin=float(data["origin"]))
