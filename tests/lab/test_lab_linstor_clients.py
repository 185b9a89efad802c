"""The ``linstor`` list commands in the controller container, through upstream ``kubectl exec``, as LINBIT's client prints them.

Tables are parsed as an operator's script would (frames, ``|`` columns, multi-line cells between
``|---|`` separators); the columns are linstor-client v1.27's (``linstor_client/commands/*_cmds.py``), the
rows the lab's LINSTOR model; the REST answers behind them validate against LINSTOR's OpenAPI spec.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runbook_lib.lab.linstor import cli as linstor_cli
from runbook_lib.lab.linstor.providers import DeviceInfo, SatelliteFacts
from tests.lab.test_lab_exec import kubectl_exec
from tests.lab.test_lab_kubectl import KUBECTLS
from tests.linstor_checks import linstor_controller, validate
from tests.storage_lab import GIB, NODES, StorageLab

ANSI = re.compile(r"\x1b\[[0-9;]*m")

COLUMNS = {
    ("node", "list"): ["Node", "NodeType", "Addresses", "State"],
    ("storage-pool", "list"): ["StoragePool", "Node", "Driver", "PoolName", "FreeCapacity", "TotalCapacity",
                               "CanSnapshots", "State", "SharedName"],
    ("resource", "list"): ["ResourceName", "Node", "Layers", "Usage", "Conns", "State", "CreatedOn"],
    ("volume", "list"): ["Resource", "Node", "StoragePool", "VolNr", "MinorNr", "DeviceName", "Allocated", "InUse",
                         "State", "Repl"],
    ("resource-definition", "list"): ["ResourceName", "ResourceGroup", "Layers", "State"],
    ("resource-group", "list"): ["ResourceGroup", "SelectFilter", "VlmNrs", "Description"],
    ("snapshot", "list"): ["ResourceName", "SnapshotName", "NodeNames", "Volumes", "CreatedOn", "State"],
    ("error-reports", "list"): ["Id", "Datetime", "Node", "Exception"],
    ("physical-storage", "list"): ["Size", "Rotational", "Nodes"],
}
ALIASES = {("n", "l"): ("node", "list"), ("sp", "l"): ("storage-pool", "list"), ("r", "l"): ("resource", "list"),
           ("v", "l"): ("volume", "list"), ("r", "lv"): ("volume", "list"),
           ("rd", "l"): ("resource-definition", "list"), ("rg", "l"): ("resource-group", "list"),
           ("s", "l"): ("snapshot", "list"), ("err", "l"): ("error-reports", "list"),
           ("ps", "l"): ("physical-storage", "list")}


def parse_table(text: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of an ASCII linstor table; a multi-line row's cells are joined with newlines."""
    lines = ANSI.sub("", text).splitlines()
    assert lines[0].startswith("+-") and lines[2].startswith("|=") and lines[-1].startswith("+-"), text
    assert len({len(line) for line in lines}) == 1, "not a rectangle"

    bars = [i for i, ch in enumerate(lines[1]) if ch == "|"]  # column bounds from the header (cells may hold "|")

    def cells(line: str) -> list[str]:
        return [line[a + 1:b].strip() for a, b in zip(bars, bars[1:], strict=False)]

    body = lines[3:-1]
    if any(line.startswith("|-") for line in body):  # multi-line rows: one group of lines per row
        groups: list[list[str]] = [[]]
        for line in body:
            if line.startswith("|-"):
                groups.append([])
            else:
                groups[-1].append(line)
    else:  # one row, or rows of one line: a line with an empty first cell continues the row above
        groups = []
        for line in body:
            if groups and not cells(line)[0]:
                groups[-1].append(line)
            else:
                groups.append([line])
    rows = [["\n".join(part for part in column if part) for column in zip(*(cells(line) for line in group), strict=True)]
            for group in groups]
    return cells(lines[1]), rows


