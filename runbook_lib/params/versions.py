"""Talos version gates: which Talos release knows which document or behaviour."""

from __future__ import annotations

import re

#: UserVolumeConfig exists from this Talos version on.
MIN_TALOS_VERSION = (1, 10, 0)
#: ``reset --system-labels-to-wipe EPHEMERAL`` drops the partition (so a new maxSize applies) from here on.
EPHEMERAL_RESIZE_BY_RESET_VERSION = (1, 12, 0)

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?$")
_STRICT_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"v1.12.7"`` -> ``(1, 12, 7)``; a pre-release suffix is ignored.

    Accepts the leading ``v`` as optional because nodes and tools report both forms.
    Raises :class:`ValueError` for anything else.
    """
    match = _VERSION_RE.match(version.strip()) if isinstance(version, str) else None
    if match is None:
        raise ValueError(f"{version!r} is not a Talos version like v1.12.7")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def supports_user_volumes(version: str) -> bool:
    """True if Talos ``version`` knows the ``UserVolumeConfig`` document (v1.10.0+)."""
    return version_tuple(version) >= MIN_TALOS_VERSION


def supports_ephemeral_resize_by_reset(version: str) -> bool:
    """True if "apply VolumeConfig, then reset EPHEMERAL" really resizes EPHEMERAL (v1.12.0+).

    Before v1.12 the reset wipes the filesystem but keeps the partition, so the new
    ``maxSize`` is silently ignored. Notebook 01 asks this about the version each
    node actually runs, not the target version.
    """
    return version_tuple(version) >= EPHEMERAL_RESIZE_BY_RESET_VERSION
