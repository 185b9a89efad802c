"""LINSTOR REST responses as pandas DataFrames.

Pure functions: they take the decoded JSON of ``/v1/view/storage-pools`` and
``/v1/view/resources`` and return one tidy table each, so notebooks can show, filter and
plot them and checks can assert on plain columns. Fetching the JSON is the job of a REST
client that lives next to these views and is kept separate from them.

Facts these views rely on (LINSTOR REST API 1.27, ``rest_v1_openapi.yaml``):

- ``StoragePool.free_capacity`` / ``total_capacity`` are **KiB**; we report bytes.
- Diskless pools report ``Long.MAX_VALUE`` KiB as their capacity; such a value means
  "no meaningful capacity" and never reaches a byte column.
- ``Resource.state`` (``in_use``) and ``Volume.state`` are absent while the node's satellite
  is offline, so the matching columns are missing values (``<NA>``), never ``False``.
- DRBD peers are ``layer_object.drbd.connections``: ``{peer: {connected, message}}``.
- Resource flags nest: a ``TIE_BREAKER`` is also ``DRBD_DISKLESS`` and ``DISKLESS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from . import kinds
from .errors import ParseError, RunbookError

_TOOL = "linstor"
_KIB = 1024
_LONG_MAX = 2**63 - 1  # Java Long.MAX_VALUE: LINSTOR's "unlimited/not applicable" capacity

STORAGE_POOL_COLUMNS: tuple[str, ...] = (
    "node",
    "pool",
    "provider_kind",
    "total_bytes",
    "free_bytes",
    "used_bytes",
    "supports_snapshots",
    "shared_space",
    "reports",
)

RESOURCE_COLUMNS: tuple[str, ...] = (
    "resource",
    "node",
    "volume_number",
    "storage_pool",
    "provider_kind",
    "device_path",
    "flags",
    "diskless",
    "tiebreaker",
    "state_reported",
    "in_use",
    "disk_state",
    "connected_peers",
    "disconnected_peers",
    "peer_states",
    "may_promote",
    "promotion_score",
    "allocated_bytes",
    "usable_bytes",
    "replication_states",
    "resync_done_percent",
)

_DISKLESS_FLAGS = frozenset({"DISKLESS", "DRBD_DISKLESS", "TIE_BREAKER"})

# --------------------------------------------------------------------------- field helpers
# Each helper names the exact field path in its ParseError, so a malformed response says
# where it broke instead of raising a bare KeyError/TypeError.


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParseError(_TOOL, f"{path}: expected an object, got {type(value).__name__}", field=path)
    return value


def _opt_obj(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = parent.get(key)
    return None if value is None else _obj(value, f"{path}.{key}")


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(_TOOL, f"{path}: expected a list, got {type(value).__name__}", field=path)
    return value


def _opt_list(parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = parent.get(key)
    return [] if value is None else _list(value, f"{path}.{key}")


def _req_str(parent: Mapping[str, Any], key: str, path: str) -> str:
    if key not in parent or parent[key] is None:
        raise ParseError(_TOOL, f"{path}.{key} missing", field=f"{path}.{key}")
    value = parent[key]
    if not isinstance(value, str) or not value:
        raise ParseError(_TOOL, f"{path}.{key}: expected a non-empty string, got {value!r}", field=f"{path}.{key}")
    return value


def _opt_str(parent: Mapping[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise ParseError(_TOOL, f"{path}.{key}: expected a string, got {value!r}", field=f"{path}.{key}")
    return value


def _opt_int(parent: Mapping[str, Any], key: str, path: str) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(_TOOL, f"{path}.{key}: expected an integer, got {value!r}", field=f"{path}.{key}")
    if not -_LONG_MAX - 1 <= value <= _LONG_MAX:  # LINSTOR's integers are Java longs
        raise ParseError(_TOOL, f"{path}.{key}: {value} does not fit a 64-bit integer", field=f"{path}.{key}")
    return value


def _opt_bool(parent: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, bool):
        raise ParseError(_TOOL, f"{path}.{key}: expected true or false, got {value!r}", field=f"{path}.{key}")
    return value


def _kib_to_bytes(parent: Mapping[str, Any], key: str, path: str) -> int | None:
    """KiB field → bytes; missing, negative or ``Long.MAX`` (no real capacity) → ``None``."""
    kib = _opt_int(parent, key, path)
    if kib is None or kib < 0 or kib >= _LONG_MAX:
        return None
    if kib > _LONG_MAX // _KIB:
        raise ParseError(_TOOL, f"{path}.{key}: {kib} KiB is more bytes than a 64-bit integer holds",
                         field=f"{path}.{key}")
    return kib * _KIB


def _str_list(parent: Mapping[str, Any], key: str, path: str) -> list[str]:
    items = _opt_list(parent, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ParseError(_TOOL, f"{path}.{key}[{i}]: expected a string, got {item!r}", field=f"{path}.{key}[{i}]")
    return items


# --------------------------------------------------------------------------- storage pools


def _supports_snapshots(pool: Mapping[str, Any], path: str) -> bool | None:
    """``static_traits.SupportsSnapshots`` ("true"/"false"), else the boolean ``supports_snapshots``.

    Both come from the provider kind (thick LVM cannot snapshot, ZFS and LVM_THIN can);
    the trait is the string form the CLI's CanSnapshots column shows.
    """
    traits = _opt_obj(pool, "static_traits", path)
    if traits is not None and traits.get("SupportsSnapshots") is not None:
        raw = traits["SupportsSnapshots"]
        if not isinstance(raw, str) or raw.lower() not in ("true", "false"):
            raise ParseError(
                _TOOL, f"{path}.static_traits.SupportsSnapshots: expected 'true' or 'false', got {raw!r}",
                field=f"{path}.static_traits.SupportsSnapshots",
            )
        return raw.lower() == "true"
    return _opt_bool(pool, "supports_snapshots", path)


def _pool_reports(pool: Mapping[str, Any], path: str) -> str | None:
    """Messages of the pool's ApiCallRc reports (an error state explains itself there)."""
    messages = []
    for i, report in enumerate(_opt_list(pool, "reports", path)):
        rpath = f"{path}.reports[{i}]"
        message = _opt_str(_obj(report, rpath), "message", rpath)
        if message:
            messages.append(message)
    return "; ".join(messages) if messages else None


