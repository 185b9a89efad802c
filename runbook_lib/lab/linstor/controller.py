"""The lab's LINSTOR controller: its state, persistence and controller properties; the operations come from its parts.

A pure, JSON-serializable model (no I/O, no Kubernetes). The Piraeus operator model
(:mod:`.piraeus`) registers nodes and creates pools through it, linstor-csi (:mod:`.csi`)
places and attaches volumes through it, and :mod:`.api` (with :mod:`.rest_views`) renders it as LINSTOR REST
JSON (REST API 1.27, linstor-server v1.33 ``docs/rest_v1_openapi.yaml``).

Behaviour and where it comes from:

- Return codes are LINSTOR's masked ``ApiCallRc`` codes (golinstor ``apiconsts.go``,
  generated from ``ApiConsts.java``): error/warn/info mask | operation mask | object mask | code.
- Storage providers: ``supports_snapshots`` per ``DeviceProviderKind.isSnapshotSupported``
  (thick LVM false; LVM_THIN, ZFS, ZFS_THIN true). Pool capacities are KiB; DISKLESS pools
  report ``Long.MAX_VALUE``. A pool whose backing store does not exist stays in the pool
  list with zero capacity and a "Failed to query free space from storage pool" report, as a
  real satellite reports it.
- Device pools (``linstor physical-storage create-device-pool``, used by Piraeus for
  ``source.hostDevices``): ZFS runs ``zpool create -f`` (linstor-server ``ZfsCommands``), so
  a mounted device is busy and fails; LVM's ``pvcreate`` refuses a device with a signature.
  Sizes: ZFS reserves slop space (1/32 of the pool, OpenZFS ``spa_slop_shift``), LVM uses
  4 MiB extents after a 1 MiB metadata area, thin pools keep metadata + spare metadata LVs.
- DRBD: internal metadata per volume (activity log 32 KiB + bitmap per peer slot, 7 slots by
  default, matching the captured ``view/resources`` samples: 1 GiB usable -> 1048840 KiB),
  node ids per resource, TCP ports from 7000, minors from 1000; connections follow the
  satellites' reachability; ``may_promote``/``promotion_score`` as the samples show them.
- Auto-placement: storage pool, free space (thin: times ``MaxOversubscriptionRatio``),
  ``replicas_on_same``/``replicas_on_different``, a preferred node first; a DRBD resource
  with 2 diskful replicas gets a diskless ``TIE_BREAKER`` on a third node and LINSTOR sets
  ``DrbdOptions/Resource/quorum`` to ``majority`` when quorum is feasible, else ``off``
  (reference notes §6, ``CtrlRscAutoQuorumHelper``).

Later features extend :class:`Replica` (disk states, resync, suspended IO) and
:class:`Snapshot` (space held as data diverges); the JSON builders already show them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import asdict

from .constants import DEFAULT_RG
from .drbd_state import DrbdState
from .objects import Node, Replica, ResourceDefinition, ResourceGroup, Snapshot, StoragePool, VolumeDefinition
from .placement import Placement
from .pools import NodesAndPools
from .rest_views import RestViews
from .return_codes import (
    FAIL_INVLD_PROP,
    MASK_CTRL_CONF,
    MASK_ERROR,
    MASK_MOD,
    MASK_WARN,
    MODIFIED,
    LinstorError,
    api_rc,
    ret_code,
)


class LinstorController(NodesAndPools, Placement, DrbdState, RestViews):
    """LINSTOR's data model and the operations the lab's operator, CSI driver and REST use."""

    def __init__(self, *, seed: int = 1, counter: int = 0) -> None:
        self.seed = seed
        self.counter = counter
        self.props: dict[str, str] = {}
        self.nodes: dict[str, Node] = {}
        self.pools: dict[str, dict[str, StoragePool]] = {}  # node -> name -> pool
        self.groups: dict[str, ResourceGroup] = {}
        self.rds: dict[str, ResourceDefinition] = {}
        self.snapshots: dict[str, dict[str, Snapshot]] = {}  # rd -> name -> snapshot
        self.next_port = 7000
        self.next_minor = 1000
        self.reports: list[dict] = []  # error reports (GET /v1/error-reports), oldest first
        # Set by the lab before each use (not persisted): network partitions and the wall clock.
        self.partitioned: Callable[[str, str], bool] = lambda a, b: False
        # The lab's DRBD data plane (:mod:`.drbd`) answers these once it is attached.
        self.link: Callable[[str, str, str], bool] | None = None  # (resource, node, peer) -> connected
        self.quorum_enforced: Callable[[], bool] = lambda: True
        self.alive: Callable[[str], bool] | None = None  # DRBD runs on the node (with or without the controller)
        self.split_brain: Callable[[str, str, str], bool] = lambda rd, a, b: False  # (resource, node, peer)
        self.now_ms: Callable[[], int] = lambda: 0
        self.ensure_defaults()

    # -- persistence
    def to_dict(self) -> dict:
        return {"seed": self.seed, "counter": self.counter, "props": self.props,
                "nodes": [asdict(n) for n in self.nodes.values()],
                "pools": [asdict(p) for ps in self.pools.values() for p in ps.values()],
                "groups": [asdict(g) for g in self.groups.values()],
                "rds": [asdict(r) for r in self.rds.values()],
                "snapshots": [asdict(s) for ss in self.snapshots.values() for s in ss.values()],
                "next_port": self.next_port, "next_minor": self.next_minor, "reports": self.reports}

    @classmethod
    def from_dict(cls, data: dict | None) -> LinstorController:
        data = data or {}
        ctl = cls(seed=int(data.get("seed", 1)), counter=int(data.get("counter", 0)))
        ctl.props = dict(data.get("props", ctl.props))
        ctl.nodes = {n["name"]: Node(**n) for n in data.get("nodes", [])}
        ctl.pools = {}
        for p in data.get("pools", []):
            ctl.pools.setdefault(p["node"], {})[p["name"]] = StoragePool(**p)
        ctl.groups = {g["name"]: ResourceGroup(**g) for g in data.get("groups", [])} or ctl.groups
        for r in data.get("rds", []):
            r = dict(r)
            vols = [VolumeDefinition(**v) for v in r.pop("volumes", [])]
            reps = {k: Replica(**v) for k, v in r.pop("replicas", {}).items()}
            ctl.rds[r["name"]] = ResourceDefinition(**r, volumes=vols, replicas=reps)
        for s in data.get("snapshots", []):
            ctl.snapshots.setdefault(s["resource"], {})[s["name"]] = Snapshot(**s)
        ctl.next_port = int(data.get("next_port", 7000))
        ctl.next_minor = int(data.get("next_minor", 1000))
        ctl.reports = list(data.get("reports", []))
        ctl.ensure_defaults()
        ctl.counter = int(data.get("counter", ctl.counter))  # the constructor's defaults drew ids already
        return ctl

    def ensure_defaults(self) -> None:
        """What a fresh LINSTOR database holds (DB init migration)."""
        if DEFAULT_RG not in self.groups:
            self.groups[DEFAULT_RG] = ResourceGroup(DEFAULT_RG, self._uuid("rg:" + DEFAULT_RG))
        self.props.setdefault("DrbdOptions/auto-add-quorum-tiebreaker", "True")

    # -- ids
    def _uuid(self, purpose: str) -> str:
        self.counter += 1
        digest = hashlib.sha256(f"{self.seed}:{purpose}:{self.counter}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def _secret(self, name: str) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        digest = hashlib.sha256(f"{self.seed}:secret:{name}:{self.counter}".encode()).digest()
        return "".join(alphabet[b % len(alphabet)] for b in digest[:20])

    # -- controller properties
    def modify_props(self, override: dict[str, str], delete: list[str] | None = None) -> list[dict]:
        rcs = []
        for key, value in override.items():
            if not isinstance(value, str):
                raise LinstorError([api_rc(ret_code(FAIL_INVLD_PROP, MASK_ERROR, MASK_CTRL_CONF),
                                           f"Invalid value for property '{key}'")], 400)
            self.props[key] = value
            if key.endswith("/auto-quorum"):
                # LINSTOR >= 1.31 (CtrlPropsHelper): deprecated, no effect (reference notes §6)
                rcs.append(api_rc(ret_code(0, MASK_WARN, MASK_CTRL_CONF),
                                  f"The property '{key}' is deprecated, please use DrbdOptions/Resource/quorum"))
        for key in delete or []:
            self.props.pop(key, None)
        rcs.append(api_rc(ret_code(MODIFIED, MASK_MOD, MASK_CTRL_CONF), "Successfully set property key(s)" if override
                          else "Successfully deleted property key(s)"))
        return rcs

    def _report_id(self, node: str = "", message: str = "", details: str = "") -> str:
        """A new error report's id, the report kept for ``GET /v1/error-reports`` (as the satellite writes it)."""
        self.counter += 1
        rid = f"{hashlib.sha1(str(self.seed).encode()).hexdigest()[:8].upper()}-00000-{self.counter:06d}"
        self.reports.append({"id": rid, "node": node or "Controller", "time_ms": self.now_ms(), "message": message,
                             "details": details})
        return rid
