"""A run's kernels reach the lab the runner connected to without asking ``lab connect`` again, and only that lab."""

from __future__ import annotations

import json
import os

import pytest

from runbook_lib import session
from runbook_lib.params import parse_params


@pytest.fixture
def params():
    return parse_params({})


@pytest.fixture
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_LAB_DIR", str(tmp_path / "lab"))
    return tmp_path / "lab"


@pytest.fixture
def connects(monkeypatch):
    """Every ``python -m runbook_lib.lab connect`` the session would start; it answers for a lab served here."""
    calls = []

    class Answer:
        returncode, stderr = 0, ""

        def __init__(self, argv):
            calls.append(argv)
            self.stdout = json.dumps({"lab_dir": os.environ["RUNBOOK_LAB_DIR"], "pid": os.getpid(), "url": "u"})

    monkeypatch.setattr(session.subprocess, "run", lambda argv, **kw: Answer(argv))
    monkeypatch.delenv(session.LAB_CONNECTION_ENV, raising=False)
    return calls


def _hand_over(params, run_id="run-1", **connection):
    os.environ[session.LAB_CONNECTION_ENV] = session.handed_lab_connection(params, connection, run_id)


def test_a_kernel_of_the_run_takes_the_runners_answer_and_others_ask(params, lab_dir, connects, monkeypatch) -> None:
    monkeypatch.setenv(session.RUN_ID_ENV, "run-1")
    _hand_over(params, lab_dir=str(lab_dir), pid=os.getpid(), url="handed")
    assert session.lab_connection(params)["url"] == "handed" and connects == []
    monkeypatch.setenv(session.RUN_ID_ENV, "run-2")  # a later run in a kernel that outlived this one
    assert session.lab_connection(params)["url"] == "u" and len(connects) == 1
    monkeypatch.delenv(session.RUN_ID_ENV)  # a notebook run by hand
    session.lab_connection(params)
    assert len(connects) == 2 and "connect" in connects[0]


def test_other_options_another_lab_directory_or_a_gone_server_are_asked_again(params, lab_dir, connects,
                                                                               monkeypatch) -> None:
    monkeypatch.setenv(session.RUN_ID_ENV, "run-1")
    _hand_over(parse_params({"lab": {"seed": 7}}), lab_dir=str(lab_dir), pid=os.getpid(), url="h")
    session.lab_connection(params)
    _hand_over(params, lab_dir=str(lab_dir.parent / "other"), pid=os.getpid(), url="h")
    session.lab_connection(params)
    _hand_over(params, lab_dir=str(lab_dir), pid=2**22 + 11, url="h")  # no such process
    session.lab_connection(params)
    monkeypatch.setenv(session.LAB_CONNECTION_ENV, "{not json")
    session.lab_connection(params)
    assert len(connects) == 4
    _hand_over(params, lab_dir=str(lab_dir), pid=os.getpid(), url="h")
    assert session.lab_connection(params)["url"] == "h" and len(connects) == 4
