"""The failover drill's records: the writer that produces them and the verdict on what survived.

A record is one line, ``<seq> <unix time> <pod> <nonce> <sha256(body)[:16]>``, appended and
fsync'ed by :data:`WRITER_SCRIPT` (busybox ``sh``), which prints ``ack <record>`` only after the
fsync returned. :func:`judge` compares the acknowledged records with each replica's copy. Pure:
text in, findings out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

MARKER = "runbook-record-writer/1"  # the lab recognises the writer by this line

# busybox sh. Continues after the last record on the volume (a restarted pod, a new node).
WRITER_SCRIPT = f"""# {MARKER}: append sequence-numbered, checksummed records; "ack" only after fsync
set -eu
f="$RECORDS"
last=$(tail -n 1 "$f" 2>/dev/null | cut -d' ' -f1)
case "$last" in ''|*[!0-9]*) last=$(grep -c '' "$f" 2>/dev/null || true);; esac
seq=${{last:-0}}
while true; do
  seq=$((seq + 1))
  body="$seq $(date -u +%s.%N) $HOSTNAME $(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \\n')"
  sum=$(printf '%s' "$body" | sha256sum | cut -c1-16)
  printf '%s %s\\n' "$body" "$sum" >> "$f"
  sync "$f"
  echo "ack $body $sum"
  sleep "$INTERVAL"
done
"""


@dataclass(frozen=True)
class Entry:
    """One record line: ``<seq> <unix time> <pod> <nonce> <sha256(body)[:16]>``."""

    seq: int
    stamp: float
    pod: str
    line: str
    valid: bool


def parse_entry(line: str) -> Entry | None:
    parts = line.strip().split(" ")
    if len(parts) != 5 or not parts[0].isdigit():
        return None
    body, digest = " ".join(parts[:4]), parts[4]
    try:
        stamp = float(parts[1])
    except ValueError:
        return None
    valid = hashlib.sha256(body.encode()).hexdigest()[:16] == digest
    return Entry(int(parts[0]), stamp, parts[2], line.strip(), valid)


def parse_records(text: str) -> list[Entry | None]:
    """Every line of the record file; None for a line that is not a record (torn or garbage)."""
    return [parse_entry(line) for line in text.splitlines() if line.strip()]


def parse_acks(log: str) -> list[Entry]:
    """The ``ack <record>`` lines of a writer's log."""
    return [e for line in log.splitlines() if line.startswith("ack ") and (e := parse_entry(line[4:])) is not None]


@dataclass
class Verdict:
    acknowledged: int
    copies: dict[str, int]  # node -> records read there
    lost: list[str] = field(default_factory=list)  # acknowledged, missing or changed in some copy
    diverged: list[str] = field(default_factory=list)  # same sequence number, different record between copies
    corrupt: list[str] = field(default_factory=list)  # lines whose checksum does not match
    unreadable: list[str] = field(default_factory=list)  # nodes whose copy could not be read

    @property
    def ok(self) -> bool:
        return not (self.lost or self.diverged or self.corrupt or self.unreadable)

    def summary(self) -> str:
        if self.ok:
            return f"all {self.acknowledged} acknowledged records present and identical on {len(self.copies)} replicas"
        parts = []
        for label, items in (("lost", self.lost), ("diverged", self.diverged), ("corrupt", self.corrupt),
                             ("unreadable", self.unreadable)):
            if items:
                parts.append(f"{label}: {len(items)} ({', '.join(items[:5])}{', ...' if len(items) > 5 else ''})")
        return "; ".join(parts)


def _ranges(seqs: list[int]) -> list[str]:
    """[3, 4, 5, 9] -> ["3-5", "9"]."""
    spans: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if spans and spans[-1][1] == seq - 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    return [str(a) if a == b else f"{a}-{b}" for a, b in spans]


def judge(acks: list[Entry], copies: dict[str, list[Entry | None] | None]) -> Verdict:
    """Compare what was acknowledged with what each replica holds.

    ``acks`` may hold two records with one sequence number (two writers after a split brain): both were
    acknowledged, no copy can hold both, so one of them is reported lost.
    """
    verdict = Verdict(acknowledged=len(acks), copies={n: len(c or []) for n, c in copies.items()})
    acked = {a.seq for a in acks}
    by_node: dict[str, dict[int, Entry]] = {}
    for node, lines in sorted(copies.items()):
        if lines is None:
            verdict.unreadable.append(node)
            continue
        by_node[node] = {}
        for i, e in enumerate(lines):
            if e is None or not e.valid:
                # a torn last line was never acknowledged (the ack follows the fsync)
                if not (i == len(lines) - 1 and (e is None or e.seq not in acked)):
                    verdict.corrupt.append(f"{node} line {i + 1}")
                continue
            by_node[node][e.seq] = e
    lost: dict[str, list[int]] = {}
    for ack in sorted(acks, key=lambda a: a.seq):
        for node, held in by_node.items():
            if held.get(ack.seq) is None or held[ack.seq].line != ack.line:
                lost.setdefault(node, []).append(ack.seq)
    verdict.lost = [f"{', '.join(_ranges(seqs))} on {node}" for node, seqs in sorted(lost.items())]
    seqs = sorted(set().union(*[set(h) for h in by_node.values()])) if by_node else []
    diverged = [s for s in seqs if len({h[s].line if s in h else None for h in by_node.values()}) > 1]
    if diverged:
        writers = sorted({h[s].pod for h in by_node.values() for s in diverged if s in h})
        verdict.diverged = [f"records {', '.join(_ranges(diverged))} differ between replicas (written by {', '.join(writers)})"]
    return verdict
