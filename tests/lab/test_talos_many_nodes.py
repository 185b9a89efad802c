"""Reads of several nodes in one ``talosctl --nodes a,b,c`` call (``Talosctl.get_many``, ``versions``,
``machine_configs``): results per node, and a failure still reported against one node.

Unit tests run the real executor against a stand-in ``talosctl`` script; the lab tests run the lab's
``talosctl`` against a lab with a node down or a ``talosctl-fail`` fault.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbook_lib.errors import ParseError, TalosError
from runbook_lib.execution import Executor
from runbook_lib.lab import control
from runbook_lib.params import Node
from runbook_lib.record import Record
from runbook_lib.talos import Talosctl
from tests.lab_helpers import serve_lab

NODES = [Node(name="cp-1", address="10.5.0.2", role="controlplane"), Node(name="cp-2", address="10.5.0.3", role="controlplane"),
         Node(name="w-1", address="10.5.0.20", role="worker")]


def _obj(node: str, rid: str) -> str:
    return json.dumps({"metadata": {"id": rid, "namespace": "runtime", "type": "VolumeStatuses.block.talos.dev"},
                       "node": node, "spec": {"phase": "ready"}}, indent=4) + "\n"


def _fake(tmp_path: Path, script: str) -> tuple[Talosctl, Path]:
    """A ``talosctl`` stand-in: ``script`` decides stdout/stderr/exit code from argv; every call is logged."""
    log = tmp_path / "calls.log"
    exe = tmp_path / "talosctl"
    exe.write_text(f"#!{sys.executable}\nimport json, sys\nargv = sys.argv[1:]\n"
                   f"open({str(log)!r}, 'a').write(json.dumps(argv) + '\\n')\n"
                   "nodes = argv[argv.index('--nodes') + 1].split(',')\n" + script)
    exe.chmod(0o755)
    record = Record(notebook="t", run_id="r", parameters={})
    return Talosctl(Executor(record, dry_run=False, approve=None), str(exe), None), log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_get_many_is_one_call_grouped_by_node(tmp_path: Path) -> None:
    talos, log = _fake(tmp_path, f"ok = {_obj('NODE', 'EPHEMERAL')!r}\n"
                       "sys.stdout.write(''.join(ok.replace('NODE', n) for n in nodes if n != '10.5.0.3'))\n")
    got = talos.get_many(NODES, "volumestatus")
    assert list(got) == ["cp-1", "cp-2", "w-1"]
    assert [r["metadata"]["id"] for r in got["cp-1"]] == ["EPHEMERAL"] and got["cp-2"] == []
    assert got["w-1"][0]["node"] == "10.5.0.20"
    assert _calls(log) == [["--nodes", "10.5.0.2,10.5.0.3,10.5.0.20", "get", "volumestatus", "-o", "json"]]


def test_a_resource_from_a_node_not_asked_for_is_a_parse_error(tmp_path: Path) -> None:
    talos, _ = _fake(tmp_path, f"sys.stdout.write({_obj('10.9.9.9', 'EPHEMERAL')!r})\n")
    with pytest.raises(ParseError) as exc:
        talos.get_many(NODES[:2], "volumestatus")
    assert exc.value.field == "resources[0].node" and "10.9.9.9" in str(exc.value)


def test_versions_reads_one_node_block_each(tmp_path: Path) -> None:
    talos, log = _fake(tmp_path, "print('Client:\\n\\tTag:         v1.12.6\\nServer:')\n"
                       "for i, n in enumerate(nodes):\n"
                       "    print(f'\\tNODE:        {n}\\n\\tTag:         v1.1{i}.0\\n\\tEnabled:     RBAC')\n")
    assert talos.versions(NODES) == {"cp-1": "v1.10.0", "cp-2": "v1.11.0", "w-1": "v1.12.0"}
    assert len(_calls(log)) == 1


def test_versions_missing_a_node_block_names_the_node(tmp_path: Path) -> None:
    talos, _ = _fake(tmp_path, "print('Client:\\n\\tTag:         v1.12.6\\nServer:\\n\\tNODE:        10.5.0.2\\n'"
                     "      '\\tTag:         v1.12.6')\n")
    with pytest.raises(ParseError, match="cp-2"):
        talos.versions(NODES[:2])


def test_a_failure_naming_a_node_is_reported_on_that_node(tmp_path: Path) -> None:
    # talosctl prints the other nodes' objects, collects the per-node error and exits 1
    talos, log = _fake(tmp_path, f"sys.stdout.write({_obj('10.5.0.2', 'EPHEMERAL')!r})\n"
                       "sys.stderr.write('1 error occurred:\\n rpc error: code = Unavailable desc = connection error: '\n"
                       "                 'desc = \"transport: Error while dialing: dial tcp 10.5.0.20:50000: connect: '\n"
                       "                 'connection refused\"\\n')\nsys.exit(1)\n")
    with pytest.raises(TalosError) as exc:
        talos.get_many(NODES, "volumestatus")
    assert exc.value.target == "w-1"  # 10.5.0.20, not 10.5.0.2 whose address is a prefix of it
    assert "talosctl exited 1 on w-1" in str(exc.value)
    assert "is it powered on and reachable?" in str(exc.value)  # the hint of a one-node read
    assert len(_calls(log)) == 1


def test_a_failure_naming_no_node_is_found_by_reading_each_node(tmp_path: Path) -> None:
    # NotFound names no node: the nodes are read one by one and the failing one is named, as before
    talos, log = _fake(tmp_path, "missing = '10.5.0.3'\n"
                       f"ok = {_obj('NODE', 'u-linstor-storage')!r}\n"
                       "sys.stdout.write(''.join(ok.replace('NODE', n) for n in nodes if n != missing))\n"
                       "if missing in nodes:\n"
                       "    sys.stderr.write('1 error occurred:\\n rpc error: code = NotFound desc = resource '\n"
                       "                     'VolumeStatuses.block.talos.dev(runtime/u-linstor-storage@undefined) '\n"
                       "                     \"doesn't exist\\n\")\n    sys.exit(1)\n")
    with pytest.raises(TalosError) as exc:
        talos.get_many(NODES, "volumestatus", "u-linstor-storage")
    assert exc.value.target == "cp-2" and "NotFound" in str(exc.value)
    nodes_per_call = [c[c.index("--nodes") + 1] for c in _calls(log)]
    assert nodes_per_call == ["10.5.0.2,10.5.0.3,10.5.0.20", "10.5.0.2", "10.5.0.3"]


def test_a_transient_failure_naming_no_node_gives_the_one_node_results(tmp_path: Path) -> None:
    talos, log = _fake(tmp_path, "if len(nodes) > 1:\n    sys.stderr.write('rpc error: code = Unknown desc = EOF\\n')\n"
                       "    sys.exit(1)\n"
                       f"sys.stdout.write({_obj('NODE', 'EPHEMERAL')!r}.replace('NODE', nodes[0]))\n")
    got = talos.get_many(NODES, "volumestatus")
    assert {name: [r["node"] for r in rs] for name, rs in got.items()} == {
        "cp-1": ["10.5.0.2"], "cp-2": ["10.5.0.3"], "w-1": ["10.5.0.20"]}
    assert len(_calls(log)) == 4


# ----------------------------------------------------------------------------- against the lab's talosctl

LAB_NODES = [{"name": "cp-1", "address": "10.5.0.2", "role": "controlplane"},
             {"name": "cp-2", "address": "10.5.0.3", "role": "controlplane"},
             {"name": "cp-3", "address": "10.5.0.4", "role": "controlplane"}]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("talos-many")
    lab, server, cfg = serve_lab(LAB_NODES, d)
    exe = d / "talosctl"
    exe.write_text(control.tool_shim("runbook_lib.lab.talos.talosctl"))
    exe.chmod(0o755)
    talos = Talosctl(Executor(Record(notebook="t", run_id="r", parameters={}), dry_run=False, approve=None),
                     str(exe), str(cfg))
    yield SimpleNamespace(lab=lab, talos=talos, nodes=[Node(**n) for n in LAB_NODES])
    server.stop()
    server.server_close()


def _fault(lab, kind: str, node: str, count: int | None = None) -> None:
    with lab.lab.lock:
        lab.lab.faults.add(kind, node, count=count)
        lab.lab.tick()


def _clear(lab) -> None:
    with lab.lab.lock:
        lab.lab.faults.clear()
        lab.lab.tick()


def test_lab_reads_all_nodes_in_one_call(lab) -> None:
    versions = lab.talos.versions(lab.nodes)
    assert versions == {"cp-1": "v1.12.6", "cp-2": "v1.12.6", "cp-3": "v1.12.6"}
    volumes = lab.talos.get_many(lab.nodes, "volumestatus")
    assert all("EPHEMERAL" in {r["metadata"]["id"] for r in volumes[n.name]} for n in lab.nodes)
    configs = lab.talos.machine_configs(lab.nodes)
    assert configs["cp-2"] == lab.talos.machine_config(lab.nodes[1])  # the same text as the one-node read


@pytest.mark.parametrize("read", ["versions", "get_many", "machine_configs"])
def test_lab_failing_node_is_named(lab, read: str) -> None:
    _fault(lab, "talosctl-fail", "cp-2", count=1)
    try:
        args = ("volumestatus",) if read == "get_many" else ()
        with pytest.raises(TalosError) as exc:
            getattr(lab.talos, read)(lab.nodes, *args)
        assert exc.value.target == "cp-2" and "10.5.0.3:50000: i/o timeout" in str(exc.value)
        assert getattr(lab.talos, read)(lab.nodes, *args)  # the fault was one invocation: the next read works
    finally:
        _clear(lab)


def test_lab_node_down_first_in_the_list_is_named(lab) -> None:
    # the first node also resolves the resource type: its failure stops the whole call, and is named
    _fault(lab, "node-down", "cp-1")
    try:
        with pytest.raises(TalosError) as exc:
            lab.talos.get_many(lab.nodes, "discoveredvolumes")
        assert exc.value.target == "cp-1" and "connection refused" in str(exc.value)
        assert "is it powered on and reachable?" in str(exc.value)
    finally:
        _clear(lab)


def test_read_each_reads_every_node_side_by_side_and_hands_back_a_node_s_error(tmp_path: Path) -> None:
    """``talosctl read`` takes one node: ``read_each`` makes one call per node, at once. Each stand-in call waits
    until every node's call has started, so calls made one after the other would say "alone"."""
    marks = tmp_path / "started"
    marks.mkdir()
    talos, log = _fake(tmp_path, f"import os, time\nmarks = {str(marks)!r}\n"
                       "open(os.path.join(marks, nodes[0]), 'w').close()\n"
                       "deadline = time.monotonic() + 60\n"
                       "while len(os.listdir(marks)) < 3 and time.monotonic() < deadline:\n"
                       "    time.sleep(0.01)\n"
                       "together = 'together' if len(os.listdir(marks)) == 3 else 'alone'\n"
                       "if nodes[0] == '10.5.0.3':\n"
                       "    sys.stderr.write('error reading file: rpc error: code = NotFound desc = no such file')\n"
                       "    sys.exit(1)\n"
                       "print(nodes[0], together, argv[-1])\n")
    got = talos.read_each(NODES, "/proc/modules")
    assert list(got) == ["cp-1", "cp-2", "w-1"]
    assert got["cp-1"] == "10.5.0.2 together /proc/modules\n" and got["w-1"] == "10.5.0.20 together /proc/modules\n"
    assert isinstance(got["cp-2"], TalosError) and got["cp-2"].target == "cp-2" and "NotFound" in str(got["cp-2"])
    assert sorted(c[c.index("--nodes") + 1] for c in _calls(log)) == ["10.5.0.2", "10.5.0.20", "10.5.0.3"]
