"""DRBD's data plane in the lab: connections, quorum, suspended I/O, resync and replica content.

:mod:`.linstor_model` holds what LINSTOR knows (replicas, roles, disk states); this module
moves the kernel side along lab time, whether or not the Kubernetes API is up:

- A connection between two replicas is up while both nodes are powered and booted and no
  ``partition`` fault separates them. A pair that found a split brain stays StandAlone
  (DRBD's default ``after-sb-*`` policies are ``disconnect``) until the resource is deleted.
- Quorum is a majority of the resource's replicas, diskless tie-breakers included (DRBD UG
  "quorum"); ``on-no-quorum suspend-io`` freezes a primary's writes, ``io-error`` fails them.
  The ``quorum-off`` fault makes the kernel ignore quorum while LINSTOR still shows
  ``majority``: the misconfiguration the failover drill must catch.
- Writes are protocol C: a write reaches the primary's disk and every connected diskful peer
  before it completes. Replicas that were away keep what they had.
- Connected diskful replicas compare content (DRBD's generation UUIDs): equal is in sync, a prefix becomes
  SyncTarget of the longer one and resyncs the changed blocks at the link's bandwidth
  (``drbd_resync_mib_s``, default 110 MiB/s: 1 GbE), anything else is a split brain.
- A primary that loses quorum and reconnects to newer data demotes itself and fails its
  frozen I/O (``on-suspended-primary-outdated force-secondary``, set by Piraeus).
- A powered-off node's replicas come back Secondary; a primary with no local opener (the
  pod is gone and the node can tell) demotes, as DRBD's auto-promote does on close.

Content is modelled for appended files only (the drill's record log): per replica, the list
of lines. Other files stay in the shared per-volume model of :mod:`.workloads`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import SavedState

BLOCK_KIB = 4  # DRBD's bitmap granularity
# An fsync'ed append dirties the data block, the inode and a few journal blocks.
BLOCKS_PER_APPEND = 4
MAX_CHANGED_KIB = 128 * 1024  # the journal wraps: a long outage does not dirty more than this


@dataclass
class DrbdState(SavedState):
    #: rd -> node -> path -> lines (the content of appended files, per replica)
    files: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)
    #: "rd|a|b" pairs that detected a split brain (StandAlone)
    split_brain: list[str] = field(default_factory=list)
    #: "rd|node" a consumer opened (auto-promote); closing it demotes
    opened: list[str] = field(default_factory=list)
    last: float | None = None
    #: "pv|node" -> lab time the HA controller first saw the pod's node unreachable (:mod:`.ha_controller`)
    ha_lost: dict[str, float] = field(default_factory=dict)
    #: pod uid -> the record writer's process state (:mod:`.record_writer`)
    writers: dict[str, dict] = field(default_factory=dict)


def _pair(rd: str, a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{rd}|{x}|{y}"


def node_up(lab: Any, name: str) -> bool:
    """DRBD runs on the node: booted and running (the satellite brings resources up with the kubelet)."""
    node = lab.talos.nodes.get(name)
    return bool(node and node.kubelet_ready(lab.clock.now()))


def link_up(lab: Any, rd: str, a: str, b: str) -> bool:
    """Can the replicas of ``rd`` on ``a`` and ``b`` talk?"""
    if not (node_up(lab, a) and node_up(lab, b)) or lab.faults.partitioned(a, b):
        return False
    return _pair(rd, a, b) not in lab.drbd.split_brain


def quorum_enforced(lab: Any) -> bool:
    return not lab.faults.has("quorum-off")


def replica_lines(lab: Any, rd: str, node: str, path: str) -> list[str]:
    return lab.drbd.files.setdefault(rd, {}).setdefault(node, {}).setdefault(path, [])


def _changed_kib(behind: list[str], ahead: list[str]) -> int:
    new = ahead[len(behind):]
    data_kib = sum(len(line) + 1 for line in new) / 1024
    blocks = BLOCK_KIB * BLOCKS_PER_APPEND * len(new) + data_kib
    return int(min(MAX_CHANGED_KIB, max(BLOCK_KIB, -(-blocks // BLOCK_KIB) * BLOCK_KIB)))


def _is_prefix(short: dict[str, list[str]], long: dict[str, list[str]]) -> bool:
    return all(long.get(p, [])[: len(lines)] == lines for p, lines in short.items())


def tick(lab: Any, now: float) -> None:
    """Advance connections, resyncs and roles to lab time ``now``.

    Suspended I/O needs no state of its own: :func:`append` asks for quorum at each write.
    """
    st: DrbdState = lab.drbd
    ctl = lab.linstor
    dt = 0.0 if st.last is None else max(0.0, now - st.last)
    st.last = now
    rate_kib_s = float(lab.options.get("drbd_resync_mib_s", 110.0)) * 1024
    for rd in ctl.rds.values():
        if not rd.drbd:
            continue
        nodes = sorted(rd.replicas)
        for rep in rd.replicas.values():
            if not node_up(lab, rep.node) and rep.role == "Primary":
                rep.role = "Secondary"  # power lost: DRBD comes back down/Secondary
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                if link_up(lab, rd.name, a, b):  # on (re)connection, and whenever connected peers differ
                    _connect(lab, rd, a, b)
        for rep in rd.replicas.values():
            sync = rep.sync
            if sync and link_up(lab, rd.name, rep.node, sync["source"]):
                sync["done_kib"] = min(sync["total_kib"], sync["done_kib"] + int(rate_kib_s * dt))
                if sync["done_kib"] >= sync["total_kib"]:
                    source_files = st.files.get(rd.name, {}).get(sync["source"], {})
                    st.files.setdefault(rd.name, {})[rep.node] = {p: list(v) for p, v in source_files.items()}
                    rep.sync, rep.disk_state = None, "UpToDate"
    st.split_brain = [k for k in st.split_brain if k.split("|", 1)[0] in ctl.rds]
    for rd_name in [r for r in st.files if r not in ctl.rds]:
        del st.files[rd_name]


def _connect(lab: Any, rd: Any, a: str, b: str) -> None:
    """Two replicas see each other again: compare generations (here: content)."""
    st: DrbdState = lab.drbd
    ra, rb = rd.replicas[a], rd.replicas[b]
    if ra.diskless or rb.diskless:
        return
    fa = st.files.get(rd.name, {}).get(a, {})
    fb = st.files.get(rd.name, {}).get(b, {})
    if fa == fb or ra.sync or rb.sync:
        return
    if _is_prefix(fa, fb):
        behind, ahead = ra, rb
    elif _is_prefix(fb, fa):
        behind, ahead = rb, ra
    else:
        st.split_brain.append(_pair(rd.name, a, b))
        return
    total = sum(_changed_kib(st.files.get(rd.name, {}).get(behind.node, {}).get(p, []), lines)
                for p, lines in st.files.get(rd.name, {}).get(ahead.node, {}).items())
    if behind.role == "Primary":  # a frozen primary meets newer data: force-secondary, its I/O fails
        behind.role = "Secondary"
    behind.disk_state = "Inconsistent"
    behind.sync = {"source": ahead.node, "done_kib": 0, "total_kib": max(BLOCK_KIB, total)}


def append(lab: Any, rd_name: str, node: str, path: str, line: str) -> str:
    """A process on ``node`` appends ``line`` and fsyncs: ``ok``, ``blocked`` (suspended) or ``error``."""
    ctl = lab.linstor
    rd = ctl.rds.get(rd_name)
    rep = rd.replicas.get(node) if rd else None
    if rd is None or rep is None or rep.role != "Primary":
        return "error"
    if not ctl.has_quorum(rd, node):  # the kernel's answer: quorum-off makes it ignore LINSTOR's setting
        policy = ctl.effective_prop(rd, "DrbdOptions/Resource/on-no-quorum", "suspend-io")
        return "blocked" if policy == "suspend-io" else "error"
    targets = [r for r in rd.replicas.values()
               if not r.diskless and not r.sync and (r.node == node or link_up(lab, rd_name, node, r.node))]
    if not any(r.disk_state == "UpToDate" for r in targets):
        return "blocked"  # on-no-data-accessible suspend-io
    for r in targets:
        replica_lines(lab, rd_name, r.node, path).append(line)
    return "ok"


def read(lab: Any, rd_name: str, node: str, path: str) -> list[str] | None:
    """What a reader on ``node`` sees: its own UpToDate disk, else a connected UpToDate peer's.

    An empty list is an empty (or absent) file; None means no UpToDate data is reachable.
    """
    rd = lab.linstor.rds.get(rd_name)
    if rd is None or node not in rd.replicas:
        return None
    files = lab.drbd.files.get(rd_name, {})
    sources = [node] + sorted(n for n in rd.replicas if n != node and link_up(lab, rd_name, node, n))
    for n in sources:
        rep = rd.replicas[n]
        if not rep.diskless and rep.disk_state == "UpToDate" and not rep.sync:
            return list(files.get(n, {}).get(path, []))
    return None


def holds_files(lab: Any, rd_name: str, path: str) -> bool:
    return any(path in per_node for per_node in lab.drbd.files.get(rd_name, {}).values())


def demote_unused(lab: Any, in_use: set[tuple[str, str]]) -> None:
    """Auto-demote: a device that was opened (``in_use`` = {(rd, node)} now) and is closed goes Secondary.

    A node the API cannot reach still has it open (its kubelet has not heard the pod is gone).
    """
    st: DrbdState = lab.drbd
    still = []
    for key in st.opened:
        rd_name, node = key.split("|", 1)
        rep = lab.linstor.rds.get(rd_name, None)
        rep = rep.replicas.get(node) if rep else None
        if rep is None or (rd_name, node) in in_use:
            continue
        if node_up(lab, node) and lab.node_reachable(node):
            rep.role = "Secondary"
        else:
            still.append(key)
    st.opened = sorted(set(still) | {f"{rd}|{node}" for rd, node in in_use})
