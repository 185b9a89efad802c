"""Volume configs read from the machine configuration: what the volume manager provisions."""

from __future__ import annotations

from dataclasses import dataclass

from .constants import (
    EPHEMERAL_MIN_SIZE,
    EPHEMERAL_SELINUX_LABEL,
    LABEL_RAW_VOLUME,
    LABEL_SYSTEM_VOLUME,
    LABEL_USER_VOLUME,
    MIN_USER_VOLUME_SIZE,
    USER_VOLUME_MOUNT_POINT,
)
from .machine_config import _parse_size_field, doc_key


@dataclass
class VolumeCfg:
    """The part of a Talos ``VolumeConfig`` resource the lab's volume manager uses."""

    id: str
    label: str  # resource label key (talos.dev/system-volume, talos.dev/user-volume, ...)
    vtype: str = "partition"  # partition | disk | directory
    locate: str | None = None  # partition label that locates the volume
    provision: bool = False
    selector: str = ""
    min_size: int = 0
    max_size: int = 0
    max_percent: float = 0.0
    grow: bool = False
    filesystem: str = "xfs"
    fs_label: str = ""
    mount: dict | None = None
    wave: int = 0


def _user_mount(name: str, doc: dict) -> dict:
    """MountSpec of a user volume (user_volumes.go: ParentID /var/mnt, TargetPath name, mode 0755)."""
    return {"targetPath": name, "selinuxLabel": EPHEMERAL_SELINUX_LABEL,
            "projectQuotaSupport": bool((doc.get("filesystem") or {}).get("projectQuotaSupport", False)),
            "parentId": USER_VOLUME_MOUNT_POINT, "fileMode": 0o755}


def _sizes(prov: dict) -> tuple[int, int, float]:
    mn = _parse_size_field(prov["minSize"], "minSize") if prov.get("minSize") else 0
    mx_raw = prov.get("maxSize")
    if isinstance(mx_raw, str) and mx_raw.strip().endswith("%"):
        return mn, 0, float(mx_raw.strip()[:-1])
    return mn, (_parse_size_field(mx_raw, "maxSize") if mx_raw else 0), 0.0


def volume_configs(docs: list[dict]) -> list[VolumeCfg]:
    """Volume configs in provisioning order: system volumes, then user volumes (``CompareVolumeConfigs``)."""
    eph = next((d for d in docs if doc_key(d)[1] == "VolumeConfig" and d.get("name") == "EPHEMERAL"), None)
    eprov = (eph or {}).get("provisioning") or {}
    emin, emax, epct = _sizes(eprov) if eprov else (0, 0, 0.0)
    system = [
        VolumeCfg("META", LABEL_SYSTEM_VOLUME, locate="META", filesystem="none"),
        VolumeCfg("STATE", LABEL_SYSTEM_VOLUME, locate="STATE", filesystem="xfs", fs_label="STATE",
                  mount={"targetPath": "/system/state", "selinuxLabel": "system_u:object_r:system_state_t:s0",
                         "fileMode": 0o700}),
        # EPHEMERAL defaults (disk-management/system.md, volumeconfig): system_disk, min 2 GiB, grow true.
        VolumeCfg("EPHEMERAL", LABEL_SYSTEM_VOLUME, locate="EPHEMERAL", provision=True,
                  selector=str((eprov.get("diskSelector") or {}).get("match") or "system_disk"),
                  min_size=emin or EPHEMERAL_MIN_SIZE, max_size=emax, max_percent=epct,
                  grow=bool(eprov.get("grow", True)), filesystem="xfs", fs_label="EPHEMERAL",
                  mount={"targetPath": "/var", "selinuxLabel": EPHEMERAL_SELINUX_LABEL,
                         "projectQuotaSupport": True, "fileMode": 0o755}),
    ]
    user: list[VolumeCfg] = []
    for d in docs:
        kind = doc_key(d)[1]
        if kind not in ("UserVolumeConfig", "RawVolumeConfig"):
            continue
        name = str(d.get("name"))
        prov = d.get("provisioning") or {}
        raw = kind == "RawVolumeConfig"
        vid = ("r-" if raw else "u-") + name
        vtype = d.get("volumeType", "partition")
        mn, mx, pct = _sizes(prov) if vtype == "partition" else (0, 0, 0.0)
        user.append(VolumeCfg(
            vid, LABEL_RAW_VOLUME if raw else LABEL_USER_VOLUME, vtype=vtype,
            locate=vid if vtype == "partition" else None, provision=vtype != "directory",
            selector=str((prov.get("diskSelector") or {}).get("match", "")),
            min_size=mn or (MIN_USER_VOLUME_SIZE if vtype == "partition" else 0), max_size=mx, max_percent=pct,
            grow=bool(prov.get("grow", False)),
            filesystem="none" if raw else str((d.get("filesystem") or {}).get("type", "xfs")),
            mount=None if raw else _user_mount(name, d), wave=1))
    # CompareVolumeConfigs: non-growing first, then by max size (0 = unlimited) ascending; stable.
    user.sort(key=lambda v: (v.grow, v.max_size or 2**64))
    return system + user
