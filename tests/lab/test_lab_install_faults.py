"""03 and 04's fault scenarios on an in-process lab: a failed helm call and a full pool stop them cleanly.

The runbooks' own step functions are called in the order, and with the arguments, that notebooks
03-piraeus-install and 04-storage-classes use, on one lab whose nodes are left as 01/02 leave them
(tests/storage_lab.prepare_node). 03 reaches the lab through its helm shim (a real subprocess); the
faults are the lab's own (``helm-fail``, ``pool-full``) added over its control API. The record is the
session's; its final status is what ``runbook run`` makes of it (``runner.merge_record``), and the
error the operator reads is the exception the failing step raises. The tests run in order: the first
installs Piraeus, the second needs it (and runs 03 itself when alone); each clears its fault and ends with a run that succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import yaml
from kubernetes.client import rest as kube_client

from runbook_lib import compat, kube
from runbook_lib.errors import HelmError, PreconditionFailed
from runbook_lib.params import parse_params
from runbook_lib.record import RECORD_ENV
from runbook_lib.runner import merge_record
from runbook_lib.session import RUN_ID_ENV, Session
from runbook_lib.steps import nb03_piraeus_install as setup
from runbook_lib.steps import nb04_storage_classes as classes
from tests.lab_helpers import LAB_PARAMS
from tests.storage_lab import NODES, StorageLab, cluster_ready, prepare_node, start_lab, stop_lab

SCALE = 2000.0  # lab seconds per second


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageLab]:
    s = start_lab(tmp_path_factory.mktemp("install-faults") / "lab", scale=SCALE)
    env = pytest.MonkeyPatch()
    env.setenv(RUN_ID_ENV, "test-lab-install-faults")  # one run: its sessions share the cluster lock
    env.setenv(RECORD_ENV, str(s.dir / "record.json"))  # where `runbook run` points a notebook's record
    try:
        for name in NODES:
            prepare_node(s, name)  # extensions, modules and the linstor-storage volume, no operator yet
        yield s
    finally:
        env.undo()
        stop_lab(s)


def session(s: StorageLab, notebook: str, tmp: Path, **params) -> Session:
    """A session on parameters/lab.yaml and the in-process lab's connection (what ``Session.begin`` builds)."""
    connection = s.connection
    data = yaml.safe_load(LAB_PARAMS.read_text())
    data.update(backup_dir=str(tmp / "etcd-backups"), **params)
    data["lab"] = {**data["lab"], "time_scale": SCALE}
    return Session.open(notebook, parse_params(data), connection)


def final_record(status: str) -> dict:
    """The notebook's record as ``runbook run`` seals it once the notebook ended with ``status``."""
    return merge_record(nbformat.v4.new_notebook(), final_status=status)


def run_03(rb: Session) -> None:
    """Notebook 03's cells, in order."""
    setup.install_operator(rb)
    parts = setup.find_partitions(rb)
    setup.wipe_partitions(rb, parts)
    after_wipe = setup.find_partitions(rb)
    setup.check_after_wipe(rb, after_wipe)
    docs = setup.cluster_manifests(rb, after_wipe)
    setup.apply_cluster(rb, docs)
    cluster = setup.wait_cluster(rb)
    setup.verify(rb, cluster)
    setup.verify_partitions(rb, setup.find_partitions(rb))
    compat.preflight(rb)
    rb.finish()


def run_04(rb: Session) -> None:
    """Notebook 04's cells, in order (without the figures)."""
    scs = classes.classes(rb)
    problems = [p for sc in scs for p in classes.check_parameters(sc)]
    rb.check("StorageClass parameters pass linstor-csi's rules", not problems, problems or "no problems", "no problems")
    classes.apply_classes(rb, scs)
    proofs = [p for p in (classes.prove(rb, sc) for sc in scs) if p is not None]
    if proofs:
        frame = classes.pd.concat(proofs, ignore_index=True)
        rb.result("placement", classes.placement_table(frame).astype(str).to_dict(orient="records"))
    rb.finish()


def piraeus_installed(s: StorageLab) -> bool:
    try:
        return cluster_ready(s)
    except kube_client.ApiException:
        return False


def test_helm_failure_stops_03_before_anything_else_and_rerun_recovers(lab: StorageLab, tmp_path: Path) -> None:
    lab.add_fault("helm-fail", count=1)
    rb = session(lab, "03-piraeus-install", tmp_path)
    try:
        with pytest.raises(HelmError) as info:
            run_03(rb)
    finally:
        lab.clear_faults()
    assert "helm" in str(info.value).lower(), info.value
    rec = final_record("failed")
    assert rec["status"] == "failed"
    assert [a.step for a in rb.record.actions] == [a["step"] for a in rec["actions"]]
    assert not [a for a in rec["actions"] if a["step"].startswith(("wipe", "apply Linstor"))]
    # the nodes still need their wipe: the failed helm call came before it
    assert all(p.needs_wipe for p in setup.find_partitions(rb))

    again = session(lab, "03-piraeus-install", tmp_path)
    run_03(again)
    assert final_record("succeeded")["status"] == "succeeded"
    assert any(a.step.startswith("wipe") and a.outcome == "applied" for a in again.record.actions)


def test_full_pool_stops_04_naming_pool_and_node_and_cleans_up(lab: StorageLab, tmp_path: Path) -> None:
    if not piraeus_installed(lab):  # run on its own: 03 first, as the e2e layer's shared run does
        run_03(session(lab, "03-piraeus-install", tmp_path))
    lab.add_fault("pool-full", node="lab-cp-1")
    # node_timeout bounds the wait should the full pool go unnoticed (the default would wait 15 minutes)
    rb = session(lab, "04-storage-classes", tmp_path, node_timeout=60)
    try:
        with pytest.raises(PreconditionFailed) as info:
            run_04(rb)
    finally:
        lab.clear_faults()
    error = str(info.value)
    assert "storage pool linstor-pool on lab-cp-1 (0.0 GiB free)" in error, error
    assert "What to do: free space in or grow the full pool" in error, error
    rec = final_record("failed")
    assert rec["status"] == "failed"
    steps = [a["step"] for a in rec["actions"]]
    cls = next(s.rsplit(" ", 1)[-1] for s in reversed(steps) if s.startswith("test PersistentVolumeClaim"))
    # nothing half done: the failing class's test pod and claim were deleted, and that was the last thing done
    assert steps[-2:] == [f"delete test Pod for {cls}", f"delete test PersistentVolumeClaim for {cls}"]
    assert all(a["outcome"] == "applied" for a in rec["actions"][-2:])
    claims = kube.list_objects(kube.connect(str(lab.kubeconfig)), "/api/v1/persistentvolumeclaims")
    assert not [c["metadata"]["name"] for c in claims if c["metadata"]["name"].startswith("runbook-probe-")]

    again = session(lab, "04-storage-classes", tmp_path)
    run_04(again)
    rec = final_record("succeeded")
    assert rec["status"] == "succeeded" and all(c["ok"] for c in rec["checks"])
