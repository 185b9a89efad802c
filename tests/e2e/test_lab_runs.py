"""End to end through the real command: ``runbook run`` on a private lab.

These run papermill, the kernel, the lab's ``talosctl`` subprocesses and the Kubernetes
client over HTTP: the same code path as against a real cluster.
"""

from __future__ import annotations

from pathlib import Path

from runbook_lib.lab import control
from tests.lab_helpers import LAB_PARAMS, record, run_dir_of, runbook, write_params


def test_partition_applies_config_then_reset_node_by_node(installed) -> None:
    run1 = installed.run  # the e2e layer's shared 01-04 run
    rec = record(run1, "01-partition")
    assert rec["status"] == "succeeded" and all(c["ok"] for c in rec["checks"])
    for node in ("lab-cp-1", "lab-cp-2", "lab-cp-3"):
        steps = [a for a in rec["actions"] if a["target"] == node]
        assert [a["step"].split()[0] for a in steps] == ["patch", "reset"]
        assert [a["outcome"] for a in steps] == ["applied", "applied"]
        assert steps[1]["destructive"] and "--system-labels-to-wipe" in steps[1]["command"]
        assert steps[0]["started_at"] < steps[1]["started_at"]
    # nodes are done one at a time: each node's reset ends before the next node's patch
    resets = [a for a in rec["actions"] if a["step"].startswith("reset")]
    applies = [a for a in rec["actions"] if a["step"].startswith("patch machineconfig")]
    assert all(r["started_at"] < a["started_at"] for r, a in zip(resets, applies[1:], strict=False))

    assert (run1 / ".gitignore").exists()  # lab runs stay out of git


def test_dry_run_records_the_plan_and_changes_nothing(lab_dir: Path, tmp_path: Path) -> None:
    proc = runbook("run", "-f", str(LAB_PARAMS), "01", "--out", str(tmp_path), "-p", "dry_run", "true",
                   lab_dir=lab_dir, check=True)
    rec = record(run_dir_of(proc), "01-partition")
    assert rec["parameters"]["dry_run"] is True
    assert rec["actions"] and {a["outcome"] for a in rec["actions"]} == {"planned"}
    # the lab still has the installer's layout: EPHEMERAL over the whole disk, no user volume
    import subprocess

    from runbook_lib.talos import parse_resources

    info = control.connection(lab_dir)
    out = subprocess.run([info["talosctl"], "--talosconfig", info["talosconfig"], "-n", "10.5.0.2", "get",
                          "volumestatus", "-o", "json"], capture_output=True, text=True, check=True).stdout
    vols = {r["metadata"]["id"]: r["spec"] for r in parse_resources(out)}
    assert not {"u-linstor-storage", "r-linstor-storage"} & set(vols) and vols["EPHEMERAL"]["size"] > 400 * 10**9


def test_real_cluster_mode_stops_for_missing_approval_before_any_change(lab_dir: Path, tmp_path: Path) -> None:
    """target talos against the lab's endpoints: plan by default, approvals required to apply."""
    info = control.start(None, lab_dir)
    common = dict(target="talos", talosctl=info["talosctl"], talosconfig=info["talosconfig"],
                  kubeconfig=info["kubeconfig"], cluster_name="lab-as-real",
                  failover={"fault": "reboot", "quorum_loss_fault": "reboot"})  # lab.yaml's node-down is lab-only
    params = write_params(tmp_path / "real.yaml", dry_run=False, confirm=["reset lab-cp-1"], **common)
    proc = runbook("run", "-f", str(params), "01", "--out", str(tmp_path / "out"), lab_dir=lab_dir)
    assert proc.returncode == 1
    assert "reset lab-cp-2" in proc.stdout  # the first approval missing is named exactly
    rec = record(run_dir_of(proc), "01-partition")
    assert rec["status"] == "failed"
    assert not [a for a in rec["actions"] if a["outcome"] == "applied"]  # checked before the first change
    assert not (tmp_path / "out" / "lab-as-real" / run_dir_of(proc).name / ".gitignore").exists()


def test_params_check_command(tmp_path: Path) -> None:
    for name in ("lab.yaml", "example-homelab.yaml"):
        assert runbook("params", "check", str(LAB_PARAMS.parent / name), lab_dir=tmp_path).returncode == 0
    bad = write_params(tmp_path / "bad.yaml", nodes=[{"name": "n1", "address": "10.0.0.300", "role": "controlplane"},
                                                     {"name": "N_2", "address": "10.0.0.2", "role": "boss"}],
                       storage={"volume_name": "x" * 40}, typo_key=1)
    proc = runbook("params", "check", str(bad), lab_dir=tmp_path)
    assert proc.returncode == 2
    for path in ("nodes[0].address", "nodes[1].name", "nodes[1].role", "storage.volume_name", "typo_key"):
        assert path in proc.stderr, (path, proc.stderr)
    proc = runbook("run", "-f", str(bad), "01", "--out", str(tmp_path / "out"), lab_dir=tmp_path)
    assert proc.returncode == 2 and not (tmp_path / "out").exists()

