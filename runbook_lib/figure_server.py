"""The one browser of a ``runbook run``, drawing the static figures of all its kernels over a Unix socket.

A Chromium's start costs several seconds of CPU on a 2-core machine, more than all the figures of a
notebook; one browser per kernel made the figures' browsers the largest CPU cost of a rehearsal and
slowed every notebook running beside them. The run starts one in its own process, once it holds the
cluster's lock (a run refused there starts none); its kernels find the socket in ``$RUNBOOK_FIGURE_SOCKET``
and post each figure there (:func:`runbook_lib.figure_export.png`). The socket lives in a directory only
the run's user can enter. The browser is the same one a kernel would start: the environment without the runbook's
variables, no network request.
"""

from __future__ import annotations

import json
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from . import figure_export


class _Handler(BaseHTTPRequestHandler):
    """``POST /png`` with ``{"figure": ..., "opts": ...}``: the PNG, 503 with the reason when no browser can be
    started, 500 with the error when the figure could not be drawn."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            image = figure_export.draw_locally(body["figure"], body["opts"])
        except figure_export.StaticExportUnavailable as exc:
            self._answer(figure_export.UNAVAILABLE_STATUS, str(exc).encode(), "text/plain; charset=utf-8")
        except Exception as exc:  # noqa: BLE001 - the kernel raises it in the cell that drew the figure
            self._answer(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain; charset=utf-8")
        else:
            self._answer(200, image, "image/png")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # the run's terminal shows the notebooks' progress, not each figure


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FigureServer:
    """Serve figures at a new socket and start the browser in the background; :meth:`close` stops both.

    ``socket_path`` is the value for ``$RUNBOOK_FIGURE_SOCKET``.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="runbook-figures-")  # mode 0700
        self.socket_path = str(Path(self._dir.name) / "figures.sock")
        self._server = _UnixHTTPServer(self.socket_path, _Handler)
        # the poll interval bounds only how long close() waits for the serving loop to notice
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="figure-server", daemon=True)
        self._thread.start()
        figure_export.start_browser()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        figure_export.stop()
        self._dir.cleanup()

    def __enter__(self) -> FigureServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
