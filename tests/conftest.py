"""Fixtures shared by the test layers: private lab directories and the in-process storage lab.

The unit layer (tests/unit) uses none of them; the layers' markers come from their folders (root conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from runbook_lib.lab import control, tls
from runbook_lib.lab import server as lab_server
from tests.storage_lab import (
    P,
    StorageLab,
    bootstrap,
    cluster_ready,
    csi_class,
    start_lab,
    stop_lab,
    wait_for,
)


@pytest.fixture
def lab_dir(tmp_path: Path):
    """A private lab directory for one test (the lab starts on first use); removed with its lab afterwards."""
    d = tmp_path / "lab"
    yield d
    control.remove(d)


@pytest.fixture(scope="session", autouse=True)
def _no_nagle() -> Iterator[None]:
    # The lab's responses go out as two writes (headers, body); with Nagle + delayed ACK each
    # keep-alive request then waits ~40 ms. TCP_NODELAY on the in-process servers keeps tests fast.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab_server.Handler, "disable_nagle_algorithm", True, raising=False)
        yield


@pytest.fixture(scope="session")
def ready_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageLab]:
    """A lab with Piraeus fully up: patched satellites, wiped partitions, ZFS pools (one per session
    and xdist worker; tests add their own objects and leave what they found)."""
    s = start_lab(tmp_path_factory.mktemp("ready"))
    try:
        bootstrap(s)
        wait_for(lambda: cluster_ready(s), "LinstorCluster Available+Configured with 3/3 satellites")
        yield s
    finally:
        stop_lab(s)


@pytest.fixture
def fresh_lab(tmp_path: Path) -> Iterator[StorageLab]:
    """A lab of its own for one test, with nothing installed."""
    s = start_lab(tmp_path / "lab")
    try:
        yield s
    finally:
        stop_lab(s)


@pytest.fixture(scope="session")
def classes(ready_lab: StorageLab) -> StorageLab:
    """``ready_lab`` with the StorageClasses the CSI tests provision from."""
    s = ready_lab
    storage = k8s.StorageV1Api(s.api)
    existing = {sc.metadata.name for sc in storage.list_storage_class().items}
    for sc in (
        csi_class("csi-local", {f"{P}storagePool": "linstor-pool", f"{P}layerList": "storage",
                          f"{P}allowRemoteVolumeAccess": "false"}, "WaitForFirstConsumer"),
        csi_class("csi-replicated", {f"{P}storagePool": "linstor-pool", f"{P}autoPlace": "3", f"{P}layerList": "drbd storage",
                               f"{P}allowRemoteVolumeAccess": "true",
                               "property.linstor.csi.linbit.com/DrbdOptions/Resource/on-no-quorum": "suspend-io"}, "Immediate"),
        csi_class("csi-two", {f"{P}storagePool": "linstor-pool", f"{P}placementCount": "2"}, "Immediate"),
        csi_class("csi-typo", {f"{P}storagePools": "linstor-pool"}, "Immediate"),
    ):
        if sc["metadata"]["name"] not in existing:
            storage.create_storage_class(sc)
    return s


@pytest.fixture(scope="session")
def tls_kubeconfig(ready_lab: StorageLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ready_lab`` also answering TLS, with a kubeconfig as ``talosctl kubeconfig`` writes it (for upstream kubectl)."""
    d = tmp_path_factory.mktemp("tls-kubeconfig")
    pki = tls.ensure_pki(d)
    ready_lab.server.tls_context = pki.server_context()
    control.write_connection_files(d, ready_lab.server.url, ready_lab.lab.token, ready_lab.lab.options["nodes"], pki=pki)
    return d / "kubeconfig"
