"""The drill's writer and reader shell scripts, run by a real POSIX shell."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from runbook_lib.drill_records import (
    MAX_BLOCKS,
    MAX_READ_LINES,
    READER_SCRIPT,
    WRITER_SCRIPT,
    judge,
    parse_acks,
    parse_records,
)
from tests.unit.test_drill_records import _lab_reader, _reader_env, acks_of, entries, read_by_digest, record


@pytest.mark.skipif(shutil.which("sh") is None or sys.platform == "win32", reason="needs a POSIX shell")
def test_the_writer_script_writes_records_the_parser_accepts(tmp_path) -> None:
    """Run the real script (sh, date, sha256sum, od) for a few records; resume after the last one."""
    path = tmp_path / "records.log"
    env = {"RECORDS": str(path), "INTERVAL": "0.01", "HOSTNAME": "writer-x", "PATH": "/usr/bin:/bin"}
    stdout = ""
    for want in (3, 6):  # stopped after some records, then started again: it continues after the last one
        proc = subprocess.Popen(["sh", "-c", WRITER_SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60  # a bound, not a timing: a busy machine only makes it slower
            while time.monotonic() < deadline and (not path.exists() or len(path.read_text().splitlines()) < want):
                time.sleep(0.05)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""  # the loop runs until stopped
        finally:
            proc.kill()
            stdout = proc.communicate()[0]
    records = parse_records(path.read_text())
    assert len(records) >= 4 and all(e is not None and e.valid for e in records[:-1])
    good = [e for e in records if e is not None and e.valid]
    assert [e.seq for e in good] == list(range(1, len(good) + 1)), "the second run continues after the last record"
    acks = parse_acks(stdout)
    assert acks and all(a.valid and a.pod == "writer-x" for a in acks)


def _real_reader(path, digests: str, lines: str) -> str:
    proc = subprocess.run(["sh", "-c", READER_SCRIPT], env=_reader_env(path, digests, lines), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("split") is None, reason="needs a POSIX shell and coreutils")
def test_the_reader_reads_a_long_file_whole_in_bounded_output_and_the_lab_prints_what_the_script_prints(
        tmp_path, monkeypatch) -> None:
    """12,000 records (more than twice the lab's log cap): every reader's output stays bounded, one changed record
    in the middle and an unacknowledged tail are read line by line, and the lab's runner matches the real script."""
    good = [record(i) for i in range(1, 12_001)]
    on_disk = list(good)
    on_disk[4_321] = record(4_322, pod="writer-z")  # changed in the middle: must be found, not assumed
    path = tmp_path / "records.log"
    path.write_text("".join(line + "\n" for line in on_disk))
    acks = acks_of(good[:11_990])  # the last ten were written but their acknowledgements not collected
    for digests, lines in (("1-999999999:1", ""), ("4001-4200:1", "4300-4330 11995-12000")):
        assert _real_reader(path, digests, lines) == _lab_reader(on_disk, digests, lines, monkeypatch)
    copy, printed = read_by_digest(lambda d, ln: _real_reader(path, d, ln), acks)
    assert max(printed) <= 1 + MAX_BLOCKS + MAX_READ_LINES and len(printed) <= 3, printed
    assert [e.line for e in copy] == on_disk
    verdict = judge(acks, {"n1": copy, "n2": entries(good)})
    assert verdict.lost == ["4322 on n1"] and verdict.lost_records == 1
    assert verdict.diverged == ["records 4322 differ between replicas (written by writer-a, writer-z)"]

