"""The fio parser on the output of a real fio run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runbook_lib.bench import parse_fio
from runbook_lib.fio import extract_fio_json


@pytest.mark.timeout(60)
def test_live_fio_run(tmp_path: Path) -> None:
    """Run a tiny real fio job (stderr merged, as a notebook cell would) and parse it."""
    fio = shutil.which("fio")
    if fio is None:
        pytest.skip("fio is not installed (apt-get install fio)")
    argv = [
        fio,
        "--name=live-randrw",
        f"--filename={tmp_path / 'scratch'}",
        "--size=2M",
        "--rw=randrw",
        "--bs=4k",
        "--iodepth=2",  # with psync fio prints its queue-depth note before the JSON
        "--ioengine=psync",
        "--output-format=json",
    ]
    result = subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=50, check=True
    )
    frame = parse_fio(result.stdout)
    raw = extract_fio_json(result.stdout)
    assert set(frame["direction"]) == {"read", "write"}
    assert frame["total_ios"].sum() == 512  # 2 MiB in 4 KiB blocks, split between read and write
    assert (frame["error"] == 0).all()
    for _, row in frame.iterrows():
        assert row["iops"] == raw["jobs"][0][row["direction"]]["iops"]
        assert (
            row["clat_p99_us"]
            == raw["jobs"][0][row["direction"]]["clat_ns"]["percentile"]["99.000000"] / 1000
        )

