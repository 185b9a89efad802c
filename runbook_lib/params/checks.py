"""Cross-field rules of the parameter file: duplicate nodes, approvals naming unknown nodes, lab faults, targets."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from ..approvals import CLASS_ACTIONS
from ..fault_kinds import COUNTED_FAULT_KINDS, FAULT_KINDS, PAIR_FAULT_KINDS
from ..schematic_ids import PLATFORMS
from ..sizes import parse_size
from .confirm import ACTIONS, confirm_list
from .nodes import DEFAULT_NODES
from .problems import Loc, Problem, loc_path


def cross_field_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Checks across fields, written to survive raw, partly invalid input.

    They run on the raw mapping when field validation failed too, so the operator
    sees a duplicate node name and a bad address in the same pass. Anything
    that is not the expected shape is skipped (the field errors cover it).
    """
    nodes = data.get("nodes", list(DEFAULT_NODES))
    names = _node_names(nodes)
    problems: list[Problem] = []
    problems += _node_problems(nodes)
    problems += _confirm_problems(data.get("confirm"), names, _bench_classes(data.get("bench")))
    problems += _storage_problems(data.get("storage"))
    problems += _lab_problems(data.get("lab"), nodes, names)
    problems += _duplicates(data.get("extensions"), ("extensions",), "extension")
    problems += _platform_problems(data.get("talos_platform", "metal"), data.get("secureboot", False))
    problems += _failover_problems(data.get("failover"), data.get("target", "lab"), names)
    problems += _compute_only_problems(data.get("failover"), nodes)
    problems += _real_cluster_problems(data)
    return problems


def _platform_problems(platform: Any, secureboot: Any) -> list[Problem]:
    """The factory builds SecureBoot installers only for the platforms Talos marks SecureBootSupported."""
    if secureboot is True and isinstance(platform, str) and PLATFORMS.get(platform) is False:
        with_sb = ", ".join(p for p, sb in PLATFORMS.items() if sb)
        return [(("secureboot",), f"the {platform} platform has no SecureBoot installer (only {with_sb})")]
    return []


def _real_cluster_problems(data: Mapping[str, Any]) -> list[Problem]:
    """A real cluster is reached through its own credentials; without them talosctl/kubectl guess a default."""
    if data.get("target") != "talos":
        return []
    return [((key,), f"required with target talos: the path to this cluster's {key} (for example {example})")
            for key, example in (("talosconfig", "~/.talos/config"), ("kubeconfig", "~/.kube/config"))
            if data.get(key) is None]


def _failover_problems(failover: Any, target: Any, names: set[str] | None) -> list[Problem]:
    if not isinstance(failover, Mapping):
        return []
    problems: list[Problem] = []
    if target == "talos" and failover.get("fault") in ("node-down", "isolate"):
        problems.append((("failover", "fault"), f"{failover['fault']!r} is a lab fault; against a real cluster use reboot or shutdown"))
    node = failover.get("node")
    if isinstance(node, str) and names is not None and node not in names:
        problems.append((("failover", "node"), _unknown_node(node, names)))
    return problems


def _compute_only_problems(failover: Any, nodes: Any) -> list[Problem]:
    """A compute-only node (``storage: false``) holds no replica and is never faulted."""
    compute = {item.get("name") for _, item in _items(nodes) if item.get("storage") is False}
    node = failover.get("node") if isinstance(failover, Mapping) else None
    if isinstance(node, str) and node in compute:
        return [(("failover", "node"), f"{node} has storage: false: it holds no replica and the runbooks never "
                                       "fault it; name a storage node (or null: the writer's node)")]
    return []


