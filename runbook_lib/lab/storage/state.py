"""What the storage stack persists between passes: operator, linstor-csi and DRBD state."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..state import SavedState


@dataclass
class OperatorState(SavedState):
    """What the operator/satellite models remember across passes (lab time)."""

    ready_since: dict[str, float] = field(default_factory=dict)  # node -> satellite container ready since
    logged: list[str] = field(default_factory=list)  # messages already written to logs


@dataclass
class CsiState(SavedState):
    provision_at: dict[str, float] = field(default_factory=dict)  # claim uid -> CreateVolume completes
    retry_at: dict[str, float] = field(default_factory=dict)  # claim uid -> next attempt after a failure
    attach_at: dict[str, float] = field(default_factory=dict)  # VolumeAttachment -> attach completes
    users: dict[str, list[str]] = field(default_factory=dict)  # "<pv>/<node>" -> pod uids using it


@dataclass
class DrbdState(SavedState):
    #: rd -> node -> path -> lines (the content of appended files, per replica)
    files: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)
    #: "rd|a|b" pairs that detected a split brain (StandAlone)
    split_brain: list[str] = field(default_factory=list)
    #: "rd|a|b" -> the two nodes' boot counts (sorted by node) when their handshake connected them
    links: dict[str, list[int]] = field(default_factory=dict)
    #: "rd|node" a consumer opened (auto-promote); closing it demotes
    opened: list[str] = field(default_factory=list)
    last: float | None = None
    #: "pv|node" -> lab time the HA controller first saw the pod's node unreachable (:mod:`.ha_controller`)
    ha_lost: dict[str, float] = field(default_factory=dict)
    #: pod uid -> the record writer's process state (:mod:`.record_writer`)
    writers: dict[str, dict] = field(default_factory=dict)
    #: "rd|node" -> KiB the replica has not received (its peers' bitmaps for it)
    missed: dict[str, float] = field(default_factory=dict)
    #: nodes whose DRBD disks attach Diskless (the ``diskless-after-upgrade`` fault fired)
    detached: list[str] = field(default_factory=list)
    #: node -> the Talos boot count last seen (to tell an upgrade's boot from a plain one)
    boots: dict[str, int] = field(default_factory=dict)
