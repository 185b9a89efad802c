"""What each lab node's boot image holds: its schematic, kernel command line and kernel crypto algorithms.

Lab nodes start from the vanilla installer, or, with ``lab.initial_extensions`` /
``lab.initial_kernel_args``, from an Image Factory installer whose schematic carries those extensions
and ``extraKernelArgs`` (the factory "has seen" that schematic: it serves ``GET /schematics/<id>``,
as the real one does for every schematic someone created). ``/proc/cmdline`` holds the schematic's
kernel arguments after Talos's own; ``/proc/crypto`` lists the algorithms the node's kernel has, which
changed with Linux 6.18 in Talos v1.12.0: ``crct10dif`` is gone, and DRBD's verify algorithm
defaulted to it (siderolabs/talos#12478: "failed to allocate crct10dif for verify").
"""

from __future__ import annotations

import copy

from ..cluster import Lab
from . import factory_api
from .constants import FACTORY_HOST
from .machine_config import v1alpha1_doc
from .node import TalosNode
from .releases import parse_version


def install_initial(lab: Lab, extensions: list[str], kernel_args: list[str]) -> None:
    """Put every node on an Image Factory installer with ``extensions`` and ``kernel_args`` (no-op when both empty)."""
    if not extensions and not kernel_args:
        return
    cust: dict = {}
    if kernel_args:
        cust["extraKernelArgs"] = list(kernel_args)
    if extensions:
        cust["systemExtensions"] = {"officialExtensions": list(extensions)}
    schematic = {"customization": cust}
    sid = factory_api.schematic_id(schematic)
    lab.schematics[sid] = factory_api.canonical_dict(schematic)
    for node in lab.talos.nodes.values():
        repo = "metal-installer" if parse_version(node.talos_version)[:2] >= (1, 10) else "installer"
        image = f"{FACTORY_HOST}/{repo}/{sid}:{node.talos_version}"
        node.schematic, node.extensions, node.installer_image = sid, list(extensions), image
        main = v1alpha1_doc(node.config or [])
        if main is not None:
            main.setdefault("machine", {}).setdefault("install", {})["image"] = image
            node.persisted = copy.deepcopy(node.config)


def cmdline(lab: Lab, node: TalosNode) -> str:
    """``/proc/cmdline``: Talos's metal defaults, then the running schematic's ``extraKernelArgs``."""
    base = ["talos.platform=metal", "console=tty0", "init_on_alloc=1", "slab_nomerge", "pti=on",
            "consoleblank=0", "nvme_core.io_timeout=4294967295", "printk.devkmsg=on", "ima_template=ima-ng",
            "ima_appraise=fix", "ima_hash=sha512"]
    data = lab.schematics.get(node.schematic or "") or {}
    extra = list((data.get("customization") or {}).get("extraKernelArgs") or [])
    return " ".join(base + extra) + "\n"


def _entry(name: str, driver: str, module: str, kind: str, digest: int) -> str:
    return (f"name         : {name}\ndriver       : {driver}\nmodule       : {module}\npriority     : 100\n"
            f"refcnt       : 1\nselftest     : passed\ninternal     : no\ntype         : {kind}\n"
            f"blocksize    : {1 if kind == 'shash' else 64}\ndigestsize   : {digest}\n\n")


def crypto(node: TalosNode) -> str:
    """``/proc/crypto`` (format of crypto/proc.c) for the algorithms DRBD's verify and integrity may use."""
    algs = [("crc32c", "crc32c-generic", "kernel", "shash", 4), ("crc32", "crc32-generic", "kernel", "shash", 4),
            ("sha256", "sha256-generic", "kernel", "shash", 32), ("sha1", "sha1-generic", "kernel", "shash", 20),
            ("md5", "md5-generic", "kernel", "shash", 16)]
    if parse_version(node.talos_version)[:2] < (1, 12):  # Linux 6.18 (Talos v1.12.0) dropped the crct10dif shash
        algs.append(("crct10dif", "crct10dif-pclmul", "kernel", "shash", 2))
    return "".join(_entry(*a) for a in algs)
