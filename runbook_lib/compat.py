"""Compatibility preflight: DRBD, the verify algorithm and ZFS, as each storage node and LINSTOR report them.

Three things broke real clusters and none shows as a Kubernetes error:

- **DRBD missing or unusable.** LINSTOR's node object lists the layers the satellite can serve
  (``resource_layers``) and, for the others, why not (``unsupported_layers``; REST API 1.27
  ``Node``). Without the ``drbd`` module loaded with ``usermode_helper=disabled`` the satellite
  reports "DRBD version has to be >= 9. Current DRBD version: 0.0.0" (linstor-server
  ``DrbdVersion``; piraeus-operator PR #452), and every replicated volume fails.
- **The DRBD verify algorithm.** LINSTOR picked ``crct10dif`` by itself; Linux 6.18 (Talos
  v1.12.0 and later) no longer has it, so after the upgrade peers refuse each other with
  "VERIFYAlgNotAvail: failed to allocate crct10dif for verify" and the replicas come back
  Diskless (siderolabs/talos#12478, LINBIT/linstor-server#468). The fix is to pin
  ``DrbdOptions/Net/verify-alg`` cluster-wide on the ``LinstorCluster``. We pin ``crc32c``: every
  Talos kernel has it built in (XFS, which Talos formats STATE and EPHEMERAL with, checksums its
  metadata with crc32c, so the kernel cannot boot Talos without it), it is what the talos#12478
  thread and cozystack (cozystack#2303) chose, and verify only needs to detect differing blocks,
  not resist an attacker. Each node's ``/proc/crypto`` must list it.
- **ZFS userland against the kernel module.** The satellite runs ``zfs`` from its own image while
  the module comes from the Talos extension; a satellite userland 2.1 against a 2.2 module made
  every ``zfs create`` fail with "Invalid argument" (piraeus-operator#635). ``zfs --version`` in
  the satellite prints both (``zfs-<userland>`` and ``zfs-kmod-<module>``); their major.minor
  must match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
from kubernetes import client as k8s
from kubernetes.stream import stream

from . import kinds, kube
from .errors import PreconditionFailed, RunbookError, TalosError
from .manifests import VERIFY_ALG, VERIFY_ALG_KEY
from .services.clients import linstor as linstor_client
from .session import Session
from .storage_gates import linstor_installed

#: the typed API the exec stream calls, which the kubernetes client loads on first use (runbook_lib.warm_up)
WARM_UP_IMPORTS = ("kubernetes.client.api.core_v1_api",)

#: the first Talos release whose kernel (Linux 6.18) lacks crct10dif, LINSTOR's automatic choice (talos#12478)
NO_CRCT10DIF_FROM = (1, 12)
_ZFS_PROVIDERS = {"zfsPool": "ZFS", "zfsThinPool": "ZFS_THIN", "lvmPool": "LVM", "lvmThinPool": "LVM_THIN"}


@dataclass
class NodeCompat:
    node: str
    linstor: str  # connection status, or "not registered"
    drbd: str  # "supported" or LINSTOR's reason
    provider: str  # the pool's provider kind: "supported" or LINSTOR's reason
    drbd_module: str = ""  # /sys/module/drbd/version, or "not loaded"
    verify_alg: str = ""  # "crc32c present" / "missing"
    zfs: str = ""  # "userland 2.3.4, module 2.3.4" / reason
    problems: list[str] = field(default_factory=list)


def crypto_algorithms(text: str) -> set[str]:
    """Algorithm names in ``/proc/crypto`` (``name : crc32c`` lines; crypto/proc.c)."""
    return {m.group(1) for m in re.finditer(r"^name\s*:\s*(\S+)\s*$", text, re.M)}


def zfs_versions(text: str) -> tuple[str | None, str | None]:
    """(userland, module) from ``zfs --version``: ``zfs-2.2.2-1`` and ``zfs-kmod-2.2.2-1`` lines."""
    user = re.search(r"^zfs-(\d+\.\d+\.\d+)", text, re.M)
    kmod = re.search(r"^zfs-kmod-(\d+\.\d+\.\d+)", text, re.M)
    return (user.group(1) if user else None), (kmod.group(1) if kmod else None)


def zfs_mismatch(userland: str, module: str) -> bool:
    return userland.split(".")[:2] != module.split(".")[:2]


def linstor_problems(nodes: list[dict], storage_nodes: list[str], pool_type: str) -> dict[str, NodeCompat]:
    """Per storage node: DRBD and the pool's provider as LINSTOR reports them, and what stops the run."""
    by_name = {n.get("name"): n for n in nodes}
    provider = _ZFS_PROVIDERS[pool_type]
    out = {}
    for name in storage_nodes:
        node = by_name.get(name)
        if node is None:
            out[name] = NodeCompat(name, "not registered", "unknown", "unknown", problems=[
                f"{name}: LINSTOR has no satellite for it: check the linstor-satellite pod on {name}"])
            continue
        nc = NodeCompat(name, str(node.get("connection_status", "UNKNOWN")), "supported", "supported")
        if "DRBD" not in (node.get("resource_layers") or []):
            reasons = (node.get("unsupported_layers") or {}).get("DRBD") or ["not reported (satellite offline?)"]
            nc.drbd = "; ".join(reasons)
            nc.problems.append(f"{name}: LINSTOR reports the DRBD layer unsupported: {nc.drbd}. The drbd module is not "
                               "loaded (or not with usermode_helper=disabled): run 02, which installs the siderolabs/drbd "
                               "extension and the machine.kernel.modules entries, then run again")
        if provider not in (node.get("storage_providers") or []):
            reasons = (node.get("unsupported_providers") or {}).get(provider) or ["not reported"]
            nc.provider = "; ".join(reasons)
            need = "the zfs module (02 adds it)" if provider.startswith("ZFS") else "LVM"
            nc.problems.append(f"{name}: LINSTOR cannot create a {provider} pool there: {nc.provider}; it needs {need}")
        out[name] = nc
    return out


