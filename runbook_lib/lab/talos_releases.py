"""Talos releases the lab knows: versions, and what each ships (kernel, DRBD, ZFS).

DRBD and kernel versions come from siderolabs/pkgs ``Pkgfile`` at the commit each Talos
tag pins (``pkg/machinery/gendata/data/pkgs``); releases between two known tags ship what
the earlier known tag ships. DRBD changes between *patch* releases, which is why a rolling
upgrade briefly runs mixed DRBD versions. ZFS versions are lab approximations.
"""

from __future__ import annotations

# tag: (drbd, linux) at tags where siderolabs/pkgs was checked.
_KNOWN = {
    "v1.10.0": ("9.2.13", "6.12.25"), "v1.10.5": ("9.2.14", "6.12.35"), "v1.10.9": ("9.2.16", "6.12.63"),
    "v1.11.0": ("9.2.14", "6.12.43"), "v1.11.5": ("9.2.14", "6.12.57"), "v1.11.6": ("9.2.16", "6.12.62"),
    "v1.12.0": ("9.2.16", "6.18.1"), "v1.12.1": ("9.2.16", "6.18.2"), "v1.12.6": ("9.2.16", "6.18.18"),
    "v1.12.11": ("9.2.16", "6.18.42"), "v1.13.0": ("9.3.1", "6.18.24"), "v1.13.9": ("9.3.3", "6.18.44"),
}
_LAST_PATCH = {(1, 10): 9, (1, 11): 6, (1, 12): 11, (1, 13): 9}


def _vt(tag: str) -> tuple[int, int, int]:
    major, minor, patch = tag.lstrip("v").split(".")
    return int(major), int(minor), int(patch)


TALOS_VERSIONS: list[str] = [f"v{ma}.{mi}.{p}" for (ma, mi), last in sorted(_LAST_PATCH.items()) for p in range(last + 1)]


def _shipped(tag: str) -> tuple[str, str]:
    known = sorted((t for t in _KNOWN if _vt(t)[:2] == _vt(tag)[:2] and _vt(t) <= _vt(tag)), key=_vt)
    return _KNOWN[known[-1]]


DRBD_VERSIONS: dict[str, str] = {t: _shipped(t)[0] for t in TALOS_VERSIONS}
KERNEL_VERSIONS: dict[str, str] = {t: _shipped(t)[1] + "-talos" for t in TALOS_VERSIONS}
ZFS_VERSIONS: dict[str, str] = {t: {10: "2.3.1", 11: "2.3.3", 12: "2.3.4", 13: "2.4.0"}[_vt(t)[1]] for t in TALOS_VERSIONS}
