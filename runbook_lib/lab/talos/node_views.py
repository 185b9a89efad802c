"""What a node shows: COSI resources, files read through the API, version and health checks."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .constants import EXTENSION_CATALOG, FACTORY_HOST, GO_VERSIONS, SECTOR, T_KUBELET
from .errors import TalosAPIError
from .go_yaml import dump_config
from .images import extension_version
from .machine_config import v1alpha1_doc
from .node import TalosNode
from .releases import drbd_version, parse_version
from .resource_types import RESOURCE_DEFS
from .volume_manager import _volume_status_spec


class NodeViews:
    """What a node shows (a part of :class:`.cluster.TalosCluster`)."""

    def resources(self, node: TalosNode, rtype: str, now: float) -> list[dict]:
        """Resources of type ``rtype`` on ``node`` in Talos's envelope (metadata + spec), sorted by ID."""
        self._touch(node, now)
        d = RESOURCE_DEFS[rtype]
        out = []
        for rid, spec, labels in sorted(self._specs(node, rtype, now), key=lambda x: x[0]):
            meta = node.res_meta[f"{rtype}/{rid}"]
            md: dict[str, Any] = {"namespace": d["namespace"], "type": rtype, "id": rid, "version": meta["version"],
                                  "owner": d["owner"], "phase": "running", "created": self.ts(meta["created"]),
                                  "updated": self.ts(meta["updated"])}
            if labels:
                md["labels"] = labels
            out.append({"metadata": md, "spec": spec})
        return out

    def _specs(self, node: TalosNode, rtype: str, now: float) -> list[tuple[str, Any, dict]]:
        maint = node.maintenance
        if rtype == "Disks.block.talos.dev":
            return [(d.name, d.spec(), {}) for d in node.disks]
        if rtype == "DiscoveredVolumes.block.talos.dev":
            return self._discovered(node)
        if rtype == "SystemDisks.block.talos.dev":
            if maint:
                return []
            d = node.system_disk
            return [("system-disk", {"diskID": d.name, "devPath": d.dev_path}, {})]
        if rtype == "MachineStatuses.runtime.talos.dev":
            ready, unmet = self._machine_ready(node, now)
            return [("machine", {"stage": node.stage, "status": {"ready": ready, "unmetConditions": unmet}}, {})]
        if maint:
            return []
        if rtype == "VolumeStatuses.block.talos.dev":
            return [(vid, _volume_status_spec(st), {st["_label"]: ""}) for vid, st in node.volumes.items()]
        if rtype == "MountStatuses.block.talos.dev":
            out = []
            for vid, st in node.volumes.items():
                mount = st.get("_mount")
                if st.get("phase") != "ready" or not mount or "location" not in st:
                    continue
                target = mount["targetPath"]
                if not target.startswith("/"):
                    target = f"{mount.get('parentId', '')}/{target}"
                out.append((vid, {"source": st["location"], "target": target, "filesystem": st.get("filesystem", "xfs"),
                                  "volumeID": vid, "projectQuotaSupport": bool(mount.get("projectQuotaSupport"))}, {}))
            return out
        if rtype == "ExtensionStatuses.runtime.talos.dev":
            return self._extension_specs(node)
        if rtype == "KernelModuleSpecs.runtime.talos.dev":
            machine = (v1alpha1_doc(node.config or []) or {}).get("machine") or {}
            mods = ((machine.get("kernel") or {}).get("modules")) or []
            return [(str(m.get("name")), {"name": str(m.get("name")), "parameters": list(m.get("parameters") or [])},
                     {}) for m in mods]
        if rtype == "Members.cluster.talos.dev":
            out = []
            for n in self.nodes.values():
                if n.maintenance:
                    continue
                spec: dict[str, Any] = {"nodeId": n.node_id, "addresses": [n.address], "hostname": n.name,
                                        "machineType": n.role, "operatingSystem": f"Talos ({n.talos_version})"}
                if n.role == "controlplane":
                    spec["controlPlane"] = {"port": 6443}
                out.append((n.name, spec, {}))
            return out
        if rtype == "MachineConfigs.config.talos.dev":
            return [("v1alpha1", dump_config(node.config or []), {})]
        return []

    def _machine_ready(self, node: TalosNode, now: float) -> tuple[bool, list[dict]]:
        if node.stage != "running":
            return False, [{"name": "services", "reason": "boot sequence is not complete"}] \
                if node.stage == "booting" else []
        unmet = []
        if node.role == "controlplane" and not self.etcd_healthy(node, now):
            unmet.append({"name": "services", "reason": "etcd is not healthy"})
        if node.running_at is not None and now < node.running_at + T_KUBELET:
            unmet.append({"name": "staticPods", "reason": "static pods are not running"})
        return not unmet, unmet

    def _discovered(self, node: TalosNode) -> list[tuple[str, Any, dict]]:
        from runbook_lib.sizes import format_si

        out = []
        for disk in node.disks:
            dspec: dict[str, Any] = {"dev_path": disk.dev_path, "type": "disk",
                                     "device_path": f"/sys/devices{disk.bus_path}/{disk.name}",
                                     "size": disk.size, "pretty_size": format_si(disk.size),
                                     "sector_size": disk.sector_size, "io_size": disk.io_size}
            if disk.gpt:
                dspec.update({"name": "gpt", "uuid": disk.disk_guid})
            out.append((disk.name, dspec, {}))
            for p in disk.partitions:
                pname = disk.part_name(p.index)
                spec: dict[str, Any] = {
                    "dev_path": "/dev/" + pname, "type": "partition",
                    "device_path": f"/sys/devices{disk.bus_path}/{disk.name}/{pname}", "parent": disk.name,
                    "parent_dev_path": disk.dev_path, "offset": p.first_lba * SECTOR, "size": p.size,
                    "pretty_size": format_si(p.size), "sector_size": disk.sector_size, "io_size": disk.io_size}
                if p.filesystem:
                    spec["name"] = p.filesystem
                    if p.fs_uuid:
                        spec["uuid"] = p.fs_uuid
                    if p.fs_label:
                        spec["label"] = p.fs_label
                    if p.filesystem in ("xfs", "vfat"):
                        spec.update({"block_size": 4096 if p.filesystem == "xfs" else 512,
                                     "filesystem_block_size": 4096, "probed_size": p.size})
                spec.update({"partition_uuid": p.part_uuid, "partition_type": p.type_uuid,
                             "partition_label": p.label, "partition_index": p.index})
                out.append((pname, spec, {}))
        return out

    def _extension_specs(self, node: TalosNode) -> list[tuple[str, Any, dict]]:
        out = []
        tag = node.talos_version
        for i, ext in enumerate(node.extensions):
            cat = EXTENSION_CATALOG.get(ext, {"name": ext.rsplit("/", 1)[-1], "author": "Sidero Labs",
                                              "description": f"{ext} extension"})
            out.append((str(i), {"image": f"{i}.sqsh", "metadata": {
                "name": cat["name"], "version": extension_version(ext, tag), "author": cat["author"],
                "description": cat["description"], "compatibility": {"talos": {"version": ">= v1.2.0"}}}}, {}))
        if node.schematic:
            i = len(node.extensions)
            out.append((str(i), {"image": "", "metadata": {
                "name": "schematic", "version": node.schematic, "author": f"Image Factory (https://{FACTORY_HOST})",
                "description": "This is a virtual extension which identifies the schematic ID used to build the image."}},
                {}))
        return out

    def read(self, node: TalosNode, path: str, now: float) -> str:
        """``MachineService.Read`` for the few files the runbooks read."""
        self.require_up(node, now)
        missing = TalosAPIError("Unknown", f"stat {path}: no such file or directory")
        if path == "/proc/sys/kernel/random/boot_id":
            return node.boot_id + "\n"
        if path == "/proc/modules":
            return "".join(f"{m['name']} {m['size']} - - Live {m['address']}{' (O)' if m['out_of_tree'] else ''}\n"
                           for m in reversed(node.modules))
        if path == "/proc/version":
            return (f"Linux version {node.kernel_version} (@buildkitsandbox) (gcc (GCC) 14.2.0, GNU ld (GNU Binutils) "
                    "2.44) #1 SMP PREEMPT_DYNAMIC\n")
        if path == "/etc/os-release":
            return (f'NAME="Talos"\nID=talos\nVERSION_ID={node.talos_version}\nPRETTY_NAME="Talos ({node.talos_version})"\n'
                    'HOME_URL="https://www.talos.dev/"\nBUG_REPORT_URL="https://github.com/siderolabs/talos/issues"\n')
        m = re.fullmatch(r"/sys/module/([^/]+)/(parameters/([^/]+)|version)", path)
        if m:
            mod = node.loaded_module(m.group(1))
            if mod is None:
                raise missing
            if m.group(2) == "version":
                if mod["name"] != "drbd":
                    raise missing
                return drbd_version(node.talos_version) + "\n"
            params = dict(p.split("=", 1) for p in mod["parameters"] if "=" in p)
            defaults = {"drbd": {"usermode_helper": "/sbin/drbdadm", "enable_faults": "0", "minor_count": "32"},
                        "zfs": {"zfs_arc_max": "0"}}  # 0: the OpenZFS default
            value = params.get(m.group(3), defaults.get(mod["name"], {}).get(m.group(3)))
            if value is None:
                raise missing
            return value + "\n"
        if path == "/proc/drbd":
            if node.loaded_module("drbd") is None:
                raise missing
            v = drbd_version(node.talos_version)
            transports = " tcp (" + v + ")" if node.loaded_module("drbd_transport_tcp") else ""
            return (f"version: {v} (api:2/proto:86-122)\nGIT-hash: {hashlib.sha1(v.encode()).hexdigest()} build by "
                    f"@buildkitsandbox\nTransports (api:21):{transports}\n")
        raise missing

    def version_info(self, node: TalosNode, now: float, *, insecure: bool = False) -> dict:
        self.require_up(node, now, insecure=insecure)
        return {"tag": node.talos_version, "sha": hashlib.sha1(node.talos_version.encode()).hexdigest()[:8],
                "built": "", "go_version": GO_VERSIONS.get(parse_version(node.talos_version)[:2], "go1.25.5"),
                "os": "linux", "arch": "amd64", "platform": {"name": "metal", "mode": "metal"},
                "features": {"rbac": True}, "maintenance": node.maintenance}

    def health_checks(self, node: TalosNode, now: float, control_planes: list[str] | None = None,
                      workers: list[str] | None = None) -> list[tuple[str, str | None]]:
        """The server-side ``talosctl health`` checks, in order, with the error each one sees now."""
        self.require_up(node, now)
        cps = [self.node_by_address(a) for a in control_planes] if control_planes else \
            [n for n in self.nodes.values() if n.role == "controlplane"]
        wks = [self.node_by_address(a) for a in workers] if workers else \
            [n for n in self.nodes.values() if n.role == "worker"]
        everyone = cps + wks

        def errs(items: list[str]) -> str | None:
            if not items:
                return None
            word = "error" if len(items) == 1 else "errors"
            return f"{len(items)} {word} occurred:\n\t* " + "\n\t* ".join(items) + "\n\n"

        def unreachable(n: TalosNode) -> str:
            return (f'{n.address}: rpc error: code = Unavailable desc = connection error: desc = "transport: '
                    f'Error while dialing: dial tcp {n.address}:50000: connect: connection refused"')

        etcd_errs = []
        for n in cps:
            if not n.is_up(now) or n.maintenance:
                etcd_errs.append(unreachable(n))
            elif not n.etcd_running(now):
                state = "Preparing" if n.stage != "running" else "Failed"
                etcd_errs.append(f'{n.address}: service "etcd" not in expected state "Running": current state [{state}]')
            elif not self.etcd_quorum(now):
                etcd_errs.append(f"{n.address}: etcd member is not healthy: etcdserver: request timed out")
        member_ips = sorted(n.address for n in self.etcd_members())
        cp_ips = sorted(n.address for n in cps)
        members_err = None if set(member_ips) <= set(cp_ips) and member_ips == cp_ips else \
            f"etcd member ips {member_ips} are not equal to control plane node ips {cp_ips}"
        apid = errs([unreachable(n) for n in everyone if not n.is_up(now) or n.maintenance])
        kubelet = errs([f'{n.address}: service "kubelet" not in expected state "Running"' for n in everyone
                        if n.is_up(now) and not n.maintenance and not n.kubelet_ready(now)])
        boot = errs([f"{n.address}: node is not in running stage: {n.stage}" for n in everyone
                     if n.is_up(now) and n.stage != "running"])
        k8s = None if self.etcd_quorum(now) else "Get \"https://127.0.0.1:7445/api/v1/nodes\": dial tcp: connection refused"
        not_ready = [n.name for n in everyone if not n.kubelet_ready(now)]
        ready = f"some nodes are not ready: {not_ready}" if not_ready else None
        cordoned = [n.name for n in everyone if n.cordoned]
        sched = f"some nodes are not schedulable: {cordoned}" if cordoned else None
        return [
            ("etcd to be healthy", errs(etcd_errs)),
            ("etcd members to be consistent across nodes", None if not etcd_errs else "etcd is not healthy"),
            ("etcd members to be control plane nodes", members_err),
            ("apid to be ready", apid),
            ("all nodes memory sizes", None),
            ("all nodes disk sizes", None),
            ("no diagnostics", None),
            ("kubelet to be healthy", kubelet),
            ("all nodes to finish boot sequence", boot),
            ("all k8s nodes to report", k8s),
            ("all control plane static pods to be running", k8s),
            ("all control plane components to be ready", k8s),
            ("all k8s nodes to report ready", k8s or ready),
            ("kube-proxy to report ready", k8s),
            ("coredns to report ready", k8s),
            ("all k8s nodes to report schedulable", k8s or sched),
        ]
