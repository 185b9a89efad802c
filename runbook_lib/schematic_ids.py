"""Image Factory rules computed offline: schematic IDs, installer image names, platforms.

The factory names every image by a *schematic ID*: the SHA-256 of the schematic after the
factory has decoded it into its Go struct and re-marshalled it with go-yaml (4-space
indent, struct field order, empty fields omitted). It is **not** the hash of the bytes a
user POSTs, so two differently written but equivalent schematics share an ID, and a change
of extension order gives a different one.

Computing the ID offline lets a runbook predict which installer image a node must run
before it talks to the factory, and verify afterwards (the node's ``schematic`` extension
reports the ID) that the upgrade really used it. The emitter below reproduces go-yaml only
for the scalars whose rendering is certain; for anything else it refuses with a
:class:`SchematicError` that tells the caller to ask the factory (``POST /schematics``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import RunbookError

DEFAULT_FACTORY_URL = "https://factory.talos.dev"
DEFAULT_FACTORY_HOST = "factory.talos.dev"

#: Image Factory platforms (the ``<platform>-installer`` names) and whether each has a SecureBoot installer:
#: Talos ``pkg/machinery/platforms`` (MetalPlatform, CloudPlatforms, ``SecureBootSupported``), which the
#: factory uses; its registry frontend maps ``<platform>-installer[-secureboot]`` onto them
#: (image-factory ``internal/frontend/http/registry.go`` getRequestedImage).
PLATFORMS: dict[str, bool] = {
    "metal": True, "aws": False, "gcp": False, "equinixMetal": False, "azure": True, "digital-ocean": False,
    "nocloud": True, "openstack": False, "vmware": False, "akamai": False, "cloudstack": True, "hcloud": False,
    "oracle": False, "upcloud": False, "vultr": False, "exoscale": False, "opennebula": False, "scaleway": False,
}

_INDENT = "    "  # go-yaml v3 default indent

# Field order of the factory's Go structs (== canonical output order). Kept as tuples so
# nothing can mutate them.
_TOP_FIELDS = ("owner", "overlay", "customization")
_OVERLAY_FIELDS = ("image", "name", "options")
_CUSTOMIZATION_FIELDS = (
    "embeddedMachineConfiguration",
    "extraKernelArgs",
    "meta",
    "systemExtensions",
    "bootloader",
    "secureboot",
    "diskImage",
)
_META_FIELDS = ("key", "value")
_SYSTEM_EXTENSIONS_FIELDS = ("officialExtensions",)
_SECUREBOOT_FIELDS = ("enrollKeys", "includeWellKnownCertificates")
_DISK_IMAGE_FIELDS = ("sectorSize",)

# Strings go-yaml resolves to bool/null (YAML 1.2 core) or treats as YAML 1.1 booleans
# ("isOldBool"): it double-quotes them. Exact spellings only; other casings stay plain.
_NON_STRING_WORDS = frozenset(
    {
        "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL",
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "on", "On", "ON", "off", "Off", "OFF",
    }
)  # fmt: skip
_NON_STRING_WORDS_LOWER = frozenset(w.lower() for w in _NON_STRING_WORDS)
# A conservative character set whose plain rendering in block context is certain: starts
# with a letter (or '-' then a letter: "-foo" cannot read back as a number); no spaces,
# no '#', quotes, brackets or other YAML indicators; ':' only inside.
_PLAIN_WORD = re.compile(r"-?[A-Za-z][A-Za-z0-9._/=+,:@-]*")
_DIGITS = re.compile(r"[0-9]+")
# go-yaml's float syntax: a digit-first string matching it resolves to !!float.
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_OPTION_KEY = re.compile(r"[A-Za-z]{1,64}")
SCHEMATIC_ID = re.compile(r"[0-9a-f]{64}")
_TALOS_VERSION = re.compile(r"v?([0-9]+)\.([0-9]+)\.([0-9]+)(?:-[0-9A-Za-z.-]+)?")

_USE_API = "compute it with the Image Factory instead (ImageFactory.create_schematic / POST /schematics)"


class SchematicError(RunbookError, ValueError):
    """A schematic is invalid, or cannot be hashed offline with certainty.

    A ``ValueError`` too, so callers validating input can catch the usual type. The
    message starts with the dotted path of the offending field.
    """


def _check_keys(value: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    """Reject unknown keys, like the factory's decoder (KnownFields(true)) does."""
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SchematicError(f"{where}: unknown field (known: {', '.join(allowed)})")


