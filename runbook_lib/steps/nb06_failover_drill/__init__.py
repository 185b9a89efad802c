"""Notebook 06: a failover drill that proves no acknowledged write is lost.

The drill, in the order the notebook runs it:

1. **Preconditions** (nothing changes until they hold): the class places three diskful
   replicas (or two and a tie-breaker), the HA controller runs on every replica's node,
   LINSTOR has ``quorum majority`` on the writer's resource with ``on-no-quorum suspend-io``,
   every replica is UpToDate, and the node to fault is not the last healthy one. Before the first
   fault, and again right before each scenario's: its approval (``drill <node>``,
   ``quorum-loss <writer's node>``), no scenario taking down an etcd majority (refused on a real
   cluster and with ``lab.enforce_safety``), the cluster-wide storage gate of
   :mod:`...storage_gates`, and an etcd snapshot when a control-plane node is faulted.
2. **A writer** (a Deployment of one busybox pod on the replicated class) appends
   sequence-numbered, checksummed records to a file, fsyncs each and only then prints
   ``ack <record>``. The runbook collects the acknowledgements from the pod logs as it goes.
3. **The fault** hits the writer's node: ``talosctl reboot`` (the failure test) or ``shutdown``
   (a planned-maintenance test: Talos cordons and drains first), approval ``drill <node>``, or in
   the lab a power loss (``node-down``) or a network cut (``isolate``) through ``runbook lab fault``.
   One observer loop timestamps every phase: node NotReady, the HA controller's
   ``drbd.linbit.com/lost-quorum`` taint, the pod running elsewhere, writes acknowledged again,
   the node back, the resync done.
4. **The node comes back** (fault cleared, node powered on, or its reboot finishing), in a
   ``finally`` so a failed step never leaves it down.
5. **Quorum loss**: both other replicas' nodes go away at once. The writer's primary has no
   quorum, so I/O must freeze (``suspend-io``) rather than go on alone; when the nodes return
   the writes resume and nothing diverged.
6. **Verification**: the writer is stopped and a reader pod on every diskful replica's node
   reads the record file by digest (only blocks that differ from the acknowledged records are
   read line by line, in bounded ranges: no log cap or rotation can drop a record). Every
   acknowledged record must be there, unchanged, in every copy; the copies must be identical;
   checksums must match. Lost and diverged records are named and counted.

Times are cluster seconds from the cluster's own timestamps (a node condition's
``lastTransitionTime``, the taint's ``timeAdded``, the container's ``startedAt``, the writer's
record stamps); what carries no timestamp is timed by the observer's first sighting, put on the
cluster's clock through the API server's ``Date`` header (:mod:`...cluster_time`). In the lab that
clock runs ``lab.time_scale`` times faster than the host's, so the numbers read like a real cluster's.

The package, by job: :mod:`.manifests` (pure renderers), :mod:`.writer`, :mod:`.observe`
(the observer and its snapshots), :mod:`.preconditions` (the checks before anything changes and
before each scenario), :mod:`.faults` (inject, restore), :mod:`.drill` (the scenarios),
:mod:`.timings` (phases, stall, resync), :mod:`.verify` (read back, judge, clean up) and
:mod:`.results` (the tables, pure). Notebook 06 calls the names below.
"""

from __future__ import annotations

from .drill import failover, quorum_loss, start_writer
from .faults import inject, restore
from .manifests import (
    APP_LABEL,
    MOUNT,
    NAME,
    RECORDS,
    TAINT,
    manifests_yaml,
    reader_pod,
    writer_claim,
    writer_deployment,
)
from .observe import POLL, Observer, Snapshot, describe, standalone_connections
from .preconditions import (
    FAULT_LABELS,
    Preconditions,
    before_fault,
    check_resource,
    check_scenarios,
    check_setup,
    etcd_members_lost,
    linstor_property,
    node_ref,
    refuse_etcd_majority,
)
from .results import phases_frame, resync_frame, summary_frame
from .timings import BEFORE_FAULT, FAULT_SOURCE, OBSERVED, DrillResult, finalize
from .verify import MAX_READ_ROUNDS, cleanup, read_copies, stop_writer, verify
from .writer import Writer, control_nodes, render_writer

__all__ = [
    "APP_LABEL", "BEFORE_FAULT", "FAULT_LABELS", "FAULT_SOURCE", "MAX_READ_ROUNDS", "MOUNT", "NAME", "OBSERVED", "POLL",
    "RECORDS", "TAINT", "DrillResult", "Observer", "Preconditions", "Snapshot", "Writer", "before_fault", "check_resource",
    "check_scenarios", "check_setup", "cleanup", "control_nodes", "describe", "etcd_members_lost", "failover", "finalize",
    "inject", "linstor_property", "manifests_yaml", "node_ref", "phases_frame", "quorum_loss", "read_copies",
    "reader_pod", "refuse_etcd_majority", "render_writer", "restore", "resync_frame", "standalone_connections",
    "start_writer", "stop_writer", "summary_frame", "verify", "writer_claim", "writer_deployment",
]
