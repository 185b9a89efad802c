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
    # An HTML widget (iframe) instead of an Output widget: displaying into an Output widget
    # intermittently hangs headless execution (nbclient waits forever on the cell).
    view = widgets.HTML()

    def render(change=None) -> None:
        sel = picker.value
        frame = pools if sel is None else pools[(pools["node"] == sel[0]) & (pools["pool"] == sel[1])]
        view.value = _iframe(pool_capacity_figure(frame), capacity_table(frame), height=520)

    picker.observe(render, names="value")
    render()
    return widgets.VBox([picker, view])


# --------------------------------------------------------------------------- 07-benchmarks

CLASS_COLORS = ("#42a5f5", "#ef5350", "#66bb6a", "#ffa726", "#ab47bc")
PERCENTILE_COLUMNS = {"p50": "clat_p50_us", "p99": "clat_p99_us", "p99.9": "clat_p999_us"}


def _class_color(classes: list[str], cls: str) -> str:
    return CLASS_COLORS[classes.index(cls) % len(CLASS_COLORS)]


def latency_percentiles_figure(summary: pd.DataFrame, title: str = "Completion latency percentiles (median of runs)") -> go.Figure:
    """p50 / p99 / p99.9 completion latency per class and pattern (log scale, µs)."""
    classes = list(dict.fromkeys(summary["storage_class"]))
    fig = go.Figure()
    symbols = {"p50": "circle", "p99": "diamond", "p99.9": "x"}
    for cls in classes:
        part = summary[summary["storage_class"] == cls]
        for label, col in PERCENTILE_COLUMNS.items():
            fig.add_scatter(x=part["pattern"], y=part[col], mode="markers+lines", name=f"{cls} {label}",
                            legendgroup=cls, line={"color": _class_color(classes, cls), "width": 1,
                                                   "dash": {"p50": "solid", "p99": "dash", "p99.9": "dot"}[label]},
                            marker={"symbol": symbols[label], "size": 9},
                            hovertemplate=f"{cls} %{{x}} {label}: %{{y:,.0f}} µs<extra></extra>")
    fig.update_layout(title=title, yaxis_type="log", yaxis_title="µs", height=440)
    return fig


def throughput_figure(summary: pd.DataFrame, limits: pd.DataFrame | None, metric: str) -> go.Figure:
    """IOPS (``metric="iops"``) or MB/s (``"bw"``) per pattern and class, min-max over runs, the ceilings drawn."""
    part = summary[summary["metric"] == metric]
    classes = list(dict.fromkeys(summary["storage_class"]))
    scale = 1e6 if metric == "bw" else 1.0
    unit = "MB/s" if metric == "bw" else "IOPS"
    fig = go.Figure()
    for cls in classes:
        rows = part[part["storage_class"] == cls]
        fig.add_bar(x=rows["pattern"], y=rows["value"] / scale, name=cls, marker_color=_class_color(classes, cls),
                    error_y={"type": "data", "symmetric": False, "array": (rows["value_max"] - rows["value"]) / scale,
                             "arrayminus": (rows["value"] - rows["value_min"]) / scale},
                    hovertemplate=f"{cls} %{{x}}: %{{y:,.1f}} {unit}<extra></extra>")
    if limits is not None and not limits.empty:
        lim = limits[(limits["metric"] == metric) & (limits["kind"] == "ceiling")]
        for cls, rows in lim.groupby("storage_class", sort=False):
            fig.add_scatter(x=rows["pattern"], y=rows["limit"] / scale, mode="markers", name=f"ceiling ({cls})",
                            marker={"symbol": "line-ew-open", "size": 60, "line": {"width": 3, "color": "#212121"}},
                            text=rows["basis"], hovertemplate="ceiling %{x}: %{y:,.1f} " + unit + "<br>%{text}<extra></extra>")
    fig.update_layout(barmode="group", title=f"{'Bandwidth' if metric == 'bw' else 'IOPS'} per class (bars: median, "
                      "whiskers: min-max over runs; black: physical ceiling)", yaxis_title=unit, height=420)
    return fig


