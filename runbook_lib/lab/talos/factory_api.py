"""The lab's Image Factory: schematics, Talos versions and official extensions.

Endpoints as documented by siderolabs/image-factory (``docs/api.md``):
``POST /schematics`` (YAML or JSON body, unknown fields rejected, answers ``201`` with
``{"id": ...}``), ``GET /schematics/{id}``, ``GET /versions`` and
``GET /version/{v}/extensions/official``. The schematic ID is computed here
independently of :mod:`runbook_lib.factory`: the schematic is re-marshalled with a
YAML emitter configured like go-yaml v3 (4-space indent, sequences indented under
their key, struct field order) and hashed, so a test comparing the two catches a
mistake in either.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from .releases import TALOS_VERSIONS, drbd_version, zfs_version

# Struct field order of the factory's Schematic type (pkg/schematic/schematic.go).
_ORDER = {
    "": ["overlay", "customization"],
    "overlay": ["image", "name", "options"],
    "customization": ["embeddedMachineConfiguration", "extraKernelArgs", "meta", "systemExtensions",
                      "bootloader", "secureboot", "diskImage"],
    "meta": ["key", "value"],
    "systemExtensions": ["officialExtensions"],
    "secureboot": ["enrollKeys", "includeWellKnownCertificates"],
    "diskImage": ["sectorSize"],
}
_ALWAYS = {"customization"}


class SchematicInvalid(ValueError):
    pass


def _canonical(obj: Any, section: str) -> Any:
    if isinstance(obj, dict):
        order = _ORDER.get(section)
        if order is not None:
            unknown = [k for k in obj if k not in order]
            if unknown:
                raise SchematicInvalid(f"field {unknown[0]} not found in type schematic")
            keys = order
        else:
            keys = sorted(obj)
        out = {}
        for key in keys:
            if key not in obj:
                if key in _ALWAYS:
                    out[key] = {}
                continue
            value = _canonical(obj[key], key)
            if value in ({}, [], None, "", False, 0) and key not in _ALWAYS:
                continue  # omitempty
            out[key] = value
        return out
    if isinstance(obj, list):
        return [_canonical(v, section) for v in obj]
    return obj


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    # PyYAML quotes exactly the strings a YAML parser would not read back as the same
    # string (booleans, numbers, null, special characters); go-yaml double-quotes them.
    plain = yaml.safe_dump(text, default_flow_style=True, width=1 << 30).removesuffix("\n...\n").strip()
    return text if plain == text else json.dumps(text)


def _emit(obj: Any, indent: int) -> list[str]:
    """Block YAML the way go-yaml v3 writes it: 4-space indent, ``- `` items indented under their key."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines += _emit(value, indent + 4)
            elif isinstance(value, dict | list):
                lines.append(f"{pad}{key}: {'{}' if isinstance(value, dict) else '[]'}")
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    else:
        for item in obj:
            sub = _emit(item, indent + 2) if isinstance(item, dict | list) else [pad + "  " + _scalar(item)]
            lines.append(f"{pad}- {sub[0].lstrip()}")
            lines += sub[1:]
    return lines


def canonical_dict(schematic: dict) -> dict:
    """The schematic as the factory stores it: struct field order, empty fields omitted."""
    return _canonical(schematic or {}, "")


def canonical_yaml(schematic: dict) -> str:
    return "\n".join(_emit(_canonical(schematic or {}, ""), 0)) + "\n"


def schematic_id(schematic: dict) -> str:
    return hashlib.sha256(canonical_yaml(schematic).encode()).hexdigest()


def official_extensions(version: str) -> list[dict]:
    """The official extensions offered for ``version`` (a realistic subset)."""
    if version not in TALOS_VERSIONS:
        return []
    drbd, zfs = drbd_version(version), zfs_version(version)
    items = [
        ("siderolabs/drbd", f"{drbd}-{version}", "DRBD kernel modules (drbd, drbd_transport_tcp)"),
        ("siderolabs/zfs", f"{zfs}-{version}", "ZFS kernel module and utilities"),
        ("siderolabs/iscsi-tools", "v0.2.0", "iSCSI tools (iscsid, iscsiadm)"),
        ("siderolabs/util-linux-tools", f"2.41.1-{version}", "util-linux tools"),
        ("siderolabs/qemu-guest-agent", "10.0.2", "QEMU guest agent"),
        ("siderolabs/intel-ucode", "20250812", "Intel microcode"),
        ("siderolabs/amd-ucode", "20250917", "AMD microcode"),
    ]
    out = []
    for name, tag, description in items:
        ref = f"ghcr.io/{name}:{tag}"
        out.append({"name": name, "ref": ref, "digest": "sha256:" + hashlib.sha256(ref.encode()).hexdigest(),
                    "author": "Sidero Labs", "description": description})
    return sorted(out, key=lambda e: e["name"])


def _text(code: int, message: str) -> tuple[int, dict, bytes]:
    return code, {"Content-Type": "text/plain; charset=utf-8"}, (message + "\n").encode()


def handle(lab: Any, method: str, path: str, query: dict, body: bytes) -> tuple[int, dict, bytes]:
    """Serve one Image Factory request; ``lab.schematics`` remembers posted schematics."""
    parts = [p for p in path.split("/") if p]
    with lab.lock:
        if method == "POST" and parts == ["schematics"]:
            try:
                data = yaml.safe_load(body.decode() or "{}") or {}
                if not isinstance(data, dict):
                    raise SchematicInvalid("schematic must be a mapping")
                sid = schematic_id(data)
            except (yaml.YAMLError, SchematicInvalid, UnicodeDecodeError) as exc:
                return _text(400, f"error parsing schematic: {exc}")
            lab.schematics[sid] = _canonical(data, "")
            lab.mark_dirty()
            return 201, {"Content-Type": "application/json"}, json.dumps({"id": sid}).encode()
        if method == "GET" and len(parts) == 2 and parts[0] == "schematics":
            if parts[1] not in lab.schematics:
                return _text(404, "schematic not found")
            return 200, {"Content-Type": "application/yaml"}, canonical_yaml(lab.schematics[parts[1]]).encode()
        if method == "GET" and parts == ["versions"]:
            return 200, {"Content-Type": "application/json"}, json.dumps(TALOS_VERSIONS).encode()
        if method == "GET" and len(parts) == 4 and parts[0] == "version" and parts[2:] == ["extensions", "official"]:
            if parts[1] not in TALOS_VERSIONS:
                return _text(404, f"version {parts[1]} not found")
            return 200, {"Content-Type": "application/json"}, json.dumps(official_extensions(parts[1])).encode()
    return _text(404, "not found")


def extensions_of(lab: Any, schematic: str) -> list[str] | None:
    """Official extensions baked into an installer built from ``schematic`` (None: unknown schematic)."""
    data = lab.schematics.get(schematic)
    if data is None:
        return None
    return list(((data.get("customization") or {}).get("systemExtensions") or {}).get("officialExtensions") or [])
