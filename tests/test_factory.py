"""Tests for runbook_lib.factory: offline schematic IDs, installer names, the HTTP client.

The ID vectors come from the Image Factory's own unit tests (pkg/schematic) and from
published installer references; the reference notes list them too, and a test checks
that every vector marked as verified there is covered here.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_lib.errors import ParseError, RunbookError
from runbook_lib.factory import (
    FactoryError,
    ImageFactory,
    SchematicError,
    canonical_yaml,
    installer_image,
    schematic_id,
)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"

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


_GO_ORACLE = r"""
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

type Schematic struct {
	Overlay       Overlay       `yaml:"overlay,omitempty"`
	Customization Customization `yaml:"customization"`
}
type Customization struct {
	ExtraKernelArgs  []string         `yaml:"extraKernelArgs,omitempty"`
	Meta             []MetaValue      `yaml:"meta,omitempty"`
	SystemExtensions SystemExtensions `yaml:"systemExtensions,omitempty"`
	Bootloader       string           `yaml:"bootloader,omitempty"`
	SecureBoot       SecureBoot       `yaml:"secureboot,omitempty"`
	DiskImage        DiskImage        `yaml:"diskImage,omitempty"`
}
type MetaValue struct {
	Key   uint8  `yaml:"key"`
	Value string `yaml:"value"`
}
type SystemExtensions struct {
	OfficialExtensions []string `yaml:"officialExtensions,omitempty"`
}
type Overlay struct {
	Image   string         `yaml:"image"`
	Name    string         `yaml:"name"`
	Options map[string]any `yaml:"options,omitempty"`
}
type SecureBoot struct {
	EnrollKeys                   string `yaml:"enrollKeys,omitempty"`
	IncludeWellKnownCertificates bool   `yaml:"includeWellKnownCertificates,omitempty"`
}
type DiskImage struct {
	SectorSize uint `yaml:"sectorSize,omitempty"`
}

