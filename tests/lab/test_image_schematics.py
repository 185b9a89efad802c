"""Schematic merge, installer names, kernel modules and the parameters behind them (issue 13, items 4, 5, 7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runbook_lib import cli, machineconfig, schematics
from runbook_lib.errors import PreconditionFailed
from runbook_lib.factory import FactoryError, ImageFactory, SchematicError, installer_image, schematic_id
from runbook_lib.lab.talos import factory_api
from runbook_lib.lab.talos.machine_config import _merge
from runbook_lib.params import Storage, parse_params
from runbook_lib.steps import nb02_extensions_and_upgrade as upgrade
from tests.lab_helpers import serve_lab, write_params

DRBD_ZFS = ["siderolabs/drbd", "siderolabs/zfs"]
NODE = [{"name": "n1", "address": "10.5.0.2", "role": "controlplane"}]


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[ImageFactory]:
    """The lab's Image Factory over real HTTP."""
    lab, server, _ = serve_lab(NODE, tmp_path)
    server.factory_handler = factory_api.handle
    try:
        with ImageFactory(f"{server.url}/factory") as f:
            yield f
    finally:
        server.stop()
        server.server_close()


# ----------------------------------------------------------------------------- merge


def test_merge_keeps_everything_and_appends_only_what_is_missing() -> None:
    current = {"overlay": {"image": "siderolabs/sbc-raspberrypi", "name": "rpi_generic"},
               "customization": {"extraKernelArgs": ["console=ttyS0", "net.ifnames=0"],
                                 "meta": [{"key": 10, "value": "x"}],
                                 "systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools", "siderolabs/zfs"]}}}
    merged = schematics.merge(current, DRBD_ZFS)
    assert schematics.extensions(merged) == ["siderolabs/iscsi-tools", "siderolabs/zfs", "siderolabs/drbd"]
    assert merged["overlay"] == current["overlay"] and merged["customization"]["meta"] == [{"key": 10, "value": "x"}]
    assert schematics.kernel_args(merged) == ["console=ttyS0", "net.ifnames=0"]
    assert schematics.extensions(current) == ["siderolabs/iscsi-tools", "siderolabs/zfs"]  # not mutated
    assert schematics.merge(merged, DRBD_ZFS) == merged  # nothing missing: the same schematic, the same ID
    ns = schematics.NodeSchematic("n1", "x" * 64, current, merged)
    assert ns.added == ["siderolabs/drbd"]
    assert ns.difference() == ["+ extension siderolabs/drbd", "= extension siderolabs/iscsi-tools",
                               "= extension siderolabs/zfs", "= kernel argument console=ttyS0",
                               "= kernel argument net.ifnames=0", "= meta key 10", "= overlay rpi_generic"]


def test_a_vanilla_node_gets_exactly_the_wanted_extensions() -> None:
    merged = schematics.merge(schematics.VANILLA, DRBD_ZFS)
    # the drbd+zfs vector of the reference notes (talhelper), as before the merge existed
    assert schematic_id(merged) == "98442b5bb4e8d050f30978ce3e6ec22e7bf534d57cafcd51313235128057e612"


def test_current_schematic_from_the_factory_and_its_refusals(factory: ImageFactory) -> None:
    posted = {"customization": {"extraKernelArgs": ["console=ttyS0"],
                                "systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools"]}}}
    sid = factory.create_schematic(posted)
    assert schematics.current_schematic(factory, "n1", sid, {"iscsi-tools": "v0.2.0"}) == posted
    assert schematics.current_schematic(factory, "n1", None, {}) == schematics.VANILLA
    with pytest.raises(PreconditionFailed, match="n1 runs extensions \\(gvisor\\) but no Image Factory schematic"):
        schematics.current_schematic(factory, "n1", None, {"gvisor": "1"})
    with pytest.raises(PreconditionFailed, match=f"n1 runs schematic {'a' * 64}, which the Image Factory .* does not know"):
        schematics.current_schematic(factory, "n1", "a" * 64, {})
    with pytest.raises(FactoryError):
        factory.get_schematic("b" * 64)


# ----------------------------------------------------------------------------- installer names


