"""The lab's Piraeus operator, workloads and LINSTOR satellites, through the real code path.

A real lab server runs in-process on 127.0.0.1 at a high time scale; tests talk to it with the
``kubernetes`` client, ``httpx`` through the service proxy and the lab's ``helm`` shim as a
subprocess. Host facts (DRBD/ZFS modules, the ``u-linstor-storage`` partition) are set up
through the Talos model the way runbooks 01/02 leave a node.

This module also holds the harness the other ``test_lab_*`` storage tests import.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from runbook_lib.lab import control
from runbook_lib.lab import helm as lab_helm
from runbook_lib.lab import server as lab_server
from runbook_lib.lab.piraeus import state_dict as storage_state
from runbook_lib.lab.talos import factory_api
from runbook_lib.lab.talos.go_yaml import dump_config
from runbook_lib.lab.talos.machine_config import v1alpha1_doc

GIB = 2**30
NS = "piraeus-datastore"
CHART = "oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus"
DEVICE = "/dev/nvme0n1p5"  # where the u-linstor-storage partition lands after EPHEMERAL is capped
NODES = ("lab-cp-1", "lab-cp-2", "lab-cp-3")

TALOS_PATCH = {  # piraeus-operator docs/how-to/talos.md (the official override)
    "apiVersion": "piraeus.io/v1", "kind": "LinstorSatelliteConfiguration", "metadata": {"name": "talos-loader-override"},
    "spec": {"podTemplate": {"spec": {
        "initContainers": [{"name": "drbd-shutdown-guard", "$patch": "delete"}, {"name": "drbd-module-loader", "$patch": "delete"}],
        "volumes": [{"name": n, "$patch": "delete"} for n in
                    ("run-systemd-system", "run-drbd-shutdown-guard", "systemd-bus-socket", "lib-modules", "usr-src")]
        + [{"name": "etc-lvm-backup", "hostPath": {"path": "/var/etc/lvm/backup", "type": "DirectoryOrCreate"}},
           {"name": "etc-lvm-archive", "hostPath": {"path": "/var/etc/lvm/archive", "type": "DirectoryOrCreate"}}]}}},
}


def _truthy(value: Any) -> bool:
    if isinstance(value, ApiException) or value is None:
        return False
    if isinstance(value, bool | int | str | list | tuple | set | dict):
        return bool(value)
    return True  # an object (a pod, a DataFrame...) returned by a probe means "done"


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except ApiException as exc:
            last = exc
        if _truthy(last):
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class StorageLab:
    lab: Any
    server: Any
    dir: Path
    api: k8s.ApiClient
    http: httpx.Client

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def helm(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HELM_REPOSITORY_CONFIG": str(self.dir / "repositories.yaml")}
        return subprocess.run([str(self.dir / "bin" / "helm"), *args], capture_output=True, text=True, env=env, timeout=60)

    def rest(self, path: str, method: str = "GET", service: str = "linstor-controller:3370", **kw: Any) -> httpx.Response:
        return self.http.request(method, f"/api/v1/namespaces/{NS}/services/{service}/proxy/{path.lstrip('/')}", **kw)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    @property
    def crd(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)

    def cr(self, plural: str, name: str) -> dict:
        return self.crd.get_cluster_custom_object("piraeus.io", "v1", plural, name)

    def create_cr(self, body: dict) -> dict:
        plural = body["kind"].lower() + "s"
        return self.crd.create_cluster_custom_object("piraeus.io", "v1", plural, body)

    def conditions(self, plural: str, name: str) -> dict[str, dict]:
        return {c["type"]: c for c in (self.cr(plural, name).get("status") or {}).get("conditions", [])}

    def events(self, namespace: str, reason: str | None = None) -> list[Any]:
        return [e for e in self.core.list_namespaced_event(namespace).items if reason in (None, e.reason)]


def _write_connection_files(d: Path, url: str, lab: Any) -> None:
    params = list(inspect.signature(control.write_connection_files).parameters)
    args: dict[str, Any] = {"d": d, "url": url, "token": lab.token, "nodes": lab.options["nodes"]}
    if "talos_key" in params:
        args["talos_key"] = lab.token
    control.write_connection_files(**{k: v for k, v in args.items() if k in params})


@pytest.fixture(autouse=True)
def _no_nagle() -> Iterator[None]:
    # Responses go out as two writes (headers, body); with Nagle + delayed ACK each keep-alive
    # request then waits ~40 ms. Setting TCP_NODELAY keeps these tests fast.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab_server.Handler, "disable_nagle_algorithm", True, raising=False)
        yield


def start_lab(d: Path, *, scale: float = 2000.0) -> StorageLab:
    d.mkdir(parents=True, exist_ok=True)
    options = {**control.default_options(), "time_scale": scale}
    lab = lab_server.Lab.create(options)
    srv = lab_server.LabHTTPServer(lab, None)
    _write_connection_files(d, srv.url, lab)
    srv.start_background()
    api = k8s_config.new_client_from_config(str(d / "kubeconfig"))
    http = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {lab.token}"}, timeout=10)
    return StorageLab(lab, srv, d, api, http)


def stop_lab(s: StorageLab) -> None:
    s.http.close()
    s.api.close()
    s.server.stop()
    s.server.server_close()


def prepare_node(s: StorageLab, name: str, *, drbd: bool = True, helper: bool = True, zfs: bool = True,
                 volume: bool = True) -> None:
    """Leave a node as runbooks 01/02 do: drbd/zfs extensions and modules, EPHEMERAL capped at
    100 GiB and a 200 GiB ``linstor-storage`` user volume (xfs, mounted by Talos)."""
    lab = s.lab
    with lab.lock:
        node = lab.talos.nodes[name]
        node.extensions = ["siderolabs/drbd", "siderolabs/zfs"]
        # as an Image Factory installer leaves it: the schematic extension, a schematic the factory knows
        schematic = {"customization": {"systemExtensions": {"officialExtensions": list(node.extensions)}}}
        node.schematic = factory_api.schematic_id(schematic)
        lab.schematics[node.schematic] = factory_api.canonical_dict(schematic)
        docs = json.loads(json.dumps(node.config))
        v1 = v1alpha1_doc(docs)
        mods: list[dict] = []
        if drbd:
            mods += [{"name": "drbd", **({"parameters": ["usermode_helper=disabled"]} if helper else {})},
                     {"name": "drbd_transport_tcp"}]
        if zfs:
            mods.append({"name": "zfs", "parameters": [f"zfs_arc_max={4 * GIB}"]})  # 02's default ARC cap
        v1.setdefault("machine", {}).setdefault("kernel", {})["modules"] = mods
        if volume:
            eph = node.system_disk.by_label("EPHEMERAL")
            eph.last_lba = eph.first_lba + (100 * GIB) // 512 - 1  # what 01's apply-config + reset leaves
            docs.append({"apiVersion": "v1alpha1", "kind": "VolumeConfig", "name": "EPHEMERAL",
                         "provisioning": {"diskSelector": {"match": "system_disk"}, "maxSize": "100GiB"}})
            docs.append({"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "linstor-storage",
                         "provisioning": {"diskSelector": {"match": "system_disk"}, "minSize": "200GiB", "maxSize": "200GiB"}})
        lab.talos.apply_config(node, dump_config(docs), "no-reboot", lab.clock.now())
        if volume:
            assert node.volumes["u-linstor-storage"]["location"] == DEVICE


def helm_inproc(s: StorageLab, *args: str) -> tuple[int, str, str]:
    """The lab's helm, run in this process (same code as the shim, without interpreter start-up)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = lab_helm.main([*args, "--kubeconfig", str(s.kubeconfig)])
    return code, out.getvalue(), err.getvalue()


