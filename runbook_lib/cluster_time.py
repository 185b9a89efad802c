"""The cluster's clock, as a runbook sees it: object timestamps and the API server's ``Date`` header.

Phase times in 06 come from the objects themselves (a node condition's ``lastTransitionTime``, a
taint's ``timeAdded``, a container's ``startedAt``, the writer's record stamps), all on the cluster's
clock. To put the runbook's own observations (when it first saw something, when it injected a fault)
on that clock, :class:`ClusterClock` bounds the offset between the two clocks from every response's
``Date`` header (whole seconds, stamped by the server between the request and the answer). The rate
is known: 1 on a real cluster, ``lab.time_scale`` in the lab, whose clock runs that much faster.
Pure: numbers and strings in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_time(stamp: object) -> float | None:
    """An RFC 3339 timestamp (``2026-01-01T00:00:05Z``, fractions allowed) as Unix seconds; None if it is not one."""
    if not isinstance(stamp, str) or not stamp or len(stamp) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def parse_date_header(value: object) -> float | None:
    """An HTTP ``Date`` header (RFC 9110 IMF-fixdate) as Unix seconds; None if absent or malformed."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass
class ClusterClock:
    """``cluster = rate * observer + offset``, the offset bounded by every ``Date`` sample seen."""

    rate: float = 1.0
    lo: float = -math.inf
    hi: float = math.inf
    samples: int = 0

    def sample(self, sent: float, received: float, date: float | None) -> None:
        """A response to a request sent at ``sent`` and answered by ``received`` (observer clock) said ``date``."""
        if date is None or received < sent:
            return
        lo, hi = date - self.rate * received, date + 1.0 - self.rate * sent
        if lo > self.hi or hi < self.lo:  # the cluster's clock was set (or the rate is off): start over
            self.lo, self.hi = lo, hi
        else:
            self.lo, self.hi = max(self.lo, lo), min(self.hi, hi)
        self.samples += 1

    def at(self, observer: float) -> float:
        """An observer time on the cluster's clock (no sample yet: the two clocks are taken to agree)."""
        if not self.samples:
            return observer * self.rate
        return self.rate * observer + (self.lo + self.hi) / 2

    def uncertainty(self) -> float:
        """Half the width of the offset's bounds, in cluster seconds: how far :meth:`at` can be off."""
        return (self.hi - self.lo) / 2 if self.samples else math.inf
