"""LINSTOR checks shared by the layers: its OpenAPI spec as a validator, and a small in-memory controller."""

from __future__ import annotations

from functools import cache

import jsonschema
import yaml

from runbook_lib.lab.linstor.controller import LinstorController
from runbook_lib.lab.linstor.providers import DeviceInfo, SatelliteFacts
from tests.reference import reference_path
from tests.storage_lab import GIB


@cache
def _spec() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(reference_path("linstor", "rest_v1_openapi.yaml").read_text(), Loader=loader)  # noqa: S506 - safe loader
    schemas = spec["components"]["schemas"]
    # Known gaps between the document and what LINSTOR sends (checked on the captured samples):
    # - Node.type: the server writes the Java enum names (SATELLITE...), golinstor's fixtures too.
    schemas["Node"]["properties"]["type"]["enum"] += ["CONTROLLER", "SATELLITE", "COMBINED", "AUXILIARY"]
    # - layer ``data`` unions are ``oneOf`` without a discriminator; every member is an object of
    #   optional properties, so real data matches several: the sibling ``type`` selects the member.
    for name in ("VolumeLayer", "ResourceDefinitionLayer", "VolumeDefinitionLayer"):
        data = schemas.get(name, {}).get("properties", {}).get("data")
        if data and "oneOf" in data:
            data["anyOf"] = data.pop("oneOf")
    return spec


@cache
def _validator(schema_name: str, array: bool) -> jsonschema.Draft7Validator:
    schema: dict = {"$ref": f"#/components/schemas/{schema_name}"}
    if array:
        schema = {"type": "array", "items": schema}
    return jsonschema.Draft7Validator({**schema, "components": _spec()["components"]})


def validate(instance: object, schema_name: str, *, array: bool = False) -> None:
    errors = list(_validator(schema_name, array).iter_errors(instance))
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]]



# FAIL_NOT_ENOUGH_NODES (996) | MASK_ERROR | MASK_CRT | MASK_RSC as Java's signed long (golinstor apiconsts.go)
RC_NOT_ENOUGH_NODES = (0xC000000000000000 | 0x01000000 | 0x340000 | 996) - 2**64


def linstor_controller(*, zfs: bool = True, kinds: tuple[str, ...] = ("ZFS",)) -> LinstorController:
    ctl = LinstorController(seed=7)
    for i, n in enumerate(("a", "b", "c")):
        ctl.create_or_update_node(n, f"10.0.0.{i + 1}", {})
        ctl.set_online(n, True, SatelliteFacts("9.2.16", zfs, {"/dev/sdb": DeviceInfo("/dev/sdb", 100 * GIB, None),
                                                               "/dev/sdc": DeviceInfo("/dev/sdc", 100 * GIB, "xfs"),
                                                               "/dev/sdd": DeviceInfo("/dev/sdd", 100 * GIB, "xfs", "/var/mnt/x")}))
        for kind in kinds:
            ctl.create_device_pool(n, kind, f"{kind.lower()}pool", ["/dev/sdb"], kind.lower(), {})
    return ctl
