"""The declared lab: every simulated part as a typed attribute, the controller protocol, and the tick that runs them.

A :class:`Lab` is built by :mod:`.assembly` (from options or saved state), which also hands it the
controllers in tick order. Every method expects ``lock`` to be held. This module imports only the
parts' data types, so every controller can name ``Lab`` in its signatures without an import cycle.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .clock import Clock
from .faults import FaultBook
from .kubernetes import store as kube_store
from .kubernetes.store import KubeStore
from .linstor.controller import LinstorController
from .storage.state import CsiState, DrbdState, OperatorState
from .talos.cluster import TalosCluster
from .workloads.state import RunResult, WorkloadState

MAX_CALL_KEYS = 5000  # distinct "METHOD path" counters kept; the rest are lumped together
RECONCILE_PERIOD = 2.0  # controllers re-check time-driven state at least this often (lab seconds)
CONVERGE_PASSES = 3  # passes per tick, so chains (deployment -> pod -> operator -> ...) settle within one tick


class Controller(Protocol):
    """One simulated control loop. ``needs_api``: it runs only while the API server (etcd quorum) is up."""

    name: str
    needs_api: bool

    def reconcile(self, lab: Lab, now: float) -> object: ...


@dataclass(frozen=True)
class Step:
    """A reconcile function as a :class:`Controller`."""

    name: str
    run: Callable[[Lab, float], object]
    needs_api: bool = True

    def reconcile(self, lab: Lab, now: float) -> object:
        return self.run(lab, now)


class PodRunner(Protocol):
    """Plays a container of a run-to-completion pod. Return None to let the next runner try."""

    def run(self, lab: Lab, pod: dict, container: dict, node: str, now: float) -> RunResult | None: ...


#: decides whether a pod's PVC volume is ready on its node: (ready, error)
VolumeHook = Callable[["Lab", dict, dict, str], tuple[bool, str | None]]


class Workloads:
    """The workload side's state (persisted) and its pod runners and volume hooks (code, not persisted)."""

    def __init__(self, state: WorkloadState, runners: Sequence[PodRunner], volume_hooks: Sequence[VolumeHook]) -> None:
        self.state = state
        self.runners = list(runners)
        self.volume_hooks = list(volume_hooks)
        # Derived data controllers may memoize between passes (not persisted).
        self.cache: dict[str, Any] = {}


class Lab:
    """The whole simulated cluster: Talos, the Kubernetes store, the workload side and the storage stack."""

    def __init__(self, *, clock: Clock, talos: TalosCluster, kube: KubeStore, faults: FaultBook, options: dict,
                 token: str, lock: threading.RLock, workloads: Workloads, linstor: LinstorController,
                 operator: OperatorState, csi: CsiState, drbd: DrbdState, controllers: Sequence[Controller],
                 schematics: dict[str, dict] | None = None) -> None:
        self.lock = lock
        self.clock = clock
        self.talos = talos
        self.kube = kube
        self.faults = faults
        self.options = options
        self.token = token
        self.workloads = workloads
        self.linstor = linstor
        self.operator = operator
        self.csi = csi
        self.drbd = drbd
        self.controllers: tuple[Controller, ...] = tuple(controllers)
        self.schematics: dict[str, dict] = schematics or {}  # Image Factory schematics by ID (see factory_api)
        self.dirty = True
        kube_store.cluster_clock = self.cluster_time  # object timestamps on the cluster's clock, not the host's
        self.stats = {"requests": 0, "kube_requests": 0, "talos_requests": 0}
        # Benchmarks: Kubernetes API calls per "METHOD path" and the ticker's cost (GET /lab/v1/stats).
        self.calls: dict[str, int] = {}
        self.ticks = 0
        self.tick_seconds = 0.0
        self.reported_bugs: set[str] = set()

    def to_dict(self) -> dict:
        return {
            "schema": 1,
            "options": self.options,
            "token": self.token,
            "clock": self.clock.to_dict(),
            "faults": self.faults.to_list(),
            "schematics": self.schematics,
            "talos": self.talos.to_dict(),
            "kube": self.kube.to_dict(),
            "storage": self.storage_dict(),
        }

    def storage_dict(self) -> dict:
        return {"workloads": self.workloads.state.to_dict(), "linstor": self.linstor.to_dict(),
                "operator": self.operator.to_dict(), "csi": self.csi.to_dict(), "drbd": self.drbd.to_dict()}

    def mark_dirty(self) -> None:
        self.dirty = True

    def cluster_time(self) -> float:
        """Now on the cluster's clock: the Talos epoch plus lab seconds (``time_scale`` times faster than the host)."""
        return self.talos.epoch + self.clock.now()

    def count_call(self, method: str, path: str) -> None:
        key = f"{method} {path}" if len(self.calls) < MAX_CALL_KEYS else "(other)"
        self.calls[key] = self.calls.get(key, 0) + 1

    def perf_stats(self) -> dict:
        return {"stats": self.stats, "calls": self.calls, "ticks": self.ticks, "tick_seconds": self.tick_seconds,
                "nodes": len(self.talos.nodes), "objects": len(self.kube.objects),
                "milestones": list(self.kube.milestones)}

    def api_available(self) -> bool:
        return self.talos.etcd_quorum(self.clock.now())

    def node_reachable(self, name: str) -> bool:
        """Can this node's kubelet reach the API server? Not when partitioned from most control planes."""
        cps = [n for n in self.talos.nodes.values() if n.role == "controlplane"]
        reach = sum(1 for n in cps if n.name == name or not self.faults.partitioned(name, n.name))
        return reach * 2 > len(cps)

    def tick(self) -> None:
        started = time.perf_counter()
        try:
            with self.clock.frozen():
                self._tick()
        finally:
            self.ticks += 1
            self.tick_seconds += time.perf_counter() - started

    def _tick(self) -> None:
        """Talos events due by now, then the host side (runs without the API), then the API's controllers."""
        now = self.clock.now()
        if self.talos.advance(now, self.faults):
            self.dirty = True
        rv = self.kube.rv
        for controller in self.controllers:
            if not controller.needs_api:
                self._run(controller, now)
        self._converge(now)
        if self.kube.rv != rv:
            self.dirty = True

    def _converge(self, now: float) -> None:
        """Run the API's controllers in order until nothing changes (at most CONVERGE_PASSES passes).

        Skipped while nothing changed since the last pass and no time-driven step is due.
        """
        st = self.workloads.state
        if not self.api_available() or (self.kube.rv == st.last_rv and now < st.next_due):
            return
        for _ in range(CONVERGE_PASSES):
            rv = self.kube.rv
            for controller in self.controllers:
                if controller.needs_api:
                    self._run(controller, now)
            if self.kube.rv == rv:
                break
        st.last_rv = self.kube.rv
        st.next_due = now + RECONCILE_PERIOD

    def _run(self, controller: Controller, now: float) -> None:
        """The one crash guard: a model bug must not take the whole lab (and its API) down."""
        try:
            controller.reconcile(self, now)
        except Exception:  # noqa: BLE001 - reported on the server log, the lab keeps running
            self.report_bug(controller.name)

    def report_bug(self, where: str) -> None:
        """Write a controller's crash to the server log (once per distinct traceback)."""
        text = traceback.format_exc()
        key = hashlib.sha1(text.encode()).hexdigest()
        if key not in self.reported_bugs:
            self.reported_bugs.add(key)
            print(f"lab controller {where}: unexpected error (the lab keeps running):\n{text}", file=sys.stderr, flush=True)
