"""Access to ``../shared/reference`` (facts from the real projects), when it is there.

CI has it beside the clone; a clone elsewhere does not, and the tests that need it skip
with a reason instead of failing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def reference_path(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference material not available ({path} is absent): run beside ../shared")
    return path


def talos_schema_def(version: str, definition: str) -> dict:
    """One ``$defs`` entry of the Talos machine-config schema, with the other defs attached for ``$ref``."""
    schema = json.loads(reference_path("talos", f"config.schema.{version}.json").read_text())
    return {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
