"""The drill's record format and its verdict, and the writer script run by a real shell."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest

from runbook_lib.drill_records import WRITER_SCRIPT, Entry, judge, parse_acks, parse_entry, parse_records


def record(seq: int, pod: str = "writer-a", stamp: float = 1000.0) -> str:
    body = f"{seq} {stamp + seq:.6f} {pod} {seq:012x}"
    return f"{body} {hashlib.sha256(body.encode()).hexdigest()[:16]}"


def entries(lines: list[str]) -> list[Entry | None]:
    return parse_records("\n".join(lines))


def acks_of(lines: list[str]) -> list[Entry]:
    return parse_acks("\n".join(f"ack {line}" for line in lines))


def test_a_record_round_trips_and_a_changed_byte_breaks_its_checksum() -> None:
    line = record(7)
    e = parse_entry(line)
    assert e is not None and e.valid and e.seq == 7 and e.pod == "writer-a"
    tampered = line.replace("writer-a", "writer-b")
    assert parse_entry(tampered) is not None and not parse_entry(tampered).valid
    assert parse_entry("7 not-a-time pod nonce sum") is None and parse_entry("garbage") is None


def test_identical_copies_with_every_ack_pass() -> None:
    lines = [record(i) for i in range(1, 21)]
    verdict = judge(acks_of(lines[:18]), {"n1": entries(lines), "n2": entries(lines), "n3": entries(lines)})
    assert verdict.ok, verdict.summary()
    assert verdict.acknowledged == 18 and verdict.copies == {"n1": 20, "n2": 20, "n3": 20}


def test_lost_and_diverged_records_are_named() -> None:
    common = [record(i) for i in range(1, 11)]
    isolated = common + [record(i, pod="writer-old") for i in range(11, 16)]  # kept writing alone (no quorum)
    survivor = common + [record(i, pod="writer-new") for i in range(11, 21)]
    acks = acks_of(common + survivor[10:] + isolated[10:])  # both writers were told their writes succeeded
    verdict = judge(acks, {"n1": entries(isolated), "n2": entries(survivor), "n3": entries(survivor)})
    assert not verdict.ok and verdict.acknowledged == 25
    assert verdict.lost == ["11-20 on n1", "11-15 on n2", "11-15 on n3"]
    assert verdict.diverged == ["records 11-20 differ between replicas (written by writer-new, writer-old)"]
    assert "lost: 3 (11-20 on n1, 11-15 on n2, 11-15 on n3)" in verdict.summary()


def test_a_torn_unacknowledged_last_line_is_not_corruption_but_a_torn_acknowledged_one_is() -> None:
    lines = [record(i) for i in range(1, 6)]
    torn = lines[:4] + [lines[4][:20]]
    assert judge(acks_of(lines[:4]), {"n1": entries(torn)}).ok
    middle = lines[:2] + [lines[2][:-1] + "0"] + lines[3:]
    verdict = judge(acks_of(lines), {"n1": entries(middle)})
    assert verdict.corrupt == ["n1 line 3"] and verdict.lost == ["3 on n1"]


def test_an_unreadable_copy_fails_the_verdict() -> None:
    lines = [record(i) for i in range(1, 4)]
    verdict = judge(acks_of(lines), {"n1": entries(lines), "n2": None})
    assert verdict.unreadable == ["n2"] and not verdict.ok


@pytest.mark.skipif(shutil.which("sh") is None or sys.platform == "win32", reason="needs a POSIX shell")
def test_the_writer_script_writes_records_the_parser_accepts(tmp_path) -> None:
    """Run the real script (sh, date, sha256sum, od) for a few records; resume after the last one."""
    path = tmp_path / "records.log"
    env = {"RECORDS": str(path), "INTERVAL": "0.01", "HOSTNAME": "writer-x", "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        proc = subprocess.run(["timeout", "0.6", "sh", "-c", WRITER_SCRIPT], env=env, capture_output=True, text=True)
        assert proc.returncode == 124, proc.stderr  # killed by timeout: the loop runs until stopped
    records = parse_records(path.read_text())
    assert len(records) >= 4 and all(e is not None and e.valid for e in records[:-1])
    good = [e for e in records if e is not None and e.valid]
    assert [e.seq for e in good] == list(range(1, len(good) + 1)), "the second run continues after the last record"
    acks = parse_acks(proc.stdout)
    assert acks and all(a.valid and a.pod == "writer-x" for a in acks)
