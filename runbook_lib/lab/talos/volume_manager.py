"""The Talos volume manager: locate, provision and grow volumes on a node's disks, wipe disks."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from .constants import MIB
from .errors import TalosAPIError
from .gpt import Disk, Partition
from .node import TalosNode
from .releases import parse_version
from .resource_types import RESOURCE_DEFS
from .volume_config import VolumeCfg, volume_configs

# VolumeStatusSpec field order (pkg/machinery/resources/block/volume_status.go); mountSpec sits right
# before errorMessage. Zero values are omitted (omitempty), and preFailPhase "waiting" is the zero phase.
_VOLUME_STATUS_ORDER = ("phase", "preFailPhase", "type", "parentID", "location", "mountLocation", "partitionIndex",
                        "parentLocation", "uuid", "partitionUUID", "size", "prettySize", "filesystem")


def _volume_status_spec(st: dict) -> dict:
    spec = {k: st[k] for k in _VOLUME_STATUS_ORDER if st.get(k) not in (None, "", 0)}
    spec["phase"] = st["phase"]
    spec["type"] = st["type"]
    if spec.get("preFailPhase") == "waiting":
        del spec["preFailPhase"]
    spec = {k: spec[k] for k in _VOLUME_STATUS_ORDER if k in spec}
    if st.get("_mount"):
        spec["mountSpec"] = dict(st["_mount"])
    if st.get("errorMessage"):
        spec["errorMessage"] = st["errorMessage"]
    return spec


@functools.lru_cache(maxsize=64)
def _selector(expression: str) -> Any:
    """A compiled ``DiskSelector`` (cel-python builds its parser once; compiling per call is slow)."""
    from runbook_lib.disk_selector import DiskSelector

    return DiskSelector(expression)


class VolumeManager:
    """The Talos volume manager (a part of :class:`.cluster.TalosCluster`)."""

    def _disk_context(self, node: TalosNode, disk: Disk) -> dict:
        return disk.spec()

    def _reconcile(self, node: TalosNode, now: float) -> None:
        """Locate or provision every configured volume (talos controllers/block VolumeManagerController)."""
        if node.config is None:
            node.volumes = {}
            return
        statuses: dict[str, dict] = {}
        wave_ok = True
        for cfg in volume_configs(node.config):
            if cfg.wave == 1 and not wave_ok:
                statuses[cfg.id] = self._status_base(cfg) | {"phase": "waiting"}
                continue
            statuses[cfg.id] = self._process_volume(node, cfg, now)
            if cfg.wave == 0 and statuses[cfg.id]["phase"] != "ready":
                wave_ok = False
        node.volumes = statuses

    def _status_base(self, cfg: VolumeCfg) -> dict:
        return {"phase": "waiting", "type": cfg.vtype, "_label": cfg.label, "_mount": cfg.mount}

    def _process_volume(self, node: TalosNode, cfg: VolumeCfg, now: float) -> dict:
        from runbook_lib.sizes import format_si

        st = self._status_base(cfg)
        if cfg.vtype == "directory":
            return st | {"phase": "ready"}
        try:
            found = self._locate(node, cfg)
            if found is None:
                if not cfg.provision:
                    return st | {"phase": "missing"}
                found = self._provision(node, cfg)
            disk, part = found
            self._grow(disk, part, cfg)
            if cfg.filesystem != "none":
                if part.filesystem == "":
                    r = self._next(f"mkfs:{node.name}")
                    part.filesystem, part.fs_uuid, part.fs_label = cfg.filesystem, r.uuid(), cfg.fs_label
                elif part.filesystem != cfg.filesystem:
                    raise TalosAPIError("Unknown", f"filesystem type mismatch: {part.filesystem} != {cfg.filesystem}")
        except TalosAPIError as err:
            return st | {"phase": "failed", "preFailPhase": "waiting", "errorMessage": err.message}
        location = disk.part_path(part.index)
        st.update({"phase": "ready", "location": location, "mountLocation": location, "partitionIndex": part.index,
                   "parentLocation": disk.dev_path, "uuid": part.fs_uuid, "partitionUUID": part.part_uuid,
                   "size": part.size, "prettySize": format_si(part.size)})
        if cfg.filesystem != "none":
            st["filesystem"] = cfg.filesystem
        elif cfg.id == "META":
            st["filesystem"] = "none"
        return st

    def _locate(self, node: TalosNode, cfg: VolumeCfg) -> tuple[Disk, Partition] | None:
        """``labelVolumeMatch``: a partition carrying the volume's label is reused as is."""
        for disk in node.disks:
            part = disk.by_label(cfg.locate or "")
            if part is not None:
                return disk, part
        return None

    def _provision(self, node: TalosNode, cfg: VolumeCfg) -> tuple[Disk, Partition]:
        """``provisionNewVolume``: pick a disk by selector and space, then ``CreatePartition``."""
        from runbook_lib.disk_selector import DiskSelectorError

        candidates = []
        for i, disk in enumerate(node.disks):
            if disk.readonly:
                continue
            try:
                ok = _selector(cfg.selector).matches(self._disk_context(node, disk), i == 0)
            except DiskSelectorError as exc:
                raise TalosAPIError("Unknown", f"error evaluating disk locator: {'; '.join(exc.problems)}") from None
            if ok:
                candidates.append(disk)
        if not candidates:
            raise TalosAPIError("Unknown", "no disks matched selector for volume")
        not_enough = wrong_format = 0
        picked = None
        for disk in candidates:
            if cfg.vtype == "disk":
                if not disk.gpt and not disk.partitions:
                    picked = disk
                    break
                wrong_format += 1
                continue
            if not disk.gpt:
                # no signature at all: usable if size >= minSize + 67 sectors (GPT + MBR overhead)
                if disk.size >= cfg.min_size + 67 * disk.sector_size:
                    picked = disk
                    break
                not_enough += 1
            elif disk.largest_free() >= cfg.min_size:
                picked = disk
                break
            else:
                not_enough += 1
        if picked is None:
            if parse_version(node.talos_version)[:2] >= (1, 12):
                raise TalosAPIError("Unknown", f"no disks matched for volume ({len(candidates)} matched selector): "
                                               f"{not_enough} have not enough space, {wrong_format} have wrong format, "
                                               "0 have other issues")
            raise TalosAPIError("Unknown", "no disks matched for volume")
        if cfg.vtype == "disk":
            raise TalosAPIError("Unknown", "disk volumes are not modelled by the lab")
        if not picked.gpt:
            picked.gpt, picked.partitions, picked.disk_guid = True, [], self._uuid("diskguid")
        available = picked.largest_free()
        if available < cfg.min_size:
            raise TalosAPIError("Unknown", "error creating partition: not enough space on disk")
        max_size = cfg.max_size or (int(picked.size * cfg.max_percent / 100) if cfg.max_percent else 0)
        size = available if (max_size == 0 or max_size >= available) else max_size
        try:
            part = picked.allocate(size, cfg.locate or cfg.id, self._uuid("partguid"))
        except TalosAPIError as err:
            raise TalosAPIError("Unknown", f"error creating partition: error allocating partition: {err.message}") from None
        return picked, part

    def _grow(self, disk: Disk, part: Partition, cfg: VolumeCfg) -> None:
        """``volumes.Grow``: with grow set, take the free space right after the partition (up to maxSize)."""
        if not cfg.grow:
            return
        max_size = cfg.max_size or (int(disk.size * cfg.max_percent / 100) if cfg.max_percent else 0)
        if max_size and part.size >= max_size:
            return
        growth = disk.growth_available(part)
        if growth <= MIB:
            return
        if max_size and growth > max_size - part.size:
            growth = max_size - part.size
        part.last_lba += growth // disk.sector_size

    # -- resource bookkeeping
    def _touch(self, node: TalosNode, now: float) -> None:
        """Bump versions of resources whose spec changed (so ``metadata.version`` moves like on Talos)."""
        for rtype in RESOURCE_DEFS:
            for rid, spec, _labels in self._specs(node, rtype, now):
                key = f"{rtype}/{rid}"
                digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
                meta = node.res_meta.get(key)
                if meta is None:
                    node.res_meta[key] = {"version": 1, "created": now, "updated": now, "digest": digest}
                elif meta["digest"] != digest:
                    meta.update(version=meta["version"] + 1, updated=now, digest=digest)

    def wipe_disk(self, node: TalosNode, devices: list[str], method: str, drop_partition: bool, now: float) -> None:
        """``StorageService.BlockDeviceWipe`` (storaged server.go): validate every device, then wipe."""
        self.require_up(node, now, insecure=node.maintenance)
        if method not in ("FAST", "ZEROES"):
            raise TalosAPIError("InvalidArgument", f"unsupported wipe method {method}")
        resolved = []
        for raw in devices:
            name = raw.removeprefix("/dev/")
            disk = next((d for d in node.disks if d.name == name), None)
            part = None
            parent = ""
            if disk is None:
                for d in node.disks:
                    for p in d.partitions:
                        if d.part_name(p.index) == name:
                            disk, part, parent = d, p, d.name
            if disk is None:
                raise TalosAPIError("NotFound", f'blockdevice "{name}" not found')
            if disk.readonly:
                raise TalosAPIError("FailedPrecondition", f'blockdevice "{name}" is read-only')
            if disk.cdrom:
                raise TalosAPIError("FailedPrecondition", f'blockdevice "{name}" is a CD-ROM')
            for vid, st in sorted(node.volumes.items()):
                for location in (st.get("location", ""), st.get("mountLocation", "")):
                    base = location.rsplit("/", 1)[-1]
                    for dev in (name, parent):
                        if dev and base and base == dev:
                            raise TalosAPIError("FailedPrecondition", f'blockdevice "{dev}" is in use by volume "{vid}"')
                if st.get("parentLocation", "").rsplit("/", 1)[-1] == name:
                    raise TalosAPIError("FailedPrecondition", f'blockdevice "{name}" is in use by volume "{vid}"')
            resolved.append((disk, part))
        for disk, part in resolved:
            if part is None:
                disk.wipe_all()
            else:
                part.filesystem, part.fs_uuid, part.fs_label = "", "", ""
                if drop_partition:
                    disk.drop(part)
        self._reconcile(node, now)
        self._touch(node, now)
