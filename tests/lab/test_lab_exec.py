"""``kubectl exec`` into the lab's LINSTOR controller runs ``linstor`` against the lab's model.

Upstream kubectl (`.ci/install-kubectl`) over WebSocket (v5.channel.k8s.io); the tables are the
LINSTOR client's layout (LINBIT/linstor-client linstor_client/table.py), ASCII without a terminal.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from runbook_lib.lab.linstor import cli as linstor_cli
from tests.lab.test_lab_kubectl import KUBECTLS
from tests.storage_lab import NS, StorageLab


def kubectl_exec(version: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    binary = KUBECTLS[version]
    if not binary.exists():
        pytest.skip(f"kubectl {version} not installed ({binary}); run .ci/install-kubectl")
    return subprocess.run([str(binary), "--kubeconfig", str(kubeconfig), "-n", NS, "exec", "deploy/linstor-controller",
                           "--", *args], capture_output=True, text=True, timeout=120,
                          env={"HOME": str(kubeconfig.parent), "PATH": os.environ.get("PATH", "")})


@pytest.mark.parametrize("version", list(KUBECTLS))
def test_linstor_node_list_through_kubectl_exec(ready_lab: StorageLab, tls_kubeconfig: Path, version: str) -> None:
    proc = kubectl_exec(version, tls_kubeconfig, "linstor", "node", "list")
    assert proc.returncode == 0, proc.stderr
    # no terminal and no UTF-8 locale in the piraeus-server image: ASCII frames, ANSI colors (linstor_client_main.py)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).splitlines()
    assert lines[0].startswith("+-") and lines[2].startswith("|=") and lines[-1].startswith("+-")
    assert [c.strip() for c in lines[1].strip("|").split("|")] == ["Node", "NodeType", "Addresses", "State"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:-1]]
    with ready_lab.lab.lock:
        addresses = {n: node.address for n, node in ready_lab.lab.linstor.nodes.items()}
    assert rows == [[n, "SATELLITE", f"{addresses[n]}:3366 (PLAIN)", "Online"] for n in ("lab-cp-1", "lab-cp-2", "lab-cp-3")]
    assert len({len(line) for line in lines}) == 1  # a rectangle


def test_storage_pool_list_and_errors_through_kubectl_exec(ready_lab: StorageLab, tls_kubeconfig: Path) -> None:
    version = next(iter(KUBECTLS))
    proc = kubectl_exec(version, tls_kubeconfig, "linstor", "storage-pool", "list")
    assert proc.returncode == 0, proc.stderr
    with ready_lab.lab.lock:
        assert proc.stdout == linstor_cli.storage_pool_list(ready_lab.lab.linstor)
    header = [c.strip() for c in proc.stdout.splitlines()[1].strip("|").split("|")]
    assert header == ["StoragePool", "Node", "Driver", "PoolName", "FreeCapacity", "TotalCapacity", "CanSnapshots",
                      "State", "SharedName"]
    bad = kubectl_exec(version, tls_kubeconfig, "linstor", "frobnicate")
    assert bad.returncode == 2 and "linstor: error:" in bad.stderr
    missing = kubectl_exec(version, tls_kubeconfig, "bash", "-c", "true")
    assert missing.returncode != 0 and 'exec: "bash": executable file not found in $PATH' in missing.stderr


def test_size_strings_are_python_linstors() -> None:
    assert [linstor_cli.size_string(k) for k in (512, 1024, 1536, 100 * 1024 * 1024, 99_614_720 + 1)] == [
        "512 KiB", "1 MiB", "1.50 MiB", "100 GiB", "95.00 GiB"]
