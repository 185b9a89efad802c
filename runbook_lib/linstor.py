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

from typing import Annotated, Any

import pandas as pd
from pydantic import PlainValidator

from . import kinds, wire
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

# The fields these views read, as LINSTOR sends them; a field that does not fit is a ParseError
# naming its path (``pools[1].free_capacity``), see :mod:`runbook_lib.wire`.


def _kib_as_bytes(value: Any) -> int | None:
    """A KiB capacity as bytes; negative or ``Long.MAX`` (no real capacity) -> None."""
    kib = wire.int64(value)
    if kib < 0 or kib >= _LONG_MAX:
        return None
    if kib > _LONG_MAX // _KIB:
        raise ValueError(f"{kib} KiB is more bytes than a 64-bit integer holds")
    return kib * _KIB


def _true_or_false(value: Any) -> bool:
    if not isinstance(value, str) or value.lower() not in ("true", "false"):
        raise ValueError(f"expected 'true' or 'false', got {value!r}")
    return value.lower() == "true"


KibAsBytes = Annotated[int | None, PlainValidator(_kib_as_bytes)]
TraitFlag = Annotated[bool, PlainValidator(_true_or_false)]


class Report(wire.WireModel):
    message: wire.Text | None = None


class StaticTraits(wire.WireModel):
    SupportsSnapshots: TraitFlag | None = None  # noqa: N815 - LINSTOR's key


class StoragePool(wire.WireModel):
    """An entry of ``/v1/view/storage-pools``; capacities arrive in KiB and are held in bytes."""

    storage_pool_name: wire.Name
    node_name: wire.Name
    provider_kind: wire.Name
    total_capacity: KibAsBytes = None
    free_capacity: KibAsBytes = None
    static_traits: StaticTraits | None = None
    supports_snapshots: wire.Flag | None = None
    shared_space: wire.Text | None = None
    reports: list[Report] | None = None

    def can_snapshot(self) -> bool | None:
        """``static_traits.SupportsSnapshots`` (the string the CLI's CanSnapshots column shows), else the
        boolean ``supports_snapshots``; both come from the provider kind (thick LVM cannot snapshot)."""
        traits = self.static_traits
        return traits.SupportsSnapshots if traits and traits.SupportsSnapshots is not None else self.supports_snapshots


class Connection(wire.WireModel):
    connected: wire.Flag
    message: wire.Text | None = None


class DrbdVolumeDefinition(wire.WireModel):
    volume_number: wire.Int64 | None = None


class DrbdVolume(wire.WireModel):
    drbd_volume_definition: DrbdVolumeDefinition | None = None
    usable_size_kib: KibAsBytes = None


class Drbd(wire.WireModel):
    connections: dict[str, Connection] | None = None
    may_promote: wire.Flag | None = None
    promotion_score: wire.Int64 | None = None
    drbd_volumes: list[DrbdVolume] | None = None


class Layer(wire.WireModel):
    drbd: Drbd | None = None
    children: list[Layer] | None = None

    def find_drbd(self) -> Drbd | None:
        """The DRBD layer data, wherever it sits in the layer tree (usually at the top)."""
        if self.drbd is not None:
            return self.drbd
        return next((d for child in self.children or [] if (d := child.find_drbd()) is not None), None)


class Replication(wire.WireModel):
    replication_state: wire.Text | None = None
    done_percentage: wire.Number | None = None


class VolumeState(wire.WireModel):
    disk_state: wire.Text | None = None
    replication_states: dict[str, Replication] | None = None  # LINSTOR >= 1.31


class Volume(wire.WireModel):
    volume_number: wire.Int64
    storage_pool_name: wire.Text | None = None
    provider_kind: wire.Text | None = None
    device_path: wire.Text | None = None
    state: VolumeState | None = None
    allocated_size_kib: KibAsBytes = None
    usable_size_kib: KibAsBytes = None


class ResourceState(wire.WireModel):
    in_use: wire.Flag | None = None


class Resource(wire.WireModel):
    """An entry of ``/v1/view/resources``: one resource on one node."""

    name: wire.Name
    node_name: wire.Name
    flags: list[wire.Text] | None = None
    state: ResourceState | None = None
    layer_object: Layer | None = None
    volumes: list[Volume] | None = None


class ControllerVersion(wire.WireModel):
    version: wire.Text | None = None
    rest_api_version: wire.Text | None = None


class Node(wire.WireModel):
    """An entry of ``/v1/nodes``."""

    name: wire.Name
    connection_status: wire.Text | None = None


def _pool_row(pool: StoragePool) -> dict[str, Any] | None:
    if pool.provider_kind == "DISKLESS":
        return None
    total, free = pool.total_capacity, pool.free_capacity
    messages = [r.message for r in pool.reports or [] if r.message]
    return {
        "node": pool.node_name,
        "pool": pool.storage_pool_name,
        "provider_kind": pool.provider_kind,
        "total_bytes": total,
        "free_bytes": free,
        "used_bytes": total - free if total is not None and free is not None else None,
        "supports_snapshots": pool.can_snapshot(),
        "shared_space": pool.shared_space,
        "reports": "; ".join(messages) if messages else None,  # an error state explains itself there
    }


