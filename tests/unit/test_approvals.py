"""Scoped approvals in the parameter file: each names one step and one target, old entries are refused."""

from __future__ import annotations

import pytest

from runbook_lib.errors import ApprovalRequired, ParamsError
from runbook_lib.params import ACTIONS, parse_params

# a real-cluster target needs its connection files named (tests/test_bad_input.py)
TALOS = {"target": "talos", "talosconfig": "talosconfig", "kubeconfig": "kubeconfig"}


def problems(data: dict) -> list[str]:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    return info.value.problems


def test_actions_are_the_contracts_list() -> None:
    assert ACTIONS == ("reset", "wipe", "upgrade", "drill", "quorum-loss", "benchmark")


@pytest.mark.parametrize(("entry", "named"), [("reboot lab-cp-2", "'upgrade lab-cp-2'"),
                                               ("reboot lab-cp-2", "'drill lab-cp-2'"),
                                               ("shutdown lab-cp-3", "'drill lab-cp-3'")])
def test_old_reboot_and_shutdown_entries_are_refused_with_the_new_name(entry: str, named: str) -> None:
    found = problems({"confirm": ["upgrade lab-cp-1", entry]})
    assert len(found) == 1 and found[0].startswith("confirm[1]: ") and named in found[0]
    assert "no longer an approval" in found[0]


def test_unknown_nodes_and_classes_are_refused_with_their_path() -> None:
    found = problems({"confirm": ["drill lab-cp-9", "benchmark fast", "benchmark replicated", "quorum-loss lab-cp-1"]})
    assert found == ["confirm[0]: node 'lab-cp-9' is not in nodes (nodes: lab-cp-1, lab-cp-2, lab-cp-3)",
                     "confirm[1]: storage class 'fast' is not in bench.classes (local, replicated)"]


def test_an_approval_authorises_one_step_only_and_says_what_it_destroys() -> None:
    p = parse_params({"confirm": ["upgrade lab-cp-1"]})
    p.require_approval("upgrade", "lab-cp-1", "upgrade lab-cp-1")
    with pytest.raises(ApprovalRequired) as info:
        p.require_approval("drill", "lab-cp-1", "failover drill")
    assert info.value.entry == "drill lab-cp-1" and "06: faults the writer's node" in str(info.value)
    with pytest.raises(ApprovalRequired, match=r"wipes all of /var"):
        p.require_approval("reset", "lab-cp-1", "reset EPHEMERAL lab-cp-1")


def test_quorum_loss_is_off_by_default_on_a_real_cluster_only() -> None:
    assert parse_params({}).failover.quorum_loss is True
    assert parse_params({**TALOS}).failover.quorum_loss is False
    assert parse_params({**TALOS, "failover": {"fault": "shutdown"}}).failover.quorum_loss is False
    assert parse_params({**TALOS, "failover": {"quorum_loss": True}}).failover.quorum_loss is True


def test_enforced_safety() -> None:
    assert parse_params({**TALOS}).enforces_safety
    assert not parse_params({}).enforces_safety
    assert parse_params({"lab": {"enforce_safety": True}}).enforces_safety


def test_backup_dir_never_under_outputs() -> None:
    assert parse_params({"backup_dir": "~/etcd-backups"}).backup_dir == "~/etcd-backups"
    found = problems({"backup_dir": "outputs/homelab/etcd"})
    assert len(found) == 1 and found[0].startswith("backup_dir: ") and "every cluster Secret" in found[0]
