"""The executed notebooks carry a static image and a table per figure, and are strict JSON."""

from __future__ import annotations

import base64
import json

import pytest

from tests import executed
from tests.figure_checks import figure_outputs, needs_browser, png_size


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



@needs_browser
def test_a_run_of_four_notebooks_draws_their_figures_with_one_browser(installed) -> None:
    """01-04 draw five figures; the run's figure server starts one browser for all its kernels."""
    pngs = sum(len(figure_outputs(json.loads(path.read_text()))) for path in installed.run.glob("0[1-4]-*.ipynb"))
    assert pngs == 5
    assert installed.browser_starts == 1
