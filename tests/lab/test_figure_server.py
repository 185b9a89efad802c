"""The run's one figure browser: kernels post their figures to it over a Unix socket and start none."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runbook_lib import figure_export
from runbook_lib.figure_server import FigureServer
from tests.figure_checks import needs_browser
from tests.lab_helpers import ROOT

# A kernel's part: draw two figures through viz as a notebook does, say what it drew and whether it started a browser
KERNEL = textwrap.dedent("""
    import json, struct, sys, warnings, base64
    from runbook_lib import figure_export, viz
    import plotly.graph_objects as go
    figure_export.prepare()  # what a kernel's warm-up does: nothing when the run's server draws
    sizes, texts = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for width in (500, 700):
            data, _ = viz.figure_bundle(go.Figure(go.Bar(y=[1, 2]), layout={"width": width, "height": 200}))
            texts.append(data["text/plain"])
            if "image/png" in data:
                sizes.append(list(struct.unpack(">II", base64.b64decode(data["image/png"])[16:24])))
    print(json.dumps({"sizes": sizes, "texts": texts, "warnings": [str(w.message) for w in caught],
                      "own_browser": figure_export._state["renderer"] is not None,
                      "started": figure_export._state["starting"] is not None,
                      "kaleido_imported": "kaleido" in sys.modules,
                      "server_gone": figure_export._state["server_gone"]}))
""")


def run_kernel(socket_path: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", KERNEL], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), figure_export.FIGURE_SOCKET_ENV: socket_path})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture
def server():
    figure_export.stop()  # the server's browser is this process's one
    with FigureServer() as figures:
        yield figures


@needs_browser
def test_a_kernel_of_a_run_draws_its_figures_with_the_runs_browser_and_starts_none(server) -> None:
    drawn = run_kernel(server.socket_path)
    pngs = [[w * figure_export.PNG_SCALE, 200 * figure_export.PNG_SCALE] for w in (500, 700)]
    assert drawn["sizes"] == pngs
    assert not drawn["own_browser"] and not drawn["started"] and not drawn["kaleido_imported"]
    assert figure_export._state["renderer"] is not None  # the server's


@needs_browser
def test_the_figure_socket_is_in_a_directory_only_its_user_can_enter(server) -> None:
    mode = Path(server.socket_path).parent.stat().st_mode
    assert stat.S_IMODE(mode) == 0o700
    assert stat.S_ISSOCK(Path(server.socket_path).stat().st_mode)


def test_a_server_without_a_browser_tells_each_kernel_why_its_figures_have_no_image(monkeypatch) -> None:
    figure_export.stop()
    monkeypatch.setitem(figure_export._state, "failure", None)  # put back at the end: later tests start a browser
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    with FigureServer() as figures:
        drawn = run_kernel(figures.socket_path)
    assert drawn["sizes"] == [] and not drawn["own_browser"]
    assert all("no static image: the browser could not be started" in text for text in drawn["texts"]), drawn
    assert drawn["warnings"]


@needs_browser
def test_a_kernel_whose_figure_server_is_gone_draws_with_a_browser_of_its_own(tmp_path) -> None:
    drawn = run_kernel(str(tmp_path / "gone.sock"))
    assert drawn["sizes"] == [[w * figure_export.PNG_SCALE, 200 * figure_export.PNG_SCALE] for w in (500, 700)]
    assert drawn["own_browser"] and drawn["server_gone"]


def test_a_server_closed_removes_its_socket_and_its_directory() -> None:
    figure_export.stop()
    figures = FigureServer()
    figures.close()
    assert not Path(figures.socket_path).parent.exists()