func main() {
	in, _ := io.ReadAll(os.Stdin)
	var docs []string
	if err := json.Unmarshal(in, &docs); err != nil {
		panic(err)
	}
	out := []string{}
	for _, d := range docs {
		dec := yaml.NewDecoder(bytes.NewReader([]byte(d)))
		dec.KnownFields(true)
		var cfg Schematic
		if err := dec.Decode(&cfg); err != nil {
			panic(err)
		}
		b, err := yaml.Marshal(&cfg)
		if err != nil {
			panic(err)
		}
		out = append(out, string(b))
	}
	j, _ := json.Marshal(out)
	fmt.Println(string(j))
}
"""


def _random_schematic(rng: random.Random) -> dict:
    tokens = [*"abcXYZ0189._/=+,:@-", "true", "no", "On", "off", "null", "0x", "1e3", "~", " ", "#", "'"]

    def word() -> str:
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 3)))
        return text if rng.random() < 0.2 else rng.choice("abcxyz") + text

    def options(depth: int) -> dict:
        out: dict[str, Any] = {}
        for _ in range(rng.randint(0, 3)):
            key = "".join(rng.choice("abAB") for _ in range(rng.randint(1, 3)))
            pick = rng.random()
            if pick < 0.4:
                out[key] = word()
            elif pick < 0.6:
                out[key] = rng.choice([True, False, None, 0, -5, 123])
            elif pick < 0.8 and depth < 2:
                out[key] = options(depth + 1)
            else:
                out[key] = [rng.choice([word(), True, 7]) for _ in range(rng.randint(0, 2))]
        return out

    schematic: dict[str, Any] = {
        "customization": {
            "extraKernelArgs": [word() for _ in range(rng.randint(0, 2))],
            "meta": [{"key": rng.randint(0, 255), "value": word()} for _ in range(rng.randint(0, 2))],
            "systemExtensions": {"officialExtensions": [word() for _ in range(rng.randint(0, 2))]},
            "bootloader": rng.choice(["", "sd-boot", "grub", "dual-boot"]),
            "secureboot": {
                "includeWellKnownCertificates": rng.random() < 0.5,
                "enrollKeys": rng.choice(["", "off"]),
            },
            "diskImage": {"sectorSize": rng.choice([0, 512, 4096])},
        }
    }
    if rng.random() < 0.5:
        schematic["overlay"] = {"image": word(), "name": word(), "options": options(0)}
    return schematic


@pytest.mark.timeout(120)
def test_matches_real_go_yaml_when_available(tmp_path: Path) -> None:
    """Cross-check against go-yaml v3 itself (the factory's marshaller), when Go is installed.

    Needs ``go`` and the yaml.v3 sources in a GOPATH (Debian: golang-go and
    golang-gopkg-yaml.v3-dev); skipped otherwise. Every schematic we agree to hash must
    produce byte-identical YAML; the ones we refuse are simply not compared.
    """
    go = shutil.which("go")
    gopath = os.environ.get("GOPATH", "/usr/share/gocode")
    if go is None or not (Path(gopath) / "src" / "gopkg.in" / "yaml.v3").is_dir():
        pytest.skip("go and gopkg.in/yaml.v3 sources (GOPATH) not installed; the offline vectors still run")
    (tmp_path / "main.go").write_text(_GO_ORACLE)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": gopath, "GOFLAGS": ""}
    subprocess.run(
        [go, "build", "-o", str(tmp_path / "oracle"), "."], cwd=tmp_path, env=env, check=True, timeout=100
    )

    rng = random.Random(20240601)
    hashable = []
    for _ in range(1500):
        schematic = _random_schematic(rng)
        try:
            hashable.append((schematic, canonical_yaml(schematic)))
        except SchematicError:
            continue
    hashable.extend((schematic, canonical_yaml(schematic)) for _, schematic, _ in VECTORS)
    assert len(hashable) > 100
    docs = json.dumps([json.dumps(schematic) for schematic, _ in hashable])
    result = subprocess.run(
        [str(tmp_path / "oracle")], input=docs, capture_output=True, text=True, check=True, timeout=60
    )
    for (schematic, ours), theirs in zip(hashable, json.loads(result.stdout), strict=True):
        assert ours == theirs, schematic


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


def _independent_id(doc: dict) -> tuple[str, str]:
    """A deliberately separate, minimal canonicaliser: kernel args and extensions only."""
    cust = doc.get("customization") or {}
    args = cust.get("extraKernelArgs") or []
    exts = (cust.get("systemExtensions") or {}).get("officialExtensions") or []
    parts = ""
    if args:
        parts += "    extraKernelArgs:\n" + "".join(f"        - {a}\n" for a in args)
    if exts:
        parts += "    systemExtensions:\n        officialExtensions:\n" + "".join(
            f"            - {e}\n" for e in exts
        )
    text = "customization:" + ("\n" + parts if parts else " {}\n")
    return hashlib.sha256(text.encode()).hexdigest(), text


class _FakeFactory(BaseHTTPRequestHandler):
    """Image Factory look-alike: JSON lists, plain-text errors, POST /schematics -> 201 {"id"}.

    Path prefixes pick behaviours: ``/v200`` answers POST with 200, ``/broken`` sends
    non-JSON bodies.
    """

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, str]:
        for prefix in ("/v200", "/broken"):
            if self.path.startswith(prefix + "/"):
                return prefix, self.path[len(prefix) :]
        return "", self.path

    def do_GET(self) -> None:
        prefix, path = self._route()
        if prefix == "/broken":
            self._send(200, "<html>not json</html>", "text/html")
        elif path == "/versions":
            self._send(200, json.dumps(["v1.11.6", "v1.12.7"]), "application/json")
        elif path == "/version/v1.12.7/extensions/official":
            exts = [
                {
                    "name": "siderolabs/drbd",
                    "ref": "ghcr.io/siderolabs/drbd:9.2.16-v1.12.7",
                    "digest": "sha256:0",
                }
            ]
            self._send(200, json.dumps(exts), "application/json")
        elif path.startswith("/schematics/") and path.split("/")[-1] in self.server.schematics:
            self._send(200, self.server.schematics[path.split("/")[-1]], "application/yaml")
        else:
            self._send(404, "404 page not found\n", "text/plain")

    def do_POST(self) -> None:
        prefix, path = self._route()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        self.server.content_types.append(self.headers.get("Content-Type", ""))
        if path != "/schematics":
            self._send(404, "404 page not found\n", "text/plain")
            return
        doc = yaml.safe_load(body) or {}
        unknown = [k for k in doc if k != "customization"] + [
            k for k in (doc.get("customization") or {}) if k not in ("extraKernelArgs", "systemExtensions")
        ]
        if unknown:
            self._send(
                400, f"yaml: unmarshal errors:\n  line 1: field {unknown[0]} not found\n", "text/plain"
            )
            return
        sid, text = _independent_id(doc)
        self.server.schematics[sid] = text
        if prefix == "/broken":
            self._send(201, json.dumps({"schematic": text}), "application/json")
        else:
            self._send(200 if prefix == "/v200" else 201, json.dumps({"id": sid}), "application/json")


class _Server(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeFactory)
        self.schematics: dict[str, str] = {}
        self.content_types: list[str] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_create_schematic_matches_offline_id(server: _Server) -> None:
    schematic = _ext("siderolabs/drbd", "siderolabs/zfs")
    with ImageFactory(server.url, timeout=5) as factory:
        sid = factory.create_schematic(schematic)
        assert sid == schematic_id(schematic) == DRBD_ZFS
        assert factory.get_schematic(sid) == canonical_yaml(schematic)
    assert server.content_types == ["application/yaml"]


def test_create_schematic_kernel_args_and_status_200(server: _Server) -> None:
    schematic = {"customization": {"extraKernelArgs": ["console=ttyS0,115200", "net.ifnames=0"]}}
    with ImageFactory(server.url + "/v200", timeout=5) as factory:
        assert factory.create_schematic(schematic) == schematic_id(schematic)


def test_versions_and_extensions(server: _Server) -> None:
    with ImageFactory(server.url, timeout=5) as factory:
        assert factory.versions() == ["v1.11.6", "v1.12.7"]
        assert [e["name"] for e in factory.official_extensions("v1.12.7")] == ["siderolabs/drbd"]
        with pytest.raises(FactoryError) as info:
            factory.official_extensions("v0.0.1")
    assert info.value.status == 404
    assert "404 page not found" in info.value.body
    assert "HTTP 404" in str(info.value)


def test_http_errors_carry_status_and_plain_text_body(server: _Server) -> None:
    with ImageFactory(server.url, timeout=5) as factory:
        with pytest.raises(FactoryError) as info:
            factory.create_schematic({"customization": {"bootloader": "sd-boot"}})
        assert info.value.status == 400
        assert "field bootloader not found" in info.value.body
        with pytest.raises(FactoryError) as missing:
            factory.get_schematic(VANILLA)
        assert missing.value.status == 404
        with pytest.raises(SchematicError):
            factory.get_schematic("not-an-id")


def test_malformed_responses_raise_parse_error(server: _Server) -> None:
    with ImageFactory(server.url + "/broken", timeout=5) as factory:
        with pytest.raises(ParseError, match="image-factory"):
            factory.versions()
        with pytest.raises(ParseError, match="'id'"):
            factory.create_schematic(_ext("siderolabs/drbd"))


def test_unreachable_factory_is_a_factory_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ImageFactory(f"http://127.0.0.1:{port}", timeout=2) as factory, pytest.raises(FactoryError) as info:
        factory.versions()
    assert info.value.status is None


def test_shared_client_is_left_open(server: _Server) -> None:
    with httpx.Client() as client:
        factory = ImageFactory(server.url, client=client, timeout=5)
        assert factory.versions()
        factory.close()
        assert not client.is_closed
