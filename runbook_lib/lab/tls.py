"""The lab's Kubernetes PKI: a cluster CA, the API server's certificate and an admin client certificate.

Talos generates a Kubernetes CA per cluster and hands out an admin kubeconfig whose user is a
client certificate in the ``system:masters`` group (``talosctl kubeconfig``); the lab does the
same, once per lab directory, so a kubeconfig exported by an operator keeps working across lab
restarts. Keys are ECDSA P-256 (cheap to generate, accepted by Go's and Python's TLS stacks).

The server listens on one port for both TLS and plain HTTP: :func:`is_tls_hello` tells a TLS
ClientHello (first byte 0x16, a handshake record) from an HTTP request line, so the control
endpoints and in-process tests keep plain HTTP while kubeconfig clients use https.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PKI_DIR = "pki"
ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
VALIDITY = dt.timedelta(days=365)
_FILES = ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key")


@dataclass(frozen=True)
class Pki:
    """PEM files of one lab's PKI (paths in ``directory``)."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    def pem(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def b64(self, name: str) -> str:
        """A file's PEM as kubeconfig ``*-data`` fields carry it (base64)."""
        return base64.b64encode(self.pem(name)).decode()

    def server_context(self) -> ssl.SSLContext:
        """TLS for the API server: its certificate, and client certificates verified against the CA when sent."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.path("apiserver.crt"), self.path("apiserver.key"))
        ctx.load_verify_locations(self.path("ca.crt"))
        ctx.verify_mode = ssl.CERT_OPTIONAL  # token clients send none; a sent certificate must chain to the CA
        ctx.set_alpn_protocols(["http/1.1"])  # no h2: Go clients then speak HTTP/1.1 (needed for upgrades too)
        return ctx


def ensure_pki(directory: Path) -> Pki:
    """The PKI under ``directory/pki``, generated the first time (keys readable by the owner only)."""
    d = directory / PKI_DIR
    if all((d / f).exists() for f in _FILES):
        return Pki(d)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubernetes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + 10 * VALIDITY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    server_sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"), x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
    ]
    api_crt, api_key = leaf(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
                            ExtendedKeyUsageOID.SERVER_AUTH, server_sans)
    admin_crt, admin_key = leaf(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                                           x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER)]),
                                ExtendedKeyUsageOID.CLIENT_AUTH, [])
    files = {"ca.crt": ca.public_bytes(serialization.Encoding.PEM), "ca.key": _key_pem(ca_key),
             "apiserver.crt": api_crt, "apiserver.key": api_key, "admin.crt": admin_crt, "admin.key": admin_key}
    for name, data in files.items():
        tmp = d / (name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, d / name)
    return Pki(d)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def is_tls_hello(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Does the client open with a TLS handshake record? (Peeks; consumes nothing.)"""
    old = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return False
    finally:
        sock.settimeout(old)
    return first == b"\x16"


def peer_identity(sock: socket.socket) -> tuple[str, list[str]] | None:
    """User name and groups of a verified client certificate (CN and O, as the API server reads them)."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    cert = sock.getpeercert()
    if not cert:
        return None
    fields = [item for rdn in cert.get("subject", ()) for item in rdn]
    user = next((v for k, v in fields if k == "commonName"), "")
    groups = [v for k, v in fields if k == "organizationName"]
    return user, groups