def _as_mapping(value: Any, path: str) -> Mapping[str, Any]:
    """A struct field given as ``None`` (``customization:`` with no body) is its zero value."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SchematicError(f"{path}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise SchematicError(f"{path}: keys must be strings, got {key!r}")
    return value


def _as_str(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SchematicError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
    return value


def _as_bool(value: Any, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SchematicError(f"{path}: expected true or false, got {type(value).__name__} {value!r}")
    return value


def _as_uint(value: Any, path: str, maximum: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchematicError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
    if not 0 <= value <= maximum:
        raise SchematicError(f"{path}: {value} is outside 0..{maximum}")
    return value


def _as_str_list(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise SchematicError(f"{path}: expected a list of strings, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise SchematicError(f"{path}[{i}]: expected a string, got {type(item).__name__} {item!r}")
        out.append(item)
    return out


#
# A node is a scalar (already rendered to its YAML text), a list of nodes, or a list of
# (key, node) pairs wrapped in _Map. Zero-valued fields are dropped before emitting, as the
# Go struct tags say (omitempty), so the emitter never sees them.


class _Map(list):
    """Ordered mapping node: a list of ``(key, node)`` pairs."""


class _Seq(list):
    """Sequence node."""


def _scalar_str(value: str, path: str) -> str:
    """Render a string exactly as go-yaml v3 would, or refuse when unsure.

    go-yaml writes a string plain unless it would read back as another type (bool, null,
    number, timestamp): those it double-quotes. Our restricted character set keeps the
    emitter's own fallback to single quotes (``'a:'``, leading indicators, spaces) out of
    reach, and anything outside it is refused rather than guessed.
    """
    if value == "":
        return '""'
    if value in _NON_STRING_WORDS:
        return f'"{value}"'
    if _DIGITS.fullmatch(value) or _YAML_FLOAT.fullmatch(value):
        return f'"{value}"'
    if value.lower() in _NON_STRING_WORDS_LOWER:
        raise SchematicError(f"{path}: {value!r} is close to a YAML boolean/null; {_USE_API}")
    if _PLAIN_WORD.fullmatch(value) and not value.endswith(":"):
        return value
    raise SchematicError(f"{path}: {value!r} may need go-yaml quoting; {_USE_API}")


def _scalar(value: Any, path: str) -> str:
    """Render a free-form scalar (overlay options): str, bool, int or None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _scalar_str(value, path)
    raise SchematicError(f"{path}: {type(value).__name__} values cannot be hashed offline; {_USE_API}")


def _free_node(value: Any, path: str) -> Any:
    """Convert an overlay option value (map[string]any in Go) into a node.

    go-yaml sorts map keys with its own "natural" order; for keys made of letters only it
    equals Python's string order, so other keys are refused.
    """
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str) or not _OPTION_KEY.fullmatch(key):
                raise SchematicError(f"{path}: option key {key!r} is not letters-only; {_USE_API}")
        return _Map((key, _free_node(value[key], f"{path}.{key}")) for key in sorted(value))
    if isinstance(value, list | tuple):
        seq = _Seq()
        for i, item in enumerate(value):
            if isinstance(item, Mapping | list | tuple):
                raise SchematicError(f"{path}[{i}]: nested collections in options; {_USE_API}")
            seq.append(_scalar(item, f"{path}[{i}]"))
        return seq
    return _scalar(value, path)


def _emit_map(pairs: _Map, indent: str, lines: list[str]) -> None:
    for key, node in pairs:
        _emit_entry(f"{indent}{key}:", node, indent, lines)


def _emit_entry(prefix: str, node: Any, indent: str, lines: list[str]) -> None:
    """Emit ``prefix`` (``key:``) followed by its value, block style."""
    if isinstance(node, _Map):
        if not node:
            lines.append(f"{prefix} {{}}")
            return
        lines.append(prefix)
        _emit_map(node, indent + _INDENT, lines)
    elif isinstance(node, _Seq):
        if not node:
            lines.append(f"{prefix} []")
            return
        lines.append(prefix)
        _emit_seq(node, indent + _INDENT, lines)
    else:
        lines.append(f"{prefix} {node}")


