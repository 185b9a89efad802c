"""The ``piraeus``, ``bench``, ``snapshots`` and ``failover`` sections: what notebooks 03 and 05-07 install and test."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..sizes import parse_size
from .base import StrictModel
from .fields import ChartVersion, DnsLabel, NonEmpty, PositiveSize


class Piraeus(StrictModel):
    """The Piraeus operator: official OCI chart, its version and where it runs."""

    chart: NonEmpty = "oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus"
    chart_version: ChartVersion = "2.10.2"
    release: DnsLabel = "piraeus"
    namespace: DnsLabel = "piraeus-datastore"
    #: the controller's REST API speaks HTTPS only when the LinstorCluster sets apiTLS
    api_tls: bool = False


class Bench(StrictModel):
    """07-benchmarks: the fio matrix's timing and size, and the network it is judged against."""

    #: StorageClasses to measure; the first is the baseline every other class is compared with
    classes: list[DnsLabel] = Field(default_factory=lambda: ["local", "replicated"],
                                                                      min_length=1)
    iterations: int = Field(default=3, ge=1, le=50)
    ramp_time: float = Field(default=5.0, ge=0, le=3600)  # seconds fio runs before measuring (kbench: 5 s)
    runtime: float = Field(default=20.0, gt=0, le=3600)  # seconds measured per job (kbench: 20 s)
    size: PositiveSize = "48GiB"  # fio file size; kbench: at least 25x the bandwidth (bytes/s)
    size_factor: float = Field(default=25.0, gt=0)  # the kbench rule's factor
    link_mbps: float = Field(default=1000.0, gt=0)  # replication link line rate (1 GbE = 1000)
    rtt_us: float | None = Field(default=None, gt=0)  # node-to-node round trip (ping); None: no latency floor
    image: NonEmpty = "docker.io/library/alpine:3.22"
    install: str = "apk add --no-cache fio"  # run before fio in the container; "" when the image has fio
    namespace: DnsLabel = "default"

    @property
    def size_bytes(self) -> int:
        return parse_size(self.size)


class Snapshots(StrictModel):
    """CSI snapshots (05): the snapshot-controller chart, the VolumeSnapshotClass and the round-trip test."""

    #: Piraeus's packaging of external-snapshotter's controller and CRDs (chart 5.2.0 = v8.6.0)
    chart: NonEmpty = "oci://ghcr.io/piraeusdatastore/helm-charts/snapshot-controller"
    chart_version: ChartVersion = "5.2.0"
    release: DnsLabel = "snapshot-controller"
    namespace: DnsLabel = "kube-system"
    #: false: never install; stop and say what is missing when the cluster has no snapshot controller
    install_controller: bool = True
    class_name: DnsLabel = "linstor-snapshots"
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    storage_class: DnsLabel = "replicated"  # the class the round trip tests
    test_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*(Ki|Mi|Gi|Ti)$")] = "1Gi"  # a Kubernetes quantity (Gi, not GiB)
    test_file_mib: int = Field(default=64, ge=1, le=4096)  # the larger file the writer pod writes
    namespace_test: DnsLabel = "default"
    keep_test_objects: bool = False  # true: leave the test PVCs, pods and snapshot for inspection
    image: NonEmpty = "docker.io/library/busybox:1.37"


class Failover(StrictModel):
    """06-failover-drill: the workload, the fault and what the drill waits for.

    ``reboot`` is the failure test: ``talosctl reboot`` takes the node away without warning its
    workloads. ``shutdown`` is a planned-maintenance test: Talos cordons and drains the node first,
    and the operator powers it on again while the drill waits. Both need the approval
    ``drill <node>``; the quorum-loss scenario needs ``quorum-loss <writer's node>``.
    ``node-down`` (power loss) and ``isolate`` (the node cut off from every peer) are lab faults,
    refused against a real cluster. On a real cluster ``node`` must be set, so the approvals name
    a known node before anything starts.
    """

    storage_class: DnsLabel = "replicated"
    fault: Literal["reboot", "shutdown", "node-down", "isolate"] = "reboot"
    #: the node to fault; null: the node the writer runs on (the interesting case)
    node: str | None = None
    #: the quorum-loss scenario: both other replicas' nodes go away at once (same fault kind,
    #: isolate excepted: it becomes node-down); writes must freeze, not diverge. Default: on in the
    #: lab, off for ``target: talos`` (filled in by :class:`Params`)
    quorum_loss: bool = True
    #: how the peers go away; default ``reboot``, in the lab ``node-down`` (filled in by :class:`Params`)
    quorum_loss_fault: Literal["reboot", "shutdown", "node-down"] = "reboot"
    test_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*(Ki|Mi|Gi|Ti)$")] = "1Gi"
    write_interval_s: float = Field(default=0.2, gt=0, le=60)  # the writer's pause between records
    #: seconds of acknowledged writes before the fault and after recovery (cluster time)
    steady_s: float = Field(default=20.0, ge=1, le=3600)
    namespace_test: DnsLabel = "default"
    keep_test_objects: bool = False
    image: NonEmpty = "docker.io/library/busybox:1.37"
