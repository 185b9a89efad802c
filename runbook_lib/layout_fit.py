"""Whether the storage layout (EPHEMERAL cap, user volume minimum) fits a node's disks.

Pure: ``DiscoveredVolume`` specs and the storage parameters in, a sentence naming the node,
the disk and the sizes out (or ``None``). Notebook 01 asks this in its plan, so a layout
that cannot fit stops the run before the first ``apply-config`` or reset, instead of
Talos failing the volume on every node after the change.

The bound is generous on purpose (it never refuses a layout Talos could provision):
a disk can give the user volume at most its size minus the partitions that stay
(every one except EPHEMERAL and the user volume's own), minus the EPHEMERAL cap
on the disk that holds EPHEMERAL, minus what GPT itself takes. The disk selector is not evaluated here, so a
disk the selector would not pick still counts (Talos reports that case itself).
"""

from __future__ import annotations

from collections.abc import Sequence

from .params import Storage
from .sizes import format_iec

EPHEMERAL = "EPHEMERAL"
#: GPT headers at both ends (34 + 33 sectors) and 1 MiB alignment of the new partition: never usable.
GPT_OVERHEAD = 2 * 1024 * 1024


def _parts_of(disk: dict, partitions: Sequence[dict]) -> list[dict]:
    dev = disk.get("dev_path", "")
    return [p for p in partitions if p.get("parent_dev_path") == dev or p.get("parent") == dev.removeprefix("/dev/")]


def _size(spec: dict) -> int:
    try:
        return int(spec.get("size") or 0)
    except (TypeError, ValueError):
        return 0


def layout_misfit(node: str, disks: Sequence[dict], partitions: Sequence[dict], storage: Storage) -> str | None:
    """Why ``storage``'s layout cannot fit on ``node``'s disks, or ``None`` when it may."""
    if not disks:
        return None  # nothing discovered: the plan's own checks say so
    best, best_disk = -1, None
    for disk in disks:
        size = _size(disk)
        parts = _parts_of(disk, partitions)
        labels = {p.get("partition_label") for p in parts}
        staying = sum(_size(p) for p in parts if p.get("partition_label") not in (EPHEMERAL, storage.partition_label))
        room = size - staying - GPT_OVERHEAD
        if EPHEMERAL in labels:
            if storage.ephemeral_max_bytes >= room:
                return (f"{node}: storage.ephemeral_max_size {storage.ephemeral_max_size} does not fit on the system "
                        f"disk {disk.get('dev_path')} ({format_iec(size)}, {format_iec(room)} after the other "
                        f"system partitions); lower it so the user volume gets the rest")
            room -= storage.ephemeral_max_bytes
        if room > best:
            best, best_disk = room, disk
    if best < storage.min_bytes:
        where = best_disk.get("dev_path") if best_disk else "any disk"
        return (f"{node}: storage.min_size {storage.min_size} cannot fit: the most any disk can give the user volume "
                f"is {format_iec(max(best, 0))} (on {where}, with EPHEMERAL capped at {storage.ephemeral_max_size}); "
                "lower min_size or ephemeral_max_size")
    return None
