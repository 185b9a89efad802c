"""The README opens with the two contract commands, and .ci/run runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)][:2]


def test_readme_starts_with_suite_and_test_commands() -> None:
    suite, tests = readme_commands()
    assert "pip install" in suite and "runbook run -f parameters/lab.yaml" in suite
    assert "pip install" in tests and "pytest" in tests
    head = (ROOT / "README.md").read_text().split("```bash", 1)[0]
    assert head.count("\n") < 10  # the commands come first, before any explanation


def test_ci_runs_the_readme_test_command() -> None:
    _, tests = readme_commands()
    assert tests in (ROOT / ".ci" / "run").read_text()
