"""The drill's results as tables, pure: phases, one summary row per scenario, resync progress."""

from __future__ import annotations

import pandas as pd

from ...drill_records import (
    Verdict,
)
from .observe import Observer
from .timings import DrillResult


def phases_frame(results: list[DrillResult]) -> pd.DataFrame:
    return pd.concat([r.frame() for r in results], ignore_index=True) if results else pd.DataFrame()


def summary_frame(results: list[DrillResult], verdict: Verdict | None) -> pd.DataFrame:
    """One row per scenario; every time in it is a phase of :func:`phases_frame` or a difference of two."""
    rows = []
    for r in results:
        back = "writes acknowledged again" if r.scenario == "failover" else "writes resumed"
        rows.append({"scenario": r.scenario, "fault": f"{r.fault} {', '.join(r.nodes)}",
                     "writes back (s after the fault)": r.seconds(back), "I/O stall (s)": r.stall_s,
                     "resync (s after the node was back)": r.resync.get("seconds"),
                     "records to resync": r.resync.get("records"), "record KiB to resync": r.resync.get("kib_at_least"),
                     "lost records": verdict.lost_records if verdict else None,
                     "integrity": (verdict.summary() if verdict else "not verified")})
    return pd.DataFrame(rows)


def resync_frame(obs: Observer, results: list[DrillResult]) -> pd.DataFrame:
    """Replicas not UpToDate over time, per scenario (from the observer's samples)."""
    rows = []
    for r in results:
        for sample in obs.samples:
            if sample["t"] < r.start:
                continue
            behind = [x["node"] for x in sample["replicas"] if x["disk_state"] != "UpToDate"]
            rows.append({"scenario": r.scenario, "seconds": round(obs.cluster(sample["t"]) - r.t0, 1),
                         "UpToDate replicas": len(sample["replicas"]) - len(behind), "behind": ", ".join(behind)})
    return pd.DataFrame(rows)
