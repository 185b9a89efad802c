"""Whether a local process is still alive (a leaf: imports nothing of the library)."""

from __future__ import annotations

import os


def alive(pid: object) -> bool:
    """True while ``pid`` runs here; an exited child of ours (a zombie) is reaped and counts as gone."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:  # a zombie still answers kill(pid, 0)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
