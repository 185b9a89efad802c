"""06's suspend-io check: a record stamped inside the outage counts only when its write completed there."""

from __future__ import annotations

from dataclasses import dataclass

from runbook_lib.steps.nb06_failover_drill.timings import written_inside


@dataclass
class Rec:
    seq: int
    stamp: float


def records(stamps: list[float]) -> list[Rec]:
    return [Rec(i + 1, t) for i, t in enumerate(sorted(stamps))]


STEADY = [float(t) for t in range(0, 100, 2)]  # a write every 2 s before the fault at 100
SPAN = [101.0, 150.0]  # no quorum from 101 to 150 on the cluster's clock


def test_the_write_in_flight_when_quorum_went_blocks_and_does_not_count() -> None:
    # stamped 102 (taken after the loss), blocked until quorum came back, then the loop went on from 151
    assert written_inside(records([*STEADY, 100.0, 102.0, 151.0, 153.0]), SPAN, 100.0) == []


def test_writes_that_went_on_without_quorum_are_named() -> None:
    inside = written_inside(records([*STEADY, 100.0, 102.0, 104.0, 106.0, 151.0]), SPAN, 100.0)
    assert [r.stamp for r in inside] == [104.0, 106.0]


def test_a_lone_record_deep_inside_the_outage_counts() -> None:
    # its predecessor (stamped 100) completed mid-outage: the writer only stamps after the previous write returned
    inside = written_inside(records([*STEADY, 100.0, 120.0, 151.0]), SPAN, 100.0)
    assert [r.stamp for r in inside] == [120.0]


def test_without_records_before_the_fault_nothing_is_excused() -> None:
    assert [r.stamp for r in written_inside(records([101.5, 151.0]), SPAN, 100.0)] == [101.5]
