"""Deterministic identifiers derived from the lab seed, and lab-time RFC 3339 timestamps."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, datetime


class _Rand:
    """Deterministic identifiers derived from the lab seed and a purpose string."""

    def __init__(self, seed: int, purpose: str) -> None:
        self._r = random.Random(f"{seed}:{purpose}")

    def hex(self, n: int) -> str:
        return "".join(self._r.choice("0123456789abcdef") for _ in range(n))

    def alnum(self, n: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
        return "".join(self._r.choice(alphabet) for _ in range(n))

    def bytes(self, n: int) -> bytes:
        return bytes(self._r.getrandbits(8) for _ in range(n))

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.bytes(16), version=4))

    def b64(self, n: int) -> str:
        return base64.b64encode(self.bytes(n)).decode()

    def pem(self, kind: str, n: int) -> str:
        """A fake PEM block, base64-encoded as Talos stores certificates and keys in its config."""
        body = base64.b64encode(self.bytes(n)).decode()
        lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
        return base64.b64encode(f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n".encode()).decode()


def rfc3339(epoch: float, lab_seconds: float) -> str:
    return datetime.fromtimestamp(epoch + max(lab_seconds, 0.0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
