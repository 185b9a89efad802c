"""The ``linstor`` command in the lab's LINSTOR controller container, answered from the lab's model.

Output is the LINSTOR client's (LINBIT/linstor-client): its table layout (``linstor_client/table.py``:
``╭─╮`` frame, ``┊`` pipes, ``╞═╡`` under the header, rows sorted by the first column, ``_`` in a header
shown as a space), the columns of ``node list`` and ``storage-pool list``, and python-linstor's
``SizeCalc.approximate_size_string`` for capacities. Without a terminal the client prints no colors;
UTF-8 frames assume the container's UTF-8 locale. Other subcommands exit 2 with the client's usage error
wording for an unknown command.
"""

from __future__ import annotations

import re
from typing import Any

USAGE = "usage: linstor [-h] [--version] [--no-color] [--no-utf8] [--machine-readable] [--controllers CONTROLLERS]\n"


def size_string(size_kib: int) -> str:
    """python-linstor SizeCalc.approximate_size_string (C locale: no digit grouping)."""
    units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
    index, counter, magnitude = 0, 1, 1 << 10
    while counter < len(units):
        if size_kib >= magnitude:
            index = counter
        else:
            break
        magnitude <<= 10
        counter += 1
    magnitude >>= 10
    if size_kib % magnitude:
        return f"{size_kib / magnitude:3.2f} {units[index]}"
    return f"{size_kib // magnitude} {units[index]}"


def _natural(value: Any) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", str(value))]


def table(headers: list[tuple[str, str]], rows: list[list[Any]]) -> str:
    """The client's table: ``headers`` are (name, text alignment ``<`` or ``>``)."""
    rows = sorted(rows, key=lambda r: _natural(r[0]))
    cells = [[h.replace("_", " ") for h, _ in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    inner = sum(widths) + 3 * len(headers) - 1

    def line(row: list[str]) -> str:
        return "┊" + "".join(f" {c:{headers[i][1]}{widths[i]}} ┊" for i, c in enumerate(row))

    out = ["╭" + "─" * inner + "╮", line(cells[0]), "╞" + "═" * inner + "╡"]
    out += [line(r) for r in cells[1:]]
    out.append("╰" + "─" * inner + "╯")
    return "\n".join(out) + "\n"


def node_list(ctl: Any) -> str:
    rows = []
    for node in ctl.nodes.values():
        j = ctl.node_json(node)
        active = next((n for n in j["net_interfaces"] if n.get("is_active") and n.get("satellite_port")), None)
        addr = f"{active['address']}:{active['satellite_port']} ({active['satellite_encryption_type']})" if active else ""
        state = "EVICTED" if "EVICTED" in j["flags"] else "DELETE" if "DELETE" in j["flags"] else (
            "Online" if j["connection_status"] == "ONLINE" else "OFFLINE")
        rows.append([j["name"], j["type"], addr, state])
    return table([("Node", "<"), ("NodeType", "<"), ("Addresses", "<"), ("State", "<")], rows)


def storage_pool_list(ctl: Any) -> str:
    rows = []
    for pools in ctl.pools.values():
        for pool in pools.values():
            j = ctl.pool_json(pool)
            free = total = ""
            if j["provider_kind"] != "DISKLESS" and "free_capacity" in j:
                free, total = size_string(j["free_capacity"]), size_string(j["total_capacity"])
            reports = j.get("reports") or []
            state = "Error" if any(r["ret_code"] < 0 for r in reports) else "Warning" if reports else "Ok"
            shared = j["free_space_mgr_name"] if ":" not in j["free_space_mgr_name"] else ""
            rows.append([j["storage_pool_name"], j["node_name"], j["provider_kind"],
                         (j.get("props") or {}).get("StorDriver/StorPoolName", ""), free, total,
                         j["supports_snapshots"], state, shared])
    headers = [("StoragePool", "<"), ("Node", "<"), ("Driver", "<"), ("PoolName", "<"), ("FreeCapacity", ">"),
               ("TotalCapacity", ">"), ("CanSnapshots", "<"), ("State", "<"), ("SharedName", "<")]
    return table(headers, rows)


COMMANDS = {("node", "list"): node_list, ("n", "l"): node_list, ("node", "l"): node_list, ("n", "list"): node_list,
            ("storage-pool", "list"): storage_pool_list, ("sp", "l"): storage_pool_list,
            ("sp", "list"): storage_pool_list, ("storage-pool", "l"): storage_pool_list}


def run(ctl: Any, args: list[str]) -> tuple[int, str, str]:
    """``linstor ARGS``: (exit code, stdout, stderr)."""
    words = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    command = COMMANDS.get(tuple(words[:2]))
    if command is None or flags not in ([], ["--no-color"]):
        shown = " ".join(args) or "(none)"
        return 2, "", USAGE + f"linstor: error: the lab's linstor answers `node list` and `storage-pool list`, not: {shown}\n"
    return 0, command(ctl), ""
