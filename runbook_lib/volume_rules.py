"""Talos's own validation of ``VolumeConfig``/``RawVolumeConfig``/``UserVolumeConfig``, re-implemented.

Talos's JSON schema accepts documents its Go ``Validate`` methods reject (a 40-character
name, a missing selector, an invalid CEL expression, min above max), so the rendered
documents are checked here with Talos's rules and wording before they reach a node.
Source: talos ``pkg/machinery/config/types/block/{raw_volume_config,user_volume_config,volume_config}.go``
(v1.10-v1.12).
"""

from __future__ import annotations

import re

from .disk_selector import check_disk_selector
from .params import version_tuple
from .sizes import parse_size

_NAME_RE = re.compile(r"^[A-Za-z0-9-]+$")
MAX_USER_VOLUME_NAME = 34  # partition label limit (36) minus the "u-" prefix


def _size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        return None  # a percentage is relative to the disk; min/max cannot be compared offline
    return parse_size(value)  # type: ignore[arg-type]


def _provisioning(prov: dict, *, required: bool, where: str) -> list[str]:
    problems = []
    selector = (prov.get("diskSelector") or {}).get("match")
    if selector:
        problems += [f"{where}: disk selector is invalid: {p}" for p in check_disk_selector(selector)]
    elif required:
        problems.append(f"{where}: disk selector is required")
    try:
        lo, hi = _size(prov.get("minSize")), _size(prov.get("maxSize"))
    except ValueError as exc:
        return problems + [f"{where}: {exc}"]
    if lo is not None and hi is not None and lo > hi:
        problems.append(f"{where}: min size is greater than max size")
    if required and lo is None and hi is None:
        problems.append(f"{where}: min size or max size is required")
    return problems


def _name_problems(name: object, where: str) -> list[str]:
    if not name:
        return [f"{where}: name is required"]
    if not 1 <= len(str(name)) <= MAX_USER_VOLUME_NAME:
        return [f"{where}: name must be between 1 and {MAX_USER_VOLUME_NAME} characters long"]
    if not _NAME_RE.match(str(name)):
        return [f"{where}: name can only contain lowercase and uppercase ASCII letters, digits, and hyphens"]
    return []


def validate_documents(docs: list[dict], talos_version: str) -> list[str]:
    """Every problem Talos would report for ``docs`` on ``talos_version``, with the document named."""
    problems: list[str] = []
    version = version_tuple(talos_version)
    for doc in docs:
        kind, name = doc.get("kind"), doc.get("name")
        where = f"{kind} {name!r}"
        if kind == "VolumeConfig":
            allowed = ["EPHEMERAL", "IMAGECACHE"] if version < (1, 11, 0) else ["STATE", "EPHEMERAL", "IMAGECACHE"]
            if name not in allowed:
                problems.append(f"{where}: only {allowed} volumes are supported")
            problems += _provisioning(doc.get("provisioning") or {}, required=False, where=where)
        elif kind == "RawVolumeConfig":
            # raw_volume_config.go (v1.11+): the user-volume name rules, provisioning required, no filesystem
            if version < (1, 11, 0):
                problems.append(f"{where}: RawVolumeConfig needs Talos v1.11 or later (running {talos_version})")
            problems += _name_problems(name, where)
            problems += _provisioning(doc.get("provisioning") or {}, required=True, where=where)
        elif kind == "UserVolumeConfig":
            if version < (1, 10, 0):
                problems.append(f"{where}: UserVolumeConfig needs Talos v1.10 or later (running {talos_version})")
            if not name:
                problems.append(f"{where}: name is required")
            elif not 1 <= len(name) <= MAX_USER_VOLUME_NAME:
                problems.append(f"{where}: name must be between 1 and {MAX_USER_VOLUME_NAME} characters long")
            elif not _NAME_RE.match(name):
                problems.append(f"{where}: name can only contain lowercase and uppercase ASCII letters, digits, and hyphens")
            vtype = doc.get("volumeType", "partition")
            if "volumeType" in doc and version < (1, 12, 0):
                problems.append(f"{where}: volumeType needs Talos v1.12 or later")
            if vtype != "partition":
                problems.append(f"{where}: the runbooks need volumeType partition, not {vtype!r}")
            problems += _provisioning(doc.get("provisioning") or {}, required=True, where=where)
            fs = (doc.get("filesystem") or {}).get("type", "xfs")
            if fs not in ("xfs", "ext4"):
                problems.append(f"{where}: unsupported filesystem type: {fs}")
        else:
            problems.append(f"{where}: unexpected document kind")
    return problems
