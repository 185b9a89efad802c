"""Notebook 08: the storage health model as tables, a figure and red flags; it reads and never changes anything.

The same four reads the gates use (:mod:`..storage_gates`), shown instead of judged: every
resource's replicas and their states, resync progress, satellites and HA-controller taints,
pool capacity, and each red flag with what to do about it.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..session import Session
from ..storage_gates import read, skip_reason
from ..storage_health import StorageView, cluster_blockers, red_flags_frame, replicas_frame, satellites_frame

#: replica condition -> colour (and its rank on the colour scale)
CONDITIONS = {"healthy": "#66bb6a", "diskless / tie-breaker": "#bdbdbd", "resyncing": "#ffa726",
              "not connected": "#ab47bc", "problem": "#ef5350", "no replica": "#ffffff"}


def observe(session: Session) -> StorageView | None:
    """The storage view, or None (said so) where LINSTOR is not installed yet."""
    reason = skip_reason(session)
    if reason:
        print(reason.replace("the storage gates are skipped", "there is no storage to show"))
        return None
    view = read(session)
    print(f"{len(view.resources())} resources, {len(view.replicas)} replicas on {len(view.satellites)} LINSTOR nodes")
    return view


def condition(row: pd.Series) -> str:
    if row["kind"] != "diskful" and row["healthy"]:
        return "diskless / tie-breaker"
    if row["healthy"]:
        return "healthy"
    if row["replication"] and any(s in row["replication"] for s in ("Sync", "WFBitMap", "StartingSync")):
        return "resyncing"
    if row["disk_state"] == "UpToDate":
        return "not connected"
    return "problem"


def replicas_table(view: StorageView) -> pd.DataFrame:
    frame = replicas_frame(view)
    return frame.assign(condition=[condition(r) for _, r in frame.iterrows()])


def replicas_figure(view: StorageView, title: str = "Replicas per resource and node") -> go.Figure:
    """A grid: one row per resource, one column per node, coloured by the replica's condition."""
    table = replicas_table(view)
    nodes = sorted(set(view.satellites) | set(table["node"]))
    resources = sorted(table["resource"].unique())
    names = list(CONDITIONS)
    z, text = [], []
    for res in resources:
        rows = table[table["resource"] == res].set_index("node")
        z.append([names.index(rows.loc[n, "condition"]) if n in rows.index else names.index("no replica") for n in nodes])
        text.append([_cell(rows.loc[n]) if n in rows.index else "" for n in nodes])
    steps = len(names) - 1
    scale = [[i / steps, CONDITIONS[name]] for i, name in enumerate(names)]
    fig = go.Figure(go.Heatmap(z=z, x=nodes, y=resources, text=text, texttemplate="%{text}", colorscale=scale,
                               zmin=0, zmax=steps, showscale=False, xgap=3, ygap=3,
                               hovertemplate="%{y} on %{x}<br>%{text}<extra></extra>"))
    for name, color in CONDITIONS.items():  # a legend for the colours
        fig.add_scatter(x=[None], y=[None], mode="markers", marker={"color": color, "size": 12, "symbol": "square"},
                        name=name, showlegend=name != "no replica")
    fig.update_layout(title=title, height=200 + 40 * max(1, len(resources)), yaxis_autorange="reversed",
                      plot_bgcolor="#ffffff")
    return fig


def _cell(row: pd.Series) -> str:
    pct = f" {row['resync_percent']:.0f}%" if pd.notna(row["resync_percent"]) else ""
    return f"{row['disk_state']}{pct}"


def resync_table(view: StorageView) -> pd.DataFrame:
    """Replicas in a resync: who receives from whom and how far it got."""
    rows = [{"resource": r.resource, "node": r.node, "disk_state": r.disk_state,
             "replication": ", ".join(f"{p}: {s}" for p, s in sorted(r.replication.items())),
             "done_percent": r.resync_percent} for r in view.replicas if r.resyncing]
    return pd.DataFrame(rows, columns=["resource", "node", "disk_state", "replication", "done_percent"])


def satellites_table(view: StorageView) -> pd.DataFrame:
    return satellites_frame(view)


def red_flags(session: Session, view: StorageView) -> pd.DataFrame:
    """Every red flag with what to do; a problem that blocks the gates is a failed check (the run fails)."""
    flags = red_flags_frame(view)
    problems = cluster_blockers(view)
    session.check("no storage problems (resync, lost disk, offline satellite, suspended I/O, HA taint)", not problems,
                  "; ".join(b.line() for b in problems) or "none", "none")
    session.result("storage_health", {
        "replicas": replicas_table(view).astype(object).where(lambda f: f.notna(), None).to_dict(orient="records"),
        "satellites": satellites_table(view).to_dict(orient="records"),
        "red_flags": flags.to_dict(orient="records"),
    })
    return flags
