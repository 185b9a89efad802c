"""Storage health: what DRBD and LINSTOR say about every replica, and whether a node may go down or is back.

Pure functions over one read of four endpoints (LINSTOR ``/v1/view/resources``, ``/v1/nodes``,
``/v1/view/storage-pools`` and the Kubernetes node list), so a gate costs the same number of
calls on 3 nodes as on 300. :func:`read_view` does that read; everything else takes the
decoded answers and returns a model, a verdict or a table.

What the model can and cannot know (LINSTOR REST API 1.27, ``rest_v1_openapi.yaml``):

- per replica and volume: ``state.disk_state`` (UpToDate, Inconsistent, Outdated, Diskless...)
  and ``state.replication_states`` per peer (Established, SyncSource, SyncTarget, ... with
  ``done_percentage``); per replica: the DRBD layer's ``connections`` (``connected``,
  ``message``) and ``state.in_use``. A satellite that is offline reports none of them.
- The API has no quorum field and no suspended-I/O flag. Quorum is derived here the way DRBD
  counts it with ``quorum majority``: a replica has quorum when it is connected to a majority
  of the resource's replicas, itself and diskless tie-breakers included. A replica in use
  (Primary) without quorum has its I/O suspended under ``on-no-quorum suspend-io`` (what
  Piraeus sets); the HA controller's node taints (``drbd.linbit.com/lost-quorum``,
  ``drbd.linbit.com/force-io-error``) are the cluster's own word for it.
- A replica LINSTOR placed diskful (no ``DISKLESS`` flag, a real storage pool) whose disk
  state is ``Diskless`` lost its disk: after Talos v1.12.0 existing DRBD resources came back
  that way when the kernel lost the ``crct10dif`` checksum (siderolabs/talos#12478).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .kube import node_states
from .linstor import resources_frame, storage_pools_frame

#: DRBD replication states during a resync (drbdsetup(8) "replication states").
RESYNC_STATES = frozenset({"StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
                           "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT"})
#: The HA controller's NoSchedule taints (piraeus-ha-controller README).
HA_TAINTS = ("drbd.linbit.com/lost-quorum", "drbd.linbit.com/force-io-error")
SEE_HEALTH = "08-storage-health shows every replica's state"


@dataclass(frozen=True)
class Replica:
    """One resource on one node, as its satellite reported it (all volumes folded together)."""

    resource: str
    node: str
    diskless: bool  # placed without a disk (a tie-breaker or a diskless client)
    tiebreaker: bool
    reported: bool  # False: the satellite sent no state (node offline); nothing below is known
    disk_states: tuple[str, ...]
    peers: Mapping[str, str] = field(default_factory=dict)  # peer -> DRBD connection message
    replication: Mapping[str, str] = field(default_factory=dict)  # peer -> replication state
    resync_percent: float | None = None
    in_use: bool | None = None

    @property
    def disk_state(self) -> str:
        if not self.reported:
            return "unknown (satellite reported nothing)"
        states = sorted(set(self.disk_states))
        return "/".join(states) if states else "no volume"

    @property
    def up_to_date(self) -> bool:
        return self.reported and not self.diskless and bool(self.disk_states) and all(
            s == "UpToDate" for s in self.disk_states)

    @property
    def lost_disk(self) -> bool:
        """Placed diskful but attached without its disk (talos#12478)."""
        return self.reported and not self.diskless and "Diskless" in self.disk_states

    @property
    def resyncing(self) -> bool:
        return self.reported and (any(s in RESYNC_STATES for s in self.replication.values())
                                  or "Inconsistent" in self.disk_states)

    def connected(self, peer: str) -> bool:
        return self.peers.get(peer) == "Connected"

    def describe(self) -> str:
        """``UpToDate``, ``Inconsistent, SyncTarget 42% from lab-cp-2``, ``peers: lab-cp-3 Connecting``."""
        if not self.reported:
            return self.disk_state
        parts = ["Diskless (tie-breaker)" if self.tiebreaker else self.disk_state]
        syncing = {p: s for p, s in self.replication.items() if s in RESYNC_STATES}
        for peer, state in sorted(syncing.items()):
            target = state.endswith(("T", "Target"))  # this replica receives the data
            pct = f" {self.resync_percent:.0f}%" if target and self.resync_percent is not None else ""
            parts.append(f"{state}{pct} {'from' if target else 'to'} {peer}")
        down = {p: m for p, m in self.peers.items() if m != "Connected"}
        if down:
            parts.append("not connected to " + ", ".join(f"{p} ({m})" for p, m in sorted(down.items())))
        if self.in_use:
            parts.append("in use")
        return ", ".join(parts)


@dataclass(frozen=True)
class StorageView:
    """One moment of the cluster's storage: replicas, satellites, pools and Kubernetes nodes."""

    replicas: tuple[Replica, ...]
    satellites: Mapping[str, str]  # LINSTOR node -> connection_status (ONLINE, OFFLINE, ...)
    pools: pd.DataFrame
    nodes: Mapping[str, Any] = field(default_factory=dict)  # Kubernetes node -> kube.NodeState

    def resources(self) -> dict[str, list[Replica]]:
        out: dict[str, list[Replica]] = {}
        for rep in self.replicas:
            out.setdefault(rep.resource, []).append(rep)
        return out

    def on(self, node: str) -> list[Replica]:
        return [r for r in self.replicas if r.node == node]

    def replica(self, resource: str, node: str) -> Replica | None:
        return next((r for r in self.replicas if r.resource == resource and r.node == node), None)

    def has_quorum(self, resource: str, node: str) -> bool:
        """DRBD ``quorum majority`` as seen from ``node``: connected to a majority of the replicas."""
        reps = self.resources().get(resource, [])
        me = next((r for r in reps if r.node == node), None)
        if me is None or not me.reported:
            return False
        votes = 1 + sum(1 for r in reps if r.node != node and me.connected(r.node))
        return votes * 2 > len(reps)

    def suspended(self) -> list[Replica]:
        """Replicas in use without quorum: with ``on-no-quorum suspend-io`` their I/O is frozen."""
        return [r for r in self.replicas if r.in_use and not self.has_quorum(r.resource, r.node)]

    def tainted_nodes(self) -> dict[str, list[str]]:
        return {name: [t for t in getattr(st, "taints", []) if t in HA_TAINTS]
                for name, st in self.nodes.items() if any(t in HA_TAINTS for t in getattr(st, "taints", []))}

    def held_by(self, node: str) -> dict[str, bool]:
        """What ``node`` holds, to compare with after it is back: resource -> placed diskful."""
        return {r.resource: not r.diskless for r in self.on(node)}


def model(resources: list[dict], nodes: list[dict], pools: list[dict],
          kube_nodes: Mapping[str, Any] | None = None) -> StorageView:
    """The view from the decoded answers of the three LINSTOR endpoints and the Kubernetes node states."""
    frame = resources_frame(resources)
    replicas = []
    for (resource, node), rows in frame.groupby(["resource", "node"], sort=True):
        first = rows.iloc[0]
        replication: dict[str, str] = {}
        for states in rows["replication_states"]:
            for peer, state in (states or {}).items():
                # the worst state across volumes: a resync anywhere counts
                if peer not in replication or state in RESYNC_STATES:
                    replication[peer] = state
        done = rows["resync_done_percent"].dropna()
        replicas.append(Replica(
            resource=str(resource), node=str(node), diskless=bool(first["diskless"]), tiebreaker=bool(first["tiebreaker"]),
            reported=bool(first["state_reported"]),
            disk_states=tuple(str(s) for s in rows["disk_state"] if isinstance(s, str)),
            peers=dict(first["peer_states"] or {}), replication=replication,
            resync_percent=float(done.min()) if len(done) else None,
            in_use=None if pd.isna(first["in_use"]) else bool(first["in_use"]),
        ))
    satellites = {str(n["name"]): str(n.get("connection_status") or "UNKNOWN") for n in nodes}
    return StorageView(tuple(replicas), satellites, storage_pools_frame(pools), dict(kube_nodes or {}))


def read_view(client: Any, api: Any) -> StorageView:
    """Four calls, whatever the cluster size: LINSTOR resources, nodes and pools, then Kubernetes nodes."""
    return model(client.resources(), client.nodes(), client.storage_pools(), node_states(api))


@dataclass(frozen=True)
class Blocker:
    resource: str  # a resource name, or "satellite"/"node" for node-level problems
    node: str
    state: str
    fix: str
    #: waiting will not clear it (a replica that attached Diskless while connected to its peers)
    final: bool = False

    def line(self) -> str:
        return f"{self.resource} on {self.node}: {self.state}; {self.fix}"


@dataclass(frozen=True)
class Verdict:
    question: str  # "lab-cp-2 may go down"
    blockers: tuple[Blocker, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.blockers

    def explain(self) -> str:
        if self.ok:
            return f"{self.question}: yes"
        lines = "\n".join(f"  - {b.line()}" for b in self.blockers)
        return f"{self.question}: no, {len(self.blockers)} problem(s):\n{lines}"

    def resources(self) -> list[str]:
        return sorted({b.resource for b in self.blockers})

    @property
    def final(self) -> bool:
        """Some blocker will not clear by waiting: stop now instead of running out the timeout."""
        return any(b.final for b in self.blockers)


def cluster_blockers(view: StorageView) -> list[Blocker]:
    """What stops any node from going down: a resync, a lost disk, an offline satellite, lost quorum."""
    out: list[Blocker] = []
    for name, status in sorted(view.satellites.items()):
        if status != "ONLINE":
            out.append(Blocker("satellite", name, f"LINSTOR satellite {status}",
                               "bring the node and its linstor-satellite pod back first (kubectl -n <piraeus namespace> "
                               "get pods -o wide); no other node may go down meanwhile"))
    for rep in view.replicas:
        if rep.lost_disk:
            out.append(Blocker(rep.resource, rep.node, f"{rep.describe()}: placed diskful but attached without its disk",
                               "the node lost its backing disk or the DRBD module cannot attach it (after Talos v1.12.0 "
                               "see siderolabs/talos#12478); fix the node, then `linstor resource adjust` or re-create "
                               "the replica"))
        elif rep.resyncing:
            out.append(Blocker(rep.resource, rep.node, rep.describe(),
                               f"wait for the resync to finish ({SEE_HEALTH} and its progress), then run again"))
        elif rep.reported and not rep.diskless and rep.disk_states and not rep.up_to_date:
            out.append(Blocker(rep.resource, rep.node, rep.describe(),
                               "this copy is not current: find out why (drbdadm status on the node) before another "
                               "node goes down"))
    for rep in view.replicas:
        # a link down between two running satellites: one more failure and a resource may lose quorum
        down = sorted(p for p, m in rep.peers.items() if m != "Connected" and view.satellites.get(p) == "ONLINE")
        if rep.reported and down and view.satellites.get(rep.node) == "ONLINE" and not rep.lost_disk:
            out.append(Blocker(rep.resource, rep.node, rep.describe(),
                               f"the DRBD connection to {', '.join(down)} is down although both satellites are ONLINE: "
                               "check the replication network between them (and `drbdadm status`)"))
    for rep in view.suspended():
        out.append(Blocker(rep.resource, rep.node, f"{rep.describe()}, without quorum: I/O suspended",
                           "reconnect the replicas (network, nodes) so it regains quorum"))
    for node, taints in sorted(view.tainted_nodes().items()):
        out.append(Blocker("node", node, f"tainted {', '.join(taints)} by the HA controller",
                           "a resource there lost quorum or forces I/O errors; resolve it first"))
    return out


def _survivors(view: StorageView, reps: list[Replica], gone: set[str]) -> tuple[int, int]:
    """(largest group of good, mutually connected replicas outside ``gone``, UpToDate copies in it)."""
    good = [r for r in reps if r.node not in gone and r.reported and (r.up_to_date or r.diskless)]
    best = (0, 0)
    for anchor in (r for r in good if r.up_to_date):
        group = [anchor] + [r for r in good if r is not anchor and anchor.connected(r.node)]
        best = max(best, (len(group), sum(1 for r in group if r.up_to_date)))
    return best


def may_go_down(view: StorageView, nodes: str | Sequence[str], *, exempt: Iterable[str] = ()) -> Verdict:
    """May ``nodes`` go away now (reboot, reset, upgrade, a drill's fault)?

    Yes when every resource with a replica there keeps, on the other nodes, a majority of its
    replicas that are UpToDate (tie-breakers: present) and connected to each other, holding at
    least one UpToDate copy; no resync runs anywhere; no disk is lost; every satellite is
    ONLINE; no I/O is suspended. ``exempt`` resources are expected to lose quorum (a drill's
    own test volume in its quorum-loss scenario): only their data must survive.
    """
    gone = {nodes} if isinstance(nodes, str) else set(nodes)
    question = f"{', '.join(sorted(gone))} may go down"
    blockers = cluster_blockers(view)
    exempt = set(exempt)
    for resource, reps in sorted(view.resources().items()):
        if not any(r.node in gone for r in reps):
            continue
        size, copies = _survivors(view, reps, gone)
        on_gone = ", ".join(sorted(r.node for r in reps if r.node in gone))
        state = f"{len(reps)} replica(s), {copies} UpToDate copy(ies) connected elsewhere"
        if copies == 0:
            blockers.append(Blocker(resource, on_gone, f"{state}: its only current data would go",
                                    "add a replica on another node (`linstor resource create` or a class with more "
                                    "replicas) and let it sync, or stop the workload and back the volume up first"))
        elif resource not in exempt and size * 2 <= len(reps):
            blockers.append(Blocker(resource, on_gone, f"{state}, {size} of {len(reps)} votes left: it would lose quorum "
                                    "and freeze its I/O", "wait until its other replicas are UpToDate and connected, or "
                                    "add a replica (or a tie-breaker) elsewhere"))
    return Verdict(question, tuple(blockers))


def is_back(view: StorageView, node: str, held: Mapping[str, bool]) -> Verdict:
    """Is ``node`` back? Its satellite ONLINE, every replica it ``held`` (from :meth:`StorageView.held_by`
    before it went down) present again, the diskful ones diskful, UpToDate and connected to every peer."""
    blockers: list[Blocker] = []
    status = view.satellites.get(node, "absent")
    if status != "ONLINE":
        blockers.append(Blocker("satellite", node, f"LINSTOR satellite {status}",
                                "wait for the node and its linstor-satellite pod"))
    kube_node = view.nodes.get(node)
    if view.nodes and (kube_node is None or getattr(kube_node, "ready", "True") != "True"):
        blockers.append(Blocker("node", node, f"Kubernetes Ready={getattr(kube_node, 'ready', 'not registered')}",
                                "wait for the kubelet"))
    for resource, diskful in sorted(held.items()):
        rep = view.replica(resource, node)
        if rep is None:
            blockers.append(Blocker(resource, node, "replica missing", "LINSTOR no longer places it here: "
                                    "check `linstor resource list -r " + resource + "`"))
            continue
        if status != "ONLINE":
            continue  # the satellite line says it all
        down = sorted(p for p in rep.peers if not rep.connected(p))
        if diskful and (rep.diskless or rep.lost_disk):
            # DRBD attaches the disk before it connects: connected and still Diskless means the attach failed
            settled = rep.diskless or (bool(rep.peers) and not down)
            blockers.append(Blocker(resource, node, f"{rep.describe()}: was diskful before, Diskless now",
                                    "the node lost its disk or DRBD cannot attach it (siderolabs/talos#12478 after "
                                    "v1.12.0): stop the rollout, roll this node back (talosctl rollback) or fix it",
                                    final=settled))
        elif diskful and not rep.up_to_date:
            blockers.append(Blocker(resource, node, rep.describe(), "wait for the resync to finish"))
        elif down:
            blockers.append(Blocker(resource, node, rep.describe(), "wait for DRBD to reconnect; check the "
                                    "replication network between the nodes"))
    return Verdict(f"{node} is back", tuple(blockers))


def replicas_frame(view: StorageView) -> pd.DataFrame:
    """One row per replica: states, peers, resync progress, quorum; sorted by resource and node."""
    rows = [{"resource": r.resource, "node": r.node,
             "kind": "tie-breaker" if r.tiebreaker else "diskless" if r.diskless else "diskful",
             "disk_state": r.disk_state, "replication": ", ".join(f"{p}: {s}" for p, s in sorted(r.replication.items())),
             "connections": ", ".join(f"{p}: {m}" for p, m in sorted(r.peers.items())),
             "resync_percent": r.resync_percent, "in_use": r.in_use,
             "quorum": view.has_quorum(r.resource, r.node) if r.reported else None,
             "healthy": (r.up_to_date or (r.diskless and r.reported)) and all(r.connected(p) for p in r.peers)}
            for r in view.replicas]
    return pd.DataFrame(rows, columns=["resource", "node", "kind", "disk_state", "replication", "connections",
                                       "resync_percent", "in_use", "quorum", "healthy"])


def satellites_frame(view: StorageView) -> pd.DataFrame:
    names = sorted(set(view.satellites) | set(view.nodes))
    rows = []
    for name in names:
        st = view.nodes.get(name)
        rows.append({"node": name, "satellite": view.satellites.get(name, "absent"),
                     "kubernetes_ready": getattr(st, "ready", "not registered") if st is not None else "not registered",
                     "ha_taints": ", ".join(t for t in getattr(st, "taints", []) if t in HA_TAINTS),
                     "replicas": len(view.on(name))})
    return pd.DataFrame(rows, columns=["node", "satellite", "kubernetes_ready", "ha_taints", "replicas"])


def red_flags_frame(view: StorageView) -> pd.DataFrame:
    """Every problem :func:`cluster_blockers` finds, plus resources that cannot survive any node loss."""
    flags = [{"what": b.resource, "node": b.node, "state": b.state, "what to do": b.fix} for b in cluster_blockers(view)]
    for resource, reps in sorted(view.resources().items()):
        diskful = [r for r in reps if not r.diskless]
        if len(reps) < 3 or len(diskful) < 2:
            flags.append({"what": resource, "node": ", ".join(sorted(r.node for r in reps)),
                          "state": f"{len(diskful)} diskful + {len(reps) - len(diskful)} diskless replica(s)",
                          "what to do": "it cannot keep quorum and data through one node's loss: use a class with 3 "
                                        "replicas, or 2 and a tie-breaker (04-storage-classes)"})
    return pd.DataFrame(flags, columns=["what", "node", "state", "what to do"])
