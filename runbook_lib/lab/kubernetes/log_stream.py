"""``GET .../pods/{name}/log?follow=true``: a container's log streamed as it is written, until the container ends.

As the kubelet does (pkg/kubelet/kuberuntime/logs/logs.go ``ReadLogs`` with ``follow``): what is there
first (after ``tailLines``/``since*``), then each line once the lab's clock reaches the time it was
written; the stream ends when the container instance stops running (it finished, the pod is gone, its
node went away) or ``limitBytes`` is reached. The API server flushes every chunk (``LocationStreamer``
with ``Flush: follow``), so the answer is chunked ``text/plain``.
"""

from __future__ import annotations

import time
from typing import Any

from ..cluster import Lab
from ..workloads import logs
from . import chunked
from .types import ApiError

POLL_S = 0.05  # real seconds between looks at the log while following


def wants_follow(group: str, namespace: str | None, rest: tuple[str, ...], method: str, query: dict) -> bool:
    return (group == "" and namespace is not None and len(rest) == 3 and rest[0] == "pods" and rest[2] == "log"
            and method == "GET" and (query.get("follow") or [""])[-1] == "true")


def follow(handler: Any, lab: Lab, namespace: str, name: str, query: dict[str, list[str]]) -> None:
    """Answer a following log request on ``handler`` (a BaseHTTPRequestHandler with ``server.stopping``)."""
    opts = logs.parse_options(query, name)
    with lab.lock:
        cursor = logs.open_log(lab, namespace, name, opts)
        if cursor is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', kind="pods", name=name)
        data, full = logs.read_more(lab, cursor, opts.timestamps)
    chunk = chunked.start(handler, "text/plain")

    try:
        while True:
            if data:
                chunk(data)
            if full or handler.server.stopping.is_set():
                break
            handler.server.note_request()  # someone is watching: keep the ticker at full rate
            time.sleep(POLL_S)
            with lab.lock:
                running = logs.container_running(lab, cursor)
                data, full = logs.read_more(lab, cursor, opts.timestamps)
            if not running and not data:
                break
        chunk(b"")
    except (BrokenPipeError, ConnectionResetError):
        pass
    handler.close_connection = True
