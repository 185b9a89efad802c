"""02 on the lab: a node installed with other extensions and a kernel argument keeps both (issue 13, item 5),
and a second run patches and upgrades nothing, leaving each kernel module once (items 3 and 4)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import config as k8s_config

from runbook_lib import machineconfig
from runbook_lib.lab import control
from runbook_lib.lab import server as lab_server
from runbook_lib.lab.assembly import create_lab
from runbook_lib.lab.talos import factory_api
from runbook_lib.lab.talos.machine_config import v1alpha1_doc
from runbook_lib.params import parse_params
from runbook_lib.session import Session
from runbook_lib.steps import nb02_extensions_and_upgrade as upgrade
from tests.storage_lab import StorageLab, _write_connection_files, stop_lab

pytestmark = pytest.mark.lab
ISCSI = "siderolabs/iscsi-tools"
ARG = "console=ttyS0"


def start(d: Path, nodes: list[dict]) -> StorageLab:
    d.mkdir(parents=True)
    options = {**control.default_options(), "time_scale": 2000.0, "nodes": nodes,
               "initial_extensions": [ISCSI], "initial_kernel_args": [ARG]}
    lab = create_lab(options)
    srv = lab_server.LabHTTPServer(lab, None)
    srv.factory_handler = factory_api.handle
    _write_connection_files(d, srv.url, lab)
    srv.start_background()
    api = k8s_config.new_client_from_config(str(d / "kubeconfig"))
    return StorageLab(lab, srv, d, api, httpx.Client(base_url=srv.url, timeout=10))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageLab]:
    # one control-plane node keeps the test cheap: what it shows holds per node
    s = start(tmp_path_factory.mktemp("image") / "lab", control.default_options()["nodes"][:1])
    try:
        yield s
    finally:
        stop_lab(s)


def session(s: StorageLab, tmp: Path, **params) -> Session:
    connection = s.connection
    data = {"backup_dir": str(tmp / "etcd-backups"), "node_timeout": 120, "nodes": s.lab.options["nodes"], **params}
    return Session.open("02-extensions-and-upgrade", parse_params(data), connection)


def run_02(rb: Session) -> upgrade.ImagePlan:
    plan = upgrade.prepare_installer(rb)
    upgrade.apply_config_patch(rb, plan)
    upgrade.rolling_upgrade(rb, plan, timeout=rb.params.node_timeout)
    upgrade.verify(rb, plan)
    rb.finish()  # releases the cluster lock for the next session
    return plan


def modules_of(s: StorageLab, node: str) -> list[str]:
    with s.lab.lock:
        docs = s.lab.talos.nodes[node].config
    return [m["name"] for m in machineconfig.config_modules(docs)]


def test_02_keeps_the_nodes_extensions_and_kernel_args_and_a_rerun_changes_nothing(lab: StorageLab,
                                                                                   tmp_path: Path) -> None:
    with lab.lab.lock:
        before = {n.name: n.schematic for n in lab.lab.talos.nodes.values()}
    assert len(set(before.values())) == 1 and None not in before.values()

    rb = session(lab, tmp_path)
    plan = run_02(rb)
    for name, ns in plan.nodes.items():
        assert ns.current_id == before[name]
        assert ns.kept == [ISCSI] and ns.added == ["siderolabs/drbd", "siderolabs/zfs"]
        assert f"= kernel argument {ARG}" in ns.difference()
        assert ns.merged["customization"]["extraKernelArgs"] == [ARG]
    assert [c.name for c in rb.record.checks if not c.ok] == []
    with lab.lab.lock:
        for node in lab.lab.talos.nodes.values():
            assert node.extensions == [ISCSI, "siderolabs/drbd", "siderolabs/zfs"]
            assert node.schematic == plan.nodes[node.name].factory_id
    cmdline_checks = [c for c in rb.record.checks if c.name.endswith("kernel arguments kept")]
    assert len(cmdline_checks) == 1 and all(c.ok for c in cmdline_checks)
    # the record keeps the patches (what was added), never a node's configuration
    patched = [a for a in rb.record.actions if a.step.startswith("patch machine config") and a.outcome == "applied"]
    assert len(patched) == 1
    for a in patched:
        assert "cluster" not in a.manifest and "ca:" not in a.manifest and "zfs_arc_max=4294967296" in a.manifest

    again = session(lab, tmp_path)
    plan = run_02(again)
    assert [a.outcome for a in again.record.actions] == ["unchanged"] * 2  # the patch and the upgrade
    assert [c.name for c in again.record.checks if not c.ok] == []
    for name in plan.nodes:
        counts = Counter(modules_of(lab, name))
        assert counts == {"drbd": 1, "drbd_transport_tcp": 1, "zfs": 1}, counts

    # a changed zfs_arc_max replaces the list in one call (delete, then set) instead of appending a second zfs
    rb = session(lab, tmp_path, storage={"zfs_arc_max": "2GiB"})
    first = next(iter(upgrade.config_patches(rb, plan).values()))
    assert len(first) == 2 and yaml.safe_load(first[0]) == {"machine": {"kernel": {"modules": {"$patch": "delete"}}}}
    upgrade.apply_config_patch(rb, plan)
    rb.lock.release()
    for name in plan.nodes:
        with lab.lab.lock:
            mods = machineconfig.config_modules(lab.lab.talos.nodes[name].config)
            image = v1alpha1_doc(lab.lab.talos.nodes[name].config)["machine"]["install"]["image"]
        assert [m["name"] for m in mods] == ["drbd", "drbd_transport_tcp", "zfs"] and image == plan.nodes[name].image
        assert mods[2]["parameters"] == [f"zfs_arc_max={2 * 1024**3}"]


def test_per_node_installers_and_a_node_that_is_not_a_storage_node_is_never_patched(tmp_path: Path) -> None:
    """lab-cp-2 was installed from the vanilla installer, lab-cp-3 is listed with ``storage: false``."""
    s = start(tmp_path / "lab", control.default_options()["nodes"])
    nodes = [dict(n) for n in s.lab.options["nodes"]]
    nodes[2]["storage"] = False
    try:
        with s.lab.lock:
            node = s.lab.talos.nodes["lab-cp-2"]
            node.schematic, node.extensions = None, []
            before = yaml.safe_dump(s.lab.talos.nodes["lab-cp-3"].config)
        rb = session(s, tmp_path, nodes=nodes)
        plan = upgrade.prepare_installer(rb)
        assert list(plan.nodes) == ["lab-cp-1", "lab-cp-2"] and list(upgrade.config_patches(rb, plan)) == list(plan.nodes)
        upgrade.apply_config_patch(rb, plan)
        rb.lock.release()
        with s.lab.lock:
            assert yaml.safe_dump(s.lab.talos.nodes["lab-cp-3"].config) == before
    finally:
        stop_lab(s)
    assert len(plan.images) == 2 and all(i.startswith("factory.talos.dev/metal-installer/") for i in plan.images)
    assert plan.nodes["lab-cp-1"].kept == [ISCSI] and plan.nodes["lab-cp-2"].kept == []
    assert plan.nodes["lab-cp-2"].factory_id == "98442b5bb4e8d050f30978ce3e6ec22e7bf534d57cafcd51313235128057e612"
    assert {a.target for a in rb.record.actions} == {"lab-cp-1", "lab-cp-2"}
    assert all("10.5.0.4" not in " ".join(a.command or []) for a in rb.record.actions)
