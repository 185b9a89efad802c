"""Every figure carries a static PNG and a table, pickers use no iframe, and no figure needs a CDN."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import plotly.express as px
import pytest

from runbook_lib import figure_export, viz

from . import executed

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
needs_browser = pytest.mark.skipif(figure_export.browser_path() is None,
                                   reason="no Chromium: .ci/run installs the Debian package chromium")

POOLS = pd.DataFrame({
    "node": ["lab-cp-1", "lab-cp-2", "lab-cp-3"], "pool": ["linstor-pool"] * 3, "provider_kind": ["ZFS"] * 3,
    "supports_snapshots": [True] * 3, "total_bytes": [400 * 2**30] * 3,
    "used_bytes": [10 * 2**30, 12 * 2**30, 0], "free_bytes": [390 * 2**30, 388 * 2**30, 400 * 2**30],
})


def png_size(image: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (PNG spec, 11.2.2)."""
    assert image[:8] == PNG_SIGNATURE
    return struct.unpack(">II", image[16:24])


def figure_outputs(nb: dict) -> list[tuple[int, dict]]:
    return [(i, out) for i, cell in enumerate(nb["cells"]) for out in cell.get("outputs", [])
            if viz.PLOTLY_MIMETYPE in out.get("data", {})]


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


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


@needs_browser
def test_the_browser_drawing_figures_does_not_inherit_the_runbook_secrets(monkeypatch) -> None:
    figure_export.stop()  # the next figure starts a browser, inside the environment set here
    monkeypatch.setenv("RUNBOOK_SECRETS", '{"token": "F2SENTINEL"}')
    figure_export.png({"data": [{"type": "bar", "y": [1]}], "layout": {}})
    assert os.environ["RUNBOOK_SECRETS"] == '{"token": "F2SENTINEL"}'  # the kernel keeps it
    browsers = []
    for pid in descendants(os.getpid()):
        try:
            cmdline, environ = Path(f"/proc/{pid}/cmdline").read_bytes(), Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"chrom" in cmdline:
            browsers.append(pid)
            assert b"F2SENTINEL" not in environ and b"RUNBOOK_SECRETS" not in environ, cmdline[:200]
    assert browsers, "no browser process found under this process"


@needs_browser
def test_a_figure_output_has_plotly_json_and_a_png_at_its_layout_size() -> None:
    fig = viz.pool_capacity_figure(POOLS)
    data, metadata = viz.figure_bundle(fig)
    assert data[viz.PLOTLY_MIMETYPE]["layout"]["title"]["text"] == "Storage pool capacity"
    width, height = png_size(base64.b64decode(data["image/png"]))
    assert (width, height) == (900 * figure_export.PNG_SCALE, 380 * figure_export.PNG_SCALE)
    assert metadata["image/png"]["width"] == 900
    # No text/html: a renderer that prefers HTML (nbconvert, GitHub) must fall back to the PNG.
    assert set(data) == {viz.PLOTLY_MIMETYPE, "image/png", "text/plain"}


def test_a_browser_that_cannot_start_leaves_the_json_and_says_why_there_is_no_image() -> None:
    script = textwrap.dedent("""
        import warnings
        from runbook_lib import viz
        import plotly.graph_objects as go
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data, _ = viz.figure_bundle(go.Figure(go.Bar(y=[1]), layout_title_text="t"))
            again, _ = viz.figure_bundle(go.Figure(go.Bar(y=[2]), layout_title_text="u"))
        assert "image/png" not in data and viz.PLOTLY_MIMETYPE in data, data.keys()
        assert "no static image: the browser could not be started" in data["text/plain"], data["text/plain"]
        assert "no static image" in again["text/plain"]
        assert any("no static image" in str(w.message) for w in caught)
    """)
    env = {**os.environ, "BROWSER_PATH": "/nonexistent/chromium", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_notebooks_show_figures_only_through_viz_show() -> None:
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"])
            assert ".show()" not in src and "fig.show" not in src and "iplot(" not in src, path.name
            for line in src.splitlines():
                if "_figure(" in line and "viz.show(" not in line and "display(" in line:
                    raise AssertionError(f"{path.name}: figure displayed without viz.show: {line}")


@needs_browser
@pytest.mark.after_notebooks
def test_every_executed_figure_has_a_png_and_a_table_and_no_cdn(tmp_path) -> None:
    notebooks = executed.all_executed(tmp_path)
    counts = {}
    for name, path in notebooks.items():
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        for i, out in figure_outputs(nb):
            title = out["data"]["text/plain"]
            assert "image/png" in out["data"], f"{name} cell {i}: {title} has no static image"
            assert png_size(base64.b64decode(out["data"]["image/png"]))[0] > 0
            following = cells[i]["outputs"][cells[i]["outputs"].index(out) + 1:]
            assert following and "text/html" in following[0].get("data", {}) and "<table" in "".join(
                following[0]["data"]["text/html"]), f"{name} cell {i}: {title} has no table after it"
        counts[name] = len(figure_outputs(nb))
        text = path.read_text()
        assert "cdn.plot.ly" not in text and "<iframe" not in text, name
    # 01: before/after; 02: downtime; 03: pools; 04: placement; 05: pool space; 06: phases, resync; 07: five
    assert counts == {"01-partition": 2, "02-extensions-and-upgrade": 1, "03-piraeus-install": 1,
                      "04-storage-classes": 1, "05-snapshots": 1, "06-failover-drill": 2, "07-benchmarks": 5,
                      "08-storage-health": 2}


@pytest.mark.after_notebooks
def test_executed_notebooks_are_strict_json(tmp_path) -> None:
    """JavaScript readers (JupyterLab, GitHub, nbviewer) reject Python's bare NaN/Infinity tokens."""
    def refuse(token: str):
        raise ValueError(token)

    for name, path in executed.all_executed(tmp_path).items():
        try:
            json.loads(path.read_text(), parse_constant=refuse)
        except ValueError as exc:
            raise AssertionError(f"{name}: {exc} in the executed notebook: JupyterLab cannot open it") from None


def test_ci_installs_the_browser_packages() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y -qq chromium chromium-driver" in ci
    assert "selenium" in (ROOT / "pyproject.toml").read_text()
