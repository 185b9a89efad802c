"""Schematic merge: the schematic a node runs now, plus the extensions the runbooks need, nothing dropped.

A Talos node built from an Image Factory image carries a virtual extension ``schematic`` whose
version is the schematic ID (image-factory ``internal/artifacts/schematic.go``,
``SchematicIDExtensionName``); ``GET /schematics/<id>`` answers that schematic as YAML
(image-factory README "GET /schematics/:schematic"). Everything in it (other extensions such as
``siderolabs/iscsi-tools`` or microcode, ``extraKernelArgs``, ``meta``, an overlay, SecureBoot
settings) is kept; the wanted extensions the node lacks are appended after its own, so a node that
already has them keeps its schematic ID and a re-run changes nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import yaml

from .errors import ParseError, PreconditionFailed
from .factory import FactoryError, SchematicError, schematic_id

#: the default schematic (no customization): what a node installed from ghcr.io/siderolabs/installer has
VANILLA: dict = {"customization": {}}


def parse_schematic(text: str, schematic: str) -> dict:
    """The factory's YAML for ``schematic`` as a dict; :class:`ParseError` when it is not a schematic."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ParseError("image-factory", f"/schematics/{schematic}: not YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("customization", {}), dict):
        raise ParseError("image-factory", f"/schematics/{schematic}: not a schematic (no customization mapping)")
    cust = data.get("customization") or {}
    for key in ("extraKernelArgs",):
        if not all(isinstance(a, str) for a in cust.get(key) or []):
            raise ParseError("image-factory", f"/schematics/{schematic}: customization.{key} holds a non-string")
    exts = (cust.get("systemExtensions") or {}).get("officialExtensions") or []
    if not all(isinstance(e, str) for e in exts):
        raise ParseError("image-factory", f"/schematics/{schematic}: officialExtensions holds a non-string")
    return data


def extensions(schematic: dict) -> list[str]:
    cust = schematic.get("customization") or {}
    return list((cust.get("systemExtensions") or {}).get("officialExtensions") or [])


def kernel_args(schematic: dict) -> list[str]:
    return list((schematic.get("customization") or {}).get("extraKernelArgs") or [])


def merge(current: dict, wanted: list[str]) -> dict:
    """``current`` with the ``wanted`` extensions it lacks appended; every other field kept as it is."""
    merged = copy.deepcopy(current) if current else copy.deepcopy(VANILLA)
    cust = merged.setdefault("customization", {})
    have = extensions(merged)
    add = [e for e in wanted if e not in have]
    if add:
        cust.setdefault("systemExtensions", {})["officialExtensions"] = have + add
    return merged


@dataclass
class NodeSchematic:
    """One node's schematic now and after the merge."""

    node: str
    current_id: str | None  # None: no ``schematic`` extension (a vanilla installer)
    current: dict
    merged: dict
    predicted_id: str | None = None  # offline ID of ``merged`` (None: cannot be hashed offline)
    factory_id: str = ""
    image: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def added(self) -> list[str]:
        return [e for e in extensions(self.merged) if e not in extensions(self.current)]

    @property
    def kept(self) -> list[str]:
        return extensions(self.current)

    def difference(self) -> list[str]:
        """The change as lines: ``+`` added, ``=`` kept (extensions, kernel arguments, META, the rest)."""
        lines = [f"+ extension {e}" for e in self.added]
        lines += [f"= extension {e}" for e in self.kept]
        lines += [f"= kernel argument {a}" for a in kernel_args(self.current)]
        cust = self.current.get("customization") or {}
        lines += [f"= meta key {m.get('key')}" for m in cust.get("meta") or [] if isinstance(m, dict)]
        for key in ("embeddedMachineConfiguration", "bootloader", "secureboot", "diskImage"):
            if cust.get(key):
                lines.append(f"= {key}")
        if self.current.get("overlay"):
            lines.append(f"= overlay {(self.current['overlay'] or {}).get('name', '')}")
        return lines


def predict(schematic: dict) -> str | None:
    """The schematic's ID computed offline, or None when only the factory can compute it."""
    try:
        return schematic_id(schematic)
    except SchematicError:
        return None


def current_schematic(factory, node: str, schematic: str | None, running: dict[str, str]) -> dict:
    """The schematic ``node`` runs: from the factory by ID, VANILLA for a node without one.

    A node without a ``schematic`` extension that still runs extensions got them some other way
    (the deprecated ``machine.install.extensions``, a custom image): 02 cannot know what to keep
    and stops rather than drop them at the upgrade.
    """
    if schematic is None:
        if running:
            raise PreconditionFailed(
                f"{node} runs extensions ({', '.join(sorted(running))}) but no Image Factory schematic, so 02 cannot "
                "tell what its image holds and would drop them at the upgrade: build an Image Factory schematic "
                "with those extensions, upgrade the node to it by hand, then run 02 again")
        return copy.deepcopy(VANILLA)
    try:
        text = factory.get_schematic(schematic)
    except FactoryError as exc:
        if exc.status == 404:
            raise PreconditionFailed(
                f"{node} runs schematic {schematic}, which the Image Factory at {factory.base_url} does not know "
                "(built by another factory?): set factory_url to the factory that built the node's image") from None
        raise
    return parse_schematic(text, schematic)
