"""02 on the lab: a node installed with other extensions and a kernel argument keeps both (issue 13, item 5),
and a second run patches and upgrades nothing, leaving each kernel module once (items 3 and 4)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runbook_lib import machineconfig, upgrade
from runbook_lib.lab import control, factory_api
from runbook_lib.lab import server as lab_server
from runbook_lib.lab.talos_model import v1alpha1_doc
from runbook_lib.params import parse_params
from runbook_lib.session import Session

from .test_lab_piraeus import StorageLab, _write_connection_files, stop_lab

pytestmark = pytest.mark.lab
ISCSI = "siderolabs/iscsi-tools"
ARG = "console=ttyS0"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageLab]:
    d = tmp_path_factory.mktemp("image") / "lab"
    d.mkdir(parents=True)
    # one control-plane node keeps the test cheap: what it shows holds per node
    options = {**control.default_options(), "time_scale": 2000.0, "nodes": control.default_options()["nodes"][:1],
               "initial_extensions": [ISCSI], "initial_kernel_args": [ARG]}
    lab = lab_server.Lab.create(options)
    srv = lab_server.LabHTTPServer(lab, None)
    srv.factory_handler = factory_api.handle
    _write_connection_files(d, srv.url, lab)
    srv.start_background()
    from kubernetes import config as k8s_config
    import httpx

    api = k8s_config.new_client_from_config(str(d / "kubeconfig"))
    s = StorageLab(lab, srv, d, api, httpx.Client(base_url=srv.url, timeout=10))
    try:
        yield s
    finally:
        stop_lab(s)


def session(s: StorageLab, tmp: Path, **params) -> Session:
    connection = {"lab_dir": str(s.dir), "url": s.server.url, "kubeconfig": str(s.dir / "kubeconfig"),
                  "talosconfig": str(s.dir / "talosconfig"), "talosctl": str(s.dir / "bin" / "talosctl"),
                  "helm": str(s.dir / "bin" / "helm"), "factory_url": f"{s.server.url}/factory"}
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
    run_02(again)
    assert [a.outcome for a in again.record.actions] == ["unchanged"] * 2  # the patch and the upgrade
    assert [c.name for c in again.record.checks if not c.ok] == []
    for name in plan.nodes:
        counts = Counter(modules_of(lab, name))
        assert counts == {"drbd": 1, "drbd_transport_tcp": 1, "zfs": 1}, counts


def test_a_changed_zfs_arc_max_replaces_the_module_list_instead_of_appending(lab: StorageLab, tmp_path: Path) -> None:
    rb = session(lab, tmp_path, storage={"zfs_arc_max": "2GiB"})
    plan = upgrade.prepare_installer(rb)
    patches = upgrade.config_patches(rb, plan)
    first = next(iter(patches.values()))
    assert len(first) == 2 and yaml.safe_load(first[0]) == {"machine": {"kernel": {"modules": {"$patch": "delete"}}}}
    upgrade.apply_config_patch(rb, plan)
    rb.lock.release()
    for name in plan.nodes:
        with lab.lab.lock:
            mods = machineconfig.config_modules(lab.lab.talos.nodes[name].config)
        assert [m["name"] for m in mods] == ["drbd", "drbd_transport_tcp", "zfs"]
        assert mods[2]["parameters"] == [f"zfs_arc_max={2 * 1024**3}"]
        with lab.lab.lock:
            assert v1alpha1_doc(lab.lab.talos.nodes[name].config)["machine"]["install"]["image"] == plan.nodes[name].image