def spread_figure(results: pd.DataFrame) -> go.Figure:
    """Every run's headline figure as % of the median of its class and pattern: the run-to-run spread."""
    from .bench import HEADLINE

    frame = results.copy()
    frame["value"] = [row[HEADLINE[row["metric"]]] for _, row in frame.iterrows()]
    frame["pct"] = frame["value"] / frame.groupby(["storage_class", "pattern"])["value"].transform("median") * 100
    classes = list(dict.fromkeys(frame["storage_class"]))
    fig = go.Figure()
    for cls in classes:
        rows = frame[frame["storage_class"] == cls]
        fig.add_scatter(x=rows["pattern"], y=rows["pct"], mode="markers", name=cls,
                        marker={"color": _class_color(classes, cls), "size": 9, "opacity": 0.8},
                        text=rows["iteration"].astype(str),
                        hovertemplate=f"{cls} %{{x}} run %{{text}}: %{{y:.1f}} % of median<extra></extra>")
    fig.add_hline(y=100, line_dash="dot", line_color="#9e9e9e")
    fig.update_layout(title="Run-to-run spread (each run as % of the median)", yaxis_title="% of median", height=380)
    return fig


def percentile_runs_figure(results: pd.DataFrame, cls: str, pattern: str, percentile: str) -> go.Figure:
    """One class/pattern: the chosen completion-latency percentile of each run."""
    col = PERCENTILE_COLUMNS[percentile]
    rows = results[(results["storage_class"] == cls) & (results["pattern"] == pattern)]
    fig = go.Figure()
    fig.add_bar(x=rows["iteration"].astype(str), y=rows[col], name=f"{percentile}", marker_color="#42a5f5",
                hovertemplate="run %{x}: %{y:,.0f} µs<extra></extra>")
    fig.update_layout(title=f"{cls} / {pattern}: {percentile} completion latency per run", xaxis_title="run",
                      yaxis_title="µs", height=340)
    return fig


def percentile_runs_table(results: pd.DataFrame, cls: str, pattern: str) -> pd.DataFrame:
    rows = results[(results["storage_class"] == cls) & (results["pattern"] == pattern)]
    return rows[["iteration", "iops", "lat_mean_us", *PERCENTILE_COLUMNS.values()]].round(1).reset_index(drop=True)


def _iframe(fig: go.Figure, table: pd.DataFrame, height: int = 560) -> str:
    """A figure and its table as one self-contained iframe (scripts run in ``srcdoc``, not in a widget's HTML)."""
    import html

    body = fig.to_html(include_plotlyjs="cdn", full_html=True) + table.to_html(index=False)
    return (f'<iframe srcdoc="{html.escape(body, quote=True)}" style="width:100%;height:{height}px;border:0">'
            "</iframe>")


def bench_explorer(results: pd.DataFrame):
    """Pick a class, pattern and percentile; the figure and table follow (static copies are shown beside).

    The view is an HTML widget holding an iframe rather than an ``Output`` widget: nothing is
    displayed from inside a widget callback, so headless execution never waits on widget output.
    """
    import ipywidgets as widgets

    cls = widgets.Dropdown(options=list(dict.fromkeys(results["storage_class"])), description="class")
    pattern = widgets.Dropdown(options=list(dict.fromkeys(results["pattern"])), description="pattern")
    pct = widgets.Dropdown(options=list(PERCENTILE_COLUMNS), value="p99", description="percentile")
    view = widgets.HTML()

    def render(change=None) -> None:
        view.value = _iframe(percentile_runs_figure(results, cls.value, pattern.value, pct.value),
                             percentile_runs_table(results, cls.value, pattern.value))

    for w in (cls, pattern, pct):
        w.observe(render, names="value")
    render()
    return widgets.VBox([widgets.HBox([cls, pattern, pct]), view])