def _emit_seq(items: _Seq, indent: str, lines: list[str]) -> None:
    """Sequences sit one indent under their key; a mapping item continues at '- ' width."""
    for item in items:
        if isinstance(item, _Map):
            inner = indent + "  "
            for n, (key, node) in enumerate(item):
                lead = f"{indent}- " if n == 0 else inner
                if isinstance(node, _Map | _Seq) and node:
                    raise SchematicError(f"nested collection under {key!r} in a list; {_USE_API}")
                _emit_entry(f"{lead}{key}:", node, inner, lines)
        else:
            lines.append(f"{indent}- {item}")


def _overlay_node(raw: Any) -> _Map:
    overlay = _as_mapping(raw, "overlay")
    _check_keys(overlay, _OVERLAY_FIELDS, "overlay")
    image = _as_str(overlay.get("image"), "overlay.image")
    name = _as_str(overlay.get("name"), "overlay.name")
    options = _as_mapping(overlay.get("options"), "overlay.options")
    node = _Map()
    if not (image or name or options):
        return node  # zero struct: omitted
    # image and name carry no omitempty: both are written once the overlay is set.
    node.append(("image", _scalar_str(image, "overlay.image")))
    node.append(("name", _scalar_str(name, "overlay.name")))
    if options:
        node.append(("options", _free_node(options, "overlay.options")))
    return node


def _customization_node(raw: Any) -> _Map:
    cust = _as_mapping(raw, "customization")
    _check_keys(cust, _CUSTOMIZATION_FIELDS, "customization")
    node = _Map()

    if _as_str(cust.get("embeddedMachineConfiguration"), "customization.embeddedMachineConfiguration"):
        raise SchematicError(
            "customization.embeddedMachineConfiguration: a multi-line document cannot be hashed "
            f"offline; {_USE_API}"
        )

    args = _as_str_list(cust.get("extraKernelArgs"), "customization.extraKernelArgs")
    if args:
        node.append(
            (
                "extraKernelArgs",
                _Seq(_scalar_str(a, f"customization.extraKernelArgs[{i}]") for i, a in enumerate(args)),
            )
        )

    meta = _meta_node(cust.get("meta"))
    if meta:
        node.append(("meta", meta))

    ext = _as_mapping(cust.get("systemExtensions"), "customization.systemExtensions")
    _check_keys(ext, _SYSTEM_EXTENSIONS_FIELDS, "customization.systemExtensions")
    path = "customization.systemExtensions.officialExtensions"
    names = _as_str_list(ext.get("officialExtensions"), path)
    if names:
        seq = _Seq(_scalar_str(n, f"{path}[{i}]") for i, n in enumerate(names))
        node.append(("systemExtensions", _Map([("officialExtensions", seq)])))

    bootloader = _as_str(cust.get("bootloader"), "customization.bootloader")
    if bootloader:
        node.append(("bootloader", _scalar_str(bootloader, "customization.bootloader")))

    sb = _as_mapping(cust.get("secureboot"), "customization.secureboot")
    _check_keys(sb, _SECUREBOOT_FIELDS, "customization.secureboot")
    sb_node = _Map()
    enroll = _as_str(sb.get("enrollKeys"), "customization.secureboot.enrollKeys")
    if enroll:
        sb_node.append(("enrollKeys", _scalar_str(enroll, "customization.secureboot.enrollKeys")))
    wk = "includeWellKnownCertificates"
    if _as_bool(sb.get(wk), f"customization.secureboot.{wk}"):
        sb_node.append((wk, "true"))
    if sb_node:
        node.append(("secureboot", sb_node))

    disk = _as_mapping(cust.get("diskImage"), "customization.diskImage")
    _check_keys(disk, _DISK_IMAGE_FIELDS, "customization.diskImage")
    sector = _as_uint(disk.get("sectorSize"), "customization.diskImage.sectorSize", 2**64 - 1)
    if sector:
        node.append(("diskImage", _Map([("sectorSize", str(sector))])))
    return node


