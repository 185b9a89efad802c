"""The kernel takes the secrets out of its environment before it starts any process."""

from __future__ import annotations

import json
import sys

from runbook_lib.execution import Executor
from runbook_lib.record import Record
from runbook_lib.redact import Redactor
from runbook_lib.session import SECRETS_ENV, kernel_secrets
from tests.unit.test_secrets_everywhere import SECRET


def test_the_kernel_takes_the_secrets_out_of_its_environment_before_starting_anything(monkeypatch) -> None:
    monkeypatch.setenv(SECRETS_ENV, json.dumps({"secrets": {"db_password": SECRET}}))
    assert kernel_secrets() == {"secrets": {"db_password": SECRET}}
    assert SECRETS_ENV not in __import__("os").environ
    assert kernel_secrets()["secrets"]["db_password"] == SECRET  # a second Session.begin still has them
    # every tool the kernel runs (talosctl, helm, the lab) inherits this environment
    executor = Executor(Record("t", "r", {}, Redactor([SECRET])), dry_run=False, approve=None)
    result = executor.run([sys.executable, "-c", "import os; print(sorted(os.environ.items()))"], step="env",
                          target="here")
    assert SECRETS_ENV not in result.stdout and SECRET not in result.stdout

