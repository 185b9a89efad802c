"""The Image Factory client over real HTTP (a local server), and the canonical YAML against real go-yaml."""

from __future__ import annotations

import hashlib
import json
import os
import random
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

from runbook_lib.errors import ParseError
from runbook_lib.factory import (
    FactoryError,
    ImageFactory,
    SchematicError,
    canonical_yaml,
    schematic_id,
)
from tests.unit.test_factory import DRBD_ZFS, VANILLA, VECTORS, _ext

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