def preflight(session: Session, *, before_upgrade: bool = False) -> pd.DataFrame:
    """Check every storage node; stop (:class:`PreconditionFailed`) naming the node and the fix.

    ``before_upgrade`` (02): LINSTOR may not be installed yet (then only the kernel is checked); a DRBD
    layer or pool provider LINSTOR reports unsupported is shown but does not stop 02, which installs the
    modules (02 runs the full check again after its upgrades); when the target Talos lacks crct10dif,
    the verify algorithm must already be pinned or the upgrade would bring the replicas back Diskless.
    """
    params = session.params
    names = [n.name for n in session.storage_nodes]
    installed = linstor_installed(session)
    rows: dict[str, NodeCompat] = {}
    if installed:
        linstor = linstor_client(session)
        rows = linstor_problems(linstor.nodes(), names, params.storage.pool_type)
        if before_upgrade:
            for nc in rows.values():  # what 02 installs (the drbd and zfs modules) is checked again after it
                nc.problems.clear()
        if before_upgrade and params.talos_version_tuple[:2] >= NO_CRCT10DIF_FROM:
            pinned = linstor.controller_properties().get(VERIFY_ALG_KEY)
            ok = session.check(f"{VERIFY_ALG_KEY} pinned before the upgrade to {params.talos_version}",
                               pinned is not None, pinned or "unset (LINSTOR picks crct10dif)", f"set ({VERIFY_ALG})")
            if not ok:
                raise PreconditionFailed(
                    f"{VERIFY_ALG_KEY} is not set and Talos {params.talos_version} has no crct10dif: after the "
                    "upgrade the replicas would come back Diskless (siderolabs/talos#12478). Run 03 first (it pins "
                    f"{VERIFY_ALG} on the LinstorCluster), or set it: kubectl linstor controller set-property "
                    f"{VERIFY_ALG_KEY} {VERIFY_ALG}")
    else:
        print("LINSTOR is not installed yet: its node checks run in 03")
        rows = {n: NodeCompat(n, "not installed", "", "") for n in names}
    drbd_versions = session.talos.read_each(session.storage_nodes, "/sys/module/drbd/version")
    cryptos = session.talos.read_each(session.storage_nodes, "/proc/crypto")
    for node in session.storage_nodes:
        nc = rows[node.name]
        drbd, crypto = drbd_versions[node.name], cryptos[node.name]
        nc.drbd_module = "not loaded" if isinstance(drbd, TalosError) else drbd.strip()
        major = nc.drbd_module.split(".")[0]
        if not before_upgrade and (not major.isdigit() or int(major) < 9):
            nc.problems.append(f"{node.name}: DRBD module {nc.drbd_module}: LINSTOR needs DRBD 9 (the siderolabs/drbd "
                               "extension and its machine.kernel.modules entries, which 02 adds)")
        if isinstance(crypto, TalosError):
            raise PreconditionFailed(f"{node.name}: cannot read /proc/crypto ({crypto})")
        algs = crypto_algorithms(crypto)
        nc.verify_alg = f"{VERIFY_ALG} present" if VERIFY_ALG in algs else f"{VERIFY_ALG} missing"
        if VERIFY_ALG not in algs:
            nc.problems.append(f"{node.name}: its kernel lists no {VERIFY_ALG} in /proc/crypto, the DRBD verify "
                               "algorithm this cluster pins: DRBD peers could not connect")
    if installed and params.storage.pool_type.startswith("zfs") and "siderolabs/zfs" in params.extensions:
        for name, text in satellite_zfs_versions(session, names).items():
            nc = rows[name]
            user, module = zfs_versions(text)
            if user is None or module is None:
                nc.zfs = text.strip().splitlines()[-1] if text.strip() else "no output"
                nc.problems.append(f"{name}: `zfs --version` in its satellite shows no userland and module version "
                                   f"({nc.zfs}): is the zfs module loaded (02)?")
                continue
            nc.zfs = f"userland {user}, module {module}"
            if zfs_mismatch(user, module):
                nc.problems.append(f"{name}: the satellite's ZFS userland {user} does not match the node's ZFS module "
                                   f"{module}: zfs create fails with 'Invalid argument' (piraeus-operator#635). Use a "
                                   "satellite image whose ZFS tools match the Talos zfs extension")
    for nc in rows.values():
        session.check(f"{nc.node}: DRBD, pool provider, verify algorithm, ZFS compatible", not nc.problems,
                      "; ".join(nc.problems) or "compatible", "compatible")
    problems = [p for nc in rows.values() for p in nc.problems]
    frame = pd.DataFrame([{"node": nc.node, "LINSTOR": nc.linstor, "DRBD layer": nc.drbd, "DRBD module": nc.drbd_module,
                           "pool provider": nc.provider,
                           "verify-alg": nc.verify_alg, "ZFS": nc.zfs} for nc in rows.values()])
    if problems:
        raise PreconditionFailed("compatibility preflight failed, nothing was changed:\n- " + "\n- ".join(problems))
    return frame


