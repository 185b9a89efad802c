"""Nodes and storage pools of the LINSTOR controller: registration, device pools, capacity and use."""

from __future__ import annotations

from dataclasses import asdict

from .constants import (
    DISKLESS_POOL,
    GIB_KIB,
    LONG_MAX,
    LVM_EXTENT_KIB,
    MIB_KIB,
    THIN_CHUNK_KIB,
    ZFS_VOLBLOCK_KIB,
)
from .objects import Node, Replica, ResourceDefinition, StoragePool, VolumeDefinition
from .providers import PROVIDERS, SatelliteFacts, drbd_md_kib, round_up
from .return_codes import (
    CREATED,
    DELETED,
    FAIL_EXISTS_STOR_POOL,
    FAIL_IN_USE,
    FAIL_NOT_FOUND_NODE,
    FAIL_NOT_FOUND_STOR_POOL,
    FAIL_STLT_NO_PROVIDER,
    FAIL_UNKNOWN_ERROR,
    MASK_CRT,
    MASK_DEL,
    MASK_ERROR,
    MASK_MOD,
    MASK_NODE,
    MASK_PHYS_DEV,
    MASK_STOR_POOL,
    MODIFIED,
    LinstorError,
    api_rc,
    not_found,
    ret_code,
)


class NodesAndPools:
    """Nodes and storage pools of the LINSTOR controller (a part of :class:`.controller.LinstorController`)."""

    # -- nodes
    def create_or_update_node(self, name: str, address: str, props: dict[str, str], net_name: str = "default") -> Node:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = Node(name, self._uuid("node:" + name), address,
                                           props={"CurStltConnName": net_name, "NodeUname": name}, net_name=net_name)
        node.address, node.net_name = address, net_name
        node.props.update(props)
        node.props["CurStltConnName"] = net_name
        pools = self.pools.setdefault(name, {})
        if DISKLESS_POOL not in pools:
            pools[DISKLESS_POOL] = StoragePool(name, DISKLESS_POOL, "DISKLESS", self._uuid("sp:" + name))
        return node

    def delete_node(self, name: str) -> None:
        if name not in self.nodes:
            raise not_found(FAIL_NOT_FOUND_NODE, MASK_NODE, f"Node '{name}'")
        if any(name in rd.replicas for rd in self.rds.values()):
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_NODE),
                                       f"Node '{name}' can not be deleted as it has resources deployed")], 400)
        del self.nodes[name]
        self.pools.pop(name, None)

    def set_online(self, name: str, online: bool, facts: SatelliteFacts | None) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        node.online = online
        if online and facts is not None:
            node.facts = asdict(facts)

    # -- storage pools
    def create_device_pool(self, node_name: str, kind: str, pool_name: str, devices: list[str], sp_name: str,
                           props: dict[str, str]) -> tuple[list[dict], dict[str, str]]:
        """``POST /v1/physical-storage/{node}``: build the backing store from raw devices and, on
        success, the storage pool. Returns (ApiCallRcs, {device: new signature})."""
        node = self._online_node(node_name)
        where = f"(Node: '{node_name}')"
        if not node.supports(kind):
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_PROVIDER, MASK_ERROR, MASK_CRT, MASK_PHYS_DEV),
                                       f"The satellite does not support the device provider {kind}")], 500)
        devs = (node.facts or {}).get("devices", {})
        signature = "zfs_member" if kind.startswith("ZFS") else "LVM2_member"
        for path in devices:
            dev = devs.get(path)
            if kind.startswith("ZFS"):
                cmd = f"zpool create -f {pool_name} {' '.join(devices)}"
                stderr = None
                if dev is None:
                    stderr = f"cannot open '{path}': No such device or address\ncannot create '{pool_name}': one or more devices is currently unavailable"
                elif dev.get("mounted_at"):
                    stderr = (f"cannot open '{path}': Device or resource busy\ncannot create '{pool_name}': one or more vdevs refer "
                              "to the same device, or one of the devices is part of an active md or lvm device")
                if stderr:
                    raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR, MASK_CRT, MASK_PHYS_DEV),
                                               f"{where} Failed to create zpool: {pool_name}",
                                               details=f"Command '{cmd}' returned with exitcode 1. \n\nStandard out: \n\n\nError message: \n{stderr}\n",
                                               error_ids=[self._report_id(node_name, f"Failed to create zpool: {pool_name}", stderr)])], 500)
            else:
                vg = pool_name.split("/", 1)[0]
                stderr = None
                if dev is None:
                    stderr = f"  No device found for {path}."
                elif dev.get("mounted_at"):
                    stderr = f"  Can't open {path} exclusively.  Mounted filesystem?"
                elif dev.get("signature"):
                    sig = dev["signature"]
                    stderr = (f"WARNING: {sig} signature detected on {path} at offset 0. Wipe it? [y/n]: [n]\n"
                              f"  Aborted wiping of {sig}.\n  1 existing signature left on the device.")
                if stderr:
                    raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR, MASK_CRT, MASK_PHYS_DEV),
                                               f"{where} Failed to pvcreate on device(s): {' '.join(devices)} (volume group '{vg}')",
                                               details=f"Command 'pvcreate {' '.join(devices)}' returned with exitcode 5. \n\nStandard out: \n\n\nError message: \n{stderr}\n",
                                               error_ids=[self._report_id(node_name, f"Failed to pvcreate on device(s): {' '.join(devices)}", stderr)])], 500)
        size_kib = sum(int(devs[p]["size_bytes"]) // 1024 for p in devices)
        backing = pool_name if kind != "LVM_THIN" or "/" in pool_name else f"linstor_{pool_name}/{pool_name}"
        rcs = self.create_storage_pool(node_name, sp_name, kind, {**props, "StorDriver/StorPoolName": backing},
                                       backing_kib=self._backing_capacity(kind, size_kib), devices=devices)
        return rcs, {p: signature for p in devices}

    @staticmethod
    def _backing_capacity(kind: str, device_kib: int) -> int:
        """Usable capacity of a freshly built backing store on ``device_kib`` of raw device."""
        if kind.startswith("ZFS"):
            return max(0, (device_kib - 4608) // MIB_KIB * MIB_KIB)  # 4 labels + boot block area
        vg = max(0, (device_kib - MIB_KIB) // LVM_EXTENT_KIB * LVM_EXTENT_KIB)
        if kind == "LVM_THIN":
            meta = round_up(min(max(vg // 1000, 4 * MIB_KIB), 16 * GIB_KIB), LVM_EXTENT_KIB)
            return max(0, vg - 2 * meta)  # pool metadata + spare metadata LVs
        return vg

    def create_storage_pool(self, node_name: str, name: str, kind: str, props: dict[str, str], *,
                            backing_kib: int | None = None, devices: list[str] | None = None) -> list[dict]:
        """``POST /v1/nodes/{node}/storage-pools``. Without a backing store (``backing_kib`` None)
        the pool is created but the satellite cannot query it: it reports an error and no space."""
        node = self.nodes.get(node_name)
        if node is None:
            raise not_found(FAIL_NOT_FOUND_NODE, MASK_NODE, f"Node '{node_name}'")
        pools = self.pools.setdefault(node_name, {})
        if name in pools:
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_STOR_POOL, MASK_ERROR, MASK_CRT, MASK_STOR_POOL),
                                       f"A storage pool with the name '{name}' already exists on node '{node_name}'.")], 400)
        if kind not in PROVIDERS:
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_PROVIDER, MASK_ERROR, MASK_CRT, MASK_STOR_POOL),
                                       f"Invalid provider kind '{kind}'")], 400)
        if node.online and not node.supports(kind):
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_PROVIDER, MASK_ERROR, MASK_CRT, MASK_STOR_POOL),
                                       f"The satellite does not support the device provider {kind}")], 500)
        backing = props.get("StorDriver/StorPoolName", name)
        pool = StoragePool(node_name, name, kind, self._uuid(f"sp:{node_name}:{name}"), backing=backing, props=dict(props),
                           devices=list(devices or []))
        rcs = [api_rc(ret_code(CREATED, MASK_CRT, MASK_STOR_POOL), f"New storage pool '{name}' on node '{node_name}' registered.",
                      obj_refs={"StorPool": name, "Node": node_name})]
        if backing_kib is None:
            cause = {"ZFS": f"Failed to query free size of zPool(s) [{backing}]", "ZFS_THIN": f"Failed to query free size of zPool(s) [{backing}]",
                     "LVM": f"Volume group '{backing}' not found", "LVM_THIN": f"Volume group '{backing.split('/')[0]}' not found"}
            pool.error = api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR), "Failed to query free space from storage pool",
                                cause=cause.get(kind, f"Storage pool backing '{backing}' not found"),
                                error_ids=[self._report_id(node_name, "Failed to query free space from storage pool", cause.get(kind, ""))])
            rcs.append(api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR), f"(Node: '{node_name}') Failed to query free space from storage pool",
                              cause=pool.error["cause"]))
        else:
            pool.total_kib = backing_kib
        pools[name] = pool
        return rcs

    def delete_storage_pool(self, node_name: str, name: str) -> list[dict]:
        pool = self.pools.get(node_name, {}).get(name)
        if pool is None or name == DISKLESS_POOL and node_name not in self.nodes:
            raise not_found(FAIL_NOT_FOUND_STOR_POOL, MASK_STOR_POOL, f"Storage pool '{name}' on node '{node_name}'")
        users = [rd.name for rd in self.rds.values() if node_name in rd.replicas and rd.replicas[node_name].pool == name]
        if users:
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_STOR_POOL),
                                       f"The specified storage pool '{name}' on node '{node_name}' can not be deleted as volumes "
                                       f"are still using it.", details="Volumes that are still using the storage pool: "
                                       + ", ".join(users))], 400)
        del self.pools[node_name][name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_STOR_POOL), f"Storage pool definition '{name}' on node '{node_name}' deleted.")]

    def modify_storage_pool(self, node_name: str, name: str, override: dict[str, str], delete: list[str]) -> list[dict]:
        pool = self.pools.get(node_name, {}).get(name)
        if pool is None:
            raise not_found(FAIL_NOT_FOUND_STOR_POOL, MASK_STOR_POOL, f"Storage pool '{name}' on node '{node_name}'")
        pool.props.update(override)
        for k in delete:
            pool.props.pop(k, None)
        return [api_rc(ret_code(MODIFIED, MASK_MOD, MASK_STOR_POOL), f"Storage pool '{name}' on node '{node_name}' modified.")]

    # -- capacity
    def _allocated_kib(self, rd: ResourceDefinition, rep: Replica, vd: VolumeDefinition, pool: StoragePool) -> int:
        """Space one volume takes in its pool (thick: all of it; thin: what was written)."""
        gross = vd.size_kib + (drbd_md_kib(vd.size_kib) if rd.drbd else 0)
        if pool.traits.thin:
            return min(round_up(gross, LVM_EXTENT_KIB if pool.kind == "LVM_THIN" else ZFS_VOLBLOCK_KIB),
                       round_up((drbd_md_kib(vd.size_kib) if rd.drbd else 0) + rep.written_kib, THIN_CHUNK_KIB))
        step = ZFS_VOLBLOCK_KIB if pool.kind.startswith("ZFS") else LVM_EXTENT_KIB if pool.kind.startswith("LVM") else 4
        return round_up(gross, step)

    def pool_used_kib(self, pool: StoragePool) -> int:
        used = 0
        for rd in self.rds.values():
            rep = rd.replicas.get(pool.node)
            if rep is None or rep.pool != pool.name or rep.diskless:
                continue
            used += sum(self._allocated_kib(rd, rep, vd, pool) for vd in rd.volumes)
        for snaps in self.snapshots.values():
            for snap in snaps.values():
                used += snap.held_kib.get(pool.node, 0) if snap.props.get("StorPoolName", pool.name) == pool.name else 0
        return used

    def pool_space(self, pool: StoragePool) -> tuple[int, int]:
        """(total, free) KiB as the satellite reports them."""
        if pool.kind == "DISKLESS":
            return LONG_MAX, LONG_MAX
        if pool.error is not None:
            return 0, 0
        total = pool.total_kib
        reserve = 0
        if pool.kind.startswith("ZFS"):  # `zfs get available` excludes the slop space
            reserve = min(max(total // 32, 128 * MIB_KIB), 128 * GIB_KIB, total)
        free = max(0, total - reserve - self.pool_used_kib(pool))
        return total, 0 if pool.full else free
