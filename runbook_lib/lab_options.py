"""The lab's options and their defaults: one table for the parameter file (``params.LabOptions``) and the lab.

A leaf: it imports nothing from ``runbook_lib.lab`` (nor anything that imports the lab), so the
parameter model and the simulator read the same values without depending on each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .sizes import parse_size

TIME_SCALE = 100.0
SEED = 1
DISK_SIZE = "500GB"
DISK_TRANSPORT = "nvme"
INITIAL_TALOS_VERSION = "v1.12.6"
ENFORCE_SAFETY = False
WORKLOAD_WRITE_MIB_S = 0.5
EXTRA_WORKERS = 0
#: the nodes of ``runbook lab start`` without a parameter file
DEFAULT_NODES = [
    {"name": f"lab-cp-{i}", "address": f"10.5.0.{i + 1}", "role": "controlplane"} for i in (1, 2, 3)
]
#: the lab network's node-to-node round trip (a quiet 1 GbE switch), fixed; the connection info reports it
NETWORK_RTT_US = 200.0
LAB_DIR_ENV = "RUNBOOK_LAB_DIR"


def lab_dir() -> Path:
    """Where the lab keeps its state: ``$RUNBOOK_LAB_DIR`` when set, otherwise a per-user cache folder."""
    env = os.environ.get(LAB_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "runbook-lab"


#: options a running lab takes over from new parameters (read at every tick); the others need a reset
LIVE_OPTIONS = ("enforce_safety", "workload_write_mib_s")


def defaults() -> dict[str, Any]:
    """The lab's options when nothing is given (disk size in bytes, as the lab takes it)."""
    return {"nodes": [dict(n) for n in DEFAULT_NODES], "time_scale": TIME_SCALE, "seed": SEED,
            "disk_size": parse_size(DISK_SIZE), "disk_transport": DISK_TRANSPORT,
            "initial_talos_version": INITIAL_TALOS_VERSION, "faults": [],
            "enforce_safety": ENFORCE_SAFETY, "workload_write_mib_s": WORKLOAD_WRITE_MIB_S,
            "initial_extensions": [], "initial_kernel_args": []}


def with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with every option it leaves out at its default (``None`` counts as left out)."""
    return {**defaults(), **{k: v for k, v in options.items() if v is not None}}