def storage_pools_frame(pools: list[dict]) -> pd.DataFrame:
    """One row per diskful storage pool from ``GET /v1/view/storage-pools``.

    Columns (in this order): ``node, pool, provider_kind, total_bytes, free_bytes,
    used_bytes, supports_snapshots, shared_space, reports``. Capacities are bytes (LINSTOR
    sends KiB) in nullable ``Int64`` columns: a pool whose node is offline has no capacity
    and shows ``<NA>``. Diskless pools are left out, since they hold no data and report a
    meaningless ``Long.MAX`` capacity that would poison any sum. Sorted by node, pool.
    """
    parsed = wire.parse(_TOOL, list[StoragePool], pools, root="pools")
    rows = [row for pool in parsed if (row := _pool_row(pool))]
    frame = pd.DataFrame(rows, columns=list(STORAGE_POOL_COLUMNS))
    for column in ("total_bytes", "free_bytes", "used_bytes"):
        frame[column] = frame[column].astype("Int64")
    frame["supports_snapshots"] = frame["supports_snapshots"].astype("boolean")
    return frame.sort_values(["node", "pool"], kind="stable").reset_index(drop=True)


def _peer_columns(drbd: Drbd | None, state_reported: bool) -> dict[str, Any]:
    """Connected/disconnected peer counts and ``{peer: message}``.

    Unknown (``<NA>``) when there is no DRBD layer, or when the satellite reported nothing
    (offline node) and no connections are listed; "no peers" is a real answer only from a
    node that reported its state.
    """
    conns = drbd.connections if drbd is not None else None
    if conns is None and (drbd is None or not state_reported):
        return {"connected_peers": None, "disconnected_peers": None, "peer_states": None}
    peers = {peer: (c.connected, c.message or ("Connected" if c.connected else "Unknown"))
             for peer, c in (conns or {}).items()}
    connected = sum(1 for ok, _ in peers.values() if ok)
    return {
        "connected_peers": connected,
        "disconnected_peers": len(peers) - connected,
        "peer_states": {peer: message for peer, (_, message) in sorted(peers.items())},
    }


def _drbd_volume_usable(drbd: Drbd | None, volume_number: int) -> int | None:
    """Usable size of the DRBD device for ``volume_number`` (what the consumer gets)."""
    for dv in (drbd.drbd_volumes or []) if drbd is not None else []:
        definition = dv.drbd_volume_definition or DrbdVolumeDefinition()
        if definition.volume_number == volume_number:
            return dv.usable_size_kib
    return None


def _replication(state: VolumeState | None) -> tuple[dict[str, str] | None, float | None]:
    """Per-peer replication state and the lowest resync progress (LINSTOR >= 1.31)."""
    if state is None or state.replication_states is None:
        return None, None
    reps = state.replication_states
    states = {peer: r.replication_state for peer, r in reps.items() if r.replication_state is not None}
    done = [r.done_percentage for r in reps.values() if r.done_percentage is not None]
    return states, (min(done) if done else None)


def _volume_fields(volume: Volume, drbd: Drbd | None) -> dict:
    usable = volume.usable_size_kib
    if usable is None:
        usable = _drbd_volume_usable(drbd, volume.volume_number)
    replication, done = _replication(volume.state)
    return {
        "volume_number": volume.volume_number,
        "storage_pool": volume.storage_pool_name,
        "provider_kind": volume.provider_kind,
        "device_path": volume.device_path,
        "disk_state": volume.state.disk_state if volume.state is not None else None,
        "allocated_bytes": volume.allocated_size_kib,
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


def _resource_rows(resource: Resource) -> list[dict[str, Any]]:
    flags = list(resource.flags or [])
    state = resource.state
    drbd = resource.layer_object.find_drbd() if resource.layer_object is not None else None
    base = {
        "resource": resource.name,
        "node": resource.node_name,
        "flags": tuple(flags),
        "diskless": bool(_DISKLESS_FLAGS.intersection(flags)),
        "tiebreaker": "TIE_BREAKER" in flags,
        "state_reported": state is not None,
        "in_use": state.in_use if state is not None else None,
        **_peer_columns(drbd, state is not None),
        "may_promote": drbd.may_promote if drbd is not None else None,
        "promotion_score": drbd.promotion_score if drbd is not None else None,
    }
    if not resource.volumes:
        return [{**base, **_EMPTY_VOLUME}]
    rows = []
    for volume in resource.volumes:
        fields = _volume_fields(volume, drbd)
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
    for resource in wire.parse(_TOOL, list[Resource], resources, root="resources"):
        rows.extend(_resource_rows(resource))
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
        version = self.get("/v1/controller/version")
        wire.parse(_TOOL, ControllerVersion, version, root="controller/version")
        return dict(version)

    def nodes(self) -> list[dict]:
        """``/v1/nodes``: each node an object with a ``name`` and, when reported, a ``connection_status``."""
        nodes = self.get("/v1/nodes")
        wire.parse(_TOOL, list[Node], nodes, root="nodes")
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
        return _one(self.get("/v1/controller/properties") or {}, "controller/properties")

    def snapshots(self) -> list[dict]:
        return _list(self.get("/v1/view/snapshots"), "view/snapshots")


def _list(answer: Any, path: str) -> list[Any]:
    """A list answer (its entries are checked by the views that read them)."""
    return wire.parse(_TOOL, list[Any], answer, root=path)


def _one(answer: Any, path: str) -> dict[str, Any]:
    """A single object; some LINSTOR versions wrap it in a one-element list."""
    if isinstance(answer, list) and answer:
        answer = answer[0]
    return wire.parse(_TOOL, dict[str, Any], answer, root=path)
