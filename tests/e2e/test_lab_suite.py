"""01-04 on a fresh lab through ``runbook run`` (the e2e layer's shared run), then everything a record must satisfy.

That run serves several checks: the outcome, the manifests in the records
against the real schemas (piraeus.io CRDs from ``../shared/reference``, Talos's machine
config schema, and ``kubernetes-validate`` for core types), a second run of 01 that
changes nothing, and ``runbook verify``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from runbook_lib.lab import control
from tests.lab_helpers import LAB_PARAMS, copy_lab, output_tail, record, run_dir_of, runbook, write_params
from tests.reference import reference_path, talos_schema_def

NOTEBOOKS = ["01-partition", "02-extensions-and-upgrade", "03-piraeus-install", "04-storage-classes"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory, installed):
    """The shared 01-04 run, copied with its lab and its output folder (later tests add runs and tamper)."""
    base = tmp_path_factory.mktemp("suite")
    lab_dir, out = copy_lab(installed.lab, base / "lab", start=True), base / "out"
    shutil.copytree(installed.run.parents[1], out)
    yield lab_dir, out, out / installed.run.parent.name / installed.run.name
    control.remove(lab_dir)


def manifests_of(run_dir: Path) -> list[dict]:
    docs = []
    for name in NOTEBOOKS:
        for action in record(run_dir, name)["actions"]:
            if action["manifest"]:
                docs += [d for d in yaml.safe_load_all(action["manifest"]) if d]
    return docs


def test_every_notebook_succeeds_with_all_checks(suite) -> None:
    _, _, run = suite
    index = json.loads((run / "run.json").read_text())
    assert index["status"] == "succeeded" and [n["status"] for n in index["notebooks"]] == ["succeeded"] * 4
    for name in NOTEBOOKS:
        rec = record(run, name)
        assert rec["status"] == "succeeded" and rec["checks"] and all(c["ok"] for c in rec["checks"]), name
    actions = record(run, "03-piraeus-install")["actions"]
    helm = next(a for a in actions if a["kind"] == "helm")
    assert "oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus" in helm["command"]
    assert "installCRDs=true" in helm["command"]
    kinds = {d.get("kind"): d for d in manifests_of(run)}
    override = [d for d in manifests_of(run) if d.get("metadata", {}).get("name") == "talos-loader-override"][0]
    volumes = {v["name"]: v for v in override["spec"]["podTemplate"]["spec"]["volumes"]}
    assert volumes["etc-lvm-backup"]["hostPath"]["path"] == "/var/etc/lvm/backup"
    assert {"LinstorCluster", "StorageClass", "VolumeConfig", "RawVolumeConfig"} <= set(kinds)


@pytest.mark.reference
def test_record_manifests_validate_against_real_schemas(suite) -> None:
    _, _, run = suite
    crds = {}
    for path in reference_path("crds", "piraeus").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for ver in crd["spec"]["versions"]:
            crds[(f"{crd['spec']['group']}/{ver['name']}", crd["spec"]["names"]["kind"])] = ver["schema"]["openAPIV3Schema"]
    talos_defs = {"VolumeConfig": "block.VolumeConfigV1Alpha1", "UserVolumeConfig": "block.UserVolumeConfigV1Alpha1",
                  "RawVolumeConfig": "block.RawVolumeConfigV1Alpha1"}
    checked = 0
    for doc in manifests_of(run):
        key = (doc.get("apiVersion"), doc.get("kind"))
        if doc.get("apiVersion") == "v1alpha1" and doc.get("kind") in talos_defs:
            jsonschema.Draft202012Validator(talos_schema_def("v1.12.11", talos_defs[doc["kind"]])).validate(doc)
        elif key in crds:
            jsonschema.Draft7Validator(crds[key]).validate(doc)
        elif "machine" in doc:  # 02's machine-config patch: its kernel modules against Talos's schema
            for module in doc["machine"]["kernel"]["modules"]:
                jsonschema.Draft202012Validator(talos_schema_def("v1.12.11", "v1alpha1.KernelModuleConfig")).validate(module)
        else:
            kubernetes_validate.validate(doc, "1.33", strict=True)
        checked += 1
    assert checked >= 15


def test_second_run_applies_nothing_and_verifies(suite) -> None:
    """01 again through the command changes nothing; the new run verifies and chains to the first, and tampering
    with the first run's record is caught. (That 02 and 03 apply nothing a second time is checked on the in-process
    lab: tests/lab/test_image_merge_lab.py and test_layout_lab_runbooks.py.)"""
    lab_dir, out, first = suite
    again = runbook("run", "-f", str(LAB_PARAMS), "01", "--out", str(out), lab_dir=lab_dir, check=True)
    run = run_dir_of(again)
    outcomes = {a["outcome"] for a in record(run, "01-partition")["actions"]}
    assert outcomes == {"unchanged"}, outcomes
    assert runbook("verify", str(run), lab_dir=lab_dir).returncode == 0
    assert json.loads((run / "run.json").read_text())["previous_run_sha256"]
    nb = first / "03-piraeus-install.ipynb"
    nb.write_text(nb.read_text().replace("LINSTOR node", "LINSTOR n0de"))
    bad = runbook("verify", str(run), lab_dir=lab_dir)
    assert bad.returncode != 0 and "03-piraeus-install.ipynb" in bad.stderr


# 06's fault scenarios on the same lab (they need only 03's HA controller and 04's replicated class); the plain
# drill runs in test_lab_drill_honesty.py


def test_drill_names_lost_and_diverged_records_when_drbd_ignores_quorum(suite, tmp_path) -> None:
    """A cut-off node that keeps writing (quorum not enforced) diverges from the failed-over copy.

    The drill fails naming the split brain, names the lost and diverged records it could compare and, for a copy it
    could not read back, says so and why. Which copies can be read is a race the lab models as a cluster has it: the
    HA controller's agent on a node whose copy may promote evicts the pods on every node it is not Connected to
    (piraeus-ha-controller ``pkg/agent/reconcile_failover.go``), so after a split brain a reader on either side can be
    evicted (``VolumeWithoutQuorum``), sooner or later than it finishes depending on how busy the machine is. No
    outcome claims the data is fine.
    """
    lab_dir, out, _ = suite
    params = write_params(tmp_path / "isolate.yaml", failover={"fault": "isolate", "quorum_loss": False, "steady_s": 10})
    control.fault_add("quorum-off", d=lab_dir)
    try:
        proc = runbook("run", "-f", str(params), "06", "--out", str(out), lab_dir=lab_dir)
    finally:
        control.fault_clear(lab_dir)
    assert proc.returncode != 0
    rec = record(run_dir_of(proc), "06-failover-drill")
    failed = {c["name"]: c["observed"] for c in rec["checks"] if not c["ok"]}
    assert "failover: resync completes" in failed and "StandAlone" in str(failed["failover: resync completes"])
    integrity = rec["results"]["integrity"]
    assert not integrity["ok"]
    diverged = failed["replicas hold identical records"]
    # each copy that could not be read says why: the HA controller evicted its reader
    for node in integrity["unreadable"]:
        assert f"unreadable on {node}: pod removed before it finished (VolumeWithoutQuorum" in str(diverged), failed
    # the cut-off copy, when it and a failed-over copy could be read, is compared with it: the records that differ
    # are named (three diskful copies of the replicated class)
    [isolated] = {a["target"] for a in rec["actions"] if a["step"].startswith("fault: isolate ")}
    if isolated not in integrity["unreadable"] and len(integrity["unreadable"]) < 2:
        assert "differ between replicas" in str(diverged) and integrity["diverged_records"] > 0, failed
    for lost in integrity["lost"]:
        assert " on lab-cp-" in lost, integrity
    # the test volume (and its split brain) is cleaned up with it
    assert any(a["step"].startswith("delete PersistentVolumeClaim") and a["outcome"] == "applied" for a in rec["actions"])


def test_a_partitioned_writer_freezes_and_fails_over_without_divergence(suite, tmp_path) -> None:
    """The fault matrix's network partition: the cut-off node loses quorum, its writes freeze (suspend-io), the
    HA controller moves the pod, the frozen primary demotes itself on reconnect and resyncs; nothing diverges."""
    lab_dir, out, _ = suite
    params = write_params(tmp_path / "partition.yaml", failover={"fault": "isolate", "quorum_loss": False, "steady_s": 10})
    proc = runbook("run", "-f", str(params), "06", "--out", str(out), lab_dir=lab_dir)
    rec = record(run_dir_of(proc), "06-failover-drill")
    failed = [c for c in rec["checks"] if not c["ok"]]
    assert proc.returncode == 0 and not failed, f"{failed}\n{output_tail(proc)}"
    phases = [p["phase"] for p in rec["results"]["phases"]]
    assert {"node NotReady", "pod running elsewhere", "node back", "resync done"} <= set(phases)
    adds = [a for a in rec["actions"] if a["kind"] == "lab" and a["command"][2:4] == ["fault", "add"]]
    assert len(adds) == 2 and all("partition" in a["command"] for a in adds)  # cut off from both peers
    assert not control.fault_list(lab_dir)
