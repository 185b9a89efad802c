"""Resource groups, definitions and replicas of the LINSTOR controller: placement, auto-place and quorum."""

from __future__ import annotations

from .constants import DISKLESS_POOL, LVM_EXTENT_KIB, MAX_OVERSUBSCRIPTION, ZFS_VOLBLOCK_KIB
from .objects import Node, Replica, ResourceDefinition, ResourceGroup, StoragePool, VolumeDefinition
from .providers import drbd_md_kib, round_up
from .return_codes import (
    CREATED,
    DELETED,
    FAIL_EXISTS_RSC,
    FAIL_EXISTS_RSC_DFN,
    FAIL_EXISTS_RSC_GRP,
    FAIL_EXISTS_SNAPSHOT,
    FAIL_IN_USE,
    FAIL_NOT_CONNECTED,
    FAIL_NOT_ENOUGH_FREE_SPACE,
    FAIL_NOT_ENOUGH_NODES,
    FAIL_NOT_FOUND_NODE,
    FAIL_NOT_FOUND_RSC,
    FAIL_NOT_FOUND_RSC_DFN,
    FAIL_NOT_FOUND_RSC_GRP,
    FAIL_NOT_FOUND_STOR_POOL,
    FAIL_STLT_NO_LAYER,
    INFO_TIE_BREAKER_CREATED,
    INFO_TIE_BREAKER_DELETING,
    INFO_TIE_BREAKER_TAKEOVER,
    MASK_CRT,
    MASK_DEL,
    MASK_ERROR,
    MASK_INFO,
    MASK_MOD,
    MASK_NODE,
    MASK_RSC,
    MASK_RSC_DFN,
    MASK_RSC_GRP,
    MASK_STOR_POOL,
    MASK_WARN,
    MODIFIED,
    WARN_NOT_ENOUGH_NODES_FOR_TIE_BREAKER,
    LinstorError,
    api_rc,
    not_found,
    ret_code,
)


