"""Figures, each shown interactive, as a static image and as a table.

One output per figure carries the plotly mimetype (JupyterLab's plotly extension and VS Code
draw it, with plotly.js from the extension, not a CDN) and a PNG of the same figure (what
GitHub, GitLab, nbviewer and an HTML export show); its table follows. Pickers are ipywidgets
whose view is an ``Output`` widget holding the same plotly mimetype, so they too need no CDN.
"""

from __future__ import annotations

import base64
import json
import warnings

import pandas as pd
import plotly.graph_objects as go

from . import figure_export
from .bench_analysis import HEADLINE

#: imported on first use (runbook_lib.warm_up): the explorers' widgets and plotly express
WARM_UP_IMPORTS = ("ipywidgets", "plotly.express")

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

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
    """Display ``fig`` with its static image, then its table (``figure_table(fig)`` when none is given).

    JupyterLab and VS Code draw the interactive figure from the plotly mimetype (JupyterLab's
    plotly extension ships plotly.js: no CDN); GitHub, GitLab, nbviewer and an HTML export,
    which run no plotly.js, show the PNG of the same output.
    """
    from IPython.display import display

    data, metadata = figure_bundle(fig)
    display(data, metadata=metadata, raw=True)
    display(figure_table(fig) if table is None else table)


def figure_bundle(fig: go.Figure, *, static: bool = True) -> tuple[dict, dict]:
    """The display data and metadata of one figure: plotly JSON, a PNG (when ``static``) and a text line."""
    with warnings.catch_warnings():
        # pandas timestamps carry nanoseconds plotly cannot show; microseconds are plenty on a figure
        warnings.filterwarnings("ignore", message="Discarding nonzero nanoseconds")
        spec = json.loads(fig.to_json())
    title = (spec.get("layout", {}).get("title") or {}).get("text") or "untitled"
    data = {PLOTLY_MIMETYPE: spec, "text/plain": f"<figure: {title}>"}
    metadata: dict = {}
    if static:
        try:
            image = figure_export.png(spec)
        except figure_export.StaticExportUnavailable as exc:
            data["text/plain"] = f"<figure: {title}; no static image: {exc}>"
            warnings.warn(f"figures have no static image: {exc}", stacklevel=3)
        else:
            data["image/png"] = base64.b64encode(image).decode("ascii")
            layout = spec.get("layout", {})
            metadata["image/png"] = {"width": layout.get("width") or figure_export.DEFAULT_SIZE[0]}
    return data, metadata


def figure_table(fig: go.Figure) -> pd.DataFrame:
    """The numbers a figure draws, one row per point: series, x and y (axis titles as column names).

    Step lines (``line_shape="hv"``) keep only the points where the value changes.
    """
    layout = fig.layout
    x_name = layout.xaxis.title.text or "x"
    y_name = layout.yaxis.title.text or "y"
    if y_name == x_name:
        y_name = f"{y_name} (y)"
    frames = []
    for trace in fig.data:
        x, y = getattr(trace, "x", None), getattr(trace, "y", None)
        if x is None or y is None:
            continue
        part = pd.DataFrame({"series": trace.name or "", x_name: list(x), y_name: list(y)})
        line = getattr(trace, "line", None)
        if line is not None and line.shape == "hv":
            part = part[part[y_name].ne(part[y_name].shift())]
        frames.append(part)
    if not frames:
        return pd.DataFrame(columns=["series", x_name, y_name])
    return pd.concat(frames, ignore_index=True)


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
    """A picker of node and pool (first choice: all pools, as the static copy shown above it)."""
    import ipywidgets as widgets

    options = [("all", None)] + [(f"{n} / {p}", (n, p)) for n, p in zip(pools["node"], pools["pool"], strict=True)]
    picker = widgets.Dropdown(options=options, value=None, description="pool")
    view = widgets.Output()

    def render(change=None) -> None:
        sel = picker.value
        frame = pools if sel is None else pools[(pools["node"] == sel[0]) & (pools["pool"] == sel[1])]
        show_in(view, pool_capacity_figure(frame), capacity_table(frame))

    picker.observe(render, names="value")
    render()
    return widgets.VBox([picker, view])


def show_in(view, fig: go.Figure, table: pd.DataFrame) -> None:
    """Replace an ``Output`` widget's content with ``fig`` (plotly mimetype) and ``table``.

    The outputs are set on the widget's state rather than captured with ``with view:``:
    nothing is displayed from inside a widget callback, so headless execution (nbclient)
    never waits on widget output, and the front end renders them like cell outputs.
    """
    data, _ = figure_bundle(fig, static=False)
    view.outputs = (
        {"output_type": "display_data", "data": data, "metadata": {}},
        {"output_type": "display_data", "metadata": {},
         "data": {"text/html": table.to_html(index=False), "text/plain": table.to_string(index=False)}},
    )


CLASS_COLORS = ("#42a5f5", "#ef5350", "#66bb6a", "#ffa726", "#ab47bc")
CEILING_COLOR = "#212121"  # an open marker is drawn in marker.color: set both, or it takes the class colour
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
                            marker={"symbol": "line-ew-open", "size": 60, "color": CEILING_COLOR,
                                    "line": {"width": 3, "color": CEILING_COLOR}},
                            text=rows["basis"], hovertemplate="ceiling %{x}: %{y:,.1f} " + unit + "<br>%{text}<extra></extra>")
    fig.update_layout(barmode="group", title=f"{'Bandwidth' if metric == 'bw' else 'IOPS'} per class (bars: median, "
                      "whiskers: min-max over runs; black: physical ceiling)", yaxis_title=unit, height=420)
    return fig


