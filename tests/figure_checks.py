"""What the figure tests check in an output: its PNG's size, its plotly figures, whether Chromium is there."""

from __future__ import annotations

import struct

import pytest

from runbook_lib import figure_export, viz

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


needs_browser = pytest.mark.skipif(figure_export.browser_path() is None,
                                   reason="no Chromium: .ci/run installs the Debian package chromium")


def png_size(image: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (PNG spec, 11.2.2)."""
    assert image[:8] == PNG_SIGNATURE
    return struct.unpack(">II", image[16:24])


def figure_outputs(nb: dict) -> list[tuple[int, dict]]:
    return [(i, out) for i, cell in enumerate(nb["cells"]) for out in cell.get("outputs", [])
            if viz.PLOTLY_MIMETYPE in out.get("data", {})]
