"""Figures and their static companions.

Every figure is shown as a plotly figure (interactive in JupyterLab, and rendered by
``nbconvert --to html`` from its HTML output) together with a static table, so an
executed notebook opened without a kernel still shows the numbers.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

PARTITION_COLORS = {
    "EFI": "#9e9e9e", "BIOS": "#bdbdbd", "META": "#757575", "STATE": "#616161",
    "EPHEMERAL": "#42a5f5", "(free)": "#eeeeee",
}
USER_VOLUME_COLOR = "#66bb6a"


def disk_layout_figure(frame: pd.DataFrame, title: str = "Disk layout per node") -> go.Figure:
    """Horizontal stacked bars: one bar per node and disk, one segment per partition (GiB)."""
    fig = go.Figure()
    frame = frame.assign(bar=frame["node"] + " " + frame["disk"].fillna(""))
    for label in dict.fromkeys(frame["label"]):
        part = frame[frame["label"] == label]
        fig.add_bar(
            y=part["bar"], x=part["size_gib"], name=label or "(unlabelled)", orientation="h",
            marker_color=PARTITION_COLORS.get(label, USER_VOLUME_COLOR if label.startswith("u-") else None),
            text=[f"{label} {s:.0f} GiB" for s in part["size_gib"]], textposition="inside",
            hovertemplate="%{y}<br>" + label + ": %{x:.1f} GiB<extra></extra>",
        )
    fig.update_layout(barmode="stack", title=title, xaxis_title="GiB", yaxis_autorange="reversed",
                      height=160 + 60 * frame["bar"].nunique(), legend_traceorder="normal")
    return fig


def show(fig: go.Figure, table: pd.DataFrame | None = None) -> None:
    """Display ``fig`` so it survives without a kernel, then its static table."""
    from IPython.display import display

    bundle = {
        "application/vnd.plotly.v1+json": fig.to_plotly_json(),
        "text/html": fig.to_html(include_plotlyjs="cdn", full_html=False),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }
    display(bundle, raw=True)
    if table is not None:
        display(table)


def timeline_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Gantt-style bars: one per row of ``frame`` (columns ``node``, ``start``, ``finish``, ``seconds``)."""
    fig = go.Figure()
    for _, row in frame.iterrows():
        fig.add_bar(y=[row["node"]], x=[(row["finish"] - row["start"]).total_seconds() * 1000], base=[row["start"]],
                    orientation="h", name=row["node"], text=[f"{row['seconds']:.1f} s"], textposition="inside",
                    hovertemplate=f"{row['node']}: {row['seconds']:.1f} s<extra></extra>")
    fig.update_layout(title=title, xaxis_type="date", showlegend=False, yaxis_autorange="reversed",
                      height=160 + 50 * len(frame))
    return fig


def pool_capacity_figure(pools: pd.DataFrame, title: str = "Storage pool capacity") -> go.Figure:
    """Used and free GiB per node and pool as stacked bars."""
    frame = pools.assign(label=pools["node"] + " / " + pools["pool"],
                         used=pools["used_bytes"].astype("float") / 2**30, free=pools["free_bytes"].astype("float") / 2**30)
    fig = go.Figure()
    fig.add_bar(x=frame["label"], y=frame["used"], name="used", marker_color="#ef5350",
                hovertemplate="%{x}: %{y:.1f} GiB used<extra></extra>")
    fig.add_bar(x=frame["label"], y=frame["free"], name="free", marker_color="#66bb6a",
                hovertemplate="%{x}: %{y:.1f} GiB free<extra></extra>")
    fig.update_layout(barmode="stack", title=title, yaxis_title="GiB", height=380)
    return fig


def capacity_table(pools: pd.DataFrame) -> pd.DataFrame:
    out = pools[["node", "pool", "provider_kind", "supports_snapshots"]].copy()
    for col in ("total_bytes", "used_bytes", "free_bytes"):
        out[col.replace("_bytes", "_gib")] = (pools[col].astype("float") / 2**30).round(1)
    return out


def pool_capacity_explorer(pools: pd.DataFrame):
    """An ipywidget to pick a node and pool; the static figure and table are shown beside it."""
    import ipywidgets as widgets

    options = [("all", None)] + [(f"{n} / {p}", (n, p)) for n, p in zip(pools["node"], pools["pool"], strict=True)]
    picker = widgets.Dropdown(options=options, description="pool")
    out = widgets.Output()

    def render(change=None) -> None:
        sel = picker.value
        frame = pools if sel is None else pools[(pools["node"] == sel[0]) & (pools["pool"] == sel[1])]
        out.clear_output(wait=True)
        with out:
            show(pool_capacity_figure(frame))

    picker.observe(render, names="value")
    render()
    return widgets.VBox([picker, out])
