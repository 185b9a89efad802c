"""DRBD's data plane in the lab: connections, quorum, suspended I/O, resync and replica content.

:mod:`.linstor_model` holds what LINSTOR knows (replicas, roles, disk states); this module
moves the kernel side along lab time, whether or not the Kubernetes API is up:

- A connection between two replicas is state, not a test of the moment: it is made by DRBD's
  handshake (generation UUIDs compared, LINBIT/drbd drbd_receiver.c ``drbd_uuid_compare``) while both
  nodes are powered and booted and no ``partition``/``replication-down`` fault separates them, and it
  is lost at once when either goes away or reboots. Only a connected peer receives the primary's
  writes and counts for quorum, so a returning replica can never take a write before the handshake
  has made it SyncTarget: a machine too busy to tick between the node's return and the next write
  cannot create a split brain. Peers whose data is identical connect as soon as they see each
  other; anything else waits for the tick's handshake. A pair that found a split brain stays
  StandAlone (DRBD's default ``after-sb-*`` policies are ``disconnect``) until the resource is deleted.
- Quorum is a majority of the resource's replicas, diskless tie-breakers included (DRBD UG
  "quorum"); ``on-no-quorum suspend-io`` freezes a primary's writes, ``io-error`` fails them.
  The ``quorum-off`` fault makes the kernel ignore quorum while LINSTOR still shows
  ``majority``: the misconfiguration the failover drill must catch.
- Writes are protocol C: a write reaches the primary's disk and every connected diskful peer
  before it completes. Replicas that were away keep what they had.
- Connected diskful replicas compare content (DRBD's generation UUIDs): equal is in sync, a prefix becomes
  SyncTarget of the longer one and resyncs the changed blocks at the link's bandwidth
  (``drbd_resync_mib_s``, default 110 MiB/s: 1 GbE), anything else is a split brain.
- Volumes in use change while a replica is away: a Primary that can write (quorum, data reachable)
  changes ``workload_write_mib_s`` per second, and every diskful replica that does not receive those
  writes (its node down, its link to the writer down, its disk detached) gains that much in the peers'
  bitmaps, bounded by the volume size. When it reconnects it becomes SyncTarget (its peer SyncSource),
  Inconsistent until the out-of-sync blocks are copied, then UpToDate (DRBD UG9 "Resynchronization":
  only blocks marked in the bitmap are resynced). The ``slow-resync`` fault copies at 1 MiB/s.
- A Secondary that lost its connection to the Primary while a peer it still reaches (directly or through
  others) is connected to that Primary is "weakly connected": the Primary keeps writing through that
  peer, so DRBD outdates the Secondary, which resyncs only once it reaches the Primary again. The
  ``replication-down`` fault (one storage link cut) shows it. A Primary cut off from every peer (the
  drill's ``isolate``) outdates nobody: the other Secondaries keep UpToDate disks and one may be promoted.
  (LINBIT/drbd drbd_state.c ``do_twopc_after_lost_peer``: after losing a peer a node outdates itself
  only when a Primary with UpToDate data answered the cluster-wide "lost-peer" transaction, which runs
  over the connections it has left, but is not directly connected to it.)
- ``diskless-after-upgrade``: after its node's next Talos upgrade the kernel cannot attach the backing
  disks (siderolabs/talos#12478: v1.12.0 lost ``crct10dif``, DRBD metadata checksums failed), so every
  replica LINSTOR keeps diskful there reports disk state Diskless. Once the fault is removed the next
  boot attaches them again (Outdated, then a resync of what they missed).
- A primary that loses quorum and reconnects to newer data demotes itself and fails its
  frozen I/O (``on-suspended-primary-outdated force-secondary``, set by Piraeus).
- A powered-off node's replicas come back Secondary; a primary with no local opener (the
  pod is gone and the node can tell) demotes, as DRBD's auto-promote does on close.

Content is modelled for appended files only (the drill's record log): per replica, the list
of lines. Other files stay in the shared per-volume model of :mod:`.workloads`.
"""

from __future__ import annotations

from typing import Any

from ..cluster import Lab
from ..faults import SLOW_RESYNC_MIB_S
from .state import DrbdState

BLOCK_KIB = 4  # DRBD's bitmap granularity
# An fsync'ed append dirties the data block, the inode and a few journal blocks.
BLOCKS_PER_APPEND = 4
MAX_CHANGED_KIB = 128 * 1024  # the journal wraps: a long outage does not dirty more than this


