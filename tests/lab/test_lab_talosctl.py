"""The lab's talosctl shim: flag parsing and output formats, the Talos RPC, and the real CLI path.

The end-to-end tests start a lab server in this process and run the shim as a real
subprocess (``python -m runbook_lib.lab.talos.talosctl``), the way the runbooks call it.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from runbook_lib.lab import control
from runbook_lib.lab.clock import Clock
from runbook_lib.lab.faults import FaultBook
from runbook_lib.lab.talos import api as talos_api
from runbook_lib.lab.talos.cluster import TalosCluster
from runbook_lib.lab.talos.talosctl.args import parse_flags
from runbook_lib.lab.talos.talosctl.commands import COMMANDS, GLOBAL_FLAGS, CLIError
from runbook_lib.lab.talos.talosctl.main import main
from runbook_lib.lab.talos.talosctl.output import format_json, resource_json, resource_yaml, tabwrite
from runbook_lib.lab.talos.talosctl.transport import append_errors
from tests.lab_helpers import VOLUME_DOCS, serve_lab

NODES = [
    {"name": "cp-1", "address": "10.5.0.2", "role": "controlplane"},
    {"name": "cp-2", "address": "10.5.0.3", "role": "controlplane"},
    {"name": "cp-3", "address": "10.5.0.4", "role": "controlplane"},
    {"name": "w-1", "address": "10.5.0.5", "role": "worker"},
    {"name": "w-2", "address": "10.5.0.6", "role": "worker"},
]



def _flags(name: str) -> list:
    return [*GLOBAL_FLAGS, *next(c for c in COMMANDS if c.path == name).flags]


def decode_stream(text: str) -> list[dict]:
    decoder, pos, out = json.JSONDecoder(), 0, []
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text):
            obj, pos = decoder.raw_decode(text, pos)
            out.append(obj)
    return out


# ----------------------------------------------------------------------------- flags and formats


def test_pflag_style_parsing():
    values, args = parse_flags(_flags("reset"), [
        "--graceful=false", "-n", "a,b", "--nodes", "c", "--system-labels-to-wipe", "EPHEMERAL", "--reboot",
        "--timeout", "2m30s", "extra"])
    assert values["graceful"] is False and values["reboot"] is True and values["wait"] is True
    assert values["nodes"] == ["a", "b", "c"] and values["system-labels-to-wipe"] == ["EPHEMERAL"]
    assert values["timeout"] == 150.0 and args == ["extra"]
    values, _ = parse_flags(_flags("get"), ["-ojson", "-n=10.5.0.2"])
    assert values["output"] == "json" and values["nodes"] == ["10.5.0.2"]
    with pytest.raises(CLIError, match=r"^unknown flag: --nope$"):
        parse_flags(_flags("get"), ["--nope"])
    with pytest.raises(CLIError, match=r"^flag needs an argument: --output$"):
        parse_flags(_flags("get"), ["--output"])
    with pytest.raises(CLIError, match='invalid argument "maybe" for "--graceful" flag: strconv.ParseBool'):
        parse_flags(_flags("reset"), ["--graceful=maybe"])


def test_cli_errors_exit_1_with_usage(capsys):
    assert main(["get"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("accepts between 1 and 2 arg(s), received 0\n\nUsage:\n  talosctl get <type> [<id>] [flags]")
    assert main(["reset", "--frob"]) == 1
    assert capsys.readouterr().err.startswith("unknown flag: --frob\n\nUsage:\n  talosctl reset [flags]")
    assert main(["frobnicate"]) == 1
    assert capsys.readouterr().err.startswith('unknown command "frobnicate" for "talosctl"\n')


def test_table_json_and_yaml_formats():
    assert tabwrite([["NODE", "ID", "VERSION"], ["10.5.0.2", "nvme0n1p12", "1"]]) == (
        "NODE       ID           VERSION\n10.5.0.2   nvme0n1p12   1\n")
    res = {"metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev", "id": "0",
                        "version": 2, "owner": "", "phase": "running", "created": "2026-01-01T00:00:00Z",
                        "updated": "2026-01-01T00:00:00Z", "labels": {"talos.dev/user-volume": ""}},
           "spec": {"b": ">= v1.2.0", "a": "0"}}
    obj = resource_json("10.5.0.2", res)
    assert obj["metadata"]["id"] == 0 and obj["metadata"]["owner"] is None
    assert obj["metadata"]["labels"] == {"talos.dev/user-volume": None}
    text = format_json(obj)
    assert text.startswith('{\n    "metadata": {\n        "created": "2026-01-01T00:00:00Z",')
    assert '"b": "\\u003e= v1.2.0"' in text and text.endswith("}\n")
    assert list(json.loads(text)) == ["metadata", "node", "spec"]
    y = resource_yaml("10.5.0.2", res)
    assert y.startswith("node: 10.5.0.2\nmetadata:\n    namespace: runtime\n")
    assert "    id: 0\n    version: 2\n    owner:\n" in y and "    created: 2026-01-01T00:00:00Z\n" in y
    assert "    labels:\n        talos.dev/user-volume:\n" in y and '    a: "0"\n' in y
    assert append_errors(["x"]) == "1 error occurred:\n x" and append_errors(["x", "y"]).startswith("2 errors")


# ----------------------------------------------------------------------------- the RPC, called directly


def _fake_lab() -> SimpleNamespace:
    talos = TalosCluster.create(NODES[:1] + NODES[3:4], seed=3)
    return SimpleNamespace(talos=talos, clock=Clock(scale=1000.0), faults=FaultBook(), token="kube-token", schematics={})


def _call(lab, method, path, body=None, query=None, call="c1", key=None):
    headers = {"Authorization": f"Bearer {key or lab.talos.client_key}", "X-Talosctl-Call": call}
    code, hdrs, out = talos_api.handle(lab, method, path, query or {}, json.dumps(body).encode() if body else b"",
                                       headers)
    return code, hdrs, json.loads(out)


def test_rpc_resources_errors_and_faults():
    lab = _fake_lab()
    code, hdrs, data = _call(lab, "GET", "/talos/v1/nodes/10.5.0.5/resources/volumestatus/EPHEMERAL")
    assert code == 200 and float(hdrs["X-Lab-Time"]) >= 0
    assert data["items"][0]["metadata"]["type"] == "VolumeStatuses.block.talos.dev"
    code, _, data = _call(lab, "GET", "/talos/v1/nodes/10.5.0.5/resources/volumestatus/u-nope")
    assert code == 404 and data == {"code": "NotFound", "message": "resource VolumeStatuses.block.talos.dev"
                                    "(runtime/u-nope@undefined) doesn't exist"}
    code, _, data = _call(lab, "GET", "/talos/v1/nodes/10.5.0.5/resources/disks", key="wrong")
    assert code == 503 and "tls: bad certificate" in data["message"]
    lab.faults.add("talosctl-fail", "w-1", count=1)
    code, hdrs, data = _call(lab, "GET", "/talos/v1/nodes/w-1/read", query={"path": ["/proc/modules"]}, call="c2")
    assert code == 503 and "i/o timeout" in data["message"] and hdrs.get("X-Lab-Dirty") == "1"
    code, _, _ = _call(lab, "GET", "/talos/v1/nodes/w-1/version", call="c2")  # same invocation: still failing
    assert code == 503
    code, _, _ = _call(lab, "GET", "/talos/v1/nodes/w-1/version", call="c3")  # next invocation works
    assert code == 200 and not lab.faults.faults
    lab.faults.add("node-down", "w-1")
    lab.talos.advance(lab.clock.now(), lab.faults)
    code, _, data = _call(lab, "GET", "/talos/v1/nodes/10.5.0.5/resources/disks", call="c4")
    assert code == 503 and data["message"].endswith('dial tcp 10.5.0.5:50000: connect: connection refused"')


def test_rpc_reset_validation_and_schematic_fallback():
    lab = _fake_lab()
    code, _, data = _call(lab, "POST", "/talos/v1/nodes/w-1/reset",
                          {"graceful": True, "reboot": True, "mode": "user-disks", "system_labels": ["EPHEMERAL"]})
    assert code == 500 and "wipe mode USER_DISKS doesn't support SystemPartitionsToWipe" in data["message"]
    lookup = talos_api.schematic_lookup_for(lab)
    assert lookup("98442b5bb4e8d050f30978ce3e6ec22e7bf534d57cafcd51313235128057e612") == [
        "siderolabs/drbd", "siderolabs/zfs"]
    assert lookup("376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba") == []
    assert lookup("f" * 64) is None
    lab.schematics = {"e" * 64: {"customization": {"systemExtensions": {"officialExtensions": ["siderolabs/zfs"]}}}}
    assert talos_api.schematic_lookup_for(lab)("e" * 64) == ["siderolabs/zfs"]  # posted to the lab's factory


# ----------------------------------------------------------------------------- end to end, real subprocesses


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("talos")
    lab, server, cfg = serve_lab(NODES, d)
    yield SimpleNamespace(lab=lab, server=server, talosconfig=str(cfg), dir=d)
    server.stop()
    server.server_close()


def talosctl(env, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runbook_lib.lab.talos.talosctl", "--talosconfig", env.talosconfig, *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_get_json_is_a_stream_of_objects(lab_env):
    res = talosctl(lab_env, "-n", "10.5.0.2,10.5.0.3", "get", "volumestatus", "-o", "json")
    assert res.returncode == 0, res.stderr
    assert not res.stdout.lstrip().startswith("[")
    items = decode_stream(res.stdout)
    assert len(items) == 6 and {i["node"] for i in items} == {"10.5.0.2", "10.5.0.3"}
    eph = next(i for i in items if i["metadata"]["id"] == "EPHEMERAL")
    assert isinstance(eph["metadata"]["version"], int)
    assert eph["metadata"]["labels"] == {"talos.dev/system-volume": None}
    assert eph["spec"]["location"] == "/dev/nvme0n1p4" and eph["spec"]["phase"] == "ready"


def test_get_yaml_and_table(lab_env):
    res = talosctl(lab_env, "-n", "10.5.0.2", "get", "dv", "-o", "yaml")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("node: 10.5.0.2\nmetadata:\n    namespace: runtime\n")
    docs = [d for d in yaml.safe_load_all(res.stdout)]
    assert len(docs) == 5 and res.stdout.count("\n---\n") == 4
    table = talosctl(lab_env, "-n", "10.5.0.2", "get", "machinestatus")
    assert table.stdout.splitlines()[0].split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", "STAGE", "READY"]
    assert table.stdout.splitlines()[1].split()[-2:] == ["running", "true"]


def test_apply_config_then_reset_with_wait(lab_env):
    current = talosctl(lab_env, "-n", "10.5.0.5", "get", "mc", "v1alpha1", "-o", "yaml")
    text = yaml.safe_load(current.stdout)["spec"]
    path = lab_env.dir / "w-1.yaml"
    path.write_text(text + VOLUME_DOCS)
    res = talosctl(lab_env, "-n", "10.5.0.5", "apply-config", "-f", str(path))
    assert res.returncode == 0, res.stderr
    assert res.stderr == "Applied configuration without a reboot\n" and res.stdout == ""
    res = talosctl(lab_env, "-n", "10.5.0.5", "reset", "--graceful=false", "--reboot",
                   "--system-labels-to-wipe=EPHEMERAL")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0] == '"10.5.0.5": waiting for actor ID'
    assert '"10.5.0.5": unavailable, retrying...' in lines
    assert lines[-1] == '"10.5.0.5": post check passed'
    vs = decode_stream(talosctl(lab_env, "-n", "10.5.0.5", "get", "volumestatus", "-o", "json").stdout)
    user = next(v for v in vs if v["metadata"]["id"] == "u-linstor-storage")
    assert user["spec"]["phase"] == "ready" and user["spec"]["location"] == "/dev/nvme0n1p5"
    assert next(v for v in vs if v["metadata"]["id"] == "EPHEMERAL")["spec"]["prettySize"] == "107 GB"


def test_errors_from_a_down_node_and_from_talos(lab_env):
    with lab_env.lab.lock:
        lab_env.lab.faults.add("node-down", "w-2")
        lab_env.lab.tick()
    try:
        res = talosctl(lab_env, "-n", "10.5.0.6", "get", "disks")
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr == ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while '
                              'dialing: dial tcp 10.5.0.6:50000: connect: connection refused"\n')
        res = talosctl(lab_env, "-n", "10.5.0.2,10.5.0.6", "read", "/proc/sys/kernel/random/boot_id")
        assert res.returncode == 1 and len(res.stdout.strip()) == 36
        assert res.stderr.startswith("1 error occurred:\n rpc error: code = Unavailable")
    finally:
        with lab_env.lab.lock:
            lab_env.lab.faults.clear()
    res = talosctl(lab_env, "-n", "10.5.0.2", "read", "/sys/module/drbd/parameters/usermode_helper")
    assert res.returncode == 1
    assert res.stderr == ("1 error occurred:\n rpc error: code = Unknown desc = stat "
                          "/sys/module/drbd/parameters/usermode_helper: no such file or directory\n")
    res = talosctl(lab_env, "-n", "10.5.0.2", "wipe", "disk", "nvme0n1")
    assert res.returncode == 1
    assert res.stderr == ('rpc error: code = FailedPrecondition desc = blockdevice "nvme0n1" is in use by volume '
                          '"EPHEMERAL"\n')


def test_version_and_health(lab_env):
    res = talosctl(lab_env, "-n", "10.5.0.2", "version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Client:\n\tTag:         v1.12.6\n") and "\tNODE:        10.5.0.2\n" in res.stdout
    res = talosctl(lab_env, "-n", "10.5.0.2,10.5.0.3", "health")
    assert res.returncode == 1 and res.stderr.startswith('command "health" is not supported with multiple nodes\n')
    res = talosctl(lab_env, "-n", "10.5.0.2", "health", "--wait-timeout", "5m")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[-1] == "waiting for all k8s nodes to report schedulable: OK"


def test_upgrade_waits_for_the_new_boot(lab_env):
    res = talosctl(lab_env, "-n", "10.5.0.6", "upgrade", "-i", "factory.talos.dev/metal-installer/"
                   "e048aaf4461ff9f9576c9a42f760f2fef566559bd4933f322853ac291e46f238:v1.12.6")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[-2:] == ['"10.5.0.6": events check condition met', '"10.5.0.6": post check passed']
    ext = decode_stream(talosctl(lab_env, "-n", "10.5.0.6", "get", "extensions", "-o", "json").stdout)
    assert [(e["metadata"]["id"], e["spec"]["metadata"]["name"]) for e in ext] == [(0, "drbd"), (1, "schematic")]


def _shim_and_json_talosconfig(lab_env, tmp_path) -> tuple[Path, Path]:
    """A lab's ``bin/talosctl`` (control.tool_shim) and the lab's talosconfig written as JSON, as the lab writes it."""
    shim = tmp_path / "talosctl"
    shim.write_text(control.tool_shim("runbook_lib.lab.talos.talosctl"))
    shim.chmod(0o755)
    as_json = tmp_path / "talosconfig.json"
    as_json.write_text(json.dumps(yaml.safe_load(Path(lab_env.talosconfig).read_text())))
    return shim, as_json


def test_the_labs_shim_runs_from_anywhere_on_a_json_or_yaml_talosconfig(lab_env, tmp_path):
    """``bin/talosctl`` of a lab (control.tool_shim) starts Python without ``site``, from any directory and without
    ``$PYTHONPATH``; the talosconfig the lab writes is JSON, one a user writes is YAML: both are talosconfigs."""
    shim, as_json = _shim_and_json_talosconfig(lab_env, tmp_path)
    broken = tmp_path / "broken"
    broken.write_text("{contexts: [")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(cfg):
        return subprocess.run([str(shim), "--talosconfig", str(cfg), "-n", "10.5.0.2", "version"], cwd="/", env=env,
                              capture_output=True, text=True, timeout=60)

    for cfg in (lab_env.talosconfig, as_json):
        res = run(cfg)
        assert res.returncode == 0 and "NODE:        10.5.0.2" in res.stdout, res.stderr
    res = run(broken)
    assert res.returncode == 1 and f"failed to parse config file {str(broken)!r}" in res.stderr


def test_a_talosctl_call_of_the_lab_imports_only_what_it_uses(lab_env, tmp_path):
    """A runbook calls the lab's talosctl about a hundred times per rehearsal, each a new interpreter: no ``runpy``
    (the shim imports the package's ``__main__``), no ``typing``, no idna codec for a numeric endpoint, no PyYAML
    for the lab's JSON talosconfig. Python reports each import (``PYTHONPROFILEIMPORTTIME``)."""
    shim, as_json = _shim_and_json_talosconfig(lab_env, tmp_path)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPROFILEIMPORTTIME": "1"}
    for args in (["read", "/proc/modules"], ["get", "disks", "-o", "json"]):
        res = subprocess.run([str(shim), "--talosconfig", str(as_json), "-n", "10.5.0.2", *args], cwd="/", env=env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
        assert "runbook_lib.lab.talos.talosctl.main" in imported  # the report is there
        assert not imported & {"runpy", "typing", "encodings.idna", "yaml"}, sorted(imported)


def test_a_client_resetting_its_connection_mid_request_leaves_no_traceback(lab_env, capfd):
    """A client that hangs up is no server error (as on an API server or apid)."""
    host, port = lab_env.server.url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /lab/v1/status HTTP/1.1\r\nHost: lab\r\n")  # the request's headers never end
        time.sleep(0.2)  # the server's thread is reading them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    time.sleep(0.5)
    assert "Traceback" not in capfd.readouterr().err
