"""Broken parameter files and overrides are refused by the real runbook command (exit 2, nothing changed)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings

from tests.lab_helpers import runbook
from tests.unit.test_params import (
    LAB_FILE,
    PATH_RE,
    broken_lab,
    load_problems,
    write,
)


def _expect_refused(path: Path, *extra: str) -> None:
    """``params check`` and ``run`` both exit 2 listing every problem with its path; ``run`` starts nothing."""
    expected = [] if extra else load_problems(path)
    with tempfile.TemporaryDirectory() as tmp:
        lab_dir, out = Path(tmp) / "lab", Path(tmp) / "out"
        commands = [("params", "check", str(path))] if not extra else []
        commands.append(("run", "-f", str(path), "01", "--out", str(out), *extra))
        for argv in commands:
            proc = runbook(*argv, lab_dir=lab_dir)
            assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
            listed = [line.strip() for line in proc.stderr.splitlines()[1:]]
            if not extra:
                assert listed == expected, (argv, listed, expected)
            assert listed and all(PATH_RE.match(p) or p.startswith("line ") for p in listed), listed
        assert not out.exists() and not lab_dir.exists()  # no run directory, no lab: nothing was done


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_lab())
def test_broken_files_are_refused_by_the_command(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "broken.yaml"
        path.write_text(yaml.safe_dump(data))
        _expect_refused(path)


def test_yaml_errors_and_bad_overrides_are_refused_by_the_command(tmp_path: Path) -> None:
    _expect_refused(write(tmp_path, "cluster_name: lab\ntarget: [lab\n"))
    _expect_refused(LAB_FILE, "-p", "node_timeout", "-5")
    _expect_refused(LAB_FILE, "-p", "nodes", "[{name: x}]")