def _pair(rd: str, a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{rd}|{x}|{y}"


def node_up(lab: Lab, name: str) -> bool:
    """DRBD runs on the node: booted and running (the satellite brings resources up with the kubelet)."""
    node = lab.talos.nodes.get(name)
    return bool(node and node.kubelet_ready(lab.clock.now()))


def wire_up(lab: Lab, rd: str, a: str, b: str) -> bool:
    """Could the replicas of ``rd`` on ``a`` and ``b`` reach each other now (whether or not they have connected)?"""
    if not (node_up(lab, a) and node_up(lab, b)) or lab.faults.partitioned(a, b) or lab.faults.replication_down(a, b):
        return False
    return _pair(rd, a, b) not in lab.drbd.split_brain


def link_up(lab: Lab, rd: str, a: str, b: str) -> bool:
    """Are the replicas of ``rd`` on ``a`` and ``b`` connected: the wire up and a handshake done since both booted?

    A connection the wire lost is forgotten here and then (DRBD notices a dead peer and needs a new handshake).
    """
    key = _pair(rd, a, b)
    links = lab.drbd.links
    if not wire_up(lab, rd, a, b):
        links.pop(key, None)
        return False
    boots = _boots(lab, a, b)
    if links.get(key) == boots:
        return True
    links.pop(key, None)  # a node rebooted since: that connection is gone
    res = lab.linstor.rds.get(rd)
    if res is not None and a in res.replicas and b in res.replicas and _identical(lab, res, a, b):
        links[key] = boots  # same generation on both sides: DRBD connects without a resync
        return True
    return False


def connection_state(lab: Lab, rd: str, a: str, b: str) -> str:
    """The connection from ``a`` to ``b`` as ``drbdadm status`` names it: Connected, StandAlone or Connecting."""
    if link_up(lab, rd, a, b):
        return "Connected"
    return "StandAlone" if split_brain(lab, rd, a, b) else "Connecting"


def _boots(lab: Lab, a: str, b: str) -> list[int]:
    return [lab.talos.nodes[n].boot_count for n in sorted((a, b))]


def _identical(lab: Lab, rd: Any, a: str, b: str) -> bool:
    """Would the handshake connect ``a`` and ``b`` without a resync? (A diskless side has nothing to compare.)"""
    ra, rb = rd.replicas[a], rd.replicas[b]
    if ra.sync or rb.sync:
        return False
    contents = _comparable(lab, rd, a, b)
    if contents is None:
        return True
    return contents[0] == contents[1] and not _needs_data(lab, rd, ra) and not _needs_data(lab, rd, rb)


def _handshake(lab: Lab, rd: Any, a: str, b: str) -> None:
    """Two replicas that can reach each other but are not connected compare their data: connect, or split brain.

    Neither replica's content extending the other's is a split brain (they stay StandAlone); otherwise they
    connect, and :func:`_connect` decides the resync. Done before outdating weakly connected nodes: a pair
    that refuses each other never becomes Connected, so no Primary is reached through it.
    """
    contents = _comparable(lab, rd, a, b)
    if contents is not None and not (_is_prefix(*contents) or _is_prefix(contents[1], contents[0])):
        lab.drbd.split_brain.append(_pair(rd.name, a, b))
        return
    lab.drbd.links[_pair(rd.name, a, b)] = _boots(lab, a, b)


def split_brain(lab: Lab, rd: str, a: str, b: str) -> bool:
    """Did ``a`` and ``b`` refuse each other's data (StandAlone until an operator resolves it)?"""
    return _pair(rd, a, b) in lab.drbd.split_brain


def detached(lab: Lab, rep: Any) -> bool:
    """A replica LINSTOR keeps diskful whose kernel could not attach its disk."""
    return not rep.diskless and rep.node in lab.drbd.detached


def quorum_enforced(lab: Lab) -> bool:
    return not lab.faults.has("quorum-off")


def replica_lines(lab: Lab, rd: str, node: str, path: str) -> list[str]:
    return lab.drbd.files.setdefault(rd, {}).setdefault(node, {}).setdefault(path, [])


def _changed_kib(behind: list[str], ahead: list[str]) -> int:
    new = ahead[len(behind):]
    data_kib = sum(len(line) + 1 for line in new) / 1024
    blocks = BLOCK_KIB * BLOCKS_PER_APPEND * len(new) + data_kib
    return int(min(MAX_CHANGED_KIB, max(BLOCK_KIB, -(-blocks // BLOCK_KIB) * BLOCK_KIB)))


def _is_prefix(short: dict[str, list[str]], long: dict[str, list[str]]) -> bool:
    return all(long.get(p, [])[: len(lines)] == lines for p, lines in short.items())


def tick(lab: Lab, now: float) -> None:
    """Advance connections, resyncs and roles to lab time ``now``.

    Suspended I/O needs no state of its own: :func:`append` asks for quorum at each write.
    """
    st: DrbdState = lab.drbd
    ctl = lab.linstor
    dt = 0.0 if st.last is None else max(0.0, now - st.last)
    last, st.last = st.last, now
    rebooted = _track_boots(lab, last, now)
    for rd in ctl.rds.values():
        if not rd.drbd:
            continue
        nodes = sorted(rd.replicas)
        for rep in rd.replicas.values():
            if (not node_up(lab, rep.node) or rep.node in rebooted) and rep.role == "Primary":
                rep.role = "Secondary"  # power lost: DRBD comes back down/Secondary
            _attach_state(lab, rep)
        _accumulate_missed(lab, rd, dt, rebooted)
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                if wire_up(lab, rd.name, a, b) and not link_up(lab, rd.name, a, b):
                    _handshake(lab, rd, a, b)
        for rep in rd.replicas.values():
            if _weak(lab, rd, rep):
                rep.disk_state = "Outdated"
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                if link_up(lab, rd.name, a, b):  # on (re)connection, and whenever connected peers differ
                    _connect(lab, rd, a, b, now)
        for rep in rd.replicas.values():
            _advance_resync(lab, rd, rep, now, last)
    st.split_brain = [k for k in st.split_brain if k.split("|", 1)[0] in ctl.rds]
    st.links = {k: v for k, v in st.links.items() if k.split("|", 1)[0] in ctl.rds}
    for rd_name in [r for r in st.files if r not in ctl.rds]:
        del st.files[rd_name]
    st.missed = {k: v for k, v in st.missed.items()
                 if (parts := k.split("|", 1))[0] in ctl.rds and parts[1] in ctl.rds[parts[0]].replicas}


def _track_boots(lab: Lab, last: float | None, now: float) -> dict[str, float]:
    """Nodes that booted since the last tick: arm ``diskless-after-upgrade`` after an upgrade, or heal it.

    Returns, for each node that went down and is up again within this tick (a reboot is shorter than a
    tick at high time scales), the lab seconds of the tick it was away.
    """
    st: DrbdState = lab.drbd
    away: dict[str, float] = {}
    for node in lab.talos.nodes.values():
        seen = st.boots.get(node.name)
        st.boots[node.name] = node.boot_count
        if seen is None or seen == node.boot_count:
            continue
        broken = lab.faults.has("diskless-after-upgrade", node.name)
        if broken and node.upgraded_boot == node.boot_count and node.name not in st.detached:
            st.detached.append(node.name)
        elif not broken and node.name in st.detached:
            st.detached.remove(node.name)  # the fixed kernel attaches the disks again at this boot
        if last is not None and node_up(lab, node.name):
            start = max(last, node.down_at if node.down_at is not None else last)
            away[node.name] = max(0.0, min(now, node.ready_at() or now) - start)
    return away


def _attach_state(lab: Lab, rep: Any) -> None:
    if detached(lab, rep):
        rep.disk_state, rep.sync = "Diskless", None
    elif not rep.diskless and rep.disk_state == "Diskless":
        rep.disk_state = "Outdated"  # attached again: behind by what it missed, resynced on connection


def _missed_key(rd_name: str, node: str) -> str:
    return f"{rd_name}|{node}"


def missed_kib(lab: Lab, rd_name: str, node: str) -> float:
    """KiB of ``rd`` the replica on ``node`` did not receive while away (0 when in sync)."""
    return float(lab.drbd.missed.get(_missed_key(rd_name, node), 0.0))


def _writer(lab: Lab, rd: Any) -> Any | None:
    """The Primary whose application writes right now (quorum and UpToDate data within reach), if any."""
    ctl = lab.linstor
    for rep in rd.replicas.values():
        if rep.role == "Primary" and node_up(lab, rep.node) and ctl.has_quorum(rd, rep.node) \
                and ctl.data_accessible(rd, rep.node):
            return rep
    return None


def _receives_writes(lab: Lab, rd: Any, writer: Any, rep: Any) -> bool:
    if rep.diskless or detached(lab, rep):
        return False
    return rep.node == writer.node or link_up(lab, rd.name, writer.node, rep.node)


def _accumulate_missed(lab: Lab, rd: Any, dt: float, rebooted: dict[str, float]) -> None:
    rate_kib_s = float(lab.options.get("workload_write_mib_s", 0.0)) * 1024
    writer = _writer(lab, rd)
    if writer is None or rate_kib_s <= 0:
        return
    size_kib = sum(vd.size_kib for vd in rd.volumes)
    for rep in rd.replicas.values():
        if rep.diskless or rep is writer and not detached(lab, rep):
            continue
        away = dt if not _receives_writes(lab, rd, writer, rep) else rebooted.get(rep.node, 0.0)
        if away > 0:
            key = _missed_key(rd.name, rep.node)
            lab.drbd.missed[key] = min(float(size_kib), lab.drbd.missed.get(key, 0.0) + rate_kib_s * away)


def _reachable(lab: Lab, rd: Any, node: str) -> set[str]:
    """The replicas' nodes ``node`` reaches over DRBD connections, through other peers too (itself included)."""
    seen, todo = {node}, [node]
    while todo:
        here = todo.pop()
        for n in rd.replicas:
            if n not in seen and link_up(lab, rd.name, here, n):
                seen.add(n)
                todo.append(n)
    return seen


def _weak(lab: Lab, rd: Any, rep: Any) -> bool:
    """Not connected to a Primary that it still reaches through a peer: DRBD outdates such a node.

    A Primary it cannot reach at all (isolated) does not count: that Primary can no longer write
    through anyone this node talks to.
    """
    if rep.diskless or detached(lab, rep) or rep.role == "Primary" or not node_up(lab, rep.node):
        return False
    reach = _reachable(lab, rd, rep.node)
    return any(r.role == "Primary" and r.node != rep.node and r.node in reach and node_up(lab, r.node)
               and not link_up(lab, rd.name, rep.node, r.node) and lab.linstor.data_accessible(rd, r.node)
               for r in rd.replicas.values())


def _serves(lab: Lab, rd: Any, ahead: Any, behind: Any) -> bool:
    """May ``ahead`` be the SyncSource of ``behind``: its own disk UpToDate, holding every write ``behind`` holds?

    What a replica missed is the writer's bookkeeping (its bitmap of that peer), not the replica's: a Secondary
    cut off from a Primary that goes on writing (``quorum-off``) still has an UpToDate disk and serves a peer the
    Primary outdated before it (DRBD 9 resyncs between Secondaries; LINBIT/drbd drbd_receiver.c
    ``drbd_uuid_compare``: the node with the newer generation becomes SyncSource). It only must not have missed
    more of the writer's writes than ``behind`` did.
    """
    return (not ahead.diskless and not detached(lab, ahead) and not ahead.sync and ahead.disk_state == "UpToDate"
            and missed_kib(lab, rd.name, ahead.node) <= missed_kib(lab, rd.name, behind.node))


def _needs_data(lab: Lab, rd: Any, rep: Any) -> bool:
    return (not rep.diskless and not detached(lab, rep) and not rep.sync
            and (missed_kib(lab, rd.name, rep.node) > 0 or rep.disk_state in ("Outdated", "Inconsistent")))


def _advance_resync(lab: Lab, rd: Any, rep: Any, now: float, last: float | None) -> None:
    """Copy out-of-sync blocks from the SyncSource for the time both were connected in this tick."""
    sync = rep.sync
    if not sync or not link_up(lab, rd.name, rep.node, sync["source"]):
        return
    mib_s = float(lab.options.get("drbd_resync_mib_s", 110.0))
    if lab.faults.has("slow-resync", rep.node):
        mib_s = min(mib_s, SLOW_RESYNC_MIB_S)
    since = max(last if last is not None else now, float(sync.get("started", now if last is None else last)))
    sync["done_kib"] = min(sync["total_kib"], sync["done_kib"] + int(mib_s * 1024 * max(0.0, now - since)))
    if sync["done_kib"] < sync["total_kib"]:
        return
    st: DrbdState = lab.drbd
    source_files = st.files.get(rd.name, {}).get(sync["source"], {})
    st.files.setdefault(rd.name, {})[rep.node] = {p: list(v) for p, v in source_files.items()}
    key = _missed_key(rd.name, rep.node)
    # what it missed while resyncing (if weak meanwhile), and what its source had missed: it holds the source's data
    left = st.missed.get(key, 0.0) - float(sync.get("missed_kib", 0.0)) + float(sync.get("source_missed_kib", 0.0))
    if left > 0:
        st.missed[key] = left
    else:
        st.missed.pop(key, None)
    rep.sync, rep.disk_state = None, "UpToDate"


def _comparable(lab: Lab, rd: Any, a: str, b: str) -> tuple[dict, dict] | None:
    """Both replicas' content when DRBD would compare them now (both diskful, attached, not resyncing)."""
    ra, rb = rd.replicas[a], rd.replicas[b]
    if ra.diskless or rb.diskless or detached(lab, ra) or detached(lab, rb) or ra.sync or rb.sync:
        return None
    files = lab.drbd.files.get(rd.name, {})
    return files.get(a, {}), files.get(b, {})


def _connect(lab: Lab, rd: Any, a: str, b: str, now: float) -> None:
    """Two replicas see each other again: compare generations (here: content and the peers' bitmaps)."""
    st: DrbdState = lab.drbd
    ra, rb = rd.replicas[a], rd.replicas[b]
    contents = _comparable(lab, rd, a, b)
    if contents is None:
        return
    fa, fb = contents
    if fa != fb:
        if _is_prefix(fa, fb):
            behind, ahead = ra, rb
        elif _is_prefix(fb, fa):
            behind, ahead = rb, ra
        else:
            st.split_brain.append(_pair(rd.name, a, b))
            return
        if not _weak(lab, rd, behind):
            _start_resync(lab, rd, behind, ahead, now)
        return
    for behind, ahead in ((ra, rb), (rb, ra)):
        if _needs_data(lab, rd, behind) and _serves(lab, rd, ahead, behind) and not _weak(lab, rd, behind):
            if missed_kib(lab, rd.name, behind.node) > missed_kib(lab, rd.name, ahead.node):
                _start_resync(lab, rd, behind, ahead, now)
            else:
                behind.disk_state = "UpToDate"  # same generation, nothing out of sync
            return


def _start_resync(lab: Lab, rd: Any, behind: Any, ahead: Any, now: float) -> None:
    st: DrbdState = lab.drbd
    files = st.files.get(rd.name, {})
    total = sum(_changed_kib(files.get(behind.node, {}).get(p, []), lines) for p, lines in files.get(ahead.node, {}).items())
    missed = missed_kib(lab, rd.name, behind.node)
    source_missed = min(missed, missed_kib(lab, rd.name, ahead.node))  # the writer's writes neither side has
    if behind.role == "Primary":  # a frozen primary meets newer data: force-secondary, its I/O fails
        behind.role = "Secondary"
    behind.disk_state = "Inconsistent"
    total_kib = total + -(-int(missed - source_missed) // BLOCK_KIB) * BLOCK_KIB  # whole bitmap blocks
    behind.sync = {"source": ahead.node, "done_kib": 0, "total_kib": max(BLOCK_KIB, total_kib),
                   "started": now, "missed_kib": missed, "source_missed_kib": source_missed}


def append(lab: Lab, rd_name: str, node: str, path: str, line: str) -> str:
    """A process on ``node`` appends ``line`` and fsyncs: ``ok``, ``blocked`` (suspended) or ``error``."""
    ctl = lab.linstor
    rd = ctl.rds.get(rd_name)
    rep = rd.replicas.get(node) if rd else None
    if rd is None or rep is None or rep.role != "Primary":
        return "error"
    if not ctl.has_quorum(rd, node):  # the kernel's answer: quorum-off makes it ignore LINSTOR's setting
        policy = ctl.effective_prop(rd, "DrbdOptions/Resource/on-no-quorum", "suspend-io")
        return "blocked" if policy == "suspend-io" else "error"
    targets = [r for r in rd.replicas.values() if not r.diskless and not detached(lab, r) and not r.sync
               and (r.node == node or link_up(lab, rd_name, node, r.node))]
    if not any(r.disk_state == "UpToDate" for r in targets):
        return "blocked"  # on-no-data-accessible suspend-io
    for r in targets:
        replica_lines(lab, rd_name, r.node, path).append(line)
    return "ok"


def read(lab: Lab, rd_name: str, node: str, path: str) -> list[str] | None:
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


def holds_files(lab: Lab, rd_name: str, path: str) -> bool:
    return any(path in per_node for per_node in lab.drbd.files.get(rd_name, {}).values())


def demote_unused(lab: Lab, in_use: set[tuple[str, str]]) -> None:
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