def install_operator(s: StorageLab, *extra: str) -> str:
    code, out, err = helm_inproc(s, "upgrade", "--install", "--create-namespace", "--namespace", NS, "piraeus-operator",
                                 CHART, "--set", "installCRDs=true", "--wait", *extra)
    assert code == 0, err
    return out


def wipe_pod(node: str, device: str = DEVICE, *, privileged: bool = True) -> dict:
    """The article's privileged debug pod: unmount the Talos volume, wipe the signature."""
    script = f"apk add --quiet util-linux\numount /host/var/mnt/linstor-storage 2>/dev/null || true\nwipefs -a {device}\n"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"wipe-{node}"},
            "spec": {"nodeName": node, "restartPolicy": "Never", "hostPID": True,
                     "containers": [{"name": "wipe", "image": "alpine:3.22", "command": ["sh", "-c", script],
                                     "securityContext": {"privileged": privileged},
                                     "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                     "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}


def wipe(s: StorageLab, node: str) -> str:
    s.core.create_namespaced_pod("kube-system", wipe_pod(node))
    wait_for(lambda: s.core.read_namespaced_pod(f"wipe-{node}", "kube-system").status.phase == "Succeeded", f"wipe on {node}")
    return s.core.read_namespaced_pod_log(f"wipe-{node}", "kube-system")


def bootstrap(s: StorageLab, *, pool: dict | None = None, patch: bool = True, wiped: bool = True) -> None:
    """Operator installed, nodes prepared (and wiped), LinstorCluster + satellite configs applied."""
    for n in NODES:
        prepare_node(s, n)
    install_operator(s)
    if wiped:
        for n in NODES:
            wipe(s, n)
    s.create_cr({"apiVersion": "piraeus.io/v1", "kind": "LinstorCluster", "metadata": {"name": "linstorcluster"}, "spec": {}})
    if patch:
        s.create_cr(TALOS_PATCH)
    s.create_cr({"apiVersion": "piraeus.io/v1", "kind": "LinstorSatelliteConfiguration", "metadata": {"name": "storage-pool"},
                 "spec": {"storagePools": [pool or {"name": "linstor-pool", "zfsPool": {}, "source": {"hostDevices": [DEVICE]}}]}})


def cluster_ready(s: StorageLab) -> bool:
    conds = s.conditions("linstorclusters", "linstorcluster")
    return all(conds.get(t, {}).get("status") == "True" for t in ("Applied", "Available", "Configured")) and \
        s.cr("linstorclusters", "linstorcluster")["status"].get("satellites") == "3/3"


# ----------------------------------------------------------------------------- fixtures


_SHARED: dict[str, StorageLab] = {}  # one fully bootstrapped lab for every test module of this run


@pytest.fixture(scope="module")
def ready_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> StorageLab:
    """A lab with Piraeus fully up: patched satellites, wiped partitions, ZFS pools (shared; tests
    add their own objects and leave what they found)."""
    if "ready" not in _SHARED:
        saved = getattr(lab_server.Handler, "disable_nagle_algorithm", False)
        lab_server.Handler.disable_nagle_algorithm = True  # see _no_nagle
        s = start_lab(tmp_path_factory.mktemp("ready"))

        def cleanup() -> None:
            stop_lab(s)
            lab_server.Handler.disable_nagle_algorithm = saved
            _SHARED.pop("ready", None)

        request.config.add_cleanup(cleanup)
        bootstrap(s)
        wait_for(lambda: cluster_ready(s), "LinstorCluster Available+Configured with 3/3 satellites")
        _SHARED["ready"] = s
    return _SHARED["ready"]


@pytest.fixture
def fresh_lab(tmp_path: Path) -> Iterator[StorageLab]:
    s = start_lab(tmp_path / "lab")
    try:
        yield s
    finally:
        stop_lab(s)


# ----------------------------------------------------------------------------- tests


def test_operator_reconciles_into_the_real_names_and_conditions(ready_lab: StorageLab) -> None:
    s = ready_lab
    apps = k8s.AppsV1Api(s.api)
    deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(NS).items}
    assert {"piraeus-operator-controller-manager", "linstor-controller", "linstor-csi-controller"} <= set(deployments)
    assert deployments["linstor-controller"].spec.strategy.type == "Recreate"
    assert all(d.status.ready_replicas == 1 for d in deployments.values())
    daemonsets = {d.metadata.name for d in apps.list_namespaced_daemon_set(NS).items}
    assert daemonsets == {"linstor-csi-node", "ha-controller"} | {f"linstor-satellite.{n}" for n in NODES}
    svc = s.core.read_namespaced_service("linstor-controller", NS)
    assert [(p.name, p.port) for p in svc.spec.ports] == [("api", 3370)]
    driver = k8s.StorageV1Api(s.api).read_csi_driver("linstor.csi.linbit.com")
    assert driver.spec.attach_required and driver.spec.storage_capacity
    # every workload carries the component labels runbooks select on
    sats = s.core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=linstor-satellite").items
    assert sorted(p.spec.node_name for p in sats) == list(NODES)
    assert all(p.status.phase == "Running" and p.metadata.labels["app.kubernetes.io/name"] == "piraeus-datastore" for p in sats)
    assert all(not p.spec.init_containers for p in sats)  # the Talos patch removed the loaders
    # conditions as pkg/conditions writes them
    conds = s.conditions("linstorclusters", "linstorcluster")
    assert conds["Available"]["reason"] == "AsExpected"
    assert conds["Available"]["message"].startswith("Controller 1.33.3 (API: 1.27.0, Git: ")
    assert conds["Available"]["message"].endswith(f"reachable at 'http://linstor-controller.{NS}.svc:3370'")
    assert conds["Configured"]["message"] == "Properties applied"
    assert all(c["observedGeneration"] == 1 for c in conds.values())
    status = s.cr("linstorclusters", "linstorcluster")["status"]
    assert status["version"] == "1.33.3" and status["runningSatellites"] == 3 and status["scheduledSatellites"] == 3
    assert status["availableCapacityBytes"] > 3 * 199 * GIB
    for n in NODES:
        sat = s.cr("linstorsatellites", n)
        assert sat["metadata"]["annotations"]["piraeus.io/applied-configurations"] == "storage-pool,talos-loader-override"
        sconds = {c["type"]: (c["status"], c["message"]) for c in sat["status"]["conditions"]}
        assert sconds == {"Applied": ("True", "Resources applied"), "Available": ("True", "satellite online"),
                          "Configured": ("True", "Pools configured")}
        assert "ZFS" in sat["status"]["storageProviders"] and "DRBD" in sat["status"]["deviceLayers"]
    cfg = s.cr("linstorsatelliteconfigurations", "talos-loader-override")
    assert cfg["status"]["appliedTo"] == list(NODES) and cfg["status"]["matched"] == 3
    # the controller got the operator's DRBD defaults
    props = s.rest("v1/controller/properties").json()
    assert props["DrbdOptions/Resource/on-no-data-accessible"] == "suspend-io"
    assert props["Aux/piraeus.io/managed-by"] == "piraeus-operator"


def test_pools_are_created_on_the_wiped_partitions(ready_lab: StorageLab) -> None:
    s = ready_lab
    pools = [p for p in s.rest("v1/view/storage-pools").json() if p["provider_kind"] != "DISKLESS"]
    assert sorted(p["node_name"] for p in pools) == list(NODES)
    for p in pools:
        assert p["storage_pool_name"] == "linstor-pool" and p["supports_snapshots"] is True and "reports" not in p
        # zpool size = the 200 GiB partition less ZFS labels; `available` less the 1/32 slop space
        assert 199 * GIB < p["total_capacity"] * 1024 <= 200 * GIB
        assert p["free_capacity"] < p["total_capacity"] * 0.97
    with s.lab.lock:
        sigs = {n: s.lab.talos.nodes[n].partition_by_path(DEVICE)[1].filesystem for n in NODES}
    assert sigs == dict.fromkeys(NODES, "zfs_member")  # LINSTOR's zpool now owns the partition
    nodes = s.rest("v1/nodes").json()
    assert {n["name"]: n["connection_status"] for n in nodes} == dict.fromkeys(NODES, "ONLINE")
    assert all("DRBD" in n["resource_layers"] and n["unsupported_layers"] == {} for n in nodes)


def test_without_drbd_the_satellite_runs_but_drbd_is_unsupported(ready_lab: StorageLab) -> None:
    s = ready_lab
    with s.lab.lock:  # lab-cp-3 lost its drbd modules (e.g. upgraded without the factory installer)
        node = s.lab.talos.nodes["lab-cp-3"]
        saved = list(node.modules)
        node.modules = [m for m in node.modules if not m["name"].startswith("drbd")]
    try:
        nodes = wait_for(lambda: (ns := {n["name"]: n for n in s.rest("v1/nodes").json()}) and
                         "DRBD" not in ns["lab-cp-3"]["resource_layers"] and ns, "DRBD reported unsupported")
        assert nodes["lab-cp-3"]["connection_status"] == "ONLINE"
        assert nodes["lab-cp-3"]["unsupported_layers"] == {"DRBD": ["DRBD version has to be >= 9. Current DRBD version: 0.0.0"]}
        assert "DRBD" in nodes["lab-cp-1"]["resource_layers"]
        wait_for(lambda: "DRBD" not in s.cr("linstorsatellites", "lab-cp-3")["status"]["deviceLayers"], "satellite status")
        with s.lab.lock:
            ctl = s.lab.linstor
            ctl.create_resource_definition("probe", "DfltRscGrp", 4096, ["DRBD", "STORAGE"])
            try:
                with pytest.raises(Exception, match="does not support the device layer DRBD"):
                    ctl.create_resource("probe", "lab-cp-3", pool="linstor-pool")
                assert ctl.create_resource("probe", "lab-cp-1", pool="linstor-pool")
            finally:
                ctl.rds.pop("probe")
    finally:
        with s.lab.lock:
            node.modules = saved
    wait_for(lambda: "DRBD" in {n["name"]: n for n in s.rest("v1/nodes").json()}["lab-cp-3"]["resource_layers"], "DRBD back")


def test_satellites_need_the_talos_patch_and_a_valid_one(fresh_lab: StorageLab) -> None:
    s = fresh_lab
    bootstrap(s, patch=False)
    pod = wait_for(lambda: next(iter(s.core.list_namespaced_pod(
        NS, label_selector="app.kubernetes.io/component=linstor-satellite").items), None), "a satellite pod")

    def mount_errors() -> set[str] | None:
        msgs = {e.message for e in s.events(NS, "FailedMount") if e.involved_object.name == pod.metadata.name}
        return msgs if len(msgs) >= 5 else None

    messages = wait_for(mount_errors, "FailedMount events")
    assert 'MountVolume.SetUp failed for volume "usr-src" : hostPath type check failed: /usr/src is not a directory' in messages
    assert ('MountVolume.SetUp failed for volume "run-systemd-system" : hostPath type check failed: '
            "/run/systemd/system/ is not a directory") in messages
    assert ('MountVolume.SetUp failed for volume "systemd-bus-socket" : hostPath type check failed: '
            "/run/dbus/system_bus_socket is not a socket file") in messages
    assert 'MountVolume.SetUp failed for volume "etc-lvm-backup" : mkdir /etc/lvm: read-only file system' in messages
    pod = s.core.read_namespaced_pod(pod.metadata.name, NS)
    assert pod.status.phase == "Pending" and not pod.status.pod_ip
    assert [c.state.waiting.reason for c in pod.status.init_container_statuses] == ["PodInitializing", "PodInitializing"]
    init = next(c for c in pod.status.conditions if c.type == "Initialized")
    assert init.status == "False" and init.message == "containers with incomplete status: [drbd-module-loader drbd-shutdown-guard]"
    sat = wait_for(lambda: s.conditions("linstorsatellites", pod.spec.node_name).get("Available"), "satellite conditions")
    assert (sat["status"], sat["reason"], sat["message"]) == ("False", "Error", "Error: missing IP address on pod")
    assert s.rest("v1/nodes").json() == []
    conds = s.conditions("linstorclusters", "linstorcluster")
    assert conds["Configured"]["status"] == "Unknown" and "CSI node pod" in conds["Configured"]["message"]

    # deleting the etc-lvm volumes but keeping their mounts makes the DaemonSet invalid
    broken = json.loads(json.dumps(TALOS_PATCH))
    broken["metadata"]["name"] = "article-variant"
    vols = broken["spec"]["podTemplate"]["spec"]["volumes"]
    broken["spec"]["podTemplate"]["spec"]["volumes"] = [v for v in vols if "hostPath" not in v] + [
        {"name": "etc-lvm-backup", "$patch": "delete"}, {"name": "etc-lvm-archive", "$patch": "delete"}]
    s.create_cr(broken)
    applied = wait_for(lambda: (c := s.conditions("linstorsatellites", "lab-cp-1").get("Applied")) and c["status"] == "False" and c,
                       "Applied=False")
    assert applied["reason"] == "Error"
    assert applied["message"].startswith('Error: DaemonSet.apps "linstor-satellite.lab-cp-1" is invalid: [')
    assert 'spec.template.spec.containers[0].volumeMounts[5].name: Not found: "etc-lvm-archive"' in applied["message"]

    # the article's full variant also deletes the mounts, through a Pod patch: valid, the satellites start
    s.crd.delete_cluster_custom_object("piraeus.io", "v1", "linstorsatelliteconfigurations", "article-variant")
    article = {"target": {"kind": "Pod", "name": "satellite"}, "patch": yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "satellite"},
        "spec": {**broken["spec"]["podTemplate"]["spec"], "containers": [{"name": "linstor-satellite", "volumeMounts": [
            {"mountPath": "/etc/lvm/backup", "name": "etc-lvm-backup", "$patch": "delete"},
            {"mountPath": "/etc/lvm/archive", "name": "etc-lvm-archive", "$patch": "delete"}]}]}})}
    s.create_cr({"apiVersion": "piraeus.io/v1", "kind": "LinstorSatelliteConfiguration", "metadata": {"name": "article-patches"},
                 "spec": {"patches": [article]}})
    wait_for(lambda: cluster_ready(s), "satellites running with the article's patch")


