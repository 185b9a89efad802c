"""Builds a Lab from options or saved state: its parts, the controllers in tick order, and the pod runners."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

from ..lab_options import with_defaults
from .clock import Clock
from .cluster import Controller, Lab, PodRunner, Step, VolumeHook, Workloads
from .faults import FaultBook
from .kubernetes.nodes import sync_nodes
from .kubernetes.store import KubeStore
from .linstor.controller import LinstorController
from .storage import csi, drbd, ha_controller, linstor_sync, operator, snapshots
from .storage.csi_attach import volume_hook
from .storage.runner import PiraeusRunner
from .storage.state import CsiState, DrbdState, OperatorState
from .talos import installed_image
from .talos.cluster import TalosCluster
from .workloads import controllers, kubelet, record_writer, scheduler
from .workloads.controllers import register_types
from .workloads.fio import FioRunner
from .workloads.shell import ShellRunner
from .workloads.state import WorkloadState

STATE_FILE = "state.json"
#: real seconds a lab may run before its fast clock passes the host's (see :func:`clock_start`)
BEHIND_HOST_FOR_S = 86400.0

#: The one registry the tick runs, in this order. The host side (``needs_api=False``) runs at every tick, also
#: without etcd quorum (kubelets post Node status, DRBD replicates, writer pods write); the rest runs while the API
#: server is up, in dependency order, repeated until nothing changes (see :meth:`Lab._converge`).
CONTROLLERS: tuple[Controller, ...] = (
    Step("node-status", sync_nodes, needs_api=False),
    Step("drbd", drbd.tick, needs_api=False),
    Step("record-writer", record_writer.tick, needs_api=False),
    Step("workload-controllers", controllers.reconcile),
    Step("scheduler", scheduler.schedule),
    Step("kubelet", kubelet.run_pods),
    Step("workload-status", controllers.workload_status),
    Step("linstor-satellites", linstor_sync.sync_linstor),
    Step("piraeus-operator", operator.reconcile_operator),
    Step("linstor-csi", csi.reconcile),
    Step("ha-controller", ha_controller.reconcile),
    Step("snapshot-controller", snapshots.reconcile),
)


def pod_runners() -> list[PodRunner]:
    """Who plays run-to-completion containers, first match wins (06's reader pods, fio, LINSTOR waits, shell)."""
    return [record_writer.RecordReader(), FioRunner(), PiraeusRunner(), ShellRunner()]


VOLUME_HOOKS: tuple[VolumeHook, ...] = (volume_hook,)


def clock_start(time_scale: float) -> float:
    """The cluster clock's start: in the past, so it stays behind the host's clock for a day of real time.

    The cluster clock runs ``time_scale`` times faster than the host's. Server times in a client's future
    break real clients: Go's HTTP cache takes every cached discovery answer dated in the future as fresh
    (kubectl then misses a new CRD), and kubectl prints ``<invalid>`` ages.
    """
    return time.time() - max(time_scale - 1.0, 0.0) * BEHIND_HOST_FOR_S


def create_lab(options: dict) -> Lab:
    """A fresh lab for ``options`` (see :mod:`runbook_lib.lab_options`), ticked once."""
    opts = with_defaults(options)
    lock = threading.RLock()
    talos = TalosCluster.create(opts["nodes"], talos_version=opts["initial_talos_version"],
                                disk_size=int(opts["disk_size"]), disk_transport=opts["disk_transport"],
                                seed=int(opts["seed"]), epoch=clock_start(float(opts["time_scale"])))
    lab = _assemble(clock=Clock(scale=float(opts["time_scale"])), talos=talos, kube=KubeStore(lock),
                    faults=FaultBook(), options=options, token=secrets.token_hex(16), lock=lock, storage={})
    installed_image.install_initial(lab, opts["initial_extensions"], opts["initial_kernel_args"])
    for fault in opts["faults"]:
        lab.faults.add(fault["kind"], fault.get("node"), fault.get("peer"), fault.get("count"))
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        lab.kube.create(lab.kube.resolve("", "v1", "namespaces"), None, {"metadata": {"name": ns}})
    lab.tick()
    return lab


def load_lab(data: dict) -> Lab:
    """The lab that :meth:`Lab.to_dict` saved."""
    lock = threading.RLock()
    return _assemble(clock=Clock.from_dict(data["clock"]), talos=TalosCluster.from_dict(data["talos"]),
                     kube=KubeStore.from_dict(data["kube"], lock), faults=FaultBook.from_list(data["faults"]),
                     options=data["options"], token=data["token"], lock=lock, storage=data.get("storage") or {},
                     schematics=data.get("schematics", {}))


def load_or_create(state_dir: Path | None, options: dict) -> Lab:
    if state_dir and (state_dir / STATE_FILE).exists():
        return load_lab(json.loads((state_dir / STATE_FILE).read_text()))
    return create_lab(options)


def _assemble(*, storage: dict, kube: KubeStore, options: dict, **parts: object) -> Lab:
    register_types(kube)
    saved = storage.get("linstor")
    lab = Lab(kube=kube, options=options,
              workloads=Workloads(WorkloadState.from_dict(storage.get("workloads")), pod_runners(), VOLUME_HOOKS),
              linstor=LinstorController.from_dict(saved) if saved else LinstorController(seed=int(with_defaults(options)["seed"])),
              operator=OperatorState.from_dict(storage.get("operator")), csi=CsiState.from_dict(storage.get("csi")),
              drbd=DrbdState.from_dict(storage.get("drbd")), controllers=CONTROLLERS, **parts)  # type: ignore[arg-type]
    _wire_linstor(lab)
    return lab


def _wire_linstor(lab: Lab) -> None:
    """LINSTOR asks the kernel side (DRBD, faults) what its satellites would see."""
    ctl = lab.linstor
    ctl.link = lambda rd, a, b: drbd.link_up(lab, rd, a, b)
    ctl.quorum_enforced = lambda: drbd.quorum_enforced(lab)
    ctl.alive = lambda node: drbd.node_up(lab, node)
    ctl.split_brain = lambda rd, a, b: drbd.split_brain(lab, rd, a, b)
    ctl.partitioned = lab.faults.partitioned
    ctl.now_ms = lambda: int(time.time() * 1000)
