"""The storage harness: an in-process lab with Piraeus, prepared as runbooks 01/02 leave the nodes.

A real lab server runs in-process on 127.0.0.1 at a high time scale; tests talk to it with the
``kubernetes`` client, ``httpx`` through the service proxy and the lab's ``helm`` (a shim subprocess,
or :func:`helm_inproc`). The fixtures over it (``ready_lab``, ``fresh_lab``) are in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from runbook_lib.lab import control
from runbook_lib.lab import server as lab_server
from runbook_lib.lab.assembly import create_lab
from runbook_lib.lab.helm import cli as lab_helm
from runbook_lib.lab.talos import factory_api
from runbook_lib.lab.talos.go_yaml import dump_config
from runbook_lib.lab.talos.machine_config import v1alpha1_doc

GIB = 2**30
NS = "piraeus-datastore"
CHART = "oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus"
DEVICE = "/dev/nvme0n1p5"  # where the u-linstor-storage partition lands after EPHEMERAL is capped
NODES = ("lab-cp-1", "lab-cp-2", "lab-cp-3")
P = "linstor.csi.linbit.com/"  # linstor-csi's StorageClass parameter prefix

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

    @property
    def connection(self) -> dict:
        """What ``Session.begin`` reads from a lab's connection files, for ``Session.open`` on this lab."""
        return {"lab_dir": str(self.dir), "url": self.server.url, "kubeconfig": str(self.kubeconfig),
                "talosconfig": str(self.dir / "talosconfig"), "talosctl": str(self.dir / "bin" / "talosctl"),
                "helm": str(self.dir / "bin" / "helm"), "factory_url": f"{self.server.url}/factory"}

    def add_fault(self, kind: str, node: str | None = None, peer: str | None = None, count: int | None = None) -> int:
        """A lab fault through the control API (as ``runbook lab fault add``); its id."""
        resp = self.http.post("/lab/v1/faults", json={"kind": kind, "node": node, "peer": peer, "count": count}, timeout=30)
        assert resp.status_code < 400, resp.text
        return resp.json()["id"]

    def clear_faults(self) -> None:
        """Every lab fault removed (as ``runbook lab fault clear``)."""
        resp = self.http.delete("/lab/v1/faults", timeout=30)
        assert resp.status_code < 400, resp.text

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


def start_lab(d: Path, *, scale: float = 2000.0) -> StorageLab:
    d.mkdir(parents=True, exist_ok=True)
    options = {**control.default_options(), "time_scale": scale}
    lab = create_lab(options)
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


def csi_class(name: str, params: dict, mode: str) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": "linstor.csi.linbit.com", "parameters": params, "volumeBindingMode": mode,
            "allowVolumeExpansion": True, "reclaimPolicy": "Delete"}


def pvc_doc(name: str, sc: str, size: str = "1Gi") -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"storageClassName": sc, "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def pod_doc(name: str, claim: str, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "infinity"],
                                  "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                  "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def bound_claim(s: StorageLab, claim: str) -> k8s.V1PersistentVolumeClaim:
    return wait_for(lambda: (c := s.core.read_namespaced_persistent_volume_claim(claim, "default")).status.phase == "Bound" and c,
                    f"{claim} Bound")


def running_pod(s: StorageLab, pod: str) -> k8s.V1Pod:
    return wait_for(lambda: (p := s.core.read_namespaced_pod(pod, "default")).status.phase == "Running" and p, f"{pod} Running")