def test_pool_on_a_device_with_a_filesystem_fails_until_wiped(fresh_lab: StorageLab) -> None:
    s = fresh_lab
    bootstrap(s, wiped=False)
    wait_for(lambda: cluster_ready(s), "cluster up")
    pools = {p["node_name"]: p for p in s.rest("v1/view/storage-pools").json() if p["provider_kind"] == "ZFS"}
    assert set(pools) == set(NODES)
    broken = pools["lab-cp-1"]
    assert broken["total_capacity"] == 0 and broken["free_capacity"] == 0
    assert broken["reports"][0]["message"] == "Failed to query free space from storage pool"
    sat = s.core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=linstor-satellite",
                                     field_selector="spec.nodeName=lab-cp-1").items[0]
    log = s.core.read_namespaced_pod_log(sat.metadata.name, NS, container="linstor-satellite")
    assert "Failed to create zpool: linstor-pool" in log and f"cannot open '{DEVICE}': Device or resource busy" in log
    op = s.core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=piraeus-operator").items[0]
    assert "failed to create device pool" in s.core.read_namespaced_pod_log(op.metadata.name, NS)
    # an unprivileged pod cannot see the host device
    s.core.create_namespaced_pod("kube-system", {**wipe_pod("lab-cp-1", privileged=False), "metadata": {"name": "wipe-unpriv"}})
    wait_for(lambda: s.core.read_namespaced_pod("wipe-unpriv", "kube-system").status.phase == "Failed", "unprivileged wipe fails")
    assert "No such file or directory" in s.core.read_namespaced_pod_log("wipe-unpriv", "kube-system")
    # wipe for real; the operator does not retry while the failed pool exists: delete it
    assert "4 bytes were erased at offset 0x0 (xfs): 58 46 53 42" in wipe(s, "lab-cp-1")
    resp = s.rest("v1/nodes/lab-cp-1/storage-pools/linstor-pool", method="DELETE")
    assert resp.status_code == 200 and resp.json()[0]["message"].startswith("Storage pool definition 'linstor-pool'")
    fixed = wait_for(lambda: next((p for p in s.rest("v1/nodes/lab-cp-1/storage-pools").json()
                                   if p["storage_pool_name"] == "linstor-pool" and p["total_capacity"]), None), "pool recreated")
    assert "reports" not in fixed and fixed["total_capacity"] * 1024 > 199 * GIB
    assert pools["lab-cp-2"]["total_capacity"] == 0  # untouched nodes keep their failed pool


