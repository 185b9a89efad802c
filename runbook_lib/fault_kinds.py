"""The fault kinds the lab injects: one list for the parameter file, the CLI and the lab."""

from __future__ import annotations

from typing import Literal, get_args

FaultKind = Literal[
    "node-down", "stuck-reboot", "partition", "api-errors", "talosctl-fail", "helm-fail", "pool-full",
    # the lab's DRBD ignores quorum although LINSTOR configures it: a misconfiguration 06 must catch
    "quorum-off",
    # storage faults the safety gates must catch: a slow resync, talos#12478's Diskless after upgrade,
    # a dedicated replication network down between two nodes
    "slow-resync", "diskless-after-upgrade", "replication-down",
]
#: fault kinds that name a node and a peer (the two ends of a link)
PAIR_FAULT_KINDS = ("partition", "replication-down")
#: fault kinds that count uses (``count``, default 1); the others hold until cleared
COUNTED_FAULT_KINDS = ("api-errors", "talosctl-fail", "helm-fail")
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
