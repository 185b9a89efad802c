"""A notebook's session: validated parameters, the record, and the clients to the cluster.

``begin("01-partition", globals())`` is the first call in every notebook. In lab mode
it starts the lab (as an external process) and takes its kubeconfig, talosconfig and
tool paths; from then on the code path is the one used against a real cluster.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from . import __version__, figure_export, interactive_run, lab_options, progress
from .errors import CheckFailed, ParamsError, RunbookError
from .execution import Executor
from .lock import ClusterLock
from .lock import take as take_lock
from .params import PARAMETER_KEYS, Node, Params, merge_secrets, parse_params
from .processes import alive
from .record import RECORD_ENV, Record
from .redact import Redactor
from .talos import Talosctl

RUN_ID_ENV = "RUNBOOK_RUN_ID"
SECRETS_ENV = "RUNBOOK_SECRETS"
LAB_CONNECTION_ENV = "RUNBOOK_LAB_CONNECTION"


def operator_identity() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def connection_for(params: Params) -> dict:
    """Where the cluster is: the lab's connection files, or the parameters' own."""
    if params.target == "lab":
        return lab_connection(params)
    return {"kubeconfig": params.kubeconfig, "talosconfig": params.talosconfig, "talosctl": params.talosctl,
            "helm": params.helm, "factory_url": params.factory_url}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def lab_connection(params: Params) -> dict:
    """Start (or reuse) the lab through its own entry point and return its connection info.

    The library runs ``python -m runbook_lib.lab connect`` instead of importing the lab,
    so production code keeps no dependency on the simulator. The kernels of a ``runbook run``
    find the runner's answer in ``$RUNBOOK_LAB_CONNECTION`` and take it without asking again.
    """
    options = json.loads(json.dumps(lab_options_of(params)))
    handed = _handed_connection(options)
    if handed is not None:
        return handed
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.lab", "connect", "--options", json.dumps(options)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RunbookError(f"could not start the lab: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def handed_lab_connection(params: Params, connection: dict, run_id: str) -> str:
    """``$RUNBOOK_LAB_CONNECTION`` for the kernels of run ``run_id``: the lab ``connection`` the runner got."""
    return json.dumps({"run_id": run_id, "options": lab_options_of(params), "connection": connection})


def lab_options_of(params: Params) -> dict:
    """The options ``lab connect`` starts (or checks) the lab with."""
    return {
        "nodes": params.lab_nodes(),
        "time_scale": params.lab.time_scale,
        "seed": params.lab.seed,
        "disk_size": params.lab.disk_size_bytes,
        "disk_transport": params.lab.disk_transport,
        "initial_talos_version": params.lab.initial_talos_version,
        "faults": [f.model_dump() for f in params.lab.faults],
        "enforce_safety": params.lab.enforce_safety,
        "workload_write_mib_s": params.lab.workload_write_mib_s,
        "initial_extensions": params.lab.initial_extensions,
        "initial_kernel_args": params.lab.initial_kernel_args,
    }


def _handed_connection(options: dict) -> dict | None:
    """The runner's connection, for a kernel of its run asking with the same options for the same lab directory
    while that very server runs (a lab restarted since, another run or another lab directory asks again)."""
    try:
        handed = json.loads(os.environ.get(LAB_CONNECTION_ENV) or "{}")
    except ValueError:
        return None
    connection = handed.get("connection") if isinstance(handed, dict) else None
    if not isinstance(connection, dict) or handed.get("options") != options:
        return None
    if not handed.get("run_id") or handed.get("run_id") != os.environ.get(RUN_ID_ENV):
        return None
    if connection.get("lab_dir") != str(lab_options.lab_dir()) or not alive(connection.get("pid")):
        return None
    return connection


def collect_parameters(namespace: Mapping[str, Any]) -> dict:
    """The parameter values a notebook's namespace holds (``None`` means: use the default).

    Secret values reach the kernel in ``$RUNBOOK_SECRETS`` rather than as papermill
    parameters, because papermill writes its parameters into the executed notebook.
    """
    public = {k: namespace[k] for k in PARAMETER_KEYS if namespace.get(k) is not None}
    return merge_secrets(public, kernel_secrets())


_KERNEL_SECRETS: dict | None = None


def kernel_secrets() -> dict:
    """The secret half of the parameters, read once from ``$RUNBOOK_SECRETS`` and removed from the environment.

    Every process the kernel starts (the lab, talosctl, helm) inherits its environment; none needs the secrets.
    """
    global _KERNEL_SECRETS
    if _KERNEL_SECRETS is None or SECRETS_ENV in os.environ:
        _KERNEL_SECRETS = json.loads(os.environ.pop(SECRETS_ENV, None) or "{}")
    return _KERNEL_SECRETS


@dataclass
class Session:
    notebook: str
    params: Params
    record: Record
    executor: Executor
    talos: Talosctl
    connection: dict
    redactor: Redactor
    _kube: Any = field(default=None, repr=False)
    lock: ClusterLock | None = field(default=None, repr=False)
    interactive: interactive_run.InteractiveRun | None = field(default=None, repr=False)

    # -- construction
    @classmethod
    def begin(cls, notebook: str, namespace: Mapping[str, Any], *, read_only: bool = False) -> Session:
        """``read_only``: a notebook that only looks (08): no cluster lock, and any change would only be planned."""
        raw = collect_parameters(namespace)
        try:
            params = parse_params(raw, source="notebook parameters")
        except ParamsError as err:
            raise ParamsError(err.problems, err.source) from None
        figure_export.prepare()  # every notebook draws figures: the browser starts while the session reads the cluster
        return cls.open(notebook, params, connection_for(params), read_only=read_only, namespace=namespace)

    @classmethod
    def open(cls, notebook: str, params: Params, connection: dict, *, read_only: bool = False,
             namespace: Mapping[str, Any] | None = None) -> Session:
        """A session on validated ``params`` and a cluster ``connection`` (what :meth:`begin` does after parsing)."""
        redactor = Redactor(params.secret_values())
        network_rtt = (connection.get("network") or {}).get("rtt_us")
        rtt_from_network = params.bench.rtt_us is None and bool(network_rtt)
        if rtt_from_network:  # the lab knows its network: 07 judges against it
            params = params.model_copy(update={"bench": params.bench.model_copy(update={"rtt_us": network_rtt})})
        for key in ("kubeconfig", "talosconfig"):
            if connection.get(key):
                _learn_credentials(redactor, connection[key])
        progress.set_notebook(notebook)
        run_id = os.environ.get(RUN_ID_ENV) or new_run_id()
        record = Record.open(notebook, run_id, redactor.deep(params.redacted()), redactor)
        # A real cluster, or the lab asked to behave like one, needs every approval; the default lab is relaxed.
        approve = params.approves if params.enforces_safety else None
        executor = Executor(record, dry_run=params.effective_dry_run or read_only, approve=approve)
        talos = Talosctl(executor, connection["talosctl"], connection.get("talosconfig"))
        session = cls(notebook, params, record, executor, talos, connection, redactor)
        record.versions = {"runbook_lib": __version__, "talosctl": _safe(talos.client_version), "helm": "n/a"}
        if not os.environ.get(RECORD_ENV):  # not under `runbook run`: this run keeps its own record
            session.interactive = interactive_run.start(
                notebook, record, cluster_name=params.cluster_name, target=params.target,
                dry_run=params.effective_dry_run, operator=operator_identity(), namespace=dict(namespace or {}))
        record.save()
        if not params.effective_dry_run and not read_only:
            # Under `runbook run` the run already holds the lock under this run ID (re-entrant).
            session.lock = take_lock(session.kube(), operator_identity(), run_id)
        mode = ("read-only (nothing is changed)" if read_only else "plan (dry run: nothing is changed)"
                if params.effective_dry_run else "apply")
        print(f"{notebook}: cluster '{params.cluster_name}', target {params.target}, mode {mode}, run {run_id}")
        print("nodes: " + ", ".join(f"{n.name} ({n.address}, {n.role}{'' if n.storage else ', compute-only: left alone'})"
                                    for n in params.nodes))
        if rtt_from_network:
            print(f"bench.rtt_us: {network_rtt:g} µs, the round trip the lab's network reports (set it to override)")
        if session.interactive is not None:
            print(session.interactive.where())
        return session

    # -- conveniences for notebooks
    @property
    def nodes(self) -> list[Node]:
        return list(self.params.nodes)

    @property
    def storage_nodes(self) -> list[Node]:
        """The listed nodes with ``storage`` true; the runbooks never touch any other node."""
        return list(self.params.storage_nodes)

    @property
    def dry_run(self) -> bool:
        return self.params.effective_dry_run

    def kube(self):
        if self._kube is None:
            from .kube import connect

            self._kube = connect(self.connection.get("kubeconfig"))
        return self._kube

    def check(self, name: str, ok: bool, observed: Any, expected: Any) -> bool:
        mark = "PASS" if ok else "FAIL"
        print(f"[{mark}] {name}: observed {self.redactor.text(str(observed))}; expected {expected}")
        return self.record.check(name, ok, observed, expected)

    def result(self, key: str, value: Any) -> None:
        self.record.result(key, value)

    def finish(self) -> None:
        """Close the record; raise :class:`CheckFailed` when any check failed."""
        failed = self.record.failed_checks
        applied = sum(a.outcome == "applied" for a in self.record.actions)
        planned = sum(a.outcome == "planned" for a in self.record.actions)
        unchanged = sum(a.outcome == "unchanged" for a in self.record.actions)
        print(f"{len(self.record.checks)} checks, {len(failed)} failed; actions: {applied} applied, "
              f"{planned} planned, {unchanged} unchanged")
        if self.lock is not None and not os.environ.get(RUN_ID_ENV):
            self.lock.release()  # an interactive run; `runbook run` releases its own lock at the end
        status = "failed" if failed else "succeeded"
        self.record.finish(status)
        if self.interactive is not None:
            self.interactive.finish(status)
        if failed:
            raise CheckFailed("failed checks: " + "; ".join(f"{c.name} (observed {c.observed})" for c in failed))


def _learn_credentials(redactor: Redactor, path: str) -> None:
    """Remember the credentials in a kubeconfig/talosconfig so they can never be printed."""
    try:
        data = yaml.safe_load(Path(os.path.expanduser(path)).read_text())
    except (OSError, yaml.YAMLError):
        return
    redactor.add_from_mapping(data)


def _safe(fn) -> str:
    try:
        return fn()
    except RunbookError as err:
        return f"unavailable ({str(err).splitlines()[0]})"