@pytest.fixture(scope="module")
def populated(ready_lab: StorageLab) -> StorageLab:
    """A replicated resource with a snapshot, a resource group with a filter, and a satellite's error report."""
    with ready_lab.lab.lock:
        ctl = ready_lab.lab.linstor
        if "cli-three" not in ctl.rds:
            ctl.create_resource_group("cli-group", {"place_count": 2, "storage_pool": "linstor-pool",
                                                    "layer_stack": ["DRBD", "STORAGE"]}, {}, "for the CLI test")
            ctl.create_resource_definition("cli-three", "cli-group", GIB // 1024, ["DRBD", "STORAGE"])
            ctl.autoplace("cli-three", 3, storage_pools=["linstor-pool"])
            ctl.set_primary("cli-three", "lab-cp-2", True)
            ctl.create_snapshot("cli-three", "cli-snap")
            ctl._report_id("lab-cp-3", "Failed to create zpool: /dev/sdz is in use")  # as a failed satellite call does
    return ready_lab


def kubectl_linstor(tls_kubeconfig: Path, *args: str) -> str:
    proc = kubectl_exec(next(iter(KUBECTLS)), tls_kubeconfig, "linstor", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("command", list(COLUMNS), ids=[" ".join(c) for c in COLUMNS])
def test_list_commands_through_kubectl_exec(populated: StorageLab, tls_kubeconfig: Path, command: tuple[str, str]) -> None:
    out = kubectl_linstor(tls_kubeconfig, *command)
    header, rows = parse_table(out)
    assert header == COLUMNS[command]
    with populated.lab.lock:
        ctl = populated.lab.linstor
        assert out == linstor_cli.run(ctl, list(command))[1]  # the exec transport changes nothing
        rd = ctl.rds["cli-three"]
        minor = rd.volumes[0].minor
        pools = {(p.name, p.node) for per in ctl.pools.values() for p in per.values()}
    by = {tuple(r[:2]): dict(zip(header, r, strict=True)) for r in rows}
    if command[0] == "node":
        assert [r[0] for r in rows] == list(NODES) and {r[3] for r in rows} == {"Online"}
    elif command[0] == "storage-pool":
        assert {(r[0], r[1]) for r in rows} == pools
        assert all(r["State"] == "Ok" for r in by.values())
    elif command[0] == "resource":
        mine = [r for r in rows if r[0] == "cli-three"]
        assert sorted(r[1] for r in mine) == list(NODES)
        assert {r[2] for r in mine} == {"DRBD,STORAGE"} and {r[4] for r in mine} == {"Ok"}
        assert {r[5] for r in mine} == {"UpToDate"}
        assert by[("cli-three", "lab-cp-2")]["Usage"] == "InUse" and by[("cli-three", "lab-cp-1")]["Usage"] == "Unused"
    elif command[0] == "volume":
        mine = {k: v for k, v in by.items() if k[0] == "cli-three"}
        assert set(mine) == {("cli-three", n) for n in NODES}
        assert {v["MinorNr"] for v in mine.values()} == {str(minor)}
        assert {v["DeviceName"] for v in mine.values()} == {f"/dev/drbd{minor}"}
        assert {v["Repl"] for v in mine.values()} == {"Established(2)"}
        assert all(v["Allocated"].endswith("iB") for v in mine.values())
    elif command[0] == "resource-definition":
        assert by[("cli-three", "cli-group")]["Layers"] == "DRBD,STORAGE" and by[("cli-three", "cli-group")]["State"] == "ok"
    elif command[0] == "resource-group":
        row = next(r for r in rows if r[0] == "cli-group")
        # python-linstor SelectFilter.__str__: one line per field, lists as Python prints them
        assert row[1].splitlines() == ["PlaceCount: 2", "StoragePool(s): linstor-pool", "LayerStack: ['DRBD', 'STORAGE']"]
        assert row[2:] == ["0", "for the CLI test"]
        assert "|-" in ANSI.sub("", out)  # rows with multi-line cells are separated
    elif command[0] == "snapshot":
        row = next(r for r in rows if r[1] == "cli-snap")
        assert row[0] == "cli-three" and row[3] == "0: 1 GiB" and row[5] == "Successful"
        assert set(row[2].split(", ")) == set(rd.replicas) - {n for n, rep in rd.replicas.items() if rep.diskless}
    elif command[0] == "error-reports":
        row = next(r for r in rows if "zpool" in r[3])
        assert row[2] == "S|lab-cp-3" and row[3] == "StorageException: Failed to create zpool: /dev/sdz is in use"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[1])
    elif command[0] == "physical-storage":  # every disk of the lab is in a pool: an empty list
        assert rows == [] and populated.rest("v1/physical-storage").json() == []


def test_physical_storage_list_groups_free_devices_by_size() -> None:
    ctl = linstor_controller()
    for n in ("a", "b"):  # a free virtio disk on two nodes: one row, one line per node
        ctl.set_online(n, True, SatelliteFacts("9.2.16", True, {"/dev/sdb": DeviceInfo("/dev/sdb", 100 * GIB, None),
                                                               "/dev/vdb": DeviceInfo("/dev/vdb", 20 * GIB, None)}))
    header, rows = parse_table(linstor_cli.run(ctl, ["ps", "l"])[1])
    assert header == ["Size", "Rotational", "Nodes"]
    assert [r[:2] for r in rows] == [[str(20 * GIB), "False"]]
    assert [re.sub(r"\(.*\)", "", line) for line in rows[0][2].splitlines()] == ["a[/dev/vdb]", "b[/dev/vdb]"]
    validate(json.loads(linstor_cli.run(ctl, ["-m", "ps", "l"])[1])[0], "PhysicalStorage", array=True)


def test_aliases_colors_and_usage_errors(populated: StorageLab) -> None:
    with populated.lab.lock:
        ctl = populated.lab.linstor
        for short, long in ALIASES.items():
            assert linstor_cli.run(ctl, list(short)) == linstor_cli.run(ctl, list(long)), short
        code, colored, _ = linstor_cli.run(ctl, ["node", "list"])
        plain = linstor_cli.run(ctl, ["--no-color", "node", "list"])[1]
        pastable = linstor_cli.run(ctl, ["node", "list", "-p"])[1]
        bad = linstor_cli.run(ctl, ["resource", "create", "x"])
    assert code == 0 and "\x1b[1;32mOnline" in colored and ANSI.sub("", colored) == plain == pastable
    assert "\x1b" not in plain
    assert bad[0] == 2 and "linstor: error:" in bad[2]
    # -m: the REST answers as the client's machine-readable v1 output wraps them
    with populated.lab.lock:
        machine = {c: json.loads(linstor_cli.run(ctl, ["-m", "--output-version", "v1", *c])[1])
                   for c in (("r", "l"), ("n", "l"), ("err", "l"))}
    mine = [r for r in machine[("r", "l")][0] if r["name"] == "cli-three"]  # others may be busy (writes, resyncs)
    assert len(machine[("r", "l")]) == 1 and mine == populated.rest("v1/view/resources", params={"resources": "cli-three"}).json()
    assert machine[("n", "l")] == [populated.rest("v1/nodes").json()]
    assert machine[("err", "l")] == populated.rest("v1/error-reports").json()


def test_the_rest_answers_behind_the_lists_validate(populated: StorageLab) -> None:
    for path, schema in (("v1/error-reports", "ErrorReport"), ("v1/error-reports?withContent=true", "ErrorReport"),
                         ("v1/physical-storage", "PhysicalStorage"),
                         ("v1/resource-groups/cli-group/volume-groups", "VolumeGroup"),
                         ("v1/resource-groups/DfltRscGrp/volume-groups", "VolumeGroup"),
                         ("v1/view/snapshots", "Snapshot")):
        resp = populated.rest(path)
        assert resp.status_code == 200, path
        validate(resp.json(), schema, array=True)
    assert [v["volume_number"] for v in populated.rest("v1/resource-groups/cli-group/volume-groups").json()] == [0]
    report = next(r for r in populated.rest("v1/error-reports").json() if "zpool" in r["exception_message"])
    rid = report["filename"][len("ErrorReport-"):-len(".log")]
    shown = populated.rest(f"v1/error-reports/{rid}", params={"withContent": "true"}).json()  # `linstor err show ID`
    validate(shown, "ErrorReport", array=True)
    assert [r["filename"] for r in shown] == [report["filename"]] and "/dev/sdz is in use" in shown[0]["text"]
    one = populated.rest("v1/resource-groups/cli-group/volume-groups/0")
    assert one.status_code == 200
    validate(one.json(), "VolumeGroup")