@pytest.mark.parametrize(("platform", "secureboot", "version", "repo"), [
    ("metal", False, "v1.12.7", "metal-installer"),
    ("nocloud", True, "v1.12.7", "nocloud-installer-secureboot"),
    ("aws", False, "v1.10.0", "aws-installer"),
    ("metal", True, "v1.9.6", "installer-secureboot"),  # before the unified installer: one image for every platform
    ("vmware", False, "v1.9.6", "installer"),
])
def test_installer_names_follow_the_factory(platform: str, secureboot: bool, version: str, repo: str) -> None:
    sid = "0" * 64
    image = installer_image(sid, version, platform=platform, secureboot=secureboot)
    assert image == f"factory.talos.dev/{repo}/{sid}:{version}"


def test_installer_refuses_unknown_platforms_and_secureboot_where_there_is_none() -> None:
    with pytest.raises(SchematicError, match="not an Image Factory platform"):
        installer_image("0" * 64, "v1.12.7", platform="bare-metal")
    with pytest.raises(SchematicError, match="aws has no SecureBoot installer"):
        installer_image("0" * 64, "v1.12.7", platform="aws", secureboot=True)


def test_params_check_refuses_an_unknown_platform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_params(tmp_path / "p.yaml", talos_platform="proxmox")
    assert cli.main(["params", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "talos_platform: 'proxmox' is not an Image Factory platform" in err and "nocloud" in err
    path = write_params(tmp_path / "q.yaml", talos_platform="hcloud", secureboot=True)
    assert cli.main(["params", "check", str(path)]) == 2
    assert "secureboot: the hcloud platform has no SecureBoot installer" in capsys.readouterr().err
    p = parse_params({})
    assert (p.talos_platform, p.secureboot, p.storage.zfs_arc_max_bytes) == ("metal", False, 4 * 1024**3)


# ----------------------------------------------------------------------------- kernel modules


def test_kernel_modules_for_the_pool() -> None:
    zfs = upgrade.kernel_modules(DRBD_ZFS, Storage())
    assert zfs[-1] == {"name": "zfs", "parameters": [f"zfs_arc_max={4 * 1024**3}"]}
    assert upgrade.kernel_modules(DRBD_ZFS, Storage(zfs_arc_max=None))[-1] == {"name": "zfs"}
    thin = upgrade.kernel_modules(["siderolabs/drbd"], Storage(pool_type="lvmThinPool"))
    assert [m["name"] for m in thin] == ["drbd", "drbd_transport_tcp", "dm_thin_pool"]


def test_module_patches_add_only_missing_names_and_replace_a_list_whose_parameters_changed() -> None:
    wanted = upgrade.kernel_modules(DRBD_ZFS, Storage())
    current = [{"name": "br_netfilter"}]
    (patch,) = machineconfig.modules_patches(current, wanted)
    assert yaml.safe_load(patch) == {"machine": {"kernel": {"modules": wanted}}}
    after = _merge({"machine": {"kernel": {"modules": current}}}, yaml.safe_load(patch))["machine"]["kernel"]["modules"]
    assert machineconfig.modules_patches(after, wanted) == []  # the second run sends nothing
    # appending the same patch again is what Talos does with a list: the entries would be there twice
    twice = _merge({"machine": {"kernel": {"modules": after}}}, yaml.safe_load(patch))["machine"]["kernel"]["modules"]
    assert [m["name"] for m in twice].count("drbd") == 2

    old = [{"name": "drbd", "parameters": ["usermode_helper=disabled"]}, {"name": "zfs"}, {"name": "br_netfilter"}]
    delete, replace = machineconfig.modules_patches(old, wanted)
    assert yaml.safe_load(delete) == {"machine": {"kernel": {"modules": {"$patch": "delete"}}}}
    mods = yaml.safe_load(replace)["machine"]["kernel"]["modules"]
    assert [m["name"] for m in mods] == ["drbd", "zfs", "br_netfilter", "drbd_transport_tcp"]
    assert mods[1]["parameters"] == [f"zfs_arc_max={4 * 1024**3}"]
    doc = {"machine": {"kernel": {"modules": old}}}
    for p in (delete, replace):
        doc = _merge(doc, yaml.safe_load(p))
    assert machineconfig.modules_patches(doc["machine"]["kernel"]["modules"], wanted) == []
