"""The COSI resource types the lab serves (namespace, aliases, talosctl columns) and Go duration text."""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import: the lab's talosctl imports this module at every call
if TYPE_CHECKING:
    from typing import Any

# type -> (namespace, aliases, print columns (name, jsonpath on spec), owner)
RESOURCE_DEFS: dict[str, dict[str, Any]] = {
    "VolumeStatuses.block.talos.dev": {
        "namespace": "runtime", "aliases": ["volumestatus", "volumestatuses"],
        "columns": [("Type", "{.type}"), ("Phase", "{.phase}"), ("Location", "{.location}"),
                    ("Size", "{.prettySize}")],
        "owner": "block.VolumeManagerController"},
    "DiscoveredVolumes.block.talos.dev": {
        "namespace": "runtime", "aliases": ["discoveredvolume", "discoveredvolumes", "dv"],
        "columns": [("Type", "{.type}"), ("Size", "{.pretty_size}"), ("Discovered", "{.name}"),
                    ("Label", "{.label}"), ("PartitionLabel", "{.partition_label}")],
        "owner": "block.DiscoveryController"},
    "Disks.block.talos.dev": {
        "namespace": "runtime", "aliases": ["disk", "disks"],
        "columns": [("Size", "{.pretty_size}"), ("Read Only", "{.readonly}"), ("Transport", "{.transport}"),
                    ("Rotational", "{.rotational}"), ("WWID", "{.wwid}"), ("Model", "{.model}"),
                    ("Serial", "{.serial}")],
        "owner": "block.DisksController"},
    "SystemDisks.block.talos.dev": {
        "namespace": "runtime", "aliases": ["systemdisk", "systemdisks"],
        "columns": [("Disk", "{.devPath}")], "owner": "block.SystemDiskController"},
    "MountStatuses.block.talos.dev": {
        "namespace": "runtime", "aliases": ["mountstatus", "mountstatuses"],
        "columns": [("Source", "{.source}"), ("Target", "{.target}"), ("Filesystem", "{.filesystem}"),
                    ("Volume", "{.volumeID}")],
        "owner": "block.MountController"},
    "MachineStatuses.runtime.talos.dev": {
        "namespace": "runtime", "aliases": ["machinestatus", "machinestatuses"],
        "columns": [("Stage", "{.stage}"), ("Ready", "{.status.ready}")],
        "owner": "runtime.MachineStatusController"},
    "ExtensionStatuses.runtime.talos.dev": {
        "namespace": "runtime", "aliases": ["extensionstatus", "extensionstatuses", "extension", "extensions"],
        "columns": [("Name", "{.metadata.name}"), ("Version", "{.metadata.version}")],
        "owner": "runtime.ExtensionStatusController"},
    "KernelModuleSpecs.runtime.talos.dev": {
        "namespace": "runtime", "aliases": ["kernelmodulespec", "kernelmodulespecs"],
        "columns": [], "owner": "runtime.KernelModuleConfigController"},
    "Members.cluster.talos.dev": {
        "namespace": "cluster", "aliases": ["member", "members"],
        "columns": [("Hostname", "{.hostname}"), ("Machine Type", "{.machineType}"), ("OS", "{.operatingSystem}"),
                    ("Addresses", "{.addresses}")],
        "owner": "cluster.MemberController"},
    "MachineConfigs.config.talos.dev": {
        "namespace": "config", "aliases": ["machineconfig", "machineconfigs", "mc"], "columns": [], "owner": ""},
}


def resolve_resource_type(name: str) -> str | None:
    """talosctl type resolution: full type, its singular/plural, or an alias, case-insensitively."""
    low = name.lower()
    for rtype, d in RESOURCE_DEFS.items():
        plural = rtype.split(".", 1)[0].lower()
        if low in (rtype.lower(), plural, plural.rstrip("s"), *d["aliases"]):
            return rtype
    return None


def go_duration(seconds: float) -> str:
    """Go ``time.Duration.String`` for whole seconds: ``1m0s``, ``30m0s``, ``1h0m0s``."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"
