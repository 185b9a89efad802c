"""The drill's phase timings: each scenario's phases on the cluster's clock, stall and resync from the records."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ...cluster_time import ClusterClock
from ...session import Session
from .observe import Observer, Snapshot
from .writer import Writer

OBSERVED = "observer (first seen)"  # the fallback source: as precise as the observer's polling
FAULT_SOURCE = "the fault request's answer (Date header)"


@dataclass
class DrillResult:
    """One scenario's phases, each on the cluster's clock with the timestamp it came from."""

    scenario: str
    fault: str
    nodes: list[str]
    start: float  # the observer's clock just before the fault was injected
    clock: ClusterClock = field(default_factory=ClusterClock)
    #: {"phase", "at" (cluster clock) or "wall" (observer clock, converted at the end), "source", "detail"}
    phases: list[dict] = field(default_factory=list)
    stall_s: float | None = None
    resync: dict = field(default_factory=dict)
    #: span (cluster clock) in which the writer must not have written: quorum loss, no quorum observed
    frozen: list[float] = field(default_factory=list)

    #: the fault on the cluster's clock, when its request's answer dated it (the lab's control API)
    fault_time: float | None = None

    @property
    def t0(self) -> float:
        """The fault on the cluster's clock."""
        return self.fault_time if self.fault_time is not None else self.clock.at(self.start)

    def fault_at(self, obs: Observer, requests: list[tuple[float, float, float | None]]) -> None:
        """Time the fault by its first request: it took effect after the request left and before the answer, in
        the whole second the answer's ``Date`` names; without a ``Date``, when the request left."""
        if not requests:
            return
        sent, received, date = requests[0]
        self.start = sent
        for r in requests:
            obs.clock.sample(*r)
        if date is not None:
            lo, hi = max(obs.cluster(sent), date), min(obs.cluster(received), date + 1.0)
            self.fault_time = (lo + hi) / 2 if lo <= hi else date + 0.5

    def mark(self, phase: str, at: float | None, detail: str = "", source: str = OBSERVED, *, wall: float | None = None,
             replace: bool = False) -> None:
        """Record ``phase`` once: at cluster time ``at`` (from ``source``), else first seen at observer time ``wall``."""
        if at is None and wall is None:
            return
        if replace:
            self.phases = [p for p in self.phases if p["phase"] != phase]
        if not any(p["phase"] == phase for p in self.phases):
            self.phases.append({"phase": phase, "at": at, "wall": wall, "source": source if at is not None else OBSERVED,
                                "detail": detail})

    def seen(self, phase: str, s: Snapshot, stamp: float | None, source: str, detail: str = "") -> None:
        """``phase`` as an object's timestamp tells it, else as the observation ``s`` first showed it."""
        self.mark(phase, stamp, detail, source, wall=s.at)

    def time_of(self, phase: str) -> float | None:
        """When ``phase`` happened, on the cluster's clock."""
        ph = next((p for p in self.phases if p["phase"] == phase), None)
        if ph is None:
            return None
        return ph["at"] if ph["at"] is not None else self.clock.at(ph["wall"])

    def seconds(self, phase: str) -> float | None:
        """Cluster seconds from the fault to ``phase`` (a phase caused by the fault is never before it: timestamps
        are whole seconds, so one stamped in the fault's second would otherwise read up to -1 s)."""
        at = self.time_of(phase)
        if at is None:
            return None
        delta = at - self.t0
        return round(max(delta, 0.0) if phase not in BEFORE_FAULT else delta, 1)

    def frame(self) -> pd.DataFrame:
        rows = [{"phase": p["phase"], "seconds": self.seconds(p["phase"]), "source": p["source"], "detail": p["detail"]}
                for p in self.phases]
        frame = pd.DataFrame(rows, columns=["phase", "seconds", "source", "detail"])
        return frame.sort_values("seconds", kind="stable").reset_index(drop=True).assign(scenario=self.scenario)


BEFORE_FAULT = {"last write before the stall"}


def written_inside(ordered: list, span: list[float], before: float) -> list:
    """The records whose write completed inside ``span`` (the outage), from records sorted by their stamps.

    The writer takes its stamp and then writes, one record after the other. The write begun within one loop
    interval of the outage's start blocks (suspend-io) and completes only when quorum returns: its stamp falls
    inside the span, yet nothing was written there. Any other record stamped inside the span proves that the record
    before it completed during the outage. The loop interval is the writer's own, measured from its records before
    ``before`` (the fault): the parameter is a lower bound (a busy node, or the lab's pacing, makes it longer).
    """
    steady = sorted(b.stamp - a.stamp for a, b in zip(ordered, ordered[1:], strict=False) if b.stamp < before)
    interval = steady[len(steady) // 2] if steady else 0.0
    inside = [e for e in ordered if span[0] < e.stamp < span[1]]
    if inside and inside[0].stamp <= span[0] + interval:
        inside = inside[1:]  # the blocked write in flight when quorum went
    return inside


def finalize(session: Session, results: list[DrillResult], writer: Writer, obs: Observer) -> None:
    """Timings from the records themselves (the writer's clock), once the file has been read back.

    The I/O stall is the longest gap between consecutive records after the fault: the phase table shows
    both of its ends (the last write before the fault, writes again), so the stall is their difference.
    For quorum loss, no record may carry a time inside the span in which the observer saw the quorum gone.
    """
    entries = {e.line: e for e in [*writer.records.values(), *writer.acks.values()]}
    ordered = sorted(entries.values(), key=lambda e: e.stamp)
    for i, res in enumerate(results):
        t0 = res.t0
        end = results[i + 1].t0 if i + 1 < len(results) else float("inf")
        pairs = [(b.stamp - a.stamp, a, b) for a, b in zip(ordered, ordered[1:], strict=False) if t0 <= b.stamp < end]
        if not pairs:
            continue
        gap, last, first = max(pairs, key=lambda x: x[0])
        res.stall_s = round(gap, 1)
        label = "writes acknowledged again" if res.scenario == "failover" else "writes resumed"
        res.mark("last write before the stall", last.stamp, f"record {last.seq} by {last.pod}", "writer's record stamp")
        res.mark(label, first.stamp, f"record {first.seq} by {first.pod}, after a {res.stall_s} s stall",
                 "writer's record stamp", replace=True)
        back = res.time_of("node back" if res.scenario == "failover" else "nodes back")
        if back is not None and res.resync.get("seconds") is not None:
            # what the returning node missed: the records written while it was away (a lower bound of the data
            # DRBD resyncs, which also covers the file system's own blocks)
            missed = [e for e in entries.values() if t0 <= e.stamp <= back]
            kib = round(sum(len(e.line) + 1 for e in missed) / 1024, 1)
            # LINSTOR's REST API shows no out-of-sync size (drbdsetup status does), so no rate is claimed
            res.resync.update(records=len(missed), kib_at_least=kib)
        if res.scenario == "quorum-loss":
            span = res.frozen if len(res.frozen) == 2 and res.frozen[0] < res.frozen[1] else None
            inside = written_inside(ordered, span, t0) if span else []
            session.check("no write completed while quorum was lost (suspend-io)", span is not None and not inside,
                          f"{len(inside)} records inside the outage" + (f" (first: {min(e.seq for e in inside)})" if inside else "")
                          if span else "the outage was too short to tell on the cluster's clock",
                          "0: I/O froze instead of going on alone")
