"""The LINSTOR controller's objects as REST API JSON (REST API 1.27 shapes: nodes, pools, resources, snapshots)."""

from __future__ import annotations

import uuid
from typing import Any

from .constants import AL_KIB, LVM_EXTENT_KIB, PEER_SLOTS, ZFS_VOLBLOCK_KIB
from .objects import Node, Replica, ResourceDefinition, ResourceGroup, Snapshot, StoragePool, VolumeDefinition
from .providers import drbd_md_kib, round_up


class RestViews:
    """The LINSTOR controller's objects as REST API JSON (nodes, pools, resources, definitions, snapshots). (a part of :class:`.controller.LinstorController`)."""

    def node_json(self, node: Node) -> dict:
        facts = node.facts or {}
        providers = ["DISKLESS", "LVM", "LVM_THIN", "FILE", "FILE_THIN"] + (["ZFS", "ZFS_THIN"] if facts.get("zfs") else [])
        unsupported_providers = {"SPDK": ["IO exception occured when running 'rpc.py spdk_get_version': Cannot run program "
                                          "\"rpc.py\": error=2, No such file or directory"]}
        if not facts.get("zfs"):
            unsupported_providers.update({k: ["'cat /sys/module/zfs/version' returned with exit code 1"] for k in ("ZFS", "ZFS_THIN")})
        layers = ["LUKS", "WRITECACHE", "CACHE", "STORAGE"]
        unsupported_layers: dict[str, list[str]] = {}
        if facts.get("drbd_version"):
            layers.insert(0, "DRBD")
        else:
            unsupported_layers["DRBD"] = [self._drbd_unsupported_reason()]
        out: dict[str, Any] = {
            "name": node.name, "type": "SATELLITE", "props": dict(node.props), "flags": list(node.flags),
            "net_interfaces": [{"name": node.net_name, "address": node.address, "satellite_port": 3366,
                                "satellite_encryption_type": "PLAIN", "is_active": True,
                                "uuid": str(uuid.uuid5(uuid.UUID(node.uuid), "netif"))}],
            "connection_status": "ONLINE" if node.online else "OFFLINE", "uuid": node.uuid,
        }
        if node.facts is not None:
            out.update({"storage_providers": providers, "resource_layers": layers,
                        "unsupported_providers": unsupported_providers, "unsupported_layers": unsupported_layers})
        return out

    def pool_json(self, pool: StoragePool) -> dict:
        total, free = self.pool_space(pool)
        traits = {"SupportsSnapshots": "true" if pool.traits.snapshots else "false"}
        if pool.kind != "DISKLESS":
            traits["Provisioning"] = "Thin" if pool.traits.thin else "Fat"
        props = dict(pool.props)
        if pool.kind != "DISKLESS":
            props.setdefault("StorDriver/StorPoolName", pool.backing or pool.name)
        out: dict[str, Any] = {
            "storage_pool_name": pool.name, "node_name": pool.node, "provider_kind": pool.kind, "props": props,
            "static_traits": traits, "free_space_mgr_name": f"{pool.node};{pool.name}", "uuid": pool.uuid,
            "supports_snapshots": pool.traits.snapshots, "external_locking": False,
        }
        node = self.nodes.get(pool.node)
        if node is not None and node.online:
            out.update({"free_capacity": free, "total_capacity": total})
        if pool.error is not None:
            out["reports"] = [pool.error]
        return out

    def _storage_dev(self, rd: ResourceDefinition, rep: Replica, vd: VolumeDefinition) -> str:
        pool = self.pools.get(rep.node, {}).get(rep.pool)
        backing = (pool.backing if pool else rep.pool) or rep.pool
        suffix = f"{rd.name}_{vd.number:05d}"
        if pool is not None and pool.kind.startswith("ZFS"):
            return f"/dev/zvol/{backing}/{suffix}"
        return f"/dev/{backing.split('/')[0]}/{suffix}"

    def resource_json(self, rd: ResourceDefinition, rep: Replica, *, with_volumes: bool) -> dict:
        node = self.nodes.get(rep.node)
        online = bool(node and node.online)
        pool = self.pools.get(rep.node, {}).get(rep.pool)
        storage_vols, drbd_vols, volumes = [], [], []
        for vd in rd.volumes:
            md = drbd_md_kib(vd.size_kib) if rd.drbd else 0
            alloc = self._allocated_kib(rd, rep, vd, pool) if pool is not None and not rep.diskless else 0
            gross_storage = round_up(vd.size_kib + md, LVM_EXTENT_KIB if pool and pool.kind.startswith("LVM") else ZFS_VOLBLOCK_KIB)
            sdev = self._storage_dev(rd, rep, vd) if not rep.diskless else None
            svol = {"volume_number": vd.number, "allocated_size_kib": gross_storage if not rep.diskless else 0,
                    "usable_size_kib": gross_storage if not rep.diskless else 0, "disk_state": "[]"}
            if sdev:
                svol["device_path"] = sdev
            storage_vols.append(svol)
            dvol = {"drbd_volume_definition": {"volume_number": vd.number, "minor_number": vd.minor},
                    "device_path": f"/dev/drbd{vd.minor}", "allocated_size_kib": vd.size_kib + md if not rep.diskless else 0,
                    "usable_size_kib": vd.size_kib}
            if sdev:
                dvol["backing_device"] = sdev
            else:
                dvol["backing_device"] = "none"
            drbd_vols.append(dvol)
            vol: dict[str, Any] = {
                "volume_number": vd.number, "storage_pool_name": rep.pool,
                "provider_kind": "DISKLESS" if rep.diskless else (pool.kind if pool else "DISKLESS"),
                "device_path": f"/dev/drbd{vd.minor}" if rd.drbd else (sdev or ""),
                "allocated_size_kib": alloc, "usable_size_kib": vd.size_kib,
                "props": ({f"Satellite/Device/Symlinks/{i}": s for i, s in enumerate(
                    ([f"/dev/drbd/by-disk/{sdev.removeprefix('/dev/')}"] if sdev else []) + [f"/dev/drbd/by-res/{rd.name}/{vd.number}"])}
                          if rd.drbd else {}),
                "flags": [],
                "layer_data_list": ([{"type": "DRBD", "data": dvol}] if rd.drbd else []) + ([{"type": "STORAGE", "data": svol}]),
                "uuid": str(uuid.uuid5(uuid.UUID(rep.uuid), f"vlm{vd.number}")),
            }
            if online:
                state: dict[str, Any] = {"disk_state": self._disk_state(rd, rep)}
                reps = self._replication_states(rd, rep)
                if reps:
                    state["replication_states"] = reps
                vol["state"] = state
            volumes.append(vol)
        storage_layer = {"type": "STORAGE", "storage": {"storage_volumes": storage_vols}}
        if rd.drbd:
            drbd: dict[str, Any] = {
                "drbd_resource_definition": {"peer_slots": PEER_SLOTS, "al_stripes": 1, "al_stripe_size_kib": AL_KIB,
                                             "port": rd.port, "transport_type": "IP", "secret": rd.secret, "down": False},
                "node_id": rep.node_id, "peer_slots": PEER_SLOTS, "al_stripes": 1, "al_size": AL_KIB,
                "flags": (["DISKLESS"] if rep.diskless else []) + (["INITIALIZED"] if online else []),
                "drbd_volumes": drbd_vols,
            }
            if online:
                drbd["connections"] = {p: self._connection(rd, rep.node, p) for p in rd.replicas if p != rep.node}
                drbd["promotion_score"] = self.promotion_score(rd, rep.node)
                drbd["may_promote"] = self.may_promote(rd, rep.node)
            layer = {"type": "DRBD", "drbd": drbd, "children": [storage_layer] if not rep.diskless else []}
        else:
            layer = storage_layer
        out: dict[str, Any] = {"name": rd.name, "node_name": rep.node, "props": dict(rep.props), "layer_object": layer,
                               "uuid": rep.uuid, "create_timestamp": rep.create_ms}
        if rep.flags:
            out["flags"] = list(rep.flags)
        if online:
            out["state"] = {"in_use": rep.role == "Primary"}
        if with_volumes:
            out["volumes"] = volumes
        return out

    def _connection(self, rd: ResourceDefinition, node: str, peer: str) -> dict:
        if self.connected(node, peer, rd.name):
            return {"connected": True, "message": "Connected"}
        # StandAlone: the pair refused each other's data (split brain); any other cut keeps retrying
        standalone = self.split_brain(rd.name, node, peer)
        return {"connected": False, "message": "StandAlone" if standalone else "Connecting"}

    def _disk_state(self, rd: ResourceDefinition, rep: Replica) -> str:
        if not rd.drbd:
            return "Created"
        if rep.diskless:
            return "Diskless"
        return rep.disk_state

    def _replication_states(self, rd: ResourceDefinition, rep: Replica) -> dict:
        if not rd.drbd:
            return {}
        out = {}
        for peer, other in rd.replicas.items():
            if peer == rep.node:
                continue
            if not self.connected(rep.node, peer, rd.name):
                out[peer] = {"replication_state": "Off"}
            elif rep.sync and rep.sync["source"] == peer:
                pct = 100.0 * rep.sync["done_kib"] / max(1, rep.sync["total_kib"])
                out[peer] = {"replication_state": "SyncTarget", "done_percentage": round(pct, 2)}
            elif other.sync and other.sync["source"] == rep.node:
                pct = 100.0 * other.sync["done_kib"] / max(1, other.sync["total_kib"])
                out[peer] = {"replication_state": "SyncSource", "done_percentage": round(pct, 2)}
            else:
                out[peer] = {"replication_state": "Established"}
        return out

    def rd_json(self, rd: ResourceDefinition, *, with_volume_definitions: bool) -> dict:
        out: dict[str, Any] = {"name": rd.name, "props": dict(rd.props), "flags": list(rd.flags), "uuid": rd.uuid,
                               "resource_group_name": rd.resource_group,
                               "layer_data": [{"type": "DRBD", "data": {"peer_slots": PEER_SLOTS, "al_stripes": 1,
                                                                        "al_stripe_size_kib": AL_KIB, "port": rd.port,
                                                                        "transport_type": "IP", "secret": rd.secret,
                                                                        "down": False}}] if rd.drbd else []}
        out["layer_data"].append({"type": "STORAGE"})
        if rd.external_name:
            out["external_name"] = rd.external_name
        if with_volume_definitions:
            out["volume_definitions"] = [{"volume_number": vd.number, "size_kib": vd.size_kib, "props": dict(vd.props),
                                          "flags": [], "uuid": vd.uuid,
                                          "layer_data": ([{"type": "DRBD", "data": {"volume_number": vd.number, "minor_number": vd.minor}}]
                                                         if rd.drbd else []) + [{"type": "STORAGE"}]}
                                         for vd in rd.volumes]
        return out

    def rg_json(self, rg: ResourceGroup) -> dict:
        return {"name": rg.name, "description": rg.description, "props": dict(rg.props),
                "select_filter": dict(rg.select_filter), "uuid": rg.uuid}

    def snapshot_json(self, snap: Snapshot) -> dict:
        return {"name": snap.name, "resource_name": snap.resource, "nodes": list(snap.nodes), "props": dict(snap.props),
                "snapshot_definition_props": dict(snap.props), "resource_definition_props": {},
                "flags": list(snap.flags),
                "volume_definitions": [{"volume_number": i, "size_kib": s} for i, s in enumerate(snap.sizes_kib)],
                "uuid": snap.uuid,
                "snapshots": [{"snapshot_name": snap.name, "node_name": n, "create_timestamp": snap.create_ms, "flags": [],
                               "uuid": str(uuid.uuid5(uuid.UUID(snap.uuid), n)),
                               "snapshot_volumes": [{"uuid": str(uuid.uuid5(uuid.UUID(snap.uuid), f"{n}/{i}")), "vlm_nr": i,
                                                     "state": "completed"} for i in range(len(snap.sizes_kib))]}
                              for n in snap.nodes]}
