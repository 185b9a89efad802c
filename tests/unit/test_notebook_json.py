"""The executed notebook's file text (runbook_lib.notebook_json) against nbformat's own writer, byte for byte."""

from __future__ import annotations

import base64
import copy
import json

import nbformat
import pytest

from runbook_lib.notebook_json import NotebookEncoder
from runbook_lib.runner import NOTEBOOKS, notebooks_dir

PLOTLY = {"data": [{"type": "bar", "x": ["lab-cp-1", "lab-cp-2"], "y": [1.5, 2], "marker": {"color": ["#1f77b4", None]}}],
          "layout": {"title": {"text": "Pool capacity — GiB"}, "width": 900, "barmode": "stack", "shapes": []}}


def _outputs() -> list[dict]:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3).decode()
    return [
        {"output_type": "stream", "name": "stdout", "text": "lab-cp-1: reset EPHEMERAL\nwaiting… ✓\n"},
        {"output_type": "display_data", "metadata": {"image/png": {"width": 900}},
         "data": {"application/vnd.plotly.v1+json": PLOTLY, "image/png": png, "text/plain": "Figure\n2 bars"},
         "transient": {"display_id": "abc"}},
        {"output_type": "execute_result", "execution_count": 3, "metadata": {},
         "data": {"text/html": "<table>\n<tr><td>1</td></tr>\n</table>", "text/plain": "   node\n0  a"}},
        {"output_type": "error", "ename": "PreconditionFailed", "evalue": "lab-cp-2: \"busy\"",
         "traceback": ["\x1b[0;31mPreconditionFailed\x1b[0m", "line\twith tab"]},
    ]


def _executed(name: str) -> dict:
    nb = json.loads(nbformat.writes(nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)))
    nb = json.loads(json.dumps(nbformat.from_dict(nb)))  # what papermill holds: plain text, not line lists
    for i, cell in enumerate(nb["cells"]):
        cell["source"] = "".join(cell["source"])
        cell["metadata"]["papermill"] = {"status": "completed", "duration": 0.25 * i, "exception": False}
        cell["metadata"]["trusted"] = True  # transient: never written
        if cell["cell_type"] == "code":
            cell["outputs"] = copy.deepcopy(_outputs()) if i % 2 else []
            cell["execution_count"] = i
        else:
            cell["attachments"] = {"a.png": {"image/png": "iVBORw0KGgo=\n"}} if i == 0 else {}
    nb["metadata"].update({"orig_nbformat": 4, "signature": "sha256:x", "runbook": {"schema": 1, "actions": []}})
    return nb


def _nbformat(nb: dict) -> str:
    return nbformat.writes(nbformat.from_dict(copy.deepcopy(nb)))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_save_is_what_nbformat_writes_and_only_changed_cells_are_encoded_again(name) -> None:
    nb = _executed(name)
    encoder = NotebookEncoder()
    assert encoder.encode(nb) == _nbformat(nb)
    assert encoder.encoded == len(nb["cells"])
    code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    nb["cells"][code]["outputs"].append({"output_type": "stream", "name": "stderr", "text": "one more line\n"})
    nb["metadata"]["runbook"]["actions"].append({"step": "reset EPHEMERAL lab-cp-1", "status": "started"})
    before = copy.deepcopy(nb)
    assert encoder.encode(nb) == _nbformat(nb)
    assert encoder.encoded == len(nb["cells"]) + 1  # the one changed cell
    assert nb == before  # the notebook in memory is left as it was


def test_a_notebook_without_cells_and_one_with_bytes_are_written_as_nbformat_writes_them() -> None:
    empty = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    assert NotebookEncoder().encode(empty) == _nbformat(empty)
    nb = _executed("08-storage-health")
    nb["cells"][1]["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {"image/png": b"iVBORw0KGgo="}}]
    assert NotebookEncoder().encode(nb) == nbformat.writes(nbformat.from_dict(nb))
