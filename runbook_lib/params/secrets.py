"""Secrets in parameters: which keys are secret, redacting them, and splitting them out of the recorded half."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import SecretStr

SECRET_KEY_SUFFIXES = ("_password", "_token", "_secret", "_passphrase")


def is_secret_key(key: str) -> bool:
    """True for keys whose value must never be recorded (``*_password``, ``*_token``...)."""
    lowered = key.lower()
    return lowered in ("password", "token", "secret", "passphrase") or lowered.endswith(SECRET_KEY_SUFFIXES)


def redact_tree(data: Any) -> Any:
    """Copy ``data`` with the values of secret-looking keys (at any depth) replaced by ``"***"``."""
    if isinstance(data, Mapping):
        return {
            key: (
                "***"
                if isinstance(key, str) and is_secret_key(key) and value is not None
                else redact_tree(value)
            )
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact_tree(item) for item in data]
    return data


_USERINFO_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/@\s?#]+)@")


def mask_userinfo(data: Any) -> Any:
    if isinstance(data, str):
        return _USERINFO_RE.sub(lambda m: m.group(0).replace(m.group(1), "***"), data)
    if isinstance(data, Mapping):
        return {key: mask_userinfo(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [mask_userinfo(item) for item in data]
    return data


def url_credentials(data: Any) -> list[str]:
    """The userinfo of every URL in ``data`` (at any depth), whole and its password alone, raw and decoded."""
    found: list[str] = []
    if isinstance(data, str):
        for userinfo in _USERINFO_RE.findall(data):
            password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
            for value in (userinfo, password, unquote(userinfo), unquote(password)):
                if value and value not in found:
                    found.append(value)
    elif isinstance(data, Mapping):
        for value in data.values():
            found += [v for v in url_credentials(value) if v not in found]
    elif isinstance(data, list | tuple):
        for item in data:
            found += [v for v in url_credentials(item) if v not in found]
    return found


def secret_named_values(data: Any) -> list[str]:
    """String values under secret-looking keys, at any depth."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(key, str) and is_secret_key(key) and isinstance(value, str | SecretStr):
                found.append(_plain(value))
            else:
                found += secret_named_values(value)
    elif isinstance(data, list | tuple):
        for item in data:
            found += secret_named_values(item)
    return found


def _plain(data: Any) -> Any:
    """``SecretStr`` -> ``str`` at any depth, so the secret half can be serialized as JSON."""
    if isinstance(data, SecretStr):
        return data.get_secret_value()
    if isinstance(data, Mapping):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    return data


def _holds_secret(data: Any) -> bool:
    if isinstance(data, Mapping):
        return any((isinstance(k, str) and is_secret_key(k)) or _holds_secret(v) for k, v in data.items())
    if isinstance(data, list | tuple):
        return any(_holds_secret(item) for item in data)
    return False


def split_secrets(data: Mapping[str, Any], *, _top: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split raw parameters into ``(public, secret)`` halves; :func:`merge_secrets` joins them again.

    The runner hands the public half to papermill, which writes it into the
    executed notebook (the audit record), and passes the secret half out of band.
    Secret: the top-level ``secrets`` mapping and every secret-looking key at any
    depth (a list holding one moves to the secret half whole, as lists cannot be
    merged back item by item).
    """
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for key, value in data.items():
        if (_top and key == "secrets") or (isinstance(key, str) and is_secret_key(key)):
            secret[key] = _plain(value)
        elif isinstance(value, Mapping):
            public_part, secret_part = split_secrets(value, _top=False)
            public[key] = public_part
            if secret_part:
                secret[key] = secret_part
        elif _holds_secret(value):
            secret[key] = _plain(value)
        else:
            public[key] = value
    return public, secret


def merge_secrets(public: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_secrets`: a deep merge in which the secret half fills its keys back in."""
    merged: dict[str, Any] = dict(public)
    for key, value in secret.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_secrets(merged[key], value)
        else:
            merged[key] = value
    return merged
