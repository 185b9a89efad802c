"""What machine the figures come from: every printed result names it."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def describe() -> dict:
    mem = memory_gib()
    return {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": round(mem, 1) if mem else None,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def one_line(info: dict) -> str:
    mem = f", {info['memory_gib']:.0f} GiB" if info.get("memory_gib") else ""
    return f"{info['cores']} cores ({info['cpu']}){mem}, Python {info['python']}, {info['system']}"
