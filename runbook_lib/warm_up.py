"""What a kernel started ahead imports for its notebook beyond the notebook's own import lines.

Library modules import some packages on first use, not at import, so that importing them stays cheap: the
``kubernetes`` client, ``httpx``, ``ipywidgets``, ``plotly.express``. A module lists the ones a run needs in
``WARM_UP_IMPORTS``; :func:`import_declared` imports them for every library module loaded, so a kernel that has
the time (one started ahead, :mod:`runbook_lib.kernels`) pays them before a cell waits on them.
"""

from __future__ import annotations

import importlib
import sys


def declared() -> list[str]:
    """The ``WARM_UP_IMPORTS`` of every loaded ``runbook_lib`` module, each once."""
    names: dict[str, None] = {}
    for name, module in list(sys.modules.items()):
        if name == "runbook_lib" or name.startswith("runbook_lib."):
            names.update(dict.fromkeys(getattr(module, "WARM_UP_IMPORTS", ())))
    return list(names)


def import_declared() -> None:
    for name in declared():
        importlib.import_module(name)
