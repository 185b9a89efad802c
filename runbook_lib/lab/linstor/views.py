"""LINSTOR REST list endpoints beyond the core objects: volume groups, error reports, physical storage.

- ``GET /v1/resource-groups/{rg}/volume-groups``: the default group has none; other groups have
  volume 0 (linstor-csi creates it with its resource groups), which ``linstor rg list`` needs.
- ``GET /v1/error-reports[/{id}][?node=..&since=..&to=..&withContent=..]``: the reports the model wrote
  when a satellite failed (their ids are the ``error_report_ids`` of the failed call).
- ``GET /v1/physical-storage``: devices a satellite could turn into a pool (no signature, not
  mounted, in no pool), grouped by size and rotational like ``linstor physical-storage list``.
Shapes follow ``VolumeGroup``, ``ErrorReport`` and ``PhysicalStorage`` in rest_v1_openapi.yaml.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from .constants import CONTROLLER_VERSION, DEFAULT_RG


def _page(items: list, query: dict[str, list[str]]) -> list:
    offset = int((query.get("offset") or ["0"])[-1] or 0)
    limit = int((query.get("limit") or ["0"])[-1] or 0)
    items = items[offset:]
    return items[:limit] if limit > 0 else items


def volume_groups(ctl: Any, rg: Any) -> list[dict]:
    if rg.name == DEFAULT_RG:
        return []
    return [{"volume_number": 0, "props": {}, "flags": [], "uuid": str(uuid.uuid5(uuid.UUID(rg.uuid), "vg/0"))}]


def error_reports(ctl: Any, query: dict[str, list[str]]) -> list[dict]:
    node = (query.get("node") or [""])[-1].lower()
    since = int((query.get("since") or ["0"])[-1] or 0)
    to = int((query.get("to") or ["0"])[-1] or 0)
    with_content = (query.get("withContent") or ["false"])[-1].lower() == "true"
    out = []
    for r in ctl.reports:
        if (node and r["node"].lower() != node) or r["time_ms"] < since or (to and r["time_ms"] > to):
            continue
        item = {"node_name": r["node"], "error_time": r["time_ms"], "filename": f"ErrorReport-{r['id']}.log",
                "module": "SATELLITE" if r["node"] != "Controller" else "CONTROLLER",
                "version": CONTROLLER_VERSION["version"], "exception": "StorageException",
                "exception_message": r["message"]}
        if with_content:
            item["text"] = (f"ERROR REPORT {r['id']}\n\nApplication:                        LINBIT\u00ae LINSTOR\n"
                            f"Module:                             {item['module'].title()}\n"
                            f"Version:                            {CONTROLLER_VERSION['version']}\n\n"
                            f"Reported error:\n===============\n\nCategory:                           LinStorException\n"
                            f"Class name:                         StorageException\n"
                            f"Error message:                      {r['message']}\n\n{r.get('details') or ''}\n")
        out.append(item)
    return _page(out, query)


def physical_storage(ctl: Any, query: dict[str, list[str]]) -> list[dict]:
    groups: dict[tuple[int, bool], dict[str, list[dict]]] = {}
    for name, node in sorted(ctl.nodes.items()):
        if not node.online or not node.facts:
            continue
        used = {d for sp in ctl.pools.get(name, {}).values() for d in sp.devices}
        for path, dev in sorted((node.facts.get("devices") or {}).items()):
            if dev.get("signature") or dev.get("mounted_at") or path in used:
                continue
            rotational = not re.search(r"/(nvme|vd|xvd)", path)
            serial = uuid.uuid5(uuid.UUID(node.uuid), path).hex[:20].upper()
            groups.setdefault((int(dev["size_bytes"]), rotational), {}).setdefault(name, []).append(
                {"device": path, "model": "QEMU NVMe Ctrl" if "nvme" in path else "QEMU HARDDISK", "serial": serial,
                 "wwn": ""})
    items = [{"size": size, "rotational": rot, "nodes": nodes} for (size, rot), nodes in sorted(groups.items())]
    return _page(items, query)


def route(ctl: Any, method: str, path: str, query: dict[str, list[str]], rg_of) -> tuple[int, Any] | None:
    """These endpoints' answers, or None for any other path."""
    if method != "GET":
        return None
    m = re.fullmatch(r"/v1/resource-groups/([^/]+)/volume-groups", path)
    if m:
        return 200, _page(volume_groups(ctl, rg_of(ctl, m.group(1))), query)
    m = re.fullmatch(r"/v1/resource-groups/([^/]+)/volume-groups/(\d+)", path)
    if m:
        vgs = [v for v in volume_groups(ctl, rg_of(ctl, m.group(1))) if v["volume_number"] == int(m.group(2))]
        return (200, vgs[0]) if vgs else (404, [])
    if path == "/v1/error-reports":
        return 200, error_reports(ctl, query)
    m = re.fullmatch(r"/v1/error-reports/([^/]+)", path)
    if m:  # python-linstor error_report_list(ids=...): the reports whose id starts with the given one
        return 200, [r for r in error_reports(ctl, query) if r["filename"].startswith("ErrorReport-" + m.group(1))]
    if path == "/v1/physical-storage":
        return 200, physical_storage(ctl, query)
    return None
