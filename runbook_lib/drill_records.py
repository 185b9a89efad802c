"""The failover drill's records: the writer that produces them and the verdict on what survived.

A record is one line, ``<seq> <unix time> <pod> <nonce> <sha256(body)[:16]>``, appended and
fsync'ed by :data:`WRITER_SCRIPT` (busybox ``sh``), which prints ``ack <record>`` only after the
fsync returned. :data:`READER_SCRIPT` reads a replica back without its size ever passing through
a log whole: it prints one digest per block of lines, or the lines of a few bounded ranges, so no
log cap or rotation can drop a record. :func:`judge` compares the acknowledged records with each
replica's copy. Pure: text in, findings out.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

MARKER = "runbook-record-writer/1"  # the lab recognises the writer by this line
READER_MARKER = "runbook-record-reader/1"  # ... and the reader by this one
MAX_SEQ_DIGITS = 18  # a longer sequence number is a corrupt line (and int() of 5000+ digits raises)
MAX_LINE = 256  # a record is ~90 characters; a longer line is corrupt, whatever it holds
# What one reader prints at most: 1 + MAX_BLOCKS + MAX_READ_LINES lines (~200 KiB), far below any log cap
# (the lab keeps 5000 lines, a kubelet rotates at 10 MiB), so no record is ever read through a cut log.
MAX_BLOCKS = 200  # each block is a file split(1) writes: a few hundred are cheap, thousands are not
MAX_READ_LINES = 2000

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


# busybox sh. DIGESTS: "<from>-<to>:<block>" ranges of line numbers to digest block by block (at most
# MAX_BLOCKS blocks each: a larger range gets larger blocks); LINES: "<from>-<to>" ranges to print. The
# digest is sha256 of the lines' bytes; split and one sha256sum read the range once, not once per block.
READER_SCRIPT = f"""# {READER_MARKER}: digests of blocks of record lines, and the lines of a few bounded ranges
set -eu
f="$RECORDS"
n=$(grep -c '' "$f" 2>/dev/null || true)
n=${{n:-0}}
echo "lines $n"
for r in ${{DIGESTS:-}}; do
  a=${{r%%-*}}; rest=${{r#*-}}; b=${{rest%%:*}}; size=${{rest#*:}}
  [ "$b" -gt "$n" ] && b=$n
  [ "$a" -gt "$b" ] && continue
  per=$(( (b - a + MAX_BLOCKS) / MAX_BLOCKS )); [ "$size" -lt "$per" ] && size=$per
  d=$(mktemp -d)
  tail -n "+$a" "$f" | head -n $((b - a + 1)) | (cd "$d" && split -a 6 -l "$size" - p.)
  i=$a
  (cd "$d" && sha256sum p.*) | while read -r sum name; do
    e=$((i + size - 1)); [ "$e" -gt "$b" ] && e=$b
    echo "block $i $e $sum"
    i=$((e + 1))
  done
  rm -rf "$d"
done
for r in ${{LINES:-}}; do
  awk -v a="${{r%-*}}" -v b="${{r#*-}}" 'NR >= a {{ print "line " NR " " $0 }} NR >= b {{ exit }}' "$f"
done
"""


def block_digest(lines: list[str]) -> str:
    """What the reader prints for a block: sha256 of the lines, each ending in a newline."""
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()


@dataclass
class ReaderOutput:
    """One reader's answer: the file's line count, block digests and numbered lines."""

    lines: int | None = None
    blocks: list[tuple[int, int, str]] = field(default_factory=list)  # (first line, last line, sha256)
    records: dict[int, str] = field(default_factory=dict)  # line number -> line as read


def _number(word: str) -> int | None:
    return int(word) if word.isascii() and word.isdigit() and len(word) <= MAX_SEQ_DIGITS else None


def parse_reader(text: str) -> ReaderOutput:
    """The reader's log; a line it cannot have printed is ignored (the runbook then reads that range again)."""
    out = ReaderOutput()
    for raw in text.split("\n"):
        word, _, rest = raw.partition(" ")
        if word == "lines" and (n := _number(rest.strip())) is not None:
            out.lines = n
        elif word == "block":
            parts = rest.split(" ")
            a, b = (_number(parts[0]), _number(parts[1])) if len(parts) == 3 else (None, None)
            if a is not None and b is not None and a <= b and len(parts[2]) == 64:
                out.blocks.append((a, b, parts[2]))
        elif word == "line":
            num, _, line = rest.partition(" ")
            if (i := _number(num)) is not None:
                out.records[i] = line
    return out


def expected_lines(acks: list[Entry]) -> dict[int, str]:
    """Line number -> the acknowledged record that belongs there (the writer numbers lines from 1).

    A sequence number acknowledged twice (two writers after a split brain) has no single expectation.
    """
    seen: dict[int, set[str]] = {}
    for a in acks:
        seen.setdefault(a.seq, set()).add(a.line)
    return {seq: next(iter(lines)) for seq, lines in seen.items() if len(lines) == 1}


def block_matches(block: tuple[int, int, str], expected: dict[int, str]) -> bool:
    """True when the block holds exactly the acknowledged records expected on its lines."""
    a, b, digest = block
    lines = [expected.get(i) for i in range(a, b + 1)]
    return None not in lines and block_digest(lines) == digest  # type: ignore[arg-type]


@dataclass
class CopyReading:
    """Reading one replica by digests: a block that matches the acknowledged records is known without
    being read; any other block is read line by line if small, else digested again in smaller blocks."""

    lines: int | None = None
    known: dict[int, str] = field(default_factory=dict)  # line number -> its text
    digests: list[tuple[int, int]] = field(default_factory=lambda: [(1, 10**MAX_SEQ_DIGITS - 1)])
    reads: list[tuple[int, int]] = field(default_factory=list)
    asked: list[tuple[int, int]] = field(default_factory=list)  # line ranges of the request in flight

    @property
    def done(self) -> bool:
        return self.lines is not None and not self.digests and not self.reads

    def request(self) -> tuple[str, str]:
        """The next reader's (DIGESTS, LINES): one digest range and at most MAX_READ_LINES lines."""
        digests = " ".join(f"{a}-{b}:1" for a, b in self.digests[:1])
        self.digests = self.digests[1:]
        budget, self.asked = MAX_READ_LINES, []
        while self.reads and budget > 0:
            a, b = self.reads.pop(0)
            if b - a + 1 > budget:
                self.reads.insert(0, (a + budget, b))
                b = a + budget - 1
            self.asked.append((a, b))
            budget -= b - a + 1
        return digests, " ".join(f"{a}-{b}" for a, b in self.asked)

    def absorb(self, out: ReaderOutput, expected: dict[int, str]) -> None:
        if out.lines is None:  # the reader did not run to its first line: ask again
            self.reads = self.asked + self.reads
            return
        self.lines = out.lines
        for a, b, digest in out.blocks:
            if block_matches((a, b, digest), expected):
                self.known.update((i, expected[i]) for i in range(a, b + 1))
            elif b - a + 1 <= MAX_READ_LINES:
                self.reads.append((a, b))
            else:
                self.digests.append((a, b))
        for a, b in self.asked:
            for i in range(a, min(b, out.lines) + 1):
                self.known[i] = out.records.get(i, "")  # a line the reader did not print is not a record
        self.asked = []

    def entries(self) -> list[Entry | None]:
        return [parse_entry(self.known.get(i, "")) for i in range(1, (self.lines or 0) + 1)]


@dataclass(frozen=True)
class Entry:
    """One record line: ``<seq> <unix time> <pod> <nonce> <sha256(body)[:16]>``."""

    seq: int
    stamp: float
    pod: str
    line: str
    valid: bool


def parse_entry(line: str) -> Entry | None:
    """A record line, or None when it is not one (torn, garbage, or longer than any record)."""
    if len(line) > MAX_LINE:
        return None
    parts = line.strip().split(" ")
    if len(parts) != 5 or not parts[0].isdigit() or len(parts[0]) > MAX_SEQ_DIGITS:
        return None
    body, digest = " ".join(parts[:4]), parts[4]
    try:
        stamp = float(parts[1])
    except ValueError:
        return None
    if not (parts[0].isascii() and math.isfinite(stamp)):
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
    lost: list[str] = field(default_factory=list)  # "<ranges> on <node>": acknowledged, missing or changed there
    lost_records: int = 0  # acknowledged records missing or changed in at least one copy
    diverged: list[str] = field(default_factory=list)  # same sequence number, different record between copies
    diverged_records: int = 0
    corrupt: list[str] = field(default_factory=list)  # lines whose checksum does not match
    unreadable: list[str] = field(default_factory=list)  # nodes whose copy could not be read

    @property
    def ok(self) -> bool:
        return not (self.lost or self.diverged or self.corrupt or self.unreadable)

    def summary(self) -> str:
        if self.ok:
            return f"all {self.acknowledged} acknowledged records present and identical on {len(self.copies)} replicas"
        parts = []
        for label, count, items in (("lost", f"{self.lost_records} of {self.acknowledged} acknowledged records", self.lost),
                                    ("diverged", f"{self.diverged_records} records", self.diverged),
                                    ("corrupt", f"{len(self.corrupt)} lines", self.corrupt),
                                    ("unreadable", f"{len(self.unreadable)} replicas", self.unreadable)):
            if items:
                parts.append(f"{label}: {count} ({', '.join(items[:5])}{', ...' if len(items) > 5 else ''})")
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
    missing: set[str] = set()
    # present means the exact line is somewhere in the copy: a sequence number written twice (a writer that
    # restarted from an older last line) must not hide the earlier, acknowledged record
    held_lines = {node: {e.line for e in lines if e is not None and e.valid} for node, lines in copies.items() if lines}
    for ack in sorted(acks, key=lambda a: a.seq):
        for node in by_node:
            if ack.line not in held_lines.get(node, set()):
                lost.setdefault(node, []).append(ack.seq)
                missing.add(ack.line)
    verdict.lost = [f"{', '.join(_ranges(seqs))} on {node}" for node, seqs in sorted(lost.items())]
    verdict.lost_records = len(missing)
    seqs = sorted(set().union(*[set(h) for h in by_node.values()])) if by_node else []
    diverged = [s for s in seqs if len({h[s].line if s in h else None for h in by_node.values()}) > 1]
    verdict.diverged_records = len(diverged)
    if diverged:
        writers = sorted({h[s].pod for h in by_node.values() for s in diverged if s in h})
        verdict.diverged = [f"records {', '.join(_ranges(diverged))} differ between replicas (written by {', '.join(writers)})"]
    return verdict
