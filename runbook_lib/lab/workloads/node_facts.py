"""What a Talos node offers pods: its devices, mounts and kernel modules, and writing a device's signature."""

from __future__ import annotations

from dataclasses import dataclass

from ..cluster import Lab

# Where Talos's host filesystem is writable and what exists on it (talos notes §5.3 and
# piraeus-operator#429: no systemd, read-only /etc and /usr, no /usr/src).
TALOS_HOST_DIRS = frozenset({
    "/", "/dev", "/proc", "/sys", "/run", "/run/udev", "/run/lock", "/tmp", "/etc", "/usr", "/usr/lib",
    "/lib", "/lib/modules", "/usr/lib/modules", "/opt", "/var", "/var/lib", "/var/log", "/var/mnt",
    "/var/lib/kubelet", "/var/run", "/sys/fs/cgroup", "/dev/disk",
})


TALOS_WRITABLE = ("/var", "/run", "/tmp", "/dev", "/sys", "/proc")


@dataclass
class NodeFacts:
    """What the storage stack needs to know about a node, from the Talos model.

    :func:`node_facts` is the only place that reads the Talos model, so a change there
    touches one adapter.
    """

    name: str
    address: str
    up: bool
    ready: bool
    boot_id: str
    drbd_loaded: bool
    drbd_version: str | None
    usermode_helper_disabled: bool
    drbd_transport_tcp: bool
    zfs_loaded: bool
    partitions: dict[str, str | None]  # device path -> filesystem signature (None: none)
    sizes: dict[str, int]  # device path -> bytes
    mounted: dict[str, str]  # device path -> mount point of a Talos volume using it


def node_facts(lab: Lab, name: str) -> NodeFacts | None:
    """Facts of one Talos node (None when the lab has no such node)."""
    node = lab.talos.nodes.get(name)
    if node is None:
        return None
    now = lab.clock.now()
    drbd = node.loaded_module("drbd")
    params = dict(p.split("=", 1) for p in (drbd or {}).get("parameters", []) if "=" in p)
    partitions: dict[str, str | None] = {}
    sizes: dict[str, int] = {}
    for disk in node.disks:
        for part in disk.partitions:
            path = disk.part_path(part.index)
            partitions[path] = part.filesystem or None
            sizes[path] = part.size
    mounted = {}
    unmounted = set(lab.workloads.state.unmounted.get(name, []))
    for vid, st in (node.volumes or {}).items():
        if st.get("phase") == "ready" and st.get("location") and st.get("_mount"):
            mount = st.get("_mount") or {}
            parent = mount.get("parentId") or ""
            target = f"{parent}/{mount.get('targetPath', vid)}" if parent else str(mount.get("targetPath", vid))
            if target not in unmounted:
                mounted[st["location"]] = target
    return NodeFacts(
        name=name, address=node.address, up=node.is_up(now), ready=node.kubelet_ready(now) and lab.node_reachable(name),
        boot_id=node.boot_id,
        drbd_loaded=drbd is not None, drbd_version=node.drbd_version() if drbd else None,
        usermode_helper_disabled=params.get("usermode_helper") == "disabled",
        drbd_transport_tcp=node.loaded_module("drbd_transport_tcp") is not None,
        zfs_loaded=node.loaded_module("zfs") is not None,
        partitions=partitions, sizes=sizes, mounted=mounted,
    )


def set_block_signature(lab: Lab, node_name: str, device: str, signature: str | None) -> bool:
    """Write (``zfs_member``, ``LVM2_member``) or clear (None: ``wipefs -a``) a device's signature.

    Hook into the Talos model: its partitions carry the probed signature (``filesystem``);
    Talos then sees the new signature on its next volume reconcile. Uses the model's
    ``set_block_signature`` when it offers one.
    """
    cluster = lab.talos
    node = cluster.nodes.get(node_name)
    if node is None:
        return False
    found = node.partition_by_path(device)
    if found is None:
        return False
    part = found[1]
    part.filesystem = signature or ""
    if signature is None:
        part.fs_uuid, part.fs_label = "", ""
    return True