def _pool_row(pool: Any, path: str) -> dict[str, Any] | None:
    pool = _obj(pool, path)
    name = _req_str(pool, "storage_pool_name", path)
    node = _req_str(pool, "node_name", path)
    kind = _req_str(pool, "provider_kind", path)
    if kind == "DISKLESS":
        return None
    total = _kib_to_bytes(pool, "total_capacity", path)
    free = _kib_to_bytes(pool, "free_capacity", path)
    return {
        "node": node,
        "pool": name,
        "provider_kind": kind,
        "total_bytes": total,
        "free_bytes": free,
        "used_bytes": total - free if total is not None and free is not None else None,
        "supports_snapshots": _supports_snapshots(pool, path),
        "shared_space": _opt_str(pool, "shared_space", path),
        "reports": _pool_reports(pool, path),
    }


def storage_pools_frame(pools: list[dict]) -> pd.DataFrame:
    """One row per diskful storage pool from ``GET /v1/view/storage-pools``.

    Columns (in this order): ``node, pool, provider_kind, total_bytes, free_bytes,
    used_bytes, supports_snapshots, shared_space, reports``. Capacities are bytes (LINSTOR
    sends KiB) in nullable ``Int64`` columns: a pool whose node is offline has no capacity
    and shows ``<NA>``. Diskless pools are left out, since they hold no data and report a
    meaningless ``Long.MAX`` capacity that would poison any sum. Sorted by node, pool.
    """
    rows = [row for i, pool in enumerate(_list(pools, "pools")) if (row := _pool_row(pool, f"pools[{i}]"))]
    frame = pd.DataFrame(rows, columns=list(STORAGE_POOL_COLUMNS))
    for column in ("total_bytes", "free_bytes", "used_bytes"):
        frame[column] = frame[column].astype("Int64")
    frame["supports_snapshots"] = frame["supports_snapshots"].astype("boolean")
    return frame.sort_values(["node", "pool"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- resources


def _find_drbd(layer: Mapping[str, Any] | None, path: str) -> tuple[Mapping[str, Any] | None, str]:
    """The DRBD layer data, wherever it sits in the layer tree (usually at the top)."""
    if layer is None:
        return None, path
    drbd = _opt_obj(layer, "drbd", path)
    if drbd is not None:
        return drbd, f"{path}.drbd"
    for i, child in enumerate(_opt_list(layer, "children", path)):
        found, found_path = _find_drbd(_obj(child, f"{path}.children[{i}]"), f"{path}.children[{i}]")
        if found is not None:
            return found, found_path
    return None, path


def _connections(drbd: Mapping[str, Any] | None, path: str) -> dict[str, tuple[bool, str]] | None:
    """``{peer: (connected, message)}`` from ``connections``; ``None`` when absent."""
    if drbd is None:
        return None
    conns = _opt_obj(drbd, "connections", path)
    if conns is None:
        return None
    peers: dict[str, tuple[bool, str]] = {}
    for peer, conn in conns.items():
        cpath = f"{path}.connections.{peer}"
        conn = _obj(conn, cpath)
        connected = _opt_bool(conn, "connected", cpath)
        if connected is None:
            raise ParseError(_TOOL, f"{cpath}.connected missing", field=f"{cpath}.connected")
        message = _opt_str(conn, "message", cpath) or ("Connected" if connected else "Unknown")
        peers[str(peer)] = (connected, message)
    return peers


def _peer_columns(drbd: Mapping[str, Any] | None, path: str, state_reported: bool) -> dict[str, Any]:
    """Connected/disconnected peer counts and ``{peer: message}``.

    Unknown (``<NA>``) when there is no DRBD layer, or when the satellite reported nothing
    (offline node) and no connections are listed; "no peers" is a real answer only from a
    node that reported its state.
    """
    peers = _connections(drbd, path)
    if peers is None and (drbd is None or not state_reported):
        return {"connected_peers": None, "disconnected_peers": None, "peer_states": None}
    peers = peers or {}
    connected = sum(1 for ok, _ in peers.values() if ok)
    return {
        "connected_peers": connected,
        "disconnected_peers": len(peers) - connected,
        "peer_states": {peer: message for peer, (_, message) in sorted(peers.items())},
    }


def _drbd_volume_usable(drbd: Mapping[str, Any] | None, volume_number: int, path: str) -> int | None:
    """Usable size of the DRBD device for ``volume_number`` (what the consumer gets)."""
    if drbd is None:
        return None
    for i, dv in enumerate(_opt_list(drbd, "drbd_volumes", path)):
        vpath = f"{path}.drbd_volumes[{i}]"
        dv = _obj(dv, vpath)
        definition = _opt_obj(dv, "drbd_volume_definition", vpath) or {}
        number = _opt_int(definition, "volume_number", f"{vpath}.drbd_volume_definition")
        if number == volume_number:
            return _kib_to_bytes(dv, "usable_size_kib", vpath)
    return None


def _replication(state: Mapping[str, Any] | None, path: str) -> tuple[dict[str, str] | None, float | None]:
    """Per-peer replication state and the lowest resync progress (LINSTOR >= 1.31)."""
    if state is None:
        return None, None
    reps = _opt_obj(state, "replication_states", path)
    if reps is None:
        return None, None
    states: dict[str, str] = {}
    done: list[float] = []
    for peer, rep in reps.items():
        rpath = f"{path}.replication_states.{peer}"
        rep = _obj(rep, rpath)
        value = _opt_str(rep, "replication_state", rpath)
        if value is not None:
            states[str(peer)] = value
        pct = rep.get("done_percentage")
        if pct is not None:
            if isinstance(pct, bool) or not isinstance(pct, int | float):
                raise ParseError(_TOOL, f"{rpath}.done_percentage: expected a number, got {pct!r}",
                                 field=f"{rpath}.done_percentage")
            done.append(float(pct))
    return states, (min(done) if done else None)


def _volume_fields(
    volume: Mapping[str, Any], drbd: Mapping[str, Any] | None, path: str, drbd_path: str
) -> dict:
    number = _opt_int(volume, "volume_number", path)
    if number is None:
        raise ParseError(_TOOL, f"{path}.volume_number missing", field=f"{path}.volume_number")
    state = _opt_obj(volume, "state", path)
    usable = _kib_to_bytes(volume, "usable_size_kib", path)
    if usable is None:
        usable = _drbd_volume_usable(drbd, number, drbd_path)
    replication, done = _replication(state, f"{path}.state")
    return {
        "volume_number": number,
        "storage_pool": _opt_str(volume, "storage_pool_name", path),
        "provider_kind": _opt_str(volume, "provider_kind", path),
        "device_path": _opt_str(volume, "device_path", path),
        "disk_state": _opt_str(state, "disk_state", f"{path}.state") if state is not None else None,
        "allocated_bytes": _kib_to_bytes(volume, "allocated_size_kib", path),
        "usable_bytes": usable,
        "replication_states": replication,
        "resync_done_percent": done,
    }


_EMPTY_VOLUME = {
    "volume_number": None,
    "storage_pool": None,
    "provider_kind": None,
    "device_path": None,
    "disk_state": None,
    "allocated_bytes": None,
    "usable_bytes": None,
    "replication_states": None,
    "resync_done_percent": None,
}


def _resource_rows(resource: Any, path: str) -> list[dict[str, Any]]:
    resource = _obj(resource, path)
    name = _req_str(resource, "name", path)
    node = _req_str(resource, "node_name", path)
    flags = _str_list(resource, "flags", path)
    state = _opt_obj(resource, "state", path)
    layer = _opt_obj(resource, "layer_object", path)
    drbd, drbd_path = _find_drbd(layer, f"{path}.layer_object")
    base = {
        "resource": name,
        "node": node,
        "flags": tuple(flags),
        "diskless": bool(_DISKLESS_FLAGS.intersection(flags)),
        "tiebreaker": "TIE_BREAKER" in flags,
        "state_reported": state is not None,
        "in_use": _opt_bool(state, "in_use", f"{path}.state") if state is not None else None,
        **_peer_columns(drbd, drbd_path, state is not None),
        "may_promote": _opt_bool(drbd, "may_promote", drbd_path) if drbd is not None else None,
        "promotion_score": _opt_int(drbd, "promotion_score", drbd_path) if drbd is not None else None,
    }
    volumes = _opt_list(resource, "volumes", path)
    if not volumes:
        return [{**base, **_EMPTY_VOLUME}]
    rows = []
    for i, volume in enumerate(volumes):
        vpath = f"{path}.volumes[{i}]"
        fields = _volume_fields(_obj(volume, vpath), drbd, vpath, drbd_path)
        row = {**base, **fields}
        # A diskless volume (provider DISKLESS) marks the resource diskless even if flags lag.
        row["diskless"] = row["diskless"] or fields["provider_kind"] == "DISKLESS"
        rows.append(row)
    return rows


def resources_frame(resources: list[dict]) -> pd.DataFrame:
    """One row per (resource, node, volume) from ``GET /v1/view/resources``.

    A resource without volumes still gets one row with empty volume fields. Columns, in
    this order: ``resource, node, volume_number, storage_pool, provider_kind, device_path,
    flags, diskless, tiebreaker, state_reported, in_use, disk_state, connected_peers,
    disconnected_peers, peer_states, may_promote, promotion_score, allocated_bytes,
    usable_bytes, replication_states, resync_done_percent``.

    ``state_reported`` is False when the satellite sent no state (node offline); then
    ``in_use``, ``disk_state`` and the peer counts are ``<NA>`` rather than a guess.
    ``peer_states`` maps each DRBD peer to its connection message (``Connected``,
    ``Connecting``, ``StandAlone`` ...). Sizes are bytes (LINSTOR sends KiB);
    ``usable_bytes`` falls back to the DRBD device's usable size when the volume does not
    carry one. The REST API has no quorum field; quorum comes from the DRBD options.
    Sorted by resource, node, volume number.
    """
    rows: list[dict[str, Any]] = []
    for i, resource in enumerate(_list(resources, "resources")):
        rows.extend(_resource_rows(resource, f"resources[{i}]"))
    frame = pd.DataFrame(rows, columns=list(RESOURCE_COLUMNS))
    for column in ("volume_number", "connected_peers", "disconnected_peers", "promotion_score"):
        frame[column] = frame[column].astype("Int64")
    for column in ("allocated_bytes", "usable_bytes"):
        frame[column] = frame[column].astype("Int64")
    for column in ("in_use", "may_promote"):
        frame[column] = frame[column].astype("boolean")
    for column in ("diskless", "tiebreaker", "state_reported"):
        frame[column] = frame[column].astype(bool)
    frame["resync_done_percent"] = frame["resync_done_percent"].astype("float64")
    frame = frame.sort_values(["resource", "node", "volume_number"], kind="stable", na_position="first")
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- REST client


class LinstorClient:
    """The LINSTOR controller's REST API (plain HTTP on 3370 unless ``apiTLS`` is set).

    ``http`` is an ``httpx.Client`` whose base URL reaches the API server, and ``base``
    the service-proxy path of the controller, e.g.
    ``/api/v1/namespaces/piraeus-datastore/services/linstor-controller:3370/proxy``.
    View endpoints answer for all nodes in one call, so a status view costs the same
    number of requests on 3 nodes as on 300.
    """

    def __init__(self, http: Any, base: str) -> None:
        self.http = http
        self.base = base.rstrip("/")

    @classmethod
    def via_service_proxy(cls, http: Any, namespace: str, service: str = "linstor-controller",
                          port: int = 3370) -> LinstorClient:
        return cls(http, kinds.service_proxy(namespace, f"{service}:{port}"))

    def get(self, path: str) -> Any:
        resp = self.http.get(self.base + path)
        if resp.status_code >= 400:
            raise RunbookError(f"LINSTOR {path}: HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            return resp.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            raise ParseError(_TOOL, f"{path}: response is not JSON ({resp.content[:80]!r})", field=path) from None

    def controller_version(self) -> dict:
        """``/v1/controller/version``: ``version`` and ``rest_api_version`` are strings when present."""
        version = _obj(self.get("/v1/controller/version"), "controller/version")
        for key in ("version", "rest_api_version"):
            _opt_str(version, key, "controller/version")
        return dict(version)

    def nodes(self) -> list[dict]:
        """``/v1/nodes``: each node an object with a ``name`` and, when reported, a ``connection_status``."""
        nodes = _list(self.get("/v1/nodes"), "nodes")
        for i, node in enumerate(nodes):
            _req_str(_obj(node, f"nodes[{i}]"), "name", f"nodes[{i}]")
            _opt_str(node, "connection_status", f"nodes[{i}]")
        return nodes

    def storage_pools(self) -> list[dict]:
        return _list(self.get("/v1/view/storage-pools"), "view/storage-pools")

    def resources(self) -> list[dict]:
        return _list(self.get("/v1/view/resources"), "view/resources")

    def resource_definitions(self) -> list[dict]:
        return _list(self.get("/v1/resource-definitions"), "resource-definitions")

    def resources_of(self, resource: str) -> list[dict]:
        """``/v1/view/resources`` for one resource definition (every node's replica of it)."""
        return _list(self.get(f"/v1/view/resources?resources={resource}"), "view/resources")

    def resource_definition(self, name: str) -> dict:
        return dict(_one(self.get(f"/v1/resource-definitions/{name}"), f"resource-definitions/{name}"))

    def resource_group(self, name: str) -> dict:
        return dict(_one(self.get(f"/v1/resource-groups/{name}"), f"resource-groups/{name}"))

    def controller_properties(self) -> dict:
        return dict(_obj(self.get("/v1/controller/properties") or {}, "controller/properties"))

    def snapshots(self) -> list[dict]:
        return _list(self.get("/v1/view/snapshots"), "view/snapshots")


def _one(answer: Any, path: str) -> Mapping[str, Any]:
    """A single object; some LINSTOR versions wrap it in a one-element list."""
    if isinstance(answer, list) and answer:
        answer = answer[0]
    return _obj(answer, path)