def test_kubelet_jobs_logs_and_node_down(ready_lab: StorageLab) -> None:
    s = ready_lab
    batch = k8s.BatchV1Api(s.api)
    batch.create_namespaced_job("default", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hello"},
                                            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                                                {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hi; sleep 5; exit 3"]}]}}}})
    job = wait_for(lambda: (j := batch.read_namespaced_job("hello", "default")).status.failed and j, "job fails")
    assert [c.reason for c in job.status.conditions if c.type == "Failed"] == ["BackoffLimitExceeded"]
    pod = s.core.list_namespaced_pod("default", label_selector="job-name=hello").items[0]
    assert pod.status.phase == "Failed" and pod.status.container_statuses[0].state.terminated.exit_code == 3
    assert s.core.read_namespaced_pod_log(pod.metadata.name, "default") == "hi\n"
    assert {"Scheduled", "Pulled", "Created", "Started"} <= {e.reason for e in s.events("default")
                                                            if e.involved_object.name == pod.metadata.name}
    apps = k8s.AppsV1Api(s.api)
    apps.create_namespaced_stateful_set("default", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "infinity"]}]}}}})
    wait_for(lambda: apps.read_namespaced_stateful_set("web", "default").status.ready_replicas == 2, "StatefulSet ready")
    assert sorted(p.metadata.name for p in s.core.list_namespaced_pod("default", label_selector="app=web").items) == ["web-0", "web-1"]
    # the whole storage stack is part of the lab's saved state
    with s.lab.lock:
        saved = json.loads(json.dumps(s.lab.to_dict()))
    assert storage_state(lab_server.Lab.from_dict(saved)) == saved["storage"]
    # a node that goes down: its pods turn not ready, LINSTOR sees the satellite offline
    with s.lab.lock:
        s.lab.faults.add("node-down", "lab-cp-3")
    try:
        wait_for(lambda: all(not any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
                             for p in s.core.list_namespaced_pod(NS, field_selector="spec.nodeName=lab-cp-3").items), "pods not ready")
        nodes = wait_for(lambda: (ns := {n["name"]: n["connection_status"] for n in s.rest("v1/nodes").json()})["lab-cp-3"] == "OFFLINE"
                         and ns, "satellite offline")
        assert nodes["lab-cp-1"] == "ONLINE"
        sat = wait_for(lambda: (c := s.conditions("linstorsatellites", "lab-cp-3")["Available"])["status"] == "False" and c, "Available")
        assert sat["message"] == "Error: satellite not online"
    finally:
        with s.lab.lock:
            s.lab.faults.clear()
    wait_for(lambda: cluster_ready(s), "cluster back after the node returns", timeout=15)