def _meta_node(raw: Any) -> _Seq:
    """META entries: ``key`` is a uint8 and ``value`` a string, both always written."""
    if raw is None:
        return _Seq()
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Sequence):
        raise SchematicError(f"customization.meta: expected a list, got {type(raw).__name__}")
    seq = _Seq()
    for i, entry in enumerate(raw):
        path = f"customization.meta[{i}]"
        item = _as_mapping(entry, path)
        _check_keys(item, _META_FIELDS, path)
        for field in _META_FIELDS:
            if field not in item:
                raise SchematicError(f"{path}.{field}: missing")
        key = _as_uint(item["key"], f"{path}.key", 255)
        value = _as_str(item["value"], f"{path}.value")
        if "\n" in value:
            raise SchematicError(f"{path}.value: multi-line values cannot be hashed offline; {_USE_API}")
        seq.append(_Map([("key", str(key)), ("value", _scalar_str(value, f"{path}.value"))]))
    return seq


def canonical_yaml(schematic: dict) -> str:
    """Return the YAML text the Image Factory hashes for ``schematic``.

    ``schematic`` is the dict form of a schematic YAML document. Unknown keys raise
    :class:`SchematicError` naming the key (the factory rejects them too), as do values of
    the wrong type and strings whose go-yaml rendering is not certain. Shown to users so
    they can see exactly what the ID covers.
    """
    top = _as_mapping(schematic, "schematic")
    _check_keys(top, _TOP_FIELDS, "")
    if _as_str(top.get("owner"), "owner"):
        raise SchematicError("owner: only the Enterprise Image Factory accepts an owner; remove it")
    doc = _Map()
    overlay = _overlay_node(top.get("overlay"))
    if overlay:
        doc.append(("overlay", overlay))
    doc.append(("customization", _customization_node(top.get("customization"))))  # never omitted
    lines: list[str] = []
    _emit_map(doc, "", lines)
    return "\n".join(lines) + "\n"


def schematic_id(schematic: dict) -> str:
    """Image Factory schematic ID of ``schematic``, computed offline.

    ``schematic_id({"customization": {"systemExtensions": {"officialExtensions":
    ["siderolabs/drbd", "siderolabs/zfs"]}}})`` is the ID the factory returns for the same
    document: the SHA-256 of :func:`canonical_yaml`. Extension order matters (the factory
    keeps it). Raises :class:`SchematicError` (a ``ValueError``) when the schematic is
    invalid or cannot be hashed offline with certainty.
    """
    return hashlib.sha256(canonical_yaml(schematic).encode("utf-8")).hexdigest()


def _parse_talos_version(version: str) -> tuple[int, int, str]:
    match = _TALOS_VERSION.fullmatch(version.strip()) if isinstance(version, str) else None
    if not match:
        raise SchematicError(f"talos_version: {version!r} is not a Talos version like v1.12.7")
    tag = version.strip()
    return int(match.group(1)), int(match.group(2)), tag if tag.startswith("v") else f"v{tag}"


def installer_image(
    schematic_id: str, talos_version: str, *, factory_host: str = DEFAULT_FACTORY_HOST,
    platform: str = "metal", secureboot: bool = False,
) -> str:
    """OCI reference of the factory installer for a schematic, Talos version and platform.

    From Talos v1.10 on this is ``<host>/<platform>-installer[-secureboot]/<id>:<version>``: the
    factory's "unified installer" (image-factory ``SupportsUnifiedInstaller``, Talos quirks
    ``minVersionUnifiedInstaller`` 1.10.0; its UI shows exactly these names). Older releases have
    one installer for every platform, the legacy ``<host>/installer[-secureboot]/<id>:<version>``.
    The tag always carries the leading ``v`` (``1.12.7`` is accepted and written ``v1.12.7``).
    """
    if not isinstance(schematic_id, str) or not SCHEMATIC_ID.fullmatch(schematic_id):
        raise SchematicError(f"schematic_id: {schematic_id!r} is not a 64-character hex ID")
    major, minor, tag = _parse_talos_version(talos_version)
    host = factory_host.strip().rstrip("/")
    if not host or "://" in host or "/" in host:
        raise SchematicError(
            f"factory_host: {factory_host!r} must be a bare host name like {DEFAULT_FACTORY_HOST}"
        )
    if platform not in PLATFORMS:
        raise SchematicError(f"platform: {platform!r} is not an Image Factory platform ({', '.join(PLATFORMS)})")
    if secureboot and not PLATFORMS[platform]:
        raise SchematicError(f"platform: {platform} has no SecureBoot installer")
    repo = f"{platform}-installer" if (major, minor) >= (1, 10) else "installer"
    if secureboot:
        repo += "-secureboot"
    return f"{host}/{repo}/{schematic_id}:{tag}"
