"""Masking secrets before anything reaches a record, a log line or an error.

A :class:`Redactor` knows secret *values* (from the ``secrets`` parameter, keys
ending in ``_password``/``_token``/``_secret``/``_passphrase``, and credentials
read from kubeconfig/talosconfig) and replaces them wherever they appear. Values
shorter than four characters are ignored: masking them would garble ordinary text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .params import is_secret_key

MASK = "***"
# Keys whose values are credentials wherever they appear (kubeconfig/talosconfig/machine config).
CREDENTIAL_KEYS = {"token", "key", "crt", "ca", "client-key-data", "client-certificate-data",
                   "certificate-authority-data", "password", "secret", "secretboxEncryptionSecret",
                   "aescbcEncryptionSecret", "bootstraptoken"}


def move_secret_bearing(public: dict, secret: dict, values: Iterable[str]) -> tuple[dict, dict]:
    """Move every public parameter whose value holds a secret value (at any depth) to the secret half.

    papermill writes the public half into the executed notebook (its parameters cell and
    ``metadata.papermill``); a secret reused elsewhere (a kubeconfig path, an install
    command, a URL's password) must travel with the secrets instead. The halves merge back
    with :func:`runbook_lib.params.merge_secrets`.
    """
    probe = Redactor(values)
    public_out: dict = {}
    secret_out: dict = dict(secret)
    for key, value in public.items():
        if isinstance(value, dict):
            sub_public, sub_secret = move_secret_bearing(value, {}, probe._values)
            public_out[key] = sub_public
            if sub_secret:
                held = secret_out.get(key)
                secret_out[key] = {**held, **sub_secret} if isinstance(held, dict) else sub_secret
        elif probe.deep(value) != value:
            secret_out[key] = value
        else:
            public_out[key] = value
    return public_out, secret_out


class Redactor:
    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if isinstance(v, str) and len(v) >= 4}
        if new - self._values:
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def add_from_mapping(self, data: Any) -> None:
        """Learn credential values from a parsed kubeconfig/talosconfig-like structure."""
        found: list[str] = []

        def walk(obj: Any) -> None:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if isinstance(v, str) and (k in CREDENTIAL_KEYS or is_secret_key(k)):
                        found.append(v)
                    else:
                        walk(v)
            elif isinstance(obj, list):
                for item in obj:
                    walk(item)

        walk(data)
        self.add(found)

    def text(self, value: str) -> str:
        if not self._pattern or not value:
            return value
        return self._pattern.sub(MASK, value)

    def deep(self, obj: Any) -> Any:
        """A copy of ``obj`` with every string masked and secret-named keys blanked."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self._mask_value(k, v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.deep(v) for v in obj]
        return obj

    def _mask_value(self, key: object, value: Any) -> Any:
        if key == "secrets" and isinstance(value, dict):
            return {name: MASK for name in value}  # names are useful in a record, values never
        if isinstance(key, str) and is_secret_key(key) and value not in (None, {}, ""):
            return MASK
        return self.deep(value)
