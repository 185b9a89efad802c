"""Machine configuration: generate, parse, patch (strategic merge and RFC 6902), diff and validate."""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from .. import json_patch
from .constants import IMMEDIATE_FEATURES, IMMEDIATE_MACHINE, IMMEDIATE_TOP, KUBERNETES_VERSION
from .errors import TalosAPIError
from .go_yaml import dump_config
from .releases import parse_version
from .seeded import _Rand


def generate_v1alpha1(role: str, *, hostname: str, install_disk: str, installer_image: str, endpoint_ip: str,
                      cluster_name: str, secrets: dict[str, str]) -> dict:
    """A realistic ``talosctl gen config`` style v1alpha1 document (secrets come from ``secrets``)."""
    cp = role == "controlplane"
    machine: dict[str, Any] = {
        "type": role,
        "token": secrets["machine_token"],
        "ca": {"crt": secrets["machine_ca_crt"], "key": secrets["machine_ca_key"] if cp else ""},
        "certSANs": [],
        "kubelet": {"image": f"ghcr.io/siderolabs/kubelet:{KUBERNETES_VERSION}",
                    "defaultRuntimeSeccompProfileEnabled": True, "disableManifestsDirectory": True},
        "network": {"hostname": hostname},
        "install": {"disk": install_disk, "image": installer_image, "wipe": False},
        "features": {"rbac": True, "stableHostname": True, "apidCheckExtKeyUsage": True, "diskQuotaSupport": True,
                     "kubePrism": {"enabled": True, "port": 7445},
                     "hostDNS": {"enabled": True, "forwardKubeDNSToHost": True}},
    }
    if cp:
        machine["nodeLabels"] = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
    cluster: dict[str, Any] = {
        "id": secrets["cluster_id"],
        "secret": secrets["cluster_secret"],
        "controlPlane": {"endpoint": f"https://{endpoint_ip}:6443"},
        "clusterName": cluster_name,
        "network": {"dnsDomain": "cluster.local", "podSubnets": ["10.244.0.0/16"], "serviceSubnets": ["10.96.0.0/12"]},
        "token": secrets["cluster_token"],
    }
    if cp:
        cluster.update({
            "secretboxEncryptionSecret": secrets["secretbox"],
            "ca": {"crt": secrets["k8s_ca_crt"], "key": secrets["k8s_ca_key"]},
            "aggregatorCA": {"crt": secrets["aggregator_crt"], "key": secrets["aggregator_key"]},
            "serviceAccount": {"key": secrets["service_account_key"]},
            "apiServer": {"image": f"registry.k8s.io/kube-apiserver:{KUBERNETES_VERSION}", "certSANs": [endpoint_ip]},
            "controllerManager": {"image": f"registry.k8s.io/kube-controller-manager:{KUBERNETES_VERSION}"},
            "proxy": {"image": f"registry.k8s.io/kube-proxy:{KUBERNETES_VERSION}"},
            "scheduler": {"image": f"registry.k8s.io/kube-scheduler:{KUBERNETES_VERSION}"},
            "discovery": {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}},
            "etcd": {"ca": {"crt": secrets["etcd_ca_crt"], "key": secrets["etcd_ca_key"]}},
        })
    else:
        cluster.update({
            "ca": {"crt": secrets["k8s_ca_crt"], "key": ""},
            "discovery": {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}},
        })
    return {"version": "v1alpha1", "debug": False, "persist": True, "machine": machine, "cluster": cluster}


def generate_secrets(seed: int) -> dict[str, str]:
    r = _Rand(seed, "secrets")
    tok = "abcdefghijklmnopqrstuvwxyz0123456789"
    return {
        "machine_token": f"{r.alnum(6, tok)}.{r.alnum(16, tok)}",
        "machine_ca_crt": r.pem("CERTIFICATE", 300),
        "machine_ca_key": r.pem("ED25519 PRIVATE KEY", 48),
        "cluster_id": r.b64(32),
        "cluster_secret": r.b64(32),
        "cluster_token": f"{r.alnum(6, tok)}.{r.alnum(16, tok)}",
        "secretbox": r.b64(32),
        "k8s_ca_crt": r.pem("CERTIFICATE", 420),
        "k8s_ca_key": r.pem("EC PRIVATE KEY", 121),
        "aggregator_crt": r.pem("CERTIFICATE", 300),
        "aggregator_key": r.pem("EC PRIVATE KEY", 121),
        "service_account_key": r.pem("EC PRIVATE KEY", 121),
        "etcd_ca_crt": r.pem("CERTIFICATE", 330),
        "etcd_ca_key": r.pem("EC PRIVATE KEY", 121),
        "client_ca": r.pem("CERTIFICATE", 300),
        "client_crt": r.pem("CERTIFICATE", 330),
        "client_key": r.pem("ED25519 PRIVATE KEY", 48),
    }


