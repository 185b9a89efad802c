"""runbook run in plan mode shows the commands, the summary and the plan."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from runbook_lib import cli
from tests.lab_helpers import LAB_PARAMS


def test_runbook_run_in_plan_mode_shows_commands_summary_and_plan(tmp_path, capfd: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One real `runbook run` (papermill, kernel, lab): cell outputs, the summary table, the planned commands.

    ``--out`` is relative, as in the README's first command (default ``outputs/``): the kernel, which runs in
    ``notebooks/``, must still write its record into the run directory.
    """
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "-f", str(LAB_PARAMS), "01", "--out", "outputs", "-p", "dry_run", "true",
                     "-p", "storage.ephemeral_max_size", "90GiB"])
    out, err = capfd.readouterr()
    assert code == 0, out + err
    run_dir = Path(out.strip().splitlines()[-1])
    assert "checks passed" in out and "01-partition" in out and "planned" in out
    assert "plan mode: nothing was changed." in out and "planned action(s), in order:" in out
    assert "$ " in out.split("planned action(s), in order:")[1]  # every planned command, as a shell line
    assert "the lab is still running" in out and "runbook lab stop" in out
    assert "without encryption" not in out + err  # the kernel talks over a Unix socket
    assert "Invalid Signature" not in err
    assert not list((Path(cli.__file__).parents[1] / "notebooks").glob("kernel-*"))  # sockets in the run's temp dir
    nb = nbformat.read(run_dir / "01-partition.ipynb", as_version=4)
    cells = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "PLAN, not run: would patch machineconfig lab-cp-1" in cells and "maxSize: 90GiB" in cells
    assert "would run: $ " in cells and "\n    applied in" not in cells