def throughput_table(summary: pd.DataFrame, limits: pd.DataFrame | None, metric: str) -> pd.DataFrame:
    """The numbers ``throughput_figure`` draws: median, min and max over runs and the ceiling, per class and pattern."""
    scale, unit = (1e6, "MB/s") if metric == "bw" else (1.0, "IOPS")
    part = summary[summary["metric"] == metric]
    out = pd.DataFrame({"storage_class": part["storage_class"], "pattern": part["pattern"],
                        f"median {unit}": part["value"] / scale, f"min {unit}": part["value_min"] / scale,
                        f"max {unit}": part["value_max"] / scale})
    if limits is not None and not limits.empty:
        lim = limits[(limits["metric"] == metric) & (limits["kind"] == "ceiling")]
        lim = pd.DataFrame({"storage_class": lim["storage_class"], "pattern": lim["pattern"],
                            f"ceiling {unit}": lim["limit"] / scale, "ceiling basis": lim["basis"]})
        out = out.merge(lim, on=["storage_class", "pattern"], how="left")
    return out.round(1).reset_index(drop=True)


def spread_figure(results: pd.DataFrame) -> go.Figure:
    """Every run's headline figure as % of the median of its class and pattern: the run-to-run spread."""
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


def bench_explorer(results: pd.DataFrame, cls: str, pattern: str, percentile: str = "p99"):
    """Pick a class, pattern and percentile; the first choice is the given one (the static copy's)."""
    import ipywidgets as widgets

    cls_pick = widgets.Dropdown(options=list(dict.fromkeys(results["storage_class"])), value=cls, description="class")
    pattern_pick = widgets.Dropdown(options=list(dict.fromkeys(results["pattern"])), value=pattern,
                                    description="pattern")
    pct_pick = widgets.Dropdown(options=list(PERCENTILE_COLUMNS), value=percentile, description="percentile")
    view = widgets.Output()

    def render(change=None) -> None:
        show_in(view, percentile_runs_figure(results, cls_pick.value, pattern_pick.value, pct_pick.value),
                percentile_runs_table(results, cls_pick.value, pattern_pick.value))

    for w in (cls_pick, pattern_pick, pct_pick):
        w.observe(render, names="value")
    render()
    return widgets.VBox([widgets.HBox([cls_pick, pattern_pick, pct_pick]), view])


def replica_placement_figure(frame: pd.DataFrame) -> go.Figure:
    """04: which node holds which replica of each test volume (diskful, diskless, tiebreaker)."""
    kind = frame.apply(lambda r: "tiebreaker" if r["tiebreaker"] else "diskless" if r["diskless"] else "diskful", axis=1)
    frame = frame.assign(kind=kind, label=frame["storage_class"])
    fig = go.Figure()
    colors = {"diskful": "#42a5f5", "diskless": "#ffca28", "tiebreaker": "#bdbdbd"}
    for k, part in frame.groupby("kind"):
        fig.add_scatter(x=part["node"], y=part["label"], mode="markers", name=k,
                        marker={"size": 22, "color": colors[k], "symbol": "square"},
                        text=part["disk_state"].astype(str), hovertemplate="%{y} on %{x}: %{text}<extra></extra>")
    fig.update_layout(title="Replica placement of the test volumes", height=320, xaxis_title="node",
                      yaxis_title="storage class")
    return fig


def pool_space_figure(frame: pd.DataFrame) -> go.Figure:
    """05: used space per node in the pool before the snapshot, after it, and after the restore."""
    fig = go.Figure()
    for moment, part in frame.groupby("moment", sort=False):
        fig.add_bar(x=part["node"], y=part["used_bytes"] / 2**20, name=moment)
    fig.update_layout(title="Pool space used (MiB): source volume, snapshot, restored volume", barmode="group",
                      height=320, xaxis_title="node", yaxis_title="MiB used")
    return fig


def drill_phases_figure(frame: pd.DataFrame) -> go.Figure:
    """06: each scenario's phases on one line, in cluster seconds after the fault."""
    fig = go.Figure()
    for scenario, rows in frame.groupby("scenario", sort=False):
        fig.add_trace(go.Scatter(x=rows["seconds"], y=[scenario] * len(rows), mode="markers+text", text=rows["phase"],
                                 textposition="top center", name=scenario, hovertext=rows["detail"]))
    fig.update_layout(title="Failover phases (cluster seconds after the fault)", xaxis_title="seconds after the fault",
                      height=360, showlegend=False)
    return fig


def resync_figure(frame: pd.DataFrame) -> go.Figure:
    """06: UpToDate diskful replicas over time after each fault (a step line per scenario)."""
    import plotly.express as px

    fig = px.line(frame, x="seconds", y="UpToDate replicas", color="scenario", line_shape="hv", hover_data=["behind"],
                  title="UpToDate diskful replicas after the fault")
    fig.update_layout(height=360)
    return fig