# Which generated values are secret (certificates are public; keys, tokens and secrets are not).
SECRET_KEYS = ("machine_token", "machine_ca_key", "cluster_secret", "cluster_token", "secretbox", "k8s_ca_key",
               "aggregator_key", "service_account_key", "etcd_ca_key", "client_key")


def parse_config(text: str) -> list[dict]:
    """Split a machine configuration into its documents; a bad YAML is an InvalidArgument error."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise TalosAPIError("InvalidArgument", f"failed to parse config: {exc}") from None
    for d in docs:
        if not isinstance(d, dict):
            raise TalosAPIError("InvalidArgument", "failed to parse config: document is not a mapping")
    return docs


def doc_key(doc: dict) -> tuple[str, str, str]:
    """Identity of a document for merging: (apiVersion, kind, name); the v1alpha1 document is special."""
    if "kind" not in doc and doc.get("version") == "v1alpha1":
        return ("v1alpha1", "v1alpha1", "")
    return (str(doc.get("apiVersion", "")), str(doc.get("kind", "")), str(doc.get("name", "")))


def v1alpha1_doc(docs: list[dict]) -> dict | None:
    return next((d for d in docs if doc_key(d)[1] == "v1alpha1"), None)


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as Talos ``configpatcher``: maps merge, lists are concatenated (an entry already there
    is appended again: ``pkg/machinery/config/merge`` Merge), ``$patch: delete`` removes a key."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if isinstance(value, dict) and value.get("$patch") == "delete":
                out.pop(key, None)
            elif key in out:
                out[key] = _merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        return base + [copy.deepcopy(v) for v in patch]  # concatenated, duplicates kept (talos config/merge)
    return copy.deepcopy(patch)


def apply_config_patches(docs: list[dict], patches: Iterable[str]) -> list[dict]:
    """Apply ``talosctl patch machineconfig -p`` patches (client side, like Talos ``configpatcher``).

    Strategic merge patches may hold several documents; each merges into the document with the
    same apiVersion, kind and name, or is appended (notes §3 "Config patch semantics"). A document
    that is only ``$patch: delete`` removes its match; the v1alpha1 document cannot be deleted.
    A patch that starts with ``[`` is a JSON (RFC 6902) patch for the v1alpha1 document.
    """
    result = copy.deepcopy(docs)
    for text in patches:
        stripped = text.strip()
        if stripped.startswith("["):
            ops = json.loads(stripped) if stripped.startswith("[{") or stripped == "[]" else yaml.safe_load(stripped)
            if len(result) != 1:
                raise ValueError("JSON6902 patches are not supported for multi-document machine configuration")
            try:
                result = [json_patch.apply(result[0], ops)]
            except json_patch.PatchFailed as exc:  # configpatcher.JSON6902's wording
                raise ValueError(f"failure applying rfc6902 patches to talos machine config: {exc}") from None
            continue
        try:
            patch_docs = [d for d in yaml.safe_load_all(stripped) if d is not None]
        except yaml.YAMLError as exc:
            raise ValueError(f"failed to parse patch: {exc}") from None
        for pd in patch_docs:
            if not isinstance(pd, dict):
                raise ValueError("failed to parse patch: document is not a mapping")
            key = doc_key(pd) if ("kind" in pd or "version" in pd) else ("v1alpha1", "v1alpha1", "")
            target = next((i for i, d in enumerate(result) if doc_key(d) == key), None)
            if pd.get("$patch") == "delete":
                if key[1] == "v1alpha1":
                    raise ValueError("cannot delete the v1alpha1 document")
                if target is not None:
                    result.pop(target)
                continue
            if target is None:
                result.append(copy.deepcopy(pd))
            else:
                result[target] = _merge(result[target], pd)
    return result


def strip_immediate(doc: dict) -> dict:
    """The v1alpha1 document without the fields ``CanApplyImmediate`` lets change live."""
    d = copy.deepcopy(doc)
    for k in IMMEDIATE_TOP:
        d.pop(k, None)
    machine = d.get("machine") or {}
    for k in IMMEDIATE_MACHINE:
        machine.pop(k, None)
    feats = machine.get("features") or {}
    for k in IMMEDIATE_FEATURES:
        feats.pop(k, None)
    return d


def config_diff(old: list[dict], new: list[dict]) -> str:
    """Unified diff of the encoded configurations (``configdiff.DiffToString``), "" when equal."""
    a, b = dump_config(old).splitlines(keepends=True), dump_config(new).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile="a", tofile="b"))


def _parse_size_field(text: Any, what: str) -> int:
    from runbook_lib.sizes import parse_size

    try:
        return parse_size(text if isinstance(text, int) else str(text))
    except ValueError as exc:
        raise TalosAPIError("InvalidArgument", f"{what}: {exc}") from None


def validate_config(docs: list[dict], talos_tag: str) -> list[str]:
    """Validate the non-v1alpha1 documents as Talos does (notes §1.1, §1.4). Returns warnings."""
    from runbook_lib.disk_selector import check_disk_selector

    ver = parse_version(talos_tag)[:2]
    errors: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        key = doc_key(doc)
        if key in seen:
            errors.append(f"duplicate document: {key[1]}/{key[2]}")
        seen.add(key)
        kind = key[1]
        if kind == "v1alpha1":
            continue
        known = {"VolumeConfig": (1, 8), "UserVolumeConfig": (1, 10), "RawVolumeConfig": (1, 11),
                 "KubeSpanConfig": (1, 7), "HostnameConfig": (1, 12), "ExtensionServiceConfig": (1, 7)}
        if kind not in known or ver < known[kind]:
            errors.append(f"unknown document type {doc.get('apiVersion')}/{kind}")
            continue
        name = str(doc.get("name", ""))
        prov = doc.get("provisioning") or {}
        if kind == "VolumeConfig":
            allowed = ["EPHEMERAL", "IMAGECACHE"] if ver < (1, 11) else ["STATE", "EPHEMERAL", "IMAGECACHE"]
            if name not in allowed:
                errors.append(f"only {json.dumps(allowed).replace(',', ' ')} volumes are supported")
            if name == "STATE" and prov:
                errors.append('provisioning config is not allowed for the "STATE" volume')
        if kind in ("UserVolumeConfig", "RawVolumeConfig"):
            if not name:
                errors.append("name is required")
            elif not 1 <= len(name) <= 34:
                errors.append("name must be between 1 and 34 characters long")
            elif not re.fullmatch(r"[A-Za-z0-9-]+", name):
                errors.append("name can only contain lowercase and uppercase ASCII letters, digits, and hyphens")
            vtype = doc.get("volumeType")
            if vtype is not None and (ver < (1, 12) or kind == "RawVolumeConfig"):
                errors.append("unknown keys found during decoding:\nvolumeType: " + str(vtype))
            vtype = vtype or "partition"
            if vtype not in ("partition", "disk", "directory"):
                errors.append(f'unsupported volume type "{vtype}"')
            if vtype == "directory":
                if prov:
                    errors.append("provisioning spec is invalid for volumeType directory")
                continue
            selector = (prov.get("diskSelector") or {}).get("match")
            if not selector:
                errors.append("disk selector is required")
            else:
                problems = check_disk_selector(str(selector))
                if problems:
                    errors.append("disk selector is invalid: " + "; ".join(problems))
            if vtype == "disk" and any(k in prov for k in ("minSize", "maxSize", "grow")):
                errors.append("min size, max size and grow are not supported")
            if vtype == "partition" and not prov.get("minSize") and not prov.get("maxSize"):
                errors.append("min size or max size is required")
            fs = (doc.get("filesystem") or {}).get("type", "xfs")
            if fs not in ("xfs", "ext4"):
                errors.append(f"unsupported filesystem type: {fs}")
        for key_name in ("minSize", "maxSize"):
            value = prov.get(key_name)
            if value is None:
                continue
            if isinstance(value, str) and value.strip().endswith("%"):
                if ver < (1, 12) or key_name == "minSize":
                    errors.append(f"{key_name}: percentage sizes are not supported: {value}")
                continue
            try:
                _parse_size_field(value, key_name)
            except TalosAPIError as exc:
                errors.append(exc.message)
        mn, mx = prov.get("minSize"), prov.get("maxSize")
        if mn and mx and not str(mx).strip().endswith("%"):
            try:
                if _parse_size_field(mn, "minSize") > _parse_size_field(mx, "maxSize"):
                    errors.append("min size is greater than max size")
            except TalosAPIError:
                pass
    if errors:
        # hashicorp/go-multierror default format, as Talos's config Validate returns it
        word = "error" if len(errors) == 1 else "errors"
        raise TalosAPIError("InvalidArgument", f"{len(errors)} {word} occurred:\n\t* " + "\n\t* ".join(errors) + "\n\n")
    return []
