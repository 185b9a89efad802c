"""etcd snapshots before a control-plane node is disrupted (01's reset, 02's upgrade, 06's faults).

``talosctl etcd snapshot`` writes the whole etcd database, every cluster Secret included, so the file
goes to ``backup_dir`` (default: a per-user data folder, or the lab's own folder), never into a record
or ``outputs/``; the record keeps its path, size and sha256. A snapshot that fails stops the step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from .errors import GateRefused, TalosError
from .params import Params
from .runs import sha256_file
from .session import Session
from .talos import NodeRef

RESULT_KEY = "etcd_snapshots"


def default_backup_dir(params: Params, connection: dict) -> Path:
    """``backup_dir`` as set; else the lab's folder in the lab; else ``$XDG_DATA_HOME/runbook/etcd-snapshots``."""
    if params.backup_dir:
        return Path(params.backup_dir).expanduser()
    if connection.get("lab_dir"):
        return Path(connection["lab_dir"]) / "etcd-snapshots"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "runbook" / "etcd-snapshots"


def _inside_outputs(path: Path) -> bool:
    resolved = path.resolve()
    return "outputs" in resolved.parts or resolved.is_relative_to((Path.cwd() / "outputs").resolve())


def snapshot_before(session: Session, nodes: NodeRef | Sequence[NodeRef], *, step: str) -> dict | None:
    """Snapshot etcd once before ``step`` disrupts ``nodes``, if any is a control-plane node; the record entry.

    The snapshot is taken through a control-plane node that stays up when there is one (a node about
    to go away may already be unhealthy). Raises :class:`GateRefused` when it fails: the step does not start.
    """
    targets = list(nodes) if isinstance(nodes, Sequence) else [nodes]
    disrupted = [n for n in targets if n.role == "controlplane"]
    if not disrupted:
        return None
    names = ", ".join(n.name for n in disrupted)
    if session.dry_run:
        print(f"plan: an etcd snapshot is taken before {step} ({names}: control-plane)")
        return None
    folder = default_backup_dir(session.params, session.connection) / session.params.cluster_name
    if _inside_outputs(folder):
        raise GateRefused(f"backup_dir {folder} is inside an outputs/ folder: an etcd snapshot holds every cluster "
                          f"Secret and must not go there; set backup_dir to a private folder. {step} was not started")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    gone = {n.name for n in disrupted}
    staying = [n for n in session.nodes if n.role == "controlplane" and n.name not in gone]
    via = staying[0] if staying else disrupted[0]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = folder / f"etcd-{session.params.cluster_name}-before-{'-'.join(sorted(gone))}-{stamp}.snapshot"
    try:
        session.talos.etcd_snapshot(via, str(path))
        size = path.stat().st_size
    except (TalosError, OSError) as err:
        raise GateRefused(f"the etcd snapshot before {step} failed ({err}); {step} was not started: make etcd "
                          "healthy (talosctl etcd status) and run again", ["etcd"]) from None
    if size == 0:
        raise GateRefused(f"the etcd snapshot before {step} is empty ({path}); {step} was not started", ["etcd"])
    path.chmod(0o600)
    entry = {"before": step, "node": names, "taken_via": via.name, "path": str(path), "size_bytes": size,
             "sha256": sha256_file(path)}
    session.record.results.setdefault(RESULT_KEY, []).append(entry)
    session.check(f"etcd snapshot before {step}", True, f"{size} bytes, sha256 {entry['sha256'][:16]}, {path}",
                  "a snapshot file outside outputs/")
    return entry


