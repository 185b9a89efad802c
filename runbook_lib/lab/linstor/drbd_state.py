"""DRBD state of the LINSTOR controller's resources: connections, quorum, promotion; snapshots."""

from __future__ import annotations

from .objects import ResourceDefinition, Snapshot
from .return_codes import (
    CREATED,
    DELETED,
    FAIL_EXISTS_SNAPSHOT,
    FAIL_NOT_FOUND_RSC,
    FAIL_NOT_FOUND_SNAPSHOT,
    FAIL_SNAPSHOTS_NOT_SUPPORTED,
    FAIL_UNKNOWN_ERROR,
    MASK_CRT,
    MASK_DEL,
    MASK_ERROR,
    MASK_RSC,
    MASK_SNAPSHOT,
    LinstorError,
    api_rc,
    not_found,
    ret_code,
)


class DrbdState:
    """DRBD state of the LINSTOR controller's resources (a part of :class:`.controller.LinstorController`)."""

    # -- DRBD roles and state
    def connected(self, a: str, b: str, rd_name: str = "") -> bool:
        if self.link is not None and rd_name:
            return self.link(rd_name, a, b)
        na, nb = self.nodes.get(a), self.nodes.get(b)
        return bool(na and nb and na.online and nb.online and not self.partitioned(a, b))

    def effective_prop(self, rd: ResourceDefinition, key: str, default: str | None = None) -> str | None:
        """A property as the satellite sees it: resource definition, then group, then controller."""
        rg = self.groups.get(rd.resource_group)
        for props in (rd.props, rg.props if rg else {}, self.props):
            if key in props:
                return props[key]
        return default

    def has_quorum(self, rd: ResourceDefinition, node: str) -> bool:
        if self.effective_prop(rd, "DrbdOptions/Resource/quorum", "off") == "off" or not self.quorum_enforced():
            return True
        voters = list(rd.replicas)
        reach = sum(1 for n in voters if n == node or self.connected(node, n, rd.name))
        return reach * 2 > len(voters)

    def data_accessible(self, rd: ResourceDefinition, node: str) -> bool:
        rep = rd.replicas[node]
        if not rd.drbd:
            return True
        if not rep.diskless and rep.disk_state == "UpToDate":
            return True
        if not rep.diskless and rep.disk_state == "Outdated":
            return False  # an Outdated disk must resync before it may serve (DRBD refuses to promote it)
        return any(not r.diskless and r.disk_state == "UpToDate" and self.connected(node, r.node, rd.name)
                   for r in rd.replicas.values() if r.node != node)

    def may_promote(self, rd: ResourceDefinition, node: str) -> bool:
        """DRBD's answer, which does not need the LINSTOR controller once the data plane is modelled."""
        up = self.alive(node) if self.alive is not None else bool(self.nodes.get(node) and self.nodes[node].online)
        if not up or node not in rd.replicas:
            return False
        other_primary = any(r.role == "Primary" and r.node != node and self.connected(node, r.node, rd.name)
                            for r in rd.replicas.values())
        return (rd.replicas[node].role != "Primary" and not other_primary and self.data_accessible(rd, node)
                and self.has_quorum(rd, node) and not rd.replicas[node].tiebreaker)

    def promotion_score(self, rd: ResourceDefinition, node: str) -> int:
        rep = rd.replicas[node]
        uptodate = sum(1 for r in rd.replicas.values() if not r.diskless and r.disk_state == "UpToDate"
                       and (r.node == node or self.connected(node, r.node, rd.name)))
        return (10000 if not rep.diskless and rep.disk_state == "UpToDate" else 0) + (100 if self.has_quorum(rd, node) else 0) + uptodate

    def set_primary(self, rd_name: str, node: str, primary: bool) -> None:
        """A consumer opened (Primary) or closed (Secondary) the device on ``node``."""
        rd = self._rd(rd_name)
        rep = rd.replicas.get(node)
        if rep is None:
            raise not_found(FAIL_NOT_FOUND_RSC, MASK_RSC, f"Resource '{rd_name}' on node '{node}'")
        if primary and rep.role != "Primary":
            if rd.drbd and not self.may_promote(rd, node):
                raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR, MASK_RSC),
                                           f"Resource '{rd_name}' cannot be promoted on node '{node}'",
                                           cause="State change failed: (-2) Need access to UpToDate data")], 500)
            rep.role = "Primary"
            rd.props.setdefault("DrbdPrimarySetOn", node.upper())
        elif not primary:
            rep.role = "Secondary"

    # -- snapshots
    def create_snapshot(self, rd_name: str, name: str) -> list[dict]:
        rd = self._rd(rd_name)
        if name in self.snapshots.get(rd_name, {}):
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_SNAPSHOT, MASK_ERROR, MASK_CRT, MASK_SNAPSHOT),
                                       f"A snapshot with the name '{name}' of the resource '{rd_name}' already exists.")], 409)
        nodes = [r.node for r in rd.replicas.values() if not r.diskless]
        for node in nodes:
            pool = self.pools[node][rd.replicas[node].pool]
            if not pool.traits.snapshots:
                raise LinstorError([api_rc(ret_code(FAIL_SNAPSHOTS_NOT_SUPPORTED, MASK_ERROR, MASK_CRT, MASK_SNAPSHOT),
                                           f"Storage pool '{pool.name}' on node '{node}' does not support snapshots.",
                                           cause=f"The storage pool driver {pool.kind} cannot take snapshots.")], 400)
            self._online_node(node)
        snap = Snapshot(rd_name, name, self._uuid(f"snap:{rd_name}:{name}"), nodes, self.now_ms(), [vd.size_kib for vd in rd.volumes],
                        props={"StorPoolName": rd.replicas[nodes[0]].pool} if nodes else {})
        self.snapshots.setdefault(rd_name, {})[name] = snap
        return [api_rc(ret_code(CREATED, MASK_CRT, MASK_SNAPSHOT), f"New snapshot '{name}' of resource '{rd_name}' registered.")]

    def delete_snapshot(self, rd_name: str, name: str) -> list[dict]:
        if name not in self.snapshots.get(rd_name, {}):
            raise not_found(FAIL_NOT_FOUND_SNAPSHOT, MASK_SNAPSHOT, f"Snapshot '{name}' of resource '{rd_name}'")
        del self.snapshots[rd_name][name]
        if not self.snapshots[rd_name]:
            del self.snapshots[rd_name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_SNAPSHOT), f"Snapshot '{name}' of resource '{rd_name}' deleted.")]
