"""Pure renderers: parameters in, documents out. Nothing here touches a cluster."""

from __future__ import annotations

import yaml

from .params import Storage


def ephemeral_volume_config(storage: Storage) -> dict:
    """``VolumeConfig`` capping EPHEMERAL (``/var``) so the rest of the system disk stays free.

    Talos allocates a new partition at exactly ``maxSize`` when that much space is free
    (``CreatePartition`` in talos ``internal/.../volumes/partition.go``). The cap only applies
    when EPHEMERAL is (re)created, which is why notebook 01 resets EPHEMERAL afterwards.
    """
    return {
        "apiVersion": "v1alpha1",
        "kind": "VolumeConfig",
        "name": "EPHEMERAL",
        "provisioning": {"maxSize": storage.ephemeral_max_size},
    }


def user_volume_config(storage: Storage) -> dict:
    """``UserVolumeConfig`` for the partition LINSTOR will take over (``u-<name>``).

    Without ``maxSize`` Talos gives the partition all contiguous free space that is left,
    which is what a storage pool wants; ``minSize`` makes Talos refuse a disk that is too small.
    """
    provisioning: dict = {
        "diskSelector": {"match": storage.disk_selector},
        "minSize": storage.min_size,
    }
    if storage.max_size:
        provisioning["maxSize"] = storage.max_size
    return {
        "apiVersion": "v1alpha1",
        "kind": "UserVolumeConfig",
        "name": storage.volume_name,
        "provisioning": provisioning,
        "filesystem": {"type": storage.filesystem},
    }


def volume_documents(storage: Storage) -> list[dict]:
    return [ephemeral_volume_config(storage), user_volume_config(storage)]


def to_yaml(docs: list[dict]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
