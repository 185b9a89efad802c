"""udev's ``/dev/disk/by-partlabel`` and ``by-partuuid`` links on a lab node, resolved to the partition device.

On a Talos node udevd links every named GPT partition as ``/dev/disk/by-partlabel/<name>`` and every
partition as ``/dev/disk/by-partuuid/<uuid>`` (systemd ``60-persistent-storage.rules``); a raw volume is
meant to be used through ``/dev/disk/by-partlabel/r-<name>`` (Talos ``RawVolumeConfig`` docs). The
satellite (``zpool create``, ``pvcreate``) opens such a path like the device it points to.
"""

from __future__ import annotations

from ..cluster import Lab
from .node import TalosNode

BY_PARTLABEL = "/dev/disk/by-partlabel/"
BY_PARTUUID = "/dev/disk/by-partuuid/"


def resolve(node: TalosNode, path: str) -> str:
    """The device ``path`` points to on ``node`` (a Talos model node); ``path`` itself when it is no such link
    or points nowhere (then the caller fails as the real tool fails on a missing device)."""
    for prefix, attr in ((BY_PARTLABEL, "label"), (BY_PARTUUID, "part_uuid")):
        if path.startswith(prefix):
            wanted = path[len(prefix):]
            for disk in node.disks:
                for part in disk.partitions:
                    if getattr(part, attr) == wanted:
                        return disk.part_path(part.index)
    return path


def resolve_on(lab: Lab, node_name: str, path: str) -> str:
    node = lab.talos.nodes.get(node_name)
    return resolve(node, path) if node is not None else path
