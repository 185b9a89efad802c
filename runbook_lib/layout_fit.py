"""Whether the storage layout (EPHEMERAL cap, user volume minimum) fits a node's disks.

Pure: ``DiscoveredVolume`` specs and the storage parameters in, a sentence naming the node,
the disk and the sizes out (or ``None``). Notebook 01 asks this in its plan, so a layout
that cannot fit stops the run before the first ``apply-config`` or reset, instead of
Talos failing the volume on every node after the change.

The bound is generous on purpose (it never refuses a layout Talos could provision):
a disk can give the user volume at most its size minus the partitions that stay
(every one except EPHEMERAL and the user volume's own), minus the EPHEMERAL cap
on the disk that holds EPHEMERAL, minus what GPT itself takes. Only disks the selector picks count
(evaluated as Talos does, :class:`.disk_selector.DiskSelector`; the system disk is the one holding
Talos's own partitions), and a selector that picks none is named with the node's disks.
"""

from __future__ import annotations

from collections.abc import Sequence

from .disk_selector import DiskSelector, DiskSelectorError
from .params import Storage
from .sizes import format_iec, format_si

EPHEMERAL = "EPHEMERAL"
SYSTEM_LABELS = {"EFI", "BIOS", "META", "STATE", EPHEMERAL}
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


def _selected(disks: Sequence[dict], partitions: Sequence[dict], disk_specs: Sequence[dict],
              expression: str) -> list[dict] | None:
    """The discovered disks ``expression`` picks, evaluated on their ``Disk`` specs (Talos's DiskSpec)
    as Talos does; None when it cannot tell (no specs read, or a selector params check rejects)."""
    if not disk_specs:
        return None
    system = {d.get("dev_path") for d in disks
              if any(p.get("partition_label") in SYSTEM_LABELS for p in _parts_of(d, partitions))}
    try:
        selector = DiskSelector(expression)
        paths = {spec.get("dev_path") for spec in disk_specs if selector.matches(spec, spec.get("dev_path") in system)}
    except DiskSelectorError:
        return None
    return [d for d in disks if d.get("dev_path") in paths]


def layout_misfit(node: str, disks: Sequence[dict], partitions: Sequence[dict], storage: Storage,
                  label: str | None = None, disk_specs: Sequence[dict] = ()) -> str | None:
    """Why ``storage``'s layout cannot fit on ``node``'s disks, or ``None`` when it may.

    ``label``: the partition LINSTOR gets (``r-<name>``, or ``u-<name>`` on the old layout);
    ``disk_specs``: the node's ``Disk`` resources, to evaluate the disk selector on.
    """
    if not disks:
        return None  # nothing discovered: the plan's own checks say so
    label = label or storage.raw_label
    picked = _selected(disks, partitions, disk_specs, storage.disk_selector)
    if picked is not None and not picked:
        found = ", ".join(f"{d.get('dev_path')} ({format_si(_size(d))}, {d.get('transport') or 'no transport'}"
                          f"{', readonly' if d.get('readonly') else ''})" for d in disk_specs)
        return (f"{node}: storage.disk_selector {storage.disk_selector!r} matches none of its disks: {found}; "
                "fix the selector (Talos would fail the volume with 'no disks matched selector for volume')")
    best, best_disk = -1, None
    for disk in disks:
        size = _size(disk)
        parts = _parts_of(disk, partitions)
        labels = {p.get("partition_label") for p in parts}
        staying = sum(_size(p) for p in parts if p.get("partition_label") not in (EPHEMERAL, label))
        room = size - staying - GPT_OVERHEAD
        if EPHEMERAL in labels:
            if storage.ephemeral_max_bytes >= room:
                return (f"{node}: storage.ephemeral_max_size {storage.ephemeral_max_size} does not fit on the system "
                        f"disk {disk.get('dev_path')} ({format_iec(size)}, {format_iec(room)} after the other "
                        f"system partitions); lower it so LINSTOR's partition gets the rest")
            room -= storage.ephemeral_max_bytes
        if picked is not None and disk not in picked:
            continue
        if room > best:
            best, best_disk = room, disk
    if best < storage.min_bytes:
        where = best_disk.get("dev_path") if best_disk else "any disk"
        return (f"{node}: storage.min_size {storage.min_size} cannot fit: the most a selected disk can give "
                f"{label} is {format_iec(max(best, 0))} (on {where}, with EPHEMERAL capped at "
                f"{storage.ephemeral_max_size}); lower min_size or ephemeral_max_size")
    return None
