"""Facts of the lab's LINSTOR: sizes in KiB, default pool and group names, DRBD metadata sizes, the version."""

from __future__ import annotations

LONG_MAX = 2**63 - 1


MIB_KIB = 1024


GIB_KIB = 1024 * 1024


DISKLESS_POOL = "DfltDisklessStorPool"


DEFAULT_RG = "DfltRscGrp"


PEER_SLOTS = 7


AL_KIB = 32


DRBD_SUPERBLOCK_KIB = 8


LVM_EXTENT_KIB = 4 * MIB_KIB


ZFS_VOLBLOCK_KIB = 16


THIN_CHUNK_KIB = 64


MAX_OVERSUBSCRIPTION = 20.0  # LINSTOR's default MaxOversubscriptionRatio for thin pools


CONTROLLER_VERSION = {"version": "1.33.3", "git_hash": "1ff3a1ea5cb5c77100265ec442bb9a492b225145",
                      "build_time": "2026-05-11T08:12:41+00:00", "rest_api_version": "1.27.0"}
