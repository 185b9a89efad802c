"""Tests for runbook_lib.factory: offline schematic IDs, installer names, the HTTP client.

The ID vectors come from the Image Factory's own unit tests (pkg/schematic) and from
published installer references; the reference notes list them too, and a test checks
that every vector marked as verified there is covered here.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_lib.errors import RunbookError
from runbook_lib.factory import (
    FactoryError,
    SchematicError,
    canonical_yaml,
    installer_image,
    schematic_id,
)

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"

VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
DRBD_ZFS = "98442b5bb4e8d050f30978ce3e6ec22e7bf534d57cafcd51313235128057e612"


def _ext(*names: str) -> dict:
    return {"customization": {"systemExtensions": {"officialExtensions": list(names)}}}


VECTORS: list[tuple[str, dict, str]] = [
    ("empty", {}, VANILLA),
    ("empty customization", {"customization": {}}, VANILLA),
    ("null customization", {"customization": None}, VANILLA),
    ("empty kernel args", {"customization": {"extraKernelArgs": []}}, VANILLA),
    (
        "kernel args",
        {"customization": {"extraKernelArgs": ["noapic", "nolapic"]}},
        "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c",
    ),
    (
        "kernel args + empty extensions",
        {"customization": {"extraKernelArgs": ["noapic", "nolapic"], "systemExtensions": {}}},
        "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c",
    ),
    (
        "meta",
        {
            "customization": {
                "meta": [{"key": 10, "value": "foo"}],
                "extraKernelArgs": [],
                "systemExtensions": {},
            }
        },
        "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f",
    ),
    (
        "secureboot",
        {"customization": {"secureboot": {"includeWellKnownCertificates": True}}},
        "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6",
    ),
    (
        "diskImage sectorSize",
        {"customization": {"diskImage": {"sectorSize": 4096}}},
        "92833e9ddd9bb9e11b2464fa5525429f01866306d52ebd882ee08d7918f6d1ea",
    ),
    (
        "overlay",
        {"overlay": {"name": "rpi_generic", "image": "siderolabs/sbc-raspberrypi"}},
        "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9",
    ),
    (
        "overlay + empty customization",
        {"overlay": {"name": "rpi_generic", "image": "siderolabs/sbc-raspberrypi"}, "customization": {}},
        "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9",
    ),
    ("drbd + zfs", _ext("siderolabs/drbd", "siderolabs/zfs"), DRBD_ZFS),
    ("drbd", _ext("siderolabs/drbd"), "e048aaf4461ff9f9576c9a42f760f2fef566559bd4933f322853ac291e46f238"),
    (
        "zfs + drbd (order matters)",
        _ext("siderolabs/zfs", "siderolabs/drbd"),
        "831d63f6f125345f9ae33790d066aa39cd8afedf0ea436e2cb6be1af164e96b5",
    ),
]


# --------------------------------------------------------------------------- offline IDs


@pytest.mark.parametrize(("name", "schematic", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_known_vectors(name: str, schematic: dict, expected: str) -> None:
    assert schematic_id(schematic) == expected


def test_id_is_sha256_of_canonical_yaml() -> None:
    schematic = _ext("siderolabs/drbd", "siderolabs/zfs")
    text = canonical_yaml(schematic)
    assert text == (
        "customization:\n"
        "    systemExtensions:\n"
        "        officialExtensions:\n"
        "            - siderolabs/drbd\n"
        "            - siderolabs/zfs\n"
    )
    assert hashlib.sha256(text.encode()).hexdigest() == schematic_id(schematic) == DRBD_ZFS


def test_canonical_yaml_field_order_and_shapes() -> None:
    # Keys given in reverse order come out in the factory's struct order.
    schematic = {
        "customization": {
            "diskImage": {"sectorSize": 512},
            "secureboot": {"includeWellKnownCertificates": True, "enrollKeys": "off"},
            "bootloader": "sd-boot",
            "systemExtensions": {"officialExtensions": ["siderolabs/drbd"]},
            "meta": [{"value": "foo", "key": 10}, {"key": 11, "value": ""}],
            "extraKernelArgs": ["console=ttyS0,115200", "-console", "net.ifnames=0", "on"],
        },
        "overlay": {
            "options": {"configTxt": "dtoverlay=vc4", "b": True},
            "name": "rpi_generic",
            "image": "x/y",
        },
    }
    assert canonical_yaml(schematic) == (
        "overlay:\n"
        "    image: x/y\n"
        "    name: rpi_generic\n"
        "    options:\n"
        "        b: true\n"
        "        configTxt: dtoverlay=vc4\n"
        "customization:\n"
        "    extraKernelArgs:\n"
        "        - console=ttyS0,115200\n"
        "        - -console\n"
        "        - net.ifnames=0\n"
        '        - "on"\n'
        "    meta:\n"
        "        - key: 10\n"
        "          value: foo\n"
        "        - key: 11\n"
        '          value: ""\n'
        "    systemExtensions:\n"
        "        officialExtensions:\n"
        "            - siderolabs/drbd\n"
        "    bootloader: sd-boot\n"
        "    secureboot:\n"
        '        enrollKeys: "off"\n'
        "        includeWellKnownCertificates: true\n"
        "    diskImage:\n"
        "        sectorSize: 512\n"
    )


def test_zero_values_are_omitted() -> None:
    zero = {
        "overlay": {"image": "", "name": "", "options": {}},
        "customization": {
            "extraKernelArgs": [],
            "meta": [],
            "systemExtensions": {"officialExtensions": []},
            "bootloader": "",
            "secureboot": {"includeWellKnownCertificates": False, "enrollKeys": ""},
            "diskImage": {"sectorSize": 0},
        },
    }
    assert canonical_yaml(zero) == "customization: {}\n"
    assert schematic_id(zero) == VANILLA


def test_overlay_name_only_still_writes_image() -> None:
    # Overlay.image/name have no omitempty in the Go struct.
    assert canonical_yaml({"overlay": {"name": "rpi_generic"}}).startswith(
        'overlay:\n    image: ""\n    name: rpi_generic\n'
    )


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("true", '"true"'),
        ("Off", '"Off"'),
        ("y", '"y"'),
        ("NULL", '"NULL"'),
        ("123", '"123"'),
        ("1.5", '"1.5"'),
        ("1e3", '"1e3"'),
        ("", '""'),
        (
            "ip=10.0.0.2::10.0.0.1:255.255.255.0:node:eth0:off",
            "ip=10.0.0.2::10.0.0.1:255.255.255.0:node:eth0:off",
        ),
        ("tRUE", None),  # close to a YAML word: refused rather than guessed
        ("a b", None),
        ("a:", None),
        ("#x", None),
        ("'quoted'", None),
        ("1.2.3", None),
        ("caf\u00e9", None),
        ("two\nlines", None),
        ("trailing\n", None),
    ],
)
def test_scalar_quoting(value: str, rendered: str | None) -> None:
    schematic = {"customization": {"extraKernelArgs": [value]}}
    if rendered is None:
        with pytest.raises(SchematicError, match=r"customization\.extraKernelArgs\[0\]"):
            schematic_id(schematic)
    else:
        assert canonical_yaml(schematic) == f"customization:\n    extraKernelArgs:\n        - {rendered}\n"


@pytest.mark.parametrize(
    ("schematic", "where"),
    [
        ({"customisation": {}}, "customisation"),
        ({"customization": {"systemExtension": {}}}, "customization.systemExtension"),
        (
            {"customization": {"systemExtensions": {"official": []}}},
            "customization.systemExtensions.official",
        ),
        (
            {"customization": {"meta": [{"key": 1, "value": "a", "extra": 1}]}},
            r"customization\.meta\[0\]\.extra",
        ),
        ({"customization": {"secureboot": {"enroll": "x"}}}, "customization.secureboot.enroll"),
        ({"customization": {"diskImage": {"sectorsize": 4096}}}, "customization.diskImage.sectorsize"),
        ({"overlay": {"image": "a", "name": "b", "opts": {}}}, "overlay.opts"),
    ],
)
def test_unknown_keys_are_rejected_by_name(schematic: dict, where: str) -> None:
    with pytest.raises(SchematicError, match=rf"{where}: unknown field"):
        schematic_id(schematic)


@pytest.mark.parametrize(
    ("schematic", "where"),
    [
        ("customization: {}", "schematic: expected a mapping"),
        ({"customization": []}, "customization: expected a mapping"),
        ({"customization": {"extraKernelArgs": "noapic"}}, "customization.extraKernelArgs: expected a list"),
        ({"customization": {"extraKernelArgs": [1]}}, r"extraKernelArgs\[0\]: expected a string"),
        ({"customization": {"meta": [{"key": 256, "value": "a"}]}}, r"meta\[0\]\.key: 256 is outside 0..255"),
        ({"customization": {"meta": [{"key": True, "value": "a"}]}}, r"meta\[0\]\.key: expected an integer"),
        ({"customization": {"meta": [{"key": 10}]}}, r"meta\[0\]\.value: missing"),
        ({"customization": {"meta": {"key": 10}}}, "customization.meta: expected a list"),
        ({"customization": {"diskImage": {"sectorSize": "4096"}}}, "sectorSize: expected an integer"),
        (
            {"customization": {"secureboot": {"includeWellKnownCertificates": "yes"}}},
            "expected true or false",
        ),
        (
            {"customization": {"embeddedMachineConfiguration": "machine: {}\n"}},
            "embeddedMachineConfiguration",
        ),
        ({"owner": "me"}, "owner: only the Enterprise"),
        ({"overlay": {"image": "a", "name": "b", "options": {"with_underscore": 1}}}, "not letters-only"),
        ({"overlay": {"image": "a", "name": "b", "options": {"x": 1.5}}}, r"overlay\.options\.x: float"),
    ],
)
def test_invalid_input_names_the_field(schematic: Any, where: str) -> None:
    with pytest.raises(SchematicError, match=where):
        schematic_id(schematic)


def test_schematic_error_is_a_value_error_and_a_runbook_error() -> None:
    with pytest.raises(ValueError):
        schematic_id({"bogus": 1})
    assert issubclass(SchematicError, RunbookError)
    assert issubclass(FactoryError, RunbookError)


_WORD = st.from_regex(r"\A[a-z][a-z0-9._/=+,-]{0,15}\Z") | st.sampled_from(
    ["on", "true", "Null", "123", "1.5", "y", "", "siderolabs/drbd", "console=ttyS0,115200"]
)


@settings(max_examples=100, deadline=None)
@given(args=st.lists(_WORD, max_size=4), exts=st.lists(_WORD, max_size=4))
def test_canonical_yaml_reads_back_as_the_input(args: list[str], exts: list[str]) -> None:
    """What we hash is valid YAML that means the input (PyYAML as an independent reader)."""
    schematic = {"customization": {"extraKernelArgs": args, "systemExtensions": {"officialExtensions": exts}}}
    expected: dict[str, Any] = {}
    if args:
        expected["extraKernelArgs"] = args
    if exts:
        expected["systemExtensions"] = {"officialExtensions": exts}
    assert yaml.safe_load(canonical_yaml(schematic)) == {"customization": expected}


# --------------------------------------------------------------------------- reference cross-checks


def _reference(path: str) -> Path:
    target = REFERENCE / path
    if not target.exists():
        pytest.skip(f"reference material not available: {target} (needs ../shared/reference beside the repo)")
    return target


@pytest.mark.reference
def test_every_verified_vector_in_the_notes_is_covered() -> None:
    notes = _reference("notes/talos.md").read_text(encoding="utf-8")
    section = notes.split("### 4.3", 1)[1].split("\n## ", 1)[0]
    verified = {
        match
        for line in section.splitlines()
        if line.startswith("|") and "\u2714" in line
        for match in re.findall(r"\b[0-9a-f]{64}\b", line)
    }
    assert len(verified) >= 8, "the notes' test-vector table changed shape"
    assert verified <= {expected for _, _, expected in VECTORS}








# --------------------------------------------------------------------------- installer image


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1.10.9", f"factory.talos.dev/metal-installer/{DRBD_ZFS}:v1.10.9"),  # unified installer from v1.10
        ("v1.10.0", f"factory.talos.dev/metal-installer/{DRBD_ZFS}:v1.10.0"),
        ("v1.11.0", f"factory.talos.dev/metal-installer/{DRBD_ZFS}:v1.11.0"),
        ("v1.11.0-alpha.1", f"factory.talos.dev/metal-installer/{DRBD_ZFS}:v1.11.0-alpha.1"),
        ("v1.12.7", f"factory.talos.dev/metal-installer/{DRBD_ZFS}:v1.12.7"),
        ("1.12.7", f"factory.talos.dev/metal-installer/{DRBD_ZFS}:v1.12.7"),
        ("v2.0.0", f"factory.talos.dev/metal-installer/{DRBD_ZFS}:v2.0.0"),
        ("v1.9.6", f"factory.talos.dev/installer/{DRBD_ZFS}:v1.9.6"),
    ],
)
def test_installer_image(version: str, expected: str) -> None:
    assert installer_image(DRBD_ZFS, version) == expected


def test_installer_image_custom_host_and_errors() -> None:
    assert installer_image(VANILLA, "v1.12.0", factory_host="factory.example.org/").startswith(
        "factory.example.org/metal-installer/"
    )
    with pytest.raises(ValueError, match="schematic_id"):
        installer_image("abc", "v1.12.0")
    with pytest.raises(ValueError, match="schematic_id"):
        installer_image(VANILLA.upper(), "v1.12.0")
    with pytest.raises(ValueError, match="talos_version"):
        installer_image(VANILLA, "latest")
    with pytest.raises(ValueError, match="factory_host"):
        installer_image(VANILLA, "v1.12.0", factory_host="https://factory.talos.dev")


# --------------------------------------------------------------------------- HTTP client against a local server






















