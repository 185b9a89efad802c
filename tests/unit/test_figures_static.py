"""Every figure carries a static PNG and a table, pickers use no iframe, and no figure needs a CDN."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.express as px

from runbook_lib import viz

ROOT = Path(__file__).resolve().parents[2]







def test_a_figure_without_its_own_table_gets_the_numbers_it_draws() -> None:
    # 06's resync figure: a step line per scenario, many samples with the same value.
    frame = pd.DataFrame({"scenario": ["node-down"] * 5 + ["quorum-loss"] * 3, "seconds": [0, 1, 2, 3, 4, 0, 1, 2],
                          "UpToDate replicas": [3, 2, 2, 2, 3, 3, 1, 1], "behind": [""] * 8})
    fig = px.line(frame, x="seconds", y="UpToDate replicas", color="scenario", line_shape="hv")
    table = viz.figure_table(fig)
    assert list(table.columns) == ["series", "seconds", "UpToDate replicas"]
    assert table.values.tolist() == [["node-down", 0, 3], ["node-down", 1, 2], ["node-down", 4, 3],
                                     ["quorum-loss", 0, 3], ["quorum-loss", 1, 1]]


def test_the_pickers_first_view_is_the_static_copy_and_holds_no_iframe() -> None:
    results = pd.DataFrame({"storage_class": ["local", "local", "replicated", "replicated"],
                            "pattern": ["randwrite-lat"] * 4, "iteration": [1, 2, 1, 2], "iops": [1.0] * 4,
                            "lat_mean_us": [1.0] * 4, "clat_p50_us": [10.0, 11, 20, 21],
                            "clat_p99_us": [30.0, 31, 40, 41], "clat_p999_us": [50.0, 51, 60, 61]})
    box = viz.bench_explorer(results, "replicated", "randwrite-lat", "p99")
    view = box.children[1]
    shown = view.outputs[0]["data"][viz.PLOTLY_MIMETYPE]
    static = json.loads(viz.percentile_runs_figure(results, "replicated", "randwrite-lat", "p99").to_json())
    assert shown["data"] == static["data"] and shown["layout"]["title"] == static["layout"]["title"]
    assert "iframe" not in json.dumps(view.outputs)
    box.children[0].children[2].value = "p50"
    assert view.outputs[0]["data"][viz.PLOTLY_MIMETYPE]["layout"]["title"]["text"].endswith("p50 completion latency per run")










def test_notebooks_show_figures_only_through_viz_show() -> None:
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"])
            assert ".show()" not in src and "fig.show" not in src and "iplot(" not in src, path.name
            for line in src.splitlines():
                if "_figure(" in line and "viz.show(" not in line and "display(" in line:
                    raise AssertionError(f"{path.name}: figure displayed without viz.show: {line}")






def test_ci_installs_the_browser_packages() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y -qq chromium chromium-driver" in ci
    assert "selenium" in (ROOT / "pyproject.toml").read_text()
