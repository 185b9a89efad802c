"""Start, stop, inspect and reset the lab server process, and hand out its connection files.

The lab directory (``$RUNBOOK_LAB_DIR``, else a per-user cache folder) holds:

- ``options.json``: what the lab was created from (nodes, time scale, seed, faults);
- ``state.json``: the cluster's state, written by the server;
- ``server.json``: pid and URL of the running server;
- ``kubeconfig``, ``talosconfig`` and ``bin/talosctl``, ``bin/helm``: what the
  runbooks use to reach the lab, exactly as they would reach a real cluster.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from .. import lab_options, local_http
from ..errors import LabNotRunning, RunbookError
from ..processes import alive

if TYPE_CHECKING:
    from .tls import Pki

lab_dir = lab_options.lab_dir  # ``$RUNBOOK_LAB_DIR`` when set, otherwise a per-user cache folder


def default_options() -> dict:
    """What ``runbook lab start`` without a parameter file creates (the same values as ``params.LabOptions``)."""
    return lab_options.defaults()


def _server_info(d: Path) -> dict | None:
    path = d / "server.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def status(d: Path | None = None) -> dict | None:
    """The running lab's status, or None when it is not running."""
    d = d or lab_dir()
    info = _server_info(d)
    if not info or not alive(int(info["pid"])):
        return None
    try:
        resp = local_http.request("GET", f"{info['url']}/lab/v1/status", timeout=5)
        resp.raise_for_status()
    except httpx.HTTPError:
        return None
    return resp.json()


def _topology(nodes: list[dict]) -> list[tuple]:
    return [(n["name"], n["address"], n["role"]) for n in nodes]


