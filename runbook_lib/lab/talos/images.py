"""Installer image references and the versions of official extensions built for a Talos tag."""

from __future__ import annotations

import re

from .constants import FACTORY_HOST, VANILLA_INSTALLER
from .releases import drbd_version, parse_version, zfs_version


def extension_version(official_name: str, tag: str) -> str:
    """Version string of an official extension built for Talos ``tag``.

    drbd: ``<drbd>-<talos tag>`` (extensions storage/drbd/vars.yaml ``VERSION``).
    """
    if official_name == "siderolabs/drbd":
        return f"{drbd_version(tag)}-{tag}"
    if official_name == "siderolabs/zfs":
        return f"{zfs_version(tag)}-{tag}"
    return tag


def parse_installer_image(image: str) -> tuple[str, str | None]:
    """Installer reference -> (Talos version, schematic ID or None for the vanilla installer).

    Factory references are ``factory.talos.dev/<installer|metal-installer|...-installer>[-secureboot]/<id>:<ver>``
    (image-factory docs/api.md); ``ghcr.io/siderolabs/installer:<ver>`` is the vanilla installer,
    which carries no extensions at all (talos#8467).
    """
    if ":" not in image.rsplit("/", 1)[-1]:
        raise ValueError(f"installer image {image!r} has no tag")
    repo, tag = image.rsplit(":", 1)
    parse_version(tag)
    if repo == VANILLA_INSTALLER:
        return tag, None
    parts = repo.split("/")
    if len(parts) == 3 and parts[0] == FACTORY_HOST and parts[1].split("-secureboot")[0].endswith("installer"):
        if not re.fullmatch(r"[0-9a-f]{64}", parts[2]):
            raise ValueError(f"installer image {image!r}: {parts[2]!r} is not a schematic ID")
        return tag, parts[2]
    raise ValueError(f"installer image {image!r} is neither the vanilla installer nor an Image Factory installer")
