"""Talos Image Factory: its HTTP client, and the offline rules (:mod:`.schematic_ids`) under their documented names.

``runbook_lib.factory.schematic_id`` and ``installer_image`` are the documented entry points (CONTRACTS §4);
they live in :mod:`.schematic_ids`, which imports no HTTP client, so the lab and the parameter model can use
the rules without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import yaml

from .errors import ParseError, RunbookError
from .schematic_ids import (
    DEFAULT_FACTORY_HOST,
    DEFAULT_FACTORY_URL,
    PLATFORMS,
    SCHEMATIC_ID,
    SchematicError,
    canonical_yaml,
    installer_image,
    schematic_id,
)

__all__ = ["DEFAULT_FACTORY_HOST", "DEFAULT_FACTORY_URL", "PLATFORMS", "FactoryError", "ImageFactory",
           "SchematicError", "canonical_yaml", "installer_image", "schematic_id"]


class FactoryError(RunbookError):
    """The Image Factory answered with an HTTP error, or could not be reached.

    ``status`` is the HTTP status (``None`` when no response arrived) and ``body`` the
    factory's plain-text error message, which names the real problem (unknown field,
    unknown extension for that Talos version, ...).
    """

    def __init__(self, status: int | None, body: str, *, url: str, method: str = "GET") -> None:
        self.status = status
        self.body = body
        self.url = url
        self.method = method
        what = f"HTTP {status}" if status is not None else "no response"
        text = body.strip()
        super().__init__(f"Image Factory {method} {url}: {what}" + (f": {text}" if text else ""))



class ImageFactory:
    """Small client for the Image Factory HTTP API (``factory.talos.dev`` or a mirror).

    Pass ``client`` to reuse a configured ``httpx.Client`` (proxies, test transports);
    it is then left open by :meth:`close`. Requests use absolute URLs built from
    ``base_url``, so a shared client's own base URL does not matter.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_FACTORY_URL,
        client: httpx.Client | None = None,
        timeout: float = 30,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self.timeout = timeout

    def __enter__(self) -> ImageFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._client.request(method, url, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise FactoryError(None, f"{type(exc).__name__}: {exc}", url=url, method=method) from exc
        if response.status_code >= 400:
            raise FactoryError(response.status_code, response.text, url=url, method=method)
        return response

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ParseError("image-factory", f"{what}: response is not JSON ({exc})") from exc

    def versions(self) -> list[str]:
        """Talos versions the factory can build (``GET /versions``)."""
        data = self._json(self._request("GET", "/versions"), "/versions")
        if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
            raise ParseError("image-factory", "/versions: expected a JSON list of strings")
        return data

    def official_extensions(self, version: str) -> list[dict]:
        """Official extensions for a Talos version: ``[{name, ref, digest, author, description}]``."""
        path = f"/version/{version}/extensions/official"
        data = self._json(self._request("GET", path), path)
        if not isinstance(data, list) or not all(isinstance(e, dict) and "name" in e for e in data):
            raise ParseError("image-factory", f"{path}: expected a JSON list of objects with a name")
        return data

    def create_schematic(self, schematic: dict) -> str:
        """Register ``schematic`` (``POST /schematics``) and return the factory's ID.

        The body is plain YAML of the dict; the factory canonicalises it itself, so this
        works for schematics :func:`schematic_id` refuses to hash offline.
        """
        if not isinstance(schematic, Mapping):
            raise SchematicError(f"schematic: expected a mapping, got {type(schematic).__name__}")
        body = yaml.safe_dump(dict(schematic), sort_keys=False)
        response = self._request(
            "POST", "/schematics", content=body.encode("utf-8"), headers={"Content-Type": "application/yaml"}
        )
        if response.status_code not in (200, 201):
            raise FactoryError(
                response.status_code,
                f"unexpected status; {response.text}",
                url=str(response.url),
                method="POST",
            )
        data = self._json(response, "/schematics")
        sid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not SCHEMATIC_ID.fullmatch(sid):
            raise ParseError("image-factory", f"/schematics: response has no 64-hex 'id' field: {data!r}")
        return sid

    def get_schematic(self, schematic_id: str) -> str:
        """The canonical YAML the factory stored for ``schematic_id`` (``GET /schematics/:id``)."""
        if not isinstance(schematic_id, str) or not SCHEMATIC_ID.fullmatch(schematic_id):
            raise SchematicError(f"schematic_id: {schematic_id!r} is not a 64-character hex ID")
        return self._request("GET", f"/schematics/{schematic_id}").text
