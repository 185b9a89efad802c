"""The ``linstor`` command in the lab's LINSTOR controller container, answered from the lab's model.

The list commands print what LINBIT/linstor-client (v1.27) prints for the REST answers of the lab's
controller: the columns, cells and colors of ``commands/{node,storpool,rsc,vlm,rsc_dfn,rsc_grp,snapshot,
error_report}_cmds.py`` and the layout of ``table.py`` (:mod:`.cli_table`). In the piraeus-server image (Debian, no LANG set)
``locale.getdefaultlocale()`` finds no UTF-8, and ``--no-utf8`` defaults to on without a terminal, so
the frames are always ASCII (``+--+``, ``|``, ``|==|``); colors (ANSI) are on unless ``--no-color``.
Rows are natsorted by the first column where the client groups by it (not for ``volume``, ``snapshot``
and ``error-reports`` lists); multi-line cells get ``|---|`` separators between rows. Sizes are
python-linstor's ``SizeCalc.approximate_size_string``; times are UTC, the container's zone.
``-m`` prints the REST answers as JSON, as the client's machine-readable v1 output does.
Other subcommands exit 2 with the client's usage error wording.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import views as linstor_views
from .cli_table import DARKBLUE, DARKGREEN, GREEN, RED, YELLOW, Cell, Table, size_string

USAGE = "usage: linstor [-h] [--version] [--no-color] [--no-utf8] [--machine-readable] [--controllers CONTROLLERS]\n"


def _when(ms: int | None) -> str:
    return str(datetime.fromtimestamp(ms / 1000, UTC))[:19] if ms else ""


def node_list(ctl: Any, colors: bool = True) -> str:
    """node_cmds.py show_nodes."""
    states = {"OFFLINE": ("OFFLINE", RED), "CONNECTED": ("Connected", YELLOW), "ONLINE": ("Online", GREEN)}
    t = Table(colors)
    for name in ("Node", "NodeType", "Addresses", "State"):
        t.add_column(name)
    t.group = True
    for node in ctl.nodes.values():
        j = ctl.node_json(node)
        active = next((n for n in j["net_interfaces"] if n.get("is_active") and n.get("satellite_port")), None)
        addr = f"{active['address']}:{active['satellite_port']} ({active['satellite_encryption_type']})" if active else ""
        if "EVICTED" in j["flags"]:
            state = ("EVICTED", RED)
        elif "DELETE" in j["flags"]:
            state = ("DELETE", RED)
        elif "EVACUATE" in j["flags"]:
            state = ("EVACUATE", YELLOW)
        else:
            state = states.get(j["connection_status"], ("Unknown", YELLOW))
        t.add_row([j["name"], j["type"], addr, t.color_cell(*state)])
    return t.show()


def storage_pool_list(ctl: Any, colors: bool = True) -> str:
    """storpool_cmds.py show."""
    t = Table(colors)
    for name, just in (("StoragePool", "<"), ("Node", "<"), ("Driver", "<"), ("PoolName", "<"), ("FreeCapacity", ">"),
                       ("TotalCapacity", ">"), ("CanSnapshots", "<"), ("State", "<"), ("SharedName", "<")):
        t.add_column(name, just=just)
    t.group = True
    for node in sorted(ctl.pools):
        for _name, pool in sorted(ctl.pools[node].items()):
            j = ctl.pool_json(pool)
            free = total = ""
            if j["provider_kind"] != "DISKLESS" and "free_capacity" in j:
                free, total = size_string(j["free_capacity"]), size_string(j["total_capacity"])
            reports = j.get("reports") or []
            state = ("Error", RED) if any(r["ret_code"] < 0 for r in reports) else ("Warning", YELLOW) if reports \
                else ("Ok", GREEN)
            shared = j["free_space_mgr_name"] if ":" not in j["free_space_mgr_name"] else ""
            t.add_row([j["storage_pool_name"], j["node_name"], j["provider_kind"],
                       (j.get("props") or {}).get("StorDriver/StorPoolName", ""), free, total,
                       str(j["supports_snapshots"]), t.color_cell(*state), shared])
    return t.show()


def _resources(ctl: Any) -> list[dict]:
    """``GET /v1/view/resources`` as the client reads it (every replica, with volumes)."""
    return [ctl.resource_json(rd, rep, with_volumes=True)
            for _n, rd in sorted(ctl.rds.items()) for _node, rep in sorted(rd.replicas.items())]


def volume_state_cell(vlm: dict, rsc_flags: list[str]) -> tuple[str, str | None]:
    """vlm_cmds.py VolumeCommands.volume_state_cell."""
    prefix = "Resizing, " if "RESIZE" in (vlm.get("flags") or []) else ""
    layers = vlm.get("layer_data_list") or []
    disk = (vlm.get("state") or {}).get("disk_state")
    if not layers or layers[0].get("type") != "DRBD":
        return prefix + "Created", None
    if not disk:
        return prefix + "Unknown", YELLOW
    if disk == "DUnknown":
        return prefix + "Unknown", YELLOW
    if disk == "Diskless":
        if "DISKLESS" not in rsc_flags:
            return prefix + disk, RED
        if "TIE_BREAKER" in rsc_flags:
            return "TieBreaker", None
        return prefix + disk, None
    if disk in ("Inconsistent", "Failed", "To: Creating", "To: Attachable", "To: Attaching"):
        return prefix + disk, RED
    if disk in ("UpToDate", "Created", "Attached"):
        return prefix + disk, None
    return prefix + disk, YELLOW


def _layer_stack(layer: dict) -> list[str]:
    out = [layer["type"]]
    for child in layer.get("children") or []:
        out += _layer_stack(child)
    return out


def _in_use(t: Table, rsc: dict, in_use_count: dict[str, int]) -> Cell:
    state = rsc.get("state")
    if state is None or state.get("in_use") is None:
        return ""
    if state["in_use"]:
        return t.color_cell("InUse", YELLOW if in_use_count.get(rsc["name"], 0) > 1 else GREEN)
    return "Unused"


def _in_use_counts(rscs: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rscs:
        if (r.get("state") or {}).get("in_use"):
            counts[r["name"]] = counts.get(r["name"], 0) + 1
    return counts


def resource_list(ctl: Any, colors: bool = True) -> str:
    """rsc_cmds.py ResourceCommands.show."""
    t = Table(colors)
    for name, color, just in (("ResourceName", None, "<"), ("Node", None, "<"), ("Layers", None, "<"),
                              ("Usage", None, "<"), ("Conns", DARKGREEN, "<"), ("State", DARKGREEN, ">"),
                              ("CreatedOn", None, "<")):
        t.add_column(name, color, just)
    t.group = True
    rscs = _resources(ctl)
    counts = _in_use_counts(rscs)
    for rsc in rscs:
        flags = rsc.get("flags") or []
        layers = ",".join(dict.fromkeys(_layer_stack(rsc["layer_object"])))
        state, color = "Unknown", YELLOW
        if "DELETE" in flags or "DRBD_DELETE" in flags:
            state, color = "DELETING", RED
        elif "INACTIVE" in flags:
            state = "INACTIVE"
        else:  # python-linstor gives every resource a ResourceState (always truthy), offline ones too
            for vlm in rsc.get("volumes") or []:
                state, color = volume_state_cell(vlm, flags)
                if "EVACUATE" in flags:
                    state += ", Evacuating"
                if color is not None:
                    break
        conns, failed_entries = "", []
        if state != "Unknown":
            failed: dict[str, list[str]] = {}
            drbd = rsc["layer_object"].get("drbd") if rsc["layer_object"]["type"] == "DRBD" else None
            for peer, conn in ((drbd or {}).get("connections") or {}).items():
                if not conn.get("connected"):
                    failed.setdefault(conn.get("message", ""), []).append(peer)
            failed_entries = [f"{msg}({','.join(peers)})" for msg, peers in failed.items()]
            conns = t.color_cell(",".join(failed_entries), RED) if failed_entries else "Ok"
        t.add_row([rsc["name"], rsc["node_name"], layers, _in_use(t, rsc, counts), conns,
                   t.color_cell(state, RED if failed_entries else color), _when(rsc.get("create_timestamp"))])
    return t.show()


def _repl_states(t: Table, states: dict) -> Cell:
    """vlm_cmds.py format_repl_states."""
    if not states:
        return ""
    if all(s.get("replication_state") == "Established" for s in states.values()):
        return t.color_cell(f"Established({len(states)})", GREEN)
    lines = []
    for peer, s in states.items():
        rs, pct = s.get("replication_state"), s.get("done_percentage")
        shown = "?" if pct is None else f"{pct:.2f}%"
        lines.append(f"{peer}: {rs}({shown})" if rs in ("SyncTarget", "PausedSyncS", "PausedSyncT", "VerifyT")
                     else f"{peer}: {rs}")
    return t.color_cell("\n".join(lines), YELLOW)


def volume_list(ctl: Any, colors: bool = True) -> str:
    """vlm_cmds.py VolumeCommands.show_volumes (``volume list`` and ``resource list-volumes``)."""
    t = Table(colors)
    for name, color, just in (("Resource", None, "<"), ("Node", None, "<"), ("StoragePool", None, "<"),
                              ("VolNr", None, ">"), ("MinorNr", None, ">"), ("DeviceName", None, "<"),
                              ("Allocated", None, ">"), ("InUse", None, "<"), ("State", DARKGREEN, ">"),
                              ("Repl", None, "<")):
        t.add_column(name, color, just)
    rscs = _resources(ctl)
    counts = _in_use_counts(rscs)
    for rsc in rscs:
        flags = rsc.get("flags") or []
        if "INACTIVE" in flags and "EVICTED" not in flags:
            continue
        usage = _in_use(t, rsc, counts)
        drbd = rsc["layer_object"].get("drbd") if rsc["layer_object"]["type"] == "DRBD" else None
        conn_failed = any(not c.get("connected") for c in ((drbd or {}).get("connections") or {}).values())
        for vlm in rsc.get("volumes") or []:
            text, color = ("INACTIVE", YELLOW) if "INACTIVE" in flags else volume_state_cell(vlm, flags)
            if conn_failed:
                color = RED
            drbd_vlm = next((ld.get("data") for ld in vlm.get("layer_data_list") or [] if ld.get("type") == "DRBD"), None)
            minor = str(drbd_vlm["drbd_volume_definition"]["minor_number"]) if drbd_vlm else ""
            alloc = vlm.get("allocated_size_kib")
            t.add_row([rsc["name"], rsc["node_name"], vlm.get("storage_pool_name"), str(vlm["volume_number"]), minor,
                       vlm.get("device_path"), size_string(alloc) if alloc else "", usage, t.color_cell(text, color),
                       _repl_states(t, (vlm.get("state") or {}).get("replication_states") or {})])
    return t.show()


def resource_definition_list(ctl: Any, colors: bool = True) -> str:
    """rsc_dfn_cmds.py ResourceDefinitionCommands.show."""
    t = Table(colors)
    for name in ("ResourceName", "ResourceGroup", "Layers", "State"):
        t.add_column(name)
    t.group = True
    for _name, rd in sorted(ctl.rds.items()):
        j = ctl.rd_json(rd, with_volume_definitions=False)
        flags = j.get("flags") or []
        if "DELETE" in flags or "FAILED" in flags:
            state = t.color_cell("DELETE", RED)
        elif "CLONING" in flags or "RESTORE_TARGET" in flags:
            state = t.color_cell("CLONING", YELLOW)
        else:
            state = t.color_cell("ok", DARKGREEN)
        t.add_row([j["name"], j["resource_group_name"], ",".join(ld["type"] for ld in j["layer_data"]), state])
    return t.show()


def select_filter_text(sf: dict) -> str:
    """python-linstor responses.SelectFilter.__str__ (lists as Python prints them)."""
    fields = []
    if sf.get("place_count"):
        fields.append(f"PlaceCount: {sf['place_count']}")
    pools = sf.get("storage_pool_list", [sf["storage_pool"]] if sf.get("storage_pool") else [])
    if sf.get("storage_pool") or pools:
        fields.append("StoragePool(s): " + ", ".join(pools))
    if "diskless_on_remaining" in sf:
        fields.append(f"DisklessOnRemaining: {sf['diskless_on_remaining']}")
    for key, label in (("not_place_with_rsc", "NotPlaceWithRsc"), ("not_place_with_rsc_regex", "NotPlaceWithRscRegex"),
                       ("replicas_on_same", "ReplicasOnSame"), ("replicas_on_different", "ReplicasOnDifferent"),
                       ("x_replicas_on_different_map", "XReplicasOnDifferent"), ("layer_stack", "LayerStack"),
                       ("provider_list", "ProviderList")):
        if sf.get(key):
            fields.append(f"{label}: {sf[key]}")
    return "\n".join(fields)


def resource_group_list(ctl: Any, colors: bool = True) -> str:
    """rsc_grp_cmds.py ResourceGroupCommands.show (volume groups from ``/v1/resource-groups/{rg}/volume-groups``)."""
    t = Table(colors)
    for name in ("ResourceGroup", "SelectFilter", "VlmNrs", "Description"):
        t.add_column(name)
    t.group = True
    for _name, rg in sorted(ctl.groups.items()):
        j = ctl.rg_json(rg)
        vgs = linstor_views.volume_groups(ctl, rg)
        t.add_row([j["name"], select_filter_text(j.get("select_filter") or {}),
                   ",".join(str(v["volume_number"]) for v in vgs), j.get("description") or ""])
    return t.show()


def snapshot_list(ctl: Any, colors: bool = True) -> str:
    """snapshot_cmds.py SnapshotCommands.show."""
    t = Table(colors)
    for name, color in (("ResourceName", None), ("SnapshotName", None), ("NodeNames", None), ("Volumes", None),
                        ("CreatedOn", None), ("State", DARKGREEN)):
        t.add_column(name, color)
    for rd in sorted(ctl.snapshots):
        for _n, snap in sorted(ctl.snapshots[rd].items()):
            j = ctl.snapshot_json(snap)
            flags = j.get("flags") or []
            if "DELETE" in flags:
                state = t.color_cell("DELETING", RED)
            elif "FAILED_DEPLOYMENT" in flags:
                state = t.color_cell("Failed", RED)
            elif "FAILED_DISCONNECT" in flags:
                state = t.color_cell("Satellite disconnected", RED)
            elif "SUCCESSFUL" in flags:
                sub = next((v["state"] for s in j["snapshots"] for v in s.get("snapshot_volumes") or []
                            if v.get("state") and v["state"] != "completed"), "")
                state = t.color_cell("Successful" + (f" ({sub})" if sub else ""), DARKGREEN)
            else:
                state = t.color_cell("Incomplete", DARKBLUE)
            first = (j.get("snapshots") or [{}])[0]
            t.add_row([j["resource_name"], j["name"], ", ".join(j["nodes"]),
                       ", ".join(f"{v['volume_number']}: {size_string(v['size_kib'])}" for v in j["volume_definitions"]),
                       _when(first.get("create_timestamp")), state])
    return t.show()


def error_report_list(ctl: Any, colors: bool = True) -> str:
    """error_report_cmds.py show_error_report_list (``GET /v1/error-reports``)."""
    t = Table(colors)
    for name in ("Id", "Datetime", "Node", "Exception"):
        t.add_column(name)
    for e in linstor_views.error_reports(ctl, {}):
        msg = e.get("exception_message") or ""
        msg = msg if len(msg) < 60 else msg[:57] + "..."
        module = e.get("module") or ""
        t.add_row([e["filename"][len("ErrorReport-"):-len(".log")], str(datetime.fromtimestamp(e["error_time"] / 1000, UTC))[:19],
                   (module[0] + "|" if module else "") + e.get("node_name", ""),
                   e.get("exception", "") + (": " + msg if msg else "")])
    return t.show()


def physical_storage_list(ctl: Any, colors: bool = True) -> str:
    """physical_storage_cmds.py show_physical_storage (``GET /v1/physical-storage``: sizes in bytes)."""
    t = Table(colors)
    for name in ("Size", "Rotational", "Nodes"):
        t.add_column(name)
    for group in linstor_views.physical_storage(ctl, {}):
        nodes = []
        for node, devices in group["nodes"].items():
            shown = [d["device"] + (f"({','.join(x for x in (d.get('serial'), d.get('wwn')) if x)})"
                                    if d.get("serial") or d.get("wwn") else "") for d in devices]
            nodes.append(f"{node}[{','.join(shown)}]")
        t.add_row([str(group["size"]), str(group["rotational"]), "\n".join(nodes)])
    return t.show()


def _machine_readable(ctl: Any, renderer: Callable[[Any, bool], str]) -> str:
    """``-m``: commands.py _print_machine_readable (``--output-version v1``): the REST answers as python-linstor
    wraps them (one response object holding the list; error reports one object each), ``json.dumps(indent=2)``."""
    answers: dict[Callable[[Any, bool], str], Callable[[], Any]] = {
        node_list: lambda: [[ctl.node_json(n) for _k, n in sorted(ctl.nodes.items())]],
        storage_pool_list: lambda: [[ctl.pool_json(sp) for node in sorted(ctl.pools)
                                     for _k, sp in sorted(ctl.pools[node].items())]],
        resource_list: lambda: [_resources(ctl)],
        volume_list: lambda: [_resources(ctl)],
        resource_definition_list: lambda: [[ctl.rd_json(rd, with_volume_definitions=False)
                                            for _k, rd in sorted(ctl.rds.items())]],
        resource_group_list: lambda: [[ctl.rg_json(rg) for _k, rg in sorted(ctl.groups.items())]],
        snapshot_list: lambda: [[ctl.snapshot_json(sn) for rd in sorted(ctl.snapshots)
                                 for _k, sn in sorted(ctl.snapshots[rd].items())]],
        error_report_list: lambda: linstor_views.error_reports(ctl, {}),
        physical_storage_list: lambda: [linstor_views.physical_storage(ctl, {})],
    }
    return json.dumps(answers[renderer](), indent=2) + "\n"


LIST = ("list", "l")
#: (object words, list words, renderer): the client's command names and their aliases
COMMANDS: tuple[tuple[tuple[str, ...], tuple[str, ...], Callable[[Any, bool], str]], ...] = (
    (("node", "n"), LIST, node_list),
    (("storage-pool", "sp"), LIST, storage_pool_list),
    (("resource", "r"), LIST, resource_list),
    (("resource", "r"), ("list-volumes", "lv"), volume_list),
    (("volume", "v"), LIST, volume_list),
    (("resource-definition", "rd"), LIST, resource_definition_list),
    (("resource-group", "rg"), LIST, resource_group_list),
    (("snapshot", "s"), LIST, snapshot_list),
    (("error-reports", "err"), LIST, error_report_list),
    (("physical-storage", "ps"), LIST, physical_storage_list),
)
GLOBAL_FLAGS = {"--no-color", "--no-utf8", "-m", "--machine-readable", "--output-version=v1"}
LIST_FLAGS = {"-p", "--pastable"}


def run(ctl: Any, args: list[str]) -> tuple[int, str, str]:
    """``linstor ARGS``: (exit code, stdout, stderr)."""
    if "--output-version" in args:  # the one machine-readable format the lab writes
        at = args.index("--output-version")
        if args[at + 1:at + 2] == ["v1"]:
            args = args[:at] + args[at + 2:]
    words = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    command = next((fn for objs, verbs, fn in COMMANDS if len(words) == 2 and words[0] in objs and words[1] in verbs), None)
    unknown = [f for f in flags if f not in GLOBAL_FLAGS | LIST_FLAGS]
    if command is None or unknown:
        shown = " ".join(args) or "(none)"
        known = ", ".join(f"{objs[0]} {verbs[0]}" for objs, verbs, _fn in COMMANDS)
        return 2, "", USAGE + f"linstor: error: the lab's linstor answers {known}; not: {shown}\n"
    if {"-m", "--machine-readable"} & set(flags):
        return 0, _machine_readable(ctl, command), ""
    pastable = bool(set(flags) & LIST_FLAGS)  # table.py: pastable turns colors (and UTF-8) off
    return 0, command(ctl, "--no-color" not in flags and not pastable), ""
