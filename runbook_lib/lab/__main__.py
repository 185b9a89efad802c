"""``python -m runbook_lib.lab``: the lab's own entry point.

``serve`` runs the server in the foreground (``runbook lab start`` spawns it);
``connect`` starts the lab if needed and prints its connection info as JSON, which
is how the runbook library reaches the lab without importing it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from . import control


def _serve(d: Path) -> int:
    # the server's modules load only here: ``connect`` runs in every kernel and needs none of them
    from . import tls
    from .assembly import load_or_create
    from .server import LabHTTPServer
    from .talos import factory_api

    options = json.loads((d / "options.json").read_text()) if (d / "options.json").exists() else control.default_options()
    lab = load_or_create(d, options)
    pki = tls.ensure_pki(d)
    server = LabHTTPServer(lab, d, pki=pki)
    server.factory_handler = factory_api.handle
    control.write_connection_files(d, server.url, lab.token, options["nodes"], pki=pki)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.start_background()
    (d / "server.json").write_text(json.dumps({"pid": os.getpid(), "url": server.url}))
    server.stopping.wait()
    server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook_lib.lab")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--dir", type=Path, required=True)
    p = sub.add_parser("connect", help="start the lab if needed and print connection info as JSON")
    p.add_argument("--options", required=True, help="JSON lab options (nodes, time_scale, seed, ...)")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        return _serve(args.dir)
    try:
        info = control.ensure(json.loads(args.options))
    except Exception as exc:  # noqa: BLE001 - reported to the caller as one line
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