class Placement:
    """Resource groups, definitions and replicas of the LINSTOR controller (a part of :class:`.controller.LinstorController`)."""

    # -- resource groups
    def create_resource_group(self, name: str, select_filter: dict, props: dict[str, str], description: str = "") -> list[dict]:
        if name in self.groups:
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_RSC_GRP, MASK_ERROR, MASK_CRT, MASK_RSC_GRP),
                                       f"A resource group with the name '{name}' already exists.")], 400)
        self.groups[name] = ResourceGroup(name, self._uuid("rg:" + name), description, dict(props), dict(select_filter))
        return [api_rc(ret_code(CREATED, MASK_CRT, MASK_RSC_GRP), f"New resource group '{name}' created.")]

    def modify_resource_group(self, name: str, select_filter: dict, override: dict[str, str]) -> list[dict]:
        rg = self.groups.get(name)
        if rg is None:
            raise not_found(FAIL_NOT_FOUND_RSC_GRP, MASK_RSC_GRP, f"Resource group '{name}'")
        rg.select_filter.update({k: v for k, v in select_filter.items() if v not in (None, [], "")})
        rg.props.update(override)
        return [api_rc(ret_code(MODIFIED, MASK_MOD, MASK_RSC_GRP), f"Resource group '{name}' modified.")]

    # -- resource definitions
    def create_resource_definition(self, name: str, group: str, size_kib: int, layers: list[str],
                                   props: dict[str, str] | None = None) -> ResourceDefinition:
        if name in self.rds:
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_RSC_DFN, MASK_ERROR, MASK_CRT, MASK_RSC_DFN),
                                       f"A resource definition with the name '{name}' already exists.")], 409)
        if group not in self.groups:
            raise not_found(FAIL_NOT_FOUND_RSC_GRP, MASK_RSC_GRP, f"Resource group '{group}'")
        rd = ResourceDefinition(name, self._uuid("rd:" + name), group, self.next_port, self._secret(name), list(layers),
                                props=dict(props or {}))
        self.next_port += 1
        rd.volumes.append(VolumeDefinition(0, int(size_kib), self.next_minor, self._uuid(f"vd:{name}:0")))
        self.next_minor += 1
        self.rds[name] = rd
        return rd

    def delete_resource_definition(self, name: str) -> list[dict]:
        rd = self.rds.get(name)
        if rd is None:
            raise not_found(FAIL_NOT_FOUND_RSC_DFN, MASK_RSC_DFN, f"Resource definition '{name}'")
        if any(r.role == "Primary" for r in rd.replicas.values()):
            node = next(n for n, r in rd.replicas.items() if r.role == "Primary")
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_RSC_DFN),
                                       f"Resource '{name}' is still in use.",
                                       cause=f"Resource is mounted/in use on node '{node}'.")], 400)
        if self.snapshots.get(name):
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_SNAPSHOT, MASK_ERROR, MASK_DEL, MASK_RSC_DFN),
                                       f"Cannot delete resource definition '{name}' because it has snapshots.")], 400)
        del self.rds[name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_RSC_DFN), f"Resource definition '{name}' deleted.")]

    def _rd(self, name: str) -> ResourceDefinition:
        rd = self.rds.get(name)
        if rd is None:
            raise not_found(FAIL_NOT_FOUND_RSC_DFN, MASK_RSC_DFN, f"Resource definition '{name}'")
        return rd

    def _online_node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise not_found(FAIL_NOT_FOUND_NODE, MASK_NODE, f"Node '{name}'")
        if not node.online:
            raise LinstorError([api_rc(ret_code(FAIL_NOT_CONNECTED, MASK_ERROR), f"No active connection to satellite '{name}'",
                                       correction="Check whether the satellite is running and reachable.")], 500)
        return node

    # -- resources
    def create_resource(self, rd_name: str, node_name: str, *, pool: str | None = None, diskless: bool = False,
                        tiebreaker: bool = False, via_attach: bool = False, initial: bool = False,
                        adjust: bool = True) -> list[dict]:
        rd = self._rd(rd_name)
        node = self._online_node(node_name)
        if node_name in rd.replicas:
            rep = rd.replicas[node_name]
            if rep.tiebreaker and not tiebreaker:  # a real user takes over the tie-breaker
                rep.flags = ["DISKLESS", "DRBD_DISKLESS"]
                rep.via_attach = via_attach
                return [api_rc(ret_code(INFO_TIE_BREAKER_TAKEOVER, MASK_INFO, MASK_RSC),
                               f"Tie breaker resource '{rd_name}' on node '{node_name}' converted to diskless resource")]
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_RSC, MASK_ERROR, MASK_CRT, MASK_RSC),
                                       f"A resource with the name '{rd_name}' on node '{node_name}' already exists.")], 409)
        if rd.drbd and not node.drbd_ok():
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_LAYER, MASK_ERROR, MASK_CRT, MASK_RSC),
                                       f"(Node: '{node_name}') The satellite does not support the device layer DRBD",
                                       cause=self._drbd_unsupported_reason())], 500)
        if diskless:
            if not rd.drbd:
                raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_LAYER, MASK_ERROR, MASK_CRT, MASK_RSC),
                                           "Diskless resources need a DRBD or NVMe layer in the layer stack")], 400)
            pool_name = DISKLESS_POOL
            flags = ["DISKLESS", "DRBD_DISKLESS"] + (["TIE_BREAKER"] if tiebreaker else [])
        else:
            pool_name = pool or self.groups.get(rd.resource_group, ResourceGroup("", "")).select_filter.get("storage_pool") or ""
            sp = self.pools.get(node_name, {}).get(pool_name)
            if sp is None or sp.kind == "DISKLESS":
                raise not_found(FAIL_NOT_FOUND_STOR_POOL, MASK_STOR_POOL, f"Storage pool '{pool_name}' on node '{node_name}'")
            need = sum(self._need_kib(rd, vd, sp) for vd in rd.volumes)
            if not self._fits(sp, need):
                raise LinstorError([api_rc(ret_code(FAIL_NOT_ENOUGH_FREE_SPACE, MASK_ERROR, MASK_CRT, MASK_RSC),
                                           f"(Node: '{node_name}') Not enough free space in storage pool '{pool_name}'",
                                           details=f"Required: {need} KiB, free: {self.pool_space(sp)[1]} KiB")], 500)
            flags = []
        used_ids = {r.node_id for r in rd.replicas.values()}
        node_id = next(i for i in range(32) if i not in used_ids)
        peers_synced = [r for r in rd.replicas.values() if not r.diskless and r.disk_state == "UpToDate"]
        state = "Diskless" if diskless else ("UpToDate" if initial or not peers_synced or not rd.drbd else "Inconsistent")
        rep = Replica(node_name, self._uuid(f"rsc:{rd_name}:{node_name}"), node_id, pool_name, flags,
                      {"StorPoolName": pool_name}, create_ms=self.now_ms(), disk_state=state, via_attach=via_attach)
        if state == "Inconsistent":
            source = peers_synced[0].node
            total = sum(vd.size_kib for vd in rd.volumes)
            rep.sync = {"source": source, "done_kib": 0, "total_kib": max(peers_synced[0].written_kib, 0) or total}
        rd.replicas[node_name] = rep
        rcs = [api_rc(ret_code(CREATED, MASK_CRT, MASK_RSC), f"Resource '{rd_name}' on node '{node_name}' successfully created.")]
        if adjust and not tiebreaker:
            rcs += self.adjust_quorum(rd_name)
        return rcs

    def _drbd_unsupported_reason(self) -> str:
        return "DRBD version has to be >= 9. Current DRBD version: 0.0.0"

    def _need_kib(self, rd: ResourceDefinition, vd: VolumeDefinition, pool: StoragePool) -> int:
        gross = vd.size_kib + (drbd_md_kib(vd.size_kib) if rd.drbd else 0)
        step = ZFS_VOLBLOCK_KIB if pool.kind.startswith("ZFS") else LVM_EXTENT_KIB
        return round_up(gross, step)

    def _fits(self, pool: StoragePool, need_kib: int) -> bool:
        total, free = self.pool_space(pool)
        if pool.error is not None or pool.full:
            return False
        if pool.traits.thin:
            ratio = float(pool.props.get("MaxOversubscriptionRatio", self.props.get("MaxOversubscriptionRatio", MAX_OVERSUBSCRIPTION)))
            committed = sum(vd.size_kib for rd in self.rds.values() for vd in rd.volumes
                            if pool.node in rd.replicas and rd.replicas[pool.node].pool == pool.name)
            return need_kib <= free and committed + need_kib <= total * ratio
        return need_kib <= free

    def delete_resource(self, rd_name: str, node_name: str) -> list[dict]:
        rd = self._rd(rd_name)
        rep = rd.replicas.get(node_name)
        if rep is None:
            raise not_found(FAIL_NOT_FOUND_RSC, MASK_RSC, f"Resource '{rd_name}' on node '{node_name}'")
        if rep.role == "Primary":
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_RSC),
                                       f"Resource '{rd_name}' on node '{node_name}' is still in use.")], 400)
        del rd.replicas[node_name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_RSC), f"Resource '{rd_name}' on node '{node_name}' deleted.")] + \
            self.adjust_quorum(rd_name)

    def autoplace(self, rd_name: str, place_count: int, *, storage_pools: list[str] | None = None,
                  replicas_on_same: list[str] | None = None, replicas_on_different: list[str] | None = None,
                  preferred: list[str] | None = None, diskless_on_remaining: bool = False) -> list[dict]:
        """``POST /v1/resource-definitions/{rd}/autoplace``: add diskful replicas until ``place_count``."""
        rd = self._rd(rd_name)
        have = [r for r in rd.replicas.values() if not r.diskless]
        missing = place_count - len(have)
        rcs: list[dict] = []
        if missing > 0:
            chosen = self._select(rd, missing, storage_pools or [], replicas_on_same or [], replicas_on_different or [],
                                  preferred or [], [r.node for r in have])
            if chosen is None:
                raise self._not_enough_nodes(rd, place_count, storage_pools or [])
            initial = not rd.replicas
            for node, pool in chosen:
                if node in rd.replicas and rd.replicas[node].tiebreaker:
                    del rd.replicas[node]  # a diskful replica replaces the tie-breaker on its node
                rcs += self.create_resource(rd_name, node, pool=pool, initial=initial, adjust=False)
        if diskless_on_remaining:
            for name, node in sorted(self.nodes.items()):
                if name not in rd.replicas and node.online and (not rd.drbd or node.drbd_ok()):
                    rcs += self.create_resource(rd_name, name, diskless=True, adjust=False)
        rcs += self.adjust_quorum(rd_name)
        return rcs

    def _not_enough_nodes(self, rd: ResourceDefinition, count: int, pools: list[str]) -> LinstorError:
        size = sum(vd.size_kib for vd in rd.volumes)
        crit = ["has a deployed storage pool named " + (str(pools) if pools else "[any]"),
                f"the storage pools have to have at least '{size}' free space",
                "the current access context has enough privileges to use the node and the storage pool",
                "the node is online"]
        details = ("Not enough nodes fulfilling the following auto-place criteria:\n" + "".join(f" * {c}\n" for c in crit)
                   + f"\nAuto-place configuration details:\n   Replica count: {count}\n"
                   + ("   Storage pool name:\n" + "".join(f"      {p}\n" for p in pools) if pools else "")
                   + "   Layer stack:\n" + "".join(f"      {layer}\n" for layer in rd.layers)
                   + f"\nAuto-placing resource: {rd.name}")
        return LinstorError([api_rc(ret_code(FAIL_NOT_ENOUGH_NODES, MASK_ERROR, MASK_CRT, MASK_RSC), "Not enough available nodes",
                                    details=details)], 500)

    def _select(self, rd: ResourceDefinition, count: int, pools: list[str], same: list[str], different: list[str],
                preferred: list[str], existing: list[str]) -> list[tuple[str, str]] | None:
        """LINSTOR's autoplacer, simplified: eligible (node, pool) pairs by free space, constraints honoured."""
        candidates: list[tuple[str, str, int]] = []
        for name, node in self.nodes.items():
            if (name in rd.replicas and not rd.replicas[name].tiebreaker) or not node.online \
                    or node.props.get("AutoplaceTarget", "yes") == "no":
                continue
            if rd.drbd and not node.drbd_ok():
                continue
            for pool in self.pools.get(name, {}).values():
                if pool.kind == "DISKLESS" or (pools and pool.name not in pools) or not node.supports(pool.kind):
                    continue
                need = sum(self._need_kib(rd, vd, pool) for vd in rd.volumes)
                if self._fits(pool, need):
                    candidates.append((name, pool.name, self.pool_space(pool)[1]))
        order = {n: i for i, n in enumerate(preferred)}
        candidates.sort(key=lambda c: (order.get(c[0], len(order)), -c[2], c[0]))

        def aux(node: str, key: str) -> str | None:
            props = self.nodes[node].props
            for k in (key, f"Aux/{key.removeprefix('Aux/')}", f"Aux/topology/{key.removeprefix('Aux/')}"):
                if k.split("=")[0] in props:
                    return props[k.split("=")[0]]
            return None

        def ok(selection: list[str]) -> bool:
            for key in same:
                k, _, v = key.partition("=")
                values = {aux(n, k) for n in selection}
                if len(values) > 1 or (v and values != {v}) or None in values:
                    return False
            for key in different:
                k = key.partition("=")[0]
                values = [aux(n, k) for n in selection]
                if len(set(values)) != len(values):
                    return False
            return True

        chosen: list[tuple[str, str]] = []
        nodes_taken = list(existing)
        for node, pool, _free in candidates:
            if node in nodes_taken:
                continue
            if not ok(nodes_taken + [node]):
                continue
            chosen.append((node, pool))
            nodes_taken.append(node)
            if len(chosen) == count:
                return chosen
        return None

    def adjust_quorum(self, rd_name: str) -> list[dict]:
        """Tie-breaker and automatic quorum (CtrlRscAutoTieBreakerHelper / CtrlRscAutoQuorumHelper)."""
        rd = self.rds.get(rd_name)
        if rd is None or not rd.drbd:
            return []
        rcs: list[dict] = []
        diskful = [r for r in rd.replicas.values() if not r.diskless]
        tbs = [r for r in rd.replicas.values() if r.tiebreaker]
        others = [r for r in rd.replicas.values() if r.diskless and not r.tiebreaker]
        auto_tb = self.props.get("DrbdOptions/auto-add-quorum-tiebreaker", "True").lower() == "true"
        if auto_tb and len(diskful) == 2 and not others and not tbs:
            node = self._tiebreaker_node(rd)
            if node is None:
                rcs.append(api_rc(ret_code(WARN_NOT_ENOUGH_NODES_FOR_TIE_BREAKER, MASK_WARN, MASK_RSC),
                                  f"Could not find suitable node to automatically create a tie breaking resource for '{rd_name}'."))
            else:
                self.create_resource(rd_name, node, diskless=True, tiebreaker=True)
                rcs.append(api_rc(ret_code(INFO_TIE_BREAKER_CREATED, MASK_INFO, MASK_RSC),
                                  f"Tie breaker resource '{rd_name}' created on {node}"))
        elif tbs and (len(diskful) != 2 or others):
            for tb in tbs:
                del rd.replicas[tb.node]
                rcs.append(api_rc(ret_code(INFO_TIE_BREAKER_DELETING, MASK_INFO, MASK_RSC),
                                  f"Tie breaker resource '{rd_name}' on node '{tb.node}' deleted"))
        rg = self.groups.get(rd.resource_group)
        user_set = rd.props.get("Internal/Drbd/QuorumSetBy") == "user" or "DrbdOptions/Resource/quorum" in (rg.props if rg else {})
        if not user_set:
            diskful = [r for r in rd.replicas.values() if not r.diskless]
            diskless = [r for r in rd.replicas.values() if r.diskless]
            feasible = len(diskful) >= 3 or (len(diskful) == 2 and len(diskless) >= 1)
            rd.props["DrbdOptions/Resource/quorum"] = "majority" if feasible else "off"
        return rcs

    def _tiebreaker_node(self, rd: ResourceDefinition) -> str | None:
        load = {n: sum(1 for r in self.rds.values() if n in r.replicas) for n in self.nodes}
        options = [n for n, node in self.nodes.items()
                   if n not in rd.replicas and node.online and node.drbd_ok() and node.props.get("AutoplaceTarget", "yes") != "no"]
        return min(options, key=lambda n: (load[n], n)) if options else None
