"""The helm command a step records is the one it runs (install_operator used to record a shorter one)."""

from __future__ import annotations

from runbook_lib.execution import Executor
from runbook_lib.helm import Helm
from runbook_lib.record import Record
from runbook_lib.redact import Redactor

SECRET = "s3cr3t-token-value"


def _helm(dry_run: bool) -> tuple[Helm, Record]:
    record = Record("t", "r", {}, Redactor([SECRET]))
    return Helm(Executor(record, dry_run=dry_run, approve=None, echo=lambda _: None), "helm", "~/kube/config"), record


def test_planned_upgrade_records_the_argv_that_would_run() -> None:
    helm, record = _helm(dry_run=True)
    chart = {"namespace": "piraeus-datastore", "version": "2.10.2", "values": {"installCRDs": "true"}}
    helm.upgrade_install("piraeus-operator", "oci://ghcr.io/piraeusdatastore/piraeus-operator", **chart, step="install")
    recorded = record.actions[-1].command
    assert recorded == helm.upgrade_install_argv("piraeus-operator", "oci://ghcr.io/piraeusdatastore/piraeus-operator",
                                                 **chart)
    assert recorded[:3] == ["helm", "--kubeconfig", recorded[2]] and "--wait" in recorded
    assert recorded[-2:] == ["--set", "installCRDs=true"]


def test_recorded_helm_argv_masks_secrets() -> None:
    helm, record = _helm(dry_run=True)
    helm.upgrade_install("r", "chart", namespace="ns", version="1.0.0", values={"token": SECRET}, step="install")
    saved = record.to_dict()
    assert SECRET not in str(saved)
    assert any("token=" in part for action in saved["actions"] for part in action["command"])
