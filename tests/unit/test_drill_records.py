"""The drill's record format and its verdict, and the writer script run by a real shell."""

from __future__ import annotations

import hashlib

from runbook_lib.drill_records import (
    MAX_BLOCKS,
    READER_SCRIPT,
    CopyReading,
    Entry,
    expected_lines,
    judge,
    parse_acks,
    parse_entry,
    parse_reader,
    parse_records,
)
from runbook_lib.lab.workloads.record_writer import RecordReader


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
    assert verdict.lost_records == 15 and verdict.diverged_records == 10  # counted in records, not replicas
    assert "lost: 15 of 25 acknowledged records (11-20 on n1, 11-15 on n2, 11-15 on n3)" in verdict.summary()


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




def test_a_line_of_100000_digits_is_a_corrupt_line_not_a_crash() -> None:
    huge = "9" * 100_000
    assert parse_entry(f"{huge} 1.0 pod nonce 0123456789abcdef") is None
    assert parse_entry(f"{record(1)[:-16]}{'0' * 16}") is not None  # a wrong checksum is still a record (invalid)
    lines = [record(1), f"{huge} 1.0 pod nonce sum", record(3)]
    verdict = judge(acks_of([record(1), record(3)]), {"n1": entries(lines)})
    assert verdict.corrupt == ["n1 line 2"] and not verdict.lost
    out = parse_reader(f"lines {huge}\nblock {huge} 2 {'0' * 64}\nline {huge} x\nline 2 {record(2)}")
    assert out.lines is None and not out.blocks and out.records == {2: record(2)}


def _reader_env(path, digests: str, lines: str) -> dict[str, str]:
    return {"RECORDS": str(path), "DIGESTS": digests, "LINES": lines, "MAX_BLOCKS": str(MAX_BLOCKS),
            "PATH": "/usr/bin:/bin"}




def _lab_reader(lines: list[str], digests: str, lines_arg: str, monkeypatch) -> str:
    import runbook_lib.lab.workloads.record_writer as rw

    monkeypatch.setattr(rw, "resolve_path", lambda lab, pod, c, path: ("rd", path))
    monkeypatch.setattr(rw.drbd, "read", lambda lab, rd, node, path: list(lines))
    container = {"command": ["sh", "-c", READER_SCRIPT], "env": [
        {"name": k, "value": v} for k, v in _reader_env("/data/records.log", digests, lines_arg).items()]}
    result = RecordReader().run(None, {"spec": {}}, container, "n1", 0.0)
    assert result is not None and result.exit_code == 0
    return result.log + "\n"


def read_by_digest(reader, acks: list[Entry]) -> tuple[list[Entry | None], list[int]]:
    """The runbook's loop (failover.read_copies) over a reader function; also what each reader printed (lines)."""
    reading, printed = CopyReading(), []
    expected = expected_lines(acks)
    for _ in range(20):
        out = reader(*reading.request())
        printed.append(len(out.splitlines()))
        reading.absorb(parse_reader(out), expected)
        if reading.done:
            return reading.entries(), printed
    raise AssertionError("reading did not converge")




def test_reading_by_digest_finds_torn_and_garbage_lines_and_an_empty_file(monkeypatch) -> None:
    lines = [record(i) for i in range(1, 2_501)]
    damaged = lines[:1_200] + ["x" * 300] + lines[1_201:-1] + [lines[-1][:30]]
    acks = acks_of(lines[:-1])
    copy, _ = read_by_digest(lambda d, ln: _lab_reader(damaged, d, ln, monkeypatch), acks)
    verdict = judge(acks, {"n1": copy})
    assert verdict.corrupt == ["n1 line 1201"] and verdict.lost == ["1201 on n1"]
    empty, _ = read_by_digest(lambda d, ln: _lab_reader([], d, ln, monkeypatch), [])
    assert empty == []


def test_a_sequence_number_written_twice_does_not_hide_the_acknowledged_record() -> None:
    """A writer that restarted from an older last line writes 4-5 again: the first 4-5 are still on disk."""
    first = [record(i) for i in range(1, 6)]
    again = [record(i, pod="writer-b") for i in range(4, 8)]
    copy = entries(first + again)
    verdict = judge(acks_of(first + again), {"n1": copy, "n2": copy})
    assert not verdict.lost and not verdict.diverged, verdict.summary()


def test_the_cluster_clock_from_whole_second_date_headers_is_within_its_stated_uncertainty() -> None:
    """A lab clock 100x the observer's, 6 hours ahead; answers take 1-50 ms; Date headers are whole seconds."""
    import random

    from runbook_lib.cluster_time import ClusterClock, parse_date_header, parse_time

    rng = random.Random(3)
    server = lambda wall: 100.0 * wall + 21_600.0 - 99.0 * 1_700_000_000.0  # noqa: E731
    clock, wall = ClusterClock(rate=100.0), 1_700_000_000.0
    for _ in range(200):
        sent = wall
        answered = sent + rng.uniform(0.0005, 0.025)
        wall = answered + rng.uniform(0.0005, 0.025)
        clock.sample(sent, wall, float(int(server(answered))))
        assert abs(clock.at(wall) - server(wall)) <= clock.uncertainty() + 1e-6
    assert clock.uncertainty() <= 1.0
    assert parse_date_header("Tue, 01 Dec 2026 09:00:05 GMT") == parse_time("2026-12-01T09:00:05Z")
    assert parse_time("not a time") is None and parse_date_header("9" * 1000) is None
