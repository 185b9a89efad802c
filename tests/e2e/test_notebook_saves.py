"""When ``runbook run`` writes an executed notebook: at its start, at each code cell's start and end, at its end.

papermill saves at every cell's start and end, a markdown cell's too; such a save only adds papermill's timing
metadata of that markdown cell, and each save writes (and fsyncs) the whole notebook, its figures included.
"""

from __future__ import annotations

import nbformat
import papermill as pm

from runbook_lib import runner


def test_markdown_cells_cost_no_save_and_keep_their_papermill_metadata(tmp_path, monkeypatch) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_markdown_cell("## Step"), nbformat.v4.new_markdown_cell("why"),
                nbformat.v4.new_code_cell("print(x + 1)"), nbformat.v4.new_markdown_cell("the end")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "n.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    saves: list[list[tuple[str, str]]] = []
    write = runner.write_notebook

    def recording(path, written, *args) -> None:
        saves.append([(c["cell_type"], c["metadata"].get("papermill", {}).get("status", "")) for c in written["cells"]])
        write(path, written, *args)

    monkeypatch.setattr(runner, "write_notebook", recording)
    runner._register_engine()
    pm.execute_notebook(str(src), str(out), engine_name="runbook", kernel_name="python3", progress_bar=False,
                        cwd=str(tmp_path))
    assert not [s for s in saves if ("markdown", "running") in s]  # no save at a markdown cell's start
    code_cells = 2
    assert len(saves) <= 2 * code_cells + 3, saves  # the notebook's start and end, each code cell's start and end
    done = nbformat.read(out, as_version=4)
    assert [c.metadata.papermill["status"] for c in done.cells] == ["completed"] * 6
    assert all("duration" in c.metadata.papermill for c in done.cells if c.cell_type == "markdown")
    assert "".join(o.get("text", "") for o in done.cells[4].outputs).strip() == "2"
