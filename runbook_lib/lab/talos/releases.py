"""Talos releases the lab knows: versions, and what each ships (kernel, DRBD, ZFS).

DRBD and kernel versions come from siderolabs/pkgs ``Pkgfile`` at the commit each Talos
tag pins (``pkg/machinery/gendata/data/pkgs``); a release between two known tags ships what
the closest earlier known tag ships. DRBD changes between *patch* releases, which is why a
rolling upgrade briefly runs mixed DRBD versions. ZFS versions are lab approximations.
"""

from __future__ import annotations

import functools
import re

# tag: (drbd, linux) at tags where siderolabs/pkgs was checked.
TALOS_PKGS: dict[str, tuple[str, str]] = {
    "v1.10.0": ("9.2.13", "6.12.25"), "v1.10.5": ("9.2.14", "6.12.35"), "v1.10.9": ("9.2.16", "6.12.63"),
    "v1.11.0": ("9.2.14", "6.12.43"), "v1.11.5": ("9.2.14", "6.12.57"), "v1.11.6": ("9.2.16", "6.12.62"),
    "v1.12.0": ("9.2.16", "6.18.1"), "v1.12.1": ("9.2.16", "6.18.2"), "v1.12.6": ("9.2.16", "6.18.18"),
    "v1.12.11": ("9.2.16", "6.18.42"), "v1.13.0": ("9.3.1", "6.18.24"), "v1.13.9": ("9.3.3", "6.18.44"),
}
_LAST_PATCH = {(1, 10): 9, (1, 11): 6, (1, 12): 11, (1, 13): 9}
_ZFS = {10: "2.3.1", 11: "2.3.3", 12: "2.3.4", 13: "2.4.0"}


@functools.lru_cache(maxsize=256)
def parse_version(tag: str) -> tuple[int, int, int]:
    """``v1.12.6`` (or ``1.12.6-beta.0``) -> (1, 12, 6)."""
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", tag)
    if not m:
        raise ValueError(f"not a Talos version: {tag!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


TALOS_VERSIONS: list[str] = [f"v{ma}.{mi}.{p}" for (ma, mi), last in sorted(_LAST_PATCH.items()) for p in range(last + 1)]


@functools.lru_cache(maxsize=256)
def _shipped(tag: str) -> tuple[str, str]:
    want = parse_version(tag)
    known = sorted((parse_version(k), v) for k, v in TALOS_PKGS.items())
    same_minor = [v for k, v in known if k[:2] == want[:2] and k <= want]
    if same_minor:
        return same_minor[-1]
    lower = [v for k, v in known if k <= want]
    return lower[-1] if lower else known[0][1]


def drbd_version(tag: str) -> str:
    return _shipped(tag)[0]


def kernel_version(tag: str) -> str:
    return _shipped(tag)[1] + "-talos"


def zfs_version(tag: str) -> str:
    return _ZFS.get(parse_version(tag)[1], "2.4.0")