def start(options: dict | None = None, d: Path | None = None, *, timeout: float = 20.0) -> dict:
    """Start the lab server (reusing saved state) and return its connection info."""
    d = d or lab_dir()
    d.mkdir(parents=True, exist_ok=True)
    if status(d) is not None:
        return connection(d)
    opts = options or default_options()
    saved = d / "options.json"
    if (d / "state.json").exists() and saved.exists():
        old = json.loads(saved.read_text())
        if options is not None and _topology(old["nodes"]) != _topology(opts["nodes"]):
            raise RunbookError(
                f"the lab in {d} was created with nodes {[n['name'] for n in old['nodes']]}, "
                f"the parameters name {[n['name'] for n in opts['nodes']]}: run `runbook lab reset -f <params>` "
                "to create a new lab (this discards the old one)"
            )
    else:
        saved.write_text(json.dumps(opts, indent=2))
    (d / "server.json").unlink(missing_ok=True)
    log = open(d / "server.log", "ab")  # noqa: SIM115 - handed to the child process
    subprocess.Popen(
        [sys.executable, "-m", "runbook_lib.lab", "serve", "--dir", str(d)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(d) is not None:
            return connection(d)
        time.sleep(0.05)
    tail = (d / "server.log").read_text(errors="replace")[-2000:]
    raise RunbookError(f"the lab did not start within {timeout:.0f}s; server log ({d / 'server.log'}):\n{tail}")


def stop(d: Path | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the server (its state is saved). Returns False when it was not running."""
    d = d or lab_dir()
    info = _server_info(d)
    if not info or not alive(int(info["pid"])):
        (d / "server.json").unlink(missing_ok=True)
        return False
    pid = int(info["pid"])
    try:
        local_http.request("POST", f"{info['url']}/lab/v1/shutdown", timeout=5)
    except httpx.HTTPError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    (d / "server.json").unlink(missing_ok=True)
    return True


def reset(options: dict | None = None, d: Path | None = None) -> dict:
    """Discard the lab's state and start a fresh cluster."""
    d = d or lab_dir()
    stop(d)
    for name in ("state.json", "options.json", "server.log"):
        (d / name).unlink(missing_ok=True)
    return start(options or default_options(), d)


def ensure(options: dict, d: Path | None = None) -> dict:
    """Connection info for a lab matching ``options``' nodes, starting it when needed."""
    d = d or lab_dir()
    st = status(d)
    if st is not None:
        running = [(n["name"], n["address"], n["role"]) for n in st["nodes"]]
        if running != _topology(options["nodes"]):
            raise RunbookError(
                f"the running lab has nodes {[n[0] for n in running]} but the parameters name "
                f"{[n['name'] for n in options['nodes']]}: run `runbook lab reset -f <params>`"
            )
        _update_live_options(st.get("options") or {}, options, d)
        return connection(d)
    return start(options, d)


def _update_live_options(running: dict, wanted: dict, d: Path) -> None:
    """Hand the running lab the options it takes over live (``enforce_safety``, ``workload_write_mib_s``)."""
    changed = {k: wanted[k] for k in running if k in wanted and wanted[k] != running[k]}
    if changed:
        resp = _request("PATCH", "/lab/v1/options", d, json=changed)
        if resp.status_code >= 400:
            raise RunbookError(resp.json().get("error", resp.text))


def connection(d: Path | None = None) -> dict:
    """Paths and URLs the runbooks use to reach the running lab."""
    d = d or lab_dir()
    info = _server_info(d)
    if not info:
        raise LabNotRunning(f"the lab is not running (lab directory {d}): run `runbook lab start`")
    return {
        "lab_dir": str(d),
        "pid": info["pid"],
        "url": info["url"],
        "kubeconfig": str(d / "kubeconfig"),
        "talosconfig": str(d / "talosconfig"),
        "talosctl": str(d / "bin" / "talosctl"),
        "helm": str(d / "bin" / "helm"),
        "factory_url": f"{info['url']}/factory",
        "network": {"rtt_us": lab_options.NETWORK_RTT_US},
    }


def write_connection_files(d: Path, url: str, token: str, nodes: list[dict], pki: Pki | None = None) -> None:
    """Write kubeconfig, talosconfig and the tool shims for a server listening at ``url``.

    With a ``pki`` the kubeconfig is what ``talosctl kubeconfig`` writes: https, the cluster CA and an
    admin client certificate; without one (in-process test servers) plain HTTP and a bearer token.
    """
    host_port = url.split("://", 1)[1]
    cluster: dict[str, Any] = {"server": url}
    user: dict[str, Any] = {"token": token}
    if pki is not None:
        cluster = {"server": f"https://{host_port}", "certificate-authority-data": pki.b64("ca.crt")}
        user = {"client-certificate-data": pki.b64("admin.crt"), "client-key-data": pki.b64("admin.key")}
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": cluster}],
        "users": [{"name": "lab-admin", "user": user}],
        "contexts": [{"name": "admin@lab", "context": {"cluster": "lab", "user": "lab-admin"}}],
        "current-context": "admin@lab",
        "preferences": {},
    }
    talosconfig = {
        "context": "lab",
        "contexts": {
            "lab": {
                "endpoints": [host_port],
                "nodes": [nodes[0]["address"]] if nodes else [],
                "ca": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmxhYgotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==",
                "crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmxhYi1hZG1pbgotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==",
                "key": token,
            }
        },
    }
    # the talosconfig in JSON, which is YAML too: the lab's talosctl then reads it without importing a YAML parser
    for name, text in (("kubeconfig", yaml.safe_dump(kubeconfig, sort_keys=False)),
                       ("talosconfig", json.dumps(talosconfig, indent=2) + "\n")):
        path = d / name
        path.write_text(text)
        path.chmod(0o600)
    bindir = d / "bin"
    bindir.mkdir(exist_ok=True)
    for tool, module in (("talosctl", "talos.talosctl"), ("helm", "helm")):
        shim = bindir / tool
        shim.write_text(tool_shim(f"runbook_lib.lab.{module}"))
        shim.chmod(0o755)


def tool_shim(module: str) -> str:
    """The lab's ``talosctl`` or ``helm``: Python without ``site`` (a third of each call's start) running the
    package's ``__main__`` as a plain import (``runpy`` would cost its own imports), importing from where this
    lab's runbook_lib and PyYAML are (``$PYTHONPATH`` still comes first)."""
    package_root, yaml_root = Path(__file__).resolve().parents[2], Path(yaml.__file__).resolve().parents[1]
    paths = list(dict.fromkeys([str(package_root), str(yaml_root)]))
    code = f"import sys; sys.path += {json.dumps(paths)}; import {module}.__main__"
    return f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -S -c {shlex.quote(code)} "$@"\n'


def export_kubeconfig(output: str | None = None, d: Path | None = None) -> str:
    """The running lab's kubeconfig path, or ``output`` after copying it there (owner-only)."""
    source = Path(connection(d)["kubeconfig"])
    if not output:
        return str(source)
    target = Path(output).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(source.read_text())
    target.chmod(0o600)
    return str(target.resolve())


def _request(method: str, path: str, d: Path | None = None, **kwargs: Any) -> httpx.Response:
    info = _server_info(d or lab_dir())
    if not info:
        raise LabNotRunning("the lab is not running: run `runbook lab start`")
    try:
        return local_http.request(method, f"{info['url']}{path}", timeout=10, **kwargs)
    except httpx.HTTPError as exc:
        raise LabNotRunning(f"the lab does not answer ({exc}): run `runbook lab start`") from exc


def fault_add(kind: str, node: str | None = None, peer: str | None = None, count: int | None = None,
              d: Path | None = None) -> dict:
    resp = _request("POST", "/lab/v1/faults", d, json={"kind": kind, "node": node, "peer": peer, "count": count})
    if resp.status_code >= 400:
        raise RunbookError(resp.json().get("error", resp.text))
    return resp.json()


def fault_list(d: Path | None = None) -> list[dict]:
    return _request("GET", "/lab/v1/faults", d).json()


def fault_clear(d: Path | None = None) -> list[dict]:
    return _request("DELETE", "/lab/v1/faults", d).json()


def fault_remove(fault_id: int, d: Path | None = None) -> dict:
    resp = _request("DELETE", f"/lab/v1/faults/{fault_id}", d)
    if resp.status_code >= 400:
        raise RunbookError(resp.json().get("error", resp.text))
    return resp.json()


def power_on(node: str, d: Path | None = None) -> dict:
    """Press a shut-down node's power button (what the operator does after ``talosctl shutdown``)."""
    resp = _request("POST", f"/lab/v1/nodes/{node}/power-on", d)
    if resp.status_code >= 400:
        raise RunbookError(resp.json().get("error", resp.text))
    return resp.json()


def remove(d: Path | None = None) -> None:
    """Stop the lab and delete its directory (tests use this)."""
    d = d or lab_dir()
    stop(d)
    shutil.rmtree(d, ignore_errors=True)
