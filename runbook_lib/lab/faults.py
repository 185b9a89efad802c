"""Fault injection: what `runbook lab fault add` stores and the lab consumes.

A fault is either counted (``count`` > 0: the next N matching operations fail, then
the fault is used up) or standing (``count`` None: it holds until cleared).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..fault_kinds import (  # one list for the parameter file and the lab
    COUNTED_FAULT_KINDS,
    FAULT_KINDS,
    PAIR_FAULT_KINDS,
)

#: faults that act on one named node
NODE_FAULT_KINDS = ("node-down", "stuck-reboot", "talosctl-fail", "pool-full", "diskless-after-upgrade")
#: what ``slow-resync`` slows a returning replica's resync to (MiB/s)
SLOW_RESYNC_MIB_S = 1.0


@dataclass
class Fault:
    kind: str
    node: str | None = None
    peer: str | None = None
    count: int | None = None
    id: int = 0

    def describe(self) -> str:
        parts = [f"#{self.id} {self.kind}"]
        if self.node:
            parts.append(f"node={self.node}")
        if self.peer:
            parts.append(f"peer={self.peer}")
        if self.count is not None:
            parts.append(f"remaining={self.count}")
        return " ".join(parts)


class FaultBook:
    """The active faults. Not thread-safe: the lab server holds its lock around it."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self.faults: list[Fault] = list(faults or [])
        self._next_id = max((f.id for f in self.faults), default=0) + 1

    def add(self, kind: str, node: str | None = None, peer: str | None = None, count: int | None = None) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if kind in PAIR_FAULT_KINDS:
            if not (node and peer):
                raise ValueError(f"a {kind} fault needs --node and --peer (the two ends of the link)")
            if node == peer:
                raise ValueError(f"a {kind} fault needs two different nodes: --node and --peer are both {node!r}")
        elif peer:
            raise ValueError(f"a {kind} fault takes no --peer (only {' and '.join(PAIR_FAULT_KINDS)} do)")
        if kind in NODE_FAULT_KINDS and not node:
            hint = " (the node whose next Talos upgrade breaks its DRBD disks)" if kind == "diskless-after-upgrade" else ""
            raise ValueError(f"a {kind} fault needs --node{hint}")
        if count is not None and kind not in COUNTED_FAULT_KINDS:
            raise ValueError(f"a {kind} fault holds until cleared and takes no --count "
                             f"(only {', '.join(COUNTED_FAULT_KINDS)} count uses)")
        if count is not None and count < 1:
            raise ValueError(f"--count must be at least 1, not {count}")
        if kind in COUNTED_FAULT_KINDS and count is None:
            count = 1
        fault = Fault(kind=kind, node=node, peer=peer, count=count, id=self._next_id)
        self._next_id += 1
        self.faults.append(fault)
        return fault

    def active(self, kind: str, node: str | None = None) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind and (node is None or f.node in (None, node))]

    def has(self, kind: str, node: str | None = None) -> bool:
        return bool(self.active(kind, node))

    def take(self, kind: str, node: str | None = None) -> bool:
        """Consume one use of a matching fault; True when the operation must fail."""
        for fault in self.active(kind, node):
            if fault.count is None:
                return True
            fault.count -= 1
            if fault.count <= 0:
                self.faults.remove(fault)
            return True
        return False

    def partitioned(self, a: str, b: str) -> bool:
        return any(f.kind == "partition" and {f.node, f.peer} == {a, b} for f in self.faults)

    def replication_down(self, a: str, b: str) -> bool:
        """Only DRBD's connections between ``a`` and ``b`` are cut (a dedicated storage network failed)."""
        return any(f.kind == "replication-down" and {f.node, f.peer} == {a, b} for f in self.faults)

    def remove(self, fault_id: int) -> Fault | None:
        found = next((f for f in self.faults if f.id == fault_id), None)
        if found is not None:
            self.faults.remove(found)
        return found

    def clear(self) -> list[Fault]:
        cleared, self.faults = self.faults, []
        return cleared

    def to_list(self) -> list[dict]:
        return [asdict(f) for f in self.faults]

    @classmethod
    def from_list(cls, items: list[dict]) -> FaultBook:
        return cls([Fault(**item) for item in items])
