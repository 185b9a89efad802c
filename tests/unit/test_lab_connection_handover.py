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


def _hand_over(options, **connection):
    os.environ[session.LAB_CONNECTION_ENV] = json.dumps({"options": options, "connection": connection})


def test_the_first_session_asks_and_the_next_ones_reuse_its_answer(params, lab_dir, connects) -> None:
    first = session.lab_connection(params)
    assert len(connects) == 1 and "connect" in connects[0]
    assert session.lab_connection(params) == first and len(connects) == 1


def test_other_options_another_lab_directory_or_a_gone_server_are_asked_again(params, lab_dir, connects,
                                                                               monkeypatch) -> None:
    options = json.loads(json.dumps(session.lab_options_of(params)))
    _hand_over({**options, "seed": 7}, lab_dir=str(lab_dir), pid=os.getpid(), url="u")
    session.lab_connection(params)
    _hand_over(options, lab_dir=str(lab_dir.parent / "other"), pid=os.getpid(), url="u")
    session.lab_connection(params)
    _hand_over(options, lab_dir=str(lab_dir), pid=2**22 + 11, url="u")  # no such process
    session.lab_connection(params)
    monkeypatch.setenv(session.LAB_CONNECTION_ENV, "{not json")
    session.lab_connection(params)
    assert len(connects) == 4
    _hand_over(options, lab_dir=str(lab_dir), pid=os.getpid(), url="handed")
    assert session.lab_connection(params)["url"] == "handed" and len(connects) == 4
