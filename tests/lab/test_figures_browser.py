"""Static figure images drawn by the system Chromium (kaleido)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from runbook_lib import figure_export, viz
from tests.figure_checks import needs_browser, png_size
from tests.lab_helpers import ROOT

POOLS = pd.DataFrame({
    "node": ["lab-cp-1", "lab-cp-2", "lab-cp-3"], "pool": ["linstor-pool"] * 3, "provider_kind": ["ZFS"] * 3,
    "supports_snapshots": [True] * 3, "total_bytes": [400 * 2**30] * 3,
    "used_bytes": [10 * 2**30, 12 * 2**30, 0], "free_bytes": [390 * 2**30, 388 * 2**30, 400 * 2**30],
})


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


@needs_browser
def test_prepare_starts_in_the_background_the_one_browser_the_figures_use() -> None:
    figure_export.stop()
    figure_export.prepare()
    starting = figure_export._state["starting"]
    figure_export.prepare()  # a second call starts nothing more
    assert figure_export._state["starting"] is starting and starting is not None
    starting.join(figure_export.START_TIMEOUT_S)
    renderer = figure_export._state["renderer"]
    assert renderer is not None  # running before any figure asked for it
    figure_export.png({"data": [{"type": "bar", "y": [1]}], "layout": {}})
    assert figure_export._state["renderer"] is renderer
    assert len([p for p in descendants(os.getpid()) if b"_unix_pipe_chromium_wrapper" in _cmdline(p)]) == 1  # one browser


@needs_browser
def test_a_tab_whose_page_script_is_missing_draws_on_the_second_try() -> None:
    """kaleido 1.4/1.5 can keep the blank page's JavaScript context when its tab first opens on a busy machine
    (Runtime.enable after Page.navigate): calc_fig then fails with "kaleido_scopes is not defined". Here the
    script is removed from the tab's page, which fails the same way, and then the tab is given a context that is
    gone. Each time figure_export asks the tab, reloads it until its script answers, and draws again."""
    figure_export.stop()
    renderer = figure_export._renderer()
    (tab,) = renderer.kaleido.tabs_ready._queue  # one tab, waiting in kaleido's queue

    async def remove_script():
        await tab.tab.send_command("Runtime.evaluate", params={"expression": "delete window.kaleido_scopes",
                                                                "contextId": tab._current_js_id})

    renderer._call(remove_script(), 30)
    png = figure_export.png({"data": [{"type": "bar", "y": [1]}], "layout": {}})
    assert png_size(png) == (900 * figure_export.PNG_SCALE, 450 * figure_export.PNG_SCALE)
    tab._current_js_id = 0  # a context that is gone (as the blank page's is once the page has loaded)
    png = figure_export.png({"data": [{"type": "bar", "y": [2]}], "layout": {}})
    assert png_size(png) == (900 * figure_export.PNG_SCALE, 450 * figure_export.PNG_SCALE)


def _logging_reloads(tab, log: list[str]) -> None:
    reload = tab.reload

    async def logged_reload():
        log.append("reloaded")
        await reload()

    tab.reload = logged_reload


def _evaluate(renderer, tab, expression: str):
    async def ask():
        answer = await tab.tab.send_command("Runtime.evaluate", params={
            "expression": expression, "contextId": tab._current_js_id, "returnByValue": True})
        return answer["result"]["result"].get("value")

    return renderer._call(ask(), 30)


@needs_browser
def test_figures_are_drawn_one_after_another_in_the_page_the_tab_loaded_once() -> None:
    """kaleido 1.5 reloads its tab after every figure; figure_export keeps the page (and plotly.js in it). A mark
    left in the page survives three figures, each has its own size, and no plot is left behind in the page."""
    figure_export.stop()
    renderer = figure_export._renderer()
    (tab,) = renderer.kaleido.tabs_ready._queue
    log: list[str] = []
    _logging_reloads(tab, log)
    _evaluate(renderer, tab, "window.runbookMark = 'kept'")
    try:
        for width, height in ((400, 300), (500, 200), (640, 480)):
            png = figure_export.png({"data": [{"type": "bar", "y": [width]}], "layout": {"width": width,
                                                                                          "height": height}})
            assert png_size(png) == (width * figure_export.PNG_SCALE, height * figure_export.PNG_SCALE)
        assert log == []
        assert _evaluate(renderer, tab, "window.runbookMark") == "kept"
        assert _evaluate(renderer, tab, "document.querySelectorAll('.js-plotly-plot').length") == 0
    finally:
        figure_export.stop()


@needs_browser
def test_after_a_figure_that_failed_its_tab_is_reloaded_and_the_next_figure_is_drawn() -> None:
    figure_export.stop()
    renderer = figure_export._renderer()
    (tab,) = renderer.kaleido.tabs_ready._queue
    log: list[str] = []
    _logging_reloads(tab, log)
    calc = tab._calc_fig

    async def failing_once(*args, **kwargs):
        tab._calc_fig = calc
        raise RuntimeError("the page's script threw")

    tab._calc_fig = failing_once
    try:
        with pytest.raises(RuntimeError, match="the page's script threw"):
            figure_export.png({"data": [{"type": "bar", "y": [1]}], "layout": {}})
        assert log == ["reloaded"]
        png = figure_export.png({"data": [{"type": "bar", "y": [2]}], "layout": {"width": 300, "height": 200}})
        assert png_size(png) == (300 * figure_export.PNG_SCALE, 200 * figure_export.PNG_SCALE)
        assert log == ["reloaded"]
    finally:
        figure_export.stop()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_browser_that_cannot_start_leaves_the_json_and_says_why_there_is_no_image() -> None:
    script = textwrap.dedent("""
        import warnings
        from runbook_lib import figure_export, viz
        import plotly.graph_objects as go
        figure_export.prepare()  # a start in the background that fails is reported by the first figure
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

