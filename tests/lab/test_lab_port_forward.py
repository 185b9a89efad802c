"""``kubectl port-forward`` to the lab's LINSTOR controller, and the official python-linstor client through it.

Upstream kubectl (`.ci/install-kubectl`, newest and a year-older minor) forwards over WebSocket by default
(SPDY/3.1 tunnelled in ``SPDY/3.1+portforward.k8s.io``, client-go tools/portforward tunneling_dialer.go) and
over a plain SPDY upgrade with ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false`` (its fallback); both must reach
the controller's REST API (3370) with the model's objects, and answers valid against LINSTOR's OpenAPI spec.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runbook_lib.lab.kubernetes import spdy
from tests.lab.test_lab_kubectl import KUBECTLS
from tests.linstor_checks import validate
from tests.storage_lab import GIB, NODES, NS, StorageLab

linstor = pytest.importorskip("linstor", reason="python-linstor is in the test extra (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def populated(ready_lab: StorageLab) -> StorageLab:
    """A replicated resource with a snapshot, so every list has something to show."""
    with ready_lab.lab.lock:
        ctl = ready_lab.lab.linstor
        if "pf-three" not in ctl.rds:
            ctl.create_resource_definition("pf-three", "DfltRscGrp", GIB // 1024, ["DRBD", "STORAGE"])
            ctl.autoplace("pf-three", 3, storage_pools=["linstor-pool"])
            ctl.create_snapshot("pf-three", "pf-snap")
    return ready_lab


@contextlib.contextmanager
def port_forward(version: str, kubeconfig: Path, target: str, remote: int = 3370, *,
                 websockets: bool = True) -> Iterator[tuple[int, subprocess.Popen]]:
    """``kubectl port-forward TARGET :REMOTE``: (the local port kubectl bound, the process)."""
    binary = KUBECTLS[version]
    if not binary.exists():
        pytest.skip(f"kubectl {version} not installed ({binary}); run .ci/install-kubectl")
    env = {"HOME": str(kubeconfig.parent), "PATH": os.environ.get("PATH", ""),
           "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
    proc = subprocess.Popen([str(binary), "--kubeconfig", str(kubeconfig), "-n", NS, "port-forward", "--address",
                             "127.0.0.1", target, f":{remote}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(60)
    try:
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", first[0] if first else "")
        assert m, f"kubectl port-forward did not start: {first} {proc.poll()}"
        assert int(m.group(2)) == remote
        yield int(m.group(1)), proc
    finally:
        proc.terminate()
        proc.wait(10)


def _controller_pod(s: StorageLab) -> str:
    pods = s.core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=linstor-controller").items
    return pods[0].metadata.name


def _upgrades(s: StorageLab, pod: str) -> dict[str, int]:
    """How often each transport was asked for: GET is WebSocket, POST the SPDY upgrade."""
    with s.lab.lock:
        return {m: s.lab.calls.get(f"{m} /api/v1/namespaces/{NS}/pods/{pod}/portforward", 0) for m in ("GET", "POST")}


@pytest.mark.parametrize("version", list(KUBECTLS))
def test_python_linstor_lists_through_kubectl_port_forward_to_the_service(populated: StorageLab, tls_kubeconfig: Path,
                                                                           version: str) -> None:
    before = _upgrades(populated, _controller_pod(populated))
    with port_forward(version, tls_kubeconfig, "svc/linstor-controller") as (port, _proc), \
            linstor.Linstor(f"linstor://127.0.0.1:{port}", timeout=30) as lin:
        with populated.lab.lock:
            ctl = populated.lab.linstor
            pools = {(p.node, p.name) for per in ctl.pools.values() for p in per.values()}
            replicas = {(n, "pf-three") for n in ctl.rds["pf-three"].replicas}
        assert lin.controller_version().rest_api_version == "1.27.0"
        assert [n.name for n in lin.node_list_raise().nodes] == list(NODES)
        assert {(p.node_name, p.name) for p in lin.storage_pool_list_raise().storage_pools} == pools
        listed = lin.resource_list_raise(filter_by_resources=["pf-three"])
        assert {(r.node_name, r.name) for r in listed.resources} == replicas
        volumes = lin.volume_list_raise(filter_by_resources=["pf-three"])
        assert {v.device_path for r in volumes.resources for v in r.volumes} == {
            f"/dev/drbd{ctl.rds['pf-three'].volumes[0].minor}"}
        assert "pf-three" in {rd.name for rd in lin.resource_dfn_list_raise().resource_definitions}
        assert "DfltRscGrp" in {rg.name for rg in lin.resource_group_list_raise().resource_groups}
        assert lin.volume_group_list_raise("DfltRscGrp").volume_groups == []
        snaps = lin.snapshot_dfn_list_raise(filter_by_resources=["pf-three"]).snapshots
        assert [s.name for s in snaps] == ["pf-snap"]
        reports = populated.rest("v1/error-reports").json()
        assert [f"ErrorReport-{e.id}.log" for e in lin.error_report_list()] == [r["filename"] for r in reports]
        assert lin.physical_storage_list().data_v1 == populated.rest("v1/physical-storage").json()
    after = _upgrades(populated, _controller_pod(populated))
    assert after["GET"] > before["GET"] and after["POST"] == before["POST"]  # WebSocket, no fallback


def test_plain_spdy_upgrade_to_the_controller_pod(populated: StorageLab, tls_kubeconfig: Path) -> None:
    """The fallback transport (no WebSocket), to pod/<name>, answering plain HTTP clients and the spec."""
    version = list(KUBECTLS)[-1]
    pod = _controller_pod(populated)
    before = _upgrades(populated, pod)
    with port_forward(version, tls_kubeconfig, f"pod/{pod}", websockets=False) as (port, _proc), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for path, schema in (("/v1/nodes", "Node"), ("/v1/error-reports", "ErrorReport"),
                             ("/v1/physical-storage", "PhysicalStorage"), ("/v1/view/resources", "ResourceWithVolumes"),
                             ("/v1/resource-groups/DfltRscGrp/volume-groups", "VolumeGroup")):
            resp = http.get(path)  # keep-alive: every request on one forwarded connection
            assert resp.status_code == 200, (path, resp.text)
            validate(resp.json(), schema, array=True)
        assert http.get("/health").status_code == 200
        version_body = http.get("/v1/controller/version").json()
        validate(version_body, "ControllerVersion")
    assert _upgrades(populated, pod)["POST"] == before["POST"] + 1
    image = next(c.image for c in populated.core.read_namespaced_pod(pod, NS).spec.containers if c.name == "linstor-controller")
    assert image.endswith(f":v{version_body['version']}")  # the image tag is the version LINSTOR reports


def test_a_port_nothing_listens_on_ends_the_forward_with_the_kubelets_error(populated: StorageLab,
                                                                            tls_kubeconfig: Path) -> None:
    version = next(iter(KUBECTLS))
    with port_forward(version, tls_kubeconfig, f"pod/{_controller_pod(populated)}", remote=3371) as (port, proc):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.settimeout(30)
            assert sock.recv(1) == b""  # closed without data
        proc.wait(30)  # kubectl gives up the whole forward on an error (portforward.go handleConnection)
        err = proc.stderr.read() if proc.stderr else ""
    assert "error forwarding port 3371" in err and "connect: connection refused" in err


def test_spdy_header_blocks_round_trip_with_the_spec_dictionary() -> None:
    """The §2.6.10.1 dictionary (its Adler-32 is what zlib puts in the stream header) and a SYN_REPLY the
    decoder reads back; the kubectl tests above are the real check against Go's spdystream."""
    import zlib

    assert len(spdy.DICTIONARY) == 1423 and zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    enc, dec = spdy.Encoder(), spdy.Decoder()
    wire = enc.syn_reply(3, {"x": ["a", "b"]}) + enc.syn_reply(5) + enc.data(3, b"hi", fin=True)
    frames = dec.feed(wire[:7]) + dec.feed(wire[7:])
    assert [(f.kind, f.stream_id, f.headers, f.data, f.fin) for f in frames] == [
        (spdy.SYN_REPLY, 3, {"x": ["a", "b"]}, b"", False), (spdy.SYN_REPLY, 5, {}, b"", False),
        (spdy.DATA, 3, {}, b"hi", True)]
