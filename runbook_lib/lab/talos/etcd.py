"""etcd on the control planes: membership, quorum, status, snapshots and member removal."""

from __future__ import annotations

from .constants import T_ETCD_JOIN
from .errors import TalosAPIError
from .node import TalosNode
from .seeded import _Rand


class Etcd:
    """etcd on the control planes (a part of :class:`.cluster.TalosCluster`)."""

    def etcd_members(self) -> list[TalosNode]:
        return [n for n in self.nodes.values() if n.role == "controlplane" and n.etcd_member]

    def etcd_quorum(self, now: float) -> bool:
        """More than half of the etcd members run with their data (else etcd, and the Kubernetes API, is down)."""
        members = self.etcd_members()
        if not members:
            return False
        healthy = sum(1 for n in members if n.etcd_running(now))
        return healthy > len(members) / 2

    def etcd_healthy(self, node: TalosNode, now: float) -> bool:
        return node.etcd_running(now) and self.etcd_quorum(now)

    def _etcd_rejoin(self, node: TalosNode, now: float) -> bool:
        """A running control plane that is not an etcd member joins again (Talos etcd service retries)."""
        if (node.role != "controlplane" or node.etcd_member or node.stage != "running" or not node.is_up(now)
                or node.running_at is None or now < node.running_at + T_ETCD_JOIN or not self.etcd_quorum(now)):
            return False
        node.etcd_member, node.etcd_data = True, True
        node.etcd_member_id = self._hex(16, f"etcd:{node.name}")
        self._touch(node, now)
        return True

    def etcd_member_list(self, node: TalosNode, now: float) -> list[dict]:
        self.require_up(node, now)
        self._require_etcd(node, now)
        return [{"id": n.etcd_member_id, "hostname": n.name, "peer_urls": [f"https://{n.address}:2380"],
                 "client_urls": [f"https://{n.address}:2379"], "learner": False} for n in self.etcd_members()]

    def _require_etcd(self, node: TalosNode, now: float) -> None:
        if node.role != "controlplane":
            raise TalosAPIError("Unknown", "etcd is not running on worker nodes")
        if not node.etcd_running(now):
            raise TalosAPIError("Unknown", "failed to create etcd client: etcd service is not running")
        if not self.etcd_quorum(now):
            raise TalosAPIError("Unknown", "etcdserver: request timed out (etcd has lost quorum)")

    def etcd_status(self, node: TalosNode, now: float) -> dict:
        self.require_up(node, now)
        self._require_etcd(node, now)
        leader = min(self.etcd_members(), key=lambda n: n.name)
        r = _Rand(self.seed, f"etcdstatus:{node.name}")
        raft = 10000 + int(now)
        return {"member_id": node.etcd_member_id, "db_size": 18_000_000 + r._r.randrange(1_000_000),
                "db_size_in_use": 9_000_000 + r._r.randrange(1_000_000), "leader": leader.etcd_member_id,
                "raft_index": raft, "raft_term": 2 + node.boot_count, "raft_applied_index": raft, "learner": False,
                "errors": []}

    def require_etcd_snapshot(self, node: TalosNode, now: float) -> None:
        """``MachineService.EtcdSnapshot``'s preconditions (machined ``server.go``): a control plane whose member runs.

        The snapshot is read from the local member's database, so it needs no quorum.
        """
        self.require_up(node, now)
        if node.role != "controlplane":
            raise TalosAPIError("Unimplemented", "etcd snapshot is only available on control plane nodes")
        if not node.etcd_running(now):
            raise TalosAPIError("Unknown", "failed to create etcd client: etcd service is not running")

    def etcd_remove_member(self, node: TalosNode, member: str, now: float) -> None:
        self.require_up(node, now)
        self._require_etcd(node, now)
        target = next((n for n in self.etcd_members() if member in (n.etcd_member_id, n.name)), None)
        if target is None:
            raise TalosAPIError("Unknown", f"etcdserver: member not found: {member}")
        if target is node:
            raise TalosAPIError("Unknown", "cannot remove the member this request runs on; run it from another "
                                "control plane node")
        target.etcd_member = False
        target.etcd_data = False
        self._touch(target, now)