def satellite_zfs_versions(session: Session, nodes: list[str]) -> dict[str, str]:
    """``zfs --version`` (stdout and stderr) in each node's ``linstor-satellite`` container."""
    ns = session.params.piraeus.namespace
    api = session.kube()
    pods = kube.list_objects(api, kinds.POD.collection(ns), "app.kubernetes.io/component=linstor-satellite")
    by_node = {(p.get("spec") or {}).get("nodeName"): p["metadata"]["name"] for p in pods
               if (p.get("status") or {}).get("phase") == "Running"}
    out = {}
    for node in nodes:
        pod = by_node.get(node)
        if pod is None:
            raise PreconditionFailed(f"{node}: no running linstor-satellite pod in {ns}: check the LinstorCluster")
        out[node] = _exec(api, ns, pod, "linstor-satellite", ["zfs", "--version"])
    return out


def _exec(api: k8s.ApiClient, namespace: str, pod: str, container: str, command: list[str]) -> str:
    """Run ``command`` in the container (pods/exec over WebSocket) and return its stdout and stderr."""
    try:
        resp = stream(k8s.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, container=container,
                      command=command, stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
        resp.run_forever(timeout=30)
        text = resp.read_stdout() + resp.read_stderr()
        resp.close()
    except Exception as err:  # the client raises ApiException, WebSocket and OS errors alike
        raise RunbookError(f"{' '.join(command)} in {namespace}/{pod}: {err}") from None
    return text


def after_upgrade(session: Session) -> pd.DataFrame | None:
    """02's closing check: the full preflight, now that the modules are in (plan mode changed nothing to check)."""
    if session.dry_run:
        print("plan mode: nothing was upgraded, so LINSTOR's view is not checked again")
        return None
    return preflight(session)