def _items(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """Index and entry of each mapping in a list (anything else yields nothing)."""
    if not isinstance(value, list | tuple):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def _node_names(nodes: Any) -> set[str] | None:
    """Names of the nodes, or None when ``nodes`` is too broken to check references against."""
    if not isinstance(nodes, list | tuple):
        return None
    return {item["name"] for _, item in _items(nodes) if isinstance(item.get("name"), str)}


def _node_problems(nodes: Any) -> list[Problem]:
    problems: list[Problem] = []
    entries = _items(nodes)
    problems += _duplicates(
        [item.get("name") for _, item in entries],
        None,
        "node name",
        [("nodes", i, "name") for i, _ in entries],
    )
    addresses = [_normalized_ip(item.get("address")) for _, item in entries]
    problems += _duplicates(addresses, None, "address", [("nodes", i, "address") for i, _ in entries])
    roles = [item.get("role") for _, item in entries]
    if entries and "controlplane" not in roles:
        problems.append(
            (("nodes",), "needs at least one controlplane node (etcd and the API server run there)")
        )
    if entries and all(item.get("storage") is False for _, item in entries):
        problems.append(
            (("nodes",), f"storage: false on every node ({', '.join(str(item.get('name')) for _, item in entries)}): "
                         "LINSTOR needs at least one storage node; set storage: true (the default) on the nodes "
                         "whose disks hold the data")
        )
    return problems


def _normalized_ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _duplicates(values: Any, base: Loc | None, what: str, locs: list[Loc] | None = None) -> list[Problem]:
    """One problem per repeated value, pointing back at its first occurrence."""
    if not isinstance(values, list | tuple):
        return []
    paths = locs if locs is not None else [(*(base or ()), i) for i in range(len(values))]
    first: dict[Any, Loc] = {}
    problems: list[Problem] = []
    for loc, value in zip(paths, values, strict=True):
        if not isinstance(value, str):
            continue
        if value in first:
            problems.append((loc, f"duplicate {what} {value!r} (already at {loc_path(first[value])})"))
        else:
            first[value] = loc
    return problems


def _bench_classes(bench: Any) -> set[str] | None:
    classes = bench.get("classes", ["local", "replicated"]) if isinstance(bench, Mapping) else ["local", "replicated"]
    return {c for c in classes if isinstance(c, str)} if isinstance(classes, list | tuple) else None


def _confirm_problems(confirm: Any, names: set[str] | None, classes: set[str] | None) -> list[Problem]:
    entries = confirm_list(confirm)
    if not isinstance(entries, list | tuple):
        return []
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        parts = entry.split() if isinstance(entry, str) else []
        if len(parts) != 2 or parts[0] not in ACTIONS:
            continue
        action, target = parts
        if action in CLASS_ACTIONS:
            if classes is not None and target not in classes:
                known = ", ".join(sorted(classes)) or "none"
                problems.append((("confirm", i), f"storage class {target!r} is not in bench.classes ({known})"))
        elif names is not None and target not in names:
            problems.append((("confirm", i), _unknown_node(target, names)))
    return problems


def _unknown_node(name: str, names: set[str]) -> str:
    known = ", ".join(sorted(names)) or "none"
    return f"node {name!r} is not in nodes (nodes: {known})"


def _storage_problems(storage: Any) -> list[Problem]:
    if not isinstance(storage, Mapping):
        return []
    min_bytes = _size_or_none(storage.get("min_size", "200GiB"))
    max_bytes = _size_or_none(storage.get("max_size"))
    if min_bytes is not None and max_bytes is not None and min_bytes > max_bytes:
        # Talos ProvisioningSpec.Validate wording.
        return [(("storage", "min_size"), "min size is greater than max size")]
    return []


def _size_or_none(value: Any) -> int | None:
    try:
        return parse_size(value) if value is not None else None
    except ValueError:
        return None


def _lab_problems(lab: Any, nodes: Any, names: set[str] | None) -> list[Problem]:
    if not isinstance(lab, Mapping):
        return []
    problems: list[Problem] = []
    count = lab.get("nodes")
    if (
        isinstance(count, int)
        and not isinstance(count, bool)
        and isinstance(nodes, list | tuple)
        and 1 <= count < len(nodes)
    ):
        problems.append(
            (("lab", "nodes"), f"the lab would simulate {count} node(s) but nodes lists {len(nodes)}")
        )
    for i, fault in _items(lab.get("faults")):
        problems += _fault_problems(("lab", "faults", i), fault, names)
    return problems


def _fault_problems(loc: Loc, fault: Mapping[str, Any], names: set[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    node, peer, kind = fault.get("node"), fault.get("peer"), fault.get("kind")
    for key, value in (("node", node), ("peer", peer)):
        if names is not None and isinstance(value, str) and value not in names:
            problems.append(((*loc, key), _unknown_node(value, names)))
    if kind in PAIR_FAULT_KINDS:
        if node is None or peer is None:
            problems.append((loc, f"a {kind} fault needs both node and peer"))
        elif node == peer:
            problems.append(((*loc, "peer"), "must differ from node"))
    elif peer is not None and kind in FAULT_KINDS:
        problems.append(((*loc, "peer"), f"only {' and '.join(PAIR_FAULT_KINDS)} faults take a peer"))
    if fault.get("count") is not None and kind in FAULT_KINDS and kind not in COUNTED_FAULT_KINDS:
        problems.append(((*loc, "count"), f"a {kind} fault holds until cleared; only {', '.join(COUNTED_FAULT_KINDS)} take a count"))
    if kind == "diskless-after-upgrade" and node is None:
        problems.append(((*loc, "node"), "a diskless-after-upgrade fault needs the node whose next upgrade it breaks"))
    return problems
